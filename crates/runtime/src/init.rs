//! The container's init between clone and exec: it joins and configures its namespaces, builds
//! its root, drops to the user's identity and privileges, waits to be started, and then becomes
//! the user's program. It runs as a fork of the runtime, so everything it needs was prepared
//! (and validated) by the parent beforehand.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, sethostname, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::error::{Context, Error, Result};
use crate::namespaces::{self, Plan};
use crate::sync::{Channel, Msg};
use crate::{console, hooks, process, rootfs, seccomp};

/// How the init learns that it may run the user's program.
pub enum StartGate {
    /// `create` + `start`: the init blocks opening this fifo for writing until `start` opens
    /// it for reading.
    Fifo(PathBuf),
    /// `run`: the parent says `Start` on the setup channel.
    Channel,
}

/// Where the container's terminal master goes, if process.terminal is set.
pub enum TerminalSink {
    /// A connected `--console-socket`.
    Socket(OwnedFd),
    /// Back to the parent over the setup channel (foreground `run`).
    Parent,
}

pub struct Init<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: PathBuf,
    pub plan: &'a Plan,
    /// Namespace files opened by the parent, joined here in order.
    pub joins: Vec<(LinuxNamespaceType, File)>,
    pub chan: Channel,
    pub gate: StartGate,
    pub terminal: Option<TerminalSink>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub cgroup: Option<&'a berth_cgroups::Cgroup>,
    pub seccomp: Option<&'a seccomp::Filter>,
    /// Our pid as the host sees it (hooks are given this one), set by the parent.
    pub host_pid: i32,
}

