"""Renders hyperfine's JSON from bench/runtime-start.sh as docs/benchmarks.md."""
import datetime
import json
import subprocess
import sys


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def table(path, reference):
    results = json.load(open(path))["results"]
    by_name = {r["command"]: r for r in results}
    ref = by_name[reference]["median"]
    berth = by_name["berth-runtime"]["median"]
    lines = [
        "| runtime | median ms | mean ± σ ms | min ms | berth-runtime ÷ this |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['command']} | {r['median'] * 1000:.2f} | "
            f"{r['mean'] * 1000:.2f} ± {r['stddev'] * 1000:.2f} | "
            f"{r['min'] * 1000:.2f} | {berth / r['median']:.2f} |"
        )
    return "\n".join(lines), berth / ref


def main():
    host, nounified, kernel, cores, runs, phases = sys.argv[1:7]
    host_table, vs_runc = table(host, "runc")
    nu_table, vs_crun = table(nounified, "crun")
    today = datetime.date.today().isoformat()
    print(f"""Measured by `bench/runtime-start.sh` on {today}: Linux {kernel}, {cores} cores, a shared and
noisy VM, so only ratios within one round mean anything. Each row is {runs} runs of
`RUNTIME run --bundle B bench` (create, start, wait, delete) of `/bin/true` from the same
busybox bundle with berth-runtime's default config (pid, net, ipc, uts, mount namespaces; a
memory-free default cgroup; the default mounts, masked and read-only paths), timed by hyperfine
without a shell. The last column is berth-runtime's median divided by the row's median: below
1.0, berth-runtime is faster.

Versions: {version(["runc", "--version"])}; {version(["crun", "--version"])};
{version(["hyperfine", "--version"])}.

## Container start: the host as it is (hybrid cgroups)

{host_table}

berth-runtime ÷ runc = **{vs_runc:.2f}**.

youki (0.7.0, built from crates.io with `--features v1`) is not in the automatic rounds: in
one of about 400 runs here it hung for good in `sigtimedwait` with its container's process
unreaped, and a benchmark must finish. In the one complete round it ran (2026-11-24, this
machine, same method) its median was 23.6 ms against berth-runtime's 10.1 ms (ratio 0.43).

## Container start: private mount namespace without cgroup2 (so crun can run)

crun 1.8 fails on this hybrid host; here /sys/fs/cgroup/unified is unmounted in a private mount
namespace in which hyperfine runs every runtime.

{nu_table}

berth-runtime ÷ crun = **{vs_crun:.2f}**.
""")
    sys.stdout.write(open("bench/where-time-goes.md").read().replace("{phases}", open(phases).read()))


main()
