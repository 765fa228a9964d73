//! The daemon's socket and router: a unix socket (mode 0660, group `berth` when it exists),
//! Docker's `/vX.Y` prefixes stripped before routing, and a clean stop on SIGTERM or SIGINT
//! that leaves every container running (their shims hold them).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;
use axum::Router;
use berth_engine::{Engine, Settings};
use tokio::net::{UnixListener, UnixStream};
use tower::ServiceExt;

/// Where one daemon keeps everything, so that several run side by side.
#[derive(Debug, Clone)]
pub struct Options {
    /// State: the database, images, containers' directories (`--root`).
    pub root: PathBuf,
    /// Runtime files: bundles, mounts, the runtime's state (`--run-root`).
    pub run_root: PathBuf,
    /// The API's unix socket (`--socket`).
    pub socket: PathBuf,
    /// The shim program started for each container.
    pub shim: PathBuf,
    /// The API over TCP as well, with TLS and client certificates (`--tcp tcp://…`).
    pub tcp: Option<crate::tls::TcpOptions>,
    /// The log driver and options of containers created without a driver (`--log-driver`,
    /// `--log-opt`), checked before it gets here.
    pub log: berth_engine::LogConfig,
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
}

/// Opens the engine, watches the containers it finds running, and serves the API until
/// SIGTERM or SIGINT.
pub async fn serve(options: Options) -> Result<(), String> {
    let mut settings = Settings::new(&options.root, &options.run_root, &options.shim);
    settings.log = options.log.clone();
    let engine = Arc::new(Engine::open(settings).await.map_err(|e| e.to_string())?);
    berth_engine::monitor::watch_running(&engine)
        .await
        .map_err(|e| e.to_string())?;
    berth_build::remove_leftovers(&engine)
        .await
        .map_err(|e| e.to_string())?;
    let tls = match &options.tcp {
        Some(o) => Some(crate::tls::TlsListener::bind(o).await?),
        None => None,
    };
    let listener = bind(&options.socket).await?;
    tracing::info!("berth daemon listening on {}", options.socket.display());
    let app = router(AppState { engine });
    let app = app.map_request(strip_version);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop.send(true);
    });
    let over_tcp =
        tls.map(|listener| {
            if let (Ok(addr), Some(o)) = (listener.local_addr_checked(), &options.tcp) {
                tracing::info!(
                    "berth daemon listening on tcp://{addr} (TLS, client certificates from {})",
                    o.ca.display()
                );
            }
            let service = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<
                Connection,
            >(app.clone());
            let served =
                axum::serve(listener, service).with_graceful_shutdown(until(stopped.clone()));
            tokio::spawn(std::future::IntoFuture::into_future(served))
        });
    let served = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<Connection>(app),
    )
    .with_graceful_shutdown(until(stopped))
    .await;
    if let Some(task) = over_tcp {
        let _ = task.await;
    }
    let _ = std::fs::remove_file(&options.socket);
    served.map_err(|e| format!("serving {}: {e}", options.socket.display()))
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
        .merge(crate::images::routes())
        .merge(crate::build::routes())
        .merge(crate::networks::routes())
        .merge(crate::volumes::routes())
        .with_state(state)
}

/// Binds the socket, replacing a stale one but never one a live daemon answers on.
async fn bind(socket: &Path) -> Result<UnixListener, String> {
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
    if let Ok(Some(group)) = nix::unistd::Group::from_name("berth") {
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
