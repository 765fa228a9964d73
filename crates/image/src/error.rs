//! One error type for the crate. Every variant says what went wrong and, where the user can
//! act on it, what to do next: the CLI prints `Display` as the whole message.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error(
        "invalid digest {input:?}: {reason} (expected algorithm:hex, e.g. sha256:<64 hex digits>)"
    )]
    InvalidDigest { input: String, reason: String },

    #[error("{what} failed verification: expected {expected}, got {actual}; the source is corrupt or was changed in transit, retry or check the source")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },

    #[error("{what} has {actual} bytes, its descriptor says {expected}; the source is corrupt, retry or check the source")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("unsupported media type {0:?}; berth handles OCI and Docker schema2 images only")]
    UnsupportedMediaType(String),

    #[error("invalid {what}: {reason}")]
    InvalidManifest { what: String, reason: String },

    #[error("no image for platform {wanted} in the index (it has: {}); pick one with the platform option", available.join(", "))]
    NoMatchingPlatform {
        wanted: String,
        available: Vec<String>,
    },

    #[error(
        "invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
    )]
    InvalidPlatform(String),

    #[error("layer {layer} unpacks to diff ID {actual} but the image config says {expected}; the image is corrupt")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },

    #[error("refused layer entry {entry:?}: {reason}; the layer is malformed or hostile, nothing was written outside its snapshot")]
    HostileLayer { entry: String, reason: String },

    #[error("layer exceeds the {what} limit of {limit}; raise the unpack limits if the image is trusted")]
    LayerLimit { what: &'static str, limit: u64 },

    #[error("malformed layer tar: {0}")]
    LayerTar(String),

    #[error("registry {registry}: authentication required or refused ({detail}); run `berth login {registry}` with valid credentials")]
    Unauthorized { registry: String, detail: String },

    #[error("registry {registry}: {what} not found; check the name, tag or digest")]
    NotFound { registry: String, what: String },

    #[error("registry {registry} answered {status} to {method} {url}: {body}")]
    Registry {
        registry: String,
        method: String,
        url: String,
        status: u16,
        body: String,
    },

    #[error(
        "cannot reach registry {registry}: {source}; check the address and that it is running"
    )]
    Http {
        registry: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },

    #[error("no such image: {0}; `berth images` lists the local ones, `berth pull` fetches one")]
    ImageNotFound(String),

    #[error("reference {0} names more than one image; use the full image ID")]
    Ambiguous(String),

    #[error("image {image} is used by container(s) {}; remove them first or force the removal", users.join(", "))]
    ImageInUse { image: String, users: Vec<String> },

    #[error("invalid archive: {0}")]
    InvalidArchive(String),

    #[error("mount: {0}")]
    Mount(String),

    #[error("image database: {0}")]
    Db(#[from] rusqlite::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps a transport error with the registry it came from.
    pub fn http(registry: &str) -> impl FnOnce(reqwest::Error) -> Error + '_ {
        move |source| Error::Http {
            registry: registry.to_string(),
            source,
        }
    }

    /// Wraps an I/O error with what we were doing, so the message names the file.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn manifest(what: impl Into<String>, reason: impl ToString) -> Error {
        Error::InvalidManifest {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
