//! Limits written to cgroup v2 files, converted from the OCI (v1-shaped) values as runc and
//! crun convert them.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory};

use crate::files::write;
use crate::{Error, Result};

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Docker and other callers send 0 for "not set": as runc does, 0 writes nothing.
fn set<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    if let Some(l) = set(m.limit()) {
        write(dir, "memory.max", &max_or(l))?;
    }
    if let Some(r) = set(m.reservation()) {
        write(dir, "memory.low", &max_or(r))?;
    }
    // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
    if let Some(s) = set(m.swap()) {
        let swap_only = match (s, m.limit()) {
            (-1, _) => -1,
            (s, Some(l)) if l > 0 => s - l,
            (s, _) => s,
        };
        if swap_only < -1 {
            return Err(Error::Invalid(
                "memory.swap must be at least memory.limit".into(),
            ));
        }
        write(dir, "memory.swap.max", &max_or(swap_only))?;
    }
    Ok(())
}

/// shares 2..262144 onto weight 1..10000.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = set(c.shares()) {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if set(c.quota()).is_some() || set(c.period()).is_some() {
        let quota = c
            .quota()
            .filter(|q| *q > 0)
            .map_or("max".to_string(), |q| q.to_string());
        let period = c.period().unwrap_or(100_000);
        write(dir, "cpu.max", &format!("{quota} {period}"))?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    if let Some(cpus) = c.cpus() {
        write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems() {
        write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// blkio weight 10..1000 onto io weight 1..10000.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

pub fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = set(b.weight()) {
        write(
            dir,
            "io.weight",
            &format!("default {}", blkio_to_io_weight(w)),
        )?;
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_the_documented_ranges() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }
}
