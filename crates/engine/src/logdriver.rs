//! Log drivers and their options, as Docker's `--log-driver`/`--log-opt` and the daemon's
//! `log-driver`/`log-opts` name them, checked by Docker's rules and turned into what the
//! shim's log writer does.
//!
//! - `json-file`: Docker's format (see [`crate::logs`]), no rotation unless `max-size` says.
//! - `local`: Docker keeps it in a protobuf encoding of its own; berth keeps the same JSON
//!   lines as json-file, in the same file, so everything that reads one reads the other. What
//!   differs are local's defaults: `max-size` 20m (binary units, as Docker's local driver
//!   reads them: 20 MiB), `max-file` 5, `compress` true.
//! - `none`: nothing is kept; reading the log fails as it does in Docker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::logs::Rotation;

/// The drivers berth has, by Docker's names.
pub const DRIVERS: [&str; 3] = ["json-file", "local", "none"];

/// What `docker logs` on a container whose driver keeps nothing says (Docker's words).
pub const NOT_READABLE: &str = "configured logging driver does not support reading";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    JsonFile,
    Local,
    None,
}

impl Driver {
    /// A driver by Docker's name; any other name is refused, naming the ones there are.
    pub fn parse(name: &str) -> Result<Driver> {
        match name {
            "json-file" => Ok(Driver::JsonFile),
            "local" => Ok(Driver::Local),
            "none" => Ok(Driver::None),
            other => Err(Error::Invalid(format!(
                "log driver {other:?} is not supported: use json-file, local or none"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::JsonFile => "json-file",
            Driver::Local => "local",
            Driver::None => "none",
        }
    }

    /// The rotation when no option says otherwise.
    fn defaults(self) -> Rotation {
        match self {
            Driver::Local => Rotation {
                max_size: Some(20 * 1024 * 1024),
                max_files: 5,
                compress: true,
            },
            _ => Rotation::default(),
        }
    }

    /// Docker's wording for an option the driver does not know.
    fn unknown(self, key: &str) -> Error {
        let (docker, takes) = match self {
            Driver::JsonFile => (
                format!("unknown log opt '{key}' for json-file log driver"),
                "max-size, max-file, compress and mode=blocking",
            ),
            Driver::Local => (
                format!("unknown log opt '{key}' for log driver local"),
                "max-size, max-file, compress and mode=blocking",
            ),
            Driver::None => (
                format!("unknown log opt '{key}' for none log driver"),
                "no options: it keeps nothing",
            ),
        };
        Error::Invalid(format!("{docker} (it takes {takes})"))
    }
}

/// A log driver and its options, as given (to a container, or as the daemon's default). A
/// container's is stored resolved: the driver named, the daemon's options merged in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Docker's driver name; empty for "the daemon's default" in what a client sent.
    pub driver: String,
    /// The options as given (`max-size` stays `10m`), which inspect shows back.
    pub options: BTreeMap<String, String>,
}

impl LogConfig {
    /// Docker's default when nothing is configured: json-file, no options.
    pub fn docker_default() -> LogConfig {
        LogConfig {
            driver: Driver::JsonFile.name().into(),
            options: BTreeMap::new(),
        }
    }

    /// What a container runs with, by Docker's rule: no driver means the daemon's; with the
    /// daemon's driver, the daemon's options fill in those the container does not set.
    /// Checked, so a bad one is refused before anything is made.
    pub fn resolve(&self, default: &LogConfig) -> Result<LogConfig> {
        let mut out = self.clone();
        if out.driver.is_empty() {
            out.driver = default.driver.clone();
        }
        if out.driver == default.driver {
            for (k, v) in &default.options {
                out.options.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        out.writer()?;
        Ok(out)
    }

    /// The driver (a record from before drivers, with none named, was json-file).
    pub fn driver(&self) -> Result<Driver> {
        match self.driver.as_str() {
            "" => Ok(Driver::JsonFile),
            name => Driver::parse(name),
        }
    }

    /// Whether `logs` can read what this driver keeps.
    pub fn readable(&self) -> bool {
        self.driver().is_ok_and(|d| d != Driver::None)
    }

    /// What the shim's log writer does, the driver's defaults applied; none when nothing is
    /// kept. Every option is checked: unknown or bad ones are refused by name.
    pub fn writer(&self) -> Result<Option<Rotation>> {
        let driver = self.driver()?;
        if driver == Driver::None {
            return match self.options.keys().next() {
                Some(key) => Err(driver.unknown(key)),
                None => Ok(None),
            };
        }
        let mut r = driver.defaults();
        for (key, value) in &self.options {
            apply(driver, &mut r, key, value)?;
        }
        check_combination(driver, &mut r, &self.options)?;
        Ok(Some(r))
    }
}

/// One option onto the rotation.
fn apply(driver: Driver, r: &mut Rotation, key: &str, value: &str) -> Result<()> {
    let bad = |what: &str| {
        Error::Invalid(format!(
            "invalid --log-opt {key}={value} for the {} log driver: {what}",
            driver.name()
        ))
    };
    match key {
        // Docker's json-file reads sizes in decimal units, its local driver in binary ones.
        "max-size" => {
            r.max_size = Some(
                crate::size::parse(value, driver == Driver::Local)
                    .filter(|b| *b > 0)
                    .ok_or_else(|| bad("give a positive size, as 512, 10k, 20m or 1g"))?,
            )
        }
        "max-file" => {
            r.max_files = value
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("give a count of at least 1 (it counts the current file)"))?
        }
        "compress" => r.compress = parse_bool(value).ok_or_else(|| bad("give true or false"))?,
        // The shim writes each line before it reads more output: Docker's blocking mode.
        "mode" if value == "blocking" => {}
        "mode" => {
            return Err(bad(
                "berth writes logs in blocking mode only; use mode=blocking",
            ))
        }
        "max-buffer-size" => {
            return Err(bad(
                "it goes with mode=non-blocking, which berth does not have; drop it",
            ))
        }
        "labels" | "labels-regex" | "env" | "env-regex" | "tag" if driver == Driver::JsonFile => {
            return Err(bad(
                "berth's log lines carry no attributes (nor does `logs --details`); drop it",
            ))
        }
        _ => return Err(driver.unknown(key)),
    }
    Ok(())
}

/// Docker's rules across options: compress needs something to compress (max-size and a
/// second file); and berth refuses max-file without max-size, which could never apply.
fn check_combination(
    driver: Driver,
    r: &mut Rotation,
    given: &BTreeMap<String, String>,
) -> Result<()> {
    let name = driver.name();
    if r.max_files > 1 && r.max_size.is_none() {
        return Err(Error::Invalid(format!(
            "--log-opt max-file for the {name} log driver needs max-size: without a size the log never rotates"
        )));
    }
    let rotates = r.max_files > 1 && r.max_size.is_some();
    if r.compress && !rotates {
        if given.contains_key("compress") {
            return Err(Error::Invalid(format!(
                "--log-opt compress=true for the {name} log driver needs max-size and max-file of 2 or more: only rotated files are compressed"
            )));
        }
        // local's default compression with a single file: there is nothing to compress.
        r.compress = false;
    }
    Ok(())
}

/// Go's strconv.ParseBool, which Docker's drivers use.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(driver: &str, opts: &[(&str, &str)]) -> LogConfig {
        LogConfig {
            driver: driver.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn error(driver: &str, opts: &[(&str, &str)]) -> String {
        config(driver, opts).writer().unwrap_err().to_string()
    }

    #[test]
    fn a_max_size_must_be_a_positive_size() {
        for bad in ["0", "", "ten", "-1", "10x"] {
            let e = error("json-file", &[("max-size", bad)]);
            assert!(e.contains("give a positive size"), "{bad:?}: {e}");
        }
        let local = config("local", &[("max-size", "2m")])
            .writer()
            .unwrap()
            .unwrap();
        assert_eq!(local.max_size, Some(2 * 1024 * 1024));
    }

    #[test]
    fn each_driver_has_its_defaults() {
        let json = config("json-file", &[]).writer().unwrap().unwrap();
        assert_eq!(
            (json.max_size, json.max_files, json.compress),
            (None, 1, false)
        );
        let local = config("local", &[]).writer().unwrap().unwrap();
        assert_eq!(
            (local.max_size, local.max_files, local.compress),
            (Some(20 * 1024 * 1024), 5, true)
        );
        assert!(config("none", &[]).writer().unwrap().is_none());
        assert!(!config("none", &[]).readable());
        assert!(config("local", &[]).readable());
        // local with one file has nothing to compress; that is no error.
        let single = config("local", &[("max-file", "1")])
            .writer()
            .unwrap()
            .unwrap();
        assert!(!single.compress);
    }

    #[test]
    fn options_are_read_and_checked() {
        let r = config(
            "json-file",
            &[
                ("max-size", "10k"),
                ("max-file", "3"),
                ("compress", "true"),
                ("mode", "blocking"),
            ],
        )
        .writer()
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.max_size, r.max_files, r.compress),
            (Some(10_000), 3, true)
        );
        assert_eq!(
            error("json-file", &[("foo", "1")]),
            "unknown log opt 'foo' for json-file log driver (it takes max-size, max-file, compress and mode=blocking)"
        );
        assert!(error("local", &[("foo", "1")])
            .starts_with("unknown log opt 'foo' for log driver local"));
        assert!(error("none", &[("max-size", "1m")])
            .starts_with("unknown log opt 'max-size' for none log driver"));
        assert!(error("json-file", &[("max-size", "big")]).contains("max-size=big"));
        assert!(error("json-file", &[("max-size", "1m"), ("max-file", "0")]).contains("at least 1"));
        assert!(error("json-file", &[("max-file", "3")]).contains("needs max-size"));
        assert!(error("json-file", &[("compress", "yes")]).contains("true or false"));
        assert!(
            error("json-file", &[("compress", "true"), ("max-size", "1m")])
                .contains("compress=true")
        );
        assert!(error("json-file", &[("mode", "non-blocking")]).contains("blocking"));
        assert!(error("json-file", &[("labels", "a")]).contains("attributes"));
        assert!(error("local", &[("labels", "a")]).starts_with("unknown log opt 'labels'"));
        assert!(error("json-file", &[("max-buffer-size", "4m")]).contains("non-blocking"));
        assert_eq!(
            error("syslog", &[]),
            "log driver \"syslog\" is not supported: use json-file, local or none"
        );
    }

    #[test]
    fn the_daemons_default_fills_in_as_dockers_does() {
        let daemon = config("local", &[("max-size", "1m"), ("max-file", "2")]);
        // Nothing given: the daemon's driver and options.
        assert_eq!(config("", &[]).resolve(&daemon).unwrap(), daemon);
        // The same driver: the container's options win, the daemon's fill in.
        let own = config("local", &[("max-size", "5m")])
            .resolve(&daemon)
            .unwrap();
        assert_eq!(
            own,
            config("local", &[("max-size", "5m"), ("max-file", "2")])
        );
        // Only options: they go with the daemon's driver.
        let opts = config("", &[("compress", "false")])
            .resolve(&daemon)
            .unwrap();
        assert_eq!(opts.driver, "local");
        assert_eq!(opts.options.len(), 3);
        // Another driver: none of the daemon's options.
        let other = config("json-file", &[]).resolve(&daemon).unwrap();
        assert_eq!(other, LogConfig::docker_default());
        // none takes none of the daemon's options; an unknown one with its driver is refused.
        let none = config("none", &[]).resolve(&daemon).unwrap();
        assert!(none.options.is_empty());
        assert!(config("", &[("foo", "1")]).resolve(&daemon).is_err());
    }
}
