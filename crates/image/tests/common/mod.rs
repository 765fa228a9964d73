//! Test fixtures: a real docker-registry on 127.0.0.1, busybox root filesystems, tree
//! comparison, overlay mounts that are always undone.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_image::images::ImageRecord;
use berth_image::progress::ProgressSink;
use berth_image::{ImageService, Options};

/// A docker-registry process with its own storage, killed and removed on drop.
pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub async fn start() -> Registry {
        Self::start_with(None).await
    }

    /// With `Some((user, password))`, the registry requires Basic auth (htpasswd, bcrypt).
    pub async fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 5).unwrap();
            fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        fs::write(&cfg, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut r = Registry { port, dir, child };
        r.wait_ready().await;
        r
    }

    /// Polls GET /v2/ until the registry answers (200, or 401 when it wants auth).
    async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/v2/", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() || r.status() == 401 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry not ready after 30s"
            );
            // Not synchronisation: the loop waits on the HTTP answer; this only paces the polls.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's on-disk copy of a blob (to corrupt it in tests).
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A berth image root in its own tempdir, with credentials kept there too.
pub struct Root {
    pub dir: tempfile::TempDir,
    pub svc: ImageService,
}

impl Root {
    pub fn new() -> Root {
        Self::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Options)) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::new(dir.path().join("root"));
        opts.registry.credentials = dir.path().join("docker/config.json");
        f(&mut opts);
        let svc = ImageService::open(opts).unwrap();
        Root { dir, svc }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Imports the busybox root filesystem (made once at `rootfs`, tarred at `r.tar`) as
    /// the image `name`.
    pub fn import_busybox(&self, name: &str) -> ImageRecord {
        let rootfs = self.path("rootfs");
        if !rootfs.exists() {
            busybox_rootfs(&rootfs);
            fs::write(self.path("r.tar"), tar_dir(&rootfs)).unwrap();
        }
        self.svc
            .import(&self.path("r.tar"), Some(name), &ProgressSink::default())
            .unwrap()
    }

    /// The same, then pushed to `name`'s registry.
    pub async fn push_busybox(&self, name: &str) -> ImageRecord {
        let img = self.import_busybox(name);
        self.svc
            .push(name, None, &ProgressSink::default())
            .await
            .unwrap();
        img
    }
}

/// A small root filesystem: Debian's static busybox with applet symlinks, a few files
/// with different owners and modes, a hard link, a device node, an xattr.
pub fn busybox_rootfs(dest: &Path) {
    for d in ["bin", "etc", "tmp", "var/log", "dev", "root", "home/user"] {
        fs::create_dir_all(dest.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", dest.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        symlink("busybox", dest.join("bin").join(applet)).unwrap();
    }
    fs::write(
        dest.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    fs::write(dest.join("etc/hostname"), "berth\n").unwrap();
    fs::hard_link(dest.join("etc/hostname"), dest.join("etc/hostname.link")).unwrap();
    fs::set_permissions(dest.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(dest.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(dest.join("home/user/.profile"), "export PS1='$ '\n").unwrap();
    std::os::unix::fs::chown(dest.join("home/user"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(dest.join("home/user/.profile"), Some(1000), Some(1000)).unwrap();
    fs::write(dest.join("var/log/empty.log"), "").unwrap();
    fs::set_permissions(
        dest.join("var/log/empty.log"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &dest.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
}

/// A tar of a directory tree (symlinks as symlinks, owners, modes, devices, hard links).
pub fn tar_dir(src: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", src).unwrap();
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// One line per file: type, mode, owner, size, content digest or link target.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link -> {}", fs::read_link(e.path()).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            format!(
                "file {} {}",
                m.len(),
                berth_image::Digest::of(&fs::read(e.path()).unwrap())
            )
        } else {
            format!("special rdev={}", m.rdev())
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel,
            format!("{what} mode={mode:o} uid={} gid={}", m.uid(), m.gid()),
        );
    }
    out
}

/// Asserts two trees are equal, naming the first differences.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let (a, b) = (tree(expected), tree(actual));
    let diffs: Vec<String> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .take(10)
        .map(|k| format!("{k}: expected {:?}, got {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    assert!(!a.is_empty());
}

/// An overlay mount undone on drop, so a failing assertion leaves no mount behind.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mounts an image from `root` at `<base>/merged` with a fresh upper dir.
pub fn mount_image(root: &Root, image: &str, base: &Path) -> Mounted {
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for d in [&upper, &work, &merged] {
        fs::create_dir_all(d).unwrap();
    }
    root.svc.mount(image, &upper, &work, &merged).unwrap();
    Mounted(merged)
}

/// No mount under `dir` is left.
pub fn assert_no_mounts_under(dir: &Path) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.display().to_string();
    assert!(
        !info.lines().any(|l| l.contains(&d)),
        "mount left under {d}"
    );
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
