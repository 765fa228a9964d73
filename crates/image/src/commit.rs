//! New images from old ones: a parent's layers, perhaps one layer more, and a new
//! configuration. This is what each build step makes, and what `docker commit` makes.

use std::fs::File;
use std::path::Path;

use oci_spec::image::Descriptor;

use crate::archive::{oci_manifest, rfc3339_now};
use crate::digest::{chain_ids, Digest};
use crate::error::{Error, Result};
use crate::images::ImageRecord;
use crate::manifest;
use crate::progress::ProgressSink;
use crate::reference::Reference;
use crate::service::ImageService;

/// What to make an image of.
#[derive(Debug, Clone)]
pub struct NewImage<'a> {
    /// The image it builds on; none for `FROM scratch`.
    pub parent: Option<&'a Digest>,
    /// The new layer, if the step changed files.
    pub layer: Option<NewLayer<'a>>,
    /// The image configuration (`config`, `history`, `author`, …); `rootfs` is filled in
    /// from the layers, `created`, `os` and `architecture` when absent.
    pub config: serde_json::Value,
    pub tags: &'a [String],
}

/// Where a new layer comes from.
#[derive(Debug, Clone, Copy)]
pub enum NewLayer<'a> {
    /// A tar (any compression), stored gzip-compressed.
    Tar(&'a Path),
    /// An overlay upper directory nothing uses any more (a finished build step's): written
    /// as an uncompressed layer tar straight into the content store, then moved to become
    /// the layer's snapshot as it is, rather than unpacked again.
    Upper(&'a Path),
}

impl ImageService {
    /// Records a new image made of `new`'s parent's layers plus its layer, with its
    /// configuration; the parent is recorded too, so that the parent stays out of
    /// listings and goes with it.
    pub fn commit(&self, new: NewImage<'_>) -> Result<ImageRecord> {
        let tags: Vec<Reference> = new.tags.iter().map(|t| t.parse()).collect::<Result<_>>()?;
        let _gc = self.gc_shared_blocking()?;
        let parent = match new.parent {
            Some(id) => Some(
                self.db()
                    .get(id)?
                    .ok_or_else(|| Error::ImageNotFound(id.to_string()))?,
            ),
            None => None,
        };
        let mut descriptors: Vec<Descriptor> = Vec::new();
        let mut diff_ids: Vec<String> = Vec::new();
        for l in parent.iter().flat_map(|p| &p.layers) {
            descriptors.push(Descriptor::new(
                l.media_type.as_str().into(),
                l.blob_size,
                &l.blob,
            ));
            diff_ids.push(l.diff_id.to_string());
        }
        match new.layer {
            Some(NewLayer::Tar(path)) => {
                let file =
                    File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
                let (blob, size, diff_id) = self.store_gzip_layer(file)?;
                descriptors.push(Descriptor::new(
                    manifest::OCI_LAYER_GZIP.into(),
                    size,
                    &blob,
                ));
                diff_ids.push(diff_id.to_string());
            }
            Some(NewLayer::Upper(dir)) => {
                let (blob, size) = self.store_upper_layer(dir)?;
                descriptors.push(Descriptor::new(manifest::OCI_LAYER.into(), size, &blob));
                let mut all: Vec<Digest> = parent
                    .iter()
                    .flat_map(|p| &p.layers)
                    .map(|l| l.diff_id.clone())
                    .collect();
                all.push(blob.clone());
                if let Some(chain) = chain_ids(&all).last() {
                    self.adopt_snapshot(dir, chain, &blob, size)?;
                }
                diff_ids.push(blob.to_string());
            }
            None => {}
        }
        let config = complete(new.config, diff_ids);
        let bytes = serde_json::to_vec(&config).expect("JSON serialises");
        let config_digest = self.store.write_bytes(&bytes, None)?;
        let m = oci_manifest(&config_digest, bytes.len() as u64, descriptors);
        self.register_child(
            &m,
            manifest::OCI_MANIFEST,
            tags,
            vec![],
            parent.map(|p| p.id),
            &ProgressSink::default(),
        )
    }

    /// The changes in an overlay upper directory as an uncompressed layer tar in the store,
    /// owners as the container saw them; its digest is its diff ID.
    fn store_upper_layer(&self, dir: &Path) -> Result<(Digest, u64)> {
        let mut w = self.store.writer()?;
        crate::diff::write_layer(
            dir,
            self.ids(),
            std::io::BufWriter::with_capacity(1 << 20, &mut w),
        )?;
        let size = w.offset();
        let blob = w.commit(None, None, "layer")?;
        Ok((blob, size))
    }

    /// Makes `dir`, which the layer `diff_id` was just written from, the snapshot `chain_id`
    /// by moving it there, and records the snapshot's size (the layer tar's, as unpacking
    /// would). If the snapshot exists already, or the move cannot be made, nothing is done
    /// and the layer is unpacked as any other.
    fn adopt_snapshot(
        &self,
        dir: &Path,
        chain_id: &Digest,
        diff_id: &Digest,
        size: u64,
    ) -> Result<()> {
        if self.snapshots.exists(chain_id) {
            return Ok(());
        }
        if self.snapshots.adopt(chain_id, dir)? {
            self.db().add_snapshot(chain_id, diff_id, size)?;
        }
        Ok(())
    }
}

/// The configuration with its layers' diff IDs and the fields every image config has.
fn complete(mut config: serde_json::Value, diff_ids: Vec<String>) -> serde_json::Value {
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let obj = config.as_object_mut().expect("an object");
    obj.entry("created").or_insert_with(|| rfc3339_now().into());
    obj.entry("architecture")
        .or_insert_with(|| manifest::Platform::default().architecture.into());
    obj.entry("os").or_insert_with(|| "linux".into());
    obj.insert(
        "rootfs".into(),
        serde_json::json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    config
}

#[cfg(test)]
mod tests {
    #[test]
    fn rootfs_comes_from_the_layers_and_defaults_fill_in() {
        let c = super::complete(
            serde_json::json!({ "config": { "Cmd": ["sh"] }, "os": "linux", "rootfs": "bogus" }),
            vec!["sha256:aa".into()],
        );
        assert_eq!(c["rootfs"]["diff_ids"][0], "sha256:aa");
        assert_eq!(c["config"]["Cmd"][0], "sh");
        assert!(c["created"].is_string() && c["architecture"].is_string());
    }
}
