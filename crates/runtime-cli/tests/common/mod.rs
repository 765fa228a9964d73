//! Test harness: busybox bundles in a temporary directory, the berth-runtime binary with its
//! own --root, and checks that a container left nothing behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Harness {
    pub fn new() -> Harness {
        let tmp = tempfile::Builder::new()
            .prefix("berth-rt-test.")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("state");
        Harness { tmp, root }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A busybox bundle named `name` whose process runs `args`.
    pub fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let dir = self.path(name);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-bundle.sh");
        let out = Command::new(script)
            .arg(&dir)
            .arg(BIN)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bundle: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    }

    /// A tarball of a busybox root filesystem, for engines that import images (docker,
    /// podman).
    pub fn busybox_tar(&self) -> PathBuf {
        let rootfs = self.path("rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        assert!(Command::new(script)
            .arg(&rootfs)
            .status()
            .unwrap()
            .success());
        let tar = self.path("rootfs.tar");
        let tarred = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(tarred.success());
        tar
    }

    /// Changes the bundle's config.json.
    pub fn edit(&self, bundle: &Path, f: impl FnOnce(&mut Value)) {
        let path = bundle.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c
    }

    /// Runs berth-runtime with `args` and returns its output. Output goes through files, not
    /// pipes: a created container's init keeps the stdio it was given open after the runtime
    /// exits, so waiting for end-of-file on a pipe would wait for the container.
    pub fn rt(&self, args: &[&str]) -> Output {
        let mut cmd = self.cmd();
        cmd.args(args);
        run_to_files(&mut cmd)
    }

    /// Runs berth-runtime and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rt(args);
        assert!(
            out.status.success(),
            "berth-runtime {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Polls until the container's status is `want`, failing after a generous deadline.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = self.state(id);
            if st["status"] == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never became {want}: {st}");
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts the container left no state directory, cgroup or mount behind.
    pub fn assert_clean(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state directory of {id} is still there"
        );
        let cgroups = leftover_cgroups(id);
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let leaked: Vec<&str> = mounts.lines().filter(|l| l.contains(&tmp)).collect();
        assert!(leaked.is_empty(), "mounts left behind: {leaked:?}");
    }
}

/// A test that fails half-way must not leave its containers running: delete whatever is
/// left under this harness's root.
impl Drop for Harness {
    fn drop(&mut self) {
        let listed = self.rt(&["list", "--quiet"]);
        for id in String::from_utf8_lossy(&listed.stdout).lines() {
            let _ = self.rt(&["delete", "--force", id]);
        }
    }
}

/// Runs `cmd` with stdout and stderr in temporary files, waiting for its exit only.
pub fn run_to_files(cmd: &mut Command) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    cmd.stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let status = cmd.status().unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// Directories named `id` under any cgroup hierarchy (default path: <own cgroup>/berth/<id>).
pub fn leftover_cgroups(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        walk(&entry.path(), id, 0, &mut found);
    }
    found
}

fn walk(dir: &Path, id: &str, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > 6 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if e.file_name() == id {
                found.push(e.path());
            }
            walk(&e.path(), id, depth + 1, found);
        }
    }
}

/// A container id unique to this test process and call site.
pub fn cid(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
