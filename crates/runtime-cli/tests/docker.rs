//! dockerd (with its containerd and containerd-shim-runc-v2) drives berth-runtime through
//! `--add-runtime`, as it drives runc: run, exit code, detached run, exec, stop, rm.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A dockerd of the test's own: its own network namespace, data, exec root and socket.
struct Dockerd {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Dockerd {
    fn start(dir: PathBuf) -> Dockerd {
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("unshare")
            .arg("--net")
            .arg("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .args(["--ip-forward=false", "--ip-masq=false"])
            .arg("--add-runtime")
            .arg(format!("berth={BIN}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd { child, socket, dir };
        d.wait_ready();
        d
    }

    /// Polls `docker version` until the daemon answers, within a generous deadline.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.docker(&["version"]).status.success() {
                return;
            }
            let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "dockerd did not come up:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        run_to_files(&mut c)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
        stdout(&out)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.docker(&["rm", "--force", "--volumes", "berth-detached"]);
        // SIGTERM: dockerd stops its containerd and unmounts what it mounted.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

#[test]
fn docker_runs_execs_stops_and_removes_containers_through_berth_runtime() {
    let h = Harness::new();
    let tar = h.busybox_tar();
    let d = Dockerd::start(h.path("docker"));
    d.ok(&["import", tar.to_str().unwrap(), "berth-busybox:test"]);

    let run = ["run", "--runtime", "berth", "--network", "none"];
    let mut args = run.to_vec();
    args.extend([
        "--rm",
        "berth-busybox:test",
        "sh",
        "-c",
        "echo hello; exit 3",
    ]);
    let out = d.docker(&args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");

    let mut args = run.to_vec();
    args.extend([
        "--detach",
        "--name",
        "berth-detached",
        "berth-busybox:test",
        "sleep",
        "1000",
    ]);
    d.ok(&args);
    let exec = d.ok(&[
        "exec",
        "berth-detached",
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/comm",
    ]);
    assert_eq!(exec, "exec-ok\nsleep\n");
    d.ok(&["stop", "--time", "1", "berth-detached"]);
    let state = d.ok(&["inspect", "--format", "{{.State.Status}}", "berth-detached"]);
    assert_eq!(state.trim(), "exited");
    d.ok(&["rm", "berth-detached"]);
    assert_eq!(d.ok(&["ps", "--all", "--quiet"]), "");
    // The runtime's own state (docker 20.10 names its --root runtime-runc whatever the
    // runtime) is empty again, but for the cache of compiled seccomp filters.
    let runtime_root = h.path("docker/exec/runtime-runc/moby");
    let left: Vec<_> = std::fs::read_dir(&runtime_root)
        .expect("docker gave berth-runtime this --root")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != berth_runtime::state::SECCOMP_CACHE)
        .collect();
    assert!(left.is_empty(), "berth-runtime state left: {left:?}");
}
