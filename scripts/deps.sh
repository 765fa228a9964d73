#!/usr/bin/env bash
# Installs what berth's build, tests, demo and benchmarks need on a fresh Debian machine.
# Idempotent and quick when everything is already there.
set -euo pipefail

packages=(
  busybox-static      # the test and demo root filesystem
  libseccomp-dev      # seccomp profiles compiled by libseccomp
  pkg-config
  iproute2            # tests create network namespaces and links to check isolation
  util-linux          # unshare, nsenter for tests and the crun benchmark
  runc crun           # peers in the benchmark
  podman              # drives berth-runtime through its OCI command line in a test
  docker.io           # dockerd + containerd drive berth-runtime (--add-runtime) in a test
  hyperfine           # times the benchmark runs
  nftables            # nft: berth's firewall table (published ports, NAT, isolation)
  iperf3              # network throughput benchmark
  containernetworking-plugins  # CNI plugins (bridge, host-local, portmap) for custom networks
  iptables            # what those CNI plugins program
  docker-registry     # a local registry for image pull/push tests
  skopeo umoci        # peers that read and write berth's image archives in tests
  debootstrap curl    # the image benchmark's Debian root filesystem, registry readiness
  openssl             # certificates for the TLS-over-TCP test of berth daemon
  systemd dbus        # the machine-container test boots this systemd (the host's /usr) as PID 1
  python3
  python3-docker      # docker-py, a client in the client compatibility tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: this machine kind ships Rust via rustup; install it first" >&2
  exit 1
fi
