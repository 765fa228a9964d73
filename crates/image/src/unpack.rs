//! Unpacking one layer tar into its own snapshot directory, safely.
//!
//! Layers are hostile input. Every path is resolved one way: the parent directory of an
//! entry is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`
//! relative to the snapshot root, so `..`, absolute symlinks and symlinks planted by earlier
//! entries all stay inside the root (as if chrooted there); the entry itself is then made
//! with `*at` calls on that directory fd that never follow a final symlink. Entry names that
//! climb above the root with `..` are refused outright, as are hard links whose target does.
//! The whole decompressed stream is counted, so a tar bomb stops at the configured limit.
//!
//! Whiteouts become overlayfs whiteouts: `.wh.<name>` a 0/0 character device `<name>`,
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    self, fchmod, fstatat, futimens, makedev, mkdirat, mknodat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{Error, Result};
use crate::idmap::IdMap;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// File contents are copied through a buffer this large: one write per 256 KiB, not per 8.
const COPY_BUF: usize = 256 << 10;

/// Bounds on what one layer may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of uncompressed tar stream (headers and contents).
    pub max_bytes: u64,
    /// Number of tar entries.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

/// What unpacking found.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Its length.
    pub size: u64,
    pub entries: u64,
}

/// Unpacks a layer blob (any supported compression) into the empty directory `dest`.
pub fn unpack_layer(blob: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked> {
    unpack_layer_as(blob, dest, limits, &IdMap::default())
}

/// As `unpack_layer`, with owners shifted into the host ranges of `ids`.
pub fn unpack_layer_as(
    blob: impl Read,
    dest: &Path,
    limits: &Limits,
    ids: &IdMap,
) -> Result<Unpacked> {
    let tar_stream = crate::manifest::decompress(blob)?;
    let limited = LimitedReader {
        inner: tar_stream,
        left: limits.max_bytes,
        limit: limits.max_bytes,
    };
    let mut hashing = HashingReader::new(limited, Algorithm::Sha256);
    let root = open_root(dest)?;
    let entries = {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut unpacker = Unpacker {
            root: root.as_fd(),
            limits,
            ids,
            entries: 0,
            dir_times: Vec::new(),
            last_parent: None,
            buf: vec![0; COPY_BUF],
        };
        unpacker.run(&mut archive)?;
        unpacker.entries
    };
    let (diff_id, size) = hashing.finish().map_err(tar_error)?;
    Ok(Unpacked {
        diff_id,
        size,
        entries,
    })
}

fn open_root(dest: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dest,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open {}", dest.display()))(e.into()))
}

/// Errors from the stream: the limit reader's own error becomes `LayerLimit`.
fn tar_error(e: io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<LimitExceeded>()) {
        Some(l) => Error::LayerLimit {
            what: "uncompressed size",
            limit: l.0,
        },
        None => Error::LayerTar(e.to_string()),
    }
}

#[derive(Debug)]
struct LimitExceeded(u64);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "layer larger than {} bytes", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

struct LimitedReader<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(LimitExceeded(self.limit)));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A normalised entry name: components without "", "." or "..".
struct EntryPath {
    parent: Vec<Vec<u8>>,
    name: Vec<u8>,
}

/// Cleans a tar path. Leading '/' is dropped (layers are relative to their root, as in
/// Docker); a ".." that climbs above the root is refused, not clamped, since no honest
/// layer has one.
fn clean_path(raw: &[u8]) -> std::result::Result<Option<EntryPath>, String> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err("path climbs above the layer root with '..'".into());
                }
            }
            c => parts.push(c.to_vec()),
        }
    }
    if raw.contains(&0) {
        return Err("NUL byte in path".into());
    }
    Ok(parts.pop().map(|name| EntryPath {
        parent: parts,
        name,
    }))
}

fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn sys(what: &str, entry: &str) -> impl FnOnce(Errno) -> Error {
    let context = format!("{what} {entry:?}");
    move |e| Error::io(context)(e.into())
}

struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    limits: &'a Limits,
    ids: &'a IdMap,
    entries: u64,
    /// Directory mtimes, set last: creating their children would change them again.
    dir_times: Vec<(Vec<u8>, u64)>,
    /// The directory the previous entry went into, by its cleaned path: a tar lists a
    /// directory's entries together, so most entries reuse it instead of resolving their
    /// path again. Forgotten whenever anything is removed, since a removal can put something
    /// else at that path (the fd itself can only ever name a directory inside the root).
    last_parent: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// File contents pass through here.
    buf: Vec<u8>,
}

