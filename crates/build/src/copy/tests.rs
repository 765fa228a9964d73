use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::context::Context;

/// A build context and an empty rootfs, both in one temporary directory laid out as
/// `tmp/a/b/{context,rootfs}`, so that `../../..` from the rootfs lands in `tmp`.
struct Fixture {
    tmp: tempfile::TempDir,
    ctx: Context,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let context = tmp.path().join("a/b/context");
        fs::create_dir_all(tmp.path().join("a/b/rootfs/etc")).unwrap();
        write(&context, ".dockerignore", "src/*.secret\n");
        write(&context, "a.txt", "aaa");
        write(&context, "b.txt", "bbb");
        write(&context, "src/main.rs", "fn main() {}");
        write(&context, "src/key.secret", "hush");
        write(&context, "src/inner/x.txt", "x");
        fs::set_permissions(
            context.join("src/main.rs"),
            fs::Permissions::from_mode(0o751),
        )
        .unwrap();
        nix::unistd::chown(&context.join("a.txt"), Some(1234.into()), Some(567.into())).unwrap();
        symlink("inner/x.txt", context.join("src/link")).unwrap();
        let ctx = Context::open(&context).unwrap();
        Fixture { tmp, ctx }
    }

    fn rootfs(&self) -> PathBuf {
        self.tmp.path().join("a/b/rootfs")
    }

    fn sources(&self, names: &[&str]) -> Vec<Source> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        self.ctx.resolve(&names).unwrap()
    }

    fn copy(&self, names: &[&str], dest: &str, workdir: &str, opts: &CopyOptions) -> Result<()> {
        copy_into(&self.rootfs(), &self.sources(names), dest, workdir, opts)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.rootfs().join(rel)).unwrap()
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn plain() -> CopyOptions<'static> {
    CopyOptions::default()
}

#[test]
fn file_to_file_keeps_mode_and_mtime_and_owner_becomes_root() {
    let f = Fixture::new();
    f.copy(&["a.txt"], "/dest.txt", "/", &plain()).unwrap();
    assert_eq!(f.read("dest.txt"), "aaa");
    let copied = fs::metadata(f.rootfs().join("dest.txt")).unwrap();
    let original = fs::metadata(f.ctx.root().join("a.txt")).unwrap();
    assert_eq!(copied.mode() & 0o7777, original.mode() & 0o7777);
    assert_eq!((copied.uid(), copied.gid()), (0, 0));
    assert_eq!(copied.mtime(), original.mtime());
    assert_eq!(copied.mtime_nsec(), original.mtime_nsec());
}

#[test]
fn file_into_directories() {
    let f = Fixture::new();
    f.copy(&["a.txt"], "/new/dir/", "/", &plain()).unwrap();
    assert_eq!(f.read("new/dir/a.txt"), "aaa");
    let made = fs::metadata(f.rootfs().join("new/dir")).unwrap();
    assert_eq!(made.mode() & 0o7777, 0o755);
    // An existing directory takes the file inside, even without a trailing slash.
    f.copy(&["b.txt"], "/new", "/", &plain()).unwrap();
    assert_eq!(f.read("new/b.txt"), "bbb");
    f.copy(&["b.txt"], "/etc/.", "/", &plain()).unwrap();
    assert_eq!(f.read("etc/b.txt"), "bbb");
}

#[test]
fn directory_contents_are_copied_with_ignore_and_symlinks() {
    let f = Fixture::new();
    let opts = CopyOptions {
        ignore: Some(f.ctx.ignore()),
        ..plain()
    };
    f.copy(&["src"], "/app", "/", &opts).unwrap();
    assert_eq!(f.read("app/main.rs"), "fn main() {}");
    assert_eq!(f.read("app/inner/x.txt"), "x");
    assert!(
        !f.rootfs().join("app/src").exists(),
        "the contents, not the directory"
    );
    assert!(
        !f.rootfs().join("app/key.secret").exists(),
        ".dockerignore applies"
    );
    let main = fs::metadata(f.rootfs().join("app/main.rs")).unwrap();
    assert_eq!(main.mode() & 0o7777, 0o751);
    let link = f.rootfs().join("app/link");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("inner/x.txt"));
}

