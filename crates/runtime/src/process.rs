//! The last steps before the user's program runs, shared by a container's init and by exec:
//! limits, identity, privileges, and finding and executing the program.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{execve, setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::error::{Context, Error, Result};
use crate::{capabilities, seccomp};

/// process.ioPriority: the I/O scheduling class and level of the process.
pub fn set_io_priority(p: &Process) -> Result<()> {
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    use oci_spec::runtime::IOPriorityClass as C;
    let class: i64 = match io.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    let level = io.priority();
    if !(0..=7).contains(&level) {
        return Err(Error::invalid(format!(
            "process.ioPriority.priority {level}: use 0 (highest) to 7"
        )));
    }
    const IOPRIO_WHO_PROCESS: i64 = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << IOPRIO_CLASS_SHIFT) | level,
        )
    };
    if rc != 0 {
        return Err(Error::Sys {
            context: "set process.ioPriority".into(),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        if r.soft() > r.hard() {
            return Err(Error::invalid(format!(
                "process.rlimits {:?}: soft limit {} is above hard limit {}",
                r.typ(),
                r.soft(),
                r.hard()
            )));
        }
        setrlimit(resource(r.typ()), r.soft(), r.hard())
            .context(|| format!("set {:?} to {}/{}", r.typ(), r.soft(), r.hard()))?;
    }
    Ok(())
}

/// This process's own (soft, hard) limit of a kind.
pub fn current_rlimit(t: PosixRlimitType) -> Result<(u64, u64)> {
    nix::sys::resource::getrlimit(resource(t)).context(|| format!("read {t:?}"))
}

fn resource(t: PosixRlimitType) -> Resource {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Becomes the process's user with exactly its capabilities. Bounding caps go first, while
/// we are still root; KEEPCAPS carries the permitted set across the uid change so the
/// requested sets can be applied after it.
pub fn set_user(p: &Process) -> Result<()> {
    let user = p.user();
    if let Some(caps) = p.capabilities() {
        capabilities::drop_bounding(caps)?;
    }
    let mut groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if groups.is_empty() {
        groups.push(Gid::from_raw(user.gid()));
    }
    // setgroups is refused in a user namespace whose setgroups file says deny; the process
    // then keeps no supplementary groups, which is what that mapping allows anyway.
    match setgroups(&groups) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(e).context(|| "setgroups".into()),
    }
    set_keepcaps(true)?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).context(|| format!("set gid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).context(|| format!("set uid {uid}"))?;
    set_keepcaps(false)?;
    if let Some(caps) = p.capabilities() {
        capabilities::apply(caps)?;
    }
    if let Some(mask) = user.umask() {
        umask(Mode::from_bits_truncate(mask));
    }
    Ok(())
}

fn set_keepcaps(on: bool) -> Result<()> {
    nix::sys::prctl::set_keepcaps(on).context(|| "prctl(PR_SET_KEEPCAPS)".into())
}

pub fn set_no_new_privileges() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())
}

/// Limits, seccomp and identity, in the order that lets each step still do its work.
pub fn drop_privileges(p: &Process, filter: Option<&seccomp::Filter>) -> Result<()> {
    set_rlimits(p)?;
    set_io_priority(p)?;
    crate::sched::set_scheduler(p)?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we have it.
    if let (false, Some(f)) = (nnp, filter) {
        seccomp::load(f)?;
    }
    set_user(p)?;
    if nnp {
        set_no_new_privileges()?;
    }
    Ok(())
}

/// With no_new_privs the filter goes last, so it constrains as little of our setup as
/// possible while still covering the user's program from its first instruction.
pub fn load_late_seccomp(p: &Process, filter: Option<&seccomp::Filter>) -> Result<()> {
    match filter {
        Some(f) if p.no_new_privileges().unwrap_or(false) => seccomp::load(f),
        _ => Ok(()),
    }
}

/// The program to run: args[0] as given if it has a slash, else the first match on the PATH
/// from the process's own environment (not ours: the container's PATH is what counts).
pub fn find_executable(p: &Process) -> Result<PathBuf> {
    let args = p.args().as_deref().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err(Error::invalid(
            "process.args is empty: give the program to run as its first element",
        ));
    };
    if arg0.contains('/') {
        let path = PathBuf::from(arg0);
        if !is_executable(&path) {
            return Err(Error::invalid(format!(
                "exec: {arg0:?}: no such file or directory (or not executable) in the container"
            )));
        }
        return Ok(path);
    }
    let env = p.env().as_deref().unwrap_or_default();
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(arg0))
        .find(|c| is_executable(c))
        .ok_or_else(|| {
            Error::invalid(format!(
                // Docker's wording, which clients turn into exit status 127.
                "exec: {arg0:?}: executable file not found in $PATH ({path_var})"
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
}

/// Replaces this process with the user's program. Returns only on failure.
pub fn exec(program: &Path, p: &Process) -> Result<Infallible> {
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::invalid("a NUL byte in args or env"));
    let path = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("a NUL byte in the program path"))?;
    let args = p
        .args()
        .iter()
        .flatten()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>>>()?;
    let env = p
        .env()
        .iter()
        .flatten()
        .map(|e| cstr(e))
        .collect::<Result<Vec<_>>>()?;
    execve(&path, &args, &env).context(|| format!("exec {}", program.display()))
}

/// Gives the user's program a clean signal state: nothing blocked (the runtime blocks signals
/// it forwards) and nothing ignored (Rust's runtime ignores SIGPIPE, and ignoring survives
/// exec; handlers do not).
pub fn reset_signals() -> Result<()> {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context(|| "clear the signal mask".into())?;
    // Every signal, the real-time ones included, through the raw system call: glibc refuses
    // to touch the two it reserves (32 and 33), yet an ignored one would reach the program.
    // SIG_DFL is 0, so an all-zero kernel sigaction means "default" on every layout.
    let default_action = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the kernel reads a zeroed struct sigaction (at least as large as the
        // kernel's) and writes nothing back (old action pointer is null).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
        if rc != 0 {
            return Err(Error::Sys {
                context: format!("reset the disposition of signal {sig}"),
                source: nix::errno::Errno::last(),
            });
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so nothing of the runtime's or the
/// caller's leaks into the container beyond stdio and the fds it was asked to keep.
pub fn close_fds_on_exec(first: u32) -> Result<()> {
    // SAFETY: close_range only changes descriptor flags; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(Error::Sys {
            context: "close_range".into(),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::ProcessBuilder;

    #[test]
    fn executables_are_found_on_the_containers_path() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .env(vec!["PATH=/nonexistent:/bin".to_string()])
            .build()
            .unwrap();
        assert_eq!(find_executable(&p).unwrap(), PathBuf::from("/bin/sh"));
        let p = ProcessBuilder::default()
            .args(vec!["no-such-program-here".to_string()])
            .build()
            .unwrap();
        let err = find_executable(&p).unwrap_err().to_string();
        assert!(err.contains("not found"), "{err}");
    }
}
