//! Seccomp for containers: berth's default profile, and profiles in Docker's format
//! (`--security-opt seccomp=profile.json`; the docker CLI sends the file's content).
//!
//! The default profile is an allow list, as Docker's is: every syscall of the kernel's
//! x86_64 and i386 tables is named once below, either allowed, allowed with a capability,
//! allowed for some arguments only, or refused with EPERM. A syscall this list does not name
//! (newer than it, or newer than libseccomp) gets ENOSYS, as if the kernel lacked it, so the
//! C library falls back to an older call where it has one; podman's profile makes the same
//! choice, and runc arranges the same for Docker's.
//!
//! What is refused reaches kernel state no namespace isolates (clocks, modules, keyrings,
//! reboot, accounting, swap, NUMA policy, raw I/O ports, the kernel log), or the namespace and
//! mount machinery, each unless the container holds the capability that makes it legitimate
//! (so `--cap-add SYS_ADMIN` may mount, as with Docker).

use oci_spec::runtime::{Capabilities, Capability, LinuxSeccomp};
use serde_json::{json, Value};

use crate::error::{Error, Result};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Allowed to every container: the syscalls of ordinary programs. Whitespace-separated,
/// grouped by what they touch.
const ALLOWED: &[&str] = &[
    // Files, descriptors and file systems as a process sees them.
    "read write open close creat openat openat2 close_range lseek _llseek pread64 pwrite64 \
     readv writev preadv pwritev preadv2 pwritev2 sendfile sendfile64 splice tee vmsplice \
     copy_file_range dup dup2 dup3 fcntl fcntl64 flock fsync fdatasync sync syncfs \
     sync_file_range fallocate fadvise64 fadvise64_64 readahead truncate truncate64 ftruncate \
     ftruncate64 stat fstat lstat stat64 fstat64 lstat64 fstatat64 newfstatat statx oldstat \
     oldfstat oldlstat statfs fstatfs statfs64 fstatfs64 access faccessat faccessat2 getdents \
     getdents64 readdir getcwd chdir fchdir rename renameat renameat2 mkdir mkdirat rmdir link \
     linkat unlink unlinkat symlink symlinkat readlink readlinkat mknod mknodat chmod fchmod \
     fchmodat fchmodat2 chown fchown lchown fchownat chown32 fchown32 lchown32 umask utime utimes \
     utimensat utimensat_time64 futimesat setxattr lsetxattr fsetxattr getxattr lgetxattr \
     fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr ioctl \
     pipe pipe2 memfd_create memfd_secret inotify_init inotify_init1 inotify_add_watch \
     inotify_rm_watch fanotify_mark cachestat",
    // Waiting and events.
    "poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 epoll_create \
     epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd \
     signalfd4 timerfd_create timerfd_settime timerfd_gettime timerfd_settime64 \
     timerfd_gettime64 io_setup io_destroy io_getevents io_pgetevents io_pgetevents_time64 \
     io_submit io_cancel",
    // Memory.
    "brk mmap mmap2 munmap mprotect mremap msync mincore madvise mlock mlock2 munlock \
     mlockall munlockall remap_file_pages membarrier pkey_mprotect pkey_alloc pkey_free \
     process_madvise process_mrelease map_shadow_stack",
    // Processes, threads and signals.
    "fork vfork execve execveat exit exit_group wait4 waitid waitpid kill \
     tkill tgkill rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait \
     rt_sigtimedwait_time64 rt_sigqueueinfo rt_tgsigqueueinfo rt_sigsuspend sigaltstack \
     sigaction signal sigpending sigprocmask sigreturn sigsuspend sgetmask ssetmask pause \
     restart_syscall set_tid_address set_robust_list get_robust_list futex futex_time64 \
     futex_waitv futex_wake futex_wait futex_requeue rseq set_thread_area get_thread_area \
     arch_prctl modify_ldt prctl seccomp \
     pidfd_open pidfd_send_signal pidfd_getfd ptrace kcmp process_vm_readv process_vm_writev \
     landlock_create_ruleset landlock_add_rule landlock_restrict_self",
    // Identity and limits (the kernel checks CAP_SETUID and friends itself).
    "getpid getppid gettid getuid geteuid getgid getegid getuid32 geteuid32 getgid32 \
     getegid32 setuid setgid setuid32 setgid32 setreuid setregid setreuid32 setregid32 \
     setresuid setresgid setresuid32 setresgid32 getresuid getresgid getresuid32 getresgid32 \
     setfsuid setfsgid setfsuid32 setfsgid32 getgroups setgroups getgroups32 setgroups32 \
     setpgid getpgid getpgrp setsid getsid capget capset getrlimit ugetrlimit setrlimit \
     prlimit64 getrusage getpriority setpriority nice ioprio_get ioprio_set",
    // Scheduling.
    "sched_yield sched_setparam sched_getparam sched_setscheduler sched_getscheduler \
     sched_get_priority_max sched_get_priority_min sched_rr_get_interval \
     sched_rr_get_interval_time64 sched_setaffinity sched_getaffinity sched_setattr \
     sched_getattr getcpu",
    // Time as a process reads it, and its own timers.
    "time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 \
     clock_nanosleep clock_nanosleep_time64 nanosleep adjtimex times alarm getitimer \
     setitimer timer_create timer_settime timer_gettime timer_settime64 timer_gettime64 \
     timer_getoverrun timer_delete",
    // Sockets (the network namespace bounds what they reach) and System V / POSIX IPC (the
    // IPC namespace bounds that).
    "socketpair connect accept accept4 bind listen getsockname getpeername sendto recvfrom \
     sendmsg recvmsg sendmmsg recvmmsg recvmmsg_time64 shutdown setsockopt getsockopt \
     socketcall ipc shmget shmat shmctl shmdt semget semop semctl semtimedop \
     semtimedop_time64 msgget msgsnd msgrcv msgctl mq_open mq_unlink mq_timedsend \
     mq_timedreceive mq_timedsend_time64 mq_timedreceive_time64 mq_notify mq_getsetattr",
    // The system as the UTS namespace shows it.
    "uname olduname oldolduname sysinfo sethostname setdomainname getrandom",
];

