#!/usr/bin/env bash
# What the access log costs on the plain hop: passgate with `[log] access`
# on (lines written to a file) and off, measured alternately, RUNS times
# each, HTTP/1.1 (wrk) and HTTP/2 (h2load); prints each run and the medians.
# Loopback only.
#
#   cargo build --release --example echo-upstream && cargo build --release
#   benches/access_log.sh                    # RUNS=3 D=6 C=64
#
# Needs wrk and h2load (Debian: wrk, nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/passgate}
ECHO=${ECHO:-target/release/examples/echo-upstream}
RUNS=${RUNS:-3}
D=${D:-6}
C=${C:-64}
PORT=${PORT:-18470}
UP_PORT=${UP_PORT:-18471}
name=access_log.sh
source benches/plain_hop.sh
require wrk h2load
start_echo
for log in on off; do
  access=false
  [[ $log == on ]] && access=true
  plain_hop_config "$work/$log.toml" "$access" 'admin_listen = "127.0.0.1:0"'
done

# Serve with $1's config, log lines to a file, and measure both protocols.
measure() {
  local log=$1 pg h1 h2
  "$BIN" serve --config "$work/$log.toml" >"$work/$log.out" 2>&1 &
  pg=$!
  wait_listening "$work/$log.out" || true
  h1=$(wrk -t1 -c"$C" -d"${D}s" "https://127.0.0.1:$PORT/plain/items" | awk '/Requests\/sec/ {print $2}')
  h2=$(h2load -c32 -m8 -t1 -D"$D" "https://127.0.0.1:$PORT/plain/items" | awk '/finished in/ {print $4}')
  kill -TERM "$pg"
  wait "$pg" || true
  echo "$log $h1 $h2"
}

: >"$work/results"
for run in $(seq 1 "$RUNS"); do
  for log in on off; do
    line=$(measure "$log")
    echo "run $run: access log $line" | awk '{printf "run %s access log %-3s h1 %10.0f req/s  h2 %10.0f req/s\n", $2, $5, $6, $7}'
    echo "$line" >>"$work/results"
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {(log, i): statistics.median(float(r[i + 1]) for r in rows if r[0] == log)
       for log in ("on", "off") for i in (0, 1)}
for i, proto in enumerate(("h1", "h2")):
    on, off = med[("on", i)], med[("off", i)]
    print(f"{proto}: median on {on:.0f} req/s, off {off:.0f} req/s: the log costs {100 * (1 - on / off):.1f} %")
PY
