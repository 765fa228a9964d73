//! The merged settings parsed into what the daemon uses. Every error names its key; nothing
//! here touches the host (whether a bridge or a file exists is the daemon's to find out).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;

use crate::error::{invalid, Result};
use crate::model::DaemonConfig;

/// What the daemon takes from a configuration, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub bip: Option<Bip>,
    /// The default bridge's dynamic range (`fixed-cidr`).
    pub fixed_cidr: Option<IpNet>,
    pub fixed_cidr_v6: Option<IpNet>,
    pub pools: Vec<AddressPool>,
    pub mtu: Option<u32>,
    pub dns: Vec<IpAddr>,
    /// `bridge`: None to make berth's own default bridge, Some("none") for no default bridge,
    /// Some(name) to use an existing one.
    pub bridge: Option<String>,
    /// Mirrors as base URLs without a trailing slash.
    pub mirrors: Vec<String>,
    pub insecure: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    pub hosts: Vec<Host>,
    /// The tracing filter for `debug` and `log-level`.
    pub log_filter: String,
}

/// `bip`: the default bridge's own address and its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bip {
    pub address: IpAddr,
    pub subnet: IpNet,
}

/// One `default-address-pools` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: IpNet,
    pub size: u8,
}

impl AddressPool {
    /// The subnets this pool hands out, in order.
    pub fn subnets(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.base.subnets(self.size).into_iter().flatten()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// One of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// The rlimit names Docker's `--ulimit` takes.
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

pub fn check(c: &DaemonConfig) -> Result<Checked> {
    let bip = c.bip.as_deref().map(parse_bip).transpose()?;
    if bip.is_some() && c.bridge.is_some() {
        return Err(invalid(
            "bip",
            "bip and bridge cannot both be set: bip configures berth's own default bridge, bridge names another",
        ));
    }
    let fixed_cidr = c
        .fixed_cidr
        .as_deref()
        .map(|s| subnet("fixed-cidr", s))
        .transpose()?;
    if let (Some(range), Some(b)) = (fixed_cidr, bip) {
        if !b.subnet.contains(&range) {
            return Err(invalid(
                "fixed-cidr",
                format!(
                    "{range} is not inside bip's subnet {}: give a range inside it",
                    b.subnet
                ),
            ));
        }
    }
    let fixed_cidr_v6 = c
        .fixed_cidr_v6
        .as_deref()
        .map(|s| subnet("fixed-cidr-v6", s))
        .transpose()?;
    if c.ipv6 && fixed_cidr_v6.is_none() {
        return Err(invalid(
            "ipv6",
            "the default bridge needs an IPv6 subnet: set fixed-cidr-v6 too (as fd00:1::/64)",
        ));
    }
    Ok(Checked {
        bip,
        fixed_cidr,
        fixed_cidr_v6,
        pools: pools(c)?,
        mtu: mtu(c.mtu)?,
        dns: addresses("dns", &c.dns)?,
        bridge: bridge(c.bridge.as_deref())?,
        mirrors: mirrors(&c.registry_mirrors)?,
        insecure: insecure(&c.insecure_registries)?,
        ulimits: ulimits(c)?,
        hosts: hosts(c)?,
        log_filter: log_filter(c)?,
    })
    .and_then(|checked| small_checks(c).map(|()| checked))
}

/// The keys whose values are one of a few words, or a count that must not be zero.
fn small_checks(c: &DaemonConfig) -> Result<()> {
    if c.max_concurrent_downloads == 0 {
        return Err(invalid("max-concurrent-downloads", "give at least 1"));
    }
    if c.max_concurrent_uploads == 0 {
        return Err(invalid("max-concurrent-uploads", "give at least 1"));
    }
    if !matches!(c.default_cgroupns_mode.as_str(), "host" | "private") {
        return Err(invalid(
            "default-cgroupns-mode",
            format!("{:?}: give host or private", c.default_cgroupns_mode),
        ));
    }
    if let Some(d) = &c.storage_driver {
        if !matches!(d.as_str(), "overlay2" | "overlay") {
            return Err(invalid(
                "storage-driver",
                format!(
                    "{d:?}: berth stacks layers with overlayfs only: give overlay2 or leave it out"
                ),
            ));
        }
    }
    for opt in &c.exec_opts {
        match opt.split_once('=') {
            Some(("native.cgroupdriver", "cgroupfs")) => {}
            Some(("native.cgroupdriver", other)) => {
                return Err(invalid(
                    "exec-opts",
                    format!("cgroup driver {other:?} is not supported: berth manages cgroups itself (cgroupfs)"),
                ))
            }
            _ => {
                return Err(invalid(
                    "exec-opts",
                    format!("unknown option {opt:?}: berth takes native.cgroupdriver=cgroupfs"),
                ))
            }
        }
    }
    if let Some(user) = &c.userns_remap {
        crate::checks::userns_remap(user)?;
    }
    Ok(())
}

/// `userns-remap`'s forms: "default", a user, user:group, or uid:gid.
pub(crate) fn userns_remap(value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.split(':').count() <= 2
        && value
            .split(':')
            .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "userns-remap",
            format!("{value:?}: give default, a user, user:group or uid:gid"),
        ))
    }
}

