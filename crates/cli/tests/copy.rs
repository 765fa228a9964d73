//! `docker cp` both ways and `docker export` with the real docker CLI against `berth daemon`:
//! files and directories into running and stopped containers and back, modes and content
//! kept, a hostile symlink in the container, a missing path. Needs root; a missing tool
//! fails the test with the package to install.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{mounts_under, require, Daemon, BERTH, DOCKER};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A file `hello.txt` (0750) and a tree `tree/{top.txt, sub/x.txt (0604)}`.
fn local_files(dir: &Path) {
    fs::write(dir.join("hello.txt"), "hello from the host\n").unwrap();
    fs::set_permissions(dir.join("hello.txt"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::create_dir_all(dir.join("tree/sub")).unwrap();
    fs::write(dir.join("tree/top.txt"), "top\n").unwrap();
    fs::write(dir.join("tree/sub/x.txt"), "deep\n").unwrap();
    fs::set_permissions(
        dir.join("tree/sub/x.txt"),
        fs::Permissions::from_mode(0o604),
    )
    .unwrap();
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn docker_cp_and_export() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let work = tempfile::tempdir().unwrap();
    let (local, out) = (work.path().join("local"), work.path().join("out"));
    fs::create_dir_all(&local).unwrap();
    fs::create_dir_all(&out).unwrap();
    local_files(&local);

    into_a_running_container(&d, &local, &out);
    into_a_stopped_container(&d, &local, &out);
    symlinks_do_not_lead_to_the_host(&d, &local);
    export_lists_the_files(&d, &out);
    berth_cp_round_trip(&d, &local, &out);
    missing_paths_are_one_line_404s(&d, &out);
    d.finish();
}

fn into_a_running_container(d: &Daemon, local: &Path, out: &Path) {
    d.docker_ok(&["run", "-d", "--name", "run1", "busybox", "sleep", "1000"]);
    d.docker_ok(&["cp", path(&local.join("hello.txt")), "run1:/tmp/"]);
    assert_eq!(
        d.docker_ok(&["exec", "run1", "cat", "/tmp/hello.txt"]),
        "hello from the host\n"
    );
    assert_eq!(
        d.docker_ok(&["exec", "run1", "stat", "-c", "%a %u", "/tmp/hello.txt"]),
        "750 0\n"
    );
    // A directory to a new name, then its contents (`/.`) into an existing directory.
    d.docker_ok(&["cp", path(&local.join("tree")), "run1:/tmp/tree"]);
    d.docker_ok(&["exec", "run1", "mkdir", "/flat"]);
    d.docker_ok(&[
        "cp",
        &format!("{}/.", path(&local.join("tree"))),
        "run1:/flat",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "exec",
            "run1",
            "cat",
            "/tmp/tree/sub/x.txt",
            "/flat/top.txt"
        ]),
        "deep\ntop\n"
    );
    assert_eq!(
        d.docker_ok(&["exec", "run1", "stat", "-c", "%a", "/tmp/tree/sub/x.txt"]),
        "604\n"
    );

    // Back out: a directory under a new name, and a file into a directory.
    d.docker_ok(&["cp", "run1:/tmp/tree", path(&out.join("tree-back"))]);
    assert_eq!(
        fs::read_to_string(out.join("tree-back/sub/x.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(mode(&out.join("tree-back/sub/x.txt")), 0o604);
    d.docker_ok(&["cp", "run1:/tmp/hello.txt", path(out)]);
    assert_eq!(
        fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    assert_eq!(mode(&out.join("hello.txt")), 0o750);
    // Each copy is an event, as in Docker: extract-to-dir in, archive-path out.
    let events = d.events_of("run1");
    let actions: Vec<&str> = events.lines().collect();
    assert!(actions.contains(&"extract-to-dir"), "{events}");
    assert!(actions.contains(&"archive-path"), "{events}");
}

fn into_a_stopped_container(d: &Daemon, local: &Path, out: &Path) {
    d.docker_ok(&[
        "create",
        "--name",
        "stopped",
        "busybox",
        "sh",
        "-c",
        "cat /hello-copy.txt /tree/sub/x.txt && stat -c %a /hello-copy.txt /tree/sub/x.txt",
    ]);
    d.docker_ok(&[
        "cp",
        path(&local.join("hello.txt")),
        "stopped:/hello-copy.txt",
    ]);
    d.docker_ok(&["cp", path(&local.join("tree")), "stopped:/"]);
    let mounts = mounts_under(d.dir());
    assert!(
        !mounts.iter().any(|m| m.contains("/archive/")),
        "a copy into a stopped container left its mount: {mounts:?}"
    );
    assert_eq!(
        d.docker_ok(&["start", "-a", "stopped"]),
        "hello from the host\ndeep\n750\n604\n"
    );
    // Exited now: read back from the stopped container.
    d.docker_ok(&[
        "cp",
        "stopped:/tree/sub/x.txt",
        path(&out.join("x-from-stopped.txt")),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("x-from-stopped.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(mode(&out.join("x-from-stopped.txt")), 0o604);
}

fn symlinks_do_not_lead_to_the_host(d: &Daemon, local: &Path) {
    let marker = format!("berth-cp-escape-{}", std::process::id());
    fs::write(local.join(&marker), "must stay in the container\n").unwrap();
    d.docker_ok(&["exec", "run1", "ln", "-s", "/../../etc", "/evil"]);
    d.docker_ok(&["cp", path(&local.join(&marker)), "run1:/evil/"]);
    d.docker_ok(&[
        "run",
        "--name",
        "evil",
        "busybox",
        "ln",
        "-s",
        "/../../etc",
        "/evil",
    ]);
    d.docker_ok(&["cp", path(&local.join(&marker)), "evil:/evil/"]);
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "docker cp through a symlink wrote to the host's /etc"
    );
    assert_eq!(
        d.docker_ok(&["exec", "run1", "cat", &format!("/etc/{marker}")]),
        "must stay in the container\n"
    );
    let shown = d.docker_ok(&["cp", &format!("evil:/etc/{marker}"), "-"]);
    assert!(
        shown.contains("must stay in the container"),
        "the tar of the stopped container's copy: {shown:?}"
    );
}

fn export_lists_the_files(d: &Daemon, out: &Path) {
    d.docker_ok(&["exec", "run1", "sh", "-c", "echo made > /made-by-container"]);
    let tar = out.join("run1.tar");
    d.docker_ok(&["export", "-o", path(&tar), "run1"]);
    let listed = Command::new("tar").arg("tvf").arg(&tar).output().unwrap();
    assert!(listed.status.success(), "tar tvf: {listed:?}");
    let listing = String::from_utf8_lossy(&listed.stdout);
    for name in [
        "made-by-container",
        "tmp/hello.txt",
        "tmp/tree/sub/x.txt",
        "bin/busybox",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(name)),
            "{name} is not in the export:\n{listing}"
        );
    }
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-x---") && l.ends_with("tmp/hello.txt")),
        "modes are kept in the export:\n{listing}"
    );
    // The export and the exec before it are events, as in Docker.
    let events = d.events_of("run1");
    assert!(events.lines().any(|a| a == "export"), "{events}");
    // An attached exec's end is told before its stream closes; a detached one's once it
    // ends.
    let died = |events: &str| events.lines().filter(|a| *a == "exec_die").count();
    let before = died(&events);
    assert!(before >= 1, "{events}");
    d.docker_ok(&["exec", "-d", "run1", "sh", "-c", "exit 3"]);
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || {
            died(&d.events_of("run1")) == before + 1
        }),
        "no exec_die for the detached exec"
    );
    assert!(
        events
            .lines()
            .any(|a| a == "exec_start: sh -c echo made > /made-by-container"),
        "{events}"
    );
    // berth's own CLI too.
    let berth_tar = out.join("berth-export.tar");
    let exported = Command::new(BERTH)
        .args(["-H", &d.host(), "export", "-o", path(&berth_tar), "stopped"])
        .output()
        .unwrap();
    assert!(exported.status.success(), "berth export: {exported:?}");
    let listed = Command::new("tar")
        .arg("tf")
        .arg(&berth_tar)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l == "hello-copy.txt"),
        "berth export of the stopped container: {listed:?}"
    );
}

