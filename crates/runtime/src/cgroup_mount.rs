//! /sys/fs/cgroup inside the container, shaped like the host's (v1, v2 or hybrid) but rooted
//! at the container's own cgroup: mounted fresh inside a new cgroup namespace (whose root is
//! that cgroup), or bind-mounted from the host's directories of the container otherwise.

use std::path::Path;

use berth_cgroups::{Cgroup, Hierarchy};
use nix::mount::MsFlags;

use crate::error::{Context, Result};
use crate::rootfs::mkdir_all;

pub fn mount(cgroup: &Cgroup, dest: &Path, flags: MsFlags, new_ns: bool) -> Result<()> {
    let flags = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let hierarchies = cgroup.hierarchies();
    mkdir_all(dest)?;
    if let [only] = hierarchies.as_slice() {
        if only.is_v2() {
            return mount_one(only, dest, flags, new_ns);
        }
    }
    // One directory per hierarchy on a tmpfs, as on a v1 or hybrid host.
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    nix::mount::mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .context(|| format!("mount tmpfs on {}", dest.display()))?;
    for h in &hierarchies {
        let sub = dest.join(h.mount_name());
        mkdir_all(&sub)?;
        mount_one(h, &sub, flags, new_ns)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        nix::mount::mount(
            None::<&str>,
            dest,
            None::<&str>,
            MsFlags::MS_REMOUNT | tmpfs_flags | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .context(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

fn mount_one(h: &Hierarchy, dest: &Path, flags: MsFlags, new_ns: bool) -> Result<()> {
    if new_ns {
        let (fstype, data) = if h.is_v2() {
            ("cgroup2", None)
        } else {
            ("cgroup", Some(h.mount_options()))
        };
        return nix::mount::mount(Some(fstype), dest, Some(fstype), flags, data)
            .context(|| format!("mount {fstype} on {}", dest.display()));
    }
    let dir = h.container_dir();
    nix::mount::mount(
        Some(dir),
        dest,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| format!("bind {} on {}", dir.display(), dest.display()))?;
    nix::mount::mount(
        None::<&str>,
        dest,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .context(|| format!("remount {}", dest.display()))
}
