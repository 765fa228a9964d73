//! Network routes: create, list, inspect, remove, prune.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::events::{Event, Kind};
use berth_network::{Network, NetworkSpec, SubnetSpec};
use bollard_stubs::models::NetworkCreateRequest;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::streams::Filters;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// A network in Docker's shape; with `containers`, the endpoints on it.
fn describe(state: &AppState, n: &Network, containers: bool) -> serde_json::Value {
    let config: Vec<_> = n
        .subnets
        .iter()
        .map(|s| {
            let mut c = serde_json::json!({"Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string()});
            if let Some(r) = &s.range {
                c["IPRange"] = r.to_string().into();
            }
            c
        })
        .collect();
    let mut endpoints = serde_json::Map::new();
    if containers {
        for ep in state
            .engine
            .network()
            .endpoints_on(&n.id)
            .unwrap_or_default()
        {
            let name = state
                .engine
                .get(&ep.sandbox_id)
                .map(|c| c.name)
                .unwrap_or_default();
            let v4 = ep
                .addresses
                .iter()
                .find(|a| a.addr().is_ipv4())
                .map(|a| a.to_string())
                .unwrap_or_default();
            let v6 = ep
                .addresses
                .iter()
                .find(|a| a.addr().is_ipv6())
                .map(|a| a.to_string())
                .unwrap_or_default();
            endpoints.insert(
                ep.sandbox_id.clone(),
                serde_json::json!({"Name": name, "EndpointID": ep.id, "MacAddress": ep.mac, "IPv4Address": v4, "IPv6Address": v6}),
            );
        }
    }
    let created = time::OffsetDateTime::from_unix_timestamp(n.created as i64).ok();
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": crate::convert::docker_time(created),
        "Scope": "local",
        "Driver": n.driver.name(),
        "EnableIPv4": n.subnets.iter().any(|s| s.subnet.addr().is_ipv4()),
        "EnableIPv6": n.subnets.iter().any(|s| s.subnet.addr().is_ipv6()),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": endpoints,
        "Options": n.options,
        "Labels": n.labels,
    })
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let rows: Vec<_> = state
        .engine
        .network()
        .networks()?
        .iter()
        .filter(|n| {
            filters
                .get("name")
                .is_none_or(|v| v.iter().any(|x| n.name.contains(x.as_str())))
        })
        .filter(|n| {
            filters
                .get("id")
                .is_none_or(|v| v.iter().any(|x| n.id.starts_with(x.as_str())))
        })
        .filter(|n| filters.matches("driver", &[n.driver.name()]))
        .map(|n| describe(&state, n, false))
        .collect();
    Ok(Json(rows).into_response())
}

async fn inspect(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let n = state.engine.network().network(&id)?;
    Ok(Json(describe(&state, &n, true)).into_response())
}

async fn create(State(state): State<AppState>, body: axum::body::Bytes) -> ApiResult<Response> {
    let req: NetworkCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid network config: {e}")))?;
    let mut subnets = Vec::new();
    for c in req.ipam.and_then(|i| i.config).unwrap_or_default() {
        let Some(subnet) = c.subnet.filter(|s| !s.is_empty()) else {
            continue;
        };
        let parse_err = |what: &str, v: &str| {
            ApiError::bad_request(format!("invalid {what} {v:?}: write it as 172.20.0.0/16"))
        };
        subnets.push(SubnetSpec {
            subnet: subnet.parse().map_err(|_| parse_err("subnet", &subnet))?,
            range: c
                .ip_range
                .filter(|r| !r.is_empty())
                .map(|r| r.parse().map_err(|_| parse_err("IP range", &r)))
                .transpose()?,
            gateway: c
                .gateway
                .filter(|g| !g.is_empty())
                .map(|g| {
                    g.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid gateway {g:?}: give an address"))
                    })
                })
                .transpose()?,
        });
    }
    let spec = NetworkSpec {
        name: req.name,
        driver: req.driver.unwrap_or_default(),
        subnets,
        ipv6: req.enable_ipv6.unwrap_or(false),
        internal: req.internal.unwrap_or(false),
        attachable: req.attachable.unwrap_or(false),
        options: req.options.unwrap_or_default().into_iter().collect(),
        labels: req.labels.unwrap_or_default().into_iter().collect(),
    };
    let n = state.engine.network().create_network(&spec).await?;
    state
        .engine
        .events()
        .send(Event::new(Kind::Network, "create", &n.id).with("name", n.name.clone()));
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"Id": n.id, "Warning": ""})),
    )
        .into_response())
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let n = state.engine.network().network(&id)?;
    if n.name == berth_network::mode::DEFAULT_NETWORK {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bridge is a pre-defined network and cannot be removed",
        ));
    }
    state.engine.network().remove_network(&n.id).await?;
    state
        .engine
        .events()
        .send(Event::new(Kind::Network, "destroy", &n.id).with("name", n.name));
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectBody {
    container: String,
    #[serde(default)]
    endpoint_config: Option<ConnectEndpoint>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConnectEndpoint {
    #[serde(default)]
    aliases: Option<Vec<String>>,
}

fn connect_body(body: &[u8], what: &str) -> ApiResult<ConnectBody> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid {what} body: {e}; give {{\"Container\": \"name\"}}"
        ))
    })
}

/// `network connect`: a container (running or not) joins the network.
async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let b = connect_body(&body, "connect")?;
    let aliases = b
        .endpoint_config
        .unwrap_or_default()
        .aliases
        .unwrap_or_default();
    state
        .engine
        .connect_network(&b.container, &id, &aliases)
        .await?;
    Ok(StatusCode::OK)
}

/// `network disconnect`: the container leaves the network.
async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let b = connect_body(&body, "disconnect")?;
    state.engine.disconnect_network(&b.container, &id).await?;
    Ok(StatusCode::OK)
}

async fn prune(State(state): State<AppState>) -> ApiResult<Response> {
    let mut deleted = Vec::new();
    let networks = state.engine.network().networks()?;
    let in_use: HashMap<String, usize> = networks
        .iter()
        .map(|n| {
            (
                n.id.clone(),
                state
                    .engine
                    .network()
                    .endpoints_on(&n.id)
                    .map_or(1, |e| e.len()),
            )
        })
        .collect();
    for n in networks {
        if n.name == berth_network::mode::DEFAULT_NETWORK
            || in_use.get(&n.id).copied().unwrap_or(1) > 0
        {
            continue;
        }
        if state.engine.network().remove_network(&n.id).await.is_ok() {
            deleted.push(n.name);
        }
    }
    Ok(Json(serde_json::json!({"NetworksDeleted": deleted})).into_response())
}
