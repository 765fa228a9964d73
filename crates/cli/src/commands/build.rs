//! `berth build`: the context directory packed as a tar (without what `.dockerignore`
//! excludes), sent to `POST /build`, and the build's output shown as it comes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{query, Body, Client, JsonLines};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    pub network: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Remove intermediate containers after a successful build (always done)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub rm: bool,
    /// The build context: a directory, or `-` for a tar on stdin
    pub context: String,
}

pub async fn build(client: &Client, a: BuildArgs) -> Result<()> {
    let (tar, dockerfile) = context_tar(&a)?;
    let mut pairs: Vec<(&str, String)> = a.tags.iter().map(|t| ("t", t.clone())).collect();
    pairs.push(("dockerfile", dockerfile));
    pairs.push(("buildargs", json!(build_args(&a.build_args)?).to_string()));
    pairs.push(("labels", json!(labels(&a.labels)?).to_string()));
    pairs.push(("rm", "1".into()));
    if let Some(t) = &a.target {
        pairs.push(("target", t.clone()));
    }
    if a.no_cache {
        pairs.push(("nocache", "1".into()));
    }
    if a.quiet {
        pairs.push(("q", "1".into()));
    }
    if let Some(n) = &a.network {
        pairs.push(("networkmode", n.clone()));
    }
    if let Some(p) = &a.platform {
        pairs.push(("platform", p.clone()));
    }
    let res = client
        .stream(
            Method::POST,
            &format!("/build{}", query(&pairs)),
            Body::Raw(tar, "application/x-tar"),
        )
        .await?;
    let id = show(JsonLines::new(res), a.quiet).await?;
    if a.quiet {
        println!("{id}");
    }
    if let Some(path) = &a.iidfile {
        std::fs::write(path, &id)
            .with_context(|| format!("cannot write the image ID to {}", path.display()))?;
    }
    Ok(())
}

/// The context as a tar, and the Dockerfile's name in it.
fn context_tar(a: &BuildArgs) -> Result<(Bytes, String)> {
    if a.context == "-" {
        if crate::terminal::is_tty(0) {
            bail!("the build context is `-` but stdin is a terminal: pipe a tar of the context in");
        }
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        let name = a
            .file
            .as_ref()
            .map_or("Dockerfile".to_string(), |f| f.display().to_string());
        return Ok((buf.into(), name));
    }
    let dir = Path::new(&a.context);
    if !dir.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found: give the build context directory",
            a.context
        );
    }
    let dockerfile = match &a.file {
        Some(f) if f.as_os_str() == "-" => {
            bail!("a Dockerfile on stdin (-f -) is not supported: give its path")
        }
        Some(f) => f.clone(),
        None => dir.join("Dockerfile"),
    };
    if !dockerfile.is_file() {
        bail!(
            "unable to prepare context: cannot find the Dockerfile {}: give it with -f",
            dockerfile.display()
        );
    }
    let mut tar = Vec::new();
    let name = berth_build::context::pack(dir, &dockerfile, &mut tar)
        .map_err(|e| anyhow!("unable to prepare context: {e}"))?;
    Ok((tar.into(), name))
}

/// `KEY=VALUE`, or `KEY` alone for the value in this environment (unset: left out).
fn build_args(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some(("", _)) => bail!("--build-arg {a}: the name is missing: write KEY=VALUE"),
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn labels(args: &[String]) -> Result<BTreeMap<String, String>> {
    args.iter()
        .map(|l| match l.split_once('=') {
            Some(("", _)) => Err(anyhow!("--label {l}: the key is missing: write KEY=VALUE")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Ok((l.clone(), String::new())),
        })
        .collect()
}

/// Prints the build's text as it comes (unless quiet); returns the image's ID, or the
/// build's error.
async fn show(mut lines: JsonLines, quiet: bool) -> Result<String> {
    let mut id = None;
    let mut stdout = std::io::stdout();
    while let Some(v) = lines.next().await? {
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            bail!("{}", e.trim_end());
        }
        if let Some(s) = v.get("stream").and_then(Value::as_str).filter(|_| !quiet) {
            stdout.write_all(s.as_bytes())?;
            stdout.flush()?;
        }
        if let Some(i) = v.pointer("/aux/ID").and_then(Value::as_str) {
            id = Some(i.to_string());
        }
    }
    id.ok_or_else(|| anyhow!("the daemon ended the build without an image ID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_and_labels_parse() {
        std::env::set_var("BERTH_TEST_FROM_ENV", "x");
        let a = build_args(&[
            "A=1".into(),
            "B=".into(),
            "BERTH_TEST_FROM_ENV".into(),
            "BERTH_TEST_UNSET_VAR".into(),
        ])
        .unwrap();
        assert_eq!(a.get("A").map(String::as_str), Some("1"));
        assert_eq!(a.get("B").map(String::as_str), Some(""));
        assert_eq!(a.get("BERTH_TEST_FROM_ENV").map(String::as_str), Some("x"));
        assert!(!a.contains_key("BERTH_TEST_UNSET_VAR"));
        assert!(build_args(&["=v".into()]).is_err());
        let l = labels(&["k=v".into(), "flag".into()]).unwrap();
        assert_eq!(l.get("flag").map(String::as_str), Some(""));
    }
}
