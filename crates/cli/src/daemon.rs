//! `berth daemon`: dockerd's flags (and berth's own few), merged with the configuration file
//! by berth-config, then the call that serves the API (berth-api) over the engine. It runs on
//! a multi-threaded runtime of its own; the shim it starts for each container is the small
//! `berth-shim` program beside this one.
//!
//! The daemon's flags are parsed by a parser of their own (`DaemonArgs::parse_from`), not as a
//! subcommand of the client: `-H` names the addresses the daemon listens on, as dockerd's
//! does, where the client's `-H` names the daemon to talk to.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use berth_config::Flags;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug, Default)]
#[command(
    name = "berth daemon",
    about = "Run the berth daemon (the Docker Engine API on a unix socket)",
    after_help = "Every setting can be given in the configuration file instead, under the flag's name \
                  (lists under the plural: dns-opts, hosts, insecure-registries, registry-mirrors, \
                  default-address-pools, default-ulimits, runtimes, log-opts, labels, exec-opts): \
                  see docs/configuration.md. A setting in both is an error."
)]
pub struct DaemonArgs {
    /// The daemon's configuration file
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// The shim program started for each container [default: berth-shim beside berth]
    #[arg(long)]
    pub shim: Option<PathBuf>,

    // Storage and sockets.
    /// Where berth keeps its state (images, containers, volumes) [default: /var/lib/berth]
    #[arg(long, alias = "root", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Where berth keeps its runtime state [default: /run/berth]
    #[arg(long, alias = "run-root", value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Where to serve the API: unix:///path or tcp://ADDR:PORT (repeatable) [default: unix:///run/berth/berth.sock]
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Serve the API on this unix socket (berth's shorthand for -H unix://PATH)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also serve the API on tcp://ADDR:PORT (berth's shorthand for -H tcp://ADDR:PORT)
    #[arg(long, value_name = "tcp://ADDR:PORT")]
    pub tcp: Option<String>,
    /// Use TLS (implied by --tlsverify)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls: Option<bool>,
    /// Verify clients' certificates (berth serves TCP only to verified clients)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tlsverify: Option<bool>,
    /// The CA that signs the clients' certificates
    #[arg(long, value_name = "PEM")]
    pub tlscacert: Option<PathBuf>,
    /// The daemon's TLS certificate
    #[arg(long, value_name = "PEM")]
    pub tlscert: Option<PathBuf>,
    /// The daemon's TLS key
    #[arg(long, value_name = "PEM")]
    pub tlskey: Option<PathBuf>,
    /// The group owning the unix sockets [default: berth]
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Where to write the daemon's pid [default: EXEC_ROOT/berth.pid]
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Log debug messages
    #[arg(short = 'D', long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub debug: Option<bool>,
    /// The log level: debug, info, warn, error, fatal [default: info]
    #[arg(short = 'l', long)]
    pub log_level: Option<String>,
    /// A label for the daemon, key=value (repeatable)
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// The storage driver (overlay2 only)
    #[arg(short = 's', long)]
    pub storage_driver: Option<String>,
    /// Runtime execution options (native.cgroupdriver=cgroupfs)
    #[arg(long = "exec-opt")]
    pub exec_opts: Vec<String>,
    /// Accepted for dockerd's sake; berth has no experimental features
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub experimental: Option<bool>,
    /// Keep containers running while the daemon is down (always on in berth)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub live_restore: Option<bool>,
    /// Seconds containers get to stop when the daemon stops them [default: 15]
    #[arg(long)]
    pub shutdown_timeout: Option<u32>,

    // Networking.
    /// Let containers on the default bridge talk to each other [default: true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub icc: Option<bool>,
    /// The default bridge's address and prefix, as 192.168.1.5/24
    #[arg(long)]
    pub bip: Option<String>,
    /// The default bridge's range for containers' addresses
    #[arg(long)]
    pub fixed_cidr: Option<String>,
    /// A pool for user-defined networks' subnets: base=10.10.0.0/16,size=24 (repeatable)
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    pub default_address_pools: Vec<String>,
    /// The default bridge's MTU
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Turn on IPv4 forwarding [default: true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ip_forward: Option<bool>,
    /// Masquerade the default bridge's outbound traffic [default: true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ip_masq: Option<bool>,
    /// Program the firewall (published ports, masquerade, isolation) [default: true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub iptables: Option<bool>,
    /// Program the IPv6 firewall [default: false]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ip6tables: Option<bool>,
    /// Give the default bridge an IPv6 subnet (with --fixed-cidr-v6)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ipv6: Option<bool>,
    /// The default bridge's IPv6 subnet
    #[arg(long)]
    pub fixed_cidr_v6: Option<String>,
    /// A nameserver for containers that name none (repeatable)
    #[arg(long)]
    pub dns: Vec<String>,
    /// A search domain for containers that name none (repeatable)
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// A resolver option for containers that name none (repeatable)
    #[arg(long = "dns-opt")]
    pub dns_opts: Vec<String>,
    /// An existing bridge to use as the default bridge, or none
    #[arg(short = 'b', long)]
    pub bridge: Option<String>,
    /// Accepted for dockerd's sake: berth publishes ports with NAT rules only
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub userland_proxy: Option<bool>,

    // Registries.
    /// A registry (host:port or CIDR) reached over plain HTTP (repeatable)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// A mirror tried first for docker.io pulls (repeatable)
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Layers downloaded at once [default: 3]
    #[arg(long)]
    pub max_concurrent_downloads: Option<u32>,
    /// Layers uploaded at once [default: 5]
    #[arg(long)]
    pub max_concurrent_uploads: Option<u32>,

    // Containers.
    /// A default ulimit, name=soft[:hard] (repeatable)
    #[arg(long = "default-ulimit")]
    pub default_ulimits: Vec<String>,
    /// The default size of /dev/shm [default: 64M]
    #[arg(long)]
    pub default_shm_size: Option<String>,
    /// The default cgroup namespace mode: host or private [default: host]
    #[arg(long)]
    pub default_cgroupns_mode: Option<String>,
    /// The default seccomp profile (a JSON file, or unconfined)
    #[arg(long)]
    pub seccomp_profile: Option<String>,
    /// Set no-new-privileges on containers by default
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub no_new_privileges: Option<bool>,
    /// Run an init inside containers by default
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub init: Option<bool>,
    /// The init program
    #[arg(long)]
    pub init_path: Option<String>,
    /// Map containers' root to a subordinate range: default, USER[:GROUP] or UID:GID
    #[arg(long)]
    pub userns_remap: Option<String>,
    /// An OCI runtime containers may run with (`run --runtime NAME`), NAME=PATH (repeatable)
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtimes: Vec<String>,
    /// The runtime of containers created without --runtime [default: berth]
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// The log driver of containers created without one: json-file, local or none
    #[arg(long, value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// An option of that log driver, KEY=VALUE (repeatable), as max-size=10m
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
}

/// The keys the flags set, under their daemon.json names and in its shapes.
pub fn flags(a: &DaemonArgs) -> Result<Flags> {
    let mut f = Flags::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            f.insert(key.to_string(), v);
        }
    };
    let list = |v: &[String]| (!v.is_empty()).then(|| json!(v));
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| json!(p));
    put("data-root", path(&a.data_root));
    put("exec-root", path(&a.exec_root));
    put("hosts", hosts(a)?);
    put("tls", a.tls.map(Value::from));
    put("tlsverify", a.tlsverify.map(Value::from));
    put("tlscacert", path(&a.tlscacert));
    put("tlscert", path(&a.tlscert));
    put("tlskey", path(&a.tlskey));
    put("group", a.group.clone().map(Value::from));
    put("pidfile", path(&a.pidfile));
    put("debug", a.debug.map(Value::from));
    put("log-level", a.log_level.clone().map(Value::from));
    put("labels", list(&a.labels));
    put("storage-driver", a.storage_driver.clone().map(Value::from));
    put("exec-opts", list(&a.exec_opts));
    put("experimental", a.experimental.map(Value::from));
    put("live-restore", a.live_restore.map(Value::from));
    put("shutdown-timeout", a.shutdown_timeout.map(Value::from));
    put("icc", a.icc.map(Value::from));
    put("bip", a.bip.clone().map(Value::from));
    put("fixed-cidr", a.fixed_cidr.clone().map(Value::from));
    put("default-address-pools", pools(&a.default_address_pools)?);
    put("mtu", a.mtu.map(Value::from));
    put("ip-forward", a.ip_forward.map(Value::from));
    put("ip-masq", a.ip_masq.map(Value::from));
    put("iptables", a.iptables.map(Value::from));
    put("ip6tables", a.ip6tables.map(Value::from));
    put("ipv6", a.ipv6.map(Value::from));
    put("fixed-cidr-v6", a.fixed_cidr_v6.clone().map(Value::from));
    put("dns", list(&a.dns));
    put("dns-search", list(&a.dns_search));
    put("dns-opts", list(&a.dns_opts));
    put("bridge", a.bridge.clone().map(Value::from));
    put("userland-proxy", a.userland_proxy.map(Value::from));
    put("insecure-registries", list(&a.insecure_registries));
    put("registry-mirrors", list(&a.registry_mirrors));
    put(
        "max-concurrent-downloads",
        a.max_concurrent_downloads.map(Value::from),
    );
    put(
        "max-concurrent-uploads",
        a.max_concurrent_uploads.map(Value::from),
    );
    put("default-ulimits", ulimits(&a.default_ulimits)?);
    put(
        "default-shm-size",
        a.default_shm_size.clone().map(Value::from),
    );
    put(
        "default-cgroupns-mode",
        a.default_cgroupns_mode.clone().map(Value::from),
    );
    put(
        "seccomp-profile",
        a.seccomp_profile.clone().map(Value::from),
    );
    put("no-new-privileges", a.no_new_privileges.map(Value::from));
    put("init", a.init.map(Value::from));
    put("init-path", a.init_path.clone().map(Value::from));
    put("userns-remap", a.userns_remap.clone().map(Value::from));
    put("runtimes", runtimes(&a.add_runtimes)?);
    put(
        "default-runtime",
        a.default_runtime.clone().map(Value::from),
    );
    put("log-driver", a.log_driver.clone().map(Value::from));
    put("log-opts", log_opts(&a.log_opts)?);
    Ok(f)
}

