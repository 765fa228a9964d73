//! Layer unpacking on crafted layers: hostile entries never write outside the snapshot,
//! tar bombs stop at the limits, and honest metadata (owners, modes, xattrs, links, devices,
//! whiteouts) comes out as it went in.

use std::fs;
use std::io::Write;
use std::os::linux::fs::MetadataExt as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::unpack::{unpack_layer, Limits};
use berth_image::{Digest, Error};

/// A tar built entry by entry with raw names, which `tar::Builder`'s own path checks would
/// refuse to write (that is the point).
struct RawTar(tar::Builder<Vec<u8>>);

impl RawTar {
    fn new() -> Self {
        RawTar(tar::Builder::new(Vec::new()))
    }

    fn header(
        kind: tar::EntryType,
        name: &str,
        link: Option<&str>,
        size: u64,
        mode: u32,
    ) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        h
    }

    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let h = Self::header(
            tar::EntryType::Regular,
            name,
            None,
            data.len() as u64,
            0o644,
        );
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(mut self, name: &str) -> Self {
        let h = Self::header(tar::EntryType::Directory, name, None, 0, 0o755);
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn symlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::header(tar::EntryType::Symlink, name, Some(target), 0, 0o777);
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn hardlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::header(tar::EntryType::Link, name, Some(target), 0, 0o644);
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A sandbox: `root` is the snapshot, `outside` a sibling holding a sentinel file that no
/// layer may touch.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("sentinel"), b"untouched").unwrap();
        Sandbox {
            _dir: dir,
            root,
            outside,
        }
    }

    fn unpack(&self, layer: &[u8]) -> Result<berth_image::unpack::Unpacked, Error> {
        unpack_layer(layer, &self.root, &Limits::default())
    }

    /// The outside directory still holds exactly the sentinel, unchanged and unlinked.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sentinel")]);
        let s = self.outside.join("sentinel");
        assert_eq!(fs::read(&s).unwrap(), b"untouched");
        assert_eq!(fs::symlink_metadata(&s).unwrap().nlink(), 1);
    }
}

fn hostile(r: Result<berth_image::unpack::Unpacked, Error>) -> String {
    match r {
        Err(e @ Error::HostileLayer { .. }) => e.to_string(),
        other => panic!("expected a refused entry, got {other:?}"),
    }
}

