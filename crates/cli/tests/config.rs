//! The daemon's configuration (daemon.json and dockerd's flags) against real daemons: each
//! setting visibly takes effect, bad configurations are refused in one line and change nothing,
//! and SIGHUP applies what it can while a bad file keeps the running configuration.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, registry_at, Daemon, Registry, BERTH};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A daemon started with `config` as its configuration file.
fn daemon_with(config: &str) -> Daemon {
    let config = config.to_string();
    Daemon::start_with(move |dir| {
        let path = dir.join("daemon.json");
        std::fs::write(&path, config).expect("write daemon.json");
        vec!["--config-file".into(), path.display().to_string()]
    })
}

/// net.ipv4.ip_forward in the daemon's network namespace.
fn forwarding(d: &Daemon) -> String {
    let out = d.in_netns(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn inspect(d: &Daemon, args: &[&str]) -> Value {
    let out = d.docker_ok(args);
    let v: Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

fn run_out(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    d.docker_ok(&all)
}

#[test]
fn network_settings_decide_addresses_dns_mtu_and_isolation() {
    let d = daemon_with(
        r#"{
            "icc": false,
            "bip": "10.77.0.1/24",
            "fixed-cidr": "10.77.0.128/25",
            "default-address-pools": [{"base": "10.99.0.0/16", "size": 24}],
            "dns": ["10.77.0.53"],
            "dns-search": ["corp.example"],
            "dns-opts": ["ndots:2"],
            "mtu": 1400
        }"#,
    );
    d.import_busybox("busybox:latest");

    let bridge = inspect(&d, &["network", "inspect", "bridge"]);
    assert_eq!(bridge["IPAM"]["Config"][0]["Subnet"], "10.77.0.0/24");
    assert_eq!(bridge["IPAM"]["Config"][0]["Gateway"], "10.77.0.1");
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );

    let resolv = run_out(&d, &["busybox", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.77.0.53\n"), "{resolv}");
    assert!(resolv.contains("search corp.example\n"), "{resolv}");
    assert!(resolv.contains("options ndots:2\n"), "{resolv}");
    let mtu = run_out(&d, &["busybox", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1400");
    // ip-forward defaults to true: the daemon turned forwarding on with its bridge.
    assert_eq!(forwarding(&d), "1");

    // Addresses come from fixed-cidr inside bip's subnet.
    d.docker_ok(&["run", "-d", "--name", "a1", "busybox", "sleep", "300"]);
    let a1 = inspect(&d, &["inspect", "a1"]);
    let ip = a1["NetworkSettings"]["IPAddress"]
        .as_str()
        .expect("an address")
        .to_string();
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(ip.starts_with("10.77.0.") && last >= 128, "{ip}");

    // icc=false: another container on the default bridge cannot reach it; the bridge's own
    // address (the way out) stays reachable.
    let blocked = d.docker(&["run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", &ip]);
    assert!(
        !blocked.status.success(),
        "icc=false let a container ping {ip}"
    );
    run_out(&d, &["busybox", "ping", "-c", "1", "-W", "2", "10.77.0.1"]);

    // A user-defined network gets its subnet from the configured pool, and keeps icc on.
    d.docker_ok(&["network", "create", "n1"]);
    let n1 = inspect(&d, &["network", "inspect", "n1"]);
    assert_eq!(n1["IPAM"]["Config"][0]["Subnet"], "10.99.0.0/24");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "b1",
        "--network",
        "n1",
        "busybox",
        "sleep",
        "300",
    ]);
    run_out(
        &d,
        &[
            "--network",
            "n1",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "b1",
        ],
    );
    d.docker_ok(&["rm", "-f", "a1", "b1"]);
    d.docker_ok(&["network", "rm", "n1"]);
    d.finish();
}

#[test]
fn container_defaults_apply_where_a_container_says_nothing() {
    let d = daemon_with(
        r#"{
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 4096, "Soft": 1024}},
            "default-shm-size": "32M",
            "no-new-privileges": true,
            "init": true,
            "default-cgroupns-mode": "private"
        }"#,
    );
    d.import_busybox("busybox:latest");
    let script = "ulimit -n; df -k /dev/shm | tail -1; grep NoNewPrivs /proc/self/status; \
                  cat /proc/1/cmdline | tr '\\0' ' '; echo; head -1 /proc/self/cgroup";
    let out = run_out(&d, &["busybox", "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1024", "{out}");
    assert!(lines[1].split_whitespace().nth(1) == Some("32768"), "{out}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"],
        "{out}"
    );
    assert!(
        !lines[3].starts_with("sh "),
        "PID 1 is the command, not an init: {out}"
    );
    assert!(
        lines[4].ends_with(":/"),
        "the cgroup namespace is the host's: {out}"
    );

    // The default init is the built-in runtime's: runc's containers run without one.
    let out = run_out(
        &d,
        &[
            "--runtime",
            "runc",
            "busybox",
            "sh",
            "-c",
            "cat /proc/1/cmdline",
        ],
    );
    // (sh execs its last command, so with no init PID 1 is cat itself.)
    assert!(out.starts_with("cat\0"), "PID 1 under runc: {out:?}");

    // A container's own choices win.
    let script = "ulimit -n; grep NoNewPrivs /proc/self/status";
    let out = run_out(
        &d,
        &[
            "--ulimit",
            "nofile=2048:2048",
            "--security-opt",
            "no-new-privileges=false",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2048", "{out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "0"],
        "{out}"
    );
    let info: Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).expect("info JSON");
    let security = info["SecurityOptions"].to_string();
    assert!(security.contains("name=no-new-privileges"), "{security}");
    assert!(security.contains("name=cgroupns"), "{security}");
    d.finish();
}

