#!/usr/bin/env bash
# Network data paths, berth against dockerd (Debian's docker.io, docker-proxy in its default
# setting) and host loopback, in the same run; writes the "network" section of
# docs/benchmarks.md.
#
# Every party runs inside a network namespace this script makes (berth's and dockerd's "host"
# namespaces, the loopback one), so the machine's own network is never touched:
#   - container to container over a bridge network (iperf3, one TCP stream);
#   - host to container through a port published on 127.0.0.1 (iperf3);
#   - connections per second to a port published on 127.0.0.1 (netbench connect/accept);
#   - berth's join time: sandbox + veth + address + routes (netbench join).
#
#   bench/network.sh [SECONDS] [ROUNDS]   (default: 5 seconds per run, 3 interleaved rounds)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
secs=${1:-5}
rounds=${2:-3}
scripts/deps.sh
cargo build --release -p berth-network --example netbench >/dev/null 2>&1
netbench=$PWD/target/x86_64-unknown-linux-gnu/release/examples/netbench

work=$(mktemp -d /tmp/berth-netbench.XXXXXX)
tag=$$
loop_ns=bnb-loop-$tag berth_ns=bnb-berth-$tag docker_ns=bnb-docker-$tag
docker_sock=$work/docker/docker.sock
pids=()
docker_pid=

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$docker_pid" ]; then
    command docker -H "unix://$docker_sock" rm -f ca cb >/dev/null 2>&1 || true
    # SIGTERM: dockerd stops its containerd and unmounts what it mounted, then exits.
    kill "$docker_pid" 2>/dev/null || true
    wait "$docker_pid" 2>/dev/null || true
  fi
  [ -d "$work/berth" ] && nsenter --net="/run/netns/$berth_ns" "$netbench" teardown "$work/berth" || true
  for ns in "$loop_ns" "$berth_ns" "$docker_ns"; do ip netns del "$ns" 2>/dev/null || true; done
  umount -R "$work/docker" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; nsenter --net="$ns" "$@"; }

# Waits until something listens on TCP PORT inside namespace NS (a readiness check, bounded).
wait_listen() {
  local ns=$1 port=$2 tries=0
  until in_ns "$ns" ss -Hltn "sport = :$port" | grep -q LISTEN; do
    tries=$((tries + 1))
    [ $tries -lt 500 ] || { echo "nothing listens on $port in $ns" >&2; exit 1; }
    sleep 0.01
  done
}

# Starts a server in the background of this shell (never inside $(...), whose output pipe a
# server would hold open), remembered for cleanup, and waits until it listens.
serve() {
  local ns=$1 port=$2; shift 2
  # nsenter itself, not the in_ns function: a backgrounded function is a subshell, and
  # killing it would leave the server running.
  nsenter --net="$ns" "$@" >/dev/null 2>&1 &
  pids+=($!)
  wait_listen "$ns" "$port"
}

# iperf3 from CLIENT_NS to ADDR:PORT, with a one-shot server in SERVER_NS; sets $gbit.
iperf() {
  local server_ns=$1 client_ns=$2 addr=$3 port=$4 server_port=${5:-5201}
  serve "$server_ns" "$server_port" iperf3 -s -1 -p "$server_port"
  gbit=$(in_ns "$client_ns" iperf3 -c "$addr" -p "$port" -t "$secs" -J |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))')
}

# Connections per second from CLIENT_NS to ADDR (port 5202 in SERVER_NS); sets $rate.
connrate() {
  local server_ns=$1 client_ns=$2 addr=$3
  serve "$server_ns" 5202 "$netbench" accept 0.0.0.0:5202
  local out
  out=$(in_ns "$client_ns" "$netbench" connect "$addr" "$secs")  # conn_per_s=N failed_after=M|-
  rate=$(echo "$out" | sed -E 's/conn_per_s=([0-9.]+) failed_after=(.*)/\1:\2/')
  kill "${pids[-1]}"
}

new_ns() { ip netns add "$1"; nsenter --net="/run/netns/$1" ip link set lo up; }

echo "== setting up berth, dockerd and the loopback namespace" >&2
new_ns "$loop_ns"
loop=/run/netns/$loop_ns

new_ns "$berth_ns"
bhost=/run/netns/$berth_ns
mkdir -p "$work/berth"
eval "$(in_ns "$bhost" "$netbench" setup "$work/berth")"   # sets a, b, b_ip

new_ns "$docker_ns"
dhost=/run/netns/$docker_ns
mkdir -p "$work/docker"
nsenter --net="$dhost" dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
  --pidfile "$work/docker/docker.pid" -H "unix://$docker_sock" >"$work/docker/dockerd.log" 2>&1 &
docker_pid=$!
docker() { command docker -H "unix://$docker_sock" "$@"; }
tries=0
until docker version >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ $tries -lt 600 ] || { cat "$work/docker/dockerd.log" >&2; exit 1; }
  sleep 0.1
done
scripts/busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -c . | docker import - berth-bench-busybox >/dev/null
docker network create benchnet >/dev/null
docker run -d --name ca --network benchnet berth-bench-busybox sleep 3600 >/dev/null
docker run -d --name cb --network benchnet -p 127.0.0.1:15201:5201 -p 127.0.0.1:15202:5202 \
  berth-bench-busybox sleep 3600 >/dev/null
da=/proc/$(docker inspect -f '{{.State.Pid}}' ca)/ns/net
db=/proc/$(docker inspect -f '{{.State.Pid}}' cb)/ns/net
db_ip=$(docker inspect -f '{{(index .NetworkSettings.Networks "benchnet").IPAddress}}' cb)

# Rounds interleave the parties, so that whatever else loads this shared machine falls on
# both alike; the report takes each figure's median over the rounds.
loop_gbit=() berth_bridge=() docker_bridge=() berth_pub=() docker_pub=() berth_conn=() docker_conn=()
for round in $(seq "$rounds"); do
  echo "== round $round of $rounds" >&2
  iperf "$loop" "$loop" 127.0.0.1 5201; loop_gbit+=("$gbit")
  iperf "$b" "$a" "$b_ip" 5201; berth_bridge+=("$gbit")
  iperf "$db" "$da" "$db_ip" 5201; docker_bridge+=("$gbit")
  iperf "$b" "$bhost" 127.0.0.1 15201; berth_pub+=("$gbit")
  iperf "$db" "$dhost" 127.0.0.1 15201; docker_pub+=("$gbit")
  echo "   connection rate: berth" >&2
  connrate "$b" "$bhost" 127.0.0.1:15202; berth_conn+=("$rate")
  echo "   connection rate: docker" >&2
  connrate "$db" "$dhost" 127.0.0.1:15202; docker_conn+=("$rate")
done
join=$(in_ns "$bhost" "$netbench" join "$work/berth" 100)
# Whether docker's proxy for the connection-rate port is still running after the rounds.
if pgrep -f "docker-proxy .*-host-port 15202" >/dev/null; then proxy=running; else proxy=gone; fi

list() { local IFS=,; echo "$*"; }
python3 bench/network_report.py "$secs" "$rounds" "$(list "${loop_gbit[@]}")" \
  "$(list "${berth_bridge[@]}")" "$(list "${docker_bridge[@]}")" \
  "$(list "${berth_pub[@]}")" "$(list "${docker_pub[@]}")" \
  "$(list "${berth_conn[@]}")" "$(list "${docker_conn[@]}")" "$join" \
  "$(uname -r)" "$(nproc)" "$(iperf3 --version | head -1)" "$(dockerd --version)" "$proxy" |
  python3 bench/section.py network docs/benchmarks.md
echo "wrote the network section of docs/benchmarks.md" >&2
