#!/usr/bin/env bash
# Throughput of the dynamo cluster against a local redis-server, measured in the same run with
# Debian's redis-benchmark (-t set,get -c 50), with and without fsync on every write.
#
#   scripts/bench-redis.sh [requests] [--coordinator] [--random-keys N]
#
#   requests          requests per test (default 100000)
#   --coordinator     send to the benchmark key's coordinator (its first owner, from DYN.OWNERS),
#                     as a partition-aware client would, instead of to node 5554, which forwards
#   --random-keys N   spread requests over N keys (redis-benchmark -r N, for both servers);
#                     by default every request hits one key, as redis-benchmark does without -r
#
# Installs redis-server/redis-tools with apt when missing. Uses free ports on 127.0.0.1 and
# stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=100000
coordinator=no
keyspace=()
while [ $# -gt 0 ]; do
  case "$1" in
    --coordinator) coordinator=yes ;;
    --random-keys) shift; [[ "${1:-}" =~ ^[0-9]+$ ]] || { echo "--random-keys needs a number" >&2; exit 2; }; keyspace=(-r "$1") ;;
    *) [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: scripts/bench-redis.sh [requests] [--coordinator] [--random-keys N]" >&2; exit 2; }; requests="$1" ;;
  esac
  shift
done
if [ "$coordinator" = yes ] && [ ${#keyspace[@]} -gt 0 ]; then
  echo "--coordinator is for the one-key benchmark: with --random-keys every node coordinates some keys" >&2
  exit 2
fi

if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
  echo "==> installing redis-server and redis-tools (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
echo "==> building dynamo (release)"
cargo build --release -q -p dynamo-native
bin="$PWD/target/release/dynamo"

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_port() {
  for _ in $(seq 1 200); do
    redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "port $1 never answered" >&2; return 1
}

# Prints "set_rps get_rps set_p99 get_p99" for the server on port $1.
measure() {
  local csv
  csv=$(redis-benchmark -p "$1" -t set,get -c 50 -n "$requests" "${keyspace[@]}" --csv 2>/dev/null | grep -E '^"(SET|GET)"')
  local set get
  set=$(echo "$csv" | grep '^"SET"' | tr -d '"' | cut -d, -f2,8)
  get=$(echo "$csv" | grep '^"GET"' | tr -d '"' | cut -d, -f2,8)
  echo "${set%,*} ${get%,*} ${set#*,} ${get#*,}"
}

start_cluster() { # $1: fsync true|false
  local dir="$work/cluster-$1"
  mkdir -p "$dir"
  {
    echo "data_dir = \"$dir/data\""
    echo "fsync = $1"
    for name in 5554 5556 5558 5560 5562; do
      echo "[[node]]"; echo "name = \"$name\""
      echo "ws = \"127.0.0.1:$(free_port)\""; echo "resp = \"127.0.0.1:$(free_port)\""
    done
  } > "$dir/cluster.toml"
  cluster_ports=()
  for name in 5554 5556 5558 5560 5562; do
    "$bin" node --config "$dir/cluster.toml" --name "$name" >/dev/null 2>"$dir/$name.log" &
    pids+=($!)
  done
  cluster_port=$(grep -A3 'name = "5554"' "$dir/cluster.toml" | grep resp | sed 's/.*:\([0-9]*\)"/\1/')
  wait_port "$cluster_port"
  for port in $(grep resp "$dir/cluster.toml" | sed 's/.*:\([0-9]*\)"/\1/'); do wait_port "$port"; done
  if [ "$coordinator" = yes ]; then
    local owner
    owner=$(redis-cli -p "$cluster_port" DYN.OWNERS 'key:__rand_int__' | head -1)
    cluster_port=$(grep -A3 "name = \"$owner\"" "$dir/cluster.toml" | grep resp | sed 's/.*:\([0-9]*\)"/\1/')
  fi
}

stop_all() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

report() { # label dynamo-figures redis-figures
  read -r dset dget dsp99 dgp99 <<<"$2"
  read -r rset rget rsp99 rgp99 <<<"$3"
  awk -v l="$1" -v ds="$dset" -v dg="$dget" -v rs="$rset" -v rg="$rget" -v dsp="$dsp99" -v dgp="$dgp99" -v rsp="$rsp99" -v rgp="$rgp99" 'BEGIN {
    printf "%s\n", l
    printf "  SET: dynamo %9.0f req/s (p99 %s ms)   redis-server %9.0f req/s (p99 %s ms)   ratio %.3f\n", ds, dsp, rs, rsp, ds/rs
    printf "  GET: dynamo %9.0f req/s (p99 %s ms)   redis-server %9.0f req/s (p99 %s ms)   ratio %.3f\n", dg, dgp, rg, rgp, dg/rg
  }'
}

echo "==> $(nproc) cores, $requests requests per test, 50 connections, $([ ${#keyspace[@]} -gt 0 ] && echo "${keyspace[1]} random keys" || echo "one key"), cluster entered at $([ "$coordinator" = yes ] && echo "the key's coordinator" || echo "node 5554")"
for mode in nofsync fsync; do
  redis_port=$(free_port)
  if [ "$mode" = fsync ]; then
    redis-server --port "$redis_port" --save '' --appendonly yes --appendfsync always --dir "$work" --daemonize no >/dev/null &
  else
    redis-server --port "$redis_port" --save '' --appendonly no --dir "$work" --daemonize no >/dev/null &
  fi
  pids+=($!)
  wait_port "$redis_port"
  redis=$(measure "$redis_port")
  stop_all
  start_cluster "$([ "$mode" = fsync ] && echo true || echo false)"
  dynamo=$(measure "$cluster_port")
  stop_all
  if [ "$mode" = fsync ]; then
    report "with fsync on every acknowledged write (redis-server --appendfsync always):" "$dynamo" "$redis"
  else
    report "without fsync (redis-server without persistence):" "$dynamo" "$redis"
  fi
done