#[test]
fn several_sources_need_a_directory() {
    let f = Fixture::new();
    f.copy(&["a.txt", "b.txt", "src/inner"], "/many/", "/", &plain())
        .unwrap();
    assert_eq!(f.read("many/a.txt"), "aaa");
    assert_eq!(f.read("many/b.txt"), "bbb");
    assert_eq!(f.read("many/x.txt"), "x");
    let err = f
        .copy(&["a.txt", "b.txt"], "/many", "/", &plain())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    let err = copy_into(&f.rootfs(), &[], "/x", "/", &plain()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "COPY failed: no source files were specified"
    );
}

#[test]
fn wildcard_sources_to_a_directory() {
    let f = Fixture::new();
    f.copy(&["*.txt"], "/w/", "/", &plain()).unwrap();
    assert_eq!(f.read("w/a.txt"), "aaa");
    assert_eq!(f.read("w/b.txt"), "bbb");
}

#[test]
fn relative_destination_uses_workdir() {
    let f = Fixture::new();
    f.copy(&["a.txt"], "rel/", "/work", &plain()).unwrap();
    assert_eq!(f.read("work/rel/a.txt"), "aaa");
    f.copy(&["b.txt"], ".", "/work", &plain()).unwrap();
    assert_eq!(f.read("work/b.txt"), "bbb");
    f.copy(&["b.txt"], "../../../up.txt", "/work", &plain())
        .unwrap();
    assert_eq!(f.read("up.txt"), "bbb", "`..` stops at the root");
    assert!(!f.tmp.path().join("up.txt").exists());
}

#[test]
fn chown_and_chmod_apply_to_everything_copied() {
    let f = Fixture::new();
    let opts = CopyOptions {
        chown: Some((1000, 1001)),
        chmod: Some(0o640),
        ..plain()
    };
    f.copy(&["src"], "/owned/app", "/", &opts).unwrap();
    for rel in [
        "owned",
        "owned/app",
        "owned/app/main.rs",
        "owned/app/inner",
        "owned/app/inner/x.txt",
    ] {
        let meta = fs::metadata(f.rootfs().join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1001), "{rel}");
    }
    for rel in [
        "owned/app/main.rs",
        "owned/app/inner",
        "owned/app/inner/x.txt",
        "owned/app",
    ] {
        let meta = fs::metadata(f.rootfs().join(rel)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640, "{rel}");
    }
    let link = fs::symlink_metadata(f.rootfs().join("owned/app/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (1000, 1001));
}

#[test]
fn absolute_symlink_in_rootfs_resolves_inside_it() {
    let f = Fixture::new();
    symlink("/etc", f.rootfs().join("app")).unwrap();
    let name = format!("berth-copy-test-{}", std::process::id());
    f.copy(&["a.txt"], &format!("/app/{name}"), "/", &plain())
        .unwrap();
    assert_eq!(f.read(&format!("etc/{name}")), "aaa");
    assert!(
        !Path::new("/etc").join(&name).exists(),
        "written on the host"
    );
    f.copy(&["src"], "/app/sub/", "/", &plain()).unwrap();
    assert_eq!(f.read("etc/sub/main.rs"), "fn main() {}");
}

#[test]
fn relative_symlink_climbing_out_resolves_inside_the_rootfs() {
    let f = Fixture::new();
    symlink("../../..", f.rootfs().join("app")).unwrap();
    f.copy(&["a.txt"], "/app/x", "/", &plain()).unwrap();
    assert_eq!(f.read("x"), "aaa");
    assert!(!f.tmp.path().join("x").exists(), "written on the host");
    f.copy(&["src"], "/app/app2/deep/", "/", &plain()).unwrap();
    assert!(f.rootfs().join("app2/deep/main.rs").exists());
    assert!(!f.tmp.path().join("app2").exists());
}

#[test]
fn dangling_symlinks_are_made_inside_the_rootfs() {
    let f = Fixture::new();
    symlink("/nowhere/sub", f.rootfs().join("app")).unwrap();
    f.copy(&["a.txt"], "/app/", "/", &plain()).unwrap();
    assert_eq!(f.read("nowhere/sub/a.txt"), "aaa");
    assert!(!Path::new("/nowhere").exists());
}

#[test]
fn a_symlink_in_the_destination_name_is_replaced_not_followed() {
    let f = Fixture::new();
    let host_file = f.tmp.path().join("host-file");
    fs::write(&host_file, "host").unwrap();
    symlink(&host_file, f.rootfs().join("victim")).unwrap();
    f.copy(&["a.txt"], "/victim", "/", &plain()).unwrap();
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host");
    assert!(fs::symlink_metadata(f.rootfs().join("victim"))
        .unwrap()
        .is_file());

    // The same for an entry inside a copied directory.
    fs::create_dir_all(f.rootfs().join("d")).unwrap();
    symlink(&host_file, f.rootfs().join("d/main.rs")).unwrap();
    f.copy(&["src"], "/d", "/", &plain()).unwrap();
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host");
    assert_eq!(f.read("d/main.rs"), "fn main() {}");
}

/// A tar written byte by byte, so that it can hold names the `tar` crate refuses to write.
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(name, kind, link, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o750
        } else {
            0o640
        });
        header.set_size(data.len() as u64);
        header.set_mtime(1_000_000);
        header.set_uid(42);
        header.set_gid(43);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn add_opts() -> CopyOptions<'static> {
    CopyOptions {
        extract_archives: true,
        ..plain()
    }
}

