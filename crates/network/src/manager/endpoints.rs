//! Endpoints: a sandbox joined to a network, live, through berth's drivers or a CNI chain.

use super::publish::forwards;
use super::*;

impl Manager {
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
                if serves_names(&net) {
                    self.sync_dns()?;
                }
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
            self.host
                .apply_firewall(&firewall::elements("add", &forwards(ep)))?;
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
        if serves_names(&net) {
            self.sync_dns()?;
        }
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

    /// Removes an endpoint of a sandbox whose namespace goes next: the interface inside goes
    /// with the namespace, so only a CNI plugin is asked to undo its work here. Returns the
    /// veth host end that `unlink_later` makes sure of, if the endpoint has one.
    pub(super) async fn drop_endpoint(
        &self,
        ep: &Endpoint,
        net: Option<&Network>,
        sandbox: &Sandbox,
    ) -> Result<Option<String>> {
        if let Some(Driver::Cni { .. }) = net.map(|n| &n.driver) {
            self.remove_endpoint(ep, Some(sandbox)).await?;
            return Ok(None);
        }
        self.store().delete_endpoint(&ep.id)?;
        Ok(ep.host_ifname.clone())
    }

    /// Kernel objects first, then the record (and with it the address and ports).
    pub(super) async fn remove_endpoint(
        &self,
        ep: &Endpoint,
        sandbox: Option<&Sandbox>,
    ) -> Result<()> {
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
}

/// The lowest ethN not used in the sandbox yet.
fn next_ifname(existing: &[Endpoint]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !existing.iter().any(|e| &e.ifname == n))
        .unwrap_or_else(|| "eth0".into())
}
