//! RUN: the step's command in a container of the engine's, on the step's root filesystem,
//! with its output streamed to the build's client as it comes.

use std::path::Path;

use berth_engine::attach::Decoder;
use berth_engine::{AttachOptions, Config, Engine};
use tokio::io::AsyncReadExt;

use crate::dockerfile::{Command, Heredoc};
use crate::error::{Error, Result};
use crate::output::Output;

/// Labels every build container, so that one a crash left behind can be told and removed.
pub const BUILD_LABEL: &str = "run.berth.build";

/// What a RUN runs, and as whom.
pub struct RunSpec {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: Option<String>,
    /// The network mode (`""` for the default bridge, `none`, `host`, or a network).
    pub network: String,
}

/// The argv of a RUN: exec form as given, shell form through the stage's SHELL. Heredocs
/// become part of the shell script, so that the shell feeds them as it would any heredoc:
/// `RUN <<EOF` runs the body as the script, `RUN cmd <<EOF` gives it to cmd's stdin.
pub fn argv(command: &Command, heredocs: &[Heredoc], shell: &[String]) -> Vec<String> {
    let script = match command {
        Command::Exec(args) => return args.clone(),
        Command::Shell(text) if !heredocs.is_empty() && only_markers(text) => {
            heredocs[0].content.clone()
        }
        Command::Shell(text) => {
            let mut s = text.clone();
            for h in heredocs {
                s.push('\n');
                s.push_str(&h.content);
                s.push_str(&h.name);
            }
            s
        }
    };
    let mut v = shell.to_vec();
    v.push(script);
    v
}

fn only_markers(text: &str) -> bool {
    text.split_whitespace().all(|w| w.starts_with("<<"))
}

/// Runs the command on `rootfs`; returns its exit code. The container is removed whatever
/// happens.
pub async fn run(engine: &Engine, rootfs: &Path, spec: RunSpec, out: &Output) -> Result<i32> {
    let config = Config {
        rootfs: rootfs.to_path_buf(),
        cmd: spec.argv,
        env: spec.env,
        workdir: Some(spec.workdir),
        network: spec.network,
        labels: [(BUILD_LABEL.to_string(), "true".to_string())].into(),
        security: berth_engine::limits::Security {
            user: spec.user,
            ..Default::default()
        },
        ..Config::default()
    };
    let c = engine.create(None, config).await?;
    out.line(&format!(" ---> Running in {}\n", &c.id[..12]));
    let result = run_created(engine, &c.id, out).await;
    let removed = engine.remove_with(&c.id, true, true).await;
    let code = result?;
    removed?;
    out.line(&format!(
        "Removing intermediate container {}\n",
        &c.id[..12]
    ));
    Ok(code)
}

async fn run_created(engine: &Engine, id: &str, out: &Output) -> Result<i32> {
    let options = AttachOptions {
        stdout: true,
        stderr: true,
        stream: true,
        ..Default::default()
    };
    let mut attachment = engine.attach(id, options).await?;
    engine.start(id).await?;
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = attachment
            .stream
            .read(&mut buf)
            .await
            .map_err(|e| Error::io("read the build container's output", e))?;
        if n == 0 {
            break;
        }
        decoder.push(&buf[..n]);
        while let Some((_, chunk)) = decoder.next_frame()? {
            out.chunk(&chunk);
        }
    }
    Ok(engine.wait(id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, content: &str) -> Heredoc {
        Heredoc {
            name: name.into(),
            content: content.into(),
            expand: true,
            strip_tabs: false,
        }
    }

    #[test]
    fn shell_form_goes_through_the_shell_and_heredocs_into_its_script() {
        let sh = ["/bin/sh".to_string(), "-c".to_string()];
        assert_eq!(
            argv(&Command::Shell("echo hi".into()), &[], &sh),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            argv(&Command::Exec(vec!["echo".into(), "hi".into()]), &[], &sh),
            ["echo", "hi"]
        );
        assert_eq!(
            argv(
                &Command::Shell("<<EOF".into()),
                &[doc("EOF", "echo a\necho b\n")],
                &sh
            ),
            ["/bin/sh", "-c", "echo a\necho b\n"]
        );
        assert_eq!(
            argv(
                &Command::Shell("cat <<'X' > /f".into()),
                &[doc("X", "$a\n")],
                &sh
            ),
            ["/bin/sh", "-c", "cat <<'X' > /f\n$a\nX"]
        );
    }
}
