//! Choosing the OCI runtime per container, as Docker's `--runtime`, `--add-runtime` and
//! `--default-runtime`: containers run through the real runc (Debian's) by its command line,
//! driven by the unchanged docker CLI. Needs root, runc and the docker CLI; a missing tool
//! fails the test with the package to install.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{eventually, require, Daemon, BERTH, DOCKER};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn requirements() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    require("runc", "runc");
}

/// The state directory the daemon gives runtime `name`: one per runtime under its run root.
fn state_dir(d: &Daemon, name: &str) -> PathBuf {
    d.dir().join("run").join("runtimes").join(name)
}

/// runc's own view of a state directory: `runc --root DIR <args>`.
fn runc(root: &Path, args: &[&str]) -> String {
    let out = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run runc");
    assert!(out.status.success(), "runc {args:?}: {out:?}");
    text(&out)
}

fn runc_ids(root: &Path) -> Vec<String> {
    runc(root, &["list", "-q"])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    d.docker_ok(&["inspect", "-f", format, name])
        .trim()
        .to_string()
}

/// Nothing of runc's is left in the state directory: no container it knows, no file.
fn assert_runc_empty(root: &Path) {
    assert!(runc_ids(root).is_empty(), "runc still lists containers");
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.file_name())).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", root.display());
}

/// A container that ends with code 7 on SIGTERM (as `stop` sends it).
const SERVE: &str = "trap 'exit 7' TERM; echo started; while :; do sleep 0.1; done";

#[test]
fn runc_runs_what_docker_runs() {
    requirements();
    let mut d = Daemon::start_with(|_| {
        ["--add-runtime", "other=/usr/sbin/runc"]
            .into_iter()
            .chain(["--add-runtime", "missing=/nonexistent/runc"])
            .map(String::from)
            .collect()
    });
    d.import_busybox("busybox:latest");
    let runc_root = state_dir(&d, "runc");

    // info: berth built in, runc found on PATH, and the added one.
    let runtimes: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["info", "-f", "{{json .Runtimes}}"])).expect("json");
    assert_eq!(runtimes["berth"]["path"], "berth-runtime (built in)");
    assert_eq!(runtimes["other"]["path"], "/usr/sbin/runc");
    let on_path = Command::new("sh")
        .args(["-c", "command -v runc"])
        .output()
        .expect("command -v runc");
    assert_eq!(runtimes["runc"]["path"], text(&on_path).trim());
    assert_eq!(runtimes.as_object().map(|m| m.len()), Some(4), "{runtimes}");
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{.DefaultRuntime}}"]),
        "berth\n"
    );
    let info = d.docker_ok(&["info"]);
    assert!(info.contains(" Runtimes: "), "{info}");
    let out = Command::new(BERTH)
        .args(["-H", &d.host(), "info"])
        .output()
        .expect("berth info");
    assert!(
        text(&out).contains(" Runtimes: berth missing other runc\n Default Runtime: berth\n"),
        "berth info: {out:?}"
    );

    // output and exit code through runc
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "busybox",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out), "hi\n");

    // a detached container: runc knows it, and every verb reaches it through runc
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rc1",
        "--runtime",
        "runc",
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    let id = inspect(&d, "{{.Id}}", "rc1");
    assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "rc1"), "runc");
    assert_eq!(runc_ids(&runc_root), vec![id.clone()]);
    let state: serde_json::Value =
        serde_json::from_str(&runc(&runc_root, &["state", &id])).expect("runc state");
    assert_eq!(state["status"], "running");
    assert_eq!(
        state["pid"].to_string(),
        inspect(&d, "{{.State.Pid}}", "rc1")
    );
    assert_eq!(
        d.docker_ok(&["exec", "rc1", "echo", "from-exec"]),
        "from-exec\n"
    );
    let out = d.docker(&["exec", "rc1", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "exec exit code: {out:?}");
    let tty = d.docker_ok(&["exec", "-t", "rc1", "tty"]);
    assert!(tty.starts_with("/dev/pts/"), "exec -t: {tty:?}");
    assert!(
        eventually(Duration::from_secs(10), || d.docker_ok(&["logs", "rc1"])
            == "started\n"),
        "logs rc1: {:?}",
        d.docker(&["logs", "rc1"])
    );
    let top = d.docker_ok(&["top", "rc1"]);
    assert!(top.contains("trap"), "top: {top}");
    d.docker_ok(&["pause", "rc1"]);
    assert_eq!(inspect(&d, "{{.State.Status}}", "rc1"), "paused");
    assert!(runc(&runc_root, &["state", &id]).contains("\"status\": \"paused\""));
    d.docker_ok(&["unpause", "rc1"]);
    assert_eq!(inspect(&d, "{{.State.Status}}", "rc1"), "running");
    assert!(runc(&runc_root, &["state", &id]).contains("\"status\": \"running\""));
    let stats = d.docker_ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "rc1"]);
    assert_ne!(stats.trim(), "0", "stats through runc's cgroup: {stats}");
    d.docker_ok(&["stop", "-t", "10", "rc1"]);
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "rc1"), "7");
    assert!(
        runc_ids(&runc_root).is_empty(),
        "runc still knows the stopped rc1"
    );
    d.docker_ok(&["start", "rc1"]);
    assert_eq!(runc_ids(&runc_root), vec![id.clone()]);
    d.docker_ok(&["kill", "rc1"]);
    assert!(
        eventually(Duration::from_secs(10), || inspect(
            &d,
            "{{.State.Status}}",
            "rc1"
        ) == "exited"),
        "rc1 did not exit after kill"
    );
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "rc1"), "137");
    d.docker_ok(&["rm", "rc1"]);

    // an unknown runtime is refused at create, in one line, and leaves no container
    for verb in ["run", "create"] {
        let out = d.docker(&[verb, "--runtime", "foo", "busybox", "true"]);
        assert!(!out.status.success(), "{verb} --runtime foo: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().next().unwrap_or_default();
        assert!(
            line.contains(
                "unknown or invalid runtime name: foo: use one of berth, missing, other, runc, or give the daemon --add-runtime foo=PATH"
            ),
            "{verb} --runtime foo: {err}"
        );
    }
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");

    // A runtime that cannot run, and runc refusing a bundle: the start fails with what went
    // wrong in one line and leaves the container created, with nothing mounted or running.
    let out = d.docker(&[
        "run",
        "--name",
        "m1",
        "--runtime",
        "missing",
        "busybox",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().next().unwrap_or_default().contains(
            "cannot run the runtime missing (/nonexistent/runc) to create: No such file or directory"
        ),
        "run --runtime missing: {out:?}"
    );
    let out = d.docker(&[
        "run",
        "--name",
        "m2",
        "--runtime",
        "runc",
        "busybox",
        "/no/such",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .next()
            .unwrap_or_default()
            .contains("runtime runc create: ")
            && err.contains("/no/such"),
        "run a missing program through runc: {out:?}"
    );
    for name in ["m1", "m2"] {
        assert_eq!(inspect(&d, "{{.State.Status}}", name), "created");
    }
    assert!(runc_ids(&runc_root).is_empty(), "runc kept the failed m2");
    let mounts = common::mounts_under(&d.dir().join("run"));
    assert!(mounts.is_empty(), "mounted after failed starts: {mounts:?}");
    d.docker_ok(&["rm", "m1", "m2"]);

    // The runtime is recorded at start: a daemon that no longer knows "other" still runs
    // its container through it, and refuses only to start it again.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "o1",
        "--runtime",
        "other",
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    let other_root = state_dir(&d, "other");
    assert_eq!(runc_ids(&other_root), [inspect(&d, "{{.Id}}", "o1")]);
    std::fs::write(d.dir().join("extra-flags"), "").expect("drop --add-runtime");
    d.kill_and_restart();
    let runtimes = d.docker_ok(&["info", "-f", "{{json .Runtimes}}"]);
    assert!(!runtimes.contains("other"), "{runtimes}");
    assert_eq!(d.docker_ok(&["exec", "o1", "echo", "still"]), "still\n");
    d.docker_ok(&["pause", "o1"]);
    d.docker_ok(&["unpause", "o1"]);
    assert!(d.docker_ok(&["top", "o1"]).contains("trap"));
    d.docker_ok(&["stop", "o1"]);
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "o1"), "7");
    let out = d.docker(&["start", "o1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown or invalid runtime name: other"),
        "start o1 without its runtime: {out:?}"
    );
    d.docker_ok(&["rm", "o1"]);

    assert_runc_empty(&runc_root);
    assert_runc_empty(&other_root);
    d.finish();
}

