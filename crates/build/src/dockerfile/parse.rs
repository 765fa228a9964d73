//! The whole file: directives, then logical lines into stages and instructions.

use super::heredoc::{self, Marker};
use super::instruction;
use super::lines::{directives, Logical, Source};
use super::words::first_word;
use super::{Dockerfile, Heredoc, Instruction, Kind, Stage};

/// An error message and the 1-based line it is about.
type Failure = (usize, String);

pub(super) fn dockerfile(text: &str) -> Result<Dockerfile, Failure> {
    // Editors on Windows may leave a byte-order mark; it is not part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let found = directives(&lines)?;
    let escape = found.escape.unwrap_or('\\');
    let mut source = Source::new(lines, escape);
    let mut file = Dockerfile {
        escape,
        syntax: found.syntax,
        args: Vec::new(),
        stages: Vec::new(),
    };
    while let Some(logical) = source.next_logical() {
        add(&mut file, &mut source, logical)?;
    }
    if file.stages.is_empty() {
        return Err((
            source.len().max(1),
            "expected a FROM instruction, found none".into(),
        ));
    }
    Ok(file)
}

/// Adds one logical line to the file: a new stage, a global ARG, or an instruction of the
/// current stage. Heredoc bodies are read from `source` right after their line.
fn add(file: &mut Dockerfile, source: &mut Source, logical: Logical) -> Result<(), Failure> {
    let at = logical.line;
    let fail = |message: String| (at, message);
    let (word, args) = first_word(&logical.text);
    let keyword = word.to_ascii_uppercase();
    if keyword == "FROM" {
        return start_stage(file, &logical, args);
    }
    if file.stages.is_empty() && keyword != "ARG" {
        return Err(fail(format!(
            "expected FROM (or ARG) as the first instruction, found {keyword}"
        )));
    }
    let heredocs = read_heredocs(source, &keyword, args, file.escape, at)?;
    let kind = instruction::parse(&keyword, args, file.escape, heredocs).map_err(fail)?;
    match file.stages.last_mut() {
        Some(stage) => stage.instructions.push(Instruction {
            line: at,
            original: logical.original,
            kind,
        }),
        // Before the first FROM only ARG gets this far (checked above): a global ARG.
        None => {
            if let Kind::Arg(decls) = kind {
                file.args.extend(decls);
            }
        }
    }
    Ok(())
}

fn start_stage(file: &mut Dockerfile, logical: &Logical, args: &str) -> Result<(), Failure> {
    let at = logical.line;
    let from = instruction::from(args, file.escape).map_err(|m| (at, m))?;
    if let Some(name) = &from.name {
        let taken = file.stages.iter().any(|s| s.name.as_ref() == Some(name));
        if taken {
            return Err((at, format!("duplicate stage name {name:?}")));
        }
    }
    file.stages.push(Stage {
        line: at,
        base: from.base,
        name: from.name,
        platform: from.platform,
        original: logical.original.clone(),
        instructions: Vec::new(),
    });
    Ok(())
}

/// Reads the bodies of the heredocs named on a RUN, COPY or ADD line, in order.
fn read_heredocs(
    source: &mut Source,
    keyword: &str,
    args: &str,
    escape: char,
    at: usize,
) -> Result<Vec<Heredoc>, Failure> {
    let markers = match keyword {
        "RUN" => heredoc::in_shell(args, escape),
        "COPY" | "ADD" => heredoc::in_words(args, escape),
        _ => return Ok(Vec::new()),
    };
    markers
        .into_iter()
        .map(|marker| body(source, marker, at))
        .collect()
}

