//! The daemon's sockets and router: unix sockets (mode 0660, the configured group when it
//! exists) and TLS-only TCP,
//! Docker's `/vX.Y` prefixes stripped before routing, and a clean stop on SIGTERM or SIGINT
//! that leaves every container running (their shims hold them).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::Request;
use axum::http::Uri;
use axum::Router;
use berth_engine::Engine;
use tokio::net::{UnixListener, UnixStream};
use tower::ServiceExt;

/// A daemon's configuration and what it runs containers with.
pub struct Options {
    /// The configuration, merged from flags and file and checked (berth-config).
    pub loaded: berth_config::Loaded,
    /// The settings given as flags: a reload merges them with the file again.
    pub flags: berth_config::Flags,
    /// Whether the configuration file must exist (it was named with --config-file).
    pub required: bool,
    /// The shim program started for each container.
    pub shim: PathBuf,
    /// The daemon's logger, whose level a reload changes.
    pub logging: crate::logging::Logging,
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The configuration in effect (a reload replaces it).
    pub config: Arc<RwLock<berth_config::Loaded>>,
}

impl AppState {
    /// The configuration in effect now.
    pub fn config(&self) -> berth_config::Loaded {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Opens the engine, watches the containers it finds running, and serves the API on every
/// configured host until SIGTERM or SIGINT; SIGHUP reloads the configuration file.
pub async fn serve(options: Options) -> Result<(), String> {
    let loaded = &options.loaded;
    note_accepted(&loaded.config);
    let settings = crate::settings::engine_settings(loaded, &options.shim)?;
    let pidfile = PidFile::write(&loaded.config.pidfile_path())?;
    let engine = Arc::new(Engine::open(settings).await.map_err(|e| e.to_string())?);
    berth_engine::monitor::watch_running(&engine)
        .await
        .map_err(|e| e.to_string())?;
    berth_build::remove_leftovers(&engine)
        .await
        .map_err(|e| e.to_string())?;
    let state = AppState {
        engine,
        config: Arc::new(RwLock::new(options.loaded.clone())),
    };
    let app: App = router(state.clone()).map_request(strip_version as fn(Request) -> Request);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut served = Vec::new();
    for host in &options.loaded.checked.hosts {
        served.push(listen(host, &options.loaded.config, app.clone(), stopped.clone()).await?);
    }
    tokio::spawn(crate::reload::on_sighup(
        state.clone(),
        options.flags.clone(),
        options.required,
        options.logging.clone(),
    ));
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop.send(true);
    });
    let mut result = Ok(());
    for (task, socket) in served {
        let outcome = task.await.map_err(|e| e.to_string()).and_then(|r| r);
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        result = result.and(outcome);
    }
    state.engine.network().settle().await;
    drop(pidfile);
    result
}

/// One served host: the task serving it, and the unix socket to remove when it stops.
type Served = (tokio::task::JoinHandle<Result<(), String>>, Option<PathBuf>);

/// The router behind the version-stripping layer.
type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// Binds `host` and serves the API on it until `stopped`.
async fn listen(
    host: &berth_config::Host,
    config: &berth_config::DaemonConfig,
    app: App,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Served, String> {
    match host {
        berth_config::Host::Unix(path) => {
            let listener = bind(path, &config.group).await?;
            tracing::info!("berth daemon listening on {}", path.display());
            let service =
                axum::ServiceExt::<Request>::into_make_service_with_connect_info::<Connection>(app);
            let shown = path.display().to_string();
            let task = tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(until(stopped))
                    .await
                    .map_err(|e| format!("serving {shown}: {e}"))
            });
            Ok((task, Some(path.clone())))
        }
        &berth_config::Host::Tcp(addr) => {
            let (Some(ca), Some(cert), Some(key)) =
                (&config.tlscacert, &config.tlscert, &config.tlskey)
            else {
                return Err("a tcp:// host needs tlscacert, tlscert and tlskey".into());
            };
            let o = crate::tls::TcpOptions {
                addr,
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            };
            let listener = crate::tls::TlsListener::bind(&o).await?;
            if let Ok(bound) = listener.local_addr_checked() {
                tracing::info!(
                    "berth daemon listening on tcp://{bound} (TLS, client certificates from {})",
                    ca.display()
                );
            }
            let service =
                axum::ServiceExt::<Request>::into_make_service_with_connect_info::<Connection>(app);
            let task = tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(until(stopped))
                    .await
                    .map_err(|e| format!("serving tcp://{addr}: {e}"))
            });
            Ok((task, None))
        }
    }
}

