//! Which device nodes a container may open, read or make: the spec's rules, then the
//! defaults every container gets (as runc and Docker give them).

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// The spec's rules, an allow rule for each configured device node, then the defaults:
/// mknod of anything; null, zero, full, random, urandom, tty, console, ptmx and the ptys.
pub fn device_rules(
    spec_rules: &[LinuxDeviceCgroup],
    devices: &[LinuxDevice],
) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    let mut rules = spec_rules.to_vec();
    for d in devices {
        rules.push(rule(true, d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
    }
    rules.push(rule(true, C, None, None, "m"));
    rules.push(rule(true, B, None, None, "m"));
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(rule(true, C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(true, C, Some(136), None, "rwm"));
    rules
}

/// A rule in the devices.allow/devices.deny syntax: "c 1:3 rwm", "a *:* rwm".
pub fn v1_line(r: &LinuxDeviceCgroup) -> String {
    let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::C | LinuxDeviceType::U => "c",
        LinuxDeviceType::B => "b",
        LinuxDeviceType::P => "p",
        LinuxDeviceType::A => "a",
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = r.access().clone().unwrap_or_else(|| "rwm".to_string());
    format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec_rules_and_render_as_v1_lines() {
        let deny_all = rule(false, LinuxDeviceType::A, None, None, "rwm");
        let rules = device_rules(&[deny_all], &[]);
        let lines: Vec<String> = rules.iter().map(v1_line).collect();
        assert_eq!(lines[0], "a *:* rwm");
        assert!(!rules[0].allow());
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert!(lines.contains(&"b *:* m".to_string()));
        assert!(rules[1..].iter().all(|r| r.allow()));
    }
}
