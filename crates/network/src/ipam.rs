//! IP address management: which subnet a network gets, and which address each endpoint on it
//! gets, as Docker hands them out, with no address given twice.
//!
//! A `Pool` is one network's subnet (with an optional narrower range for dynamic addresses and
//! a gateway). It is plain serialisable state: the engine stores it in its database in the
//! same transaction as the endpoint that took an address, so a crash can never leave an
//! address allocated to nobody.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "subnet {new} overlaps {existing}, used by another network: choose a subnet that does not"
    )]
    Overlap { new: IpNet, existing: IpNet },
    #[error("address {0} is already in use on this network: choose another, or leave --ip out")]
    InUse(IpAddr),
    #[error("no address left in {0}: the network is full")]
    Exhausted(IpNet),
    #[error("all default address pools are in use: create the network with --subnet")]
    NoPoolLeft,
}

pub type Result<T> = std::result::Result<T, Error>;

/// The default bridge's subnet, as Docker's.
pub fn default_bridge_subnet() -> IpNet {
    "172.17.0.0/16".parse().expect("a valid literal")
}

/// The subnets user-defined networks get when they name none, in Docker's order:
/// 172.18.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20 … 192.168.240.0/20.
pub fn default_pools() -> impl Iterator<Item = IpNet> {
    let wide = (18..=31u8)
        .map(|b| IpNet::V4(ipnet::Ipv4Net::new([172, b, 0, 0].into(), 16).expect("prefix 16")));
    let narrow = (0..16u8).map(|i| {
        IpNet::V4(ipnet::Ipv4Net::new([192, 168, i * 16, 0].into(), 20).expect("prefix 20"))
    });
    wide.chain(narrow)
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks a requested subnet against the ones other networks use.
pub fn check_free(subnet: &IpNet, in_use: &[IpNet]) -> Result<()> {
    match in_use.iter().find(|u| overlaps(subnet, u)) {
        Some(existing) => Err(Error::Overlap {
            new: *subnet,
            existing: *existing,
        }),
        None => Ok(()),
    }
}

/// A daemon's `default-address-pools` entry: subnets of prefix `size` cut from `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: IpNet,
    pub size: u8,
}

/// The first subnet of `pools` (Docker's defaults when there are none) that overlaps none of
/// the subnets in use.
pub fn pick_subnet(pools: &[AddressPool], in_use: &[IpNet]) -> Result<IpNet> {
    let free = |candidate: &IpNet| check_free(candidate, in_use).is_ok();
    if pools.is_empty() {
        return default_pools().find(free).ok_or(Error::NoPoolLeft);
    }
    pools
        .iter()
        .flat_map(|p| p.base.subnets(p.size).into_iter().flatten())
        .find(free)
        .ok_or(Error::NoPoolLeft)
}

/// One network's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    subnet: IpNet,
    /// Where dynamic addresses come from (`--ip-range`); the whole subnet when None.
    range: Option<IpNet>,
    gateway: IpAddr,
    allocated: BTreeSet<IpAddr>,
}

