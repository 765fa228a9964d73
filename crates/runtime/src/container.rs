//! A container's life as the OCI runtime spec draws it: create, start, state, kill, delete,
//! plus run (all of it in one go), pause/resume, update and ps.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, LinuxResources, Spec, State, StateBuilder};
use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::launch::{self, CreateOptions, Mode};
use crate::state::{self, Record, Root, Status, EXEC_FIFO};
use crate::sync::Msg;
use crate::{console, hooks, wait};

/// How long delete waits for a killed container to die before giving up.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// The runtime over one root directory of containers.
pub struct Runtime {
    root: Root,
}

/// What `state` and `list` report: the OCI state plus runc's extra fields.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

/// How `run` ends: in the foreground with the program's exit code, or detached.
pub enum RunOutcome {
    Exited(i32),
    Detached { pid: i32 },
}

impl Runtime {
    pub fn new(root: impl AsRef<Path>) -> Self {
        Runtime {
            root: Root::new(root.as_ref()),
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Creates the container; its init waits for `start` before running the user's program.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<i32> {
        let launched = launch::launch(&self.root, id, opts, Mode::Create)?;
        Ok(launched.record.pid)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        let record = self.root.load(id)?;
        let status = self.status(&record);
        if status != Status::Created {
            return Err(wrong_state(
                id,
                status,
                "only a created container can be started",
            ));
        }
        let fifo = self.root.container_dir(id).join(EXEC_FIFO);
        release(&fifo, &record)?;
        let _ = std::fs::remove_file(&fifo);
        self.poststart(&record);
        Ok(())
    }

    /// create + start, then (unless detached) wait, and delete when the program exits.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool) -> Result<RunOutcome> {
        let signals = (!detach).then(wait::block_forwarded).transpose()?;
        let launched = launch::launch(&self.root, id, opts, Mode::Run)?;
        let pid = launched.record.pid;
        launched.chan.send(&Msg::Start)?;
        tracing::debug!("container started");
        self.poststart(&launched.record);
        let Some(signals) = signals else {
            return Ok(RunOutcome::Detached { pid });
        };
        let copier = launched
            .master
            .map(|m| std::thread::spawn(move || console::proxy(m)));
        let code = wait::wait_forwarding(pid, &launched.pidfd, signals);
        if let Some(c) = copier {
            let _ = c.join();
        }
        tracing::debug!("container exited");
        let deleted = self.delete(id, true);
        tracing::debug!("container deleted");
        let code = code?;
        deleted?;
        Ok(RunOutcome::Exited(code))
    }

    pub fn report(&self, id: &str) -> Result<Report> {
        let record = self.root.load(id)?;
        let status = self.status(&record);
        Ok(report_of(&record, status))
    }

    pub fn list(&self) -> Result<Vec<Report>> {
        let mut out = Vec::new();
        for id in self.root.ids()? {
            match self.root.load(&id) {
                Ok(r) => out.push(report_of(&r, self.status(&r))),
                Err(Error::NotFound(_)) => {} // still being created; no record yet
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Sends `signal` (a number: real-time signals too) to the init, or to every process.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let record = self.root.load(id)?;
        let status = self.status(&record);
        if status == Status::Stopped {
            return Err(wrong_state(id, status, "there is nothing to signal"));
        }
        if all {
            for pid in self.pids_of(&record)? {
                let _ = crate::signal::send(pid, signal);
            }
        } else {
            crate::signal::send(record.pid, signal)
                .context(|| format!("signal {signal} to {id}"))?;
        }
        // A frozen task acts on SIGKILL only once thawed (cgroup v1's freezer): thaw it, as
        // runc does, so killing a paused container ends it.
        if status == Status::Paused && signal == libc::SIGKILL {
            cgroup_of(&record)?.thaw()?;
        }
        Ok(())
    }

    /// Removes a stopped container (any container with `force`): kills what is left, removes
    /// its cgroup, runs the poststop hooks and forgets it.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let record = match self.root.load(id) {
            Ok(r) => r,
            // A directory without a record is a create that died before saving anything.
            Err(Error::NotFound(_)) if self.root.container_dir(id).is_dir() => {
                return self.root.remove(id);
            }
            // As runc: forcing the removal of what is already gone is not an error (shims
            // clean up after a container that exited and was deleted).
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let status = self.status(&record);
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(wrong_state(
                id,
                status,
                "stop it first, or delete with --force to kill it",
            ));
        }
        self.kill_everything(&record, status)?;
        if let Some(cg) = &record.cgroup {
            cg.destroy()?;
        }
        self.poststop(&record);
        self.root.remove(id)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status != Status::Running {
            return Err(wrong_state(
                id,
                status,
                "only a running container can be paused",
            ));
        }
        Ok(cgroup_of(&record)?.freeze()?)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status != Status::Paused {
            return Err(wrong_state(
                id,
                status,
                "only a paused container can be resumed",
            ));
        }
        Ok(cgroup_of(&record)?.thaw()?)
    }

    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        let (record, status) = self.load_with_status(id)?;
        if status == Status::Stopped {
            return Err(wrong_state(
                id,
                status,
                "a stopped container has no cgroup to update",
            ));
        }
        Ok(cgroup_of(&record)?.apply(resources)?)
    }

    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let record = self.root.load(id)?;
        self.pids_of(&record)
    }

    pub fn load_with_status(&self, id: &str) -> Result<(Record, Status)> {
        let record = self.root.load(id)?;
        let status = self.status(&record);
        Ok((record, status))
    }

    pub fn status(&self, record: &Record) -> Status {
        if !state::is_alive(record.pid, record.pid_start_time) {
            return Status::Stopped;
        }
        if self.root.container_dir(&record.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        let frozen = record
            .cgroup
            .as_ref()
            .and_then(|c| c.is_frozen().ok())
            .unwrap_or(false);
        if frozen {
            Status::Paused
        } else {
            Status::Running
        }
    }

    fn pids_of(&self, record: &Record) -> Result<Vec<i32>> {
        match &record.cgroup {
            Some(cg) => Ok(cg.pids()?),
            None if state::is_alive(record.pid, record.pid_start_time) => Ok(vec![record.pid]),
            None => Ok(Vec::new()),
        }
    }

    /// SIGKILL to the init and every process in the cgroup, then wait until they are gone:
    /// a cgroup with members cannot be removed.
    fn kill_everything(&self, record: &Record, status: Status) -> Result<()> {
        let init_alive = status != Status::Stopped;
        let pidfd = if init_alive {
            wait::pidfd_open(record.pid).ok()
        } else {
            None
        };
        for pid in self
            .pids_of(record)?
            .into_iter()
            .chain(init_alive.then_some(record.pid))
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Frozen tasks cannot act on SIGKILL until thawed.
        if status == Status::Paused {
            cgroup_of(record)?.thaw()?;
        }
        if let Some(fd) = pidfd {
            if !wait::until_exited(&fd, KILL_GRACE)? {
                return Err(Error::Init(format!(
                    "container {} did not die within {KILL_GRACE:?} of SIGKILL",
                    record.id
                )));
            }
        }
        Ok(())
    }

    fn poststart(&self, record: &Record) {
        run_late_hooks(
            record,
            |h| h.poststart().as_ref(),
            "poststart",
            ContainerState::Running,
        );
    }

    fn poststop(&self, record: &Record) {
        run_late_hooks(
            record,
            |h| h.poststop().as_ref(),
            "poststop",
            ContainerState::Stopped,
        );
    }
}

