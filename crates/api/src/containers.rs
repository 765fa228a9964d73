//! Container routes: create, list, inspect, start, stop, kill, restart, wait, rename, remove,
//! logs, prune, top, stats.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_engine::logs::{Query as LogQuery, Stream};
use berth_engine::{Engine, Status, WaitCondition};
use bollard_stubs::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerUpdateBody, ContainerUpdateResponse,
    ContainerWaitResponse,
};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::stats as usage;
use crate::streams::{self, Filters};

pub fn routes() -> Router<AppState> {
    Router::new()
        // A container may be named like a fixed path ("json", "create", "prune"): DELETE on
        // those paths removes it, as `{id}` would if the fixed route did not shadow it.
        .route(
            "/containers/create",
            post(create).merge(remove_named("create")),
        )
        .route("/containers/json", get(list).merge(remove_named("json")))
        .route(
            "/containers/prune",
            post(prune).merge(remove_named("prune")),
        )
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/exec", post(create_exec))
        .route("/exec/{id}/start", post(start_exec))
        .route("/exec/{id}/resize", post(resize_exec))
        .route("/exec/{id}/json", get(inspect_exec))
        .route("/containers/{id}", delete(remove))
}

/// Docker's booleans in queries: 1/0, true/false.
fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True" | "yes"))
}

