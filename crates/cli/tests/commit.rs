//! `docker diff` and `docker commit` with the docker CLI against `berth daemon`: a
//! container's changes listed as docker lists them, and made into an image that runs.
//! Needs root.

mod common;

use std::time::Duration;

use common::{eventually, require, Daemon, DOCKER};

#[test]
fn diff_and_commit() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let script = "echo added > /added && echo me >> /etc/passwd && rm /etc/group && mkdir /newdir";
    d.docker_ok(&["run", "--name", "ctr", "busybox", "sh", "-c", script]);
    assert_eq!(
        d.docker_ok(&["diff", "ctr"]),
        "A /added\nC /etc\nD /etc/group\nC /etc/passwd\nA /newdir\n"
    );

    let id = d.docker_ok(&[
        "commit",
        "-c",
        r#"CMD ["cat","/added"]"#,
        "-m",
        "msg",
        "ctr",
        "img:1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.docker_ok(&["run", "--rm", "img:1"]), "added\n");
    let history = d.docker_ok(&["history", "--no-trunc", "--format", "{{.Comment}}", "img:1"]);
    assert_eq!(history.lines().next(), Some("msg"), "{history}");
    let out = d.docker(&["run", "--rm", "img:1", "ls", "/etc/group"]);
    assert!(!out.status.success(), "the deleted file is gone: {out:?}");

    // A running container: frozen for the commit, running again afterwards.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo up > /up; sleep 1000",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || d
            .docker_ok(&["diff", "live"])
            .contains("A /up")),
        "the running container writes /up"
    );
    d.docker_ok(&["commit", "live", "live:1"]);
    let state = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "live"]);
    assert_eq!(state, "running\n");
    let events = d.events_of("live");
    assert!(events.lines().any(|a| a == "commit"), "{events}");
    d.docker_ok(&["stop", "-t", "1", "live"]);
    let events = d.events_of("live");
    assert!(events.lines().any(|a| a == "stop"), "{events}");
    d.docker_ok(&["start", "live"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "live:1", "cat", "/up"]),
        "up\n"
    );

    // Unknown containers: one line, a 404.
    for args in [&["diff", "nosuch"][..], &["commit", "nosuch", "x:1"][..]] {
        let out = d.docker(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("no such container"), "{err}");
    }
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        !images.contains("x:1"),
        "a failed commit makes no image: {images}"
    );

    d.docker_ok(&["rm", "-f", "ctr", "live"]);
    d.docker_ok(&["rmi", "img:1", "live:1"]);
    d.finish();
}
