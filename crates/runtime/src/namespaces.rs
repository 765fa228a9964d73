//! What a container can see: which namespaces it gets new, which it joins by path, and the
//! per-namespace settings (uid/gid maps, clock offsets) that must be written from outside.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType, LinuxTimeOffset};

use crate::error::{Context, Error, Result};

/// The namespaces of one container, sorted into what to create and what to join.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Created by clone(2) itself (everything new except cgroup and time).
    pub clone_flags: CloneFlags,
    /// A new cgroup namespace is unshared by the child after it is in its cgroup, so that
    /// the namespace's root is the container's cgroup rather than the runtime's.
    pub new_cgroup: bool,
    /// A new time namespace is unshared by the parent (it applies to children only) so that
    /// its offsets can be written before any process lives in it.
    pub new_time: bool,
    /// Namespaces to join by path, in the order they must be joined.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            clone_flags: CloneFlags::empty(),
            new_cgroup: false,
            new_time: false,
            join: Vec::new(),
        }
    }
}

impl Plan {
    pub fn from_linux(linux: Option<&Linux>) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut seen = HashMap::new();
        let namespaces = linux.and_then(|l| l.namespaces().as_ref());
        for ns in namespaces.into_iter().flatten() {
            let kind = ns.typ();
            if seen.insert(kind, ()).is_some() {
                return Err(Error::invalid(format!(
                    "linux.namespaces lists {kind} twice: keep one entry per type"
                )));
            }
            match ns.path() {
                Some(path) => plan.join.push((kind, path.clone())),
                None => plan.add_new(kind),
            }
        }
        // The user namespace first: it decides what the others may be joined with.
        plan.join
            .sort_by_key(|(kind, _)| *kind != LinuxNamespaceType::User);
        Ok(plan)
    }

    fn add_new(&mut self, kind: LinuxNamespaceType) {
        match kind {
            LinuxNamespaceType::Cgroup => self.new_cgroup = true,
            LinuxNamespaceType::Time => self.new_time = true,
            other => self.clone_flags |= flag(other),
        }
    }

    pub fn has(&self, kind: LinuxNamespaceType) -> bool {
        match kind {
            LinuxNamespaceType::Cgroup => self.new_cgroup,
            LinuxNamespaceType::Time => self.new_time,
            other => self.clone_flags.contains(flag(other)),
        }
    }

    pub fn joins(&self, kind: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(k, _)| *k == kind)
    }

    /// Namespaces whose setns only affects children (pid, time) are joined by the parent
    /// before it clones; the rest by the child.
    pub fn parent_joins(&self) -> impl Iterator<Item = &(LinuxNamespaceType, PathBuf)> {
        self.join.iter().filter(|(k, _)| self.joined_by_parent(*k))
    }

    pub fn child_joins(&self) -> impl Iterator<Item = &(LinuxNamespaceType, PathBuf)> {
        self.join.iter().filter(|(k, _)| !self.joined_by_parent(*k))
    }

    /// Pid and time always. With a new user namespace, also the network, ipc and uts
    /// namespaces: they belong to our user namespace, and a child born into the new one
    /// has no rights over them, so they are entered (for the clone) before it is born.
    fn joined_by_parent(&self, kind: LinuxNamespaceType) -> bool {
        use LinuxNamespaceType as N;
        match kind {
            N::Pid | N::Time => true,
            N::Network | N::Ipc | N::Uts => self.clone_flags.contains(CloneFlags::CLONE_NEWUSER),
            _ => false,
        }
    }
}

pub fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // nix has no constant for CLONE_NEWTIME; its value is fixed by the kernel ABI.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of the namespace's file under /proc/PID/ns.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Opens a namespace file, checking that it exists before anything else is created.
pub fn open(kind: LinuxNamespaceType, path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Path {
        context: match kind {
            LinuxNamespaceType::User => "cannot open user namespace",
            LinuxNamespaceType::Pid => "cannot open pid namespace",
            LinuxNamespaceType::Network => "cannot open network namespace",
            LinuxNamespaceType::Mount => "cannot open mount namespace",
            _ => "cannot open namespace",
        },
        path: path.to_path_buf(),
        source,
    })
}

pub fn join(kind: LinuxNamespaceType, file: &File) -> Result<()> {
    setns(file.as_fd(), flag(kind)).context(|| format!("join {} namespace", proc_name(kind)))
}

