//! `docker cp` and `docker export` on a container's root filesystem: the stat of a path,
//! a tar of a path or of the whole tree, and a tar extracted into a directory.
//!
//! Paths are those the container sees: the directory part is resolved with
//! `RESOLVE_IN_ROOT` from the root (symlinks included, never leading out), and the last
//! name is taken as it is (a symlink there is the link itself, as Docker does). Walking a
//! tree opens every entry from its directory's descriptor without following symlinks, so a
//! container changing its files meanwhile cannot send the walk outside its root.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::Mode;

use super::archive::{self, Rules};
use super::in_root::{self, join_in_root, open_root};
use crate::context::exact;
use crate::error::{io_err, Error, Result};
use crate::ignore::clean;
use berth_image::IdMap;

/// What Docker's `X-Docker-Container-Path-Stat` says of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The last name of the path as asked (`.` for `dir/.`, `/` for the root).
    pub name: String,
    pub size: u64,
    /// Go's `os.FileMode` bits, which the docker CLI reads.
    pub mode: u32,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// For a symlink, where it points inside the container (absolute); empty otherwise.
    pub link_target: String,
}

/// A path inside the root: the descriptor of its directory and its last name.
struct Located {
    dir: OwnedFd,
    dir_rel: Vec<u8>,
    /// `.` for the directory itself (`dir/.`, `dir/`, `/`).
    name: OsString,
    /// The name Docker reports and archives it as (`.` for `dir/.`, `/` for the root).
    base: String,
    shown: String,
}

impl Located {
    fn find(root: &OwnedFd, path: &str) -> Result<Located> {
        if path.is_empty() {
            return Err(Error::Invalid(
                "no path given: name a path in the container".into(),
            ));
        }
        let cleaned = clean(&format!("/{path}"));
        let contents = path.ends_with("/.") || path == ".";
        // `dir/` follows a symlink `dir` as Docker does: the directory itself is meant.
        let whole_dir = contents || cleaned == "/" || path.ends_with('/');
        let base = match cleaned.rsplit_once('/') {
            _ if contents => ".",
            _ if cleaned == "/" => "/",
            Some((_, name)) => name,
            None => &cleaned,
        }
        .to_string();
        let (dir_rel, name) = if whole_dir {
            (cleaned.trim_start_matches('/').to_string(), ".".to_string())
        } else {
            let (dir, name) = cleaned.rsplit_once('/').unwrap_or(("", &cleaned));
            (dir.trim_start_matches('/').to_string(), name.to_string())
        };
        let missing = || Error::PathNotFound(path.to_string());
        let dir = in_root::open_dir(root, dir_rel.as_bytes()).map_err(|e| match e {
            Errno::ENOTDIR if path.ends_with('/') => {
                Error::Invalid(format!("{path} is not a directory: drop the trailing /"))
            }
            Errno::ENOENT | Errno::ENOTDIR => missing(),
            e => io_err("open", &cleaned)(e),
        })?;
        let located = Located {
            dir,
            dir_rel: dir_rel.into_bytes(),
            name: name.into(),
            base,
            shown: cleaned,
        };
        located.metadata().map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => missing(),
            _ => Error::io(format!("stat {}", located.shown), e),
        })?;
        Ok(located)
    }

    fn metadata(&self) -> io::Result<Metadata> {
        entry_metadata(&self.dir, &self.name)
    }
}

/// The metadata of `dir/name` itself (a symlink is not followed).
fn entry_metadata(dir: &OwnedFd, name: &OsStr) -> io::Result<Metadata> {
    let fd = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    File::from(fd).metadata()
}

