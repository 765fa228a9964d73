//! The Dockerfile language: parsing into an AST and Docker's shell-word substitution.
//!
//! [`parse`] turns a Dockerfile's text into a [`Dockerfile`]: parser directives, stages and
//! their instructions, with values kept raw. The builder expands them later with
//! [`expand_word`] / [`expand_words`], because which variables are visible depends on the
//! build (ARG values, ENV of earlier steps), not on the text.
//!
//! Nothing here executes anything.

mod expand;
mod flags;
mod heredoc;
mod instruction;
mod lines;
mod parse;
mod words;

pub use expand::{expand_word, expand_words, ExpandError};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// From the `# escape=` directive; `\` unless set.
    pub escape: char,
    /// The `# syntax=` directive, recorded but not acted on.
    pub syntax: Option<String>,
    /// ARGs before the first FROM: the "global" args, usable in FROM lines.
    pub args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

/// One FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub line: usize,
    /// The image word as written (unexpanded): `busybox:${V}`, `scratch`, or a stage name.
    pub base: String,
    /// `AS name`, lower-cased as Docker does.
    pub name: Option<String>,
    /// `--platform=...`, raw.
    pub platform: Option<String>,
    /// The FROM line as written, continuation lines joined with one space.
    pub original: String,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// The line the instruction starts on (1-based).
    pub line: usize,
    /// As written, continuation lines joined with one space, heredoc bodies left out.
    pub original: String,
    pub kind: Kind,
}

/// What an instruction says. Strings are raw: quotes and variables are left for
/// [`expand_word`] unless a variant says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `command` is the text after the flags, heredoc markers included (`python3 <<EOF`);
    /// when it is only markers, the first heredoc is the script, otherwise the heredocs
    /// feed the command's stdin — the builder decides.
    Run {
        command: Command,
        network: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Copy(CopySpec),
    Add(CopySpec),
    Cmd(Command),
    Entrypoint(Command),
    /// Exec form only (a JSON array), as Docker requires.
    Shell(Vec<String>),
    /// Raw key and raw value (quotes not yet removed).
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Label(Vec<(String, String)>),
    Workdir(String),
    Expose(Vec<String>),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    /// `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// The trigger instruction as written; it parses as an instruction on its own.
    Onbuild(String),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// JSON array form: run without a shell.
    Exec(Vec<String>),
    /// Anything else: handed to the stage's SHELL.
    Shell(String),
}

/// The operands of COPY and ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySpec {
    /// Raw words (or the JSON array's strings), heredoc markers left out.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `COPY <<EOF /dest`: each heredoc is a source file named by its delimiter.
    pub heredocs: Vec<Heredoc>,
}

/// A BuildKit heredoc (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter, quotes removed.
    pub name: String,
    /// The body, each line ending in `\n`; leading tabs already stripped for `<<-`.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// `<<-EOF`.
    pub strip_tabs: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArgDecl {
    pub name: String,
    /// Raw.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    pub test: Command,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<u32>,
}

/// Why a Dockerfile did not parse: one line, `Dockerfile:3: what was expected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    /// The name the caller gave, e.g. `Dockerfile`.
    pub file: String,
    /// 1-based; for an instruction, the line it starts on.
    pub line: usize,
    pub message: String,
}

/// Parses a Dockerfile. `name` only labels errors (`Dockerfile:3: ...`).
pub fn parse(name: &str, text: &str) -> Result<Dockerfile, ParseError> {
    parse::dockerfile(text).map_err(|(line, message)| ParseError {
        file: name.to_string(),
        line,
        message,
    })
}