pub fn unshare_one(kind: LinuxNamespaceType) -> Result<()> {
    unshare(flag(kind)).context(|| format!("create {} namespace", proc_name(kind)))
}

/// Writes uid_map and gid_map of a child that is in a new user namespace.
pub fn write_id_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    write_map(pid, "uid_map", uids)?;
    write_map(pid, "gid_map", gids)
}

fn write_map(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text).context(|| format!("write {path}"))
}

/// Writes the clock offsets of the time namespace this process just unshared for its children.
pub fn write_time_offsets(offsets: &HashMap<String, LinuxTimeOffset>) -> Result<()> {
    let mut text = String::new();
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::invalid(format!(
                "linux.timeOffsets: unknown clock {clock:?}; use \"monotonic\" or \"boottime\""
            )));
        }
        let secs = off.secs().unwrap_or(0);
        let nanos = off.nanosecs().unwrap_or(0);
        text.push_str(&format!("{clock} {secs} {nanos}\n"));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .context(|| "write /proc/self/timens_offsets".into())
}

/// This process's own namespaces, remembered while it enters others for the sake of a child
/// (pid and time apply to children only; network, ipc and uts are entered for a child born
/// into a new user namespace), and returned to afterwards.
#[derive(Default)]
pub struct ForChildren {
    own: Vec<(LinuxNamespaceType, File)>,
}

impl ForChildren {
    pub fn enter(&mut self, kind: LinuxNamespaceType, target: &File) -> Result<()> {
        self.remember(kind)?;
        join(kind, target)
    }

    pub fn unshare_time(&mut self) -> Result<()> {
        self.remember(LinuxNamespaceType::Time)?;
        unshare_one(LinuxNamespaceType::Time)
    }

    fn remember(&mut self, kind: LinuxNamespaceType) -> Result<()> {
        if !self.own.iter().any(|(k, _)| *k == kind) {
            let path = PathBuf::from(format!("/proc/self/ns/{}", proc_name(kind)));
            self.own.push((kind, open(kind, &path)?));
        }
        Ok(())
    }

    pub fn restore(self) -> Result<()> {
        for (kind, f) in &self.own {
            join(*kind, f)?;
        }
        Ok(())
    }
}

/// Our pid in the host's pid namespace. Read through /proc while it is still the host's
/// procfs (before the container mounts its own), so it is right even inside a new pid
/// namespace where getpid() says 1.
pub fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Whether `pid` is in a different namespace of this kind than we are.
pub fn differs(pid: i32, kind: LinuxNamespaceType) -> bool {
    use std::os::unix::fs::MetadataExt;
    let name = proc_name(kind);
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
    match (theirs, ours) {
        (Ok(t), Ok(o)) => (t.dev(), t.ino()) != (o.dev(), o.ino()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};

    fn linux(list: &[(LinuxNamespaceType, Option<&str>)]) -> Linux {
        let namespaces = list
            .iter()
            .map(|(t, p)| {
                let b = LinuxNamespaceBuilder::default().typ(*t);
                match p {
                    Some(p) => b.path(*p).build().unwrap(),
                    None => b.build().unwrap(),
                }
            })
            .collect::<Vec<_>>();
        LinuxBuilder::default()
            .namespaces(namespaces)
            .build()
            .unwrap()
    }

    #[test]
    fn new_and_joined_namespaces_are_sorted_out() {
        use LinuxNamespaceType::*;
        let l = linux(&[
            (Pid, None),
            (Network, Some("/run/netns/x")),
            (Cgroup, None),
            (Time, None),
            (User, Some("/proc/1/ns/user")),
            (Mount, None),
        ]);
        let plan = Plan::from_linux(Some(&l)).unwrap();
        assert!(plan.clone_flags.contains(CloneFlags::CLONE_NEWPID));
        assert!(plan.clone_flags.contains(CloneFlags::CLONE_NEWNS));
        assert!(!plan.clone_flags.contains(CloneFlags::CLONE_NEWNET));
        assert!(!plan.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP));
        assert!(plan.new_cgroup && plan.new_time);
        assert_eq!(plan.join[0].0, User, "the user namespace is joined first");
        assert!(plan.joins(Network) && !plan.has(Network));
    }

    #[test]
    fn a_namespace_listed_twice_is_an_error() {
        use LinuxNamespaceType::*;
        let l = linux(&[(Pid, None), (Pid, Some("/proc/1/ns/pid"))]);
        let err = Plan::from_linux(Some(&l)).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
    }
}
