//! Real Docker clients, unchanged, against `berth daemon`: the docker CLI, docker-py and
//! bollard; and the daemon surviving SIGKILL with its containers. Needs root; a missing tool
//! fails the test with the package to install.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{eventually, require, Daemon, BERTH, DOCKER};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docker_cli() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let d = Daemon::start();
    d.import_busybox("busybox:latest");

    // run, output and exit codes
    assert_eq!(
        d.docker_ok(&["run", "--rm", "busybox", "echo", "hi"]),
        "hi\n"
    );
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // `-v /path` is an anonymous volume (sent as Config.Volumes), removed with --rm.
    let mounts = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/anon",
        "busybox",
        "cat",
        "/proc/mounts",
    ]);
    assert!(mounts.contains(" /anon "), "{mounts}");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "");
    // An option berth does not implement is refused by name, not ignored.
    for (flag, value) in [
        ("--sysctl", "net.ipv4.ip_forward=1"),
        ("--add-host", "h:10.0.0.1"),
    ] {
        let out = d.docker(&["run", "--rm", flag, value, "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("berth does not support {flag}")),
            "{err}"
        );
    }

    // a published port, served from a detached container
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18080:80",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo started && exec httpd -f -p 80 -h /www",
    ]);
    d.docker_ok(&["exec", "web", "sh", "-c", "echo hello > /www/index.html"]);
    let mut last = None;
    let served = eventually(Duration::from_secs(20), || {
        let out = d.in_netns(&["busybox", "wget", "-qO-", "http://127.0.0.1:18080/"]);
        let ok = text(&out) == "hello\n";
        last = Some(out);
        ok
    });
    assert!(
        served,
        "GET http://127.0.0.1:18080/ through the published port: {last:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), || d.docker_ok(&["logs", "web"])
            == "started\n"),
        "logs web: {:?}",
        d.docker(&["logs", "web"])
    );
    let out = d.docker(&["exec", "web", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "exec exit code: {out:?}");
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.Ports}}"]);
    assert!(ps.starts_with("web busybox"), "ps --format: {ps:?}");
    assert!(
        ps.contains("127.0.0.1:18080->80/tcp"),
        "ps --format: {ps:?}"
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "running\n"
    );
    // update: a running container's limits change in place, and stay in its config
    d.docker_ok(&[
        "update",
        "--memory",
        "48m",
        "--memory-swap",
        "96m",
        "--restart",
        "on-failure:2",
        "web",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.RestartPolicy.Name}}",
            "web"
        ]),
        "50331648 100663296 on-failure\n"
    );
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let memory = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a v1 memory cgroup");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes"
    ));
    assert_eq!(limit.unwrap().trim(), "50331648");
    d.docker_ok(&["stop", "-t", "2", "web"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "exited\n"
    );
    d.docker_ok(&["rm", "web"]);
    assert!(d.docker(&["inspect", "web"]).status.code() != Some(0));

    // a user network: containers find each other by name
    d.docker_ok(&["network", "create", "appnet"]);
    assert!(d
        .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "appnet"));
    // (By name over TCP: `ping` needs CAP_NET_RAW, which Docker grants by default and berth
    // does not; see the report of the clients branch.)
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo by-name > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    // Bounded retries inside the client until srv's httpd listens.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 100); do wget -qO- http://srv/ && exit 0; sleep 0.1; done; exit 1",
    ]);
    assert!(out.status.success(), "wget http://srv/ on appnet: {out:?}");
    assert_eq!(text(&out), "by-name\n");
    d.docker_ok(&["rm", "-f", "srv"]);
    d.docker_ok(&["network", "rm", "appnet"]);
    assert!(!d
        .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "appnet"));

    // a volume outlives the container that wrote to it
    d.docker_ok(&["volume", "create", "data"]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    assert!(d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "data"));
    d.docker_ok(&["volume", "rm", "data"]);
    assert!(!d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "data"));

    // images
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.lines().any(|l| l == "busybox:latest"),
        "images: {images:?}"
    );
    d.docker_ok(&["tag", "busybox", "mybox:v1"]);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.lines().any(|l| l == "mybox:v1"),
        "images after tag: {images:?}"
    );
    d.docker_ok(&["rmi", "mybox:v1"]);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        !images.lines().any(|l| l == "mybox:v1"),
        "images after rmi: {images:?}"
    );
    assert!(
        images.lines().any(|l| l == "busybox:latest"),
        "rmi of a tag kept the image: {images:?}"
    );

    d.finish();
}

