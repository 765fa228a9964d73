"""bench/engine.sh's helper: samples memory, and renders the engine section of
docs/benchmarks.md.

    python3 bench/engine_report.py mem ENGINE ROUND SHIM_PIDS NAME=PID...   (one JSON line)
    python3 bench/engine_report.py report DIR ROUNDS RUNS PARALLEL KERNEL CORES VERSIONS...
"""
import datetime
import json
import os
import statistics
import sys

MIB = 1024  # /proc reports kB


def proc_kb(pid, path, field):
    """A `Field:   N kB` line of /proc/PID/PATH, in kB."""
    with open(f"/proc/{pid}/{path}") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/{path}")


def sample(pid):
    return {"pid": int(pid), "rss": proc_kb(pid, "status", "VmRSS"),
            "pss": proc_kb(pid, "smaps_rollup", "Pss")}


def mem(engine, round_, shims, *daemons):
    pids = [p for p in shims.split(",") if p]
    print(json.dumps({
        "engine": engine, "round": int(round_),
        "shims": [sample(p) for p in pids],
        "daemons": {name: sample(pid) for name, pid in (d.split("=") for d in daemons)},
    }))


def tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def report(out, rounds, runs, parallel, kernel, cores, dockerd, containerd, runc, cli, hyperfine, rev):
    rounds, runs, parallel = int(rounds), int(runs), int(parallel)
    med = statistics.median

    # run --rm: every run of every round pooled, and each round's ratio of medians.
    runrm = {}
    # "berth-cli" is berth's own CLI against the berth daemon; the others use docker's CLI.
    cli_ratios = {}
    for name in ("bridge", "none"):
        times = {"berth": [], "berth-cli": [], "docker": []}
        ratios, own = [], []
        for r in range(1, rounds + 1):
            with open(os.path.join(out, f"{name}-{r}.json")) as f:
                res = {x["command"]: x["times"] for x in json.load(f)["results"]}
            for engine in times:
                times[engine] += res[engine]
            ratios.append(med(res["berth"]) / med(res["docker"]))
            own.append(med(res["berth-cli"]) / med(res["docker"]))
        runrm[name] = (med(times["berth"]) * 1e3, med(times["docker"]) * 1e3, min(ratios), max(ratios),
                       med(times["berth-cli"]) * 1e3)
        cli_ratios[name] = (min(own), max(own))

    par = {e: [float(r[2]) for r in tsv(os.path.join(out, "parallel.tsv")) if r[0] == e] for e in ("berth", "docker")}
    par_failed = {e: sum(int(r[3]) for r in tsv(os.path.join(out, "parallel.tsv")) if r[0] == e) for e in par}
    rm = {e: [float(r[2]) for r in tsv(os.path.join(out, "remove.tsv")) if r[0] == e] for e in par}
    rm_left = {e: sum(int(r[4]) for r in tsv(os.path.join(out, "remove.tsv")) if r[0] == e) for e in par}

    with open(os.path.join(out, "memory.jsonl")) as f:
        samples = [json.loads(line) for line in f if line.strip()]

    def mem_med(engine, fn):
        vals = [fn(s) for s in samples if s["engine"] == engine]
        vals = [v for v in vals if v is not None]
        return med(vals) / MIB if vals else float("nan")

    def per_shim(key):
        return lambda s: sum(x[key] for x in s["shims"]) / len(s["shims"]) if s["shims"] else None

    def all_shims(key):
        return lambda s: sum(x[key] for x in s["shims"])

    def daemons(key, names=None):
        return lambda s: sum(v[key] for n, v in s["daemons"].items() if names is None or n in names)

    shim_counts = {e: sorted({len(s["shims"]) for s in samples if s["engine"] == e}) for e in par}

    rows = []  # (measure, berth, docker, unit format)

    def row(label, b, d, fmt):
        ratio = f"{b / d:.2f}" if d else "n/a"
        rows.append(f"| {label} | {fmt.format(b)} | {fmt.format(d)} | {ratio} |")

    row("`docker run --rm busybox true`, default bridge (ms)", runrm["bridge"][0], runrm["bridge"][1], "{:.1f}")
    row("`docker run --rm --network none busybox true` (ms)", runrm["none"][0], runrm["none"][1], "{:.1f}")
    row("`berth run --rm busybox true` (berth's CLI; docker's for docker), default bridge (ms)",
        runrm["bridge"][4], runrm["bridge"][1], "{:.1f}")
    row("`berth run --rm --network none busybox true` (berth's CLI; docker's for docker) (ms)",
        runrm["none"][4], runrm["none"][1], "{:.1f}")
    row(f"{parallel} parallel `docker run -d busybox sleep 600`, wall (s)", med(par["berth"]), med(par["docker"]), "{:.2f}")
    row(f"`docker rm -f` of the {parallel}, one command, wall (s)", med(rm["berth"]), med(rm["docker"]), "{:.2f}")
    row("shim RSS per container (MiB)", mem_med("berth", per_shim("rss")), mem_med("docker", per_shim("rss")), "{:.2f}")
    row("shim PSS per container (MiB)", mem_med("berth", per_shim("pss")), mem_med("docker", per_shim("pss")), "{:.2f}")
    row(f"shims' RSS, all {parallel} (MiB)", mem_med("berth", all_shims("rss")), mem_med("docker", all_shims("rss")), "{:.1f}")
    row(f"shims' PSS, all {parallel} (MiB)", mem_med("berth", all_shims("pss")), mem_med("docker", all_shims("pss")), "{:.1f}")
    row("daemon RSS: berth daemon; dockerd + containerd (MiB)", mem_med("berth", daemons("rss")), mem_med("docker", daemons("rss")), "{:.1f}")
    row("daemon PSS: berth daemon; dockerd + containerd (MiB)", mem_med("berth", daemons("pss")), mem_med("docker", daemons("pss")), "{:.1f}")

    dockerd_rss = mem_med("docker", daemons("rss", {"dockerd"}))
    containerd_rss = mem_med("docker", daemons("rss", {"containerd"}))

    # The goals, judged from this run's figures.
    shim_rss = mem_med("berth", per_shim("rss"))
    goals = [
        (f"`berth run --rm` on the bridge at most 1/10 of `docker run --rm`: berth ÷ docker = {runrm['bridge'][4] / runrm['bridge'][1]:.2f}",
         runrm["bridge"][4] <= runrm["bridge"][1] / 10),
        (f"`berth run --rm --network none` at most 1/10 of docker's: berth ÷ docker = {runrm['none'][4] / runrm['none'][1]:.2f}",
         runrm["none"][4] <= runrm["none"][1] / 10),
        (f"shim RSS under 2 MiB: {shim_rss:.2f} MiB per container", shim_rss < 2),
    ]
    goal_lines = "\n".join(f"- {text}: **{'met' if ok else 'not met'}**." for text, ok in goals)

    failures = tsv(os.path.join(out, "failures.tsv"))
    if failures:
        fail_lines = "\n".join(f"- {e}, {r}: `{cmd}`: `{err.strip()}`" for e, r, cmd, err in failures)
        fail_text = f"**Failures** in this run ({len(failures)}):\n\n{fail_lines}\n"
        log_path = os.path.join(out, "berth-log.txt")
        log = open(log_path).read().strip() if os.path.exists(log_path) else ""
        if log:
            fail_text += "\nThe berth daemon's warnings and errors (last lines):\n\n```\n" + log + "\n```\n"
    else:
        fail_text = (f"No command failed: all {rounds * parallel} parallel `run -d`s of each engine and every\n"
                     f"`run --rm` succeeded, and every `rm -f` left no container behind.\n")
    counts = {e: "/".join(map(str, c)) for e, c in shim_counts.items()}

    today = datetime.date.today().isoformat()
    print(f"""## The engine: berth daemon against dockerd

Measured by `bench/engine.sh {rounds} {runs}` on {today} (berth {rev}): Linux {kernel}, {cores} cores,
a shared and noisy VM, both engines in one run, in {rounds} rounds that interleave them (and
alternate which goes first). The same docker CLI drives both (and, in the rows so marked,
berth's own CLI drives berth), each daemon in a fresh
network namespace of its own with every feature on: berth daemon with its bridge and nftables;
dockerd with an empty config (default bridge, iptables) and its own containerd and runc.
Both run the same busybox, imported from one tar. `run --rm` is timed by hyperfine without a
shell, {runs} runs per engine per round; its figures are medians over all {rounds * runs} runs of
each engine, and the per-round ratios are given below the table. The other figures
are medians over the rounds: wall time until all {parallel} parallel `docker run -d busybox sleep 600`
have returned; then, with those {parallel} idle (2 s after), VmRSS from /proc/PID/status and
Pss from /proc/PID/smaps_rollup of the shims (berth-shim: {counts['berth']} processes;
containerd-shim-runc-v2: {counts['docker']}) and of the daemons (dockerd alone
{dockerd_rss:.1f} MiB RSS, its containerd {containerd_rss:.1f} MiB); then one `docker rm -f`
with all {parallel} ids.

Versions: {cli} (CLI); {dockerd}; {containerd}; {runc}; {hyperfine}.

| measure | berth | docker | berth ÷ docker |
|---|---:|---:|---:|
{chr(10).join(rows)}

Per-round berth ÷ docker for `run --rm`, both through docker's CLI: bridge
{runrm['bridge'][2]:.2f}–{runrm['bridge'][3]:.2f}, none {runrm['none'][2]:.2f}–{runrm['none'][3]:.2f}; berth's CLI against docker's: bridge
{cli_ratios['bridge'][0]:.2f}–{cli_ratios['bridge'][1]:.2f}, none {cli_ratios['none'][0]:.2f}–{cli_ratios['none'][1]:.2f}.

The issue's goal: berth `run --rm` at most one tenth of docker's (docker measured here before
at ≈ 344 ms bridge, 268 ms none; 20 parallel run -d ≈ 4.5 s; shim ≈ 13 MiB); shim RSS under
2 MiB. In this run:

{goal_lines}

{fail_text}""")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"mem": mem, "report": report}[cmd](*args)


if __name__ == "__main__":
    main()
