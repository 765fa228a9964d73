//! After a crash or on reset: the store and the kernel made to agree again.

use super::*;

impl Manager {
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
        self.host.apply_firewall(&firewall::ruleset(&[], &[]))
    }
}
