//! Control groups: what a container may use. One `Cgroup` is a container's directory in every
//! hierarchy this host mounts, whether the host is cgroup v1, v2, or hybrid (v1 controllers
//! plus a v2 hierarchy beside them, as on this project's CI machines).

mod bpf;
mod devices;
mod files;
mod layout;
pub mod stats;
mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use devices::device_rules;
pub use stats::Usage;

/// Enforces device rules on a cgroup v2 directory with an eBPF program (what `apply` does on
/// a pure v2 host). Exposed so that it can be exercised on hybrid hosts too.
pub fn attach_device_filter(
    dir: &Path,
    rules: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<()> {
    bpf::attach(dir, rules)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot read this host's cgroup layout: {0}")]
    Layout(String),
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context} {path}: {source}")]
    Dir {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Busy(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// How this host lays out its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V1,
    V2,
    Hybrid,
}

/// How long destroy and freeze wait for the kernel to catch up (processes exiting, tasks
/// freezing) before giving up.
const SETTLE: Duration = Duration::from_secs(5);

pub fn detect() -> Result<Layout> {
    let mounted = mounted()?;
    let v2 = mounted.iter().any(|m| m.v2);
    let v1 = mounted.iter().any(|m| !m.v2);
    match (v1, v2) {
        (true, true) => Ok(Layout::Hybrid),
        (true, false) => Ok(Layout::V1),
        (false, true) => Ok(Layout::V2),
        (false, false) => Err(Error::Layout("no cgroup filesystem is mounted".into())),
    }
}

/// Readies the kernel for a cgroup migration that is about to come (a container's init put
/// in its cgroup). The first migration after a quiet spell waits for an RCU grace period
/// before it moves anything: the kernel's cgroup_threadgroup_rwsem switches its readers
/// (every fork and exit) to a slow path first, and drifts back one grace period after the
/// last writer. Moving this process into the cgroup it is already in takes that wait now, on
/// the calling thread, while the caller's other threads get on with the start. Best effort:
/// a failure only means no time is saved.
pub fn prime_migration() {
    let Ok(proc_cgroup) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let Some(m) = mounted().ok().and_then(|m| m.into_iter().next()) else {
        return;
    };
    let Ok(own) = layout::own_path(&proc_cgroup, &m) else {
        return;
    };
    let procs = m
        .mount_point
        .join(own.strip_prefix("/").unwrap_or(&own))
        .join("cgroup.procs");
    if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
        tracing::debug!(
            "priming a cgroup migration through {}: {e}",
            procs.display()
        );
    }
}

fn mounted() -> Result<Vec<layout::Mounted>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::Layout(format!("/proc/self/mountinfo: {e}")))?;
    Ok(layout::parse_mountinfo(&text))
}

/// A container's directory in one hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hierarchy {
    mount_point: PathBuf,
    /// v1: the controllers (and name=) as mount options; v2: empty.
    options: String,
    v2: bool,
    dir: PathBuf,
}

