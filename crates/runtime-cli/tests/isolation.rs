//! Each namespace really isolates: inode numbers of /proc/self/ns/* differ from the host's,
//! and exec joins exactly the container's.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use serde_json::json;

const KINDS: [&str; 8] = ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user", "time"];

fn host_inode(kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .ino()
}

/// Prints "kind inode" for each namespace, as the container sees them.
const SHOW_NS: &str =
    "for k in mnt pid net ipc uts cgroup user time; do echo $k $(readlink /proc/self/ns/$k); done";

fn parse_ns(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            let ino = v.trim_start_matches(|c| c != '[').trim_matches(['[', ']']);
            Some((k.to_string(), ino.parse().ok()?))
        })
        .collect()
}

fn all_namespaces(v: &mut serde_json::Value) {
    v["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
        {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}, {"type": "time"}
    ]);
    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    v["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 86400, "nanosecs": 0}
    });
}

#[test]
fn every_namespace_kind_is_new() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", SHOW_NS]);
    h.edit(&b, all_namespaces);
    // A user namespace maps container root to an unprivileged host id: it must be able to
    // read its rootfs.
    let id = cid("ns");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = parse_ns(&stdout(&out));
    assert_eq!(seen.len(), KINDS.len(), "{}", stdout(&out));
    for (kind, ino) in seen {
        assert_ne!(ino, host_inode(&kind), "{kind} namespace is the host's");
    }
    h.assert_clean(&id);
}

#[test]
fn user_namespace_maps_ids_and_time_namespace_offsets_clocks() {
    let h = Harness::new();
    let b = h.bundle(
        "b",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; id -u; cut -d' ' -f1 /proc/uptime",
        ],
    );
    h.edit(&b, all_namespaces);
    let id = cid("userns");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let map: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    assert_eq!(lines[1], "0");
    let uptime: f64 = lines[2].parse().unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        uptime > host + 86000.0,
        "boottime offset not applied: {uptime} vs {host}"
    );
    h.assert_clean(&id);
}

#[test]
fn joining_a_namespace_by_path_shares_it() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", SHOW_NS]);
    // Join the test's own network and uts namespaces by path: the container must see them.
    h.edit(&b, |v| {
        let list = v["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network" && n["type"] != "uts");
        list.push(json!({"type": "network", "path": "/proc/self/ns/net"}));
        list.push(json!({"type": "uts", "path": "/proc/self/ns/uts"}));
        v.as_object_mut().unwrap().remove("hostname");
    });
    let id = cid("join");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = parse_ns(&stdout(&out));
    let net = seen.iter().find(|(k, _)| k == "net").unwrap().1;
    let pid = seen.iter().find(|(k, _)| k == "pid").unwrap().1;
    assert_eq!(net, host_inode("net"));
    assert_ne!(pid, host_inode("pid"));
    h.assert_clean(&id);
}

#[test]
fn exec_joins_the_containers_namespaces_and_cgroup() {
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    let id = cid("exec");
    h.ok(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    let init = h.state(&id)["pid"].as_i64().unwrap();
    let out = h.rt(&["exec", &id, "sh", "-c", SHOW_NS]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (kind, ino) in parse_ns(&stdout(&out)) {
        let theirs = std::fs::metadata(format!("/proc/{init}/ns/{kind}"))
            .unwrap()
            .ino();
        assert_eq!(
            ino, theirs,
            "exec is not in the container's {kind} namespace"
        );
    }
    let code = h.rt(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(code.status.code(), Some(42));
    let env = h.ok(&[
        "exec",
        "--env",
        "X=from-exec",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $X $(pwd)",
    ]);
    assert_eq!(env, "from-exec /tmp\n");
    // A detached exec'd process is in the container's cgroup: `ps` lists it.
    let pidfile = h.path("exec.pid");
    h.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    let exec_pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<i64> = serde_json::from_str(&h.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&exec_pid) && pids.contains(&init), "{pids:?}");
    let missing = h.rt(&["exec", &id, "no-such-program"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
    h.ok(&["delete", "-f", &id]);
    h.assert_clean(&id);
}

#[test]
fn a_new_user_namespace_joins_a_network_namespace_it_does_not_own() {
    // As a remapped engine runs containers: the network namespace (here the test's own)
    // belongs to the host's user namespace, which the container's root has no rights in.
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    h.edit(&b, |v| {
        all_namespaces(v);
        let list = v["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(json!({"type": "network", "path": "/proc/self/ns/net"}));
    });
    let id = cid("usernet");
    // create/start: the exec fifo is opened by the init as the namespace's root.
    h.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    h.ok(&["start", &id]);
    h.wait_status(&id, "running");
    let init = h.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert!(status.contains("\nUid:\t100000\t"), "{status}");
    // exec enters the network namespace before the user namespace that cannot.
    let out = h.rt(&["exec", &id, "sh", "-c", &format!("id -u; {SHOW_NS}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (uid, rest) = text.split_once('\n').unwrap();
    assert_eq!(uid, "0");
    let seen = parse_ns(rest);
    let net = seen.iter().find(|(k, _)| k == "net").unwrap().1;
    let user = seen.iter().find(|(k, _)| k == "user").unwrap().1;
    assert_eq!(net, host_inode("net"));
    assert_ne!(user, host_inode("user"));
    h.ok(&["delete", "-f", &id]);
    h.assert_clean(&id);
}
