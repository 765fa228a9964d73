//! A container's root filesystem for `docker cp` and `docker export`, running or not.
//!
//! A running container's is already mounted (at its bundle's `rootfs`); a stopped one's
//! image layers and upper directory are mounted for the operation at a private mount
//! point under the state root, and unmounted when the lease is dropped, so no mount
//! outlives it.
//!
//! What is seen is the container's own filesystem, the host's view of it: volumes, bind
//! mounts and tmpfs mounts live in the container's mount namespace only. A path at or under
//! one of their targets is refused (`check_outside_mounts`) rather than read from, or
//! written to, the directory the mount hides. Starting a container while a lease on its
//! stopped filesystem is held mounts the same upper directory twice; overlayfs allows it,
//! but what each mount sees of the other's writes is then undefined until the lease ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::container::{Container, Status};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Tells the private mount points of leases taken at the same time apart.
static NEXT_LEASE: AtomicU64 = AtomicU64::new(0);

/// A container's root filesystem, mounted for as long as the lease is held.
#[derive(Debug)]
pub struct RootfsLease {
    path: PathBuf,
    /// The private mount point to unmount and remove at the end.
    own_mount: Option<PathBuf>,
    /// Where the container's volumes, binds and tmpfs mounts are.
    mount_targets: Vec<String>,
    read_only: bool,
    /// The container's user namespace (userns-remap), in which its files are owned.
    ids: berth_image::IdMap,
    /// The container's name, for errors.
    pub name: String,
}

impl RootfsLease {
    /// The root filesystem's directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the container's file owners map to the host's.
    pub fn ids(&self) -> &berth_image::IdMap {
        &self.ids
    }

    /// Whether the container runs with `--read-only`.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Refuses `path` (as the container names it) if it is a mount target or under one.
    pub fn check_outside_mounts(&self, path: &str) -> Result<()> {
        let wanted = lexical_components(path);
        for target in &self.mount_targets {
            let mount = lexical_components(target);
            if wanted.starts_with(&mount) {
                return Err(Error::Invalid(format!(
                    "{path} is in the volume or mount at {target} of container {}: berth copies \
                     only the container's own filesystem; copy to or from the mount's source \
                     on the host instead",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// `path`'s names with `.` dropped and `..` stopping at `/`.
fn lexical_components(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts
}

impl Drop for RootfsLease {
    fn drop(&mut self) {
        let Some(dir) = self.own_mount.take() else {
            return;
        };
        if let Err(e) = nix::mount::umount2(&dir, nix::mount::MntFlags::empty()) {
            // Busy only if something still has it open: detached, it goes once they close.
            tracing::warn!("unmounting {}: {e}; detaching it", dir.display());
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        }
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

impl Engine {
    /// The root filesystem of the container `key`, mounted for the lease's lifetime.
    pub async fn rootfs_lease(&self, key: &str) -> Result<RootfsLease> {
        let c = self.inspect(key).await?;
        let mut lease = RootfsLease {
            path: c.config.rootfs.clone(),
            own_mount: None,
            mount_targets: c.config.mounts.iter().map(|m| m.target.clone()).collect(),
            read_only: c.config.security.read_only,
            ids: if crate::userns::applies(self.ids(), &c.config) {
                self.ids().clone()
            } else {
                Default::default()
            },
            name: c.name.clone(),
        };
        if c.config.image_id.is_empty() {
            return Ok(lease);
        }
        if c.state.status == Status::Running {
            lease.path = self.rootfs_mount(&c.id);
            return Ok(lease);
        }
        let dir = self.mount_privately(&c)?;
        lease.path = dir.clone();
        lease.own_mount = Some(dir);
        Ok(lease)
    }

    /// Mounts a stopped container's layers and upper directory at a new directory.
    fn mount_privately(&self, c: &Container) -> Result<PathBuf> {
        let n = NEXT_LEASE.fetch_add(1, Ordering::Relaxed);
        let target =
            self.root()
                .join("archive")
                .join(format!("{}-{}-{n}", c.id, std::process::id()));
        let dir = self.dir(&c.id);
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        if let Err(e) = self
            .images()
            .mount(&c.config.image_id, &upper, &work, &target)
        {
            let _ = std::fs::remove_dir(&target);
            return Err(e.into());
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(targets: &[&str]) -> RootfsLease {
        RootfsLease {
            path: PathBuf::from("/nonexistent"),
            own_mount: None,
            mount_targets: targets.iter().map(|t| t.to_string()).collect(),
            read_only: false,
            ids: Default::default(),
            name: "c".into(),
        }
    }

    #[test]
    fn paths_in_mounts_are_refused() {
        let l = lease(&["/data", "/var/lib/x/"]);
        assert!(l.check_outside_mounts("/data").is_err());
        assert!(l.check_outside_mounts("data/sub/f").is_err());
        assert!(l.check_outside_mounts("/tmp/../data/./f").is_err());
        assert!(l.check_outside_mounts("/var/lib/x/y").is_err());
        assert!(l.check_outside_mounts("/database").is_ok());
        assert!(l.check_outside_mounts("/var/lib").is_ok());
        assert!(l.check_outside_mounts("/").is_ok());
    }
}
