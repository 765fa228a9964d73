//! berth's engine: containers' whole lives above the runtime. So far the part that outlives
//! the daemon: the shim that holds a running container (its stdio, its log, its exit status),
//! and the json-file log format Docker uses.

pub mod error;
pub mod logs;
pub mod shim;

pub use error::{Error, Result};