impl Hierarchy {
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The directory name the host mounts it under, e.g. "memory" or "unified".
    pub fn mount_name(&self) -> String {
        self.mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// What to pass to mount(2) to mount this hierarchy again ("memory", "name=systemd").
    pub fn mount_options(&self) -> &str {
        &self.options
    }

    pub fn container_dir(&self) -> &Path {
        &self.dir
    }

    fn has(&self, controller: &str) -> bool {
        layout::Mounted {
            mount_point: self.mount_point.clone(),
            options: self.options.clone(),
            v2: self.v2,
        }
        .has_controller(controller)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    hierarchies: Vec<Hierarchy>,
}

impl Cgroup {
    /// `path` is OCI `linux.cgroupsPath`: absolute = from each hierarchy's root; relative =
    /// under the caller's own cgroup in that hierarchy (as runc does); None = "berth/<id>".
    pub fn new(path: Option<&Path>, id: &str) -> Result<Cgroup> {
        let default = PathBuf::from("berth").join(id);
        let path = path.unwrap_or(&default);
        if !path.components().any(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::Invalid(format!(
                "linux.cgroupsPath {:?} names a hierarchy's root: give the container a cgroup of its own below it",
                path.display().to_string()
            )));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(Error::Invalid(format!(
                "linux.cgroupsPath {} may not contain \"..\"",
                path.display()
            )));
        }
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| Error::Layout(format!("/proc/self/cgroup: {e}")))?;
        let hierarchies = mounted()?
            .into_iter()
            .map(|m| {
                let base = if path.is_absolute() {
                    PathBuf::from("/")
                } else {
                    layout::own_path(&proc_cgroup, &m)?
                };
                let rel = base.join(path);
                let dir = m.mount_point.join(rel.strip_prefix("/").unwrap_or(&rel));
                Ok(Hierarchy {
                    mount_point: m.mount_point,
                    options: m.options,
                    v2: m.v2,
                    dir,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if hierarchies.is_empty() {
            return Err(Error::Layout("no cgroup filesystem is mounted".into()));
        }
        Ok(Cgroup { hierarchies })
    }

    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        self.hierarchies.clone()
    }

    pub fn unified_path(&self) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.v2)
            .map(|h| h.dir.as_path())
    }

    /// Makes the directory in every hierarchy. On failure, removes what it made.
    pub fn create(&self) -> Result<()> {
        for (i, h) in self.hierarchies.iter().enumerate() {
            if let Err(e) = create_one(h) {
                for made in &self.hierarchies[..=i] {
                    let _ = std::fs::remove_dir(&made.dir);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            match self.dir_for("memory") {
                Some(h) if h.v2 => v2::memory(&h.dir, m)?,
                Some(h) => v1::memory(&h.dir, m)?,
                None => return Err(missing("memory")),
            }
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            let h = self.dir_for("pids").ok_or_else(|| missing("pids"))?;
            files::write(&h.dir, "pids.max", &limit_or_max(p.limit()))?;
        }
        if let Some(b) = r.block_io() {
            match self.dir_for("blkio").or_else(|| self.dir_for("io")) {
                Some(h) if h.v2 => v2::io(&h.dir, b)?,
                Some(h) => v1::blkio(&h.dir, b)?,
                None => return Err(missing("blkio/io")),
            }
        }
        for l in r.hugepage_limits().iter().flatten() {
            let h = self.dir_for("hugetlb").ok_or_else(|| missing("hugetlb"))?;
            let (file, value) = if h.v2 {
                (
                    format!("hugetlb.{}.max", l.page_size()),
                    l.limit().to_string(),
                )
            } else {
                (
                    format!("hugetlb.{}.limit_in_bytes", l.page_size()),
                    l.limit().to_string(),
                )
            };
            files::write_required(
                &h.dir,
                &file,
                &value,
                &format!("hugetlb page size {}", l.page_size()),
            )?;
        }
        if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            match (
                self.dir_for("devices"),
                self.hierarchies.iter().find(|h| h.v2),
            ) {
                (Some(h), _) => v1::devices(&h.dir, rules)?,
                // cgroup v2 has no devices controller file: an eBPF program enforces the rules.
                (None, Some(h)) => bpf::attach(&h.dir, rules)?,
                (None, None) => return Err(missing("devices")),
            }
        }
        if let Some(n) = r.network() {
            let cls = self.dir_for("net_cls").map(|h| h.dir.as_path());
            let prio = self.dir_for("net_prio").map(|h| h.dir.as_path());
            v1::network(cls, prio, n)?;
        }
        for (key, value) in r.unified().iter().flatten() {
            self.apply_unified(key, value)?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
        match self.dir_for("cpu") {
            Some(h) if h.v2 => return v2::cpu(&h.dir, c),
            Some(h) => v1::cpu(&h.dir, c)?,
            None => {
                let asks = c.shares().is_some() || c.quota().is_some() || c.period().is_some();
                if asks {
                    return Err(missing("cpu"));
                }
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let h = self.dir_for("cpuset").ok_or_else(|| missing("cpuset"))?;
            if h.v2 {
                return v2::cpu(&h.dir, c);
            }
            v1::cpuset(&h.dir, c)?;
        }
        Ok(())
    }

    fn apply_unified(&self, key: &str, value: &str) -> Result<()> {
        let h = self.hierarchies.iter().find(|h| h.v2).ok_or_else(|| {
            Error::Unsupported(format!(
                "linux.resources.unified {key:?} needs cgroup v2, which this host has not mounted"
            ))
        })?;
        if key.contains('/') || key.starts_with('.') {
            return Err(Error::Invalid(format!(
                "linux.resources.unified key {key:?} is not a file name"
            )));
        }
        let controller = key.split('.').next().unwrap_or_default();
        if controller != "cgroup" && !h.has(controller) {
            return Err(Error::Unsupported(format!(
                "linux.resources.unified {key:?}: the {controller} controller is not enabled in this host's cgroup v2"
            )));
        }
        files::write(&h.dir, key, value)
    }

    /// The hierarchy that holds `controller`: v1 first, as on hybrid hosts the v1 hierarchy
    /// owns a controller whenever it is mounted there.
    fn dir_for(&self, controller: &str) -> Option<&Hierarchy> {
        let v1 = self.hierarchies.iter().find(|h| !h.v2 && h.has(controller));
        v1.or_else(|| self.hierarchies.iter().find(|h| h.v2 && h.has(controller)))
    }

    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            files::write(&h.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let deadline = Instant::now() + SETTLE;
        if let Some(h) = self.dir_for("freezer") {
            files::write(
                &h.dir,
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
            )?;
        } else if let Some(h) = self.hierarchies.iter().find(|h| h.v2) {
            files::write(&h.dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        } else {
            return Err(missing("freezer"));
        }
        // The kernel freezes tasks asynchronously: FREEZING until every task stopped.
        while self.is_frozen()? != frozen {
            if Instant::now() > deadline {
                return Err(Error::Busy(format!(
                    "the cgroup did not {} within {SETTLE:?}",
                    if frozen { "freeze" } else { "thaw" }
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(h) = self.dir_for("freezer") {
            return Ok(files::read(&h.dir, "freezer.state")? == "FROZEN");
        }
        match self.hierarchies.iter().find(|h| h.v2) {
            Some(h) => Ok(files::read(&h.dir, "cgroup.events")?
                .lines()
                .any(|l| l == "frozen 1")),
            None => Ok(false),
        }
    }

    /// Every process in the cgroup and in the cgroups below it.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let h = self
            .dir_for("pids")
            .or_else(|| self.dir_for("freezer"))
            .or_else(|| self.hierarchies.first())
            .ok_or_else(|| missing("any"))?;
        let mut pids = Vec::new();
        collect_pids(&h.dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Removes the container's directory (and any below it) from every hierarchy. A cgroup
    /// whose last processes are still exiting is busy for a moment: retried until SETTLE.
    pub fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + SETTLE;
        for h in &self.hierarchies {
            loop {
                match remove_tree(&h.dir) {
                    Ok(()) => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(source) => {
                        return Err(Error::Dir {
                            context: "cannot remove cgroup",
                            path: h.dir.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

fn missing(controller: &str) -> Error {
    Error::Unsupported(format!(
        "this host has no {controller} cgroup controller mounted"
    ))
}

fn limit_or_max(v: i64) -> String {
    if v <= 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

fn create_one(h: &Hierarchy) -> Result<()> {
    std::fs::create_dir_all(&h.dir).map_err(|source| Error::Dir {
        context: "cannot create cgroup",
        path: h.dir.clone(),
        source,
    })?;
    if !h.v2 && h.has("cpuset") {
        inherit_cpuset(&h.mount_point, &h.dir)?;
    }
    if h.v2 {
        enable_controllers(&h.mount_point, &h.dir);
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with no cpus and no mems and then refuses tasks: copy the
/// parent's at every level that is still empty.
fn inherit_cpuset(root: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut parent = root.to_path_buf();
    for comp in rel.components() {
        let child = parent.join(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if files::read(&child, file)?.is_empty() {
                let value = files::read(&parent, file)?;
                files::write(&child, file, &value)?;
            }
        }
        parent = child;
    }
    Ok(())
}

/// On v2, controllers must be enabled in each ancestor's cgroup.subtree_control for a child
/// to get their files. Best effort: a controller the parent lacks stays off and a limit that
/// needs it fails later with a clear message.
fn enable_controllers(root: &Path, dir: &Path) {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut parent = root.to_path_buf();
    for comp in rel.components() {
        let available = files::read(&parent, "cgroup.controllers").unwrap_or_default();
        for c in available.split_whitespace() {
            let _ = files::write(&parent, "cgroup.subtree_control", &format!("+{c}"));
        }
        parent = parent.join(comp);
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = match files::read(dir, "cgroup.procs") {
        Ok(p) => p,
        Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    out.extend(procs.lines().filter_map(|l| l.parse::<i32>().ok()));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// rmdir leaf-first; cgroup directories hold only the kernel's files, which rmdir takes away.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
