//! The OCI runtimes a daemon knows, by name, and the one each container runs with.
//!
//! `berth` is the built-in runtime (the berth-runtime library, called in-process by the shim
//! and the engine) and is always there. Every other runtime is an executable with runc's
//! command line (see [`crate::oci`]): `runc` when a `runc` binary is on PATH, as Docker
//! always knows runc, and whatever the daemon's configuration adds (`--add-runtime`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::oci::Oci;

/// The built-in runtime's name.
pub const BUILT_IN: &str = "berth";

/// How an external runtime is invoked: its executable and the arguments that go before the
/// subcommand (Docker's `runtimeArgs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeCommand {
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
}

/// The external runtimes known without any configuration: runc, when it is on PATH.
pub fn found_on_path() -> BTreeMap<String, RuntimeCommand> {
    let mut out = BTreeMap::new();
    if let Some(path) = which("runc") {
        out.insert(
            "runc".to_string(),
            RuntimeCommand {
                path,
                args: Vec::new(),
            },
        );
    }
    out
}

/// The first executable file called `name` in the directories of PATH.
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `--add-runtime NAME=PATH` as Docker's daemon takes it.
pub fn parse_add_runtime(flag: &str) -> Result<(String, RuntimeCommand)> {
    let (name, path) = flag.split_once('=').ok_or_else(|| {
        Error::Invalid(format!(
            "invalid --add-runtime {flag:?}: give NAME=PATH, as runc=/usr/sbin/runc"
        ))
    })?;
    check_name(name)?;
    if path.is_empty() {
        return Err(Error::Invalid(format!(
            "invalid --add-runtime {flag:?}: the path is empty; give NAME=PATH, as runc=/usr/sbin/runc"
        )));
    }
    Ok((
        name.to_string(),
        RuntimeCommand {
            path: PathBuf::from(path),
            args: Vec::new(),
        },
    ))
}

/// A runtime's name becomes a directory name under the run root: keep it to a plain word.
fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "invalid runtime name {name:?}: use letters, digits, '-', '_' and '.', as my-runc"
    )))
}

/// Adds configured runtimes to the known ones (a name already known is replaced), and
/// checks the whole: `berth` cannot be redefined and the default must be known.
pub fn configure(
    known: &mut BTreeMap<String, RuntimeCommand>,
    added: impl IntoIterator<Item = (String, RuntimeCommand)>,
) -> Result<()> {
    for (name, command) in added {
        check_name(&name)?;
        if name == BUILT_IN {
            return Err(Error::Invalid(format!(
                "runtime name {BUILT_IN:?} is the built-in runtime and cannot be redefined: give yours another name"
            )));
        }
        known.insert(name, command);
    }
    Ok(())
}

/// Checks a daemon's runtimes: none redefines `berth`, and `default` is one of them.
pub fn check(known: &BTreeMap<String, RuntimeCommand>, default: &str) -> Result<()> {
    if known.contains_key(BUILT_IN) {
        return Err(Error::Invalid(format!(
            "runtime name {BUILT_IN:?} is the built-in runtime and cannot be redefined: give yours another name"
        )));
    }
    for name in known.keys() {
        check_name(name)?;
    }
    if default != BUILT_IN && !known.contains_key(default) {
        return Err(Error::Invalid(format!(
            "the default runtime {default:?} is not known: {}",
            what_to_do(known, default)
        )));
    }
    Ok(())
}

/// The name a new container records: the one asked for, or the default; an unknown name
/// gets Docker's error.
pub fn resolve(
    known: &BTreeMap<String, RuntimeCommand>,
    default: &str,
    asked: &str,
) -> Result<String> {
    let name = if asked.is_empty() { default } else { asked };
    if name == BUILT_IN || known.contains_key(name) {
        return Ok(name.to_string());
    }
    Err(Error::Invalid(format!(
        "unknown or invalid runtime name: {name}: {}",
        what_to_do(known, name)
    )))
}

fn what_to_do(known: &BTreeMap<String, RuntimeCommand>, name: &str) -> String {
    let names: Vec<&str> = std::iter::once(BUILT_IN)
        .chain(known.keys().map(String::as_str))
        .collect();
    format!(
        "use one of {}, or give the daemon --add-runtime {name}=PATH",
        names.join(", ")
    )
}

/// The runtime a container was started with, as its state records it: the built-in one, or
/// an external command with its state root.
pub enum Driver {
    BuiltIn(berth_runtime::Runtime),
    External(Oci),
}

impl Driver {
    /// `external` as recorded at start; none: the built-in runtime with its state at `root`.
    pub fn new(external: Option<&Oci>, root: &Path) -> Driver {
        match external {
            Some(oci) => Driver::External(oci.clone()),
            None => Driver::BuiltIn(berth_runtime::Runtime::new(root)),
        }
    }

