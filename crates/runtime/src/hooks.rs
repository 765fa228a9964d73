//! OCI hooks (`hooks.prestart`, `createRuntime`, … `poststop`).
//!
//! Each hook runs as the spec says: `path` is executed with `args` (args[0] is argv[0]),
//! exactly the variables of `env` as its environment (nothing inherited; std passes them
//! sorted by name, and a repeated name keeps its last value, as in runc), the container's state JSON on stdin, and `timeout`
//! seconds to finish. The runtime waits on a pidfd with poll(2) while it feeds stdin and
//! collects the hook's output, so nothing sleeps and nothing blocks past the deadline.
//!
//! The state is written through a pipe. A hook that exits without reading it makes the
//! write fail with EPIPE, which is ignored; this relies on SIGPIPE being ignored, as Rust's
//! runtime does for every program built with `std`.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::{Hook, State};

use crate::{Error, Result};

/// How much of a hook's stderr an error message quotes (the end of it, where errors are).
const STDERR_LIMIT: usize = 4096;

/// Runs `hooks` in order; the first failure stops the sequence and is returned.
///
/// `kind` names the hook point ("createRuntime", "poststop", …) for messages.
pub fn run(hooks: &[Hook], state: &State, kind: &str) -> Result<()> {
    let json = serde_json::to_vec(state).map_err(|e| Error::Hook {
        path: String::new(),
        reason: format!("{kind}: cannot serialise the container state: {e}"),
    })?;
    for hook in hooks {
        run_one(hook, &json, kind)?;
    }
    Ok(())
}

fn run_one(hook: &Hook, state: &[u8], kind: &str) -> Result<()> {
    let path = hook.path().display().to_string();
    let fail = |reason: String| Error::Hook {
        path: path.clone(),
        reason: format!("{kind} hook {reason}"),
    };
    let deadline = deadline(hook.timeout()).map_err(&fail)?;
    if !hook.path().is_absolute() {
        return Err(fail("path must be absolute".into()));
    }
    let mut child = command(hook)
        .spawn()
        .map_err(|e| fail(format!("cannot be started: {e}")))?;
    let pidfd = crate::wait::pidfd_open(child.id() as i32).map_err(|e| {
        kill_and_reap(&mut child);
        fail(format!("cannot be watched (pidfd_open): {e}"))
    })?;
    let mut io = HookIo::new(&mut child).map_err(|e| fail(format!("pipe setup: {e}")))?;
    let finished = io
        .exchange(pidfd.as_fd(), state, deadline)
        .map_err(|e| fail(format!("I/O failed: {e}")));
    let finished = match finished {
        Ok(finished) => finished,
        Err(e) => {
            kill_and_reap(&mut child);
            return Err(e);
        }
    };
    if !finished {
        kill_and_reap(&mut child);
        let secs = hook.timeout().unwrap_or_default();
        return Err(fail(format!(
            "did not finish within its timeout of {secs}s and was killed"
        )));
    }
    let status = child
        .wait()
        .map_err(|e| fail(format!("cannot be reaped: {e}")))?;
    io.log_stdout(&path);
    check_status(status, &io.stderr_tail()).map_err(fail)
}

/// `None` when the hook has no timeout; the spec requires a timeout to be positive.
fn deadline(timeout: Option<i64>) -> std::result::Result<Option<Instant>, String> {
    match timeout {
        None => Ok(None),
        Some(t) if t > 0 => Ok(Some(Instant::now() + Duration::from_secs(t as u64))),
        Some(t) => Err(format!("timeout must be greater than zero, got {t}")),
    }
}