/// `GET path` over the daemon's socket as HTTP/1.0 (so the body ends with the connection):
/// the first `lines` lines of the body, each parsed as JSON; the connection is then dropped.
fn api_lines(socket: &Path, path: &str, lines: usize) -> Vec<serde_json::Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n").expect("request");
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    assert!(line.contains(" 200 "), "GET {path}: {line}");
    while line.trim() != "" {
        line.clear();
        reader.read_line(&mut line).expect("header");
    }
    (0..lines)
        .map(|_| {
            line.clear();
            reader.read_line(&mut line).expect("body line");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("GET {path}: {e}: {line:?}"))
        })
        .collect()
}

#[test]
fn stats() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    // A busy loop, so that its CPU time grows between samples.
    d.docker_ok(&[
        "run",
        "-d",
        "--memory",
        "64m",
        "--name",
        "st",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);

    let out = d.docker_ok(&["stats", "--no-stream", "--format", "{{json .}}", "st"]);
    let row: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(row["Name"], "st", "{row}");
    let field = |name: &str| row[name].as_str().unwrap_or_default().to_string();
    assert!(field("MemUsage").ends_with(" / 64MiB"), "{row}");
    let cpu: f64 = field("CPUPerc")
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|e| panic!("CPUPerc: {e}: {row}"));
    assert!(cpu > 0.0, "a busy loop used no CPU: {row}");
    let pids: u64 = field("PIDs").parse().expect("PIDs");
    assert!(pids >= 1, "{row}");
    assert!(field("NetIO").contains(" / "), "{row}");

    let out = Command::new(BERTH)
        .args(["-H", &d.host(), "stats", "--no-stream", "st"])
        .output()
        .expect("berth stats");
    assert!(out.status.success(), "berth stats: {out:?}");
    let table = text(&out);
    let line = table.lines().nth(1).unwrap_or_default();
    assert!(
        line.contains(" st ") && line.contains("/ 64MiB"),
        "berth stats --no-stream: {table}"
    );

    let v = &api_lines(&d.socket, "/containers/st/stats?stream=false", 1)[0];
    assert_eq!(v["name"], "/st", "{v}");
    assert_eq!(v["memory_stats"]["limit"], 67108864, "{v}");
    assert!(v["networks"]["eth0"]["rx_bytes"].is_u64(), "{v}");
    assert!(v["pids_stats"]["current"].as_u64() >= Some(1), "{v}");
    let used = |s: &serde_json::Value| s["cpu_usage"]["total_usage"].as_u64().unwrap_or(0);
    assert!(
        used(&v["cpu_stats"]) > used(&v["precpu_stats"]) && used(&v["precpu_stats"]) > 0,
        "stream=false takes two samples: {v}"
    );

    // A stream: the first line has no sample before it, the second has.
    let lines = api_lines(&d.socket, "/containers/st/stats", 2);
    assert_eq!(lines[0]["preread"], "0001-01-01T00:00:00Z", "{}", lines[0]);
    assert_eq!(lines[1]["preread"], lines[0]["read"], "{}", lines[1]);

    // A stopped container answers with zeroes.
    d.docker_ok(&["kill", "st"]);
    d.docker_ok(&["wait", "st"]);
    let v = &api_lines(&d.socket, "/containers/st/stats?stream=false", 1)[0];
    assert_eq!(v["read"], "0001-01-01T00:00:00Z", "{v}");
    assert_eq!(v["id"].as_str().map(str::len), Some(64), "{v}");

    d.docker_ok(&["rm", "-f", "st"]);
    d.finish();
}

#[test]
fn docker_py() {
    require("python3", "python3");
    let has_module = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_module,
        "the python docker module is missing: install python3-docker (scripts/deps.sh)"
    );
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/docker_py.py");
    let out = Command::new("python3")
        .arg(script)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .output()
        .expect("python3");
    let shown = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "docker_py.py failed ({:?}):\n{shown}",
        out.status.code()
    );
    assert!(text(&out).contains("all checks passed"), "{shown}");
    eprintln!("{shown}");
    d.finish();
}

#[test]
fn bollard() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bollard_checks(&d.socket));
    d.finish();
}

