//! `volume create/ls/inspect/rm/prune`.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::network::pairs;
use super::{confirm, each, filters_json, prune};
use crate::client::{query, Body, Client};
use crate::format::{print_rows, Format};

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create {
        /// Specify volume driver name
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options
        #[arg(short, long)]
        opt: Vec<String>,
        /// The volume's name (random when not given)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. "dangling=true")
        #[arg(short, long)]
        filter: Vec<String>,
        /// Format output: table, json, or a template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output using a template
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused local volumes
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "label=<label>")
        #[arg(long)]
        filter: Vec<String>,
    },
}

pub async fn run(client: &Client, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create {
            driver,
            label,
            opt,
            name,
        } => {
            let body = json!({"Name": name.unwrap_or_default(), "Driver": driver,
                              "Labels": pairs(&label), "DriverOpts": pairs(&opt)});
            let v: Value = client
                .json(Method::POST, "/volumes/create", Body::Json(body))
                .await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(())
        }
        VolumeCmd::Ls {
            quiet,
            filter,
            format,
        } => ls(client, quiet, &filter, format.as_deref()).await,
        VolumeCmd::Inspect { format, volumes } => {
            super::system::inspect_kind(client, "volume", &volumes, format.as_deref()).await
        }
        VolumeCmd::Rm { force, volumes } => {
            each(&volumes, true, |v| async move {
                client.delete(&format!("/volumes/{v}?force={force}")).await
            })
            .await
        }
        VolumeCmd::Prune {
            all,
            force,
            mut filter,
        } => {
            if !confirm(
                force,
                "This will remove anonymous local volumes not used by at least one container.",
            ) {
                return Ok(());
            }
            if all {
                filter.push("all=true".into());
            }
            prune(client, "volumes", &filter, "VolumesDeleted").await
        }
    }
}

async fn ls(client: &Client, quiet: bool, filter: &[String], format: Option<&str>) -> Result<()> {
    let q = query(&[("filters", filters_json(filter)?)]);
    let v: Value = client.get(&format!("/volumes{q}")).await?;
    let rows: Vec<Value> = v["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            json!({"Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
                        "Mountpoint": v["Mountpoint"], "Labels": v["Labels"]})
        })
        .collect();
    if quiet {
        rows.iter()
            .for_each(|r| println!("{}", crate::format::text(&r["Name"])));
        return Ok(());
    }
    let columns = [("DRIVER", "Driver"), ("VOLUME NAME", "Name")];
    print_rows(&Format::parse(format), &columns, &rows)
}
