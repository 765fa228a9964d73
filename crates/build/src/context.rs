//! The build context: packing a directory into the tar the CLI sends to `POST /build`,
//! and, on the daemon side, finding COPY/ADD sources in the extracted context and hashing
//! them for the build cache.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{io_err, Error, Result};
use crate::ignore::{clean, has_wildcard, Ignore, Matcher};
use crate::tree::{self, Entry};

const DOCKERIGNORE: &str = ".dockerignore";

/// A `.dockerignore` larger than this is surely not one; refuse rather than fill memory.
const MAX_IGNORE_FILE: u64 = 16 << 20;

/// Writes the context directory `dir` to `out` as an uncompressed tar, leaving out what
/// `dir/.dockerignore` excludes (but never the Dockerfile or `.dockerignore`), and returns
/// the name under which the Dockerfile is found in the tar.
///
/// Entries come in sorted order with their modes, owners and mtimes; symlinks are stored
/// as symlinks. A Dockerfile outside `dir` is added under a name derived from its content.
pub fn pack(dir: &Path, dockerfile: &Path, out: impl Write) -> Result<String> {
    let dir_abs = absolute(dir)?;
    let dockerfile_abs = absolute(dockerfile)?;
    let mut ignore = read_ignore(dir, true)?.unwrap_or_default();
    ignore.keep_exactly(DOCKERIGNORE);
    let inside = dockerfile_abs
        .strip_prefix(&dir_abs)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty());
    if let Some(rel) = inside {
        ignore.keep_exactly(&rel.to_string_lossy());
    }

    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    tree::walk(dir, "", Some(&ignore), &mut |entry| {
        append(&mut builder, entry)
    })?;

    let name = match inside {
        Some(rel) => rel.to_string_lossy().into_owned(),
        None => append_outside_dockerfile(&mut builder, &dockerfile_abs)?,
    };
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io_err("write", "the build context tar"))?;
    Ok(name)
}

/// `path` made absolute and cleaned, without touching the file system (like `filepath.Abs`).
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(io_err("find", path.display()))?;
    Ok(PathBuf::from(clean(&abs.to_string_lossy())))
}

fn append<W: Write>(builder: &mut tar::Builder<W>, entry: &Entry) -> Result<()> {
    let shown = || entry.path.display().to_string();
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&entry.meta, tar::HeaderMode::Complete);
    let file_type = entry.meta.file_type();
    let result = if file_type.is_symlink() {
        let target = fs::read_link(&entry.path).map_err(io_err("read symlink", shown()))?;
        header.set_size(0);
        builder.append_link(&mut header, &entry.rel, target)
    } else if file_type.is_dir() {
        header.set_size(0);
        builder.append_data(&mut header, &entry.rel, io::empty())
    } else if file_type.is_file() {
        let file = open_nofollow(&entry.path)?;
        builder.append_data(&mut header, &entry.rel, exact(file, &entry.meta))
    } else {
        // Sockets, fifos and devices have no place in a build context.
        return Ok(());
    };
    result.map_err(io_err("add to the build context tar", shown()))
}

fn append_outside_dockerfile<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
) -> Result<String> {
    let content = fs::read(path).map_err(io_err("read Dockerfile", path.display()))?;
    let meta = fs::metadata(path).map_err(io_err("stat Dockerfile", path.display()))?;
    // Named after its content so that packing is deterministic; the dot keeps it out of
    // `COPY *` globs' way as much as Docker's own random name does.
    let name = format!(
        ".dockerfile.{}",
        &hex::encode(Sha256::digest(&content))[..20]
    );
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_size(content.len() as u64);
    builder
        .append_data(&mut header, &name, content.as_slice())
        .map_err(io_err("add to the build context tar", path.display()))?;
    Ok(name)
}

/// The parsed `dir/.dockerignore`, if there is one. On the daemon side (`follow` false) a
/// symlinked one is refused: it could name any file of the host.
fn read_ignore(dir: &Path, follow: bool) -> Result<Option<Ignore>> {
    let path = dir.join(DOCKERIGNORE);
    let mut options = fs::OpenOptions::new();
    options.read(true);
    if !follow {
        options.custom_flags(nix::libc::O_NOFOLLOW);
    }
    let file = match options.open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_IGNORE_FILE)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path.display()))?;
    Ignore::parse(&String::from_utf8_lossy(&bytes)).map(Some)
}

