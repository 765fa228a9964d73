//! What a container may not do: capabilities, seccomp, masked and read-only paths, leaked
//! descriptors, and writing the runtime binary.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use common::*;
use serde_json::json;

fn cap_field(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities_are_exactly_the_configured_ones() {
    let h = Harness::new();
    let b = h.bundle("b", &["cat", "/proc/self/status"]);
    h.edit(&b, |v| {
        let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        for set in ["bounding", "effective", "permitted"] {
            v["process"]["capabilities"][set] = caps.clone();
        }
        v["process"]["capabilities"]["inheritable"] = json!([]);
        v["process"]["capabilities"]["ambient"] = json!([]);
    });
    let id = cid("caps");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&out);
    let want = (1u64 << 5) | (1 << 10); // CAP_KILL, CAP_NET_BIND_SERVICE
    assert_eq!(cap_field(&status, "CapEff:"), want);
    assert_eq!(cap_field(&status, "CapPrm:"), want);
    assert_eq!(cap_field(&status, "CapBnd:"), want);
    assert_eq!(cap_field(&status, "CapInh:"), 0);
    // And the missing CAP_SYS_ADMIN really is missing: mounting fails.
    let b2 = h.bundle("b2", &["mount", "-t", "tmpfs", "tmpfs", "/mnt"]);
    let id2 = cid("nomount");
    let out = h.rt(&["run", "--bundle", b2.to_str().unwrap(), &id2]);
    assert!(
        !out.status.success(),
        "mount succeeded without CAP_SYS_ADMIN"
    );
    h.assert_clean(&id);
    h.assert_clean(&id2);
}

#[test]
fn a_seccomp_rule_returns_its_errno() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", "mkdir /tmp/x; echo mkdir=$?"]);
    h.edit(&b, |v| {
        v["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            // A name libseccomp does not know is skipped, as runc skips it: the rest of
            // the rule still holds.
            "syscalls": [{
                "names": ["mkdir", "no_such_syscall", "mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 38
            }]
        });
    });
    let id = cid("seccomp");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Function not implemented"),
        "mkdir should fail with ENOSYS (38): {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("mkdir=1"), "{}", stdout(&out));
    h.assert_clean(&id);
}

#[test]
fn seccomp_argument_conditions_are_honoured() {
    let h = Harness::new();
    // personality(0xffffffff) queries and is allowed; any other argument is refused.
    let b = h.bundle("b", &["sh", "-c", "setarch linux64 true; echo setarch=$?"]);
    h.edit(&b, |v| {
        v["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
                "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_NE"}]
            }]
        });
    });
    let id = cid("seccomp-args");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("setarch=1"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    h.assert_clean(&id);
}

#[test]
fn masked_paths_show_nothing_and_readonly_paths_refuse_writes() {
    let h = Harness::new();
    let script = "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; \
                  echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-readonly";
    let b = h.bundle("b", &["sh", "-c", script]);
    h.edit(&b, |v| {
        // Enough capability to try the write: the read-only mount must be what stops it.
        v["process"]["capabilities"]["effective"] = json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
        v["process"]["capabilities"]["permitted"] = json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
        v["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
    });
    let host_timers = std::fs::read_to_string("/proc/timer_list").unwrap();
    assert!(
        !host_timers.is_empty(),
        "the host's /proc/timer_list has content"
    );
    let id = cid("masked");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n0\nsys-readonly\n");
    h.assert_clean(&id);
}

#[test]
fn a_readonly_root_refuses_writes() {
    let h = Harness::new();
    let b = h.bundle(
        "b",
        &[
            "sh",
            "-c",
            "touch /x 2>/dev/null && echo writable || echo readonly",
        ],
    );
    h.edit(&b, |v| v["root"]["readonly"] = json!(true));
    let id = cid("ro");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_eq!(stdout(&out), "readonly\n", "{}", stderr(&out));
    h.assert_clean(&id);
}

#[test]
fn no_host_descriptor_or_directory_leaks_in() {
    let h = Harness::new();
    let b = h.bundle(
        "b",
        &["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '; pwd"],
    );
    let id = cid("fds");
    // The runtime inherits an extra open descriptor (5) and runs in a host directory: neither
    // may reach the container.
    let extra = std::fs::File::open("/etc/hostname").unwrap();
    let fd = extra.as_raw_fd();
    let mut cmd = h.cmd();
    cmd.args(["run", "--bundle", b.to_str().unwrap(), &id]);
    cmd.current_dir(h.tmp.path());
    // SAFETY: dup2 is async-signal-safe; the new fd 5 (without CLOEXEC) exists only in the child.
    unsafe {
        cmd.pre_exec(move || match libc::dup2(fd, 5) {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let out = run_to_files(&mut cmd);
    drop(extra);
    assert!(out.status.success(), "{}", stderr(&out));
    // 0-2 and the one ls itself opens for /proc/self/fd.
    assert_eq!(stdout(&out), "0 1 2 3 /\n");
    h.assert_clean(&id);
}

#[test]
fn the_runtime_binary_cannot_be_written_through_a_container_process() {
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    let id = cid("exe");
    h.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    // The created init is still a copy of berth-runtime: its exe is the runtime binary.
    let pid = h.state(&id)["pid"].as_i64().unwrap();
    let exe = format!("/proc/{pid}/exe");
    let vfs = nix::sys::statvfs::statvfs(exe.as_str()).unwrap();
    assert!(
        vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the container's view of the runtime binary is on a writable mount"
    );
    assert!(std::fs::OpenOptions::new().write(true).open(&exe).is_err());
    // ...while the binary on disk is an ordinary writable file: the mount is what protects it.
    let mode = std::fs::metadata(BIN).unwrap().permissions().mode();
    assert!(mode & 0o200 != 0);
    h.ok(&["delete", "--force", &id]);
    h.assert_clean(&id);
}

/// The signal state in /proc/PID/status: blocked and ignored masks.
fn signal_masks(status: &str) -> (String, String) {
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    (field("SigBlk:"), field("SigIgn:"))
}

#[test]
fn the_program_starts_with_no_signal_blocked_or_ignored() {
    let h = Harness::new();
    let b = h.bundle("b", &["cat", "/proc/self/status"]);
    let id = cid("signals");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let zero = "0000000000000000".to_string();
    assert_eq!(signal_masks(&stdout(&out)), (zero.clone(), zero.clone()));
    h.assert_clean(&id);

    let b2 = h.bundle("b2", &["sleep", "1000"]);
    let id2 = cid("signals-exec");
    h.ok(&["run", "-d", "--bundle", b2.to_str().unwrap(), &id2]);
    let status = h.ok(&["exec", &id2, "cat", "/proc/self/status"]);
    assert_eq!(signal_masks(&status), (zero.clone(), zero));
    h.ok(&["delete", "-f", &id2]);
    h.assert_clean(&id2);
}
