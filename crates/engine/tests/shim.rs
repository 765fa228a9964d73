//! The shim with real busybox containers: output into the json-file log, the exit status
//! recorded, the runtime's state gone afterwards, detachment from whoever started it.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_engine::logs::{self, Query, Stream};
use berth_engine::shim::{self, ShimSpec};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A busybox bundle (Debian's busybox-static) running `args`, without a terminal.
    fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let bundle = self.dir.path().join(name);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let made = Command::new(script)
            .arg(bundle.join("rootfs"))
            .output()
            .expect("scripts/busybox-rootfs.sh runs");
        assert!(made.status.success(), "{made:?}");
        let mut spec = berth_runtime::spec::default_spec(false);
        let mut process = spec.process().clone().unwrap();
        process.set_terminal(Some(false));
        process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        spec.set_process(Some(process));
        spec.set_hostname(Some("shimmed".into()));
        spec.save(bundle.join("config.json")).unwrap();
        bundle
    }

    fn spec(&self, id: &str, bundle: &Path) -> ShimSpec {
        ShimSpec {
            id: id.into(),
            bundle: bundle.to_path_buf(),
            runtime_root: self.dir.path().join("runtime"),
            dir: self.dir.path().join("containers").join(id),
            log: Some(Default::default()),
            ..Default::default()
        }
    }

    /// The runtime's state root holds no container any more.
    fn assert_runtime_state_gone(&self) {
        let left: Vec<_> = std::fs::read_dir(self.dir.path().join("runtime"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "runtime state left: {left:?}");
    }
}

fn program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-shim"))
}

/// Blocks until the process `pid` (not our child) has exited, through a pidfd.
fn wait_gone(pid: i32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return; // already gone
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::NONE).expect("poll the pidfd");
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[test]
fn output_goes_to_the_log_and_the_exit_status_is_recorded() {
    let f = Fixture::new();
    let bundle = f.bundle(
        "b",
        &["sh", "-c", "echo out; echo err >&2; hostname; exit 3"],
    );
    let spec = f.spec("c1", &bundle);
    let started = shim::start(&program(), &spec).unwrap();
    assert!(started.pid > 0 && started.shim_pid > 0);
    wait_gone(started.shim_pid);
    let exit = shim::exit_of(&spec).unwrap().expect("exit.json is written");
    assert_eq!((exit.code, exit.signal), (3, None));
    let entries = logs::read(&spec.log_path(), &Query::default()).unwrap();
    let out: Vec<_> = entries
        .iter()
        .filter(|e| e.stream == Stream::Stdout)
        .map(|e| e.log.as_str())
        .collect();
    let err: Vec<_> = entries
        .iter()
        .filter(|e| e.stream == Stream::Stderr)
        .map(|e| e.log.as_str())
        .collect();
    assert_eq!(out, ["out\n", "shimmed\n"]);
    assert_eq!(err, ["err\n"]);
    f.assert_runtime_state_gone();
    assert!(!alive(started.pid));
}

#[test]
fn a_killed_container_reports_128_plus_the_signal() {
    let f = Fixture::new();
    let bundle = f.bundle("b", &["sleep", "100"]);
    let spec = f.spec("c2", &bundle);
    let started = shim::start(&program(), &spec).unwrap();
    // The shim leads its own session, and it is not our child: the daemon may die and
    // the container lives on.
    assert_eq!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(started.shim_pid))).unwrap(),
        nix::unistd::Pid::from_raw(started.shim_pid)
    );
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", started.shim_pid)).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id() as i32);
    berth_runtime::Runtime::new(&spec.runtime_root)
        .kill("c2", libc::SIGKILL, false)
        .unwrap();
    wait_gone(started.shim_pid);
    let exit = shim::exit_of(&spec).unwrap().unwrap();
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    f.assert_runtime_state_gone();
}

#[test]
fn a_container_that_cannot_be_made_is_reported_and_leaves_nothing() {
    let f = Fixture::new();
    let bundle = f.bundle("b", &["/bin/true"]);
    std::fs::remove_dir_all(bundle.join("rootfs")).unwrap();
    let spec = f.spec("c3", &bundle);
    let err = shim::start(&program(), &spec).unwrap_err().to_string();
    assert!(err.contains("rootfs"), "{err}");
    assert!(shim::exit_of(&spec).unwrap().is_none());
    f.assert_runtime_state_gone();
}
