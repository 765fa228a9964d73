//! Manifests, indexes and configs in both OCI and Docker schema2 form, platform selection,
//! and layer compression. The raw bytes are always kept: digests are over them, and Docker
//! configs carry fields oci-spec's types drop.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// What we ask registries for, in order of preference.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A parsed manifest-like document with the bytes it came from.
#[derive(Debug, Clone)]
pub enum Parsed {
    Index {
        media_type: String,
        index: Box<ImageIndex>,
    },
    Image {
        media_type: String,
        manifest: Box<ImageManifest>,
    },
}

/// Parses a manifest or index. The media type comes from the transport (Content-Type) when
/// it is specific, else from the document's own `mediaType`, else from its shape.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::manifest("manifest", format!("not JSON: {e}")))?;
    let declared = value.get("mediaType").and_then(|v| v.as_str());
    let media_type = match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some(c) if is_known(c) => c.to_string(),
        _ => match declared {
            Some(d) => d.to_string(),
            None if value.get("manifests").is_some() => OCI_INDEX.to_string(),
            None if value.get("layers").is_some() => OCI_MANIFEST.to_string(),
            None => {
                return Err(Error::manifest(
                    "manifest",
                    "neither an index nor an image manifest",
                ))
            }
        },
    };
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(Error::manifest("manifest", "schemaVersion must be 2 (schema1 images are not supported; re-push the image with a current tool)"));
    }
    match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let index: ImageIndex =
                serde_json::from_value(value).map_err(|e| Error::manifest("image index", e))?;
            Ok(Parsed::Index {
                media_type,
                index: Box::new(index),
            })
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let manifest: ImageManifest =
                serde_json::from_value(value).map_err(|e| Error::manifest("image manifest", e))?;
            check_manifest(&manifest)?;
            Ok(Parsed::Image {
                media_type,
                manifest: Box::new(manifest),
            })
        }
        DOCKER_SCHEMA1 | "application/vnd.docker.distribution.manifest.v1+json" => {
            Err(Error::UnsupportedMediaType(media_type))
        }
        other => Err(Error::UnsupportedMediaType(other.to_string())),
    }
}

fn is_known(ct: &str) -> bool {
    matches!(
        ct,
        OCI_INDEX | DOCKER_LIST | OCI_MANIFEST | DOCKER_MANIFEST | DOCKER_SCHEMA1
    )
}

/// Refuses manifests whose config or layers we would not know how to use, up front,
/// before anything is downloaded.
fn check_manifest(m: &ImageManifest) -> Result<()> {
    let config_type = m.config().media_type().to_string();
    if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
        return Err(Error::manifest("image manifest", format!("config media type {config_type:?} is not an image config (an artifact, not a container image?)")));
    }
    for layer in m.layers() {
        let t = layer.media_type().to_string();
        if t == DOCKER_FOREIGN || t.contains("nondistributable") {
            return Err(Error::manifest(
                "image manifest",
                format!(
                    "layer {} is a foreign layer ({t}); Windows base layers are not supported",
                    layer.digest()
                ),
            ));
        }
        Compression::from_media_type(&t)?;
    }
    digest_of(m.config())?;
    for l in m.layers() {
        digest_of(l)?;
    }
    Ok(())
}

/// Our digest type for a descriptor (rejects algorithms we cannot verify).
pub fn digest_of(d: &Descriptor) -> Result<Digest> {
    Digest::try_from(d.digest())
}

/// An image config with the few fields we need checked: diff IDs as digests.
#[derive(Debug, Clone)]
pub struct Config {
    pub parsed: ImageConfiguration,
    pub diff_ids: Vec<Digest>,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        let parsed: ImageConfiguration =
            serde_json::from_slice(bytes).map_err(|e| Error::manifest("image config", e))?;
        if parsed.rootfs().typ() != "layers" {
            return Err(Error::manifest(
                "image config",
                format!(
                    "rootfs type {:?} (expected \"layers\")",
                    parsed.rootfs().typ()
                ),
            ));
        }
        let diff_ids = parsed
            .rootfs()
            .diff_ids()
            .iter()
            .map(|s| s.parse::<Digest>())
            .collect::<Result<Vec<_>>>()
            .map_err(|e| Error::manifest("image config", e))?;
        Ok(Config { parsed, diff_ids })
    }

    pub fn platform(&self) -> Platform {
        Platform {
            os: self.parsed.os().to_string(),
            architecture: self.parsed.architecture().to_string(),
            variant: self.parsed.variant().clone(),
        }
    }
}

/// Checks that a manifest and its config agree on the number of layers.
pub fn check_layers_match(manifest: &ImageManifest, config: &Config) -> Result<()> {
    if manifest.layers().len() != config.diff_ids.len() {
        return Err(Error::manifest(
            "image",
            format!(
                "manifest has {} layers but config lists {} diff IDs",
                manifest.layers().len(),
                config.diff_ids.len()
            ),
        ));
    }
    Ok(())
}

