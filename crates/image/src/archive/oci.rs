//! OCI image layouts: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, as a directory
//! (skopeo's `oci:`, umoci) or a tar of one (`docker save` since 25, `oci-archive:`).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, Platform as OciPlatform};

use super::{write_atomically, LoadOptions, TarFile};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::images::ImageRecord;
use crate::manifest::{self, Parsed, Platform};
use crate::reference::Reference;
use crate::service::ImageService;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
const LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Where a layout's blobs come from.
trait Blobs {
    /// Makes sure blob `d` is in the content store (verified).
    fn fetch(&self, svc: &ImageService, d: &Digest) -> Result<()>;
}

struct DirBlobs<'a>(&'a Path);

impl Blobs for DirBlobs<'_> {
    fn fetch(&self, svc: &ImageService, d: &Digest) -> Result<()> {
        if svc.store.contains(d) {
            return Ok(());
        }
        let p = self
            .0
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex());
        let mut f = fs::File::open(&p).map_err(|e| {
            Error::InvalidArchive(format!("blob {d} missing from the layout ({e})"))
        })?;
        svc.store
            .write_reader(&mut f, Some(d), &format!("blob {d}"))?;
        Ok(())
    }
}

/// A layout tar's blobs were all stored (and verified against their names) up front.
struct StoredBlobs;

impl Blobs for StoredBlobs {
    fn fetch(&self, svc: &ImageService, d: &Digest) -> Result<()> {
        if svc.store.contains(d) {
            Ok(())
        } else {
            Err(Error::InvalidArchive(format!(
                "blob {d} missing from the archive"
            )))
        }
    }
}

pub(crate) fn read_layout_dir(
    svc: &ImageService,
    dir: &Path,
    opts: &LoadOptions,
) -> Result<Vec<ImageRecord>> {
    let layout = fs::read(dir.join("oci-layout")).map_err(|_| {
        Error::InvalidArchive(format!(
            "{} is not an OCI layout (no oci-layout file)",
            dir.display()
        ))
    })?;
    check_layout(&layout)?;
    let index = fs::read(dir.join("index.json"))
        .map_err(Error::io(format!("read {}/index.json", dir.display())))?;
    read_index(svc, &index, &DirBlobs(dir), opts)
}

pub(crate) fn read_layout_tar(
    svc: &ImageService,
    tar: &mut TarFile,
    opts: &LoadOptions,
) -> Result<Vec<ImageRecord>> {
    let files = tar.read_files(&["oci-layout", "index.json"])?;
    check_layout(&files["oci-layout"])?;
    tar.store_files(svc, |n| {
        let (alg, hex) = n.strip_prefix("blobs/")?.split_once('/')?;
        Some(Some(format!("{alg}:{hex}").parse().ok()?))
    })?;
    read_index(svc, &files["index.json"], &StoredBlobs, opts)
}

fn check_layout(bytes: &[u8]) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidArchive(format!("oci-layout: {e}")))?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(s) if s.starts_with("1.") => Ok(()),
        other => Err(Error::InvalidArchive(format!(
            "unsupported imageLayoutVersion {other:?}"
        ))),
    }
}

fn read_index(
    svc: &ImageService,
    index: &[u8],
    blobs: &dyn Blobs,
    opts: &LoadOptions,
) -> Result<Vec<ImageRecord>> {
    let Parsed::Index { index, .. } = manifest::parse(index, Some(manifest::OCI_INDEX))? else {
        return Err(Error::InvalidArchive(
            "index.json is not an image index".into(),
        ));
    };
    let mut out = Vec::new();
    for d in index.manifests() {
        let tags = name_of(d, opts)?.into_iter().collect();
        let m = resolve(svc, d, blobs, 0)?;
        let Parsed::Image {
            manifest,
            media_type,
        } = manifest::parse(
            &svc.store.read(&manifest::digest_of(&m)?)?,
            Some(m.media_type().as_ref()),
        )?
        else {
            unreachable!("resolve returns image manifests")
        };
        blobs.fetch(svc, &manifest::digest_of(manifest.config())?)?;
        for l in manifest.layers() {
            blobs.fetch(svc, &manifest::digest_of(l)?)?;
        }
        let bytes = svc.store.read(&manifest::digest_of(&m)?)?;
        out.push(svc.register(&bytes, &media_type, tags, vec![], &opts.progress)?);
    }
    Ok(out)
}

