//! File operations inside a root filesystem that may be hostile.
//!
//! A path is only ever resolved by `openat2(RESOLVE_IN_ROOT)` from a descriptor of the
//! root, so `..` and symlinks (absolute or relative) resolve as if the root were `/` and
//! can never lead out of it. Entries are then made with `*at` calls on the descriptor of
//! their directory, never following a symlink in their own name.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::error::{io_err, Error, Result};

/// As many symlinks as Linux follows in one path before giving up with ELOOP.
const MAX_LINKS: u32 = 40;

/// Opens the root filesystem directory itself (a trusted host path).
pub(crate) fn open_root(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(path, dir_flags(), Mode::empty())
        .map_err(io_err("open root filesystem", path.display()))
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// Opens `rel` (relative to `root`, `/`-separated) as if `root` were `/`.
pub(crate) fn open_in_root(root: impl AsFd, rel: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, rel, how)
}

/// Opens directory `rel` inside `root`, following symlinks inside the root.
pub(crate) fn open_dir(root: impl AsFd, rel: &[u8]) -> nix::Result<OwnedFd> {
    open_in_root(root, rel, dir_flags())
}

/// `mkdir -p rel` inside `root`: missing directories are made 0755 and owned by `owner`
/// (root by default); a dangling symlink on the way is followed, inside the root, and its
/// target made. Returns the directory and whether it was made just now.
pub(crate) fn mkdir_all(
    root: &OwnedFd,
    rel: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<(OwnedFd, bool)> {
    mkdir_all_following(root, rel, owner, 0)
}

fn mkdir_all_following(
    root: &OwnedFd,
    rel: &[u8],
    owner: Option<(u32, u32)>,
    links: u32,
) -> Result<(OwnedFd, bool)> {
    let shown = |p: &[u8]| format!("/{}", String::from_utf8_lossy(p));
    let mut dir = open_dir(root, b"").map_err(io_err("open", "/"))?;
    let mut created = false;
    let mut so_far: Vec<u8> = Vec::new();
    for name in rel
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let parent = so_far.clone();
        if !so_far.is_empty() {
            so_far.push(b'/');
        }
        so_far.extend_from_slice(name);
        match open_dir(root, &so_far) {
            Ok(fd) => {
                (dir, created) = (fd, false);
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => {
                return Err(Error::Dest {
                    dest: shown(&so_far),
                    reason: "it exists and is not a directory".into(),
                })
            }
            Err(e) => return Err(io_err("open", shown(&so_far))(e)),
        }
        match mkdirat(&dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {
                let fd = openat(&dir, name, dir_flags() | OFlag::O_NOFOLLOW, Mode::empty())
                    .map_err(io_err("open", shown(&so_far)))?;
                let (uid, gid) = owner.unwrap_or((0, 0));
                set_owner_mode(&fd, uid, gid, 0o755).map_err(io_err("set up", shown(&so_far)))?;
                (dir, created) = (fd, true);
            }
            // Not found, yet there: a symlink to nowhere. Make what it points to.
            Err(Errno::EEXIST) => {
                if links >= MAX_LINKS {
                    return Err(io_err("resolve", shown(&so_far))(Errno::ELOOP));
                }
                let target = readlinkat(&dir, name).map_err(|_| Error::Dest {
                    dest: shown(&so_far),
                    reason: "it exists and is not a directory".into(),
                })?;
                let target = join_in_root(&parent, target.as_bytes());
                mkdir_all_following(root, &target, owner, links + 1)?;
                dir = open_dir(root, &so_far).map_err(io_err("open", shown(&so_far)))?;
                created = true;
            }
            Err(e) => return Err(io_err("make directory", shown(&so_far))(e)),
        }
    }
    Ok((dir, created))
}

/// Where symlink `target` found in directory `parent` points, relative to the root: `..`
/// stops at the root, an absolute target starts from it.
pub(crate) fn join_in_root(parent: &[u8], target: &[u8]) -> Vec<u8> {
    let start: &[u8] = if target.starts_with(b"/") {
        b""
    } else {
        parent
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    let all = start
        .split(|&b| b == b'/')
        .chain(target.split(|&b| b == b'/'));
    for part in all {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join(&b'/')
}

/// Makes sure `dir/name` is a directory (replacing a non-directory, symlinks included)
/// and opens it. Returns whether it was made just now (then with mode 0700, so that
/// nothing can use it before its metadata is set).
pub(crate) fn ensure_dir(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<(OwnedFd, bool)> {
    let made = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if is_dir(st.st_mode) => false,
        Ok(_) => {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(io_err("replace", shown))?;
            true
        }
        Err(Errno::ENOENT) => true,
        Err(e) => return Err(io_err("stat", shown)(e)),
    };
    if made {
        mkdirat(dir, name, Mode::from_bits_truncate(0o700))
            .map_err(io_err("make directory", shown))?;
    }
    let fd = openat(dir, name, dir_flags() | OFlag::O_NOFOLLOW, Mode::empty())
        .map_err(io_err("open", shown))?;
    Ok((fd, made))
}

/// Removes whatever non-directory is at `dir/name` (an empty directory too), so that a
/// new entry can take its place without writing through an old symlink or hard link.
pub(crate) fn remove_existing(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<()> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(io_err("stat", shown)(e)),
        Ok(st) if is_dir(st.st_mode) => match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(()),
            Err(Errno::ENOTEMPTY | Errno::EEXIST) => Err(Error::Dest {
                dest: shown.to_string(),
                reason:
                    "a non-empty directory is in the way of a file; remove it in an earlier step"
                        .into(),
            }),
            Err(e) => Err(io_err("replace", shown)(e)),
        },
        Ok(_) => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(io_err("replace", shown)),
    }
}

/// Creates the new regular file `dir/name` (which must not exist), mode 0600 for now.
pub(crate) fn create_file(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<File> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::from_bits_truncate(0o600))
        .map_err(io_err("create", shown))?;
    Ok(File::from(fd))
}

fn is_dir(mode: u32) -> bool {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Owner, then mode: changing the owner clears set-uid/set-gid bits, so the mode goes last.
pub(crate) fn set_owner_mode(fd: impl AsFd, uid: u32, gid: u32, mode: u32) -> nix::Result<()> {
    fchown(
        fd.as_fd(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )?;
    fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
}

/// Sets the access and modification times of an open file or directory.
pub(crate) fn set_times(fd: impl AsFd, atime: TimeSpec, mtime: TimeSpec) -> nix::Result<()> {
    futimens(fd, &atime, &mtime)
}

/// Owner and times of the entry `dir/name` itself (a symlink is not followed).
pub(crate) fn set_link_meta(
    dir: &OwnedFd,
    name: &OsStr,
    (uid, gid): (u32, u32),
    times: (TimeSpec, TimeSpec),
) -> nix::Result<()> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    fchownat(dir, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    utimensat(
        dir,
        name,
        &times.0,
        &times.1,
        UtimensatFlags::NoFollowSymlink,
    )
}

/// The access and modification times of `meta`.
pub(crate) fn times_of(meta: &Metadata) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(meta.atime(), meta.atime_nsec()),
        TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_in_root_clamps() {
        assert_eq!(join_in_root(b"a/b", b"../../../x"), b"x");
        assert_eq!(join_in_root(b"a/b", b"/etc/./y"), b"etc/y");
        assert_eq!(join_in_root(b"a", b"c/d"), b"a/c/d");
    }
}
