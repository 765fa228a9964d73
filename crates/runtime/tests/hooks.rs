//! Hooks run as the OCI spec says: order, argv, env, state on stdin, exit codes, timeouts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::{hooks, Error};
use oci_spec::runtime::{Hook, HookBuilder, State, StateBuilder};

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn hook(path: &Path, args: &[&str], env: &[&str], timeout: Option<i64>) -> Hook {
    let mut b = HookBuilder::default()
        .path(path)
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(env.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().unwrap()
}

fn state(bundle: &Path) -> State {
    StateBuilder::default()
        .version("1.2.1")
        .id("c1")
        .pid(4242)
        .bundle(bundle)
        .build()
        .unwrap()
}

/// A `/bin/sh -c` hook that records its own argv and environment (as the kernel saw them
/// at exec, from /proc) and its stdin, then appends `name` to an order log.
fn recording_hook(dir: &Path, name: &str, argv0: &str, env: &[&str]) -> Hook {
    let d = dir.display();
    let cmd = format!(
        "cat /proc/$$/cmdline > {d}/{name}.argv; cat /proc/$$/environ > {d}/{name}.env; \
         cat > {d}/{name}.state; echo {name} >> {d}/order"
    );
    hook(Path::new("/bin/sh"), &[argv0, "-c", &cmd], env, Some(10))
}

#[test]
fn hooks_run_in_order_with_args_env_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hooks = [
        recording_hook(d, "one", "first-argv0", &["FOO=bar"]),
        recording_hook(d, "two", "second-argv0", &["FOO=baz=qux", "EMPTY="]),
        recording_hook(d, "three", "third-argv0", &[]),
    ];
    hooks::run(&hooks, &state(d), "createRuntime").unwrap();

    assert_eq!(
        fs::read_to_string(d.join("order")).unwrap(),
        "one\ntwo\nthree\n"
    );
    let argv = fs::read_to_string(d.join("one.argv")).unwrap();
    assert!(argv.starts_with("first-argv0\0-c\0cat /proc/"), "{argv:?}");
    assert!(fs::read_to_string(d.join("two.argv"))
        .unwrap()
        .starts_with("second-argv0\0"));
    assert_eq!(fs::read_to_string(d.join("one.env")).unwrap(), "FOO=bar\0");
    // The set of variables is exact; their order is not kept (std sorts them).
    assert_eq!(
        fs::read_to_string(d.join("two.env")).unwrap(),
        "EMPTY=\0FOO=baz=qux\0"
    );
    assert_eq!(fs::read_to_string(d.join("three.env")).unwrap(), "");
    for name in ["one", "two", "three"] {
        let got: State =
            serde_json::from_slice(&fs::read(d.join(format!("{name}.state"))).unwrap()).unwrap();
        assert_eq!(got, state(d));
    }
}

#[test]
fn failing_hook_stops_the_sequence_with_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let bad = script(
        dir.path(),
        "bad.sh",
        "echo 'no network for you' >&2; exit 3",
    );
    let after = script(
        dir.path(),
        "after.sh",
        &format!("touch {}", marker.display()),
    );
    let hooks = [hook(&bad, &[], &[], None), hook(&after, &[], &[], None)];
    let err = hooks::run(&hooks, &state(dir.path()), "poststart").unwrap_err();
    match &err {
        Error::Hook { path, reason } => {
            assert_eq!(path, &bad.display().to_string());
            assert_eq!(
                reason,
                "poststart hook exited with code 3; stderr: no network for you"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!marker.exists(), "a hook after the failing one ran");
}

#[test]
fn timeout_kills_the_hook_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    // The hook starts a copy of itself that would outlive it, then waits for it.
    let slow = script(
        dir.path(),
        "slow.sh",
        r#"if [ "$1" = child ]; then sleep 300; exit; fi; "$0" child & wait"#,
    );
    let started = Instant::now();
    let err = hooks::run(
        &[hook(&slow, &[], &[], Some(1))],
        &state(dir.path()),
        "prestart",
    )
    .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.contains(&slow.display().to_string()), "{text}");
    assert!(text.contains("timeout of 1s"), "{text}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // Whatever the hook started before the deadline was in its process group and got
    // SIGKILL too (a zombie waiting for its reaper is dead already).
    let survivors = live_processes_running(&slow);
    assert!(survivors.is_empty(), "still running: {survivors:?}");
}

/// Pids of live (non-zombie) processes whose command line mentions `path`.
fn live_processes_running(path: &Path) -> Vec<i32> {
    let needle = path.display().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle) && !stat.contains(") Z ")
        })
        .collect()
}

#[test]
fn hook_that_ignores_stdin_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let quick = script(dir.path(), "quick.sh", "exit 0");
    let mut big = state(dir.path());
    // Larger than a pipe buffer, so the write cannot complete before the hook exits.
    let annotations = (0..4000)
        .map(|i| (format!("key{i}"), "v".repeat(64)))
        .collect();
    big.set_annotations(Some(annotations));
    hooks::run(&[hook(&quick, &[], &[], Some(30))], &big, "poststop").unwrap();
}

#[test]
fn missing_binary_is_reported() {
    let err = hooks::run(
        &[hook(Path::new("/nonexistent/hook"), &[], &[], None)],
        &State::default(),
        "createContainer",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/hook"), "{err}");
    assert!(err.contains("cannot be started"), "{err}");
}
