#!/usr/bin/env bash
# Instructions per proxied request on passgate's plain hop, counted by callgrind:
# unlike a timed run, the count repeats on a busy machine (same binary, same
# inputs), so it compares two builds fairly. Loopback only.
#
#   cargo build --release --example echo-upstream
#   benches/callgrind.sh                       # target/release/passgate, HTTP/1.1
#   BIN=/path/to/other/passgate PROTO=h2 benches/callgrind.sh
#   PROTO=h2 STREAMS=8 benches/callgrind.sh    # 8 streams at a time per connection
#   PROXY=haproxy benches/callgrind.sh         # HAProxy as the same hop, for comparison
#   ROUTE=jwt benches/callgrind.sh             # passgate checking a bearer token (cached)
#   LOG=true benches/callgrind.sh              # with the access log on (lines to a file)
#
# Two runs under callgrind, each starting, serving requests on 4 keep-alive
# connections (h2load) and stopping: one with N/5 requests, one with N. Their
# difference over the 4N/5 requests between is what one request costs, with
# start-up, the TLS handshakes and shutdown taken out. AWS-LC seeds its random
# generator once per process from CPU jitter (`tree_jitter_initialize`), and
# how long that runs varies from run to run (some 420 million instructions,
# give or take a few million): its count is taken out of each run's total. The larger run's
# profile stays in $OUT (callgrind_annotate reads it).
# With PROXY=haproxy, HAProxy (one thread, keep-alive and connection reuse
# towards the upstream, like haproxy-plain.cfg in ../shared/bench) is counted
# instead, in front of the same upstream with the same certificate.
# ROUTE=jwt sends the ES256 token ../shared/bench/setup.sh minted (in
# $ANCHORS, /tmp/anchors unless set) to a route that checks it against that
# issuer's JWKS file, as run.sh's passgate-tls-jwt does.
# Needs valgrind and h2load (Debian: valgrind, nghttp2-client), and haproxy
# for PROXY=haproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/passgate}
ECHO=${ECHO:-target/release/examples/echo-upstream}
N=${N:-2000}
PROTO=${PROTO:-h1}
STREAMS=${STREAMS:-1}
PROXY=${PROXY:-passgate}
ROUTE=${ROUTE:-plain}
LOG=${LOG:-false}
ANCHORS=${ANCHORS:-/tmp/anchors}
OUT=${OUT:-target/callgrind}
PORT=${PORT:-18460}
UP_PORT=${UP_PORT:-18461}
ADMIN_PORT=${ADMIN_PORT:-18462}
name=callgrind.sh
source benches/plain_hop.sh
require valgrind h2load
[[ $PROXY == passgate || $PROXY == haproxy ]] || { echo "$name: PROXY is passgate or haproxy" >&2; exit 1; }
[[ $PROXY == passgate ]] || require haproxy
case $ROUTE in
  plain) path=/plain/items auth=() ;;
  jwt)
    [[ $PROXY == passgate ]] || { echo "$name: ROUTE=jwt is for passgate" >&2; exit 1; }
    [[ -f $ANCHORS/token-es256.txt && -f $ANCHORS/jwks.json ]] ||
      { echo "$name: run ../shared/bench/setup.sh first (no token in $ANCHORS)" >&2; exit 1; }
    path=/items auth=(-H "Authorization: Bearer $(cat "$ANCHORS/token-es256.txt")") ;;
  *) echo "$name: ROUTE is plain or jwt" >&2; exit 1 ;;
esac
mkdir -p "$OUT"
start_echo
[[ $LOG == true || $LOG == false ]] || { echo "$name: LOG is true or false" >&2; exit 1; }
plain_hop_config "$work/passgate.toml" "$LOG" "admin_listen = \"127.0.0.1:$ADMIN_PORT\"
workers = 1"
cat >>"$work/passgate.toml" <<TOML

[[trusted_issuers]]
issuer = "https://localhost:18443/"
jwks_file = "$ANCHORS/jwks.json"

