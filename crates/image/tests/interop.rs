//! Round trips with skopeo and umoci: images berth pushes or saves are read by them, and
//! images they push or write are read by berth, with the file trees compared.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use berth_image::archive::LoadOptions;
use berth_image::{Digest, PullOptions};
use common::*;

fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args))
}

/// A layer blob with its media type and diff ID.
struct TestLayer {
    blob: Vec<u8>,
    media_type: &'static str,
    diff_id: Digest,
}

fn gzip_layer(tar: Vec<u8>) -> TestLayer {
    TestLayer {
        diff_id: Digest::of(&tar),
        blob: gzip(&tar),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    }
}

fn zstd_layer(tar: Vec<u8>) -> TestLayer {
    TestLayer {
        diff_id: Digest::of(&tar),
        blob: zstd::encode_all(&tar[..], 3).unwrap(),
        media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

fn put_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d
}

/// Writes an OCI layout by hand (independently of berth's writer).
fn write_layout(dir: &Path, tag: &str, layers: &[TestLayer]) {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/root", "User": "0", "Labels": { "made-by": "test" }, "ExposedPorts": { "80/tcp": {} } },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>() },
        "history": layers.iter().map(|_| serde_json::json!({ "created_by": "test" })).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put_blob(dir, &config);
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| serde_json::json!({ "mediaType": l.media_type, "digest": put_blob(dir, &l.blob).to_string(), "size": l.blob.len() }))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len() },
        "layers": layer_descs,
    }))
    .unwrap();
    let md = put_blob(dir, &manifest);
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len(),
        "annotations": { "org.opencontainers.image.ref.name": tag } }] });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// A second layer over the busybox rootfs: deletes a file, makes a directory opaque, adds
