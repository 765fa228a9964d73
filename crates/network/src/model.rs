//! The Container Network Model's objects as berth stores them: networks (with their driver's
//! settings parsed from Docker's option names), endpoints and sandboxes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ports::PortMapping;

/// What the user asks for (`berth network create` / `POST /networks/create`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    /// "bridge" when empty.
    pub driver: String,
    /// Explicit subnets; a default pool is picked when there is none for a family.
    pub subnets: Vec<SubnetSpec>,
    /// Also give the network an IPv6 subnet.
    pub ipv6: bool,
    /// No route out of the network.
    pub internal: bool,
    pub attachable: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubnetSpec {
    pub subnet: IpNet,
    pub range: Option<IpNet>,
    pub gateway: Option<IpAddr>,
}

/// A network as it exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: Driver,
    pub subnets: Vec<Subnet>,
    pub internal: bool,
    pub attachable: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
}

/// One subnet of a network with its fixed addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: IpNet,
    pub range: Option<IpNet>,
    pub gateway: IpAddr,
}

/// The driver and its settings, parsed once at creation from Docker's option names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Driver {
    Bridge(BridgeSettings),
    Macvlan(MacvlanSettings),
    Ipvlan(IpvlanSettings),
    /// A CNI plugin chain: the conflist's path, and its content as read at creation (DEL
    /// must see the configuration ADD saw, whatever happens to the file).
    Cni {
        conflist: String,
        config: serde_json::Value,
    },
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Bridge(_) => "bridge",
            Driver::Macvlan(_) => "macvlan",
            Driver::Ipvlan(_) => "ipvlan",
            Driver::Cni { .. } => "cni",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeSettings {
    /// The Linux bridge's name (`com.docker.network.bridge.name`).
    pub bridge: String,
    /// Containers on this bridge may talk to each other (`.enable_icc`).
    pub icc: bool,
    /// Outbound traffic is masqueraded (`.enable_ip_masquerade`).
    pub masquerade: bool,
    /// Where ports are published when `-p` names no address (`.host_binding_ipv4`).
    pub host_binding: Option<IpAddr>,
    pub mtu: Option<u32>,
    /// The default bridge: no name resolution, as in Docker.
    pub default: bool,
    /// The bridge is the operator's (the daemon's `bridge` setting): used as it is, never
    /// made or deleted by berth.
    #[serde(default)]
    pub existing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanSettings {
    pub parent: String,
    pub mode: String,
    /// The 802.1q sub-interface berth made for `parent=eth0.<vlan>`, removed with the network.
    pub created_vlan: Option<String>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvlanSettings {
    pub parent: String,
    pub mode: String,
}

pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
/// berth's own: the bridge named by `com.docker.network.bridge.name` exists and is not
/// berth's to make or delete.
pub const OPT_EXISTING_BRIDGE: &str = "berth.bridge.existing";
pub const OPT_PARENT: &str = "parent";
pub const OPT_MACVLAN_MODE: &str = "macvlan_mode";
pub const OPT_IPVLAN_MODE: &str = "ipvlan_mode";
pub const OPT_CNI_CONFLIST: &str = "cni.conflist";

/// Options Docker accepts but that change nothing here; taken silently so compose files work.
const ACCEPTED_NOOPS: &[&str] = &[
    "com.docker.network.bridge.enable_ip_masquerade_v6",
    "com.docker.network.container_iface_prefix",
];

/// Parses the driver name and its options into settings; an unknown driver or option is an
/// error that names it.
pub fn parse_driver(id: &str, spec: &NetworkSpec) -> Result<Driver> {
    let opts = Options::new(&spec.options);
    let driver = match spec.driver.as_str() {
        "" | "bridge" => Driver::Bridge(parse_bridge(id, &opts)?),
        "macvlan" => Driver::Macvlan(parse_macvlan(&opts)?),
        "ipvlan" => Driver::Ipvlan(parse_ipvlan(&opts)?),
        "cni" => {
            let conflist = opts.take(OPT_CNI_CONFLIST).ok_or_else(|| {
                Error::Invalid(format!(
                    "a cni network needs -o {OPT_CNI_CONFLIST}=<path of a CNI conflist>"
                ))
            })?;
            let config = crate::cni::Conflist::load(std::path::Path::new(&conflist))?.to_json();
            Driver::Cni { conflist, config }
        }
        "overlay" => {
            return Err(Error::Unsupported {
                driver: "overlay".into(),
                why: "multi-host networking is not built yet; use bridge or macvlan".into(),
            })
        }
        "host" | "null" | "none" => {
            return Err(Error::Invalid(format!(
                "only one instance of {:?} network is allowed: use --network {} instead of creating one",
                spec.driver,
                if spec.driver == "null" { "none" } else { spec.driver.as_str() }
            )))
        }
        other => {
            return Err(Error::Invalid(format!(
                "unknown network driver {other:?}: use bridge, macvlan, ipvlan or cni"
            )))
        }
    };
    opts.refuse_leftovers(driver.name())?;
    Ok(driver)
}

fn parse_bridge(id: &str, opts: &Options) -> Result<BridgeSettings> {
    let default = opts.take_bool(OPT_DEFAULT_BRIDGE, false)?;
    let bridge = match opts.take(OPT_BRIDGE_NAME) {
        Some(name) => check_ifname(&name)?,
        None if default => "berth0".to_string(),
        None => format!("br-{}", &id[..12]),
    };
    let host_binding = match opts.take(OPT_HOST_BINDING) {
        Some(ip) => Some(ip.parse().map_err(|_| {
            Error::Invalid(format!(
                "{OPT_HOST_BINDING}={ip:?} is not an IP address: give one such as 127.0.0.1"
            ))
        })?),
        None => None,
    };
    Ok(BridgeSettings {
        bridge,
        icc: opts.take_bool(OPT_ICC, true)?,
        masquerade: opts.take_bool(OPT_MASQUERADE, true)?,
        host_binding,
        mtu: opts.take_mtu()?,
        default,
        existing: opts.take_bool(OPT_EXISTING_BRIDGE, false)?,
    })
}

fn parse_macvlan(opts: &Options) -> Result<MacvlanSettings> {
    let mode = opts
        .take(OPT_MACVLAN_MODE)
        .unwrap_or_else(|| "bridge".into());
    if !["bridge", "private", "vepa", "passthru"].contains(&mode.as_str()) {
        return Err(Error::Invalid(format!(
            "macvlan_mode={mode:?} is not one of bridge, private, vepa, passthru"
        )));
    }
    Ok(MacvlanSettings {
        parent: check_ifname(&opts.take(OPT_PARENT).ok_or_else(|| {
            Error::Invalid("a macvlan network needs -o parent=<host interface>".into())
        })?)?,
        mode,
        created_vlan: None,
        mtu: opts.take_mtu()?,
    })
}

fn parse_ipvlan(opts: &Options) -> Result<IpvlanSettings> {
    let mode = opts.take(OPT_IPVLAN_MODE).unwrap_or_else(|| "l2".into());
    if !["l2", "l3"].contains(&mode.as_str()) {
        return Err(Error::Invalid(format!(
            "ipvlan_mode={mode:?} is not one of l2, l3"
        )));
    }
    Ok(IpvlanSettings {
        parent: check_ifname(&opts.take(OPT_PARENT).ok_or_else(|| {
            Error::Invalid("an ipvlan network needs -o parent=<host interface>".into())
        })?)?,
        mode,
    })
}

/// An interface name as the kernel accepts it, and safe to put in an nftables rule.
pub fn check_ifname(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "invalid interface name {name:?}: use 1 to 15 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A network or alias name as Docker allows them.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= 128 {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid network name {name:?}: start with a letter or digit, then use letters, digits, '_', '.' or '-'"
        )))
    }
}

