//! Published ports: `-p [ip:][hostPort:]containerPort[/tcp|udp]` with ranges, as Docker
//! parses them.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port. `host_port` 0 means "any free port", resolved when published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => write!(f, "0.0.0.0:")?,
        }
        write!(
            f,
            "{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

/// `-P`: every port the image exposes (its config's `ExposedPorts` keys, `80/tcp`), each to
/// a free host port on every host address.
pub fn publish_all(exposed: &[String]) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    for port in exposed {
        let invalid = || {
            Error::Invalid(format!(
                "invalid exposed port {port:?}: write port[/tcp|udp], a number from 1 to 65535"
            ))
        };
        if port.contains(':') {
            return Err(invalid());
        }
        out.extend(parse_publish(port).map_err(|_| invalid())?);
    }
    Ok(out)
}

/// Parses one `-p` value into one mapping per port of its range.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "invalid port publication {spec:?}: {why}; write [ip:][hostPort:]containerPort[/tcp|udp]"
        ))
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Proto::Tcp),
        Some((rest, "udp")) => (rest, Proto::Udp),
        Some((_, other)) => return Err(bad(&format!("unknown protocol {other:?}"))),
        None => (spec, Proto::Tcp),
    };
    let (host_ip, host, container) = split_publish(rest).ok_or_else(|| bad("too many ':'"))?;
    let host_ip = match host_ip {
        None | Some("") => None,
        Some(ip) => Some(
            ip.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?,
        ),
    };
    let container = parse_range(container).ok_or_else(|| bad("bad container port"))?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(parse_range(h).ok_or_else(|| bad("bad host port"))?),
    };
    let count = container.1 - container.0 + 1;
    if let Some(h) = host {
        if h.1 - h.0 + 1 != count {
            return Err(bad("host and container port ranges differ in length"));
        }
    }
    Ok((0..count)
        .map(|i| PortMapping {
            host_ip,
            host_port: host.map(|h| h.0 + i).unwrap_or(0),
            container_port: container.0 + i,
            proto,
        })
        .collect())
}

/// Splits `ip:host:container`, `host:container` or `container`; an IPv6 address is bracketed.
fn split_publish(s: &str) -> Option<(Option<&str>, Option<&str>, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, rest) = rest.split_once(']')?;
        let (host, container) = rest.strip_prefix(':')?.split_once(':')?;
        return Some((Some(ip), Some(host), container));
    }
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [c] => Some((None, None, c)),
        [h, c] => Some((None, Some(h), c)),
        [ip, h, c] => Some((Some(ip), Some(h), c)),
        _ => None,
    }
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_all_maps_each_exposed_port_to_a_free_host_port() {
        let exposed = ["80/tcp".to_string(), "53/udp".into(), "8080".into()];
        let got = publish_all(&exposed).unwrap();
        let want = [(80, Proto::Tcp), (53, Proto::Udp), (8080, Proto::Tcp)];
        assert_eq!(got.len(), 3);
        for (p, (port, proto)) in got.iter().zip(want) {
            assert_eq!((p.host_ip, p.host_port), (None, 0));
            assert_eq!((p.container_port, p.proto), (port, proto));
        }
        let err = publish_all(&["1:2".into()]).unwrap_err().to_string();
        assert!(err.contains("invalid exposed port"), "{err}");
        assert!(publish_all(&["http/tcp".into()]).is_err());
    }

    fn one(s: &str) -> PortMapping {
        let v = parse_publish(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v[0]
    }

    #[test]
    fn dockers_forms_parse() {
        assert_eq!(
            one("8080:80"),
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let m = one("127.0.0.1:8080:80/udp");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.proto, Proto::Udp);
        assert_eq!(one("80").host_port, 0);
        assert_eq!(one("127.0.0.1::80").host_port, 0);
        assert_eq!(one("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        let r = parse_publish("8000-8002:9000-9002").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].container_port), (8002, 9002));
        assert_eq!(
            one("127.0.0.1:8080:80").to_string(),
            "127.0.0.1:8080->80/tcp"
        );
    }

    #[test]
    fn bad_publications_say_what_to_write() {
        for bad in [
            "",
            "x:80",
            "80/sctp",
            "1:2:3:4",
            "8000-8001:80",
            "0:80",
            "70000:80",
            "9.9.9:80:80",
            "90-80",
        ] {
            let e = parse_publish(bad).unwrap_err().to_string();
            assert!(e.contains("[ip:][hostPort:]containerPort"), "{bad}: {e}");
        }
    }
}