impl Pool {
    /// A pool for `subnet`, the gateway defaulting to the first host address (.1).
    pub fn new(subnet: IpNet, range: Option<IpNet>, gateway: Option<IpAddr>) -> Result<Pool> {
        if subnet != subnet.trunc() {
            return Err(Error::Invalid(format!(
                "subnet {subnet} has host bits set: did you mean {}?",
                subnet.trunc()
            )));
        }
        if subnet.hosts().nth(1).is_none() {
            return Err(Error::Invalid(format!(
                "subnet {subnet} is too small for a gateway and a container"
            )));
        }
        if let Some(r) = range {
            if !subnet.contains(&r) {
                return Err(Error::Invalid(format!(
                    "ip-range {r} is not inside subnet {subnet}"
                )));
            }
        }
        let mut pool = Pool {
            subnet,
            range,
            gateway: subnet.network(),
            allocated: BTreeSet::new(),
        };
        // ipnet counts an IPv6 subnet's own address as a host; we never hand it out.
        pool.gateway = match gateway {
            Some(g) => g,
            None => subnet
                .hosts()
                .find(|h| pool.is_host(*h))
                .ok_or(Error::Exhausted(subnet))?,
        };
        let gateway = pool.gateway;
        if !pool.is_host(gateway) {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not a host address of subnet {subnet}"
            )));
        }
        Ok(pool)
    }

    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// A usable host address of the subnet: not its network or (v4) broadcast address.
    fn is_host(&self, ip: IpAddr) -> bool {
        let broadcast = matches!(self.subnet, IpNet::V4(_)) && ip == self.subnet.broadcast();
        self.subnet.contains(&ip) && ip != self.subnet.network() && !broadcast
    }

    fn is_taken(&self, ip: IpAddr) -> bool {
        ip == self.gateway || self.allocated.contains(&ip)
    }

    /// The lowest free address of the range (or subnet).
    pub fn allocate(&mut self) -> Result<IpAddr> {
        let from = self.range.unwrap_or(self.subnet);
        let ip = from
            .hosts()
            .filter(|ip| self.is_host(*ip))
            .find(|ip| !self.is_taken(*ip))
            .ok_or(Error::Exhausted(from))?;
        self.allocated.insert(ip);
        Ok(ip)
    }

    /// A requested address (`--ip`): anywhere in the subnet, if free.
    pub fn allocate_static(&mut self, ip: IpAddr) -> Result<()> {
        if !self.is_host(ip) {
            return Err(Error::Invalid(format!(
                "address {ip} is not a host address of subnet {}",
                self.subnet
            )));
        }
        if self.is_taken(ip) {
            return Err(Error::InUse(ip));
        }
        self.allocated.insert(ip);
        Ok(())
    }

    /// Gives an address back. Releasing one that was not allocated is an error: it means the
    /// caller's records and the pool disagree.
    pub fn release(&mut self, ip: IpAddr) -> Result<()> {
        if self.allocated.remove(&ip) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "address {ip} was not allocated in {}",
                self.subnet
            )))
        }
    }

    pub fn allocated(&self) -> impl Iterator<Item = &IpAddr> {
        self.allocated.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_pools_follow_dockers_order() {
        let pools: Vec<IpNet> = default_pools().collect();
        assert_eq!(pools[0], net("172.18.0.0/16"));
        assert_eq!(pools[13], net("172.31.0.0/16"));
        assert_eq!(pools[14], net("192.168.0.0/20"));
        assert_eq!(pools[15], net("192.168.16.0/20"));
        assert_eq!(pools.last(), Some(&net("192.168.240.0/20")));
        assert!(!pools.iter().any(|p| overlaps(p, &default_bridge_subnet())));
    }

    #[test]
    fn subnets_are_picked_around_the_ones_in_use() {
        assert_eq!(pick_subnet(&[], &[]).unwrap(), net("172.18.0.0/16"));
        let used = [net("172.18.0.0/16"), net("172.19.5.0/24")];
        assert_eq!(pick_subnet(&[], &used).unwrap(), net("172.20.0.0/16"));
        let everything: Vec<IpNet> = default_pools().collect();
        assert_eq!(pick_subnet(&[], &everything), Err(Error::NoPoolLeft));
    }

    #[test]
    fn configured_pools_replace_dockers_and_are_cut_in_order() {
        let pools = [
            AddressPool {
                base: net("10.10.0.0/23"),
                size: 24,
            },
            AddressPool {
                base: net("10.20.0.0/16"),
                size: 26,
            },
        ];
        assert_eq!(pick_subnet(&pools, &[]).unwrap(), net("10.10.0.0/24"));
        let used = [net("10.10.0.0/24"), net("10.10.1.0/24")];
        assert_eq!(pick_subnet(&pools, &used).unwrap(), net("10.20.0.0/26"));
        let full = [net("10.10.0.0/23"), net("10.20.0.0/16")];
        assert_eq!(pick_subnet(&pools, &full), Err(Error::NoPoolLeft));
    }

    #[test]
    fn overlapping_subnets_are_refused_either_way_round() {
        let used = [net("10.1.0.0/16")];
        assert!(check_free(&net("10.1.2.0/24"), &used).is_err());
        assert!(check_free(&net("10.0.0.0/8"), &used).is_err());
        assert!(check_free(&net("10.2.0.0/16"), &used).is_ok());
        let err = check_free(&net("10.1.2.0/24"), &used)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10.1.0.0/16") && err.contains("choose"),
            "{err}"
        );
    }

    #[test]
    fn addresses_start_after_the_gateway_and_are_never_given_twice() {
        let mut p = Pool::new(net("172.18.0.0/16"), None, None).unwrap();
        assert_eq!(p.gateway(), ip("172.18.0.1"));
        assert_eq!(p.allocate().unwrap(), ip("172.18.0.2"));
        assert_eq!(p.allocate().unwrap(), ip("172.18.0.3"));
        p.release(ip("172.18.0.2")).unwrap();
        assert_eq!(p.allocate().unwrap(), ip("172.18.0.2"));
        assert!(p.release(ip("172.18.0.99")).is_err());
    }

    #[test]
    fn a_full_network_says_so() {
        let mut p = Pool::new(net("10.0.0.0/30"), None, None).unwrap();
        assert_eq!(p.allocate().unwrap(), ip("10.0.0.2"));
        assert_eq!(p.allocate(), Err(Error::Exhausted(net("10.0.0.0/30"))));
    }

    #[test]
    fn ranges_gateways_and_static_addresses_are_checked() {
        let mut p = Pool::new(
            net("10.5.0.0/16"),
            Some(net("10.5.1.0/24")),
            Some(ip("10.5.0.254")),
        )
        .unwrap();
        assert_eq!(p.allocate().unwrap(), ip("10.5.1.1"));
        p.allocate_static(ip("10.5.9.9")).unwrap();
        assert_eq!(
            p.allocate_static(ip("10.5.9.9")),
            Err(Error::InUse(ip("10.5.9.9")))
        );
        assert_eq!(
            p.allocate_static(ip("10.5.0.254")),
            Err(Error::InUse(ip("10.5.0.254")))
        );
        assert!(p.allocate_static(ip("10.6.0.1")).is_err());
        assert!(p.allocate_static(ip("10.5.255.255")).is_err(), "broadcast");
        assert!(Pool::new(net("10.5.0.0/16"), Some(net("10.6.0.0/24")), None).is_err());
        assert!(Pool::new(net("10.5.0.0/16"), None, Some(ip("10.7.0.1"))).is_err());
        assert!(
            Pool::new(net("10.5.0.1/16"), None, None).is_err(),
            "host bits"
        );
        assert!(
            Pool::new(net("10.5.0.0/31"), None, None).is_err(),
            "too small"
        );
    }

    #[test]
    fn ipv6_pools_work_the_same_way() {
        let mut p = Pool::new(net("fd00:1::/64"), None, None).unwrap();
        assert_eq!(p.gateway(), ip("fd00:1::1"));
        assert_eq!(p.allocate().unwrap(), ip("fd00:1::2"));
    }

    #[test]
    fn a_pool_survives_a_round_trip_through_storage() {
        let mut p = Pool::new(net("172.20.0.0/16"), None, None).unwrap();
        p.allocate().unwrap();
        let back: Pool = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
