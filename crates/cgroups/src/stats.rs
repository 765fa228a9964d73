//! One reading of what a cgroup has used so far: memory, CPU time, processes and block I/O,
//! from the v1 or v2 files of whichever hierarchy holds each controller. The parsers take the
//! files' text, so that both versions are tested on samples whatever the host runs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::files;
use crate::{Cgroup, Error, Hierarchy, Result};

/// The kernel reports cpuacct.stat in USER_HZ ticks, which is 100 on every Linux ABI
/// (sysconf(_SC_CLK_TCK)).
const USER_HZ: u64 = 100;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// What a cgroup has used; a controller this host does not give the cgroup is None.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
    pub pids: Option<Pids>,
    pub io: Option<Io>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub usage: u64,
    /// v1 only: the highest usage seen.
    pub max_usage: Option<u64>,
    /// v1 only: how often usage hit the limit.
    pub failcnt: Option<u64>,
    /// u64::MAX when v2 says "max"; v1's "no limit" is the kernel's own huge number.
    pub limit: u64,
    /// memory.stat as it is: v1 and v2 name their counters differently.
    pub stat: BTreeMap<String, u64>,
}

/// CPU time in nanoseconds, and CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub total: u64,
    /// v1 only (cpuacct.usage_percpu).
    pub per_cpu: Vec<u64>,
    pub user: u64,
    pub system: u64,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pids {
    pub current: u64,
    /// None when unlimited ("max").
    pub limit: Option<u64>,
}

/// One device's count for one operation ("Read", "Write" … on v1; "read", "write" on v2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Io {
    pub bytes: Vec<IoEntry>,
    pub operations: Vec<IoEntry>,
}

impl Cgroup {
    /// Reads every controller's figures once.
    pub fn usage(&self) -> Result<Usage> {
        Ok(Usage {
            memory: self.dir_for("memory").map(memory).transpose()?,
            cpu: self.cpu_usage()?,
            pids: self.dir_for("pids").map(pids).transpose()?,
            io: self.io_usage()?,
        })
    }

    fn cpu_usage(&self) -> Result<Option<Cpu>> {
        if let Some(acct) = self.dir_for("cpuacct").filter(|h| !h.is_v2()) {
            let throttling = self.dir_for("cpu").filter(|h| !h.is_v2());
            return cpu_v1(&acct.dir, throttling.map(|h| h.dir.as_path())).map(Some);
        }
        // On v2, cpu.stat's usage lines are there even when the cpu controller is not.
        match self.hierarchies.iter().find(|h| h.is_v2()) {
            Some(h) => Ok(Some(parse_cpu_stat_v2(&files::read(&h.dir, "cpu.stat")?))),
            None => Ok(None),
        }
    }

    fn io_usage(&self) -> Result<Option<Io>> {
        match self.dir_for("blkio").or_else(|| self.dir_for("io")) {
            Some(h) if h.is_v2() => Ok(Some(parse_io_stat(&files::read(&h.dir, "io.stat")?))),
            Some(h) => blkio_v1(&h.dir).map(Some),
            None => Ok(None),
        }
    }
}

fn memory(h: &Hierarchy) -> Result<Memory> {
    let dir = &h.dir;
    if h.is_v2() {
        return Ok(Memory {
            usage: number(dir, "memory.current")?,
            max_usage: None,
            failcnt: None,
            limit: parse_max(&files::read(dir, "memory.max")?).unwrap_or(u64::MAX),
            stat: parse_keyed(&files::read(dir, "memory.stat")?),
        });
    }
    Ok(Memory {
        usage: number(dir, "memory.usage_in_bytes")?,
        max_usage: Some(number(dir, "memory.max_usage_in_bytes")?),
        failcnt: Some(number(dir, "memory.failcnt")?),
        limit: number(dir, "memory.limit_in_bytes")?,
        stat: parse_keyed(&files::read(dir, "memory.stat")?),
    })
}

