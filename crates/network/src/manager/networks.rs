//! Networks: planned (subnets, bridge names), recorded, made, and removed.

use super::*;

impl Manager {
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
        if serves_names(&net) {
            self.sync_dns()?;
        }
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
                ipam::pick_subnet(&self.pools, &in_use)?
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
        // Its last containers' veths go first: the bridge is deleted only once they are.
        self.settle().await;
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
        if serves_names(&net) {
            self.sync_dns()?;
        }
        self.sync_firewall()
    }
}