fn sample_tar() -> Vec<u8> {
    use tar::EntryType as T;
    raw_tar(&[
        ("dir/", T::Directory, "", b""),
        ("dir/file.txt", T::Regular, "", b"inside"),
        ("dir/link", T::Symlink, "file.txt", b""),
        ("dir/hard", T::Link, "dir/file.txt", b""),
        ("/abs.txt", T::Regular, "", b"abs"),
    ])
}

fn check_sample(root: &Path) {
    assert_eq!(
        fs::read_to_string(root.join("dir/file.txt")).unwrap(),
        "inside"
    );
    assert_eq!(
        fs::read_link(root.join("dir/link")).unwrap(),
        Path::new("file.txt")
    );
    assert_eq!(fs::read_to_string(root.join("dir/hard")).unwrap(), "inside");
    assert_eq!(fs::read_to_string(root.join("abs.txt")).unwrap(), "abs");
    let meta = fs::metadata(root.join("dir/file.txt")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (42, 43, 0o640)
    );
    assert_eq!(meta.mtime(), 1_000_000);
    let dir = fs::metadata(root.join("dir")).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.mtime()), (0o750, 1_000_000));
}

#[test]
fn add_extracts_plain_gzip_bzip2_xz_and_zstd_tars() {
    let f = Fixture::new();
    let context = f.ctx.root().to_path_buf();
    let tar = sample_tar();
    fs::write(context.join("plain.tar"), &tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    fs::write(context.join("packed.bin"), gz.finish().unwrap()).unwrap();
    fs::write(
        context.join("z.tar.zst"),
        zstd::encode_all(tar.as_slice(), 3).unwrap(),
    )
    .unwrap();

    f.copy(&["plain.tar"], "/x1", "/", &add_opts()).unwrap();
    check_sample(&f.rootfs().join("x1"));
    f.copy(&["packed.bin"], "/x2/", "/", &add_opts()).unwrap();
    check_sample(&f.rootfs().join("x2"));
    f.copy(&["z.tar.zst"], "/x3", "/", &add_opts()).unwrap();
    check_sample(&f.rootfs().join("x3"));
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&tar).unwrap();
    fs::write(context.join("b.tar.bz2"), bz.finish().unwrap()).unwrap();
    f.copy(&["b.tar.bz2"], "/x4", "/", &add_opts()).unwrap();
    check_sample(&f.rootfs().join("x4"));
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar).unwrap();
    fs::write(context.join("x.tar.xz"), xz.finish().unwrap()).unwrap();
    f.copy(&["x.tar.xz"], "/x5", "/", &add_opts()).unwrap();
    check_sample(&f.rootfs().join("x5"));

    // COPY never extracts.
    f.copy(&["plain.tar"], "/copied.tar", "/", &plain())
        .unwrap();
    assert_eq!(fs::read(f.rootfs().join("copied.tar")).unwrap(), tar);
}

#[test]
fn add_copies_what_is_not_a_tar() {
    let f = Fixture::new();
    let context = f.ctx.root().to_path_buf();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"just text").unwrap();
    let gz = gz.finish().unwrap();
    fs::write(context.join("notes.gz"), &gz).unwrap();
    f.copy(&["notes.gz", "a.txt"], "/add/", "/", &add_opts())
        .unwrap();
    assert_eq!(fs::read(f.rootfs().join("add/notes.gz")).unwrap(), gz);
    assert_eq!(f.read("add/a.txt"), "aaa");
}

