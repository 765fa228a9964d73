//! Terminals for the container process (`process.terminal: true`), as runc provides them.
//!
//! * With `--console-socket`: the init opens a pty, sends the master to the socket with
//!   SCM_RIGHTS ([`send_master`]) and makes the slave its controlling terminal and stdio
//!   ([`make_controlling`]).
//! * In the foreground without a socket: the runtime keeps the master and copies between
//!   it and its own stdin/stdout ([`proxy`]).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};

use crate::error::Context;
use crate::{Error, Result};

/// The name sent with the master fd, as runc does (the path the master was opened from).
pub const MASTER_NAME: &str = "/dev/ptmx";

/// Opens a new pty pair from the current mount namespace's `/dev/ptmx`.
///
/// Both ends are close-on-exec; the slave is opened from the master with TIOCGPTPEER, so
/// no path under /dev/pts is looked up (nothing in the container can swap it).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::fcntl::open(MASTER_NAME, flags, Mode::empty())
        .context(|| format!("open {MASTER_NAME}"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(last("unlock the pty (TIOCSPTLCK)"));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags.bits()) };
    if slave < 0 {
        return Err(last("open the pty slave (TIOCGPTPEER)"));
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok((master, slave))
}

/// The slave's number N (`/dev/pts/N`), e.g. to bind-mount it on `/dev/console`.
pub fn pty_number(master: &OwnedFd) -> Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } < 0 {
        return Err(last("read the pty number (TIOCGPTN)"));
    }
    Ok(n)
}

/// Sets the window size of a terminal (`process.consoleSize`, or the caller's size).
pub fn resize(tty: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    set_winsize(tty, &size)
}

/// Sends the master to the console socket with SCM_RIGHTS, then closes our copy.
pub fn send_master(console_socket: &Path, master: OwnedFd) -> Result<()> {
    let stream = UnixStream::connect(console_socket).map_err(|source| Error::Path {
        context: "connect to the console socket",
        path: console_socket.to_path_buf(),
        source,
    })?;
    send_fd(stream.as_fd(), &master)
}

