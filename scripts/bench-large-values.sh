#!/usr/bin/env bash
# Writes of the largest values (1 MB) from many clients at once against a fresh five-node
# cluster (default timeouts and limits), counting errors, which redis-benchmark cannot: it
# stops at the first one.
#
#   scripts/bench-large-values.sh [clients] [requests] [value-bytes]     (default 10 1200 1000000)
#
# Each client writes in a closed loop to one of 300 random keys. Prints throughput, p50, p99,
# max and every error reply. The cluster runs with fsync = false unless FSYNC=true is set.
# DYNAMO_BIN picks another build of `dynamo` (to compare two). Uses free ports on 127.0.0.1
# and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-10}
requests=${2:-1200}
size=${3:-1000000}
[[ "${FSYNC:-false}" =~ ^(true|false)$ ]] || { echo "FSYNC must be true or false" >&2; exit 2; }
for n in "$clients" "$requests" "$size"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "usage: scripts/bench-large-values.sh [clients] [requests] [value-bytes]" >&2; exit 2; }
done
if [ -z "${DYNAMO_BIN:-}" ]; then
  cargo build --release -q -p dynamo-native
fi
bin=${DYNAMO_BIN:-$PWD/target/release/dynamo}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
{
  echo "data_dir = \"$work/data\""
  echo "fsync = ${FSYNC:-false}"
  for name in 5554 5556 5558 5560 5562; do
    echo "[[node]]"; echo "name = \"$name\""
    echo "ws = \"127.0.0.1:$(free_port)\""; echo "resp = \"127.0.0.1:$(free_port)\""
  done
} > "$work/cluster.toml"
for name in 5554 5556 5558 5560 5562; do
  "$bin" node --config "$work/cluster.toml" --name "$name" >/dev/null 2>"$work/$name.log" &
  pids+=($!)
done
ports=$(grep resp "$work/cluster.toml" | sed 's/.*:\([0-9]*\)"/\1/')
for port in $ports; do
  name=$(grep -B2 "127.0.0.1:$port\"" "$work/cluster.toml" | grep name | sed 's/.*"\(.*\)"/\1/')
  python3 - "$port" <<'PY' || { echo "node $name's log:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
import socket, sys, time
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
        s.sendall(b"PING\r\n")
        if s.recv(16).startswith(b"+PONG"):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit("port %s never answered" % sys.argv[1])
PY
done
port=$(echo "$ports" | head -1)

python3 - "$port" "$clients" "$requests" "$size" <<'PY'
import random, socket, sys, threading, time
port, clients, total, size = map(int, sys.argv[1:])
value = b"x" * size
lock = threading.Lock()
issued, latencies, errors = [0], [], {}
def client():
    s = socket.create_connection(("127.0.0.1", port))
    replies = s.makefile("rb")
    while True:
        with lock:
            if issued[0] >= total:
                return
            issued[0] += 1
        key = b"key:%d" % random.randrange(300)
        command = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(value)) + value + b"\r\n"
        start = time.monotonic()
        s.sendall(command)
        line = replies.readline().strip()
        elapsed = time.monotonic() - start
        with lock:
            latencies.append(elapsed)
            if line != b"+OK":
                errors[line] = errors.get(line, 0) + 1
began = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
took = time.monotonic() - began
latencies.sort()
ms = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000
print(f"{total} SETs of {size} bytes from {clients} clients: {total / took:.0f} SET/s, "
      f"p50 {ms(0.5):.0f} ms, p99 {ms(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms, "
      f"errors {sum(errors.values())}")
for line, count in sorted(errors.items()):
    print(f"  {count} x {line.decode(errors='replace')}")
PY