/// `berth daemon` with `args` in a network namespace of its own (it must refuse to start, but
/// if it did start it must not touch the host's network): its exit status and stderr.
fn refused(dir: &Path, args: &[&str]) -> (bool, String) {
    let root = dir.join("root");
    let out = Command::new("unshare")
        .args(["--net", BERTH, "daemon", "--root"])
        .arg(&root)
        .arg("--run-root")
        .arg(dir.join("run"))
        .arg("--socket")
        .arg(dir.join("d.sock"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berth daemon");
    assert!(!root.exists(), "a refused daemon made its data root");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configurations_are_refused_in_one_line_and_change_nothing() {
    let dir = tempfile::Builder::new()
        .prefix("berth-config-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let file = dir.path().join("daemon.json");
    let file_arg = file.display().to_string();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            r#"{"icc": false}"#,
            &["--icc=true"],
            "specified both as a flag and in the configuration file",
        ),
        (
            r#"{"icc": false, "icc-mode": 1}"#,
            &[],
            "unknown key \"icc-mode\"",
        ),
        (
            "{\n  \"debug\": true,\n  \"icc\" false\n}",
            &[],
            ":3:9: malformed JSON",
        ),
        (r#"{"bip": "10.0.0.0/24"}"#, &[], "bip: "),
        (r#"{"mtu": "big"}"#, &[], "mtu: invalid type"),
        (
            r#"{"default-shm-size": "lots"}"#,
            &[],
            "default-shm-size: \"lots\" is not a size",
        ),
        (
            r#"{"init-path": "/nonexistent/docker-init"}"#,
            &[],
            "init-path /nonexistent/docker-init",
        ),
        (
            r#"{"bridge": "nosuchbr0"}"#,
            &[],
            "there is no interface nosuchbr0",
        ),
        (
            r#"{"userns-remap": "root"}"#,
            &[],
            "remapping to root is not allowed",
        ),
        (
            r#"{"userns-remap": "no-such-user-here"}"#,
            &[],
            "no user no-such-user-here",
        ),
    ];
    for (content, flags, expected) in cases {
        std::fs::write(&file, content).expect("write daemon.json");
        let mut args = vec!["--config-file", file_arg.as_str()];
        args.extend_from_slice(flags);
        let (ok, stderr) = refused(dir.path(), &args);
        assert!(!ok, "{content} started a daemon");
        assert!(stderr.contains(expected), "{content}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{content}: not one line: {stderr}"
        );
        assert!(
            stderr.contains("daemon.json") || !expected.contains("flag"),
            "{stderr}"
        );
    }
    let (ok, stderr) = refused(dir.path(), &["--config-file", "/nonexistent/daemon.json"]);
    assert!(
        !ok && stderr.contains("/nonexistent/daemon.json"),
        "{stderr}"
    );
}

/// A docker-registry on 127.0.0.1:5000 in the daemon's network namespace.
fn registry(d: &Daemon) -> Registry {
    registry_at(d, "127.0.0.1:5000")
}

fn hangup(d: &Daemon) {
    kill(Pid::from_raw(d.pid()), Signal::SIGHUP).expect("SIGHUP the daemon");
}

fn info(d: &Daemon) -> Value {
    serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).expect("info JSON")
}

#[test]
fn sighup_applies_mirrors_and_debug_and_a_bad_file_keeps_the_running_configuration() {
    let d = daemon_with(r#"{"max-concurrent-downloads": 3}"#);
    let registry = registry(&d);
    d.import_busybox("busybox:latest");
    d.docker_ok(&[
        "tag",
        "busybox:latest",
        "127.0.0.1:5000/library/busybox:latest",
    ]);
    d.docker_ok(&["push", "127.0.0.1:5000/library/busybox:latest"]);
    d.docker_ok(&[
        "rmi",
        "busybox:latest",
        "127.0.0.1:5000/library/busybox:latest",
    ]);
    // Docker Hub is out of reach here: without a mirror the pull fails.
    assert!(!d.docker(&["pull", "busybox"]).status.success());

    let file = d.dir().join("daemon.json");
    std::fs::write(&file, "{\"registry-mirrors\": [\"http://127.0.0.1:5000\"],").expect("write");
    hangup(&d);
    let kept = eventually(Duration::from_secs(20), || {
        d.log()
            .contains("refused, the running configuration is kept")
    });
    assert!(kept, "no refusal in the log:\n{}", d.log());
    assert!(!d.docker(&["pull", "busybox"]).status.success());
    assert_eq!(info(&d)["RegistryConfig"]["Mirrors"], serde_json::json!([]));

    std::fs::write(
        &file,
        r#"{"registry-mirrors": ["http://127.0.0.1:5000"], "debug": true, "icc": false}"#,
    )
    .expect("write");
    hangup(&d);
    let applied = eventually(Duration::from_secs(20), || {
        d.log().contains("applied debug")
    });
    assert!(applied, "no reload in the log:\n{}", d.log());
    assert!(d.log().contains("icc changed"), "{}", d.log());
    let now = info(&d);
    assert_eq!(now["Debug"], true);
    assert_eq!(
        now["RegistryConfig"]["Mirrors"],
        serde_json::json!(["http://127.0.0.1:5000"])
    );
    d.docker_ok(&["pull", "busybox"]);
    assert_eq!(
        run_out(&d, &["busybox", "echo", "from the mirror"]).trim(),
        "from the mirror"
    );
    drop(registry);
    d.finish();
}

#[test]
fn sockets_group_pidfile_firewall_switch_and_seccomp_profile_take_effect() {
    let d = Daemon::start_with(|dir| {
        let profile = dir.join("seccomp.json");
        std::fs::write(
            &profile,
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .expect("write the profile");
        let config = dir.join("daemon.json");
        let json = serde_json::json!({
            "iptables": false,
            "ip-forward": false,
            "group": "nogroup",
            "seccomp-profile": profile,
        });
        std::fs::write(&config, json.to_string()).expect("write daemon.json");
        vec![
            "--config-file".into(),
            config.display().to_string(),
            "-H".into(),
            format!("unix://{}", dir.join("second.sock").display()),
        ]
    });
    d.import_busybox("busybox:latest");

    // A second socket serves the same API; both are the configured group's.
    let second = d.dir().join("second.sock");
    let out = Command::new(common::DOCKER)
        .args([
            "-H",
            &format!("unix://{}", second.display()),
            "images",
            "-q",
        ])
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .output()
        .expect("docker");
    assert!(out.status.success() && !out.stdout.is_empty(), "{out:?}");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .expect("group lookup")
        .expect("nogroup exists")
        .gid;
    for socket in [&d.socket, &second] {
        let meta = std::fs::metadata(socket).expect("socket");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.gid(), nogroup.as_raw(), "{}", socket.display());
        assert_eq!(meta.mode() & 0o777, 0o660, "{}", socket.display());
    }

    // The pid file (under the exec root by default) names the daemon.
    let pid = std::fs::read_to_string(d.dir().join("run").join("berth.pid")).expect("pid file");
    assert_eq!(pid.trim(), d.pid().to_string());

    // iptables=false: publishing a port programs no firewall at all.
    d.docker_ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sleep", "300",
    ]);
    let tables = d.in_netns(&["nft", "list", "tables"]);
    let tables = String::from_utf8_lossy(&tables.stdout).into_owned();
    assert!(
        !tables.contains("berth"),
        "a firewall table with iptables=false: {tables}"
    );
    // ip-forward=false: the bridge is up but forwarding was left as it was (off in a new
    // network namespace).
    assert_eq!(forwarding(&d), "0");
    d.docker_ok(&["rm", "-f", "web"]);

    // The daemon's seccomp profile is every container's that names none.
    let denied = d.docker(&["run", "--rm", "busybox", "mkdir", "/x"]);
    assert!(
        !denied.status.success(),
        "mkdir ran under a profile denying it"
    );
    let allowed = run_out(
        &d,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "sh",
            "-c",
            "mkdir /x && echo made",
        ],
    );
    assert_eq!(allowed.trim(), "made");
    d.finish();
}

#[test]
fn ipv6_masquerade_switch_and_insecure_registry_cidrs_take_effect() {
    let d = daemon_with(
        r#"{
            "ipv6": true,
            "fixed-cidr-v6": "fd00:77::/64",
            "ip-masq": false,
            "insecure-registries": ["10.55.0.0/24"]
        }"#,
    );
    d.import_busybox("busybox:latest");

    // The default bridge is dual-stack from fixed-cidr-v6.
    let addrs = run_out(&d, &["busybox", "ip", "-6", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains("inet6 fd00:77::"), "{addrs}");

    // ip-masq=false: nothing leaving the default bridge is masqueraded.
    let ruleset = d.in_netns(&["nft", "list", "table", "inet", "berth"]);
    let ruleset = String::from_utf8_lossy(&ruleset.stdout).into_owned();
    assert!(ruleset.contains("table inet berth"), "{ruleset}");
    assert!(
        !ruleset.contains("oifname != \"berth0\" masquerade"),
        "{ruleset}"
    );

    // A registry at an address inside an insecure CIDR is reached over plain HTTP.
    let added = d.in_netns(&["ip", "addr", "add", "10.55.0.1/32", "dev", "lo"]);
    assert!(added.status.success(), "{added:?}");
    let registry = registry_at(&d, "10.55.0.1:5000");
    d.docker_ok(&["tag", "busybox:latest", "10.55.0.1:5000/team/bb:1"]);
    d.docker_ok(&["push", "10.55.0.1:5000/team/bb:1"]);
    d.docker_ok(&["rmi", "10.55.0.1:5000/team/bb:1"]);
    d.docker_ok(&["pull", "10.55.0.1:5000/team/bb:1"]);
    drop(registry);
    d.finish();
}

#[test]
fn an_existing_bridge_is_the_default_bridge_and_is_left_in_place() {
    let d = Daemon::start_after(
        |_| {
            "ip link add br-ops type bridge && ip addr add 10.66.0.1/24 dev br-ops && \
             ip link set br-ops up && "
                .into()
        },
        |dir| {
            let path = dir.join("daemon.json");
            let json = r#"{"bridge": "br-ops", "fixed-cidr": "10.66.0.128/25"}"#;
            std::fs::write(&path, json).expect("write daemon.json");
            vec!["--config-file".into(), path.display().to_string()]
        },
    );
    d.import_busybox("busybox:latest");
    let bridge = inspect(&d, &["network", "inspect", "bridge"]);
    assert_eq!(bridge["IPAM"]["Config"][0]["Subnet"], "10.66.0.0/24");
    assert_eq!(bridge["IPAM"]["Config"][0]["Gateway"], "10.66.0.1");
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.name"],
        "br-ops"
    );

    d.docker_ok(&["run", "-d", "--name", "a1", "busybox", "sleep", "300"]);
    let ip = inspect(&d, &["inspect", "a1"])["NetworkSettings"]["IPAddress"]
        .as_str()
        .expect("an address")
        .to_string();
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(ip.starts_with("10.66.0.") && last >= 128, "{ip}");
    // Its interface's host end is a port of the operator's bridge, which carries traffic.
    let ports = d.in_netns(&["ip", "-o", "link", "show", "master", "br-ops"]);
    let ports = String::from_utf8_lossy(&ports.stdout).into_owned();
    assert_eq!(ports.lines().count(), 1, "{ports}");
    d.docker_ok(&["exec", "a1", "ping", "-c", "1", "-W", "5", "10.66.0.1"]);

    // With no container left, the bridge is still the operator's, address and all.
    d.docker_ok(&["rm", "-f", "a1"]);
    let left = d.in_netns(&["ip", "-o", "-4", "addr", "show", "dev", "br-ops"]);
    let left = String::from_utf8_lossy(&left.stdout).into_owned();
    assert!(left.contains("10.66.0.1/24"), "{left}");
    d.finish();
}

