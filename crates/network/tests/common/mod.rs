//! A world per test: a fresh network namespace standing in for the host (pinned in a temp dir),
//! a Manager opened inside it, and helpers that move real traffic between namespaces. Nothing
//! here touches the machine's own network namespace.

#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_network::netns::{self, Netns};
use berth_network::{links, Manager, Settings};

/// The resolv.conf every world's manager reads as the host's.
pub const UPSTREAM_RESOLV_CONF: &str = "nameserver 127.0.0.1\nsearch test.example\n";

pub struct World {
    pub dir: tempfile::TempDir,
    pub host: PathBuf,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("a temp dir");
        let host = dir.path().join("host-ns");
        Netns::create_at(&host).expect("a host namespace for the test");
        World { dir, host }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The world's own resolv.conf: its upstream resolver is 127.0.0.1 in the world's host
    /// namespace, where a test may run one (nothing reaches the machine's resolvers).
    pub fn settings(&self) -> Settings {
        let resolv_conf = self.dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, UPSTREAM_RESOLV_CONF).expect("write resolv.conf");
        Settings {
            resolv_conf,
            ..Settings::new(&self.root(), &self.run_root())
        }
    }

    /// Runs `test` on a thread inside the world's host namespace with a Manager opened there,
    /// then resets the manager and checks that nothing of berth's is left.
    pub fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Manager, PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Manager>,
    {
        let host = self.host.clone();
        let settings = self.settings();
        let run_root = self.run_root();
        let outcome = std::thread::spawn(move || {
            let ns = Netns::open(&host).expect("open the host namespace");
            ns.run_in(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async {
                    bring_up_loopback(&ns).await;
                    let manager = Manager::open_with(settings)
                        .await
                        .expect("open the manager");
                    let manager = test(manager, host.clone()).await;
                    manager.reset().await.expect("reset removes everything");
                    assert_nothing_left(&ns, &run_root).await;
                });
                Ok(())
            })
        })
        .join();
        netns::remove_pinned(&self.host).expect("unpin the host namespace");
        // The "outside" namespace some tests make (make_outside) is the world's too.
        let outside = self.dir.path().join("outside-ns");
        if netns::is_pinned(&outside) {
            netns::remove_pinned(&outside).expect("unpin the outside namespace");
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

async fn bring_up_loopback(ns: &Netns) {
    let nl = ns.route_handle().expect("netlink");
    let lo = links::require(&nl, "lo").await.expect("lo");
    links::set_up(&nl, lo.index).await.expect("lo up");
}

/// Only loopback remains in the host namespace, no sandbox is pinned and berth's nftables
/// table is gone.
pub async fn assert_nothing_left(ns: &Netns, run_root: &Path) {
    let nl = ns.route_handle().expect("netlink");
    let names: Vec<String> = links::all(&nl)
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo" && !n.starts_with("test"))
        .collect();
    assert!(names.is_empty(), "links left behind: {names:?}");
    let pinned: Vec<_> = std::fs::read_dir(run_root.join("netns"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(pinned.is_empty(), "namespaces left behind: {pinned:?}");
    let files: Vec<_> = std::fs::read_dir(run_root.join("sandboxes"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "sandbox files left behind: {files:?}");
    let tables = nft_in(ns, &["list", "tables"]);
    assert!(
        !tables.contains("berth"),
        "nftables table left behind: {tables}"
    );
}

/// Runs nft inside a namespace and returns its output.
pub fn nft_in(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .run_in(|| {
            Command::new("nft")
                .args(args)
                .output()
                .map_err(|e| berth_network::Error::Firewall(e.to_string()))
        })
        .expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP server inside `ns`: answers every connection with "hello from <ns name>" and the
/// peer's address it saw. Bound before returning, so clients need no waiting.
pub fn serve_tcp(ns: &Path, addr: SocketAddr) -> SocketAddr {
    let listener = Netns::open(ns)
        .expect("open ns")
        .run_in(|| {
            TcpListener::bind(addr)
                .map_err(|e| berth_network::Error::Firewall(format!("bind {addr}: {e}")))
        })
        .expect("bind a listener");
    let local = listener.local_addr().expect("local addr");
    let label = ns
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let peer = conn
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = write!(conn, "hello from {label} to {peer}");
            let _ = conn.shutdown(Shutdown::Write);
        }
    });
    local
}

/// A UDP echo server inside `ns` that answers each datagram with the peer's address.
pub fn serve_udp(ns: &Path, addr: SocketAddr) -> SocketAddr {
    let socket = Netns::open(ns)
        .expect("open ns")
        .run_in(|| UdpSocket::bind(addr).map_err(|e| berth_network::Error::Firewall(e.to_string())))
        .expect("bind udp");
    let local = socket.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(format!("udp to {}", peer.ip()).as_bytes(), peer);
        }
    });
    local
}

