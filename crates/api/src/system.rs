//! System routes: `_ping`, `version`, `info`, `events`.

use axum::extract::{Query, State};
use axum::http::header::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;

use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageTypeEnum, Runtime, SystemInfo, SystemVersion,
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
        .route("/system/df", get(disk_usage))
        .route("/auth", axum::routing::post(auth))
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
    let loaded = state.config();
    let config = &loaded.config;
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
        debug: Some(config.debug),
        labels: Some(config.labels.clone()),
        experimental_build: Some(config.experimental),
        cgroup_version: Some(bollard_stubs::models::SystemInfoCgroupVersionEnum::_1),
        registry_config: Some(registry_config(&loaded)),
        security_options: Some(security_options(config)),
        default_address_pools: Some(
            config
                .default_address_pools
                .iter()
                .map(|p| bollard_stubs::models::SystemInfoDefaultAddressPools {
                    base: Some(p.base.clone()),
                    size: Some(p.size as i64),
                })
                .collect(),
        ),
        logging_driver: Some(state.engine.default_log().driver.clone()),
        plugins: Some(bollard_stubs::models::PluginsInfo {
            log: Some(berth_engine::logdriver::DRIVERS.map(String::from).to_vec()),
            ..Default::default()
        }),
        cgroup_driver: Some(bollard_stubs::models::SystemInfoCgroupDriverEnum::CGROUPFS),
        kernel_version: Some(kernel_version()),
        operating_system: Some("linux".into()),
        os_type: Some("linux".into()),
        architecture: Some(berth_image::manifest::Platform::default().architecture),
        ncpu: Some(std::thread::available_parallelism().map_or(1, |n| n.get()) as i64),
        server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        runtimes: Some(runtimes(&state.engine)),
        default_runtime: Some(state.engine.default_runtime().to_string()),
        live_restore_enabled: Some(true),
        ..Default::default()
    }))
}

/// Where images come from: the mirrors and the registries reached over plain HTTP.
fn registry_config(loaded: &berth_config::Loaded) -> bollard_stubs::models::RegistryServiceConfig {
    let (cidrs, hosts): (Vec<String>, Vec<String>) = loaded
        .checked
        .insecure
        .iter()
        .cloned()
        .partition(|entry| entry.contains('/'));
    let mut index_configs: std::collections::HashMap<String, bollard_stubs::models::IndexInfo> =
        hosts
            .into_iter()
            .map(|h| {
                let info = bollard_stubs::models::IndexInfo {
                    name: Some(h.clone()),
                    secure: Some(false),
                    official: Some(false),
                    mirrors: Some(Vec::new()),
                };
                (h, info)
            })
            .collect();
    index_configs.insert(
        "docker.io".into(),
        bollard_stubs::models::IndexInfo {
            name: Some("docker.io".into()),
            secure: Some(true),
            official: Some(true),
            mirrors: Some(loaded.checked.mirrors.clone()),
        },
    );
    let mut loopback = vec!["127.0.0.0/8".to_string()];
    loopback.extend(cidrs);
    bollard_stubs::models::RegistryServiceConfig {
        insecure_registry_cidrs: Some(loopback),
        index_configs: Some(index_configs),
        mirrors: Some(loaded.checked.mirrors.clone()),
    }
}

/// Docker's `name=…` security options, for containers that do not choose.
fn security_options(c: &berth_config::DaemonConfig) -> Vec<String> {
    let profile = match c.seccomp_profile.as_deref() {
        None | Some("" | "builtin" | "default") => "builtin",
        Some("unconfined") => "unconfined",
        Some(_) => "custom",
    };
    let mut out = vec![format!("name=seccomp,profile={profile}")];
    if c.no_new_privileges {
        out.push("name=no-new-privileges".into());
    }
    if c.default_cgroupns_mode == "private" {
        out.push("name=cgroupns".into());
    }
    if c.userns_remap.is_some() {
        out.push("name=userns".into());
    }
    out
}

/// Docker's shape: each runtime's path (and its arguments when it has any).
fn runtimes(engine: &berth_engine::Engine) -> HashMap<String, Runtime> {
    let built_in = Runtime {
        path: Some("berth-runtime (built in)".into()),
        ..Default::default()
    };
    let mut out = HashMap::from([(berth_engine::runtimes::BUILT_IN.to_string(), built_in)]);
    for (name, command) in engine.runtimes() {
        let runtime = Runtime {
            path: Some(command.path.display().to_string()),
            runtime_args: (!command.args.is_empty()).then(|| command.args.clone()),
            ..Default::default()
        };
        out.insert(name.clone(), runtime);
    }
    out
}

