//! The network crate's API for the engine: networks, sandboxes, and the endpoints that join
//! them, with their addresses and published ports, kept in the store and in the kernel.
//!
//! Every change follows one order: record it in the store (one transaction), then make the
//! kernel objects, then the firewall; a failure undoes what was made and deletes the record,
//! and `reconcile` (run at open) settles whatever a crash left between two steps.
//!
//! Its parts: `networks` (create, remove), `endpoints` (connect, disconnect, check),
//! `publish` (host ports), `recovery` (reconcile, reset); names and /etc files here.

mod endpoints;
mod networks;
mod publish;
mod recovery;

use publish::forwards;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::cni::{self, Attachment, Conflist};
use crate::dns::{self, Dns, View};
use crate::drivers::{self, Host, Inside};
use crate::error::{Error, Result};
use crate::etc::{self, EtcFiles, EtcSpec};
use crate::firewall::{self, BridgeRules, Forward};
use crate::ipam::{self, Pool};
use crate::links;
use crate::mode::Mode;
use crate::model::{
    check_name, parse_driver, Driver, Endpoint, EndpointSpec, Network, NetworkSpec, Sandbox, Subnet,
};
use crate::netns::{self, Netns};
use crate::ports::{PortMapping, Proto};
use crate::store::Store;

/// Where a container's network namespace comes from.
#[derive(Debug, Clone)]
pub enum Placement {
    /// The host's own namespace (network mode host).
    Host,
    /// Another container's sandbox, shared.
    Shared(Sandbox),
    /// A sandbox of its own.
    Own,
}

pub struct Manager {
    host: Host,
    store: Mutex<Store>,
    netns_dir: PathBuf,
    /// Per-sandbox files (hosts, hostname, resolv.conf), under the run root.
    files_dir: PathBuf,
    /// The host's resolv.conf, read at open: forwarding targets and containers' defaults.
    host_resolv: String,
    dns: Dns,
    /// Where user-defined networks' subnets come from.
    pools: Vec<ipam::AddressPool>,
    /// One change at a time: a change spans the store, the kernel and the firewall.
    changing: tokio::sync::Mutex<()>,
    /// Veth host ends of removed sandboxes, left to the kernel (see `unlink_later`).
    unlinking: Mutex<Vec<String>>,
}

/// How many removed sandboxes' veth names `unlink_later` keeps before checking them.
const UNLINK_BATCH: usize = 64;

/// Where free host ports for `-p containerPort` come from (Docker's ephemeral range).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49153..=60999;

/// Where a Manager keeps its state and what it takes from the host.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Persistent state: the store.
    pub root: PathBuf,
    /// Runtime state: pinned namespaces, per-sandbox files.
    pub run_root: PathBuf,
    /// The host's resolver configuration (upstreams for names no network knows).
    pub resolv_conf: PathBuf,
    /// The port berth's DNS server listens on, on each served network's gateway.
    pub dns_port: u16,
    /// Where user-defined networks' subnets come from (Docker's defaults when empty).
    pub pools: Vec<ipam::AddressPool>,
    /// Where berth's DNS server forwards names no network knows (the daemon's `dns`); the
    /// host's resolv.conf's nameservers when empty.
    pub upstreams: Vec<IpAddr>,
    /// Turn on the host's IPv4 forwarding for bridges with a way out.
    pub ip_forward: bool,
    /// Program the firewall (NAT, isolation, published ports).
    pub firewall: bool,
}

impl Settings {
    pub fn new(root: &Path, run_root: &Path) -> Settings {
        Settings {
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            dns_port: dns::PORT,
            pools: Vec::new(),
            upstreams: Vec::new(),
            ip_forward: true,
            firewall: true,
        }
    }
}

/// The DNS server's upstreams: the configured ones, else the host's.
fn upstreams(settings: &Settings, host_resolv: &str) -> Vec<std::net::SocketAddr> {
    if settings.upstreams.is_empty() {
        return dns::upstreams_from(host_resolv);
    }
    settings
        .upstreams
        .iter()
        .map(|ip| std::net::SocketAddr::new(*ip, dns::PORT))
        .collect()
}

impl Manager {
    /// Opens the store under `root` and pins sandboxes under `run_root/netns`; the calling
    /// thread's network namespace is the host's. Settles what a crash left behind.
    pub async fn open(root: &Path, run_root: &Path) -> Result<Manager> {
        Manager::open_with(Settings::new(root, run_root)).await
    }

