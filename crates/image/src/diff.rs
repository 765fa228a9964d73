//! A layer from an overlayfs upper directory: what a container (or a build step) changed
//! on top of its image, written as a layer tar in the image formats' terms.
//!
//! overlayfs records a deletion as a 0:0 character device and a directory that replaces
//! the lower one's contents with the `trusted.overlay.opaque=y` xattr; layers say the same
//! with `.wh.<name>` and `.wh..wh..opq` files. Nothing here follows a symlink: the upper
//! directory holds whatever the container wrote.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::idmap::IdMap;

const OPAQUE: &[u8] = b"trusted.overlay.opaque";

/// Writes the changes held in `upper` as an uncompressed layer tar to `out`, with owners
/// as the container saw them (`ids` shifts them back from the host's ranges).
pub fn write_layer(upper: &Path, ids: &IdMap, out: impl Write) -> Result<()> {
    write_layer_except(upper, &HashSet::new(), ids, out)
}

/// As [`write_layer`], leaving out the entries at the paths in `skip` (relative to
/// `upper`, as `etc/hosts`): what the runtime made rather than the container.
pub fn write_layer_except(
    upper: &Path,
    skip: &HashSet<String>,
    ids: &IdMap,
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut links = HashMap::new();
    walk(
        &mut tar,
        upper,
        "",
        &mut Walked {
            links: &mut links,
            skip,
            ids,
        },
    )?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(Error::io("finish layer tar"))
}

/// What a walk carries along: the first path of each hard-linked inode, and the paths to
/// leave out.
struct Walked<'a> {
    links: &'a mut HashMap<(u64, u64), String>,
    skip: &'a HashSet<String>,
    ids: &'a IdMap,
}

/// Appends the entries of directory `dir` (at `rel` in the layer), sorted by name so that
/// the same changes make the same tar, hence the same diff ID.
fn walk<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    walked: &mut Walked<'_>,
) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(Error::io(format!("read {}", dir.display())))?;
    let mut names: Vec<_> = read
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io(format!("read {}", dir.display())))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(Error::io(format!("stat {}", path.display())))?;
        let entry = join(rel, &name);
        if walked.skip.contains(&entry) {
            continue;
        }
        append(tar, &path, &entry, &meta, walked)?;
    }
    Ok(())
}

fn join(rel: &str, name: &OsStr) -> String {
    let name = String::from_utf8_lossy(name.as_bytes());
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    entry: &str,
    meta: &Metadata,
    walked: &mut Walked<'_>,
) -> Result<()> {
    let kind = meta.file_type();
    let failed = |what: &str| Error::io(format!("{what} {}", path.display()));
    if kind.is_char_device() && meta.rdev() == 0 {
        return whiteout(tar, entry, meta, walked.ids);
    }
    let xattrs = xattrs(path).map_err(|e| failed("list xattrs of")(e.into()))?;
    let opaque = xattrs.iter().any(|(k, v)| k == OPAQUE && v == b"y");
    let kept: Vec<(String, &[u8])> = xattrs
        .iter()
        .filter(|(k, _)| !k.starts_with(b"trusted.overlay."))
        .map(|(k, v)| {
            let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(k));
            (key, v.as_slice())
        })
        .collect();
    if !kept.is_empty() {
        tar.append_pax_extensions(kept.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(failed("write xattrs of"))?;
    }
    let mut h = header(meta, walked.ids);
    if kind.is_dir() {
        h.set_entry_type(EntryType::Directory);
        tar.append_data(&mut h, format!("{entry}/"), std::io::empty())
            .map_err(failed("add"))?;
        if opaque {
            whiteout(tar, &format!("{entry}/.wh..wh..opq"), meta, walked.ids)?;
        }
        return walk(tar, path, entry, walked);
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(failed("read link"))?;
        h.set_entry_type(EntryType::Symlink);
        return tar
            .append_link(&mut h, entry, target)
            .map_err(failed("add"));
    }
    if meta.nlink() > 1 && !kind.is_dir() {
        if let Some(first) = walked.links.get(&(meta.dev(), meta.ino())) {
            h.set_entry_type(EntryType::Link);
            h.set_size(0);
            return tar.append_link(&mut h, entry, first).map_err(failed("add"));
        }
        walked
            .links
            .insert((meta.dev(), meta.ino()), entry.to_string());
    }
    if kind.is_file() {
        h.set_entry_type(EntryType::Regular);
        h.set_size(meta.len());
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(failed("open"))?;
        return tar.append_data(&mut h, entry, file).map_err(failed("add"));
    }
    let (major, minor) = (
        nix::sys::stat::major(meta.rdev()),
        nix::sys::stat::minor(meta.rdev()),
    );
    h.set_entry_type(if kind.is_char_device() {
        EntryType::Char
    } else if kind.is_block_device() {
        EntryType::Block
    } else if kind.is_fifo() {
        EntryType::Fifo
    } else {
        // A socket: layers have no way to carry one, and Docker leaves them out too.
        return Ok(());
    });
    h.set_device_major(major as u32).map_err(failed("add"))?;
    h.set_device_minor(minor as u32).map_err(failed("add"))?;
    tar.append_data(&mut h, entry, std::io::empty())
        .map_err(failed("add"))
}

