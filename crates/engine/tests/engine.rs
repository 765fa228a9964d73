//! The engine with real busybox containers, each test inside a fresh network namespace that
//! stands in for the host: lifecycle, logs, names on a user network, stop's escalation,
//! removal rules, and a reopened engine that finds its containers as they are.

mod common;

use std::process::Command;
use std::time::Duration;

use berth_engine::logs::Query;
use berth_engine::{Config, Engine, Error, Status};
use berth_network::NetworkSpec;
use common::{config, World};

fn stdout_of(engine: &Engine, key: &str) -> String {
    engine
        .logs(key, &Query::default())
        .unwrap()
        .into_iter()
        .map(|e| e.log)
        .collect()
}

#[test]
fn a_container_runs_on_the_default_bridge_logs_and_exits() {
    World::new().run(|engine, _, rootfs| async move {
        let cmd = [
            "sh",
            "-c",
            "hostname; ip -4 addr show eth0 | grep -c 172.17.; exit 4",
        ];
        let c = engine
            .create(Some("first"), config(&rootfs, "", &cmd))
            .await
            .unwrap();
        assert_eq!(c.state.status, Status::Created);
        let running = engine.start("first").await.unwrap();
        assert_eq!(running.state.status, Status::Running);
        assert_eq!(engine.wait("first").await.unwrap(), 4);
        let done = engine.inspect(&c.id[..8]).await.unwrap();
        assert_eq!(
            (done.state.status, done.state.exit_code),
            (Status::Exited, Some(4))
        );
        assert_eq!(stdout_of(&engine, "first"), format!("{}\n1\n", &c.id[..12]));
        assert!(
            engine.network().sandbox(&c.id).is_err(),
            "its sandbox went with it"
        );
        // An exited container starts again, with a fresh exit record.
        engine.start("first").await.unwrap();
        assert_eq!(engine.wait("first").await.unwrap(), 4);
        engine.remove("first", false).await.unwrap();
        assert!(matches!(engine.get("first"), Err(Error::NotFound(_))));
        engine
    });
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    World::new().run(|engine, _, rootfs| async move {
        engine
            .network()
            .create_network(&NetworkSpec {
                name: "app".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let server = [
            "sh",
            "-c",
            "mkdir /www && echo hello from db > /www/index.html && httpd -f -p 80 -h /www",
        ];
        engine
            .create(Some("db"), config(&rootfs, "app", &server))
            .await
            .unwrap();
        engine.start("db").await.unwrap();
        // The client retries until db's server listens (a bounded readiness poll).
        let client = [
            "sh",
            "-c",
            "for i in $(seq 100); do wget -q -O - http://db/index.html && exit 0; \
             sleep 0.05; done; exit 1",
        ];
        engine
            .create(Some("web"), config(&rootfs, "app", &client))
            .await
            .unwrap();
        engine.start("web").await.unwrap();
        assert_eq!(
            engine.wait("web").await.unwrap(),
            0,
            "{}",
            stdout_of(&engine, "web")
        );
        assert_eq!(stdout_of(&engine, "web"), "hello from db\n");
        // httpd as PID 1 ignores SIGTERM: stop escalates to SIGKILL.
        let stopped = engine
            .stop("db", Some(Duration::from_millis(300)))
            .await
            .unwrap();
        assert_eq!(stopped.state.exit_code, Some(137));
        engine
    });
}

#[test]
fn names_are_unique_and_running_containers_need_force() {
    World::new().run(|engine, _, rootfs| async move {
        let sleeper = config(&rootfs, "none", &["sleep", "100"]);
        engine.create(Some("dup"), sleeper.clone()).await.unwrap();
        let err = engine
            .create(Some("dup"), sleeper.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(engine.create(Some("-bad"), sleeper.clone()).await.is_err());
        let nothing = config(&rootfs, "none", &[]);
        assert!(engine
            .create(Some("empty"), nothing)
            .await
            .unwrap_err()
            .to_string()
            .contains("no command"));
        let missing = config(&rootfs.join("nope"), "none", &["true"]);
        assert!(engine.create(None, missing).await.is_err());
        assert!(engine
            .create(None, config(&rootfs, "nosuchnet", &["true"]))
            .await
            .is_err());
        engine.start("dup").await.unwrap();
        let err = engine.remove("dup", false).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("--force"));
        engine.remove("dup", true).await.unwrap();
        assert_eq!(engine.list().await.unwrap().len(), 0);
        engine
    });
}

#[test]
fn a_reopened_engine_finds_running_and_exited_containers_as_they_are() {
    World::new().run(|engine, settings, rootfs| async move {
        engine
            .create(Some("long"), config(&rootfs, "", &["sleep", "100"]))
            .await
            .unwrap();
        engine
            .create(
                Some("short"),
                config(&rootfs, "none", &["sh", "-c", "exit 7"]),
            )
            .await
            .unwrap();
        let long = engine.start("long").await.unwrap();
        engine.start("short").await.unwrap();
        // The daemon goes away; the short one ends while it is gone.
        drop(engine);
        let engine = Engine::open(settings).await.unwrap();
        assert_eq!(engine.wait("short").await.unwrap(), 7);
        let again = engine.inspect("long").await.unwrap();
        assert_eq!(
            again.state.status,
            Status::Running,
            "it outlived the engine"
        );
        assert_eq!(again.state.pid, long.state.pid);
        assert!(
            engine.network().sandbox(&long.id).is_ok(),
            "with its network"
        );
        engine.kill("long", libc::SIGKILL).await.unwrap();
        assert_eq!(engine.wait("long").await.unwrap(), 137);
        engine
    });
}

#[test]
fn containers_run_from_an_image_and_write_only_to_their_own_layer() {
    World::new().run(|engine, settings, rootfs| async move {
        let tarball = settings.root.join("busybox.tar");
        let made = Command::new("tar")
            .args(["-C"])
            .arg(&rootfs)
            .args(["-cf"])
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(made.success());
        let image = engine
            .images()
            .import(&tarball, Some("busybox:test"), &Default::default())
            .unwrap();
        let from_image = |cmd: &[&str]| Config {
            image: "busybox:test".into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            network: "none".into(),
            ..Default::default()
        };
        let writer = engine
            .create(
                Some("writer"),
                from_image(&["sh", "-c", "echo mine > /written && cat /written"]),
            )
            .await
            .unwrap();
        assert_eq!(writer.config.image_id, image.id.to_string());
        engine.start("writer").await.unwrap();
        assert_eq!(engine.wait("writer").await.unwrap(), 0);
        assert_eq!(stdout_of(&engine, "writer"), "mine\n");
        // The write went to the container's upper directory, not into the image.
        let upper = settings
            .root
            .join("containers")
            .join(&writer.id)
            .join("upper");
        assert!(upper.join("written").exists());
        engine
            .create(Some("reader"), from_image(&["ls", "/written"]))
            .await
            .unwrap();
        engine.start("reader").await.unwrap();
        assert_eq!(
            engine.wait("reader").await.unwrap(),
            1,
            "a fresh container does not see it"
        );
        // The image is in use: rmi refuses it until its containers are gone.
        let refused = engine.images().remove("busybox:test", false).unwrap_err();
        assert!(refused.to_string().contains("writer"), "{refused}");
        engine.remove("writer", false).await.unwrap();
        engine.remove("reader", false).await.unwrap();
        assert!(!upper.exists());
        engine.images().remove("busybox:test", false).unwrap();
        let missing = engine
            .create(None, from_image(&["true"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("busybox:test"), "{missing}");
        engine
    });
}
