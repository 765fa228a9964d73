//! The `berth` binary against a real Docker Engine API daemon.
//!
//! The daemon is `berth daemon`, started by `start_daemon` alone in its own network namespace
//! and temporary directories (with a docker-registry beside it for pushes and pulls).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A daemon serving the Docker Engine API on `socket`, stopped and cleaned up on drop.
struct Daemon {
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    child: Child,
}

impl Daemon {
    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's pid, as the shell that became it wrote it.
    fn pid(&self) -> String {
        let path = self.dir.as_ref().expect("dir").path().join("d.pid");
        let pid = std::fs::read_to_string(path).expect("d.pid");
        pid.trim().to_string()
    }

    /// berth's HOME in the tests: its own, for the credentials of `login`.
    fn home(&self) -> PathBuf {
        self.dir.as_ref().expect("dir").path().join("home")
    }

    /// Runs berth against this daemon.
    fn berth(&self, args: &[&str]) -> Output {
        self.berth_stdin(args, "")
    }

    fn berth_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(BERTH)
            .args(args)
            .env("BERTH_HOST", self.host())
            .env("HOME", self.home())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run berth");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("berth output")
    }

    /// Runs berth, requires success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the daemon the tests run against, or None (with the reason printed) when this
/// machine cannot run it. The one place that knows which daemon it is.
fn start_daemon() -> Daemon {
    assert!(
        nix::unistd::geteuid().is_root() && have("unshare"),
        "these tests need root and unshare (util-linux): run them through scripts/test"
    );
    let dir = tempfile::Builder::new()
        .prefix("berth-cli-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let d = dir.path();
    let socket = d.join("d.sock");
    std::fs::create_dir(d.join("home")).expect("home");
    let script = format!(
        "ip link set lo up && {registry}echo $$ > {pid} && exec {BERTH} daemon --root {root} \
         --run-root {run} --socket {sock}",
        root = d.join("root").display(),
        run = d.join("run").display(),
        sock = socket.display(),
        pid = d.join("d.pid").display(),
        registry = registry_script(d),
    );
    let log = std::fs::File::create(d.join("log")).expect("log file");
    let child = Command::new("unshare")
        .args([
            "--net",
            "--fork",
            "--kill-child=SIGTERM",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start dockerd");
    let mut daemon = Daemon {
        dir: Some(dir),
        socket,
        child,
    };
    daemon.wait_ready(Duration::from_secs(60));
    daemon
}

/// A docker-registry on 127.0.0.1:5000 inside the daemon's network namespace, when installed
/// (its pid in `registry.pid`, its storage under `dir`): a shell command ending in `&& `.
fn registry_script(dir: &Path) -> String {
    assert!(
        Path::new(REGISTRY).exists(),
        "{REGISTRY} is missing: install Debian's docker-registry (scripts/deps.sh does)"
    );
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
        dir.join("registry").display()
    );
    std::fs::write(dir.join("registry.yml"), config).expect("registry config");
    format!(
        "{{ {REGISTRY} serve {cfg} >{log} 2>&1 & echo $! >{pid}; }} && ",
        cfg = dir.join("registry.yml").display(),
        log = dir.join("registry.log").display(),
        pid = dir.join("registry.pid").display(),
    )
}

const REGISTRY: &str = "/usr/bin/docker-registry";

impl Daemon {
    /// Polls `GET /_ping` until the daemon answers OK, within `limit`; fails at once, with its
    /// log, if it exits.
    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ping(&self.socket) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.dir.as_ref().map(|d| d.path().join("log"));
                let log = log.and_then(|l| std::fs::read_to_string(l).ok());
                panic!(
                    "the daemon exited ({status}) before answering /_ping:\n{}",
                    log.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the daemon did not answer /_ping on {} within {limit:?}",
            self.socket.display()
        );
    }
}

/// One HTTP/1.0 request written by hand: the test's readiness probe only.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: berth\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers first, so that no shim keeps the namespace or a mount alive.
        let ids = self.berth(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        let dir = self.dir.take().expect("dir");
        for pidfile in ["registry.pid", "d.pid"] {
            let pid = std::fs::read_to_string(dir.path().join(pidfile)).ok();
            if let Some(pid) = pid.and_then(|p| p.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        if !wait_child(&mut self.child, Duration::from_secs(30)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let path = dir.path().to_owned();
        if let Err(e) = dir.close() {
            let _ = Command::new("umount")
                .args(["-R", "-l"])
                .arg(path.join("root"))
                .status();
            let _ = std::fs::remove_dir_all(&path);
            eprintln!("note: cleaning {} needed a second try: {e}", path.display());
        }
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Imports a busybox root filesystem as `image`.
fn import_busybox(d: &Daemon, image: &str) {
    import_busybox_with(d, image, &[]);
}

/// `dir`'s content as the tar archive `tar`.
fn tar_of(dir: &Path, tar: &Path) -> PathBuf {
    let tarred = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(tarred.success(), "tar failed");
    tar.to_path_buf()
}

/// `import` with extra flags (such as `--change`).
fn import_busybox_with(d: &Daemon, image: &str, flags: &[&str]) {
    let work = tempfile::tempdir().expect("tempdir");
    let rootfs = work.path().join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let made = Command::new(script)
        .arg(&rootfs)
        .stdout(Stdio::null())
        .status()
        .expect("busybox-rootfs.sh");
    assert!(made.success(), "busybox-rootfs.sh failed");
    let tar = tar_of(&rootfs, &work.path().join("rootfs.tar"));
    let mut args = vec!["import"];
    args.extend_from_slice(flags);
    args.extend([tar.to_str().expect("utf-8 path"), image]);
    let out = d.ok(&args);
    assert!(out.trim().starts_with("sha256:"), "import printed {out:?}");
}

/// Retries `check` until it holds, within `limit` (for output a container writes in its own time).
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn unreachable_daemon_is_one_line() {
    let out = Command::new(BERTH)
        .args(["-H", "unix:///nonexistent/berth.sock", "ps"])
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cannot reach the berth daemon at /nonexistent/berth.sock: start it with `berth daemon` or set BERTH_HOST\n"
    );
    let out = Command::new(BERTH)
        .args(["run", "-p", "99999:1", "img"])
        .output()
        .expect("run berth");
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn against_a_daemon() {
    let d = start_daemon();
    import_busybox(&d, "bb:test");
    run_flows(&d);
    detached_lifecycle(&d);
    more_container_verbs(&d);
    images_and_system(&d);
    listings(&d);
    networks_and_volumes(&d);
    limits_bite(&d);
    connect_and_disconnect(&d);
    restart_policies_and_log_rotation(&d);
    image_config_from_import(&d);
    init_reaps_and_forwards(&d);
    machine_container(&d);
    registry_flows(&d);
}

/// The file `name` of the container's cgroup for `controller` (v1, as on this host, or
/// the v2 hierarchy when there is no v1 one).
fn cgroup_file(pid: &str, controller: &str, name: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let v1 = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| format!("/sys/fs/cgroup/{controllers}{path}/{name}"))
    });
    let path = v1.unwrap_or_else(|| {
        let path = cgroups
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("v2");
        format!("/sys/fs/cgroup{path}/{name}")
    });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn status_field(pid: &str, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in status"))
        .trim()
        .to_string()
}

/// `import --change` sets the image's run configuration, which containers take: its
/// command, environment, working directory, and with `-P` its exposed port.
fn image_config_from_import(d: &Daemon) {
    import_busybox_with(
        d,
        "web:ports",
        &[
            "-c",
            "EXPOSE 80",
            "-c",
            r#"CMD ["httpd", "-f", "-p", "80", "-h", "/etc"]"#,
            "-c",
            "ENV GREETING=hi",
            "-c",
            "WORKDIR /etc",
        ],
    );
    let exposed = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}}",
        "web:ports",
    ]);
    assert_eq!(exposed, "{\"80/tcp\":{}}\n");
    d.ok(&["run", "-d", "--name", "pa", "-P", "web:ports"]);
    let ports = d.ok(&["ps", "--filter", "name=pa", "--format", "{{.Ports}}"]);
    assert!(ports.contains("->80/tcp"), "-P published {ports:?}");
    assert_eq!(
        d.ok(&["exec", "pa", "sh", "-c", "echo $GREETING; pwd"]),
        "hi\n/etc\n"
    );
    d.ok(&["rm", "-f", "pa"]);
    d.ok(&["rmi", "web:ports"]);
    let bad = d.berth(&["import", "-c", "RUN true", "/dev/null", "x:y"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid --change"));
}

/// on-failure:N restarts N times; always restarts until stopped; json-file logs rotate by
/// size and keep max-file files, and `logs` reads across them.
fn restart_policies_and_log_rotation(d: &Daemon) {
    let state = "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "bb:test",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert!(
        eventually(Duration::from_secs(30), || {
            d.ok(&["inspect", "-f", state, "flaky"]) == "2 exited 3\n"
        }),
        "on-failure:2 ended as {}",
        d.ok(&["inspect", "-f", state, "flaky"])
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        "bb:test",
        "true",
    ]);
    assert!(eventually(Duration::from_secs(30), || {
        let count = d.ok(&["inspect", "-f", "{{.RestartCount}}", "again"]);
        count.trim().parse::<u32>().unwrap_or(0) >= 2
    }));
    d.ok(&["stop", "-t", "1", "again"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "again"]),
        "exited\n"
    );
    d.ok(&["rm", "-f", "flaky", "again"]);

    d.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "bb:test",
        "sh",
        "-c",
        "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    assert_eq!(d.ok(&["wait", "chatty"]), "0\n");
    let path = d.ok(&["inspect", "-f", "{{.LogPath}}", "chatty"]);
    let path = std::path::PathBuf::from(path.trim());
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let older = path.with_extension("log.1");
    assert!(older.exists(), "no rotated file {}", older.display());
    assert!(
        !path.with_extension("log.2").exists(),
        "more than max-file files"
    );
    assert!(
        size(&path) <= 2000 && size(&older) <= 2100,
        "files past max-size"
    );
    let logs = d.ok(&["logs", "chatty"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.last(), Some(&"line-499"));
    assert!(
        lines.len() < 500 && lines.len() > 20,
        "{} lines kept",
        lines.len()
    );
    let first: usize = lines[0]
        .trim_start_matches("line-")
        .parse()
        .expect("line number");
    let expected: Vec<String> = (first..500).map(|i| format!("line-{i}")).collect();
    assert_eq!(
        lines, expected,
        "the kept lines are not the last ones in order"
    );
    let bad = d.berth(&[
        "run",
        "--rm",
        "--log-opt",
        "max-size=lots",
        "bb:test",
        "true",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid --log-opt"));
    d.ok(&["rm", "chatty"]);
}

/// `network connect` joins a running container to another network (and again after a
/// restart); `network disconnect` takes it off.
fn connect_and_disconnect(d: &Daemon) {
    d.ok(&["network", "create", "na"]);
    d.ok(&["network", "create", "nb"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "nb",
        "bb:test",
        "sh",
        "-c",
        "echo hi > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cl",
        "--network",
        "na",
        "bb:test",
        "sleep",
        "300",
    ]);
    let fetch = || d.berth(&["exec", "cl", "wget", "-qO-", "http://srv/"]);
    assert!(!fetch().status.success(), "reached srv across networks");
    d.ok(&["network", "connect", "--alias", "back", "nb", "cl"]);
    assert!(eventually(Duration::from_secs(20), || fetch()
        .status
        .success()));
    assert_eq!(String::from_utf8_lossy(&fetch().stdout), "hi\n");
    // The alias names cl on nb, where srv can look it up.
    let resolves = || {
        d.berth(&["exec", "srv", "nslookup", "back"])
            .status
            .success()
    };
    assert!(resolves(), "the alias given at connect does not resolve");
    let count = "{{len .NetworkSettings.Networks}}";
    assert_eq!(d.ok(&["inspect", "-f", count, "cl"]), "2\n");
    d.ok(&["restart", "-t", "1", "cl"]);
    assert!(eventually(Duration::from_secs(20), || fetch()
        .status
        .success()));
    assert!(resolves(), "the alias is gone after a restart");
    let again = d.berth(&["network", "connect", "nb", "cl"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already connected"));
    d.ok(&["network", "disconnect", "nb", "cl"]);
    assert!(!fetch().status.success(), "reached srv after disconnect");
    assert!(!resolves(), "the alias outlived the disconnect");
    assert_eq!(d.ok(&["inspect", "-f", count, "cl"]), "1\n");
    d.ok(&["rm", "-f", "srv", "cl"]);
    d.ok(&["network", "rm", "na", "nb"]);
}

/// `--init`: the program is not PID 1; orphans are reaped; SIGTERM reaches the program.
fn init_reaps_and_forwards(d: &Daemon) {
    let pid = d.ok(&["run", "--rm", "--init", "bb:test", "sh", "-c", "echo $$"]);
    assert_ne!(pid.trim(), "1", "the program ran as PID 1 under --init");
    // The inner shell leaves an orphan `sleep 1`; only a reaping PID 1 makes it vanish
    // rather than stay a zombie under `sleep 300`.
    d.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "zz",
        "bb:test",
        "sh",
        "-c",
        "sh -c 'sleep 1 &'; exec sleep 300",
    ]);
    assert!(eventually(Duration::from_secs(20), || {
        let ps = d.ok(&["exec", "zz", "ps", "-o", "stat,args"]);
        ps.lines().filter(|l| l.contains("sleep")).count() == 1
    }));
    // sleep as PID 1 would ignore SIGTERM and be killed (137) after the timeout; under the
    // init it gets the signal and dies of it (128 + 15).
    d.ok(&["stop", "-t", "30", "zz"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "zz"]),
        "143\n"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Init}}", "zz"]),
        "true\n"
    );
    d.ok(&["rm", "zz"]);
}

