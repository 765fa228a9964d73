//! Limits written to cgroup v1 controller files.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNetwork};

use crate::devices::v1_line;
use crate::files::{read, write, write_required};
use crate::{Error, Result};

pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    for (name, v) in [
        ("memory.limit", m.limit()),
        ("memory.swap", m.swap()),
        ("memory.reservation", m.reservation()),
    ] {
        if let Some(v) = v {
            if v < -1 {
                return Err(Error::Invalid(format!(
                    "{name} {v}: use a byte count, or -1 for unlimited"
                )));
            }
        }
    }
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(Error::Invalid(format!(
                "memory.swap ({swap}) is memory plus swap and must be at least memory.limit ({limit})"
            )));
        }
    }
    set_limit_and_swap(dir, set(m.limit()), set(m.swap()))?;
    if let Some(r) = set(m.reservation()) {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::Invalid(format!(
                "memory.swappiness {s}: use 0 to 100"
            )));
        }
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

/// memory.memsw.limit_in_bytes must never be below memory.limit_in_bytes, so the order of the
/// two writes depends on whether the limits go up or down.
fn set_limit_and_swap(dir: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    let swap = match (swap, has_memsw) {
        (Some(s), false) if Some(s) != limit && s != -1 => {
            return Err(Error::Unsupported(
                "swap limits need swap accounting (boot with swapaccount=1), or leave memory.swap unset".into(),
            ))
        }
        (s, true) => s,
        (_, false) => None,
    };
    let current_memsw: i64 = match swap {
        Some(_) => read(dir, "memory.memsw.limit_in_bytes")?
            .parse()
            .unwrap_or(i64::MAX),
        None => i64::MAX,
    };
    let raise_swap_first = matches!(limit, Some(l) if l == -1 || l > current_memsw);
    if raise_swap_first {
        if let Some(s) = swap {
            write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
        }
    }
    if let Some(l) = limit {
        write(dir, "memory.limit_in_bytes", &l.to_string())?;
    }
    if !raise_swap_first {
        if let Some(s) = swap {
            write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
        }
    }
    Ok(())
}

/// Docker and other callers send 0 for "not set": as runc does, 0 writes nothing.
fn set<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = set(c.shares()) {
        write(dir, "cpu.shares", &s.to_string())?;
    }
    // The period first: a quota is checked against the period in force.
    if let Some(p) = set(c.period()) {
        write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = set(c.quota()) {
        write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(p) = set(c.realtime_period()) {
        write_required(
            dir,
            "cpu.rt_period_us",
            &p.to_string(),
            "realtime cpu scheduling",
        )?;
    }
    if let Some(r) = set(c.realtime_runtime()) {
        write_required(
            dir,
            "cpu.rt_runtime_us",
            &r.to_string(),
            "realtime cpu scheduling",
        )?;
    }
    if let Some(i) = c.idle() {
        write_required(dir, "cpu.idle", &i.to_string(), "cpu.idle")?;
    }
    Ok(())
}

pub fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus() {
        write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems() {
        write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

pub fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = set(b.weight()) {
        write_first(
            dir,
            &["blkio.weight", "blkio.bfq.weight"],
            &w.to_string(),
            "blkio weight",
        )?;
    }
    if let Some(w) = set(b.leaf_weight()) {
        write_required(
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
            "blkio leaf weight",
        )?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = set(d.weight()) {
            let line = format!("{}:{} {w}", d.major(), d.minor());
            write_first(
                dir,
                &["blkio.weight_device", "blkio.bfq.weight_device"],
                &line,
                "blkio weight per device",
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

fn write_first(dir: &Path, files: &[&str], value: &str, what: &str) -> Result<()> {
    match files.iter().find(|f| dir.join(f).exists()) {
        Some(f) => write(dir, f, value),
        None => Err(Error::Unsupported(format!(
            "{what} is not available on this host (no {})",
            files.join(" or ")
        ))),
    }
}

/// Starts from "deny everything" and applies the rules in order.
pub fn devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    write(dir, "devices.deny", "a")?;
    for r in rules {
        let file = if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &v1_line(r))?;
    }
    Ok(())
}

pub fn network(cls: Option<&Path>, prio: Option<&Path>, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        let dir = cls.ok_or_else(|| Error::Unsupported("linux.resources.network.classID needs the net_cls controller, which this host has not mounted".into()))?;
        write(dir, "net_cls.classid", &id.to_string())?;
    }
    for p in n.priorities().iter().flatten() {
        let dir = prio.ok_or_else(|| Error::Unsupported("linux.resources.network.priorities needs the net_prio controller, which this host has not mounted".into()))?;
        write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}