#[test]
fn dotdot_entry_is_refused() {
    let s = Sandbox::new();
    let layer = RawTar::new().file("../outside/evil", b"x").bytes();
    let err = hostile(s.unpack(&layer));
    assert!(err.contains("'..'"), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn dotdot_in_the_middle_that_escapes_is_refused() {
    let s = Sandbox::new();
    let layer = RawTar::new()
        .dir("a")
        .file("a/../../outside/evil", b"x")
        .bytes();
    hostile(s.unpack(&layer));
    s.assert_outside_untouched();
}

#[test]
fn absolute_path_lands_inside_the_root() {
    let s = Sandbox::new();
    let abs = format!("{}/abs", s.outside.display());
    let layer = RawTar::new().file(&abs, b"inside").bytes();
    s.unpack(&layer).unwrap();
    s.assert_outside_untouched();
    let inside = s.root.join(abs.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"inside");
}

#[test]
fn write_through_planted_absolute_symlink_stays_inside() {
    let s = Sandbox::new();
    let target = s.outside.display().to_string();
    let layer = RawTar::new()
        .symlink("escape", &target)
        .file("escape/sentinel", b"pwned")
        .bytes();
    // The symlink resolves (inside the root) to a directory that does not exist there,
    // so the write is refused; either way nothing outside may change.
    let r = s.unpack(&layer);
    s.assert_outside_untouched();
    hostile(r);
    assert!(fs::symlink_metadata(s.root.join("escape"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn write_through_planted_relative_symlink_stays_inside() {
    let s = Sandbox::new();
    let layer = RawTar::new()
        .symlink("up", "../../../../../../..")
        .file("up/outside/sentinel", b"pwned")
        .bytes();
    let r = s.unpack(&layer);
    s.assert_outside_untouched();
    // "up" resolves to the root itself, so the file lands at <root>/outside/sentinel.
    r.unwrap();
    assert_eq!(fs::read(s.root.join("outside/sentinel")).unwrap(), b"pwned");
}

#[test]
fn symlink_chain_into_the_host_stays_inside() {
    let s = Sandbox::new();
    let out = s.outside.display().to_string();
    let layer = RawTar::new()
        .dir(out.trim_start_matches('/'))
        .symlink("a", "b")
        .symlink("b", &out)
        .file("a/sentinel", b"pwned")
        .bytes();
    s.unpack(&layer).unwrap();
    s.assert_outside_untouched();
    let inside = s.root.join(out.trim_start_matches('/')).join("sentinel");
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
}

#[test]
fn replacing_a_planted_symlink_does_not_write_its_target() {
    let s = Sandbox::new();
    let target = s.outside.join("sentinel").display().to_string();
    let layer = RawTar::new()
        .symlink("victim", &target)
        .file("victim", b"pwned")
        .bytes();
    s.unpack(&layer).unwrap();
    s.assert_outside_untouched();
    let m = fs::symlink_metadata(s.root.join("victim")).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(fs::read(s.root.join("victim")).unwrap(), b"pwned");
}

#[test]
fn later_entries_replace_earlier_ones_and_follow_what_replaced_a_directory() {
    let s = Sandbox::new();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let layer = RawTar::new()
        .file("f", b"first")
        .file("f", b"second")
        .dir("b/")
        .dir("a/")
        .file("a/x", b"lost with a")
        // `a`, the directory the entry before went into, becomes a symlink to `b`: the next
        // entry under `a/` lands in `b`, not in the removed directory.
        .symlink("a", "b")
        .file("a/y", b"through the link")
        .file("d", b"a file first")
        .dir("d/")
        .file("d/z", &big)
        .bytes();
    s.unpack(&layer).unwrap();
    s.assert_outside_untouched();
    assert_eq!(fs::read(s.root.join("f")).unwrap(), b"second");
    assert!(fs::symlink_metadata(s.root.join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(s.root.join("b/y")).unwrap(), b"through the link");
    assert!(!s.root.join("b/x").exists());
    assert!(fs::symlink_metadata(s.root.join("d")).unwrap().is_dir());
    assert_eq!(fs::read(s.root.join("d/z")).unwrap(), big);
}

#[test]
fn hardlink_climbing_out_is_refused() {
    let s = Sandbox::new();
    let layer = RawTar::new().hardlink("h", "../outside/sentinel").bytes();
    let err = hostile(s.unpack(&layer));
    assert!(err.contains("hard link target"), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn hardlink_to_absolute_host_path_stays_inside() {
    let s = Sandbox::new();
    let abs = s.outside.join("sentinel").display().to_string();
    let layer = RawTar::new().hardlink("h", &abs).bytes();
    let r = s.unpack(&layer);
    s.assert_outside_untouched();
    assert!(r.is_err(), "no such file inside the root: {r:?}");
}

#[test]
fn hardlink_through_planted_symlink_stays_inside() {
    let s = Sandbox::new();
    let layer = RawTar::new()
        .symlink("slash", "/")
        .hardlink(
            "h",
            &format!("slash{}", s.outside.join("sentinel").display()),
        )
        .bytes();
    let r = s.unpack(&layer);
    s.assert_outside_untouched();
    assert!(r.is_err(), "{r:?}");
    assert!(!s.root.join("h").exists());
}

#[test]
fn whiteout_through_symlink_stays_inside() {
    let s = Sandbox::new();
    let out = s.outside.display().to_string();
    let layer = RawTar::new()
        .symlink("d", &out)
        .file("d/.wh.sentinel", b"")
        .file("d/.wh..wh..opq", b"")
        .bytes();
    let r = s.unpack(&layer);
    s.assert_outside_untouched();
    hostile(r);
}

#[test]
fn tar_bomb_stops_at_the_size_limit() {
    let s = Sandbox::new();
    // 64 MiB of zeros: a few tens of KiB compressed.
    let zeros = vec![0u8; 64 << 20];
    let tar = RawTar::new().file("bomb", &zeros).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    let limits = Limits {
        max_bytes: 8 << 20,
        max_entries: 100,
    };
    match unpack_layer(&gz[..], &s.root, &limits) {
        Err(Error::LayerLimit { what, limit }) => {
            assert_eq!((what, limit), ("uncompressed size", 8 << 20))
        }
        other => panic!("{other:?}"),
    }
    let written = fs::metadata(s.root.join("bomb"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(written <= 8 << 20);
}

#[test]
fn tar_bomb_stops_at_the_entry_limit() {
    let s = Sandbox::new();
    let mut t = RawTar::new();
    for i in 0..50 {
        t = t.file(&format!("f{i}"), b"");
    }
    let limits = Limits {
        max_bytes: 1 << 30,
        max_entries: 10,
    };
    match unpack_layer(&t.bytes()[..], &s.root, &limits) {
        Err(Error::LayerLimit { what, .. }) => assert_eq!(what, "entry count"),
        other => panic!("{other:?}"),
    }
    assert!(fs::read_dir(&s.root).unwrap().count() <= 10);
}

#[test]
fn truncated_layer_is_an_error_not_a_panic() {
    let s = Sandbox::new();
    let tar = RawTar::new().file("f", &[1u8; 5000]).bytes();
    let err = s.unpack(&tar[..3000]).unwrap_err();
    assert!(matches!(err, Error::LayerTar(_)), "{err}");
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let s = Sandbox::new();
    let layer = RawTar::new()
        .dir("etc")
        .file("etc/.wh.passwd", b"")
        .dir("var")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n")
        .bytes();
    s.unpack(&layer).unwrap();
    let wh = fs::symlink_metadata(s.root.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.st_rdev(), 0);
    assert!(!s.root.join("etc/.wh.passwd").exists());
    assert_eq!(
        xattr(&s.root.join("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(s.root.join("var/new")).unwrap(), b"n");
    assert!(!s.root.join("var/.wh..wh..opq").exists());
}

fn xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn metadata_is_preserved() {
    let s = Sandbox::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o1777);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_500_000_000);
    h.set_size(0);
    b.append_data(&mut h, "tmp", &[][..]).unwrap();

    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_400_000_000);
    h.set_size(3);
    b.append_pax_extensions([
        ("SCHILY.xattr.user.berth", &b"yes"[..]),
        (
            "SCHILY.xattr.security.capability",
            &[
                1u8, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
        ),
    ])
    .unwrap();
    b.append_data(&mut h, "bin/su", &b"su!"[..]).unwrap();

    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, "bin/su-link", "bin/su").unwrap();

    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_uid(7);
    h.set_gid(8);
    h.set_mode(0o777);
    b.append_link(&mut h, "bin/sh", "/bin/busybox").unwrap();

    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Char);
    h.set_size(0);
    h.set_mode(0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null", &[][..]).unwrap();

    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(0);
    h.set_mode(0o620);
    b.append_data(&mut h, "run/fifo", &[][..]).unwrap();

    let tar = b.into_inner().unwrap();
    let out = s.unpack(&tar).unwrap();
    assert_eq!(out.diff_id, Digest::of(&tar));
    assert_eq!(out.size, tar.len() as u64);

    let tmp = fs::symlink_metadata(s.root.join("tmp")).unwrap();
    assert_eq!(
        (
            tmp.permissions().mode() & 0o7777,
            tmp.uid(),
            tmp.gid(),
            tmp.mtime()
        ),
        (0o1777, 1000, 1001, 1_500_000_000)
    );
    let su = fs::symlink_metadata(s.root.join("bin/su")).unwrap();
    assert_eq!(
        (su.permissions().mode() & 0o7777, su.mtime(), su.nlink()),
        (0o4755, 1_400_000_000, 2)
    );
    assert_eq!(
        su.ino(),
        fs::symlink_metadata(s.root.join("bin/su-link"))
            .unwrap()
            .ino()
    );
    assert_eq!(
        xattr(&s.root.join("bin/su"), "user.berth").as_deref(),
        Some(&b"yes"[..])
    );
    assert!(xattr(&s.root.join("bin/su"), "security.capability").is_some());
    let sh = fs::symlink_metadata(s.root.join("bin/sh")).unwrap();
    assert!(sh.file_type().is_symlink());
    assert_eq!((sh.uid(), sh.gid()), (7, 8));
    assert_eq!(
        fs::read_link(s.root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let null = fs::symlink_metadata(s.root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.st_rdev(), null.permissions().mode() & 0o777),
        (nix::sys::stat::makedev(1, 3), 0o666)
    );
    let fifo = fs::symlink_metadata(s.root.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.permissions().mode() & 0o777, 0o620);
}

#[test]
fn owners_shift_into_a_user_namespace_and_a_layer_written_back_shifts_them_home() {
    use berth_image::unpack::unpack_layer_as;
    use berth_image::IdMap;
    let ids = IdMap::from_subordinate(&[(100000, 65536)], &[(200000, 65536)]);
    let s = Sandbox::new();
    let mut b = tar::Builder::new(Vec::new());
    for (name, uid, gid) in [("root-file", 0, 0), ("app-file", 1000, 50)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(uid);
        h.set_gid(gid);
        b.append_data(&mut h, name, &b"x"[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    unpack_layer_as(&tar[..], &s.root, &Limits::default(), &ids).unwrap();
    let owner = |n: &str| {
        let m = fs::symlink_metadata(s.root.join(n)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("root-file"), (100000, 200000));
    assert_eq!(owner("app-file"), (101000, 200050));

    // Written back as a layer, the owners are the namespace's again.
    let mut out = Vec::new();
    berth_image::diff::write_layer(&s.root, &ids, &mut out).unwrap();
    let mut owners: Vec<(String, u64, u64)> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            let name = e.path().unwrap().display().to_string();
            (name, h.uid().unwrap(), h.gid().unwrap())
        })
        .collect();
    owners.sort();
    assert_eq!(
        owners,
        [
            ("app-file".to_string(), 1000, 50),
            ("root-file".to_string(), 0, 0)
        ]
    );

    // An owner the namespace cannot hold is refused, naming the entry.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(70000);
    h.set_gid(0);
    b.append_data(&mut h, "far", &[][..]).unwrap();
    let far = b.into_inner().unwrap();
    let s = Sandbox::new();
    let err = unpack_layer_as(&far[..], &s.root, &Limits::default(), &ids)
        .unwrap_err()
        .to_string();
    assert!(err.contains("far") && err.contains("userns-remap"), "{err}");
}
