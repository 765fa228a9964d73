use std::fs;
use std::os::unix::fs::{symlink, MetadataExt as _, PermissionsExt};

use super::*;

fn names(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

fn rootfs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("app/sub")).unwrap();
    fs::create_dir(root.path().join("etc")).unwrap();
    fs::write(root.path().join("app/a.txt"), "alpha").unwrap();
    fs::write(root.path().join("app/sub/b.txt"), "beta").unwrap();
    fs::set_permissions(
        root.path().join("app/a.txt"),
        fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    symlink("/../../etc", root.path().join("evil")).unwrap();
    root
}

#[test]
fn stat_reports_go_modes_and_link_targets() {
    let root = rootfs();
    let file = stat_path(root.path(), "/app/a.txt").unwrap();
    assert_eq!((file.name.as_str(), file.size), ("a.txt", 5));
    assert_eq!(file.mode, 0o751);
    let dir = stat_path(root.path(), "app/").unwrap();
    assert_eq!(
        dir.mode & (1 << 31),
        1 << 31,
        "a directory has Go's ModeDir"
    );
    let link = stat_path(root.path(), "/evil").unwrap();
    assert_eq!(
        link.mode & (1 << 27),
        1 << 27,
        "a symlink has Go's ModeSymlink"
    );
    assert_eq!(
        link.link_target, "/etc",
        "`..` stops at the container's root"
    );
    assert_eq!(stat_path(root.path(), "/").unwrap().name, "/");
    assert_eq!(stat_path(root.path(), "/app/.").unwrap().name, ".");
    let followed = stat_path(root.path(), "/evil/").unwrap();
    assert_eq!(followed.name, "evil", "a trailing / follows the link");
    assert_eq!(followed.mode & (1 << 31), 1 << 31);
}

