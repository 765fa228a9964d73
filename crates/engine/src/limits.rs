//! What a container may do and use: its user, capabilities (Docker's default set, `--cap-add`,
//! `--cap-drop`, `--privileged`), a read-only root, seccomp and no-new-privileges
//! (`--security-opt`), host devices (`--device`), and its resources (`--memory`,
//! `--memory-swap`, `--cpus`, `--cpu-shares`, `--cpuset-cpus`, `--pids-limit`, `--ulimit`,
//! `--shm-size`), applied to the runtime spec made for it.

use std::path::Path;
use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCpuBuilder, LinuxDevice, LinuxDeviceCgroup, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Spec,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};

/// `--memory` and friends, in Docker's units (bytes, nano-CPUs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    pub memory: Option<i64>,
    /// Memory plus swap; -1 for unlimited swap; twice `memory` when unset, as in Docker.
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    /// `--ulimit`: replaces the default of the same name.
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` in bytes (64 MiB when unset, as Docker).
    pub shm_size: Option<i64>,
}

/// `docker update`: the limits to change, each `None` left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    pub memory: Option<i64>,
    /// -1: unlimited swap.
    pub memory_swap: Option<i64>,
    /// 0: no CPU quota.
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    /// 0 or -1: no limit.
    pub pids_limit: Option<i64>,
}

/// The smallest `--memory` Docker accepts: below it a container cannot even start.
const MIN_MEMORY: i64 = 6 << 20;

impl Resources {
    /// The limits' own rules, as Docker has them.
    fn check(&self) -> Result<()> {
        if self.shm_size.is_some_and(|s| s <= 0) {
            return Err(Error::Invalid("--shm-size must be more than 0".into()));
        }
        if let (Some(m), Some(swap)) = (self.memory, self.memory_swap) {
            if swap != -1 && swap < m {
                return Err(Error::Invalid(
                    "--memory-swap must be at least --memory (it counts both), or -1 for unlimited swap".into(),
                ));
            }
        }
        if self.memory.is_some_and(|m| m < MIN_MEMORY) {
            return Err(Error::Invalid(
                "--memory must be at least 6MB, as in Docker".into(),
            ));
        }
        Ok(())
    }

    /// These resources with `u`'s changes, refused as `docker update` refuses them.
    pub fn updated(&self, u: &ResourceUpdate) -> Result<Resources> {
        let mut r = self.clone();
        if u.memory_swap.is_some() && u.memory.or(r.memory).is_none() {
            return Err(Error::Invalid(
                "a swap limit needs a memory limit: give --memory with --memory-swap".into(),
            ));
        }
        if let Some(m) = u.memory {
            r.memory = Some(m);
        }
        if let Some(s) = u.memory_swap {
            r.memory_swap = Some(s);
        }
        if let Some(n) = u.nano_cpus {
            r.nano_cpus = (n > 0).then_some(n);
        }
        if let Some(shares) = u.cpu_shares {
            r.cpu_shares = (shares > 0).then_some(shares);
        }
        if let Some(set) = &u.cpuset_cpus {
            r.cpuset_cpus = (!set.is_empty()).then(|| set.clone());
        }
        if let Some(p) = u.pids_limit {
            r.pids_limit = (p > 0).then_some(p);
        }
        r.check()?;
        Ok(r)
    }
}

/// What to write to a running container's cgroup for `u`, given its limits after the update:
/// only the changed groups, and a removed limit as "unlimited" (leaving it out would keep the
/// old one).
pub fn update_resources(after: &Resources, u: &ResourceUpdate) -> Result<LinuxResources> {
    let full = resources(LinuxResources::default(), after)?;
    let bad = |e: oci_spec::OciSpecError| Error::Invalid(format!("resources: {e}"));
    let mut res = LinuxResources::default();
    if u.memory.is_some() || u.memory_swap.is_some() {
        res.set_memory(*full.memory());
    }
    if u.nano_cpus.is_some() || u.cpu_shares.is_some() || u.cpuset_cpus.is_some() {
        let mut cpu = full.cpu().clone().unwrap_or_default();
        if u.nano_cpus.is_some() && after.nano_cpus.is_none() {
            // The kernel's "no quota".
            cpu.set_quota(Some(-1));
            cpu.set_period(Some(CPU_PERIOD));
        }
        res.set_cpu(Some(cpu));
    }
    if u.pids_limit.is_some() {
        let limit = after.pids_limit.unwrap_or(-1);
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(bad)?,
        ));
    }
    Ok(res)
}

/// `--ulimit nofile=1024:2048`: a resource limit by its Docker name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// `--device /dev/fuse[:/dev/fuse[:rwm]]`: a host device node made in the container and
/// allowed by its device cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

/// `--security-opt seccomp=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// berth's default profile (see `seccomp`).
    #[default]
    Default,
    Unconfined,
    /// A profile in Docker's JSON format (the docker CLI sends the file's content).
    Profile(String),
}

