//! The container's filesystem view: its root, the mounts from config.json, /dev, and the
//! paths hidden or made read-only after the root is pivoted. Runs in the child, inside the new
//! mount namespace, before the user's program exists.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, chown, chroot, pivot_root, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{Context, Error, Result};
use crate::mount_options::{propagation_of, Options};
use crate::paths::secure_join;

/// Everything rootfs setup needs to know besides the spec.
pub struct Setup<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: PathBuf,
    /// In a new user namespace device nodes cannot be made; host nodes are bind-mounted instead.
    pub in_new_userns: bool,
    pub cgroup: Option<&'a berth_cgroups::Cgroup>,
    pub new_cgroupns: bool,
    /// Called before the first cgroup mount: the cgroup is made concurrently by the parent.
    pub before_cgroup_mount: &'a dyn Fn() -> Result<()>,
}

/// A device node to make in the container (or, in a user namespace, the host's to bind).
struct Node<'a> {
    host: &'a Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices every container gets, as runc and Docker give them.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The rootfs path of a bundle: `root.path`, relative to the bundle unless absolute.
pub fn rootfs_of(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or_else(|| {
        Error::invalid(
            "config.json has no \"root\": set root.path to the container's root filesystem",
        )
    })?;
    let path = bundle.join(root.path());
    if !path.is_dir() {
        return Err(Error::invalid(format!(
            "root filesystem {} does not exist or is not a directory: check root.path in config.json",
            path.display()
        )));
    }
    Ok(path)
}