/// The metadata of an entry, with PAX overrides applied.
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Unpacker<'_> {
    /// The layer's owner as the host stores it for this daemon's user namespace.
    fn shift_owner(&self, meta: &mut Meta) -> std::result::Result<(), String> {
        let id = |v: u64| u32::try_from(v).ok();
        let host = match (id(meta.uid), id(meta.gid)) {
            (Some(u), Some(g)) => self.ids.to_host(u, g),
            _ => None,
        };
        let (uid, gid) = host.ok_or_else(|| {
            format!(
                "owner {}:{} is outside the ids this daemon's user namespace maps \
                 (userns-remap): {}",
                meta.uid,
                meta.gid,
                crate::idmap::WIDEN_RANGES
            )
        })?;
        (meta.uid, meta.gid) = (uid.into(), gid.into());
        Ok(())
    }

    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<()> {
        for entry in archive.entries().map_err(tar_error)? {
            let mut entry = entry.map_err(tar_error)?;
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(Error::LayerLimit {
                    what: "entry count",
                    limit: self.limits.max_entries,
                });
            }
            self.entry(&mut entry)?;
        }
        self.set_dir_times()
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let name = display(&raw);
        let hostile = |reason: String| Error::HostileLayer {
            entry: name.clone(),
            reason,
        };
        let mut meta = read_meta(entry).map_err(tar_error)?;
        self.shift_owner(&mut meta).map_err(hostile)?;
        let Some(path) = clean_path(&raw).map_err(hostile)? else {
            // The root itself ("./"): only its ownership and mode matter.
            return self.apply_meta(self.root, None, &meta, &name, true);
        };
        let parent = self.open_parent(&path.parent, &name)?;
        let base = path.name.as_slice();
        if base == OPAQUE_WHITEOUT.as_bytes() {
            return set_xattr(&parent, None, b"trusted.overlay.opaque", b"y", true)
                .map_err(sys("mark opaque", &name));
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes())
                || hidden.is_empty()
                || hidden == b"."
                || hidden == b".."
            {
                // Other AUFS metadata (.wh..wh.plnk and such) has no overlay meaning.
                return Ok(());
            }
            let whiteout = || {
                mknodat(
                    &*parent,
                    hidden,
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    makedev(0, 0),
                )
            };
            return self
                .make(&parent, hidden, false, whiteout)
                .map_err(sys("create whiteout", &name));
        }
        match kind {
            T::Directory => {
                let mkdir = || mkdirat(&*parent, base, Mode::from_bits_truncate(0o700));
                match self.make(&parent, base, true, mkdir) {
                    // An existing directory stays: the entry only updates its metadata.
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys("mkdir", &name)(e)),
                }
                self.dir_times.push((clean_joined(&path), meta.mtime));
                self.apply_meta(parent.as_fd(), Some(base), &meta, &name, false)
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.regular(&parent, base, entry, &meta, &name)
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile("symlink without target".into()))?;
                let target = CString::new(target.into_owned())
                    .map_err(|_| hostile("NUL in symlink target".into()))?;
                // The target is stored as is: it is never followed while unpacking.
                self.make(&parent, base, false, || {
                    symlinkat(target.as_c_str(), &*parent, base)
                })
                .map_err(sys("symlink", &name))?;
                self.apply_meta(parent.as_fd(), Some(base), &meta, &name, false)
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile("hard link without target".into()))?;
                let target = clean_path(&target)
                    .map_err(|r| hostile(format!("hard link target: {r}")))?
                    .ok_or_else(|| hostile("hard link to the layer root".into()))?;
                let tparent = self.open_parent(&target.parent, &name)?;
                let link = || {
                    linkat(
                        &*tparent,
                        target.name.as_slice(),
                        &*parent,
                        base,
                        AtFlags::empty(),
                    )
                };
                self.make(&parent, base, false, link)
                    .map_err(sys("hard link", &name))
            }
            T::Char | T::Block | T::Fifo => {
                let (sflag, dev) = match kind {
                    T::Char => (SFlag::S_IFCHR, device(entry)?),
                    T::Block => (SFlag::S_IFBLK, device(entry)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                let mknod = || mknodat(&*parent, base, sflag, Mode::from_bits_truncate(0o600), dev);
                self.make(&parent, base, false, mknod)
                    .map_err(sys("mknod", &name))?;
                self.apply_meta(parent.as_fd(), Some(base), &meta, &name, false)
            }
            other => Err(Error::LayerTar(format!(
                "entry {name:?} has unsupported type {other:?}"
            ))),
        }
    }

    fn regular<R: Read>(
        &mut self,
        parent: &OwnedFd,
        base: &[u8],
        entry: &mut tar::Entry<R>,
        meta: &Meta,
        name: &str,
    ) -> Result<()> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = || openat(parent, base, flags, Mode::from_bits_truncate(0o600));
        let fd = self
            .make(parent, base, false, create)
            .map_err(sys("create", name))?;
        let mut file = File::from(fd);
        copy_through(entry, &mut file, &mut self.buf).map_err(tar_error)?;
        apply_owner_mode(&file, meta).map_err(sys("set owner and mode of", name))?;
        for (k, v) in &meta.xattrs {
            set_xattr(parent, Some(base), k, v, false).map_err(sys("set xattr on", name))?;
        }
        let t = TimeSpec::new(meta.mtime as i64, 0);
        futimens(&file, &t, &t).map_err(sys("set mtime of", name))
    }

    /// Makes an entry with `create`; if something is already at `base`, clears the way as
    /// `clear` does and tries once more. (Trying first saves a stat per entry: in a fresh
    /// snapshot nothing is ever in the way but what this same layer made.)
    fn make<T>(
        &mut self,
        parent: &OwnedFd,
        base: &[u8],
        is_dir: bool,
        create: impl Fn() -> nix::Result<T>,
    ) -> nix::Result<T> {
        match create() {
            Err(Errno::EEXIST) => {
                self.clear(parent, base, is_dir)?;
                create()
            }
            r => r,
        }
    }

    /// Opens (creating as 0755 directories where missing) the directory `parts` inside the
    /// root. Resolution never leaves the root.
    fn open_parent(&mut self, parts: &[Vec<u8>], name: &str) -> Result<Rc<OwnedFd>> {
        let path = parts.join(&b'/');
        if let Some((p, fd)) = &self.last_parent {
            if *p == path {
                return Ok(fd.clone());
            }
        }
        let fd = Rc::new(self.resolve_parent(parts, &path, name)?);
        self.last_parent = Some((path, fd.clone()));
        Ok(fd)
    }

    fn resolve_parent(&self, parts: &[Vec<u8>], path: &[u8], name: &str) -> Result<OwnedFd> {
        match resolve_in_root(self.root, path) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.resolve_error(e, name)),
        }
        let mut dir = resolve_in_root(self.root, b".").map_err(|e| self.resolve_error(e, name))?;
        for i in 0..parts.len() {
            let prefix = parts[..=i].join(&b'/');
            dir = match resolve_in_root(self.root, &prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match mkdirat(&dir, parts[i].as_slice(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(sys("create parent of", name)(e)),
                    }
                    resolve_in_root(self.root, &prefix).map_err(|e| self.resolve_error(e, name))?
                }
                Err(e) => return Err(self.resolve_error(e, name)),
            };
        }
        Ok(dir)
    }

    fn resolve_error(&self, e: Errno, name: &str) -> Error {
        match e {
            Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV | Errno::ENOENT => Error::HostileLayer {
                entry: name.to_string(),
                reason: format!(
                    "its parent does not resolve to a directory inside the layer ({e})"
                ),
            },
            e => sys("resolve parent of", name)(e),
        }
    }

    /// Makes room for an entry: whatever is at `base` goes, unless both are directories
    /// (then the tar entry only updates its metadata).
    fn clear(&mut self, parent: &OwnedFd, base: &[u8], is_dir: bool) -> nix::Result<()> {
        let st = match fstatat(parent, base, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        let existing_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if existing_dir && is_dir {
            return Ok(());
        }
        self.last_parent = None;
        if existing_dir {
            // std's remove_dir_all walks with openat and does not follow symlinks.
            let path = proc_fd_path(parent, Some(base));
            return std::fs::remove_dir_all(OsStr::from_bytes(path.as_bytes()))
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        unlinkat(parent, base, UnlinkatFlags::NoRemoveDir)
    }

    /// Ownership, mode, xattrs and (for non-directories) mtime of an existing entry, never
    /// following a symlink at `base`.
    fn apply_meta(
        &self,
        parent: BorrowedFd,
        base: Option<&[u8]>,
        meta: &Meta,
        name: &str,
        is_root: bool,
    ) -> Result<()> {
        let target: &[u8] = base.unwrap_or(b".");
        let st =
            fstatat(parent, target, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys("stat", name))?;
        let is_link = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK;
        fchownat(
            parent,
            target,
            Some(Uid::from_raw(meta.uid as u32)),
            Some(Gid::from_raw(meta.gid as u32)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys("chown", name))?;
        if !is_link {
            // After chown, which clears set-id bits. fchmodat cannot skip symlinks on all
            // kernels, so a non-link is opened without following and chmodded by fd.
            let fd = openat(
                parent,
                target,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("open", name))?;
            let path = proc_fd_path(&fd, None);
            stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                OsStr::from_bytes(path.as_bytes()),
                Mode::from_bits_truncate(meta.mode),
                stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(sys("chmod", name))?;
        }
        for (k, v) in &meta.xattrs {
            match set_xattr(&parent, base, k, v, false) {
                // user.* xattrs are not allowed on symlinks; nothing to preserve there.
                Err(Errno::EPERM) if is_link => {}
                r => r.map_err(sys("set xattr on", name))?,
            }
        }
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if !is_dir && !is_root {
            let t = TimeSpec::new(meta.mtime as i64, 0);
            stat::utimensat(parent, target, &t, &t, UtimensatFlags::NoFollowSymlink)
                .map_err(sys("set mtime of", name))?;
        }
        Ok(())
    }

    fn set_dir_times(&self) -> Result<()> {
        // Deepest first, so setting a child's time does not disturb its parent's.
        let mut dirs = self.dir_times.clone();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count()));
        for (path, mtime) in dirs {
            let name = display(&path);
            let how = OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(resolve_flags());
            let fd = match openat2(self.root, path.as_slice(), how) {
                Ok(fd) => fd,
                // Replaced by a later entry or whited out: nothing to date.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(e) => return Err(sys("open", &name)(e)),
            };
            let t = TimeSpec::new(mtime as i64, 0);
            futimens(&fd, &t, &t).map_err(sys("set mtime of", &name))?;
        }
        Ok(())
    }
}