/// An image that boots the host's systemd: its own /etc and the merged-/usr links, with the
/// host's /usr bound in at run time (no systemd image can be pulled here). `/sbin` is a
/// directory whose `init` links to systemd, as Debian's systemd-sysv makes it.
fn import_systemd_image(d: &Daemon, image: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("rootfs");
    for dir in [
        "etc", "usr", "sbin", "var/log", "run", "tmp", "proc", "sys", "dev", "root",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    for link in ["bin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), root.join(link)).expect("symlink");
    }
    std::os::unix::fs::symlink("/lib/systemd/systemd", root.join("sbin/init")).expect("init");
    std::fs::copy("/usr/lib/os-release", root.join("etc/os-release")).expect("os-release");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");
    std::fs::write(root.join("etc/machine-id"), "").expect("machine-id");
    let tar = tar_of(&root, &work.path().join("rootfs.tar"));
    d.ok(&["import", tar.to_str().expect("utf-8 path"), image]);
}

/// A machine container: systemd as PID 1 boots to "running" with no failed unit, puts its
/// services in cgroups of its own, and halts cleanly on `stop` (SIGRTMIN+3: SIGTERM would
/// make it re-execute itself, and the stop would end in SIGKILL, 137).
fn machine_container(d: &Daemon) {
    import_systemd_image(d, "machine:test");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "machine",
        "-v",
        "/usr:/usr:ro",
        "machine:test",
        "/sbin/init",
    ]);
    let mut state = String::new();
    let booted = eventually(Duration::from_secs(90), || {
        let out = d.berth(&["exec", "machine", "systemctl", "is-system-running"]);
        state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // "offline": its manager's socket is not up yet.
        !matches!(state.as_str(), "" | "offline" | "initializing" | "starting")
    });
    let failed = d.berth(&["exec", "machine", "systemctl", "--failed", "--no-legend"]);
    assert!(
        booted && state == "running",
        "systemd is {state:?}; failed units: {}",
        String::from_utf8_lossy(&failed.stdout)
    );
    let cgroup = d.ok(&["exec", "machine", "cat", "/proc/1/cgroup"]);
    assert!(cgroup.contains("name=systemd:/init.scope"), "{cgroup}");
    let services = d.ok(&[
        "exec",
        "machine",
        "ls",
        "/sys/fs/cgroup/systemd/system.slice",
    ]);
    assert!(services.contains("systemd-journald.service"), "{services}");
    // The controllers berth limits stay read-only.
    let out = d.berth(&["exec", "machine", "mkdir", "/sys/fs/cgroup/memory/escape"]);
    assert!(!out.status.success(), "the memory hierarchy is writable");
    d.ok(&["stop", "-t", "60", "machine"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "machine"]),
        "0\n"
    );
    d.ok(&["rm", "machine"]);
    d.ok(&["rmi", "machine:test"]);
}