/// Opens a regular file for reading without following a symlink in its last component.
fn open_nofollow(path: &Path) -> Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path.display()))
}

/// `file` limited to the size `meta` gave it, failing if it shrank meanwhile: a tar entry
/// or a hash must cover exactly the bytes its header announced.
pub(crate) fn exact(file: File, meta: &Metadata) -> impl Read {
    Exact {
        inner: file.take(meta.len()),
        left: meta.len(),
    }
}

struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read; do not change the context during a build",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// One COPY/ADD source found in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// As matched, relative to the context root (`.` for the root itself); its last
    /// component names the copy.
    pub rel: String,
    /// The same with symlinks resolved, relative to the context root; `.dockerignore` is
    /// applied to the paths below it.
    pub real_rel: String,
    /// The resolved path on the host, inside the context root.
    pub path: PathBuf,
    pub is_dir: bool,
}

/// An extracted build context on the daemon side.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    ignore: Ignore,
}

impl Context {
    /// Opens the extracted context at `root`, reading its `.dockerignore`.
    pub fn open(root: &Path) -> Result<Context> {
        let root = fs::canonicalize(root).map_err(io_err("open build context", root.display()))?;
        let ignore = read_ignore(&root, false)?.unwrap_or_default();
        Ok(Context { root, ignore })
    }

    /// A directory to copy from without `.dockerignore` rules: an image's or a stage's
    /// root filesystem (`COPY --from`), or heredoc files.
    pub fn open_unfiltered(root: &Path) -> Result<Context> {
        let root = fs::canonicalize(root).map_err(io_err("open", root.display()))?;
        Ok(Context {
            root,
            ignore: Ignore::default(),
        })
    }

    /// The context directory (with symlinks resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The context's `.dockerignore` rules, to pass on to `copy::copy_into`.
    pub fn ignore(&self) -> &Ignore {
        &self.ignore
    }

    /// Finds the sources of one COPY/ADD: paths relative to the context root (a leading
    /// `/` or `./` is fine, `..` stops at the root), with `filepath.Match` wildcards in any
    /// component. Each must match something not excluded by `.dockerignore`.
    pub fn resolve(&self, sources: &[String]) -> Result<Vec<Source>> {
        if sources.is_empty() {
            return Err(Error::NoSources);
        }
        let mut found = Vec::new();
        for source in sources {
            let rel = context_rel(source);
            if !has_wildcard(&rel) {
                found.push(self.source(&rel, source)?);
                continue;
            }
            let before = found.len();
            for rel in self.glob(&rel, source)? {
                match self.source(&rel, source) {
                    // A wildcard simply does not match what `.dockerignore` leaves out.
                    Err(Error::SourceNotFound(_)) => {}
                    other => found.push(other?),
                }
            }
            if found.len() == before {
                return Err(Error::SourceNotFound(source.clone()));
            }
        }
        Ok(found)
    }

