//! A client for the OCI distribution API: manifests and blobs, pulled and pushed, with
//! Bearer-token and Basic authentication, resumable blob downloads and chunked, resumable
//! uploads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE,
    WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::auth::{parse_challenge, Challenge, CredentialStore, Credentials};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressSink};
use crate::store::BlobWriter;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (host[:port], or CIDRs of their addresses) that may be reached over plain
    /// HTTP, besides loopback ones.
    pub insecure: Vec<String>,
    /// Docker-format credentials file.
    pub credentials: PathBuf,
    /// Upload in chunks of this many bytes (PATCH) instead of one PUT.
    pub chunk_size: Option<u64>,
    /// Attempts at a blob transfer that fails half-way (each resumes where the last stopped).
    pub retries: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            credentials: CredentialStore::default_path(),
            chunk_size: None,
            retries: 3,
        }
    }
}

/// Where a blob push ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry already had it.
    Exists,
    /// Mounted from another repository of the same registry, nothing uploaded.
    Mounted {
        from: String,
    },
    Uploaded,
}

#[derive(Debug, Clone)]
enum Auth {
    Basic(String),
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub struct RegistryClient {
    http: reqwest::Client,
    opts: RegistryOptions,
    /// The daemon's insecure registries, which a reload may change.
    insecure: std::sync::RwLock<Vec<String>>,
    creds: CredentialStore,
    /// registry → "http" or "https", decided on first contact.
    schemes: Mutex<HashMap<String, &'static str>>,
    /// registry → how it wants to be authenticated, learnt from its challenge.
    auth: Mutex<HashMap<String, Auth>>,
    /// (registry, scope) → bearer token.
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// A repository on a registry, with the scope our requests need there.
#[derive(Debug, Clone)]
pub struct Repo<'a> {
    pub registry: &'a str,
    pub host: &'a str,
    pub name: &'a str,
}

impl Repo<'_> {
    fn scope(&self, push: bool) -> String {
        format!(
            "repository:{}:{}",
            self.name,
            if push { "pull,push" } else { "pull" }
        )
    }
}

