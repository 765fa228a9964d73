//! Published ports: host ports chosen and checked, and the DNAT entries they become.

use super::*;

impl Manager {
    /// Fills in host addresses and free host ports, and refuses ports already taken by
    /// another container or by a process on the host.
    pub(super) fn plan_ports(
        &self,
        net: &Network,
        wanted: &[PortMapping],
    ) -> Result<Vec<PortMapping>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let host_binding = match &net.driver {
            Driver::Bridge(b) => b.host_binding,
            Driver::Cni { config, .. } if Conflist::from_json(config)?.maps_ports() => None,
            _ => {
                return Err(Error::Invalid(format!(
                    "ports can only be published on bridge networks and on cni networks with \
                     a portMappings plugin, and {} is a {} network",
                    net.name,
                    net.driver.name()
                )))
            }
        };
        let mut in_use = self.store().ports_in_use()?;
        let mut out = Vec::new();
        for p in wanted {
            let mut p = *p;
            p.host_ip = p.host_ip.or(host_binding).filter(|ip| !ip.is_unspecified());
            if p.host_port == 0 {
                p.host_port = self.free_port(&p, &in_use)?;
            } else if clashes(&p, &in_use) || !self.bindable(&p) {
                return Err(Error::PortTaken {
                    ip: p.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    port: p.host_port,
                    proto: p.proto.to_string(),
                });
            }
            in_use.push((p.proto, p.host_ip, p.host_port));
            out.push(p);
        }
        Ok(out)
    }

    fn free_port(&self, p: &PortMapping, in_use: &[(Proto, Option<IpAddr>, u16)]) -> Result<u16> {
        EPHEMERAL
            .map(|port| PortMapping {
                host_port: port,
                ..*p
            })
            .find(|c| !clashes(c, in_use) && self.bindable(c))
            .map(|c| c.host_port)
            .ok_or_else(|| Error::Invalid("no free host port left in 49153-60999".into()))
    }

    /// Whether a host process already listens on the port: published ports are DNAT rules,
    /// so such a process would silently lose its traffic.
    fn bindable(&self, p: &PortMapping) -> bool {
        let ip = p.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.host
            .ns
            .run_in(|| {
                let free = match p.proto {
                    Proto::Tcp => TcpListener::bind((ip, p.host_port)).is_ok(),
                    Proto::Udp => UdpSocket::bind((ip, p.host_port)).is_ok(),
                };
                Ok(free)
            })
            .unwrap_or(false)
    }
    /// After ports went away: the table is rebuilt so that no stale element can survive.
    pub(super) fn sync_ports(&self) -> Result<()> {
        self.sync_firewall()
    }
}

fn clashes(p: &PortMapping, in_use: &[(Proto, Option<IpAddr>, u16)]) -> bool {
    in_use.iter().any(|(proto, ip, port)| {
        *proto == p.proto
            && *port == p.host_port
            && (ip.is_none() || p.host_ip.is_none() || *ip == p.host_ip)
    })
}

/// The DNAT entries for an endpoint's published ports, one per address family that fits.
pub(super) fn forwards(ep: &Endpoint) -> Vec<Forward> {
    let mut out = Vec::new();
    for p in &ep.ports {
        for a in &ep.addresses {
            let same_family = match p.host_ip {
                Some(ip) => ip.is_ipv4() == a.addr().is_ipv4(),
                None => true,
            };
            if same_family {
                out.push(Forward {
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    proto: p.proto,
                    target: a.addr(),
                    target_port: p.container_port,
                });
            }
        }
    }
    out
}
