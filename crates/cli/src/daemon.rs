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
    /// The log driver of containers created without one: json-file, local or none
    #[arg(long, value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// An option of that log driver (repeatable), as max-size=10m
    #[arg(long, value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
}

/// `--log-driver` and `--log-opt` as the daemon's default log config (json-file, no options,
/// when neither is given), checked by the rules a container's are.
pub fn log_config(driver: Option<&str>, opts: &[String]) -> Result<berth_api::LogConfig> {
    let mut config = berth_api::LogConfig::docker_default();
    if let Some(d) = driver {
        config.driver = d.to_string();
    }
    for opt in opts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --log-opt {opt:?}: give KEY=VALUE, as max-size=10m"))?;
        config.options.insert(k.to_string(), v.to_string());
    }
    config
        .writer()
        .map_err(|e| anyhow!("invalid daemon log config: {e}"))?;
    Ok(config)
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
    let log = log_config(args.log_driver.as_deref(), &args.log_opt)?;
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
        log,
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

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_daemons_log_flags_become_its_default_log_config() {
        let none = log_config(None, &[]).unwrap();
        assert_eq!(none, berth_api::LogConfig::docker_default());
        let local = log_config(Some("local"), &opts(&["max-size=1m", "max-file=2"])).unwrap();
        assert_eq!(local.driver, "local");
        assert_eq!(local.options["max-size"], "1m");
        assert_eq!(local.options["max-file"], "2");
        // Options alone go with json-file, Docker's default driver.
        let json = log_config(None, &opts(&["max-size=10m"])).unwrap();
        assert_eq!(json.driver, "json-file");
        let err = |d: Option<&str>, o: &[&str]| log_config(d, &opts(o)).unwrap_err().to_string();
        assert!(err(None, &["max-size"]).contains("KEY=VALUE"));
        assert!(
            err(Some("local"), &["foo=1"]).contains("unknown log opt 'foo' for log driver local")
        );
        assert!(err(Some("syslog"), &[]).contains("use json-file, local or none"));
    }
}