/// Resource limits land in the container's cgroups and process; seccomp and
/// no-new-privileges as asked; a host device appears and works.
fn limits_bite(d: &Daemon) {
    d.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "20",
        "--ulimit",
        "nofile=256:512",
        "--shm-size",
        "8m",
        "--device",
        "/dev/null:/dev/mynull:rw",
        "bb:test",
        "sleep",
        "300",
    ]);
    let pid = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "lim"])
        .trim()
        .to_string();
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert_eq!(
            cgroup_file(&pid, "memory", "memory.limit_in_bytes"),
            "33554432"
        );
        assert_eq!(cgroup_file(&pid, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup_file(&pid, "cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(cgroup_file(&pid, "cpu", "cpu.shares"), "512");
    } else {
        assert_eq!(cgroup_file(&pid, "", "memory.max"), "33554432");
        assert_eq!(cgroup_file(&pid, "", "cpu.max"), "50000 100000");
    }
    assert_eq!(cgroup_file(&pid, "pids", "pids.max"), "20");
    assert_eq!(
        d.ok(&["exec", "lim", "sh", "-c", "ulimit -n; ulimit -Hn"]),
        "256\n512\n"
    );
    let shm = d.ok(&["exec", "lim", "df", "-k", "/dev/shm"]);
    assert!(shm.contains(" 8192 "), "{shm}");
    d.ok(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "test -c /dev/mynull && echo x > /dev/mynull",
    ]);
    // update: raised and lowered in place (memory above the old swap limit needs the swap
    // raised first), a limit removed, and a refused change leaves everything as it was.
    d.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--cpus",
        "1",
        "--pids-limit",
        "30",
        "lim",
    ]);
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert_eq!(
            cgroup_file(&pid, "memory", "memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(
            cgroup_file(&pid, "memory", "memory.memsw.limit_in_bytes"),
            "134217728"
        );
        assert_eq!(cgroup_file(&pid, "cpu", "cpu.cfs_quota_us"), "100000");
    } else {
        assert_eq!(cgroup_file(&pid, "", "memory.max"), "67108864");
        assert_eq!(cgroup_file(&pid, "", "cpu.max"), "100000 100000");
    }
    assert_eq!(cgroup_file(&pid, "pids", "pids.max"), "30");
    d.ok(&[
        "update",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        "--pids-limit",
        "-1",
        "lim",
    ]);
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert_eq!(
            cgroup_file(&pid, "memory", "memory.limit_in_bytes"),
            "16777216"
        );
    }
    assert_eq!(cgroup_file(&pid, "pids", "pids.max"), "max");
    let out = d.berth(&["update", "--memory", "1k", "lim"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 6MB"), "{err}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "lim"]),
        "16777216\n"
    );
    // Docker's defaults: a seccomp filter, setuid programs allowed.
    assert_eq!(status_field(&pid, "Seccomp"), "2");
    assert_eq!(status_field(&pid, "NoNewPrivs"), "0");
    // Making a user namespace needs no capability, only the profile's consent.
    let out = d.berth(&["exec", "lim", "unshare", "-U", "true"]);
    assert!(
        !out.status.success(),
        "unshare -U passed the default profile"
    );
    d.ok(&["rm", "-f", "lim"]);

    d.ok(&[
        "run",
        "-d",
        "--name",
        "free",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
        "bb:test",
        "sleep",
        "300",
    ]);
    let pid = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "free"])
        .trim()
        .to_string();
    assert_eq!(status_field(&pid, "Seccomp"), "0");
    assert_eq!(status_field(&pid, "NoNewPrivs"), "1");
    d.ok(&["exec", "free", "unshare", "-U", "true"]);
    d.ok(&["rm", "-f", "free"]);

    // Mounting needs CAP_SYS_ADMIN, which the default profile then lets through.
    let mount = "mount -t tmpfs t /tmp && echo mounted";
    for extra in ["--privileged", "--cap-add=SYS_ADMIN"] {
        let out = d.ok(&["run", "--rm", extra, "bb:test", "sh", "-c", mount]);
        assert_eq!(out, "mounted\n", "{extra}");
    }
    let out = d.berth(&["run", "--rm", "bb:test", "sh", "-c", mount]);
    assert!(!out.status.success(), "mounted without CAP_SYS_ADMIN");
    // The default profile allows personality(2) for the 32-bit Linux personality only by
    // its argument: the rule with conditions must let it through.
    assert_eq!(
        d.ok(&["run", "--rm", "bb:test", "linux32", "uname", "-m"]),
        "i686\n"
    );

    // A profile in Docker's format naming syscalls newer than this libseccomp (podman's,
    // installed with it) loads: such names are skipped, as runc skips them.
    let podman_profile = "seccomp=/usr/share/containers/seccomp.json";
    let out = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        podman_profile,
        "bb:test",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(out, "Seccomp:\t2\n");

    // Bad input: one line, nothing created.
    for (flag, value, says) in [
        ("--ulimit", "bogus=1:2", "unknown --ulimit"),
        (
            "--device",
            "/dev/no-such-device",
            "--device /dev/no-such-device",
        ),
        ("--security-opt", "apparmor=x", "invalid --security-opt"),
        ("--memory", "1k", "at least 6MB"),
    ] {
        let out = d.berth(&["run", "--rm", flag, value, "bb:test", "true"]);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

fn registry_flows(d: &Daemon) {
    let server = "127.0.0.1:5000";
    // Logging in asks the registry, so it also waits for it to be up.
    let logged_in = eventually(Duration::from_secs(30), || {
        d.berth_stdin(&["login", "-u", "u", "--password-stdin", server], "pw\n")
            .status
            .success()
    });
    assert!(logged_in, "login to the test registry never succeeded");
    let config = std::fs::read_to_string(d.home().join(".berth/config.json")).expect("config.json");
    let config: serde_json::Value = serde_json::from_str(&config).expect("config.json is JSON");
    assert_eq!(
        config["auths"][server]["auth"], "dTpwdw==",
        "base64 of u:pw"
    );
    let image = format!("{server}/bb:test");
    d.ok(&["tag", "bb:test", &image]);
    let pushed = d.ok(&["push", &image]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    d.ok(&["rmi", &image]);
    assert!(d.ok(&["pull", &image]).contains("Downloaded newer image"));
    d.ok(&["rmi", &image]);
    let out = d.berth(&["run", "--rm", &image, "echo", "pulled"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pulled\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to find image"));
    assert!(d
        .ok(&["logout", server])
        .starts_with("Removing login credentials"));
}

fn run_flows(d: &Daemon) {
    // The daemon ignores SIGPIPE: a write to a pipe or socket whose reader left (a shim that
    // exited early, a client gone) fails with EPIPE instead of killing it.
    let ignored = u64::from_str_radix(&status_field(&d.pid(), "SigIgn"), 16).unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SigIgn {ignored:x}"
    );
    assert_eq!(d.ok(&["run", "--rm", "bb:test", "echo", "hi"]), "hi\n");
    let out = d.berth(&[
        "run",
        "--rm",
        "bb:test",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = d.berth_stdin(&["run", "-i", "--rm", "bb:test", "cat"], "through stdin\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    let out = d.berth(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-h",
        "box",
        "bb:test",
        "sh",
        "-c",
        "echo $A $(pwd) $(hostname)",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 /tmp box\n");
    let out = d.berth(&["run", "--rm", "bb:test", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    let out = d.berth(&["run", "--rm", "no-such-image-here"]);
    assert_eq!(out.status.code(), Some(125));
    // It looked for the image, tried to pull it, and says why that failed.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unable to find image") && err.contains("registry"),
        "{err}"
    );
}

fn detached_lifecycle(d: &Daemon) {
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "bb:test",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d printed {id:?}");
    assert!(eventually(Duration::from_secs(10), || d
        .ok(&["logs", "web"])
        == "started\n"));
    assert_eq!(
        d.ok(&["exec", "-e", "X=5", "web", "sh", "-c", "echo $X"]),
        "5\n"
    );
    assert_eq!(
        d.berth(&["exec", "web", "sh", "-c", "exit 4"])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]), "web\n");
    assert_eq!(d.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "running\n"
    );
    assert_eq!(d.ok(&["stop", "-t", "1", "web"]), "web\n");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "exited\n"
    );
    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]), "");
    assert_eq!(d.ok(&["rm", "web"]), "web\n");
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]), "");
    let out = d.berth(&["rm", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Error response from daemon: "));
}

fn more_container_verbs(d: &Daemon) {
    assert_eq!(
        d.ok(&["run", "--rm", "-t", "bb:test", "echo", "hi"]),
        "hi\r\n"
    );
    let out = d.berth(&["run", "-it", "--rm", "bb:test", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a TTY"));
    d.ok(&[
        "create",
        "--name",
        "c1",
        "bb:test",
        "sh",
        "-c",
        "echo from-c1; exit 2",
    ]);
    let out = d.berth(&["start", "-a", "c1"]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(2), "from-c1\n")
    );
    assert_eq!(d.ok(&["wait", "c1"]), "2\n");
    assert_eq!(d.ok(&["logs", "--tail", "1", "c1"]), "from-c1\n");
    d.ok(&["rm", "c1"]);
    d.ok(&["run", "-d", "--name", "c2", "bb:test", "sleep", "300"]);
    d.ok(&["exec", "-d", "c2", "touch", "/tmp/made"]);
    assert!(eventually(Duration::from_secs(10), || d
        .berth(&["exec", "c2", "test", "-e", "/tmp/made"])
        .status
        .success()));
    assert!(d.ok(&["top", "c2"]).contains("sleep 300"));
    d.ok(&["pause", "c2"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "c2"]),
        "paused\n"
    );
    d.ok(&["unpause", "c2"]);
    d.ok(&["rename", "c2", "c3"]);
    assert_eq!(d.ok(&["kill", "c3"]), "c3\n");
    assert_eq!(d.ok(&["wait", "c3"]), "137\n");
    d.ok(&["rm", "c3"]);
}

fn images_and_system(d: &Daemon) {
    assert_eq!(d.ok(&["inspect", "-f", "{{.Os}}", "bb:test"]), "linux\n");
    let archive = d.home().join("bb.tar");
    let archive = archive.to_str().expect("utf-8 path");
    d.ok(&["save", "-o", archive, "bb:test"]);
    d.ok(&["tag", "bb:test", "bb:copy"]);
    assert_eq!(d.ok(&["rmi", "bb:copy"]), "Untagged: bb:copy\n");
    assert!(d.ok(&["load", "-i", archive]).contains("bb:test"));
    assert!(!d
        .ok(&["version", "--format", "{{.Server.ApiVersion}}"])
        .trim()
        .is_empty());
    assert_eq!(d.ok(&["info", "--format", "{{.Images}}"]), "1\n");
    let events = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "type=container",
    ]);
    assert!(events.contains(" container create "), "{events}");
    assert!(d.ok(&["system", "df"]).starts_with("TYPE"));
}

