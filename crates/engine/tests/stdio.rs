//! Containers' and execs' stdio through the engine, with real busybox containers: attaching
//! before the start, stdin, terminals and their size, exec with and without a terminal, and
//! clients that go away or never read.

mod common;

use berth_engine::attach::Decoder;
use berth_engine::logs::{Query, Stream};
use berth_engine::{AttachOptions, Attachment, Config, Engine, Error, ExecConfig};
use common::{config, World};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn all() -> AttachOptions {
    AttachOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        logs: false,
        stream: true,
    }
}

/// Reads the attachment to its end.
async fn read_all(a: &mut Attachment) -> Vec<u8> {
    let mut out = Vec::new();
    a.stream.read_to_end(&mut out).await.unwrap();
    out
}

/// Reads raw (terminal) output until it contains `needle`.
async fn read_until(a: &mut Attachment, needle: &str) -> String {
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(needle) {
        let mut buf = [0u8; 256];
        let n = a.stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the output ended before {needle:?}: {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

/// Splits framed output into what went to stdout and what went to stderr.
fn demux(bytes: &[u8]) -> (String, String) {
    let mut d = Decoder::new();
    d.push(bytes);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((stream, payload)) = d.next_frame().unwrap() {
        match stream {
            Stream::Stdout => out.extend(payload),
            Stream::Stderr => err.extend(payload),
        }
    }
    assert_eq!(d.pending(), 0, "a frame was cut short");
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn interactive(rootfs: &std::path::Path, cmd: &[&str], tty: bool) -> Config {
    Config {
        tty,
        open_stdin: true,
        stdin_once: true,
        ..config(rootfs, "none", cmd)
    }
}

#[test]
fn attach_before_start_sees_all_output_with_streams_apart() {
    World::new().run(|engine, _, rootfs| async move {
        let cmd = ["sh", "-c", "echo out; echo err >&2; echo more"];
        engine
            .create(Some("echo"), config(&rootfs, "none", &cmd))
            .await
            .unwrap();
        let options = AttachOptions {
            stdin: false,
            ..all()
        };
        let mut a = engine.attach("echo", options).await.unwrap();
        assert!(!a.tty);
        engine.start("echo").await.unwrap();
        let (out, err) = demux(&read_all(&mut a).await);
        assert_eq!((out.as_str(), err.as_str()), ("out\nmore\n", "err\n"));
        assert_eq!(engine.wait("echo").await.unwrap(), 0);
        // The log has it all too.
        let logged: String = engine
            .logs("echo", &Query::default())
            .unwrap()
            .into_iter()
            .map(|e| e.log)
            .collect();
        assert_eq!(logged.len(), "out\nerr\nmore\n".len());
        engine
    });
}

#[test]
fn stdin_through_an_attachment_reaches_cat_and_the_exit_code_comes_back() {
    World::new().run(|engine, _, rootfs| async move {
        let cmd = ["sh", "-c", "cat; echo done >&2; exit 5"];
        engine
            .create(Some("cat"), interactive(&rootfs, &cmd, false))
            .await
            .unwrap();
        let mut a = engine.attach("cat", all()).await.unwrap();
        engine.start("cat").await.unwrap();
        a.stream.write_all(b"hello\nworld\n").await.unwrap();
        // The client is done writing: with stdin_once the container's stdin closes.
        a.stream.shutdown().await.unwrap();
        let (out, err) = demux(&read_all(&mut a).await);
        assert_eq!((out.as_str(), err.as_str()), ("hello\nworld\n", "done\n"));
        assert_eq!(engine.wait("cat").await.unwrap(), 5);
        engine
    });
}

#[test]
fn a_running_container_takes_attachments_on_its_socket() {
    World::new().run(|engine, settings, rootfs| async move {
        let cmd = ["sh", "-c", "read line; echo \"got:$line\""];
        let c = Config {
            stdin_once: false,
            ..interactive(&rootfs, &cmd, false)
        };
        engine.create(Some("later"), c).await.unwrap();
        let c = engine.start("later").await.unwrap();
        // Clients that say nonsense, or nothing, are no one's business but their own.
        let socket = settings
            .run_root
            .join("sockets")
            .join(format!("c-{}.sock", &c.id[..16]));
        let mut nonsense = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        std::io::Write::write_all(&mut nonsense, b"{not json\n").unwrap();
        let _silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let mut a = engine.attach("later", all()).await.unwrap();
        a.stream.write_all(b"late\n").await.unwrap();
        let (out, _) = demux(&read_all(&mut a).await);
        assert_eq!(out, "got:late\n");
        assert_eq!(engine.wait("later").await.unwrap(), 0);
        // Attaching to a stopped container waits for its next start, with the log first.
        let replay = AttachOptions {
            logs: true,
            stream: false,
            ..all()
        };
        let mut a = engine.attach("later", replay).await.unwrap();
        let (out, _) = demux(&read_all(&mut a).await);
        assert_eq!(out, "got:late\n");
        engine
    });
}

#[test]
fn a_terminal_container_is_driven_through_its_attachment_and_resized() {
    World::new().run(|engine, _, rootfs| async move {
        let cmd = [
            "sh",
            "-c",
            "stty size; read line; echo \"got:$line\"; stty size; tty; exit 3",
        ];
        engine
            .create(Some("term"), interactive(&rootfs, &cmd, true))
            .await
            .unwrap();
        let mut a = engine.attach("term", all()).await.unwrap();
        assert!(a.tty);
        // A size set before the start is the terminal's from the first byte.
        engine.resize("term", 20, 60).await.unwrap();
        engine.start("term").await.unwrap();
        let first = read_until(&mut a, "\n").await;
        assert_eq!(first, "20 60\r\n");
        engine.resize("term", 40, 100).await.unwrap();
        a.stream.write_all(b"hi\n").await.unwrap();
        let out = String::from_utf8(read_all(&mut a).await).unwrap();
        assert!(out.contains("got:hi"), "{out:?}");
        assert!(out.contains("40 100"), "{out:?}");
        assert!(out.contains("/dev/pts/"), "{out:?}");
        assert_eq!(engine.wait("term").await.unwrap(), 3);
        let logged: String = engine
            .logs("term", &Query::default())
            .unwrap()
            .into_iter()
            .map(|e| e.log)
            .collect();
        assert!(logged.contains("got:hi"), "{logged:?}");
        let plain = config(&rootfs, "none", &["true"]);
        engine.create(Some("plain"), plain).await.unwrap();
        let err = engine.resize("plain", 1, 1).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        engine
    });
}

fn exec_config(cmd: &[&str], tty: bool) -> ExecConfig {
    ExecConfig {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        attach_stdin: tty,
        attach_stdout: true,
        attach_stderr: true,
        ..Default::default()
    }
}

async fn sleeper(engine: &Engine, rootfs: &std::path::Path, name: &str) {
    engine
        .create(Some(name), config(rootfs, "none", &["sleep", "1000"]))
        .await
        .unwrap();
    engine.start(name).await.unwrap();
}

#[test]
fn an_exec_runs_with_its_streams_apart_and_reports_its_exit_code() {
    World::new().run(|engine, _, rootfs| async move {
        sleeper(&engine, &rootfs, "host").await;
        let cmd = ["sh", "-c", "echo out; echo err >&2; hostname; exit 3"];
        let id = engine
            .create_exec("host", exec_config(&cmd, false))
            .await
            .unwrap();
        assert_eq!(id.len(), 64);
        let before = engine.inspect_exec(&id).await.unwrap();
        assert!(!before.running && before.exit_code.is_none());
        let mut a = engine.start_exec(&id, false).await.unwrap().unwrap();
        let (out, err) = demux(&read_all(&mut a).await);
        let c = engine.inspect("host").await.unwrap();
        assert_eq!(out, format!("out\n{}\n", c.short_id()));
        assert_eq!(err, "err\n");
        let info = engine.inspect_exec(&id).await.unwrap();
        assert_eq!((info.running, info.exit_code), (false, Some(3)));
        assert_eq!(info.container_id, c.id);
        let again = engine.start_exec(&id, false).await.unwrap_err();
        assert!(matches!(again, Error::Conflict(_)), "{again}");
        let missing = engine.inspect_exec("nope").await.unwrap_err();
        assert!(matches!(missing, Error::NoSuchExec(_)), "{missing}");
        // The exec's own user, working directory and environment.
        let who = ExecConfig {
            user: Some("nobody".into()),
            workdir: Some("/tmp".into()),
            env: vec!["GREETING=hi".into()],
            ..exec_config(
                &["sh", "-c", "echo $(id -u):$(id -g) $PWD $GREETING"],
                false,
            )
        };
        let id = engine.create_exec("host", who).await.unwrap();
        let mut a = engine.start_exec(&id, false).await.unwrap().unwrap();
        let (out, _) = demux(&read_all(&mut a).await);
        assert_eq!(out, "65534:65534 /tmp hi\n");
        let unknown = ExecConfig {
            user: Some("ghost".into()),
            ..exec_config(&["true"], false)
        };
        let id = engine.create_exec("host", unknown).await.unwrap();
        let err = engine.start_exec(&id, false).await.unwrap_err();
        assert!(err.to_string().contains("ghost"), "{err}");
        // A detached exec gives no attachment; its end is found by inspecting it.
        let quiet = ExecConfig {
            attach_stdout: false,
            attach_stderr: false,
            ..exec_config(&["sh", "-c", "exit 4"], false)
        };
        let id = engine.create_exec("host", quiet).await.unwrap();
        assert!(engine.start_exec(&id, true).await.unwrap().is_none());
        engine
    });
}

#[test]
fn an_exec_with_a_terminal_reads_input_and_follows_resizes() {
    World::new().run(|engine, _, rootfs| async move {
        sleeper(&engine, &rootfs, "host").await;
        let cmd = ["sh", "-c", "read l; echo \"got:$l\"; stty size; exit 2"];
        let id = engine
            .create_exec("host", exec_config(&cmd, true))
            .await
            .unwrap();
        let mut a = engine.start_exec(&id, false).await.unwrap().unwrap();
        assert!(a.tty);
        engine.resize_exec(&id, 30, 90).await.unwrap();
        a.stream.write_all(b"x\n").await.unwrap();
        let out = String::from_utf8(read_all(&mut a).await).unwrap();
        assert!(out.contains("got:x"), "{out:?}");
        assert!(out.contains("30 90"), "{out:?}");
        let info = engine.inspect_exec(&id).await.unwrap();
        assert_eq!(info.exit_code, Some(2));
        engine
    });
}

#[test]
fn exec_in_a_container_that_is_not_running_is_refused() {
    World::new().run(|engine, _, rootfs| async move {
        engine
            .create(Some("idle"), config(&rootfs, "none", &["true"]))
            .await
            .unwrap();
        let err = engine
            .create_exec("idle", exec_config(&["true"], false))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("not running"), "{err}");
        engine.start("idle").await.unwrap();
        engine.wait("idle").await.unwrap();
        let err = engine
            .create_exec("idle", exec_config(&["true"], false))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        engine
    });
}

#[test]
fn clients_that_go_away_or_never_read_do_not_block_the_container() {
    World::new().run(|engine, _, rootfs| async move {
        // About 2 MB of output: more than a client's queue and its socket's buffer.
        let cmd = ["sh", "-c", "seq 1 300000; exit 2"];
        engine
            .create(Some("loud"), config(&rootfs, "none", &cmd))
            .await
            .unwrap();
        let gone = engine.attach("loud", all()).await.unwrap();
        drop(gone);
        let never_reads = engine.attach("loud", all()).await.unwrap();
        engine.start("loud").await.unwrap();
        assert_eq!(engine.wait("loud").await.unwrap(), 2);
        let entries = engine.logs("loud", &Query::default()).unwrap();
        assert_eq!(entries.len(), 300_000);
        assert_eq!(entries.last().unwrap().log, "300000\n");
        drop(never_reads);
        engine
    });
}

#[test]
fn removing_a_container_ends_its_running_execs() {
    World::new().run(|engine, _, rootfs| async move {
        sleeper(&engine, &rootfs, "host").await;
        let id = engine
            .create_exec("host", exec_config(&["sleep", "1000"], false))
            .await
            .unwrap();
        let mut a = engine.start_exec(&id, false).await.unwrap().unwrap();
        assert!(engine.inspect_exec(&id).await.unwrap().running);
        engine.remove("host", true).await.unwrap();
        assert_eq!(
            demux(&read_all(&mut a).await),
            (String::new(), String::new())
        );
        let gone = engine.inspect_exec(&id).await.unwrap_err();
        assert!(matches!(gone, Error::NoSuchExec(_)), "{gone}");
        engine
    });
}
