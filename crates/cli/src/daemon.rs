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
    /// Also serve the API on tcp://ADDR:PORT (needs --tlscacert, --tlscert and --tlskey;
    /// `-H` stays the client's flag naming the daemon to talk to)
    #[arg(long, value_name = "tcp://ADDR:PORT")]
    pub tcp: Option<String>,
    /// Verify clients' certificates (always on: berth serves TCP only to verified clients)
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA that signs the clients' certificates
    #[arg(long, value_name = "PEM")]
    pub tlscacert: Option<PathBuf>,
    /// The daemon's TLS certificate
    #[arg(long, value_name = "PEM")]
    pub tlscert: Option<PathBuf>,
    /// The daemon's TLS key
    #[arg(long, value_name = "PEM")]
    pub tlskey: Option<PathBuf>,
    /// An OCI runtime containers may run with (`run --runtime NAME`), besides the built-in
    /// berth and runc (repeatable)
    #[arg(long, value_name = "NAME=PATH")]
    pub add_runtime: Vec<String>,
    /// The runtime of containers created without --runtime [default: berth]
    #[arg(long, value_name = "NAME")]
    pub default_runtime: Option<String>,
}

/// The runtimes part of the API's options: added runtimes by name, and the default.
#[derive(Debug, Default, PartialEq)]
pub struct Runtimes {
    pub added: Vec<(String, berth_api::RuntimeCommand)>,
    pub default: Option<String>,
}

/// `--add-runtime` and `--default-runtime` as the API's options take them (the engine checks
/// them against each other and the runtimes it finds by itself).
pub fn runtime_options(a: &DaemonArgs) -> Result<Runtimes> {
    let added = a
        .add_runtime
        .iter()
        .map(|flag| berth_api::parse_add_runtime(flag))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Runtimes {
        added,
        default: a.default_runtime.clone(),
    })
}

/// `--tcp tcp://…` with its TLS files, or none of them.
fn tcp_options(a: &DaemonArgs) -> Result<Option<berth_api::TcpOptions>> {
    let Some(host) = &a.tcp else {
        if a.tlscacert.is_some() || a.tlscert.is_some() || a.tlskey.is_some() {
            return Err(anyhow!(
                "--tlscacert, --tlscert and --tlskey go with --tcp tcp://ADDR:PORT"
            ));
        }
        return Ok(None);
    };
    let addr = host
        .strip_prefix("tcp://")
        .unwrap_or(host)
        .parse()
        .map_err(|_| {
            anyhow!("invalid --tcp {host:?}: give tcp://ADDR:PORT, as tcp://127.0.0.1:2376")
        })?;
    let (Some(ca), Some(cert), Some(key)) = (&a.tlscacert, &a.tlscert, &a.tlskey) else {
        return Err(anyhow!(
            "--tcp {host} needs --tlscacert, --tlscert and --tlskey: berth serves the API over TCP only to clients with a certificate"
        ));
    };
    Ok(Some(berth_api::TcpOptions {
        addr,
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    }))
}

/// Runs the daemon until it is stopped (SIGTERM or SIGINT); containers keep running.
pub fn run(args: DaemonArgs) -> Result<()> {
    let filter = if args.debug { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let tcp = tcp_options(&args)?;
    let runtimes = runtime_options(&args)?;
    let shim = match args.shim {
        Some(s) => s,
        None => beside_me("berth-shim")?,
    };
    let options = berth_api::Options {
        root: args.root,
        run_root: args.run_root,
        socket: args.socket,
        shim,
        tcp,
        runtimes: runtimes.added,
        default_runtime: runtimes.default,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        daemon: DaemonArgs,
    }

    fn runtimes_of(args: &[&str]) -> Result<Runtimes> {
        let flags = Flags::try_parse_from(std::iter::once("daemon").chain(args.iter().copied()))?;
        runtime_options(&flags.daemon)
    }

    #[test]
    fn runtime_flags_map_to_the_api_options() {
        let Runtimes { added, default } = runtimes_of(&[
            "--add-runtime",
            "runc=/usr/sbin/runc",
            "--add-runtime",
            "other=/opt/bin/runc",
            "--default-runtime",
            "other",
        ])
        .unwrap();
        let names: Vec<(&str, &std::path::Path)> = added
            .iter()
            .map(|(n, c)| (n.as_str(), c.path.as_path()))
            .collect();
        assert_eq!(
            names,
            [
                ("runc", std::path::Path::new("/usr/sbin/runc")),
                ("other", std::path::Path::new("/opt/bin/runc"))
            ]
        );
        assert_eq!(default.as_deref(), Some("other"));
        assert_eq!(runtimes_of(&[]).unwrap(), Runtimes::default());
        let e = runtimes_of(&["--add-runtime", "runc"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("give NAME=PATH"), "{e}");
    }
}