fn clean_joined(p: &EntryPath) -> Vec<u8> {
    let mut all = p.parent.clone();
    all.push(p.name.clone());
    all.join(&b'/')
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV
}

/// Opens directory `path` as if `root` were `/`: no component, symlink or `..` leads out.
pub(crate) fn resolve_in_root(root: BorrowedFd, path: &[u8]) -> nix::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve_flags());
    openat2(root, path, how)
}

fn device<R: Read>(entry: &tar::Entry<R>) -> Result<u64> {
    let h = entry.header();
    let major = h.device_major().map_err(tar_error)?.unwrap_or(0);
    let minor = h.device_minor().map_err(tar_error)?.unwrap_or(0);
    Ok(makedev(major.into(), minor.into()))
}

fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<Meta> {
    let h = entry.header();
    // Empty numeric fields read as 0, as Go's archive/tar (which wrote most layers) does.
    let mut meta = Meta {
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        mode: h.mode()? & 0o7777,
        mtime: h.mtime().unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let num = || {
                std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
            };
            match key {
                "uid" => meta.uid = num().unwrap_or(meta.uid),
                "gid" => meta.gid = num().unwrap_or(meta.gid),
                "mtime" => meta.mtime = num().unwrap_or(meta.mtime),
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.as_bytes().to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}

/// Copies an entry's contents into `file` in writes of up to `buf.len()` bytes.
fn copy_through(from: &mut impl Read, file: &mut File, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let filled = read_up_to(from, buf)?;
        if filled == 0 {
            return Ok(());
        }
        file.write_all(&buf[..filled])?;
    }
}

/// Fills `buf` from `reader` as far as it goes (short only at the end); returns how much.
pub fn read_up_to<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn apply_owner_mode(file: &File, meta: &Meta) -> nix::Result<()> {
    nix::unistd::fchown(
        file,
        Some(Uid::from_raw(meta.uid as u32)),
        Some(Gid::from_raw(meta.gid as u32)),
    )?;
    fchmod(file, Mode::from_bits_truncate(meta.mode))
}

/// `/proc/self/fd/<fd>[/<name>]`: names an entry of a directory we hold open, for the calls
/// that have no `*at` form. The magic link resolves to that very directory, wherever it is.
fn proc_fd_path(fd: &impl AsRawFd, name: Option<&[u8]>) -> CString {
    let mut p = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    if let Some(n) = name {
        p.push(b'/');
        p.extend_from_slice(n);
    }
    CString::new(p).expect("no NUL: names were checked")
}

/// Sets an xattr on `name` in directory `dir` (or on `dir` itself), never following a
/// symlink at `name`.
fn set_xattr(
    dir: &impl AsRawFd,
    name: Option<&[u8]>,
    key: &[u8],
    value: &[u8],
    on_dir: bool,
) -> nix::Result<()> {
    let path = proc_fd_path(dir, name);
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    // SAFETY: path and key are NUL-terminated C strings that outlive the call; value is a
    // valid slice of value.len() bytes. lsetxattr does not follow a final symlink; for the
    // directory itself the final component is the /proc magic link, which must be followed.
    let rc = unsafe {
        if on_dir || name.is_none() {
            libc::setxattr(
                path.as_ptr(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        } else {
            libc::lsetxattr(
                path.as_ptr(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        }
    };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        let c = |s: &str| clean_path(s.as_bytes()).map(|o| o.map(|p| display(&clean_joined(&p))));
        assert_eq!(c("./a/b/").unwrap().unwrap(), "a/b");
        assert_eq!(c("/etc/passwd").unwrap().unwrap(), "etc/passwd");
        assert_eq!(c("a/../b").unwrap().unwrap(), "b");
        assert!(c("./").unwrap().is_none());
        assert!(c("../x").is_err());
        assert!(c("a/../../x").is_err());
    }
}
