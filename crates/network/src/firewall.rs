//! The firewall: one nftables table of berth's own (`inet berth`), so nothing else's rules are
//! ever touched, changed only in atomic batches.
//!
//! The table's shape is a function of the bridge networks: it is rebuilt whole (in one
//! transaction) when a network comes or goes. Published ports are elements of maps, so
//! publishing or unpublishing a container's ports adds or deletes elements and rewrites no
//! rule. Inter-container isolation on one bridge (icc=false) is a rule here when the host
//! passes bridged traffic through netfilter (br_netfilter, as on most Docker hosts) and the
//! bridge's own port isolation otherwise (see `drivers`).
//!
//! Batches are written in nft's own language and fed to `nft -f -`, run inside the host's
//! network namespace; every name that goes into a batch was checked by `model::check_ifname`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::ports::Proto;

pub const TABLE: &str = "berth";

/// What the firewall needs to know of one bridge network.
#[derive(Debug, Clone)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnets: Vec<IpNet>,
    pub internal: bool,
    pub masquerade: bool,
    /// Containers on this bridge may talk to each other.
    pub icc: bool,
}

/// One published port, resolved to its container's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub proto: Proto,
    pub target: IpAddr,
    pub target_port: u16,
}

/// The whole table, replacing whatever berth had before; with no bridge, the table is gone.
pub fn ruleset(bridges: &[BridgeRules], forwards: &[Forward]) -> String {
    // "add" first so that "delete" cannot fail on a fresh host: both in one transaction.
    let mut s = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
    if bridges.is_empty() {
        return s;
    }
    let _ = writeln!(s, "table inet {TABLE} {{");
    s.push_str(MAPS);
    let names: Vec<String> = bridges
        .iter()
        .map(|b| format!("\"{}\"", b.bridge))
        .collect();
    let _ = writeln!(
        s,
        "  set bridges {{ type ifname; elements = {{ {} }}; }}",
        names.join(", ")
    );
    s.push_str(NAT_CHAINS);
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    // Host → 127.0.0.1:port → container: the reply must come back to the host, not to 127/8.
    s.push_str("    ip saddr 127.0.0.0/8 ct status dnat masquerade\n");
    for b in bridges {
        postrouting_rules(&mut s, b);
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    for b in bridges.iter().filter(|b| b.internal) {
        internal_rules(&mut s, b);
    }
    // A published port is reachable from every network, the port's own included, whatever
    // the isolation below says.
    s.push_str("    ct status dnat accept\n");
    for b in bridges {
        isolation_rules(&mut s, b);
    }
    s.push_str("  }\n}\n");
    s.push_str(&elements("add", forwards));
    s
}

const MAPS: &str =
    "  map ports4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports4_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  map ports6_any { type inet_proto . inet_service : ipv6_addr . inet_service; }
";

/// Destination NAT for published ports: traffic to a local address (from outside, from
/// containers via their gateway, and from the host itself) is looked up in the port maps.
const NAT_CHAINS: &str = "  chain published {
    meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4
    meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports4_any
    meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6
    meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports6_any
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump published
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump published
  }
";

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

fn postrouting_rules(s: &mut String, b: &BridgeRules) {
    for net in &b.subnets {
        let fam = family(net);
        // Hairpin: a container reaching a published port of its own bridge through the host
        // must see the answer come from the gateway, not straight from its neighbour.
        let _ = writeln!(
            s,
            "    oifname \"{}\" {fam} saddr {net} ct status dnat masquerade",
            b.bridge
        );
        if b.masquerade && !b.internal {
            let _ = writeln!(
                s,
                "    {fam} saddr {net} oifname != \"{}\" masquerade",
                b.bridge
            );
        }
    }
}

/// An internal network: nothing in, nothing out, not even to published ports.
fn internal_rules(s: &mut String, b: &BridgeRules) {
    let br = &b.bridge;
    let _ = writeln!(s, "    iifname \"{br}\" oifname != \"{br}\" drop");
    let _ = writeln!(s, "    oifname \"{br}\" iifname != \"{br}\" drop");
}

