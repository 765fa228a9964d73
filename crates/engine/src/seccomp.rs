//! Seccomp for containers: berth's default profile, and profiles in Docker's format
//! (`--security-opt seccomp=profile.json`; the docker CLI sends the file's content).
//!
//! The default profile blocks what Docker's documentation lists as blocked by its default
//! profile: syscalls that reach kernel state no namespace isolates (clocks, modules, keyrings,
//! reboot, accounting, swap, NUMA policy, raw I/O ports) and the namespace and mount
//! machinery, each unless the container holds the capability that makes it legitimate (as
//! Docker's profile lets `--cap-add SYS_ADMIN` mount). It is written as a deny list over an
//! allowing default rather than Docker's allow list, so a syscall newer than this list is
//! allowed: the kernel's own capability checks still stand behind it.

use oci_spec::runtime::{Capabilities, Capability, LinuxSeccomp};
use serde_json::{json, Value};

use crate::error::{Error, Result};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The namespace flags of clone(2): creating namespaces needs CAP_SYS_ADMIN in Docker's
/// profile, so a container cannot nest containers unless it is given that capability.
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// Blocked syscalls, and the capability that unblocks them (None: always blocked).
const BLOCKED: &[(Option<Capability>, &[&str])] = &[
    (
        None,
        &[
            "add_key",
            "keyctl",
            "request_key",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "nfsservctl",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "vm86",
            "vm86old",
        ],
    ),
    (
        Some(Capability::SysAdmin),
        &[
            "mount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "quotactl",
            "swapon",
            "swapoff",
            "bpf",
            "perf_event_open",
            "fanotify_init",
            "lookup_dcookie",
            "name_to_handle_at",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ],
    ),
    (Some(Capability::DacReadSearch), &["open_by_handle_at"]),
    (
        Some(Capability::SysBoot),
        &["reboot", "kexec_load", "kexec_file_load"],
    ),
    (
        Some(Capability::SysModule),
        &["init_module", "finit_module", "delete_module"],
    ),
    (
        Some(Capability::SysTime),
        &["settimeofday", "clock_settime", "clock_adjtime"],
    ),
    (Some(Capability::SysPacct), &["acct"]),
    (Some(Capability::SysRawio), &["iopl", "ioperm"]),
    (
        Some(Capability::SysNice),
        &[
            "mbind",
            "set_mempolicy",
            "get_mempolicy",
            "move_pages",
            "migrate_pages",
        ],
    ),
];

/// The default profile for a container holding `caps`.
pub fn default_profile(caps: &Capabilities) -> Result<LinuxSeccomp> {
    let mut syscalls = Vec::new();
    for (cap, names) in BLOCKED {
        if cap.is_some_and(|c| caps.contains(&c)) {
            continue;
        }
        syscalls.push(json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}));
    }
    if !caps.contains(&Capability::SysAdmin) {
        // Conditions on one argument are alternatives: any namespace flag is refused.
        let args: Vec<Value> = CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|f| json!({"index": 0, "value": f, "valueTwo": f, "op": "SCMP_CMP_MASKED_EQ"}))
            .collect();
        syscalls.push(
            json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "args": args}),
        );
        // clone3 passes its flags in memory, out of a filter's sight: ENOSYS makes the C
        // library fall back to clone, where they are checked.
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    });
    serde_json::from_value(profile)
        .map_err(|e| Error::Invalid(format!("the default seccomp profile: {e}")))
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

/// archMap's main architectures and their sub-architectures, as one list.
fn architectures(map: &Value) -> Value {
    let mut out = Vec::new();
    for entry in map.as_array().into_iter().flatten() {
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

    #[test]
    fn default_profile_blocks_what_caps_do_not_allow() {
        let none = Capabilities::new();
        let p = default_profile(&none).unwrap();
        let blocked = names(&p);
        for n in [
            "mount",
            "reboot",
            "keyctl",
            "clone",
            "clone3",
            "init_module",
        ] {
            assert!(blocked.contains(&n.to_string()), "{n} should be blocked");
        }
        let admin: Capabilities = [Capability::SysAdmin].into_iter().collect();
        let blocked = names(&default_profile(&admin).unwrap());
        assert!(!blocked.contains(&"mount".to_string()));
        assert!(!blocked.contains(&"clone".to_string()));
        assert!(blocked.contains(&"reboot".to_string()));
        assert!(blocked.contains(&"keyctl".to_string()));
        // It compiles with the runtime's own seccomp compiler.
        berth_runtime::seccomp::compile(&p).unwrap();
    }

    #[test]
    fn docker_format_profiles_are_filtered_by_caps_and_arch() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
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
