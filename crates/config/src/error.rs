//! One error type; each message is one line that says what is wrong and what to do.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {path}: {reason}: give the path of an existing file")]
    Read {
        path: String,
        reason: std::io::Error,
    },
    #[error("{path}:{line}:{column}: malformed JSON: {message}: fix the file and start again")]
    Malformed {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: the configuration must be a JSON object of settings, as {{\"debug\": true}}")]
    NotAnObject { path: String },
    #[error(
        "{path}: unknown key {key:?}: berth takes dockerd's daemon.json keys (see docs/configuration.md); remove it or fix its spelling"
    )]
    UnknownKey { path: String, key: String },
    #[error("the following directives are specified both as a flag and in the configuration file ({path}): {which}: remove one of them")]
    Conflict { path: String, which: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// An invalid value for `key`.
pub fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}
