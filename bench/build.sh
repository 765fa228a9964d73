#!/usr/bin/env bash
# Dockerfile builds, berth daemon against dockerd's classic builder (DOCKER_BUILDKIT=0), driven
# by the same docker CLI in the same run; writes the "build" section of docs/benchmarks.md.
#
# The same 12-step Dockerfile (RUN and COPY steps on the busybox base) and a 50 MB context
# (random bytes, so nothing compresses it away) for both; each daemon in a network namespace
# of its own, with its own root. Measured with hyperfine, engines interleaved in each call:
#   cold:   `docker build --no-cache` (every step runs; the base image is present);
#   cached: `docker build` of the unchanged context (every step from the cache).
#
#   bench/build.sh [COLD_RUNS] [CACHED_RUNS]     (default: 5 and 15)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
cold_runs=${1:-5}
cached_runs=${2:-15}
for tool in docker dockerd hyperfine unshare python3 busybox curl; do
  command -v "$tool" >/dev/null || { echo "build: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
cargo build --release -p berth-cli -p berth-engine --bins >&2
# Where .cargo/config.toml has cargo put the binaries.
target=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu
berth=$target/release/berth

# The classic builder, for both daemons, whichever way the docker CLI is called.
export DOCKER_BUILDKIT=0
D=$(mktemp -d /tmp/berth-build-bench.XXXXXX)
out=$D/results
mkdir -p "$out" "$D/ctx"
bench=build
# shellcheck source=bench/daemons.sh
. bench/daemons.sh
start_daemons
import_busybox
echo "== the context" >&2
head -c 50M /dev/urandom >"$D/ctx/blob.bin"
mkdir -p "$D/ctx/src"
for i in $(seq 20); do echo "source $i" >"$D/ctx/src/f$i.txt"; done
cat >"$D/ctx/Dockerfile" <<'DF'
FROM busybox
ARG VERSION=1
ENV APP_HOME=/app VERSION=$VERSION
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt > all.txt && wc -l all.txt
COPY blob.bin /data/blob.bin
RUN sha256sum /data/blob.bin > /data/blob.sum
RUN echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd && chown -R 1000 /app
EXPOSE 8080
USER 1000
CMD ["cat", "/app/all.txt"]
DF

build() { echo "docker -H unix://$D/$1.sock build $2 -q -t bench:1 $D/ctx"; }
# Each engine builds once first, so the cached runs have a cache and the check below
# has an image.
for engine in berth docker; do dk "$engine" build -q -t bench:1 "$D/ctx" >/dev/null; done
for engine in berth docker; do
  got=$(dk "$engine" run --rm bench:1 | wc -l)
  [ "$got" = 20 ] || { echo "build: $engine's image printed $got lines, not 20" >&2; exit 1; }
done

echo "== cold builds (--no-cache), $cold_runs runs each" >&2
hyperfine -N --warmup 1 --runs "$cold_runs" --export-json "$out/cold.json" \
  -n berth "$(build berth --no-cache)" -n docker "$(build docker --no-cache)" >&2
echo "== cached rebuilds, $cached_runs runs each" >&2
hyperfine -N --warmup 2 --runs "$cached_runs" --export-json "$out/cached.json" \
  -n berth "$(build berth "")" -n docker "$(build docker "")" >&2

python3 bench/build_report.py "$out" "$cold_runs" "$cached_runs" "$(uname -r)" "$(nproc)" \
  "$(dockerd --version)" "$(docker --version)" "$(hyperfine --version)" \
  "$(git rev-parse --short HEAD)" |
  python3 bench/section.py build docs/benchmarks.md
echo "wrote the build section of docs/benchmarks.md" >&2