async fn bollard_checks(socket: &Path) {
    use bollard::models::{ContainerCreateBody, NetworkCreateRequest};
    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
        RemoveContainerOptionsBuilder,
    };
    use futures_util::StreamExt;

    let docker = bollard::Docker::connect_with_unix(
        socket.to_str().expect("utf-8"),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("connect");
    assert_eq!(docker.ping().await.expect("ping"), "OK");
    let version = docker.version().await.expect("version");
    assert!(version.api_version.is_some(), "version: {version:?}");

    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name("bol").build()),
            ContainerCreateBody {
                image: Some("busybox".into()),
                cmd: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    "echo one; echo two >&2; exit 4".into(),
                ]),
                ..Default::default()
            },
        )
        .await
        .expect("create_container");
    assert!(!created.id.is_empty());
    docker
        .start_container("bol", None)
        .await
        .expect("start_container");
    let waited: Vec<_> = docker.wait_container("bol", None).collect().await;
    // bollard reports a non-zero exit as an error carrying the code.
    let code = match waited.last().expect("a wait answer") {
        Ok(r) => r.status_code,
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => *code,
        Err(e) => panic!("wait_container: {e:?}"),
    };
    assert_eq!(code, 4);

    let mut logs = docker.logs(
        "bol",
        Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
    );
    let mut seen = Vec::new();
    while let Some(item) = logs.next().await {
        seen.push(item.expect("log item").to_string());
    }
    assert_eq!(seen.concat(), "one\ntwo\n", "logs: {seen:?}");

    let listed = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
        .await
        .expect("list_containers");
    assert!(
        listed
            .iter()
            .any(|c| c.id.as_deref() == Some(created.id.as_str())
                && c.names
                    .as_ref()
                    .is_some_and(|n| n.iter().any(|n| n == "/bol"))),
        "list_containers: {listed:?}"
    );
    let inspected = docker
        .inspect_container("bol", None)
        .await
        .expect("inspect");
    let state = inspected.state.expect("state");
    assert_eq!(state.exit_code, Some(4));
    assert_eq!(
        state.status,
        Some(bollard::models::ContainerStateStatusEnum::EXITED)
    );
    docker
        .remove_container(
            "bol",
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .expect("remove_container");
    assert!(docker.inspect_container("bol", None).await.is_err());

    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list_images");
    assert!(
        images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t == "busybox:latest")),
        "list_images: {images:?}"
    );

    let net = docker
        .create_network(NetworkCreateRequest {
            name: "bolnet".into(),
            ..Default::default()
        })
        .await
        .expect("create_network");
    assert!(!net.id.is_empty());
    docker
        .remove_network("bolnet")
        .await
        .expect("remove_network");
}

#[test]
fn survives_sigkill() {
    require(
        DOCKER,
        "the docker CLI (docker.io, or docker-ce-cli) at /usr/local/bin/docker",
    );
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done",
    ]);
    d.docker_ok(&[
        "run", "-d", "--name", "seven", "busybox", "sh", "-c", "exit 7",
    ]);
    let status = |d: &Daemon, name: &str| {
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            name,
        ])
    };
    assert!(
        eventually(Duration::from_secs(20), || status(&d, "seven")
            == "exited 7\n"),
        "seven: {}",
        status(&d, "seven")
    );
    let lines = |d: &Daemon| -> Vec<u64> {
        d.docker_ok(&["logs", "counter"])
            .lines()
            .map(|l| l.parse().unwrap_or_else(|_| panic!("log line {l:?}")))
            .collect()
    };
    assert!(eventually(Duration::from_secs(20), || lines(&d).len() >= 3));
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "counter"]);
    let before = lines(&d).len();

    d.kill_and_restart();

    let pid_after = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "counter"]);
    assert_eq!(
        pid_after, pid,
        "the running container's pid after the restart"
    );
    let pid: i32 = pid.trim().parse().expect("pid");
    assert!(pid > 0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
        .expect("the container process lives");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "counter"]),
        "running\n"
    );
    assert!(
        eventually(Duration::from_secs(20), || lines(&d).len() > before + 5),
        "logs did not grow after the restart: {} lines before, {:?} now",
        before,
        lines(&d).len()
    );
    let got = lines(&d);
    let expected: Vec<u64> = (0..got.len() as u64).collect();
    assert_eq!(
        got, expected,
        "log lines lost or repeated across the restart"
    );
    assert_eq!(status(&d, "seven"), "exited 7\n");
    let ps: HashMap<String, String> = d
        .docker_ok(&["ps", "-a", "--format", "{{.Names}}\t{{.State}}"])
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(ps.len(), 2, "ps -a after the restart: {ps:?}");
    assert_eq!(ps["counter"], "running");
    assert_eq!(ps["seven"], "exited");

    d.docker_ok(&["stop", "-t", "2", "counter"]);
    assert!(
        status(&d, "counter").starts_with("exited "),
        "{}",
        status(&d, "counter")
    );
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
        "the stopped container's process is gone"
    );
    d.docker_ok(&["rm", "counter", "seven"]);
    // The restarted daemon runs new containers as before.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "busybox", "echo", "after"]),
        "after\n"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    d.finish();
}

