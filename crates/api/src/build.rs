//! `POST /build`, as Docker's classic builder answers it: the body is the build context as
//! a tar, the query says what to build, and the answer is a stream of JSON messages
//! (`stream` text as the steps run, `aux` with the image's ID, `error` if it failed).

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use berth_build::output::{Message, Output};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::streams;

pub fn routes() -> Router<AppState> {
    Router::new().route("/build", post(build))
}

/// The query of `POST /build` that berth acts on.
#[derive(Debug, Default)]
struct BuildQuery {
    options: berth_build::Options,
    quiet: bool,
}

fn parse_query(query: Option<&str>) -> ApiResult<BuildQuery> {
    let mut q = BuildQuery::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "t" => q.options.tags.push(v),
            "dockerfile" => q.options.dockerfile = v,
            "target" => q.options.target = Some(v).filter(|t| !t.is_empty()),
            "nocache" => q.options.no_cache = truthy(&v),
            "q" => q.quiet = truthy(&v),
            "networkmode" => {
                q.options.network = if v == "default" { String::new() } else { v };
            }
            "buildargs" => q.options.build_args = json_map("buildargs", &v)?,
            "labels" => q.options.labels = json_map("labels", &v)?,
            "platform" if !v.is_empty() && v != "linux/amd64" && v != "linux" => {
                return Err(ApiError::bad_request(format!(
                    "platform {v}: this builder makes linux/amd64 images only"
                )))
            }
            "remote" if !v.is_empty() => {
                return Err(ApiError::bad_request(
                    "a remote build context (a URL or git repository) is not supported: send the context as the request body",
                ))
            }
            _ => {}
        }
    }
    Ok(q)
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True")
}

/// `buildargs` and `labels` are JSON objects of strings; a build arg may be null (unset).
fn json_map(name: &str, v: &str) -> ApiResult<BTreeMap<String, String>> {
    if v.is_empty() {
        return Ok(BTreeMap::new());
    }
    let map: BTreeMap<String, Option<String>> = serde_json::from_str(v).map_err(|e| {
        ApiError::bad_request(format!(
            "{name} must be a JSON object of strings, as {{\"KEY\":\"value\"}}: {e}"
        ))
    })?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

async fn build(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let q = parse_query(req.uri().query())?;
    let engine = state.engine.clone();
    let scratch = engine.root().join("build");
    // Unpacked as it arrives: no spooled copy of a context that may be large.
    let body = req
        .into_body()
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let reader = SyncIoBridge::new(StreamReader::new(body));
    let context = tokio::task::spawn_blocking(move || unpack_context(reader, &scratch))
        .await
        .map_err(|e| ApiError::bad_request(format!("build context: {e}")))??;
    let (tx, response) = streams::json_lines();
    tokio::spawn(async move {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let out = Output::new(out_tx);
        let forward = {
            let tx = tx.clone();
            let quiet = q.quiet;
            tokio::spawn(async move {
                while let Some(m) = out_rx.recv().await {
                    match m {
                        Message::Stream(_) if quiet => {}
                        Message::Stream(s) => {
                            let _ = tx.send(json!({ "stream": s })).await;
                        }
                        Message::Built(id) => {
                            // Quiet, the ID is the only text, as the classic builder does.
                            if quiet {
                                let _ = tx.send(json!({ "stream": format!("{id}\n") })).await;
                            }
                            let _ = tx.send(json!({ "aux": { "ID": id } })).await;
                        }
                    }
                }
            })
        };
        // The image store's futures are not Send for every lifetime the scheduler needs,
        // and its work blocks: the build is driven on a thread of its own.
        let result = crate::images::drive_on_own_thread(move || async move {
            let result = berth_build::build(&engine, context.path(), &q.options, &out).await;
            drop(context);
            result.map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the build task failed: {e}")));
        let _ = forward.await;
        if let Err(m) = result {
            let _ = tx
                .send(json!({ "errorDetail": { "message": m }, "error": m }))
                .await;
        }
    });
    Ok(response)
}

/// The context tar, unpacked with the same care as an image layer (nothing written
/// outside the directory, sizes bounded) into a directory removed after the build.
fn unpack_context(
    tar: impl std::io::Read,
    scratch: &std::path::Path,
) -> ApiResult<tempfile::TempDir> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| ApiError::bad_request(format!("create {}: {e}", scratch.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(scratch)
        .map_err(|e| ApiError::bad_request(format!("build context: {e}")))?;
    berth_image::unpack::unpack_layer(
        std::io::BufReader::with_capacity(1 << 20, tar),
        dir.path(),
        &Default::default(),
    )
    .map_err(|e| {
        ApiError::bad_request(format!(
            "the build context is not a valid tar ({e}): send the context directory as a tar"
        ))
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_becomes_options() {
        let q = parse_query(Some(
            "t=a%3A1&t=b&dockerfile=sub%2FDf&buildargs=%7B%22X%22%3A%221%22%2C%22N%22%3Anull%7D&nocache=1&target=base&q=1&labels=%7B%22l%22%3A%22v%22%7D",
        ))
        .unwrap();
        assert_eq!(q.options.tags, ["a:1", "b"]);
        assert_eq!(q.options.dockerfile, "sub/Df");
        assert_eq!(q.options.build_args.get("X").map(String::as_str), Some("1"));
        assert!(!q.options.build_args.contains_key("N"));
        assert!(q.options.no_cache && q.quiet);
        assert_eq!(q.options.target.as_deref(), Some("base"));
        assert_eq!(q.options.labels.get("l").map(String::as_str), Some("v"));
        assert!(parse_query(Some("buildargs=notjson")).is_err());
        assert!(parse_query(Some("platform=linux/arm64")).is_err());
    }
}
