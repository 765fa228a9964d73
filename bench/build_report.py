"""The "build" section of docs/benchmarks.md from bench/build.sh's hyperfine results.

    python3 bench/build_report.py RESULTS COLD_RUNS CACHED_RUNS KERNEL CPUS DOCKERD DOCKER HYPERFINE COMMIT
"""
import json
import statistics
import sys


def times(path):
    with open(path) as f:
        results = json.load(f)["results"]
    return {r["command"]: r["times"] for r in results}


def row(label, t):
    b, d = statistics.median(t["berth"]), statistics.median(t["docker"])
    return (f"| {label} | {b * 1000:.0f} ms | {d * 1000:.0f} ms | {b / d:.2f} |")


def main():
    out, cold_runs, cached_runs, kernel, cpus, dockerd, docker, hyperfine, commit = sys.argv[1:10]
    cold, cached = times(f"{out}/cold.json"), times(f"{out}/cached.json")
    print("## Build: a Dockerfile, berth against dockerd's classic builder\n")
    print(f"`bench/build.sh {cold_runs} {cached_runs}` at {commit}: the same 12-step Dockerfile "
          "(RUN and COPY steps on the busybox base) and a 50 MB context, built through the same "
          "docker CLI with `DOCKER_BUILDKIT=0` against each daemon, each in a network namespace "
          "of its own. Medians of hyperfine runs; the ratio is berth / docker (below 1: berth "
          "is faster).\n")
    print("| build | berth | docker | ratio |")
    print("|---|---|---|---|")
    print(row(f"cold (`--no-cache`, {cold_runs} runs)", cold))
    print(row(f"fully cached ({cached_runs} runs)", cached))
    print(f"\nGoals: cold at most half of docker's time (ratio ≤ 0.5); a cached rebuild faster "
          f"than docker's (ratio < 1).\n")
    print(f"Machine: Linux {kernel}, {cpus} CPUs; {dockerd}; {docker}; {hyperfine}.")


if __name__ == "__main__":
    main()
