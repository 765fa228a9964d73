//! Images in and out of files: Docker archives (`docker save`/`load`), OCI image layouts
//! (directories, or tars of one), and `import` of a plain rootfs tarball.
//!
//! Loading stores blobs first (each verified), unpacks and checks every layer, and only
//! then records the images in one transaction: a bad archive leaves no image behind.

pub mod docker;
pub mod oci;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::{Descriptor, ImageManifestBuilder};

use crate::digest::{chain_ids, Algorithm, Digest, HashingReader};
use crate::error::{Error, Result};
use crate::images::{ImageRecord, Layer};
use crate::manifest::{self, Compression, Config, Parsed};
use crate::progress::{Progress, ProgressSink};
use crate::reference::Reference;
use crate::service::ImageService;

/// Options for `load`.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Repository for OCI layout entries named only by a tag (`org.opencontainers.image.
    /// ref.name` = `v1`); without it such images load untagged.
    pub repository: Option<String>,
    pub progress: ProgressSink,
}

impl ImageService {
    /// Loads every image of a Docker archive, an OCI layout directory or an OCI layout tar.
    pub fn load(&self, path: &Path, opts: &LoadOptions) -> Result<Vec<ImageRecord>> {
        let _gc = self.gc_shared_blocking()?;
        let images = if path.is_dir() {
            oci::read_layout_dir(self, path, opts)?
        } else {
            let mut tar = TarFile::open(path, &self.root)?;
            let names = tar.names()?;
            let has = |n: &str| names.iter().any(|x| x == n);
            if has("oci-layout") && has("index.json") && !has("manifest.json") {
                oci::read_layout_tar(self, &mut tar, opts)?
            } else if has("manifest.json") {
                docker::read(self, &mut tar, opts)?
            } else {
                return Err(Error::InvalidArchive(format!("{} has neither manifest.json (Docker archive) nor oci-layout and index.json (OCI layout)", path.display())));
            }
        };
        for i in &images {
            opts.progress.send(Progress::Done { id: i.id.clone() });
        }
        Ok(images)
    }

    /// Imports a rootfs tarball (plain, gzip or zstd) as a one-layer image.
    pub fn import(
        &self,
        tarball: &Path,
        reference: Option<&str>,
        progress: &ProgressSink,
    ) -> Result<ImageRecord> {
        self.import_with_config(tarball, reference, serde_json::json!({}), progress)
    }

    /// `import` with the image's run configuration (`Cmd`, `Env`, `ExposedPorts`, … in the
    /// image config's `config` shape), as `docker import --change` gives it.
    pub fn import_with_config(
        &self,
        tarball: &Path,
        reference: Option<&str>,
        run_config: serde_json::Value,
        progress: &ProgressSink,
    ) -> Result<ImageRecord> {
        let tags: Vec<Reference> = reference.map(str::parse).transpose()?.into_iter().collect();
        let _gc = self.gc_shared_blocking()?;
        let file = File::open(tarball).map_err(Error::io(format!("open {}", tarball.display())))?;
        let (blob, blob_size, diff_id) = self.store_gzip_layer(file)?;
        let layer = Descriptor::new(manifest::OCI_LAYER_GZIP.into(), blob_size, &blob);
        let created = rfc3339_now();
        let config = serde_json::json!({
            "created": created,
            "architecture": manifest::Platform::default().architecture,
            "os": "linux",
            "config": run_config,
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [{ "created": created, "created_by": format!("berth import {}", tarball.display()) }],
        });
        let config_bytes = serde_json::to_vec(&config).expect("JSON serialises");
        let config_digest = self.store.write_bytes(&config_bytes, None)?;
        let m = oci_manifest(&config_digest, config_bytes.len() as u64, vec![layer]);
        let record = self.register(&m, manifest::OCI_MANIFEST, tags, vec![], progress)?;
        progress.send(Progress::Done {
            id: record.id.clone(),
        });
        Ok(record)
    }

    /// Stores a tar (any compression) as a gzip layer blob; returns the blob's digest and
    /// size and the diff ID (sha256 of the tar).
    pub(crate) fn store_gzip_layer(&self, input: impl Read) -> Result<(Digest, u64, Digest)> {
        let mut tar = HashingReader::new(
            manifest::decompress(BufReader::with_capacity(1 << 20, input))?,
            Algorithm::Sha256,
        );
        let mut w = self.store.writer()?;
        let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::fast());
        std::io::copy(&mut tar, &mut gz).map_err(Error::io("compress layer"))?;
        gz.finish().map_err(Error::io("compress layer"))?;
        let (diff_id, _) = tar.finish().map_err(Error::io("read layer"))?;
        let size = w.offset();
        let blob = w.commit(None, None, "layer")?;
        Ok((blob, size, diff_id))
    }

    /// Makes an image from a manifest whose blobs are all in the store: checks the config
    /// against the layers, unpacks each layer (verifying its diff ID), records the image.
    pub(crate) fn register(
        &self,
        manifest_bytes: &[u8],
        media_type: &str,
        tags: Vec<Reference>,
        repo_digests: Vec<Reference>,
        progress: &ProgressSink,
    ) -> Result<ImageRecord> {
        self.register_child(
            manifest_bytes,
            media_type,
            tags,
            repo_digests,
            None,
            progress,
        )
    }

    /// `register`, recording the image it was made from.
    pub(crate) fn register_child(
        &self,
        manifest_bytes: &[u8],
        media_type: &str,
        tags: Vec<Reference>,
        repo_digests: Vec<Reference>,
        parent: Option<Digest>,
        progress: &ProgressSink,
    ) -> Result<ImageRecord> {
        let Parsed::Image {
            manifest,
            media_type,
        } = manifest::parse(manifest_bytes, Some(media_type))?
        else {
            return Err(Error::InvalidArchive(
                "expected an image manifest, found an index".into(),
            ));
        };
        let manifest_digest = self.store.write_bytes(manifest_bytes, None)?;
        let config_digest = manifest::digest_of(manifest.config())?;
        let config = Config::parse(&self.store.read(&config_digest)?)?;
        manifest::check_layers_match(&manifest, &config)?;
        let chains = chain_ids(&config.diff_ids);
        let mut layers = Vec::new();
        for ((d, diff_id), chain_id) in manifest.layers().iter().zip(&config.diff_ids).zip(&chains)
        {
            let blob = manifest::digest_of(d)?;
            let size = self.ensure_snapshot_blocking(&blob, diff_id, chain_id)?;
            progress.send(Progress::Unpacked {
                digest: blob.clone(),
            });
            layers.push(Layer {
                blob,
                media_type: d.media_type().to_string(),
                blob_size: d.size(),
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
                size,
            });
        }
        let mut record = ImageRecord::new(
            config_digest,
            manifest_digest,
            media_type,
            &config.parsed,
            layers,
            tags,
            repo_digests,
        );
        record.parent = parent;
        self.record(&record, None)?;
        Ok(record)
    }
}

