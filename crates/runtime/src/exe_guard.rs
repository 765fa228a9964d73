//! Keeping the runtime binary safe from the containers it starts (the CVE-2019-5736 class).
//!
//! A process in a container can reach the host binary of any runtime process that enters the
//! container: through /proc/PID/exe, or by making its own /bin/sh a `#!/proc/self/exe` script
//! so that our exec of it runs the runtime again, inside the container. Once that process
//! exits, an O_PATH handle to the binary can be reopened for writing, and the next container
//! start runs the attacker's code as root on the host.
//!
//! Defence: before it enters any container, the runtime makes sure it runs from a read-only
//! mount. If the binary's filesystem is writable, it re-executes itself from a read-only bind
//! mount of itself made in a private mount namespace: every later open of /proc/PID/exe,
//! from anywhere, then yields EROFS for writing. This costs one unshare, two mounts and one
//! exec, and nothing at all when the binary is installed on a read-only filesystem.
//! (Setup processes are also made non-dumpable, so they cannot be ptraced meanwhile.)

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
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
    let path = std::fs::read_link(exe).context(|| "readlink /proc/self/exe".into())?;
    unshare(CloneFlags::CLONE_NEWNS).context(|| "unshare a private mount namespace".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| "make / a slave mount".into())?;
    mount(
        Some(&path),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| format!("bind {} onto itself", path.display()))?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID;
    mount(None::<&str>, &path, None::<&str>, flags, None::<&str>)
        .context(|| format!("remount {} read-only", path.display()))?;
    std::env::set_var(REEXECED, "1");
    let argv = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("a NUL byte in the command line"))?;
    let prog = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("a NUL byte in the runtime's path"))?;
    let Err(source) = nix::unistd::execv(&prog, &argv);
    Err(Error::Sys {
        context: format!("re-exec {}", path.display()),
        source,
    })
}

fn is_readonly(path: &Path) -> Result<bool> {
    let st = statvfs(path).context(|| format!("statvfs {}", path.display()))?;
    Ok(st.flags().contains(FsFlags::ST_RDONLY))
}