/// Options taken one by one, so that whatever is left at the end is unknown.
struct Options {
    left: std::cell::RefCell<BTreeMap<String, String>>,
}

impl Options {
    fn new(map: &BTreeMap<String, String>) -> Options {
        let mut left = map.clone();
        for noop in ACCEPTED_NOOPS {
            left.remove(*noop);
        }
        Options {
            left: std::cell::RefCell::new(left),
        }
    }

    fn take(&self, key: &str) -> Option<String> {
        self.left.borrow_mut().remove(key)
    }

    fn take_bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(other) => Err(Error::Invalid(format!(
                "{key}={other:?}: expected true or false"
            ))),
        }
    }

    fn take_mtu(&self) -> Result<Option<u32>> {
        match self.take(OPT_MTU) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(mtu) if (68..=65535).contains(&mtu) => Ok(Some(mtu)),
                _ => Err(Error::Invalid(format!(
                    "{OPT_MTU}={v:?}: expected a number from 68 to 65535"
                ))),
            },
        }
    }

    fn refuse_leftovers(&self, driver: &str) -> Result<()> {
        match self.left.borrow().keys().next() {
            None => Ok(()),
            Some(key) => Err(Error::Invalid(format!(
                "unknown option {key:?} for the {driver} driver: remove it"
            ))),
        }
    }
}