#[test]
fn init_path_is_pid_1_of_init_containers_under_every_runtime() {
    let d = Daemon::start_with(|dir| {
        let init = dir.join("my-init");
        std::fs::write(
            &init,
            "#!/bin/sh\n[ \"$1\" = -- ] && shift\necho \"my-init is pid $$\"\nexec \"$@\"\n",
        )
        .expect("write the init");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.join("daemon.json");
        let json = serde_json::json!({"init": true, "init-path": init});
        std::fs::write(&path, json.to_string()).expect("write daemon.json");
        vec!["--config-file".into(), path.display().to_string()]
    });
    d.import_busybox("busybox:latest");
    // The daemon's init default brings the program in; it runs the command after `--`.
    let out = run_out(&d, &["busybox", "echo", "hi"]);
    assert_eq!(out, "my-init is pid 1\nhi\n");
    // Under runc too: the init is the program, not the built-in runtime's reaper.
    common::require("runc", "runc");
    let out = run_out(&d, &["--runtime", "runc", "busybox", "echo", "hi"]);
    assert_eq!(out, "my-init is pid 1\nhi\n");
    // --init=false still wins.
    let out = run_out(&d, &["--init=false", "busybox", "echo", "hi"]);
    assert_eq!(out, "hi\n");
    d.finish();
}