/// `--user`, `--privileged`, `--cap-add`, `--cap-drop`, `--read-only`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    pub user: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    /// `--security-opt no-new-privileges`: setuid programs gain nothing.
    pub no_new_privileges: Option<bool>,
    pub seccomp: Seccomp,
    pub devices: Vec<Device>,
}

/// Docker's default capability set.
const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// A capability by any of its spellings: `NET_ADMIN`, `CAP_NET_ADMIN`, `net_admin`.
pub fn capability_named(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    // oci-spec parses the bare name; the spec's JSON and Docker's profiles write CAP_….
    Capability::from_str(upper.strip_prefix("CAP_").unwrap_or(&upper)).ok()
}

fn parse_capability(name: &str) -> Result<Capability> {
    capability_named(name).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown capability {name:?}: give a name such as NET_ADMIN (see capabilities(7))"
        ))
    })
}

/// Every capability this daemon holds in its bounding set (asking for more fails capset).
fn all_capabilities() -> Result<Capabilities> {
    let names = berth_runtime::capabilities::bounding_set()
        .map_err(|e| Error::Invalid(format!("read the daemon's capabilities: {e}")))?;
    Ok(names.iter().filter_map(|c| capability_named(c)).collect())
}

/// The set a container gets: Docker's default (or all, privileged), plus adds, minus drops;
/// `ALL` in either list means every capability.
pub fn capabilities(s: &Security) -> Result<Capabilities> {
    let mut set: Capabilities = if s.privileged {
        all_capabilities()?
    } else {
        DOCKER_DEFAULT.into_iter().collect()
    };
    for name in &s.cap_add {
        if name.eq_ignore_ascii_case("ALL") {
            set = all_capabilities()?;
        } else {
            set.insert(parse_capability(name)?);
        }
    }
    for name in &s.cap_drop {
        if name.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(&parse_capability(name)?);
        }
    }
    Ok(set)
}

/// Checks what can be checked before the container exists.
pub fn check(s: &Security, r: &Resources) -> Result<()> {
    let caps = capabilities(s)?;
    if let Seccomp::Profile(text) = &s.seccomp {
        crate::seccomp::docker_profile(text, &caps)?;
    }
    for u in &r.ulimits {
        rlimit_type(&u.name)?;
        if u.soft > u.hard {
            return Err(Error::Invalid(format!(
                "--ulimit {}: the soft limit {} is above the hard limit {}",
                u.name, u.soft, u.hard
            )));
        }
    }
    for d in &s.devices {
        device_node(d)?;
    }
    r.check()
}