fn cpu_v1(acct: &Path, cpu: Option<&Path>) -> Result<Cpu> {
    let ticks = parse_keyed(&files::read(acct, "cpuacct.stat")?);
    let to_nanos = |key: &str| ticks.get(key).copied().unwrap_or(0) * (NANOS_PER_SEC / USER_HZ);
    let throttling = match cpu {
        Some(dir) => parse_keyed(&files::read(dir, "cpu.stat")?),
        None => BTreeMap::new(),
    };
    let get = |key: &str| throttling.get(key).copied().unwrap_or(0);
    Ok(Cpu {
        total: number(acct, "cpuacct.usage")?,
        per_cpu: parse_numbers(&files::read(acct, "cpuacct.usage_percpu")?),
        user: to_nanos("user"),
        system: to_nanos("system"),
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_time"),
    })
}

fn pids(h: &Hierarchy) -> Result<Pids> {
    Ok(Pids {
        current: number(&h.dir, "pids.current")?,
        limit: parse_max(&files::read(&h.dir, "pids.max")?),
    })
}

/// As runc: the CFQ/BFQ scheduler's counters when the kernel keeps them, else the throttling
/// layer's, which every v1 kernel with blkio has.
fn blkio_v1(dir: &Path) -> Result<Io> {
    for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
        let bytes = format!("{prefix}io_service_bytes_recursive");
        let Some(text) = read_optional(dir, &bytes)? else {
            continue;
        };
        let bytes = parse_blkio_v1(&text);
        if bytes.is_empty() && prefix != "blkio.throttle." {
            continue;
        }
        let ops = read_optional(dir, &format!("{prefix}io_serviced_recursive"))?;
        return Ok(Io {
            bytes,
            operations: ops.as_deref().map(parse_blkio_v1).unwrap_or_default(),
        });
    }
    Ok(Io::default())
}