fn listings(d: &Daemon) {
    let images = d.ok(&["images"]);
    let mut lines = images.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert!(
        lines.any(|l| l.starts_with("bb ") && l.contains(" test ")),
        "{images}"
    );
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "bb:test\n"
    );
    assert_eq!(d.ok(&["images", "-q"]).trim().len(), 12);
    assert_eq!(d.ok(&["image", "ls", "--format", "{{.Tag}}"]), "test\n");
    d.ok(&[
        "container",
        "create",
        "--name",
        "stopped",
        "bb:test",
        "true",
    ]);
    assert_eq!(
        d.ok(&["container", "ls", "-a", "--format", "{{.Names}}"]),
        "stopped\n"
    );
    assert!(d
        .ok(&["container", "prune", "-f"])
        .starts_with("Deleted Containers:"));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

/// run's flags as the daemon recorded them, and a named volume that outlives its container.
fn flags_reach_the_daemon(d: &Daemon) {
    let run = [
        "run",
        "-d",
        "--name",
        "flags",
        "--network",
        "n1",
        "--network-alias",
        "al",
        "-p",
        "127.0.0.1:8080:80",
        "-v",
        "vol1:/data",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "-l",
        "k=v",
        "--restart",
        "on-failure:2",
        "--cap-drop",
        "ALL",
        "--read-only",
        "bb:test",
        "sh",
        "-c",
        "echo kept > /data/f; exec sleep 300",
    ];
    d.ok(&run);
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Ports}} {{.Labels}}"]),
        "127.0.0.1:8080->80/tcp k=v\n"
    );
    let template = "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} \
        {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}} \
        {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{index .NetworkSettings.Networks.n1.Aliases 0}}";
    assert_eq!(
        d.ok(&["inspect", "-f", template, "flags"]),
        "67108864 500000000 50 on-failure:2 true [ALL] al\n"
    );
    let out = d.berth(&["exec", "flags", "touch", "/x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));
    assert!(eventually(Duration::from_secs(10), || {
        d.berth(&["exec", "flags", "test", "-e", "/data/f"])
            .status
            .success()
    }));
    d.ok(&["rm", "-f", "flags"]);
    assert_eq!(
        d.ok(&["run", "--rm", "-v", "vol1:/v:ro", "bb:test", "cat", "/v/f"]),
        "kept\n"
    );

    // --mount and --tmpfs land as mounts; --stop-signal, --stop-timeout and --dns in its
    // config.
    let host_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(host_dir.path().join("f"), "from the host\n").expect("write");
    let bind = format!(
        "type=bind,src={},dst=/h,readonly",
        host_dir.path().display()
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "mounts",
        "--mount",
        &bind,
        "--mount",
        "type=volume,source=vol1,target=/v",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "--tmpfs",
        "/scratch:size=2m",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "7",
        "--dns",
        "10.9.9.9",
        "bb:test",
        "sleep",
        "300",
    ]);
    assert_eq!(
        d.ok(&["exec", "mounts", "cat", "/h/f", "/v/f"]),
        "from the host\nkept\n"
    );
    let out = d.berth(&["exec", "mounts", "touch", "/h/new"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));
    let df = d.ok(&["exec", "mounts", "df", "-k", "/t", "/scratch"]);
    let sizes: Vec<&str> = df
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(sizes, ["1024", "2048"], "{df}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.Config.StopSignal}} {{.Config.StopTimeout}}",
            "mounts"
        ]),
        "SIGUSR1 7\n"
    );
    assert!(d
        .ok(&["exec", "mounts", "cat", "/etc/resolv.conf"])
        .contains("nameserver 10.9.9.9"));
    d.ok(&["rm", "-f", "mounts"]);
    assert_eq!(d.ok(&["volume", "rm", "vol1"]), "vol1\n");

    // An unknown flag is named as one, not taken for an image.
    let out = d.berth(&["run", "--no-such-flag", "bb:test", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown flag: --no-such-flag"));
}

fn networks_and_volumes(d: &Daemon) {
    let id = d.ok(&["network", "create", "--subnet", "10.231.0.0/24", "n1"]);
    assert_eq!(id.trim().len(), 64);
    assert!(d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "n1"));
    let ipam = d.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "n1"]);
    assert!(ipam.contains("10.231.0.0/24"), "{ipam}");
    flags_reach_the_daemon(d);
    assert_eq!(d.ok(&["network", "rm", "n1"]), "n1\n");
    assert!(!d.ok(&["network", "ls"]).contains(" n1 "));
    assert_eq!(d.ok(&["volume", "create", "v1"]), "v1\n");
    assert!(d.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "v1"));
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "v1"]),
        "v1 local\n"
    );
    assert_eq!(d.ok(&["volume", "rm", "v1"]), "v1\n");
    assert!(!d.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "v1"));
}
