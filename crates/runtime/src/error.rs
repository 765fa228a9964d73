//! One error type for the runtime library. Every variant reads as one line a user can act on.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle or the caller asked for something invalid; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("container {0:?} does not exist (see `berth-runtime list`)")]
    NotFound(String),
    #[error("container {0:?} already exists: delete it first or choose another id")]
    Exists(String),
    #[error("container {id:?} is {status}: {hint}")]
    WrongState {
        id: String,
        status: String,
        hint: String,
    },
    #[error("{context} {path}: {source}")]
    Path {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        source: nix::errno::Errno,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("cgroups: {0}")]
    Cgroup(#[from] berth_cgroups::Error),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("capabilities: {0}")]
    Capability(String),
    #[error("hook {path}: {reason}")]
    Hook { path: String, reason: String },
    /// The container's init failed during setup; the message was sent back by the child.
    #[error("container init: {0}")]
    Init(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

/// Attach a short description of what was being done to a syscall or I/O failure.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for Result<T, nix::errno::Errno> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}