/// Layer requests in flight through a `CountingProxy`, the most seen at once, and how many
/// it waits for before letting any through.
#[derive(Default)]
struct InFlight {
    open: usize,
    most: usize,
    target: usize,
}

type Shared = std::sync::Arc<(std::sync::Mutex<InFlight>, std::sync::Condvar)>;

/// A TCP proxy in the daemon's network namespace in front of a registry. Every request gets
/// a connection of its own (`Connection: close`); requests for the given layer blobs are
/// counted while in flight, and each is held until `target` of them are (or 20 s have
/// passed), so that layers the daemon asks for at once are seen at once.
struct CountingProxy {
    listener: std::os::fd::OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Shared,
}

impl CountingProxy {
    fn start(d: &Daemon, listen: &str, upstream: &str, layers: Vec<String>) -> CountingProxy {
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", d.pid())).expect("netns");
        let shared: Shared = Default::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (listen, upstream) = (listen.to_string(), upstream.to_string());
        let inner = shared.clone();
        let layers = std::sync::Arc::new(layers);
        let thread = std::thread::spawn(move || {
            // This thread, and the ones it starts, live in the daemon's network namespace.
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let listener = std::net::TcpListener::bind(&listen).expect("bind the proxy");
            let fd = std::os::fd::AsFd::as_fd(&listener)
                .try_clone_to_owned()
                .expect("dup");
            tx.send(fd).expect("hand over the listener");
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let (shared, upstream, layers) = (inner.clone(), upstream.clone(), layers.clone());
                std::thread::spawn(move || relay(client, &upstream, &layers, &shared));
            }
        });
        CountingProxy {
            listener: rx.recv().expect("the proxy listens"),
            thread: Some(thread),
            shared,
        }
    }

    /// Counts afresh, holding layer requests until `target` are in flight.
    fn expect_at_once(&self, target: usize) {
        let mut s = self.shared.0.lock().unwrap();
        s.most = 0;
        s.target = target;
    }

    fn most(&self) -> usize {
        self.shared.0.lock().unwrap().most
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        // Wakes the accept loop, which then ends.
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.listener),
            nix::sys::socket::Shutdown::Both,
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request (a GET or HEAD: no body) passed on with `Connection: close`, and the
/// response back; a layer's counted and held as `CountingProxy` says.
fn relay(mut client: std::net::TcpStream, upstream: &str, layers: &[String], shared: &Shared) {
    use std::io::{Read, Write};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        // A TLS hello (the client trying https first) is not HTTP: refused by closing.
        match client.read(&mut byte) {
            Ok(1) if !head.is_empty() || byte[0].is_ascii_uppercase() => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let (first, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    let kept: Vec<&str> = rest
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let head = format!(
        "{first}\r\n{}\r\nConnection: close\r\n\r\n",
        kept.join("\r\n")
    );
    let layer = first.starts_with("GET ") && layers.iter().any(|l| first.contains(l.as_str()));
    if layer {
        let (lock, changed) = &**shared;
        let mut s = lock.lock().unwrap();
        s.open += 1;
        s.most = s.most.max(s.open);
        changed.notify_all();
        let _ = changed
            .wait_timeout_while(s, Duration::from_secs(20), |s| s.open < s.target)
            .unwrap();
    }
    if let Ok(mut server) = std::net::TcpStream::connect(upstream) {
        if server.write_all(head.as_bytes()).is_ok() {
            let _ = std::io::copy(&mut server, &mut client);
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    if layer {
        shared.0.lock().unwrap().open -= 1;
    }
}

/// The layer digests of `repo:tag` in the registry at 127.0.0.1:5000, from its manifest.
fn layer_digests(d: &Daemon, repo: &str, tag: &str) -> Vec<String> {
    let url = format!("http://127.0.0.1:5000/v2/{repo}/manifests/{tag}");
    let out = d.in_netns(&[
        "curl",
        "-sf",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        &url,
    ]);
    assert!(out.status.success(), "curl {url}: {out:?}");
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn max_concurrent_downloads_bounds_the_layers_pulled_at_once_and_reloads_live() {
    let d = daemon_with(r#"{"max-concurrent-downloads": 1}"#);
    let registry = registry(&d);
    d.import_busybox("busybox:latest");
    // Three layers: the base and two commits, each adding a file.
    let mut from = "busybox:latest".to_string();
    for n in 1..=2 {
        let name = format!("step{n}");
        d.docker_ok(&[
            "run",
            "--name",
            &name,
            &from,
            "sh",
            "-c",
            &format!("echo {n} > /layer{n}"),
        ]);
        d.docker_ok(&["commit", &name, &format!("multi:{n}")]);
        d.docker_ok(&["rm", &name]);
        from = format!("multi:{n}");
    }
    d.docker_ok(&["tag", "multi:2", "127.0.0.1:5000/team/multi:1"]);
    d.docker_ok(&["push", "127.0.0.1:5000/team/multi:1"]);
    d.docker_ok(&[
        "rmi",
        "127.0.0.1:5000/team/multi:1",
        "multi:2",
        "multi:1",
        "busybox:latest",
    ]);
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());

    // Pulled through the proxy (the same registry under another port).
    let layers = layer_digests(&d, "team/multi", "1");
    assert_eq!(layers.len(), 3, "{layers:?}");
    let proxy = CountingProxy::start(&d, "127.0.0.1:5001", "127.0.0.1:5000", layers);
    let image = "127.0.0.1:5001/team/multi:1";
    proxy.expect_at_once(1);
    d.docker_ok(&["pull", image]);
    assert_eq!(
        proxy.most(),
        1,
        "more than one layer at a time with a limit of 1"
    );
    d.docker_ok(&["rmi", image]);

    std::fs::write(
        d.dir().join("daemon.json"),
        r#"{"max-concurrent-downloads": 3}"#,
    )
    .expect("write");
    hangup(&d);
    let applied = eventually(Duration::from_secs(20), || {
        d.log().contains("applied max-concurrent-downloads")
    });
    assert!(applied, "no reload in the log:\n{}", d.log());
    proxy.expect_at_once(3);
    d.docker_ok(&["pull", image]);
    assert_eq!(proxy.most(), 3, "the three layers were not pulled at once");
    assert_eq!(
        run_out(&d, &[image, "cat", "/layer1", "/layer2"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    drop(proxy);
    drop(registry);
    d.finish();
}
