//! What a reload (SIGHUP) may change: the keys dockerd applies live. A change to any other key
//! waits for a restart, and the daemon says so in its log.

use serde_json::Value;

use crate::model::DaemonConfig;
use crate::sources::Loaded;

/// The keys a running daemon takes from a re-read file.
pub const LIVE_KEYS: &[&str] = &[
    "debug",
    "log-level",
    "registry-mirrors",
    "insecure-registries",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "default-runtime",
    "runtimes",
    "labels",
    "shutdown-timeout",
];

/// The keys whose values differ, split into those applied live and those needing a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub live: Vec<String>,
    pub need_restart: Vec<String>,
}

pub fn changes(old: &DaemonConfig, new: &DaemonConfig) -> Changes {
    let (Ok(Value::Object(old)), Ok(Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Changes::default();
    };
    let mut out = Changes::default();
    for (key, value) in &new {
        if old.get(key) == Some(value) {
            continue;
        }
        if LIVE_KEYS.contains(&key.as_str()) {
            out.live.push(key.clone());
        } else {
            out.need_restart.push(key.clone());
        }
    }
    out
}

/// The configuration a daemon runs with after a reload: `new`'s live keys, `old`'s values for
/// the keys that wait for a restart.
pub fn after_reload(old: &Loaded, new: &Loaded) -> Loaded {
    let (Ok(Value::Object(mut running)), Ok(Value::Object(fresh))) = (
        serde_json::to_value(&old.config),
        serde_json::to_value(&new.config),
    ) else {
        return old.clone();
    };
    for key in LIVE_KEYS {
        if let Some(v) = fresh.get(*key) {
            running.insert(key.to_string(), v.clone());
        }
    }
    let Ok(config) = serde_json::from_value::<DaemonConfig>(Value::Object(running)) else {
        return old.clone();
    };
    match crate::checks::check(&config) {
        Ok(checked) => Loaded {
            config,
            checked,
            file: new.file.clone(),
            file_keys: new.file_keys.clone(),
        },
        Err(_) => old.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_split_into_live_and_restart() {
        let old = DaemonConfig::default();
        let mut new = old.clone();
        new.debug = true;
        new.registry_mirrors = vec!["http://127.0.0.1:5001".into()];
        new.icc = false;
        let c = changes(&old, &new);
        assert_eq!(c.live, ["debug", "registry-mirrors"]);
        assert_eq!(c.need_restart, ["icc"]);
        assert_eq!(changes(&old, &old), Changes::default());
    }

    #[test]
    fn after_a_reload_only_live_keys_take_new_values() {
        let old = crate::sources::load(
            &Default::default(),
            std::path::Path::new("/nonexistent/d.json"),
            false,
        )
        .unwrap();
        let mut new = old.clone();
        new.config.debug = true;
        new.config.icc = false;
        new.checked = crate::checks::check(&new.config).unwrap();
        let running = after_reload(&old, &new);
        assert!(running.config.debug && running.config.icc);
        assert_eq!(running.checked.log_filter, "debug");
    }

    #[test]
    fn every_live_key_is_a_key() {
        let keys = DaemonConfig::keys();
        for k in LIVE_KEYS {
            assert!(keys.iter().any(|key| key == k), "{k}");
        }
    }
}
