//! The daemon's configuration (berth-config) turned into what the engine, the network manager
//! and the image service take.

use std::path::Path;

use berth_config::{Checked, DaemonConfig, Loaded};
use berth_engine::defaults::{CgroupnsMode, Defaults};
use berth_engine::limits::{Seccomp, Ulimit};
use berth_engine::Settings;
use berth_network::model::{
    OPT_BRIDGE_NAME, OPT_EXISTING_BRIDGE, OPT_ICC, OPT_MASQUERADE, OPT_MTU,
};
use berth_network::SubnetSpec;

/// The engine's settings for a daemon configured as `loaded`, with `shim` for containers.
pub fn engine_settings(loaded: &Loaded, shim: &Path) -> Result<Settings, String> {
    let c = &loaded.config;
    let k = &loaded.checked;
    let (root, ids) = match &c.userns_remap {
        Some(remap) => {
            let ids = berth_engine::userns::resolve(remap).map_err(|e| e.to_string())?;
            let root = berth_engine::userns::prepare_root(&c.data_root, &c.exec_root, &ids)
                .map_err(|e| e.to_string())?;
            (root, ids)
        }
        None => (c.data_root.clone(), berth_image::IdMap::default()),
    };
    let mut s = Settings::new(&root, &c.exec_root, shim);
    s.images.ids = ids;
    s.network.pools = k
        .pools
        .iter()
        .map(|p| berth_network::ipam::AddressPool {
            base: p.base,
            size: p.size,
        })
        .collect();
    s.network.upstreams = k.dns.clone();
    s.network.ip_forward = c.ip_forward;
    s.network.firewall = c.iptables;
    s.configure_runtimes(runtimes(c), Some(&c.default_runtime))
        .map_err(|e| e.to_string())?;
    s.log = log_config(c)?;
    s.init_path = init_path(c)?;
    s.default_bridge = default_bridge(c, k)?;
    s.defaults = defaults(c, k)?;
    s.images.registry.insecure = k.insecure.clone();
    s.images.mirrors = k.mirrors.clone();
    s.images.parallel = c.max_concurrent_downloads as usize;
    s.images.uploads = c.max_concurrent_uploads as usize;
    Ok(s)
}

/// `init-path`: an executable file, mounted into `--init` containers as their PID 1.
fn init_path(c: &DaemonConfig) -> Result<Option<std::path::PathBuf>, String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = c.init_path.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("init-path {path}: {e}"))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "init-path {path} is not an executable file: give the path of an init program such as tini or docker-init"
        ));
    }
    Ok(Some(path.into()))
}

/// `log-driver` and `log-opts`, checked by the rules a container's are.
fn log_config(c: &DaemonConfig) -> Result<berth_engine::LogConfig, String> {
    let config = berth_engine::LogConfig {
        driver: c.log_driver.clone(),
        options: c.log_opts.clone(),
    };
    config
        .writer()
        .map_err(|e| format!("log-opts: invalid daemon log config: {e}"))?;
    Ok(config)
}

/// `runtimes` as the engine takes them.
pub fn runtimes(c: &DaemonConfig) -> Vec<(String, berth_engine::RuntimeCommand)> {
    c.runtimes
        .iter()
        .map(|(name, r)| {
            let command = berth_engine::RuntimeCommand {
                path: r.path.clone().into(),
                args: r.runtime_args.clone(),
            };
            (name.clone(), command)
        })
        .collect()
}

/// The registry settings a reload applies.
pub fn transfers(loaded: &Loaded) -> berth_image::Transfers {
    berth_image::Transfers {
        mirrors: loaded.checked.mirrors.clone(),
        insecure: loaded.checked.insecure.clone(),
        downloads: loaded.config.max_concurrent_downloads as usize,
        uploads: loaded.config.max_concurrent_uploads as usize,
    }
}

