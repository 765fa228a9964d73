//! The world each engine test runs in: a fresh network namespace standing in for the host,
//! a temporary root, a busybox root filesystem, and a check at the end that nothing of the
//! engine's is left behind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_engine::{Config, Engine, Settings};
use berth_network::netns::{self, Netns};

pub struct World {
    dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
        };
        let rootfs = w.rootfs();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let made = Command::new(script).arg(&rootfs).output().unwrap();
        assert!(made.status.success(), "{made:?}");
        std::fs::write(w.dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        w
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn settings(&self) -> Settings {
        let mut s = Settings::new(
            &self.dir.path().join("root"),
            &self.dir.path().join("run"),
            Path::new(env!("CARGO_BIN_EXE_berth-shim")),
        );
        s.network.resolv_conf = self.dir.path().join("resolv.conf");
        s
    }

    /// Runs `test` on a thread inside a fresh namespace standing in for the host, then checks
    /// that nothing of the engine's is left: no runtime state, no sandbox, no shim.
    pub fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Engine, Settings, PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Engine>,
    {
        let host = self.dir.path().join("host-ns");
        Netns::create_at(&host).unwrap();
        let (settings, rootfs) = (self.settings(), self.rootfs());
        let run_root = self.dir.path().join("run");
        let h = host.clone();
        let outcome = std::thread::spawn(move || {
            Netns::open(&h).unwrap().run_in(|| {
                Command::new("ip")
                    .args(["link", "set", "lo", "up"])
                    .status()
                    .unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let engine = Engine::open(settings.clone()).await.unwrap();
                    let engine = test(engine, settings, rootfs).await;
                    for c in engine.list().await.unwrap() {
                        engine.remove(&c.id, true).await.unwrap();
                    }
                    engine.network().reset().await.unwrap();
                });
                Ok(())
            })
        })
        .join();
        netns::remove_pinned(&host).unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        let left = |p: PathBuf| -> Vec<_> {
            std::fs::read_dir(p)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default()
        };
        // The runtime's root keeps only its cache of compiled seccomp filters.
        let runtime_left: Vec<_> = left(run_root.join("runtime"))
            .into_iter()
            .filter(|n| n != berth_runtime::state::SECCOMP_CACHE)
            .collect();
        assert!(
            runtime_left.is_empty(),
            "runtime state left: {runtime_left:?}"
        );
        assert!(
            left(run_root.join("network/netns")).is_empty(),
            "sandboxes left"
        );
        assert!(left(run_root.join("containers")).is_empty(), "bundles left");
        let mine = self.dir.path().to_string_lossy().into_owned();
        for pid in processes_naming(&mine) {
            // A shim may still be closing its clients: it must end on its own.
            assert!(wait_gone(pid, 20_000), "process {pid} of the test is left");
        }
        assert!(left(run_root.join("sockets")).is_empty(), "sockets left");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&mine), "mounts left under {mine}");
    }
}

/// Processes whose command line names `text` (each shim's spec names its directories).
fn processes_naming(text: &str) -> Vec<i32> {
    let own = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(text))
                .unwrap_or(false)
        })
        .collect()
}

/// Waits up to `ms` for process `pid` (not our child) to exit, through a pidfd.
pub fn wait_gone(pid: i32, ms: u16) -> bool {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return true;
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut fds, ms).unwrap_or(0) > 0
}

pub fn config(rootfs: &Path, network: &str, cmd: &[&str]) -> Config {
    Config {
        rootfs: rootfs.to_path_buf(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        network: network.into(),
        ..Default::default()
    }
}
