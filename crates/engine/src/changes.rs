//! A container's own filesystem changes, read from its upper directory (which outlives
//! its runs): listed for `docker diff`, written as a layer for `docker commit`.

use std::path::{Path, PathBuf};

use berth_image::changes::{self, Change};

use crate::container::Container;
use crate::engine::Engine;
use crate::error::{Error, Result};

impl Engine {
    /// What the container changed on top of its image, sorted by path. Blocks on the
    /// filesystem walk.
    pub fn changes(&self, key: &str) -> Result<Vec<Change>> {
        let c = self.get(key)?;
        let Some((upper, lowers)) = self.layers_of(&c)? else {
            return Ok(Vec::new());
        };
        Ok(changes::changes(&upper, &lowers)?)
    }

    /// Writes the container's changes as an uncompressed layer tar at `out`, leaving out
    /// the runtime's mount points. Blocks on the filesystem walk.
    pub fn write_changes_layer(&self, c: &Container, out: &Path) -> Result<()> {
        let (upper, lowers) = self.layers_of(c)?.ok_or_else(|| no_image(c))?;
        let skip = changes::runtime_leftovers(&upper, &lowers)?;
        let file = std::fs::File::create(out)
            .map_err(|e| Error::io(format!("create {}", out.display()), e))?;
        let ids = if crate::userns::applies(self.ids(), &c.config) {
            self.ids().clone()
        } else {
            berth_image::IdMap::default()
        };
        berth_image::diff::write_layer_except(&upper, &skip, &ids, std::io::BufWriter::new(file))?;
        Ok(())
    }

    /// The container's upper directory and its image's lowerdirs (top first); none for a
    /// container of a root filesystem directory, or one never started (nothing changed).
    fn layers_of(&self, c: &Container) -> Result<Option<(PathBuf, Vec<PathBuf>)>> {
        if c.config.image_id.is_empty() {
            return Ok(None);
        }
        let upper = self.dir(&c.id).join("upper");
        if !upper.is_dir() {
            // Never mounted: an empty upper directory says the same.
            std::fs::create_dir_all(&upper)
                .map_err(|e| Error::io(format!("create {}", upper.display()), e))?;
        }
        let lowers = self.images().lowerdirs(&c.config.image_id)?;
        Ok(Some((upper, lowers)))
    }
}

fn no_image(c: &Container) -> Error {
    Error::Invalid(format!(
        "container {} runs a root filesystem directory, not an image: there is no image to commit it on",
        c.name
    ))
}
