//! Image references (`registry:5000/team/app:v1.0.2`, `busybox`, `repo@sha256:…`), parsed and
//! normalised the way Docker does, so that a name means the same image in berth and docker.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised reference: always a registry and a repository, a tag unless only a digest
/// was given (then no `latest` is made up, as in Docker).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one
    /// (it pins the content), else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The host to talk to: Docker Hub's API does not live at docker.io itself.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, Error> {
        check_tag(tag, tag)?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest (no tag), as Docker's RepoDigests.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Docker's short form: `busybox:latest` rather than `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        let short = full.strip_prefix("docker.io/").unwrap_or(&full);
        short
            .strip_prefix("library/")
            .filter(|s| !s.contains('/'))
            .unwrap_or(short)
            .to_string()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        parse(input)
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn parse(input: &str) -> Result<Reference, Error> {
    if input.is_empty() {
        return Err(invalid(input, "empty reference"));
    }
    if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            input,
            "a 64-digit hex string is an image ID, not a reference",
        ));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, d)) => (
            rest,
            Some(
                d.parse::<Digest>()
                    .map_err(|e| invalid(input, e.to_string()))?,
            ),
        ),
        None => (input, None),
    };
    let (name, tag) = split_tag(rest);
    if let Some(t) = tag {
        check_tag(input, t)?;
    }
    let (registry, repository) = split_domain(name);
    check_domain(input, &registry)?;
    check_path(input, &repository)?;
    if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(invalid(
            input,
            format!("name longer than {MAX_NAME_LEN} characters"),
        ));
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TAG.to_string()),
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// The tag is after the last ':' unless that ':' is part of the host's port (then a '/'
/// follows it).
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Docker's rule: the first component is a registry only if it looks like a host (has a
/// '.' or ':', or is `localhost`) and is not uppercase; otherwise the name is on Docker Hub,
/// where single names live under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if (first.contains(['.', ':']) || first == "localhost")
                && first.to_lowercase() == first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_REGISTRY.to_string()
    } else {
        domain
    };
    let rest = if domain == DEFAULT_REGISTRY && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    (domain, rest)
}

fn check_tag(input: &str, tag: &str) -> Result<(), Error> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!(
                "invalid tag {tag:?}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
            ),
        ))
    }
}

fn check_domain(input: &str, domain: &str) -> Result<(), Error> {
    let (host, port) = match domain.strip_prefix('[') {
        // IPv6 literal: [addr]:port
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => {
                return match rest {
                    "" => Ok(()),
                    p if p.strip_prefix(':').is_some_and(all_digits) => Ok(()),
                    _ => Err(invalid(
                        input,
                        format!("invalid registry port in {domain:?}"),
                    )),
                };
            }
            _ => {
                return Err(invalid(
                    input,
                    format!("invalid registry address {domain:?}"),
                ))
            }
        },
        None => match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        },
    };
    if let Some(p) = port {
        if !all_digits(p) {
            return Err(invalid(input, format!("invalid registry port {p:?}")));
        }
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if host.split('.').all(component_ok) {
        Ok(())
    } else {
        Err(invalid(input, format!("invalid registry host {host:?}")))
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn check_path(input: &str, path: &str) -> Result<(), Error> {
    if path.is_empty() {
        return Err(invalid(input, "missing repository name"));
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid(input, "repository name must be lowercase"));
    }
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(invalid(
                input,
                format!("invalid repository component {component:?}: lowercase letters and digits, separated by '.', '_', '__' or dashes"),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("team/app"), "docker.io/team/app:latest");
        assert_eq!(
            norm("index.docker.io/library/x"),
            "docker.io/library/x:latest"
        );
        assert_eq!(
            norm("registry:5000/team/app:v1.0.2"),
            "registry:5000/team/app:v1.0.2"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b/c"), "127.0.0.1:5000/a/b/c:latest");
        assert_eq!(norm("[::1]:5000/app:1"), "[::1]:5000/app:1");
        assert_eq!(norm("quay.io/a__b.c-d---e:t"), "quay.io/a__b.c-d---e:t");
    }

    #[test]
    fn digests_and_tags() {
        let r: Reference = format!("repo@{D}").parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/repo@{D}"));
        let r: Reference = format!("host:5000/repo:v1@{D}").parse().unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("host:5000", "repo", Some("v1"))
        );
        assert_eq!(r.manifest_ref(), D);
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| s.parse::<Reference>().unwrap().familiar();
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("team/app:1"), "team/app:1");
        assert_eq!(f("host:5000/app"), "host:5000/app:latest");
    }

    #[test]
    fn api_host_for_hub() {
        assert_eq!(
            "busybox".parse::<Reference>().unwrap().api_host(),
            "registry-1.docker.io"
        );
        assert_eq!("h:1/x".parse::<Reference>().unwrap().api_host(), "h:1");
    }

    #[test]
    fn rejects_invalid_names_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("repo:", "invalid tag"),
            ("repo:-x", "invalid tag"),
            ("repo@sha256:abc", "wrong length"),
            ("a//b", "invalid repository component"),
            ("a/b_", "invalid repository component"),
            ("a/b..c", "invalid repository component"),
            ("host:port/x", "invalid registry port"),
            ("-host.io/x", "invalid registry host"),
            ("host.io/", "missing repository"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "image ID",
            ),
        ];
        for (input, why) in cases {
            let err = input.parse::<Reference>().unwrap_err().to_string();
            assert!(err.contains(why), "{input:?}: {err}");
        }
        let long = format!("h.io/{}", "a".repeat(300));
        assert!(long
            .parse::<Reference>()
            .unwrap_err()
            .to_string()
            .contains("longer"));
        let tag = format!("x:{}", "t".repeat(129));
        assert!(tag.parse::<Reference>().is_err());
    }
}
