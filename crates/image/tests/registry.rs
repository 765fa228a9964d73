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
    // Pushed again: the registry has both blobs, nothing is uploaded.
    let (progress, mut events) = ProgressSink::channel();
    assert_eq!(root.svc.push(&name, None, &progress).await.unwrap(), digest);
    drop(progress);
    let mut exists = 0;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, Progress::Transferred { .. } | Progress::Bytes { .. }),
            "{e:?}"
        );
        exists += matches!(e, Progress::Skipped { ref reason, .. } if reason == "already exists")
            as usize;
    }
    assert_eq!(exists, 2);

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
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&snap).unwrap().permissions().mode() & 0o7777,
        0o755
    );
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
    let name = format!("{}/corrupt:1", reg.host());
    let img = root.push_busybox(&name).await;
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
    let name = format!("{}/conc:1", reg.host());
    src.push_busybox(&name).await;

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
    let name = format!("{}/private/app:1", reg.host());
    root.import_busybox(&name);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_round_trips() {
    let reg = Registry::start().await;
    let root = Root::with(|o| o.registry.chunk_size = Some(256 * 1024));
    let name = format!("{}/chunked:1", reg.host());
    let img = root.import_busybox(&name);
    assert!(img.layers[0].blob_size > 3 * 256 * 1024, "several chunks");
    let (progress, mut events) = ProgressSink::channel();
    root.svc.push(&name, None, &progress).await.unwrap();
    drop(progress);
    let mut steps = 0;
    while let Ok(e) = events.try_recv() {
        steps += matches!(e, Progress::Bytes { ref digest, .. } if *digest == img.layers[0].blob)
            as usize;
    }
    assert!(steps > 3, "one progress step per chunk, got {steps}");
    let other = Root::new();
    assert_eq!(
        other
            .svc
            .pull(&name, &PullOptions::default())
            .await
            .unwrap()
            .id,
        img.id
    );
}

/// An index with an amd64 and an arm64 image (the arm64 one with an extra file), pushed
/// with `skopeo copy --all`; berth picks by platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_is_selected_from_an_index() {
    let reg = Registry::start().await;
    let root = Root::new();
    let layout = root.path("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = berth_image::Digest::of(b);
        fs::write(blobs.join(d.hex()), b).unwrap();
        d
    };
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let dir = root.path(arch);
        fs::create_dir_all(dir.join("etc")).unwrap();
        fs::write(dir.join("etc/arch"), arch).unwrap();
        let tar = tar_dir(&dir);
        let layer = gzip(&tar);
        let ld = put(&layer);
        let config = serde_json::to_vec(&serde_json::json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [berth_image::Digest::of(&tar).to_string()]}})).unwrap();
        let cd = put(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld.to_string(), "size": layer.len()}]}))
        .unwrap();
        let md = put(&manifest);
        entries.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len(), "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries})).unwrap();
    let id = put(&index);
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id.to_string(), "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let name = format!("{}/multiarch:1", reg.host());
    run(std::process::Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{name}"),
    ]));

    let pick = |p: Option<&str>| PullOptions {
        platform: p.map(|p| p.parse().unwrap()),
        ..Default::default()
    };
    let amd = root
        .svc
        .pull(&name, &pick(Some("linux/amd64")))
        .await
        .unwrap();
    assert_eq!(amd.architecture, "amd64");
    assert_eq!(
        amd.repo_digests[0].digest(),
        Some(&id),
        "the repo digest is the index's"
    );
    let arm = Root::new();
    let img = arm
        .svc
        .pull(&name, &pick(Some("linux/arm64")))
        .await
        .unwrap();
    assert_eq!(img.architecture, "arm64");
    assert_eq!(
        fs::read_to_string(arm.svc.lowerdirs(&name).unwrap()[0].join("etc/arch")).unwrap(),
        "arm64"
    );
    let err = Root::new()
        .svc
        .pull(&name, &pick(Some("linux/s390x")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/arm64"), "{err}");
}

/// A download cut off half-way (its partial file left in ingest/) resumes with a Range
/// request instead of starting over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_download_resumes() {
    let reg = Registry::start().await;
    let src = Root::new();
    let name = format!("{}/resume:1", reg.host());
    let img = src.push_busybox(&name).await;

    let root = Root::new();
    let layer = &img.layers[0].blob;
    let blob = fs::read(src.svc.store().path(layer)).unwrap();
    let half = blob.len() / 2;
    fs::write(
        root.path(&format!("root/ingest/sha256-{}.partial", layer.hex())),
        &blob[..half],
    )
    .unwrap();
    let (progress, mut events) = ProgressSink::channel();
    let pulled = root
        .svc
        .pull(
            &name,
            &PullOptions {
                progress,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pulled.id, img.id);
    let mut first = None;
    while let Ok(e) = events.try_recv() {
        if let Progress::Bytes { digest, done, .. } = e {
            if &digest == layer && first.is_none() {
                first = Some(done);
            }
        }
    }
    assert!(
        first.unwrap() > half as u64,
        "the first bytes counted start after the partial file"
    );
    assert_eq!(fs::read(root.svc.store().path(layer)).unwrap(), blob);
}