/// Connects from inside `ns` and returns what the server said; an error when unreachable.
pub fn fetch(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    let stream = Netns::open(ns)
        .map_err(std::io::Error::other)?
        .run_in(|| {
            TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| berth_network::Error::Firewall(e.to_string()))
        })
        .map_err(std::io::Error::other)?;
    let mut stream = stream;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut s = String::new();
    stream.read_to_string(&mut s)?;
    Ok(s)
}

/// Sends one UDP datagram from inside `ns` and returns the answer.
pub fn fetch_udp(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    let socket = Netns::open(ns)
        .map_err(std::io::Error::other)?
        .run_in(|| {
            UdpSocket::bind("0.0.0.0:0").map_err(|e| berth_network::Error::Firewall(e.to_string()))
        })
        .map_err(std::io::Error::other)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.send_to(b"ping", to)?;
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// One ICMP echo from inside `ns` (busybox ping), true when answered.
pub fn ping(ns: &Path, ip: IpAddr) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["busybox", "ping", "-c", "1", "-W", "1"])
        .arg(ip.to_string())
        .output()
        .map(|o| o.status.success())
        .expect("nsenter and busybox (Debian's util-linux and busybox-static) are installed")
}

/// The first IPv4 address of an endpoint.
pub fn ipv4(ep: &berth_network::Endpoint) -> IpAddr {
    ep.addresses
        .iter()
        .map(|a| a.addr())
        .find(|a| a.is_ipv4())
        .expect("an IPv4 address")
}

/// An "outside" namespace reachable from the host over a veth pair: the host gets
/// 203.0.113.1/24 on `testout0`, the outside 203.0.113.2/24. Returns its pinned path.
pub async fn make_outside(world_dir: &Path, host: &Netns) -> PathBuf {
    let path = world_dir.join("outside-ns");
    let outside = Netns::create_at(&path).expect("outside ns");
    let nl = host.route_handle().expect("netlink");
    links::add_veth_into(&nl, "testout0", "eth0", outside.raw_fd(), None, "test")
        .await
        .expect("veth to the outside");
    let out_nl = outside.route_handle().expect("netlink");
    let here = links::require(&nl, "testout0").await.expect("testout0");
    links::add_address(&nl, here.index, "203.0.113.1".parse().unwrap(), 24)
        .await
        .expect("address");
    links::set_up(&nl, here.index).await.expect("up");
    let there = links::require(&out_nl, "eth0").await.expect("eth0");
    links::add_address(&out_nl, there.index, "203.0.113.2".parse().unwrap(), 24)
        .await
        .expect("address");
    links::set_up(&out_nl, there.index).await.expect("up");
    let lo = links::require(&out_nl, "lo").await.expect("lo");
    links::set_up(&out_nl, lo.index).await.expect("lo up");
    path
}

/// An interface in the host namespace to stand in for a NIC (macvlan/ipvlan parent): one
/// end of a veth pair whose other end stays in the host too (this kernel has no dummy links).
pub async fn add_nic(host: &Netns, name: &str) {
    let nl = host.route_handle().expect("netlink");
    let peer = format!("{name}p");
    nl.link()
        .add(rtnetlink::LinkVeth::new(name, &peer).build())
        .execute()
        .await
        .expect("a veth pair");
    for n in [name, peer.as_str()] {
        let link = links::require(&nl, n).await.expect("nic");
        links::set_up(&nl, link.index).await.expect("up");
    }
}

/// The names of the links in a namespace.
pub async fn link_names(ns: &Netns) -> Vec<String> {
    let nl = ns.route_handle().expect("netlink");
    links::all(&nl)
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect()
}
