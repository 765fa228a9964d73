//! The daemon's own log (stderr), at a level a reload can change.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The handle that changes the log level of a running daemon.
#[derive(Clone)]
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl Logging {
    /// Installs the daemon's logger at `level` (debug, info, warn or error).
    pub fn init(level: &str) -> Logging {
        let (filter, handle) = reload::Layer::new(EnvFilter::new(level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false);
        // A logger installed already (a test's) keeps its place; this one then only holds
        // the level.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init();
        Logging { filter: handle }
    }

    pub fn set_level(&self, level: &str) {
        if let Err(e) = self.filter.reload(EnvFilter::new(level)) {
            tracing::warn!("could not change the log level to {level}: {e}");
        }
    }
}
