//! berth's engine: containers' whole lives above the runtime: the container object and its
//! store, the lifecycle (create, start, wait, stop, kill, remove) with each container's
//! network from the network crate, the shim that holds a running container (its stdio, its
//! log, its exit status) and outlives the daemon, the json-file log format Docker uses, and
//! the OCI runtimes a container may run with (the built-in one, or runc and others by their
//! command line).

pub mod archive;
pub mod attach;
pub mod changes;
pub mod container;
pub mod defaults;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod limits;
pub mod logdriver;
pub mod logs;
pub mod machine;
pub mod monitor;
pub mod oci;
pub mod resident;
pub mod runtimes;
pub mod seccomp;
pub mod shim;
pub mod size;
pub mod stats;
pub mod stdio;
pub mod store;
pub mod userns;
pub mod volumes;

pub use attach::{AttachOptions, Attachment};
pub use container::{Config, Container, RestartPolicy, Status};
pub use engine::{Engine, Settings, WaitCondition};
pub use error::{Error, Result};
pub use exec::{ExecConfig, ExecInfo};
pub use logdriver::LogConfig;
pub use runtimes::RuntimeCommand;
pub use stats::Stats;
