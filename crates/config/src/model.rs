//! Every daemon.json key berth knows, under Docker's name, with Docker's default (or berth's,
//! where berth's own paths differ). docs/configuration.md lists them; a unit test keeps the
//! two in step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DaemonConfig {
    // Networking.
    /// Containers on the default bridge may talk to each other.
    pub icc: bool,
    /// The default bridge's address and prefix, as 192.168.1.5/24 (the gateway's address).
    pub bip: Option<String>,
    /// Where the default bridge hands out addresses: a subnet inside `bip`'s.
    pub fixed_cidr: Option<String>,
    /// Where user-defined networks' subnets come from when they name none.
    pub default_address_pools: Vec<PoolEntry>,
    /// The default bridge's MTU (0: the kernel's, 1500).
    pub mtu: u32,
    /// Whether berth turns on the host's IPv4 forwarding.
    pub ip_forward: bool,
    /// Whether the default bridge's outbound traffic is masqueraded.
    pub ip_masq: bool,
    /// Whether berth programs the firewall at all (port publishing, masquerade, isolation).
    pub iptables: bool,
    pub ip6tables: bool,
    /// The default bridge gets an IPv6 subnet (`fixed-cidr-v6`) too.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    /// Nameservers, search domains and options for containers that give none of their own.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opts: Vec<String>,
    /// An existing bridge to use as the default bridge, or "none" for no default bridge.
    pub bridge: Option<String>,
    /// Docker's userland proxy; berth has none (published ports are NAT rules only).
    pub userland_proxy: bool,

    // Registries.
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub max_concurrent_downloads: u32,
    pub max_concurrent_uploads: u32,

    // Containers.
    pub default_ulimits: BTreeMap<String, UlimitEntry>,
    pub default_shm_size: String,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub default_runtime: String,
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    /// "host" or "private": the cgroup namespace of containers that do not choose.
    pub default_cgroupns_mode: String,
    /// A seccomp profile (Docker's JSON) for containers that do not choose; "unconfined" for
    /// none.
    pub seccomp_profile: Option<String>,
    pub no_new_privileges: bool,
    /// Run an init as PID 1 in containers that do not choose.
    pub init: bool,
    pub init_path: Option<String>,
    /// "default", USER, USER:GROUP or UID:GID: the subordinate ids containers' root maps to.
    pub userns_remap: Option<String>,
    /// Docker's `live-restore`: berth always keeps containers running across daemon restarts.
    pub live_restore: bool,

    // Storage and sockets.
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// Where the API is served: unix:///path and tcp://addr:port (TCP needs TLS).
    pub hosts: Vec<String>,
    pub tls: bool,
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    /// The group that owns the unix sockets (when it exists).
    pub group: String,
    /// Where the daemon writes its pid (under `exec-root` by default).
    pub pidfile: Option<PathBuf>,
    pub debug: bool,
    /// error, warn, info or debug (Docker's "fatal" counts as error).
    pub log_level: String,
    /// The daemon's labels, shown by `info`.
    pub labels: Vec<String>,
    /// overlay2 only (berth stacks layers with overlayfs).
    pub storage_driver: Option<String>,
    pub exec_opts: Vec<String>,
    pub experimental: bool,
    /// Docker's `features` map (as {"buildkit": false}); berth's builder is the classic one.
    pub features: BTreeMap<String, bool>,
    /// Seconds containers get to stop when the daemon is asked to stop them all.
    pub shutdown_timeout: u32,
}

/// `{"base": "10.10.0.0/16", "size": 24}`: subnets of `size` bits cut from `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    pub base: String,
    pub size: u8,
}

/// `{"path": "/usr/sbin/runc", "runtimeArgs": ["--debug"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeEntry {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_args: Vec<String>,
}

/// `{"Name": "nofile", "Hard": 64000, "Soft": 64000}`, as Docker writes ulimits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct UlimitEntry {
    #[serde(default)]
    pub name: String,
    pub hard: i64,
    pub soft: i64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            icc: true,
            bip: None,
            fixed_cidr: None,
            default_address_pools: Vec::new(),
            mtu: 0,
            ip_forward: true,
            ip_masq: true,
            iptables: true,
            ip6tables: false,
            ipv6: false,
            fixed_cidr_v6: None,
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_opts: Vec::new(),
            bridge: None,
            userland_proxy: false,
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            default_ulimits: BTreeMap::new(),
            default_shm_size: "64M".into(),
            log_driver: "json-file".into(),
            log_opts: BTreeMap::new(),
            default_runtime: "berth".into(),
            runtimes: BTreeMap::new(),
            default_cgroupns_mode: "host".into(),
            seccomp_profile: None,
            no_new_privileges: false,
            init: false,
            init_path: None,
            userns_remap: None,
            live_restore: true,
            data_root: PathBuf::from("/var/lib/berth"),
            exec_root: PathBuf::from("/run/berth"),
            hosts: vec!["unix:///run/berth/berth.sock".into()],
            tls: false,
            tlsverify: false,
            tlscacert: None,
            tlscert: None,
            tlskey: None,
            group: "berth".into(),
            pidfile: None,
            debug: false,
            log_level: "info".into(),
            labels: Vec::new(),
            storage_driver: None,
            exec_opts: Vec::new(),
            experimental: false,
            features: BTreeMap::new(),
            shutdown_timeout: 15,
        }
    }
}

impl DaemonConfig {
    /// Every key, as the file spells it.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(DaemonConfig::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The pid file: the one configured, or `berth.pid` in the exec root.
    pub fn pidfile_path(&self) -> PathBuf {
        self.pidfile
            .clone()
            .unwrap_or_else(|| self.exec_root.join("berth.pid"))
    }
}

#[cfg(test)]
mod tests {
    use super::DaemonConfig;

    #[test]
    fn docs_list_every_key() {
        let docs = include_str!("../../../docs/configuration.md");
        for key in DaemonConfig::keys() {
            assert!(
                docs.contains(&format!("| `{key}` |")),
                "docs/configuration.md lacks {key}"
            );
        }
    }
}