/// files. Returns the tar and applies the same change to `expected`.
fn change_layer(expected: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("etc/", b"", tar::EntryType::Directory, 0o755);
    add("etc/.wh.hostname.link", b"", tar::EntryType::Regular, 0o644);
    add("etc/motd", b"layer two\n", tar::EntryType::Regular, 0o644);
    add("var/log/", b"", tar::EntryType::Directory, 0o755);
    add("var/log/.wh..wh..opq", b"", tar::EntryType::Regular, 0o644);
    add(
        "var/log/new.log",
        b"fresh\n",
        tar::EntryType::Regular,
        0o600,
    );
    fs::remove_file(expected.join("etc/hostname.link")).unwrap();
    fs::write(expected.join("etc/motd"), "layer two\n").unwrap();
    fs::remove_file(expected.join("var/log/empty.log")).unwrap();
    fs::write(expected.join("var/log/new.log"), "fresh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        expected.join("var/log/new.log"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    b.into_inner().unwrap()
}

/// A two-layer image with whiteouts as an OCI layout at `layout`, and the tree it should
/// give at `expected`. The second layer is zstd when `zstd` (umoci 0.4 and skopeo 1.9's
/// docker-archive cannot handle zstd, so their tests use gzip).
fn two_layer_layout(layout: &Path, expected: &Path, zstd: bool) {
    busybox_rootfs(expected);
    let base = tar_dir(expected);
    let change = change_layer(expected);
    let second = if zstd {
        zstd_layer(change)
    } else {
        gzip_layer(change)
    };
    write_layout(layout, "v2", &[gzip_layer(base), second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_umoci_read_what_berth_pushed() {
    let reg = Registry::start().await;
    let root = Root::new();
    let name = format!("{}/interop/pushed:1", reg.host());
    root.push_busybox(&name).await;

    let layout = root.path("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:1", layout.display()),
    ]);
    let bundle = root.path("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:1", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    assert_same_tree(&root.path("rootfs"), &bundle.join("rootfs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_pulls_a_multi_layer_image_skopeo_pushed() {
    let reg = Registry::start().await;
    let root = Root::new();
    let (layout, expected) = (root.path("layout"), root.path("expected"));
    two_layer_layout(&layout, &expected, true);
    let name = format!("{}/interop/multi:v2", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v2", layout.display()),
        &format!("docker://{name}"),
    ]);

    let img = root.svc.pull(&name, &PullOptions::default()).await.unwrap();
    assert_eq!(img.layers.len(), 2);
    assert!(img.layers[1].media_type.ends_with("zstd"));
    let inspect = root.svc.inspect(&name).unwrap();
    let cfg = inspect.config.config().clone().unwrap();
    assert_eq!(cfg.cmd().clone().unwrap(), vec!["/bin/sh".to_string()]);
    assert_eq!(cfg.working_dir().as_deref(), Some("/root"));
    assert_eq!(
        cfg.exposed_ports().clone().unwrap(),
        vec!["80/tcp".to_string()]
    );
    assert_eq!(inspect.config.history().as_ref().unwrap().len(), 2);
    {
        let m = mount_image(&root, &name, &root.path("mnt"));
        assert_same_tree(&expected, &m.0);
    }
    assert_no_mounts_under(root.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_loads_an_oci_layout_and_umoci_reads_berths() {
    let root = Root::new();
    let (layout, expected) = (root.path("layout"), root.path("expected"));
    two_layer_layout(&layout, &expected, false);
    let opts = LoadOptions {
        repository: Some("localhost/multi".into()),
        ..Default::default()
    };
    let loaded = root.svc.load(&layout, &opts).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags[0].to_string(), "localhost/multi:v2");
    {
        let m = mount_image(&root, "localhost/multi:v2", &root.path("mnt"));
        assert_same_tree(&expected, &m.0);
    }

    // berth's own layout, read by umoci and skopeo.
    let out = root.path("out");
    root.svc.save_oci(&["localhost/multi:v2"], &out).unwrap();
    let ls = run(Command::new("umoci").args(["ls", "--layout", out.to_str().unwrap()]));
    assert_eq!(ls.trim(), "v2");
    let bundle = root.path("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:v2", out.display()),
        bundle.to_str().unwrap(),
    ]));
    assert_same_tree(&expected, &bundle.join("rootfs"));
    let inspect = skopeo(&["inspect", &format!("oci:{}:v2", out.display())]);
    assert!(inspect.contains("\"Layers\""), "{inspect}");
    assert_no_mounts_under(root.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn umoci_image_loads_in_berth() {
    let root = Root::new();
    let rootfs = root.path("rootfs");
    busybox_rootfs(&rootfs);
    let layout = root.path("umoci");
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:t")]));
    run(Command::new("umoci").args([
        "insert",
        "--image",
        &format!("{l}:t"),
        rootfs.to_str().unwrap(),
        "/",
    ]));
    let opts = LoadOptions {
        repository: Some("localhost/umoci".into()),
        ..Default::default()
    };
    root.svc.load(&layout, &opts).unwrap();
    let m = mount_image(&root, "localhost/umoci:t", &root.path("mnt"));
    assert_same_tree(&rootfs, &m.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archives_from_skopeo_and_from_berth() {
    let reg = Registry::start().await;
    let root = Root::new();
    let (layout, expected) = (root.path("layout"), root.path("expected"));
    two_layer_layout(&layout, &expected, false);
    let name = format!("{}/interop/archive:v2", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v2", layout.display()),
        &format!("docker://{name}"),
    ]);
    let archive = root.path("skopeo.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("docker-archive:{}:{name}", archive.display()),
    ]);

    let loaded = root.svc.load(&archive, &LoadOptions::default()).unwrap();
    assert_eq!(loaded[0].tags[0].to_string(), name);
    {
        let m = mount_image(&root, &name, &root.path("mnt"));
        assert_same_tree(&expected, &m.0);
    }

    // berth save → skopeo reads it → berth loads it into a fresh root.
    let saved = root.path("berth.tar");
    root.svc.save_docker(&[&name], &saved).unwrap();
    let inspect = skopeo(&["inspect", &format!("docker-archive:{}", saved.display())]);
    assert!(
        inspect.contains(&loaded[0].layers[1].diff_id.to_string()),
        "{inspect}"
    );
    // As `docker save | gzip` would give it.
    let gz = root.path("berth.tar.gz");
    fs::write(&gz, gzip(&fs::read(&saved).unwrap())).unwrap();
    let other = Root::new();
    let again = other.svc.load(&gz, &LoadOptions::default()).unwrap();
    assert_eq!(again[0].id, loaded[0].id, "same config, same image ID");
    let m = mount_image(&other, &name, &other.path("mnt"));
    assert_same_tree(&expected, &m.0);
}