    /// The source at `rel` (no wildcards); `shown` is how the user wrote it.
    fn source(&self, rel: &str, shown: &str) -> Result<Source> {
        let not_found = || Error::SourceNotFound(shown.to_string());
        let lexical = self.host_path(rel);
        match fs::symlink_metadata(&lexical) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(Error::io(format!("stat {shown}"), e)),
        }
        // Symlinks on the way (or at the end) are followed, but must stay in the context.
        let real = match fs::canonicalize(&lexical) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(Error::io(format!("resolve {shown}"), e)),
        };
        let Ok(real_rel) = real.strip_prefix(&self.root) else {
            return Err(Error::SourceEscapes(shown.to_string()));
        };
        let real_rel = match real_rel.to_string_lossy().into_owned() {
            empty if empty.is_empty() => ".".to_string(),
            other => other,
        };
        let meta = fs::metadata(&real).map_err(io_err("stat", shown))?;
        let is_dir = meta.is_dir();
        if !self.visible(rel, is_dir) || !self.visible(&real_rel, is_dir) {
            return Err(not_found());
        }
        Ok(Source {
            rel: rel.to_string(),
            real_rel,
            path: real,
            is_dir,
        })
    }

    /// Whether `rel` is in the context as far as `.dockerignore` goes: not excluded, or an
    /// excluded directory holding re-included paths.
    fn visible(&self, rel: &str, is_dir: bool) -> bool {
        !self.ignore.is_excluded(rel) || (is_dir && self.ignore.may_include_under(rel))
    }

    fn host_path(&self, rel: &str) -> PathBuf {
        match rel {
            "." => self.root.clone(),
            rel => self.root.join(rel),
        }
    }

    /// The paths (relative to the root, sorted) matching the wildcard path `rel`.
    fn glob(&self, rel: &str, shown: &str) -> Result<Vec<String>> {
        let mut matches = vec![String::new()];
        for component in rel.split('/') {
            let mut next = Vec::new();
            for parent in &matches {
                let join = |name: &str| match parent.as_str() {
                    "" => name.to_string(),
                    parent => format!("{parent}/{name}"),
                };
                if !has_wildcard(component) {
                    next.push(join(component));
                    continue;
                }
                let pattern =
                    Matcher::compile(component, false).map_err(|reason| Error::BadSource {
                        source_name: shown.to_string(),
                        reason: format!("bad wildcard pattern: {reason}"),
                    })?;
                for name in list_dir(&self.host_path(parent)) {
                    if pattern.matches(&name) {
                        next.push(join(&name));
                    }
                }
            }
            matches = next;
        }
        Ok(matches)
    }

    /// A sha256 (hex) of everything the sources would copy: for each source and every
    /// entry below it, in order, its path, type, mode, owner, symlink target and content.
    /// Mtimes are left out so that touching a file keeps the build cache.
    pub fn hash(&self, sources: &[Source]) -> Result<String> {
        let mut hasher = Sha256::new();
        for source in sources {
            field(&mut hasher, source.rel.as_bytes());
            let meta = fs::symlink_metadata(&source.path).map_err(io_err("stat", &source.rel))?;
            hash_entry(&mut hasher, Path::new(""), &source.path, &meta)?;
            if source.is_dir {
                tree::walk(
                    &source.path,
                    &source.real_rel,
                    Some(&self.ignore),
                    &mut |e| hash_entry(&mut hasher, &e.rel, &e.path, &e.meta),
                )?;
            }
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

/// A COPY source as a path relative to the context root: `..` cannot climb above it.
fn context_rel(source: &str) -> String {
    let rooted = clean(&format!("/{source}"));
    match rooted.trim_start_matches('/') {
        "" => ".".to_string(),
        rel => rel.to_string(),
    }
}

/// The names in `dir`, sorted; nothing if it is not a readable directory (a wildcard
/// then simply matches nothing there).
fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Feeds one length-prefixed field, so that no two different entries hash alike.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn hash_entry(hasher: &mut Sha256, rel: &Path, path: &Path, meta: &Metadata) -> Result<()> {
    let file_type = meta.file_type();
    let kind: &[u8] = if file_type.is_dir() {
        b"dir"
    } else if file_type.is_symlink() {
        b"symlink"
    } else if file_type.is_file() {
        b"file"
    } else {
        b"other"
    };
    field(hasher, rel.as_os_str().as_bytes());
    field(hasher, kind);
    field(hasher, &(meta.mode() & 0o7777).to_le_bytes());
    field(hasher, &meta.uid().to_le_bytes());
    field(hasher, &meta.gid().to_le_bytes());
    if file_type.is_symlink() {
        let target = fs::read_link(path).map_err(io_err("read symlink", path.display()))?;
        field(hasher, target.as_os_str().as_bytes());
    }
    if file_type.is_file() {
        hasher.update(meta.len().to_le_bytes());
        let mut content = exact(open_nofollow(path)?, meta);
        io::copy(&mut content, hasher).map_err(io_err("read", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                (path, e.header().entry_type(), link)
            })
            .collect()
    }

    fn names(entries: &[(String, tar::EntryType, Option<String>)]) -> Vec<&str> {
        entries.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    #[test]
    fn pack_applies_dockerignore_but_keeps_build_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            ".dockerignore",
            "*.log\nsecret\nDockerfile\n.dockerignore\n",
        );
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "app/main.c", "int main;");
        write(root, "app/debug.log", "x");
        write(root, "top.log", "x");
        write(root, "secret/key", "x");
        symlink("app/main.c", root.join("link")).unwrap();
        symlink("/etc/passwd", root.join("abs-link")).unwrap();

        let mut out = Vec::new();
        let name = pack(root, &root.join("Dockerfile"), &mut out).unwrap();
        assert_eq!(name, "Dockerfile");
        let entries = tar_entries(&out);
        assert_eq!(
            names(&entries),
            [
                ".dockerignore",
                "Dockerfile",
                "abs-link",
                "app",
                "app/debug.log",
                "app/main.c",
                "link"
            ]
        );
        let link = entries.iter().find(|e| e.0 == "link").unwrap();
        assert_eq!(link.1, tar::EntryType::Symlink);
        assert_eq!(link.2.as_deref(), Some("app/main.c"));
        let abs = entries.iter().find(|e| e.0 == "abs-link").unwrap();
        assert_eq!(
            abs.2.as_deref(),
            Some("/etc/passwd"),
            "symlinks are never followed"
        );
    }

    #[test]
    fn pack_keeps_modes_owners_and_mtimes_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "run.sh", "#!/bin/sh\n");
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o751)).unwrap();
        nix::unistd::chown(&root.join("run.sh"), Some(1234.into()), Some(567.into())).unwrap();
        let mut first = Vec::new();
        pack(root, &root.join("Dockerfile"), &mut first).unwrap();
        let mut second = Vec::new();
        pack(root, &root.join("Dockerfile"), &mut second).unwrap();
        assert_eq!(first, second);

        let mut archive = tar::Archive::new(first.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        let header = entry.header();
        let meta = fs::metadata(root.join("run.sh")).unwrap();
        assert_eq!(header.mode().unwrap() & 0o7777, 0o751);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (1234, 567));
        assert_eq!(header.mtime().unwrap() as i64, meta.mtime());
    }

    #[test]
    fn pack_with_dockerfile_outside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ctx/a.txt", "a");
        write(dir.path(), "other.Dockerfile", "FROM busybox\n");
        let ctx = dir.path().join("ctx");
        let mut out = Vec::new();
        let name = pack(&ctx, &ctx.join("../other.Dockerfile"), &mut out).unwrap();
        assert!(name.starts_with(".dockerfile."), "{name}");
        let mut archive = tar::Archive::new(out.as_slice());
        let mut found = None;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_string_lossy() == name {
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                found = Some(text);
            }
        }
        assert_eq!(found.as_deref(), Some("FROM busybox\n"));
    }

    #[test]
    fn pack_keeps_a_dockerfile_inside_an_ignored_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".dockerignore", "build\n");
        write(root, "build/Dockerfile", "FROM x\n");
        write(root, "build/other", "x");
        let mut out = Vec::new();
        let name = pack(root, &root.join("build/Dockerfile"), &mut out).unwrap();
        assert_eq!(name, "build/Dockerfile");
        assert_eq!(
            names(&tar_entries(&out)),
            [".dockerignore", "build/Dockerfile"]
        );
    }

    fn context() -> (tempfile::TempDir, Context) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".dockerignore", "*.secret\nlogs\n!logs/keep.log\n");
        write(root, "a.txt", "a");
        write(root, "b.txt", "b");
        write(root, "c.md", "c");
        write(root, "pw.secret", "x");
        write(root, "src/main.rs", "fn main() {}");
        write(root, "src/inner/x.txt", "x");
        write(root, "logs/keep.log", "k");
        write(root, "logs/drop.log", "d");
        symlink("a.txt", root.join("link-in")).unwrap();
        symlink("../../etc", root.join("link-out")).unwrap();
        symlink("/etc/passwd", root.join("link-abs")).unwrap();
        let ctx = Context::open(root).unwrap();
        (dir, ctx)
    }

    fn rels(sources: &[Source]) -> Vec<&str> {
        sources.iter().map(|s| s.rel.as_str()).collect()
    }

    #[test]
    fn resolve_plain_paths_clamped_at_the_root() {
        let (_dir, ctx) = context();
        let found = ctx
            .resolve(&[
                "/a.txt".into(),
                "./src".into(),
                "../../../b.txt".into(),
                ".".into(),
            ])
            .unwrap();
        assert_eq!(rels(&found), ["a.txt", "src", "b.txt", "."]);
        assert!(!found[0].is_dir && found[1].is_dir && found[3].is_dir);
        assert_eq!(found[0].path, ctx.root().join("a.txt"));
        assert_eq!(found[3].path, ctx.root());
    }

    #[test]
    fn resolve_wildcards() {
        let (_dir, ctx) = context();
        let found = ctx
            .resolve(&["*.txt".into(), "s?c/*/x.[st]xt".into()])
            .unwrap();
        assert_eq!(rels(&found), ["a.txt", "b.txt", "src/inner/x.txt"]);
        let found = ctx.resolve(&["*.*".into()]).unwrap();
        assert_eq!(
            rels(&found),
            [".dockerignore", "a.txt", "b.txt", "c.md"],
            "excluded files do not match"
        );
        let found = ctx.resolve(&["lo*".into()]).unwrap();
        assert_eq!(rels(&found), ["logs"], "logs holds a re-included file");
        // A match that leads out of the context is refused, not skipped.
        assert!(matches!(
            ctx.resolve(&["*".into()]),
            Err(Error::SourceEscapes(_))
        ));
    }

    #[test]
    fn resolve_errors() {
        let (_dir, ctx) = context();
        let err = ctx.resolve(&["missing.txt".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"
        );
        assert!(matches!(
            ctx.resolve(&["pw.secret".into()]),
            Err(Error::SourceNotFound(_))
        ));
        assert!(matches!(
            ctx.resolve(&["logs/drop.log".into()]),
            Err(Error::SourceNotFound(_))
        ));
        assert!(ctx.resolve(&["logs/keep.log".into()]).is_ok());
        assert!(matches!(
            ctx.resolve(&["*.nothing".into()]),
            Err(Error::SourceNotFound(_))
        ));
        assert!(matches!(ctx.resolve(&[]), Err(Error::NoSources)));
        assert!(matches!(
            ctx.resolve(&["link-out".into()]),
            Err(Error::SourceEscapes(_))
        ));
        assert!(matches!(
            ctx.resolve(&["link-abs".into()]),
            Err(Error::SourceEscapes(_))
        ));
        assert!(matches!(
            ctx.resolve(&["link-out/passwd".into()]),
            Err(Error::SourceEscapes(_))
        ));
    }

    #[test]
    fn resolve_follows_symlinks_inside_the_context() {
        let (_dir, ctx) = context();
        let found = ctx.resolve(&["link-in".into()]).unwrap();
        assert_eq!(found[0].rel, "link-in");
        assert_eq!(found[0].real_rel, "a.txt");
        assert_eq!(found[0].path, ctx.root().join("a.txt"));
    }

    #[test]
    fn hash_follows_content_and_mode_not_mtime() {
        let (_dir, ctx) = context();
        let root = ctx.root().to_path_buf();
        let sources = ctx.resolve(&[".".into()]).unwrap();
        let first = ctx.hash(&sources).unwrap();
        assert_eq!(first, ctx.hash(&sources).unwrap());

        let file = File::options()
            .write(true)
            .open(root.join("src/main.rs"))
            .unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(first, ctx.hash(&sources).unwrap(), "mtimes do not count");

        write(&root, "pw.secret", "changed");
        write(&root, "logs/drop.log", "changed");
        assert_eq!(
            first,
            ctx.hash(&sources).unwrap(),
            "excluded files do not count"
        );

        fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o600)).unwrap();
        let moded = ctx.hash(&sources).unwrap();
        assert_ne!(first, moded);

        write(&root, "src/main.rs", "fn main() { }");
        fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(moded, ctx.hash(&sources).unwrap());

        let a = ctx.resolve(&["a.txt".into()]).unwrap();
        let b = ctx.resolve(&["b.txt".into()]).unwrap();
        assert_ne!(ctx.hash(&a).unwrap(), ctx.hash(&b).unwrap());
    }
}
