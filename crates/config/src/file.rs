//! Reading daemon.json: JSON errors by line and column, unknown keys by name, nothing else
//! judged here (values are checked once flags and file are merged).

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::DaemonConfig;

/// Where the daemon looks when `--config-file` is not given.
pub const DEFAULT_PATH: &str = "/etc/berth/daemon.json";

/// The file's settings; `Ok(None)` when the file does not exist and `required` is false (the
/// default path need not exist, one named on the command line must).
pub fn read_file(path: &Path, required: bool) -> Result<Option<Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(reason) => {
            return Err(Error::Read {
                path: path.display().to_string(),
                reason,
            })
        }
    };
    parse(&path.display().to_string(), &text).map(Some)
}

/// The settings in `text`, the content of the file at `path`.
pub fn parse(path: &str, text: &str) -> Result<Map<String, Value>> {
    // An empty file is an empty configuration, as dockerd takes it.
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| Error::Malformed {
        path: path.to_string(),
        line: e.line(),
        column: e.column(),
        message: without_position(&e.to_string()),
    })?;
    let Value::Object(map) = value else {
        return Err(Error::NotAnObject {
            path: path.to_string(),
        });
    };
    let known = DaemonConfig::keys();
    if let Some(key) = map.keys().find(|k| !known.contains(k)) {
        return Err(Error::UnknownKey {
            path: path.to_string(),
            key: key.clone(),
        });
    }
    Ok(map)
}

/// serde_json's message without its " at line L column C" tail (the error has its own).
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_named_by_line_and_column() {
        let err = parse(
            "/etc/berth/daemon.json",
            "{\n  \"debug\": true,\n  \"icc\" false\n}",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/etc/berth/daemon.json:3:9: malformed JSON: expected `:`: fix the file and start again"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let err = parse("d.json", r#"{"debug": true, "icc-mode": false}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("d.json: unknown key \"icc-mode\""), "{err}");
    }

    #[test]
    fn a_file_must_hold_an_object_and_may_be_empty() {
        assert!(matches!(
            parse("d.json", "[1]"),
            Err(Error::NotAnObject { .. })
        ));
        assert!(parse("d.json", " \n").unwrap().is_empty());
    }

    #[test]
    fn a_missing_default_file_is_no_configuration_but_a_named_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("daemon.json");
        assert!(read_file(&missing, false).unwrap().is_none());
        let err = read_file(&missing, true).unwrap_err().to_string();
        assert!(err.contains("daemon.json"), "{err}");
    }
}