/// The stat of `path` in the root filesystem `rootfs`.
pub fn stat_path(rootfs: &Path, path: &str) -> Result<PathStat> {
    let root = open_root(rootfs)?;
    let at = Located::find(&root, path)?;
    let meta = at.metadata().map_err(io_err("stat", &at.shown))?;
    let link_target = if meta.file_type().is_symlink() {
        let target = readlinkat(&at.dir, at.name.as_os_str()).map_err(io_err("read", &at.shown))?;
        let rel = join_in_root(&at.dir_rel, target.as_bytes());
        format!("/{}", String::from_utf8_lossy(&rel))
    } else {
        String::new()
    };
    Ok(PathStat {
        name: at.base.clone(),
        size: meta.size(),
        mode: go_file_mode(meta.mode()),
        mtime: (meta.mtime(), meta.mtime_nsec() as u32),
        link_target,
    })
}

/// Go's `os.FileMode` for a Unix `st_mode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    for (bit, go) in [
        (libc::S_ISUID, 1 << 23),
        (libc::S_ISGID, 1 << 22),
        (libc::S_ISVTX, 1 << 20),
    ] {
        if st_mode & bit != 0 {
            mode |= go;
        }
    }
    mode
}

/// Writes a tar of `path` (a file, or a directory with all it holds) to `out`, its
/// entries named from the path's last name (`dir/.`: the directory's own entry is `./`,
/// its contents are named as they are).
pub fn archive_path(rootfs: &Path, path: &str, out: impl Write) -> Result<()> {
    archive_path_as(rootfs, path, None, &IdMap::default(), out)
}

/// `archive_path` with the entries named from `rename` instead (`docker cp` to a new
/// name): for `dir/.`, the directory's entry is `rename` and its contents are under it.
/// Owners are written as the container sees them (`ids`: its user namespace).
pub fn archive_path_as(
    rootfs: &Path,
    path: &str,
    rename: Option<&str>,
    ids: &IdMap,
    out: impl Write,
) -> Result<()> {
    let root = open_root(rootfs)?;
    let at = Located::find(&root, path)?;
    let mut a = Archiver::new(out, ids);
    // `dir/` is archived as `dir`, `/` as `.` with its contents.
    let rename = rename.or((at.base != "." && at.base != "/").then_some(at.base.as_str()));
    match (at.name == ".", rename) {
        (true, None) => {
            let meta = at.metadata().map_err(io_err("stat", &at.shown))?;
            let mut header = header_for(&meta, ids);
            set_raw_name(&mut header, b"./");
            header.set_cksum();
            a.tar
                .append(&header, io::empty())
                .map_err(io_err("archive", &at.shown))?;
            let dir = open_subdir(&at.dir, OsStr::new("."), &at.shown)?;
            a.children(&dir, Path::new(""), &at.shown)?;
        }
        (_, rename) => {
            let name = PathBuf::from(rename.map_or(at.name.as_os_str(), OsStr::new));
            a.entry(&at.dir, &at.name, &name, &at.shown)?;
        }
    }
    a.finish(&at.shown)
}

/// Writes a tar of the whole root filesystem (`docker export`): every entry named from
/// the root, without an entry for the root itself; owners as the container sees them.
pub fn export(rootfs: &Path, ids: &IdMap, out: impl Write) -> Result<()> {
    let root = open_root(rootfs)?;
    let mut a = Archiver::new(out, ids);
    a.children(&root, Path::new(""), "/")?;
    a.finish("/")
}

/// Extracts the tar stream `input` into the directory `dir` of the root filesystem; every
/// entry's owner is `chown` if given, shifted into the container's user namespace (`ids`).
/// The directory must exist.
pub fn extract_into(
    rootfs: &Path,
    dir: &str,
    input: impl Read,
    no_overwrite_dir_non_dir: bool,
    chown: Option<(u32, u32)>,
    ids: &IdMap,
) -> Result<()> {
    let root = open_root(rootfs)?;
    let at = Located::find(&root, dir)?;
    // A symlink to a directory is followed, inside the root, as Docker does.
    let rel = [at.dir_rel.as_slice(), b"/", at.name.as_bytes()].concat();
    let dest = match in_root::open_dir(&root, &rel) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(Error::PathNotFound(dir.to_string())),
        Err(Errno::ENOTDIR) => {
            return Err(Error::Invalid(format!(
                "extraction point {dir} is not a directory: copy into a directory"
            )))
        }
        Err(e) => return Err(io_err("open", &at.shown)(e)),
    };
    let rules = Rules {
        no_overwrite_dir_non_dir,
        chown,
        ids: Some(ids),
    };
    let shown = at.shown.clone();
    let fail =
        move |reason: String| Error::Invalid(format!("cannot extract into {shown}: {reason}"));
    archive::extract_from(input, &dest, &rules, &fail)
}

