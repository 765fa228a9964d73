//! Log drivers through the docker CLI against `berth daemon`: json-file, local and none, their
//! options (rotation into gzipped files that `docker logs` reads back in order), the daemon's
//! default driver, and bad options refused in one line with nothing left behind. Needs root
//! and the docker CLI; a missing tool fails the test with the package to install.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{eventually, require, Daemon, BERTH, DOCKER};

fn need_docker() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The container's state directory, where its shim writes the log.
fn container_dir(d: &Daemon, name: &str) -> PathBuf {
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", name]);
    d.dir().join("root").join("containers").join(id.trim())
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("container dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("container-json.log"))
        .collect();
    names.sort();
    names
}

/// The numbers `seq` printed, as `docker logs` gives them back.
fn numbers(text: &str) -> Vec<u32> {
    text.lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        .collect()
}

fn consecutive(n: &[u32]) -> bool {
    n.windows(2).all(|w| w[1] == w[0] + 1)
}

/// `docker run` of something that fails at create: the error in one line, no container.
fn refused(d: &Daemon, args: &[&str], message: &str) {
    let mut full = vec!["create", "--name", "refused"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["busybox", "true"]);
    let out = d.docker(&full);
    assert!(!out.status.success(), "{full:?} was accepted");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(message)).collect();
    assert_eq!(
        lines.len(),
        1,
        "{full:?}: {err:?} should say {message:?} once"
    );
    assert!(
        lines[0].starts_with("Error response from daemon: "),
        "{full:?}: {err:?}"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "{full:?} left a container");
}

/// As `refused`, through berth's own CLI (the docker CLI refuses some of these itself, before
/// the daemon sees them): its whole error is one line.
fn refused_by_berth(d: &Daemon, args: &[&str], message: &str) {
    let mut full = vec!["create", "--name", "refused"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["busybox", "true"]);
    let out = Command::new(BERTH)
        .args(&full)
        .env("BERTH_HOST", d.host())
        .output()
        .expect("run berth");
    assert!(!out.status.success(), "{full:?} was accepted");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{full:?}: {err:?}");
    assert!(
        err.contains(message),
        "{full:?}: {err:?} should say {message:?}"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "{full:?} left a container");
}