/// Applies the user (resolved in the container's root filesystem), the capabilities, the
/// read-only root and the resources to `spec`.
pub fn apply(spec: &mut Spec, s: &Security, r: &Resources, rootfs: &Path) -> Result<()> {
    let mut process = spec.process().clone().unwrap_or_default();
    if let Some(user) = s.user.as_deref().filter(|u| !u.is_empty()) {
        process.set_user(crate::exec::spec_user(rootfs, user)?);
    }
    let caps = capabilities(s)?;
    process.set_capabilities(Some(berth_runtime::spec::capability_sets(caps.clone())));
    // Docker lets setuid programs work unless asked not to (runc's example spec does not).
    process.set_no_new_privileges(Some(s.no_new_privileges.unwrap_or(false)));
    process.set_rlimits(Some(rlimits(
        process.rlimits().clone().unwrap_or_default(),
        r,
    )?));
    spec.set_process(Some(process));
    set_shm_size(spec, r.shm_size);
    if s.read_only {
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_readonly(Some(true));
        spec.set_root(Some(root));
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    if s.privileged {
        // As Docker: nothing masked or read-only under /proc and /sys.
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    }
    // Kept: the device cgroup's deny-all first rule from the runtime's defaults.
    let mut res = resources(linux.resources().clone().unwrap_or_default(), r)?;
    let mut device_rules = res.devices().clone().unwrap_or_default();
    if s.privileged {
        device_rules.push(device_rule(json!({"allow": true, "access": "rwm"}))?);
    }
    let mut nodes = linux.devices().clone().unwrap_or_default();
    for d in &s.devices {
        let (node, rule) = device_node(d)?;
        nodes.push(node);
        device_rules.push(rule);
    }
    res.set_devices(Some(device_rules));
    linux.set_resources(Some(res));
    linux.set_devices(Some(nodes));
    linux.set_seccomp(match &s.seccomp {
        _ if s.privileged => None,
        Seccomp::Unconfined => None,
        Seccomp::Default => Some(crate::seccomp::default_profile(&caps)?),
        Seccomp::Profile(text) => Some(crate::seccomp::docker_profile(text, &caps)?),
    });
    spec.set_linux(Some(linux));
    Ok(())
}

/// `nofile` → RLIMIT_NOFILE, as the OCI spec names it.
fn rlimit_type(name: &str) -> Result<PosixRlimitType> {
    let full = format!("\"RLIMIT_{}\"", name.to_ascii_uppercase());
    serde_json::from_str(&full).map_err(|_| {
        Error::Invalid(format!(
            "unknown --ulimit {name:?}: give one of nofile, nproc, core, memlock, stack, \
             fsize, cpu, as, locks, sigpending, msgqueue, nice, rtprio, rttime"
        ))
    })
}

/// The default rlimits with `--ulimit`s in place of those of the same name.
fn rlimits(defaults: Vec<PosixRlimit>, r: &Resources) -> Result<Vec<PosixRlimit>> {
    let mut out = defaults;
    for u in &r.ulimits {
        let typ = rlimit_type(&u.name)?;
        out.retain(|l| l.typ() != typ);
        let limit = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(u.soft)
            .hard(u.hard)
            .build()
            .map_err(|e| Error::Invalid(format!("--ulimit {}: {e}", u.name)))?;
        out.push(limit);
    }
    Ok(out)
}

/// `/dev/shm`'s tmpfs with `size=` from `--shm-size`.
fn set_shm_size(spec: &mut Spec, size: Option<i64>) {
    let Some(size) = size else { return };
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in mounts
        .iter_mut()
        .filter(|m| m.destination() == Path::new("/dev/shm"))
    {
        let mut options: Vec<String> = m
            .options()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !o.starts_with("size="))
            .collect();
        options.push(format!("size={size}"));
        m.set_options(Some(options));
    }
    spec.set_mounts(Some(mounts));
}

fn device_rule(rule: serde_json::Value) -> Result<LinuxDeviceCgroup> {
    serde_json::from_value(rule).map_err(|e| Error::Invalid(format!("device rule: {e}")))
}

/// The node to make for `--device` and the cgroup rule that lets the container use it.
fn device_node(d: &Device) -> Result<(LinuxDevice, LinuxDeviceCgroup)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(&d.host).map_err(|e| {
        Error::Invalid(format!(
            "--device {}: {e}: give the path of a device node on this host",
            d.host
        ))
    })?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(Error::Invalid(format!(
            "--device {}: not a character or block device",
            d.host
        )));
    };
    if d.permissions.is_empty() || !d.permissions.chars().all(|c| "rwm".contains(c)) {
        return Err(Error::Invalid(format!(
            "--device {}: permissions {:?} must be made of r, w and m",
            d.host, d.permissions
        )));
    }
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let node = serde_json::from_value(json!({
        "path": d.container, "type": kind, "major": major, "minor": minor,
        "fileMode": meta.mode() & 0o777, "uid": 0, "gid": 0,
    }))
    .map_err(|e| Error::Invalid(format!("--device {}: {e}", d.host)))?;
    let rule = device_rule(json!({
        "allow": true, "type": kind, "major": major, "minor": minor, "access": d.permissions,
    }))?;
    Ok((node, rule))
}

/// Docker's CFS period; `--cpus` is a quota over it.
const CPU_PERIOD: u64 = 100_000;

