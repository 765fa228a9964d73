//! `--name=value` flags at the start of FROM, RUN, COPY, ADD and HEALTHCHECK.

/// Whether a flag takes a value (`--from=x`) or is a switch (`--link`).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum FlagKind {
    Value,
    Switch,
}

/// The flags an instruction was given, checked against the ones it accepts.
#[derive(Debug, Default)]
pub(super) struct Flags {
    given: Vec<(String, String)>,
}

impl Flags {
    /// Splits leading flags off `args` for `instruction`, which accepts `allowed`.
    /// Returns the flags and the text after them.
    pub fn take<'a>(
        instruction: &str,
        args: &'a str,
        allowed: &[(&str, FlagKind)],
    ) -> Result<(Flags, &'a str), String> {
        let mut flags = Flags::default();
        let mut rest = args.trim_start();
        while let Some(body) = rest.strip_prefix("--") {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            let token = &body[..end];
            rest = body[end..].trim_start();
            // A bare `--` ends the flags, as it does on a command line.
            if token.is_empty() {
                break;
            }
            let (name, value) = match token.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (token, None),
            };
            let kind = allowed
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| unknown(instruction, name, allowed))?;
            let value = flag_value(instruction, name, kind, value)?;
            if flags.given.iter().any(|(seen, _)| seen == name) {
                return Err(format!("{instruction} --{name} is given more than once"));
            }
            flags.given.push((name.to_string(), value));
        }
        Ok((flags, rest))
    }

    /// A value flag's value, if given.
    pub fn value(&self, name: &str) -> Option<String> {
        self.given
            .iter()
            .find(|(seen, _)| seen == name)
            .map(|(_, value)| value.clone())
    }

    /// Whether a switch is on.
    pub fn switch(&self, name: &str) -> bool {
        self.value(name).is_some_and(|v| v == "true")
    }

    pub fn is_empty(&self) -> bool {
        self.given.is_empty()
    }
}

fn flag_value(
    instruction: &str,
    name: &str,
    kind: FlagKind,
    value: Option<&str>,
) -> Result<String, String> {
    match (kind, value) {
        (FlagKind::Switch, None) => Ok("true".into()),
        (FlagKind::Switch, Some(v @ ("true" | "false"))) => Ok(v.into()),
        (FlagKind::Switch, Some(v)) => Err(format!(
            "{instruction} --{name} expects true or false, found {v:?}"
        )),
        (FlagKind::Value, Some(v)) if !v.is_empty() => Ok(v.into()),
        (FlagKind::Value, _) => Err(format!(
            "{instruction} --{name} needs a value (--{name}=...)"
        )),
    }
}

fn unknown(instruction: &str, name: &str, allowed: &[(&str, FlagKind)]) -> String {
    if instruction == "ADD" && name == "checksum" {
        return "ADD --checksum is not supported".into();
    }
    let supported: Vec<String> = allowed.iter().map(|(n, _)| format!("--{n}")).collect();
    format!(
        "unknown flag --{name} for {instruction} (supported: {})",
        supported.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &[(&str, FlagKind)] = &[("from", FlagKind::Value), ("link", FlagKind::Switch)];

    #[test]
    fn takes_leading_flags() {
        let (flags, rest) = Flags::take("COPY", "--from=b --link a --c", COPY).unwrap();
        assert_eq!(flags.value("from").as_deref(), Some("b"));
        assert!(flags.switch("link"));
        assert_eq!(rest, "a --c");
    }

    #[test]
    fn double_dash_ends_flags() {
        let (flags, rest) = Flags::take("COPY", "-- --from=x y", COPY).unwrap();
        assert!(flags.is_empty());
        assert_eq!(rest, "--from=x y");
    }

    #[test]
    fn errors() {
        let err = Flags::take("COPY", "--mount=x a b", COPY).unwrap_err();
        assert_eq!(
            err,
            "unknown flag --mount for COPY (supported: --from, --link)"
        );
        assert!(Flags::take("COPY", "--from a b", COPY)
            .unwrap_err()
            .contains("needs a value"));
        assert!(Flags::take("COPY", "--link=yes a b", COPY).is_err());
        assert!(Flags::take("COPY", "--from=a --from=b a b", COPY)
            .unwrap_err()
            .contains("more than once"));
        assert_eq!(
            Flags::take("ADD", "--checksum=sha256:x a b", COPY).unwrap_err(),
            "ADD --checksum is not supported"
        );
    }

    #[test]
    fn switch_off() {
        let (flags, _) = Flags::take("COPY", "--link=false a b", COPY).unwrap();
        assert!(!flags.switch("link"));
    }
}