/// `-H`, `--socket` and `--tcp` together make `hosts`.
fn hosts(a: &DaemonArgs) -> Result<Option<Value>> {
    let mut hosts = a.hosts.clone();
    if let Some(s) = &a.socket {
        hosts.push(format!("unix://{}", s.display()));
    }
    if let Some(t) = &a.tcp {
        if !t.starts_with("tcp://") {
            return Err(anyhow!(
                "invalid --tcp {t:?}: give tcp://ADDR:PORT, as tcp://127.0.0.1:2376"
            ));
        }
        hosts.push(t.clone());
    }
    Ok((!hosts.is_empty()).then(|| json!(hosts)))
}

/// `--default-address-pool base=10.10.0.0/16,size=24`, as dockerd writes it.
fn pools(flags: &[String]) -> Result<Option<Value>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for flag in flags {
        let bad = || {
            anyhow!("invalid --default-address-pool {flag:?}: give base=CIDR,size=N, as base=10.10.0.0/16,size=24")
        };
        let (mut base, mut size) = (None, None);
        for part in flag.split(',') {
            match part.split_once('=') {
                Some(("base", b)) => base = Some(b.to_string()),
                Some(("size", s)) => size = Some(s.parse::<u8>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let (Some(base), Some(size)) = (base, size) else {
            return Err(bad());
        };
        out.push(json!({"base": base, "size": size}));
    }
    Ok(Some(Value::Array(out)))
}

/// `--log-opt max-size=10m`, into daemon.json's `{"max-size": "10m"}`.
fn log_opts(flags: &[String]) -> Result<Option<Value>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut out = serde_json::Map::new();
    for flag in flags {
        let (k, v) = flag.split_once('=').ok_or_else(|| {
            anyhow!("invalid --log-opt {flag:?}: give KEY=VALUE, as max-size=10m")
        })?;
        out.insert(k.to_string(), json!(v));
    }
    Ok(Some(Value::Object(out)))
}

/// `--add-runtime runc=/usr/sbin/runc`, into daemon.json's `{"runc": {"path": …}}`.
fn runtimes(flags: &[String]) -> Result<Option<Value>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut out = serde_json::Map::new();
    for flag in flags {
        let (name, command) = berth_api::parse_add_runtime(flag).map_err(|e| anyhow!(e))?;
        out.insert(name, json!({"path": command.path}));
    }
    Ok(Some(Value::Object(out)))
}