    pub async fn open_with(settings: Settings) -> Result<Manager> {
        let netns_dir = settings.run_root.join("netns");
        let files_dir = settings.run_root.join("sandboxes");
        for dir in [&settings.root, &netns_dir, &files_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        // A host without a resolv.conf has no upstreams; containers get Docker's fallback.
        let host_resolv = std::fs::read_to_string(&settings.resolv_conf).unwrap_or_default();
        let ns = Netns::current()?;
        let nl = ns.route_handle()?;
        let manager = Manager {
            host: Host {
                ns,
                nl,
                ip_forward: settings.ip_forward,
                firewall: settings.firewall,
            },
            store: Mutex::new(Store::open(&settings.root.join("network.db"))?),
            netns_dir,
            files_dir,
            dns: Dns::start(upstreams(&settings, &host_resolv), settings.dns_port)?,
            pools: settings.pools.clone(),
            host_resolv,
            changing: tokio::sync::Mutex::new(()),
            unlinking: Mutex::new(Vec::new()),
        };
        manager.reconcile().await?;
        Ok(manager)
    }

    pub(super) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave a half-written row (SQLite rolls back),
        // so a poisoned lock is still safe to use.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn networks(&self) -> Result<Vec<Network>> {
        self.store().networks()
    }

    pub fn network(&self, key: &str) -> Result<Network> {
        self.store()
            .network(key)?
            .ok_or_else(|| Error::NoSuchNetwork(key.to_string()))
    }

    pub fn endpoints_on(&self, network_id: &str) -> Result<Vec<Endpoint>> {
        self.store().endpoints_on(network_id)
    }

    pub fn endpoints_of(&self, sandbox_id: &str) -> Result<Vec<Endpoint>> {
        self.store().endpoints_of(sandbox_id)
    }

    pub fn sandbox(&self, id: &str) -> Result<Sandbox> {
        self.store()
            .sandbox(id)?
            .ok_or_else(|| Error::NoSuchSandbox(id.to_string()))
    }

    /// Where a container with this network mode gets its namespace: the host's, another
    /// container's sandbox, or a sandbox of its own (for the caller to create).
    pub fn placement(&self, mode: &Mode) -> Result<Placement> {
        match mode {
            Mode::Host => Ok(Placement::Host),
            Mode::Container(id) => match self.store().sandbox(id)? {
                Some(s) => Ok(Placement::Shared(s)),
                None => Err(Error::Invalid(format!(
                    "container {id} has no network sandbox to share: start it first, or check \
                     the name in --network container:{id}"
                ))),
            },
            Mode::None | Mode::Networks(_) => Ok(Placement::Own),
        }
    }

    /// A new sandbox: a pinned network namespace with its loopback up (network mode "none").
    pub async fn create_sandbox(&self, id: &str) -> Result<Sandbox> {
        let _one = self.changing.lock().await;
        check_name(id)?;
        let path = self.netns_dir.join(id);
        let ns = Netns::create_at(&path)?;
        let sandbox = Sandbox {
            id: id.to_string(),
            path: path.clone(),
        };
        let made = async {
            let nl = ns.route_handle()?;
            let lo = links::require(&nl, "lo").await?;
            links::set_up(&nl, lo.index).await?;
            self.store().insert_sandbox(&sandbox)
        }
        .await;
        if let Err(e) = made {
            netns::remove_pinned(&path)?;
            return Err(e);
        }
        Ok(sandbox)
    }