/// The hook's command: argv[0] from args[0], environment exactly `env`, own process group
/// (so a timeout kills whatever the hook started too).
fn command(hook: &Hook) -> Command {
    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for entry in hook.env().iter().flatten() {
        match entry.split_once('=') {
            Some((key, value)) => cmd.env(key, value),
            None => cmd.env(entry, ""),
        };
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

fn check_status(status: ExitStatus, stderr: &str) -> std::result::Result<(), String> {
    let stderr = if stderr.is_empty() {
        String::from("(no stderr)")
    } else {
        format!("stderr: {stderr}")
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exited with code {code}; {stderr}")),
        (None, Some(sig)) => Err(format!("was killed by signal {sig}; {stderr}")),
        (None, None) => Err(format!("ended with {status}; {stderr}")),
    }
}

fn kill_and_reap(child: &mut Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as libc::pid_t);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// The runtime's ends of the hook's stdin, stdout and stderr.
struct HookIo {
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    written: usize,
    out: Tail,
    err: Tail,
}

impl HookIo {
    fn new(child: &mut Child) -> std::io::Result<Self> {
        let io = HookIo {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            written: 0,
            out: Tail::default(),
            err: Tail::default(),
        };
        for fd in io.fds().into_iter().flatten() {
            set_nonblocking(fd)?;
        }
        Ok(io)
    }

    fn fds(&self) -> [Option<BorrowedFd<'_>>; 3] {
        [
            self.stdin.as_ref().map(AsFd::as_fd),
            self.stdout.as_ref().map(AsFd::as_fd),
            self.stderr.as_ref().map(AsFd::as_fd),
        ]
    }

    /// Feeds stdin and drains stdout/stderr until the hook exits (true) or the deadline
    /// passes (false).
    fn exchange(
        &mut self,
        pidfd: BorrowedFd<'_>,
        state: &[u8],
        deadline: Option<Instant>,
    ) -> std::io::Result<bool> {
        loop {
            let Some(timeout) = remaining(deadline) else {
                return Ok(false);
            };
            let (exited, ready) = self.wait_ready(pidfd, timeout)?;
            if ready[0] {
                self.write_state(state)?;
            }
            if ready[1] || exited {
                drain(&mut self.stdout, &mut self.out)?;
            }
            if ready[2] || exited {
                drain(&mut self.stderr, &mut self.err)?;
            }
            if exited {
                return Ok(true);
            }
        }
    }

    /// Polls the pidfd and the open pipes; returns (hook exited, [stdin, stdout, stderr]
    /// ready).
    fn wait_ready(
        &self,
        pidfd: BorrowedFd<'_>,
        timeout: PollTimeout,
    ) -> std::io::Result<(bool, [bool; 3])> {
        let pipes = self.fds();
        let mut fds = vec![PollFd::new(pidfd, PollFlags::POLLIN)];
        let flags = [PollFlags::POLLOUT, PollFlags::POLLIN, PollFlags::POLLIN];
        for (fd, flag) in pipes.iter().zip(flags) {
            if let Some(fd) = fd {
                fds.push(PollFd::new(*fd, flag));
            }
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let is_ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let exited = is_ready(&fds[0]);
        let mut ready = [false; 3];
        let mut polled = fds[1..].iter();
        for (slot, fd) in ready.iter_mut().zip(pipes) {
            if fd.is_some() {
                *slot = polled.next().is_some_and(is_ready);
            }
        }
        Ok((exited, ready))
    }

    /// Writes what the pipe takes now; closes stdin once the whole state is written, or
    /// when the hook closed its end (EPIPE) without reading everything.
    fn write_state(&mut self, state: &[u8]) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        match stdin.write(&state[self.written..]) {
            Ok(n) => self.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => self.written = state.len(),
            Err(e) => return Err(e),
        }
        if self.written == state.len() {
            self.stdin = None;
        }
        Ok(())
    }

    fn stderr_tail(&self) -> String {
        self.err.text()
    }

    fn log_stdout(&self, path: &str) {
        let out = self.out.text();
        if !out.is_empty() {
            tracing::debug!(hook = path, stdout = %out, "hook output");
        }
    }
}

/// Time left before the deadline as a poll timeout; `None` once it has passed.
fn remaining(deadline: Option<Instant>) -> Option<PollTimeout> {
    let Some(deadline) = deadline else {
        return Some(PollTimeout::NONE);
    };
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    // Round up so poll never returns just before the deadline and spins.
    let ms = left.as_millis().saturating_add(1);
    Some(PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX))
}

/// Reads what is available now; closes the pipe at end of file.
fn drain<R: Read>(pipe: &mut Option<R>, tail: &mut Tail) -> std::io::Result<()> {
    let Some(reader) = pipe.as_mut() else {
        return Ok(());
    };
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                *pipe = None;
                return Ok(());
            }
            Ok(n) => tail.push(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The last STDERR_LIMIT bytes of a stream, and whether anything was dropped before them.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > STDERR_LIMIT {
            let excess = self.bytes.len() - STDERR_LIMIT;
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }

    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let text = text.trim();
        if self.truncated {
            format!("[truncated] …{text}")
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; STDERR_LIMIT]);
        t.push(b"the error");
        let text = t.text();
        assert!(text.starts_with("[truncated] …"));
        assert!(text.ends_with("the error"));
        assert!(text.len() <= STDERR_LIMIT + "[truncated] …".len());
    }

    #[test]
    fn timeout_must_be_positive() {
        assert!(deadline(Some(0)).unwrap_err().contains("greater than zero"));
        assert!(deadline(Some(-3)).is_err());
        assert!(deadline(None).unwrap().is_none());
        assert!(deadline(Some(1)).unwrap().is_some());
    }

    #[test]
    fn status_messages() {
        assert!(check_status(ExitStatus::from_raw(0), "").is_ok());
        let err = check_status(ExitStatus::from_raw(3 << 8), "boom").unwrap_err();
        assert_eq!(err, "exited with code 3; stderr: boom");
        let err = check_status(ExitStatus::from_raw(9), "").unwrap_err();
        assert_eq!(err, "was killed by signal 9; (no stderr)");
    }

    #[test]
    fn relative_path_is_rejected() {
        let hook: Hook = serde_json::from_str(r#"{"path": "bin/true"}"#).unwrap();
        let err = run(&[hook], &State::default(), "poststop").unwrap_err();
        assert!(err.to_string().contains("path must be absolute"), "{err}");
    }
}
