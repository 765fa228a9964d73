//! Against a real docker-registry: push, remove, pull back, mount with overlayfs and compare
//! file by file; multi-layer images with whiteouts; auth; corrupt blobs; concurrent pulls.

mod common;

use std::fs;

use berth_image::progress::{Progress, ProgressSink};
use berth_image::registry::Credentials;
use berth_image::{Error, PullOptions, Removed};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_remove_pull_mount_gives_the_same_tree() {
    let reg = Registry::start().await;
    let root = Root::new();
    let rootfs = root.path("rootfs");
    busybox_rootfs(&rootfs);
    let tarball = root.path("rootfs.tar");
    fs::write(&tarball, tar_dir(&rootfs)).unwrap();
    let name = format!("{}/test/busybox:v1", reg.host());

    let imported = root
        .svc
        .import(&tarball, Some(&name), &ProgressSink::default())
        .unwrap();
    let (progress, mut events) = ProgressSink::channel();
    let digest = root.svc.push(&name, None, &progress).await.unwrap();
    drop(progress);
    let mut transferred = 0;
    while let Ok(e) = events.try_recv() {
        transferred += matches!(e, Progress::Transferred { .. }) as usize;
    }
    assert_eq!(transferred, 2, "layer and config uploaded");

    let removed = root.svc.remove(&name, false).unwrap();
    assert_eq!(removed.last(), Some(&Removed::Deleted(imported.id.clone())));
    assert!(root.svc.list().unwrap().is_empty());
    assert!(matches!(
        root.svc.inspect(&name),
        Err(Error::ImageNotFound(_))
    ));
    assert!(
        fs::read_dir(root.path("root/snapshots"))
            .unwrap()
            .next()
            .is_none(),
        "snapshot removed with the image"
    );

    let pulled = root.svc.pull(&name, &PullOptions::default()).await.unwrap();
    assert_eq!(pulled.id, imported.id);
    assert_eq!(pulled.manifest_digest, digest);
    assert_eq!(pulled.repo_digests[0].digest(), Some(&digest));

    let base = root.path("mnt");
    {
        let m = mount_image(&root, &name, &base);
        assert_same_tree(&rootfs, &m.0);
        // Writes go to the container's upper dir, never to the shared snapshot.
        fs::write(m.0.join("etc/hostname"), "changed\n").unwrap();
        assert_eq!(
            fs::read_to_string(base.join("upper/etc/hostname")).unwrap(),
            "changed\n"
        );
    }
    assert_no_mounts_under(root.dir.path());
    let snap = root.svc.lowerdirs(&name).unwrap().remove(0);
    assert_eq!(
        fs::read_to_string(snap.join("etc/hostname")).unwrap(),
        "berth\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_digest_and_missing_names() {
    let reg = Registry::start().await;
    let root = Root::new();
    let rootfs = root.path("rootfs");
    busybox_rootfs(&rootfs);
    fs::write(root.path("r.tar"), gzip(&tar_dir(&rootfs))).unwrap();
    let name = format!("{}/app:1", reg.host());
    root.svc
        .import(&root.path("r.tar"), Some(&name), &ProgressSink::default())
        .unwrap();
    let digest = root
        .svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap();

    let other = Root::new();
    let by_digest = format!("{}/app@{digest}", reg.host());
    let img = other
        .svc
        .pull(&by_digest, &PullOptions::default())
        .await
        .unwrap();
    assert!(img.tags.is_empty());
    assert_eq!(other.svc.inspect(&by_digest).unwrap().image.id, img.id);

    let err = other
        .svc
        .pull(&format!("{}/app:nope", reg.host()), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = other
        .svc
        .pull(&format!("{}/Bad", reg.host()), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidReference { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blob_on_the_registry_leaves_nothing() {
    let reg = Registry::start().await;
    let root = Root::new();
    let rootfs = root.path("rootfs");
    busybox_rootfs(&rootfs);
    fs::write(root.path("r.tar"), tar_dir(&rootfs)).unwrap();
    let name = format!("{}/corrupt:1", reg.host());
    let img = root
        .svc
        .import(&root.path("r.tar"), Some(&name), &ProgressSink::default())
        .unwrap();
    root.svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap();
    let layer = &img.layers[0].blob;
    let path = reg.blob_path(layer.hex());
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, bytes).unwrap();

    let other = Root::new();
    let err = other
        .svc
        .pull(&name, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(other.svc.list().unwrap().is_empty(), "no half-made image");
    assert!(!other.svc.store().contains(layer));
    assert!(fs::read_dir(other.path("root/snapshots"))
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_download_each_blob_once() {
    let reg = Registry::start().await;
    let src = Root::new();
    let rootfs = src.path("rootfs");
    busybox_rootfs(&rootfs);
    fs::write(src.path("r.tar"), tar_dir(&rootfs)).unwrap();
    let name = format!("{}/conc:1", reg.host());
    src.svc
        .import(&src.path("r.tar"), Some(&name), &ProgressSink::default())
        .unwrap();
    src.svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap();

    let root = Root::new();
    let (p1, mut e1) = ProgressSink::channel();
    let (p2, mut e2) = ProgressSink::channel();
    let (o1, o2) = (
        PullOptions {
            progress: p1,
            ..Default::default()
        },
        PullOptions {
            progress: p2,
            ..Default::default()
        },
    );
    let (a, b) = tokio::join!(root.svc.pull(&name, &o1), root.svc.pull(&name, &o2));
    assert_eq!(a.unwrap().id, b.unwrap().id);
    drop((o1, o2));
    let mut transferred = 0;
    let mut cached = 0;
    for rx in [&mut e1, &mut e2] {
        while let Ok(e) = rx.try_recv() {
            transferred += matches!(e, Progress::Transferred { .. }) as usize;
            cached += matches!(e, Progress::Cached { .. }) as usize;
        }
    }
    assert_eq!(
        (transferred, cached),
        (1, 1),
        "the one layer came over the network once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_login_push_logout() {
    let reg = Registry::start_with(Some(("berth", "s3cret"))).await;
    let root = Root::new();
    let rootfs = root.path("rootfs");
    busybox_rootfs(&rootfs);
    fs::write(root.path("r.tar"), tar_dir(&rootfs)).unwrap();
    let name = format!("{}/private/app:1", reg.host());
    root.svc
        .import(&root.path("r.tar"), Some(&name), &ProgressSink::default())
        .unwrap();

    let err = root
        .svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("berth login"), "{err}");
    let wrong = Credentials {
        username: "berth".into(),
        password: "nope".into(),
    };
    assert!(matches!(
        root.svc.login(&reg.host(), &wrong).await,
        Err(Error::Unauthorized { .. })
    ));
    assert!(
        !root.path("docker/config.json").exists(),
        "refused credentials are not stored"
    );

    let right = Credentials {
        username: "berth".into(),
        password: "s3cret".into(),
    };
    root.svc.login(&reg.host(), &right).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(root.path("docker/config.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    root.svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap();

    // A second root that shares the credentials file pulls it.
    let other = Root::with(|o| o.registry.credentials = root.path("docker/config.json"));
    other
        .svc
        .pull(&name, &PullOptions::default())
        .await
        .unwrap();
    assert!(root.svc.logout(&reg.host()).unwrap());
    let third = Root::with(|o| o.registry.credentials = root.path("docker/config.json"));
    assert!(matches!(
        third.svc.pull(&name, &PullOptions::default()).await,
        Err(Error::Unauthorized { .. })
    ));
}
