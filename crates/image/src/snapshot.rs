//! Snapshots: each layer unpacked once, into `snapshots/<chain ID hex>`, and stacked with
//! overlayfs (snapshots as read-only lowerdirs, one upperdir per container).
//!
//! A snapshot is unpacked into `snapshots/.tmp-*` and renamed to its final name only once
//! complete and its diff ID verified, so a directory under its final name is always whole.
//! Two pulls unpacking the same layer at once both finish; the second rename loses and its
//! copy is thrown away.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::idmap::IdMap;
use crate::unpack::{unpack_layer_as, Limits, Unpacked};

const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    /// Owners are shifted into these host ranges as layers unpack (userns-remap).
    ids: IdMap,
}

impl Snapshots {
    /// Opens `<root>/snapshots`, removing unpacks a crash left unfinished.
    pub fn open(root: &Path, ids: &IdMap) -> Result<Snapshots> {
        let dir = root.join("snapshots");
        fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let s = Snapshots {
            dir,
            ids: ids.clone(),
        };
        s.clean_tmp()?;
        Ok(s)
    }

    fn clean_tmp(&self) -> Result<()> {
        for e in fs::read_dir(&self.dir).map_err(Error::io("list snapshots"))? {
            let e = e.map_err(Error::io("list snapshots"))?;
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                remove_tree(&e.path())?;
            }
        }
        Ok(())
    }

    pub fn ids(&self) -> &IdMap {
        &self.ids
    }

    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex())
    }

    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.path(chain_id).is_dir()
    }

    /// Unpacks `blob` as the snapshot `chain_id`, checking it against `diff_id`. Returns the
    /// unpacked size; a snapshot already there is kept (`None`).
    pub fn create(
        &self,
        chain_id: &Digest,
        diff_id: &Digest,
        layer: &Digest,
        blob: File,
        limits: &Limits,
    ) -> Result<Option<Unpacked>> {
        if self.exists(chain_id) {
            return Ok(None);
        }
        let tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempdir_in(&self.dir)
            .map_err(Error::io("create snapshot dir"))?;
        // The tree's root is a directory we make (tempdir makes it 0700), with the usual root
        // mode; the layer's "./" entry, if any, overrides it.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
            .map_err(Error::io("set snapshot dir mode"))?;
        self.ids
            .own_as_root(tmp.path())
            .map_err(Error::io("set snapshot dir owner"))?;
        let unpacked = unpack_layer_as(
            io::BufReader::with_capacity(1 << 20, blob),
            tmp.path(),
            limits,
            &self.ids,
        )?;
        if &unpacked.diff_id != diff_id {
            return Err(Error::DiffIdMismatch {
                layer: layer.clone(),
                expected: diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        let tmp = tmp.keep();
        match fs::rename(&tmp, self.path(chain_id)) {
            Ok(()) => Ok(Some(unpacked)),
            Err(e) if self.exists(chain_id) => {
                tracing::debug!(
                    "snapshot {chain_id} made concurrently ({e}); keeping the other copy"
                );
                remove_tree(&tmp)?;
                Ok(None)
            }
            Err(e) => {
                let _ = remove_tree(&tmp);
                Err(Error::io(format!("publish snapshot {chain_id}"))(e))
            }
        }
    }

    /// Moves the finished directory `dir` into place as snapshot `chain_id`; false if it
    /// cannot be moved (another filesystem, say), in which case it stays where it was.
    pub fn adopt(&self, chain_id: &Digest, dir: &Path) -> Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        // The mode an unpacked snapshot's root has.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(Error::io(format!("set the mode of {}", dir.display())))?;
        match fs::rename(dir, self.path(chain_id)) {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::debug!("snapshot {chain_id} not moved from {}: {e}", dir.display());
                Ok(false)
            }
        }
    }

    pub fn remove(&self, chain_id: &Digest) -> Result<()> {
        let p = self.path(chain_id);
        if p.exists() {
            // Rename first so a crash half-way leaves a .tmp- leftover, not a partial snapshot
            // under its real name.
            let doomed = self.dir.join(format!("{TMP_PREFIX}rm-{}", chain_id.hex()));
            fs::rename(&p, &doomed).map_err(Error::io(format!("remove snapshot {chain_id}")))?;
            remove_tree(&doomed)?;
        }
        Ok(())
    }

    /// Chain IDs of every snapshot on disk.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(Error::io("list snapshots"))? {
            let e = e.map_err(Error::io("list snapshots"))?;
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse() {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Bytes used by a snapshot (apparent sizes, not following links).
    pub fn disk_usage(&self, chain_id: &Digest) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = fs::symlink_metadata(p) else {
                return 0;
            };
            if !m.is_dir() {
                return m.len();
            }
            fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        }
        walk(&self.path(chain_id))
    }
}

fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", p.display()))(e))
        }
        _ => Ok(()),
    }
}

/// The overlay options for a stack. `lowers` is ordered top layer first, as overlayfs wants.
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    for p in lowers.iter().map(|p| p.as_path()).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains([',', ':']) {
            return Err(Error::Mount(format!(
                "path {s:?} has a ',' or ':', which overlayfs options cannot carry"
            )));
        }
    }
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    // mount(2) takes one page of data.
    if opts.len() >= 4096 {
        return Err(Error::Mount(format!(
            "{} layers make overlay options longer than a page; squash the image",
            lowers.len()
        )));
    }
    Ok(opts)
}

/// Mounts an overlay of `lowers` (top first) with `upper`/`work` at `target`.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    if lowers.is_empty() {
        return Err(Error::Mount("an overlay needs at least one layer".into()));
    }
    let opts = overlay_options(lowers, upper, work)?;
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| Error::Mount(format!("overlay at {}: {e}", target.display())))
}

pub fn unmount(target: &Path) -> Result<()> {
    umount2(target, MntFlags::empty())
        .map_err(|e| Error::Mount(format!("unmount {}: {e}", target.display())))
}
