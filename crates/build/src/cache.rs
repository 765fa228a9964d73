//! The build cache: which image a step made from a given state. A step's key hashes the
//! image it started from, the configuration so far, the instruction as expanded, and for
//! COPY/ADD the content of what it copies; the value is the image the step committed. A
//! hit whose image has since been removed is a miss.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

pub struct Cache {
    conn: Connection,
}

impl Cache {
    /// Opens (or makes) the cache database at `path`.
    pub fn open(path: &Path) -> Result<Cache> {
        let conn = Connection::open(path).map_err(db(path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db(path))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, image_id TEXT NOT NULL)",
        )
        .map_err(db(path))?;
        Ok(Cache { conn })
    }

    pub fn get(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT image_id FROM steps WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| Error::Cache(e.to_string()))
    }

    pub fn put(&self, key: &str, image_id: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO steps (key, image_id) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET image_id = excluded.image_id",
                params![key, image_id],
            )
            .map(drop)
            .map_err(|e| Error::Cache(e.to_string()))
    }
}

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Cache(format!("{}: {e}", path.display()))
}

/// A step's key: the sha256 of its parts, each length-prefixed so that no two different
/// lists of parts hash alike.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_with_their_parts_and_hits_come_back() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["a"]), key(&["a"]));
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c.db")).unwrap();
        assert_eq!(cache.get("k").unwrap(), None);
        cache.put("k", "sha256:1").unwrap();
        cache.put("k", "sha256:2").unwrap();
        assert_eq!(cache.get("k").unwrap().as_deref(), Some("sha256:2"));
    }
}
