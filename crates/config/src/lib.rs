//! The daemon's configuration, as dockerd has it: a JSON file (`/etc/berth/daemon.json` by
//! default) with Docker's key names, and the same settings as `berth daemon` flags.
//!
//! - `model`: every key, its type and its default (`DaemonConfig`).
//! - `file`: reading the file (malformed JSON named by line and column, unknown keys by name).
//! - `sources`: flags and file merged into one configuration; a key set by both is an error.
//! - `checks`: the values parsed into what the daemon uses (subnets, ulimits, hosts), each
//!   error naming its key.
//! - `reload`: what changed between two configurations, and which changes apply live.

mod checks;
mod error;
mod file;
mod model;
mod reload;
mod sources;

pub use checks::{AddressPool, Bip, Checked, Host, Ulimit};
pub use error::{Error, Result};
pub use file::{read_file, DEFAULT_PATH};
pub use model::{DaemonConfig, PoolEntry, RuntimeEntry, UlimitEntry};
pub use reload::{after_reload, changes, Changes, LIVE_KEYS};
pub use sources::{load, Flags, Loaded};
