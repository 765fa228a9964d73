//! Birth of a container process: clone3(2) used like fork(2) (the child continues on a copy
//! of our stack), with its new namespaces and a pidfd in one system call. A new pid namespace
//! made this way holds the child itself as its pid 1: no second fork is needed.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;

use crate::error::{Error, Result};

/// From linux/sched.h; libc's constant is deprecated for overflowing a 32-bit int.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// Forks with `flags` (namespace flags only; CLONE_PIDFD is added here).
///
/// Must be called from a single-threaded process: the child is a copy of this thread alone and
/// continues to run Rust code that may take locks another thread held at the time.
pub fn fork_into(flags: CloneFlags, cgroup_fd: Option<RawFd>) -> Result<Forked> {
    let mut pidfd: RawFd = -1;
    // SAFETY: clone_args is plain old data; zero is the documented "unset" for every field.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags.bits() as u64 | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: with stack 0 clone3 behaves like fork: the child resumes here on a copy of our
    // address space. `args` and `pidfd` outlive the call; the kernel reads the former and
    // writes the latter before returning in the parent.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match rc {
        -1 => Err(clone_error(flags)),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

fn clone_error(flags: CloneFlags) -> Error {
    let errno = nix::errno::Errno::last();
    let hint = match errno {
        nix::errno::Errno::EINVAL if flags.contains(CloneFlags::CLONE_NEWUSER) => {
            " (is user namespace support enabled? see /proc/sys/user/max_user_namespaces)"
        }
        nix::errno::Errno::ENOSPC => {
            " (a namespace limit was reached: see /proc/sys/user/max_*_namespaces)"
        }
        nix::errno::Errno::EPERM => " (creating namespaces needs root)",
        _ => "",
    };
    Error::Sys {
        context: format!("clone3 with {flags:?}{hint}"),
        source: errno,
    }
}
