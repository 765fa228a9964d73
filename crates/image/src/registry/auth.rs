//! Registry authentication: `WWW-Authenticate` challenges (Bearer token flow and Basic), and
//! credentials in Docker's `config.json` (`auths` entries with base64 `user:password`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::error::{Error, Result};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="https://auth",service="reg",scope="repository:x:pull"` or
/// `Basic realm="..."` (RFC 7235 auth-params; values quoted or tokens).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.insert(key.trim().to_ascii_lowercase(), value);
    }
    out
}

/// A user name and password (or identity token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Docker's `config.json`: we read and write `auths` and leave every other field alone.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

const HUB_KEY: &str = "https://index.docker.io/v1/";

/// The key Docker uses in `auths` for a registry.
fn auth_key(registry: &str) -> String {
    if registry == crate::reference::DEFAULT_REGISTRY {
        HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host/v1/` style keys written by older clients name the same registry.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

impl CredentialStore {
    pub fn new(path: PathBuf) -> CredentialStore {
        CredentialStore { path }
    }

    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d).join("config.json"),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".docker/config.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Credentials {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn load(&self) -> Result<serde_json::Value> {
        match fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| self.bad(format!("not valid JSON ({e}); fix or remove it"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
            Err(e) => Err(Error::io(format!("read {}", self.path.display()))(e)),
        }
    }

    /// The credentials stored for `registry`, if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let cfg = self.load()?;
        let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else {
            return Ok(None);
        };
        let want = auth_key(registry);
        let entry = auths.get(&want).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_host(k) == key_host(&want))
                .map(|(_, v)| v)
        });
        let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
            return Ok(None);
        };
        let decoded = B64
            .decode(auth.trim())
            .map_err(|_| self.bad(format!("auth for {registry} is not base64; log in again")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| self.bad(format!("auth for {registry} is not UTF-8; log in again")))?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| {
            self.bad(format!(
                "auth for {registry} is not user:password; log in again"
            ))
        })?;
        Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }))
    }

    /// Stores credentials for `registry` (file mode 0600, replaced atomically).
    pub fn set(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let mut cfg = self.load()?;
        let obj = cfg
            .as_object_mut()
            .ok_or_else(|| self.bad("top level is not an object"))?;
        let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
        let auths = auths
            .as_object_mut()
            .ok_or_else(|| self.bad("\"auths\" is not an object"))?;
        let value = B64.encode(format!("{}:{}", creds.username, creds.password));
        auths.insert(auth_key(registry), serde_json::json!({ "auth": value }));
        self.save(&cfg)
    }

    /// Forgets `registry`'s credentials. Returns whether there were any.
    pub fn remove(&self, registry: &str) -> Result<bool> {
        let mut cfg = self.load()?;
        let want = auth_key(registry);
        let Some(auths) = cfg.get_mut("auths").and_then(|a| a.as_object_mut()) else {
            return Ok(false);
        };
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| **k == want || key_host(k) == key_host(&want))
            .cloned()
            .collect();
        for k in &keys {
            auths.remove(k);
        }
        if !keys.is_empty() {
            self.save(&cfg)?;
        }
        Ok(!keys.is_empty())
    }

    fn save(&self, cfg: &serde_json::Value) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(cfg).expect("JSON value serialises"))?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("write {}", self.path.display()))(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into())
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer realm=http://x/t, service=svc").unwrap(),
            Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("svc".into()),
                scope: None
            }
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn config_json_round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            r#"{"credsStore":"","auths":{"https://other.io/v1/":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let s = CredentialStore::new(path.clone());
        assert_eq!(
            s.get("other.io").unwrap(),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        let c = Credentials {
            username: "me".into(),
            password: "s3:cret".into(),
        };
        s.set("127.0.0.1:5000", &c).unwrap();
        s.set("docker.io", &c).unwrap();
        assert_eq!(s.get("127.0.0.1:5000").unwrap(), Some(c.clone()));
        let raw: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "x");
        assert!(raw["auths"][HUB_KEY]["auth"].is_string());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(s.remove("127.0.0.1:5000").unwrap());
        assert!(!s.remove("127.0.0.1:5000").unwrap());
        assert_eq!(s.get("127.0.0.1:5000").unwrap(), None);
        fs::write(&path, r#"{"auths":{"h":{"auth":"!!"}}}"#).unwrap();
        assert!(s.get("h").unwrap_err().to_string().contains("log in again"));
    }
}
