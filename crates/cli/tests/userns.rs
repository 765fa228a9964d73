//! `userns-remap` against a real daemon: root in a container is an unprivileged uid on the
//! host, and every path by which files enter or leave a container (layers, volumes, exec,
//! cp, export, commit, build) keeps the owners the container sees.
//!
//! The daemon runs in a private mount namespace with an overlay over /etc, so that making
//! the `dockremap` user and its subordinate ranges (what `"default"` does) changes the
//! daemon's view of /etc and never the host's.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Daemon;
use serde_json::Value;

/// A daemon with `"userns-remap": "default"`, /etc overlaid under its directory.
fn remapped_daemon() -> Daemon {
    Daemon::start_isolated(
        |dir| {
            let (up, work) = (dir.join("etc-up"), dir.join("etc-work"));
            format!(
                "chmod 711 {d} && mkdir {up} {work} && mount -t overlay overlay -o lowerdir=/etc,upperdir={up},workdir={work} /etc && ",
                d = dir.display(),
                up = up.display(),
                work = work.display()
            )
        },
        |dir| {
            let path = dir.join("daemon.json");
            std::fs::write(&path, r#"{"userns-remap": "default"}"#).expect("daemon.json");
            vec!["--config-file".into(), path.display().to_string()]
        },
    )
}

/// The first host id of dockremap's range in a subordinate-id file the daemon wrote.
fn range_start(dir: &Path, file: &str) -> u32 {
    let text = std::fs::read_to_string(dir.join("etc-up").join(file)).expect(file);
    let line = text
        .lines()
        .find(|l| l.starts_with("dockremap:"))
        .unwrap_or_else(|| panic!("no dockremap range in {file}: {text}"));
    line.split(':').nth(1).unwrap().parse().unwrap()
}

/// `uid/gid name` of each entry of a tar.
fn tar_owners(tar: &[u8]) -> Vec<(String, String)> {
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "-tvf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), tar).expect("feed tar");
    let out = child.wait_with_output().expect("tar -tv");
    assert!(out.status.success(), "tar -tv failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f[5]
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            (f[1].to_string(), name)
        })
        .collect()
}

fn owner_of(owners: &[(String, String)], name: &str) -> String {
    owners
        .iter()
        .find(|(_, n)| n == name)
        .unwrap_or_else(|| panic!("{name} not in {owners:?}"))
        .0
        .clone()
}

/// The layers of a `docker save` archive, as tars.
fn saved_layers(d: &Daemon, image: &str) -> Vec<Vec<u8>> {
    let out = d.dir().join(format!("{image}.tar"));
    d.docker_ok(&["save", "-o", out.to_str().unwrap(), image]);
    let unpacked = d.dir().join(format!("{image}-saved"));
    std::fs::create_dir(&unpacked).unwrap();
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xf")
        .arg(&out)
        .status()
        .unwrap();
    assert!(ok.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| std::fs::read(unpacked.join(l.as_str().unwrap())).unwrap())
        .collect()
}

fn status_ids(pid: i64, key: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn userns_remap_makes_container_root_an_unprivileged_host_uid() {
    let d = remapped_daemon();
    let (uid, gid) = (
        range_start(d.dir(), "subuid"),
        range_start(d.dir(), "subgid"),
    );
    assert!(uid >= 100_000 && gid >= 100_000, "{uid}:{gid}");
    let info: Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
    let root_dir = d.dir().join("root").join(format!("{uid}.{gid}"));
    assert_eq!(info["DockerRootDir"], root_dir.display().to_string());
    assert!(
        info["SecurityOptions"].to_string().contains("name=userns"),
        "{}",
        info["SecurityOptions"]
    );
    d.import_busybox("busybox:latest");

    // Root inside, the range's first uid outside; the image's files and a new volume belong
    // to it.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ctr",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/f && touch /made && exec sleep 300",
    ]);
    let pid = serde_json::from_str::<Value>(&d.docker_ok(&["inspect", "ctr"])).unwrap()[0]["State"]
        ["Pid"]
        .as_i64()
        .unwrap();
    assert_eq!(status_ids(pid, "Uid:"), uid);
    assert_eq!(status_ids(pid, "Gid:"), gid);
    let inside = d.docker_ok(&["exec", "ctr", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let fields: Vec<&str> = inside.split_whitespace().collect();
    assert_eq!(fields, ["0", "0", &uid.to_string(), "65536"]);
    let f = root_dir.join("volumes/data/_data/f");
    assert!(common::eventually(
        std::time::Duration::from_secs(10),
        || f.exists()
    ));
    let meta = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f).unwrap());
    assert_eq!(meta, uid);
    let seen = d.docker_ok(&[
        "run",
        "--rm",
        "--userns=host",
        "busybox",
        "stat",
        "-c",
        "%u:%g",
        "/bin/busybox",
    ]);
    assert_eq!(seen.trim(), format!("{uid}:{gid}"));
    // Its own /etc/hosts is the container root's to edit.
    d.docker_ok(&[
        "exec",
        "ctr",
        "sh",
        "-c",
        "echo '10.0.0.9 extra' >> /etc/hosts",
    ]);

    // Out of and into the container, owners are the container's.
    let out = Command::new(common::DOCKER)
        .args(["cp", "ctr:/made", "-"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(owner_of(&tar_owners(&out.stdout), "made"), "0/0");
    let local = d.dir().join("in.txt");
    std::fs::write(&local, "in").unwrap();
    d.docker_ok(&["cp", local.to_str().unwrap(), "ctr:/in.txt"]);
    let owner = d.docker_ok(&["exec", "ctr", "stat", "-c", "%u:%g", "/in.txt"]);
    assert_eq!(owner.trim(), "0:0");
    let export = d.dir().join("export.tar");
    d.docker_ok(&["export", "-o", export.to_str().unwrap(), "ctr"]);
    let exported = tar_owners(&std::fs::read(&export).unwrap());
    assert_eq!(owner_of(&exported, "bin/busybox"), "0/0");
    assert_eq!(owner_of(&exported, "in.txt"), "0/0");

    // A committed layer carries the container's owners, not the host's.
    d.docker_ok(&["commit", "ctr", "snap:1"]);
    let layers = saved_layers(&d, "snap:1");
    assert_eq!(owner_of(&tar_owners(layers.last().unwrap()), "made"), "0/0");

    // So does a built one, with --chown's ids as given.
    let ctx = d.dir().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY --chown=7:8 a.txt /app/\nWORKDIR /w\nRUN id -u > ran-as\n",
    )
    .unwrap();
    let built = Command::new(common::DOCKER)
        .args(["build", "-q", "-t", "built:1", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let ran = d.docker_ok(&[
        "run",
        "--rm",
        "built:1",
        "sh",
        "-c",
        "cat ran-as; stat -c %u:%g /app/a.txt /app /w",
    ]);
    assert_eq!(
        ran.split_whitespace().collect::<Vec<_>>(),
        ["0", "7:8", "7:8", "0:0"]
    );
    let layers = saved_layers(&d, "built:1");
    let all: Vec<(String, String)> = layers.iter().flat_map(|l| tar_owners(l)).collect();
    assert_eq!(owner_of(&all, "app/a.txt"), "7/8");
    assert_eq!(owner_of(&all, "w/ran-as"), "0/0");

    // Privileged needs the host's user namespace.
    let refused = d.docker(&["run", "--rm", "--privileged", "busybox", "true"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("--userns=host"),
        "{err}"
    );
    d.docker_ok(&[
        "run",
        "--rm",
        "--privileged",
        "--userns=host",
        "busybox",
        "true",
    ]);
    d.finish();
}
