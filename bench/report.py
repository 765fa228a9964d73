"""Renders hyperfine's JSON from bench/runtime-start.sh as docs/benchmarks.md."""
import datetime
import glob
import json
import os
import statistics
import subprocess
import sys


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def load(work, set_name):
    """Every round's runs of each command of one set: {name: [[seconds, ...] per round]}."""
    rounds = {}
    for path in sorted(glob.glob(os.path.join(work, f"{set_name}-*.json"))):
        for r in json.load(open(path))["results"]:
            rounds.setdefault(r["command"], []).append(r["times"])
    return rounds


def table(work, set_name, reference):
    rounds = load(work, set_name)
    median = {name: statistics.median(sum(rs, [])) for name, rs in rounds.items()}
    berth = median["berth-runtime"]
    lines = [
        "| runtime | median ms | mean ± σ ms | min ms | berth-runtime ÷ this |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rs in rounds.items():
        times = sum(rs, [])
        lines.append(
            f"| {name} | {median[name] * 1000:.2f} | "
            f"{statistics.mean(times) * 1000:.2f} ± {statistics.stdev(times) * 1000:.2f} | "
            f"{min(times) * 1000:.2f} | {berth / median[name]:.2f} |"
        )
    per_round = [
        statistics.median(b) / statistics.median(r)
        for b, r in zip(rounds["berth-runtime"], rounds[reference])
    ]
    return "\n".join(lines), berth / median[reference], per_round


def main():
    work, kernel, cores, runs, nrounds, phases = sys.argv[1:7]
    host_table, vs_runc, runc_rounds = table(work, "host", "runc")
    nu_table, vs_crun, crun_rounds = table(work, "nounified", "crun")
    span = lambda rs: f"{min(rs):.2f}–{max(rs):.2f}"
    today = datetime.date.today().isoformat()
    print(f"""Measured by `bench/runtime-start.sh` on {today}: Linux {kernel}, {cores} cores, a shared and
noisy VM, so only ratios within one run mean anything. Each row is {runs} runs of
`RUNTIME run --bundle B bench` (create, start, wait, delete) of `/bin/true` from the same
busybox bundle with berth-runtime's default config (pid, net, ipc, uts, mount namespaces; a
memory-free default cgroup; the default mounts, masked and read-only paths), timed by hyperfine
without a shell, in {nrounds} rounds that interleave the runtimes (each round starts with the next
one, so none always follows the teardown of the previous one's namespaces). Medians are over
all runs; the last column is berth-runtime's median divided by the row's median: below 1.0,
berth-runtime is faster.

Versions: {version(["runc", "--version"])}; {version(["crun", "--version"])};
{version(["hyperfine", "--version"])}.

## Container start: the host as it is (hybrid cgroups)

{host_table}

berth-runtime ÷ runc = **{vs_runc:.2f}** (per round: {span(runc_rounds)}).

youki (0.7.0, built from crates.io with `--features v1`) is not in the automatic rounds: in
one of about 400 runs here it hung for good in `sigtimedwait` with its container's process
unreaped, and a benchmark must finish. In the one complete round it ran (2026-11-24, this
machine, same method) its median was 23.6 ms against berth-runtime's 10.1 ms (ratio 0.43).

## Container start: private mount namespace without cgroup2 (so crun can run)

crun 1.8 fails on this hybrid host; here /sys/fs/cgroup/unified is unmounted in a private mount
namespace in which hyperfine runs every runtime.

{nu_table}

berth-runtime ÷ crun = **{vs_crun:.2f}** (per round: {span(crun_rounds)}).
""")
    sys.stdout.write(open("bench/where-time-goes.md").read().replace("{phases}", open(phases).read()))


main()
