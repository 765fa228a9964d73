//! Creating a container: check the whole bundle first, then claim the id, make the cgroup,
//! clone the init into its namespaces and walk it through setup. Any failure on the way
//! undoes every step already taken, so bad input leaves nothing behind.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, LinuxNamespaceType, Spec};

use crate::clone::{fork_into, Forked};
use crate::container::hook_state;
use crate::error::{Context, Error, Result};
use crate::init::{Init, StartGate, TerminalSink};
use crate::namespaces::{self, Plan};
use crate::state::{self, Record, Root, EXEC_FIFO};
use crate::sync::{self, Msg};
use crate::{capabilities, hooks, rootfs, seccomp};

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    /// Extra descriptors (from 3 upward) passed on to the container.
    pub preserve_fds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `create`: the init waits on the exec fifo for `start`.
    Create,
    /// `run`: the caller starts the init itself, right away.
    Run,
}

/// A created container as its creator sees it.
pub struct Launched {
    pub record: Record,
    pub pidfd: OwnedFd,
    /// Setup channel, kept open in `run` mode to send `Start`.
    pub chan: sync::Channel,
    /// The terminal master, when `run` proxies the terminal itself.
    pub master: Option<OwnedFd>,
}

/// What validation found, ready for the clone.
struct Checked {
    spec: Spec,
    bundle: PathBuf,
    rootfs: PathBuf,
    plan: Plan,
    seccomp: Option<seccomp::Filter>,
    joins: Vec<(LinuxNamespaceType, File)>,
}

pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Path {
        context: "cannot read the bundle's config",
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "{}: {e}: fix the config (see `berth-runtime spec` for a valid one)",
            path.display()
        ))
    })
}

fn check(root: &Root, opts: &CreateOptions, mode: Mode) -> Result<Checked> {
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| Error::Path {
        context: "bundle",
        path: opts.bundle.clone(),
        source,
    })?;
    let spec = load_spec(&bundle)?;
    let process = spec.process().as_ref().ok_or_else(|| {
        Error::invalid("config.json has no \"process\": say what the container should run")
    })?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::invalid(
            "process.args is empty: give the program to run as its first element",
        ));
    }
    let rootfs = rootfs::rootfs_of(&spec, &bundle)?;
    let plan = Plan::from_linux(spec.linux().as_ref())?;
    check_namespaces(&spec, &plan)?;
    check_terminal(
        process.terminal().unwrap_or(false),
        opts.console_socket.is_some(),
        mode,
    )?;
    if let Some(caps) = process.capabilities() {
        capabilities::validate(caps)?;
    }
    check_rlimits(process)?;
    check_unsupported(&spec)?;
    if process.apparmor_profile().is_some() || process.selinux_label().is_some() {
        return Err(Error::invalid(
            "process.apparmorProfile/selinuxLabel: this host has no LSM support in berth-runtime yet; remove them",
        ));
    }
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile_cached(s, &root.seccomp_cache())?),
        None => None,
    };
    let joins = plan
        .child_joins()
        .map(|(kind, path)| Ok((*kind, namespaces::open(*kind, path)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Checked {
        spec,
        bundle,
        rootfs,
        plan,
        seccomp,
        joins,
    })
}

fn check_namespaces(spec: &Spec, plan: &Plan) -> Result<()> {
    use LinuxNamespaceType as N;
    let linux = spec.linux().as_ref();
    if !plan.has(N::Mount) {
        return Err(Error::invalid(
            "linux.namespaces has no new mount namespace: add {\"type\": \"mount\"} (the container's root is built in it)",
        ));
    }
    let named = spec.hostname().is_some() || spec.domainname().is_some();
    if named && !plan.has(N::Uts) {
        return Err(Error::invalid(
            "hostname/domainname need a new uts namespace: add {\"type\": \"uts\"} or remove them",
        ));
    }
    let maps = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    if plan.has(N::User) && !maps {
        return Err(Error::invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings",
        ));
    }
    if maps && !plan.has(N::User) {
        return Err(Error::invalid(
            "linux.uidMappings/gidMappings need a new user namespace: add {\"type\": \"user\"}",
        ));
    }
    let offsets = linux.and_then(|l| l.time_offsets().as_ref());
    if offsets.is_some_and(|o| !o.is_empty()) && !plan.has(N::Time) {
        return Err(Error::invalid(
            "linux.timeOffsets need a new time namespace: add {\"type\": \"time\"}",
        ));
    }
    for key in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        check_sysctl(key, plan)?;
    }
    Ok(())
}

