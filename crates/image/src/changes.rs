//! What a container changed on top of its image (`docker diff`): its overlayfs upper
//! directory read against the image's layer snapshots (the lowerdirs, top first).
//!
//! A 0:0 character device is a deletion; a path the lowers also hold is a modification,
//! any other an addition. A directory the lowers hold is reported as modified when
//! anything under it is, or its mode or owner changed: overlayfs copies a directory up
//! as soon as something inside it changes, so its presence alone says nothing.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Paths a container's runtime makes as mount points when the image lacks them (the
/// kernel filesystems and the files the network sandbox bind-mounts). They are not the
/// container's doing, so they stay out of its changes and its committed layer, as
/// Docker's init layer keeps them out. Deepest first, so a directory's children are
/// judged before it.
pub const RUNTIME_MOUNT_POINTS: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc",
    "proc",
    "sys",
    "dev",
];

/// Docker's change kinds, numbered as the API sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl Kind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            Kind::Modified => 'C',
            Kind::Added => 'A',
            Kind::Deleted => 'D',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute inside the container: `/etc/passwd`.
    pub path: String,
    pub kind: Kind,
}

/// The changes in `upper` over `lowers` (top first), sorted by path.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let skip = runtime_leftovers(upper, lowers)?;
    let mut out = Vec::new();
    Walk {
        upper,
        lowers,
        skip: &skip,
        out: &mut out,
    }
    .dir("")?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The runtime's mount points (relative: `etc/hosts`) that `upper` holds only because the
/// runtime made them there: absent from the lowers, and empty.
pub fn runtime_leftovers(upper: &Path, lowers: &[PathBuf]) -> Result<HashSet<String>> {
    let mut skip = HashSet::new();
    for rel in RUNTIME_MOUNT_POINTS {
        let path = upper.join(rel);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if lower_entry(lowers, rel).is_some() {
            continue;
        }
        let empty = if meta.is_dir() {
            names(&path)?
                .iter()
                .all(|n| skip.contains(&format!("{rel}/{n}")))
        } else {
            meta.is_file() && meta.size() == 0
        };
        if empty {
            skip.insert(rel.to_string());
        }
    }
    Ok(skip)
}

struct Walk<'a> {
    upper: &'a Path,
    lowers: &'a [PathBuf],
    skip: &'a HashSet<String>,
    out: &'a mut Vec<Change>,
}

