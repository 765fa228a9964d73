//! The engine's errors: each one line that says what went wrong and what to do next.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    /// No such container (Docker's 404).
    #[error("no such container: {0} (see the container list for names and ids)")]
    NotFound(String),
    /// No such object of another kind (Docker's 404): the kind, and what was asked.
    #[error("no such {0}: {1}")]
    NotFoundOf(&'static str, String),
    /// No such exec instance (Docker's 404 on /exec/{id}).
    #[error("no such exec instance: {0}")]
    NoSuchExec(String),
    /// A conflict with the current state (Docker's 409).
    #[error("{0}")]
    Conflict(String),
    /// Something this container's configuration does not do (Docker's 501), such as reading
    /// the log of a container whose log driver keeps nothing.
    #[error("{0}")]
    NotImplemented(String),
    #[error(transparent)]
    Network(#[from] berth_network::Error),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: nix::Error },
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn sys(what: impl Into<String>, errno: nix::Error) -> Error {
        Error::Sys {
            what: what.into(),
            errno,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
