//! How file owners inside containers map to owners on the host.
//!
//! Without `userns-remap` the map is the identity. With it, containers run in a user
//! namespace whose ids 0..n are a subordinate range of host ids, so every file a container
//! sees as its own must be owned on the host by the shifted id: layers are unpacked shifted,
//! and layers written from a container's changes (commit, build) are shifted back, so images
//! carry the same owners whichever daemon made them.

/// One contiguous range: container ids `inside..inside+size` are host ids `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub host: u32,
    pub size: u32,
}

/// The uid and gid ranges of a user namespace; empty lists mean the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// The next step for an owner a remapped daemon cannot store: its ranges are too narrow.
pub const WIDEN_RANGES: &str =
    "give the remap user a range of at least 65536 ids in /etc/subuid and /etc/subgid";

/// What a host id outside every range reads as inside a namespace (the kernel's overflow id).
pub const OVERFLOW_ID: u32 = 65534;

impl IdMap {
    /// A map from subordinate host ranges (as /etc/subuid lists them, in order): they are
    /// laid end to end from container id 0.
    pub fn from_subordinate(uids: &[(u32, u32)], gids: &[(u32, u32)]) -> IdMap {
        IdMap {
            uids: lay_out(uids),
            gids: lay_out(gids),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }

    /// The host uid and gid of the container's root.
    pub fn root(&self) -> (u32, u32) {
        (
            to_host(&self.uids, 0).unwrap_or(0),
            to_host(&self.gids, 0).unwrap_or(0),
        )
    }

    /// Gives `path` to the namespace's root (nothing to do for the identity: the daemon's
    /// files are root's already): what a container must own, such as its "/".
    pub fn own_as_root(&self, path: &std::path::Path) -> std::io::Result<()> {
        if self.is_identity() {
            return Ok(());
        }
        let (uid, gid) = self.root();
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    /// The host owner of a file a layer or a container gives as `uid:gid`; `None` if the
    /// namespace cannot represent it.
    pub fn to_host(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((to_host(&self.uids, uid)?, to_host(&self.gids, gid)?))
    }

    /// The owner a container sees for a file the host has as `uid:gid`.
    pub fn to_container(&self, uid: u32, gid: u32) -> (u32, u32) {
        (to_inside(&self.uids, uid), to_inside(&self.gids, gid))
    }

    /// The highest id, plus one, that the namespace can represent (uids and gids alike).
    pub fn span(&self) -> Option<(u64, u64)> {
        let end = |r: &[IdRange]| {
            r.iter()
                .map(|r| u64::from(r.inside) + u64::from(r.size))
                .max()
        };
        Some((end(&self.uids)?, end(&self.gids)?))
    }
}

fn lay_out(ranges: &[(u32, u32)]) -> Vec<IdRange> {
    let mut inside = 0u32;
    let mut out = Vec::new();
    for &(host, size) in ranges {
        out.push(IdRange { inside, host, size });
        inside = inside.saturating_add(size);
    }
    out
}

fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
    if ranges.is_empty() {
        return Some(id);
    }
    ranges
        .iter()
        .find(|r| id >= r.inside && id - r.inside < r.size)
        .map(|r| r.host + (id - r.inside))
}

fn to_inside(ranges: &[IdRange], id: u32) -> u32 {
    if ranges.is_empty() {
        return id;
    }
    ranges
        .iter()
        .find(|r| id >= r.host && id - r.host < r.size)
        .map_or(OVERFLOW_ID, |r| r.inside + (id - r.host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_maps_every_id_to_itself() {
        let m = IdMap::default();
        assert!(m.is_identity());
        assert_eq!(m.to_host(0, 0), Some((0, 0)));
        assert_eq!(m.to_host(1234, 99), Some((1234, 99)));
        assert_eq!(m.to_container(1234, 99), (1234, 99));
        assert_eq!(m.root(), (0, 0));
    }

    #[test]
    fn subordinate_ranges_are_laid_end_to_end() {
        let m = IdMap::from_subordinate(&[(100000, 1000), (300000, 500)], &[(200000, 65536)]);
        assert_eq!(m.root(), (100000, 200000));
        assert_eq!(m.to_host(999, 0), Some((100999, 200000)));
        assert_eq!(m.to_host(1000, 5), Some((300000, 200005)));
        assert_eq!(m.to_host(1500, 0), None);
        assert_eq!(m.to_container(300001, 200007), (1001, 7));
        assert_eq!(m.to_container(0, 5), (OVERFLOW_ID, OVERFLOW_ID));
        assert_eq!(m.span(), Some((1500, 65536)));
    }
}
