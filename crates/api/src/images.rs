//! Image routes: list, inspect, history, pull (`create` with `fromImage`), import (`create`
//! with `fromSrc`), tag, push, remove, save (`get`), load, prune. Names may hold slashes
//! (`localhost:5000/team/app:v1`), so `/images/{name}/…` is routed by its last segment.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::events::{Event, Kind};
use berth_image::progress::{Progress, ProgressSink};
use berth_image::{ImageService, PullOptions, Removed};
use bollard_stubs::models::{ImageDeleteResponseItem, ImageSummary};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::streams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route(
            "/images/{*rest}",
            get(get_named).post(post_named).delete(remove),
        )
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True"))
}

fn familiar(r: &berth_image::Reference) -> String {
    r.familiar()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    all: Option<String>,
}

/// `GET /images/json`: without `all`, intermediate images (untagged, with a child built on
/// them) are left out, as Docker does.
async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let images = state.engine.images().list()?;
    let parents: std::collections::HashSet<String> = images
        .iter()
        .filter_map(|i| i.parent.as_ref().map(|p| p.to_string()))
        .collect();
    let all = flag(&q.all);
    let rows: Vec<ImageSummary> = images
        .into_iter()
        .filter(|i| all || !i.tags.is_empty() || !parents.contains(&i.id.to_string()))
        .map(|i| ImageSummary {
            id: i.id.to_string(),
            parent_id: i.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            repo_tags: i.tags.iter().map(familiar).collect(),
            repo_digests: i.repo_digests.iter().map(familiar).collect(),
            created: created_secs(i.created.as_deref()),
            size: i.size as i64,
            shared_size: -1,
            labels: Default::default(),
            containers: -1,
            manifests: None,
            descriptor: None,
        })
        .collect();
    Ok(Json(rows).into_response())
}

fn created_secs(created: Option<&str>) -> i64 {
    created
        .and_then(|c| {
            time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, |t| t.unix_timestamp())
}

/// GET `/images/{name}/json`, `/images/{name}/history`, `/images/{name}/get`.
async fn get_named(State(state): State<AppState>, Path(rest): Path<String>) -> ApiResult<Response> {
    let (name, what) = split_action(&rest);
    match what {
        "json" => inspect(&state, name),
        "history" => history(&state, name),
        "get" => save(&state, vec![name.to_string()]).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: /images/{rest}"
        ))),
    }
}

/// `a/b:c/json` → (`a/b:c`, `json`).
fn split_action(rest: &str) -> (&str, &str) {
    rest.rsplit_once('/').unwrap_or((rest, ""))
}