impl Setup<'_> {
    /// Everything before pivot_root: propagation, the root bind, config mounts, /dev.
    pub fn prepare(&self) -> Result<()> {
        let linux = self.spec.linux().as_ref();
        let propagation = linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .map(|p| {
                propagation_of(p).ok_or_else(|| {
                    Error::invalid(format!(
                        "linux.rootfsPropagation {p:?} is not one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable"
                    ))
                })
            })
            .transpose()?;
        // Nothing we mount may leak back to the host; host mounts may still flow in (slave).
        let root_prop = propagation
            .filter(|p| !p.contains(MsFlags::MS_SHARED))
            .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        mount_flags_only(Path::new("/"), root_prop | MsFlags::MS_REC)?;
        // pivot_root needs the new root to be a mount point.
        bind(&self.rootfs, &self.rootfs, true)?;
        for m in self.spec.mounts().iter().flatten() {
            self.mount_one(m)?;
        }
        self.make_devices()?;
        self.make_dev_links()?;
        self.make_cwd()
    }

    fn mount_one(&self, m: &Mount) -> Result<()> {
        let opts = Options::parse(m.options().as_deref().unwrap_or_default());
        let typ = m
            .typ()
            .as_deref()
            .unwrap_or(if opts.is_bind() { "bind" } else { "" });
        let dest = secure_join(&self.rootfs, m.destination())?;
        if !m.destination().is_absolute() {
            return Err(Error::invalid(format!(
                "mount destination {} must be absolute",
                m.destination().display()
            )));
        }
        match typ {
            "bind" => self.mount_bind(m, &opts, &dest)?,
            "cgroup" | "cgroup2" => {
                (self.before_cgroup_mount)()?;
                self.mount_cgroup(&opts, &dest)?
            }
            "" => {
                return Err(Error::invalid(format!(
                    "mount {} has no type: set \"type\" (e.g. tmpfs, proc, bind)",
                    m.destination().display()
                )))
            }
            fstype => self.mount_fs(m, fstype, &opts, &dest)?,
        }
        for p in &opts.propagation {
            mount_flags_only(&dest, *p)?;
        }
        Ok(())
    }

    fn mount_bind(&self, m: &Mount, opts: &Options, dest: &Path) -> Result<()> {
        let source = m.source().as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "bind mount {} has no source",
                m.destination().display()
            ))
        })?;
        let source = self.bundle.join(source);
        let meta = fs::metadata(&source).map_err(|e| Error::Path {
            context: "bind mount source",
            path: source.clone(),
            source: e,
        })?;
        if meta.is_dir() {
            mkdir_all(dest)?;
        } else {
            touch(dest)?;
        }
        let recursive = opts.flags.contains(MsFlags::MS_REC);
        bind(&source, dest, recursive)?;
        let extra = opts.remount_flags();
        if !extra.is_empty() {
            remount_bind(dest, extra)?;
        }
        Ok(())
    }

    fn mount_fs(&self, m: &Mount, fstype: &str, opts: &Options, dest: &Path) -> Result<()> {
        mkdir_all(dest)?;
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| fstype.to_string());
        let data = opts.data();
        if opts.tmpcopyup && fstype == "tmpfs" {
            return tmpcopyup(&source, dest, opts.flags, data.as_deref());
        }
        let res = mount(
            Some(source.as_str()),
            dest,
            Some(fstype),
            opts.flags,
            data.as_deref(),
        );
        match res {
            // sysfs can only be mounted by the owner of the network namespace; without one of
            // our own, give the host's read-only, as runc does.
            Err(nix::errno::Errno::EPERM) if fstype == "sysfs" => {
                bind(Path::new("/sys"), dest, true)?;
                remount_bind(dest, opts.flags | MsFlags::MS_RDONLY)
            }
            other => other.context(|| format!("mount {fstype} on {}", m.destination().display())),
        }
    }

    /// /sys/fs/cgroup inside the container: its own cgroup as the root of each hierarchy.
    fn mount_cgroup(&self, opts: &Options, dest: &Path) -> Result<()> {
        let Some(cgroup) = self.cgroup else {
            return Err(Error::invalid(
                "a cgroup mount needs the container to have cgroups",
            ));
        };
        crate::cgroup_mount::mount(cgroup, dest, opts.flags, self.new_cgroupns)
    }

    fn make_devices(&self) -> Result<()> {
        let linux = self.spec.linux().as_ref();
        let configured = linux.and_then(|l| l.devices().as_ref());
        for (path, major, minor) in DEFAULT_DEVICES {
            let dest = secure_join(&self.rootfs, Path::new(path))?;
            if dest.parent().is_some_and(|p| p.is_dir()) {
                let node = Node {
                    host: Path::new(path),
                    kind: SFlag::S_IFCHR,
                    major,
                    minor,
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                };
                self.make_device(&dest, &node)?;
            }
        }
        for d in configured.into_iter().flatten() {
            self.make_configured_device(d)?;
        }
        Ok(())
    }

    fn make_configured_device(&self, d: &LinuxDevice) -> Result<()> {
        if !d.path().is_absolute() || !d.path().starts_with("/dev") {
            return Err(Error::invalid(format!(
                "linux.devices path {} must be under /dev",
                d.path().display()
            )));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::invalid(format!(
                    "linux.devices {}: type must be c, b, u or p",
                    d.path().display()
                )))
            }
        };
        let dest = secure_join(&self.rootfs, d.path())?;
        if let Some(parent) = dest.parent() {
            mkdir_all(parent)?;
        }
        let node = Node {
            host: d.path(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        self.make_device(&dest, &node)
    }

    fn make_device(&self, dest: &Path, n: &Node) -> Result<()> {
        if self.in_new_userns {
            // mknod is refused in a user namespace: expose the host's node instead.
            touch(dest)?;
            return bind(n.host, dest, false);
        }
        let (mode, uid, gid) = (n.mode, n.uid, n.gid);
        match mknod(
            dest,
            n.kind,
            Mode::from_bits_truncate(mode & 0o7777),
            makedev(n.major, n.minor),
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).context(|| format!("mknod {}", dest.display())),
        }
        // mknod's mode is filtered by the umask; set it exactly.
        fs::set_permissions(dest, fs::Permissions::from_mode(mode & 0o7777))
            .context(|| format!("chmod {}", dest.display()))?;
        chown(dest, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .context(|| format!("chown {}", dest.display()))
    }

    fn make_dev_links(&self) -> Result<()> {
        let dev = secure_join(&self.rootfs, Path::new("/dev"))?;
        if !dev.is_dir() {
            return Ok(());
        }
        let mut links = vec![
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ];
        if Path::new("/proc/kcore").exists() {
            links.push(("/proc/kcore", "core"));
        }
        if dev.join("pts").is_dir() {
            // The container's ptys come from its own devpts instance.
            let _ = fs::remove_file(dev.join("ptmx"));
            links.push(("pts/ptmx", "ptmx"));
        }
        for (target, name) in links {
            match symlink(target, dev.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).context(|| format!("symlink /dev/{name}")),
            }
        }
        Ok(())
    }

    /// The working directory is created if the image lacks it, as runc does.
    fn make_cwd(&self) -> Result<()> {
        let Some(process) = self.spec.process().as_ref() else {
            return Ok(());
        };
        let cwd = process.cwd();
        if !cwd.is_absolute() {
            return Err(Error::invalid(format!(
                "process.cwd {} must be an absolute path",
                cwd.display()
            )));
        }
        mkdir_all(&secure_join(&self.rootfs, cwd)?)
    }
}

/// Makes `rootfs` the root: pivot_root(".", ".") and detach the old root stacked beneath,
/// or, with `no_pivot`, move the rootfs over / and chroot (for ramdisk roots).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    chdir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .context(|| "move the rootfs onto /".into())?;
        chroot(".").context(|| "chroot".into())?;
    } else {
        pivot_root(".", ".").context(|| "pivot_root".into())?;
        // The old root is now mounted on top of the new one; stop its events reaching the
        // host before detaching it.
        mount_flags_only(Path::new("."), MsFlags::MS_SLAVE | MsFlags::MS_REC)?;
        umount2(".", MntFlags::MNT_DETACH).context(|| "detach the old root".into())?;
    }
    chdir("/").context(|| "chdir /".into())
}

