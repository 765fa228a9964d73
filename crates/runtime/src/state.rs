//! What the runtime remembers about a container between commands: one directory per container
//! under the runtime root, holding `state.json` and, while the container is created but not yet
//! started, the `exec.fifo` its init blocks on.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// The file `start` reads from to release a created container's init.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

/// Where a container's life stands, as the OCI runtime spec names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The persistent record of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    /// The init process as the host sees it; 0 once it is known to have exited.
    pub pid: i32,
    /// Field 22 of /proc/PID/stat when the init was born: tells a reused pid from ours.
    pub pid_start_time: u64,
    /// Creation time, RFC 3339 in UTC.
    pub created: String,
    pub owner: u32,
    pub cgroup: Option<berth_cgroups::Cgroup>,
    /// The config as it was at create time: hooks and the process template for exec.
    pub spec: Spec,
}

/// The directory of compiled seccomp filters in a root: a cache, not a container's state,
/// kept while the root is; '@' is not allowed in an id, so no container can take its name.
pub const SECCOMP_CACHE: &str = "seccomp@cache";

/// The runtime's root directory: one subdirectory per container.
#[derive(Debug, Clone)]
pub struct Root {
    path: PathBuf,
}

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Root { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Where compiled seccomp filters are kept ([`SECCOMP_CACHE`]).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.path.join(SECCOMP_CACHE)
    }

    /// Claims the id: makes the container's directory, failing if it exists.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        fs::create_dir_all(&self.path).map_err(|source| Error::Path {
            context: "cannot create runtime root",
            path: self.path.clone(),
            source,
        })?;
        let dir = self.container_dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(source) => Err(Error::Path {
                context: "cannot create container directory",
                path: dir,
                source,
            }),
        }
    }

    pub fn save(&self, record: &Record) -> Result<()> {
        let dir = self.container_dir(&record.id);
        let tmp = dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec(record).map_err(|e| Error::invalid(e.to_string()))?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .context(|| format!("write {}", tmp.display()))?;
        f.write_all(&bytes)
            .context(|| format!("write {}", tmp.display()))?;
        // Rename is atomic: a reader sees the old record or the new one, never half of one.
        fs::rename(&tmp, dir.join(STATE_FILE)).context(|| format!("rename {}", tmp.display()))
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        validate_id(id)?;
        let path = self.container_dir(id).join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(source) => {
                return Err(Error::Path {
                    context: "cannot read state",
                    path,
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(format!(
                "state of container {id:?} is unreadable ({e}); remove {} by hand",
                self.container_dir(id).display()
            ))
        })
    }

    /// Ids of every container directory, including ones still being created.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Path {
                    context: "cannot list",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| validate_id(name).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Path {
                context: "cannot remove container directory",
                path: dir,
                source,
            }),
        }
    }
}

/// Ids become directory names and cgroup names, so they may not carry path syntax.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+');
    if id.is_empty() || id.len() > 1024 || id == "." || id == ".." || !id.chars().all(ok_char) {
        return Err(Error::invalid(format!(
            "invalid container id {id:?}: use 1-1024 characters from [A-Za-z0-9_.+-], not \".\" or \"..\""
        )));
    }
    Ok(())
}

/// The start time of a process in clock ticks since boot, or None if it does not exist.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether the process is still ours and not a zombie.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat[close + 2..].split(' ');
    let state = fields.next().unwrap_or("X");
    let started: Option<u64> = fields.nth(18).and_then(|s| s.parse().ok());
    state != "Z" && state != "X" && started == Some(start_time)
}

/// Formats seconds since the epoch as RFC 3339 UTC (civil-from-days, Howard Hinnant's method).
pub fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_with_path_syntax_are_rejected() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?} should be invalid");
        }
        for good in ["a", "web-1", "x.y+z_0"] {
            validate_id(good).unwrap();
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(Duration::new(1_709_251_199, 5)),
            "2024-02-29T23:59:59.000000005Z"
        );
    }

    #[test]
    fn own_process_is_alive_and_start_time_guards_reuse() {
        let pid = std::process::id() as i32;
        let start = process_start_time(pid).unwrap();
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
        assert!(!is_alive(0, start));
    }

    #[test]
    fn claim_is_exclusive_and_records_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path().join("root"));
        root.claim("c1").unwrap();
        assert!(matches!(root.claim("c1"), Err(Error::Exists(_))));
        assert!(matches!(root.load("c1"), Err(Error::NotFound(_))));
        let record = Record {
            id: "c1".into(),
            bundle: "/b".into(),
            pid: 42,
            pid_start_time: 7,
            created: rfc3339(Duration::ZERO),
            owner: 0,
            cgroup: None,
            spec: Spec::default(),
        };
        root.save(&record).unwrap();
        let back = root.load("c1").unwrap();
        assert_eq!(back.pid, 42);
        assert_eq!(root.ids().unwrap(), vec!["c1".to_string()]);
        root.remove("c1").unwrap();
        assert!(root.ids().unwrap().is_empty());
    }
}
