//! The shim: one small process per container that outlives the daemon. The daemon starts it
//! (fork and exec, never a bare fork of a threaded process); it detaches into a session of
//! its own, makes and starts the container through the runtime library with the container's
//! stdout and stderr on pipes, says on its own stdout that the container runs (or why not),
//! then copies the output into the container's json-file log, reaps the container, records
//! how it ended in `exit.json`, deletes the runtime's state and exits.
//!
//! Everything it knows is in its state directory, so a restarted daemon finds it there:
//! `shim.pid`, the log, and `exit.json` once the container has ended.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::{CreateOptions, Runtime};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult, Pid};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::logs::{self, Rotation, Stream};

/// What one shim runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimSpec {
    pub id: String,
    pub bundle: PathBuf,
    /// The runtime's state root (berth-runtime's `--root`).
    pub runtime_root: PathBuf,
    /// The container's state directory: the shim's pid, log and exit record.
    pub dir: PathBuf,
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
}

impl ShimSpec {
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("container-json.log")
    }

    pub fn exit_path(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
}

/// How a container ended, as `exit.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status, or 128 + the signal that killed it (as Docker reports it).
    pub code: i32,
    pub signal: Option<i32>,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
}

/// The shim's first and only message to whoever started it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Ready {
    Running { shim_pid: i32, pid: i32 },
    Failed { error: String },
}

/// A started container: its shim and its init, as host pids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub shim_pid: i32,
    pub pid: i32,
}

/// Starts `program` (a binary whose main calls [`main`] with the spec) as the shim for
/// `spec`, and returns once the container runs, or with the reason it could not start.
pub fn start(program: &Path, spec: &ShimSpec) -> Result<Started> {
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| Error::io(format!("create {}", spec.dir.display()), e))?;
    let json = serde_json::to_string(spec)
        .map_err(|e| Error::Invalid(format!("encode the shim's spec: {e}")))?;
    let mut child = Command::new(program)
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(format!("start the shim {}", program.display()), e))?;
    // The first process exits at once (its child carries on, detached): reap it here.
    let stdout = child.stdout.take().expect("stdout was piped");
    child
        .wait()
        .map_err(|e| Error::io("wait for the shim to detach", e))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| Error::io("read the shim's answer", e))?;
    match serde_json::from_str(&line) {
        Ok(Ready::Running { shim_pid, pid }) => Ok(Started { shim_pid, pid }),
        Ok(Ready::Failed { error }) => Err(Error::Invalid(error)),
        Err(_) => Err(Error::Invalid(format!(
            "the shim for {} ended without saying whether the container started",
            spec.id
        ))),
    }
}

/// Reads a container's exit record, once its shim has written it.
pub fn exit_of(spec: &ShimSpec) -> Result<Option<Exit>> {
    match std::fs::read(spec.exit_path()) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{}: {e}", spec.exit_path().display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", spec.exit_path().display()), e)),
    }
}

/// The shim's body, in the process `start` executed. Never returns.
pub fn main(spec_json: &str) -> ! {
    // A closed standard descriptor would be handed out again by the next open or pipe, and
    // then overwritten when the container's stdio is set up: give each one /dev/null.
    for fd in 0..3 {
        if nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
            let _ = File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(std::mem::forget);
        }
    }
    // The answer goes to whoever started us, through our stdout as it was at exec, kept on a
    // descriptor of its own (close-on-exec), since fd 1 is about to become the container's.
    let answer = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(_) => std::process::exit(1),
    };
    let spec: ShimSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => fail(answer, format!("the shim's spec is not valid: {e}")),
    };
    // Detach: the first process exits, its child leads a session of its own, so the daemon's
    // death or its process group's signals never reach the container.
    // SAFETY: this process has one thread (it was just executed), so fork is safe.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(ForkResult::Child) => {}
        Err(e) => fail(answer, format!("the shim cannot fork: {e}")),
    }
    let _ = setsid();
    match run(&spec, answer) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            tracing::error!("shim for {}: {e}", spec.id);
            std::process::exit(1)
        }
    }
}

/// A standard descriptor by number, only to ask whether it is open.
fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the descriptor is only queried with F_GETFD, which is harmless on a closed one.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

fn fail(mut answer: File, error: String) -> ! {
    let msg = serde_json::to_string(&Ready::Failed { error }).unwrap_or_default();
    let _ = writeln!(answer, "{msg}");
    std::process::exit(1)
}