impl Walk<'_> {
    /// Records the changes under the directory at `rel` ("" for the root).
    fn dir(&mut self, rel: &str) -> Result<()> {
        let dir = self.upper.join(rel);
        for name in names(&dir)? {
            let child = join(rel, &name);
            if !self.skip.contains(&child) {
                self.entry(&child)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, rel: &str) -> Result<()> {
        let path = self.upper.join(rel);
        let meta = path
            .symlink_metadata()
            .map_err(Error::io(format!("stat {}", path.display())))?;
        if is_whiteout(&meta) {
            self.push(rel, Kind::Deleted);
            return Ok(());
        }
        let Some(below) = lower_entry(self.lowers, rel) else {
            self.push(rel, Kind::Added);
            return if meta.is_dir() { self.dir(rel) } else { Ok(()) };
        };
        if !(meta.is_dir() && below.is_dir()) {
            self.push(rel, Kind::Modified);
            return Ok(());
        }
        let before = self.out.len();
        self.dir(rel)?;
        let opaque = is_opaque(&path);
        if opaque {
            self.hidden(rel)?;
        }
        let own =
            meta.mode() != below.mode() || meta.uid() != below.uid() || meta.gid() != below.gid();
        if opaque || own || self.out.len() > before {
            self.push(rel, Kind::Modified);
        }
        Ok(())
    }

    /// An opaque directory hides what the lowers hold there: each such entry is deleted
    /// unless the upper directory has its own.
    fn hidden(&mut self, rel: &str) -> Result<()> {
        let own: HashSet<String> = names(&self.upper.join(rel))?.into_iter().collect();
        for name in lower_names(self.lowers, rel)? {
            if !own.contains(&name) {
                self.push(&join(rel, &name), Kind::Deleted);
            }
        }
        Ok(())
    }

    fn push(&mut self, rel: &str, kind: Kind) {
        self.out.push(Change {
            path: format!("/{rel}"),
            kind,
        });
    }
}

/// What the lowers (top first) show at `rel`, if anything: the first layer holding an
/// entry there decides, unless a higher layer hides it (a whiteout or a non-directory on
/// the way, or an opaque directory above it).
fn lower_entry(lowers: &[PathBuf], rel: &str) -> Option<Metadata> {
    for lower in lowers {
        if let Ok(m) = lower.join(rel).symlink_metadata() {
            return (!is_whiteout(&m)).then_some(m);
        }
        if hidden_below(lower, rel) {
            return None;
        }
    }
    None
}

/// Whether an ancestor of `rel` in `layer` ends the look further down: a whiteout or
/// another non-directory, or an opaque directory.
fn hidden_below(layer: &Path, rel: &str) -> bool {
    Path::new(rel).ancestors().skip(1).any(|a| {
        if a.as_os_str().is_empty() {
            return false;
        }
        let path = layer.join(a);
        match path.symlink_metadata() {
            Ok(m) => !m.is_dir() || is_opaque(&path),
            Err(_) => false,
        }
    })
}

/// The names the lowers show in the directory at `rel`.
fn lower_names(lowers: &[PathBuf], rel: &str) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut shown = Vec::new();
    for lower in lowers {
        let dir = lower.join(rel);
        if !dir.is_dir() {
            continue;
        }
        for name in names(&dir)? {
            if !seen.insert(name.clone()) {
                continue;
            }
            let whiteout = dir
                .join(&name)
                .symlink_metadata()
                .is_ok_and(|m| is_whiteout(&m));
            if !whiteout {
                shown.push(name);
            }
        }
        if is_opaque(&dir) || hidden_below(lower, rel) {
            break;
        }
    }
    Ok(shown)
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Result<Vec<String>> {
    let read = std::fs::read_dir(dir).map_err(Error::io(format!("read {}", dir.display())))?;
    let mut names: Vec<String> = read
        .map(|e| e.map(|e| String::from_utf8_lossy(e.file_name().as_bytes()).into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io(format!("read {}", dir.display())))?;
    names.sort();
    Ok(names)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether overlayfs marked the directory opaque (its lower contents hidden).
fn is_opaque(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 2];
    // SAFETY: c and the name are NUL-terminated; value is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn whiteout(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .expect("mknod a whiteout (the tests run as root)");
    }

    fn listed(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect()
    }

    #[test]
    fn additions_modifications_and_parents() {
        let (lower, upper) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(lower.path(), "etc/passwd", "root");
        write(lower.path(), "etc/group", "root");
        std::fs::create_dir(lower.path().join("bin")).unwrap();
        write(upper.path(), "etc/passwd", "root\nme");
        write(upper.path(), "new/dir/file", "x");
        write(upper.path(), "added", "hi");
        // Copied up but unchanged below: not a change.
        std::fs::create_dir(upper.path().join("bin")).unwrap();
        let got = changes(upper.path(), &[lower.path().to_path_buf()]).unwrap();
        assert_eq!(
            listed(&got),
            [
                "A /added",
                "C /etc",
                "C /etc/passwd",
                "A /new",
                "A /new/dir",
                "A /new/dir/file"
            ]
        );
    }

    #[test]
    fn the_runtimes_empty_mount_points_are_left_out() {
        let (lower, upper) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir(lower.path().join("bin")).unwrap();
        for p in ["etc/hosts", "etc/hostname"] {
            write(upper.path(), p, "");
        }
        for d in ["proc", "sys", "dev"] {
            std::fs::create_dir(upper.path().join(d)).unwrap();
        }
        let lowers = [lower.path().to_path_buf()];
        assert_eq!(
            listed(&changes(upper.path(), &lowers).unwrap()),
            Vec::<String>::new()
        );
        // Written to by the container: its own.
        write(upper.path(), "etc/hostname", "mine");
        assert_eq!(
            listed(&changes(upper.path(), &lowers).unwrap()),
            ["A /etc", "A /etc/hostname"]
        );
    }

    #[test]
    fn whiteouts_are_deletions_unless_hidden_above() {
        let (low, high, upper) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        write(low.path(), "etc/gone", "x");
        write(low.path(), "etc/old", "x");
        whiteout(upper.path(), "etc/gone");
        whiteout(high.path(), "etc/old");
        let lowers = [high.path().to_path_buf(), low.path().to_path_buf()];
        assert!(
            lower_entry(&lowers, "etc/old").is_none(),
            "deleted in a higher layer"
        );
        assert!(lower_entry(&lowers, "etc/gone").is_some());
        let got = changes(upper.path(), &lowers).unwrap();
        assert_eq!(listed(&got), ["C /etc", "D /etc/gone"]);
    }
}