fn inspect(state: &AppState, name: &str) -> ApiResult<Response> {
    let i = state
        .engine
        .images()
        .inspect(name)
        .map_err(not_found(name))?;
    let raw = &i.raw_config;
    let body = serde_json::json!({
        "Id": i.image.id.to_string(),
        "RepoTags": i.image.tags.iter().map(familiar).collect::<Vec<_>>(),
        "RepoDigests": i.image.repo_digests.iter().map(familiar).collect::<Vec<_>>(),
        "Parent": i.image.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Comment": raw.get("comment").cloned().unwrap_or("".into()),
        "Created": i.image.created.clone().unwrap_or_default(),
        "Author": raw.get("author").cloned().unwrap_or("".into()),
        "Config": raw.get("config").cloned().unwrap_or(serde_json::json!({})),
        "Architecture": i.image.architecture,
        "Os": i.image.os,
        "Size": i.image.size,
        "VirtualSize": i.image.size,
        "GraphDriver": {"Name": "overlay2", "Data": {}},
        "RootFS": {"Type": "layers", "Layers": i.image.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    Ok(Json(body).into_response())
}

/// Docker's 404 text for images, which clients match on.
fn not_found(name: &str) -> impl FnOnce(berth_image::Error) -> ApiError + '_ {
    move |e| match e {
        berth_image::Error::ImageNotFound(_) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        e => e.into(),
    }
}

fn history(state: &AppState, name: &str) -> ApiResult<Response> {
    let i = state
        .engine
        .images()
        .inspect(name)
        .map_err(not_found(name))?;
    let history = i
        .raw_config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let mut rows: Vec<serde_json::Value> = history
        .iter()
        .map(|h| {
            serde_json::json!({
                "Id": "<missing>",
                "Created": created_secs(h.get("created").and_then(|c| c.as_str())),
                "CreatedBy": h.get("created_by").cloned().unwrap_or("".into()),
                "Tags": null,
                "Size": 0,
                "Comment": h.get("comment").cloned().unwrap_or("".into()),
            })
        })
        .collect();
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first["Id"] = i.image.id.to_string().into();
        first["Tags"] = i.image.tags.iter().map(familiar).collect::<Vec<_>>().into();
    }
    Ok(Json(rows).into_response())
}

#[derive(Deserialize, Default)]
struct CreateQuery {
    #[serde(rename = "fromImage")]
    from_image: Option<String>,
    #[serde(rename = "fromSrc")]
    from_src: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    platform: Option<String>,
}

/// Pull (`fromImage`) or import (`fromSrc=-` with the tar as the body), answered with
/// Docker's JSON progress stream.
async fn create(
    State(state): State<AppState>,
    Query(q): Query<CreateQuery>,
    req: Request,
) -> ApiResult<Response> {
    if let Some(src) = q.from_src.as_deref() {
        if src != "-" {
            return Err(ApiError::bad_request(
                "berth imports only from the request body: fromSrc=-",
            ));
        }
        let reference = match (
            q.repo.as_deref().filter(|r| !r.is_empty()),
            q.tag.as_deref().filter(|t| !t.is_empty()),
        ) {
            (Some(r), Some(t)) => Some(format!("{r}:{t}")),
            (Some(r), None) => Some(r.to_string()),
            _ => None,
        };
        let changes = query_values(req.uri().query(), "changes");
        let run_config = crate::changes::run_config(&changes)?;
        return import(state, reference, run_config, req.into_body()).await;
    }
    let image = q
        .from_image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("give fromImage (to pull) or fromSrc (to import)"))?;
    let reference = match q.tag.as_deref().filter(|t| !t.is_empty()) {
        Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        None => image,
    };
    let mut options = PullOptions::default();
    if let Some(p) = q.platform.filter(|p| !p.is_empty()) {
        options.platform = Some(
            p.parse()
                .map_err(|e: berth_image::Error| ApiError::bad_request(e.to_string()))?,
        );
    }
    // Checked before the stream starts, so a bad name is a 400, not a stream error.
    let parsed: berth_image::Reference = reference.parse()?;
    let (tx, response) = streams::json_lines();
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let (sink, mut progress) = ProgressSink::channel();
        options.progress = sink;
        let send_progress = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(p) = progress.recv().await {
                    if let Some(line) = progress_line(&p, "Download") {
                        let _ = tx.send(line).await;
                    }
                }
            })
        };
        let _ = tx.send(serde_json::json!({"status": format!("Pulling from {}", parsed.repository()), "id": parsed.tag().unwrap_or("latest")})).await;
        let pulled = {
            let engine = engine.clone();
            let options = options.clone();
            on_own_thread(move || async move { engine.images().pull(&reference, &options).await })
                .await
        };
        drop(options);
        let _ = send_progress.await;
        let last = match pulled {
            Ok(image) => {
                engine
                    .events()
                    .send(Event::new(Kind::Image, "pull", &parsed.familiar()));
                let _ = tx
                    .send(
                        serde_json::json!({"status": format!("Digest: {}", image.manifest_digest)}),
                    )
                    .await;
                serde_json::json!({"status": format!("Status: Downloaded newer image for {}", parsed.familiar())})
            }
            Err(e) => error_line(&e.to_string()),
        };
        let _ = tx.send(last).await;
    });
    Ok(response)
}

/// Runs a future of the image service to completion on a blocking thread: its futures are
/// not `Send` for every lifetime the scheduler needs, so they are driven where they start.
pub(crate) async fn on_own_thread<F, Fut, T>(f: F) -> berth_image::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = berth_image::Result<T>>,
    T: Send + 'static,
{
    drive_on_own_thread(f).await.unwrap_or_else(|e| {
        Err(berth_image::Error::Mount(format!(
            "the image task failed: {e}"
        )))
    })
}

/// Drives the future `f` makes on a blocking thread of its own (for futures that are not
/// `Send`, or whose work blocks); the error is the thread's panic.
pub(crate) async fn drive_on_own_thread<F, Fut, O>(f: F) -> Result<O, tokio::task::JoinError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = O>,
    O: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f())).await
}

