#!/usr/bin/env bash
# The whole engine, berth daemon against dockerd (with its containerd and runc), driven by the
# same docker CLI in the same run; writes the "engine" section of docs/benchmarks.md.
#
# Both daemons run with every feature on (dockerd's default bridge and iptables; berth's
# bridge and nftables), each in a fresh network namespace of its own, so neither's bridge nor
# firewall rules meet the other's or the machine's. Both get the same busybox image, imported
# from the same tar. In each round, for each engine:
#   1. `docker run --rm busybox true` on the default bridge (hyperfine, RUNS runs), and for
#      berth also its own CLI's `berth run --rm busybox true` (the issue's goal is stated for
#      berth's command; the docker CLI on both is the like-for-like comparison of the engines);
#   2. the same with `--network none`;
#   3. 20 parallel `docker run -d busybox sleep 600`, wall time until all 20 have returned;
#   4. idle memory with those 20 running: the shims' RSS and PSS, the daemons' RSS and PSS;
#   5. `docker rm -f` of the 20 in one command, wall time.
# Rounds interleave the engines (and alternate which goes first), so that whatever else loads
# this shared machine falls on both alike.
#
#   bench/engine.sh [ROUNDS] [RUNS]      (default: 3 rounds, 20 runs per round)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
rounds=${1:-3}
runs=${2:-20}
parallel=20
for tool in docker dockerd containerd hyperfine unshare python3 busybox; do
  command -v "$tool" >/dev/null || { echo "engine: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
cargo build --release -p berth-cli -p berth-engine --bins >&2
# Where .cargo/config.toml has cargo put the binaries.
target=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu
berth=$target/release/berth
[ -x "$target/release/berth-shim" ] || { echo "engine: $target/release/berth-shim is missing" >&2; exit 1; }

D=$(mktemp -d /tmp/berth-engine-bench.XXXXXX)
out=$D/results
mkdir -p "$out"
bench=engine
# shellcheck source=bench/daemons.sh
. bench/daemons.sh
start_daemons
import_busybox

# Both engines' `run --rm` in one hyperfine call, ORDER first. On a failure, shows the failing
# command's own error and the berth daemon's log, then stops.
timed_runs() {
  local name=$1 round=$2 order=$3; shift 3
  local args=()
  for engine in $order; do
    args+=(-n "$engine" "docker -H unix://$D/$engine.sock run --rm $* busybox true")
    if [ "$engine" = berth ]; then
      args+=(-n berth-cli "$berth -H unix://$D/berth.sock run --rm $* busybox true")
    fi
  done
  if ! hyperfine -N --warmup 2 --runs "$runs" --export-json "$out/$name-$round.json" "${args[@]}" >&2; then
    for engine in $order; do
      echo "== once more by hand: $engine, docker run --rm $* busybox true" >&2
      dk "$engine" run --rm "$@" busybox true >&2 || true
    done
    echo "== the berth daemon's log, last lines" >&2
    tail -n 40 "$D/berth.log" >&2
    exit 1
  fi
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

# 20 parallel `run -d ... sleep 600`: wall time, failures with their error text, the ids.
parallel_runs() {
  local engine=$1 round=$2 i start end failed=0
  local dir=$out/par-$engine-$round
  mkdir -p "$dir"
  local pids=()
  start=$EPOCHREALTIME
  for i in $(seq "$parallel"); do
    dk "$engine" run -d busybox sleep 600 >"$dir/$i.id" 2>"$dir/$i.err" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      failed=$((failed + 1))
      printf '%s\tround %s\tdocker run -d busybox sleep 600 (%s of %s)\t%s\n' "$engine" "$round" \
        $((i + 1)) "$parallel" "$(tr '\n' ' ' <"$dir/$((i + 1)).err")" >>"$out/failures.tsv"
    fi
  done
  end=$EPOCHREALTIME
  printf '%s\t%s\t%s\t%s\n' "$engine" "$round" "$(elapsed "$start" "$end")" "$failed" >>"$out/parallel.tsv"
}

# One `rm -f` of every container the round left (the 20, and any a failed run left behind).
remove_all() {
  local engine=$1 round=$2 ids start end status=0
  ids=$(dk "$engine" ps -aq | tr '\n' ' ')
  start=$EPOCHREALTIME
  # shellcheck disable=SC2086
  dk "$engine" rm -f $ids >/dev/null 2>"$out/rm.err" || status=$?
  end=$EPOCHREALTIME
  if [ "$status" -ne 0 ]; then
    printf '%s\tround %s\tdocker rm -f (%s ids)\t%s\n' "$engine" "$round" "$(wc -w <<<"$ids")" \
      "$(tr '\n' ' ' <"$out/rm.err")" >>"$out/failures.tsv"
  fi
  local left
  left=$(dk "$engine" ps -aq | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$engine" "$round" "$(elapsed "$start" "$end")" \
    "$(wc -w <<<"$ids")" "$left" >>"$out/remove.tsv"
  [ "$left" -eq 0 ] || dk "$engine" ps -aq | xargs -r docker -H "unix://$D/$engine.sock" rm -f >/dev/null 2>&1 || true
}

# Idle memory with the 20 running: the engine's shims (only ours: their command lines name D)
# and its daemons.
memory() {
  local engine=$1 round=$2 shims
  sleep 2  # let the containers and shims settle into idle
  if [ "$engine" = berth ]; then
    shims=$(pgrep -f "berth-shim .*$D/" | tr "\n" , || true)
    python3 bench/engine_report.py mem "$engine" "$round" "${shims%,}" "berth=$berth_pid" >>"$out/memory.jsonl"
  else
    shims=$(pgrep -f "containerd-shim-runc-v2 .*$D/" | tr "\n" , || true)
    python3 bench/engine_report.py mem "$engine" "$round" "${shims%,}" \
      "dockerd=$docker_pid" "containerd=$containerd_pid" >>"$out/memory.jsonl"
  fi
}

touch "$out/failures.tsv"
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="berth docker"; else order="docker berth"; fi
  echo "== round $round of $rounds ($order)" >&2
  timed_runs bridge "$round" "$order"
  timed_runs none "$round" "$order" --network none
  for engine in $order; do
    echo "   $parallel parallel run -d, memory, rm -f: $engine" >&2
    parallel_runs "$engine" "$round"
    memory "$engine" "$round"
    remove_all "$engine" "$round"
  done
done

# The berth daemon's warnings and errors over the whole run, for the report.
grep -E ' (WARN|ERROR) ' "$D/berth.log" | tail -n 20 >"$out/berth-log.txt" || true

python3 bench/engine_report.py report "$out" "$rounds" "$runs" "$parallel" \
  "$(uname -r)" "$(nproc)" "$(dockerd --version)" "$(containerd --version)" \
  "$(runc --version | head -1)" "$(docker --version)" "$(hyperfine --version)" \
  "$(git rev-parse --short HEAD)" |
  python3 bench/section.py engine docs/benchmarks.md
if [ -s "$out/failures.tsv" ]; then
  echo "== failures:" >&2
  cat "$out/failures.tsv" >&2
  echo "== the berth daemon's warnings and errors:" >&2
  cat "$out/berth-log.txt" >&2
fi
echo "wrote the engine section of docs/benchmarks.md" >&2
