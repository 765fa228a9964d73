//! Flags and file merged into one configuration, as dockerd merges them: a key may come from
//! either, never from both.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::checks::{self, Checked};
use crate::error::{invalid, Error, Result};
use crate::file::read_file;
use crate::model::DaemonConfig;

/// The settings given as flags, under their daemon.json keys (only those the user set).
pub type Flags = Map<String, Value>;

/// A configuration as loaded: the merged settings, their checked forms, and where they came
/// from (for reload, which reads the file again and keeps the flags).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: DaemonConfig,
    pub checked: Checked,
    pub file: PathBuf,
    /// The keys the file set (for the log, and for reload's "what changed").
    pub file_keys: Vec<String>,
}

/// Reads `file` (which must exist when `required`), merges it with `flags`, and checks the
/// result.
pub fn load(flags: &Flags, file: &Path, required: bool) -> Result<Loaded> {
    let from_file = read_file(file, required)?.unwrap_or_default();
    let config = merge(flags, &from_file, &file.display().to_string())?;
    let checked = checks::check(&config)?;
    Ok(Loaded {
        config,
        checked,
        file: file.to_path_buf(),
        file_keys: from_file.keys().cloned().collect(),
    })
}

/// One configuration from both sources; a key in both is an error naming each such key with
/// both values.
pub fn merge(flags: &Flags, file: &Map<String, Value>, path: &str) -> Result<DaemonConfig> {
    let both: Vec<String> = flags
        .iter()
        .filter_map(|(k, v)| {
            file.get(k)
                .map(|f| format!("{k}: (from flag: {}, from file: {})", show(v), show(f)))
        })
        .collect();
    if !both.is_empty() {
        return Err(Error::Conflict {
            path: path.to_string(),
            which: both.join(", "),
        });
    }
    let mut merged = file.clone();
    merged.extend(flags.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Each key alone first, so a value of the wrong type is reported under its key.
    for (key, value) in &merged {
        let one = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if let Err(e) = serde_json::from_value::<DaemonConfig>(one) {
            return Err(invalid(
                key,
                format!("{e} (from {})", origin(key, flags, path)),
            ));
        }
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| invalid("configuration", e.to_string()))
}

fn origin(key: &str, flags: &Flags, path: &str) -> String {
    if flags.contains_key(key) {
        "a flag".to_string()
    } else {
        path.to_string()
    }
}

/// A value as the user wrote it: strings without their quotes.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object literal"),
        }
    }

    #[test]
    fn a_key_from_flag_and_file_is_an_error_naming_both_values() {
        let err = merge(
            &map(json!({"icc": false, "debug": true})),
            &map(json!({"icc": true})),
            "/etc/berth/daemon.json",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "the following directives are specified both as a flag and in the configuration file (/etc/berth/daemon.json): icc: (from flag: false, from file: true): remove one of them"
        );
    }

    #[test]
    fn flags_and_file_fill_one_configuration_over_the_defaults() {
        let c = merge(
            &map(json!({"debug": true})),
            &map(json!({"icc": false, "dns": ["10.0.0.2"]})),
            "f",
        )
        .unwrap();
        assert!(c.debug && !c.icc);
        assert_eq!(c.dns, ["10.0.0.2"]);
        assert_eq!(c.max_concurrent_downloads, 3);
        assert!(c.ip_masq);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_key_and_source() {
        let err = merge(&Map::new(), &map(json!({"mtu": "big"})), "d.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mtu: invalid type: string \"big\""),
            "{err}"
        );
        assert!(err.ends_with("(from d.json)"), "{err}");
    }

    #[test]
    fn nested_unknown_fields_are_refused() {
        let err = merge(
            &Map::new(),
            &map(json!({"default-address-pools": [{"base": "10.0.0.0/8", "size": 24, "x": 1}]})),
            "d.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("default-address-pools: unknown field `x`"),
            "{err}"
        );
    }
}