/// An OCI image manifest as bytes.
pub(crate) fn oci_manifest(config: &Digest, config_size: u64, layers: Vec<Descriptor>) -> Vec<u8> {
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(manifest::OCI_MANIFEST)
        .config(Descriptor::new(
            manifest::OCI_CONFIG.into(),
            config_size,
            config,
        ))
        .layers(layers)
        .build()
        .expect("all fields given");
    serde_json::to_vec(&m).expect("serialises")
}

/// The media type for a stored layer blob, from its first bytes.
fn sniffed_layer_type(head: &[u8]) -> &'static str {
    Compression::sniff(head).oci_media_type()
}

/// A tar file read in passes: the small index files first, then the blobs they name.
pub(crate) struct TarFile {
    file: File,
    path: std::path::PathBuf,
}

impl TarFile {
    /// Opens an archive; a gzip or zstd one (`docker save | gzip`) is first decompressed
    /// into an unnamed file in `scratch`, since loading reads the tar more than once.
    pub(crate) fn open(path: &Path, scratch: &Path) -> Result<TarFile> {
        let mut file = File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
        let mut head = [0u8; 4];
        let n = (&file)
            .read(&mut head)
            .map_err(Error::io(format!("read {}", path.display())))?;
        file.rewind().map_err(Error::io("rewind archive"))?;
        if Compression::sniff(&head[..n]) != Compression::None {
            let mut plain =
                tempfile::tempfile_in(scratch).map_err(Error::io("create scratch file"))?;
            let mut tar = manifest::decompress(BufReader::with_capacity(1 << 20, file))?;
            std::io::copy(&mut tar, &mut plain)
                .map_err(|e| Error::InvalidArchive(format!("{}: {e}", path.display())))?;
            file = plain;
        }
        Ok(TarFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn entries(&mut self, mut each: impl FnMut(&str, &mut dyn Read) -> Result<()>) -> Result<()> {
        self.file.rewind().map_err(Error::io("rewind archive"))?;
        let bad =
            |e: std::io::Error| Error::InvalidArchive(format!("{}: {e}", self.path.display()));
        let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, &self.file));
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = clean_name(&entry.path_bytes());
            each(&name, &mut entry)?;
        }
        Ok(())
    }

    /// The names of its regular files.
    pub(crate) fn names(&mut self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.entries(|n, _| {
            out.push(n.to_string());
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads the named small files (at most 64 MiB each).
    pub(crate) fn read_files(&mut self, names: &[&str]) -> Result<HashMap<String, Vec<u8>>> {
        let mut out = HashMap::new();
        self.entries(|n, r| {
            if names.contains(&n) {
                let mut buf = Vec::new();
                r.take(64 << 20)
                    .read_to_end(&mut buf)
                    .map_err(Error::io(format!("read {n}")))?;
                out.insert(n.to_string(), buf);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams every entry `want` selects into the content store; returns name → digest.
    pub(crate) fn store_files(
        &mut self,
        svc: &ImageService,
        want: impl Fn(&str) -> Option<Option<Digest>>,
    ) -> Result<HashMap<String, (Digest, u64)>> {
        let mut out = HashMap::new();
        self.entries(|n, r| {
            if let Some(expected) = want(n) {
                let stored = svc.store.write_reader(r, expected.as_ref(), n)?;
                out.insert(n.to_string(), stored);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

fn clean_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

/// Writes to `dest` through a temporary file renamed at the end: no half-written archive.
pub(crate) fn write_atomically(
    dest: &Path,
    write: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".berth-save-")
        .tempfile_in(dir)
        .map_err(Error::io(format!("create a file in {}", dir.display())))?;
    write(tmp.as_file_mut())?;
    tmp.as_file_mut()
        .flush()
        .map_err(Error::io("flush archive"))?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("sync archive"))?;
    tmp.persist(dest)
        .map_err(|e| Error::io(format!("write {}", dest.display()))(e.error))?;
    Ok(())
}

/// Now as RFC 3339 UTC (what image configs carry), without a date crate.
pub(crate) fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_has_the_right_shape() {
        let s = super::rfc3339_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(
            s.starts_with("20") && s.ends_with('Z') && &s[10..11] == "T",
            "{s}"
        );
    }
}