/// berth's own `cp`, both ways, with the same semantics.
fn berth_cp_round_trip(d: &Daemon, local: &Path, out: &Path) {
    let berth = |args: &[&str]| {
        let run = Command::new(BERTH)
            .args(["-H", &d.host(), "cp"])
            .args(args)
            .output()
            .unwrap();
        assert!(run.status.success(), "berth cp {args:?}: {run:?}");
    };
    berth(&[path(&local.join("tree")), "run1:/tmp/berth-tree"]);
    berth(&["run1:/tmp/berth-tree/.", path(&out.join("berth-back"))]);
    assert_eq!(
        fs::read_to_string(out.join("berth-back/sub/x.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(mode(&out.join("berth-back/sub/x.txt")), 0o604);
    berth(&[path(&local.join("hello.txt")), "stopped:/tmp/"]);
    berth(&["stopped:/tmp/hello.txt", path(&out.join("berth-hello.txt"))]);
    assert_eq!(mode(&out.join("berth-hello.txt")), 0o750);
}

fn missing_paths_are_one_line_404s(d: &Daemon, out: &Path) {
    let failed = d.docker(&["cp", "run1:/no/such/file", path(out)]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        stderr.trim(),
        "Error response from daemon: Could not find the file /no/such/file in container run1",
        "{failed:?}"
    );
    let berth = Command::new(BERTH)
        .args(["-H", &d.host(), "cp", "run1:/no/such/file", path(out)])
        .output()
        .unwrap();
    assert!(!berth.status.success());
    assert_eq!(
        String::from_utf8_lossy(&berth.stderr)
            .trim()
            .lines()
            .count(),
        1,
        "{berth:?}"
    );
}