/// Docker's error message inside a progress stream.
fn error_line(message: &str) -> serde_json::Value {
    serde_json::json!({"errorDetail": {"message": message}, "error": message})
}

/// One progress event as Docker's progress message (`verb` is Download or Upload).
fn progress_line(p: &Progress, verb: &str) -> Option<serde_json::Value> {
    let short = |d: &berth_image::Digest| {
        d.to_string()
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    Some(match p {
        Progress::Resolved { .. } | Progress::Done { .. } => return None,
        Progress::Cached { digest } => {
            serde_json::json!({"status": "Already exists", "id": short(digest)})
        }
        Progress::Bytes {
            digest,
            done,
            total,
        } => serde_json::json!({
            "status": format!("{verb}ing"),
            "progressDetail": {"current": done, "total": total},
            "id": short(digest),
        }),
        Progress::Transferred { digest } => {
            let status = if verb == "Upload" {
                "Pushed"
            } else {
                "Download complete"
            };
            serde_json::json!({"status": status, "id": short(digest)})
        }
        Progress::Skipped { digest, reason } => {
            serde_json::json!({"status": reason, "id": short(digest)})
        }
        Progress::Unpacked { digest } => {
            serde_json::json!({"status": "Pull complete", "id": short(digest)})
        }
    })
}

/// Writes a request body to a temporary file under the image root (archives are read by
/// path), removed when dropped.
async fn spool(images: &ImageService, body: Body) -> ApiResult<tempfile::NamedTempFile> {
    let dir = images.root().join("tmp");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("create {}: {e}", dir.display()),
        )
    })?;
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("spool the upload: {e}"),
        )
    })?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("spool the upload: {e}"),
        )
    })?);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        file.write_all(&chunk).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("spool the upload: {e}"),
            )
        })?;
    }
    file.flush().await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("spool the upload: {e}"),
        )
    })?;
    Ok(tmp)
}

/// Every value of a query parameter that may repeat (`changes=…&changes=…`).
pub(crate) fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn import(
    state: AppState,
    reference: Option<String>,
    run_config: serde_json::Value,
    body: Body,
) -> ApiResult<Response> {
    let tmp = spool(state.engine.images(), body).await?;
    let engine = state.engine.clone();
    let record = tokio::task::spawn_blocking(move || {
        engine.images().import_with_config(
            tmp.path(),
            reference.as_deref(),
            run_config,
            &ProgressSink::default(),
        )
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("import: {e}")))??;
    let (tx, response) = streams::json_lines();
    let _ = tx
        .send(serde_json::json!({"status": record.id.to_string()}))
        .await;
    Ok(response)
}

#[derive(Deserialize, Default)]
struct LoadQuery {
    quiet: Option<String>,
}

async fn load(
    State(state): State<AppState>,
    Query(q): Query<LoadQuery>,
    req: Request,
) -> ApiResult<Response> {
    let _quiet = flag(&q.quiet);
    let tmp = spool(state.engine.images(), req.into_body()).await?;
    let engine = state.engine.clone();
    let loaded =
        tokio::task::spawn_blocking(move || engine.images().load(tmp.path(), &Default::default()))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("load: {e}")))?;
    let (tx, response) = streams::json_lines();
    match loaded {
        Ok(images) => {
            for i in images {
                let names: Vec<String> = i.tags.iter().map(familiar).collect();
                let line = if names.is_empty() {
                    format!("Loaded image ID: {}\n", i.id)
                } else {
                    names
                        .iter()
                        .map(|n| format!("Loaded image: {n}\n"))
                        .collect()
                };
                let _ = tx.send(serde_json::json!({"stream": line})).await;
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(response)
}

async fn save_many(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    // `names` repeats (?names=a&names=b), which a plain map cannot hold.
    let names: Vec<String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("names="))
        .map(percent_decode)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "name the images to save: ?names=IMAGE",
        ));
    }
    save(&state, names).await
}

/// `%2F` and friends in query values.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Docker archive of the images, streamed from a temporary file.
async fn save(state: &AppState, names: Vec<String>) -> ApiResult<Response> {
    let engine = state.engine.clone();
    let dir = engine.images().root().join("tmp");
    std::fs::create_dir_all(&dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("create {}: {e}", dir.display()),
        )
    })?;
    let tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("save: {e}")))?;
    let path = tmp.path().to_path_buf();
    let saved = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        engine.images().save_docker(&refs, &path)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("save: {e}")))?;
    saved?;
    // Opened before the name goes: the data stays readable until the stream ends.
    let file = tokio::fs::File::open(tmp.path())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("save: {e}")))?;
    drop(tmp);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