[[routes]]
prefix = "/items"
upstream = "http://127.0.0.1:$UP_PORT"
audience = "https://api.example.com"
scopes = ["read:items"]
TOML
cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 1000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend hop
  bind 127.0.0.1:$PORT ssl crt $work/tls-combined.pem alpn h2,http/1.1
  default_backend upstream
backend upstream
  http-reuse always
  server echo 127.0.0.1:$UP_PORT
CFG

# Start the proxy being counted under callgrind, writing its profile to $1.
start_counted() {
  case $PROXY in
    passgate) valgrind --tool=callgrind --callgrind-out-file="$1" \
      "$BIN" serve --config "$work/passgate.toml" >"$work/serve.log" 2>&1 & ;;
    haproxy) valgrind --tool=callgrind --callgrind-out-file="$1" \
      haproxy -f "$work/haproxy.cfg" -db >"$work/serve.log" 2>&1 & ;;
  esac
}

# Wait until the proxy accepts connections (a minute at most: valgrind is slow).
wait_accepting() {
  case $PROXY in
    passgate) wait_listening "$work/serve.log" 600 ;;
    haproxy)
      for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
      done
      return 1 ;;
  esac
}

# The total instruction count of one run under callgrind, serving $1 requests.
count() {
  local requests=$1 file=$OUT/callgrind.$PROTO.$1.out
  rm -f "$file"
  start_counted "$file"
  local pg=$!
  wait_accepting || { cat "$work/serve.log" >&2; exit 1; }
  if ((requests > 0)); then
    local flags=()
    [[ $PROTO == h1 ]] && flags+=(--h1)
    [[ $PROTO == h2 ]] && flags+=(-m "$STREAMS")
    h2load "${flags[@]}" "${auth[@]}" -n "$requests" -c 4 -t 1 "https://127.0.0.1:$PORT$path" \
      | grep -E "^requests:|status codes:" >&2
  fi
  kill -TERM "$pg"
  wait "$pg" || true
  local total seeding
  total=$(awk '/^summary:|^totals:/ {print $2; exit}' "$file")
  seeding=$(callgrind_annotate --inclusive=yes --threshold=100 "$file" 2>/dev/null |
    awk '/tree_jitter_initialize \[/ {gsub(",", "", $1); print $1; exit}')
  echo $((total - ${seeding:-0}))
}

# Once outside callgrind, so that both counted runs find the dev certificate made.
"$BIN" serve --config "$work/passgate.toml" >"$work/serve.log" 2>&1 &
first=$!
wait_listening "$work/serve.log" || true
kill -TERM "$first"; wait "$first" || true
cat "$work/tls.pem" "$work/tls-key.pem" >"$work/tls-combined.pem"

few=$((N / 5))
small=$(count "$few")
large=$(count "$N")
log_note=""
[[ $LOG == true ]] && log_note=", access log on"
echo "$PROXY $ROUTE $PROTO (streams $STREAMS$log_note): $(( (large - small) / (N - few) )) instructions per request ($((N - few)) requests: $large - $small)"
# The functions that account for the difference (self cost, per request).
top() { callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null; }
python3 - "$((N - few))" <(top "$OUT/callgrind.$PROTO.$few.out") <(top "$OUT/callgrind.$PROTO.$N.out") <<'PY'
import re, sys
def costs(path):
    out = {}
    for line in open(path):
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*?):(.*?)(?: \[.*\])?$", line)
        # AWS-LC's one-off jitter seeding (see above) is not the request's.
        if m and "PROGRAM TOTALS" not in line and "jitterentropy" not in m.group(2):
            out[m.group(3)] = out.get(m.group(3), 0) + int(m.group(1).replace(",", ""))
    return out
requests = int(sys.argv[1])
small, large = costs(sys.argv[2]), costs(sys.argv[3])
diff = {f: large.get(f, 0) - small.get(f, 0) for f in large}
total = sum(v for v in diff.values() if v > 0)
print("top functions by instructions per request (self):")
for name, v in sorted(diff.items(), key=lambda kv: -kv[1])[:20]:
    print(f"{v / requests:9.0f}  {100 * v / total:5.1f}%  {name[:110]}")
PY
