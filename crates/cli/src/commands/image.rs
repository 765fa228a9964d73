//! Image commands: pull, push, images, rmi, tag, save, load, import, and the registry
//! credentials of login/logout (kept in `~/.berth/config.json` in Docker's format).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use super::filters_json;
use crate::client::{enc, enc_path, query, Body, Client, JsonLines};
use crate::format::{self, ago, print_rows, short_id, Format};
use crate::progress;

/// The registry an image reference lives in, as credentials are keyed.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_owned(),
        _ => "https://index.docker.io/v1/".to_owned(),
    }
}

/// Splits `name[:tag][@digest]` into name and tag-or-digest (`latest` by default).
pub fn split_reference(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_owned(), digest.to_owned());
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_owned(),
            image[slash + i + 1..].to_owned(),
        ),
        None => (image.to_owned(), "latest".to_owned()),
    }
}

/// A client carrying the X-Registry-Auth header for `image`'s registry, when logged in.
fn with_auth(client: &Client, image: &str) -> Client {
    let mut c = client.clone();
    c.registry_auth = Credentials::load()
        .ok()
        .and_then(|creds| creds.header_for(&registry_of(image)));
    c
}

/// Pulls an image showing the daemon's progress.
pub async fn pull_image(client: &Client, image: &str, to: progress::To) -> Result<()> {
    let (name, tag) = split_reference(image);
    let q = if tag.starts_with("sha256:") {
        query(&[("fromImage", format!("{name}@{tag}"))])
    } else {
        query(&[("fromImage", name), ("tag", tag)])
    };
    let client = with_auth(client, image);
    let res = client
        .stream(Method::POST, &format!("/images/create{q}"), Body::Empty)
        .await?;
    progress::show(JsonLines::new(res), to).await
}

fn shown(quiet: bool) -> progress::To {
    if quiet {
        progress::To::Nowhere
    } else {
        progress::To::Stdout
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    pub image: String,
}

pub async fn pull(client: &Client, a: PullArgs) -> Result<()> {
    pull_image(client, &a.image, shown(a.quiet)).await?;
    if a.quiet {
        println!("{}", a.image);
    }
    Ok(())
}

pub async fn push(client: &Client, a: PullArgs) -> Result<()> {
    let (name, tag) = split_reference(&a.image);
    let q = query(&[("tag", tag)]);
    let client = with_auth(client, &a.image);
    let res = client
        .stream(
            Method::POST,
            &format!("/images/{}/push{q}", enc_path(&name)),
            Body::Empty,
        )
        .await?;
    progress::show(JsonLines::new(res), shown(a.quiet)).await
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: table, json, or a template like '{{.Repository}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only images of this repository
    pub repository: Option<String>,
}

pub async fn images(client: &Client, a: ImagesArgs) -> Result<()> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let q = query(&[
        ("all", if a.all { "1".into() } else { String::new() }),
        ("filters", filters_json(&filters)?),
    ]);
    let list: Vec<Value> = client.get(&format!("/images/json{q}")).await?;
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, a.no_trunc))
        .collect();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in rows.iter().filter(|r| seen.insert(r["ID"].to_string())) {
            println!("{}", format::text(&r["ID"]));
        }
        return Ok(());
    }
    let columns = [
        ("REPOSITORY", "Repository"),
        ("TAG", "Tag"),
        ("IMAGE ID", "ID"),
        ("CREATED", "CreatedSince"),
        ("SIZE", "Size"),
    ];
    print_rows(&Format::parse(a.format.as_deref()), &columns, &rows)
}

