//! A minimal init (`docker run --init`): when the spec's annotation [`INIT_ANNOTATION`] is
//! "true", the container's first process stays as its PID 1 and runs the user's program as
//! its child. It forwards every signal it can catch to that child, reaps every process that
//! ends in the container (orphans are re-parented to it), and exits as the child did: with
//! its code, or 128 + the signal that killed it.
//!
//! Why: a program written as a service rather than as an init (a shell script, a server)
//! neither reaps its grandchildren, so zombies pile up, nor gets the default action of
//! SIGTERM as PID 1, so `stop` has to wait for SIGKILL.

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Context, Result};

/// The annotation that asks for the init.
pub const INIT_ANNOTATION: &str = "run.berth.init";

/// Whether the spec asks for the init.
pub fn wanted(spec: &oci_spec::runtime::Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(INIT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Forks: returns in the child, which goes on to exec the user's program; the parent
/// becomes the reaper and never returns. Every signal is blocked first so that none is lost
/// or acted on before the reaper waits for it; the child unblocks them before its exec.
pub fn fork_init() -> Result<()> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None)
        .context(|| "block signals for the init".into())?;
    // SAFETY: the container's init is single-threaded (a forked, then executed, process),
    // so the child may run arbitrary code after fork.
    match unsafe { fork() }.context(|| "fork the init's child".into())? {
        ForkResult::Child => Ok(()),
        ForkResult::Parent { child } => {
            close_descriptors();
            std::process::exit(reap(child))
        }
    }
}

/// Stdio stays (the child has its own copies); everything else the runtime held goes.
fn close_descriptors() {
    // SAFETY: close_range on descriptors 3.. of this process, which no longer uses them.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

/// Waits for signals: SIGCHLD reaps, anything else goes to the child. Returns the exit
/// status for this process once the child has ended.
fn reap(child: Pid) -> i32 {
    let all = SigSet::all();
    loop {
        let signal = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        if let Some(code) = reap_all(child) {
            return code;
        }
    }
}

/// Collects every ended process; the child's status when it is among them.
fn reap_all(child: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => result = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                result = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_asks_for_it() {
        let mut spec = oci_spec::runtime::Spec::default();
        assert!(!wanted(&spec));
        spec.set_annotations(Some(
            [(INIT_ANNOTATION.to_string(), "true".to_string())].into(),
        ));
        assert!(wanted(&spec));
    }
}