/// poststart and poststop: the spec says their failure is logged and the lifecycle goes on.
fn run_late_hooks(
    record: &Record,
    pick: impl Fn(&oci_spec::runtime::Hooks) -> Option<&Vec<oci_spec::runtime::Hook>>,
    kind: &str,
    status: ContainerState,
) {
    let Some(list) = record.spec.hooks().as_ref().and_then(pick) else {
        return;
    };
    let pid = if status == ContainerState::Stopped {
        0
    } else {
        record.pid
    };
    let state = hook_state(&record.id, &record.spec, &record.bundle, pid, status);
    if let Err(e) = hooks::run(list, &state, kind) {
        tracing::warn!("{e}");
    }
}

/// Opens the exec fifo for reading, which lets the waiting init go on, and reads the byte it
/// writes, while also watching the init so a dead one is reported rather than waited on.
fn release(fifo: &Path, record: &Record) -> Result<()> {
    let pidfd = wait::pidfd_open(record.pid)?;
    let fd = nix::fcntl::open(
        fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context(|| format!("open {}", fifo.display()))?;
    let mut file = File::from(fd);
    loop {
        let mut fds = [
            PollFd::new(file.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| "poll the exec fifo".into()),
            Ok(_) => {}
        }
        if fds[0].any().unwrap_or(false) {
            let mut byte = [0u8; 1];
            return match file.read(&mut byte) {
                Ok(1) => Ok(()),
                _ => Err(Error::Init(
                    "the container's init did not confirm the start".into(),
                )),
            };
        }
        if fds[1].any().unwrap_or(false) {
            return Err(Error::Init(
                "the container's init exited before it could be started".into(),
            ));
        }
    }
}

fn cgroup_of(record: &Record) -> Result<&berth_cgroups::Cgroup> {
    record.cgroup.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "container {} has no cgroup (its config has no \"linux\" section)",
            record.id
        ))
    })
}

fn wrong_state(id: &str, status: Status, hint: &str) -> Error {
    Error::WrongState {
        id: id.to_string(),
        status: status.to_string(),
        hint: hint.to_string(),
    }
}

fn report_of(record: &Record, status: Status) -> Report {
    let rootfs = record
        .spec
        .root()
        .as_ref()
        .map(|r| record.bundle.join(r.path()))
        .unwrap_or_default();
    Report {
        oci_version: record.spec.version().clone(),
        id: record.id.clone(),
        pid: if status == Status::Stopped {
            0
        } else {
            record.pid
        },
        status: status.to_string(),
        bundle: record.bundle.display().to_string(),
        rootfs: rootfs.display().to_string(),
        created: record.created.clone(),
        owner: owner_name(record.owner),
        annotations: record.spec.annotations().clone().unwrap_or_default(),
    }
}

fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The OCI state document given to hooks on stdin.
pub fn hook_state(id: &str, spec: &Spec, bundle: &Path, pid: i32, status: ContainerState) -> State {
    let mut builder = StateBuilder::default()
        .version(spec.version().clone())
        .id(id)
        .status(status)
        .bundle(bundle.to_path_buf());
    if pid > 0 {
        builder = builder.pid(pid);
    }
    if let Some(a) = spec.annotations() {
        builder = builder.annotations(a.clone());
    }
    builder.build().unwrap_or_default()
}