#[derive(Deserialize, Default)]
struct EventsQuery {
    /// Docker's JSON filters, e.g. `{"type":["container"],"container":["web"]}`.
    filters: Option<String>,
    /// Seconds since the epoch (with a fraction): past events from then on.
    since: Option<String>,
    /// Seconds since the epoch: the stream ends then.
    until: Option<String>,
}

fn epoch(v: Option<&str>) -> ApiResult<Option<time::OffsetDateTime>> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let secs: f64 = v.parse().map_err(|_| {
        crate::error::ApiError::bad_request(format!(
            "invalid time {v:?}: give seconds since the epoch"
        ))
    })?;
    time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
        .map(Some)
        .map_err(|_| crate::error::ApiError::bad_request(format!("time {v:?} is out of range")))
}

/// The event stream: one JSON object per line, as events happen.
async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let filters = streams::Filters::parse(q.filters.as_deref())?;
    let since = epoch(q.since.as_deref())?;
    let until = epoch(q.until.as_deref())?;
    let (past, mut rx) = state.engine.events().subscribe_since(
        since.unwrap_or(time::OffsetDateTime::now_utc() + time::Duration::days(1)),
    );
    let (tx, body) = streams::json_lines();
    // The stream ends at `until`: a deadline, as the client asked, not a synchronisation.
    let end = until.map(|u| {
        let left = (u - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        tokio::time::Instant::now() + left.unsigned_abs()
    });
    tokio::spawn(async move {
        let mut past = past.into_iter();
        loop {
            let next = match past.next() {
                Some(e) => Ok(e),
                None => match end {
                    Some(end) => match tokio::time::timeout_at(end, rx.recv()).await {
                        Ok(e) => e,
                        Err(_) => return,
                    },
                    None => rx.recv().await,
                },
            };
            let event = match next {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            if until.is_some_and(|u| event.time > u) {
                return;
            }
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

/// `system df`: images, containers and volumes with their sizes.
async fn disk_usage(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let engine = &state.engine;
    let containers = engine.list().await?;
    let images: Vec<_> = engine
        .images()
        .list()?
        .iter()
        .map(|i| {
            let used = containers
                .iter()
                .filter(|c| c.config.image_id == i.id.to_string())
                .count();
            serde_json::json!({
                "Id": i.id.to_string(),
                "ParentId": "",
                "RepoTags": i.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
                "RepoDigests": i.repo_digests.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
                "Created": 0,
                "Size": i.size,
                "SharedSize": 0,
                "Containers": used,
            })
        })
        .collect();
    let rows: Vec<_> = containers
        .iter()
        .map(|c| crate::convert::summary(engine, c))
        .collect();
    let volumes: Vec<_> = engine
        .volumes()?
        .iter()
        .map(|v| {
            let users = engine.volume_users(&v.name).map_or(0, |u| u.len());
            serde_json::json!({
                "Name": v.name,
                "Driver": "local",
                "Mountpoint": engine.volume_dir(&v.name).display().to_string(),
                "Labels": v.labels,
                "Scope": "local",
                "UsageData": {"Size": dir_size(&engine.volume_dir(&v.name)), "RefCount": users},
            })
        })
        .collect();
    let layers: u64 = engine.images().list()?.iter().map(|i| i.size).sum();
    Ok(Json(serde_json::json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": rows,
        "Volumes": volumes,
        "BuildCache": [],
    })))
}

/// Bytes of the regular files under a directory (links not followed).
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Docker's login body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthBody {
    username: String,
    password: String,
    serveraddress: String,
}

/// `login`: checks the credentials against the registry and keeps them for the daemon's
/// pulls and pushes.
async fn auth(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let b: AuthBody = serde_json::from_slice(&body)
        .map_err(|e| crate::error::ApiError::bad_request(format!("invalid login body: {e}")))?;
    let server = b
        .serveraddress
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let server = if server.is_empty() {
        "docker.io".to_string()
    } else {
        server
    };
    let creds = berth_image::registry::Credentials {
        username: b.username,
        password: b.password,
    };
    let engine = state.engine.clone();
    crate::images::on_own_thread(
        move || async move { engine.images().login(&server, &creds).await },
    )
    .await?;
    Ok(Json(
        serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
