//! Drivers: how a network's kernel objects are made and how an endpoint's interface gets into
//! a sandbox. Bridge: a Linux bridge and a veth pair per endpoint. Macvlan and ipvlan: a
//! sub-interface of a parent, born inside the sandbox. The firewall is not here (see
//! `firewall`): drivers only touch links, addresses, routes and sysctls.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::link::{IpVlanMode, MacVlanMode};
use rtnetlink::Handle;

use crate::error::{Error, Result};
use crate::links;
use crate::model::{BridgeSettings, Driver, Endpoint, IpvlanSettings, MacvlanSettings, Network};
use crate::netns::Netns;

/// The host side: its namespace and a netlink handle into it.
pub struct Host {
    pub ns: Netns,
    pub nl: Handle,
    /// Whether berth turns on the host's forwarding (the daemon's `ip-forward`).
    pub ip_forward: bool,
    /// Whether berth programs the firewall at all (the daemon's `iptables`).
    pub firewall: bool,
}

impl Host {
    /// Applies nftables commands, unless the daemon was told to leave the firewall alone.
    pub fn apply_firewall(&self, commands: &str) -> Result<()> {
        if !self.firewall {
            return Ok(());
        }
        crate::firewall::apply(&self.ns, commands)
    }
}

pub fn network_alias(id: &str) -> String {
    format!("{}net:{id}", links::ALIAS_PREFIX)
}

pub fn endpoint_alias(id: &str) -> String {
    format!("{}ep:{id}", links::ALIAS_PREFIX)
}

/// The host end of an endpoint's veth pair, named after the endpoint.
pub fn host_veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..10])
}

/// Makes (or, after a crash or reboot, remakes) a network's kernel objects; returns the
/// driver settings as they ended up (macvlan records a VLAN interface it created).
pub async fn create(host: &Host, net: &Network) -> Result<Driver> {
    match &net.driver {
        Driver::Bridge(b) => create_bridge(host, net, b)
            .await
            .map(|()| net.driver.clone()),
        Driver::Macvlan(m) => create_macvlan(host, net, m).await.map(Driver::Macvlan),
        Driver::Ipvlan(i) => probe_ipvlan(host, i).await.map(|()| net.driver.clone()),
        Driver::Cni { .. } => Ok(net.driver.clone()),
    }
}

/// Removes a network's kernel objects; absent ones are fine.
pub async fn remove(host: &Host, net: &Network) -> Result<()> {
    match &net.driver {
        Driver::Bridge(b) if b.existing => Ok(()),
        Driver::Bridge(b) => links::delete_named(&host.nl, &b.bridge).await,
        Driver::Macvlan(MacvlanSettings {
            created_vlan: Some(vlan),
            ..
        }) => links::delete_named(&host.nl, vlan).await,
        Driver::Cni { config, .. } => remove_cni_bridge(host, config).await,
        _ => Ok(()),
    }
}

/// The bridge a chain's `bridge` plugin made goes with the network, unless something is
/// still attached to it (another network's containers sharing the bridge).
async fn remove_cni_bridge(host: &Host, config: &serde_json::Value) -> Result<()> {
    let Some(name) = crate::cni::Conflist::from_json(config)?.bridge() else {
        return Ok(());
    };
    let Some(bridge) = links::by_name(&host.nl, &name).await? else {
        return Ok(());
    };
    let all = links::all(&host.nl).await?;
    if all.iter().any(|l| l.master == Some(bridge.index)) {
        return Ok(());
    }
    links::delete(&host.nl, bridge.index).await
}

async fn create_bridge(host: &Host, net: &Network, b: &BridgeSettings) -> Result<()> {
    let alias = network_alias(&net.id);
    let link = match links::by_name(&host.nl, &b.bridge).await? {
        Some(l) if b.existing || l.alias.as_deref() == Some(alias.as_str()) => l,
        None if b.existing => {
            return Err(Error::Invalid(format!(
                "bridge {} does not exist: create it (a Linux bridge), or leave the daemon's \
                 bridge setting out",
                b.bridge
            )))
        }
        Some(_) => {
            return Err(Error::Invalid(format!(
                "interface {} already exists and is not this network's: choose another \
                 com.docker.network.bridge.name",
                b.bridge
            )))
        }
        None => {
            // The gateway's MAC, as a container's would be: the same after the bridge is
            // made again at recovery, so containers' ARP caches stay right.
            let mac = net
                .subnets
                .first()
                .map(|s| links::mac_for(s.gateway))
                .ok_or_else(|| Error::Invalid("a bridge network needs a subnet".into()))?;
            links::add_bridge(&host.nl, &b.bridge, b.mtu, mac, &alias).await?;
            links::require(&host.nl, &b.bridge).await?
        }
    };
    for s in &net.subnets {
        links::add_address(&host.nl, link.index, s.gateway, s.subnet.prefix_len()).await?;
    }
    links::set_up(&host.nl, link.index).await?;
    // Lets 127.0.0.1:port be DNATed to a container on this bridge.
    host.ns
        .write_sysctl(&format!("net.ipv4.conf.{}.route_localnet", b.bridge), "1")?;
    if !net.internal && host.ip_forward {
        host.ns.write_sysctl("net.ipv4.ip_forward", "1")?;
        if net.subnets.iter().any(|s| matches!(s.subnet, IpNet::V6(_))) {
            host.ns.write_sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }
    }
    Ok(())
}

