//! The cgroup v2 device filter, loaded into the kernel and enforced on a real process. On this
//! project's hybrid hosts the v1 devices controller is the one containers use, but eBPF device
//! programs on the v2 hierarchy are enforced too, so the v2 path is tested here for real.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use berth_cgroups::{attach_device_filter, device_rules, Cgroup};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

fn deny_all() -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(false);
    r.set_typ(Some(LinuxDeviceType::A));
    r.set_access(Some("rwm".into()));
    r
}

struct Removed(Cgroup);
impl Drop for Removed {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

#[test]
fn an_attached_filter_allows_listed_devices_and_denies_the_rest() {
    let path = format!("/berth-device-filter-test-{}", std::process::id());
    let cg = Cgroup::new(Some(Path::new(&path)), "unused").unwrap();
    let unified = cg
        .unified_path()
        .expect("this host mounts a cgroup v2 hierarchy")
        .to_path_buf();
    cg.create().unwrap();
    let cg = Removed(cg);
    // The default allow-list has /dev/null (1:3) but not /dev/net/tun (10:200).
    let mut rules = vec![deny_all()];
    rules.extend(device_rules(&[], &[]));
    let mut zero_denied = deny_all();
    zero_denied.set_typ(Some(LinuxDeviceType::C));
    zero_denied.set_major(Some(1));
    zero_denied.set_minor(Some(5));
    rules.push(zero_denied);
    attach_device_filter(&unified, &rules).unwrap();

    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(unified.join("cgroup.procs"))
        .unwrap();
    let procs_fd = std::os::fd::AsRawFd::as_raw_fd(&procs);
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "(: < /dev/null) 2>/dev/null && echo null-ok; (: < /dev/zero) 2>/dev/null || echo zero-denied; (: < /dev/net/tun) 2>/dev/null || echo tun-denied",
    ]);
    // SAFETY: write(2) on an fd opened before the fork is async-signal-safe and allocates
    // nothing; "0" moves the writing process itself.
    unsafe {
        cmd.pre_exec(
            move || match libc::write(procs_fd, b"0".as_ptr().cast(), 1) {
                1 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            },
        );
    }
    let out = cmd.output().unwrap();
    drop(procs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "null-ok\nzero-denied\ntun-denied\n"
    );
    drop(cg);
    assert!(!unified.exists(), "the test cgroup was not removed");
}