fn run(spec: &ShimSpec, answer: File) -> Result<()> {
    // Orphans of the container come to us, not to the host's init.
    // SAFETY: prctl with these arguments only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let pid_file = spec.dir.join("shim.pid");
    if let Err(e) = std::fs::write(&pid_file, std::process::id().to_string()) {
        fail(answer, format!("write {}: {e}", pid_file.display()))
    }
    let runtime = Runtime::new(&spec.runtime_root);
    let (out_r, err_r, pid) = match launch(&runtime, spec) {
        Ok(x) => x,
        Err(e) => {
            let _ = runtime.delete(&spec.id, true);
            fail(answer, e.to_string())
        }
    };
    let mut answer = answer;
    let ready = Ready::Running {
        shim_pid: std::process::id() as i32,
        pid: pid.as_raw(),
    };
    let msg = serde_json::to_string(&ready).unwrap_or_default();
    let _ = writeln!(answer, "{msg}");
    drop(answer);
    let rotation = Rotation {
        max_size: spec.log_max_size,
        max_files: spec.log_max_files,
    };
    let mut log = logs::Writer::open(&spec.log_path(), rotation)?;
    copy_output(&mut log, out_r, err_r)?;
    log.finish()?;
    let exit = reap(pid)?;
    record_exit(spec, &exit)?;
    runtime.delete(&spec.id, true)?;
    Ok(())
}

/// Creates and starts the container with its stdout and stderr on pipes (and /dev/null as
/// stdin), leaving this process's own descriptors 0-2 on /dev/null.
fn launch(runtime: &Runtime, spec: &ShimSpec) -> Result<(OwnedFd, OwnedFd, Pid)> {
    let (out_r, out_w) = pipe().map_err(|e| Error::sys("make the stdout pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| Error::sys("make the stderr pipe", e))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null", e))?;
    // The runtime hands its own stdio to the container: set them to what the container gets.
    dup2_stdin(&null).map_err(|e| Error::sys("redirect stdin", e))?;
    dup2_stdout(&out_w).map_err(|e| Error::sys("redirect stdout", e))?;
    dup2_stderr(&err_w).map_err(|e| Error::sys("redirect stderr", e))?;
    let options = CreateOptions {
        bundle: spec.bundle.clone(),
        pid_file: None,
        console_socket: None,
        no_pivot: false,
        preserve_fds: 0,
    };
    let created = runtime.create(&spec.id, &options);
    // Ours again: the container holds the only write ends now, so its exit means EOF.
    dup2_stdout(&null).map_err(|e| Error::sys("redirect stdout", e))?;
    dup2_stderr(&null).map_err(|e| Error::sys("redirect stderr", e))?;
    drop((out_w, err_w));
    let pid = created?;
    runtime.start(&spec.id)?;
    Ok((out_r, err_r, Pid::from_raw(pid)))
}

/// Copies both streams into the log until both are closed (the container and everything in
/// it have ended, or closed them).
fn copy_output(log: &mut logs::Writer, out: OwnedFd, err: OwnedFd) -> Result<()> {
    let mut open: Vec<(File, Stream)> = vec![
        (File::from(out), Stream::Stdout),
        (File::from(err), Stream::Stderr),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    while !open.is_empty() {
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll the container's output", e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let mut closed = Vec::new();
        for (i, (file, stream)) in open.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            match file.read(&mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => log.write(*stream, &buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read the container's output", e)),
            }
        }
        for i in closed.into_iter().rev() {
            open.remove(i);
        }
    }
    Ok(())
}

fn reap(pid: Pid) -> Result<Exit> {
    loop {
        let status = waitpid(pid, None).map_err(|e| Error::sys("wait for the container", e))?;
        let (code, signal) = match status {
            WaitStatus::Exited(_, code) => (code, None),
            WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
            _ => continue,
        };
        return Ok(Exit {
            code,
            signal,
            finished_at: OffsetDateTime::now_utc(),
        });
    }
}

/// Written to a temporary name and renamed: a reader sees the whole record or none.
fn record_exit(spec: &ShimSpec, exit: &Exit) -> Result<()> {
    let tmp = spec.dir.join("exit.json.tmp");
    let json = serde_json::to_vec(exit).map_err(|e| Error::Invalid(format!("encode exit: {e}")))?;
    let mut f =
        File::create(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    f.write_all(&json)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, spec.exit_path())
        .map_err(|e| Error::io(format!("rename {}", tmp.display()), e))
}
