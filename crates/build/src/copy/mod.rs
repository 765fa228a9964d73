//! COPY and ADD into a root filesystem, with Docker's semantics.
//!
//! The root filesystem belongs to an image and may hold hostile symlinks (`/app -> /etc`,
//! `/app -> ../../../host`). Every path in it is resolved as if it were `/` (see
//! `in_root`), so nothing is ever read or written outside it.

mod archive;
pub mod container;
mod in_root;
mod owner;

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::unistd::symlinkat;

pub use owner::{parse_chmod, parse_chown};

use crate::context::{exact, Source};
use crate::error::{io_err, Error, Result};
use crate::ignore::{clean, Ignore};
use crate::tree;
use berth_image::IdMap;

/// The flags of one COPY/ADD.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions<'a> {
    /// `--chown`: owner of everything copied (and of directories made for it); root if
    /// not given.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`: mode of every file and directory copied, instead of its own.
    pub chmod: Option<u32>,
    /// ADD: unpack local tar archives (plain, gzip, bzip2, xz, zstd) into the destination.
    pub extract_archives: bool,
    /// The context's `.dockerignore`, applied to what is inside directory sources.
    pub ignore: Option<&'a Ignore>,
    /// The user namespace the image's files are owned in (userns-remap): owners are
    /// shifted into it. None for the identity.
    pub ids: Option<&'a IdMap>,
}

/// Copies `sources` to `dest` in the root filesystem `rootfs`, a relative `dest` being
/// relative to `workdir`.
///
/// As in Docker: a `dest` ending in `/` (or `.`) is a directory, and must be one with
/// several sources; a directory source copies its contents; a file source lands inside
/// `dest` if that is an existing directory and is named `dest` otherwise.
pub fn copy_into(
    rootfs: &Path,
    sources: &[Source],
    dest: &str,
    workdir: &str,
    opts: &CopyOptions,
) -> Result<()> {
    if sources.is_empty() {
        return Err(Error::NoSources);
    }
    let target = Target::new(dest, workdir);
    if sources.len() > 1 && !target.is_dir {
        return Err(Error::DestNotDir);
    }
    let owner = opts.chown.unwrap_or((0, 0));
    let owner = match opts.ids {
        Some(ids) => ids.to_host(owner.0, owner.1).ok_or_else(|| Error::Dest {
            dest: dest.to_string(),
            reason: format!(
                "--chown={}:{} is outside the ids the daemon's user namespace maps \
                 (userns-remap): use ids inside it, or {}",
                owner.0,
                owner.1,
                berth_image::idmap::WIDEN_RANGES
            ),
        })?,
        None => owner,
    };
    let copier = Copier {
        root: in_root::open_root(rootfs)?,
        opts,
        owner,
    };
    for source in sources {
        copier.copy_source(source, &target, sources.len() > 1)?;
    }
    Ok(())
}

/// `mkdir -p` of `dir` (absolute, or relative to `/`) inside `rootfs`, resolved as if
/// `rootfs` were `/`: WORKDIR's directory before a step runs in it, owned by the
/// container's root (`ids`: its user namespace, if any).
pub fn make_dir(rootfs: &Path, dir: &str, ids: Option<&IdMap>) -> Result<()> {
    let root = in_root::open_root(rootfs)?;
    let rel = dir.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(());
    }
    in_root::mkdir_all(&root, rel.as_bytes(), ids.map(IdMap::root)).map(drop)
}

/// Where a COPY goes.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// Relative to the rootfs, cleaned, `..` stopped at `/`; empty for `/` itself.
    rel: String,
    /// Written as a directory: ends in `/` or `.`, or is `/`.
    is_dir: bool,
}

impl Target {
    fn new(dest: &str, workdir: &str) -> Target {
        let dest = if dest.is_empty() { "." } else { dest };
        let joined = if dest.starts_with('/') {
            dest.to_string()
        } else {
            format!("/{workdir}/{dest}")
        };
        let rooted = clean(&format!("/{joined}"));
        let rel = rooted.trim_start_matches('/').to_string();
        let is_dir = rel.is_empty()
            || dest.ends_with('/')
            || dest.ends_with("/.")
            || dest.ends_with("/..")
            || dest == "."
            || dest == "..";
        Target { rel, is_dir }
    }

    fn shown(&self) -> String {
        format!("/{}", self.rel)
    }
}

struct Copier<'a> {
    root: OwnedFd,
    opts: &'a CopyOptions<'a>,
    /// The host owner of everything copied (`--chown`, or root, shifted by `opts.ids`).
    owner: (u32, u32),
}

