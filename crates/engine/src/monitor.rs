//! Watching running containers: one task per container waits (on a pidfd, no polling) for its
//! shim to end, records the exit, and then does what the container's config says: remove it
//! (`--rm`) or start it again by its restart policy, with Docker's back-off.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::container::{Container, RestartPolicy, Status};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Docker doubles the delay before each restart from 100 ms, and starts from 100 ms again
/// once a container has run for 10 s.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
const STEADY: Duration = Duration::from_secs(10);

/// Watches every running container (after the daemon starts).
pub async fn watch_running(engine: &Arc<Engine>) -> Result<()> {
    for c in engine.list().await? {
        match c.state.status {
            Status::Running => watch(engine, &c.id),
            // It may have ended while no daemon watched it: do now what the watch would
            // have done then (Docker, too, restarts such containers when it starts).
            Status::Exited => settle(engine, &c).await,
            _ => {}
        }
    }
    Ok(())
}

/// A container found exited at daemon start: removed if `--rm`, started again if its
/// restart policy says so.
async fn settle(engine: &Arc<Engine>, c: &Container) {
    if c.config.auto_remove {
        if let Err(e) = engine.remove_with(&c.id, false, true).await {
            tracing::warn!("removing --rm container {}: {e}", c.name);
        }
        return;
    }
    match engine.restart_by_policy(&c.id).await {
        Ok(true) => watch(engine, &c.id),
        Ok(false) => {}
        Err(e) => tracing::warn!("restarting container {}: {e}", c.name),
    }
}

/// Starts a task that follows container `id` until it stops for good.
pub fn watch(engine: &Arc<Engine>, id: &str) {
    let (engine, id) = (engine.clone(), id.to_string());
    tokio::spawn(async move {
        match follow(&engine, &id).await {
            // Removed while it ran (`rm -f`): nothing left to follow.
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => tracing::warn!("watching container {id}: {e}"),
        }
    });
}

async fn follow(engine: &Arc<Engine>, id: &str) -> Result<()> {
    let mut delay = FIRST_DELAY;
    loop {
        let c = engine.get(id)?;
        if c.state.status != Status::Running {
            return Ok(());
        }
        exited(c.state.shim_pid).await?;
        let c = engine.inspect(id).await?;
        if c.state.status == Status::Running {
            // The shim ended without recording an exit yet: inspect again settles it.
            continue;
        }
        if c.config.auto_remove {
            return match engine.remove_with(id, false, true).await {
                Ok(()) | Err(Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            };
        }
        if !should_restart(&c.config.restart, &c.state) {
            return Ok(());
        }
        let ran = match (c.state.started_at, c.state.finished_at) {
            (Some(s), Some(f)) => (f - s).unsigned_abs(),
            _ => Duration::ZERO,
        };
        delay = if ran >= STEADY {
            FIRST_DELAY
        } else {
            (delay * 2).min(MAX_DELAY)
        };
        // A back-off, not a synchronisation: Docker waits before each restart.
        tokio::time::sleep(delay).await;
        match engine.restart_by_policy(id).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                tracing::warn!("restarting container {id}: {e}");
                return Ok(());
            }
        }
    }
}

/// Whether a container that just exited is started again.
pub fn should_restart(policy: &RestartPolicy, state: &crate::container::State) -> bool {
    if state.stopped_by_user {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure(max) => {
            state.exit_code.unwrap_or(0) != 0 && (*max == 0 || state.restart_count < *max)
        }
    }
}

/// Waits until process `pid` has exited, on a pidfd registered with the runtime's reactor.
pub async fn exited(pid: i32) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::O_NONBLOCK) };
    if fd < 0 {
        // ESRCH: it has already gone.
        return Ok(());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same descriptor) until
    // the AsyncFd is dropped.
    let fd = unsafe { AsyncFd::register(fd) }
        .map_err(|e| Error::io("watch a shim's pidfd", e.into_parts().1))?;
    // A pidfd becomes readable once the process has exited.
    let _ready = fd
        .readable()
        .await
        .map_err(|e| Error::io("watch a shim's pidfd", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::State;

    fn exited_with(code: i32, restarts: u32) -> State {
        State {
            status: Status::Exited,
            exit_code: Some(code),
            restart_count: restarts,
            ..State::created()
        }
    }

    #[test]
    fn policies_decide_as_docker_does() {
        use RestartPolicy::*;
        assert!(!should_restart(&No, &exited_with(1, 0)));
        assert!(should_restart(&Always, &exited_with(0, 5)));
        assert!(should_restart(&UnlessStopped, &exited_with(0, 0)));
        assert!(should_restart(&OnFailure(0), &exited_with(1, 100)));
        assert!(!should_restart(&OnFailure(2), &exited_with(0, 0)));
        assert!(should_restart(&OnFailure(2), &exited_with(1, 1)));
        assert!(!should_restart(&OnFailure(2), &exited_with(1, 2)));
        let mut stopped = exited_with(137, 0);
        stopped.stopped_by_user = true;
        assert!(!should_restart(&Always, &stopped));
    }
}