#[test]
fn none_keeps_nothing_and_bad_options_are_refused() {
    need_docker();
    let d = Daemon::start();
    d.import_busybox("busybox:latest");

    // Attached, the output is shown live; nothing is kept, and `logs` says so as Docker does.
    let out = d.docker_ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "live",
    ]);
    assert_eq!(out, "live\n");
    assert!(log_files(&container_dir(&d, "quiet")).is_empty());
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}} [{{.LogPath}}]",
            "quiet"
        ]),
        "none []\n"
    );
    let logs = d.docker(&["logs", "quiet"]);
    assert!(!logs.status.success());
    assert!(
        stderr(&logs).contains("configured logging driver does not support reading"),
        "{logs:?}"
    );
    d.docker_ok(&["rm", "quiet"]);

    refused(
        &d,
        &["--log-opt", "foo=bar"],
        "unknown log opt 'foo' for json-file log driver",
    );
    refused(
        &d,
        &["--log-driver", "syslog"],
        "use json-file, local or none",
    );
    refused_by_berth(
        &d,
        &["--log-driver", "none", "--log-opt", "max-size=1m"],
        "unknown log opt 'max-size' for none log driver",
    );
    refused_by_berth(
        &d,
        &["--log-opt", "foo=bar"],
        "unknown log opt 'foo' for json-file log driver",
    );
    refused(&d, &["--log-opt", "max-size=lots"], "max-size=lots");
    refused(&d, &["--log-opt", "max-file=3"], "needs max-size");
    refused(
        &d,
        &["--log-opt", "compress=true", "--log-opt", "max-size=1m"],
        "compress=true",
    );
    refused(&d, &["--log-opt", "labels=a"], "attributes");
    let dirs = std::fs::read_dir(d.dir().join("root").join("containers"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(dirs, 0, "a refused create left a container directory");
    d.finish();
}

/// Runs `seq 1 2000` with these log flags, and checks that the log rotated into gzipped
/// files which `docker logs` (with --tail, --since, --until, --timestamps, --follow) reads
/// back in order.
fn rotates_into_gz(d: &Daemon, name: &str, flags: &[&str]) {
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "seq", "1", "2000"]);
    d.docker_ok(&args);
    let files = log_files(&container_dir(d, name));
    assert_eq!(
        files,
        [
            "container-json.log",
            "container-json.log.1.gz",
            "container-json.log.2.gz"
        ],
        "{name}"
    );
    for gz in &files[1..] {
        let bytes = std::fs::read(container_dir(d, name).join(gz)).expect("read .gz");
        assert_eq!(bytes[..2], [0x1f, 0x8b], "{gz} is not gzip");
    }
    let all = d.docker_ok(&["logs", name]);
    let n = numbers(&all);
    assert!(consecutive(&n) && n.last() == Some(&2000), "{name}: {n:?}");
    // The current file holds at most ~130 of these lines: the rest came from the .gz files.
    assert!(
        n.len() > 200 && n[0] > 1,
        "{name}: {} lines from {}",
        n.len(),
        n[0]
    );
    assert_eq!(
        numbers(&d.docker_ok(&["logs", "--tail", "200", name])),
        (1801..=2000).collect::<Vec<_>>()
    );
    assert_eq!(
        d.docker_ok(&["logs", "--follow", name]),
        all,
        "{name} --follow"
    );
    let stamped = d.docker_ok(&["logs", "--timestamps", name]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), n.len());
    // A time from the oldest file. Both bounds include the lines stamped with exactly that
    // time, as Docker's do (lines read together share a stamp, so there may be several).
    let (at, _) = lines[20].split_once(' ').expect("a timestamp");
    assert!(at.ends_with('Z') && at.contains('T'), "{at:?}");
    let stamp = |l: &&str| l.split_once(' ').map(|(t, _)| t) == Some(at);
    let first = lines.iter().position(stamp).expect("the stamp");
    let last = lines.iter().rposition(stamp).expect("the stamp");
    let texts = |range: &[&str]| -> String {
        range
            .iter()
            .map(|l| format!("{}\n", l.split_once(' ').expect("a stamped line").1))
            .collect()
    };
    let until = d.docker_ok(&["logs", "--until", at, name]);
    let since = d.docker_ok(&["logs", "--since", at, name]);
    assert_eq!(until, texts(&lines[..=last]), "{name}: until {at}");
    assert_eq!(since, texts(&lines[first..]), "{name}: since {at}");
}

#[test]
fn json_file_and_local_rotate_into_gzipped_files() {
    need_docker();
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    rotates_into_gz(
        &d,
        "jsonfile",
        &[
            "--log-opt",
            "compress=true",
            "--log-opt",
            "max-size=10k",
            "--log-opt",
            "max-file=3",
        ],
    );
    // local compresses by default.
    rotates_into_gz(
        &d,
        "local",
        &[
            "--log-driver",
            "local",
            "--log-opt",
            "max-size=10k",
            "--log-opt",
            "max-file=3",
        ],
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "jsonfile"]),
        "{\"Type\":\"json-file\",\"Config\":{\"compress\":\"true\",\"max-file\":\"3\",\"max-size\":\"10k\"}}\n"
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "local"]),
        "{\"Type\":\"local\",\"Config\":{\"max-file\":\"3\",\"max-size\":\"10k\"}}\n"
    );
    d.finish();
}

