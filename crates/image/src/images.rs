//! The local image database (SQLite, WAL): images, their layers, tags and repo digests,
//! snapshots, and where blobs came from (for cross-repository mounts on push).
//!
//! Each user action is one transaction. Files (blobs, snapshots) are written before the
//! transaction that makes them reachable and deleted after the one that makes them
//! unreachable, so a crash leaves at worst unreferenced files, which `prune` removes.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,                 -- config digest (Docker's image ID)
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    size INTEGER NOT NULL,               -- uncompressed bytes of all layers
    created TEXT,                        -- from the config
    added INTEGER NOT NULL               -- unix seconds
);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES snapshots(chain_id),
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,               -- normalised registry/repo:tag
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT PRIMARY KEY,               -- registry/repo@digest (index or manifest)
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
-- The image a build step (or commit) made this one from: intermediate images are hidden
-- from listings while they have children, and go with their last child.
CREATE TABLE IF NOT EXISTS parents (
    image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    parent_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS parents_parent ON parents(parent_id);
CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repository)
);
";

/// One layer of an image as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Digest,
    pub media_type: String,
    pub blob_size: u64,
    pub diff_id: Digest,
    pub chain_id: Digest,
    /// Uncompressed size (the diff's tar stream).
    pub size: u64,
}

/// An image as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub os: String,
    pub architecture: String,
    pub size: u64,
    pub created: Option<String>,
    pub layers: Vec<Layer>,
    pub tags: Vec<Reference>,
    pub repo_digests: Vec<Reference>,
    /// The image this one was built on by a build step or a commit (Docker's `Parent`).
    pub parent: Option<Digest>,
}

impl ImageRecord {
    /// A new image from its config and layers: platform, creation time and size come from
    /// them.
    pub fn new(
        id: Digest,
        manifest_digest: Digest,
        manifest_media_type: String,
        config: &oci_spec::image::ImageConfiguration,
        layers: Vec<Layer>,
        tags: Vec<Reference>,
        repo_digests: Vec<Reference>,
    ) -> ImageRecord {
        ImageRecord {
            id,
            manifest_digest,
            manifest_media_type,
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            size: layers.iter().map(|l| l.size).sum(),
            created: config.created().clone(),
            layers,
            tags,
            repo_digests,
            parent: None,
        }
    }
}