/// Allowed to a container holding any of the capabilities; refused with EPERM otherwise.
const BY_CAPABILITY: &[(&[Capability], &str)] = &[
    (
        &[Capability::SysAdmin],
        "mount umount umount2 unshare setns pivot_root quotactl quotactl_fd swapon swapoff \
         fanotify_init lookup_dcookie name_to_handle_at open_tree move_mount fsopen fsconfig \
         fsmount fspick mount_setattr",
    ),
    (&[Capability::SysAdmin, Capability::Bpf], "bpf"),
    (
        &[Capability::SysAdmin, Capability::Perfmon],
        "perf_event_open",
    ),
    (&[Capability::DacReadSearch], "open_by_handle_at"),
    (&[Capability::SysBoot], "reboot kexec_load kexec_file_load"),
    (
        &[Capability::SysModule],
        "init_module finit_module delete_module",
    ),
    (
        &[Capability::SysTime],
        "settimeofday stime clock_settime clock_settime64 clock_adjtime clock_adjtime64",
    ),
    (&[Capability::SysPacct], "acct"),
    (&[Capability::SysRawio], "iopl ioperm"),
    (
        &[Capability::SysNice],
        "mbind set_mempolicy get_mempolicy set_mempolicy_home_node move_pages migrate_pages",
    ),
    (&[Capability::Syslog], "syslog"),
    (&[Capability::SysChroot], "chroot"),
    (&[Capability::SysTtyConfig], "vhangup"),
    (&[Capability::SysPtrace], "userfaultfd"),
];

/// Refused to every container with EPERM: the kernel keyring is not namespaced, io_uring
/// bypasses this filter for the operations it queues (Docker refuses it too), and the rest are
/// obsolete interfaces kept only for old binaries.
const REFUSED: &str = "add_key request_key keyctl io_uring_setup io_uring_enter \
    io_uring_register uselib ustat sysfs _sysctl nfsservctl create_module get_kernel_syms \
    query_module bdflush vm86 vm86old idle";

/// In the kernel's tables but never implemented by it (it answers ENOSYS): left to the
/// default action, which gives the same answer. Named so the test that every syscall is
/// decided knows these were not forgotten.
#[cfg(test)]
const UNIMPLEMENTED: &str = "afs_syscall getpmsg putpmsg security tuxcall vserver \
    epoll_ctl_old epoll_wait_old break ftime gtty lock mpx prof profil stty ulimit";