#[derive(Deserialize, Default)]
struct CreateQuery {
    name: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Query(q): Query<CreateQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: ContainerCreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    let config = convert::create_config(body)?;
    let name = q.name.filter(|n| !n.is_empty());
    let name = name.as_deref().map(|n| n.trim_start_matches('/'));
    let c = state
        .engine
        .create(name, config)
        .await
        .map_err(no_such_image)?;
    let answer = ContainerCreateResponse {
        id: c.id,
        warnings: Vec::new(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The docker CLI pulls when create answers 404 "No such image: <ref>".
fn no_such_image(e: berth_engine::Error) -> ApiError {
    if let berth_engine::Error::Image(berth_image::Error::ImageNotFound(what)) = &e {
        let full = what
            .parse::<berth_image::Reference>()
            .map(|r| r.familiar())
            .unwrap_or_else(|_| what.clone());
        return ApiError::not_found(format!("No such image: {full}"));
    }
    e.into()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    all: Option<String>,
    limit: Option<i64>,
    filters: Option<String>,
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let engine = &state.engine;
    let mut containers = engine.list().await?;
    containers.sort_by_key(|c| std::cmp::Reverse(c.created));
    let all = flag(&q.all) || filters.get("status").is_some();
    let rows: Vec<_> = containers
        .iter()
        .filter(|c| all || c.state.status == Status::Running)
        .filter(|c| {
            filters
                .get("status")
                .is_none_or(|s| convert::state_matches(c, s))
        })
        .filter(|c| {
            filters
                .get("id")
                .is_none_or(|ids| ids.iter().any(|i| c.id.starts_with(i.as_str())))
        })
        .filter(|c| {
            filters.get("name").is_none_or(|ns| {
                ns.iter()
                    .any(|n| c.name.contains(n.trim_start_matches('/')))
            })
        })
        .filter(|c| {
            filters
                .get("label")
                .is_none_or(|ls| ls.iter().all(|l| label_matches(&c.config.labels, l)))
        })
        .filter(|c| {
            filters.get("ancestor").is_none_or(|a| {
                a.iter()
                    .any(|i| *i == c.config.image || c.config.image_id.contains(i.as_str()))
            })
        })
        .take(
            q.limit
                .filter(|l| *l > 0)
                .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)),
        )
        .map(|c| convert::summary(engine, c))
        .collect();
    Ok(Json(rows).into_response())
}

/// `label=key` or `label=key=value`.
fn label_matches(labels: &std::collections::BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

async fn inspect(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = state.engine.inspect(&id).await?;
    Ok(Json(convert::inspect(&state.engine, &c)).into_response())
}

/// 204 when started, 304 when it already runs (as Docker answers).
async fn start(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = state.engine.inspect(&id).await?;
    if c.state.status == Status::Running {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    start_watched(&state.engine, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start_watched(engine: &Arc<Engine>, id: &str) -> ApiResult<()> {
    let c = engine.start(id).await?;
    berth_engine::monitor::watch(engine, &c.id);
    Ok(())
}

#[derive(Deserialize, Default)]
struct StopQuery {
    t: Option<i64>,
    signal: Option<String>,
}

fn timeout(t: Option<i64>) -> Option<Duration> {
    t.map(|t| Duration::from_secs(t.max(0) as u64))
}

async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<StatusCode> {
    let c = state.engine.inspect(&id).await?;
    if c.state.status != Status::Running {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    if let Some(signal) = q.signal.filter(|s| !s.is_empty()) {
        berth_engine::container::parse_signal(&signal)?;
    }
    state.engine.stop(&id, timeout(q.t)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<StatusCode> {
    state.engine.stop(&id, timeout(q.t)).await?;
    start_watched(&state.engine, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct KillQuery {
    signal: Option<String>,
}

async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<KillQuery>,
) -> ApiResult<StatusCode> {
    let signal = q
        .signal
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "SIGKILL".into());
    let signal = berth_engine::container::parse_signal(&signal)?;
    state.engine.kill(&id, signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct WaitQuery {
    condition: Option<String>,
}

/// The status line goes out at once (clients wait for it before they start the container);
/// the body follows when the condition is met.
async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let condition = match q.condition.as_deref() {
        None | Some("") | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid wait condition {other:?}: use not-running, next-exit or removed"
            )))
        }
    };
    let events = state.engine.events().subscribe();
    let c = state.engine.inspect(&id).await?;
    let (tx, response) = streams::json_lines();
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let answer = match engine.wait_for(&c.id, condition, events).await {
            Ok(code) => ContainerWaitResponse {
                status_code: code.into(),
                error: None,
            },
            Err(e) => ContainerWaitResponse {
                status_code: -1,
                error: Some(bollard_stubs::models::ContainerWaitExitError {
                    message: Some(e.to_string()),
                }),
            },
        };
        let _ = tx
            .send(serde_json::to_value(answer).unwrap_or_default())
            .await;
    });
    Ok(response)
}

#[derive(Deserialize, Default)]
struct RenameQuery {
    name: Option<String>,
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RenameQuery>,
) -> ApiResult<StatusCode> {
    let name = q
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("give the new name: ?name=NEW"))?;
    state.engine.rename(&id, name.trim_start_matches('/'))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct RemoveQuery {
    force: Option<String>,
    v: Option<String>,
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .remove_with(&id, flag(&q.force), flag(&q.v))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The removal of the container called `name`, for a fixed route that shadows `{id}`.
fn remove_named(name: &'static str) -> axum::routing::MethodRouter<AppState> {
    delete(move |state: State<AppState>, q: Query<RemoveQuery>| {
        remove(state, Path(name.to_string()), q)
    })
}

async fn prune(State(state): State<AppState>) -> ApiResult<Response> {
    let mut deleted = Vec::new();
    for c in state.engine.list().await? {
        if c.state.status != Status::Running && state.engine.remove(&c.id, false).await.is_ok() {
            deleted.push(c.id);
        }
    }
    Ok(
        Json(serde_json::json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 }))
            .into_response(),
    )
}

#[derive(Deserialize, Default)]
struct LogsQuery {
    follow: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    since: Option<String>,
    until: Option<String>,
    timestamps: Option<String>,
    tail: Option<String>,
}

/// Docker's `since`/`until`: seconds since the epoch, with an optional fraction of up to
/// nine digits. Read as integers, not as a float: a float holds only about 16 digits, and a
/// log line's own timestamp given back as `since` must select that very line.
fn unix_time(v: &Option<String>) -> ApiResult<Option<OffsetDateTime>> {
    let Some(v) = v.as_deref().filter(|v| !v.is_empty() && *v != "0") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "invalid time {v:?}: give seconds since the epoch, with at most nine decimals"
        ))
    };
    let (secs, fraction) = v.split_once('.').unwrap_or((v, ""));
    let secs: i128 = secs.parse().map_err(|_| bad())?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i128 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let sign = if v.starts_with('-') { -1 } else { 1 };
    OffsetDateTime::from_unix_timestamp_nanos(secs * 1_000_000_000 + sign * nanos)
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("time {v:?} is out of range")))
}

