//! SIGHUP: the configuration file read again and merged with the daemon's flags; what dockerd
//! applies live is applied, every other change is named in the log as waiting for a restart,
//! and a file that does not load leaves the running configuration as it was.

use berth_config::{Flags, Loaded};

use crate::logging::Logging;
use crate::server::AppState;

/// Reloads on every SIGHUP, for as long as the daemon runs.
pub async fn on_sighup(state: AppState, flags: Flags, required: bool, logging: Logging) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot watch for SIGHUP: the configuration will not reload");
        return;
    };
    while hup.recv().await.is_some() {
        reload(&state, &flags, required, &logging);
    }
}

/// One reload: all of it applies, or none of it.
pub fn reload(state: &AppState, flags: &Flags, required: bool, logging: &Logging) {
    let old = state.config();
    let new = match berth_config::load(flags, &old.file, required) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(
                "reload of {} refused, the running configuration is kept: {e}",
                old.file.display()
            );
            return;
        }
    };
    let changes = berth_config::changes(&old.config, &new.config);
    if let Err(e) = apply(state, &new, &changes.live) {
        tracing::error!(
            "reload of {} refused, the running configuration is kept: {e}",
            old.file.display()
        );
        return;
    }
    logging.set_level(&new.checked.log_filter);
    for key in &changes.need_restart {
        tracing::warn!(
            "reload: {key} changed in {}; it takes effect when the daemon restarts",
            new.file.display()
        );
    }
    tracing::info!(
        "reloaded {}: {}",
        new.file.display(),
        if changes.live.is_empty() {
            "nothing to apply live".to_string()
        } else {
            format!("applied {}", changes.live.join(", "))
        }
    );
    // Keys that wait for a restart keep their running values until then.
    let running = berth_config::after_reload(&old, &new);
    *state.config.write().unwrap_or_else(|p| p.into_inner()) = running;
}

/// Applies the live keys that changed; an error leaves everything as it was.
fn apply(state: &AppState, new: &Loaded, live: &[String]) -> Result<(), String> {
    let registry = [
        "registry-mirrors",
        "insecure-registries",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
    ];
    if live
        .iter()
        .any(|k| k == "runtimes" || k == "default-runtime")
    {
        let c = &new.config;
        state
            .engine
            .set_runtimes(crate::settings::runtimes(c), &c.default_runtime)
            .map_err(|e| e.to_string())?;
    }
    if live.iter().any(|k| registry.contains(&k.as_str())) {
        state
            .engine
            .images()
            .set_transfers(&crate::settings::transfers(new));
    }
    Ok(())
}
