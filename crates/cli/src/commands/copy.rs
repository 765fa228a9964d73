//! `berth cp` (both ways) and `berth export`, with the docker CLI's semantics: a file or a
//! directory lands inside an existing directory, or takes the destination's name; a source
//! ending in `/.` copies a directory's contents; `-` is a tar on stdin or stdout.
//!
//! Local files are archived and extracted with the build crate's `copy::container`, the
//! same code the daemon uses, so an archive from the daemon cannot write outside the
//! destination directory either. Archives are held in memory on their way.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use berth_build::copy::container as cp;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde::Deserialize;

use crate::client::{enc, enc_path, next_chunk, Body, Client, DaemonError};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH, a local path, or `-` (a tar on stdin)
    pub src: String,
    /// CONTAINER:DEST_PATH, a local path, or `-` (a tar on stdout)
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

/// One side of a copy: a container's path, or a local one.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Container(String, String),
    Local(String),
}

/// As the docker CLI: `NAME:PATH` names a container unless the argument is a local
/// absolute or `.`-relative path.
fn side(arg: &str) -> Side {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Side::Local(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c.to_string(), p.to_string()),
        _ => Side::Local(arg.to_string()),
    }
}

/// What the daemon's `X-Docker-Container-Path-Stat` says.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Stat {
    mode: u32,
    #[serde(default)]
    link_target: String,
}

impl Stat {
    fn is_dir(&self) -> bool {
        self.mode & (1 << 31) != 0
    }

    fn is_symlink(&self) -> bool {
        self.mode & (1 << 27) != 0
    }
}

pub async fn cp(client: &Client, a: CpArgs) -> Result<()> {
    match (side(&a.src), side(&a.dest)) {
        (Side::Container(c, src), Side::Local(dest)) => {
            from_container(client, &c, &src, &dest).await
        }
        (Side::Local(src), Side::Container(c, dest)) => {
            to_container(client, &a, &src, &c, &dest).await
        }
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        (Side::Local(_), Side::Local(_)) => {
            bail!("must specify at least one container source: write it as CONTAINER:PATH")
        }
    }
}

fn archive_url(container: &str, path: &str) -> String {
    format!(
        "/containers/{}/archive?path={}",
        enc_path(container),
        enc(path)
    )
}

/// The stat of a path in a container; `None` if it does not exist.
async fn stat(client: &Client, container: &str, path: &str) -> Result<Option<Stat>> {
    let res = client
        .raw(Method::HEAD, &archive_url(container, path), Body::Empty)
        .await?;
    match res.status().as_u16() {
        404 => {
            // A missing container is an error; a missing path is an answer.
            client
                .send(
                    Method::GET,
                    &format!("/containers/{}/json", enc_path(container)),
                    Body::Empty,
                )
                .await?;
            Ok(None)
        }
        s if s >= 400 => Err(DaemonError {
            status: s,
            message: format!("cannot stat {path} in {container} (status {s})"),
        }
        .into()),
        _ => decode_stat(res.headers()).map(Some),
    }
}

fn decode_stat(headers: &hyper::HeaderMap) -> Result<Stat> {
    let value = headers
        .get("X-Docker-Container-Path-Stat")
        .ok_or_else(|| anyhow!("the daemon sent no path stat"))?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .context("the daemon's path stat is not base64")?;
    serde_json::from_slice(&json).context("the daemon's path stat is not the JSON expected")
}

/// `path`'s directory and last name, `.` for a path ending in `/.`.
fn split_last(path: &str) -> (String, String) {
    if path.ends_with("/.") || path == "." {
        return (path.trim_end_matches('.').to_string(), ".".into());
    }
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((dir, name)) => (dir.into(), name.into()),
        None => (".".into(), trimmed.into()),
    }
}

async fn from_container(client: &Client, container: &str, src: &str, dest: &str) -> Result<()> {
    let res = client
        .stream(Method::GET, &archive_url(container, src), Body::Empty)
        .await?;
    let stat = decode_stat(res.headers())?;
    let mut body = res.into_body();
    let mut tar = Vec::new();
    let mut out: Box<dyn Write> = if dest == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(&mut tar)
    };
    while let Some(chunk) = next_chunk(&mut body).await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    drop(out);
    if dest == "-" {
        return Ok(());
    }
    let (_, src_name) = split_last(src);
    tokio::task::spawn_blocking({
        let dest = dest.to_string();
        move || extract_locally(&tar, stat.is_dir(), &src_name, &dest)
    })
    .await?
}

/// Extracts the archive of `src_name` from a container to the local `dest`.
fn extract_locally(tar: &[u8], src_is_dir: bool, src_name: &str, dest: &str) -> Result<()> {
    let dest_path = Path::new(dest);
    let owner = Some(invoking_user());
    match std::fs::metadata(dest_path) {
        Ok(m) if m.is_dir() => {
            return cp::extract_into(dest_path, ".", tar, true, owner, &Default::default())
                .with_context(|| format!("cannot copy into {dest}"))
        }
        Ok(_) if src_is_dir => bail!("cannot copy a directory to the file {dest}"),
        Ok(_) => {}
        Err(_) if dest.ends_with('/') && !src_is_dir => {
            bail!("destination directory {dest} does not exist")
        }
        Err(_) => {}
    }
    // A new name (or a file replaced): extracted beside it, then renamed into place.
    let (parent, _) = split_last(dest);
    let parent = Path::new(&parent);
    if !parent.is_dir() {
        bail!("destination directory {} does not exist", parent.display());
    }
    let scratch = parent.join(format!(".berth-cp-{}", std::process::id()));
    std::fs::create_dir(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let moved = cp::extract_into(&scratch, ".", tar, true, owner, &Default::default())
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let from = if src_name == "." {
                scratch.clone()
            } else {
                scratch.join(src_name)
            };
            std::fs::rename(&from, dest_path)
                .with_context(|| format!("cannot move the copy to {dest}"))
        });
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    moved
}

