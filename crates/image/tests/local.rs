//! Local images: tag, remove (untag vs delete, in use, force), prune, shared layers, bad
//! archives leaving nothing, leftovers of a crash cleaned.

mod common;

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};

use berth_image::archive::LoadOptions;
use berth_image::progress::ProgressSink;
use berth_image::{Digest, Error, Removed, UsageCheck};
use common::*;

#[derive(Default)]
struct Containers(Mutex<HashMap<Digest, Vec<String>>>);

impl UsageCheck for Containers {
    fn users(&self, image: &Digest) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .get(image)
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn tag_untag_delete_and_in_use() {
    let root = Root::new();
    let containers = Arc::new(Containers::default());
    root.svc.set_usage_check(containers.clone());
    let img = root.import_busybox("app:1");
    root.svc.tag("app:1", "app:latest").unwrap();
    root.svc
        .tag(img.id.short(), "registry.example:5000/team/app:v1.0.2")
        .unwrap();
    let tags: Vec<String> = root
        .svc
        .inspect("app")
        .unwrap()
        .image
        .tags
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(
        tags,
        [
            "docker.io/library/app:1",
            "docker.io/library/app:latest",
            "registry.example:5000/team/app:v1.0.2"
        ]
    );
    assert!(matches!(
        root.svc.tag("app:1", "Bad Name"),
        Err(Error::InvalidReference { .. })
    ));

    // A tag among others is only untagged.
    assert_eq!(
        root.svc.remove("app:latest", false).unwrap(),
        vec![Removed::Untagged("app:latest".parse().unwrap())]
    );
    // By ID with several tags: refused without force.
    assert!(root.svc.remove(&img.id.to_string(), false).is_err());
    // In use: the last tag is refused, force only untags and keeps the layers.
    root.svc
        .remove("registry.example:5000/team/app:v1.0.2", false)
        .unwrap();
    containers
        .0
        .lock()
        .unwrap()
        .insert(img.id.clone(), vec!["web-1".into()]);
    let err = root.svc.remove("app:1", false).unwrap_err();
    assert!(
        matches!(&err, Error::ImageInUse { users, .. } if users == &["web-1".to_string()]),
        "{err}"
    );
    assert!(err.to_string().contains("web-1"));
    assert_eq!(
        root.svc.remove("app:1", true).unwrap(),
        vec![Removed::Untagged("app:1".parse().unwrap())]
    );
    assert!(
        root.svc.lowerdirs(&img.id.to_string()).unwrap()[0].is_dir(),
        "layers stay while used"
    );
    // Prune spares it while used, takes it after.
    assert!(root.svc.prune().unwrap().images.is_empty());
    containers.0.lock().unwrap().clear();
    let report = root.svc.prune().unwrap();
    assert_eq!(report.images, vec![img.id.clone()]);
    assert!(root.svc.list().unwrap().is_empty());
    assert!(
        root.svc.store().list().unwrap().is_empty(),
        "every blob gone"
    );
    assert!(fs::read_dir(root.path("root/snapshots"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn shared_layers_are_stored_once_and_outlive_one_image() {
    let root = Root::new();
    let a = root.import_busybox("a:1");
    // Same layer, another config (import stamps the time and path): a second image.
    fs::copy(root.path("r.tar"), root.path("r2.tar")).unwrap();
    let b = root
        .svc
        .import(&root.path("r2.tar"), Some("b:1"), &ProgressSink::default())
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.layers[0].chain_id, b.layers[0].chain_id);
    assert_eq!(
        fs::read_dir(root.path("root/snapshots")).unwrap().count(),
        1
    );
    root.svc.remove("a:1", false).unwrap();
    assert!(root.svc.lowerdirs("b:1").unwrap()[0]
        .join("bin/busybox")
        .is_file());
    root.svc.remove("b:1", false).unwrap();
    assert_eq!(
        fs::read_dir(root.path("root/snapshots")).unwrap().count(),
        0
    );
}

#[test]
fn inspect_lists_config_history_and_size() {
    let root = Root::new();
    let img = root.import_busybox("app:1");
    let i = root.svc.inspect("app:1").unwrap();
    assert_eq!(i.image.id, img.id);
    assert_eq!(i.config.history().as_ref().unwrap().len(), 1);
    assert_eq!(
        i.image.size,
        fs::metadata(root.path("r.tar")).unwrap().len()
    );
    assert_eq!(
        i.raw_config["rootfs"]["diff_ids"][0],
        img.layers[0].diff_id.to_string()
    );
    let list = root.svc.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].tags[0].familiar(), "app:1");
}

#[test]
fn bad_archives_leave_nothing() {
    let root = Root::new();
    let not_tar = root.path("junk.tar");
    fs::write(&not_tar, vec![0x41u8; 4096]).unwrap();
    assert!(matches!(
        root.svc.load(&not_tar, &LoadOptions::default()),
        Err(Error::InvalidArchive(_))
    ));

    // A Docker archive whose manifest names a layer it does not hold.
    let mut b = tar::Builder::new(Vec::new());
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["missing/layer.tar"]}]"#;
    for (name, data) in [("c.json", &cfg[..]), ("manifest.json", &manifest[..])] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    let archive = root.path("missing.tar");
    fs::write(&archive, b.into_inner().unwrap()).unwrap();
    let err = root
        .svc
        .load(&archive, &LoadOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("missing/layer.tar"), "{err}");
    assert!(root.svc.list().unwrap().is_empty());

