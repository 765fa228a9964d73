//! A terminal through --console-socket: the pty master arrives over SCM_RIGHTS, as with runc.

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use common::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

fn receive_fd(listener: &UnixListener) -> OwnedFd {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this descriptor in our table for us alone.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no descriptor received");
}

#[test]
fn the_terminal_master_is_sent_to_the_console_socket() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", "tty; echo size=$(stty size)"]);
    h.edit(&b, |v| {
        v["process"]["terminal"] = json!(true);
        v["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let sock = h.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = cid("tty");
    let receiver = std::thread::spawn(move || receive_fd(&listener));
    h.ok(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = receiver.join().unwrap();
    h.ok(&["start", &id]);
    let mut out = String::new();
    let mut file = std::fs::File::from(master);
    // Reading the master ends with EIO once the container's side is closed.
    let _ = file.read_to_string(&mut out);
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("size=30 100"), "{out:?}");
    h.wait_status(&id, "stopped");
    h.ok(&["delete", &id]);
    h.assert_clean(&id);
}

#[test]
fn create_with_a_terminal_but_no_socket_is_refused() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| v["process"]["terminal"] = json!(true));
    let id = cid("nosock");
    let out = h.rt(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--console-socket"),
        "{}",
        stderr(&out)
    );
    h.assert_clean(&id);
}
