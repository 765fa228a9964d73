//! Volume routes: create, list, inspect, remove, prune.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::volumes::Volume;
use bollard_stubs::models::VolumeCreateRequest;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::streams::Filters;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn describe(state: &AppState, v: &Volume) -> serde_json::Value {
    serde_json::json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": state.engine.volume_dir(&v.name).display().to_string(),
        "CreatedAt": crate::convert::docker_time(Some(v.created)),
        "Labels": v.labels,
        "Scope": "local",
        "Options": {},
    })
}

async fn create(State(state): State<AppState>, body: axum::body::Bytes) -> ApiResult<Response> {
    let req: VolumeCreateRequest = if body.is_empty() {
        VolumeCreateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid volume config: {e}")))?
    };
    if let Some(driver) = req
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad_request(format!(
            "volume driver {driver:?} is not available: berth has the local driver"
        )));
    }
    if req.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "the local driver takes no options in berth yet: leave out --opt",
        ));
    }
    let labels = req.labels.unwrap_or_default().into_iter().collect();
    let v = state
        .engine
        .create_volume(req.name.as_deref(), labels, false)?;
    Ok((StatusCode::CREATED, Json(describe(&state, &v))).into_response())
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let volumes: Vec<_> = state
        .engine
        .volumes()?
        .iter()
        .filter(|v| {
            filters
                .get("name")
                .is_none_or(|n| n.iter().any(|x| v.name.contains(x.as_str())))
        })
        .filter(|v| {
            filters.get("dangling").is_none_or(|d| {
                let unused = state
                    .engine
                    .volume_users(&v.name)
                    .is_ok_and(|u| u.is_empty());
                d.iter().any(|x| (x == "true" || x == "1") == unused)
            })
        })
        .map(|v| describe(&state, v))
        .collect();
    Ok(Json(serde_json::json!({"Volumes": volumes, "Warnings": []})).into_response())
}

async fn inspect(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let v = state.engine.volume(&name)?;
    Ok(Json(describe(&state, &v)).into_response())
}

#[derive(Deserialize, Default)]
struct RemoveQuery {
    force: Option<String>,
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    let force = matches!(q.force.as_deref(), Some("1" | "true"));
    state.engine.remove_volume(&name, force)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let all = filters
        .get("all")
        .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let removed = state.engine.prune_volumes(all)?;
    Ok(Json(serde_json::json!({"VolumesDeleted": removed, "SpaceReclaimed": 0})).into_response())
}