/// The user the local copy belongs to: whoever runs the command, as with the docker CLI.
fn invoking_user() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

async fn to_container(
    client: &Client,
    a: &CpArgs,
    src: &str,
    container: &str,
    dest: &str,
) -> Result<()> {
    let mut dest = dest.to_string();
    let mut dest_stat = stat(client, container, &dest).await?;
    if let Some(link) = dest_stat.as_ref().filter(|s| s.is_symlink()) {
        // As the docker CLI: a symlink destination is replaced by where it points.
        dest = link.link_target.clone();
        dest_stat = stat(client, container, &dest).await?;
    }
    let (dir, tar) = if src == "-" {
        if !dest_stat.as_ref().is_some_and(Stat::is_dir) {
            bail!("destination {container}:{dest} must be a directory when the source is a tar on stdin");
        }
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        (dest.clone(), buf)
    } else {
        let (src, follow) = (src.to_string(), a.follow_link);
        let is_dir = dest_stat.as_ref().map(Stat::is_dir);
        let d = dest.clone();
        tokio::task::spawn_blocking(move || archive_locally(&src, follow, is_dir, &d)).await??
    };
    let mut url = format!("{}&noOverwriteDirNonDir=true", archive_url(container, &dir));
    if a.archive {
        url.push_str("&copyUIDGID=true");
    }
    client
        .send(
            Method::PUT,
            &url,
            Body::Raw(Bytes::from(tar), "application/x-tar"),
        )
        .await
        .map(drop)
}

/// The archive of the local `src` for a container's `dest` (`dest_is_dir`: `None` if it
/// does not exist), and the directory of the container to extract it in.
fn archive_locally(
    src: &str,
    follow: bool,
    dest_is_dir: Option<bool>,
    dest: &str,
) -> Result<(String, Vec<u8>)> {
    let mut abs = std::env::current_dir()?.join(src);
    let meta = std::fs::symlink_metadata(&abs).with_context(|| format!("cannot copy {src}"))?;
    if follow && meta.file_type().is_symlink() {
        abs = std::fs::canonicalize(&abs).with_context(|| format!("cannot follow {src}"))?;
    }
    // A symlink not followed is copied as the link itself, whatever it points to.
    let src_is_dir = std::fs::symlink_metadata(&abs).is_ok_and(|m| m.is_dir());
    let mut local = abs.to_string_lossy().into_owned();
    if src.ends_with("/.") {
        local.push_str("/.");
    }
    let (dir, rename) = match dest_is_dir {
        Some(true) => (dest.to_string(), None),
        Some(false) if src_is_dir => bail!("cannot copy the directory {src} to a file"),
        _ if dest_is_dir.is_none() && dest.ends_with('/') && !src_is_dir => {
            bail!("destination directory {dest} does not exist")
        }
        _ => {
            let (dir, name) = split_last(dest);
            (dir, Some(name))
        }
    };
    let mut tar = Vec::new();
    cp::archive_path_as(
        Path::new("/"),
        &local,
        rename.as_deref(),
        &Default::default(),
        &mut tar,
    )
    .with_context(|| format!("cannot copy {src}"))?;
    Ok((dir, tar))
}

pub async fn export(client: &Client, a: ExportArgs) -> Result<()> {
    if a.output.is_none() && crate::terminal::is_tty(1) {
        bail!("cowardly refusing to save to a terminal: use -o FILE or redirect the output");
    }
    let res = client
        .stream(
            Method::GET,
            &format!("/containers/{}/export", enc_path(&a.container)),
            Body::Empty,
        )
        .await?;
    crate::client::save_body(res, a.output.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_told_apart_as_docker_does() {
        assert_eq!(
            side("web:/etc"),
            Side::Container("web".into(), "/etc".into())
        );
        assert_eq!(side("/tmp/a:b"), Side::Local("/tmp/a:b".into()));
        assert_eq!(side("./x:y"), Side::Local("./x:y".into()));
        assert_eq!(side("file"), Side::Local("file".into()));
        assert_eq!(side("-"), Side::Local("-".into()));
    }

    #[test]
    fn last_names() {
        assert_eq!(split_last("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_last("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_last("/a/."), ("/a/".into(), ".".into()));
        assert_eq!(split_last("/b"), ("/".into(), "b".into()));
        assert_eq!(split_last("b"), (".".into(), "b".into()));
    }

    #[test]
    fn files_land_in_new_names_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar_of_file("a.txt", b"hi");
        extract_locally(
            &tar,
            false,
            "a.txt",
            dir.path().join("b.txt").to_str().unwrap(),
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("b.txt")).unwrap(), b"hi");
        extract_locally(&tar, false, "a.txt", dir.path().to_str().unwrap()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"hi");
        let missing = dir.path().join("nope/");
        let err = extract_locally(&tar, false, "a.txt", &format!("{}/", missing.display()));
        assert!(err.is_err());
        tar.truncate(0);
        assert!(
            extract_locally(&tar, false, "a.txt", dir.path().join("c").to_str().unwrap()).is_err()
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no scratch left"
        );
    }

    fn tar_of_file(name: &str, data: &[u8]) -> Vec<u8> {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join(name), data).unwrap();
        let mut tar = Vec::new();
        let path = src.path().join(name);
        cp::archive_path(Path::new("/"), path.to_str().unwrap(), &mut tar).unwrap();
        tar
    }
}