/// For `parent=eth0.10`, makes the 802.1q interface if it does not exist yet.
async fn create_macvlan(
    host: &Host,
    net: &Network,
    m: &MacvlanSettings,
) -> Result<MacvlanSettings> {
    let mut m = m.clone();
    if links::by_name(&host.nl, &m.parent).await?.is_some() {
        return Ok(m);
    }
    let Some((base, vlan)) = m.parent.rsplit_once('.') else {
        return Err(Error::Invalid(format!(
            "parent interface {} does not exist: name an existing interface, or base.vlan \
             for an 802.1q sub-interface",
            m.parent
        )));
    };
    let vlan: u16 = vlan
        .parse()
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| Error::Invalid(format!("{}: the VLAN id must be 1 to 4094", m.parent)))?;
    let base = links::require(&host.nl, base).await?;
    links::add_vlan(
        &host.nl,
        &m.parent,
        base.index,
        vlan,
        &network_alias(&net.id),
    )
    .await
    .map_err(|e| match e.errno() {
        Some(libc::EOPNOTSUPP) => Error::Unsupported {
            driver: "802.1q VLAN parent".into(),
            why: "this kernel has no 802.1q support (module 8021q); name an existing \
                  interface as parent"
                .into(),
        },
        _ => e,
    })?;
    let link = links::require(&host.nl, &m.parent).await?;
    links::set_up(&host.nl, link.index).await?;
    m.created_vlan = Some(m.parent.clone());
    Ok(m)
}

/// ipvlan cannot be checked by looking at the parent: ask the kernel for one, throw it away.
async fn probe_ipvlan(host: &Host, i: &IpvlanSettings) -> Result<()> {
    let parent = links::require(&host.nl, &i.parent).await?;
    let probe = Netns::current()?; // born in the host namespace, deleted at once
    let name = format!("bprobe{}", std::process::id() % 100_000);
    match links::add_ipvlan_into(
        &host.nl,
        &name,
        parent.index,
        ipvlan_mode(&i.mode),
        probe.raw_fd(),
    )
    .await
    {
        Ok(()) => links::delete_named(&host.nl, &name).await,
        Err(e) => Err(ipvlan_error(e)),
    }
}

fn ipvlan_error(e: Error) -> Error {
    match e.errno() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOENT) => Error::Unsupported {
            driver: "ipvlan".into(),
            why: "this kernel has no ipvlan support (module ipvlan is not built or loadable); \
                  use macvlan instead"
                .into(),
        },
        _ => e,
    }
}

fn ipvlan_mode(mode: &str) -> IpVlanMode {
    if mode == "l3" {
        IpVlanMode::L3
    } else {
        IpVlanMode::L2
    }
}

fn macvlan_mode(mode: &str) -> MacVlanMode {
    match mode {
        "private" => MacVlanMode::Private,
        "vepa" => MacVlanMode::Vepa,
        "passthru" => MacVlanMode::Passthrough,
        _ => MacVlanMode::Bridge,
    }
}

/// What an endpoint's interface gets inside its sandbox.
pub struct Inside<'a> {
    pub ns: &'a Netns,
    pub nl: &'a Handle,
    /// Whether this endpoint provides the sandbox's default route.
    pub default_route: bool,
}

