//! The OCI lifecycle on real containers: run, create/start/state/kill/delete, pause/resume.

mod common;

use common::*;

#[test]
fn run_prints_the_hostname_and_passes_the_exit_code_through() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", "hostname; exit 7"]);
    let id = cid("run");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "berth\n");
    h.assert_clean(&id);
}

#[test]
fn a_signal_death_is_reported_as_128_plus_the_signal() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", "kill -9 $$"]);
    // As pid 1 of its own pid namespace the shell would be immune to its own SIGKILL.
    h.edit(&b, |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = cid("sig");
    let out = h.rt(&["run", "--bundle", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    h.assert_clean(&id);
}

#[test]
fn create_waits_until_start_and_states_follow_the_spec() {
    let h = Harness::new();
    let marker = "/tmp/started";
    let b = h.bundle(
        "b",
        &["sh", "-c", &format!("touch {marker}; exec sleep 1000")],
    );
    h.edit(&b, |v| v["root"]["readonly"] = serde_json::json!(false));
    let id = cid("cs");
    let pidfile = h.path("pid");
    h.ok(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let st = h.state(&id);
    assert_eq!(st["status"], "created");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(st["pid"], pid);
    // Created means the user's program has not run yet.
    assert!(!b.join("rootfs").join(&marker[1..]).exists());
    h.ok(&["start", &id]);
    h.wait_status(&id, "running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.join("rootfs/tmp/started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the program never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let list = h.ok(&["list", "--format", "json"]);
    assert!(list.contains(&id), "{list}");
    let started_twice = h.rt(&["start", &id]);
    assert!(!started_twice.status.success());
    let refused = h.rt(&["delete", &id]);
    assert!(
        !refused.status.success(),
        "deleting a running container needs --force"
    );
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    h.ok(&["kill", &id, "KILL"]);
    h.wait_status(&id, "stopped");
    assert_eq!(h.state(&id)["pid"], 0);
    h.ok(&["delete", &id]);
    h.assert_clean(&id);
    assert!(!h.rt(&["state", &id]).status.success());
}

#[test]
fn delete_force_removes_a_running_container_and_its_cgroup() {
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    let id = cid("force");
    h.ok(&["run", "--detach", "--bundle", b.to_str().unwrap(), &id]);
    h.wait_status(&id, "running");
    assert!(
        !leftover_cgroups(&id).is_empty(),
        "a running container has cgroups"
    );
    h.ok(&["delete", "--force", &id]);
    h.assert_clean(&id);
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    let id = cid("pause");
    h.ok(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    let pid = h.state(&id)["pid"].as_i64().unwrap();
    h.ok(&["pause", &id]);
    assert_eq!(h.state(&id)["status"], "paused");
    let freezer = leftover_cgroups(&id)
        .into_iter()
        .find(|p| p.starts_with("/sys/fs/cgroup/freezer"))
        .expect("the container has a freezer cgroup");
    let state = std::fs::read_to_string(freezer.join("freezer.state")).unwrap();
    assert_eq!(state.trim(), "FROZEN");
    let ps = h.ok(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&ps).unwrap();
    assert_eq!(pids, vec![pid]);
    h.ok(&["resume", &id]);
    assert_eq!(h.state(&id)["status"], "running");
    h.ok(&["delete", "-f", &id]);
    h.assert_clean(&id);
}

#[test]
fn kill_all_signals_every_process() {
    let h = Harness::new();
    let b = h.bundle("b", &["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = cid("killall");
    h.ok(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let pids: Vec<i64> = serde_json::from_str(&h.ok(&["ps", "--format", "json", &id])).unwrap();
        if pids.len() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "children never appeared: {pids:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    h.ok(&["kill", "--all", &id, "KILL"]);
    h.wait_status(&id, "stopped");
    h.ok(&["delete", &id]);
    h.assert_clean(&id);
}
