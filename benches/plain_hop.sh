# Sourced by access_log.sh and callgrind.sh: what both need to run passgate
# as a plain TLS hop in front of the echo upstream, on loopback. The caller
# sets BIN, ECHO, PORT, UP_PORT and `name` (its own name, for messages).

# Stop with a message unless every named command is on the PATH and both
# binaries are built.
require() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is missing" >&2; exit 1; }
  done
  [[ -x $BIN && -x $ECHO ]] || { echo "$name: build $BIN and $ECHO first" >&2; exit 1; }
}

# A scratch folder ($work), and the processes started ($pids): both go at exit.
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The echo upstream on $UP_PORT.
start_echo() {
  "$ECHO" "127.0.0.1:$UP_PORT" >/dev/null 2>&1 &
  pids+=($!)
}

# Write to $1 a config for the plain hop (public route /plain/ to the echo
# upstream) with the access log $2 (true or false) and the [server] lines $3.
plain_hop_config() {
  cat >"$1" <<TOML
[server]
listen = "127.0.0.1:$PORT"
tls_cert = "$work/tls.pem"
tls_key = "$work/tls-key.pem"
dev_certificate = true
$3

[log]
access = $2

[[routes]]
prefix = "/plain/"
upstream = "http://127.0.0.1:$UP_PORT"
public = true
TOML
}

# Wait (up to $2 tenths of a second, 100 unless given) until the serve log $1
# says passgate is listening; false if it never does.
wait_listening() {
  for _ in $(seq 1 "${2:-100}"); do
    grep -q "passgate listening" "$1" && return 0
    sleep 0.1
  done
  return 1
}