/// The default bridge from `bip`, `fixed-cidr`, `fixed-cidr-v6`, `icc`, `ip-masq`, `mtu` and
/// `bridge`.
fn default_bridge(
    c: &DaemonConfig,
    k: &Checked,
) -> Result<Option<berth_network::NetworkSpec>, String> {
    let existing = match k.bridge.as_deref() {
        Some("none") => return Ok(None),
        Some(name) => Some((name, interface_ipv4(name)?)),
        None => None,
    };
    let mut spec = berth_engine::engine::default_bridge_spec();
    let options = &mut spec.options;
    // The operator's bridge: its own address decides the subnet and gateway, as `bip`
    // would (the two are refused together).
    let mut bip = k.bip;
    if let Some((name, address)) = existing {
        options.insert(OPT_BRIDGE_NAME.into(), name.to_string());
        options.insert(OPT_EXISTING_BRIDGE.into(), "true".into());
        if let Some((ip, prefix)) = address {
            let net = ipnet::Ipv4Net::new(ip, prefix)
                .map_err(|e| format!("bridge {name}: its address {ip}/{prefix}: {e}"))?;
            bip = Some(berth_config::Bip {
                address: ip.into(),
                subnet: net.trunc().into(),
            });
        }
    }
    options.insert(OPT_ICC.into(), c.icc.to_string());
    options.insert(OPT_MASQUERADE.into(), c.ip_masq.to_string());
    if let Some(mtu) = k.mtu {
        options.insert(OPT_MTU.into(), mtu.to_string());
    }
    if let Some(bip) = bip {
        spec.subnets.push(SubnetSpec {
            subnet: bip.subnet,
            range: k.fixed_cidr,
            gateway: Some(bip.address),
        });
    } else if let Some(range) = k.fixed_cidr {
        let subnet = berth_network::ipam::default_bridge_subnet();
        if !subnet.contains(&range) {
            return Err(format!(
                "fixed-cidr: {range} is not inside the default bridge's subnet {subnet}: give a \
                 range inside it, or set bip"
            ));
        }
        spec.subnets.push(SubnetSpec {
            subnet,
            range: Some(range),
            gateway: None,
        });
    }
    if let (true, Some(v6)) = (c.ipv6, k.fixed_cidr_v6) {
        spec.ipv6 = true;
        spec.subnets.push(SubnetSpec {
            subnet: v6,
            range: None,
            gateway: None,
        });
    }
    Ok(Some(spec))
}

/// The first IPv4 address (and prefix) the operator gave interface `name`; none if it has
/// none yet. A missing interface is refused.
fn interface_ipv4(name: &str) -> Result<Option<(std::net::Ipv4Addr, u8)>, String> {
    let all = nix::ifaddrs::getifaddrs().map_err(|e| format!("bridge: list interfaces: {e}"))?;
    let mut exists = false;
    for a in all.filter(|a| a.interface_name == name) {
        exists = true;
        let ip = a
            .address
            .as_ref()
            .and_then(|x| x.as_sockaddr_in())
            .map(|s| s.ip());
        let mask = a
            .netmask
            .as_ref()
            .and_then(|x| x.as_sockaddr_in())
            .map(|s| s.ip());
        if let (Some(ip), Some(mask)) = (ip, mask) {
            return Ok(Some((ip, u32::from(mask).count_ones() as u8)));
        }
    }
    if !exists {
        return Err(format!(
            "bridge: there is no interface {name}: create the bridge first, or leave bridge out (berth makes its own)"
        ));
    }
    Ok(None)
}

fn defaults(c: &DaemonConfig, k: &Checked) -> Result<Defaults, String> {
    Ok(Defaults {
        dns: c.dns.clone(),
        dns_search: c.dns_search.clone(),
        dns_options: c.dns_opts.clone(),
        ulimits: k
            .ulimits
            .iter()
            .map(|u| Ulimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        shm_size: Some(shm_size(&c.default_shm_size)?),
        cgroupns: match c.default_cgroupns_mode.as_str() {
            "private" => CgroupnsMode::Private,
            _ => CgroupnsMode::Host,
        },
        seccomp: seccomp(c.seccomp_profile.as_deref())?,
        no_new_privileges: c.no_new_privileges,
        init: c.init,
    })
}

/// `default-shm-size` in Docker's binary units (64M), read as `--shm-size` and log sizes are.
fn shm_size(text: &str) -> Result<i64, String> {
    berth_engine::size::parse(text, true)
        .filter(|b| *b > 0)
        .map(|b| b as i64)
        .ok_or_else(|| {
            format!("default-shm-size: {text:?} is not a size: give bytes, or a number with k, m or g (as 64M)")
        })
}

/// `seccomp-profile`: a file in Docker's format, read once at start; `unconfined` for none.
fn seccomp(profile: Option<&str>) -> Result<Option<Seccomp>, String> {
    match profile {
        None | Some("" | "builtin" | "default") => Ok(None),
        Some("unconfined") => Ok(Some(Seccomp::Unconfined)),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("seccomp-profile: read {path}: {e}: give a profile file in Docker's format, or unconfined")
            })?;
            // Its rules are read for each container; here only that it is a profile at all.
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                .map_err(|e| format!("seccomp-profile: {path} is not a JSON profile: {e}"))?;
            Ok(Some(Seccomp::Profile(text)))
        }
    }
}
