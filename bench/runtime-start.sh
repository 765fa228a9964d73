#!/usr/bin/env bash
# Times `run` of /bin/true from one busybox bundle with berth-runtime and its peers, in the same
# run, and writes the "runtime" section of docs/benchmarks.md with the figures and the ratios.
#
# This host has hybrid cgroups, on which crun 1.8 cannot run; it runs once /sys/fs/cgroup/unified
# is unmounted in a private mount namespace. So there are two rounds, each compared within
# itself: (1) the host as it is: berth-runtime, runc and bare unshare;
# (2) inside a private mount namespace without the unified hierarchy: the same plus crun.
#
#   bench/runtime-start.sh [RUNS]        (default 200 runs each)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
runs=${1:-200}
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
round() {
  local name=$1; shift
  hyperfine --shell=none --warmup 10 --runs "$runs" --export-json "$work/$name.json" "$@" >&2
}

unshare_cmd="unshare --mount --uts --ipc --net --pid --fork /bin/true"
round host -n berth-runtime "$(cmd "$berth")" -n runc "$(cmd runc)" \
  -n "unshare (5 namespaces)" "$unshare_cmd"

# Round 2 runs hyperfine itself inside a private mount namespace without cgroup2.
export -f round cmd
export work runs berth unshare_cmd
unshare --mount --propagation private bash -c '
  umount /sys/fs/cgroup/unified
  round nounified -n berth-runtime "$(cmd "$berth")" -n runc "$(cmd runc)" -n crun "$(cmd crun)" \
    -n "unshare (5 namespaces)" "$unshare_cmd"'

python3 bench/phases.py "$berth" "$work/bundle" 100 > "$work/phases.md"
python3 bench/report.py "$work/host.json" "$work/nounified.json" \
  "$(uname -r)" "$(nproc)" "$runs" "$work/phases.md" |
  python3 bench/section.py runtime docs/benchmarks.md
echo "wrote the runtime section of docs/benchmarks.md" >&2
