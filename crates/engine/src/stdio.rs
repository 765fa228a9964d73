//! The shim's side of a container's (or an exec's) stdio: one poll loop that copies the
//! output into the log and to every attached client (framed, or raw with a terminal), and
//! what clients write into the process's stdin.
//!
//! Nothing here may block the process: every descriptor is non-blocking, each client has a
//! bounded queue and is dropped when it falls that far behind (or goes away), and stdin
//! stops being read from clients while the process does not take it.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::attach::{self, AttachOptions, Request, Size};
use crate::error::{Error, Result};
use crate::logs::{self, Query, Stream};

/// How far a client may fall behind before it is dropped.
const CLIENT_QUEUE: usize = 1024 * 1024;
/// How much a client's stdin may wait for the process before we stop reading clients.
const STDIN_QUEUE: usize = 256 * 1024;
/// The longest first line a client may send.
const MAX_REQUEST: usize = 4096;
/// How long the shim goes on sending queued output to clients after the process ended.
const DRAIN: Duration = Duration::from_secs(10);

/// The process's side: where its output comes from and where its stdin goes.
pub struct Io {
    /// Output sources: two pipes, or the terminal's master as stdout.
    pub outputs: Vec<(File, Stream)>,
    /// The write end of the stdin pipe, or the master again; None if stdin is closed.
    pub stdin: Option<File>,
    /// The terminal's master, for resizes.
    pub master: Option<OwnedFd>,
    pub stdin_once: bool,
}

impl Io {
    fn tty(&self) -> bool {
        self.master.is_some()
    }
}

struct Client {
    sock: UnixStream,
    /// None until the client's request line has arrived.
    options: Option<AttachOptions>,
    request: Vec<u8>,
    queue: Vec<u8>,
    /// The client still writes (stdin); false once it shut its write side.
    reading: bool,
    dead: bool,
}

impl Client {
    fn new(sock: UnixStream, options: Option<AttachOptions>) -> Result<Client> {
        sock.set_nonblocking(true)
            .map_err(|e| Error::io("make an attach socket non-blocking", e))?;
        Ok(Client {
            sock,
            options,
            request: Vec::new(),
            queue: Vec::new(),
            reading: true,
            dead: false,
        })
    }

    /// Queues bytes for the client, or drops it if it is too far behind.
    fn send(&mut self, bytes: &[u8]) {
        if self.queue.len() + bytes.len() > CLIENT_QUEUE {
            self.dead = true;
            self.queue.clear();
            return;
        }
        self.queue.extend_from_slice(bytes);
    }

    fn flush(&mut self) {
        while !self.queue.is_empty() {
            match self.sock.write(&self.queue) {
                Ok(0) => break,
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
    }

    fn wants_input(&self, stdin_room: bool) -> bool {
        match &self.options {
            None => true,
            Some(o) => self.reading && (!o.stdin || stdin_room),
        }
    }
}

/// The loop's state: the process's stdio, the clients, the log.
pub struct Pump {
    io: Io,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    log: Option<logs::Writer>,
    log_path: Option<PathBuf>,
    stdin_buf: Vec<u8>,
    /// Close the process's stdin once `stdin_buf` is written.
    close_stdin: bool,
}

impl Pump {
    pub fn new(io: Io, listener: Option<UnixListener>) -> Result<Pump> {
        for (file, _) in &io.outputs {
            set_nonblocking(file.as_fd())?;
        }
        if let Some(f) = &io.stdin {
            set_nonblocking(f.as_fd())?;
        }
        if let Some(l) = &listener {
            l.set_nonblocking(true)
                .map_err(|e| Error::io("make the attach socket non-blocking", e))?;
        }
        Ok(Pump {
            io,
            listener,
            clients: Vec::new(),
            log: None,
            log_path: None,
            stdin_buf: Vec::new(),
            close_stdin: false,
        })
    }

    /// Output also goes to this log (which `logs: true` attaches replay from).
    pub fn with_log(mut self, log: logs::Writer, path: PathBuf) -> Pump {
        self.log = Some(log);
        self.log_path = Some(path);
        self
    }

    /// A client connected before the process started (handed over by the engine).
    pub fn adopt(&mut self, sock: UnixStream, options: AttachOptions) -> Result<()> {
        let mut client = Client::new(sock, None)?;
        welcome(
            &mut client,
            options,
            self.log_path.as_deref(),
            self.io.tty(),
        );
        self.clients.push(client);
        Ok(())
    }

    /// Applies a size to the terminal, if there is one.
    pub fn resize(&self, size: Size) {
        if let Some(m) = &self.io.master {
            let _ = berth_runtime::console::resize(m.as_fd(), size.height, size.width);
        }
    }

    /// Runs until the output ends, or (with `end`, a pidfd) until that process has exited
    /// and what it wrote has been read.
    pub fn run(&mut self, end: Option<&OwnedFd>) -> Result<()> {
        let mut ended = false;
        while !self.io.outputs.is_empty() && !ended {
            let plan = self.plan();
            let mut fds = self.poll_fds(&plan, end);
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("poll the process's stdio", e)),
            }
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|p| p.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            // The pidfd, when there is one, is the last slot.
            ended = end.is_some() && revents.last().is_some_and(|r| !r.is_empty());
            self.act(&plan, &revents)?;
        }
        if ended {
            self.drain_outputs()?;
        }
        if let Some(log) = self.log.as_mut() {
            log.finish()?;
        }
        Ok(())
    }

