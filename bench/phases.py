"""Where berth-runtime's `run` spends its time: runs it N times with --debug and averages the
gaps between the phase marks it logs. Prints a markdown table.

    python3 bench/phases.py BERTH_RUNTIME BUNDLE [RUNS]
"""
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

PHASES = [
    ("runtime started", "the caller's fork and exec, the exe guard's re-exec, command line and log set up"),
    ("bundle checked", "config.json read, parsed and validated, seccomp compiled"),
    ("init cloned", "state directory claimed and saved, clone3 into the new namespaces"),
    ("cgroup made, init placed in it", "parent: cgroup directories, limits, device rules, the child's pid in every hierarchy; meanwhile the child mounts its root"),
    ("init's namespaces and mounts are ready", "child: the rest of its mounts, /dev; runtime hooks point"),
    ("init pivoted and configured", "child: pivot_root, sysctls, masked and read-only paths, identity, capabilities"),
    ("container created", "state saved with the init's pid"),
    ("container started", "start signalled"),
    ("container exited", "exec of /bin/true, its run and exit, namespace teardown"),
    ("container deleted", "cgroup directories removed, state removed"),
]


def stamp(line):
    ts = line.split()[0].rstrip("Z")
    whole, frac = ts.split(".")
    t = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + frac)


def one_run(binary, bundle, root, log):
    if os.path.exists(log):
        os.unlink(log)
    start = time.time()
    subprocess.run([binary, "--root", root, "--debug", "--log", log, "run", "--bundle", bundle,
                    "phases"], check=True, stdout=subprocess.DEVNULL)
    end = time.time()
    marks = {}
    for line in open(log):
        for name, _ in PHASES:
            if line.rstrip().endswith(name) or f" {name} pid=" in line:
                marks[name] = stamp(line)
    gaps, prev = [], start
    for name, _ in PHASES:
        gaps.append(marks[name] - prev)
        prev = marks[name]
    gaps.append(end - prev)
    return gaps


def main():
    binary, bundle = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    with tempfile.TemporaryDirectory() as tmp:
        samples = [one_run(binary, bundle, f"{tmp}/root", f"{tmp}/log") for _ in range(runs)]
    medians = [statistics.median(col) * 1000 for col in zip(*samples)]
    rows = PHASES + [("(process exit)", "runtime returns the exit code")]
    print("| phase ends at | what happens in it | median ms |")
    print("|---|---|---:|")
    for (name, what), ms in zip(rows, medians):
        print(f"| {name} | {what} | {ms:.2f} |")
    print(f"| **total** | | **{sum(medians):.2f}** |")


main()
