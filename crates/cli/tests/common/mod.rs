//! A `berth daemon` in its own network namespace and temporary directories, for tests that drive
//! it with real Docker clients. Needs root, `unshare`/`nsenter` (util-linux) and `ip` (iproute2).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
pub const DOCKER: &str = "/usr/local/bin/docker";

/// Fails (never skips) when `program` is missing, naming the package that provides it.
pub fn require(program: &str, package: &str) {
    let found = if program.starts_with('/') {
        Path::new(program).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        found,
        "{program} is missing: install {package} (scripts/deps.sh)"
    );
}

/// A running `berth daemon`; `finish` stops it and checks that nothing is left behind, drop
/// cleans up as well as it can when a test failed before.
pub struct Daemon {
    dir: Option<tempfile::TempDir>,
    pub socket: PathBuf,
    child: Child,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(|_| Vec::new())
    }

    /// A daemon with extra flags, which `prepare` may make files for in the daemon's
    /// directory (given to it) before the daemon starts.
    pub fn start_with(prepare: impl FnOnce(&Path) -> Vec<String>) -> Daemon {
        Daemon::launch(&[], |_| String::new(), prepare)
    }

    /// As `start_with`, with the shell commands `setup(dir)` run in the daemon's network
    /// namespace before it starts (such as making an interface it is to use).
    pub fn start_after(
        setup: impl FnOnce(&Path) -> String,
        prepare: impl FnOnce(&Path) -> Vec<String>,
    ) -> Daemon {
        Daemon::launch(&[], setup, prepare)
    }

    /// As `start_with`, in a private mount namespace too, where the shell commands
    /// `setup(dir)` run before the daemon: for a test that changes what the daemon sees of
    /// the host's files (such as /etc, under an overlay) while the host keeps its own.
    pub fn start_isolated(
        setup: impl FnOnce(&Path) -> String,
        prepare: impl FnOnce(&Path) -> Vec<String>,
    ) -> Daemon {
        Daemon::launch(&["--mount"], setup, prepare)
    }

    fn launch(
        unshare: &[&str],
        setup: impl FnOnce(&Path) -> String,
        prepare: impl FnOnce(&Path) -> Vec<String>,
    ) -> Daemon {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests need root (namespaces, mounts, cgroups)"
        );
        require("unshare", "util-linux");
        require("nsenter", "util-linux");
        require("ip", "iproute2");
        require("busybox", "busybox-static");
        let dir = tempfile::Builder::new()
            .prefix("berth-clients-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let socket = dir.path().join("d.sock");
        std::fs::create_dir(dir.path().join("docker-config")).expect("docker config dir");
        let extra = prepare(dir.path()).join(" ");
        std::fs::write(dir.path().join("extra-flags"), &extra).expect("extra flags");
        let mut prefix = vec!["unshare", "--net"];
        prefix.extend_from_slice(unshare);
        prefix.extend(["--fork", "--kill-child=SIGTERM"]);
        let setup = format!("{}ip link set lo up && ", setup(dir.path()));
        let child = spawn(dir.path(), &prefix, &setup);
        let mut daemon = Daemon {
            dir: Some(dir),
            socket,
            child,
        };
        daemon.wait_ready(Duration::from_secs(60));
        daemon
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's pid, from the pid file its shell wrote.
    pub fn pid(&self) -> i32 {
        let pid = std::fs::read_to_string(self.dir().join("d.pid")).expect("d.pid");
        pid.trim().parse().expect("pid")
    }

    /// SIGKILLs the daemon and starts a new one on the same directories and socket, in the
    /// same network namespace (kept alive by the shims), as a restarted host daemon would be.
    pub fn kill_and_restart(&mut self) {
        self.kill_and_restart_with(|| {});
    }

    /// As `kill_and_restart`, running `while_down` between the kill and the new start.
    pub fn kill_and_restart_with(&mut self, while_down: impl FnOnce()) {
        let pid = self.pid();
        // Held open across the kill (and handed to nsenter), so the namespace outlives
        // every process in it, as a host's network does.
        let netns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("daemon netns");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
        nix::fcntl::fcntl(
            &netns,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .expect("let nsenter inherit the namespace");
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the daemon");
        let status = self.child.wait().expect("wait for the killed daemon");
        assert!(!status.success(), "the killed daemon exited with {status}");
        while_down();
        let ns = format!("--net=/proc/self/fd/{fd}");
        self.child = spawn(self.dir(), &["nsenter", &ns], "");
        drop(netns);
        self.wait_ready(Duration::from_secs(60));
    }

    /// Polls `GET /_ping` until the daemon answers OK within `limit`; fails at once, with its
    /// log, if it exits.
    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ping(&self.socket) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon exited ({status}) before answering /_ping:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the daemon did not answer /_ping on {} within {limit:?}:\n{}",
            self.socket.display(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("log")).unwrap_or_default()
    }

    /// The docker CLI against this daemon (its own config dir, nothing of the host's).
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// The docker CLI; requires success; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports a busybox root filesystem (scripts/busybox-rootfs.sh) as `image` with
    /// `docker import`.
    pub fn import_busybox(&self, image: &str) {
        let rootfs = self.dir().join("rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let made = Command::new(script)
            .arg(&rootfs)
            .stdout(Stdio::null())
            .status()
            .expect("busybox-rootfs.sh");
        assert!(made.success(), "busybox-rootfs.sh failed");
        let tar = self.dir().join("rootfs.tar");
        let tarred = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(tarred.success(), "tar failed");
        let out = self.docker_ok(&["import", tar.to_str().expect("utf-8"), image]);
        assert!(out.trim().starts_with("sha256:"), "import printed {out:?}");
        std::fs::remove_dir_all(&rootfs).expect("remove rootfs");
    }

    /// The actions of the events of container `name` so far. The end is given to the
    /// nanosecond: `--until 0s` is the current second, which would leave out this second's.
    pub fn events_of(&self, name: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let until = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let filter = format!("container={name}");
        self.docker_ok(&[
            "events",
            "--since",
            "5m",
            "--until",
            &until,
            "--filter",
            &filter,
            "--format",
            "{{.Action}}",
        ])
    }

    /// Runs `program` inside the daemon's network namespace.
    pub fn in_netns(&self, program: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid()))
            .args(program)
            .output()
            .expect("nsenter")
    }

    /// Removes every container, stops the daemon with SIGTERM and asserts that no shim and no
    /// mount under its directory is left, then removes the directory.
    pub fn finish(mut self) {
        self.remove_containers();
        let left = self.docker_ok(&["ps", "-aq"]);
        assert!(left.trim().is_empty(), "containers left: {left}");
        // Seen from the daemon's own mount namespace, which may be private.
        let mounts = mounts_under_in(self.pid(), self.dir());
        assert!(mounts.is_empty(), "the daemon's mounts left: {mounts:?}");
        self.stop();
        let dir = self.dir.take().expect("dir");
        let shims = shims_of(dir.path());
        let mounts = mounts_under(dir.path());
        let path = dir.path().to_owned();
        let closed = dir.close();
        assert!(shims.is_empty(), "berth-shim processes left: {shims:?}");
        assert!(
            mounts.is_empty(),
            "mounts left under {}: {mounts:?}",
            path.display()
        );
        closed.expect("remove the test directory");
    }

    fn remove_containers(&self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
    }

    fn stop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir().join("d.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        if !wait_child(&mut self.child, Duration::from_secs(30)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "the daemon did not stop within 30s of SIGTERM:\n{}",
                self.log()
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(dir) = self.dir.as_ref().map(|d| d.path().to_owned()) else {
            return;
        };
        // A failed test: clean up as well as possible, without asserting.
        self.remove_containers();
        if let Ok(pid) = std::fs::read_to_string(dir.join("d.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        if !wait_child(&mut self.child, Duration::from_secs(30)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in shims_of(&dir) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(dir.join("root"))
            .stderr(Stdio::null())
            .status();
        eprintln!("daemon log:\n{}", self.log());
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

fn spawn(dir: &Path, prefix: &[&str], setup: &str) -> Child {
    // Flags a test added (start_with), kept for a restart.
    let extra = std::fs::read_to_string(dir.join("extra-flags")).unwrap_or_default();
    let script = format!(
        "{setup}echo $$ > {pid} && exec {berth} daemon --root {root} --run-root {run} --socket {sock} {extra}",
        pid = dir.join("d.pid").display(),
        berth = BERTH,
        root = dir.join("root").display(),
        run = dir.join("run").display(),
        sock = dir.join("d.sock").display(),
    );
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .expect("log file");
    Command::new(prefix[0])
        .args(&prefix[1..])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the daemon")
}

/// One HTTP/1.0 request written by hand: the readiness probe.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: berth\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

fn wait_child(child: &mut Child, limit: Duration) -> bool {
    eventually(limit, || matches!(child.try_wait(), Ok(Some(_))))
}

/// Retries `check` until it holds, within `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn processes() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// berth-shim processes whose command line mentions `dir`.
pub fn shims_of(dir: &Path) -> Vec<i32> {
    let dir = dir.to_string_lossy().into_owned();
    processes()
        .into_iter()
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("berth-shim") && cmd.contains(&dir)
        })
        .collect()
}

/// Mount points under `dir` in this mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    mounts_under_in(std::process::id() as i32, dir)
}

/// Mount points under `dir` in the mount namespace of process `pid`.
pub fn mounts_under_in(pid: i32, dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// A running docker-registry, stopped when dropped (a failing test included).
pub struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A docker-registry on `addr` in the daemon's network namespace, storing under its directory.
pub fn registry_at(d: &Daemon, addr: &str) -> Registry {
    let dir = d.dir();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
        dir.join("registry").display()
    );
    std::fs::write(dir.join("registry.yml"), config).expect("registry config");
    require("/usr/bin/docker-registry", "docker-registry");
    let child = Registry(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", d.pid()))
            .args(["/usr/bin/docker-registry", "serve"])
            .arg(dir.join("registry.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry"),
    );
    let (host, port) = addr.split_once(':').expect("host:port");
    let probe = format!("echo > /dev/tcp/{host}/{port}");
    let up = eventually(Duration::from_secs(30), || {
        d.in_netns(&["bash", "-c", &probe]).status.success()
    });
    assert!(up, "docker-registry did not listen on {addr}");
    child
}
