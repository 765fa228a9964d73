//! Capabilities set by berth, seen by the kernel in a real child process (needs root).

use std::os::unix::process::CommandExt;
use std::process::Command;

use berth_runtime::capabilities;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilitiesBuilder};

const CHOWN: u64 = 1 << 0;
const KILL: u64 = 1 << 5;
const NET_BIND_SERVICE: u64 = 1 << 10;

fn set(caps: &[Capability]) -> Capabilities {
    caps.iter().copied().collect()
}

/// The hexadecimal mask of one line of /proc/<pid>/status, e.g. "CapEff".
fn mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} missing in:\n{status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

#[test]
fn container_user_gets_exactly_the_configured_sets() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let kept = [Capability::Kill, Capability::NetBindService];
    let c = LinuxCapabilitiesBuilder::default()
        .bounding(set(&[
            Capability::Chown,
            Capability::Kill,
            Capability::NetBindService,
        ]))
        .permitted(set(&kept))
        .effective(set(&kept))
        .inheritable(set(&kept))
        .ambient(set(&kept))
        .build()
        .unwrap();
    capabilities::validate(&c).unwrap();

    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/status");
    // SAFETY: the closure only makes syscalls (prctl, setgroups, setres[ug]id, capset).
    unsafe {
        cmd.pre_exec(move || {
            let other = std::io::Error::other;
            capabilities::drop_bounding(&c).map_err(other)?;
            nix::sys::prctl::set_keepcaps(true)?;
            nix::unistd::setgroups(&[])?;
            let nobody_g = nix::unistd::Gid::from_raw(65534);
            nix::unistd::setresgid(nobody_g, nobody_g, nobody_g)?;
            let nobody = nix::unistd::Uid::from_raw(65534);
            nix::unistd::setresuid(nobody, nobody, nobody)?;
            capabilities::apply(&c).map_err(other)
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let status = String::from_utf8(out.stdout).unwrap();
    assert!(status.contains("\nUid:\t65534\t65534\t65534"), "{status}");
    // An unprivileged exec keeps only ambient in permitted and effective.
    assert_eq!(mask(&status, "CapBnd"), CHOWN | KILL | NET_BIND_SERVICE);
    assert_eq!(mask(&status, "CapPrm"), KILL | NET_BIND_SERVICE);
    assert_eq!(mask(&status, "CapEff"), KILL | NET_BIND_SERVICE);
    assert_eq!(mask(&status, "CapInh"), KILL | NET_BIND_SERVICE);
    assert_eq!(mask(&status, "CapAmb"), KILL | NET_BIND_SERVICE);
}

#[test]
fn ambient_outside_inheritable_is_skipped_not_fatal() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let c = LinuxCapabilitiesBuilder::default()
        .bounding(set(&[Capability::Kill]))
        .permitted(set(&[Capability::Kill]))
        .effective(set(&[Capability::Kill]))
        .inheritable(set(&[]))
        .ambient(set(&[Capability::Kill]))
        .build()
        .unwrap();
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/status");
    // SAFETY: the closure only makes syscalls (prctl, capset).
    unsafe {
        cmd.pre_exec(move || {
            let other = std::io::Error::other;
            capabilities::drop_bounding(&c).map_err(other)?;
            capabilities::apply(&c).map_err(other)
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let status = String::from_utf8(out.stdout).unwrap();
    assert_eq!(mask(&status, "CapBnd"), KILL);
    assert_eq!(mask(&status, "CapAmb"), 0);
    assert_eq!(mask(&status, "CapInh"), 0);
}
