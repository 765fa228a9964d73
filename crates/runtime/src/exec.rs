//! Running another process in a live container: fork, join each of the init's namespaces
//! (setns), join its cgroup, take on the process's identity and limits, and exec.

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::unistd::chdir;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::clone::{fork_into, Forked};
use crate::container::{RunOutcome, Runtime};
use crate::error::{Context, Error, Result};
use crate::state::Status;
use crate::sync::{self, Msg};
use crate::{console, namespaces, process, seccomp, wait};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
}

/// Namespaces in the order a joining process enters them: the user namespace last, since
/// the container's others may belong to ours (a remapped container's network namespace
/// does) and inside its user namespace we would have no rights over them; we are root
/// here, so ours lets us into all of them first. Pid and time are entered by the parent
/// (they apply to children only).
const JOIN_ORDER: [LinuxNamespaceType; 6] = [
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::User,
];

struct Joiner<'a> {
    process: &'a Process,
    joins: Vec<(LinuxNamespaceType, File)>,
    chan: sync::Channel,
    console: Option<OwnedFd>,
    seccomp: Option<&'a seccomp::Filter>,
    preserve_fds: u32,
}

impl Runtime {
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<RunOutcome> {
        let (record, status) = self.load_with_status(id)?;
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                hint: "exec needs a running container".into(),
            });
        }
        let terminal = process.terminal().unwrap_or(false);
        if terminal && opts.detach && opts.console_socket.is_none() {
            return Err(Error::invalid(
                "a detached exec with a terminal needs --console-socket",
            ));
        }
        let linux = record.spec.linux().as_ref();
        let filter = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(seccomp::compile_cached(s, &self.root().seccomp_cache())?),
            None => None,
        };
        let pid = record.pid;
        let ns_file = |kind| -> Result<File> {
            let path = PathBuf::from(format!("/proc/{pid}/ns/{}", namespaces::proc_name(kind)));
            namespaces::open(kind, &path)
        };
        let joins = JOIN_ORDER
            .into_iter()
            .filter(|k| namespaces::differs(pid, *k))
            .map(|k| Ok((k, ns_file(k)?)))
            .collect::<Result<Vec<_>>>()?;
        let console = match (&opts.console_socket, terminal) {
            (Some(path), true) => {
                Some(OwnedFd::from(UnixStream::connect(path).context(|| {
                    format!("connect to console socket {}", path.display())
                })?))
            }
            _ => None,
        };
        let signals = (!opts.detach).then(wait::block_forwarded).transpose()?;
        let mut own = namespaces::ForChildren::default();
        for kind in [LinuxNamespaceType::Pid, LinuxNamespaceType::Time] {
            if namespaces::differs(pid, kind) {
                own.enter(kind, &ns_file(kind)?)?;
            }
        }
        let (parent, child) = sync::pair()?;
        let (child_pid, pidfd) = match fork_into(nix::sched::CloneFlags::empty(), None)? {
            Forked::Child => Joiner {
                process,
                joins,
                chan: child,
                console,
                seccomp: filter.as_ref(),
                preserve_fds: opts.preserve_fds,
            }
            .run(),
            Forked::Parent { pid, pidfd } => {
                own.restore()?;
                (pid, pidfd)
            }
        };
        drop(child);
        let master = self.walk_through(&record, &parent, child_pid, terminal && console.is_none());
        let master = match master {
            Ok(m) => m,
            Err(e) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child_pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = wait::reap(child_pid);
                return Err(e);
            }
        };
        if let Some(path) = &opts.pid_file {
            crate::launch::write_pid_file(path, child_pid)?;
        }
        let Some(signals) = signals else {
            return Ok(RunOutcome::Detached { pid: child_pid });
        };
        let copier = master.map(|m| std::thread::spawn(move || console::proxy(m)));
        let code = wait::wait_forwarding(child_pid, &pidfd, signals)?;
        if let Some(c) = copier {
            let _ = c.join();
        }
        Ok(RunOutcome::Exited(code))
    }

    /// Puts the child in the container's cgroup, lets it go on, and learns whether its exec
    /// succeeded: the setup channel closes on exec, or carries the reason it failed.
    fn walk_through(
        &self,
        record: &crate::state::Record,
        chan: &sync::Channel,
        pid: i32,
        proxy_terminal: bool,
    ) -> Result<Option<OwnedFd>> {
        if let Some(cg) = &record.cgroup {
            cg.add_pid(pid)?;
        }
        chan.send(&Msg::Proceed)?;
        let master = if proxy_terminal {
            Some(console::recv_fd(chan.fd())?)
        } else {
            None
        };
        match chan.recv_or_closed()? {
            None => Ok(master),
            Some(Msg::Failed(why)) => Err(Error::Init(why)),
            Some(other) => Err(Error::Init(format!("unexpected {other:?} from exec"))),
        }
    }
}

impl Joiner<'_> {
    fn run(self) -> ! {
        self.chan.finish_child(self.setup())
    }

    fn setup(&self) -> Result<Infallible> {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
        nix::sys::prctl::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
        crate::sched::set_exec_affinity(self.process, true)?;
        self.chan.expect(Msg::Proceed)?;
        for (kind, file) in &self.joins {
            namespaces::join(*kind, file)?;
        }
        if self.process.terminal().unwrap_or(false) {
            let (master, slave) = console::open_pty()?;
            let sink = self.console.as_ref().map(|c| c.as_fd());
            console::send_fd(sink.unwrap_or(self.chan.fd()), &master)?;
            drop(master);
            console::make_controlling(&slave)?;
        }
        let cwd = self.process.cwd();
        chdir(cwd).context(|| format!("chdir {} in the container", cwd.display()))?;
        let program = process::find_executable(self.process)?;
        process::drop_privileges(self.process, self.seccomp)?;
        crate::sched::set_exec_affinity(self.process, false)?;
        process::load_late_seccomp(self.process, self.seccomp)?;
        // The parent-death signal survives exec; a detached process must outlive us.
        nix::sys::prctl::set_pdeathsig(None).context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
        process::reset_signals()?;
        process::close_fds_on_exec(3 + self.preserve_fds)?;
        process::exec(&program, self.process)
    }
}