/// Keys dockerd has that mean nothing different here: said once in the log.
fn note_accepted(c: &berth_config::DaemonConfig) {
    if c.userland_proxy {
        tracing::info!(
            "userland-proxy: berth has no userland proxy; published ports are NAT rules only"
        );
    }
    if c.ip6tables {
        tracing::info!("ip6tables: berth's one nftables table (family inet) holds IPv4 and IPv6 rules; iptables decides both");
    }
    if !c.live_restore {
        tracing::info!(
            "live-restore: berth always keeps containers running while the daemon is down"
        );
    }
}

/// The daemon's pid file: written at start, refused when another live daemon holds it,
/// removed at a clean stop.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> Result<PidFile, String> {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            let me = std::process::id() as i32;
            if pid != me && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
                return Err(format!(
                    "pid file {} names a running process ({pid}): is another daemon running? stop it, or give this one --pidfile",
                    path.display()
                ));
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("write the pid file {}: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Resolves once the daemon is told to stop.
async fn until(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Each request's connection, for hijacked streams that must know when the client has read
/// the 101 answer (see `streams::hijack`): a duplicate of its socket, shared by its requests.
#[derive(Clone)]
pub struct Connection(pub Option<Arc<std::os::fd::OwnedFd>>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, UnixListener>>
    for Connection
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        use std::os::fd::AsFd;
        Connection(stream.io().as_fd().try_clone_to_owned().ok().map(Arc::new))
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Connection
{
    /// TLS connections have no socket to ask about unread bytes (see `streams::hijack`).
    fn connect_info(_: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Connection(None)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::system::routes())
        .merge(crate::containers::routes())
        .merge(crate::commit::routes())
        .merge(crate::archive::routes())
        .merge(crate::images::routes())
        .merge(crate::build::routes())
        .merge(crate::networks::routes())
        .merge(crate::volumes::routes())
        .with_state(state)
}

/// Binds the socket, replacing a stale one but never one a live daemon answers on; it is
/// owned by `group` when that group exists.
async fn bind(socket: &Path, group: &str) -> Result<UnixListener, String> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    if socket.exists() {
        if UnixStream::connect(socket).await.is_ok() {
            return Err(format!(
                "another daemon is listening on {}: stop it, or give this one --socket",
                socket.display()
            ));
        }
        std::fs::remove_file(socket).map_err(|e| format!("remove {}: {e}", socket.display()))?;
    }
    let listener =
        UnixListener::bind(socket).map_err(|e| format!("listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", socket.display()))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name(group) {
        nix::unistd::chown(socket, None, Some(group.gid))
            .map_err(|e| format!("chown {}: {e}", socket.display()))?;
    }
    Ok(listener)
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping the daemon; containers keep running");
}

/// `/v1.41/containers/json` → `/containers/json`: every API version is served by the same
/// routes (the shapes are a superset).
fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return req;
    };
    let Some(slash) = rest.find('/') else {
        return req;
    };
    let version = &rest[..slash];
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return req;
    }
    let mut new = rest[slash..].to_string();
    if let Some(q) = req.uri().query() {
        new.push('?');
        new.push_str(q);
    }
    if let Ok(uri) = new.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(uri: &str) -> String {
        let req = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        strip_version(req).uri().to_string()
    }

    #[test]
    fn version_prefixes_are_stripped_and_other_paths_kept() {
        assert_eq!(
            stripped("/v1.41/containers/json?all=1"),
            "/containers/json?all=1"
        );
        assert_eq!(stripped("/v1.24/_ping"), "/_ping");
        assert_eq!(stripped("/_ping"), "/_ping");
        assert_eq!(stripped("/volumes/v1.2"), "/volumes/v1.2");
        assert_eq!(stripped("/vx/containers"), "/vx/containers");
    }
}