pub struct ImageDb {
    conn: Connection,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn digest_col(row: &rusqlite::Row, i: usize) -> rusqlite::Result<Digest> {
    let s: String = row.get(i)?;
    s.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn ref_col(row: &rusqlite::Row, i: usize) -> rusqlite::Result<Reference> {
    let s: String = row.get(i)?;
    s.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl ImageDb {
    pub fn open(path: &Path) -> Result<ImageDb> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA)?;
        Ok(ImageDb { conn })
    }

    /// Records a complete image (its blobs and snapshots already on disk) and points
    /// `tags` at it, in one transaction. Tags that named another image move, as in Docker.
    pub fn insert_image(&mut self, image: &ImageRecord) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO images (id, manifest_digest, manifest_media_type, os, architecture, size, created, added)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest,
                 manifest_media_type = excluded.manifest_media_type",
            params![image.id.to_string(), image.manifest_digest.to_string(), image.manifest_media_type, image.os, image.architecture, image.size as i64, image.created, now()],
        )?;
        tx.execute(
            "DELETE FROM image_layers WHERE image_id = ?1",
            [image.id.to_string()],
        )?;
        for (i, l) in image.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO snapshots (chain_id, diff_id, size) VALUES (?1, ?2, ?3) ON CONFLICT(chain_id) DO NOTHING",
                params![l.chain_id.to_string(), l.diff_id.to_string(), l.size as i64],
            )?;
            tx.execute(
                "INSERT INTO image_layers (image_id, position, chain_id, blob_digest, media_type, blob_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![image.id.to_string(), i as i64, l.chain_id.to_string(), l.blob.to_string(), l.media_type, l.blob_size as i64],
            )?;
        }
        for t in &image.tags {
            set_tag(&tx, t, &image.id)?;
        }
        if let Some(parent) = &image.parent {
            tx.execute(
                "INSERT INTO parents (image_id, parent_id) VALUES (?1, ?2) ON CONFLICT(image_id) DO NOTHING",
                params![image.id.to_string(), parent.to_string()],
            )?;
        }
        for r in &image.repo_digests {
            let d = r.digest().expect("repo digests carry a digest");
            tx.execute(
                "INSERT INTO repo_digests (name, digest, image_id) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                params![r.to_string(), d.to_string(), image.id.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Finds an image by reference (tag or repo digest), full ID, or unique ID prefix.
    pub fn resolve(&self, what: &str) -> Result<ImageRecord> {
        let id = self
            .resolve_id(what)?
            .ok_or_else(|| Error::ImageNotFound(what.to_string()))?;
        self.get(&id)?
            .ok_or_else(|| Error::ImageNotFound(what.to_string()))
    }

    fn resolve_id(&self, what: &str) -> Result<Option<Digest>> {
        if let Ok(d) = what.parse::<Digest>() {
            if self.exists(&d)? {
                return Ok(Some(d));
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if (4..=64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")?;
            let ids: Vec<Digest> = stmt
                .query_map([format!("sha256:{}%", hex.to_lowercase())], |r| {
                    digest_col(r, 0)
                })?
                .collect::<rusqlite::Result<_>>()?;
            match ids.len() {
                1 => return Ok(ids.into_iter().next()),
                2 => return Err(Error::Ambiguous(what.to_string())),
                _ => {}
            }
        }
        let Ok(r) = what.parse::<Reference>() else {
            return Ok(None);
        };
        self.id_of_reference(&r)
    }

    /// The image a reference names locally: by its digest if it has one, else its tag.
    pub fn id_of_reference(&self, r: &Reference) -> Result<Option<Digest>> {
        let q = if r.digest().is_some() {
            self.conn
                .query_row(
                    "SELECT image_id FROM repo_digests WHERE name = ?1",
                    [r.with_digest(r.digest().unwrap().clone()).to_string()],
                    |row| digest_col(row, 0),
                )
                .optional()?
        } else {
            self.conn
                .query_row(
                    "SELECT image_id FROM tags WHERE name = ?1",
                    [r.to_string()],
                    |row| digest_col(row, 0),
                )
                .optional()?
        };
        Ok(q)
    }

    pub fn exists(&self, id: &Digest) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn get(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        let row = self
            .conn
            .query_row(
                "SELECT manifest_digest, manifest_media_type, os, architecture, size, created FROM images WHERE id = ?1",
                [id.to_string()],
                |r| Ok((digest_col(r, 0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, i64>(4)?, r.get::<_, Option<String>>(5)?)),
            )
            .optional()?;
        let Some((manifest_digest, manifest_media_type, os, architecture, size, created)) = row
        else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare(
            "SELECT l.blob_digest, l.media_type, l.blob_size, s.diff_id, l.chain_id, s.size
             FROM image_layers l JOIN snapshots s ON s.chain_id = l.chain_id WHERE l.image_id = ?1 ORDER BY l.position",
        )?;
        let layers = stmt
            .query_map([id.to_string()], |r| {
                Ok(Layer {
                    blob: digest_col(r, 0)?,
                    media_type: r.get(1)?,
                    blob_size: r.get::<_, i64>(2)? as u64,
                    diff_id: digest_col(r, 3)?,
                    chain_id: digest_col(r, 4)?,
                    size: r.get::<_, i64>(5)? as u64,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let tags = self.names(
            "SELECT name FROM tags WHERE image_id = ?1 ORDER BY name",
            id,
        )?;
        let repo_digests = self.names(
            "SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name",
            id,
        )?;
        let parent = self
            .conn
            .query_row(
                "SELECT parent_id FROM parents WHERE image_id = ?1",
                [id.to_string()],
                |r| digest_col(r, 0),
            )
            .optional()?;
        Ok(Some(ImageRecord {
            id: id.clone(),
            manifest_digest,
            manifest_media_type,
            os,
            architecture,
            size: size as u64,
            created,
            layers,
            tags,
            repo_digests,
            parent,
        }))
    }

    fn names(&self, sql: &str, id: &Digest) -> Result<Vec<Reference>> {
        let mut stmt = self.conn.prepare(sql)?;
        let v = stmt
            .query_map([id.to_string()], |r| ref_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM images ORDER BY added DESC, id")?;
        let ids = stmt
            .query_map([], |r| digest_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids.iter()
            .filter_map(|id| self.get(id).transpose())
            .collect()
    }

    /// Points `tag` at image `id`.
    pub fn tag(&mut self, id: &Digest, tag: &Reference) -> Result<()> {
        let tx = self.conn.transaction()?;
        set_tag(&tx, tag, id)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes names (tags or repo digests) and, when `delete` is set, the image itself, in
    /// one transaction. Returns the snapshots and blobs no image references any more.
    pub fn remove(&mut self, id: &Digest, names: &[Reference], delete: bool) -> Result<Garbage> {
        let tx = self.conn.transaction()?;
        let candidates = if delete {
            image_blobs(&tx, id)?
        } else {
            Vec::new()
        };
        for n in names {
            tx.execute(
                "DELETE FROM tags WHERE name = ?1 AND image_id = ?2",
                params![n.to_string(), id.to_string()],
            )?;
            tx.execute(
                "DELETE FROM repo_digests WHERE name = ?1 AND image_id = ?2",
                params![n.to_string(), id.to_string()],
            )?;
        }
        if delete {
            tx.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
        }
        let garbage = collect_garbage(&tx, candidates)?;
        tx.commit()?;
        Ok(garbage)
    }

    /// Images made from `id` by a build step or a commit.
    pub fn children(&self, id: &Digest) -> Result<Vec<Digest>> {
        let mut stmt = self
            .conn
            .prepare("SELECT image_id FROM parents WHERE parent_id = ?1 ORDER BY image_id")?;
        let v = stmt
            .query_map([id.to_string()], |r| digest_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Images without a tag and without children (intermediate build images are not
    /// dangling while an image built on them exists).
    pub fn dangling(&self) -> Result<Vec<Digest>> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM tags)
             AND id NOT IN (SELECT parent_id FROM parents)",
        )?;
        let v = stmt
            .query_map([], |r| digest_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Everything still referenced: snapshots, and blobs (manifests, configs, layers, the
    /// indexes repo digests point at).
    pub fn referenced(&self) -> Result<(Vec<Digest>, Vec<Digest>)> {
        let all = |sql: &str| -> Result<Vec<Digest>> {
            let mut stmt = self.conn.prepare(sql)?;
            let v = stmt
                .query_map([], |r| digest_col(r, 0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        };
        let snapshots = all("SELECT chain_id FROM snapshots")?;
        let blobs = all(
            "SELECT id FROM images UNION SELECT manifest_digest FROM images
             UNION SELECT blob_digest FROM image_layers UNION SELECT digest FROM repo_digests",
        )?;
        Ok((snapshots, blobs))
    }

    /// Records a snapshot made before its image is (a build step's, moved into place); a
    /// commit that fails after leaves a row no image uses, which the next deletion collects.
    pub fn add_snapshot(&mut self, chain_id: &Digest, diff_id: &Digest, size: u64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO snapshots (chain_id, diff_id, size) VALUES (?1, ?2, ?3) ON CONFLICT(chain_id) DO NOTHING",
            params![chain_id.to_string(), diff_id.to_string(), size as i64],
        )?;
        Ok(())
    }

    /// The recorded uncompressed size of a snapshot, if the database knows it.
    pub fn snapshot_size(&self, chain_id: &Digest) -> Result<Option<u64>> {
        let v = self
            .conn
            .query_row(
                "SELECT size FROM snapshots WHERE chain_id = ?1",
                [chain_id.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        Ok(v.map(|s| s as u64))
    }

    /// Records `name@digest` as a name of image `id` (after a push).
    pub fn add_repo_digest(&mut self, id: &Digest, name: &Reference) -> Result<()> {
        let d = name.digest().ok_or_else(|| Error::InvalidReference {
            input: name.to_string(),
            reason: "no digest".into(),
        })?;
        self.conn.execute(
            "INSERT INTO repo_digests (name, digest, image_id) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![name.to_string(), d.to_string(), id.to_string()],
        )?;
        Ok(())
    }

    pub fn add_blob_source(&self, blob: &Digest, registry: &str, repository: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO blob_sources (digest, registry, repository) VALUES (?1, ?2, ?3)",
            params![blob.to_string(), registry, repository],
        )?;
        Ok(())
    }

    /// Repositories on `registry` known to hold `blob`.
    pub fn blob_sources(&self, blob: &Digest, registry: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT repository FROM blob_sources WHERE digest = ?1 AND registry = ?2")?;
        let v = stmt
            .query_map(params![blob.to_string(), registry], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(v)
    }
}

/// What a removal left unreferenced, to delete from disk after the commit.
#[derive(Debug, Default, Clone)]
pub struct Garbage {
    pub snapshots: Vec<Digest>,
    pub blobs: Vec<Digest>,
}

fn set_tag(tx: &Transaction, tag: &Reference, id: &Digest) -> Result<()> {
    if tag.digest().is_some() {
        return Err(Error::InvalidReference {
            input: tag.to_string(),
            reason: "a tag cannot carry a digest".into(),
        });
    }
    tx.execute("INSERT INTO tags (name, image_id) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", params![tag.to_string(), id.to_string()])?;
    Ok(())
}

/// The blobs an image is made of: manifest, config, layers, and indexes its repo digests
/// name.
fn image_blobs(tx: &Transaction, id: &Digest) -> Result<Vec<Digest>> {
    let mut stmt = tx.prepare(
        "SELECT id FROM images WHERE id = ?1 UNION SELECT manifest_digest FROM images WHERE id = ?1
         UNION SELECT blob_digest FROM image_layers WHERE image_id = ?1 UNION SELECT digest FROM repo_digests WHERE image_id = ?1",
    )?;
    let v = stmt
        .query_map([id.to_string()], |r| digest_col(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Drops snapshot rows no image uses, and picks from `candidates` the blobs no image uses.
/// Only candidates: a blob a pull has stored but not yet recorded must not be taken.
fn collect_garbage(tx: &Transaction, candidates: Vec<Digest>) -> Result<Garbage> {
    let list = |sql: &str| -> Result<Vec<Digest>> {
        let mut stmt = tx.prepare(sql)?;
        let v = stmt
            .query_map([], |r| digest_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    };
    let snapshots = list(
        "SELECT chain_id FROM snapshots WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)",
    )?;
    tx.execute(
        "DELETE FROM snapshots WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)",
        [],
    )?;
    tx.execute(
        "DELETE FROM blob_sources WHERE digest NOT IN (SELECT blob_digest FROM image_layers UNION SELECT id FROM images)",
        [],
    )?;
    let mut blobs = Vec::new();
    for c in candidates {
        let used: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM images WHERE id = ?1 OR manifest_digest = ?1)
                 OR EXISTS (SELECT 1 FROM image_layers WHERE blob_digest = ?1)
                 OR EXISTS (SELECT 1 FROM repo_digests WHERE digest = ?1)",
            [c.to_string()],
            |r| r.get(0),
        )?;
        if !used {
            blobs.push(c);
        }
    }
    Ok(Garbage { snapshots, blobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8, tags: &[&str], shared: &Layer) -> ImageRecord {
        let own = Digest::of(&[n]);
        let chain2 = crate::digest::chain_ids(&[shared.diff_id.clone(), own.clone()])[1].clone();
        ImageRecord {
            id: Digest::of(&[n, 1]),
            manifest_digest: Digest::of(&[n, 2]),
            manifest_media_type: crate::manifest::OCI_MANIFEST.into(),
            os: "linux".into(),
            architecture: "amd64".into(),
            size: 10,
            created: None,
            layers: vec![
                shared.clone(),
                Layer {
                    blob: own.clone(),
                    media_type: crate::manifest::OCI_LAYER.into(),
                    blob_size: 1,
                    diff_id: own,
                    chain_id: chain2,
                    size: 1,
                },
            ],
            tags: tags.iter().map(|t| t.parse().unwrap()).collect(),
            repo_digests: vec![],
            parent: None,
        }
    }

    #[test]
    fn images_tags_and_shared_layers() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = ImageDb::open(&dir.path().join("images.db")).unwrap();
        let base = Digest::of(b"base");
        let shared = Layer {
            blob: base.clone(),
            media_type: crate::manifest::OCI_LAYER.into(),
            blob_size: 5,
            diff_id: base.clone(),
            chain_id: base.clone(),
            size: 5,
        };
        let a = record(1, &["app:1", "app:latest"], &shared);
        let b = record(2, &["other"], &shared);
        db.insert_image(&a).unwrap();
        db.insert_image(&b).unwrap();
        assert_eq!(db.resolve("app").unwrap().id, a.id);
        assert_eq!(db.resolve(&a.id.to_string()).unwrap().id, a.id);
        assert_eq!(db.resolve(&a.id.hex()[..8]).unwrap().id, a.id);
        assert!(matches!(db.resolve("nope"), Err(Error::ImageNotFound(_))));
        assert_eq!(db.list().unwrap().len(), 2);
        let (snaps, _) = db.referenced().unwrap();
        assert_eq!(snaps.len(), 3, "the shared base layer is stored once");

        // Moving a tag leaves the old image dangling.
        db.tag(&b.id, &"app:latest".parse().unwrap()).unwrap();
        assert_eq!(db.resolve("app:latest").unwrap().id, b.id);
        assert_eq!(db.get(&a.id).unwrap().unwrap().tags.len(), 1);

        let g = db.remove(&a.id, &a.tags, true).unwrap();
        assert_eq!(g.snapshots.len(), 1, "only a's own layer goes");
        assert_eq!(g.blobs.len(), 3, "a's manifest, config and own layer blob");
        assert!(!g.blobs.contains(&base));
        assert!(!g.snapshots.contains(&base));
        assert!(!db.exists(&a.id).unwrap());
        assert_eq!(db.get(&b.id).unwrap().unwrap().layers.len(), 2);
    }
}