/// Networks are isolated from one another (the outside stays reachable); with icc off,
/// bridged traffic between two containers of one bridge is dropped too.
fn isolation_rules(s: &mut String, b: &BridgeRules) {
    let br = &b.bridge;
    if !b.icc {
        let _ = writeln!(s, "    iifname \"{br}\" oifname \"{br}\" drop");
    }
    if !b.internal {
        let _ = writeln!(
            s,
            "    iifname \"{br}\" oifname @bridges oifname != \"{br}\" drop"
        );
    }
}

/// Adds or deletes port map elements: `op` is "add" or "delete".
pub fn elements(op: &str, forwards: &[Forward]) -> String {
    let mut s = String::new();
    for f in forwards {
        let (map, key) = match (f.host_ip, f.target) {
            (Some(ip @ IpAddr::V4(_)), IpAddr::V4(_)) => ("ports4", format!("{ip} . ")),
            (None, IpAddr::V4(_)) => ("ports4_any", String::new()),
            (Some(ip @ IpAddr::V6(_)), IpAddr::V6(_)) => ("ports6", format!("{ip} . ")),
            (None, IpAddr::V6(_)) => ("ports6_any", String::new()),
            // A v4 host address never maps to a v6 container or back: the caller pairs them.
            _ => continue,
        };
        let _ = writeln!(
            s,
            "{op} element inet {TABLE} {map} {{ {key}{} . {} : {} . {} }}",
            f.proto, f.host_port, f.target, f.target_port
        );
    }
    s
}

/// Runs one nft batch atomically inside `host`'s network namespace.
pub fn apply(host: &Netns, batch: &str) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    host.enter_on_exec(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        Error::Firewall(format!(
            "cannot run nft ({e}): install Debian's nftables package"
        ))
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| Error::Firewall(format!("write the batch to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Firewall(format!("wait for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        Err(Error::Firewall(format!("nft refused a batch: {first}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(name: &str, net: &str, internal: bool) -> BridgeRules {
        BridgeRules {
            bridge: name.into(),
            subnets: vec![net.parse().unwrap()],
            internal,
            masquerade: true,
            icc: false,
        }
    }

    #[test]
    fn no_bridge_means_no_table() {
        assert_eq!(
            ruleset(&[], &[]),
            "add table inet berth\ndelete table inet berth\n"
        );
    }

    #[test]
    fn bridges_get_masquerade_isolation_and_internal_rules() {
        let s = ruleset(
            &[
                bridge("br-a", "172.18.0.0/16", false),
                bridge("br-i", "10.9.0.0/24", true),
            ],
            &[],
        );
        assert!(
            s.contains("ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade"),
            "{s}"
        );
        assert!(
            !s.contains("ip saddr 10.9.0.0/24 oifname != \"br-i\" masquerade"),
            "{s}"
        );
        assert!(s.contains("iifname \"br-a\" oifname @bridges oifname != \"br-a\" drop"));
        assert!(s.contains("iifname \"br-i\" oifname != \"br-i\" drop"));
        assert!(
            s.contains("iifname \"br-a\" oifname \"br-a\" drop"),
            "icc off"
        );
        let dnat = s.find("ct status dnat accept").unwrap();
        assert!(
            s.find("oifname @bridges").unwrap() > dnat,
            "published ports first"
        );
        assert!(s.contains("elements = { \"br-a\", \"br-i\" }"));
    }

    #[test]
    fn ports_are_map_elements() {
        let f = Forward {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            proto: Proto::Tcp,
            target: "172.18.0.2".parse().unwrap(),
            target_port: 80,
        };
        let any = Forward {
            host_ip: None,
            proto: Proto::Udp,
            ..f
        };
        assert_eq!(
            elements("add", &[f, any]),
            "add element inet berth ports4 { 127.0.0.1 . tcp . 8080 : 172.18.0.2 . 80 }\n\
             add element inet berth ports4_any { udp . 8080 : 172.18.0.2 . 80 }\n"
        );
    }
}
