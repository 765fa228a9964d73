//! `berth daemon`: the daemon's flags and the call that runs it (berth-api serves the
//! Docker Engine API over the engine). It runs on a multi-threaded runtime of its own; the
//! shim it starts for each container is the small `berth-shim` program beside this one.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
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
    /// The shim program started for each container [default: berth-shim beside berth]
    #[arg(long)]
    pub shim: Option<PathBuf>,
}

/// Runs the daemon until it is stopped (SIGTERM or SIGINT); containers keep running.
pub fn run(args: DaemonArgs) -> Result<()> {
    let filter = if args.debug { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let shim = match args.shim {
        Some(s) => s,
        None => beside_me("berth-shim")?,
    };
    let options = berth_api::Options {
        root: args.root,
        run_root: args.run_root,
        socket: args.socket,
        shim,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the daemon's runtime")?
        .block_on(berth_api::serve(options))
        .map_err(|e| anyhow!(e))
}

/// A program installed in the same directory as this one.
fn beside_me(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("find the berth program's path")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        return Err(anyhow!(
            "{} is missing: install it beside berth, or give --shim",
            path.display()
        ));
    }
    Ok(path)
}