/// One row per tag of an image (one `<none>` row when untagged).
fn image_rows(i: &Value, no_trunc: bool) -> Vec<Value> {
    let id = i["Id"].as_str().unwrap_or("");
    let id = if no_trunc {
        id.to_owned()
    } else {
        short_id(id)
    };
    let created = i["Created"].as_i64().unwrap_or(0);
    let size = format::human_size(i["Size"].as_f64().unwrap_or(0.0));
    let mut tags: Vec<(String, String)> = i["RepoTags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|t| *t != "<none>:<none>")
        .map(|t| match t.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => (r.to_owned(), tag.to_owned()),
            _ => (t.to_owned(), "<none>".to_owned()),
        })
        .collect();
    if tags.is_empty() {
        tags.push(("<none>".into(), "<none>".into()));
    }
    tags.into_iter()
        .map(|(repo, tag)| {
            json!({"Repository": repo, "Tag": tag, "ID": id, "CreatedSince": ago(created),
                   "CreatedAt": created, "Size": size, "Containers": i["Containers"]})
        })
        .collect()
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub async fn rmi(client: &Client, a: RmiArgs) -> Result<()> {
    let q = format!("?force={}&noprune={}", a.force, a.no_prune);
    super::each(&a.images, false, |img| {
        let q = q.clone();
        async move {
            let path = format!("/images/{}{q}", enc_path(&img));
            let gone: Vec<Value> = client.json(Method::DELETE, &path, Body::Empty).await?;
            for g in gone {
                if let Some(u) = g["Untagged"].as_str() {
                    println!("Untagged: {u}");
                }
                if let Some(d) = g["Deleted"].as_str() {
                    println!("Deleted: {d}");
                }
            }
            Ok(())
        }
    })
    .await
}

pub async fn tag(client: &Client, source: &str, target: &str) -> Result<()> {
    let (repo, tag) = split_reference(target);
    let q = query(&[("repo", repo), ("tag", tag)]);
    client
        .post(&format!("/images/{}/tag{q}", enc_path(source)))
        .await
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub async fn save(client: &Client, a: SaveArgs) -> Result<()> {
    if a.output.is_none() && crate::terminal::is_tty(1) {
        bail!("cowardly refusing to save to a terminal: use -o FILE or redirect the output");
    }
    let names: Vec<String> = a
        .images
        .iter()
        .map(|i| format!("names={}", enc(i)))
        .collect();
    let res = client
        .stream(
            Method::GET,
            &format!("/images/get?{}", names.join("&")),
            Body::Empty,
        )
        .await?;
    crate::client::save_body(res, a.output.as_deref()).await
}

/// Reads an archive from a file or, for `-`/none, from stdin (refusing a terminal).
fn read_input(path: Option<&str>) -> Result<Bytes> {
    match path {
        Some(p) if p != "-" => Ok(std::fs::read(p)
            .with_context(|| format!("cannot read {p}"))?
            .into()),
        _ => {
            if crate::terminal::is_tty(0) {
                bail!("requested load from stdin, but stdin is empty: use -i FILE or redirect the input");
            }
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Ok(buf.into())
        }
    }
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn load(client: &Client, a: LoadArgs) -> Result<()> {
    let tar = read_input(a.input.as_deref())?;
    let q = if a.quiet { "?quiet=1" } else { "" };
    let res = client
        .stream(
            Method::POST,
            &format!("/images/load{q}"),
            Body::Raw(tar, "application/x-tar"),
        )
        .await?;
    progress::show(JsonLines::new(res), progress::To::Stdout).await
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// A tar archive (file or `-` for STDIN) or a URL
    pub source: String,
    /// The new image's name
    pub reference: Option<String>,
}

pub async fn import(client: &Client, a: ImportArgs) -> Result<()> {
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    let (repo, tag) = match &a.reference {
        Some(r) => split_reference(r),
        None => (String::new(), String::new()),
    };
    let mut pairs = vec![
        (
            "fromSrc",
            if is_url { a.source.clone() } else { "-".into() },
        ),
        ("repo", repo),
        ("tag", tag),
        ("message", a.message.clone().unwrap_or_default()),
    ];
    pairs.extend(a.change.iter().map(|c| ("changes", c.clone())));
    let body = if is_url {
        Body::Empty
    } else {
        Body::Raw(read_input(Some(&a.source))?, "application/x-tar")
    };
    let res = client
        .stream(
            Method::POST,
            &format!("/images/create{}", query(&pairs)),
            body,
        )
        .await?;
    progress::show(JsonLines::new(res), progress::To::Stdout).await
}

/// Docker's client config: `{"auths": {"registry": {"auth": base64("user:password")}}}`.
pub struct Credentials {
    path: PathBuf,
    doc: Value,
}

impl Credentials {
    fn path() -> Result<PathBuf> {
        let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
        Ok(PathBuf::from(home).join(".berth/config.json"))
    }

    pub fn load() -> Result<Credentials> {
        let path = Self::path()?;
        let doc = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!("{} is not valid JSON: fix or remove it", path.display())
            })?,
            Err(_) => json!({"auths": {}}),
        };
        Ok(Credentials { path, doc })
    }

    fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.doc)?)?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    pub fn set(&mut self, server: &str, user: &str, password: &str) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.doc["auths"][server] = json!({"auth": auth});
    }

    /// Forgets a server; false when it was not known.
    pub fn remove(&mut self, server: &str) -> bool {
        self.doc["auths"]
            .as_object_mut()
            .is_some_and(|m| m.remove(server).is_some())
    }

    /// The X-Registry-Auth header (base64url of the auth config JSON) for a server.
    pub fn header_for(&self, server: &str) -> Option<String> {
        let auth = self.doc["auths"][server]["auth"].as_str()?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let cfg = json!({"username": user, "password": password, "serveraddress": server});
        Some(base64::engine::general_purpose::URL_SAFE.encode(cfg.to_string()))
    }
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry (Docker Hub by default)
    pub server: Option<String>,
}