/// Only sysctls that live in a namespace the container owns may be set: others would change
/// the host.
fn check_sysctl(key: &str, plan: &Plan) -> Result<()> {
    use LinuxNamespaceType as N;
    let needs = if key.starts_with("net.") {
        N::Network
    } else if key.starts_with("fs.mqueue.")
        || [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
        ]
        .contains(&key)
        || ["kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"].contains(&key)
    {
        N::Ipc
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        N::Uts
    } else {
        return Err(Error::invalid(format!(
            "linux.sysctl {key:?} is not namespaced: setting it would change the host"
        )));
    };
    if plan.has(needs) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "linux.sysctl {key:?} needs a new {} namespace",
            namespaces::proc_name(needs)
        )))
    }
}

/// A hard limit above our own can only be set with CAP_SYS_RESOURCE; say so before anything
/// is created rather than fail half-way through setup.
fn check_rlimits(process: &oci_spec::runtime::Process) -> Result<()> {
    let can_raise = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    if can_raise {
        return Ok(());
    }
    for r in process.rlimits().iter().flatten() {
        let (_, own_hard) = crate::process::current_rlimit(r.typ())?;
        if r.hard() > own_hard {
            return Err(Error::invalid(format!(
                "process.rlimits {:?} asks for a hard limit of {} but the runtime's own is {own_hard} and it lacks CAP_SYS_RESOURCE to raise it: lower the limit in config.json",
                r.typ(),
                r.hard()
            )));
        }
    }
    Ok(())
}

/// Fields berth-runtime does not implement yet: refused by name, never silently ignored.
fn check_unsupported(spec: &Spec) -> Result<()> {
    let mut found = Vec::new();
    if let Some(l) = spec.linux() {
        let present = [
            (l.intel_rdt().is_some(), "linux.intelRdt"),
            (
                l.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
                "linux.netDevices",
            ),
            (l.memory_policy().is_some(), "linux.memoryPolicy"),
            (l.mount_label().is_some(), "linux.mountLabel"),
        ];
        found.extend(present.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
    }
    match found.as_slice() {
        [] => Ok(()),
        names => Err(Error::invalid(format!(
            "{} not supported by berth-runtime yet: remove from config.json",
            names.join(", ")
        ))),
    }
}

fn check_terminal(terminal: bool, socket: bool, mode: Mode) -> Result<()> {
    match (terminal, socket, mode) {
        (true, false, Mode::Create) => Err(Error::invalid(
            "process.terminal is true: pass --console-socket to receive the terminal",
        )),
        (false, true, _) => Err(Error::invalid(
            "--console-socket was given but process.terminal is false",
        )),
        _ => Ok(()),
    }
}

/// Undoes a half-made container unless disarmed.
struct Undo<'a> {
    root: &'a Root,
    id: String,
    cgroup: Option<berth_cgroups::Cgroup>,
    child: Option<i32>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup of failed create: {e}");
            }
        }
        let _ = self.root.remove(&self.id);
    }
}