    /// After the process: sends what clients still have queued (for a while), then closes
    /// them, which ends their output.
    pub fn finish(mut self) {
        self.listener = None;
        let deadline = Instant::now() + DRAIN;
        loop {
            self.clients.retain(|c| !c.dead && !c.queue.is_empty());
            let left = deadline.saturating_duration_since(Instant::now());
            if self.clients.is_empty() || left.is_zero() {
                return;
            }
            let mut fds: Vec<PollFd> = self
                .clients
                .iter()
                .map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLOUT))
                .collect();
            let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            if poll(&mut fds, wait).is_err() {
                return;
            }
            drop(fds);
            for c in &mut self.clients {
                c.flush();
            }
        }
    }
}

/// Which descriptor each poll slot is, in order.
#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Output(usize),
    Stdin,
    Client(usize),
}

impl Pump {
    fn plan(&self) -> Vec<Slot> {
        let mut plan = Vec::new();
        if self.listener.is_some() {
            plan.push(Slot::Listener);
        }
        plan.extend((0..self.io.outputs.len()).map(Slot::Output));
        if self.io.stdin.is_some() && !self.stdin_buf.is_empty() {
            plan.push(Slot::Stdin);
        }
        plan.extend((0..self.clients.len()).map(Slot::Client));
        plan
    }

