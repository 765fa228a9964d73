//! ADD's archive extraction: a local tar (plain, gzip, bzip2, xz or zstd, told by content, not by
//! name) is unpacked into the destination instead of copied.
//!
//! The destination directory is the root of the extraction: every entry's parent is
//! resolved with `RESOLVE_IN_ROOT` from it, so neither `..` nor absolute names nor
//! symlinks made by earlier entries can lead anywhere outside it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, fstatat, makedev, mknodat, FchmodatFlags, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};

use super::in_root::{self, create_file, ensure_dir, mkdir_all, remove_existing};
use crate::error::{io_err, Error, Result};
use berth_image::unpack::read_up_to;
use berth_image::IdMap;

const BLOCK: usize = 512;

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Whether the file at `path` is a tar archive ADD should unpack, and how it is packed.
pub(crate) fn detect(path: &Path) -> Result<Option<Kind>> {
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut open(path)?, &mut magic).map_err(io_err("read", path.display()))?;
    let kind = match &magic[..n] {
        [0x1f, 0x8b, ..] => Kind::Gzip,
        [b'B', b'Z', b'h', ..] => Kind::Bzip2,
        [0xfd, b'7', b'z', b'X'] => Kind::Xz,
        [0x28, 0xb5, 0x2f, 0xfd] => Kind::Zstd,
        _ => Kind::Tar,
    };
    // A compressed file that is not a tar inside (or that fails to decompress) is copied
    // as it is, like Docker does.
    let Ok(mut reader) = decoder(open(path)?, kind) else {
        return Ok(None);
    };
    let mut first = [0u8; BLOCK];
    match read_up_to(&mut reader, &mut first) {
        Ok(BLOCK) if is_tar_header(&first) => Ok(Some(kind)),
        _ => Ok(None),
    }
}

fn open(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path.display()))
}

fn decoder(file: File, kind: Kind) -> io::Result<Box<dyn Read>> {
    Ok(match kind {
        Kind::Tar => Box::new(file),
        Kind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Kind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(BufReader::new(file))),
        Kind::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(BufReader::new(
            file,
        ))),
        Kind::Zstd => Box::new(zstd::Decoder::new(file)?),
    })
}

/// Whether `block` is a tar header: its checksum field matches its bytes (which also
/// holds for old v7 archives without the `ustar` magic).
fn is_tar_header(block: &[u8; BLOCK]) -> bool {
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    let Ok(Ok(recorded)) = std::str::from_utf8(&digits).map(|d| u32::from_str_radix(d, 8)) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum();
    recorded == sum
}

/// Unpacks the archive at `path` into the directory `dest`.
pub(crate) fn extract(
    path: &Path,
    kind: Kind,
    dest: &OwnedFd,
    shown: &str,
    ids: Option<&IdMap>,
) -> Result<()> {
    let fail = |reason: String| Error::Archive {
        source_name: shown.to_string(),
        reason,
    };
    let reader = decoder(open(path)?, kind).map_err(|e| fail(format!("cannot decompress: {e}")))?;
    let rules = Rules {
        ids,
        ..Rules::default()
    };
    extract_from(reader, dest, &rules, &fail)
}

/// What an extraction may do besides writing the archive's entries as they are.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules<'a> {
    /// Refuse to replace a directory with a non-directory or the other way round
    /// (`docker cp`'s `noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// The owner of every entry instead of the archive's.
    pub chown: Option<(u32, u32)>,
    /// The user namespace owners are shifted into (userns-remap); none for the identity.
    pub ids: Option<&'a IdMap>,
}

/// Unpacks the tar stream `reader` into the directory `dest`, which is the root of the
/// extraction: nothing is written outside it.
pub(crate) fn extract_from(
    reader: impl Read,
    dest: &OwnedFd,
    rules: &Rules<'_>,
    fail: &dyn Fn(String) -> Error,
) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut dir_times = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| fail(format!("cannot read the archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("cannot read the archive: {e}")))?;
        extract_entry(dest, &mut entry, &mut dir_times, rules, fail)?;
    }
    // Deepest first, so that dating a directory is not undone by its children.
    dir_times.sort_by_key(|(p, _): &(Vec<u8>, _)| {
        std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count())
    });
    for (rel, mtime) in dir_times {
        // Gone or replaced by a later entry: nothing to date.
        if let Ok(fd) = in_root::open_in_root(
            dest,
            &rel,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW,
        ) {
            let _ = in_root::set_times(&fd, mtime, mtime);
        }
    }
    Ok(())
}

/// The components of an entry name, with `.` and empty ones dropped and a leading `/`
/// meaning the destination; `..` is refused.
fn components<'a>(name: &'a [u8], fail: &dyn Fn(String) -> Error) -> Result<Vec<&'a [u8]>> {
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(fail(format!(
                    "the archive entry `{}` climbs out with `..`; rebuild the archive without `..` in its names",
                    String::from_utf8_lossy(name)
                )))
            }
            part => parts.push(part),
        }
    }
    Ok(parts)
}

