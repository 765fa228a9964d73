//! The API's streaming shapes: JSON lines (events, pull progress, build output), Docker's
//! 8-byte multiplexed frames (logs, attach), hijacked connections (`Upgrade: tcp`, 101), and
//! Docker's `filters` query parameter.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::error::{ApiError, ApiResult};

/// A response whose body is one JSON value per line, sent as they come on the channel.
pub fn json_lines() -> (mpsc::Sender<serde_json::Value>, Response) {
    let (tx, rx) = mpsc::channel::<serde_json::Value>(64);
    let stream = ReceiverStream::new(rx).map(|v| {
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (tx, response)
}

/// A response whose body is the bytes sent on the channel, as they come.
pub fn byte_stream(content_type: &'static str) -> (mpsc::Sender<Bytes>, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (tx, response)
}

pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
pub const RAW: &str = "application/vnd.docker.raw-stream";

/// Stream numbers in a frame's first byte.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// One frame: stream, three zero bytes, the payload's length (big-endian), the payload.
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Takes over the connection (`Upgrade: tcp` → 101 Switching Protocols) and hands it to
/// `serve` once the client has it; without an upgrade header the answer is an error.
pub fn hijack<F, Fut>(mut req: Request, content_type: &'static str, serve: F) -> ApiResult<Response>
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants_upgrade {
        return Err(ApiError::bad_request(
            "this endpoint takes over the connection: send 'Connection: Upgrade' and 'Upgrade: tcp'",
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let connection = req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::server::Connection>>()
        .and_then(|c| c.0 .0.clone());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Some(socket) = connection {
                    headers_read(&socket).await;
                }
                serve(TokioIo::new(upgraded)).await
            }
            Err(e) => tracing::warn!("taking over an attach connection: {e}"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// Waits (a second at most) until the client has read the 101 answer off the socket.
/// Clients such as docker-py read the answer through a buffered reader and then read the
/// raw socket, so bytes that arrived together with the answer would be lost to them; the
/// output of a quick `exec` otherwise often is (docker/docker-py#2042, with dockerd too).
async fn headers_read(socket: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) on a socket we hold writes one int: the bytes sent
        // on it that the peer has not read yet.
        let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut unread) };
        if rc != 0 || unread == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
        // The kernel has no event for "the peer has read": poll the count, backing off.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(10));
    }
}

/// Joins a hijacked client connection to an attachment: its input goes to the process's
/// stdin, the process's output comes back; when the output ends, `before_close` runs, then
/// the connection ends.
pub async fn splice<C, F>(client: C, attachment: tokio::net::UnixStream, before_close: F)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    F: std::future::Future<Output = ()>,
{
    use tokio::io::AsyncWriteExt;
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut out, mut input) = attachment.into_split();
    let stdin = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut input).await;
        // The client is done writing: the shim sees stdin closed (stdin_once).
        let _ = input.shutdown().await;
    });
    let _ = tokio::io::copy(&mut out, &mut client_write).await;
    before_close.await;
    let _ = client_write.shutdown().await;
    stdin.abort();
}

/// Docker's `filters`: a JSON object from names to lists of values (or, in old clients, to
/// objects whose keys are the values).
#[derive(Debug, Default)]
pub struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> ApiResult<Filters> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let bad = |e: String| {
            ApiError::bad_request(format!(
                "invalid filters {raw:?}: {e}; give a JSON object such as {{\"name\":[\"web\"]}}"
            ))
        };
        let value: HashMap<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let mut out = HashMap::new();
        for (key, v) in value {
            let values = match v {
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| bad(format!("{key} has a value that is not a string")))
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
                serde_json::Value::Object(o) => o.into_iter().map(|(k, _)| k).collect(),
                _ => return Err(bad(format!("{key} is neither a list nor an object"))),
            };
            out.insert(key, values);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(key).map(Vec::as_slice)
    }

    /// True when the filter is absent or one of its values equals one of `candidates`.
    pub fn matches(&self, key: &str, candidates: &[&str]) -> bool {
        self.get(key)
            .is_none_or(|values| values.iter().any(|v| candidates.contains(&v.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_length() {
        let f = frame(STDERR, b"hi\n");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
    }

    #[test]
    fn filters_read_both_of_dockers_shapes() {
        let f = Filters::parse(Some(r#"{"status":["running"],"name":{"web":true}}"#)).unwrap();
        assert!(f.matches("status", &["running"]));
        assert!(!f.matches("status", &["exited"]));
        assert!(f.matches("name", &["web"]));
        assert!(f.matches("label", &["anything"]));
        assert!(Filters::parse(Some("[1]")).is_err());
        assert!(Filters::parse(Some(r#"{"a":[1]}"#)).is_err());
        assert!(Filters::parse(None).unwrap().matches("x", &[]));
    }
}