/// personality(2) is allowed for the Linux personality, its 32-bit variant, UNAME26 with
/// each, and queries (0xffffffff): the others turn off address randomisation or change the
/// ABI.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// AF_VSOCK talks to the hypervisor, outside every namespace.
const AF_VSOCK: u64 = 40;

/// The namespace flags of clone(2): creating namespaces needs CAP_SYS_ADMIN, so a
/// container cannot nest containers unless it is given that capability.
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// The default profile for a container holding `caps`.
pub fn default_profile(caps: &Capabilities) -> Result<LinuxSeccomp> {
    let words = |s: &'static str| s.split_whitespace().collect::<Vec<_>>();
    let mut allowed: Vec<&str> = ALLOWED.iter().flat_map(|s| words(s)).collect();
    let mut refused = words(REFUSED);
    for (needs, names) in BY_CAPABILITY {
        if needs.iter().any(|c| caps.contains(c)) {
            allowed.extend(words(names));
        } else {
            refused.extend(words(names));
        }
    }
    let mut syscalls = vec![
        json!({"names": allowed, "action": "SCMP_ACT_ALLOW"}),
        json!({"names": refused, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}),
        // Conditions on one argument are alternatives (any of them).
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args":
            PERSONALITIES.iter().map(|p| json!({"index": 0, "value": p, "op": "SCMP_CMP_EQ"}))
                .collect::<Vec<_>>()}),
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]}),
        json!({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}]}),
    ];
    if caps.contains(&Capability::SysAdmin) {
        syscalls.push(json!({"names": ["clone", "clone3"], "action": "SCMP_ACT_ALLOW"}));
    } else {
        syscalls.extend(clone_without_namespaces());
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": ENOSYS,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    });
    serde_json::from_value(profile)
        .map_err(|e| Error::Invalid(format!("the default seccomp profile: {e}")))
}

/// clone is allowed without namespace flags and refused (EPERM) with any of them. clone3
/// passes its flags in memory, out of a filter's sight, so it is left to the default ENOSYS:
/// the C library then falls back to clone, where they are checked.
fn clone_without_namespaces() -> [Value; 2] {
    let any_flag: u64 = CLONE_NAMESPACE_FLAGS.iter().fold(0, |acc, f| acc | f);
    let each_flag: Vec<Value> = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|f| json!({"index": 0, "value": f, "valueTwo": f, "op": "SCMP_CMP_MASKED_EQ"}))
        .collect();
    [
        json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": any_flag, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}),
        json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": each_flag}),
    ]
}

/// A profile in Docker's format, for a container holding `caps`: entries whose `includes`
/// or `excludes` (capabilities, architectures) do not fit this container are left out, and
/// `archMap` becomes the list of architectures.
pub fn docker_profile(text: &str, caps: &Capabilities) -> Result<LinuxSeccomp> {
    let bad = |why: String| {
        Error::Invalid(format!(
            "invalid seccomp profile: {why}; give Docker's profile format (defaultAction, syscalls)"
        ))
    };
    let mut profile: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let object = profile
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    if let Some(map) = object.remove("archMap") {
        if !object.contains_key("architectures") {
            object.insert("architectures".into(), architectures(&map));
        }
    }
    let syscalls = object
        .remove("syscalls")
        .unwrap_or(Value::Array(Vec::new()));
    let Value::Array(syscalls) = syscalls else {
        return Err(bad("syscalls is not a list".into()));
    };
    let mut kept = Vec::new();
    for mut rule in syscalls {
        let Some(r) = rule.as_object_mut() else {
            return Err(bad("a syscalls entry is not an object".into()));
        };
        let includes = r.remove("includes").unwrap_or(Value::Null);
        let excludes = r.remove("excludes").unwrap_or(Value::Null);
        r.remove("comment");
        if let Some(name) = r.remove("name") {
            r.insert("names".into(), json!([name]));
        }
        if applies(&includes, &excludes, caps) {
            kept.push(rule);
        }
    }
    object.insert("syscalls".into(), Value::Array(kept));
    object.remove("defaultErrno");
    serde_json::from_value(profile).map_err(|e| bad(e.to_string()))
}