#[test]
fn missing_and_bad_paths_are_refused() {
    let root = rootfs();
    let missing = stat_path(root.path(), "/nope/x").unwrap_err();
    assert!(matches!(missing, Error::PathNotFound(ref p) if p == "/nope/x"));
    assert!(matches!(stat_path(root.path(), ""), Err(Error::Invalid(_))));
    assert!(matches!(
        stat_path(root.path(), "/app/a.txt/"),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn archives_are_named_from_the_last_name() {
    let root = rootfs();
    let mut out = Vec::new();
    archive_path(root.path(), "/app", &mut out).unwrap();
    assert_eq!(
        names(&out),
        ["app", "app/a.txt", "app/sub", "app/sub/b.txt"]
    );
    let mut out = Vec::new();
    archive_path(root.path(), "/app/.", &mut out).unwrap();
    assert_eq!(names(&out), ["./", "a.txt", "sub", "sub/b.txt"]);
    let mut out = Vec::new();
    archive_path_as(
        root.path(),
        "/app/.",
        Some("new"),
        &IdMap::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        names(&out),
        ["new", "new/a.txt", "new/sub", "new/sub/b.txt"]
    );
    let mut out = Vec::new();
    archive_path_as(
        root.path(),
        "/app/a.txt",
        Some("b"),
        &IdMap::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(names(&out), ["b"]);
    let mut out = Vec::new();
    archive_path(root.path(), "/app/", &mut out).unwrap();
    assert_eq!(
        names(&out),
        ["app", "app/a.txt", "app/sub", "app/sub/b.txt"]
    );
    let mut out = Vec::new();
    archive_path(root.path(), "/evil", &mut out).unwrap();
    let mut archive = tar::Archive::new(out.as_slice());
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink);
    assert_eq!(
        entry.link_name().unwrap().unwrap().to_str(),
        Some("/../../etc"),
        "a symlink is archived as itself, not followed"
    );
}

#[test]
fn export_holds_the_whole_tree() {
    let root = rootfs();
    let mut out = Vec::new();
    export(root.path(), &IdMap::default(), &mut out).unwrap();
    assert_eq!(
        names(&out),
        [
            "app",
            "app/a.txt",
            "app/sub",
            "app/sub/b.txt",
            "etc",
            "evil"
        ]
    );
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o640);
        header.set_uid(1234);
        header.set_gid(1234);
        header.set_mtime(0);
        // Written raw: the tar crate refuses `..` and absolute names, hostile archives do not.
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn extraction_stays_inside_through_symlinks() {
    let root = rootfs();
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("x");
    // A link in the container aimed at a host directory by its absolute path.
    symlink(outside.path(), root.path().join("app/host")).unwrap();
    let input = tar_of(&[("/abs.txt", b"1"), ("host/x", b"2")]);
    extract_into(
        root.path(),
        "/evil",
        input.as_slice(),
        false,
        Some((0, 0)),
        &IdMap::default(),
    )
    .unwrap();
    assert_eq!(fs::read(root.path().join("etc/abs.txt")).unwrap(), b"1");
    let owner = fs::metadata(root.path().join("etc/abs.txt")).unwrap();
    assert_eq!(
        (owner.uid(), owner.gid()),
        (0, 0),
        "chown replaces the archive's owner"
    );
    extract_into(
        root.path(),
        "/app",
        input.as_slice(),
        false,
        None,
        &IdMap::default(),
    )
    .unwrap();
    assert!(!escape.exists(), "nothing is written through a link out");
    let meta = fs::metadata(root.path().join("app/abs.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let climbing = tar_of(&[("../../up.txt", b"3")]);
    let err = extract_into(
        root.path(),
        "/app",
        climbing.as_slice(),
        false,
        None,
        &IdMap::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

#[test]
fn no_overwrite_dir_non_dir_is_kept() {
    let root = rootfs();
    let input = tar_of(&[("sub", b"file")]);
    let err = extract_into(
        root.path(),
        "/app",
        input.as_slice(),
        true,
        None,
        &IdMap::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot overwrite directory"),
        "{err}"
    );
    assert!(root.path().join("app/sub/b.txt").exists());
    let missing = extract_into(
        root.path(),
        "/nowhere",
        input.as_slice(),
        false,
        None,
        &IdMap::default(),
    );
    assert!(matches!(missing, Err(Error::PathNotFound(_))));
    let not_dir = extract_into(
        root.path(),
        "/app/a.txt",
        input.as_slice(),
        false,
        None,
        &IdMap::default(),
    );
    assert!(matches!(not_dir, Err(Error::Invalid(_))));
}

#[test]
fn go_modes() {
    assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
    assert_eq!(
        go_file_mode(libc::S_IFDIR | 0o1777),
        (1 << 31) | (1 << 20) | 0o777
    );
    assert_eq!(
        go_file_mode(libc::S_IFCHR | 0o666),
        (1 << 26) | (1 << 21) | 0o666
    );
}

#[test]
fn hard_links_travel_as_links_and_come_back_as_one_file() {
    let root = rootfs();
    fs::hard_link(
        root.path().join("app/a.txt"),
        root.path().join("app/sub/again.txt"),
    )
    .unwrap();
    let mut out = Vec::new();
    archive_path(root.path(), "/app", &mut out).unwrap();
    let mut archive = tar::Archive::new(out.as_slice());
    let links: Vec<(String, String)> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == tar::EntryType::Link)
        .map(|e| {
            let name = e.path().unwrap().display().to_string();
            let target = e.link_name().unwrap().unwrap().display().to_string();
            (name, target)
        })
        .collect();
    assert_eq!(
        links,
        [("app/sub/again.txt".to_string(), "app/a.txt".to_string())]
    );

    let other = rootfs();
    extract_into(
        other.path(),
        "/etc",
        out.as_slice(),
        false,
        None,
        &IdMap::default(),
    )
    .unwrap();
    let first = fs::metadata(other.path().join("etc/app/a.txt")).unwrap();
    let second = fs::metadata(other.path().join("etc/app/sub/again.txt")).unwrap();
    assert_eq!(first.ino(), second.ino());
    assert_eq!(
        fs::read(other.path().join("etc/app/sub/again.txt")).unwrap(),
        b"alpha"
    );
}