/// os/arch[/variant].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    /// linux on the host's architecture in Go's names (amd64 on x86_64).
    fn default() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = (architecture == "arm64").then(|| "v8".to_string());
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::InvalidPlatform(s.to_string())),
        }
    }
}

impl Platform {
    /// Variant matching as containerd does it loosely: no variant wanted matches any; arm64
    /// without variant equals v8.
    fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.architecture {
            return false;
        }
        let norm = |v: Option<&str>| match (self.architecture.as_str(), v) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match &self.variant {
            None => true,
            Some(w) => norm(p.variant().as_deref()).as_deref() == norm(Some(w)).as_deref(),
        }
    }
}

/// Picks the manifest for `want` from an index.
pub fn select_platform(index: &ImageIndex, want: &Platform) -> Result<Descriptor> {
    let candidates = index.manifests().iter().filter(|d| {
        let t = d.media_type().to_string();
        t == OCI_MANIFEST || t == DOCKER_MANIFEST
    });
    let mut available = Vec::new();
    for d in candidates {
        match d.platform() {
            Some(p) if want.matches(p) => return Ok(d.clone()),
            Some(p) => available.push(format!(
                "{}/{}{}",
                p.os(),
                p.architecture(),
                p.variant()
                    .as_ref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            )),
            None => available.push("(no platform)".into()),
        }
    }
    Err(Error::NoMatchingPlatform {
        wanted: want.to_string(),
        available,
    })
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_media_type(t: &str) -> Result<Compression> {
        match t {
            OCI_LAYER
            | DOCKER_LAYER
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(Compression::None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
            OCI_LAYER_ZSTD | DOCKER_LAYER_ZSTD => Ok(Compression::Zstd),
            other => Err(Error::UnsupportedMediaType(other.to_string())),
        }
    }

    /// Recognises compression by magic number (archives do not say what their layers are).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// A reader of the uncompressed tar inside a layer blob, whatever its compression (sniffed,
/// so a mislabelled layer still reads).
pub fn decompress<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let head = r.fill_buf().map_err(Error::io("read layer"))?;
    Ok(match Compression::sniff(head) {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(Error::io("zstd"))?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn docker_manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":2,"digest":"{DIGEST}"}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":3,"digest":"{DIGEST}"}}]}}"#
        )
    }

    #[test]
    fn parses_docker_and_oci_manifests() {
        match parse(docker_manifest().as_bytes(), None).unwrap() {
            Parsed::Image {
                media_type,
                manifest,
            } => {
                assert_eq!(media_type, DOCKER_MANIFEST);
                assert_eq!(manifest.layers().len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let oci = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","size":2,"digest":"{DIGEST}"}},"layers":[]}}"#
        );
        assert!(matches!(
            parse(oci.as_bytes(), Some(OCI_MANIFEST)).unwrap(),
            Parsed::Image { .. }
        ));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(parse(schema1.as_bytes(), Some(DOCKER_SCHEMA1)).is_err());
        assert!(parse(b"not json", None).is_err());
        let artifact =
            docker_manifest().replace(DOCKER_CONFIG, "application/vnd.cncf.helm.config.v1+json");
        assert!(parse(artifact.as_bytes(), None)
            .unwrap_err()
            .to_string()
            .contains("artifact"));
        let weird_layer = docker_manifest().replace(DOCKER_LAYER_GZIP, "application/x-bzip2");
        assert!(matches!(
            parse(weird_layer.as_bytes(), None),
            Err(Error::UnsupportedMediaType(_))
        ));
    }

    fn index() -> ImageIndex {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"sha256:{a}","platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"sha256:{b}","platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"sha256:{c}","platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        );
        match parse(json.as_bytes(), None).unwrap() {
            Parsed::Index { index, .. } => *index,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selects_platforms() {
        let idx = index();
        let pick =
            |p: &str| select_platform(&idx, &p.parse().unwrap()).map(|d| d.digest().to_string());
        assert!(pick("linux/amd64").unwrap().contains("bbbb"));
        assert!(pick("linux/arm64").unwrap().contains("aaaa"));
        assert!(pick("linux/arm64/v8").unwrap().contains("aaaa"));
        assert!(pick("linux/arm/v7").unwrap().contains("cccc"));
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("linux/amd64") && err.contains("linux/arm/v7"),
            "{err}"
        );
        assert!("linux".parse::<Platform>().is_err());
    }

    #[test]
    fn decompresses_by_sniffing() {
        let data = b"plain tar bytes".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 1).unwrap();
        for blob in [data.clone(), gz, zs] {
            let mut out = Vec::new();
            decompress(&blob[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn config_diff_ids() {
        let cfg = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{DIGEST}"]}},"container_config":{{}}}}"#
        );
        let c = Config::parse(cfg.as_bytes()).unwrap();
        assert_eq!(c.diff_ids[0].to_string(), DIGEST);
        assert_eq!(c.platform().to_string(), "linux/amd64");
        assert!(Config::parse(cfg.replace(DIGEST, "sha256:zz").as_bytes()).is_err());
    }
}
