//! Bad input gets one clear error line, a non-zero exit, and leaves nothing behind.

mod common;

use common::*;
use serde_json::json;

/// Runs `create` on the bundle and checks the failure is one line mentioning `expect`.
fn refused(h: &Harness, bundle: &std::path::Path, id: &str, expect: &str) {
    let out = h.rt(&["create", "--bundle", bundle.to_str().unwrap(), id]);
    assert!(!out.status.success(), "create of {id} should have failed");
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "expected one error line, got: {err}"
    );
    assert!(
        err.contains(expect),
        "error should mention {expect:?}: {err}"
    );
    h.assert_clean(id);
}

#[test]
fn a_missing_config_is_reported() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    std::fs::remove_file(b.join("config.json")).unwrap();
    refused(&h, &b, &cid("noconfig"), "config.json");
}

#[test]
fn malformed_config_names_the_file_and_position() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    std::fs::write(
        b.join("config.json"),
        "{\"ociVersion\": \"1.0.2\",\n \"process\": [",
    )
    .unwrap();
    refused(&h, &b, &cid("malformed"), "line 2");
}

#[test]
fn an_unknown_namespace_is_refused() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}))
    });
    refused(&h, &b, &cid("ns"), "bogus");
}

#[test]
fn an_unknown_capability_is_refused() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| {
        v["process"]["capabilities"]["bounding"] = json!(["CAP_FLY"])
    });
    refused(&h, &b, &cid("cap"), "CAP_FLY");
}

#[test]
fn a_missing_rootfs_is_refused() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| v["root"]["path"] = json!("nowhere"));
    refused(&h, &b, &cid("rootfs"), "nowhere");
}

#[test]
fn a_missing_program_is_refused_at_create() {
    let h = Harness::new();
    let b = h.bundle("b", &["/no/such/program"]);
    refused(&h, &b, &cid("noprog"), "/no/such/program");
}

#[test]
fn ids_with_path_characters_are_refused() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    for bad in ["../escape", "a/b", ".."] {
        let out = h.rt(&["create", "--bundle", b.to_str().unwrap(), bad]);
        assert!(!out.status.success());
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid container id"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!h.root.exists() || std::fs::read_dir(&h.root).unwrap().next().is_none());
}

#[test]
fn a_taken_id_is_refused_and_the_first_container_survives() {
    let h = Harness::new();
    let b = h.bundle("b", &["sleep", "1000"]);
    let id = cid("taken");
    h.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    let out = h.rt(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(h.state(&id)["status"], "created");
    h.ok(&["delete", &id]);
    h.assert_clean(&id);
}

#[test]
fn commands_on_unknown_containers_fail_cleanly() {
    let h = Harness::new();
    for args in [
        vec!["state", "ghost"],
        vec!["start", "ghost"],
        vec!["kill", "ghost"],
        vec!["delete", "ghost"],
    ] {
        let out = h.rt(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("does not exist"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn fields_not_implemented_are_refused_by_name_not_ignored() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    h.edit(&b, |v| {
        v["linux"]["intelRdt"] = json!({"closID": "x"});
        v["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    });
    refused(&h, &b, &cid("unsupported"), "linux.intelRdt");
    let out = h.rt(&["create", "--bundle", b.to_str().unwrap(), "x"]);
    assert!(
        stderr(&out).contains("linux.memoryPolicy"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_cgroups_path_at_the_root_or_above_it_is_refused() {
    let h = Harness::new();
    let b = h.bundle("b", &["true"]);
    for path in ["/", "../escape"] {
        h.edit(&b, |v| v["linux"]["cgroupsPath"] = json!(path));
        refused(&h, &b, &cid("cgpath"), "cgroupsPath");
    }
}