    pub fn kill(&self, id: &str, signal: i32) -> Result<()> {
        match self {
            Driver::BuiltIn(r) => Ok(r.kill(id, signal, false)?),
            Driver::External(o) => o.kill(id, signal),
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        match self {
            Driver::BuiltIn(r) => Ok(r.pause(id)?),
            Driver::External(o) => o.pause(id),
        }
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        match self {
            Driver::BuiltIn(r) => Ok(r.resume(id)?),
            Driver::External(o) => o.resume(id),
        }
    }

    /// Writes new limits into a running container's cgroup.
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        match self {
            Driver::BuiltIn(r) => Ok(r.update(id, resources)?),
            Driver::External(o) => o.update(id, resources),
        }
    }

    /// The host pids of the container's processes.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        match self {
            Driver::BuiltIn(r) => Ok(r.ps(id)?),
            Driver::External(o) => o.ps(id),
        }
    }

    /// Deletes the runtime's state of the container (killing what is left of it).
    pub fn delete(&self, id: &str) -> Result<()> {
        match self {
            Driver::BuiltIn(r) => Ok(r.delete(id, true)?),
            Driver::External(o) => o.delete(id),
        }
    }

    /// Where a running container's resource use is read; none once the runtime has no
    /// record of it (it ended meanwhile).
    pub fn usage_target(&self, id: &str) -> Result<Option<UsageTarget>> {
        match self {
            Driver::BuiltIn(r) => match r.root().load(id) {
                Ok(record) => Ok(Some(UsageTarget {
                    cgroup: record.cgroup,
                    pid: record.pid,
                    pid_start_time: record.pid_start_time,
                })),
                Err(berth_runtime::Error::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Driver::External(o) => {
                let state = match o.state(id) {
                    Ok(s) if s.pid > 0 => s,
                    Ok(_) | Err(Error::Conflict(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let Some(pid_start_time) = berth_runtime::state::process_start_time(state.pid)
                else {
                    return Ok(None);
                };
                // The cgroup berth named in the container's spec (see container::name_cgroup).
                let path = crate::container::cgroup_path(id);
                let cgroup = berth_cgroups::Cgroup::new(Some(&path), id)
                    .map_err(|e| Error::Invalid(format!("the cgroup of {id}: {e}")))?;
                Ok(Some(UsageTarget {
                    cgroup: Some(cgroup),
                    pid: state.pid,
                    pid_start_time,
                }))
            }
        }
    }
}

/// A running container's cgroup and init, as stats reads them.
pub struct UsageTarget {
    pub cgroup: Option<berth_cgroups::Cgroup>,
    pub pid: i32,
    /// Tells the init from a later process that reuses its pid.
    pub pid_start_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runc() -> RuntimeCommand {
        RuntimeCommand {
            path: "/usr/sbin/runc".into(),
            args: Vec::new(),
        }
    }

    #[test]
    fn add_runtime_flags_parse_as_dockers() {
        assert_eq!(
            parse_add_runtime("runc=/usr/sbin/runc").unwrap(),
            ("runc".to_string(), runc())
        );
        // Only the first '=' splits: a path may hold one.
        let (name, cmd) = parse_add_runtime("odd=/opt/a=b/runc").unwrap();
        assert_eq!(
            (name.as_str(), cmd.path),
            ("odd", PathBuf::from("/opt/a=b/runc"))
        );
        for bad in [
            "runc",
            "=/usr/sbin/runc",
            "runc=",
            "../x=/bin/true",
            "a/b=/bin/true",
        ] {
            let e = parse_add_runtime(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn configured_runtimes_add_to_and_replace_the_known_ones() {
        let mut known = BTreeMap::from([("runc".to_string(), runc())]);
        let other = RuntimeCommand {
            path: "/opt/runc".into(),
            args: vec!["--debug".into()],
        };
        configure(
            &mut known,
            [
                ("runc".to_string(), other.clone()),
                ("kata".to_string(), other.clone()),
            ],
        )
        .unwrap();
        assert_eq!(known["runc"], other);
        assert_eq!(known.len(), 2);
        let e = configure(&mut known, [("berth".to_string(), runc())]).unwrap_err();
        assert!(e.to_string().contains("cannot be redefined"), "{e}");
    }

    #[test]
    fn the_default_must_be_known() {
        let known = BTreeMap::from([("runc".to_string(), runc())]);
        check(&known, "berth").unwrap();
        check(&known, "runc").unwrap();
        let e = check(&known, "crun").unwrap_err().to_string();
        assert_eq!(
            e,
            "the default runtime \"crun\" is not known: use one of berth, runc, or give the daemon --add-runtime crun=PATH"
        );
        let with_berth = BTreeMap::from([("berth".to_string(), runc())]);
        assert!(check(&with_berth, "berth").is_err());
    }

    #[test]
    fn names_resolve_to_the_asked_or_the_default() {
        let known = BTreeMap::from([("runc".to_string(), runc())]);
        assert_eq!(resolve(&known, "berth", "").unwrap(), "berth");
        assert_eq!(resolve(&known, "runc", "").unwrap(), "runc");
        assert_eq!(resolve(&known, "runc", "berth").unwrap(), "berth");
        assert_eq!(resolve(&known, "berth", "runc").unwrap(), "runc");
        let e = resolve(&known, "berth", "foo").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown or invalid runtime name: foo: use one of berth, runc, or give the daemon --add-runtime foo=PATH"
        );
    }
}
