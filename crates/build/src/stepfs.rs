//! A step's root filesystem: the image so far, mounted with overlayfs under a fresh upper
//! directory, so that what the step changes (a RUN's writes, a COPY's files) is exactly
//! the upper directory, which becomes the step's layer.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_image::{Digest, ImageService};

use crate::error::{io_err, Result};

/// The runtime's mount points: not the step's doing, so taken out of its layer.
use berth_image::changes::RUNTIME_MOUNT_POINTS as MOUNT_POINTS;

pub struct StepFs {
    merged: PathBuf,
    upper: PathBuf,
    mounted: bool,
    /// Which of `MOUNT_POINTS` the image already had.
    existing: Vec<bool>,
    // Last: removed (whatever the image service did not move away) after the drop above
    // has unmounted; held only for that.
    _dir: tempfile::TempDir,
}

impl StepFs {
    /// Mounts `image` (none: an empty root, `FROM scratch`) in a new directory under
    /// `scratch`.
    pub fn mount(images: &ImageService, image: Option<&Digest>, scratch: &Path) -> Result<StepFs> {
        std::fs::create_dir_all(scratch).map_err(io_err("create", scratch.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(scratch)
            .map_err(io_err("create a directory in", scratch.display()))?;
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("merged"),
        );
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).map_err(io_err("create", d.display()))?;
        }
        // The upper directory's owner is the step's "/".
        images
            .ids()
            .own_as_root(&upper)
            .map_err(io_err("chown", upper.display()))?;
        let mut fs = StepFs {
            merged: merged.clone(),
            upper: upper.clone(),
            mounted: false,
            existing: Vec::new(),
            _dir: dir,
        };
        let lowers = match image {
            Some(id) => images.lowerdirs(&id.to_string())?,
            None => Vec::new(),
        };
        if lowers.is_empty() {
            // No layers: the upper directory is the whole root.
            fs.merged = upper;
        } else {
            berth_image::snapshot::mount_overlay(&lowers, &upper, &work, &merged)?;
            fs.mounted = true;
        }
        fs.existing = MOUNT_POINTS
            .iter()
            .map(|p| fs.merged.join(p).symlink_metadata().is_ok())
            .collect();
        Ok(fs)
    }

    /// The root filesystem to work in.
    pub fn root(&self) -> &Path {
        &self.merged
    }

    /// Unmounts and takes out the runtime's mount points: what is left in the returned
    /// upper directory is the step's layer (which the image service may move away, to be
    /// the layer's snapshot).
    pub fn finish(&mut self) -> Result<&Path> {
        self.unmount()?;
        for (p, had) in MOUNT_POINTS.iter().zip(&self.existing) {
            if !had {
                remove_if_empty(&self.upper.join(p))?;
            }
        }
        Ok(&self.upper)
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            nix::mount::umount2(&self.merged, nix::mount::MntFlags::empty())
                .map_err(io_err("unmount", self.merged.display()))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for StepFs {
    fn drop(&mut self) {
        if self.mounted {
            // Detach rather than fail: the directory is removed next and must not be
            // removed through a live mount.
            let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Removes an empty file or an empty directory; anything with content is the step's.
fn remove_if_empty(path: &Path) -> Result<()> {
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(());
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir(path)
    } else if meta.is_file() && meta.size() == 0 {
        std::fs::remove_file(path)
    } else {
        return Ok(());
    };
    match removed {
        Ok(()) => Ok(()),
        // ENOTEMPTY: the step wrote something there.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) => Err(io_err("remove", path.display())(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_mount_points_go() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("hosts"), "").unwrap();
        std::fs::write(etc.join("motd"), "hi").unwrap();
        remove_if_empty(&etc.join("hosts")).unwrap();
        remove_if_empty(&etc).unwrap();
        assert!(!etc.join("hosts").exists());
        assert!(etc.join("motd").exists(), "a step's own file stays");
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        remove_if_empty(&dir.path().join("proc")).unwrap();
        assert!(!dir.path().join("proc").exists());
    }
}