fn resources(base: LinuxResources, r: &Resources) -> Result<LinuxResources> {
    let bad = |e: oci_spec::OciSpecError| Error::Invalid(format!("resources: {e}"));
    let mut res = base;
    if let Some(limit) = r.memory {
        let swap = match r.memory_swap {
            Some(s) => s,
            None => limit * 2,
        };
        let memory = LinuxMemoryBuilder::default()
            .limit(limit)
            .swap(swap)
            .build()
            .map_err(bad)?;
        res.set_memory(Some(memory));
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(n) = r.nano_cpus.filter(|n| *n > 0) {
        cpu = cpu
            .period(CPU_PERIOD)
            .quota((n as u64 * CPU_PERIOD / 1_000_000_000) as i64);
        any_cpu = true;
    }
    if let Some(shares) = r.cpu_shares.filter(|s| *s > 0) {
        cpu = cpu.shares(shares);
        any_cpu = true;
    }
    if let Some(set) = r.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
        cpu = cpu.cpus(set.clone());
        any_cpu = true;
    }
    if any_cpu {
        res.set_cpu(Some(cpu.build().map_err(bad)?));
    }
    if let Some(limit) = r.pids_limit.filter(|l| *l != 0) {
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(bad)?,
        ));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_only_what_it_names_and_removes_limits_explicitly() {
        let before = Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(20),
            ..Default::default()
        };
        let u = ResourceUpdate {
            nano_cpus: Some(0),
            pids_limit: Some(-1),
            ..Default::default()
        };
        let after = before.updated(&u).unwrap();
        assert_eq!(after.memory, Some(64 << 20));
        assert_eq!((after.nano_cpus, after.pids_limit), (None, None));
        let res = update_resources(&after, &u).unwrap();
        assert!(res.memory().is_none(), "memory was not named");
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(-1));
        assert_eq!(res.pids().as_ref().unwrap().limit(), -1);

        let raise = ResourceUpdate {
            memory: Some(128 << 20),
            ..Default::default()
        };
        let res = update_resources(&before.updated(&raise).unwrap(), &raise).unwrap();
        let memory = res.memory().as_ref().unwrap();
        assert_eq!(memory.limit(), Some(128 << 20));
        assert_eq!(memory.swap(), Some(256 << 20), "swap follows, as at create");
    }

    #[test]
    fn an_update_is_refused_as_docker_refuses_it() {
        let none = Resources::default();
        let swap_alone = ResourceUpdate {
            memory_swap: Some(64 << 20),
            ..Default::default()
        };
        assert!(none.updated(&swap_alone).is_err());
        let tiny = ResourceUpdate {
            memory: Some(1024),
            ..Default::default()
        };
        assert!(none.updated(&tiny).is_err());
        let limited = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(64 << 20),
            ..Default::default()
        };
        let above_swap = ResourceUpdate {
            memory: Some(128 << 20),
            ..Default::default()
        };
        assert!(limited.updated(&above_swap).is_err());
    }

    #[test]
    fn capabilities_start_from_dockers_set() {
        let default = capabilities(&Security::default()).unwrap();
        assert_eq!(default.len(), 14);
        assert!(default.contains(&Capability::NetRaw));
        let s = Security {
            cap_add: vec!["net_admin".into()],
            cap_drop: vec!["CAP_NET_RAW".into(), "chown".into()],
            ..Default::default()
        };
        let set = capabilities(&s).unwrap();
        assert!(set.contains(&Capability::NetAdmin));
        assert!(!set.contains(&Capability::NetRaw) && !set.contains(&Capability::Chown));
        let none = Security {
            cap_drop: vec!["ALL".into()],
            ..Default::default()
        };
        assert!(capabilities(&none).unwrap().is_empty());
        let privileged = Security {
            privileged: true,
            ..Default::default()
        };
        assert!(capabilities(&privileged)
            .unwrap()
            .contains(&Capability::SysAdmin));
        let bad = Security {
            cap_add: vec!["FLY".into()],
            ..Default::default()
        };
        assert!(capabilities(&bad).unwrap_err().to_string().contains("FLY"));
    }

    #[test]
    fn resources_take_dockers_units() {
        let r = Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        let res = resources(LinuxResources::default(), &r).unwrap();
        let mem = res.memory().as_ref().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(128 << 20)));
        let cpu = res.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 10);
        let low = Resources {
            memory: Some(1 << 20),
            ..Default::default()
        };
        assert!(check(&Security::default(), &low).is_err());
        let swap = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Default::default()
        };
        assert!(check(&Security::default(), &swap).is_err());
    }
}