async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let tail = match q.tail.as_deref() {
        None | Some("") | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid tail {n:?}: give a number of lines, or all"
            ))
        })?),
    };
    let (stdout, stderr) = (flag(&q.stdout), flag(&q.stderr));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "you must choose at least one stream: stdout=1 or stderr=1",
        ));
    }
    let query = LogQuery {
        tail,
        since: unix_time(&q.since)?,
        until: unix_time(&q.until)?,
        stdout,
        stderr,
    };
    let timestamps = flag(&q.timestamps);
    let mut entries = state
        .engine
        .stream_logs(&id, query, flag(&q.follow))
        .await?;
    let (tx, response) = streams::byte_stream(streams::MULTIPLEXED);
    tokio::spawn(async move {
        while let Some(entry) = entries.recv().await {
            let Ok(entry) = entry else { return };
            let mut text = entry.log.into_bytes();
            if timestamps {
                let mut stamped = convert::docker_time(Some(entry.time)).into_bytes();
                stamped.push(b' ');
                stamped.append(&mut text);
                text = stamped;
            }
            let stream = match entry.stream {
                Stream::Stdout => streams::STDOUT,
                Stream::Stderr => streams::STDERR,
            };
            if tx.send(streams::frame(stream, &text)).await.is_err() {
                return;
            }
        }
    });
    Ok(response)
}

#[derive(Deserialize, Default)]
struct AttachQuery {
    stream: Option<String>,
    logs: Option<String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
}

/// Takes over the connection and joins it to the container's stdio (before its start too:
/// `docker run` attaches first, and sees every byte).
async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let options = berth_engine::AttachOptions {
        stdin: flag(&q.stdin),
        stdout: flag(&q.stdout),
        stderr: flag(&q.stderr),
        logs: flag(&q.logs),
        stream: flag(&q.stream),
    };
    let attachment = state.engine.attach(&id, options).await?;
    let kind = if attachment.tty {
        streams::RAW
    } else {
        streams::MULTIPLEXED
    };
    streams::hijack(req, kind, move |client| {
        streams::splice(client, attachment.stream, std::future::ready(()))
    })
}

#[derive(Deserialize, Default)]
struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

fn size(q: &ResizeQuery) -> ApiResult<(u16, u16)> {
    match (q.h, q.w) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(ApiError::bad_request("give the size: ?h=ROWS&w=COLUMNS")),
    }
}

async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult<StatusCode> {
    let (h, w) = size(&q)?;
    state.engine.resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

/// Docker's exec create body.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    privileged: bool,
}

async fn create_exec(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: ExecBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    let cmd = b
        .cmd
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("no command given: name the program to run"))?;
    let config = berth_engine::ExecConfig {
        cmd,
        env: b.env.unwrap_or_default(),
        user: b.user.filter(|u| !u.is_empty()),
        workdir: b.working_dir.filter(|w| !w.is_empty()),
        tty: b.tty,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        privileged: b.privileged,
    };
    let exec_id = state.engine.create_exec(&id, config).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"Id": exec_id})),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStartBody {
    detach: bool,
}

