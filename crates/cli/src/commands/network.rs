//! `network create/ls/inspect/rm/connect/disconnect/prune`.

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Map, Value};

use super::{confirm, each, filters_json, prune};
use crate::client::{Body, Client};
use crate::format::{print_rows, short_id, Format};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect {
        /// Format output using a template
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Do not error if the network does not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "until=<timestamp>")
        #[arg(long)]
        filter: Vec<String>,
    },
}

#[derive(Args, Debug, Default)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable or disable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long)]
    pub opt: Vec<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: table, json, or a template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
}

pub async fn run(client: &Client, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => create(client, a).await,
        NetworkCmd::Ls(a) => ls(client, a).await,
        NetworkCmd::Inspect { format, networks } => {
            super::system::inspect_kind(client, "network", &networks, format.as_deref()).await
        }
        NetworkCmd::Rm { force, networks } => {
            each(&networks, true, |n| async move {
                match client.delete(&format!("/networks/{n}")).await {
                    Err(e) if force && is_not_found(&e) => Ok(()),
                    other => other,
                }
            })
            .await
        }
        NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        } => {
            let mut endpoint = json!({"Aliases": alias});
            if let Some(ip) = ip {
                endpoint["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            let body = json!({"Container": container, "EndpointConfig": endpoint});
            let path = format!("/networks/{network}/connect");
            client
                .send(Method::POST, &path, Body::Json(body))
                .await
                .map(drop)
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            let body = json!({"Container": container, "Force": force});
            let path = format!("/networks/{network}/disconnect");
            client
                .send(Method::POST, &path, Body::Json(body))
                .await
                .map(drop)
        }
        NetworkCmd::Prune { force, filter } => {
            if !confirm(
                force,
                "This will remove all custom networks not used by at least one container.",
            ) {
                return Ok(());
            }
            prune(client, "networks", &filter, "NetworksDeleted").await
        }
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::client::DaemonError>()
        .is_some_and(|d| d.status == 404)
}

/// The create body for `network create`'s flags.
pub fn create_body(a: &CreateArgs) -> Result<Value> {
    if a.gateway.len() > a.subnet.len() || a.ip_range.len() > a.subnet.len() {
        return Err(anyhow!("every --gateway and --ip-range needs a --subnet"));
    }
    let config: Vec<Value> = a
        .subnet
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut c = json!({"Subnet": s});
            if let Some(g) = a.gateway.get(i) {
                c["Gateway"] = json!(g);
            }
            if let Some(r) = a.ip_range.get(i) {
                c["IPRange"] = json!(r);
            }
            c
        })
        .collect();
    Ok(json!({
        "Name": a.name,
        "CheckDuplicate": true,
        "Driver": a.driver,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "EnableIPv6": a.ipv6,
        "IPAM": {"Driver": "default", "Config": config},
        "Labels": pairs(&a.label),
        "Options": pairs(&a.opt),
    }))
}

/// `key=value` flags as a JSON object.
pub fn pairs(flags: &[String]) -> Map<String, Value> {
    flags
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), json!(v))
        })
        .collect()
}

async fn create(client: &Client, a: CreateArgs) -> Result<()> {
    let res: Value = client
        .json(
            Method::POST,
            "/networks/create",
            Body::Json(create_body(&a)?),
        )
        .await?;
    println!("{}", res["Id"].as_str().unwrap_or(""));
    Ok(())
}

async fn ls(client: &Client, a: LsArgs) -> Result<()> {
    let q = crate::client::query(&[("filters", filters_json(&a.filter)?)]);
    let list: Vec<Value> = client.get(&format!("/networks{q}")).await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or("");
            json!({"ID": if a.no_trunc { id.to_owned() } else { short_id(id) },
                   "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                   "Internal": n["Internal"], "IPv6": n["EnableIPv6"], "CreatedAt": n["Created"]})
        })
        .collect();
    if a.quiet {
        rows.iter()
            .for_each(|r| println!("{}", crate::format::text(&r["ID"])));
        return Ok(());
    }
    let columns = [
        ("NETWORK ID", "ID"),
        ("NAME", "Name"),
        ("DRIVER", "Driver"),
        ("SCOPE", "Scope"),
    ];
    print_rows(&Format::parse(a.format.as_deref()), &columns, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_body() {
        let a = CreateArgs {
            driver: "bridge".into(),
            subnet: vec!["10.1.0.0/24".into()],
            gateway: vec!["10.1.0.1".into()],
            internal: true,
            label: vec!["a=b".into()],
            name: "n1".into(),
            ..Default::default()
        };
        let b = create_body(&a).unwrap();
        assert_eq!(
            b["IPAM"]["Config"],
            json!([{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"}])
        );
        assert_eq!(b["Internal"], true);
        assert_eq!(b["Labels"], json!({"a": "b"}));
        let bad = CreateArgs {
            gateway: vec!["10.1.0.1".into()],
            name: "x".into(),
            ..Default::default()
        };
        assert!(create_body(&bad).is_err());
    }
}
