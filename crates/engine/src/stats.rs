//! One sample of a running container's resource use, in the shape of Docker's stats API: its
//! cgroup's memory, CPU time, processes and block I/O; the host's CPU time and CPU count,
//! against which clients turn the container's CPU time into a percentage; and the traffic on
//! each interface of its network namespace.

use std::collections::BTreeMap;

use berth_cgroups::stats::{Cpu, IoEntry, Memory, Pids};
use berth_cgroups::{Cgroup, Usage};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// The kernel's /proc/stat counts USER_HZ ticks, 100 a second on every Linux ABI; Docker
/// converts them with the same figure.
const USER_HZ: u64 = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    #[serde(with = "time::serde::rfc3339")]
    pub read: OffsetDateTime,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub cpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    /// By interface name, loopback left out (as Docker does). Empty without a network
    /// namespace of the container's own.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0: no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    pub io_serviced_recursive: Vec<BlkioEntry>,
    pub io_queue_recursive: Vec<BlkioEntry>,
    pub io_service_time_recursive: Vec<BlkioEntry>,
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    pub io_merged_recursive: Vec<BlkioEntry>,
    pub io_time_recursive: Vec<BlkioEntry>,
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// The host's CPU time in nanoseconds, all CPUs together.
    #[serde(skip_serializing_if = "is_zero")]
    pub system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failcnt: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Reads one sample: the cgroup's files, the host's /proc/stat and /proc/meminfo, and (when
/// `own_network`) `pid`'s /proc/<pid>/net/dev, which shows the interfaces of that process's
/// network namespace.
pub fn sample(cgroup: Option<&Cgroup>, pid: i32, own_network: bool) -> Result<Stats> {
    let read = OffsetDateTime::now_utc();
    let usage = match cgroup {
        Some(c) => c.usage().map_err(|e| Error::Runtime(e.into()))?,
        None => Usage::default(),
    };
    let (system_cpu_usage, online_cpus) = parse_proc_stat(&read_proc("/proc/stat")?);
    let memory_total = parse_mem_total(&read_proc("/proc/meminfo")?);
    let networks = match own_network {
        true => parse_net_dev(&read_proc(&format!("/proc/{pid}/net/dev"))?),
        false => BTreeMap::new(),
    };
    let mut cpu_stats = usage.cpu.map(cpu_stats).unwrap_or_default();
    cpu_stats.system_cpu_usage = system_cpu_usage;
    cpu_stats.online_cpus = online_cpus;
    Ok(Stats {
        read,
        pids_stats: usage.pids.map(pids_stats).unwrap_or_default(),
        blkio_stats: usage.io.map(blkio_stats).unwrap_or_default(),
        cpu_stats,
        memory_stats: usage
            .memory
            .map(|m| memory_stats(m, memory_total))
            .unwrap_or_default(),
        networks,
    })
}

fn read_proc(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("read {path}"), e))
}

fn cpu_stats(c: Cpu) -> CpuStats {
    CpuStats {
        cpu_usage: CpuUsage {
            total_usage: c.total,
            percpu_usage: c.per_cpu,
            usage_in_kernelmode: c.system,
            usage_in_usermode: c.user,
        },
        system_cpu_usage: 0,
        online_cpus: 0,
        throttling_data: ThrottlingData {
            periods: c.periods,
            throttled_periods: c.throttled_periods,
            throttled_time: c.throttled_time,
        },
    }
}

/// Without a limit of its own a container may use the host's memory, and that is the limit
/// Docker shows (not the kernel's "unlimited" figure).
fn memory_stats(m: Memory, memory_total: Option<u64>) -> MemoryStats {
    let limit = match memory_total {
        Some(total) if total > 0 => m.limit.min(total),
        _ => m.limit,
    };
    MemoryStats {
        usage: m.usage,
        max_usage: m.max_usage.unwrap_or(0),
        stats: m.stat,
        failcnt: m.failcnt.unwrap_or(0),
        limit,
    }
}

fn pids_stats(p: Pids) -> PidsStats {
    PidsStats {
        current: p.current,
        limit: p.limit.unwrap_or(0),
    }
}

fn blkio_stats(io: berth_cgroups::stats::Io) -> BlkioStats {
    let entries = |list: Vec<IoEntry>| {
        list.into_iter()
            .map(|e| BlkioEntry {
                major: e.major,
                minor: e.minor,
                op: e.op,
                value: e.value,
            })
            .collect()
    };
    BlkioStats {
        io_service_bytes_recursive: entries(io.bytes),
        io_serviced_recursive: entries(io.operations),
        ..BlkioStats::default()
    }
}