/// Runs the exec; attached, the connection is taken over and stays until the process has
/// ended and its exit code is recorded (clients read it right after the stream ends).
async fn start_exec(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the exec start body: {e}")))?;
    let b: ExecStartBody = if bytes.is_empty() {
        ExecStartBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid exec start body: {e}")))?
    };
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::empty());
    let attachment = state.engine.start_exec(&id, b.detach).await?;
    let Some(attachment) = attachment else {
        // Detached: followed here, so that its end is an event too.
        let engine = state.engine.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.finish_exec(&id).await {
                tracing::debug!("exec {id}: {e}");
            }
        });
        return Ok(StatusCode::OK.into_response());
    };
    let kind = if attachment.tty {
        streams::RAW
    } else {
        streams::MULTIPLEXED
    };
    let engine = state.engine.clone();
    streams::hijack(req, kind, move |client| async move {
        let recorded = async move {
            let _ = engine.finish_exec(&id).await;
        };
        streams::splice(client, attachment.stream, recorded).await;
    })
}

async fn resize_exec(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult<StatusCode> {
    let (h, w) = size(&q)?;
    state.engine.resize_exec(&id, h, w).await?;
    Ok(StatusCode::CREATED)
}

async fn inspect_exec(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let e = state.engine.inspect_exec(&id).await?;
    let (entrypoint, arguments) = match e.config.cmd.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    Ok(Json(serde_json::json!({
        "ID": e.id,
        "ContainerID": e.container_id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "Pid": e.pid,
        "OpenStdin": e.config.attach_stdin,
        "OpenStdout": e.config.attach_stdout,
        "OpenStderr": e.config.attach_stderr,
        "CanRemove": false,
        "DetachKeys": "",
        "ProcessConfig": {
            "entrypoint": entrypoint,
            "arguments": arguments,
            "tty": e.config.tty,
            "privileged": e.config.privileged,
            "user": e.config.user.clone().unwrap_or_default(),
        },
    }))
    .into_response())
}

async fn pause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.set_paused(&id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.set_paused(&id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `docker update`: new limits and restart policy.
async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: ContainerUpdateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid update: {e}")))?;
    let (changes, restart) = convert::update(&body)?;
    state.engine.update(&id, &changes, restart).await?;
    Ok(Json(ContainerUpdateResponse {
        warnings: Some(Vec::new()),
    })
    .into_response())
}

/// `docker top`: the container's processes as ps(1) would list them, read from /proc.
async fn top(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let pids = state.engine.processes(&id).await?;
    let rows: Vec<Vec<String>> = pids.iter().filter_map(|pid| process_row(*pid)).collect();
    Ok(Json(serde_json::json!({
        "Titles": ["UID", "PID", "PPID", "STAT", "CMD"],
        "Processes": rows,
    }))
    .into_response())
}

/// UID, PID, PPID, state and command line of a process; None if it has gone.
fn process_row(pid: i32) -> Option<Vec<String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Some(vec![
        field("Uid:"),
        pid.to_string(),
        field("PPid:"),
        field("State:"),
        cmd,
    ])
}

#[derive(Deserialize, Default)]
struct StatsQuery {
    stream: Option<String>,
    #[serde(rename = "one-shot")]
    one_shot: Option<String>,
}

/// `docker stats`: a line a second by default; with stream=false one answer.
async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Response> {
    let stream = q.stream.is_none() || flag(&q.stream);
    let one_shot = flag(&q.one_shot);
    if stream && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true: one-shot needs stream=false",
        ));
    }
    let c = state.engine.inspect(&id).await?;
    if !stream {
        let answer = usage::once(&state.engine, &c, one_shot).await?;
        return Ok(Json(answer).into_response());
    }
    let (tx, response) = streams::json_lines();
    tokio::spawn(usage::stream(state.engine.clone(), c, tx));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_keep_every_nanosecond() {
        let t = |v: &str| unix_time(&Some(v.to_string()));
        let exact = t("1764288000.123456789").unwrap().unwrap();
        assert_eq!(exact.unix_timestamp_nanos(), 1_764_288_000_123_456_789);
        assert_eq!(
            t("1764288000.5").unwrap().unwrap().nanosecond(),
            500_000_000
        );
        assert_eq!(
            t("1764288000").unwrap().unwrap().unix_timestamp(),
            1_764_288_000
        );
        assert!(t("0").unwrap().is_none());
        for bad in ["abc", "1.2.3", "1.1234567890", "1.-5"] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