/// One interface of a sandbox on a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub sandbox_id: String,
    /// The interface's name inside the sandbox (eth0, eth1, …).
    pub ifname: String,
    /// The host end of a veth pair (bridge driver).
    pub host_ifname: Option<String>,
    /// Addresses with their subnet's prefix length.
    pub addresses: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub mac: String,
    /// The container's name, its network aliases and short id: the names DNS answers for.
    pub names: Vec<String>,
    pub ports: Vec<PortMapping>,
    /// A CNI network's ADD result, which DEL and CHECK are given back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_result: Option<serde_json::Value>,
}

/// What a caller asks for when connecting a sandbox to a network.
#[derive(Debug, Clone, Default)]
pub struct EndpointSpec {
    /// Static addresses (`--ip`, `--ip6`).
    pub addresses: Vec<IpAddr>,
    pub mac: Option<String>,
    /// Names this endpoint answers to on the network: container name, aliases, short id.
    pub names: Vec<String>,
    pub ports: Vec<PortMapping>,
}

/// A network namespace made for a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub path: std::path::PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(driver: &str, opts: &[(&str, &str)]) -> NetworkSpec {
        NetworkSpec {
            name: "n".into(),
            driver: driver.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn bridge_options_use_dockers_names_and_defaults() {
        let d = parse_driver(ID, &spec("", &[])).unwrap();
        assert_eq!(
            d,
            Driver::Bridge(BridgeSettings {
                bridge: "br-0123456789ab".into(),
                icc: true,
                masquerade: true,
                host_binding: None,
                mtu: None,
                default: false,
                existing: false,
            })
        );
        let d = parse_driver(
            ID,
            &spec(
                "bridge",
                &[
                    (OPT_BRIDGE_NAME, "mybr"),
                    (OPT_ICC, "false"),
                    (OPT_MASQUERADE, "false"),
                    (OPT_HOST_BINDING, "127.0.0.1"),
                    (OPT_MTU, "1400"),
                ],
            ),
        )
        .unwrap();
        let Driver::Bridge(b) = d else {
            panic!("a bridge")
        };
        assert_eq!(b.bridge, "mybr");
        assert!(!b.icc && !b.masquerade);
        assert_eq!(b.host_binding, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(b.mtu, Some(1400));
    }

    #[test]
    fn bad_options_name_what_is_wrong() {
        let err =
            |d: &str, o: &[(&str, &str)]| parse_driver(ID, &spec(d, o)).unwrap_err().to_string();
        assert!(err("bridge", &[("nonsense", "1")]).contains("unknown option \"nonsense\""));
        assert!(err("bridge", &[(OPT_ICC, "maybe")]).contains("expected true or false"));
        assert!(err("bridge", &[(OPT_MTU, "9")]).contains("68 to 65535"));
        assert!(err("bridge", &[(OPT_BRIDGE_NAME, "a;drop")]).contains("invalid interface name"));
        assert!(err("bridge", &[(OPT_BRIDGE_NAME, "waytoolonganame0")])
            .contains("invalid interface name"));
        assert!(err("frobnicate", &[]).contains("unknown network driver"));
        assert!(err("overlay", &[]).contains("multi-host"));
        assert!(err("host", &[]).contains("only one instance"));
        assert!(err("macvlan", &[]).contains("parent="));
        assert!(
            err("macvlan", &[(OPT_PARENT, "eth0"), (OPT_MACVLAN_MODE, "x")])
                .contains("macvlan_mode")
        );
        assert!(
            err("ipvlan", &[(OPT_PARENT, "eth0"), (OPT_IPVLAN_MODE, "l9")]).contains("ipvlan_mode")
        );
        assert!(err("cni", &[]).contains(OPT_CNI_CONFLIST));
    }

    #[test]
    fn names_follow_dockers_rules() {
        assert!(check_name("my-net_1.x").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }
}
