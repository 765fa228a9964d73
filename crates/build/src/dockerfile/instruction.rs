//! One instruction's arguments into its [`Kind`] (and FROM into a stage header).
//!
//! Errors are messages without the `file:line:` prefix; the caller adds it.

use super::flags::{FlagKind, Flags};
use super::heredoc::word_marker;
use super::words::{first_word, json_array, split_raw};
use super::{ArgDecl, Command, CopySpec, Healthcheck, Heredoc, Kind};

use FlagKind::{Switch, Value};

/// The parts of a FROM line.
#[derive(Debug, PartialEq)]
pub(super) struct From {
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// `FROM [--platform=p] image [AS name]`.
pub(super) fn from(args: &str, escape: char) -> Result<From, String> {
    let (flags, rest) = Flags::take("FROM", args, &[("platform", Value)])?;
    let words = split_raw(rest, escape);
    let name = match words.as_slice() {
        [_] => None,
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(stage_name(name)?),
        _ => return Err("FROM needs an image, optionally followed by AS name".into()),
    };
    Ok(From {
        base: words[0].clone(),
        name,
        platform: flags.value("platform"),
    })
}

/// Docker lower-cases stage names and accepts `[a-z][a-z0-9-_.]*`.
fn stage_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    let mut chars = lower.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if !valid {
        return Err(format!(
            "invalid stage name {name:?}: expected a letter, then letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(lower)
}

/// Every instruction but FROM. `keyword` is upper-cased; `heredocs` are the bodies read
/// for the markers on the line (RUN, COPY, ADD).
pub(super) fn parse(
    keyword: &str,
    args: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Kind, String> {
    match keyword {
        "RUN" => run(args, heredocs),
        "COPY" => copy("COPY", args, escape, heredocs).map(Kind::Copy),
        "ADD" => copy("ADD", args, escape, heredocs).map(Kind::Add),
        "CMD" => command("CMD", args).map(Kind::Cmd),
        "ENTRYPOINT" => command("ENTRYPOINT", args).map(Kind::Entrypoint),
        "SHELL" => shell(args),
        "ENV" => pairs("ENV", args, escape).map(Kind::Env),
        "LABEL" => pairs("LABEL", args, escape).map(Kind::Label),
        "ARG" => arg(args, escape),
        "WORKDIR" => text("WORKDIR", args, "a directory").map(Kind::Workdir),
        "USER" => text("USER", args, "a user").map(Kind::User),
        "MAINTAINER" => text("MAINTAINER", args, "a name").map(Kind::Maintainer),
        "EXPOSE" => words("EXPOSE", args, escape, "a port").map(Kind::Expose),
        "VOLUME" => volume(args, escape),
        "STOPSIGNAL" => stopsignal(args, escape),
        "HEALTHCHECK" => healthcheck(args),
        "ONBUILD" => onbuild(args, escape),
        "FROM" => Err("FROM is handled by the stage parser".into()),
        other => Err(format!("unknown instruction {}", shorten(other))),
    }
}

/// Quotes a word for a message, cut short so a line of garbage stays one readable line.
fn shorten(word: &str) -> String {
    let cut: String = word.chars().take(40).collect();
    if cut.len() < word.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

fn run(args: &str, heredocs: Vec<Heredoc>) -> Result<Kind, String> {
    let (flags, rest) = Flags::take("RUN", args, &[("network", Value)])?;
    let network = flags.value("network");
    if let Some(mode) = &network {
        if !matches!(mode.as_str(), "default" | "none" | "host") {
            return Err(format!(
                "RUN --network expects default, none or host, found {mode:?}"
            ));
        }
    }
    if rest.trim().is_empty() {
        return Err("RUN needs a command".into());
    }
    Ok(Kind::Run {
        command: exec_or_shell(rest),
        network,
        heredocs,
    })
}

/// Exec form if the text is a JSON array of strings; anything else (including broken
/// JSON) is shell form, as Docker does.
fn exec_or_shell(text: &str) -> Command {
    match json_array(text) {
        Some(argv) => Command::Exec(argv),
        None => Command::Shell(text.trim().to_string()),
    }
}

fn command(keyword: &str, args: &str) -> Result<Command, String> {
    if args.trim().is_empty() {
        return Err(format!("{keyword} needs a command"));
    }
    Ok(exec_or_shell(args))
}

fn copy(
    keyword: &str,
    args: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<CopySpec, String> {
    let allowed: &[(&str, FlagKind)] = if keyword == "COPY" {
        &[
            ("from", Value),
            ("chown", Value),
            ("chmod", Value),
            ("link", Switch),
        ]
    } else {
        &[("chown", Value), ("chmod", Value), ("link", Switch)]
    };
    let (flags, rest) = Flags::take(keyword, args, allowed)?;
    let mut paths = match json_array(rest) {
        Some(array) => array,
        // Heredoc markers name heredoc sources, which are in `heredocs`.
        None => split_raw(rest, escape)
            .into_iter()
            .filter(|word| word_marker(word, escape).is_none())
            .collect(),
    };
    let missing = || format!("{keyword} needs at least a source and a destination");
    let dest = paths.pop().ok_or_else(missing)?;
    if paths.is_empty() && heredocs.is_empty() {
        return Err(missing());
    }
    Ok(CopySpec {
        sources: paths,
        dest,
        from: flags.value("from"),
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.switch("link"),
        heredocs,
    })
}

fn shell(args: &str) -> Result<Kind, String> {
    match json_array(args) {
        Some(argv) if !argv.is_empty() => Ok(Kind::Shell(argv)),
        _ => Err(r#"SHELL needs a JSON array, e.g. SHELL ["/bin/sh", "-c"]"#.into()),
    }
}

/// ENV and LABEL: `key value` (one pair, the rest of the line is the value) or
/// `k1=v1 k2="v 2"`; keys and values stay raw.
fn pairs(keyword: &str, args: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_raw(args, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} needs at least one key=value"));
    };
    if !first.contains('=') {
        let (key, value) = first_word(args);
        if value.trim().is_empty() {
            return Err(format!(
                "{keyword} {key} needs a value ({keyword} key=value)"
            ));
        }
        return Ok(vec![(key.to_string(), value.trim_end().to_string())]);
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(format!(
                "{keyword} expects key=value pairs, found {}",
                shorten(word)
            )),
        })
        .collect()
}

fn arg(args: &str, escape: char) -> Result<Kind, String> {
    let words = split_raw(args, escape);
    if words.is_empty() {
        return Err("ARG needs a name (ARG name or ARG name=default)".into());
    }
    let decls = words
        .into_iter()
        .map(|word| {
            let (name, default) = match word.split_once('=') {
                Some((name, default)) => (name.to_string(), Some(default.to_string())),
                None => (word, None),
            };
            if name.is_empty() {
                return Err("ARG needs a name before '='".to_string());
            }
            Ok(ArgDecl { name, default })
        })
        .collect::<Result<_, _>>()?;
    Ok(Kind::Arg(decls))
}

fn text(keyword: &str, args: &str, what: &str) -> Result<String, String> {
    let value = args.trim();
    if value.is_empty() {
        return Err(format!("{keyword} needs {what}"));
    }
    Ok(value.to_string())
}

fn words(keyword: &str, args: &str, escape: char, what: &str) -> Result<Vec<String>, String> {
    let words = split_raw(args, escape);
    if words.is_empty() {
        return Err(format!("{keyword} needs at least {what}"));
    }
    Ok(words)
}

fn volume(args: &str, escape: char) -> Result<Kind, String> {
    let paths = match json_array(args) {
        Some(array) => array,
        None => split_raw(args, escape),
    };
    if paths.is_empty() || paths.iter().any(|p| p.trim().is_empty()) {
        return Err("VOLUME needs at least one non-empty path".into());
    }
    Ok(Kind::Volume(paths))
}

fn stopsignal(args: &str, escape: char) -> Result<Kind, String> {
    match split_raw(args, escape).as_slice() {
        [signal] => Ok(Kind::StopSignal(signal.clone())),
        _ => Err("STOPSIGNAL needs exactly one signal, e.g. SIGTERM".into()),
    }
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD command`.
fn healthcheck(args: &str) -> Result<Kind, String> {
    let allowed = [
        ("interval", Value),
        ("timeout", Value),
        ("start-period", Value),
        ("start-interval", Value),
        ("retries", Value),
    ];
    let (flags, rest) = Flags::take("HEALTHCHECK", args, &allowed)?;
    let (word, test) = first_word(rest);
    if word.eq_ignore_ascii_case("NONE") {
        if !flags.is_empty() || !test.is_empty() {
            return Err("HEALTHCHECK NONE takes no flags or arguments".into());
        }
        return Ok(Kind::Healthcheck(None));
    }
    if !word.eq_ignore_ascii_case("CMD") {
        return Err("HEALTHCHECK expects NONE or [flags] CMD command".into());
    }
    let retries = flags
        .value("retries")
        .map(|r| {
            r.parse::<u32>()
                .map_err(|_| format!("HEALTHCHECK --retries expects a whole number, found {r:?}"))
        })
        .transpose()?;
    Ok(Kind::Healthcheck(Some(Healthcheck {
        test: command("HEALTHCHECK CMD", test)?,
        interval: flags.value("interval"),
        timeout: flags.value("timeout"),
        start_period: flags.value("start-period"),
        start_interval: flags.value("start-interval"),
        retries,
    })))
}

/// ONBUILD keeps the trigger's text, after checking it parses as an instruction.
fn onbuild(args: &str, escape: char) -> Result<Kind, String> {
    let trigger = args.trim();
    let (keyword, rest) = first_word(trigger);
    let keyword = keyword.to_ascii_uppercase();
    match keyword.as_str() {
        "" => return Err("ONBUILD needs an instruction".into()),
        "ONBUILD" | "FROM" | "MAINTAINER" => {
            return Err(format!("ONBUILD cannot trigger {keyword}"))
        }
        _ => {}
    }
    parse(&keyword, rest, escape, Vec::new()).map_err(|e| format!("ONBUILD {e}"))?;
    Ok(Kind::Onbuild(trigger.to_string()))
}
