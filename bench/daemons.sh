# berth daemon and dockerd side by side for a benchmark, each in a network namespace and
# directories of its own under $D; sourced by bench/engine.sh and bench/build.sh, which set
# D (a fresh directory), berth (the binary) and bench (their name, for messages) first.
# `start_daemons` starts both and waits for them; the EXIT trap stops both and removes
# everything under $D.

berth_pid= docker_pid= containerd_pid=

# docker CLI against one engine: `dk berth ...` or `dk docker ...`.
dk() { local engine=$1; shift; command docker -H "unix://$D/$engine.sock" "$@"; }

# Stops a daemon: its containers first (berth's outlive its daemon), then SIGTERM and wait.
stop_daemon() {
  local engine=$1 pid=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  dk "$engine" ps -aq 2>/dev/null | xargs -r timeout 120 docker -H "unix://$D/$engine.sock" rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_daemon berth "$berth_pid"
  stop_daemon docker "$docker_pid"   # dockerd stops its containerd and unmounts its own
  # Anything of ours still running (a shim whose container was never removed).
  local p
  for p in $(pgrep -f "(berth-shim|containerd-shim-runc-v2) .*$D/"); do kill -KILL "$p" 2>/dev/null || true; done
  # Whatever is still mounted under D, deepest first.
  awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$D"
}
trap cleanup EXIT

# Fails with the daemon's log when it does not answer /_ping within 30 s.
wait_ping() {
  local engine=$1 pid=$2
  for _ in $(seq 1 300); do
    curl -fs --unix-socket "$D/$engine.sock" http://localhost/_ping >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1  # pacing between readiness polls
  done
  echo "$bench: $engine did not answer /_ping; its log:" >&2
  tail -n 40 "$D/$engine.log" >&2
  exit 1
}

# Starts both daemons. `unshare --net` (without --fork) and bash's `exec` keep one pid, so
# $! is the daemon itself. (This function must be called, not backgrounded: a backgrounded
# function is a subshell of its own and its $! would not reach the caller.)
start_daemons() {
  echo "== starting berth daemon and dockerd, each in a network namespace of its own" >&2
  mkdir -p "$D/berth" "$D/docker"
  local new_netns=(unshare --net bash -c 'ip link set lo up && exec "$@"' new-netns)
  "${new_netns[@]}" "$berth" daemon --root "$D/berth/root" --run-root "$D/berth/run" \
    --socket "$D/berth.sock" >"$D/berth.log" 2>&1 &
  berth_pid=$!
  echo '{}' >"$D/daemon.json"
  "${new_netns[@]}" dockerd --data-root "$D/docker/root" --exec-root "$D/docker/exec" \
    -H "unix://$D/docker.sock" --pidfile "$D/docker.pid" --config-file "$D/daemon.json" \
    >"$D/docker.log" 2>&1 &
  docker_pid=$!
  wait_ping berth "$berth_pid"
  wait_ping docker "$docker_pid"
  containerd_pid=$(pgrep -P "$docker_pid" -x containerd)
}

# The same busybox image (scripts/busybox-rootfs.sh) imported into both as `busybox`.
import_busybox() {
  echo "== importing the same busybox into both" >&2
  scripts/busybox-rootfs.sh "$D/rootfs" >/dev/null
  tar -C "$D/rootfs" -cf "$D/busybox.tar" .
  local engine
  for engine in berth docker; do dk "$engine" import - busybox <"$D/busybox.tar" >/dev/null; done
}
