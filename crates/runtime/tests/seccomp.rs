//! Seccomp filters compiled by berth really answer syscalls in a child process.

use std::os::unix::process::CommandExt;
use std::process::Command;

use berth_runtime::seccomp;
use oci_spec::runtime::LinuxSeccomp;

fn compile(json: &str) -> seccomp::Filter {
    let profile: LinuxSeccomp = serde_json::from_str(json).expect("test profile parses");
    seccomp::compile(&profile).expect("profile compiles")
}

/// Runs `check` in a forked child after loading `filter`; the child reports the errno it
/// saw by failing `spawn` with it (std passes a pre_exec error's errno to the parent).
fn errno_in_child(filter: &seccomp::Filter, check: fn() -> i32) -> Option<i32> {
    let filter = filter.clone();
    let mut cmd = Command::new("/bin/true");
    // SAFETY: the closure only makes syscalls (prctl, seccomp and the checked one).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_no_new_privs()?;
            seccomp::load(&filter).map_err(std::io::Error::other)?;
            Err(std::io::Error::from_raw_os_error(check()))
        });
    }
    cmd.spawn().err().and_then(|e| e.raw_os_error())
}

/// Sends `sig` to the calling process; the errno, or 0.
fn kill_self(sig: i32) -> i32 {
    // SAFETY: kill with the caller's own pid; the tests use harmless signals.
    match unsafe { libc::kill(libc::getpid(), sig) } {
        0 => 0,
        _ => last_errno(),
    }
}

/// uname(2)'s errno, or 0.
fn uname_errno() -> i32 {
    let mut buf = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: uname writes into a buffer of the right type.
    match unsafe { libc::uname(buf.as_mut_ptr()) } {
        0 => 0,
        _ => last_errno(),
    }
}

fn last_errno() -> i32 {
    nix::errno::Errno::last_raw()
}

#[test]
fn errno_rule_answers_with_its_errno() {
    let filter = compile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 121}]}"#,
    );
    let errno = errno_in_child(&filter, uname_errno);
    assert_eq!(errno, Some(libc::EREMOTEIO));
}

#[test]
fn default_errno_ret_applies_to_unlisted_syscalls() {
    let filter = compile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 52,
            "syscalls": [{"names": ["prctl", "seccomp", "exit_group", "exit", "write",
            "rt_sigreturn", "rt_sigprocmask", "close", "execve"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let errno = errno_in_child(&filter, || {
        // SAFETY: getcwd into a stack buffer of the given size.
        let mut buf = [0u8; 256];
        match unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) } {
            r if r >= 0 => 0,
            _ => last_errno(),
        }
    });
    assert_eq!(errno, Some(libc::EBADE));
}

#[test]
fn masked_eq_condition_matches_only_masked_value() {
    // umask(2) is answered with EXFULL when (mode & 0o777) == 0o077.
    let filter = compile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 54, "args": [
              {"index": 0, "value": 511, "valueTwo": 63, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    let matched = errno_in_child(&filter, || {
        // SAFETY: umask takes an integer.
        match unsafe { libc::syscall(libc::SYS_umask, 0o1077) } {
            r if r >= 0 => 0,
            _ => last_errno(),
        }
    });
    assert_eq!(matched, Some(libc::EXFULL));
    let unmatched = errno_in_child(&filter, || {
        // SAFETY: umask takes an integer.
        match unsafe { libc::syscall(libc::SYS_umask, 0o022) } {
            r if r >= 0 => 0,
            _ => last_errno(),
        }
    });
    assert_eq!(unmatched, Some(0));
}

#[test]
fn repeated_argument_conditions_mean_any_of() {
    // kill(pid, 0) or kill(pid, SIGCONT) is refused; other signals pass.
    let filter = compile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": [
              {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
              {"index": 1, "value": 18, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert_eq!(errno_in_child(&filter, || kill_self(0)), Some(libc::EBADFD));
    assert_eq!(
        errno_in_child(&filter, || kill_self(18)),
        Some(libc::EBADFD)
    );
    // SIGWINCH is ignored by default, so the child survives sending it to itself.
    assert_eq!(errno_in_child(&filter, || kill_self(28)), Some(0));
}

#[test]
fn filter_survives_exec() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub");
    let filter = compile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}"#,
    );
    let out = run_filtered(&filter, "mkdir", &[target.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Invalid cross-device link"), "{stderr}");
    assert!(!target.exists());
}

#[test]
fn an_unknown_syscall_is_skipped_and_the_rule_still_holds() {
    let filter = compile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["no_such_syscall", "uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 121}]}"#,
    );
    let errno = errno_in_child(&filter, uname_errno);
    assert_eq!(errno, Some(libc::EREMOTEIO));
}

/// A container-like profile: errno by default, every x86_64 syscall allowed except a few
/// privileged ones, clone allowed only without namespace flags (MASKED_EQ), clone3
/// answered with ENOSYS so libc falls back to clone.
#[cfg(target_arch = "x86_64")]
fn container_profile() -> seccomp::Filter {
    const DENIED: &[&str] = &["mount", "umount2", "unshare", "setns", "clone", "clone3"];
    let names: Vec<String> = (0..460)
        .filter_map(|nr| {
            libseccomp::ScmpSyscall::from_raw_syscall(nr)
                .get_name_by_arch(libseccomp::ScmpArch::X8664)
                .ok()
        })
        .filter(|n| !DENIED.contains(&n.as_str()))
        .collect();
    let namespace_flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP;
    let json = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": namespace_flags, "valueTwo": 0,
                 "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}
        ]
    });
    seccomp::compile(&serde_json::from_value(json).unwrap()).unwrap()
}

/// Runs `program` with `filter` loaded right before exec.
fn run_filtered(filter: &seccomp::Filter, program: &str, args: &[&str]) -> std::process::Output {
    let filter = filter.clone();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: the closure only makes syscalls (prctl, seccomp).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_no_new_privs()?;
            seccomp::load(&filter).map_err(std::io::Error::other)
        });
    }
    cmd.output().unwrap()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn container_profile_runs_a_shell_and_refuses_namespaces() {
    let filter = container_profile();
    let out = run_filtered(
        &filter,
        "/bin/sh",
        &["-c", "echo ok; /bin/true && echo forked"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\nforked\n");

    let out = run_filtered(&filter, "unshare", &["--uts", "true"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
}
