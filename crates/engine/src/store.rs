//! The engine's records: one SQLite database (WAL) under the root, one row per container
//! with its name unique, one transaction per change.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::volumes::Volume;

pub struct Store {
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
";

fn db_error(e: rusqlite::Error) -> Error {
    Error::Invalid(format!("the engine's database: {e}"))
}

/// A unique-name violation as Docker's conflict; anything else as a database error.
fn name_taken(e: rusqlite::Error, name: &str) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Conflict(format!(
                "the name {name:?} is already in use by another container: choose another \
                 name, or remove that container"
            ))
        }
        e => db_error(e),
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Connection::open(path).map_err(db_error)?;
        db.pragma_update(None, "journal_mode", "wal")
            .map_err(db_error)?;
        db.pragma_update(None, "synchronous", "normal")
            .map_err(db_error)?;
        db.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(Store { db })
    }

    /// Records a new container; a name already taken is refused and nothing is written.
    pub fn insert(&self, c: &Container) -> Result<()> {
        self.db
            .execute(
                "INSERT INTO containers (id, name, body) VALUES (?1, ?2, ?3)",
                params![c.id, c.name, body(c)?],
            )
            .map_err(|e| name_taken(e, &c.name))?;
        Ok(())
    }

    /// Rewrites a container's record (a new name must be free, as at insert).
    pub fn update(&self, c: &Container) -> Result<()> {
        self.db
            .execute(
                "UPDATE containers SET name = ?2, body = ?3 WHERE id = ?1",
                params![c.id, c.name, body(c)?],
            )
            .map_err(|e| name_taken(e, &c.name))?;
        Ok(())
    }

    /// Applies `change` to the stored record of `id` and writes it back. The caller's copy
    /// may be older than the record (an exit recorded meanwhile); only what `change`
    /// touches is written over. Atomic as the engine holds the store's lock through both.
    pub fn modify(&self, id: &str, change: impl FnOnce(&mut Container)) -> Result<Container> {
        let mut c = self
            .find(id)?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        change(&mut c);
        self.update(&c)?;
        Ok(c)
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(db_error)?;
        Ok(())
    }

    /// By full id, by name, or by a unique id prefix, as Docker resolves them.
    pub fn find(&self, key: &str) -> Result<Option<Container>> {
        let exact: Option<String> = self
            .db
            .query_row(
                "SELECT body FROM containers WHERE id = ?1 OR name = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error)?;
        if let Some(b) = exact {
            return parse(&b).map(Some);
        }
        let mut stmt = self
            .db
            .prepare("SELECT body FROM containers WHERE id LIKE ?1 || '%'")
            .map_err(db_error)?;
        let bodies: Vec<String> = stmt
            .query_map(params![key], |r| r.get(0))
            .map_err(db_error)?
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)?;
        match bodies.as_slice() {
            [one] => parse(one).map(Some),
            [] => Ok(None),
            _ => Err(Error::Invalid(format!(
                "{key} matches more than one container: give more of the id"
            ))),
        }
    }

    pub fn all(&self) -> Result<Vec<Container>> {
        let mut stmt = self
            .db
            .prepare("SELECT body FROM containers ORDER BY rowid")
            .map_err(db_error)?;
        let bodies: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(db_error)?
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)?;
        bodies.iter().map(|b| parse(b)).collect()
    }
}

/// Volumes, in the same database as the containers that use them.
impl Store {
    /// Records a new volume; false (and nothing written) if the name is taken.
    pub fn insert_volume(&self, v: &Volume) -> Result<bool> {
        let body = serde_json::to_string(v)
            .map_err(|e| Error::Invalid(format!("encode a volume: {e}")))?;
        let n = self
            .db
            .execute(
                "INSERT OR IGNORE INTO volumes (name, body) VALUES (?1, ?2)",
                params![v.name, body],
            )
            .map_err(db_error)?;
        Ok(n == 1)
    }

    pub fn volume(&self, name: &str) -> Result<Option<Volume>> {
        let body: Option<String> = self
            .db
            .query_row(
                "SELECT body FROM volumes WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error)?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|e| Error::Invalid(format!("a stored volume: {e}")))
        })
        .transpose()
    }

    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let mut stmt = self
            .db
            .prepare("SELECT body FROM volumes ORDER BY name")
            .map_err(db_error)?;
        let bodies: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(db_error)?
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str(b).map_err(|e| Error::Invalid(format!("a stored volume: {e}")))
            })
            .collect()
    }

    pub fn delete_volume(&self, name: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM volumes WHERE name = ?1", params![name])
            .map_err(db_error)?;
        Ok(())
    }
}

fn body(c: &Container) -> Result<String> {
    serde_json::to_string(c).map_err(|e| Error::Invalid(format!("encode a container: {e}")))
}

fn parse(b: &str) -> Result<Container> {
    let bad = |e: serde_json::Error| Error::Invalid(format!("a stored container: {e}"));
    let mut v: serde_json::Value = serde_json::from_str(b).map_err(bad)?;
    upgrade_log_options(&mut v["config"]);
    serde_json::from_value(v).map_err(bad)
}

/// Records from before log drivers kept json-file's `log_max_size` (bytes) and
/// `log_max_files`: as the options they were.
fn upgrade_log_options(config: &mut serde_json::Value) {
    let Some(c) = config.as_object_mut() else {
        return;
    };
    let size = c.remove("log_max_size").filter(|v| !v.is_null());
    let files = c.remove("log_max_files").filter(|v| !v.is_null());
    if c.contains_key("log") || (size.is_none() && files.is_none()) {
        return;
    }
    let mut options = serde_json::Map::new();
    for (key, value) in [("max-size", size), ("max-file", files)] {
        if let Some(v) = value {
            options.insert(key.into(), v.to_string().into());
        }
    }
    c.insert(
        "log".into(),
        serde_json::json!({"driver": "json-file", "options": options}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_before_log_drivers_keep_their_rotation() {
        let old = serde_json::json!({
            "id": "0123456789abcdef".repeat(4),
            "name": "old",
            "config": {"image": "busybox", "log_max_size": 10000, "log_max_files": 3},
            "state": crate::container::State::created(),
            "created": "2026-01-01T00:00:00Z",
        });
        let c = parse(&old.to_string()).unwrap();
        assert_eq!(c.config.log.driver, "json-file");
        assert_eq!(c.config.log.options["max-size"], "10000");
        assert_eq!(c.config.log.options["max-file"], "3");
        let r = c.config.log.writer().unwrap().unwrap();
        assert_eq!((r.max_size, r.max_files), (Some(10_000), 3));
        // A new record reads back as written.
        assert_eq!(parse(&body(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn modify_writes_over_only_what_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Container {
            id: "ab".repeat(32),
            name: "m".into(),
            config: crate::container::Config::default(),
            state: crate::container::State::created(),
            created: time::OffsetDateTime::UNIX_EPOCH,
        };
        store.insert(&c).unwrap();
        let stale = c.clone();
        // Meanwhile the container exits and its exit is recorded.
        let mut exited = c.clone();
        exited.state.exit_code = Some(3);
        store.update(&exited).unwrap();
        // A change made from the stale copy keeps the exit.
        let always = crate::container::RestartPolicy::Always;
        let written = store
            .modify(&stale.id, |fresh| fresh.config.restart = always)
            .unwrap();
        let read = store.find(&c.id).unwrap().unwrap();
        assert_eq!(read, written);
        assert_eq!(read.state.exit_code, Some(3));
        assert_eq!(read.config.restart, crate::container::RestartPolicy::Always);
        assert!(store.modify("nope", |_| ()).is_err());
    }
}
