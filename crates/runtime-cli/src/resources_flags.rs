//! `update`'s new limits: a linux.resources JSON document, or runc's individual flags.

use std::io::Read;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::args::UpdateArgs;

pub fn resources(u: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match &u.resources {
        Some(path) => read_json(path)?,
        None => LinuxResources::default(),
    };
    apply_memory(u, &mut r)?;
    apply_cpu(u, &mut r);
    if let Some(limit) = u.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = u.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some::<LinuxBlockIo>(b));
    }
    Ok(r)
}

fn read_json(path: &std::path::Path) -> Result<LinuxResources> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    }
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a valid OCI linux.resources document",
            path.display()
        )
    })
}

fn apply_memory(u: &UpdateArgs, r: &mut LinuxResources) -> Result<()> {
    if u.memory.is_none() && u.memory_reservation.is_none() && u.memory_swap.is_none() {
        return Ok(());
    }
    let mut m: LinuxMemory = r.memory().unwrap_or_default();
    if let Some(v) = &u.memory {
        m.set_limit(Some(parse_bytes(v)?));
    }
    if let Some(v) = &u.memory_reservation {
        m.set_reservation(Some(parse_bytes(v)?));
    }
    if let Some(v) = &u.memory_swap {
        m.set_swap(Some(parse_bytes(v)?));
    }
    r.set_memory(Some(m));
    Ok(())
}

fn apply_cpu(u: &UpdateArgs, r: &mut LinuxResources) {
    let any = u.cpu_shares.is_some()
        || u.cpu_quota.is_some()
        || u.cpu_period.is_some()
        || u.cpuset_cpus.is_some()
        || u.cpuset_mems.is_some();
    if !any {
        return;
    }
    let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
    if u.cpu_shares.is_some() {
        c.set_shares(u.cpu_shares);
    }
    if u.cpu_quota.is_some() {
        c.set_quota(u.cpu_quota);
    }
    if u.cpu_period.is_some() {
        c.set_period(u.cpu_period);
    }
    if u.cpuset_cpus.is_some() {
        c.set_cpus(u.cpuset_cpus.clone());
    }
    if u.cpuset_mems.is_some() {
        c.set_mems(u.cpuset_mems.clone());
    }
    r.set_cpu(Some(c));
}

/// "1024", "512k", "64m", "1g" (binary units, as docker and runc read them); "-1" = unlimited.
pub fn parse_bytes(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = match num.trim().parse() {
        Ok(n) if n >= 0.0 => n,
        _ => bail!("{s:?} is not a size: use a number with an optional k, m, g or t suffix"),
    };
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-5").is_err());
    }
}
