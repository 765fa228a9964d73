//! The Docker Engine API client: one HTTP/1.1 connection per request over the daemon's unix
//! socket, JSON bodies, streamed bodies, and the hijacked (upgraded) connection of attach/exec.

use std::fmt;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::UnixStream;

/// The API version every path is prefixed with.
pub const API_VERSION: &str = "1.41";
/// Where the daemon listens unless `-H` or `BERTH_HOST` say otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// An error answered by the daemon: its `{"message": ...}` text and the HTTP status.
#[derive(Debug)]
pub struct DaemonError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

/// The daemon's socket could not be reached.
#[derive(Debug)]
pub struct Unreachable(pub PathBuf);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach the berth daemon at {}: start it with `berth daemon` or set BERTH_HOST",
            self.0.display()
        )
    }
}

impl std::error::Error for Unreachable {}

/// A request body: nothing, JSON, or raw bytes of a content type (tar archives).
pub enum Body {
    Empty,
    Json(Value),
    Raw(Bytes, &'static str),
}

/// The client of one daemon.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    /// The X-Registry-Auth header for pull and push, when logged in.
    pub registry_auth: Option<String>,
}

impl Client {
    /// A client for `unix:///path` (or a bare path).
    pub fn new(host: &str) -> Result<Self> {
        let path = match host.strip_prefix("unix://") {
            Some(p) => p,
            None if host.starts_with('/') => host,
            None => {
                return Err(anyhow!(
                    "unsupported host {host:?}: use unix:///path/to/socket"
                ))
            }
        };
        Ok(Client {
            socket: PathBuf::from(path),
            registry_auth: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|_| Unreachable(self.socket.clone()))?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the daemon")?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn build(&self, method: Method, path: &str, body: Body) -> Result<Request<Full<Bytes>>> {
        let builder = Request::builder()
            .method(method)
            .uri(format!("/v{API_VERSION}{path}"))
            .header("Host", "berth")
            .header(
                "User-Agent",
                concat!("berth-cli/", env!("CARGO_PKG_VERSION")),
            );
        let builder = match &self.registry_auth {
            Some(auth) => builder.header("X-Registry-Auth", auth),
            None => builder,
        };
        let req = match body {
            Body::Empty => builder.body(Full::new(Bytes::new())),
            Body::Json(v) => builder
                .header("Content-Type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&v)?))),
            Body::Raw(b, ct) => builder.header("Content-Type", ct).body(Full::new(b)),
        };
        Ok(req?)
    }

    /// Sends a request and returns the response whatever its status.
    pub async fn raw(&self, method: Method, path: &str, body: Body) -> Result<Response<Incoming>> {
        let req = self.build(method, path, body)?;
        let mut sender = self.connect().await?;
        let res = sender
            .send_request(req)
            .await
            .context("the daemon closed the connection")?;
        Ok(res)
    }

    /// Sends a request; a status of 400 or more becomes a [`DaemonError`].
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>> {
        let res = self.raw(method, path, body).await?;
        check(res).await
    }

    /// Sends a request and returns the whole body.
    pub async fn send(&self, method: Method, path: &str, body: Body) -> Result<Bytes> {
        let res = self.stream(method, path, body).await?;
        Ok(res.into_body().collect().await?.to_bytes())
    }

    /// Sends a request and decodes its JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<T> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes).context("the daemon's answer is not the JSON expected")
    }

    /// GET returning JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(Method::GET, path, Body::Empty).await
    }

    /// POST without a body, answer ignored.
    pub async fn post(&self, path: &str) -> Result<()> {
        self.send(Method::POST, path, Body::Empty).await.map(drop)
    }

    /// DELETE, answer ignored.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.send(Method::DELETE, path, Body::Empty).await.map(drop)
    }

    /// POST with `Upgrade: tcp`; after `101 Switching Protocols` the connection is a raw
    /// bidirectional stream (attach, exec start).
    pub async fn hijack(
        &self,
        path: &str,
        body: Body,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let mut req = self.build(Method::POST, path, body)?;
        let headers = req.headers_mut();
        headers.insert("Connection", "Upgrade".parse()?);
        headers.insert("Upgrade", "tcp".parse()?);
        let mut sender = self.connect().await?;
        let res = sender
            .send_request(req)
            .await
            .context("the daemon closed the connection")?;
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            let res = check(res).await?;
            return Err(anyhow!(
                "the daemon answered {} instead of upgrading the connection",
                res.status()
            ));
        }
        let upgraded = hyper::upgrade::on(res)
            .await
            .context("upgrading the connection")?;
        Ok(TokioIo::new(upgraded))
    }
}

/// Turns an error status into a [`DaemonError`] carrying the daemon's message.
async fn check(res: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = res.status();
    if status.as_u16() < 400 {
        return Ok(res);
    }
    let bytes = res.into_body().collect().await?.to_bytes();
    Err(DaemonError {
        status: status.as_u16(),
        message: error_message(&bytes),
    }
    .into())
}

/// The text of an error body: Docker's `{"message": ...}`, or the body itself.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// Reads the next chunk of a streamed body, `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Writes a streamed body (an image archive, an export) to `output`, or to stdout.
pub async fn save_body(res: Response<Incoming>, output: Option<&std::path::Path>) -> Result<()> {
    use std::io::Write;
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut body = res.into_body();
    while let Some(chunk) = next_chunk(&mut body).await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

/// Splits a body of newline-delimited JSON objects (progress, events, stats) as it arrives.
pub struct JsonLines {
    body: Incoming,
    buf: Vec<u8>,
}

impl JsonLines {
    pub fn new(res: Response<Incoming>) -> Self {
        JsonLines {
            body: res.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next JSON object, `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(v) = take_json_line(&mut self.buf)? {
                return Ok(Some(v));
            }
            match next_chunk(&mut self.body).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    let text = String::from_utf8_lossy(&rest);
                    if text.trim().is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(serde_json::from_str(text.trim())?));
                }
            }
        }
    }
}

fn take_json_line(buf: &mut Vec<u8>) -> Result<Option<Value>> {
    while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=pos).collect();
        let text = String::from_utf8_lossy(&line);
        if !text.trim().is_empty() {
            return Ok(Some(serde_json::from_str(text.trim())?));
        }
    }
    Ok(None)
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes a name for a path (image references keep their `/`, `:` and `@`).
pub fn enc_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, values encoded; empty values are left out.
pub fn query(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_the_message() {
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(error_message(b"plain\n"), "plain");
    }

    #[test]
    fn json_lines_split_across_chunks() {
        let mut buf = br#"{"a":1}"#.to_vec();
        assert!(take_json_line(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\n\n{\"b\":2}\n");
        assert_eq!(take_json_line(&mut buf).unwrap().unwrap()["a"], 1);
        assert_eq!(take_json_line(&mut buf).unwrap().unwrap()["b"], 2);
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            query(&[("a", "x y".into()), ("b", String::new())]),
            "?a=x%20y"
        );
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn hosts() {
        assert!(Client::new("unix:///run/x.sock").is_ok());
        assert!(Client::new("tcp://1.2.3.4:2375").is_err());
    }
}
