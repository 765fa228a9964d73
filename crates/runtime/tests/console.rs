//! Terminals: the master reaches a console socket, and the foreground proxy copies both
//! ways, keeps the caller's terminal raw only while it runs, and forwards window sizes.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use berth_runtime::console;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios;

/// Receives one message with one fd, as a console-socket listener (containerd) does.
fn receive_fd(stream: &std::os::unix::net::UnixStream) -> (String, OwnedFd) {
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fds = msg.cmsgs().unwrap().filter_map(|c| match c {
        ControlMessageOwned::ScmRights(fds) => Some(fds),
        _ => None,
    });
    let fd = fds.next().expect("an SCM_RIGHTS message")[0];
    let len = msg.bytes;
    let name = String::from_utf8(buf[..len].to_vec()).unwrap();
    // SAFETY: the fd just arrived with SCM_RIGHTS and nothing else owns it.
    (name, unsafe { OwnedFd::from_raw_fd(fd) })
}

#[test]
fn master_sent_to_the_console_socket_drives_the_slave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (master, slave) = console::open_pty().unwrap();

    console::send_master(&path, master).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let (name, received) = receive_fd(&stream);
    assert_eq!(name, "/dev/ptmx");

    let mut received = std::fs::File::from(received);
    let mut slave = std::fs::File::from(slave);
    received.write_all(b"hello\n").unwrap();
    let mut line = [0u8; 6];
    slave.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"hello\n");
    slave.write_all(b"hi\n").unwrap();
    // The slave echoed the input line, then the tty turned "\n" into "\r\n" on output.
    let mut out = [0u8; 11];
    received.read_exact(&mut out).unwrap();
    assert_eq!(&out, b"hello\r\nhi\r\n");
}

/// Starts `script` under /bin/sh with the slave as controlling terminal and stdio.
fn spawn_on_pty(script: &str, slave: OwnedFd) -> std::process::Child {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: make_controlling only makes syscalls on success.
    unsafe {
        cmd.pre_exec(move || console::make_controlling(&slave).map_err(std::io::Error::other));
    }
    // Spawning and dropping `cmd` closes this process's copy of the slave, so the master
    // hangs up when the child exits.
    cmd.spawn().unwrap()
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = nix::unistd::pipe().unwrap();
    (r.into(), w.into())
}

#[test]
fn proxy_copies_input_and_output_until_the_container_hangs_up() {
    let (master, slave) = console::open_pty().unwrap();
    let mut child = spawn_on_pty("read x; echo got:$x; tty", slave);
    let (input_r, mut input_w) = pipe();
    let (mut output_r, output_w) = pipe();
    input_w.write_all(b"abc\n").unwrap();
    drop(input_w);

    console::proxy_io(master, input_r.as_fd(), output_w.as_fd()).unwrap();
    drop(output_w);
    let mut output = String::new();
    output_r.read_to_string(&mut output).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(output.contains("got:abc\r\n"), "{output:?}");
    // The shell's stdio is the pty (make_controlling dup'ed it onto 0, 1, 2).
    assert!(output.contains("/dev/pts/"), "{output:?}");
}

fn set_size(fd: &OwnedFd, rows: u16, cols: u16) {
    console::resize(fd.as_fd(), rows, cols).unwrap();
}

#[test]
fn proxy_on_a_tty_is_raw_while_running_and_forwards_window_sizes() {
    // The caller's terminal is another pty: the test types on its master.
    let (mut user_master, user_tty) = {
        let (m, s) = console::open_pty().unwrap();
        (std::fs::File::from(m), s)
    };
    set_size(&user_tty, 40, 100);
    let before = termios::tcgetattr(&user_tty).unwrap();

    let (master, slave) = console::open_pty().unwrap();
    let mut child = spawn_on_pty("read a; stty size; read b; stty size", slave);
    let (mut output_r, output_w) = pipe();

    let (tx, rx) = mpsc::channel();
    let proxy_tty = user_tty.try_clone().unwrap();
    let proxy = std::thread::spawn(move || {
        // Block SIGWINCH before the test may send it, so it stays pending for the proxy.
        let mut winch = nix::sys::signal::SigSet::empty();
        winch.add(nix::sys::signal::Signal::SIGWINCH);
        winch.thread_block().unwrap();
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        console::proxy_io(master, proxy_tty.as_fd(), output_w.as_fd())
    });
    let thread = rx.recv().unwrap();

    user_master.write_all(b"one\n").unwrap();
    let mut output = read_until(&mut output_r, "40 100", String::new());
    let raw = termios::tcgetattr(&user_tty).unwrap();
    assert!(!raw.local_flags.contains(termios::LocalFlags::ICANON));
    assert!(!raw.local_flags.contains(termios::LocalFlags::ECHO));

    set_size(&user_tty, 50, 120);
    // SAFETY: the thread is alive (it is blocked in the proxy) and SIGWINCH is blocked
    // there, so the signal stays pending for its signalfd.
    assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGWINCH) }, 0);
    user_master.write_all(b"two\n").unwrap();
    output = read_until(&mut output_r, "50 120", output);

    proxy.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success(), "{output:?}");
    let after = termios::tcgetattr(&user_tty).unwrap();
    assert_eq!(after.local_flags, before.local_flags);
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.output_flags, before.output_flags);
}

/// Reads the proxy's output until `needle` appears (the read blocks; no sleeping).
fn read_until(r: &mut std::fs::File, needle: &str, mut seen: String) -> String {
    let mut buf = [0u8; 1024];
    while !seen.contains(needle) {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "output ended before {needle:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}