/// Refuses an entry that would replace a directory with a non-directory or the other way
/// round.
fn check_same_kind(
    parent: &OwnedFd,
    name: &OsStr,
    entry_is_dir: bool,
    shown: &str,
    fail: &dyn Fn(String) -> Error,
) -> Result<()> {
    let Ok(st) = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return Ok(());
    };
    let existing_is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    match (existing_is_dir, entry_is_dir) {
        (true, false) => Err(fail(format!(
            "cannot overwrite directory `{shown}` with a non-directory"
        ))),
        (false, true) => Err(fail(format!(
            "cannot overwrite non-directory `{shown}` with a directory"
        ))),
        _ => Ok(()),
    }
}

fn extract_entry<R: Read>(
    dest: &OwnedFd,
    entry: &mut tar::Entry<R>,
    dir_times: &mut Vec<(Vec<u8>, TimeSpec)>,
    rules: &Rules<'_>,
    fail: &dyn Fn(String) -> Error,
) -> Result<()> {
    let raw = entry.path_bytes().into_owned();
    let parts = components(&raw, fail)?;
    let Some((name, parents)) = parts.split_last() else {
        // The destination itself (`./`): it is not the archive's to change.
        return Ok(());
    };
    let name = OsStr::from_bytes(name);
    let rel = parts.join(&b'/');
    let shown = String::from_utf8_lossy(&rel).into_owned();
    let (parent, _) = mkdir_all(dest, &parents.join(&b'/'), rules.ids.map(IdMap::root))?;

    let header = entry.header();
    let bad = |what: &str| fail(format!("the archive entry `{shown}` has a bad {what}"));
    let uid = header
        .uid()
        .ok()
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| bad("uid"))?;
    let gid = header
        .gid()
        .ok()
        .and_then(|g| u32::try_from(g).ok())
        .ok_or_else(|| bad("gid"))?;
    let mode = header.mode().map_err(|_| bad("mode"))? & 0o7777;
    let mtime = TimeSpec::new(header.mtime().map_err(|_| bad("mtime"))? as i64, 0);
    let entry_type = header.entry_type();
    let (uid, gid) = rules.chown.unwrap_or((uid, gid));
    let (uid, gid) = match rules.ids {
        Some(ids) => ids.to_host(uid, gid).ok_or_else(|| {
            fail(format!(
                "the archive entry `{shown}` is owned by {uid}:{gid}, which the container's user \
                 namespace cannot represent: {}",
                berth_image::idmap::WIDEN_RANGES
            ))
        })?,
        None => (uid, gid),
    };
    if rules.no_overwrite_dir_non_dir {
        check_same_kind(&parent, name, entry_type.is_dir(), &shown, fail)?;
    }

    use tar::EntryType as T;
    match entry_type {
        T::Regular | T::Continuous | T::GNUSparse => {
            remove_existing(&parent, name, &shown)?;
            let mut file = create_file(&parent, name, &shown)?;
            io::copy(entry, &mut file)
                .map_err(|e| fail(format!("cannot unpack `{shown}`: {e}")))?;
            in_root::set_owner_mode(&file, uid, gid, mode).map_err(io_err("set up", &shown))?;
            in_root::set_times(&file, mtime, mtime).map_err(io_err("set up", &shown))?;
        }
        T::Directory => {
            let (dir, _) = ensure_dir(&parent, name, &shown)?;
            in_root::set_owner_mode(&dir, uid, gid, mode).map_err(io_err("set up", &shown))?;
            dir_times.push((rel, mtime));
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("symlink target"))?
                .into_owned();
            remove_existing(&parent, name, &shown)?;
            // The target is only data: whatever it says, later lookups resolve it inside.
            symlinkat(OsStr::from_bytes(&target), &parent, name)
                .map_err(io_err("make symlink", &shown))?;
            in_root::set_link_meta(&parent, name, (uid, gid), (mtime, mtime))
                .map_err(io_err("set up", &shown))?;
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("hard link target"))?
                .into_owned();
            let target_parts = components(&target, fail)?;
            let Some((target_name, target_parents)) = target_parts.split_last() else {
                return Err(bad("hard link target"));
            };
            let target_dir = in_root::open_dir(dest, &target_parents.join(&b'/')).map_err(|e| {
                fail(format!(
                    "hard link `{shown}` points to a missing entry: {e}"
                ))
            })?;
            remove_existing(&parent, name, &shown)?;
            // linkat without AT_SYMLINK_FOLLOW links the entry itself, never what it names.
            linkat(
                &target_dir,
                OsStr::from_bytes(target_name),
                &parent,
                name,
                AtFlags::empty(),
            )
            .map_err(io_err("make hard link", &shown))?;
        }
        T::Char | T::Block | T::Fifo => {
            let kind = match entry_type {
                T::Char => SFlag::S_IFCHR,
                T::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            remove_existing(&parent, name, &shown)?;
            let perm = Mode::from_bits_truncate(mode);
            mknodat(
                &parent,
                name,
                kind,
                perm,
                makedev(major.into(), minor.into()),
            )
            .map_err(io_err("make device", &shown))?;
            in_root::set_link_meta(&parent, name, (uid, gid), (mtime, mtime))
                .map_err(io_err("set up", &shown))?;
            // The node was just made by us, so following its name cannot go elsewhere.
            fchmodat(&parent, name, perm, FchmodatFlags::FollowSymlink)
                .map_err(io_err("set up", &shown))?;
        }
        // Global pax headers and the like carry nothing to unpack.
        _ => {}
    }
    Ok(())
}