#[test]
fn add_refuses_entries_climbing_out() {
    let f = Fixture::new();
    use tar::EntryType as T;
    let tar = raw_tar(&[
        ("ok.txt", T::Regular, "", b"ok"),
        ("../escape.txt", T::Regular, "", b"bad"),
    ]);
    fs::write(f.ctx.root().join("evil.tar"), tar).unwrap();
    let err = f
        .copy(&["evil.tar"], "/dest/", "/", &add_opts())
        .unwrap_err();
    assert!(err.to_string().contains("climbs out"), "{err}");
    assert!(!f.rootfs().join("escape.txt").exists());
    assert!(!f.tmp.path().join("a/b/escape.txt").exists());

    let tar = raw_tar(&[("hard", T::Link, "../../etc/passwd", b"")]);
    fs::write(f.ctx.root().join("hard.tar"), tar).unwrap();
    assert!(f.copy(&["hard.tar"], "/dest/", "/", &add_opts()).is_err());
    assert!(!f.rootfs().join("dest/hard").exists());
}

#[test]
fn add_never_follows_planted_symlinks_out_of_dest() {
    let f = Fixture::new();
    use tar::EntryType as T;
    let tar = raw_tar(&[
        ("up", T::Symlink, "../../../../..", b""),
        ("up/evil1.txt", T::Regular, "", b"1"),
        ("abs", T::Symlink, "/", b""),
        ("abs/evil2.txt", T::Regular, "", b"2"),
        ("etc", T::Symlink, "/real", b""),
        ("real/", T::Directory, "", b""),
        ("etc/evil3.txt", T::Regular, "", b"3"),
        ("abs", T::Regular, "", b"replaced"),
    ]);
    fs::write(f.ctx.root().join("links.tar"), tar).unwrap();
    f.copy(&["links.tar"], "/dest/", "/", &add_opts()).unwrap();
    let dest = f.rootfs().join("dest");
    assert_eq!(fs::read_to_string(dest.join("evil1.txt")).unwrap(), "1");
    assert_eq!(fs::read_to_string(dest.join("evil2.txt")).unwrap(), "2");
    assert_eq!(
        fs::read_to_string(dest.join("real/evil3.txt")).unwrap(),
        "3"
    );
    assert_eq!(fs::read_to_string(dest.join("abs")).unwrap(), "replaced");
    for outside in [
        f.rootfs().join("evil1.txt"),
        f.rootfs().join("evil2.txt"),
        f.rootfs().join("etc/evil3.txt"),
        f.tmp.path().join("evil1.txt"),
        PathBuf::from("/evil1.txt"),
        PathBuf::from("/evil2.txt"),
        PathBuf::from("/etc/evil3.txt"),
    ] {
        assert!(!outside.exists(), "{} was written", outside.display());
    }

    // A link to itself (as `/etc` is, with dest as the root) is an error, not a way out.
    let tar = raw_tar(&[
        ("etc", T::Symlink, "/etc", b""),
        ("etc/evil4.txt", T::Regular, "", b"4"),
    ]);
    fs::write(f.ctx.root().join("loop.tar"), tar).unwrap();
    assert!(f.copy(&["loop.tar"], "/dest2/", "/", &add_opts()).is_err());
    assert!(!f.rootfs().join("etc/evil4.txt").exists());
    assert!(!Path::new("/etc/evil4.txt").exists());
}

#[test]
fn targets() {
    let t = |dest, workdir| {
        let t = Target::new(dest, workdir);
        (t.rel, t.is_dir)
    };
    assert_eq!(t("/a/b", "/"), ("a/b".into(), false));
    assert_eq!(t("/a/b/", "/"), ("a/b".into(), true));
    assert_eq!(t("b", "/w"), ("w/b".into(), false));
    assert_eq!(t(".", "/w"), ("w".into(), true));
    assert_eq!(t("x/..", "w"), ("w".into(), true));
    assert_eq!(t("../../..", "/w"), ("".into(), true));
    assert_eq!(t("/", "/w"), ("".into(), true));
}