#[test]
fn default_runtime_runc() {
    requirements();
    let d = Daemon::start_with(|_| vec!["--default-runtime".into(), "runc".into()]);
    d.import_busybox("busybox:latest");
    let runc_root = state_dir(&d, "runc");
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{.DefaultRuntime}}"]),
        "runc\n"
    );

    d.docker_ok(&["run", "-d", "--name", "plain", "busybox", "sh", "-c", SERVE]);
    assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "plain"), "runc");
    assert_eq!(runc_ids(&runc_root), [inspect(&d, "{{.Id}}", "plain")]);
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");

    // The built-in runtime is still there by name, through docker and berth's own CLI.
    d.docker_ok(&[
        "create",
        "--name",
        "own",
        "--runtime",
        "berth",
        "busybox",
        "true",
    ]);
    assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "own"), "berth");
    let out = Command::new(BERTH)
        .args([
            "-H",
            &d.host(),
            "run",
            "--rm",
            "--runtime",
            "berth",
            "busybox",
            "echo",
            "built-in",
        ])
        .output()
        .expect("berth run");
    assert_eq!(
        text(&out),
        "built-in\n",
        "berth run --runtime berth: {out:?}"
    );
    assert_eq!(runc_ids(&runc_root), [inspect(&d, "{{.Id}}", "plain")]);

    // A paused container is removed by force too (runc kills through the frozen cgroup).
    d.docker_ok(&["pause", "plain"]);
    d.docker_ok(&["rm", "-f", "plain", "own"]);
    assert_runc_empty(&runc_root);
    // And one on the built-in runtime (its kill thaws the frozen cgroup, as runc's does).
    d.docker_ok(&[
        "run",
        "-d",
        "--runtime",
        "berth",
        "--name",
        "bpaused",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["pause", "bpaused"]);
    d.docker_ok(&["rm", "-f", "bpaused"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    d.finish();
}