#[derive(Deserialize, Default)]
struct NamedQuery {
    repo: Option<String>,
    tag: Option<String>,
    force: Option<String>,
}

/// POST `/images/{name}/tag` and `/images/{name}/push`.
async fn post_named(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(q): Query<NamedQuery>,
) -> ApiResult<Response> {
    let (name, what) = split_action(&rest);
    match what {
        "tag" => {
            let repo = q
                .repo
                .filter(|r| !r.is_empty())
                .ok_or_else(|| ApiError::bad_request("give the new name: ?repo=NAME&tag=TAG"))?;
            let target = match q.tag.filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo,
            };
            state
                .engine
                .images()
                .tag(name, &target)
                .map_err(not_found(name))?;
            state
                .engine
                .events()
                .send(Event::new(Kind::Image, "tag", &target));
            Ok(StatusCode::CREATED.into_response())
        }
        "push" => push(state.engine.clone(), name, q.tag).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: /images/{rest}"
        ))),
    }
}

async fn push(
    engine: Arc<berth_engine::Engine>,
    name: &str,
    tag: Option<String>,
) -> ApiResult<Response> {
    let source = match tag.filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    engine
        .images()
        .inspect(&source)
        .map_err(not_found(&source))?;
    let (tx, response) = streams::json_lines();
    tokio::spawn(async move {
        let (sink, mut progress) = ProgressSink::channel();
        let forward = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(p) = progress.recv().await {
                    if let Some(line) = progress_line(&p, "Upload") {
                        let _ = tx.send(line).await;
                    }
                }
            })
        };
        let pushed = {
            let (engine, sink) = (engine.clone(), sink.clone());
            on_own_thread(move || async move { engine.images().push(&source, None, &sink).await })
                .await
        };
        drop(sink);
        let _ = forward.await;
        let last = match pushed {
            Ok(digest) => {
                serde_json::json!({"status": format!("latest: digest: {digest}"), "aux": {"Tag": "latest", "Digest": digest.to_string()}})
            }
            Err(e) => error_line(&e.to_string()),
        };
        let _ = tx.send(last).await;
    });
    Ok(response)
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamedQuery>,
) -> ApiResult<Response> {
    let removed = state
        .engine
        .images()
        .remove(&name, flag(&q.force))
        .map_err(not_found(&name))?;
    let rows: Vec<ImageDeleteResponseItem> = removed
        .into_iter()
        .map(|r| match r {
            Removed::Untagged(r) => ImageDeleteResponseItem {
                untagged: Some(r.familiar()),
                deleted: None,
            },
            Removed::Deleted(d) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(d.to_string()),
            },
        })
        .collect();
    state
        .engine
        .events()
        .send(Event::new(Kind::Image, "delete", &name));
    Ok(Json(rows).into_response())
}

async fn prune(State(state): State<AppState>) -> ApiResult<Response> {
    let report = state.engine.images().prune()?;
    let deleted: Vec<_> = report
        .images
        .iter()
        .map(|d| serde_json::json!({"Deleted": d.to_string()}))
        .collect();
    Ok(Json(serde_json::json!({"ImagesDeleted": deleted, "SpaceReclaimed": 0})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_keep_their_action_apart() {
        assert_eq!(
            split_action("localhost:5000/team/app:v1/json"),
            ("localhost:5000/team/app:v1", "json")
        );
        assert_eq!(split_action("busybox/tag"), ("busybox", "tag"));
        assert_eq!(percent_decode("a%2Fb%3Ac"), "a/b:c");
    }

    #[test]
    fn progress_reads_as_dockers() {
        let d: berth_image::Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let line = progress_line(
            &Progress::Bytes {
                digest: d.clone(),
                done: 5,
                total: 10,
            },
            "Download",
        )
        .unwrap();
        assert_eq!(line["status"], "Downloading");
        assert_eq!(line["id"], "abababababab");
        assert_eq!(line["progressDetail"]["total"], 10);
        assert!(progress_line(&Progress::Done { id: d }, "Download").is_none());
    }
}