fn header_for(meta: &Metadata, ids: &IdMap) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    let (uid, gid) = ids.to_container(meta.uid(), meta.gid());
    header.set_uid(uid.into());
    header.set_gid(gid.into());
    if !meta.is_file() {
        header.set_size(0);
    }
    header
}

/// Names the header `name` directly, for the `./` entry the tar crate will not write.
fn set_raw_name(header: &mut tar::Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

fn open_subdir(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(dir, name, flags, Mode::empty()).map_err(io_err("open", shown))
}

/// The names in `dir`, sorted so that an archive is the same each time.
fn list(dir: &OwnedFd, shown: &str) -> Result<Vec<OsString>> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open", shown))?;
    let mut listing = nix::dir::Dir::from_fd(fd).map_err(io_err("list", shown))?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(io_err("list", shown))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    names.sort();
    Ok(names)
}

/// A tar being written from a container's files: owners as the container sees them, and
/// a file with several names archived once, its other names as hard links to the first.
struct Archiver<'a, W: Write> {
    tar: tar::Builder<W>,
    ids: &'a IdMap,
    /// The tar name each multiply-linked file (device, inode) was first archived under.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<'a, W: Write> Archiver<'a, W> {
    fn new(out: W, ids: &'a IdMap) -> Self {
        Archiver {
            tar: tar::Builder::new(out),
            ids,
            links: HashMap::new(),
        }
    }

    fn finish(self, shown: &str) -> Result<()> {
        self.tar
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io_err("archive", shown))
    }

    /// Appends every entry of the directory `dir`, named under `prefix`.
    fn children(&mut self, dir: &OwnedFd, prefix: &Path, shown: &str) -> Result<()> {
        for name in list(dir, shown)? {
            let child_shown = format!("{}/{}", shown.trim_end_matches('/'), name.to_string_lossy());
            self.entry(dir, &name, &prefix.join(&name), &child_shown)?;
        }
        Ok(())
    }

    /// Appends `dir/name` as `tar_name`, a directory with everything under it.
    fn entry(&mut self, dir: &OwnedFd, name: &OsStr, tar_name: &Path, shown: &str) -> Result<()> {
        let meta = match entry_metadata(dir, name) {
            Ok(meta) => meta,
            // Gone since it was listed (a running container's files change): not archived.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::io(format!("stat {shown}"), e)),
        };
        let mut header = header_for(&meta, self.ids);
        let file_type = meta.file_type();
        let failed = io_err("archive", shown);
        if file_type.is_dir() {
            self.tar
                .append_data(&mut header, tar_name, io::empty())
                .map_err(failed)?;
            let sub = open_subdir(dir, name, shown)?;
            self.children(&sub, tar_name, shown)
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    let first = first.clone();
                    return self
                        .tar
                        .append_link(&mut header, tar_name, first)
                        .map_err(failed);
                }
                self.links.insert(key, tar_name.to_path_buf());
            }
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
            let file =
                File::from(openat(dir, name, flags, Mode::empty()).map_err(io_err("open", shown))?);
            self.tar
                .append_data(&mut header, tar_name, exact(file, &meta))
                .map_err(failed)
        } else if file_type.is_symlink() {
            let target = readlinkat(dir, name).map_err(io_err("read", shown))?;
            self.tar
                .append_link(&mut header, tar_name, target)
                .map_err(failed)
        } else if file_type.is_socket() {
            // Sockets mean nothing outside their process, as in Docker's archives.
            Ok(())
        } else {
            self.tar
                .append_data(&mut header, tar_name, io::empty())
                .map_err(failed)
        }
    }
}

#[cfg(test)]
#[path = "container_tests.rs"]
mod tests;