pub fn launch(root: &Root, id: &str, opts: &CreateOptions, mode: Mode) -> Result<Launched> {
    state::validate_id(id)?;
    let checked = check(root, opts, mode)?;
    // A container in our own pid namespace could see this process: then it too must run
    // from the read-only copy (this re-executes the command). Otherwise only the init,
    // which enters the container, needs it, and it re-executes itself after the clone.
    let shares_our_pids =
        !checked.plan.has(LinuxNamespaceType::Pid) && !checked.plan.joins(LinuxNamespaceType::Pid);
    if shares_our_pids {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        crate::exe_guard::ensure_readonly_exe(&args)?;
    }
    let sealed = crate::exe_guard::sealed_copy()?;
    tracing::debug!("bundle checked");
    let dir = root.claim(id)?;
    let mut undo = Undo {
        root,
        id: id.to_string(),
        cgroup: None,
        child: None,
        armed: true,
    };
    // Only resolved here: it is made after the clone, while the child builds its mounts.
    let cgroup = resolve_cgroup(&checked.spec, id)?;
    undo.cgroup = cgroup.clone();
    let mut record = Record {
        id: id.to_string(),
        bundle: checked.bundle.clone(),
        pid: 0,
        pid_start_time: 0,
        created: state::rfc3339(now()),
        owner: nix::unistd::geteuid().as_raw(),
        cgroup: cgroup.clone(),
        spec: checked.spec.clone(),
    };
    root.save(&record)?;
    let gate = match mode {
        Mode::Create => {
            let fifo = dir.join(EXEC_FIFO);
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
                .context(|| format!("mkfifo {}", fifo.display()))?;
            give_fifo_to_init(&fifo, &checked)?;
            StartGate::Fifo(fifo)
        }
        Mode::Run => StartGate::Channel,
    };
    let terminal = terminal_sink(opts, &checked.spec)?;
    let (parent, child) = sync::pair()?;
    let (pid, pidfd) = clone_init(&checked, child, sealed.as_ref(), |chan, host_pid| Init {
        id,
        spec: &checked.spec,
        bundle: &checked.bundle,
        rootfs: checked.rootfs.clone(),
        plan: &checked.plan,
        joins: checked
            .joins
            .iter()
            .filter_map(|(k, f)| Some((*k, f.try_clone().ok()?)))
            .collect(),
        chan,
        gate,
        terminal,
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        cgroup: cgroup.as_ref(),
        seccomp: checked.seccomp.as_ref(),
        host_pid,
    })?;
    undo.child = Some(pid);
    tracing::debug!(pid, "init cloned");
    write_id_maps(&checked, pid)?;
    parent.send(&Msg::Proceed)?;
    if let Some(cg) = &cgroup {
        make_cgroup(&checked.spec, cg)?;
        cg.add_pid(pid)?;
    }
    set_oom_score_adj(&checked.spec, pid)?;
    parent.send_or_failure(&Msg::CgroupReady)?;
    tracing::debug!("cgroup made, init placed in it");
    parent.expect(Msg::RuntimeHooks)?;
    tracing::debug!("init's namespaces and mounts are ready");
    run_runtime_hooks(&checked.spec, id, &checked.bundle, pid)?;
    parent.send(&Msg::HooksDone)?;
    let master = receive_master(&parent, &checked.spec, opts)?;
    parent.expect(Msg::Ready)?;
    tracing::debug!("init pivoted and configured");
    record.pid = pid;
    record.pid_start_time = state::process_start_time(pid)
        .ok_or_else(|| Error::Init("the container's init exited during setup".into()))?;
    root.save(&record)?;
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, pid)?;
    }
    undo.armed = false;
    tracing::debug!("container created");
    Ok(Launched {
        record,
        pidfd,
        chan: parent,
        master,
    })
}

fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

fn resolve_cgroup(spec: &Spec, id: &str) -> Result<Option<berth_cgroups::Cgroup>> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(None);
    };
    Ok(Some(berth_cgroups::Cgroup::new(
        linux.cgroups_path().as_deref(),
        id,
    )?))
}

/// Creates the cgroup and writes the spec's limits and the device allow-list.
fn make_cgroup(spec: &Spec, cg: &berth_cgroups::Cgroup) -> Result<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    cg.create()?;
    let mut resources = linux.resources().clone().unwrap_or_default();
    let rules = berth_cgroups::device_rules(
        resources.devices().as_deref().unwrap_or_default(),
        linux.devices().as_deref().unwrap_or_default(),
    );
    resources.set_devices(Some(rules));
    Ok(cg.apply(&resources)?)
}

fn terminal_sink(opts: &CreateOptions, spec: &Spec) -> Result<Option<TerminalSink>> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if !terminal {
        return Ok(None);
    }
    let Some(path) = &opts.console_socket else {
        return Ok(Some(TerminalSink::Parent));
    };
    let sock = UnixStream::connect(path).context(|| {
        format!(
            "connect to console socket {} (is the receiver listening?)",
            path.display()
        )
    })?;
    Ok(Some(TerminalSink::Socket(OwnedFd::from(sock))))
}

/// Clones the init with the namespaces of the plan. Pid and time namespaces joined by path,
/// and a new time namespace, apply to our children only: we enter them just for the clone and
/// return to our own right after.
fn clone_init<'a>(
    checked: &'a Checked,
    child_end: sync::Channel,
    sealed: Option<&OwnedFd>,
    make_init: impl FnOnce(sync::Channel, i32) -> Init<'a>,
) -> Result<(i32, OwnedFd)> {
    let own = enter_for_children(checked)?;
    // Only the parent returns to its own namespaces; the child stays where it was born.
    match fork_into(clone_flags(&checked.plan), None) {
        Ok(Forked::Child) => {
            let init = make_init(child_end, namespaces::host_pid());
            match sealed {
                Some(fd) => init.reexec(fd),
                None => init.run(),
            }
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            own.restore()?;
            Ok((pid, pidfd))
        }
        Err(e) => {
            own.restore()?;
            Err(e)
        }
    }
}