/// `--default-ulimit nofile=1024:2048`, into daemon.json's `{"nofile": {"Name", "Soft", "Hard"}}`.
fn ulimits(flags: &[String]) -> Result<Option<Value>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut out = serde_json::Map::new();
    for flag in flags {
        let bad = || {
            anyhow!("invalid --default-ulimit {flag:?}: give name=soft[:hard], as nofile=1024:2048")
        };
        let (name, limits) = flag.split_once('=').ok_or_else(bad)?;
        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
        let soft: i64 = soft.parse().map_err(|_| bad())?;
        let hard: i64 = hard.parse().map_err(|_| bad())?;
        out.insert(
            name.to_string(),
            json!({"Name": name, "Soft": soft, "Hard": hard}),
        );
    }
    Ok(Some(Value::Object(out)))
}

/// Runs the daemon until it is stopped (SIGTERM or SIGINT); containers keep running.
pub fn run(args: DaemonArgs) -> Result<()> {
    let flags = flags(&args)?;
    let (file, required) = match &args.config_file {
        Some(f) => (f.clone(), true),
        None => (PathBuf::from(berth_config::DEFAULT_PATH), false),
    };
    let loaded = berth_config::load(&flags, &file, required).map_err(|e| anyhow!(e))?;
    let logging = berth_api::Logging::init(&loaded.checked.log_filter);
    let shim = match args.shim {
        Some(s) => s,
        None => beside_me("berth-shim")?,
    };
    let options = berth_api::Options {
        loaded,
        flags,
        required,
        shim,
        logging,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the daemon's runtime")?
        .block_on(berth_api::serve(options))
        .map_err(|e| anyhow!(e))
}

/// A program installed in the same directory as this one.
fn beside_me(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("find the berth program's path")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        return Err(anyhow!(
            "{} is missing: install it beside berth, or give --shim",
            path.display()
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        let args =
            DaemonArgs::try_parse_from(std::iter::once("berth daemon").chain(args.iter().copied()))
                .expect("flags parse");
        flags(&args).expect("flags map")
    }

    #[test]
    fn flags_become_daemon_json_keys_only_when_given() {
        let f = parse(&[
            "--icc=false",
            "--debug",
            "--dns",
            "10.0.0.2",
            "--dns",
            "10.0.0.3",
            "--default-address-pool",
            "base=10.10.0.0/16,size=24",
            "--default-ulimit",
            "nofile=1024:2048",
            "--root",
            "/tmp/r",
            "--socket",
            "/tmp/s.sock",
            "-H",
            "tcp://127.0.0.1:2376",
            "--add-runtime",
            "runc=/usr/sbin/runc",
            "--default-runtime",
            "runc",
        ]);
        assert_eq!(f["runtimes"], json!({"runc": {"path": "/usr/sbin/runc"}}));
        assert_eq!(f["default-runtime"], json!("runc"));
        assert_eq!(f["icc"], json!(false));
        assert_eq!(f["debug"], json!(true));
        assert_eq!(f["dns"], json!(["10.0.0.2", "10.0.0.3"]));
        assert_eq!(
            f["default-address-pools"],
            json!([{"base": "10.10.0.0/16", "size": 24}])
        );
        assert_eq!(
            f["default-ulimits"],
            json!({"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}})
        );
        assert_eq!(f["data-root"], json!("/tmp/r"));
        assert_eq!(
            f["hosts"],
            json!(["tcp://127.0.0.1:2376", "unix:///tmp/s.sock"])
        );
        assert!(!f.contains_key("ip-masq"));
        assert!(!f.contains_key("mtu"));
    }

    #[test]
    fn malformed_flags_get_one_line_that_shows_the_form() {
        let args =
            DaemonArgs::try_parse_from(["berth daemon", "--default-address-pool", "10.0.0.0/8"])
                .unwrap();
        let err = flags(&args).unwrap_err().to_string();
        assert!(err.contains("give base=CIDR,size=N"), "{err}");
        let args =
            DaemonArgs::try_parse_from(["berth daemon", "--default-ulimit", "nofile"]).unwrap();
        assert!(flags(&args)
            .unwrap_err()
            .to_string()
            .contains("name=soft[:hard]"));
    }
}