impl Init<'_> {
    /// Never returns: either the user's program replaces this process, or the failure is sent
    /// to the parent and the process exits.
    pub fn run(self) -> ! {
        self.chan.finish_child(self.setup())
    }

    fn setup(&self) -> Result<Infallible> {
        // If the runtime dies mid-setup, so do we; and nothing in the container may ptrace us
        // or open our /proc entries while we still carry the runtime's memory.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
        nix::sys::prctl::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
        self.chan.expect(Msg::Proceed)?;
        self.enter_namespaces()?;
        let process = self
            .spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::invalid("config.json has no \"process\""))?;
        self.set_host_and_domain_names()?;
        let cgroup_ready = std::cell::Cell::new(false);
        let await_cgroup = || self.await_cgroup(&cgroup_ready);
        let setup = rootfs::Setup {
            spec: self.spec,
            bundle: self.bundle,
            rootfs: self.rootfs.clone(),
            in_new_userns: self.plan.has(LinuxNamespaceType::User),
            cgroup: self.cgroup,
            new_cgroupns: self.plan.has(LinuxNamespaceType::Cgroup),
            before_cgroup_mount: &await_cgroup,
        };
        setup.prepare()?;
        await_cgroup()?;
        let fifo = self.open_fifo()?;
        self.chan.send(&Msg::RuntimeHooks)?;
        self.chan.expect(Msg::HooksDone)?;
        self.run_container_hooks(|h| h.create_container().as_ref(), "createContainer")?;
        rootfs::pivot(&self.rootfs, self.no_pivot)?;
        write_sysctls(self.spec)?;
        rootfs::finalize(self.spec)?;
        if process.terminal().unwrap_or(false) {
            self.attach_terminal(process)?;
        }
        chdir(process.cwd()).context(|| format!("chdir {}", process.cwd().display()))?;
        let program = process::find_executable(process)?;
        process::drop_privileges(process, self.seccomp)?;
        // From here the init must outlive the runtime that forked it.
        nix::sys::prctl::set_pdeathsig(None).context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
        self.chan.send(&Msg::Ready)?;
        self.wait_for_start(fifo)?;
        self.run_container_hooks(|h| h.start_container().as_ref(), "startContainer")?;
        process::load_late_seccomp(process, self.seccomp)?;
        process::close_fds_on_exec(3 + self.preserve_fds)?;
        process::exec(&program, process)
    }

    fn enter_namespaces(&self) -> Result<()> {
        for (kind, file) in &self.joins {
            namespaces::join(*kind, file)?;
        }
        if self.plan.has(LinuxNamespaceType::User) {
            // The maps are written; become the namespace's root to set the rest up.
            setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                .context(|| "become root in the user namespace (gid)".into())?;
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .context(|| "become root in the user namespace (uid)".into())?;
        }
        if self.plan.joins(LinuxNamespaceType::User) {
            // Namespaces made after joining someone's user namespace must belong to it, so
            // they were not made by clone.
            nix::sched::unshare(self.plan.clone_flags - nix::sched::CloneFlags::CLONE_NEWPID)
                .context(|| "create namespaces in the joined user namespace".into())?;
        }
        Ok(())
    }

    /// Waits (once) until the parent has put us in our cgroup; only then may the cgroup
    /// namespace be made, so that its root is the container's cgroup.
    fn await_cgroup(&self, done: &std::cell::Cell<bool>) -> Result<()> {
        if done.replace(true) {
            return Ok(());
        }
        self.chan.expect(Msg::CgroupReady)?;
        if self.plan.has(LinuxNamespaceType::Cgroup) {
            namespaces::unshare_one(LinuxNamespaceType::Cgroup)?;
        }
        Ok(())
    }

    fn set_host_and_domain_names(&self) -> Result<()> {
        if let Some(h) = self.spec.hostname().as_deref() {
            sethostname(h).context(|| format!("set hostname {h:?}"))?;
        }
        if let Some(d) = self.spec.domainname().as_deref() {
            set_domainname(d)?;
        }
        Ok(())
    }

    /// The fifo is opened by path now, while the state directory is still visible; after
    /// pivot_root it is reopened for writing through /proc/self/fd.
    fn open_fifo(&self) -> Result<Option<OwnedFd>> {
        let StartGate::Fifo(path) = &self.gate else {
            return Ok(None);
        };
        let fd = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .context(|| format!("open {}", path.display()))?;
        Ok(Some(fd))
    }

    fn wait_for_start(&self, fifo: Option<OwnedFd>) -> Result<()> {
        let Some(fifo) = fifo else {
            return self.chan.expect(Msg::Start);
        };
        let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        // Blocks until `start` opens the other end.
        let fd = open(
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| "open the exec fifo".into())?;
        File::from(fd)
            .write_all(b"0")
            .context(|| "write the exec fifo".into())
    }

    fn run_container_hooks(
        &self,
        pick: impl Fn(&oci_spec::runtime::Hooks) -> Option<&Vec<oci_spec::runtime::Hook>>,
        kind: &str,
    ) -> Result<()> {
        let Some(list) = self.spec.hooks().as_ref().and_then(pick) else {
            return Ok(());
        };
        let state = crate::container::hook_state(
            self.id,
            self.spec,
            self.bundle,
            self.host_pid,
            oci_spec::runtime::ContainerState::Created,
        );
        hooks::run(list, &state, kind)
    }

    fn attach_terminal(&self, process: &Process) -> Result<()> {
        let (master, slave) = console::open_pty()?;
        if let Some(size) = process.console_size() {
            console::resize(master.as_fd(), size.height() as u16, size.width() as u16)?;
        }
        console::bind_console(&master)?;
        match &self.terminal {
            Some(TerminalSink::Socket(sock)) => console::send_fd(sock.as_fd(), &master)?,
            Some(TerminalSink::Parent) | None => console::send_fd(self.chan.fd(), &master)?,
        }
        drop(master);
        console::make_controlling(&slave)
    }
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(Error::Sys {
            context: format!("set domainname {name:?}"),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

/// linux.sysctl, written through the container's own /proc/sys.
fn write_sysctls(spec: &Spec) -> Result<()> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (key, value) in sysctls.into_iter().flatten() {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|source| Error::Path {
            context: "cannot set sysctl",
            path,
            source,
        })?;
    }
    Ok(())
}
