//! The conversation between the runtime (parent) and the container's init (child) while the
//! container is being set up: one SOCK_SEQPACKET socketpair, one small JSON message per packet,
//! so message boundaries are kept and a dead peer reads as end-of-file.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: uid/gid maps are written; set up namespaces and mounts.
    Proceed,
    /// Parent → child: the cgroup exists, has its limits, and holds the child. Made while
    /// the child builds its mounts, so the two halves of setup overlap on two cores.
    CgroupReady,
    /// Child → parent: namespaces and mounts exist, root not yet pivoted; run the runtime-side
    /// (prestart and createRuntime) hooks now.
    RuntimeHooks,
    /// Parent → child: those hooks ran.
    HooksDone,
    /// Child → parent: setup is complete; the child now waits to be started.
    Ready,
    /// Parent → child: start now (used by `run`, which needs no exec fifo).
    Start,
    /// Child → parent: setup failed; the message says why.
    Failed(String),
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: one end for the parent, one for the child. Both close on exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context(|| "create the setup socketpair".into())?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl From<OwnedFd> for Channel {
    fn from(fd: OwnedFd) -> Self {
        Channel { fd }
    }
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::Init(e.to_string()))?;
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)
            .context(|| "send on the setup channel".into())?;
        Ok(())
    }

    /// The next message, or an error if the peer hung up (it died or exited).
    pub fn recv(&self) -> Result<Msg> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Err(Error::Init("the other side exited during setup".into())),
                Ok(n) => {
                    return serde_json::from_slice(&buf[..n])
                        .map_err(|e| Error::Init(format!("garbled setup message: {e}")))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context(|| "receive on the setup channel".into()),
            }
        }
    }

    /// Sends `msg`; if the child is already gone, returns the failure it reported instead
    /// of a bare EPIPE.
    pub fn send_or_failure(&self, msg: &Msg) -> Result<()> {
        match self.send(msg) {
            Ok(()) => Ok(()),
            Err(e) => match self.recv() {
                Ok(Msg::Failed(why)) => Err(Error::Init(why)),
                _ => Err(e),
            },
        }
    }

    /// The next message, or None if the peer closed its end (for a child: it exec'd).
    pub fn recv_or_closed(&self) -> Result<Option<Msg>> {
        match self.recv() {
            Ok(m) => Ok(Some(m)),
            Err(Error::Init(why)) if why.starts_with("the other side exited") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for `want`, turning a `Failed` report into the error it describes.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            m if m == want => Ok(()),
            Msg::Failed(why) => Err(Error::Init(why)),
            other => Err(Error::Init(format!(
                "setup out of step: expected {want:?}, got {other:?}"
            ))),
        }
    }

    /// The end of a child's setup: it either replaced itself with the user's program (and
    /// never returns here) or failed; the failure goes to the parent and the child exits.
    pub fn finish_child(&self, setup: Result<std::convert::Infallible>) -> ! {
        let err = match setup {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let _ = self.send(&Msg::Failed(err.to_string()));
        // SAFETY: _exit skips Rust's exit handlers, which belong to the parent's copy of the
        // process state and must not run twice.
        unsafe { libc::_exit(1) }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_failures_become_errors() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Ready).unwrap();
        b.expect(Msg::Ready).unwrap();
        b.send(&Msg::Failed("no such file".into())).unwrap();
        let err = a.expect(Msg::Ready).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        drop(b);
        assert!(a.recv().is_err());
    }
}
