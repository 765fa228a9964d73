//! A container's network mode, as `docker run --network` spells it, and where each one puts
//! the container: its own sandbox, the host's namespace, or another container's sandbox.

use crate::error::{Error, Result};
use crate::model::check_name;

/// The name of the default bridge network, which `--network default` (or none given) means.
pub const DEFAULT_NETWORK: &str = "bridge";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A sandbox of its own with loopback only.
    None,
    /// The host's network namespace: no sandbox, the host's interfaces and ports.
    Host,
    /// Another container's sandbox (by its sandbox id): the same interfaces, addresses and
    /// ports, and so the same port conflicts.
    Container(String),
    /// A sandbox of its own joined to these networks.
    Networks(Vec<String>),
}

/// Parses `--network`: `none`, `host`, `container:<id>`, `default`/empty, or a network name.
pub fn parse_mode(s: &str) -> Result<Mode> {
    Ok(match s {
        "" | "default" => Mode::Networks(vec![DEFAULT_NETWORK.to_string()]),
        "none" => Mode::None,
        "host" => Mode::Host,
        _ => match s.strip_prefix("container:") {
            Some("") => {
                return Err(Error::Invalid(
                    "--network container: needs a container, as in --network container:web".into(),
                ))
            }
            Some(id) => Mode::Container(id.to_string()),
            None => {
                check_name(s)?;
                Mode::Networks(vec![s.to_string()])
            }
        },
    })
}

impl Mode {
    /// Whether the container gets a sandbox of its own.
    pub fn owns_sandbox(&self) -> bool {
        matches!(self, Mode::None | Mode::Networks(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_spellings_parse() {
        assert_eq!(
            parse_mode("").unwrap(),
            Mode::Networks(vec!["bridge".into()])
        );
        assert_eq!(parse_mode("none").unwrap(), Mode::None);
        assert_eq!(parse_mode("host").unwrap(), Mode::Host);
        assert_eq!(
            parse_mode("container:web").unwrap(),
            Mode::Container("web".into())
        );
        assert_eq!(
            parse_mode("front-end").unwrap(),
            Mode::Networks(vec!["front-end".into()])
        );
        assert!(parse_mode("container:")
            .unwrap_err()
            .to_string()
            .contains("container:web"));
        assert!(parse_mode("bad name").is_err());
        assert!(!Mode::Host.owns_sandbox() && Mode::None.owns_sandbox());
    }
}
