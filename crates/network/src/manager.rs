//! The network crate's API for the engine: networks, sandboxes, and the endpoints that join
//! them, with their addresses and published ports, kept in the store and in the kernel.
//!
//! Every change follows one order: record it in the store (one transaction), then make the
//! kernel objects, then the firewall; a failure undoes what was made and deletes the record,
//! and `reconcile` (run at open) settles whatever a crash left between two steps.

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
    /// One change at a time: a change spans the store, the kernel and the firewall.
    changing: tokio::sync::Mutex<()>,
}

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
}

impl Settings {
    pub fn new(root: &Path, run_root: &Path) -> Settings {
        Settings {
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            dns_port: dns::PORT,
        }
    }
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
            host: Host { ns, nl },
            store: Mutex::new(Store::open(&settings.root.join("network.db"))?),
            netns_dir,
            files_dir,
            dns: Dns::start(dns::upstreams_from(&host_resolv), settings.dns_port)?,
            host_resolv,
            changing: tokio::sync::Mutex::new(()),
        };
        manager.reconcile().await?;
        Ok(manager)
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
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

    /// Creates a network: checks everything, records it, makes its kernel objects.
    pub async fn create_network(&self, spec: &NetworkSpec) -> Result<Network> {
        let _one = self.changing.lock().await;
        check_name(&spec.name)?;
        if self.store().network(&spec.name)?.is_some() {
            return Err(Error::NameTaken(spec.name.clone()));
        }
        let id = random_id()?;
        let driver = parse_driver(&id, spec)?;
        let mut net = Network {
            subnets: self.plan_subnets(spec, &driver)?,
            id,
            name: spec.name.clone(),
            driver,
            internal: spec.internal,
            attachable: spec.attachable,
            options: spec.options.clone(),
            labels: spec.labels.clone(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        self.check_bridge_name_free(&net)?;
        self.store().insert_network(&net)?;
        let made = async {
            net.driver = drivers::create(&self.host, &net).await?;
            self.sync_firewall()?;
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = made {
            let _ = drivers::remove(&self.host, &net).await;
            self.store().delete_network(&net.id)?;
            let _ = self.sync_firewall();
            return Err(e);
        }
        // The driver may have recorded what it made (a VLAN interface to remove later).
        self.store().update_network(&net)?;
        self.sync_dns()?;
        Ok(net)
    }

    /// Each family's subnet: the user's, checked against every other network's, or the first
    /// free default pool.
    fn plan_subnets(&self, spec: &NetworkSpec, driver: &Driver) -> Result<Vec<Subnet>> {
        if matches!(driver, Driver::Cni { .. }) {
            // A CNI chain's own IPAM plugin chooses its addresses.
            if !spec.subnets.is_empty() || spec.ipv6 {
                return Err(Error::Invalid(
                    "a cni network's addresses come from its conflist's ipam plugin: remove \
                     --subnet/--ipv6 and set them in the conflist"
                        .into(),
                ));
            }
            return Ok(Vec::new());
        }
        let in_use: Vec<IpNet> = self
            .store()
            .networks()?
            .iter()
            .flat_map(|n| n.subnets.iter().map(|s| s.subnet))
            .collect();
        let mut subnets = Vec::new();
        for s in &spec.subnets {
            ipam::check_free(&s.subnet, &in_use)?;
            if subnets
                .iter()
                .any(|x: &Subnet| ipam::overlaps(&x.subnet, &s.subnet))
            {
                return Err(ipam::Error::Overlap {
                    new: s.subnet,
                    existing: s.subnet,
                }
                .into());
            }
            let pool = Pool::new(s.subnet, s.range, s.gateway)?;
            subnets.push(Subnet {
                subnet: s.subnet,
                range: s.range,
                gateway: pool.gateway(),
            });
        }
        let is_default = matches!(driver, Driver::Bridge(b) if b.default);
        if !subnets.iter().any(|s| matches!(s.subnet, IpNet::V4(_))) {
            let subnet = if is_default
                && ipam::check_free(&ipam::default_bridge_subnet(), &in_use).is_ok()
            {
                ipam::default_bridge_subnet()
            } else {
                ipam::pick_subnet(&in_use)?
            };
            let pool = Pool::new(subnet, None, None)?;
            subnets.push(Subnet {
                subnet,
                range: None,
                gateway: pool.gateway(),
            });
        }
        if spec.ipv6 && !subnets.iter().any(|s| matches!(s.subnet, IpNet::V6(_))) {
            return Err(Error::Invalid(
                "--ipv6 needs an IPv6 --subnet (berth has no default IPv6 pool)".into(),
            ));
        }
        Ok(subnets)
    }

    fn check_bridge_name_free(&self, net: &Network) -> Result<()> {
        let Driver::Bridge(b) = &net.driver else {
            return Ok(());
        };
        for other in self.store().networks()? {
            if matches!(&other.driver, Driver::Bridge(o) if o.bridge == b.bridge) {
                return Err(Error::Invalid(format!(
                    "bridge {} is already used by network {}: choose another com.docker.network.bridge.name",
                    b.bridge, other.name
                )));
            }
        }
        Ok(())
    }

    /// Removes a network; refused while endpoints are on it.
    pub async fn remove_network(&self, key: &str) -> Result<()> {
        let _one = self.changing.lock().await;
        let net = self.network(key)?;
        let count = self.store().endpoints_on(&net.id)?.len();
        if count > 0 {
            return Err(Error::InUse {
                network: net.name,
                count,
            });
        }
        drivers::remove(&self.host, &net).await?;
        self.store().delete_network(&net.id)?;
        self.sync_dns()?;
        self.sync_firewall()
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
        for ep in endpoints {
            self.remove_endpoint(&ep, Some(&sandbox)).await?;
        }
        self.sync_ports()?;
        self.sync_dns()?;
        netns::remove_pinned(&sandbox.path)?;
        let files = self.files_dir.join(id);
        if files.exists() {
            std::fs::remove_dir_all(&files)
                .map_err(|e| Error::io(format!("remove {}", files.display()), e))?;
        }
        self.store().delete_sandbox(id)
    }

    /// Connects a sandbox to a network: an address, an interface, routes, published ports.
    pub async fn connect(
        &self,
        sandbox_id: &str,
        network: &str,
        spec: &EndpointSpec,
    ) -> Result<Endpoint> {
        let _one = self.changing.lock().await;
        let sandbox = self.sandbox(sandbox_id)?;
        let net = self.network(network)?;
        let existing = self.store().endpoints_of(sandbox_id)?;
        if existing.iter().any(|e| e.network_id == net.id) {
            return Err(Error::AlreadyConnected {
                sandbox: sandbox_id.into(),
                network: net.name,
            });
        }
        if let Driver::Cni { config, .. } = &net.driver {
            let conf = Conflist::from_json(config)?;
            return self.connect_cni(&net, &conf, &sandbox, &existing, spec);
        }
        let ep = self.plan_endpoint(&net, &sandbox, &existing, spec)?;
        self.store().insert_endpoint(&ep)?;
        match self
            .make_endpoint(&net, &sandbox, &ep, existing.is_empty())
            .await
        {
            Ok(()) => {
                self.sync_dns()?;
                Ok(ep)
            }
            Err(e) => {
                let _ = self.remove_endpoint(&ep, Some(&sandbox)).await;
                let _ = self.sync_ports();
                Err(e)
            }
        }
    }

    /// A CNI network: the endpoint is recorded (holding its ports), the plugin chain's ADD
    /// makes the interface and chooses the addresses, and the record gets them.
    fn connect_cni(
        &self,
        net: &Network,
        conf: &Conflist,
        sandbox: &Sandbox,
        existing: &[Endpoint],
        spec: &EndpointSpec,
    ) -> Result<Endpoint> {
        if !spec.addresses.is_empty() || spec.mac.is_some() {
            return Err(Error::Invalid(format!(
                "network {} is a cni network: its conflist's plugins choose addresses and \
                 MACs, so --ip and --mac-address cannot be given",
                net.name
            )));
        }
        let mut ep = Endpoint {
            id: random_id()?,
            network_id: net.id.clone(),
            sandbox_id: sandbox.id.clone(),
            ifname: next_ifname(existing),
            host_ifname: None,
            addresses: Vec::new(),
            gateways: Vec::new(),
            mac: String::new(),
            names: spec.names.clone(),
            ports: self.plan_ports(net, &spec.ports)?,
            cni_result: None,
        };
        self.store().insert_endpoint(&ep)?;
        let attachment = Attachment {
            container_id: &sandbox.id,
            netns: Some(&sandbox.path),
            ifname: &ep.ifname,
            ports: &ep.ports,
        };
        let result = match cni::add(&self.host.ns, conf, &attachment) {
            Ok(r) => r,
            Err(e) => {
                self.store().delete_endpoint(&ep.id)?;
                return Err(e);
            }
        };
        let assigned = cni::assigned(&result, &ep.ifname);
        ep.addresses = assigned.addresses;
        ep.gateways = assigned.gateways;
        ep.mac = assigned.mac.unwrap_or_default();
        ep.cni_result = Some(result);
        self.store().update_endpoint(&ep)?;
        Ok(ep)
    }

    /// Verifies that a sandbox's endpoint on a network is still whole: a CNI chain's CHECK,
    /// or for berth's own drivers, that the interface is in the sandbox.
    pub async fn check(&self, sandbox_id: &str, network: &str) -> Result<()> {
        let sandbox = self.sandbox(sandbox_id)?;
        let net = self.network(network)?;
        let ep = self.endpoint(&sandbox, &net)?;
        if let Driver::Cni { config, .. } = &net.driver {
            let attachment = Attachment {
                container_id: &sandbox.id,
                netns: Some(&sandbox.path),
                ifname: &ep.ifname,
                ports: &ep.ports,
            };
            let result = ep.cni_result.clone().unwrap_or_default();
            return cni::check(
                &self.host.ns,
                &Conflist::from_json(config)?,
                &attachment,
                &result,
            );
        }
        let nl = Netns::open(&sandbox.path)?.route_handle()?;
        links::require(&nl, &ep.ifname).await.map(|_| ())
    }

    fn endpoint(&self, sandbox: &Sandbox, net: &Network) -> Result<Endpoint> {
        self.store()
            .endpoints_of(&sandbox.id)?
            .into_iter()
            .find(|e| e.network_id == net.id)
            .ok_or_else(|| Error::NotConnected {
                sandbox: sandbox.id.clone(),
                network: net.name.clone(),
            })
    }

    async fn make_endpoint(
        &self,
        net: &Network,
        sandbox: &Sandbox,
        ep: &Endpoint,
        first: bool,
    ) -> Result<()> {
        let ns = Netns::open(&sandbox.path)?;
        let nl = ns.route_handle()?;
        let inside = Inside {
            ns: &ns,
            nl: &nl,
            default_route: first,
        };
        drivers::join(&self.host, net, ep, &inside).await?;
        if !ep.ports.is_empty() {
            firewall::apply(&self.host.ns, &firewall::elements("add", &forwards(ep)))?;
        }
        Ok(())
    }

    /// Disconnects a sandbox from a network, live.
    pub async fn disconnect(&self, sandbox_id: &str, network: &str) -> Result<()> {
        let _one = self.changing.lock().await;
        let sandbox = self.sandbox(sandbox_id)?;
        let net = self.network(network)?;
        let ep = self.endpoint(&sandbox, &net)?;
        self.remove_endpoint(&ep, Some(&sandbox)).await?;
        if !ep.ports.is_empty() {
            self.sync_ports()?;
        }
        self.sync_dns()?;
        self.hand_over_default_route(&sandbox).await
    }

    /// When the endpoint that carried the sandbox's default route has gone, the next one
    /// with a way out takes it over, as in Docker.
    async fn hand_over_default_route(&self, sandbox: &Sandbox) -> Result<()> {
        let nl = Netns::open(&sandbox.path)?.route_handle()?;
        if !links::default_gateways(&nl).await?.is_empty() {
            return Ok(());
        }
        // Listed first: the store's lock must not be held across the loop.
        let remaining = self.store().endpoints_of(&sandbox.id)?;
        for ep in remaining {
            let net = self.network(&ep.network_id)?;
            if net.internal || ep.gateways.is_empty() || matches!(net.driver, Driver::Cni { .. }) {
                continue;
            }
            let link = links::require(&nl, &ep.ifname).await?;
            for gw in &ep.gateways {
                links::add_default_route(&nl, *gw, link.index).await?;
            }
            break;
        }
        Ok(())
    }

    /// Kernel objects first, then the record (and with it the address and ports).
    async fn remove_endpoint(&self, ep: &Endpoint, sandbox: Option<&Sandbox>) -> Result<()> {
        let net = self.store().network(&ep.network_id)?;
        if let Some(Driver::Cni { config, .. }) = net.as_ref().map(|n| &n.driver) {
            // Without its namespace (after a crash) DEL still frees the address and rules.
            let netns = sandbox.map(|s| &s.path).filter(|p| netns::is_pinned(p));
            let attachment = Attachment {
                container_id: &ep.sandbox_id,
                netns: netns.map(PathBuf::as_path),
                ifname: &ep.ifname,
                ports: &ep.ports,
            };
            let conf = Conflist::from_json(config)?;
            cni::del(&self.host.ns, &conf, &attachment, ep.cni_result.as_ref())?;
            return self.store().delete_endpoint(&ep.id);
        }
        let ns = sandbox
            .filter(|s| netns::is_pinned(&s.path))
            .map(|s| Netns::open(&s.path))
            .transpose()?;
        let nl = ns.as_ref().map(|n| n.route_handle()).transpose()?;
        let inside = ns.as_ref().zip(nl.as_ref()).map(|(ns, nl)| Inside {
            ns,
            nl,
            default_route: false,
        });
        drivers::leave(&self.host, ep, inside.as_ref()).await?;
        self.store().delete_endpoint(&ep.id)
    }

    /// Chooses the endpoint's name, addresses, MAC and host ports.
    fn plan_endpoint(
        &self,
        net: &Network,
        sandbox: &Sandbox,
        existing: &[Endpoint],
        spec: &EndpointSpec,
    ) -> Result<Endpoint> {
        let id = random_id()?;
        let taken = self.store().addresses_on(&net.id)?;
        let mut addresses = Vec::new();
        for s in &net.subnets {
            let mut pool = Pool::new(s.subnet, s.range, Some(s.gateway))?;
            for a in &taken {
                if s.subnet.contains(a) {
                    pool.allocate_static(*a)?;
                }
            }
            let ip = match spec.addresses.iter().find(|a| s.subnet.contains(*a)) {
                Some(ip) => {
                    pool.allocate_static(*ip)?;
                    *ip
                }
                None => pool.allocate()?,
            };
            addresses.push(
                IpNet::new(ip, s.subnet.prefix_len()).map_err(|e| Error::Invalid(e.to_string()))?,
            );
        }
        if let Some(stray) = spec
            .addresses
            .iter()
            .find(|a| !net.subnets.iter().any(|s| s.subnet.contains(*a)))
        {
            return Err(Error::Invalid(format!(
                "address {stray} is not in any subnet of network {}: choose one inside it",
                net.name
            )));
        }
        let mac = match &spec.mac {
            Some(m) => links::format_mac(links::parse_mac(m)?),
            None => links::format_mac(links::mac_for(addresses[0].addr())),
        };
        let ports = self.plan_ports(net, &spec.ports)?;
        Ok(Endpoint {
            ifname: next_ifname(existing),
            host_ifname: matches!(net.driver, Driver::Bridge(_))
                .then(|| drivers::host_veth_name(&id)),
            gateways: drivers::gateways_for(net, &addresses),
            network_id: net.id.clone(),
            sandbox_id: sandbox.id.clone(),
            names: spec.names.clone(),
            id,
            addresses,
            mac,
            ports,
            cni_result: None,
        })
    }

    /// Fills in host addresses and free host ports, and refuses ports already taken by
    /// another container or by a process on the host.
    fn plan_ports(&self, net: &Network, wanted: &[PortMapping]) -> Result<Vec<PortMapping>> {
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

    /// Rebuilds berth's whole nftables table from the store, in one transaction.
    fn sync_firewall(&self) -> Result<()> {
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
        firewall::apply(&self.host.ns, &firewall::ruleset(&bridges, &all))
    }

    /// Serves names on every user-defined bridge network, from the store's endpoints.
    fn sync_dns(&self) -> Result<()> {
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

    /// After ports went away: the table is rebuilt so that no stale element can survive.
    fn sync_ports(&self) -> Result<()> {
        self.sync_firewall()
    }

    /// Settles the kernel and the store after a crash: records whose kernel objects are gone
    /// are dropped (releasing their addresses and ports), networks get their bridges back,
    /// links and namespaces berth made but no longer records are deleted, and the firewall
    /// is rebuilt from the records.
    pub async fn reconcile(&self) -> Result<()> {
        let _one = self.changing.lock().await;
        let sandboxes = self.store().sandboxes()?;
        let mut live = HashSet::new();
        for s in sandboxes {
            if netns::is_pinned(&s.path) {
                live.insert(s.id.clone());
            } else {
                let endpoints = self.store().endpoints_of(&s.id)?;
                for ep in endpoints {
                    self.remove_endpoint(&ep, None).await?;
                }
                netns::remove_pinned(&s.path)?;
                self.store().delete_sandbox(&s.id)?;
            }
        }
        let mut owned = HashSet::new();
        let networks = self.store().networks()?;
        for net in networks {
            drivers::create(&self.host, &net).await?;
            owned.insert(drivers::network_alias(&net.id));
        }
        let endpoints = self.store().all_endpoints()?;
        for ep in endpoints {
            let net = self.network(&ep.network_id)?;
            if drivers::rejoin(&self.host, &net, &ep).await? {
                owned.insert(drivers::endpoint_alias(&ep.id));
            } else {
                self.store().delete_endpoint(&ep.id)?;
            }
        }
        for link in links::all(&self.host.nl).await? {
            if let Some(alias) = &link.alias {
                if alias.starts_with(links::ALIAS_PREFIX) && !owned.contains(alias) {
                    links::delete(&self.host.nl, link.index).await?;
                }
            }
        }
        self.unpin_strays(&live)?;
        self.sync_dns()?;
        self.sync_firewall()
    }

    fn unpin_strays(&self, live: &HashSet<String>) -> Result<()> {
        let entries = std::fs::read_dir(&self.netns_dir)
            .map_err(|e| Error::io(format!("list {}", self.netns_dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                netns::remove_pinned(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Removes every network, sandbox and the firewall table (`berth system reset`).
    pub async fn reset(&self) -> Result<()> {
        let sandboxes = self.store().sandboxes()?;
        for s in sandboxes {
            self.remove_sandbox(&s.id).await?;
        }
        let networks = self.store().networks()?;
        for n in networks {
            self.remove_network(&n.id).await?;
        }
        firewall::apply(&self.host.ns, &firewall::ruleset(&[], &[]))
    }
}

/// Docker resolves names on user-defined bridges only; the default bridge has no names.
fn serves_names(net: &Network) -> bool {
    matches!(&net.driver, Driver::Bridge(b) if !b.default)
}

fn clashes(p: &PortMapping, in_use: &[(Proto, Option<IpAddr>, u16)]) -> bool {
    in_use.iter().any(|(proto, ip, port)| {
        *proto == p.proto
            && *port == p.host_port
            && (ip.is_none() || p.host_ip.is_none() || *ip == p.host_ip)
    })
}

/// The DNAT entries for an endpoint's published ports, one per address family that fits.
fn forwards(ep: &Endpoint) -> Vec<Forward> {
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

/// The lowest ethN not used in the sandbox yet.
fn next_ifname(existing: &[Endpoint]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !existing.iter().any(|e| &e.ifname == n))
        .unwrap_or_else(|| "eth0".into())
}

/// 64 hex digits from the kernel's random source, as Docker's ids.
pub fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read /dev/urandom".into(), e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
