//! `berth daemon`: the daemon's flags and the call that runs it.
//!
//! The daemon lives in berth-api (lead). It is not on this branch, so this module only
//! defines the flags; wiring it is one call, in `run` below:
//! `berth_api::serve(berth_api::Options { root, run_root, socket, debug })`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Where berth keeps its state (images, containers, volumes)
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Where berth keeps its runtime state
    #[arg(long, default_value = "/run/berth")]
    pub run_root: PathBuf,
    /// The unix socket the Docker Engine API is served on
    #[arg(long, default_value = "/run/berth/berth.sock")]
    pub socket: PathBuf,
    /// Log debug messages
    #[arg(long)]
    pub debug: bool,
}

/// Runs the daemon until it is stopped.
pub async fn run(args: DaemonArgs) -> Result<()> {
    let DaemonArgs {
        root,
        run_root,
        socket,
        debug,
    } = args;
    let _ = (root, run_root, socket, debug);
    bail!("berth was built without the daemon: build berth with the berth-api crate to run `berth daemon`")
}