    fn poll_fds<'f>(&'f self, plan: &[Slot], end: Option<&'f OwnedFd>) -> Vec<PollFd<'f>> {
        let stdin_room = self.io.stdin.is_some() && self.stdin_buf.len() < STDIN_QUEUE;
        let mut fds: Vec<PollFd> = plan
            .iter()
            .map(|slot| match *slot {
                Slot::Listener => PollFd::new(
                    self.listener.as_ref().map(|l| l.as_fd()).expect("planned"),
                    PollFlags::POLLIN,
                ),
                Slot::Output(i) => PollFd::new(self.io.outputs[i].0.as_fd(), PollFlags::POLLIN),
                Slot::Stdin => PollFd::new(
                    self.io.stdin.as_ref().map(|f| f.as_fd()).expect("planned"),
                    PollFlags::POLLOUT,
                ),
                Slot::Client(i) => {
                    let c = &self.clients[i];
                    let mut events = PollFlags::empty();
                    if c.wants_input(stdin_room) {
                        events |= PollFlags::POLLIN;
                    }
                    if !c.queue.is_empty() {
                        events |= PollFlags::POLLOUT;
                    }
                    PollFd::new(c.sock.as_fd(), events)
                }
            })
            .collect();
        if let Some(pidfd) = end {
            fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        fds
    }

    fn act(&mut self, plan: &[Slot], revents: &[PollFlags]) -> Result<()> {
        let mut closed = Vec::new();
        for (slot, ev) in plan.iter().zip(revents) {
            if ev.is_empty() {
                continue;
            }
            match *slot {
                Slot::Listener => self.accept(),
                Slot::Output(i) => {
                    if !self.read_output(i)? {
                        closed.push(i);
                    }
                }
                Slot::Stdin => self.write_stdin(),
                Slot::Client(i) => self.serve(i, *ev),
            }
        }
        for i in closed.into_iter().rev() {
            self.io.outputs.remove(i);
        }
        self.clients.retain(|c| !c.dead);
        self.maybe_close_stdin();
        Ok(())
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok((sock, _)) = listener.accept() {
            if let Ok(c) = Client::new(sock, None) {
                self.clients.push(c);
            }
        }
    }

    /// Reads one chunk of output; false at its end.
    fn read_output(&mut self, i: usize) -> Result<bool> {
        let mut buf = [0u8; 32 * 1024];
        let (file, stream) = &mut self.io.outputs[i];
        let stream = *stream;
        match file.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.deliver(stream, &buf[..n])?;
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                Ok(true)
            }
            // A terminal's master reads EIO once every slave is closed: its end.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(false),
            Err(e) => Err(Error::io("read the process's output", e)),
        }
    }

    /// Reads what is left in every output without waiting.
    fn drain_outputs(&mut self) -> Result<()> {
        for i in 0..self.io.outputs.len() {
            loop {
                let ready = {
                    let fd = self.io.outputs[i].0.as_fd();
                    let mut probe = [PollFd::new(fd, PollFlags::POLLIN)];
                    poll(&mut probe, PollTimeout::ZERO).unwrap_or(0) > 0
                };
                if !ready || !self.read_output(i)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        if let Some(log) = self.log.as_mut() {
            log.write(stream, bytes)?;
        }
        let tty = self.io.tty();
        let framed = (!tty).then(|| attach::frame(stream, bytes));
        for c in &mut self.clients {
            let Some(o) = &c.options else { continue };
            // With a terminal everything is stdout, as the log records it.
            if !o.stream || !o.wants(stream) {
                continue;
            }
            c.send(framed.as_deref().unwrap_or(bytes));
            c.flush();
        }
        Ok(())
    }

    fn serve(&mut self, i: usize, ev: PollFlags) {
        if ev.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
            self.clients[i].dead = true;
            return;
        }
        if ev.contains(PollFlags::POLLOUT) {
            self.clients[i].flush();
        }
        if ev.contains(PollFlags::POLLIN) {
            self.read_client(i);
        } else if ev.contains(PollFlags::POLLHUP) {
            self.clients[i].dead = true;
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 16 * 1024];
        let n = match self.clients[i].sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => return,
            Err(_) => {
                self.clients[i].dead = true;
                return;
            }
        };
        if self.clients[i].options.is_none() {
            self.read_request(i, &buf[..n]);
        } else if n == 0 {
            self.input_ended(i);
        } else {
            self.input(i, &buf[..n]);
        }
    }

    /// Collects the client's first line; acts on it once whole.
    fn read_request(&mut self, i: usize, bytes: &[u8]) {
        let c = &mut self.clients[i];
        if bytes.is_empty() {
            c.dead = true;
            return;
        }
        c.request.extend_from_slice(bytes);
        let Some(nl) = c.request.iter().position(|b| *b == b'\n') else {
            c.dead = c.request.len() > MAX_REQUEST;
            return;
        };
        let rest = c.request.split_off(nl + 1);
        let request = serde_json::from_slice::<Request>(&c.request);
        match request {
            Ok(Request::Resize { resize }) => {
                // A resize is the whole conversation: closing the connection answers it.
                self.clients[i].dead = true;
                self.resize(resize);
            }
            Ok(Request::Attach(options)) => {
                let tty = self.io.tty();
                welcome(&mut self.clients[i], options, self.log_path.as_deref(), tty);
                if !rest.is_empty() {
                    self.input(i, &rest);
                }
            }
            Err(_) => self.clients[i].dead = true,
        }
    }

    fn input(&mut self, i: usize, bytes: &[u8]) {
        let takes = self.clients[i].options.is_some_and(|o| o.stdin);
        if takes && self.io.stdin.is_some() && !self.close_stdin {
            self.stdin_buf.extend_from_slice(bytes);
            self.write_stdin();
        }
    }

    /// The client shut its write side: with stdin_once, the process's stdin closes too.
    fn input_ended(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.reading = false;
        if c.options.is_some_and(|o| o.stdin) && self.io.stdin_once && !self.io.tty() {
            self.close_stdin = true;
        }
    }

    fn write_stdin(&mut self) {
        let Some(stdin) = self.io.stdin.as_mut() else {
            self.stdin_buf.clear();
            return;
        };
        while !self.stdin_buf.is_empty() {
            match stdin.write(&self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // The process closed its stdin: nothing more will be taken.
                Err(_) => {
                    self.io.stdin = None;
                    self.stdin_buf.clear();
                    return;
                }
            }
        }
    }

    fn maybe_close_stdin(&mut self) {
        if self.close_stdin && self.stdin_buf.is_empty() {
            self.io.stdin = None;
        }
    }
}

/// A client's request is known: replay the log if asked, then it gets live output.
fn welcome(c: &mut Client, options: AttachOptions, log_path: Option<&Path>, tty: bool) {
    c.options = Some(options);
    if options.logs {
        if let Some(path) = log_path {
            replay(c, path, &options, tty);
        }
    }
    if !options.stream {
        // Only the log was asked for: the client leaves once it has it.
        c.reading = false;
        c.flush();
        c.dead = true;
    }
}

/// Queues the log's entries for the client, framed as live output would be.
fn replay(c: &mut Client, path: &Path, o: &AttachOptions, tty: bool) {
    let query = Query {
        stdout: o.stdout,
        stderr: o.stderr,
        ..Query::default()
    };
    let Ok(entries) = logs::read(path, &query) else {
        return;
    };
    let mut bytes = Vec::new();
    for e in entries {
        if tty {
            bytes.extend_from_slice(e.log.as_bytes());
        } else {
            bytes.extend(attach::frame(e.stream, e.log.as_bytes()));
        }
    }
    // Only the most recent part fits in a client's queue.
    let skip = bytes.len().saturating_sub(CLIENT_QUEUE / 2);
    c.send(&bytes[skip..]);
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::sys("F_GETFL", e))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| Error::sys("F_SETFL", e))?;
    Ok(())
}

/// Marks an inherited descriptor close-on-exec, so no later child gets it.
pub fn set_cloexec(fd: BorrowedFd<'_>) -> Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| Error::sys(format!("close-on-exec on fd {}", fd.as_raw_fd()), e))?;
    Ok(())
}