/// The entry of archMap for this machine: its architecture and sub-architectures (Docker
/// reads only that entry; a filter cannot hold another machine's architectures anyway).
fn architectures(map: &Value) -> Value {
    let native = format!("SCMP_ARCH_{}", std::env::consts::ARCH.to_ascii_uppercase());
    let mut out = Vec::new();
    for entry in map.as_array().into_iter().flatten() {
        if entry.get("architecture").and_then(Value::as_str) != Some(native.as_str()) {
            continue;
        }
        out.extend(entry.get("architecture").cloned());
        out.extend(
            entry
                .get("subArchitectures")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    Value::Array(out)
}

/// Whether a rule with these conditions holds for this container on this machine.
fn applies(includes: &Value, excludes: &Value, caps: &Capabilities) -> bool {
    let has_cap = |name: &Value| {
        name.as_str()
            .and_then(crate::limits::capability_named)
            .is_some_and(|c| caps.contains(&c))
    };
    let this_arch = |name: &Value| {
        name.as_str() == Some(std::env::consts::ARCH) || name.as_str() == Some("amd64")
    };
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let inc_caps = list(includes, "caps");
    let inc_arches = list(includes, "arches");
    if !inc_caps.is_empty() && !inc_caps.iter().all(has_cap) {
        return false;
    }
    if !inc_arches.is_empty() && !inc_arches.iter().any(this_arch) {
        return false;
    }
    if list(excludes, "caps").iter().any(has_cap) {
        return false;
    }
    !list(excludes, "arches").iter().any(this_arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    /// The names of the rules with this action (ERRNO rules by their errno).
    fn with_action(p: &LinuxSeccomp, action: &str) -> Vec<String> {
        let p = serde_json::to_value(p).unwrap();
        let mut out = Vec::new();
        for rule in p["syscalls"].as_array().unwrap() {
            let act = match rule["errnoRet"].as_u64() {
                Some(e) => format!("{}({e})", rule["action"].as_str().unwrap()),
                None => rule["action"].as_str().unwrap().to_string(),
            };
            if act == action {
                let names = rule["names"].as_array().unwrap();
                out.extend(names.iter().map(|n| n.as_str().unwrap().to_string()));
            }
        }
        out
    }

    fn caps(list: &[Capability]) -> Capabilities {
        list.iter().copied().collect()
    }

    #[test]
    fn every_syscall_libseccomp_knows_is_decided_once() {
        let words = |s: &'static str| s.split_whitespace().collect::<Vec<_>>();
        let mut named: Vec<&str> = ALLOWED.iter().flat_map(|s| words(s)).collect();
        named.extend(BY_CAPABILITY.iter().flat_map(|(_, n)| words(n)));
        named.extend(words(REFUSED));
        named.extend(words(UNIMPLEMENTED));
        named.extend(["personality", "socket", "clone", "clone3"]);
        let mut seen = std::collections::HashSet::new();
        for n in &named {
            assert!(seen.insert(*n), "{n} is named twice");
        }
        let mut undecided = Vec::new();
        for arch in [libseccomp::ScmpArch::X8664, libseccomp::ScmpArch::X86] {
            for nr in 0..1024 {
                let call = libseccomp::ScmpSyscall::from_raw_syscall(nr);
                if let Ok(name) = call.get_name_by_arch(arch) {
                    if !seen.contains(name.as_str()) {
                        undecided.push(format!("{name} ({arch:?} {nr})"));
                    }
                }
            }
        }
        assert!(undecided.is_empty(), "not decided: {undecided:?}");
    }

    #[test]
    fn capabilities_move_syscalls_from_refused_to_allowed() {
        let plain = default_profile(&Capabilities::new()).unwrap();
        let refused = with_action(&plain, "SCMP_ACT_ERRNO(1)");
        for n in [
            "mount",
            "reboot",
            "keyctl",
            "io_uring_setup",
            "bpf",
            "syslog",
        ] {
            assert!(refused.contains(&n.to_string()), "{n} should be refused");
        }
        let allowed = with_action(&plain, "SCMP_ACT_ALLOW");
        assert!(allowed.contains(&"read".to_string()));
        assert!(!allowed.contains(&"mount".to_string()));

        let admin = default_profile(&caps(&[Capability::SysAdmin])).unwrap();
        let allowed = with_action(&admin, "SCMP_ACT_ALLOW");
        for n in ["mount", "clone", "clone3", "bpf", "perf_event_open"] {
            assert!(allowed.contains(&n.to_string()), "{n} should be allowed");
        }
        let refused = with_action(&admin, "SCMP_ACT_ERRNO(1)");
        assert!(refused.contains(&"reboot".to_string()));
        assert!(!refused.contains(&"clone".to_string()));
        // Either of two capabilities is enough.
        let bpf = default_profile(&caps(&[Capability::Bpf])).unwrap();
        assert!(with_action(&bpf, "SCMP_ACT_ALLOW").contains(&"bpf".to_string()));
        assert!(!with_action(&bpf, "SCMP_ACT_ALLOW").contains(&"mount".to_string()));
    }

    /// Loads the default profile for `held` in a child and returns the errno of `check`
    /// there (0 for success); the child reports it by failing `spawn` with it.
    fn errno_under_default(held: &[Capability], check: fn() -> i32) -> i32 {
        let filter = berth_runtime::seccomp::compile(&default_profile(&caps(held)).unwrap())
            .expect("the default profile compiles");
        let mut cmd = std::process::Command::new("/bin/true");
        // SAFETY: the closure only makes syscalls (prctl, seccomp and the checked one).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                nix::sys::prctl::set_no_new_privs()?;
                berth_runtime::seccomp::load(&filter).map_err(std::io::Error::other)?;
                Err(std::io::Error::from_raw_os_error(check()))
            });
        }
        match cmd.spawn() {
            Err(e) => e.raw_os_error().expect("the child's errno"),
            Ok(_) => unreachable!("the child always fails before exec"),
        }
    }

    /// The errno of a raw syscall, or 0.
    fn errno_of(nr: libc::c_long, args: [libc::c_long; 3]) -> i32 {
        // SAFETY: the tests pass integers only, no pointer the kernel would write through.
        let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2]) };
        if rc < 0 {
            nix::errno::Errno::last_raw()
        } else {
            0
        }
    }

    #[test]
    fn the_default_profile_answers_in_a_process() {
        let getpid = || errno_of(libc::SYS_getpid, [0; 3]);
        let unshare_user = || errno_of(libc::SYS_unshare, [libc::CLONE_NEWUSER.into(), 0, 0]);
        let keyctl = || errno_of(libc::SYS_keyctl, [0; 3]);
        let vsock = || errno_of(libc::SYS_socket, [40, 1, 0]);
        let no_aslr = || errno_of(libc::SYS_personality, [0x0040000, 0, 0]);
        let query = || errno_of(libc::SYS_personality, [0xffff_ffff, 0, 0]);
        // mseal (462) is newer than this profile.
        let mseal = || errno_of(462, [0; 3]);
        assert_eq!(errno_under_default(&[], getpid), 0);
        assert_eq!(errno_under_default(&[], unshare_user), libc::EPERM);
        assert_eq!(errno_under_default(&[], keyctl), libc::EPERM);
        assert_eq!(errno_under_default(&[], vsock), libc::EPERM);
        assert_eq!(errno_under_default(&[], no_aslr), libc::ENOSYS);
        assert_eq!(errno_under_default(&[], query), 0);
        assert_eq!(errno_under_default(&[], mseal), libc::ENOSYS);
        assert_eq!(
            mseal(),
            0,
            "this kernel has mseal, so the ENOSYS above is the filter's"
        );
        // With CAP_SYS_ADMIN the filter lets unshare through to the kernel (which, for
        // this root test process, makes the namespace).
        assert_eq!(
            errno_under_default(&[Capability::SysAdmin], unshare_user),
            0
        );
    }

    #[test]
    fn docker_format_profiles_are_filtered_by_caps_and_arch() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS"]}
            ],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chmod"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
                {"name": "getpid", "action": "SCMP_ACT_ALLOW", "comment": "old form"}
            ]
        }"#;
        let p = docker_profile(text, &Capabilities::new()).unwrap();
        assert_eq!(names(&p), ["read", "write", "getpid"]);
        assert_eq!(p.architectures().as_ref().map(Vec::len), Some(2));
        let admin: Capabilities = [Capability::SysAdmin].into_iter().collect();
        assert!(names(&docker_profile(text, &admin).unwrap()).contains(&"mount".to_string()));
        let err = docker_profile("[1]", &admin).unwrap_err().to_string();
        assert!(err.contains("invalid seccomp profile"), "{err}");
    }
}
