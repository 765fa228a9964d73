//! podman drives berth-runtime through the OCI runtime command line (`--runtime`), as it
//! drives runc and crun: run, the exit code, detached run, exec, stop, rm.

mod common;

use std::process::Command;

use common::*;

/// podman with all of its state inside the test's directory, using berth-runtime.
struct Podman<'a> {
    h: &'a Harness,
}

impl Podman<'_> {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.h.path("storage"))
            .arg("--runroot")
            .arg(self.h.path("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(["--storage-driver", "overlay", "--runtime", BIN])
            .args(args);
        run_to_files(&mut c)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "podman {args:?}: {}", stderr(&out));
        stdout(&out)
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force"]);
        let _ = self.cmd(&["system", "reset", "--force"]);
    }
}

/// podman's default limits (RLIMIT_NPROC of 1048576) are above this machine's hard limits,
/// which berth-runtime refuses clearly; these fit.
const RUN: [&str; 7] = [
    "run",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];

#[test]
fn podman_runs_execs_stops_and_removes_containers_through_berth_runtime() {
    let h = Harness::new();
    let tar = h.busybox_tar();
    let p = Podman { h: &h };
    p.ok(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/berth-busybox:test",
    ]);

    let mut args = RUN.to_vec();
    args.extend([
        "--rm",
        "localhost/berth-busybox:test",
        "sh",
        "-c",
        "echo hello; exit 5",
    ]);
    let out = p.cmd(&args);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");

    let mut args = RUN.to_vec();
    args.extend(["--detach", "localhost/berth-busybox:test", "sleep", "1000"]);
    let id = p.ok(&args).trim().to_string();
    // exec lands in the container: its pid 1 is the detached sleep.
    let exec = p.ok(&["exec", &id, "sh", "-c", "echo exec-ok; cat /proc/1/comm"]);
    assert_eq!(exec, "exec-ok\nsleep\n");
    p.ok(&["stop", "--time", "1", &id]);
    let state = p.ok(&["inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(state.trim(), "exited");
    p.ok(&["rm", &id]);
    assert_eq!(p.ok(&["ps", "--all", "--quiet"]), "");
}