fn body(source: &mut Source, marker: Marker, at: usize) -> Result<Heredoc, Failure> {
    let content = source
        .heredoc_body(&marker.name, marker.strip_tabs)
        .ok_or_else(|| {
            let name = &marker.name;
            (
                at,
                format!("heredoc <<{name} is not terminated: expected a line {name:?}"),
            )
        })?;
    Ok(Heredoc {
        name: marker.name,
        content,
        expand: marker.expand,
        strip_tabs: marker.strip_tabs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ArgDecl, Command, CopySpec, Healthcheck, ParseError};
    use super::*;

    fn ok(text: &str) -> Dockerfile {
        parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The kinds of the first stage's instructions.
    fn kinds(text: &str) -> Vec<Kind> {
        ok(text).stages[0]
            .instructions
            .iter()
            .map(|i| i.kind.clone())
            .collect()
    }

    /// The one instruction after `FROM x`.
    fn only(line: &str) -> Kind {
        let mut found = kinds(&format!("FROM x\n{line}\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    fn err(text: &str) -> String {
        parse("Dockerfile", text).unwrap_err().to_string()
    }

    fn shell(s: &str) -> Command {
        Command::Shell(s.into())
    }

    fn exec(argv: &[&str]) -> Command {
        Command::Exec(argv.iter().map(|s| s.to_string()).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn copy_spec(sources: &[&str], dest: &str) -> CopySpec {
        CopySpec {
            sources: strings(sources),
            dest: dest.into(),
            from: None,
            chown: None,
            chmod: None,
            link: false,
            heredocs: Vec::new(),
        }
    }

    #[test]
    fn a_small_file() {
        let file = ok("# syntax=docker/dockerfile:1\nFROM busybox:1.36 AS Base\nRUN echo hi\n");
        assert_eq!(file.escape, '\\');
        assert_eq!(file.syntax.as_deref(), Some("docker/dockerfile:1"));
        let stage = &file.stages[0];
        assert_eq!(stage.line, 2);
        assert_eq!(stage.base, "busybox:1.36");
        assert_eq!(stage.name.as_deref(), Some("base"));
        assert_eq!(stage.original, "FROM busybox:1.36 AS Base");
        assert_eq!(stage.instructions[0].line, 3);
        assert_eq!(stage.instructions[0].original, "RUN echo hi");
    }

    #[test]
    fn instructions_are_case_insensitive_and_may_be_indented() {
        let file = ok("  from x as B\n\t run  echo\n  # comment\ncmd [\"a\"]");
        let stage = &file.stages[0];
        assert_eq!(stage.name.as_deref(), Some("b"));
        assert_eq!(stage.instructions.len(), 2);
        assert_eq!(stage.instructions[1].line, 4);
    }

    #[test]
    fn from_forms() {
        let file =
            ok("ARG V=1\nFROM --platform=linux/arm64 busybox:${V} as one\nFROM one\nFROM scratch");
        assert_eq!(
            file.args,
            vec![ArgDecl {
                name: "V".into(),
                default: Some("1".into())
            }]
        );
        assert_eq!(file.stages.len(), 3);
        assert_eq!(file.stages[0].platform.as_deref(), Some("linux/arm64"));
        assert_eq!(file.stages[0].base, "busybox:${V}");
        assert_eq!(file.stages[1].base, "one");
        assert_eq!(file.stages[1].name, None);
        assert_eq!(file.stages[2].line, 4);
    }

    #[test]
    fn from_errors() {
        assert_eq!(
            err("FROM\n"),
            "Dockerfile:1: FROM needs an image, optionally followed by AS name"
        );
        assert!(err("FROM a b c").contains("FROM needs an image"));
        assert!(err("FROM a AS 1x").starts_with("Dockerfile:1: invalid stage name"));
        assert_eq!(
            err("FROM a AS x\nFROM b AS X"),
            "Dockerfile:2: duplicate stage name \"x\""
        );
        assert!(err("FROM --os=linux a").contains("unknown flag --os for FROM"));
    }

    #[test]
    fn first_instruction_must_be_from_or_arg() {
        assert_eq!(
            err("RUN echo"),
            "Dockerfile:1: expected FROM (or ARG) as the first instruction, found RUN"
        );
        assert_eq!(
            err("# c\n\nARG A\nenv A=1\nFROM x"),
            "Dockerfile:4: expected FROM (or ARG) as the first instruction, found ENV"
        );
        assert_eq!(
            err("ARG A\n# only args\n"),
            "Dockerfile:2: expected a FROM instruction, found none"
        );
        assert_eq!(
            err(""),
            "Dockerfile:1: expected a FROM instruction, found none"
        );
    }

    #[test]
    fn global_args_then_stage_args() {
        let file = ok("ARG A B=2 C=\"x y\"\nFROM x\nARG D");
        let names: Vec<_> = file.args.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(file.args[0].default, None);
        assert_eq!(file.args[2].default.as_deref(), Some("\"x y\""));
        assert_eq!(
            file.stages[0].instructions[0].kind,
            Kind::Arg(vec![ArgDecl {
                name: "D".into(),
                default: None
            }])
        );
        assert!(err("FROM x\nARG").contains("ARG needs a name"));
        assert!(err("FROM x\nARG =1").contains("ARG needs a name"));
    }

    #[test]
    fn run_forms() {
        let run = |command, network| Kind::Run {
            command,
            network,
            heredocs: Vec::new(),
        };
        assert_eq!(
            only("RUN echo \"a b\" | tr a c"),
            run(shell("echo \"a b\" | tr a c"), None)
        );
        assert_eq!(
            only(r#"RUN ["echo", "a b"]"#),
            run(exec(&["echo", "a b"]), None)
        );
        // Not valid JSON: shell form, as Docker does.
        assert_eq!(only("RUN [echo, a]"), run(shell("[echo, a]"), None));
        assert_eq!(only("RUN [\"a\", 1]"), run(shell("[\"a\", 1]"), None));
        assert_eq!(
            only("RUN --network=none make"),
            run(shell("make"), Some("none".into()))
        );
    }

    #[test]
    fn run_errors() {
        assert_eq!(err("FROM x\nRUN"), "Dockerfile:2: RUN needs a command");
        assert_eq!(
            err("FROM x\nRUN --mount=type=cache,target=/x make"),
            "Dockerfile:2: unknown flag --mount for RUN (supported: --network)"
        );
        assert!(err("FROM x\nRUN --network=bridge make").contains("default, none or host"));
        assert!(err("FROM x\nRUN --network make").contains("RUN --network needs a value"));
    }

    #[test]
    fn cmd_entrypoint_shell() {
        assert_eq!(only("CMD [\"a\", \"b\"]"), Kind::Cmd(exec(&["a", "b"])));
        assert_eq!(only("CMD a b"), Kind::Cmd(shell("a b")));
        assert_eq!(only("CMD []"), Kind::Cmd(exec(&[])));
        assert_eq!(
            only("ENTRYPOINT [\"/bin/x\"]"),
            Kind::Entrypoint(exec(&["/bin/x"]))
        );
        assert_eq!(only("ENTRYPOINT x --y"), Kind::Entrypoint(shell("x --y")));
        assert_eq!(
            only("SHELL [\"powershell\", \"-c\"]"),
            Kind::Shell(strings(&["powershell", "-c"]))
        );
        assert!(
            err("FROM x\nSHELL /bin/bash -c").starts_with("Dockerfile:2: SHELL needs a JSON array")
        );
        assert!(err("FROM x\nSHELL []").contains("SHELL needs a JSON array"));
        assert_eq!(err("FROM x\nCMD"), "Dockerfile:2: CMD needs a command");
        assert_eq!(
            err("FROM x\nENTRYPOINT  "),
            "Dockerfile:2: ENTRYPOINT needs a command"
        );
    }

    #[test]
    fn copy_and_add() {
        assert_eq!(
            only("COPY a b /dst/"),
            Kind::Copy(copy_spec(&["a", "b"], "/dst/"))
        );
        assert_eq!(
            only("COPY [\"a b\", \"/d\"]"),
            Kind::Copy(copy_spec(&["a b"], "/d"))
        );
        assert_eq!(
            only("COPY \"a b\" $D"),
            Kind::Copy(copy_spec(&["\"a b\""], "$D"))
        );
        let mut spec = copy_spec(&["/bin/x"], "/x");
        spec.from = Some("build".into());
        spec.chown = Some("1:1".into());
        spec.chmod = Some("755".into());
        spec.link = true;
        assert_eq!(
            only("COPY --from=build --chown=1:1 --chmod=755 --link /bin/x /x"),
            Kind::Copy(spec)
        );
        let mut spec = copy_spec(&["https://e.x/f"], "/f");
        spec.chown = Some("u".into());
        assert_eq!(only("ADD --chown=u https://e.x/f /f"), Kind::Add(spec));
    }

    #[test]
    fn copy_errors() {
        assert_eq!(
            err("FROM x\n\nCOPY a"),
            "Dockerfile:3: COPY needs at least a source and a destination"
        );
        assert_eq!(
            err("FROM x\nADD"),
            "Dockerfile:2: ADD needs at least a source and a destination"
        );
        assert_eq!(
            err("FROM x\nADD --from=a b c"),
            "Dockerfile:2: unknown flag --from for ADD (supported: --chown, --chmod, --link)"
        );
        assert_eq!(
            err("FROM x\nADD --checksum=sha256:0 u /f"),
            "Dockerfile:2: ADD --checksum is not supported"
        );
        assert!(err("FROM x\nCOPY --link=maybe a b").contains("true or false"));
    }

    #[test]
    fn env_and_label_forms() {
        assert_eq!(only("ENV A 1 2  3 "), Kind::Env(pairs(&[("A", "1 2  3")])));
        assert_eq!(
            only(r#"ENV A=1 B="x y" C='$z' D=a\ b E="""#),
            Kind::Env(pairs(&[
                ("A", "1"),
                ("B", "\"x y\""),
                ("C", "'$z'"),
                ("D", "a\\ b"),
                ("E", "\"\"")
            ]))
        );
        assert_eq!(only("ENV E="), Kind::Env(pairs(&[("E", "")])));
        assert_eq!(
            only(r#"LABEL "com.x.vendor"="ACME Inc" version=1.0"#),
            Kind::Label(pairs(&[
                ("\"com.x.vendor\"", "\"ACME Inc\""),
                ("version", "1.0")
            ]))
        );
        assert_eq!(
            only("LABEL key some value"),
            Kind::Label(pairs(&[("key", "some value")]))
        );
    }

    #[test]
    fn env_and_label_errors() {
        assert_eq!(
            err("FROM x\nENV A"),
            "Dockerfile:2: ENV A needs a value (ENV key=value)"
        );
        assert_eq!(
            err("FROM x\nENV A=1 B"),
            "Dockerfile:2: ENV expects key=value pairs, found \"B\""
        );
        assert!(err("FROM x\nENV A=1 =2").contains("expects key=value pairs"));
        assert_eq!(
            err("FROM x\nLABEL"),
            "Dockerfile:2: LABEL needs at least one key=value"
        );
    }

    #[test]
    fn simple_instructions() {
        assert_eq!(only("WORKDIR /a b/$X"), Kind::Workdir("/a b/$X".into()));
        assert_eq!(only("USER app:app"), Kind::User("app:app".into()));
        assert_eq!(
            only("EXPOSE 80 443/tcp ${P}"),
            Kind::Expose(strings(&["80", "443/tcp", "${P}"]))
        );
        assert_eq!(only("VOLUME /a /b"), Kind::Volume(strings(&["/a", "/b"])));
        assert_eq!(only("VOLUME [\"/a b\"]"), Kind::Volume(strings(&["/a b"])));
        assert_eq!(
            only("STOPSIGNAL SIGKILL"),
            Kind::StopSignal("SIGKILL".into())
        );
        assert_eq!(
            only("MAINTAINER Jo <jo@x>"),
            Kind::Maintainer("Jo <jo@x>".into())
        );
        assert_eq!(
            err("FROM x\nWORKDIR"),
            "Dockerfile:2: WORKDIR needs a directory"
        );
        assert_eq!(err("FROM x\nUSER"), "Dockerfile:2: USER needs a user");
        assert_eq!(
            err("FROM x\nEXPOSE"),
            "Dockerfile:2: EXPOSE needs at least a port"
        );
        assert!(err("FROM x\nVOLUME []").contains("VOLUME needs"));
        assert!(err("FROM x\nSTOPSIGNAL A B").contains("exactly one signal"));
    }

    #[test]
    fn healthcheck_forms() {
        assert_eq!(only("HEALTHCHECK NONE"), Kind::Healthcheck(None));
        assert_eq!(only("healthcheck none"), Kind::Healthcheck(None));
        assert_eq!(
            only("HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=2s --retries=4 CMD curl -f http://x/"),
            Kind::Healthcheck(Some(Healthcheck {
                test: shell("curl -f http://x/"),
                interval: Some("5s".into()),
                timeout: Some("3s".into()),
                start_period: Some("1m".into()),
                start_interval: Some("2s".into()),
                retries: Some(4),
            }))
        );
        assert_eq!(
            only("HEALTHCHECK CMD [\"/ok\"]"),
            Kind::Healthcheck(Some(Healthcheck {
                test: exec(&["/ok"]),
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            }))
        );
    }

    #[test]
    fn healthcheck_errors() {
        assert!(err("FROM x\nHEALTHCHECK --retries=x CMD a").contains("whole number"));
        assert!(err("FROM x\nHEALTHCHECK NONE x").contains("NONE takes no"));
        assert!(err("FROM x\nHEALTHCHECK --interval=1s NONE").contains("NONE takes no"));
        assert!(err("FROM x\nHEALTHCHECK curl").contains("expects NONE or [flags] CMD"));
        assert!(err("FROM x\nHEALTHCHECK CMD").contains("HEALTHCHECK CMD needs a command"));
        assert!(err("FROM x\nHEALTHCHECK --port=1 CMD a")
            .contains("unknown flag --port for HEALTHCHECK"));
    }

    #[test]
    fn onbuild() {
        assert_eq!(
            only("ONBUILD RUN make  all"),
            Kind::Onbuild("RUN make  all".into())
        );
        assert_eq!(
            only("onbuild copy . /src"),
            Kind::Onbuild("copy . /src".into())
        );
        assert_eq!(
            err("FROM x\nONBUILD ONBUILD RUN a"),
            "Dockerfile:2: ONBUILD cannot trigger ONBUILD"
        );
        assert!(err("FROM x\nONBUILD FROM a").contains("cannot trigger FROM"));
        assert!(err("FROM x\nONBUILD maintainer a").contains("cannot trigger MAINTAINER"));
        assert_eq!(
            err("FROM x\nONBUILD"),
            "Dockerfile:2: ONBUILD needs an instruction"
        );
        assert_eq!(
            err("FROM x\nONBUILD COPY a"),
            "Dockerfile:2: ONBUILD COPY needs at least a source and a destination"
        );
        assert!(err("FROM x\nONBUILD FOO a").contains("unknown instruction \"FOO\""));
    }

    #[test]
    fn unknown_instruction() {
        assert_eq!(
            err("FROM x\nFROB a"),
            "Dockerfile:2: unknown instruction \"FROB\""
        );
    }

    #[test]
    fn continuations_comments_and_blank_lines() {
        let text = "FROM x\nRUN apt-get update && \\\n    # a comment\n\n    apt-get install -y \\\n      curl\nCMD a\nFROB";
        let file = parse("Dockerfile", text);
        // The error names the line the unknown instruction is on, after the continuations.
        assert_eq!(file.unwrap_err().line, 8);
        let found = ok(&text.replace("FROB", ""));
        let run = &found.stages[0].instructions[0];
        assert_eq!(run.line, 2);
        assert_eq!(
            run.original,
            "RUN apt-get update && apt-get install -y curl"
        );
        assert_eq!(
            run.kind,
            Kind::Run {
                command: shell("apt-get update &&     apt-get install -y       curl"),
                network: None,
                heredocs: Vec::new()
            }
        );
        assert_eq!(found.stages[0].instructions[1].line, 7);
    }

    #[test]
    fn continued_env_and_from() {
        let found = ok("FROM \\\n  alpine \\\n  AS b\nENV A=1 \\\n    B=2");
        assert_eq!(found.stages[0].original, "FROM alpine AS b");
        assert_eq!(found.stages[0].name.as_deref(), Some("b"));
        assert_eq!(
            found.stages[0].instructions[0].kind,
            Kind::Env(pairs(&[("A", "1"), ("B", "2")]))
        );
        assert_eq!(found.stages[0].instructions[0].line, 4);
    }

    #[test]
    fn backtick_escape_directive() {
        let text = "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n    /b\nWORKDIR c:\\app";
        let file = ok(text);
        assert_eq!(file.escape, '`');
        let stage = &file.stages[0];
        assert_eq!(
            stage.instructions[0].kind,
            Kind::Copy(copy_spec(&["testfile.txt"], "c:\\"))
        );
        assert_eq!(
            stage.instructions[1].kind,
            Kind::Run {
                command: shell("dir c:\\     /b"),
                network: None,
                heredocs: Vec::new()
            }
        );
        assert_eq!(stage.instructions[2].kind, Kind::Workdir("c:\\app".into()));
        assert_eq!(stage.instructions[2].line, 6);
    }

    #[test]
    fn escape_directive_after_a_comment_is_a_comment() {
        let file = ok("# hello\n# escape=`\nFROM x\nRUN a \\\n b");
        assert_eq!(file.escape, '\\');
        assert_eq!(file.stages[0].instructions.len(), 1);
        let file = ok("FROM x\n# escape=`\n");
        assert_eq!(file.escape, '\\');
        assert_eq!(
            err("# escape=x\nFROM a"),
            "Dockerfile:1: invalid escape directive \"x\", expected \\ or `"
        );
    }

    #[test]
    fn windows_line_endings_and_bom() {
        let file = ok("\u{feff}# escape=`\r\nFROM x\r\nRUN a `\r\n  b\r\n");
        assert_eq!(file.escape, '`');
        assert_eq!(file.stages[0].instructions[0].original, "RUN a b");
    }

    fn heredoc(name: &str, content: &str, expand: bool, strip_tabs: bool) -> Heredoc {
        Heredoc {
            name: name.into(),
            content: content.into(),
            expand,
            strip_tabs,
        }
    }

    #[test]
    fn run_heredoc_script() {
        let found = ok("FROM x\nRUN <<EOF\nset -e\necho $HOME\nEOF\nCMD a");
        let stage = &found.stages[0];
        assert_eq!(stage.instructions[0].original, "RUN <<EOF");
        assert_eq!(
            stage.instructions[0].kind,
            Kind::Run {
                command: shell("<<EOF"),
                network: None,
                heredocs: vec![heredoc("EOF", "set -e\necho $HOME\n", true, false)]
            }
        );
        assert_eq!(stage.instructions[1].line, 6);
    }

    #[test]
    fn run_with_command_and_several_heredocs() {
        let text = "FROM x\nRUN --network=host python3 <<'PY' && cat <<-\"B\" >/b\nprint('$x')\nPY\n\tone\n\t\ttwo\n\tB\nEXPOSE 1";
        let found = ok(text);
        let stage = &found.stages[0];
        assert_eq!(
            stage.instructions[0].kind,
            Kind::Run {
                command: shell("python3 <<'PY' && cat <<-\"B\" >/b"),
                network: Some("host".into()),
                heredocs: vec![
                    heredoc("PY", "print('$x')\n", false, false),
                    heredoc("B", "one\ntwo\n", false, true)
                ]
            }
        );
        assert_eq!(stage.instructions[1].kind, Kind::Expose(strings(&["1"])));
        assert_eq!(stage.instructions[1].line, 8);
    }

    #[test]
    fn heredoc_body_lines_are_not_instructions_or_comments() {
        let found = ok("FROM x\nRUN <<A <<B\n# not a comment\nFROM y\nA\n\nB\n");
        assert_eq!(found.stages.len(), 1);
        let Kind::Run { heredocs, .. } = &found.stages[0].instructions[0].kind else {
            panic!("not a RUN");
        };
        assert_eq!(heredocs[0].content, "# not a comment\nFROM y\n");
        assert_eq!(heredocs[1].content, "\n");
    }

    #[test]
    fn copy_heredocs() {
        let found =
            ok("FROM x\nCOPY --chmod=755 <<run.sh <<\"conf\" /app/\n#!/bin/sh\nrun.sh\n$X\nconf\n");
        let mut spec = copy_spec(&[], "/app/");
        spec.chmod = Some("755".into());
        spec.heredocs = vec![
            heredoc("run.sh", "#!/bin/sh\n", true, false),
            heredoc("conf", "$X\n", false, false),
        ];
        assert_eq!(found.stages[0].instructions[0].kind, Kind::Copy(spec));
        let found = ok("FROM x\nADD a <<EOF /d\nhi\nEOF");
        let Kind::Add(spec) = &found.stages[0].instructions[0].kind else {
            panic!("not ADD");
        };
        assert_eq!(spec.sources, ["a"]);
        assert_eq!(spec.heredocs.len(), 1);
    }

    #[test]
    fn quoted_heredoc_like_text_is_not_a_heredoc() {
        assert_eq!(
            only("RUN echo '<<EOF' \"<<B\""),
            Kind::Run {
                command: shell("echo '<<EOF' \"<<B\""),
                network: None,
                heredocs: Vec::new()
            }
        );
        assert_eq!(
            only("RUN [\"cat\", \"<<EOF\"]"),
            Kind::Run {
                command: exec(&["cat", "<<EOF"]),
                network: None,
                heredocs: Vec::new()
            }
        );
    }

    #[test]
    fn missing_heredoc_terminator() {
        assert_eq!(
            err("FROM x\n\nRUN cat <<EOF\nhello\nEOF \n"),
            "Dockerfile:3: heredoc <<EOF is not terminated: expected a line \"EOF\""
        );
        assert_eq!(
            err("FROM x\nRUN <<A <<B\nA\n"),
            "Dockerfile:2: heredoc <<B is not terminated: expected a line \"B\""
        );
        // Without <<-, an indented terminator does not end the heredoc.
        assert!(err("FROM x\nCOPY <<F /f\n\tF\n").contains("<<F"));
    }

    #[test]
    fn error_is_one_line_with_file_and_line() {
        let e = parse(
            "build/Containerfile",
            "FROM x\nRUN a \\\n b \\\n c\nBOGUS\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            ParseError {
                file: "build/Containerfile".into(),
                line: 5,
                message: "unknown instruction \"BOGUS\"".into()
            }
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn garbage_and_truncated_input_does_not_panic() {
        let full = "# syntax=x\n# escape=`\nARG A=1\nFROM --platform=$P a:${A} AS b\n\
            RUN --network=none <<-'E' python3 <<F `\n  && x\n\tbody\n\tE\nF\n\
            COPY --from=b --link [\"a\", \"b\"] <<G /c\nG\nENV A=\"x y\" B='z'\n\
            HEALTHCHECK --retries=3 CMD [\"x\"]\nONBUILD RUN y\nLABEL a b\n";
        for end in 0..=full.len() {
            if full.is_char_boundary(end) {
                let _ = parse("Dockerfile", &full[..end]);
            }
        }
        let mut state = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let len = (next(&mut state) % 200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| pick(&mut state)).collect();
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = parse("Dockerfile", &text) {
                assert!(!e.to_string().contains('\n'), "{e}");
            }
        }
    }

    /// Mostly Dockerfile-ish bytes, sometimes anything.
    fn pick(state: &mut u32) -> u8 {
        const BYTES: &[u8] = b"FROM RUN COPY ENV <<-'\"EOF\n\\`$ {}[]=--#\t\r";
        let r = next(state);
        if r & 7 == 0 {
            (r >> 8) as u8
        } else {
            BYTES[(r >> 8) as usize % BYTES.len()]
        }
    }

    /// xorshift: reproducible pseudo-random input without a dependency.
    fn next(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }
}