fn read_optional(dir: &Path, file: &str) -> Result<Option<String>> {
    match files::read(dir, file) {
        Ok(text) => Ok(Some(text)),
        Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn number(dir: &Path, file: &str) -> Result<u64> {
    let text = files::read(dir, file)?;
    text.parse().map_err(|_| {
        Error::Invalid(format!(
            "{} holds {text:?}, not a number",
            dir.join(file).display()
        ))
    })
}

/// "max" (no limit) → None; a number → Some.
fn parse_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat); lines that are not are skipped.
pub fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn parse_numbers(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// v2 cpu.stat counts microseconds.
pub fn parse_cpu_stat_v2(text: &str) -> Cpu {
    let stat = parse_keyed(text);
    let micros = |key: &str| stat.get(key).copied().unwrap_or(0) * 1000;
    Cpu {
        total: micros("usage_usec"),
        per_cpu: Vec::new(),
        user: micros("user_usec"),
        system: micros("system_usec"),
        periods: stat.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: micros("throttled_usec"),
    }
}

/// v1 blkio lines: "8:0 Read 4096"; the closing "Total N" line names no device and is left out.
pub fn parse_blkio_v1(text: &str) -> Vec<IoEntry> {
    text.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (major, minor) = device(fields.next()?)?;
            let op = fields.next()?.to_string();
            let value = fields.next()?.parse().ok()?;
            Some(IoEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// v2 io.stat lines: "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0".
pub fn parse_io_stat(text: &str) -> Io {
    let mut io = Io::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(device) else {
            continue;
        };
        for (key, value) in fields.filter_map(|f| f.split_once('=')) {
            let Ok(value) = value.parse() else { continue };
            let (list, op) = match key {
                "rbytes" => (&mut io.bytes, "read"),
                "wbytes" => (&mut io.bytes, "write"),
                "rios" => (&mut io.operations, "read"),
                "wios" => (&mut io.operations, "write"),
                _ => continue,
            };
            list.push(IoEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    io
}

fn device(text: &str) -> Option<(u64, u64)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let stat = parse_keyed("cache 9338880\nrss 4108288\ntotal_inactive_file 4096\nbad\nx y\n");
        assert_eq!(stat.get("cache"), Some(&9338880));
        assert_eq!(stat.get("total_inactive_file"), Some(&4096));
        assert_eq!(stat.len(), 3);
    }

    #[test]
    fn max_means_unlimited() {
        assert_eq!(parse_max("max"), None);
        assert_eq!(parse_max("67108864\n"), Some(67108864));
    }

    #[test]
    fn v2_cpu_stat_in_nanoseconds() {
        let cpu = parse_cpu_stat_v2(
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n",
        );
        assert_eq!(cpu.total, 1_500_000);
        assert_eq!(cpu.user, 1_000_000);
        assert_eq!(cpu.system, 500_000);
        assert_eq!((cpu.periods, cpu.throttled_periods), (10, 2));
        assert_eq!(cpu.throttled_time, 30_000);
        assert!(cpu.per_cpu.is_empty());
    }

    #[test]
    fn v1_blkio_lines() {
        let e = parse_blkio_v1("8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            IoEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 512
            }
        );
        assert!(parse_blkio_v1("Total 0\n").is_empty());
    }

    #[test]
    fn v2_io_stat() {
        let io = parse_io_stat(
            "8:0 rbytes=4096 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=x\n",
        );
        assert_eq!(io.bytes.len(), 3);
        assert_eq!((io.bytes[0].op.as_str(), io.bytes[0].value), ("read", 4096));
        assert_eq!((io.bytes[2].major, io.bytes[2].minor), (253, 1));
        assert_eq!(io.operations.len(), 2);
        assert_eq!(io.operations[1].value, 1);
    }

    #[test]
    fn v1_readers_on_sample_files() {
        let acct = tempfile::tempdir().unwrap();
        let cpu = tempfile::tempdir().unwrap();
        std::fs::write(acct.path().join("cpuacct.stat"), "user 150\nsystem 50\n").unwrap();
        std::fs::write(acct.path().join("cpuacct.usage"), "2000000000\n").unwrap();
        std::fs::write(acct.path().join("cpuacct.usage_percpu"), "1500 500 \n").unwrap();
        std::fs::write(
            cpu.path().join("cpu.stat"),
            "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n",
        )
        .unwrap();
        let c = cpu_v1(acct.path(), Some(cpu.path())).unwrap();
        assert_eq!(c.total, 2_000_000_000);
        assert_eq!(c.per_cpu, vec![1500, 500]);
        assert_eq!((c.user, c.system), (1_500_000_000, 500_000_000));
        assert_eq!(
            (c.periods, c.throttled_periods, c.throttled_time),
            (4, 1, 99)
        );

        let blk = tempfile::tempdir().unwrap();
        std::fs::write(
            blk.path().join("blkio.io_service_bytes_recursive"),
            "Total 0\n",
        )
        .unwrap();
        std::fs::write(
            blk.path().join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 10\nTotal 10\n",
        )
        .unwrap();
        let io = blkio_v1(blk.path()).unwrap();
        assert_eq!(io.bytes.len(), 1);
        assert!(io.operations.is_empty());
    }

    #[test]
    fn v2_readers_on_sample_files() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy {
            mount_point: dir.path().to_path_buf(),
            options: String::new(),
            v2: true,
            dir: dir.path().to_path_buf(),
        };
        std::fs::write(dir.path().join("memory.current"), "1048576\n").unwrap();
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(
            dir.path().join("memory.stat"),
            "anon 4096\ninactive_file 8192\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pids.current"), "3\n").unwrap();
        std::fs::write(dir.path().join("pids.max"), "100\n").unwrap();
        let m = memory(&h).unwrap();
        assert_eq!((m.usage, m.limit), (1048576, u64::MAX));
        assert_eq!((m.max_usage, m.failcnt), (None, None));
        assert_eq!(m.stat.get("inactive_file"), Some(&8192));
        let p = pids(&h).unwrap();
        assert_eq!((p.current, p.limit), (3, Some(100)));
    }

    #[test]
    fn bad_numbers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pids.current"), "many\n").unwrap();
        assert!(number(dir.path(), "pids.current").is_err());
        assert!(number(dir.path(), "absent").is_err());
    }
}