pub async fn login(client: &Client, a: LoginArgs) -> Result<()> {
    let server = a
        .server
        .clone()
        .unwrap_or_else(|| "https://index.docker.io/v1/".into());
    let user = match a.username {
        Some(u) => u,
        None if a.password_stdin => bail!("--password-stdin needs --username"),
        None => prompt("Username: ", true)?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p,
        (None, true) => read_line_stdin()?,
        (None, false) => prompt("Password: ", false)?,
    };
    if user.is_empty() || password.is_empty() {
        bail!("a username and a password are needed to log in");
    }
    let body = json!({"username": user, "password": password, "serveraddress": server});
    let res: Value = client.json(Method::POST, "/auth", Body::Json(body)).await?;
    let mut creds = Credentials::load()?;
    creds.set(&server, &user, &password);
    creds.save()?;
    println!("{}", res["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(())
}

pub fn logout(server: Option<String>) -> Result<()> {
    let server = server.unwrap_or_else(|| "https://index.docker.io/v1/".into());
    let mut creds = Credentials::load()?;
    if creds.remove(&server) {
        creds.save()?;
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(())
}

fn read_line_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks on the terminal; without echo for passwords.
fn prompt(label: &str, echo: bool) -> Result<String> {
    eprint!("{label}");
    let quiet = (!echo && crate::terminal::is_tty(0))
        .then(NoEcho::enter)
        .transpose()?;
    let line = read_line_stdin();
    if quiet.is_some() {
        eprintln!();
    }
    line
}

struct NoEcho(nix::sys::termios::Termios);

impl NoEcho {
    fn enter() -> Result<NoEcho> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut t = saved.clone();
        t.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &t)?;
        Ok(NoEcho(saved))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_reference("busybox:1.36"),
            ("busybox".into(), "1.36".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a:v1"),
            ("localhost:5000/a".into(), "v1".into())
        );
        assert_eq!(
            split_reference("a@sha256:00"),
            ("a".into(), "sha256:00".into())
        );
        assert_eq!(registry_of("localhost:5000/a"), "localhost:5000");
        assert_eq!(registry_of("quay.io/x/y"), "quay.io");
        assert_eq!(
            registry_of("library/busybox"),
            "https://index.docker.io/v1/"
        );
    }

    #[test]
    fn image_rows_per_tag() {
        let i = json!({"Id": "sha256:0123456789abcdef", "RepoTags": ["a:1", "localhost:5000/b:2"],
                       "Created": 0, "Size": 4300000});
        let rows = image_rows(&i, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1]["Repository"].as_str(), rows[1]["Tag"].as_str()),
            (Some("localhost:5000/b"), Some("2"))
        );
        assert_eq!(rows[0]["ID"], "0123456789ab");
        assert_eq!(rows[0]["Size"], "4.3MB");
        let none = image_rows(&json!({"Id": "sha256:ab", "RepoTags": null}), false);
        assert_eq!(none[0]["Repository"], "<none>");
    }

    #[test]
    fn credentials_in_docker_format() {
        let mut c = Credentials {
            path: PathBuf::from("/nonexistent"),
            doc: json!({"auths": {}}),
        };
        c.set("localhost:5000", "u", "p:w");
        assert_eq!(c.doc["auths"]["localhost:5000"]["auth"], "dTpwOnc=");
        let header = c.header_for("localhost:5000").unwrap();
        let cfg: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["password"], "p:w");
        assert!(c.remove("localhost:5000"));
        assert!(!c.remove("localhost:5000"));
        assert!(c.header_for("localhost:5000").is_none());
    }
}
