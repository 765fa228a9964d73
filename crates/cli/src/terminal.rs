//! The local terminal and the attached stream: raw mode, window sizes and their changes, and
//! the pump between stdin/stdout/stderr and a hijacked connection.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{anyhow, Result};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::Client;
use crate::stdcopy::{Demuxer, Stream};

/// Whether a standard descriptor (0, 1, 2) is a terminal.
pub fn is_tty(fd: i32) -> bool {
    match fd {
        0 => nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
        1 => nix::unistd::isatty(std::io::stdout()).unwrap_or(false),
        _ => nix::unistd::isatty(std::io::stderr()).unwrap_or(false),
    }
}

/// Puts stdin in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())
            .map_err(|e| anyhow!("cannot read the terminal's settings: {e}"))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .map_err(|e| anyhow!("cannot put the terminal in raw mode: {e}"))?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The terminal's size (rows, columns), from stdout or stdin.
pub fn size() -> Option<(u16, u16)> {
    for fd in [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct we own; fd is a standard stream.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if rc == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Sends the terminal's size now and again on every SIGWINCH; `path` is the resize endpoint
/// (`/containers/ID/resize` or `/exec/ID/resize`).
pub fn follow_size(client: Client, path: String) {
    tokio::spawn(async move {
        send_size(&client, &path).await;
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            send_size(&client, &path).await;
        }
    });
}

async fn send_size(client: &Client, path: &str) {
    if let Some((h, w)) = size() {
        let _ = client.post(&format!("{path}?h={h}&w={w}")).await;
    }
}

/// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT received by berth to the container (docker's
/// sig-proxy, for attached containers without a tty) instead of dying of them.
pub fn proxy_signals(client: Client, container: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
    ];
    for (kind, name) in kinds {
        let Ok(mut sig) = signal(kind) else {
            continue;
        };
        let client = client.clone();
        let path = format!("/containers/{container}/kill?signal={name}");
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = client.post(&path).await;
            }
        });
    }
}

/// How an attached stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The container (or exec) closed its output.
    Closed,
    /// The user typed the detach sequence; the container goes on.
    Detached,
}

/// Copies the connection's output to stdout/stderr (demultiplexed unless `tty`) until it ends,
/// and, with `stdin`, the local stdin into it (closing its write side at end of input). With a
/// tty, typing ctrl-p ctrl-q detaches, as with docker.
pub async fn pump<S>(io: S, tty: bool, stdin: bool) -> Result<Ended>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel();
    if stdin {
        tokio::spawn(forward_stdin(wr, tty, detach_tx));
    }
    let mut demux = Demuxer::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = tokio::select! {
            read = rd.read(&mut buf) => read?,
            Ok(()) = &mut detach_rx => return Ok(Ended::Detached),
        };
        if n == 0 {
            return Ok(Ended::Closed);
        }
        if tty {
            write_out(Stream::Stdout, &buf[..n])?;
            continue;
        }
        for (stream, payload) in demux.push(&buf[..n]).map_err(|e| anyhow!(e))? {
            write_out(stream, &payload)?;
        }
    }
}

/// Copies stdin into the connection; with a tty, watches for the detach sequence.
async fn forward_stdin<W>(mut wr: W, tty: bool, detach: tokio::sync::oneshot::Sender<()>)
where
    W: AsyncWrite + Unpin,
{
    let mut input = tokio::io::stdin();
    let mut keys = DetachKeys::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (data, detached) = if tty {
            keys.feed(&buf[..n])
        } else {
            (buf[..n].to_vec(), false)
        };
        if wr.write_all(&data).await.is_err() {
            return;
        }
        if detached {
            let _ = detach.send(());
            return;
        }
    }
    let _ = wr.shutdown().await;
}

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

/// Spots docker's detach sequence, ctrl-p ctrl-q, in typed input; a ctrl-p is held back until
/// the next byte shows whether it starts the sequence.
#[derive(Default)]
pub struct DetachKeys {
    held: bool,
}

impl DetachKeys {
    /// The bytes to forward, and whether the sequence was completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.held {
                self.held = false;
                if b == CTRL_Q {
                    return (out, true);
                }
                out.push(CTRL_P);
            }
            if b == CTRL_P {
                self.held = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Writes one frame's payload where it belongs.
pub fn write_out(stream: Stream, payload: &[u8]) -> Result<()> {
    match stream {
        Stream::Stderr | Stream::System => {
            let mut err = std::io::stderr().lock();
            err.write_all(payload)?;
            err.flush()?;
        }
        Stream::Stdout | Stream::Stdin => {
            let mut out = std::io::stdout().lock();
            out.write_all(payload)?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_sequence() {
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(k.feed(&[b'a', CTRL_P]), (b"a".to_vec(), false));
        assert_eq!(k.feed(&[CTRL_Q, b'x']), (Vec::new(), true));
        let mut k = DetachKeys::default();
        assert_eq!(
            k.feed(&[CTRL_P, CTRL_P, b'y']),
            (vec![CTRL_P, CTRL_P, b'y'], false)
        );
        assert_eq!(k.feed(&[CTRL_P]), (Vec::new(), false));
        assert_eq!(k.feed(b"z"), (vec![CTRL_P, b'z'], false));
    }
}