    // A layer that does not match its diff ID.
    let rootfs = root.path("rootfs");
    busybox_rootfs(&rootfs);
    let layer = tar_dir(&rootfs);
    let mut b = tar::Builder::new(Vec::new());
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(b"something else")
    );
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#;
    for (name, data) in [
        ("c.json", cfg.as_bytes()),
        ("l/layer.tar", &layer[..]),
        ("manifest.json", &manifest[..]),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    fs::write(&archive, b.into_inner().unwrap()).unwrap();
    let err = root
        .svc
        .load(&archive, &LoadOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    assert!(root.svc.list().unwrap().is_empty());
    assert!(
        fs::read_dir(root.path("root/snapshots"))
            .unwrap()
            .next()
            .is_none(),
        "the bad snapshot was thrown away"
    );

    // Import of something that is not a tar.
    let err = root
        .svc
        .import(&not_tar, Some("x:2"), &ProgressSink::default())
        .unwrap_err();
    assert!(matches!(err, Error::LayerTar(_)), "{err}");
    assert!(root.svc.list().unwrap().is_empty());
}

#[test]
fn crash_leftovers_are_cleaned() {
    let root = Root::new();
    let img = root.import_busybox("app:1");
    let snaps = root.path("root/snapshots");
    // As a crash would leave them: a half-unpacked snapshot and a half-written blob.
    fs::create_dir_all(snaps.join(".tmp-crashed/etc")).unwrap();
    fs::write(root.path("root/ingest/tmp-crashed"), b"half").unwrap();
    // And a snapshot whose rename happened but whose image was never recorded.
    fs::create_dir_all(snaps.join("a".repeat(64))).unwrap();
    let Root { dir, svc } = root;
    drop(svc);
    let mut o = berth_image::Options::new(dir.path().join("root"));
    o.registry.credentials = dir.path().join("docker/config.json");
    let svc = berth_image::ImageService::open(o).unwrap();
    assert!(!snaps.join(".tmp-crashed").exists());
    let report = svc.prune().unwrap();
    assert_eq!((report.snapshots, report.blobs), (1, 0));
    assert!(fs::read_dir(dir.path().join("root/ingest"))
        .unwrap()
        .next()
        .is_none());
    assert_eq!(
        svc.inspect("app:1").unwrap().image.id,
        img.id,
        "the recorded image is intact"
    );
}
