//! Keeping the runtime binary safe from the containers it starts (the CVE-2019-5736 class).
//!
//! A process in a container can reach the host binary of any runtime process that enters the
//! container: through /proc/PID/exe, or by making its own /bin/sh a `#!/proc/self/exe` script
//! so that our exec of it runs the runtime again, inside the container. Once that process
//! exits, an O_PATH handle to the binary can be reopened for writing, and the next container
//! start runs the attacker's code as root on the host.
//!
//! Defence: before it enters any container, the runtime makes sure it runs from a read-only
//! mount. If the binary's filesystem is writable, it re-executes itself from a private,
//! read-only bind mount of its own file: `open_tree(OPEN_TREE_CLONE)` makes a detached copy
//! of the mount (visible in no mount namespace), `mount_setattr` makes it read-only, and
//! `execveat` runs the binary from it. Every later open of /proc/PID/exe for writing, from
//! anywhere, then fails with EROFS. The detached mount lives exactly as long as processes run
//! from it: there is nothing to clean up. The cost is three system calls and one exec, and
//! nothing at all when the binary is installed on a read-only filesystem. (Setup processes
//! are also non-dumpable, so they cannot be ptraced or opened through /proc meanwhile.)

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::{Context, Error, Result};

/// Set across the re-exec; finding it with a still-writable binary means the remount failed.
const REEXECED: &str = "_BERTH_RUNTIME_EXE_SEALED";

/// Returns once this process runs from a read-only mapping of its binary, re-executing with
/// the same arguments if needed (in which case this call does not return in this image).
pub fn ensure_readonly_exe(args: &[OsString]) -> Result<()> {
    let exe = Path::new("/proc/self/exe");
    if is_readonly(exe)? {
        std::env::remove_var(REEXECED);
        return Ok(());
    }
    if std::env::var_os(REEXECED).is_some() {
        return Err(Error::Init(
            "could not run the runtime from a read-only mount of itself; refusing to start containers from a writable binary".into(),
        ));
    }
    let sealed = readonly_clone_of(exe)?;
    std::env::set_var(REEXECED, "1");
    let argv = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("a NUL byte in the command line"))?;
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("a NUL byte in the environment"))?;
    let Err(source) = nix::unistd::execveat(
        &sealed,
        c"",
        &argv,
        &env,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    );
    Err(Error::Sys {
        context: "re-exec the runtime from its read-only copy".into(),
        source,
    })
}

/// Our binary on a detached read-only mount, for a child to re-execute from; None when we
/// already run from a read-only filesystem.
pub fn sealed_copy() -> Result<Option<OwnedFd>> {
    let exe = Path::new("/proc/self/exe");
    if is_readonly(exe)? {
        return Ok(None);
    }
    readonly_clone_of(exe).map(Some)
}

/// A descriptor for our binary on a detached, read-only bind mount of it.
fn readonly_clone_of(exe: &Path) -> Result<OwnedFd> {
    let path = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("a NUL byte in the runtime's path"))?;
    let flags = libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree reads the NUL-terminated path and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::Sys {
            context: "open_tree(OPEN_TREE_CLONE) on the runtime binary".into(),
            source: nix::errno::Errno::last(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr`, whose size we pass, from a valid pointer; the empty
    // path with AT_EMPTY_PATH names the detached mount behind `fd`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        return Err(Error::Sys {
            context: "mount_setattr(MOUNT_ATTR_RDONLY) on the runtime's copy".into(),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(fd)
}

fn is_readonly(path: &Path) -> Result<bool> {
    let st = statvfs(path).context(|| format!("statvfs {}", path.display()))?;
    Ok(st.flags().contains(FsFlags::ST_RDONLY))
}
