//! `docker cp` and `docker export`: `HEAD`/`GET`/`PUT /containers/{id}/archive` and
//! `GET /containers/{id}/export`.
//!
//! The file work is the build crate's (`copy::container`, everything resolved inside the
//! container's root); the engine lends the root filesystem, mounting a stopped container's
//! for as long as the request needs it. The tar is made or read on a blocking thread and
//! streamed through a channel, so nothing is held in memory or spooled to disk.

use std::io::{self, Write};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use berth_build::copy::container::{self as cp, PathStat};
use berth_engine::archive::RootfsLease;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/export", get(export))
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ArchiveQuery {
    path: Option<String>,
    no_overwrite_dir_non_dir: Option<String>,
    #[serde(rename = "copyUIDGID")]
    copy_uid_gid: Option<String>,
}

impl ArchiveQuery {
    fn path(&self) -> ApiResult<String> {
        match self.path.as_deref() {
            Some(p) if !p.is_empty() => Ok(p.to_string()),
            _ => Err(ApiError::bad_request(
                "no path given: add ?path= with a path in the container",
            )),
        }
    }
}

/// Docker's booleans in queries: 1/0, true/false.
fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True"))
}

/// The build crate's errors in Docker's shapes: a missing path is a 404 naming the container.
fn copy_error(e: berth_build::Error, container: &str) -> ApiError {
    match e {
        berth_build::Error::PathNotFound(p) => ApiError::not_found(format!(
            "Could not find the file {p} in container {container}"
        )),
        berth_build::Error::Invalid(m) => ApiError::bad_request(m),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Runs `f` on a blocking thread with the lease, which is dropped (and any mount undone)
/// when it returns.
async fn blocking<T: Send + 'static>(
    lease: RootfsLease,
    f: impl FnOnce(&std::path::Path) -> berth_build::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let name = lease.name.clone();
    let joined = tokio::task::spawn_blocking(move || f(lease.path())).await;
    joined
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("copy: {e}")))?
        .map_err(|e| copy_error(e, &name))
}

async fn lease_for(state: &AppState, id: &str, path: &str) -> ApiResult<RootfsLease> {
    let lease = state.engine.rootfs_lease(id).await?;
    lease.check_outside_mounts(path)?;
    Ok(lease)
}

/// The stat header: base64 of `{name,size,mode,mtime,linkTarget}` as Docker writes it.
fn stat_header(stat: &PathStat) -> ApiResult<HeaderValue> {
    let nanos = i128::from(stat.mtime.0) * 1_000_000_000 + i128::from(stat.mtime.1);
    let mtime = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let json = serde_json::json!({
        "name": stat.name,
        "size": stat.size,
        "mode": stat.mode,
        "mtime": mtime,
        "linkTarget": stat.link_target,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(json.to_string());
    HeaderValue::from_str(&encoded)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("stat: {e}")))
}

async fn stat(state: &AppState, id: &str, path: String) -> ApiResult<(HeaderMap, RootfsLease)> {
    let lease = lease_for(state, id, &path).await?;
    let root = lease.path().to_path_buf();
    let name = lease.name.clone();
    let stat = tokio::task::spawn_blocking(move || cp::stat_path(&root, &path))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("stat: {e}")))?
        .map_err(|e| copy_error(e, &name))?;
    let mut headers = HeaderMap::new();
    headers.insert(STAT_HEADER, stat_header(&stat)?);
    Ok((headers, lease))
}

async fn head_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Response> {
    let (headers, lease) = stat(&state, &id, q.path()?).await?;
    // Dropped off the async thread: it may unmount.
    tokio::task::spawn_blocking(move || drop(lease));
    Ok((StatusCode::OK, headers).into_response())
}

async fn get_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Response> {
    let path = q.path()?;
    let (mut headers, lease) = stat(&state, &id, path.clone()).await?;
    let ids = lease.ids().clone();
    let body = stream_tar(lease, move |root, out| {
        cp::archive_path_as(root, &path, None, &ids, out)
    });
    state.engine.announce(&id, "archive-path")?;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok((headers, body).into_response())
}

async fn put_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
    body: Body,
) -> ApiResult<StatusCode> {
    let path = q.path()?;
    let lease = lease_for(&state, &id, &path).await?;
    if lease.read_only() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "container {} has a read-only root filesystem (--read-only): nothing can be copied into it",
                lease.name
            ),
        ));
    }
    let no_overwrite = flag(&q.no_overwrite_dir_non_dir);
    // As Docker: the archive's owners only with copyUIDGID, the container's root otherwise.
    let chown = (!flag(&q.copy_uid_gid)).then_some((0, 0));
    let stream = body.into_data_stream().map(|r| r.map_err(io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let ids = lease.ids().clone();
    blocking(lease, move |root| {
        cp::extract_into(root, &path, reader, no_overwrite, chown, &ids)
    })
    .await?;
    state.engine.announce(&id, "extract-to-dir")?;
    Ok(StatusCode::OK)
}

async fn export(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let lease = state.engine.rootfs_lease(&id).await?;
    let ids = lease.ids().clone();
    let body = stream_tar(lease, move |root, out| cp::export(root, &ids, out));
    state.engine.announce(&id, "export")?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// A body that `write` fills on a blocking thread; the lease is held until it is done.
/// An error after the first bytes can only cut the stream short, which the client sees.
fn stream_tar(
    lease: RootfsLease,
    write: impl FnOnce(&std::path::Path, &mut dyn Write) -> berth_build::Result<()> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    tokio::task::spawn_blocking(move || {
        let mut out = io::BufWriter::with_capacity(64 * 1024, ChannelWriter(tx.clone()));
        let written = write(lease.path(), &mut out).and_then(|()| {
            out.flush()
                .map_err(|e| berth_build::Error::Invalid(format!("send the archive: {e}")))
        });
        if let Err(e) = written {
            tracing::warn!("archive of container {}: {e}", lease.name);
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
        drop(out);
        drop(lease);
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Sends what is written to the response body; fails once the client is gone.
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_header_is_dockers_base64_json() {
        let stat = PathStat {
            name: "a.txt".into(),
            size: 5,
            mode: 0o644,
            mtime: (1_700_000_000, 5),
            link_target: String::new(),
        };
        let value = stat_header(&stat).unwrap();
        let json = base64::engine::general_purpose::STANDARD
            .decode(value.as_bytes())
            .unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["name"], "a.txt");
        assert_eq!(parsed["size"], 5);
        assert_eq!(parsed["mode"], 0o644);
        assert_eq!(parsed["mtime"], "2023-11-14T22:13:20.000000005Z");
        assert_eq!(parsed["linkTarget"], "");
    }

    #[test]
    fn missing_paths_are_404_naming_the_container() {
        let e = copy_error(berth_build::Error::PathNotFound("/x".into()), "web");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "Could not find the file /x in container web");
        let e = copy_error(berth_build::Error::Invalid("bad".into()), "web");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(ArchiveQuery::default().path().is_err());
    }
}
