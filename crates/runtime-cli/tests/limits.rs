//! cgroup limits that really bite: memory kills, pids stop forks, cpu and devices apply.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_memory_limit_kills_a_process_that_allocates_past_it() {
    let h = Harness::new();
    // dd allocates its 64 MiB block and fills it: far past a 16 MiB limit.
    let b = h.bundle(
        "b",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    h.edit(&b, |v| {
        v["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    });
    let id = cid("oom");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "expected an OOM kill: {}",
        stderr(&out)
    );
    h.assert_clean(&id);

    // The same program fits under a larger limit.
    let b2 = h.bundle(
        "b2",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    h.edit(&b2, |v| {
        v["linux"]["resources"]["memory"] = json!({"limit": 256 << 20});
    });
    let id2 = cid("fits");
    let out = h.rt(&["run", "--bundle", b2.to_str().unwrap(), &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    h.assert_clean(&id2);
}

#[test]
fn a_pids_limit_stops_a_fork_bomb() {
    let h = Harness::new();
    // Start up to 50 sleepers, counting each one that started; the shell gives up at the
    // first fork the kernel refuses.
    let script = "i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); echo $i; done";
    let b = h.bundle("b", &["sh", "-c", script]);
    h.edit(&b, |v| {
        v["linux"]["resources"]["pids"] = json!({"limit": 10})
    });
    let id = cid("pids");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    let started: u32 = stdout(&out).lines().last().unwrap_or("0").parse().unwrap();
    // pids.max counts the shell itself: at most 9 sleepers.
    assert!(started <= 9, "{started} sleepers started under pids.max=10");
    assert!(
        stderr(&out).contains("can't fork"),
        "the fork was not refused: {}",
        stderr(&out)
    );
    h.assert_clean(&id);
}

#[test]
fn resources_are_written_to_the_cgroup_and_update_changes_them() {
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    h.edit(&b, |v| {
        v["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
        v["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    });
    let id = cid("res");
    h.ok(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    let dirs = leftover_cgroups(&id);
    let read = |ctl: &str, file: &str| {
        let d = dirs
            .iter()
            .find(|p| p.starts_with(format!("/sys/fs/cgroup/{ctl}")))
            .unwrap();
        std::fs::read_to_string(d.join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (64 << 20).to_string()
    );
    h.ok(&["update", "--memory", "128m", "--pids-limit", "20", &id]);
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (128 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max"), "20");
    h.ok(&["delete", "-f", &id]);
    h.assert_clean(&id);
}

#[test]
fn the_device_cgroup_denies_what_is_not_allowed() {
    let h = Harness::new();
    // The host's /dev/net/tun node is bind-mounted in, but only an allow rule opens it.
    let script = "(: < /dev/net/tun) 2>/dev/null && echo readable || echo denied; head -c1 /dev/zero | wc -c";
    let mem_mount = json!({"destination": "/dev/net/tun", "type": "bind", "source": "/dev/net/tun", "options": ["bind"]});
    let b = h.bundle("b", &["sh", "-c", script]);
    h.edit(&b, |v| {
        v["mounts"].as_array_mut().unwrap().push(mem_mount.clone())
    });
    let id1 = cid("dev-deny");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id1]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "denied\n1\n");
    h.assert_clean(&id1);

    let b2 = h.bundle("b2", &["sh", "-c", script]);
    h.edit(&b2, |v| {
        v["mounts"].as_array_mut().unwrap().push(mem_mount.clone());
        v["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}));
    });
    let id2 = cid("dev-allow");
    let out = h.rt(&["run", "--bundle", b2.to_str().unwrap(), &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "readable\n1\n");
    h.assert_clean(&id2);
}
