//! berth-runtime: turns an OCI bundle (config.json + root filesystem) into an isolated,
//! resource-limited process, as the OCI runtime spec describes.
//!
//! The library is used in-process (by the CLI `berth-runtime` and later by berth's shim);
//! it never re-executes itself to set a container up: the container's init is a fork of the
//! caller that configures itself and then execs the user's program.

pub mod error;

pub use error::{Error, Result};
pub mod capabilities;
pub mod console;
pub mod hooks;
pub mod seccomp;
pub mod spec;