/// A header with the entry's owner (as the container sees it), mode and modification time.
fn header(meta: &Metadata, ids: &IdMap) -> Header {
    let mut h = Header::new_gnu();
    h.set_mode(meta.mode() & 0o7777);
    let (uid, gid) = ids.to_container(meta.uid(), meta.gid());
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// An empty `.wh.` file: the layer's way of saying "deleted" (or, as `.wh..wh..opq`,
/// "this directory hides what lies below").
fn whiteout<W: Write>(
    tar: &mut tar::Builder<W>,
    entry: &str,
    meta: &Metadata,
    ids: &IdMap,
) -> Result<()> {
    let name = match entry.rsplit_once('/') {
        Some((_, ".wh..wh..opq")) => entry.to_string(),
        Some((dir, base)) => format!("{dir}/.wh.{base}"),
        None => format!(".wh.{entry}"),
    };
    let mut h = header(meta, ids);
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    tar.append_data(&mut h, name, std::io::empty())
        .map_err(Error::io(format!("add whiteout for {entry}")))
}

/// An extended attribute: name, value.
type Xattr = (Vec<u8>, Vec<u8>);

/// The extended attributes of `path` itself (not a symlink's target), as (name, value).
fn xattrs(path: &Path) -> std::result::Result<Vec<Xattr>, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let names = read_sized(|buf| {
        // SAFETY: c is a NUL-terminated path; buf is a writable buffer of buf.len() bytes
        // (a null pointer with length 0 asks for the size).
        unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })?;
    let mut out = Vec::new();
    for key in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let k = CString::new(key).map_err(|_| Errno::EINVAL)?;
        let value = read_sized(|buf| {
            // SAFETY: c and k are NUL-terminated; buf is writable for buf.len() bytes.
            unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
        });
        match value {
            Ok(v) => out.push((key.to_vec(), v)),
            // Removed between the list and the read: nothing to carry.
            Err(Errno::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Calls a size-then-fill syscall (listxattr, getxattr) until the buffer fits.
fn read_sized(mut call: impl FnMut(&mut [u8]) -> isize) -> std::result::Result<Vec<u8>, Errno> {
    loop {
        let size = Errno::result(call(&mut []))?;
        let mut buf = vec![0u8; size as usize];
        match Errno::result(call(&mut buf)) {
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            // Grew in between: ask again.
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, String)> {
        let mut ar = tar::Archive::new(tar);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let kind = e.header().entry_type();
                let mut body = String::new();
                if kind == EntryType::Symlink || kind == EntryType::Link {
                    body = e.link_name().unwrap().unwrap().to_string_lossy().into();
                } else {
                    e.read_to_string(&mut body).unwrap();
                }
                (path, kind, body)
            })
            .collect()
    }

    #[test]
    fn changes_become_entries_and_overlay_deletions_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path();
        std::fs::create_dir_all(up.join("etc/app")).unwrap();
        std::fs::write(up.join("etc/app/conf"), "x=1\n").unwrap();
        std::fs::hard_link(up.join("etc/app/conf"), up.join("etc/app/same")).unwrap();
        std::os::unix::fs::symlink("/etc/app/conf", up.join("link")).unwrap();
        nix::sys::stat::mknod(
            &up.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        std::fs::create_dir(up.join("var")).unwrap();
        nix::sys::stat::mknod(
            &up.join("var/fifo"),
            nix::sys::stat::SFlag::S_IFIFO,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let opaque = CString::new(up.join("var").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path and key; value is 1 valid byte.
        let rc = unsafe {
            libc::setxattr(
                opaque.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0, "set the opaque xattr (needs root)");
        let mut out = Vec::new();
        write_layer(up, &IdMap::default(), &mut out).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/app/",
                "etc/app/conf",
                "etc/app/same",
                "etc/.wh.gone",
                "link",
                "var/",
                "var/.wh..wh..opq",
                "var/fifo"
            ]
        );
        assert_eq!(got[2].2, "x=1\n");
        assert_eq!(
            (got[3].1, got[3].2.as_str()),
            (EntryType::Link, "etc/app/conf")
        );
        assert_eq!(
            (got[5].1, got[5].2.as_str()),
            (EntryType::Symlink, "/etc/app/conf")
        );
        assert_eq!(got[8].1, EntryType::Fifo);
        let mut again = Vec::new();
        write_layer(up, &IdMap::default(), &mut again).unwrap();
        assert_eq!(out, again, "the same changes make the same tar");
    }

    #[test]
    fn user_xattrs_travel_and_overlays_own_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let c = CString::new(file.as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path and key; value is 2 valid bytes.
        let rc = unsafe {
            libc::setxattr(
                c.as_ptr(),
                c"user.note".as_ptr(),
                b"hi".as_ptr().cast(),
                2,
                0,
            )
        };
        assert_eq!(rc, 0, "set a user xattr: {}", Errno::last());
        let mut out = Vec::new();
        write_layer(dir.path(), &IdMap::default(), &mut out).unwrap();
        let mut ar = tar::Archive::new(out.as_slice());
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            exts,
            [("SCHILY.xattr.user.note".to_string(), b"hi".to_vec())]
        );
    }
}
