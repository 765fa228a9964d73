//! Hooks run at their points of the lifecycle, in order, with the state on stdin.

mod common;

use common::*;
use serde_json::json;

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let h = Harness::new();
    let log_dir = h.path("hooklog");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("log");
    let b = h.bundle("b", &["true"]);
    let host_hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}", log.display())]});
    // createContainer runs before pivot_root (host paths), startContainer after (container
    // paths): the log directory is bind-mounted to /hooklog for it.
    let in_container =
        json!({"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hooklog/log"]});
    let state_file = h.path("prestart-state.json");
    let capture_state = json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}; echo prestart >> {}", state_file.display(), log.display())]});
    h.edit(&b, |v| {
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hooklog", "type": "bind", "source": log_dir, "options": ["rbind"]
        }));
        v["hooks"] = json!({
            "prestart": [capture_state],
            "createRuntime": [host_hook("createRuntime")],
            "createContainer": [host_hook("createContainer")],
            "startContainer": [in_container],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")],
        });
    });
    let id = cid("hooks");
    h.ok(&["run", "--bundle", b.to_str().unwrap(), &id]);
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "creating");
    assert!(state["pid"].as_i64().unwrap() > 1);
    h.assert_clean(&id);
}

#[test]
fn a_failing_create_hook_aborts_and_cleans_up() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| {
        v["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    });
    let id = cid("badhook");
    let out = h.rt(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("createRuntime") || stderr(&out).contains("exit"),
        "{}",
        stderr(&out)
    );
    h.assert_clean(&id);
}

#[test]
fn a_hook_past_its_timeout_is_killed() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| {
        v["hooks"] =
            json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "100"], "timeout": 1}]});
    });
    let id = cid("slowhook");
    let started = std::time::Instant::now();
    let out = h.rt(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        stderr(&out).contains("timeout") || stderr(&out).contains("timed out"),
        "{}",
        stderr(&out)
    );
    h.assert_clean(&id);
}
