//! The shim: one small process per container that outlives the daemon. The daemon starts it
//! (fork and exec, never a bare fork of a threaded process); it detaches into a session of
//! its own, makes and starts the container through the runtime library (or, for a container
//! given another runtime, through that runtime's runc-style command line: see `oci`) with
//! the container's stdout and stderr on pipes, says on its own stdout that the container
//! runs (or why not),
//! then copies the output into the container's log (as its log driver says), reaps the container, records
//! how it ended in `exit.json`, deletes the runtime's state and exits.
//!
//! Everything it knows is in its state directory, so a restarted daemon finds it there:
//! `shim.pid`, the log, and `exit.json` once the container has ended.
//!
//! Its stdio side (see [`crate::stdio`]): clients attach on a unix socket (`socket`), or are
//! handed over at start as inherited descriptors (attachments made before the container
//! ran, so they see all of its output); with `tty` the container gets a terminal whose
//! master the shim holds. With `exec` set, the same shim runs one process in a running
//! container instead (`docker exec`), and records that process's exit.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::{CreateOptions, ExecOptions, RunOutcome, Runtime};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult, Pid};
use oci_spec::runtime::Process;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::attach::{AttachOptions, Size};
use crate::error::{Error, Result};
use crate::logs::{self, Rotation, Stream};
use crate::oci::{self, Oci};
use crate::runtimes::Driver;
use crate::stdio::{self, Io, Pump};

/// What one shim runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShimSpec {
    pub id: String,
    pub bundle: PathBuf,
    /// The built-in runtime's state root (berth-runtime's `--root`).
    pub runtime_root: PathBuf,
    /// An external runtime to run it with instead of the built-in one.
    #[serde(default)]
    pub runtime: Option<Oci>,
    /// The container's state directory: the shim's pid, log and exit record.
    pub dir: PathBuf,
    /// How the log is written; none: nothing is kept (log driver `none`, and execs).
    #[serde(default)]
    pub log: Option<Rotation>,
    /// Where clients attach (and resize); none: no attaching after the start.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// A terminal for the process (its master held by the shim).
    #[serde(default)]
    pub tty: bool,
    /// Stdin from attached clients; otherwise it is /dev/null.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the process's stdin when the first client that wrote to it shuts its side.
    #[serde(default)]
    pub stdin_once: bool,
    /// The terminal's size before the process runs.
    #[serde(default)]
    pub size: Option<Size>,
    /// Clients attached before the start, as descriptors the shim inherits.
    #[serde(default)]
    pub attached: Vec<Attached>,
    /// Run this process in the running container `id` instead of the container itself.
    #[serde(default)]
    pub exec: Option<Process>,
}

/// A client the shim inherits: one end of a socket pair whose other end the engine gave out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Attached {
    pub fd: i32,
    pub options: AttachOptions,
}

impl ShimSpec {
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("container-json.log")
    }

    pub fn exit_path(&self) -> PathBuf {
        self.dir.join("exit.json")
    }

    /// Where the runtime hands the terminal's master over, beside the attach socket.
    fn console_path(&self) -> Option<PathBuf> {
        self.socket.as_ref().map(|s| s.with_extension("tty"))
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
    start_attached(program, spec, Vec::new())
}

