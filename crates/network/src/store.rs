//! Persistence: networks, sandboxes, endpoints, their addresses and published ports in SQLite
//! (WAL). An address or a host port belongs to an endpoint row, inserted in the same
//! transaction, so none can be allocated to nobody; the primary keys make the database itself
//! refuse to hand one out twice.

use std::net::IpAddr;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::model::{Endpoint, Network, Sandbox};
use crate::ports::Proto;

pub struct Store {
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    body TEXT NOT NULL,
    UNIQUE (network_id, sandbox_id)
);
CREATE TABLE IF NOT EXISTS addresses (
    network_id TEXT NOT NULL REFERENCES networks(id),
    address TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    PRIMARY KEY (network_id, address)
);
CREATE TABLE IF NOT EXISTS ports (
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    PRIMARY KEY (proto, host_ip, host_port)
);
";

/// An endpoint's addresses, each taken at most once per network (the primary key says so).
fn insert_addresses(tx: &rusqlite::Transaction, ep: &Endpoint) -> Result<()> {
    for a in &ep.addresses {
        tx.execute(
            "INSERT INTO addresses (network_id, address, endpoint_id) VALUES (?1, ?2, ?3)",
            params![ep.network_id, a.addr().to_string(), ep.id],
        )
        .map_err(|e| taken(e, || crate::ipam::Error::InUse(a.addr()).into()))?;
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Store { db })
    }

    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut q = self.db.prepare("SELECT body FROM networks ORDER BY name")?;
        let rows = q.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json(&b?)).collect()
    }

    /// A network by full id, name, or unique id prefix, as Docker resolves them.
    pub fn network(&self, key: &str) -> Result<Option<Network>> {
        let exact: Option<String> = self
            .db
            .query_row(
                "SELECT body FROM networks WHERE id = ?1 OR name = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(body) = exact {
            return from_json(&body).map(Some);
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut q = self
            .db
            .prepare("SELECT body FROM networks WHERE substr(id, 1, length(?1)) = ?1")?;
        let found: Vec<String> = q
            .query_map([key], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match found.as_slice() {
            [one] => from_json(one).map(Some),
            [] => Ok(None),
            _ => Err(Error::Invalid(format!(
                "network id prefix {key} is ambiguous: give more of it"
            ))),
        }
    }

    pub fn insert_network(&self, n: &Network) -> Result<()> {
        let done = self.db.execute(
            "INSERT INTO networks (id, name, body) VALUES (?1, ?2, ?3)",
            params![n.id, n.name, to_json(n)?],
        );
        match done {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::NameTaken(n.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn update_network(&self, n: &Network) -> Result<()> {
        self.db.execute(
            "UPDATE networks SET body = ?2 WHERE id = ?1",
            params![n.id, to_json(n)?],
        )?;
        Ok(())
    }

    pub fn delete_network(&self, id: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM networks WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn sandboxes(&self) -> Result<Vec<Sandbox>> {
        let mut q = self.db.prepare("SELECT body FROM sandboxes")?;
        let rows = q.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json(&b?)).collect()
    }

    pub fn sandbox(&self, id: &str) -> Result<Option<Sandbox>> {
        let body: Option<String> = self
            .db
            .query_row("SELECT body FROM sandboxes WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        body.map(|b| from_json(&b)).transpose()
    }

    pub fn insert_sandbox(&self, s: &Sandbox) -> Result<()> {
        self.db.execute(
            "INSERT INTO sandboxes (id, body) VALUES (?1, ?2)",
            params![s.id, to_json(s)?],
        )?;
        Ok(())
    }

    pub fn delete_sandbox(&self, id: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM sandboxes WHERE id = ?1", [id])?;
        Ok(())
    }

    fn endpoints_where(&self, clause: &str, key: &str) -> Result<Vec<Endpoint>> {
        let sql = format!("SELECT body FROM endpoints WHERE {clause} ORDER BY rowid");
        let mut q = self.db.prepare(&sql)?;
        let rows = q.query_map([key], |r| r.get::<_, String>(0))?;
        rows.map(|b| from_json(&b?)).collect()
    }

    pub fn endpoints_on(&self, network_id: &str) -> Result<Vec<Endpoint>> {
        self.endpoints_where("network_id = ?1", network_id)
    }

    pub fn endpoints_of(&self, sandbox_id: &str) -> Result<Vec<Endpoint>> {
        self.endpoints_where("sandbox_id = ?1", sandbox_id)
    }

    pub fn all_endpoints(&self) -> Result<Vec<Endpoint>> {
        self.endpoints_where("?1 = ?1", "")
    }

    /// The addresses taken on a network (the gateway is not among them).
    pub fn addresses_on(&self, network_id: &str) -> Result<Vec<IpAddr>> {
        let mut q = self
            .db
            .prepare("SELECT address FROM addresses WHERE network_id = ?1")?;
        let rows = q.query_map([network_id], |r| r.get::<_, String>(0))?;
        rows.map(|a| {
            a?.parse()
                .map_err(|_| Error::Corrupt("an address that does not parse".into()))
        })
        .collect()
    }

    /// Host ports in use: (protocol, host address or None for all, port).
    pub fn ports_in_use(&self) -> Result<Vec<(Proto, Option<IpAddr>, u16)>> {
        let mut q = self
            .db
            .prepare("SELECT proto, host_ip, host_port FROM ports")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u16>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (proto, ip, port) = row?;
            let proto = if proto == "udp" {
                Proto::Udp
            } else {
                Proto::Tcp
            };
            let ip = if ip.is_empty() {
                None
            } else {
                Some(ip.parse().map_err(|_| Error::Corrupt("a host ip".into()))?)
            };
            Ok((proto, ip, port))
        })
        .collect()
    }

    /// Records an endpoint with its addresses and ports in one transaction; a taken address
    /// or port fails the whole insert.
    pub fn insert_endpoint(&mut self, ep: &Endpoint) -> Result<()> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO endpoints (id, network_id, sandbox_id, body) VALUES (?1, ?2, ?3, ?4)",
            params![ep.id, ep.network_id, ep.sandbox_id, to_json(ep)?],
        )?;
        insert_addresses(&tx, ep)?;
        for p in &ep.ports {
            let ip = p.host_ip.map(|i| i.to_string()).unwrap_or_default();
            tx.execute(
                "INSERT INTO ports (proto, host_ip, host_port, endpoint_id) VALUES (?1, ?2, ?3, ?4)",
                params![p.proto.to_string(), ip, p.host_port, ep.id],
            )
            .map_err(|e| {
                taken(e, || Error::PortTaken {
                    ip: p.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    port: p.host_port,
                    proto: p.proto.to_string(),
                })
            })?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets an endpoint; its addresses and ports go with it (ON DELETE CASCADE).
    /// Rewrites an endpoint whose addresses became known after it was recorded (a CNI
    /// plugin's IPAM chose them).
    pub fn update_endpoint(&mut self, ep: &Endpoint) -> Result<()> {
        let tx = self.db.transaction()?;
        tx.execute(
            "UPDATE endpoints SET body = ?2 WHERE id = ?1",
            params![ep.id, to_json(ep)?],
        )?;
        tx.execute(
            "DELETE FROM addresses WHERE endpoint_id = ?1",
            params![ep.id],
        )?;
        insert_addresses(&tx, ep)?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_endpoint(&self, id: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM endpoints WHERE id = ?1", [id])?;
        Ok(())
    }
}

fn taken(e: rusqlite::Error, what: impl FnOnce() -> Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            what()
        }
        other => other.into(),
    }
}
