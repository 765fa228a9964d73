//! `berth-runtime spec` and `berth-runtime features` documents, as JSON.

use berth_runtime::spec::{default_spec, features, DEFAULT_CONFIG_VERSION, OCI_VERSION};
use oci_spec::runtime::{Features, Spec};
use serde_json::{json, Value};

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn default_spec_is_what_runc_spec_writes() {
    let spec = default_spec(false);
    let text = serde_json::to_string_pretty(&spec).unwrap();
    let back: Spec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, spec);

    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ociVersion"], DEFAULT_CONFIG_VERSION);
    assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(v["hostname"], "berth");
    assert!(v.get("annotations").is_none());
    let p = &v["process"];
    assert_eq!(p["terminal"], true);
    assert_eq!(p["args"], json!(["sh"]));
    assert_eq!(p["cwd"], "/");
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(
        strings(&p["env"]),
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm"
        ]
    );
    assert_eq!(
        p["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
    );
    let caps = &p["capabilities"];
    for set in ["bounding", "effective", "permitted"] {
        let mut names = strings(&caps[set]);
        names.sort();
        assert_eq!(
            names,
            ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "{set}"
        );
    }
    assert!(caps.get("inheritable").is_none() && caps.get("ambient").is_none());

    let mounts: Vec<&str> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup"
        ]
    );
    let l = &v["linux"];
    assert_eq!(
        l["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"}])
    );
    let masked = strings(&l["maskedPaths"]);
    for path in ["/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/scsi"] {
        assert!(masked.contains(&path), "{path} not masked");
    }
    assert_eq!(
        strings(&l["readonlyPaths"]),
        [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]
    );
    let ns: Vec<&str> = l["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(&ns[..5], ["pid", "network", "ipc", "uts", "mount"]);
    assert!(l.get("uidMappings").is_none());
}

#[test]
fn rootless_spec_maps_the_caller_and_drops_cgroup_resources() {
    let v: Value = serde_json::to_value(default_spec(true)).unwrap();
    let l = &v["linux"];
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    assert_eq!(
        l["uidMappings"],
        json!([{"hostID": uid, "containerID": 0, "size": 1}])
    );
    assert_eq!(
        l["gidMappings"],
        json!([{"hostID": gid, "containerID": 0, "size": 1}])
    );
    assert!(
        l.get("resources").is_none(),
        "no cgroup resources, no device rules"
    );
    let ns: Vec<&str> = l["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    let devpts = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/dev/pts")
        .unwrap();
    assert!(!strings(&devpts["options"]).contains(&"gid=5"));
}

#[test]
fn features_document_lists_what_berth_supports() {
    let text = serde_json::to_string_pretty(&features()).unwrap();
    let back: Features = serde_json::from_str(&text).unwrap();
    assert_eq!(back, features());

    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert_eq!(v["ociVersionMax"], OCI_VERSION);
    assert_eq!(
        strings(&v["hooks"]),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let options = strings(&v["mountOptions"]);
    for o in ["ro", "rbind", "rslave", "tmpcopyup", "nostrictatime"] {
        assert!(options.contains(&o), "{o} missing");
    }
    assert!(!options.iter().any(|o| o.contains("idmap")));

    let l = &v["linux"];
    let mut ns = strings(&l["namespaces"]);
    ns.sort();
    assert_eq!(
        ns,
        ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
    );
    let caps = strings(&l["capabilities"]);
    assert_eq!(caps.len(), 41);
    assert_eq!(caps[0], "CAP_CHOWN");
    assert_eq!(caps[40], "CAP_CHECKPOINT_RESTORE");
    assert_eq!(
        l["cgroup"],
        json!({"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": null})
    );
    let s = &l["seccomp"];
    assert_eq!(s["enabled"], true);
    let actions = strings(&s["actions"]);
    assert!(actions.contains(&"SCMP_ACT_ERRNO") && actions.contains(&"SCMP_ACT_KILL_PROCESS"));
    assert!(!actions.contains(&"SCMP_ACT_NOTIFY"));
    assert_eq!(strings(&s["operators"]).len(), 7);
    assert!(strings(&s["operators"]).contains(&"SCMP_CMP_MASKED_EQ"));
    let archs = strings(&s["archs"]);
    for a in [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
    ] {
        assert!(archs.contains(&a), "{a} missing from {archs:?}");
    }
    assert_eq!(strings(&s["knownFlags"]).len(), 4);
    let supported = strings(&s["supportedFlags"]);
    assert!(
        supported.contains(&"SECCOMP_FILTER_FLAG_LOG"),
        "{supported:?}"
    );
    assert!(!supported.contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"));
    assert_eq!(l["apparmor"], json!({"enabled": false}));
    assert_eq!(l["selinux"], json!({"enabled": false}));
    assert_eq!(l["mountExtensions"]["idmap"]["enabled"], false);
}
