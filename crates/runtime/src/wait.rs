//! Waiting for a container process: for our own children (run, exec) with signals forwarded to
//! them while we wait, and for any process (delete) through a pidfd.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};

/// Signals a foreground `run`/`exec` passes on to the container instead of dying of them.
/// (SIGWINCH is blocked too, but read by the terminal proxy, not forwarded.)
const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
];

/// Blocks the forwarded signals in this thread (and threads it starts later), so they queue
/// for the signalfd instead of killing us. Call before starting any helper thread.
pub fn block_forwarded() -> Result<SigSet> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    let mut blocked = set;
    blocked.add(Signal::SIGWINCH);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None)
        .context(|| "block signals".into())?;
    Ok(set)
}

/// Waits for our child `pid` to exit, forwarding signals to it. Returns the exit code as a
/// shell reports it (128 + signal number when killed).
pub fn wait_forwarding(pid: i32, pidfd: &OwnedFd, signals: SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context(|| "signalfd".into())?;
    loop {
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| "poll".into()),
            Ok(_) => {}
        }
        let exited = fds[0].any().unwrap_or(false);
        while let Ok(Some(info)) = sfd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        if exited {
            return reap(pid);
        }
    }
}

/// Collects our child's exit status.
pub fn reap(pid: i32) -> Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| format!("wait for {pid}")),
        }
    }
}

/// A pidfd for a process that need not be our child.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::Sys {
            context: format!("pidfd_open {pid}"),
            source: nix::errno::Errno::last(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// Waits until the process behind `pidfd` has exited, up to `limit`.
pub fn until_exited(pidfd: &OwnedFd, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| format!("poll pidfd {}", pidfd.as_raw_fd())),
        }
    }
}
