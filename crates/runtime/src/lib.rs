//! berth-runtime: turns an OCI bundle (config.json + root filesystem) into an isolated,
//! resource-limited process, as the OCI runtime spec describes.
//!
//! The library is used in-process (by the CLI `berth-runtime` and later by berth's shim);
//! it never re-executes itself to set a container up: the container's init is a fork of the
//! caller (clone3 straight into its namespaces) that configures itself and then execs the
//! user's program. The caller must therefore be single-threaded when it creates or execs.

pub mod capabilities;
mod cgroup_mount;
mod clone;
pub mod console;
pub mod container;
pub mod error;
pub mod exe_guard;
pub mod exec;
pub mod hooks;
mod init;
pub mod launch;
mod mount_options;
pub mod name_service;
pub mod namespaces;
mod paths;
pub(crate) mod process;
pub mod reaper;
mod rootfs;
mod sched;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
mod sync;
mod wait;

pub use container::{Report, RunOutcome, Runtime};
pub use error::{Error, Result};
pub use exec::ExecOptions;
pub use init::{resume as resume_init, RESUME_ARG};
pub use launch::CreateOptions;
pub use state::Status;
