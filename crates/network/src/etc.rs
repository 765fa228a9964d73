//! The three files a container's /etc gets from its network settings: hosts, hostname and
//! resolv.conf, written into the sandbox's directory for the engine to bind-mount.
//!
//! They are rewritten in place (truncate and write, never rename), so a container that has
//! them bind-mounted sees the new content after a live connect or disconnect.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::dns;
use crate::error::{Error, Result};

/// What the caller knows of the container: `--hostname`, `--add-host`, `--dns*`.
#[derive(Debug, Clone, Default)]
pub struct EtcSpec {
    pub hostname: String,
    pub domainname: Option<String>,
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

/// Where the files were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Docker's fallback when the host has only loopback resolvers, which a container cannot
/// reach from its own namespace.
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Writes the files into `dir`. `addresses` are the sandbox's own addresses (first of each
/// endpoint), `embedded` the gateway of berth's DNS server when the sandbox is on a network
/// it serves, and `host_resolv` the host's resolv.conf.
pub fn write(
    dir: &Path,
    spec: &EtcSpec,
    addresses: &[IpAddr],
    embedded: Option<IpAddr>,
    host_resolv: &str,
) -> Result<EtcFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        hostname: dir.join("hostname"),
        resolv_conf: dir.join("resolv.conf"),
    };
    write_in_place(&files.hosts, &hosts(spec, addresses))?;
    write_in_place(&files.hostname, &format!("{}\n", spec.hostname))?;
    write_in_place(
        &files.resolv_conf,
        &resolv_conf(spec, embedded, host_resolv),
    )?;
    Ok(files)
}

fn write_in_place(path: &Path, content: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// localhost, the usual IPv6 names, the container's own name on each of its addresses, and
/// the user's extra hosts.
pub fn hosts(spec: &EtcSpec, addresses: &[IpAddr]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let own = match &spec.domainname {
        Some(d) if !d.is_empty() => format!("{0}.{d}\t{0}", spec.hostname),
        _ => spec.hostname.clone(),
    };
    for a in addresses {
        out.push_str(&format!("{a}\t{own}\n"));
    }
    for (name, a) in &spec.extra_hosts {
        out.push_str(&format!("{a}\t{name}\n"));
    }
    out
}

/// The nameservers: the user's, else berth's own server on a served network, else the
/// host's (without loopback ones). Search domains and options: the user's, else the host's.
pub fn resolv_conf(spec: &EtcSpec, embedded: Option<IpAddr>, host_resolv: &str) -> String {
    // On a network berth serves names on, its server answers first (and forwards the rest
    // upstream); elsewhere the container's own nameservers, then the host's.
    let servers: Vec<IpAddr> = if let Some(gw) = embedded {
        vec![gw]
    } else if !spec.dns.is_empty() {
        spec.dns.clone()
    } else {
        let reachable: Vec<IpAddr> = dns::nameservers(host_resolv)
            .into_iter()
            .filter(|ip| !ip.is_loopback())
            .collect();
        if reachable.is_empty() {
            FALLBACK_NAMESERVERS
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect()
        } else {
            reachable
        }
    };
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let search = pick(&spec.dns_search, host_resolv, "search");
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    let options = pick(&spec.dns_options, host_resolv, "options");
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The user's values, or the words of the host's `keyword` lines.
fn pick(user: &[String], host_resolv: &str, keyword: &str) -> Vec<String> {
    if !user.is_empty() {
        return user.to_vec();
    }
    host_resolv
        .lines()
        .filter_map(|l| l.strip_prefix(keyword))
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .flat_map(|rest| rest.split_whitespace().map(String::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str =
        "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\n";

    fn spec() -> EtcSpec {
        EtcSpec {
            hostname: "web".into(),
            ..Default::default()
        }
    }

    #[test]
    fn served_networks_point_at_berths_server_and_keep_the_hosts_search() {
        let got = resolv_conf(&spec(), Some("172.18.0.1".parse().unwrap()), HOST);
        assert_eq!(
            got,
            "nameserver 172.18.0.1\nsearch corp.example\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn other_networks_get_the_hosts_reachable_resolvers_or_the_fallback() {
        assert_eq!(
            resolv_conf(&spec(), None, HOST).lines().next(),
            Some("nameserver 10.0.0.2")
        );
        let only_loopback = resolv_conf(&spec(), None, "nameserver 127.0.0.53\n");
        assert_eq!(only_loopback, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn the_users_settings_win_but_berths_server_answers_first_where_it_serves() {
        let s = EtcSpec {
            dns: vec!["192.0.2.53".parse().unwrap()],
            dns_search: vec!["a.example".into()],
            dns_options: vec!["ndots:2".into()],
            ..spec()
        };
        assert_eq!(
            resolv_conf(&s, None, HOST),
            "nameserver 192.0.2.53\nsearch a.example\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(&s, Some("172.18.0.1".parse().unwrap()), HOST),
            "nameserver 172.18.0.1\nsearch a.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_name_the_container_on_each_address() {
        let s = EtcSpec {
            domainname: Some("example.org".into()),
            extra_hosts: vec![("db".into(), "10.9.9.9".parse().unwrap())],
            ..spec()
        };
        let got = hosts(&s, &["172.18.0.2".parse().unwrap()]);
        assert!(got.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(got.contains("172.18.0.2\tweb.example.org\tweb\n"));
        assert!(got.ends_with("10.9.9.9\tdb\n"));
    }

    #[test]
    fn files_are_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(dir.path(), &spec(), &[], None, HOST).unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&first.hosts);
        let second = write(
            dir.path(),
            &EtcSpec {
                hostname: "other".into(),
                ..Default::default()
            },
            &["10.0.0.5".parse().unwrap()],
            None,
            HOST,
        )
        .unwrap();
        assert_eq!(inode(&second.hosts), before);
        assert!(std::fs::read_to_string(&second.hosts)
            .unwrap()
            .contains("10.0.0.5\tother\n"));
        assert_eq!(
            std::fs::read_to_string(&second.hostname).unwrap(),
            "other\n"
        );
    }
}
