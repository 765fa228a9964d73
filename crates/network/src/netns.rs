//! Network namespaces: a sandbox's namespace is a bind mount of its nsfs inode on a file under
//! the run root, so it outlives the process that made it and the runtime can join it by path.
//!
//! Namespaces are per thread. Everything here that switches namespace does so synchronously on
//! the calling thread and switches back before returning (no `.await` in between), so an async
//! runtime's worker thread is never left in the wrong namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
}

impl Netns {
    /// The calling thread's network namespace: the "host" side for everything berth makes.
    pub fn current() -> Result<Netns> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// A namespace by path (a bind-mounted nsfs file or /proc/PID/ns/net).
    pub fn open(path: &Path) -> Result<Netns> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        Ok(Netns {
            fd: OwnedFd::from(file),
        })
    }

    /// Makes a new namespace and pins it at `path` (created; must not exist yet).
    pub fn create_at(path: &Path) -> Result<Netns> {
        File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let made = Self::in_new_namespace(|| {
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::sys(format!("bind the new namespace onto {}", path.display()), e))
        });
        match made.and_then(|()| Self::open(path)) {
            Ok(ns) => Ok(ns),
            Err(e) => {
                let _ = remove_pinned(path);
                Err(e)
            }
        }
    }

    /// Runs `f` on this thread while it is in a fresh network namespace, then returns to the
    /// thread's own.
    fn in_new_namespace<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
        let home = Self::current()?;
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::sys("unshare a network namespace".into(), e))?;
        let result = f();
        home.enter_for_good()?;
        result
    }

    /// Runs `f` on this thread inside this namespace, then returns to the thread's own.
    pub fn run_in<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let home = Self::current()?;
        self.enter_for_good()?;
        let result = f();
        home.enter_for_good()?;
        result
    }

    fn enter_for_good(&self) -> Result<()> {
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::sys("enter a network namespace".into(), e))
    }

    /// A route-netlink handle that talks to this namespace, whichever thread uses it: a netlink
    /// socket belongs to the namespace it was made in. Must be called inside a tokio runtime.
    pub fn route_handle(&self) -> Result<rtnetlink::Handle> {
        let socket = self.run_in(|| {
            let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE)
                .map_err(|e| Error::io("open a netlink socket".into(), e))?;
            socket
                .bind_auto()
                .map_err(|e| Error::io("bind a netlink socket".into(), e))?;
            Ok(socket)
        })?;
        socket
            .set_non_blocking(true)
            .map_err(|e| Error::io("make a netlink socket non-blocking".into(), e))?;
        // SAFETY: the fd was just taken out of a live, bound, non-blocking netlink socket and
        // is owned by nothing else.
        let socket = unsafe { netlink_sys::TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Ok(handle)
    }

    /// Makes `cmd`'s child enter this namespace before it execs: the caller's threads may be
    /// anywhere, the program runs here. The namespace must stay open until the child exits.
    pub fn enter_on_exec(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let ns = self.raw_fd();
        // SAFETY: between fork and exec the child only calls setns(2), which is
        // async-signal-safe, on an fd the parent keeps open while the child runs.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether two handles name the same namespace.
    pub fn same_as(&self, other: &Netns) -> bool {
        let (a, b) = (
            nix::sys::stat::fstat(self.fd.as_fd()),
            nix::sys::stat::fstat(other.fd.as_fd()),
        );
        matches!((a, b), (Ok(a), Ok(b)) if a.st_ino == b.st_ino && a.st_dev == b.st_dev)
    }

    /// Writes a sysctl under /proc/sys/net as seen from this namespace (they are per namespace).
    pub fn write_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.run_in(|| {
            std::fs::write(&path, value)
                .map_err(|e| Error::io(format!("set {key}={value} ({})", path.display()), e))
        })
    }
}

/// Unpins a sandbox namespace: unmounts and removes its file. Missing is fine (idempotent, so
/// cleanup after a crash can call it blindly).
pub fn remove_pinned(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("unmount {}", path.display()), e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Whether `path` is a pinned namespace (an nsfs mount), not just a leftover file.
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}