#[test]
fn the_daemons_default_driver_applies_to_new_containers() {
    need_docker();
    let d = Daemon::start_with(|_| {
        ["--log-driver", "local", "--log-opt", "max-size=10k"]
            .map(String::from)
            .to_vec()
    });
    d.import_busybox("busybox:latest");
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{.LoggingDriver}}"]),
        "local\n"
    );
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{json .Plugins.Log}}"]),
        "[\"json-file\",\"local\",\"none\"]\n"
    );
    // No driver given: the daemon's, with its options; local compresses what it rotates.
    d.docker_ok(&["run", "--name", "dflt", "busybox", "seq", "1", "2000"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "dflt"]),
        "{\"Type\":\"local\",\"Config\":{\"max-size\":\"10k\"}}\n"
    );
    let files = log_files(&container_dir(&d, "dflt"));
    assert!(
        files.contains(&"container-json.log.1.gz".to_string()),
        "{files:?}"
    );
    let n = numbers(&d.docker_ok(&["logs", "dflt"]));
    assert!(
        consecutive(&n) && n.last() == Some(&2000) && n.len() > 200,
        "{n:?}"
    );
    // Another driver takes none of the daemon's options.
    d.docker_ok(&[
        "create",
        "--name",
        "jsonlog",
        "--log-driver",
        "json-file",
        "busybox",
        "true",
    ]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "jsonlog"]),
        "{\"Type\":\"json-file\",\"Config\":{}}\n"
    );
    d.docker_ok(&["rm", "jsonlog", "dflt"]);
    refused(
        &d,
        &["--log-opt", "foo=1"],
        "unknown log opt 'foo' for log driver local",
    );
    d.finish();
}

#[test]
fn a_bad_daemon_default_stops_the_start_in_one_line() {
    require("unshare", "util-linux");
    require("timeout", "coreutils");
    let dir = tempfile::Builder::new()
        .prefix("berth-logging-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let (root, run) = (dir.path().join("root"), dir.path().join("run"));
    // Its own network namespace and directories, as any test daemon; it must not get far.
    let out = Command::new("timeout")
        .args(["60", "unshare", "--net", BERTH, "daemon"])
        .arg("--root")
        .arg(&root)
        .arg("--run-root")
        .arg(&run)
        .arg("--socket")
        .arg(dir.path().join("d.sock"))
        .args(["--log-driver", "local", "--log-opt", "compress=maybe"])
        .output()
        .expect("run berth daemon");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err:?}");
    assert!(
        err.contains("compress=maybe") && err.contains("true or false"),
        "{err:?}"
    );
    assert!(
        !root.exists() && !run.exists(),
        "the refused daemon made its directories"
    );
}

/// A stamp as (seconds part, nanoseconds): Docker trims the fraction's trailing zeros, so
/// stamps do not compare as text.
fn stamp_key(stamp: &str) -> (String, u32) {
    let stamp = stamp.trim_end_matches('Z');
    let (secs, frac) = stamp.split_once('.').unwrap_or((stamp, "0"));
    let nanos = format!("{frac:0<9}")[..9]
        .parse()
        .expect("a fraction of digits");
    (secs.to_string(), nanos)
}

#[test]
fn follow_ends_at_until() {
    need_docker();
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let ticker = "while true; do echo tick; sleep 0.1; done";
    d.docker_ok(&[
        "run", "-d", "--name", "ticker", "busybox", "sh", "-c", ticker,
    ]);
    let date = Command::new("date")
        .args(["-u", "-d", "+2 seconds", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .expect("date");
    let until = String::from_utf8_lossy(&date.stdout).trim().to_string();
    let mut follow = Command::new(DOCKER)
        .args([
            "-H",
            &d.host(),
            "logs",
            "--follow",
            "--timestamps",
            "--until",
            &until,
            "ticker",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker logs");
    // It must end by itself, once `until` has passed, while the container keeps writing.
    let ended = eventually(Duration::from_secs(60), || {
        follow.try_wait().expect("wait").is_some()
    });
    if !ended {
        let _ = follow.kill();
    }
    let out = follow.wait_with_output().expect("output");
    assert!(ended, "logs --follow --until {until} did not end");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let stamps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, _)| t)
        .collect();
    assert!(stamps.len() >= 5, "{text}");
    assert!(
        stamps.iter().all(|s| stamp_key(s) <= stamp_key(&until)),
        "a line after {until}: {text}"
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "ticker"]),
        "true\n"
    );
    d.docker_ok(&["rm", "-f", "ticker"]);
    d.finish();
}