fn parse_bip(text: &str) -> Result<Bip> {
    let net: IpNet = text.parse().map_err(|_| {
        invalid(
            "bip",
            format!("{text:?} is not an address with a prefix: give one as 192.168.1.5/24"),
        )
    })?;
    if net.addr() == net.network() || matches!(net, IpNet::V6(_)) {
        return Err(invalid(
            "bip",
            format!("{text}: give the bridge's own IPv4 address in the subnet, as 192.168.1.1/24"),
        ));
    }
    Ok(Bip {
        address: net.addr(),
        subnet: net.trunc(),
    })
}

fn subnet(key: &str, text: &str) -> Result<IpNet> {
    let net: IpNet = text.parse().map_err(|_| {
        invalid(
            key,
            format!("{text:?} is not a subnet: give one as 10.1.0.0/16"),
        )
    })?;
    if net != net.trunc() {
        return Err(invalid(
            key,
            format!("{net} has host bits set: did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

fn pools(c: &DaemonConfig) -> Result<Vec<AddressPool>> {
    c.default_address_pools
        .iter()
        .map(|p| {
            let base = subnet("default-address-pools", &p.base)?;
            let max = match base {
                IpNet::V4(_) => 32,
                IpNet::V6(_) => 128,
            };
            if p.size < base.prefix_len() || p.size > max {
                return Err(invalid(
                    "default-address-pools",
                    format!(
                        "size {} does not fit base {base}: give a size from {} to {max}",
                        p.size,
                        base.prefix_len()
                    ),
                ));
            }
            Ok(AddressPool { base, size: p.size })
        })
        .collect()
}

fn mtu(mtu: u32) -> Result<Option<u32>> {
    match mtu {
        0 => Ok(None),
        68..=65535 => Ok(Some(mtu)),
        _ => Err(invalid(
            "mtu",
            format!("{mtu}: give 68 to 65535 (or 0 for 1500)"),
        )),
    }
}

fn addresses(key: &str, list: &[String]) -> Result<Vec<IpAddr>> {
    list.iter()
        .map(|s| {
            s.parse()
                .map_err(|_| invalid(key, format!("{s:?} is not an IP address")))
        })
        .collect()
}

fn bridge(name: Option<&str>) -> Result<Option<String>> {
    match name {
        None | Some("") => Ok(None),
        Some(n) if n.len() > 15 || n.contains(['/', ' ']) => Err(invalid(
            "bridge",
            format!("{n:?} is not an interface name (at most 15 characters, no '/' or spaces)"),
        )),
        Some(n) => Ok(Some(n.to_string())),
    }
}

fn mirrors(list: &[String]) -> Result<Vec<String>> {
    list.iter()
        .map(|m| {
            let rest = m
                .strip_prefix("https://")
                .or_else(|| m.strip_prefix("http://"))
                .filter(|rest| !rest.trim_end_matches('/').is_empty() && !rest.contains(' '))
                .ok_or_else(|| {
                    invalid(
                        "registry-mirrors",
                        format!("{m:?}: give a mirror's URL, as https://mirror.example.com"),
                    )
                })?;
            if rest.trim_end_matches('/').contains('/') {
                return Err(invalid(
                    "registry-mirrors",
                    format!("{m:?}: a mirror is a registry's root URL, without a path"),
                ));
            }
            Ok(m.trim_end_matches('/').to_string())
        })
        .collect()
}

fn insecure(list: &[String]) -> Result<Vec<String>> {
    for entry in list {
        let bad = if entry.contains('/') {
            entry.parse::<IpNet>().is_err()
        } else {
            entry.is_empty() || entry.contains("://") || entry.contains(' ')
        };
        if bad {
            return Err(invalid(
                "insecure-registries",
                format!(
                    "{entry:?}: give host[:port] or a CIDR, as registry.local:5000 or 10.0.0.0/8"
                ),
            ));
        }
    }
    Ok(list.to_vec())
}

fn ulimits(c: &DaemonConfig) -> Result<Vec<Ulimit>> {
    c.default_ulimits
        .iter()
        .map(|(name, u)| {
            if !ULIMITS.contains(&name.as_str()) || (!u.name.is_empty() && u.name != *name) {
                return Err(invalid(
                    "default-ulimits",
                    format!(
                        "{name:?}: give one of {}, with Name the same as its key",
                        ULIMITS.join(", ")
                    ),
                ));
            }
            // -1 is Docker's "unlimited".
            let value = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
            let (soft, hard) = (value(u.soft), value(u.hard));
            if soft > hard {
                return Err(invalid(
                    "default-ulimits",
                    format!(
                        "{name}: the soft limit {} is above the hard limit {}",
                        u.soft, u.hard
                    ),
                ));
            }
            Ok(Ulimit {
                name: name.clone(),
                soft,
                hard,
            })
        })
        .collect()
}

fn hosts(c: &DaemonConfig) -> Result<Vec<Host>> {
    if c.hosts.is_empty() {
        return Err(invalid(
            "hosts",
            "give at least one, as unix:///run/berth/berth.sock",
        ));
    }
    let hosts = c
        .hosts
        .iter()
        .map(|h| parse_host(h))
        .collect::<Result<Vec<Host>>>()?;
    let tcp = hosts.iter().any(|h| matches!(h, Host::Tcp(_)));
    if tcp && (c.tlscacert.is_none() || c.tlscert.is_none() || c.tlskey.is_none()) {
        return Err(invalid(
            "hosts",
            "a tcp:// host needs tlscacert, tlscert and tlskey: berth serves the API over TCP only to clients with a certificate",
        ));
    }
    if !tcp && (c.tlscacert.is_some() || c.tlscert.is_some() || c.tlskey.is_some()) {
        return Err(invalid(
            "tlscert",
            "TLS settings go with a tcp:// host in hosts",
        ));
    }
    Ok(hosts)
}

fn parse_host(h: &str) -> Result<Host> {
    if let Some(path) = h.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(invalid(
                "hosts",
                format!("{h:?}: give an absolute socket path, as unix:///run/berth/berth.sock"),
            ));
        }
        return Ok(Host::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = h.strip_prefix("tcp://") {
        return addr
            .trim_end_matches('/')
            .parse()
            .map(Host::Tcp)
            .map_err(|_| {
                invalid(
                    "hosts",
                    format!("{h:?}: give tcp://ADDR:PORT, as tcp://127.0.0.1:2376"),
                )
            });
    }
    Err(invalid(
        "hosts",
        format!("{h:?}: berth listens on unix:///path and tcp://ADDR:PORT"),
    ))
}

fn log_filter(c: &DaemonConfig) -> Result<String> {
    if c.debug {
        return Ok("debug".into());
    }
    match c.log_level.as_str() {
        "debug" | "info" | "warn" | "error" => Ok(c.log_level.clone()),
        "fatal" | "panic" => Ok("error".into()),
        other => Err(invalid(
            "log-level",
            format!("{other:?}: give debug, info, warn, error or fatal"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PoolEntry, UlimitEntry};

    fn with(change: impl FnOnce(&mut DaemonConfig)) -> Result<Checked> {
        let mut c = DaemonConfig::default();
        change(&mut c);
        check(&c)
    }

    fn err(change: impl FnOnce(&mut DaemonConfig)) -> String {
        with(change).unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_check() {
        let c = with(|_| {}).unwrap();
        assert_eq!(c.hosts, [Host::Unix("/run/berth/berth.sock".into())]);
        assert_eq!(c.log_filter, "info");
        assert_eq!(c.mtu, None);
    }

    #[test]
    fn bip_gives_the_bridge_address_and_its_subnet() {
        let c = with(|c| {
            c.bip = Some("10.55.0.1/24".into());
            c.fixed_cidr = Some("10.55.0.128/25".into());
        })
        .unwrap();
        let bip = c.bip.unwrap();
        assert_eq!(bip.address.to_string(), "10.55.0.1");
        assert_eq!(bip.subnet.to_string(), "10.55.0.0/24");
        assert!(err(|c| c.bip = Some("10.55.0.0/24".into())).starts_with("bip: "));
        assert!(err(|c| {
            c.bip = Some("10.55.0.1/24".into());
            c.fixed_cidr = Some("10.56.0.0/25".into());
        })
        .starts_with("fixed-cidr: 10.56.0.0/25 is not inside"));
        assert!(err(|c| {
            c.bip = Some("10.55.0.1/24".into());
            c.bridge = Some("br0".into());
        })
        .contains("bip and bridge cannot both be set"));
    }

    #[test]
    fn pools_cut_subnets_of_their_size() {
        let c = with(|c| {
            c.default_address_pools = vec![PoolEntry {
                base: "10.10.0.0/16".into(),
                size: 24,
            }]
        })
        .unwrap();
        let first: Vec<String> = c.pools[0]
            .subnets()
            .take(2)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(first, ["10.10.0.0/24", "10.10.1.0/24"]);
        assert!(err(|c| {
            c.default_address_pools = vec![PoolEntry {
                base: "10.10.0.0/16".into(),
                size: 8,
            }]
        })
        .contains("size 8 does not fit base 10.10.0.0/16"));
    }

    #[test]
    fn hosts_parse_and_tcp_needs_certificates() {
        let c = with(|c| {
            c.hosts = vec!["unix:///tmp/a.sock".into(), "tcp://127.0.0.1:2376".into()];
            c.tlscacert = Some("ca.pem".into());
            c.tlscert = Some("cert.pem".into());
            c.tlskey = Some("key.pem".into());
        })
        .unwrap();
        assert_eq!(c.hosts[1], Host::Tcp("127.0.0.1:2376".parse().unwrap()));
        assert!(err(|c| c.hosts = vec!["tcp://127.0.0.1:2376".into()]).contains("needs tlscacert"));
        assert!(err(|c| c.hosts = vec!["fd://".into()]).starts_with("hosts: \"fd://\""));
        assert!(err(|c| c.hosts = vec!["unix://rel.sock".into()]).contains("absolute"));
    }

    #[test]
    fn registries_mirrors_and_insecure_entries_are_checked() {
        let c = with(|c| {
            c.registry_mirrors = vec!["http://127.0.0.1:5001/".into()];
            c.insecure_registries = vec!["10.0.0.0/8".into(), "reg.local:5000".into()];
        })
        .unwrap();
        assert_eq!(c.mirrors, ["http://127.0.0.1:5001"]);
        assert!(err(|c| c.registry_mirrors = vec!["mirror.local".into()])
            .starts_with("registry-mirrors"));
        assert!(
            err(|c| c.registry_mirrors = vec!["https://m.local/v2".into()])
                .contains("without a path")
        );
        assert!(err(|c| c.insecure_registries = vec!["10.0.0.0/33".into()])
            .starts_with("insecure-registries"));
    }

    #[test]
    fn ulimits_sizes_levels_and_words_are_checked() {
        let c = with(|c| {
            c.default_ulimits.insert(
                "nofile".into(),
                UlimitEntry {
                    name: "nofile".into(),
                    soft: 1024,
                    hard: -1,
                },
            );
            c.log_level = "fatal".into();
        })
        .unwrap();
        assert_eq!(
            c.ulimits[0],
            Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: u64::MAX
            }
        );
        assert_eq!(c.log_filter, "error");
        assert!(err(|c| {
            c.default_ulimits.insert(
                "nofile".into(),
                UlimitEntry {
                    name: String::new(),
                    soft: 10,
                    hard: 5,
                },
            );
        })
        .contains("soft limit 10 is above the hard limit 5"));
        assert!(err(|c| c.log_level = "loud".into()).starts_with("log-level"));
        assert!(
            err(|c| c.default_cgroupns_mode = "shared".into()).starts_with("default-cgroupns-mode")
        );
        assert!(err(|c| c.storage_driver = Some("btrfs".into())).starts_with("storage-driver"));
        assert!(
            err(|c| c.exec_opts = vec!["native.cgroupdriver=systemd".into()])
                .contains("not supported")
        );
        assert!(err(|c| c.mtu = 10).starts_with("mtu"));
        assert!(err(|c| c.dns = vec!["dns.local".into()]).starts_with("dns"));
        assert!(err(|c| c.ipv6 = true).starts_with("ipv6"));
        assert!(err(|c| c.max_concurrent_downloads = 0).starts_with("max-concurrent-downloads"));
        assert!(err(|c| c.userns_remap = Some("a:b:c".into())).starts_with("userns-remap"));
    }
}