/// After pivot: sysctls are written by the caller first; then read-only and masked paths,
/// the read-only root and the root's final propagation.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(Path::new(p))?;
    }
    let readonly_root = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if readonly_root {
        remount_bind(Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if let Some(flags) = propagation_of(p) {
            mount_flags_only(Path::new("/"), flags)?;
        }
    }
    Ok(())
}

fn readonly_path(path: &Path) -> Result<()> {
    match bind(path, path, true) {
        Err(Error::Sys {
            source: nix::errno::Errno::ENOENT,
            ..
        }) => Ok(()),
        Err(e) => Err(e),
        Ok(()) => remount_bind(path, MsFlags::MS_RDONLY | MsFlags::MS_REC),
    }
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask_path(path: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(()); // nothing there to hide
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .context(|| format!("mask {}", path.display()))
    } else {
        bind(Path::new("/dev/null"), path, false)
    }
}

fn bind(source: &Path, dest: &Path, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), dest, None::<&str>, flags, None::<&str>)
        .context(|| format!("bind {} on {}", source.display(), dest.display()))
}

/// Remounts a bind mount with `flags` added to the ones it already has: the kernel refuses a
/// remount that would clear a locked flag such as nosuid, so the existing ones are kept.
fn remount_bind(dest: &Path, flags: MsFlags) -> Result<()> {
    let current = nix::sys::statvfs::statvfs(dest)
        .map(|s| vfs_to_ms(s.flags()))
        .unwrap_or(MsFlags::empty());
    let flags = flags & !MsFlags::MS_REC;
    mount(
        None::<&str>,
        dest,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | current | flags,
        None::<&str>,
    )
    .context(|| format!("remount {} with {flags:?}", dest.display()))
}

fn vfs_to_ms(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags as F;
    let pairs = [
        (F::ST_RDONLY, MsFlags::MS_RDONLY),
        (F::ST_NOSUID, MsFlags::MS_NOSUID),
        (F::ST_NODEV, MsFlags::MS_NODEV),
        (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (F::ST_NOATIME, MsFlags::MS_NOATIME),
        (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (F::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(v, _)| f.contains(*v))
        .fold(MsFlags::empty(), |acc, (_, m)| acc | *m)
}

fn mount_flags_only(dest: &Path, flags: MsFlags) -> Result<()> {
    mount(None::<&str>, dest, None::<&str>, flags, None::<&str>)
        .context(|| format!("set propagation {flags:?} on {}", dest.display()))
}

/// A tmpfs over `dest` that starts with a copy of what `dest` held.
fn tmpcopyup(source: &str, dest: &Path, flags: MsFlags, data: Option<&str>) -> Result<()> {
    let staging = tempdir_in_run()?;
    let res = (|| {
        mount(Some(source), &staging, Some("tmpfs"), flags, data)
            .context(|| format!("mount tmpfs for {}", dest.display()))?;
        copy_tree(dest, &staging)?;
        mount(
            Some(&staging),
            dest,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .context(|| format!("move tmpfs onto {}", dest.display()))
    })();
    let _ = fs::remove_dir(&staging);
    res
}

fn tempdir_in_run() -> Result<PathBuf> {
    // We are in a private mount namespace: a name under /tmp of the host cannot collide
    // with another container's because the pid is ours.
    let dir = std::env::temp_dir().join(format!(".berth-copyup-{}", std::process::id()));
    fs::create_dir_all(&dir).context(|| format!("mkdir {}", dir.display()))?;
    Ok(dir)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.context(|| format!("read {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src).context(|| format!("stat {}", src.display()))?;
        if meta.is_dir() {
            fs::create_dir(&dst).context(|| format!("mkdir {}", dst.display()))?;
            fs::set_permissions(&dst, meta.permissions())
                .context(|| format!("chmod {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).context(|| format!("readlink {}", src.display()))?;
            symlink(target, &dst).context(|| format!("symlink {}", dst.display()))?;
        } else {
            fs::copy(&src, &dst).context(|| format!("copy {}", src.display()))?;
        }
    }
    Ok(())
}

pub fn mkdir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| Error::Path {
        context: "cannot create directory",
        path: path.to_path_buf(),
        source,
    })
}

fn touch(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    match fs::OpenOptions::new().create(true).append(true).open(path) {
        Ok(_) => Ok(()),
        // A directory or device already there is a fine mount point too.
        Err(_) if path.exists() => Ok(()),
        Err(source) => Err(Error::Path {
            context: "cannot create mount point",
            path: path.to_path_buf(),
            source,
        }),
    }
}
