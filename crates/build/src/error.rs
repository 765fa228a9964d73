//! Errors of the build context, `.dockerignore` and COPY/ADD.
//!
//! Each message is one line that says what went wrong and, where it is not obvious, what
//! to do about it; the builder shows them to the user as they are.

use std::io;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        ".dockerignore line {line}: bad pattern `{pattern}`: {reason}; fix or remove the line"
    )]
    BadPattern {
        line: usize,
        pattern: String,
        reason: &'static str,
    },

    #[error("COPY failed: no source files were specified")]
    NoSources,

    #[error("COPY failed: file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    SourceNotFound(String),

    #[error("COPY {0}: the path leads out of the build context through a symlink; copy the link's target into the context instead")]
    SourceEscapes(String),

    #[error("COPY {source_name}: {reason}")]
    BadSource { source_name: String, reason: String },

    #[error("When using COPY with more than one source file, the destination must be a directory and end with a /")]
    DestNotDir,

    #[error("COPY to {dest}: {reason}")]
    Dest { dest: String, reason: String },

    #[error("ADD {source_name}: {reason}")]
    Archive { source_name: String, reason: String },

    #[error("--chown={spec}: {reason}")]
    Chown { spec: String, reason: String },

    #[error("--chmod={0}: not an octal mode; write it like 755 or 0644")]
    Chmod(String),

    /// A Dockerfile that does not parse.
    #[error(transparent)]
    Parse(#[from] crate::dockerfile::ParseError),

    /// Bad input to the build (an option, an instruction's operands), said in full.
    #[error("{0}")]
    Invalid(String),

    /// A path `docker cp` names that is not in the container (Docker's 404).
    #[error("Could not find the file {0} in the container")]
    PathNotFound(String),

    /// A step that failed (a RUN's non-zero exit).
    #[error("{0}")]
    Step(String),

    #[error("build cache: {0}")]
    Cache(String),

    #[error(transparent)]
    Engine(#[from] berth_engine::Error),

    #[error(transparent)]
    Image(#[from] berth_image::Error),

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An I/O error on `what` (e.g. "read build context file app/x.txt").
    pub(crate) fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// `map_err` helper: `.map_err(io_err("open", &path))`.
pub(crate) fn io_err<E: Into<io::Error>>(
    verb: &str,
    what: impl std::fmt::Display,
) -> impl FnOnce(E) -> Error {
    let what = format!("{verb} {what}");
    move |e| Error::io(what, e)
}