impl Copier<'_> {
    fn copy_source(&self, source: &Source, target: &Target, several: bool) -> Result<()> {
        let meta = fs::metadata(&source.path).map_err(io_err("stat", &source.rel))?;
        let dest = target.rel.as_bytes();
        if source.is_dir {
            let (dir, made) = in_root::mkdir_all(&self.root, dest, self.dir_owner())?;
            self.copy_children(&source.path, &source.real_rel, &dir, &target.shown())?;
            if made {
                self.apply_meta(&dir, &meta, &target.shown())?;
            }
            return Ok(());
        }
        if self.opts.extract_archives {
            if let Some(kind) = archive::detect(&source.path)? {
                let (dir, _) = in_root::mkdir_all(&self.root, dest, self.dir_owner())?;
                return archive::extract(&source.path, kind, &dir, &source.rel, self.opts.ids);
            }
        }
        let source_name = source.rel.rsplit('/').next().unwrap_or_default();
        let (parent, name) = if target.is_dir || several {
            (
                in_root::mkdir_all(&self.root, dest, self.dir_owner())?.0,
                source_name,
            )
        } else if let Ok(dir) = in_root::open_dir(&self.root, dest) {
            (dir, source_name)
        } else {
            let (parent_rel, name) = target.rel.rsplit_once('/').unwrap_or(("", &target.rel));
            (
                in_root::mkdir_all(&self.root, parent_rel.as_bytes(), self.dir_owner())?.0,
                name,
            )
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(Error::Dest {
                dest: target.shown(),
                reason: format!(
                    "no file name to copy {} to; end the destination with /",
                    source.rel
                ),
            });
        }
        let shown = format!("{}/{name}", target.shown().trim_end_matches('/'));
        self.copy_entry(
            &source.path,
            &meta,
            &parent,
            OsStr::new(name),
            &source.real_rel,
            &shown,
        )
    }

    /// Copies the contents of the context directory `dir` into `into`.
    fn copy_children(&self, dir: &Path, ctx_rel: &str, into: &OwnedFd, shown: &str) -> Result<()> {
        for child in tree::children(dir, Path::new(""), ctx_rel, self.opts.ignore)? {
            let Some(name) = child.path.file_name() else {
                continue;
            };
            let child_shown = format!("{}/{}", shown.trim_end_matches('/'), name.to_string_lossy());
            if child.included {
                self.copy_entry(
                    &child.path,
                    &child.meta,
                    into,
                    name,
                    &child.ctx_rel,
                    &child_shown,
                )?;
                continue;
            }
            // Excluded, but holding re-included paths: only a plain container for them.
            let (sub, made) = in_root::ensure_dir(into, name, &child_shown)?;
            if made {
                let (uid, gid) = self.owner();
                in_root::set_owner_mode(&sub, uid, gid, 0o755)
                    .map_err(io_err("set up", &child_shown))?;
            }
            self.copy_children(&child.path, &child.ctx_rel, &sub, &child_shown)?;
        }
        Ok(())
    }

    /// Copies one context entry `path` to `parent/name` (a directory recursively).
    fn copy_entry(
        &self,
        path: &Path,
        meta: &Metadata,
        parent: &OwnedFd,
        name: &OsStr,
        ctx_rel: &str,
        shown: &str,
    ) -> Result<()> {
        let file_type = meta.file_type();
        if file_type.is_dir() {
            let (dir, _) = in_root::ensure_dir(parent, name, shown)?;
            self.copy_children(path, ctx_rel, &dir, shown)?;
            // Last, so that filling the directory does not change its mtime again.
            self.apply_meta(&dir, meta, shown)
        } else if file_type.is_file() {
            in_root::remove_existing(parent, name, shown)?;
            let mut out = in_root::create_file(parent, name, shown)?;
            let input = fs::File::options()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(io_err("open", path.display()))?;
            io::copy(&mut exact(input, meta), &mut out).map_err(io_err("copy to", shown))?;
            self.apply_meta(&out, meta, shown)
        } else if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(io_err("read symlink", path.display()))?;
            in_root::remove_existing(parent, name, shown)?;
            symlinkat(target.as_os_str().as_bytes(), parent, name)
                .map_err(io_err("make symlink", shown))?;
            in_root::set_link_meta(parent, name, self.owner(), in_root::times_of(meta))
                .map_err(io_err("set up", shown))
        } else {
            // Sockets, fifos and devices are not copied.
            Ok(())
        }
    }

    fn owner(&self) -> (u32, u32) {
        self.owner
    }

    /// The owner of directories made on the way to the destination: `--chown`'s, or (none
    /// given) root's.
    fn dir_owner(&self) -> Option<(u32, u32)> {
        (self.opts.chown.is_some() || self.opts.ids.is_some()).then_some(self.owner)
    }

    /// Owner, mode and times of a copied file or directory.
    fn apply_meta(&self, fd: impl std::os::fd::AsFd, meta: &Metadata, shown: &str) -> Result<()> {
        let (uid, gid) = self.owner();
        let mode = self.opts.chmod.unwrap_or(meta.mode() & 0o7777);
        let (atime, mtime) = in_root::times_of(meta);
        in_root::set_owner_mode(fd.as_fd(), uid, gid, mode)
            .and_then(|()| in_root::set_times(fd.as_fd(), atime, mtime))
            .map_err(io_err("set up", shown))
    }
}

#[cfg(test)]
mod tests;