/// As [`start`], with clients already attached: the shim inherits these sockets and
/// serves them from before the process runs.
pub fn start_attached(
    program: &Path,
    spec: &ShimSpec,
    clients: Vec<(OwnedFd, AttachOptions)>,
) -> Result<Started> {
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| Error::io(format!("create {}", spec.dir.display()), e))?;
    let mut spec = spec.clone();
    spec.attached = clients
        .iter()
        .map(|(fd, options)| Attached {
            fd: fd.as_raw_fd(),
            options: *options,
        })
        .collect();
    let json = serde_json::to_string(&spec)
        .map_err(|e| Error::Invalid(format!("encode the shim's spec: {e}")))?;
    let inherited: Vec<i32> = spec.attached.iter().map(|a| a.fd).collect();
    let mut command = Command::new(program);
    command
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe; it clears close-on-exec on descriptors this process holds open.
    unsafe {
        command.pre_exec(move || {
            for fd in &inherited {
                // SAFETY: F_SETFD on a descriptor number has no memory effects.
                if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    };
    let mut child = command
        .spawn()
        .map_err(|e| Error::io(format!("start the shim {}", program.display()), e))?;
    // Our ends stay with the engine's callers; the shim has its own copies now.
    drop(clients);
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
    let clients = match adopt(spec) {
        Ok(c) => c,
        Err(e) => fail(answer, e.to_string()),
    };
    let pid_file = spec.dir.join("shim.pid");
    if let Err(e) = std::fs::write(&pid_file, std::process::id().to_string()) {
        fail(answer, format!("write {}: {e}", pid_file.display()))
    }
    let listeners = listen(spec);
    let runtime = Driver::new(spec.runtime.as_ref(), &spec.runtime_root);
    let launched = listeners.and_then(|(attach, console)| {
        launch(&runtime, spec, console.as_ref()).map(|(io, pid)| (io, pid, attach))
    });
    let (io, pid, listener) = match launched {
        Ok(x) => x,
        Err(e) => {
            if spec.exec.is_none() {
                let _ = runtime.delete(&spec.id);
            }
            remove_sockets(spec);
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
    // From here on only the copy loop runs: the setup's code need not stay resident.
    crate::resident::shed_startup_pages();
    let pump = Pump::new(io, listener)?;
    let pump = serve(spec, pump, pid, clients)?;
    let exit = reap(pid)?;
    record_exit(spec, &exit)?;
    if spec.exec.is_none() {
        runtime.delete(&spec.id)?;
    }
    remove_sockets(spec);
    pump.finish();
    Ok(())
}

/// Copies the process's stdio (into the log, for a container) until its output ends.
fn serve(
    spec: &ShimSpec,
    mut pump: Pump,
    pid: Pid,
    clients: Vec<(UnixStream, AttachOptions)>,
) -> Result<Pump> {
    // An exec has no log; it ends with its process, even if something it started holds its
    // output.
    let end = match spec.exec {
        None => {
            if let Some(rotation) = spec.log {
                let log = logs::Writer::open(&spec.log_path(), rotation)?;
                pump = pump.with_log(log, spec.log_path());
            }
            None
        }
        Some(_) => Some(pidfd(pid)?),
    };
    for (sock, options) in clients {
        pump.adopt(sock, options)?;
    }
    pump.run(end.as_ref())?;
    Ok(pump)
}

/// The clients the engine handed over, as inherited descriptors.
fn adopt(spec: &ShimSpec) -> Result<Vec<(UnixStream, AttachOptions)>> {
    let mut out = Vec::new();
    for a in &spec.attached {
        // SAFETY: F_GETFD only asks whether the number is an open descriptor.
        if unsafe { libc::fcntl(a.fd, libc::F_GETFD) } < 0 {
            return Err(Error::Invalid(format!(
                "attached descriptor {} is not open",
                a.fd
            )));
        }
        // SAFETY: the engine passed this descriptor to us for our own use; nothing else in
        // this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(a.fd) };
        stdio::set_cloexec(fd.as_fd())?;
        out.push((UnixStream::from(fd), a.options));
    }
    Ok(out)
}

/// The attach socket, and the one the runtime hands a terminal over on.
fn listen(spec: &ShimSpec) -> Result<(Option<UnixListener>, Option<UnixListener>)> {
    let attach = spec.socket.as_deref().map(bind).transpose()?;
    let console = match spec.console_path() {
        Some(path) if spec.tty => Some(bind(&path)?),
        None if spec.tty => {
            return Err(Error::Invalid(
                "a terminal needs the shim's socket path (none was given)".into(),
            ))
        }
        _ => None,
    };
    Ok((attach, console))
}

fn bind(path: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|e| Error::io(format!("listen on {}", path.display()), e))
}

fn remove_sockets(spec: &ShimSpec) {
    for path in [spec.socket.clone(), spec.console_path()]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(path);
    }
}

fn pidfd(pid: Pid) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(Error::sys("pidfd_open", nix::errno::Errno::last()));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The process's end of its stdio, made before it is created: what it gets as 0, 1 and 2,
/// and what the shim keeps.
struct Plumbing {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// The shim's ends: stdin's write end, stdout's and stderr's read ends (no terminal).
    kept: Option<(Option<OwnedFd>, OwnedFd, OwnedFd)>,
}

fn plumbing(spec: &ShimSpec) -> Result<Plumbing> {
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null", e))?;
    let null = OwnedFd::from(null);
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup /dev/null", e));
    if spec.tty {
        // The runtime makes the terminal the process's stdio; ours stay on /dev/null.
        return Ok(Plumbing {
            stdin: dup(&null)?,
            stdout: dup(&null)?,
            stderr: null,
            kept: None,
        });
    }
    let (out_r, out_w) = pipe().map_err(|e| Error::sys("make the stdout pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| Error::sys("make the stderr pipe", e))?;
    let (stdin, stdin_w) = if spec.open_stdin {
        let (r, w) = pipe().map_err(|e| Error::sys("make the stdin pipe", e))?;
        (r, Some(w))
    } else {
        (null, None)
    };
    Ok(Plumbing {
        stdin,
        stdout: out_w,
        stderr: err_w,
        kept: Some((stdin_w, out_r, err_r)),
    })
}

/// Creates and starts the container (or the exec's process) with its stdio from
/// [`plumbing`], leaving this process's own descriptors 0-2 on /dev/null.
fn launch(runtime: &Driver, spec: &ShimSpec, console: Option<&UnixListener>) -> Result<(Io, Pid)> {
    let p = plumbing(spec)?;
    // The runtime hands its own stdio to the process: set them to what the process gets.
    dup2_stdin(&p.stdin).map_err(|e| Error::sys("redirect stdin", e))?;
    dup2_stdout(&p.stdout).map_err(|e| Error::sys("redirect stdout", e))?;
    dup2_stderr(&p.stderr).map_err(|e| Error::sys("redirect stderr", e))?;
    let console_socket = spec.tty.then(|| spec.console_path()).flatten();
    let made = match (&spec.exec, runtime) {
        (None, Driver::BuiltIn(runtime)) => runtime
            .create(
                &spec.id,
                &CreateOptions {
                    bundle: spec.bundle.clone(),
                    console_socket,
                    ..Default::default()
                },
            )
            .map_err(Error::from),
        (Some(process), Driver::BuiltIn(runtime)) => exec(runtime, spec, process, console_socket),
        (None, Driver::External(oci)) => oci.create(
            &spec.id,
            &spec.bundle,
            &external_launch(spec, console_socket),
        ),
        (Some(process), Driver::External(oci)) => exec_external(oci, spec, process, console_socket),
    };
    // Ours again: the process holds the only write ends now, so its exit means EOF.
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null", e))?;
    dup2_stdin(&null).map_err(|e| Error::sys("redirect stdin", e))?;
    dup2_stdout(&null).map_err(|e| Error::sys("redirect stdout", e))?;
    dup2_stderr(&null).map_err(|e| Error::sys("redirect stderr", e))?;
    drop((p.stdin, p.stdout, p.stderr));
    let pid = Pid::from_raw(made?);
    let io = match (p.kept, console) {
        (Some((stdin, out, err)), _) => Io {
            outputs: vec![
                (File::from(out), Stream::Stdout),
                (File::from(err), Stream::Stderr),
            ],
            stdin: stdin.map(File::from),
            master: None,
            stdin_once: spec.stdin_once,
        },
        (None, Some(listener)) => match terminal(listener, spec) {
            Ok(io) => io,
            Err(e) => {
                // An exec's process is ours to end; a container's goes with its deletion.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(e);
            }
        },
        (None, None) => return Err(Error::Invalid("a terminal without a console socket".into())),
    };
    if spec.exec.is_none() {
        match runtime {
            Driver::BuiltIn(runtime) => runtime.start(&spec.id)?,
            Driver::External(oci) => oci.start(&spec.id)?,
        }
    }
    Ok((io, pid))
}

/// The files an external runtime's create or exec writes, in the shim's directory: the
/// pid, and its log (read back for its error).
fn external_launch(spec: &ShimSpec, console_socket: Option<PathBuf>) -> oci::Launch {
    oci::Launch {
        pid_file: spec.dir.join("runtime.pid"),
        console_socket,
        log: spec.dir.join("runtime-log.json"),
    }
}

/// An exec through an external runtime: the process goes to it as a file.
fn exec_external(
    oci: &Oci,
    spec: &ShimSpec,
    process: &Process,
    console_socket: Option<PathBuf>,
) -> Result<i32> {
    let path = spec.dir.join("process.json");
    let json = serde_json::to_vec(process)
        .map_err(|e| Error::Invalid(format!("encode the exec's process: {e}")))?;
    std::fs::write(&path, json).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    oci.exec(&spec.id, &path, &external_launch(spec, console_socket))
}

fn exec(
    runtime: &Runtime,
    spec: &ShimSpec,
    process: &Process,
    console_socket: Option<PathBuf>,
) -> Result<i32> {
    let options = ExecOptions {
        console_socket,
        detach: true,
        ..Default::default()
    };
    match runtime.exec(&spec.id, process, &options)? {
        RunOutcome::Detached { pid } => Ok(pid),
        RunOutcome::Exited(_) => Err(Error::Invalid("the exec ran in the foreground".into())),
    }
}

/// Takes the terminal's master from the runtime (sent while the process was set up), and
/// sizes it before the program runs.
fn terminal(listener: &UnixListener, spec: &ShimSpec) -> Result<Io> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("make the console socket non-blocking", e))?;
    let (conn, _) = listener
        .accept()
        .map_err(|e| Error::io("take the terminal from the runtime", e))?;
    let master = berth_runtime::console::recv_fd(conn.as_fd())?;
    if let Some(size) = spec.size {
        berth_runtime::console::resize(master.as_fd(), size.height, size.width)?;
    }
    let clone = |m: &OwnedFd| -> Result<File> {
        Ok(File::from(
            m.try_clone()
                .map_err(|e| Error::io("dup the terminal", e))?,
        ))
    };
    Ok(Io {
        outputs: vec![(clone(&master)?, Stream::Stdout)],
        stdin: if spec.open_stdin {
            Some(clone(&master)?)
        } else {
            None
        },
        master: Some(master),
        stdin_once: spec.stdin_once,
    })
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
