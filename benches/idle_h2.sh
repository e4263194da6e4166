#!/usr/bin/env bash
# Memory per idle HTTP/2 connection, side by side: N TLS connections that
# negotiate h2, make one request each and stay open (benches/idle_h2.py) to
# HAProxy's plain hop and passgate's, the server's resident memory before and
# after. The HTTP/1.1 counterpart is ../shared/bench/idle.sh. Loopback only.
#
#   cargo build --release
#   benches/idle_h2.sh                  # N=4000, target/release/passgate
#
# Needs haproxy and nginx (Debian), the h2 package (PyPI), and
# ../shared/bench (its setup.sh makes the certificate; its nginx upstream
# answers on 127.0.0.1:18080).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
BIN=${BIN:-$root/target/release/passgate}
N=${N:-4000}
shared=${SHARED_BENCH:-$root/../shared/bench}
W=${W:-/tmp/anchors}
for tool in haproxy nginx python3; do
  command -v "$tool" >/dev/null || { echo "idle_h2.sh: needs $tool" >&2; exit 1; }
done
python3 -c 'import h2' 2>/dev/null || { echo "idle_h2.sh: needs the h2 package (pip install h2)" >&2; exit 1; }
[[ -x $BIN ]] || { echo "idle_h2.sh: no passgate at $BIN (cargo build --release)" >&2; exit 1; }
"$shared/setup.sh" >/dev/null
work=$(mktemp -d)
cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 2
  maxconn $((N + 500))
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 30s
  timeout http-keep-alive 600s
  option http-keep-alive
frontend gw
  bind 127.0.0.1:18456 ssl crt $W/tls-combined.pem alpn h2,http/1.1
  default_backend api
backend api
  http-reuse always
  server up1 127.0.0.1:18080 maxconn 1000
CFG
sed -e 's/18445/18457/' -e 's#^\[server\]#[server]\nmax_connections = '$((N + 1000))'\nheader_read_timeout = "600s"\nidle_timeout = "600s"#' \
  "$shared/passgate-bench.toml" >"$work/passgate.toml"
ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
nginx -c "$shared/nginx-upstream.conf" -g "daemon off;" & pids+=($!)
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 & hp=$!; pids+=($hp)
"$BIN" serve --config "$work/passgate.toml" >"$work/passgate.log" 2>&1 & pg=$!; pids+=($pg)
sleep 1.5
printf '%-16s ' haproxy-h2; python3 benches/idle_h2.py https://127.0.0.1:18456/items "$N" "$hp"
printf '%-16s ' passgate-h2; python3 benches/idle_h2.py https://127.0.0.1:18457/plain/items "$N" "$pg"
