//! System routes: `_ping`, `version`, `info`, `events`.

use axum::extract::{Query, State};
use axum::http::header::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageTypeEnum, SystemInfo, SystemVersion,
};
use serde::Deserialize;

use crate::error::ApiResult;
use crate::server::AppState;
use crate::streams;

/// The newest API version whose shapes berth serves, and the oldest it accepts.
pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
}

/// Clients read the version and the builder from these headers to negotiate.
async fn ping() -> Response {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("Api-Version", API_VERSION),
        ("Builder-Version", "1"),
        ("Docker-Experimental", "false"),
        ("OSType", "linux"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    (headers, "OK").into_response()
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn version() -> Json<SystemVersion> {
    Json(SystemVersion {
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        os: Some("linux".into()),
        arch: Some(berth_image::manifest::Platform::default().architecture),
        kernel_version: Some(kernel_version()),
        git_commit: Some(String::new()),
        go_version: Some(String::new()),
        build_time: Some(String::new()),
        ..Default::default()
    })
}

async fn info(State(state): State<AppState>) -> ApiResult<Json<SystemInfo>> {
    let containers = state.engine.list().await?;
    let count =
        |s: berth_engine::Status| containers.iter().filter(|c| c.state.status == s).count() as i64;
    let images = state.engine.images().list()?.len() as i64;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Json(SystemInfo {
        id: Some(host.clone()),
        name: Some(host),
        containers: Some(containers.len() as i64),
        containers_running: Some(count(berth_engine::Status::Running)),
        containers_paused: Some(0),
        containers_stopped: Some(containers.len() as i64 - count(berth_engine::Status::Running)),
        images: Some(images),
        driver: Some("overlay2".into()),
        docker_root_dir: Some(state.engine.root().display().to_string()),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(bollard_stubs::models::SystemInfoCgroupDriverEnum::CGROUPFS),
        kernel_version: Some(kernel_version()),
        operating_system: Some("linux".into()),
        os_type: Some("linux".into()),
        architecture: Some(berth_image::manifest::Platform::default().architecture),
        ncpu: Some(std::thread::available_parallelism().map_or(1, |n| n.get()) as i64),
        server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        default_runtime: Some("berth".into()),
        live_restore_enabled: Some(true),
        ..Default::default()
    }))
}

#[derive(Deserialize, Default)]
struct EventsQuery {
    /// Docker's JSON filters, e.g. `{"type":["container"],"container":["web"]}`.
    filters: Option<String>,
}

/// The event stream: one JSON object per line, as events happen.
async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let filters = streams::Filters::parse(q.filters.as_deref())?;
    let mut rx = state.engine.events().subscribe();
    let (tx, body) = streams::json_lines();
    tokio::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let kind = event.kind.as_str();
            let name = event.attributes.get("name").cloned().unwrap_or_default();
            if !filters.matches("type", &[kind])
                || !filters.matches(kind, &[&event.id, &name])
                || !filters.matches("event", &[&event.action])
            {
                continue;
            }
            if tx.send(message(&event)).await.is_err() {
                return;
            }
        }
    });
    Ok(body)
}

fn message(e: &berth_engine::events::Event) -> serde_json::Value {
    use berth_engine::events::Kind;
    let typ = match e.kind {
        Kind::Container => EventMessageTypeEnum::CONTAINER,
        Kind::Image => EventMessageTypeEnum::IMAGE,
        Kind::Network => EventMessageTypeEnum::NETWORK,
        Kind::Volume => EventMessageTypeEnum::VOLUME,
    };
    let nanos = e.time.unix_timestamp_nanos();
    let msg = EventMessage {
        typ: Some(typ),
        action: Some(e.action.clone()),
        actor: Some(EventActor {
            id: Some(e.id.clone()),
            attributes: Some(e.attributes.clone().into_iter().collect()),
        }),
        scope: Some(bollard_stubs::models::EventMessageScopeEnum::LOCAL),
        time: Some(e.time.unix_timestamp()),
        time_nano: Some(nanos as i64),
    };
    let mut v = serde_json::to_value(msg).unwrap_or_default();
    // Older clients read these top-level fields.
    v["status"] = e.action.clone().into();
    v["id"] = e.id.clone().into();
    v
}