impl RegistryClient {
    pub fn new(opts: RegistryOptions) -> Result<RegistryClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Http {
                registry: "-".into(),
                source: e,
            })?;
        let creds = CredentialStore::new(opts.credentials.clone());
        Ok(RegistryClient {
            http,
            insecure: std::sync::RwLock::new(opts.insecure.clone()),
            opts,
            creds,
            schemes: Mutex::default(),
            auth: Mutex::default(),
            tokens: Mutex::default(),
        })
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.creds
    }

    /// Replaces the insecure registries (a daemon reload); schemes already found are kept.
    pub fn set_insecure(&self, insecure: Vec<String>) {
        *self.insecure.write().unwrap_or_else(|p| p.into_inner()) = insecure;
    }

    /// Reaches `host` (host[:port]) with `scheme` from now on, without probing: a mirror
    /// configured as http://… is plain HTTP because the operator said so.
    pub fn set_scheme(&self, host: &str, scheme: &'static str) {
        self.schemes
            .lock()
            .unwrap()
            .insert(host.to_string(), scheme);
    }

    fn plain_http_allowed(&self, host: &str) -> bool {
        let bare = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
        };
        let ip = bare.parse::<IpAddr>().ok();
        let insecure = self.insecure.read().unwrap_or_else(|p| p.into_inner());
        let named = insecure.iter().any(|entry| {
            entry == host
                || entry == bare
                || match (entry.parse::<ipnet::IpNet>(), ip) {
                    (Ok(net), Some(ip)) => net.contains(&ip),
                    _ => false,
                }
        });
        named || bare == "localhost" || ip.is_some_and(|ip| ip.is_loopback())
    }

    /// HTTPS always first; plain HTTP only for loopback and named-insecure registries, and
    /// only when HTTPS does not answer there.
    async fn base(&self, host: &str) -> Result<String> {
        if let Some(s) = self.schemes.lock().unwrap().get(host) {
            return Ok(format!("{s}://{host}"));
        }
        let scheme = match self.http.get(format!("https://{host}/v2/")).send().await {
            Ok(_) => "https",
            Err(_) if self.plain_http_allowed(host) => "http",
            Err(e) => {
                return Err(Error::Http {
                    registry: host.to_string(),
                    source: e,
                })
            }
        };
        self.schemes
            .lock()
            .unwrap()
            .insert(host.to_string(), scheme);
        Ok(format!("{scheme}://{host}"))
    }

    fn cached_auth(&self, registry: &str, scope: &str) -> Option<String> {
        if let Some(t) = self
            .tokens
            .lock()
            .unwrap()
            .get(&(registry.to_string(), scope.to_string()))
        {
            return Some(format!("Bearer {t}"));
        }
        match self.auth.lock().unwrap().get(registry) {
            Some(Auth::Basic(h)) => Some(h.clone()),
            _ => None,
        }
    }

    /// Sends the request `build` makes, authenticating on a 401 challenge and trying once
    /// more. `build` is called again for the retry, so bodies must be re-creatable.
    async fn send(
        &self,
        registry: &str,
        scopes: &[String],
        build: &(dyn Fn() -> Result<RequestBuilder> + Sync),
    ) -> Result<Response> {
        let scope = scopes.join(" ");
        let mut req = build()?;
        let mut header = self.cached_auth(registry, &scope);
        let known = self.auth.lock().unwrap().get(registry).cloned();
        if let (None, Some(Auth::Bearer { realm, service })) = (&header, known) {
            // A new scope on a token registry: get its token first rather than send the
            // request (perhaps a large body) only to be told to.
            let creds = self.creds.get(registry)?;
            let token = self
                .fetch_token(registry, &realm, service.as_deref(), scopes, creds.as_ref())
                .await?;
            self.tokens
                .lock()
                .unwrap()
                .insert((registry.to_string(), scope.clone()), token.clone());
            header = Some(format!("Bearer {token}"));
        }
        if let Some(h) = header {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await.map_err(Error::http(registry))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let auth = self.authenticate(registry, &header, scopes).await?;
        let resp = build()?
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .map_err(Error::http(registry))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                registry: registry.to_string(),
                detail: error_body(resp).await,
            });
        }
        Ok(resp)
    }

    /// Answers a challenge: Basic with stored credentials, or a token from the realm.
    async fn authenticate(
        &self,
        registry: &str,
        header: &str,
        scopes: &[String],
    ) -> Result<String> {
        let creds = self.creds.get(registry)?;
        let unauthorized = |detail: &str| Error::Unauthorized {
            registry: registry.to_string(),
            detail: detail.to_string(),
        };
        match parse_challenge(header) {
            Some(Challenge::Basic) => {
                let c = creds.ok_or_else(|| {
                    unauthorized("the registry wants a user name and password and none are stored")
                })?;
                let h = c.basic_header();
                self.auth
                    .lock()
                    .unwrap()
                    .insert(registry.to_string(), Auth::Basic(h.clone()));
                Ok(h)
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                self.auth.lock().unwrap().insert(
                    registry.to_string(),
                    Auth::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    },
                );
                let token = self
                    .fetch_token(registry, &realm, service.as_deref(), scopes, creds.as_ref())
                    .await?;
                self.tokens
                    .lock()
                    .unwrap()
                    .insert((registry.to_string(), scopes.join(" ")), token.clone());
                Ok(format!("Bearer {token}"))
            }
            None => Err(unauthorized(&format!("unsupported challenge {header:?}"))),
        }
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some(c) = creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req.send().await.map_err(Error::http(registry))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(Error::Unauthorized {
                registry: registry.to_string(),
                detail: format!(
                    "token server {realm} answered {status}: {}",
                    error_body(resp).await
                ),
            });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = resp.bytes().await.map_err(Error::http(registry))?;
        let t: Token = serde_json::from_slice(&body).map_err(|e| Error::Unauthorized {
            registry: registry.to_string(),
            detail: format!("token server sent no token ({e})"),
        })?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Unauthorized {
                registry: registry.to_string(),
                detail: "token server sent an empty token".into(),
            })
    }

    /// Checks that the registry accepts these credentials (for `login`): GET /v2/ with them.
    pub async fn check_login(&self, registry: &str, host: &str, creds: &Credentials) -> Result<()> {
        let base = self.base(host).await?;
        let url = format!("{base}/v2/");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(Error::http(registry))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return ok_or_error(resp, registry, "GET", &url, "registry API")
                .await
                .map(drop);
        }
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let auth = match parse_challenge(&header) {
            Some(Challenge::Bearer { realm, service, .. }) => format!(
                "Bearer {}",
                self.fetch_token(registry, &realm, service.as_deref(), &[], Some(creds))
                    .await?
            ),
            _ => creds.basic_header(),
        };
        let resp = self
            .http
            .get(&url)
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .map_err(Error::http(registry))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                registry: registry.to_string(),
                detail: "user name or password refused".into(),
            });
        }
        ok_or_error(resp, registry, "GET", &url, "registry API")
            .await
            .map(drop)
    }

    /// Fetches a manifest by tag or digest: its bytes, media type and digest (computed; when
    /// asked by digest, checked against it).
    pub async fn get_manifest(
        &self,
        repo: &Repo<'_>,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let base = self.base(repo.host).await?;
        let url = format!("{base}/v2/{}/manifests/{reference}", repo.name);
        let resp = self
            .send(repo.registry, &[repo.scope(false)], &|| {
                Ok(self.http.get(&url).header(ACCEPT, crate::manifest::ACCEPT))
            })
            .await?;
        let resp = ok_or_error(
            resp,
            repo.registry,
            "GET",
            &url,
            &format!("manifest {}:{reference}", repo.name),
        )
        .await?;
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .bytes()
            .await
            .map_err(Error::http(repo.registry))?
            .to_vec();
        let digest = Digest::of(&bytes);
        if let Ok(want) = reference.parse::<Digest>() {
            let actual = if want.algorithm() == digest.algorithm() {
                digest.clone()
            } else {
                crate::digest::digest_with(want.algorithm(), &bytes)
            };
            if actual != want {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {}", repo.name),
                    expected: want,
                    actual,
                });
            }
        }
        Ok((bytes, ct, digest))
    }

    /// Downloads blob `digest` into `w`, resuming from `w.offset()` and again after a
    /// transfer breaks off, up to the configured retries.
    pub async fn fetch_blob(
        &self,
        repo: &Repo<'_>,
        digest: &Digest,
        size: u64,
        w: &mut BlobWriter,
        progress: &ProgressSink,
    ) -> Result<()> {
        let base = self.base(repo.host).await?;
        let url = format!("{base}/v2/{}/blobs/{digest}", repo.name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .fetch_blob_once(repo, &url, digest, size, w, progress)
                .await
            {
                Err(Error::Http { source, .. })
                    if attempt <= self.opts.retries
                        && (source.is_body()
                            || source.is_decode()
                            || source.is_timeout()
                            || source.is_connect()) =>
                {
                    tracing::warn!(
                        "download of {digest} broke off ({source}); resuming at byte {}",
                        w.offset()
                    );
                }
                r => return r,
            }
        }
    }

    async fn fetch_blob_once(
        &self,
        repo: &Repo<'_>,
        url: &str,
        digest: &Digest,
        size: u64,
        w: &mut BlobWriter,
        progress: &ProgressSink,
    ) -> Result<()> {
        let offset = w.offset();
        if size > 0 && offset >= size {
            return Ok(());
        }
        let resp = self
            .send(repo.registry, &[repo.scope(false)], &|| {
                let r = self.http.get(url);
                Ok(if offset > 0 {
                    r.header(RANGE, format!("bytes={offset}-"))
                } else {
                    r
                })
            })
            .await?;
        let mut resp = match resp.status() {
            StatusCode::PARTIAL_CONTENT => resp,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // What we hold is not a prefix the server recognises: start over.
                w.restart()?;
                return Box::pin(self.fetch_blob_once(repo, url, digest, size, w, progress)).await;
            }
            _ => {
                let resp =
                    ok_or_error(resp, repo.registry, "GET", url, &format!("blob {digest}")).await?;
                if offset > 0 {
                    w.restart()?;
                }
                resp
            }
        };
        use std::io::Write;
        while let Some(chunk) = resp.chunk().await.map_err(Error::http(repo.registry))? {
            w.write_all(&chunk)
                .map_err(Error::io(format!("write blob {digest}")))?;
            if size > 0 && w.offset() > size {
                return Err(Error::SizeMismatch {
                    what: format!("blob {digest}"),
                    expected: size,
                    actual: w.offset(),
                });
            }
            progress.send(Progress::Bytes {
                digest: digest.clone(),
                done: w.offset(),
                total: size,
            });
        }
        Ok(())
    }

    /// Whether the repository has the blob.
    pub async fn blob_exists(&self, repo: &Repo<'_>, digest: &Digest) -> Result<bool> {
        let base = self.base(repo.host).await?;
        let url = format!("{base}/v2/{}/blobs/{digest}", repo.name);
        let resp = self
            .send(repo.registry, &[repo.scope(true)], &|| {
                Ok(self.http.head(&url))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => ok_or_error(resp, repo.registry, "HEAD", &url, &format!("blob {digest}"))
                .await
                .map(|_| false),
        }
    }

    /// Pushes the blob stored at `path`: nothing if the registry has it, a cross-repository
    /// mount if it is in one of `mount_from`, else an upload.
    pub async fn push_blob(
        &self,
        repo: &Repo<'_>,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: &[String],
        progress: &ProgressSink,
    ) -> Result<BlobPush> {
        if self.blob_exists(repo, digest).await? {
            return Ok(BlobPush::Exists);
        }
        let base = self.base(repo.host).await?;
        let mut location = None;
        for from in mount_from.iter().filter(|f| f.as_str() != repo.name) {
            let url = format!(
                "{base}/v2/{}/blobs/uploads/?mount={digest}&from={from}",
                repo.name
            );
            let scopes = [repo.scope(true), format!("repository:{from}:pull")];
            let resp = self
                .send(repo.registry, &scopes, &|| {
                    Ok(self.http.post(&url).header(CONTENT_LENGTH, 0))
                })
                .await?;
            match resp.status() {
                StatusCode::CREATED => return Ok(BlobPush::Mounted { from: from.clone() }),
                // Not mounted, but an upload session was opened for us: use it.
                StatusCode::ACCEPTED => {
                    location = Some(self.location(&base, resp.headers())?);
                    break;
                }
                _ => tracing::debug!("mount of {digest} from {from} refused ({})", resp.status()),
            }
        }
        let location = match location {
            Some(l) => l,
            None => self.start_upload(repo, &base).await?,
        };
        match self.opts.chunk_size {
            Some(chunk) => {
                self.upload_chunked(repo, &base, location, digest, size, path, chunk, progress)
                    .await?
            }
            None => {
                self.upload_monolithic(repo, &location, digest, size, path, progress)
                    .await?
            }
        }
        Ok(BlobPush::Uploaded)
    }

    async fn start_upload(&self, repo: &Repo<'_>, base: &str) -> Result<String> {
        let url = format!("{base}/v2/{}/blobs/uploads/", repo.name);
        let resp = self
            .send(repo.registry, &[repo.scope(true)], &|| {
                Ok(self.http.post(&url).header(CONTENT_LENGTH, 0))
            })
            .await?;
        let resp = ok_or_error(resp, repo.registry, "POST", &url, "upload").await?;
        self.location(base, resp.headers())
    }

    fn location(&self, base: &str, headers: &HeaderMap) -> Result<String> {
        let loc = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Registry {
                registry: base.to_string(),
                method: "POST".into(),
                url: base.to_string(),
                status: 202,
                body: "upload accepted without a Location header".into(),
            })?;
        if !(loc.starts_with("http://") || loc.starts_with("https://")) {
            return Ok(format!("{base}{loc}"));
        }
        // Our credentials go with requests to this URL: only to the registry's own host.
        let host = |u: &str| {
            reqwest::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
        };
        if host(loc) != host(base) {
            return Err(Error::Registry {
                registry: base.to_string(),
                method: "POST".into(),
                url: base.to_string(),
                status: 202,
                body: format!(
                    "upload location {loc} is on another host; refusing to send credentials there"
                ),
            });
        }
        Ok(loc.to_string())
    }

    fn with_digest(location: &str, digest: &Digest) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    }

    async fn upload_monolithic(
        &self,
        repo: &Repo<'_>,
        location: &str,
        digest: &Digest,
        size: u64,
        path: &Path,
        progress: &ProgressSink,
    ) -> Result<()> {
        let url = Self::with_digest(location, digest);
        let resp = self
            .send(repo.registry, &[repo.scope(true)], &|| {
                let file =
                    std::fs::File::open(path).map_err(Error::io(format!("open blob {digest}")))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    1 << 16,
                );
                Ok(self
                    .http
                    .put(&url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(stream)))
            })
            .await?;
        ok_or_error(resp, repo.registry, "PUT", &url, &format!("blob {digest}")).await?;
        progress.send(Progress::Bytes {
            digest: digest.clone(),
            done: size,
            total: size,
        });
        Ok(())
    }

    /// PATCH chunk after chunk; when one fails, asks the session how much it has (GET on
    /// the upload URL, `Range: 0-N`) and goes on from there.
    #[allow(clippy::too_many_arguments)]
    async fn upload_chunked(
        &self,
        repo: &Repo<'_>,
        base: &str,
        mut location: String,
        digest: &Digest,
        size: u64,
        path: &Path,
        chunk: u64,
        progress: &ProgressSink,
    ) -> Result<()> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(Error::io(format!("open blob {digest}")))?;
        let mut offset = 0u64;
        let mut failures = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let mut buf = vec![0u8; len as usize];
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(Error::io("seek blob"))?;
            file.read_exact(&mut buf)
                .await
                .map_err(Error::io("read blob"))?;
            let range = format!("{}-{}", offset, offset + len - 1);
            let loc = location.clone();
            let body = buf.clone();
            let resp = self
                .send(repo.registry, &[repo.scope(true)], &|| {
                    Ok(self
                        .http
                        .patch(&loc)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.clone())
                        .header(CONTENT_LENGTH, len)
                        .body(body.clone()))
                })
                .await;
            match resp {
                Ok(r) if r.status() == StatusCode::ACCEPTED => {
                    location = self.location(base, r.headers())?;
                    offset += len;
                    progress.send(Progress::Bytes {
                        digest: digest.clone(),
                        done: offset,
                        total: size,
                    });
                }
                other => {
                    failures += 1;
                    if failures > self.opts.retries {
                        return match other {
                            Ok(r) => ok_or_error(
                                r,
                                repo.registry,
                                "PATCH",
                                &loc,
                                &format!("blob {digest}"),
                            )
                            .await
                            .map(drop),
                            Err(e) => Err(e),
                        };
                    }
                    offset = self.upload_status(repo, &location).await?;
                    tracing::warn!("chunk of {digest} failed; resuming upload at byte {offset}");
                }
            }
        }
        let url = Self::with_digest(&location, digest);
        let resp = self
            .send(repo.registry, &[repo.scope(true)], &|| {
                Ok(self.http.put(&url).header(CONTENT_LENGTH, 0))
            })
            .await?;
        ok_or_error(resp, repo.registry, "PUT", &url, &format!("blob {digest}"))
            .await
            .map(drop)
    }

    /// How many bytes an upload session holds.
    async fn upload_status(&self, repo: &Repo<'_>, location: &str) -> Result<u64> {
        let resp = self
            .send(repo.registry, &[repo.scope(true)], &|| {
                Ok(self.http.get(location))
            })
            .await?;
        let resp = ok_or_error(resp, repo.registry, "GET", location, "upload status").await?;
        let range = resp
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0-0");
        let end = range
            .rsplit('-')
            .next()
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(if range == "0-0" { 0 } else { end + 1 })
    }

    /// Puts a manifest under a tag or digest; returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &Repo<'_>,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let base = self.base(repo.host).await?;
        let url = format!("{base}/v2/{}/manifests/{reference}", repo.name);
        let resp = self
            .send(repo.registry, &[repo.scope(true)], &|| {
                Ok(self
                    .http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec()))
            })
            .await?;
        ok_or_error(
            resp,
            repo.registry,
            "PUT",
            &url,
            &format!("manifest {}:{reference}", repo.name),
        )
        .await?;
        Ok(Digest::of(bytes))
    }
}

/// The registry's error message: the first `errors[].message` of a distribution-spec error
/// body, or the start of whatever it sent.
async fn error_body(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_str::<Errors>(&text) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i.code.as_deref().unwrap_or(""),
                    i.message.as_deref().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => text.chars().take(300).collect(),
    }
}

async fn ok_or_error(
    resp: Response,
    registry: &str,
    method: &str,
    url: &str,
    what: &str,
) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    match status {
        StatusCode::NOT_FOUND => Err(Error::NotFound {
            registry: registry.to_string(),
            what: what.to_string(),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::Unauthorized {
            registry: registry.to_string(),
            detail: error_body(resp).await,
        }),
        _ => Err(Error::Registry {
            registry: registry.to_string(),
            method: method.into(),
            url: url.into(),
            status: status.as_u16(),
            body: error_body(resp).await,
        }),
    }
}
