#!/usr/bin/env bash
# Times `run` of /bin/true from one busybox bundle with berth-runtime and its peers, in the same
# run, and writes the "runtime" section of docs/benchmarks.md with the figures and the ratios.
#
# This host has hybrid cgroups, on which crun 1.8 cannot run; it runs once /sys/fs/cgroup/unified
# is unmounted in a private mount namespace. So there are two rounds, each compared within
# itself: (1) the host as it is: berth-runtime, runc and bare unshare;
# (2) inside a private mount namespace without the unified hierarchy: the same plus crun.
# Each set is measured in ROUNDS rounds that interleave the runtimes, each round starting
# with the next one: a runtime measured right after hundreds of network namespaces were made
# pays for the kernel's deferred teardown of them, so no runtime may always come first.
#
#   bench/runtime-start.sh [RUNS] [ROUNDS]      (default 200 runs each, in 4 rounds)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
runs=${1:-200}
nrounds=${2:-4}
scripts/deps.sh
cargo build --release -p berth-runtime-cli >/dev/null
berth=$PWD/target/x86_64-unknown-linux-gnu/release/berth-runtime

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
  for rt in "$berth" runc crun; do
    "$rt" --root "$work/state-$(basename "$rt")" delete -f bench >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
scripts/busybox-bundle.sh "$work/bundle" "$berth" /bin/true

# One command per runtime, each with its own state root; `run` creates, starts, waits, deletes.
cmd() { echo "$1 --root $work/state-$(basename "$1") run --bundle $work/bundle bench"; }
# rounds SET NAME CMD [NAME CMD ...]: ROUNDS rounds of runs/ROUNDS runs of each command,
# round r starting with the r-th command; hyperfine's JSON in $work/SET-ROUND-NAME.json.
rounds() {
  local set=$1; shift
  local names=() cmds=()
  while [ $# -gt 0 ]; do names+=("$1"); cmds+=("$2"); shift 2; done
  local n=${#names[@]} per=$(( (runs + nrounds - 1) / nrounds ))
  for ((r = 0; r < nrounds; r++)); do
    for ((k = 0; k < n; k++)); do
      local i=$(( (r + k) % n ))
      hyperfine --shell=none --warmup 5 --runs "$per" \
        --export-json "$work/$set-$r-${names[$i]// /_}.json" \
        -n "${names[$i]}" "${cmds[$i]}" >&2
    done
  done
}

unshare_cmd="unshare --mount --uts --ipc --net --pid --fork /bin/true"
rounds host berth-runtime "$(cmd "$berth")" runc "$(cmd runc)" \
  "unshare (5 namespaces)" "$unshare_cmd"

export -f rounds cmd
export work runs nrounds berth unshare_cmd
unshare --mount --propagation private bash -c '
  umount /sys/fs/cgroup/unified
  rounds nounified berth-runtime "$(cmd "$berth")" runc "$(cmd runc)" crun "$(cmd crun)" \
    "unshare (5 namespaces)" "$unshare_cmd"'

python3 bench/phases.py "$berth" "$work/bundle" 100 > "$work/phases.md"
python3 bench/report.py "$work" "$(uname -r)" "$(nproc)" "$runs" "$nrounds" "$work/phases.md" |
  python3 bench/section.py runtime docs/benchmarks.md
echo "wrote the runtime section of docs/benchmarks.md" >&2