/// Follows nested indexes down to the manifest for the default platform.
fn resolve(
    svc: &ImageService,
    d: &Descriptor,
    blobs: &dyn Blobs,
    depth: u32,
) -> Result<Descriptor> {
    let digest = manifest::digest_of(d)?;
    blobs.fetch(svc, &digest)?;
    match manifest::parse(&svc.store.read(&digest)?, Some(d.media_type().as_ref()))? {
        Parsed::Image { .. } => Ok(d.clone()),
        Parsed::Index { .. } if depth > 4 => {
            Err(Error::InvalidArchive("indexes nested too deep".into()))
        }
        Parsed::Index { index, .. } => resolve(
            svc,
            &manifest::select_platform(&index, &Platform::default())?,
            blobs,
            depth + 1,
        ),
    }
}

/// The image name an index entry carries: a full reference in containerd's annotation or
/// in ref.name, or a bare tag in ref.name joined to the repository the caller gave.
fn name_of(d: &Descriptor, opts: &LoadOptions) -> Result<Option<Reference>> {
    let ann = d.annotations().clone().unwrap_or_default();
    if let Some(full) = ann.get(CONTAINERD_NAME) {
        return full.parse().map(Some);
    }
    let Some(name) = ann.get(REF_NAME) else {
        return Ok(None);
    };
    if name.contains('/') || name.contains(':') {
        return name.parse().map(Some);
    }
    match &opts.repository {
        Some(repo) => format!("{repo}:{name}").parse().map(Some),
        None => Ok(None),
    }
}

impl ImageService {
    /// Writes the named images into the OCI layout at `dir` (created, or added to: entries
    /// with the same ref.name are replaced). Each is named by its tag in ref.name, as skopeo
    /// and umoci expect, and by its full name in containerd's annotation.
    pub fn save_oci(&self, names: &[&str], dir: &Path) -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(Error::io(format!("create {}", blobs.display())))?;
        let index_path = dir.join("index.json");
        let mut index: ImageIndex = match fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::InvalidArchive(format!("{}: {e}", index_path.display())))?,
            Err(_) => ImageIndex::default(),
        };
        let mut entries: Vec<Descriptor> = index.manifests().clone();
        for n in names {
            let img = self.db().resolve(n)?;
            for d in std::iter::once(&img.manifest_digest)
                .chain([&img.id])
                .chain(img.layers.iter().map(|l| &l.blob))
            {
                self.copy_blob_out(d, &blobs)?;
            }
            let tag = n
                .parse::<Reference>()
                .ok()
                .filter(|r| img.tags.contains(r))
                .or_else(|| img.tags.first().cloned());
            let mut desc = Descriptor::new(
                img.manifest_media_type.as_str().into(),
                self.store.size(&img.manifest_digest)?,
                &img.manifest_digest,
            );
            desc.set_platform(Some(OciPlatform::default()).map(|mut p| {
                p.set_os(img.os.as_str().into());
                p.set_architecture(img.architecture.as_str().into());
                p
            }));
            if let Some(t) = &tag {
                let mut ann = HashMap::new();
                ann.insert(
                    REF_NAME.to_string(),
                    t.tag().unwrap_or("latest").to_string(),
                );
                ann.insert(CONTAINERD_NAME.to_string(), t.to_string());
                desc.set_annotations(Some(ann));
                let tname = t.tag().map(str::to_string);
                entries.retain(|e| {
                    e.annotations()
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME))
                        .map(String::as_str)
                        != tname.as_deref()
                });
            }
            entries.push(desc);
        }
        index.set_manifests(entries);
        index.set_media_type(Some(manifest::OCI_INDEX.into()));
        write_atomically(&dir.join("oci-layout"), |f| {
            std::io::Write::write_all(f, LAYOUT.as_bytes()).map_err(Error::io("write oci-layout"))
        })?;
        let json = serde_json::to_vec(&index).map_err(|e| Error::InvalidArchive(e.to_string()))?;
        write_atomically(&index_path, |f| {
            std::io::Write::write_all(f, &json).map_err(Error::io("write index.json"))
        })
    }

    fn copy_blob_out(&self, d: &Digest, blobs: &Path) -> Result<()> {
        let dest = blobs.join(d.hex());
        if dest.exists() {
            return Ok(());
        }
        write_atomically(&dest, |f| {
            let mut src = self.store.open_blob(d)?;
            std::io::copy(&mut src, f)
                .map_err(Error::io(format!("copy blob {d}")))
                .map(drop)
        })
    }
}