/// /proc/stat: the host's CPU time in nanoseconds (the first seven columns of the "cpu" line,
/// user to softirq, as Docker sums them) and the number of "cpuN" lines (online CPUs).
pub fn parse_proc_stat(text: &str) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let ticks: u64 = fields.take(7).filter_map(|f| f.parse::<u64>().ok()).sum();
                total = ticks.saturating_mul(1_000_000_000) / USER_HZ;
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

/// /proc/meminfo's MemTotal, in bytes.
pub fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// /proc/<pid>/net/dev: after two header lines, "name: rx_bytes rx_packets rx_errs rx_drop
/// fifo frame compressed multicast tx_bytes tx_packets tx_errs tx_drop …".
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            if name == "lo" || n.len() < 12 {
                return None;
            }
            let stats = NetworkStats {
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            };
            Some((name.to_string(), stats))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0       0          0
";

    #[test]
    fn net_dev_without_loopback() {
        let n = parse_net_dev(NET_DEV);
        assert_eq!(n.len(), 1);
        let eth0 = &n["eth0"];
        assert_eq!((eth0.rx_bytes, eth0.rx_packets), (1296, 16));
        assert_eq!((eth0.rx_errors, eth0.rx_dropped), (1, 2));
        assert_eq!((eth0.tx_bytes, eth0.tx_packets), (726, 9));
        assert_eq!((eth0.tx_errors, eth0.tx_dropped), (3, 4));
    }

    #[test]
    fn net_dev_skips_short_or_bad_lines() {
        assert!(parse_net_dev("eth0: 1 2 3\nveth: a b c d e f g h i j k l\n").is_empty());
    }

    #[test]
    fn proc_stat_in_nanoseconds() {
        let text = "cpu  197670 0 18999 191474 747 0 113 150 0 0\n\
                    cpu0 98012 0 8588 97735 158 0 21 79 0 0\n\
                    cpu1 99658 0 10410 93738 588 0 91 71 0 0\n\
                    intr 1154582 0 0\nctxt 5\n";
        let (total, cpus) = parse_proc_stat(text);
        // user + nice + system + idle + iowait + irq + softirq; steal is not counted.
        let ticks = 197670 + 18999 + 191474 + 747 + 113;
        assert_eq!(total, ticks * 10_000_000);
        assert_eq!(cpus, 2);
        assert_eq!(parse_proc_stat("garbage"), (0, 0));
    }

    #[test]
    fn mem_total_in_bytes() {
        let text = "MemTotal:        4028508 kB\nMemFree:  100 kB\n";
        assert_eq!(parse_mem_total(text), Some(4028508 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB"), None);
    }

    #[test]
    fn unlimited_memory_shows_the_hosts() {
        let m = Memory {
            usage: 10,
            limit: 9223372036854771712,
            ..Memory::default()
        };
        assert_eq!(memory_stats(m.clone(), Some(4096)).limit, 4096);
        let limited = Memory { limit: 1024, ..m };
        assert_eq!(memory_stats(limited, Some(4096)).limit, 1024);
    }

    #[test]
    fn docker_field_names() {
        let cpu = cpu_stats(Cpu {
            total: 5,
            per_cpu: vec![2, 3],
            user: 4,
            system: 1,
            ..Cpu::default()
        });
        let v = serde_json::to_value(&cpu).unwrap();
        assert_eq!(v["cpu_usage"]["total_usage"], 5);
        assert_eq!(v["cpu_usage"]["percpu_usage"], serde_json::json!([2, 3]));
        assert_eq!(v["cpu_usage"]["usage_in_usermode"], 4);
        assert_eq!(v["cpu_usage"]["usage_in_kernelmode"], 1);
        assert_eq!(v["throttling_data"]["periods"], 0);
        assert!(v.get("system_cpu_usage").is_none());
        let io = berth_cgroups::stats::parse_io_stat("8:0 rbytes=7 wbytes=9");
        let v = serde_json::to_value(blkio_stats(io)).unwrap();
        assert_eq!(
            v["io_service_bytes_recursive"][1],
            serde_json::json!({"major": 8, "minor": 0, "op": "write", "value": 9})
        );
    }
}