/// Sends `fd` over a connected unix socket with SCM_RIGHTS, named as runc names it.
pub fn send_fd(sock: BorrowedFd<'_>, fd: &OwnedFd) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(MASTER_NAME.as_bytes())];
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .context(|| "send the pty master".into())?;
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`].
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context(|| "receive the pty master".into())?;
    for c in msg.cmsgs().context(|| "read the control message".into())? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor in our table for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Init("the container sent no terminal".into()))
}

/// Makes the pty the container's /dev/console (bind-mounted over it), as runc does.
pub fn bind_console(master: &OwnedFd) -> Result<()> {
    let slave = format!("/dev/pts/{}", pty_number(master)?);
    let console = Path::new("/dev/console");
    if !console.exists() {
        std::fs::File::create(console).context(|| "create /dev/console".into())?;
    }
    nix::mount::mount(
        Some(slave.as_str()),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| format!("bind {slave} on /dev/console"))
}

/// In the container's init: a new session with `slave` as its controlling terminal and
/// as stdin, stdout and stderr. The caller closes `slave` afterwards if it is not 0..=2.
///
/// Async-signal-safe on success (only syscalls); errors allocate their message.
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().context(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal from another session).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(last("make the pty the controlling terminal (TIOCSCTTY)"));
    }
    nix::unistd::dup2_stdin(slave).context(|| "dup the pty onto stdin".into())?;
    nix::unistd::dup2_stdout(slave).context(|| "dup the pty onto stdout".into())?;
    nix::unistd::dup2_stderr(slave).context(|| "dup the pty onto stderr".into())?;
    // dup2 onto itself keeps close-on-exec: if the slave already was 0, 1 or 2, clear it
    // or the program would start without that stream.
    if (0..=2).contains(&slave.as_raw_fd()) {
        fcntl(
            slave.as_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .context(|| "clear close-on-exec on the pty".into())?;
    }
    Ok(())
}

/// Foreground terminal: copies stdin → master and master → stdout until the container
/// side hangs up. See [`proxy_io`].
pub fn proxy(master: OwnedFd) -> Result<()> {
    proxy_io(master, std::io::stdin().as_fd(), std::io::stdout().as_fd())
}

/// Copies `input` → `master` and `master` → `output` until every slave fd is closed.
///
/// When `input` is a terminal, it is put in raw mode for the duration (restored on every
/// return path), its window size is copied to the master at start, and on SIGWINCH again.
/// SIGWINCH is received through a signalfd: it is blocked in the calling thread while the
/// proxy runs; other threads of the process should block it too, or they may take it.
pub fn proxy_io(master: OwnedFd, input: BorrowedFd<'_>, output: BorrowedFd<'_>) -> Result<()> {
    set_nonblocking(master.as_fd())?;
    let is_tty = nix::unistd::isatty(input).unwrap_or(false);
    let _raw = if is_tty {
        Some(RawMode::enter(input)?)
    } else {
        None
    };
    let winch = if is_tty {
        copy_winsize(input, master.as_fd())?;
        Some(WinchSignal::block()?)
    } else {
        None
    };
    Pump {
        master: master.as_fd(),
        input: Some(input),
        output,
        pending: Vec::new(),
    }
    .run(winch.as_ref().map(|w| &w.fd), input)
}

/// The copy loop's state: data read from input that the master has not taken yet.
struct Pump<'a> {
    master: BorrowedFd<'a>,
    input: Option<BorrowedFd<'a>>,
    output: BorrowedFd<'a>,
    pending: Vec<u8>,
}

impl Pump<'_> {
    fn run(mut self, winch: Option<&SignalFd>, tty: BorrowedFd<'_>) -> Result<()> {
        loop {
            let ready = self.wait(winch)?;
            // Resize before forwarding input that was typed after the resize.
            if ready.winch {
                if let Some(w) = winch {
                    while let Ok(Some(_)) = w.read_signal() {}
                }
                copy_winsize(tty, self.master)?;
            }
            if ready.master_out && !self.master_to_output()? {
                return Ok(());
            }
            if ready.master_in {
                self.flush_pending()?;
            }
            if ready.input {
                self.input_to_pending()?;
            }
        }
    }

    /// Polls what is relevant now: input only when the master took everything before
    /// (back-pressure instead of an unbounded buffer), master writability otherwise.
    fn wait(&self, winch: Option<&SignalFd>) -> Result<Ready> {
        let mut master_events = PollFlags::POLLIN;
        if !self.pending.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(self.master, master_events)];
        let input_slot = match self.input.filter(|_| self.pending.is_empty()) {
            Some(input) => {
                fds.push(PollFd::new(input, PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            None => None,
        };
        let winch_slot = winch.map(|w| {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(sys(e, "poll the terminal")),
        }
        let revents = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        let master = revents(0);
        Ok(Ready {
            master_out: master
                .intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
            master_in: master.contains(PollFlags::POLLOUT),
            input: input_slot.is_some_and(|i| !revents(i).is_empty()),
            winch: winch_slot.is_some_and(|i| !revents(i).is_empty()),
        })
    }

    /// Copies what the master has to the output; false once the slave side hung up.
    fn master_to_output(&mut self) -> Result<bool> {
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(self.master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => return Ok(false),
                Ok(n) => write_all(self.output, &buf[..n])?,
                Err(Errno::EAGAIN) => return Ok(true),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(sys(e, "read the pty master")),
            }
        }
    }

    fn input_to_pending(&mut self) -> Result<()> {
        let Some(input) = self.input else {
            return Ok(());
        };
        let mut buf = [0u8; 8192];
        match nix::unistd::read(input, &mut buf) {
            // End of input: keep copying output until the container exits.
            Ok(0) => self.input = None,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(e) => return Err(sys(e, "read the terminal input")),
        }
        self.flush_pending()
    }

    fn flush_pending(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            match nix::unistd::write(self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                // The container side is gone: drop the input, the output loop ends soon.
                Err(Errno::EIO) => self.pending.clear(),
                Err(e) => return Err(sys(e, "write to the pty master")),
            }
        }
        Ok(())
    }
}

struct Ready {
    master_out: bool,
    master_in: bool,
    input: bool,
    winch: bool,
}

/// The caller's terminal in raw mode; the previous settings come back on drop.
struct RawMode<'a> {
    tty: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(tty: BorrowedFd<'a>) -> Result<Self> {
        let saved = termios::tcgetattr(tty).map_err(|e| sys(e, "read the terminal settings"))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(tty, SetArg::TCSANOW, &raw)
            .map_err(|e| sys(e, "put the terminal in raw mode"))?;
        Ok(RawMode { tty, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        if let Err(e) = termios::tcsetattr(self.tty, SetArg::TCSANOW, &self.saved) {
            tracing::warn!(error = %e, "cannot restore the terminal settings");
        }
    }
}

/// SIGWINCH blocked in this thread and readable from a signalfd; unblocked on drop (if it
/// was not blocked before).
struct WinchSignal {
    fd: SignalFd,
    was_blocked: bool,
}

impl WinchSignal {
    fn block() -> Result<Self> {
        let mut winch = SigSet::empty();
        winch.add(Signal::SIGWINCH);
        let old = winch
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .map_err(|e| sys(e, "block SIGWINCH"))?;
        let fd = SignalFd::with_flags(&winch, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| sys(e, "signalfd for SIGWINCH"))?;
        Ok(WinchSignal {
            fd,
            was_blocked: old.contains(Signal::SIGWINCH),
        })
    }
}

impl Drop for WinchSignal {
    fn drop(&mut self) {
        if !self.was_blocked {
            let mut winch = SigSet::empty();
            winch.add(Signal::SIGWINCH);
            let _ = winch.thread_unblock();
        }
    }
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to the valid pointer.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } < 0 {
        return Err(last("read the terminal size (TIOCGWINSZ)"));
    }
    set_winsize(to, &size)
}

fn set_winsize(tty: BorrowedFd<'_>, size: &libc::winsize) -> Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize from the valid pointer.
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, size) } < 0 {
        return Err(last("set the terminal size (TIOCSWINSZ)"));
    }
    Ok(())
}

/// Writes everything, waiting with poll when a non-blocking output is full.
fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                poll(&mut fds, PollTimeout::NONE).map_err(|e| sys(e, "poll the output"))?;
            }
            Err(e) => return Err(sys(e, "write the terminal output")),
        }
    }
    Ok(())
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| sys(e, "F_GETFL on the pty master"))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| sys(e, "make the pty master non-blocking"))?;
    Ok(())
}

fn sys(source: Errno, context: &str) -> Error {
    Error::Sys {
        context: context.to_string(),
        source,
    }
}

fn last(context: &str) -> Error {
    sys(Errno::last(), context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pty_pair_is_connected_and_cloexec() {
        let (master, slave) = open_pty().unwrap();
        for fd in [&master, &slave] {
            let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap();
            assert_ne!(flags & libc::FD_CLOEXEC, 0);
        }
        assert!(nix::unistd::isatty(&slave).unwrap());
        let n = pty_number(&master).unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
        assert_eq!(link, Path::new(&format!("/dev/pts/{n}")));
    }

    #[test]
    fn resize_sets_the_window_size() {
        let (master, slave) = open_pty().unwrap();
        resize(master.as_fd(), 24, 132).unwrap();
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize to the valid pointer.
        let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_row, size.ws_col), (24, 132));
    }
}