/// Pid and time namespaces joined by path, and a new time namespace with its offsets.
fn enter_for_children(checked: &Checked) -> Result<namespaces::ForChildren> {
    let mut own = namespaces::ForChildren::default();
    for (kind, path) in checked.plan.parent_joins() {
        own.enter(*kind, &namespaces::open(*kind, path)?)?;
    }
    if checked.plan.new_time {
        own.unshare_time()?;
        let linux = checked.spec.linux().as_ref();
        if let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) {
            namespaces::write_time_offsets(offsets)?;
        }
    }
    Ok(own)
}

fn clone_flags(plan: &Plan) -> nix::sched::CloneFlags {
    if plan.joins(LinuxNamespaceType::User) {
        // The rest is unshared by the child once inside the joined user namespace.
        plan.clone_flags & nix::sched::CloneFlags::CLONE_NEWPID
    } else {
        plan.clone_flags
    }
}

/// The init opens the exec fifo for writing as the container's root: in a new user
/// namespace that is another host uid, which must own it (and the mode must not have lost
/// its write bits to the umask).
fn give_fifo_to_init(fifo: &Path, checked: &Checked) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fifo, std::fs::Permissions::from_mode(0o622))
        .context(|| format!("chmod {}", fifo.display()))?;
    if !checked.plan.has(LinuxNamespaceType::User) {
        return Ok(());
    }
    let linux = checked.spec.linux().as_ref();
    let root_of = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    let uid = root_of(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = root_of(linux.and_then(|l| l.gid_mappings().as_ref()));
    nix::unistd::chown(
        fifo,
        uid.map(nix::unistd::Uid::from_raw),
        gid.map(nix::unistd::Gid::from_raw),
    )
    .context(|| format!("chown {}", fifo.display()))
}

/// A new user namespace's id maps, written from outside before the child goes on.
fn write_id_maps(checked: &Checked, pid: i32) -> Result<()> {
    if !checked.plan.has(LinuxNamespaceType::User) {
        return Ok(());
    }
    let linux = checked.spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or_default();
    let gids = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or_default();
    namespaces::write_id_maps(pid, uids, gids)
}

fn set_oom_score_adj(spec: &Spec, pid: i32) -> Result<()> {
    let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) else {
        return Ok(());
    };
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, adj.to_string()).context(|| format!("write {path}"))
}

fn run_runtime_hooks(spec: &Spec, id: &str, bundle: &Path, pid: i32) -> Result<()> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    let state = hook_state(id, spec, bundle, pid, ContainerState::Creating);
    #[allow(deprecated)]
    if let Some(list) = h.prestart() {
        hooks::run(list, &state, "prestart")?;
    }
    if let Some(list) = h.create_runtime() {
        hooks::run(list, &state, "createRuntime")?;
    }
    Ok(())
}

fn receive_master(
    chan: &sync::Channel,
    spec: &Spec,
    opts: &CreateOptions,
) -> Result<Option<OwnedFd>> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if !terminal || opts.console_socket.is_some() {
        return Ok(None);
    }
    crate::console::recv_fd(chan.fd()).map(Some)
}

/// Writes the pid file atomically: a reader sees no file or the whole pid.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp-berth");
    std::fs::write(&tmp, pid.to_string()).context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_needs_a_socket_only_for_create() {
        assert!(check_terminal(true, false, Mode::Create).is_err());
        assert!(check_terminal(true, false, Mode::Run).is_ok());
        assert!(check_terminal(false, true, Mode::Run).is_err());
        assert!(check_terminal(true, true, Mode::Create).is_ok());
    }

    #[test]
    fn only_namespaced_sysctls_pass() {
        let mut plan = Plan::default();
        assert!(check_sysctl("net.ipv4.ip_forward", &plan).is_err());
        plan.clone_flags |= nix::sched::CloneFlags::CLONE_NEWNET;
        assert!(check_sysctl("net.ipv4.ip_forward", &plan).is_ok());
        assert!(check_sysctl("kernel.panic", &plan).is_err());
        assert!(check_sysctl("kernel.shmmax", &plan).is_err());
    }
}