/// Containers that end while no daemon runs get their due when one starts: `--restart
/// always` runs again, `--rm` is removed.
#[test]
fn policies_apply_to_containers_that_ended_while_the_daemon_was_down() {
    require(DOCKER, "the docker CLI at /usr/local/bin/docker");
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run", "-d", "--name", "gone", "--rm", "busybox", "sleep", "300",
    ]);
    let pid = |d: &Daemon, name: &str| -> i32 {
        let out = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", name]);
        out.trim().parse().expect("pid")
    };
    let (keep, gone) = (pid(&d, "keep"), pid(&d, "gone"));
    d.kill_and_restart_with(|| {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        for p in [keep, gone] {
            kill(Pid::from_raw(p), Signal::SIGKILL).expect("kill a container's process");
        }
        let ended = || {
            [keep, gone]
                .iter()
                .all(|p| kill(Pid::from_raw(*p), None).is_err())
        };
        assert!(
            eventually(Duration::from_secs(20), ended),
            "the processes lived on"
        );
    });
    let state = |d: &Daemon| {
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            "keep",
        ])
    };
    assert!(
        eventually(Duration::from_secs(20), || state(&d) == "running 1\n"),
        "keep: {}",
        state(&d)
    );
    assert_ne!(pid(&d, "keep"), keep);
    assert!(eventually(Duration::from_secs(20), || {
        d.docker_ok(&["ps", "-aq", "--filter", "name=gone"])
            .is_empty()
    }));
    d.finish();
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate in `dir` with
/// openssl, as Docker's guide to protecting the daemon socket does.
fn make_certificates(dir: &Path) {
    common::require("openssl", "openssl");
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj /CN=berth -keyout server-key.pem -out server.csr
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile server.ext -out server-cert.pem
openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout key.pem -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile client.ext -out cert.pem
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=stranger -keyout stranger-key.pem -out stranger.pem
"#;
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "making certificates failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--tcp tcp://…` serves the API over TLS to clients with a certificate from the CA, and
/// to no one else; without TLS files the daemon refuses to listen on TCP at all.
#[test]
fn tcp_needs_tls_client_certificates() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certificates(certs.path());
    let c = |name: &str| certs.path().join(name).display().to_string();
    let d = Daemon::start_with(|_| {
        vec![
            "--tcp".into(),
            "tcp://127.0.0.1:2376".into(),
            "--tlsverify".into(),
            format!("--tlscacert={}", c("ca.pem")),
            format!("--tlscert={}", c("server-cert.pem")),
            format!("--tlskey={}", c("server-key.pem")),
        ]
    });
    let docker = |cert: &str, key: &str| {
        d.in_netns(&[
            DOCKER,
            "--tlsverify",
            &format!("--tlscacert={}", c("ca.pem")),
            &format!("--tlscert={}", c(cert)),
            &format!("--tlskey={}", c(key)),
            "-H",
            "tcp://127.0.0.1:2376",
            "version",
            "--format",
            "{{.Server.Version}}",
        ])
    };
    let out = docker("cert.pem", "key.pem");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "docker over TLS failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A certificate the CA did not sign, and no certificate at all, are turned away.
    assert!(!docker("stranger.pem", "stranger-key.pem").status.success());
    let bare = d.in_netns(&[
        "curl",
        "-sf",
        "--cacert",
        &c("ca.pem"),
        "https://127.0.0.1:2376/_ping",
    ]);
    assert!(
        !bare.status.success(),
        "a client without a certificate was served"
    );
    d.finish();

    // TCP without TLS files: one clear line, and no daemon. Run where a daemon that did
    // start would harm nothing (its own network namespace and directories), and ended.
    let scratch = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| scratch.path().join(name).display().to_string();
    let mut child = Command::new("unshare")
        .args(["--net", "--fork", "--kill-child=SIGKILL", BERTH, "daemon"])
        .args(["--tcp", "tcp://127.0.0.1:2377", "--root", &at("root")])
        .args(["--run-root", &at("run"), "--socket", &at("s.sock")])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(at("err")).expect("err file"))
        .spawn()
        .expect("berth daemon");
    let ended = eventually(Duration::from_secs(30), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("berth daemon --tcp without TLS files started");
    }
    let err = std::fs::read_to_string(at("err")).unwrap_or_default();
    assert!(err.contains("needs tlscacert, tlscert and tlskey"), "{err}");
    assert!(!scratch.path().join("root").exists(), "it made its root");
}

/// Containers named like the fixed paths under /containers ("json", "create", "prune") are
/// removed by name like any other.
#[test]
fn containers_named_like_fixed_paths_are_removed_by_name() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    for name in ["json", "create", "prune"] {
        d.docker_ok(&["create", "--name", name, "busybox", "true"]);
        d.docker_ok(&["rm", name]);
    }
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    d.finish();
}
