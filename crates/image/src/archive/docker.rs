//! Docker archives: `manifest.json` (`[{Config, RepoTags, Layers}]`) and `repositories`,
//! with the config and uncompressed layer tars beside them, as `docker save` writes them and
//! `docker load` and skopeo's `docker-archive:` read them.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};

use super::{oci_manifest, sniffed_layer_type, write_atomically, LoadOptions, TarFile};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::images::ImageRecord;
use crate::manifest;
use crate::reference::Reference;
use crate::service::ImageService;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image listed in `manifest.json`.
pub(crate) fn read(
    svc: &ImageService,
    tar: &mut TarFile,
    opts: &LoadOptions,
) -> Result<Vec<ImageRecord>> {
    let files = tar.read_files(&["manifest.json"])?;
    let entries: Vec<Entry> = serde_json::from_slice(&files["manifest.json"])
        .map_err(|e| Error::InvalidArchive(format!("manifest.json: {e}")))?;
    let wanted: HashSet<String> = entries
        .iter()
        .flat_map(|e| std::iter::once(e.config.clone()).chain(e.layers.iter().cloned()))
        .collect();
    // Files named after their digest (blobs/sha256/<hex>, <hex>.json) are checked against it.
    let stored = tar.store_files(svc, |n| wanted.contains(n).then(|| digest_in_name(n)))?;
    let mut images = Vec::new();
    for e in &entries {
        let find = |n: &String| {
            stored.get(n).cloned().ok_or_else(|| {
                Error::InvalidArchive(format!("manifest.json names {n}, which the archive lacks"))
            })
        };
        let (config, config_size) = find(&e.config)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let (d, size) = find(l)?;
            let mut head = [0u8; 4];
            let n = std::io::Read::read(&mut svc.store.open_blob(&d)?, &mut head)
                .map_err(Error::io("read layer"))?;
            layers.push(Descriptor::new(
                sniffed_layer_type(&head[..n]).into(),
                size,
                &d,
            ));
        }
        let tags = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| t.parse::<Reference>())
            .collect::<Result<Vec<_>>>()?;
        let m = oci_manifest(&config, config_size, layers);
        images.push(svc.register(&m, manifest::OCI_MANIFEST, tags, vec![], &opts.progress)?);
    }
    Ok(images)
}

/// `<hex>.json`, `<hex>/layer.tar`'s dir is a v1 ID (not a digest); `blobs/sha256/<hex>`
/// and `<hex>.tar` are digests of the file.
fn digest_in_name(n: &str) -> Option<Digest> {
    let hex = n
        .strip_prefix("blobs/sha256/")
        .or_else(|| n.strip_suffix(".json"))
        .or_else(|| n.strip_suffix(".tar").filter(|h| !h.contains('/')))?;
    format!("sha256:{hex}").parse().ok()
}

/// Writes a Docker archive of the named images to `dest` (atomically).
pub(crate) fn write(svc: &ImageService, names: &[&str], dest: &Path) -> Result<()> {
    let mut images = Vec::new();
    for n in names {
        let img = svc.db().resolve(n)?;
        let tag = n.parse::<Reference>().ok().filter(|r| img.tags.contains(r));
        images.push((img, tag));
    }
    write_atomically(dest, |file| write_to(svc, &images, file))
}

fn write_to(
    svc: &ImageService,
    images: &[(ImageRecord, Option<Reference>)],
    file: &mut File,
) -> Result<()> {
    let mut b = tar::Builder::new(file);
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written = HashSet::new();
    for (img, tag) in images {
        let config_name = format!("blobs/sha256/{}", img.id.hex());
        if written.insert(config_name.clone()) {
            append(&mut b, &config_name, &svc.store.read(&img.id)?)?;
        }
        let mut layers = Vec::new();
        for l in &img.layers {
            // Docker archives hold uncompressed layers: the file's digest is the diff ID.
            let name = format!("blobs/sha256/{}", l.diff_id.hex());
            if written.insert(name.clone()) {
                let tar = manifest::decompress(BufReader::with_capacity(
                    1 << 20,
                    svc.store.open_blob(&l.blob)?,
                ))?;
                let mut h = header(l.size);
                b.append_data(&mut h, &name, tar)
                    .map_err(Error::io("write layer"))?;
            }
            layers.push(name);
        }
        let tags: Vec<&Reference> = match tag {
            Some(t) => vec![t],
            None => img.tags.iter().collect(),
        };
        for t in &tags {
            let familiar = t.familiar();
            let (repo, tagname) = familiar.rsplit_once(':').expect("tags have a tag");
            let top = img
                .layers
                .last()
                .map(|l| l.diff_id.hex().to_string())
                .unwrap_or_default();
            repositories
                .entry(repo.to_string())
                .or_default()
                .insert(tagname.to_string(), top);
        }
        entries.push(Entry {
            config: config_name,
            repo_tags: Some(tags.iter().map(|t| t.familiar()).collect()),
            layers,
        });
    }
    append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&entries).expect("serialises"),
    )?;
    append(
        &mut b,
        "repositories",
        &serde_json::to_vec(&repositories).expect("serialises"),
    )?;
    b.into_inner().map_err(Error::io("finish archive"))?;
    Ok(())
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append(b: &mut tar::Builder<&mut File>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = header(data.len() as u64);
    b.append_data(&mut h, name, data)
        .map_err(Error::io(format!("write {name}")))
}

impl ImageService {
    /// `docker save`: the named images (names or IDs) into a Docker archive at `dest`.
    pub fn save_docker(&self, names: &[&str], dest: &Path) -> Result<()> {
        write(self, names, dest)
    }
}