    /// Disconnects a sandbox from every network and removes its namespace.
    pub async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let _one = self.changing.lock().await;
        let sandbox = self.sandbox(id)?;
        let endpoints = self.store().endpoints_of(id)?;
        // Only what the sandbox took part in is rebuilt: a container that published no
        // port costs no firewall change, one off the named networks no DNS change.
        let had_ports = endpoints.iter().any(|e| !e.ports.is_empty());
        let mut had_names = false;
        let mut host_ends = Vec::new();
        for ep in &endpoints {
            let net = self.store().network(&ep.network_id)?;
            had_names |= net.as_ref().is_some_and(serves_names);
            host_ends.extend(self.drop_endpoint(ep, net.as_ref(), &sandbox).await?);
        }
        if had_ports {
            self.sync_ports()?;
        }
        if had_names {
            self.sync_dns()?;
        }
        netns::remove_pinned(&sandbox.path)?;
        self.unlink_later(host_ends).await;
        let files = self.files_dir.join(id);
        if files.exists() {
            std::fs::remove_dir_all(&files)
                .map_err(|e| Error::io(format!("remove {}", files.display()), e))?;
        }
        self.store().delete_sandbox(id)
    }

    /// Leaves a removed sandbox's veth host ends to the kernel. Unpinning the namespace lets
    /// the kernel take both ends away with it, batched with the namespace's teardown; deleting
    /// them ourselves holds the kernel's network lock through RCU grace periods (~20 ms here),
    /// which the next container's interface creation then waits for (a sandbox join measured
    /// 31 ms right after such a deletion, 1.9 ms without). The names are kept so that `settle`
    /// deletes any that something still holding the namespace kept alive; it runs on
    /// `remove_network`, `reset`, the daemon's exit, and here once the list grows, on the older
    /// names only (the kernel is done with those). A daemon killed first leaves them to
    /// `reconcile`, which deletes berth's unowned links.
    async fn unlink_later(&self, names: Vec<String>) {
        let older = {
            let mut pending = self.unlinking.lock().unwrap_or_else(|p| p.into_inner());
            let older = (pending.len() >= UNLINK_BATCH).then(|| std::mem::take(&mut *pending));
            pending.extend(names);
            older
        };
        if let Some(older) = older {
            self.delete_leftovers(older).await;
        }
    }

    /// Makes sure no link of a removed sandbox is left (see `unlink_later`).
    pub async fn settle(&self) {
        let names = std::mem::take(&mut *self.unlinking.lock().unwrap_or_else(|p| p.into_inner()));
        self.delete_leftovers(names).await;
    }

    async fn delete_leftovers(&self, names: Vec<String>) {
        for name in names {
            if let Err(e) = links::delete_named(&self.host.nl, &name).await {
                tracing::warn!("deleting {name} after its sandbox: {e}");
            }
        }
    }

    /// Rebuilds berth's whole nftables table from the store, in one transaction.
    pub(super) fn sync_firewall(&self) -> Result<()> {
        let store = self.store();
        let bridges: Vec<BridgeRules> = store
            .networks()?
            .into_iter()
            .filter_map(|n| match n.driver {
                Driver::Bridge(b) => Some(BridgeRules {
                    bridge: b.bridge,
                    subnets: n.subnets.iter().map(|s| s.subnet).collect(),
                    internal: n.internal,
                    masquerade: b.masquerade,
                    icc: b.icc,
                }),
                _ => None,
            })
            .collect();
        let all: Vec<Forward> = store.all_endpoints()?.iter().flat_map(forwards).collect();
        drop(store);
        self.host.apply_firewall(&firewall::ruleset(&bridges, &all))
    }

    /// Serves names on every user-defined bridge network, from the store's endpoints.
    pub(super) fn sync_dns(&self) -> Result<()> {
        let store = self.store();
        let mut gateways = HashMap::new();
        let mut view = View::default();
        for net in store.networks()?.into_iter().filter(serves_names) {
            gateways.insert(
                net.id.clone(),
                net.subnets.iter().map(|s| s.gateway).collect(),
            );
            view.add_network(&net.id, net.internal);
        }
        for ep in store.all_endpoints()? {
            let addrs: Vec<IpAddr> = ep.addresses.iter().map(|a| a.addr()).collect();
            view.add_endpoint(&ep.network_id, &ep.sandbox_id, &ep.names, &addrs);
        }
        drop(store);
        self.dns.sync(gateways, view)
    }

    /// Writes the sandbox's hosts, hostname and resolv.conf (again after each connect or
    /// disconnect, in place): its names on its own addresses, and berth's DNS server as the
    /// resolver when it is on a network that server serves.
    pub fn write_etc(&self, sandbox_id: &str, spec: &EtcSpec) -> Result<EtcFiles> {
        self.sandbox(sandbox_id)?;
        let store = self.store();
        let mut addresses = Vec::new();
        let mut embedded = None;
        for ep in store.endpoints_of(sandbox_id)? {
            addresses.extend(ep.addresses.first().map(|a| a.addr()));
            let net = store.network(&ep.network_id)?;
            if embedded.is_none() && net.as_ref().is_some_and(serves_names) {
                embedded = ep.gateways.first().copied();
            }
        }
        drop(store);
        let dir = self.files_dir.join(sandbox_id);
        etc::write(&dir, spec, &addresses, embedded, &self.host_resolv)
    }
}

/// Docker resolves names on user-defined bridges only; the default bridge has no names.
pub(super) fn serves_names(net: &Network) -> bool {
    matches!(&net.driver, Driver::Bridge(b) if !b.default)
}

/// 64 hex digits from the kernel's random source, as Docker's ids.
pub fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read /dev/urandom".into(), e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
