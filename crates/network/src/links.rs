//! Interfaces, addresses and routes, through route netlink (rtnetlink). Each function is one
//! kernel request; the drivers compose them.
//!
//! Every link berth makes carries an alias (IFLA_IFALIAS) `berth:<owner>`, so a restarted
//! daemon can tell its own leftovers from everyone else's links by asking the kernel.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage, MacVlanMode,
};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVlan,
    RouteMessageBuilder,
};

use crate::error::{Error, Result};

/// The alias prefix that marks a link as berth's.
pub const ALIAS_PREFIX: &str = "berth:";

/// A link as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub mtu: Option<u32>,
    pub master: Option<u32>,
}

impl From<LinkMessage> for Link {
    fn from(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            alias: None,
            mtu: None,
            master: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::Mtu(m) => link.mtu = Some(m),
                LinkAttribute::Controller(m) => link.master = Some(m),
                _ => {}
            }
        }
        link
    }
}

/// The link called `name`, if there is one.
pub async fn by_name(handle: &Handle, name: &str) -> Result<Option<Link>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(found) => Ok(found.map(Link::from)),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(format!("look up link {name}"), e)),
    }
}

/// The link called `name`; an error naming it if it does not exist.
pub async fn require(handle: &Handle, name: &str) -> Result<Link> {
    by_name(handle, name).await?.ok_or_else(|| {
        Error::Invalid(format!(
            "interface {name} does not exist: name an existing interface"
        ))
    })
}

/// Every link in the namespace.
pub async fn all(handle: &Handle) -> Result<Vec<Link>> {
    handle
        .link()
        .get()
        .execute()
        .map_ok(Link::from)
        .try_collect()
        .await
        .map_err(|e| Error::netlink("list links", e))
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.code.map(|c| -c.get()) == Some(errno))
}

async fn add(handle: &Handle, msg: LinkMessage, what: String) -> Result<()> {
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(what, e))
}

/// Creates a link and marks it as berth's. The kernel ignores IFLA_IFALIAS when it creates a
/// link, so the alias is a second request; a link whose alias could not be set is deleted.
async fn add_owned(handle: &Handle, msg: LinkMessage, name: &str, alias: &str) -> Result<()> {
    add(handle, msg, format!("create link {name}")).await?;
    let link = require(handle, name).await?;
    let marked = LinkMessageBuilder::<LinkUnspec>::new()
        .index(link.index)
        .alias(alias)
        .build();
    if let Err(e) = handle.link().set(marked).execute().await {
        let _ = delete(handle, link.index).await;
        return Err(Error::netlink(format!("mark link {name} as berth's"), e));
    }
    Ok(())
}

/// A bridge, down until `up` is called.
/// A bridge with a MAC of its own: without one, a bridge takes the lowest MAC of its ports
/// and changes it when that port leaves, and every container's ARP entry for the gateway
/// goes stale until it times out.
pub async fn add_bridge(
    handle: &Handle,
    name: &str,
    mtu: Option<u32>,
    mac: [u8; 6],
    alias: &str,
) -> Result<()> {
    let mut b = LinkBridge::new(name).address(mac.to_vec());
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    add_owned(handle, b.build(), name, alias).await
}

/// A veth pair whose host end is `host` (in the handle's namespace) and whose other end is
/// born directly inside the namespace `peer_ns` as `peer`, so the container's name (eth0) is
/// never taken, even briefly, in the host's namespace.
pub async fn add_veth_into(
    handle: &Handle,
    host: &str,
    peer: &str,
    peer_ns: i32,
    mtu: Option<u32>,
    alias: &str,
) -> Result<()> {
    let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .setns_by_fd(peer_ns);
    let mut host_msg =
        LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth).name(host.to_string());
    if let Some(mtu) = mtu {
        peer_msg = peer_msg.mtu(mtu);
        host_msg = host_msg.mtu(mtu);
    }
    let msg = host_msg
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
        .build();
    add_owned(handle, msg, host, alias).await
}

/// A macvlan on `parent`, born inside `netns` as `name`.
pub async fn add_macvlan_into(
    handle: &Handle,
    name: &str,
    parent: u32,
    mode: MacVlanMode,
    netns: i32,
    mtu: Option<u32>,
) -> Result<()> {
    let mut b = LinkMacVlan::new(name, parent, mode).setns_by_fd(netns);
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    add(handle, b.build(), format!("create macvlan {name}")).await
}

/// An ipvlan on `parent`, born inside `netns` as `name`.
pub async fn add_ipvlan_into(
    handle: &Handle,
    name: &str,
    parent: u32,
    mode: netlink_packet_route::link::IpVlanMode,
    netns: i32,
) -> Result<()> {
    let b = rtnetlink::LinkIpVlan::new(name, parent, mode).setns_by_fd(netns);
    add(handle, b.build(), format!("create ipvlan {name}")).await
}