/// Puts an endpoint's interface into the sandbox and configures it.
pub async fn join(host: &Host, net: &Network, ep: &Endpoint, inside: &Inside<'_>) -> Result<()> {
    match &net.driver {
        Driver::Bridge(b) => join_bridge(host, b, ep, inside).await?,
        Driver::Macvlan(m) => {
            let parent = links::require(&host.nl, &m.parent).await?;
            links::add_macvlan_into(
                &host.nl,
                &ep.ifname,
                parent.index,
                macvlan_mode(&m.mode),
                inside.ns.raw_fd(),
                m.mtu,
            )
            .await?;
        }
        Driver::Ipvlan(i) => {
            let parent = links::require(&host.nl, &i.parent).await?;
            links::add_ipvlan_into(
                &host.nl,
                &ep.ifname,
                parent.index,
                ipvlan_mode(&i.mode),
                inside.ns.raw_fd(),
            )
            .await
            .map_err(ipvlan_error)?;
        }
        Driver::Cni { .. } => {
            return Err(Error::Invalid(
                "cni networks are joined through their plugins, not a driver".into(),
            ))
        }
    }
    configure_inside(net, ep, inside).await
}

async fn join_bridge(
    host: &Host,
    b: &BridgeSettings,
    ep: &Endpoint,
    inside: &Inside<'_>,
) -> Result<()> {
    let bridge = links::require(&host.nl, &b.bridge).await?;
    let host_name = host_veth_name(&ep.id);
    links::add_veth_into(
        &host.nl,
        &host_name,
        &ep.ifname,
        inside.ns.raw_fd(),
        b.mtu.or(bridge.mtu),
        &endpoint_alias(&ep.id),
    )
    .await?;
    let veth = links::require(&host.nl, &host_name).await?;
    links::set_master(&host.nl, veth.index, bridge.index).await?;
    // With icc off, a firewall rule drops bridged traffic when netfilter sees it; where it
    // does not, the port is isolated instead. Not both: br_netfilter bridges a DNATed
    // packet straight between two ports, and isolation would stop published ports too.
    let isolate = !b.icc && !bridged_traffic_filtered(&host.ns);
    links::set_port_flags(&host.nl, veth.index, true, isolate).await?;
    links::set_up(&host.nl, veth.index).await
}

/// After a restart: whether an endpoint's host side still exists; a veth whose bridge was
/// re-made (after a reboot or a crash) is attached to it again.
pub async fn rejoin(host: &Host, net: &Network, ep: &Endpoint) -> Result<bool> {
    let (Some(name), Driver::Bridge(b)) = (&ep.host_ifname, &net.driver) else {
        return Ok(true);
    };
    let Some(veth) = links::by_name(&host.nl, name).await? else {
        return Ok(false);
    };
    let bridge = links::require(&host.nl, &b.bridge).await?;
    if veth.master != Some(bridge.index) {
        links::set_master(&host.nl, veth.index, bridge.index).await?;
        let isolate = !b.icc && !bridged_traffic_filtered(&host.ns);
        links::set_port_flags(&host.nl, veth.index, true, isolate).await?;
        links::set_up(&host.nl, veth.index).await?;
    }
    Ok(true)
}

/// Whether bridged IPv4 traffic passes through netfilter's hooks in the host namespace
/// (br_netfilter loaded and bridge-nf-call-iptables on).
fn bridged_traffic_filtered(host: &Netns) -> bool {
    host.run_in(|| {
        Ok(
            std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .map(|v| v.trim() == "1")
                .unwrap_or(false),
        )
    })
    .unwrap_or(false)
}

/// The sandbox side: MAC, addresses, link up, and the default route.
async fn configure_inside(net: &Network, ep: &Endpoint, inside: &Inside<'_>) -> Result<()> {
    let link = links::require(inside.nl, &ep.ifname).await?;
    let mac = links::parse_mac(&ep.mac)?;
    links::set_mac(inside.nl, link.index, mac).await?;
    for a in &ep.addresses {
        links::add_address(inside.nl, link.index, a.addr(), a.prefix_len()).await?;
    }
    links::set_up(inside.nl, link.index).await?;
    if inside.default_route && !net.internal {
        for gw in &ep.gateways {
            links::add_default_route(inside.nl, *gw, link.index).await?;
        }
    }
    Ok(())
}

/// Takes an endpoint's interface away. For a veth, deleting the host end deletes both.
pub async fn leave(host: &Host, ep: &Endpoint, inside: Option<&Inside<'_>>) -> Result<()> {
    match &ep.host_ifname {
        Some(name) => links::delete_named(&host.nl, name).await,
        None => match inside {
            Some(inside) => links::delete_named(inside.nl, &ep.ifname).await,
            None => Ok(()),
        },
    }
}

/// The gateway of each of a network's subnets, in the family order of `addresses`.
pub fn gateways_for(net: &Network, addresses: &[IpNet]) -> Vec<IpAddr> {
    addresses
        .iter()
        .filter_map(|a| net.subnets.iter().find(|s| s.subnet.contains(&a.addr())))
        .map(|s| s.gateway)
        .collect()
}