/// An 802.1q sub-interface `name` of `parent` with `vlan`.
pub async fn add_vlan(
    handle: &Handle,
    name: &str,
    parent: u32,
    vlan: u16,
    alias: &str,
) -> Result<()> {
    let b = LinkVlan::new(name, parent, vlan);
    add_owned(handle, b.build(), name, alias).await
}

pub async fn set_up(handle: &Handle, index: u32) -> Result<()> {
    let msg = LinkMessageBuilder::<LinkUnspec>::new()
        .index(index)
        .up()
        .build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("bring link {index} up"), e))
}

/// Attaches a link to a bridge.
pub async fn set_master(handle: &Handle, index: u32, bridge: u32) -> Result<()> {
    let msg = LinkMessageBuilder::<LinkUnspec>::new()
        .index(index)
        .controller(bridge)
        .build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("attach link {index} to its bridge"), e))
}

/// A bridge port's flags: hairpin lets a container reach its own published ports through the
/// host; an isolated port cannot talk to other isolated ports (how icc=false is enforced,
/// without a firewall rule per container).
pub async fn set_port_flags(
    handle: &Handle,
    index: u32,
    hairpin: bool,
    isolated: bool,
) -> Result<()> {
    let msg = LinkBridgePort::new(index)
        .hairpin(hairpin)
        .isolated(isolated)
        .build();
    handle
        .link()
        .set_port(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("set bridge port flags on link {index}"), e))
}

pub async fn set_mac(handle: &Handle, index: u32, mac: [u8; 6]) -> Result<()> {
    let msg = LinkMessageBuilder::<LinkUnspec>::new()
        .index(index)
        .address(mac.to_vec())
        .build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("set the MAC address of link {index}"), e))
}

pub async fn delete(handle: &Handle, index: u32) -> Result<()> {
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
        Err(e) => Err(Error::netlink(format!("delete link {index}"), e)),
    }
}

/// Deletes the link called `name` if it exists.
pub async fn delete_named(handle: &Handle, name: &str) -> Result<()> {
    match by_name(handle, name).await? {
        Some(link) => delete(handle, link.index).await,
        None => Ok(()),
    }
}

pub async fn add_address(handle: &Handle, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
    match handle.address().add(index, addr, prefix).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(format!("add address {addr}/{prefix}"), e)),
    }
}

/// The default route of one address family, through `gateway`.
pub async fn add_default_route(handle: &Handle, gateway: IpAddr, index: u32) -> Result<()> {
    let msg = match gateway {
        IpAddr::V4(g) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(g)
            .output_interface(index)
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .gateway(g)
            .output_interface(index)
            .build(),
    };
    handle
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("add the default route via {gateway}"), e))
}

/// The gateways of the namespace's default routes (main table), IPv4 then IPv6.
pub async fn default_gateways(handle: &Handle) -> Result<Vec<IpAddr>> {
    use netlink_packet_route::route::{RouteAddress, RouteAttribute};
    let mut out = Vec::new();
    let queries = [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ];
    for query in queries {
        let routes: Vec<_> = handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::netlink("list routes", e))?;
        for r in routes
            .iter()
            .filter(|r| r.header.destination_prefix_length == 0)
        {
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => out.push(IpAddr::V4(*g)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => out.push(IpAddr::V6(*g)),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// The addresses on `index`, as networks with prefix (for checks and tests).
pub async fn addresses(handle: &Handle, index: u32) -> Result<Vec<IpNet>> {
    use netlink_packet_route::address::AddressAttribute;
    let msgs: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("list addresses", e))?;
    let mut out = Vec::new();
    for msg in msgs {
        let prefix = msg.header.prefix_len;
        for attr in msg.attributes {
            if let AddressAttribute::Address(a) = attr {
                if let Ok(net) = IpNet::new(a, prefix) {
                    out.push(net);
                }
            }
        }
    }
    Ok(out)
}

/// A locally administered MAC derived from the IPv4 address, as Docker does (02:42:a:b:c:d),
/// so an address keeps its MAC across restarts and ARP caches stay right.
pub fn mac_for(ip: IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [0x02, 0x42, o[12], o[13], o[14], o[15]]
        }
    }
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || {
        Error::Invalid(format!(
            "invalid MAC address {s:?}: write it as 02:42:ac:11:00:02"
        ))
    };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_follow_the_address_like_dockers() {
        let mac = mac_for("172.17.0.2".parse().unwrap());
        assert_eq!(format_mac(mac), "02:42:ac:11:00:02");
        assert_eq!(parse_mac("02:42:ac:11:00:02").unwrap(), mac);
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("02:42:ac:11:00:zz").is_err());
    }
}
