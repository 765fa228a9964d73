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

    /// Like `run`, but first re-executes the runtime from `sealed`, its read-only copy (see
    /// `exe_guard`), carrying this init's configuration across in a memfd.
    pub fn reexec(self, sealed: &OwnedFd) -> ! {
        let res = self.prologue().and_then(|()| carry::exec(&self, sealed));
        self.chan.finish_child(res)
    }

    fn setup(&self) -> Result<Infallible> {
        self.prologue()?;
        self.setup_after_prologue()
    }

    /// The first steps, the same with or without a re-exec.
    fn prologue(&self) -> Result<()> {
        // If the runtime dies mid-setup, so do we; and nothing in the container may ptrace us
        // or open our /proc entries while we still carry the runtime's memory.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
        nix::sys::prctl::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
        if let Some(p) = self.spec.process() {
            crate::sched::set_exec_affinity(p, true)?;
        }
        self.chan.expect(Msg::Proceed)?;
        if self.plan.has(LinuxNamespaceType::User) {
            // The maps are written; become the namespace's root (before any exec, so that
            // the capabilities survive it) to set the rest up.
            setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                .context(|| "become root in the user namespace (gid)".into())?;
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .context(|| "become root in the user namespace (uid)".into())?;
        }
        Ok(())
    }

    fn setup_after_prologue(&self) -> Result<Infallible> {
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
        let gate = self.wait_for_start(fifo)?;
        self.run_container_hooks(|h| h.start_container().as_ref(), "startContainer")?;
        // Only now does `start` learn that the container started, so its poststart hooks
        // always follow the startContainer ones.
        confirm_start(gate)?;
        crate::sched::set_exec_affinity(process, false)?;
        crate::sched::set_personality(
            self.spec
                .linux()
                .as_ref()
                .and_then(|l| l.personality().as_ref()),
        )?;
        if crate::reaper::wanted(self.spec) {
            // Returns in the child that runs the program; this process stays as PID 1.
            crate::reaper::fork_init()?;
        }
        process::reset_signals()?;
        process::load_late_seccomp(process, self.seccomp)?;
        process::close_fds_on_exec(3 + self.preserve_fds)?;
        process::exec(&program, process)
    }

    fn enter_namespaces(&self) -> Result<()> {
        for (kind, file) in &self.joins {
            namespaces::join(*kind, file)?;
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

    /// Returns once `start` (or `run`) has released the container; with an exec fifo, the
    /// opened fifo, on which the start is confirmed later.
    fn wait_for_start(&self, fifo: Option<OwnedFd>) -> Result<Option<File>> {
        let Some(fifo) = fifo else {
            self.chan.expect(Msg::Start)?;
            return Ok(None);
        };
        let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        // Blocks until `start` opens the other end.
        let fd = open(
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| "open the exec fifo".into())?;
        Ok(Some(File::from(fd)))
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

/// Carrying an init across its re-exec: everything it was given, as JSON in a memfd, and the
/// descriptors it holds, kept open across the exec.
mod carry {
    use std::convert::Infallible;
    use std::ffi::CString;
    use std::io::{Read, Seek, Write};
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
    use std::path::PathBuf;

    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use oci_spec::runtime::Spec;
    use serde::{Deserialize, Serialize};

    use super::{Init, StartGate, TerminalSink};
    use crate::error::{Context, Error, Result};
    use crate::namespaces::{self, Plan};
    use crate::seccomp::FilterData;
    use crate::sync::Channel;

    /// The hidden first argument by which the runtime binary knows it is a resumed init.
    pub const ARG: &str = "__berth_init";

    #[derive(Serialize, Deserialize)]
    struct Carried {
        id: String,
        spec: Spec,
        bundle: PathBuf,
        rootfs: PathBuf,
        fifo: Option<PathBuf>,
        chan: RawFd,
        console: Option<RawFd>,
        terminal_to_parent: bool,
        no_pivot: bool,
        preserve_fds: u32,
        cgroup: Option<berth_cgroups::Cgroup>,
        seccomp: Option<FilterData>,
        host_pid: i32,
    }

    pub fn exec(init: &Init, sealed: &OwnedFd) -> Result<Infallible> {
        let console = match &init.terminal {
            Some(TerminalSink::Socket(fd)) => Some(keep_open(fd.as_raw_fd())?),
            _ => None,
        };
        let carried = Carried {
            id: init.id.to_string(),
            spec: init.spec.clone(),
            bundle: init.bundle.to_path_buf(),
            rootfs: init.rootfs.clone(),
            fifo: match &init.gate {
                StartGate::Fifo(p) => Some(p.clone()),
                StartGate::Channel => None,
            },
            chan: keep_open(init.chan.fd().as_raw_fd())?,
            console,
            terminal_to_parent: matches!(init.terminal, Some(TerminalSink::Parent)),
            no_pivot: init.no_pivot,
            preserve_fds: init.preserve_fds,
            cgroup: init.cgroup.cloned(),
            seccomp: init.seccomp.map(FilterData::from),
            host_pid: init.host_pid,
        };
        let memfd =
            nix::sys::memfd::memfd_create(c"berth-init", nix::sys::memfd::MFdFlags::empty())
                .context(|| "memfd_create".into())?;
        let mut file = std::fs::File::from(memfd);
        // One write: serde_json writes a `File` token by token (a thousand syscalls).
        let json = serde_json::to_vec(&carried).map_err(|e| Error::Init(e.to_string()))?;
        file.write_all(&json)
            .context(|| "write the init's configuration".into())?;
        let memfd = file.into_raw_fd();
        let argv = [
            CString::new("berth-runtime").unwrap_or_default(),
            CString::new(ARG).unwrap_or_default(),
            CString::new(memfd.to_string()).unwrap_or_default(),
        ];
        let env: [CString; 0] = [];
        let Err(source) =
            nix::unistd::execveat(sealed, c"", &argv, &env, nix::fcntl::AtFlags::AT_EMPTY_PATH);
        Err(Error::Sys {
            context: "re-exec the init from the runtime's read-only copy".into(),
            source,
        })
    }

    fn keep_open(fd: RawFd) -> Result<RawFd> {
        // SAFETY: fd is one of ours, open for the whole call.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::empty()))
            .context(|| format!("keep fd {fd} across exec"))?;
        Ok(fd)
    }

    /// Entry point of a resumed init: `berth-runtime __berth_init MEMFD`. Never returns.
    pub fn resume(memfd: &str) -> ! {
        let carried = memfd
            .parse::<RawFd>()
            .map_err(|_| Error::Init(format!("bad init descriptor {memfd:?}")))
            .and_then(read_carried);
        let mut carried = match carried {
            Ok(c) => c,
            Err(e) => {
                eprintln!("berth-runtime: {e}");
                // SAFETY: nothing of ours needs running at exit; the parent sees the hang-up.
                unsafe { libc::_exit(1) }
            }
        };
        // SAFETY: the pre-exec init left this descriptor open for us; we are its only owner.
        let chan = Channel::from(unsafe { OwnedFd::from_raw_fd(carried.chan) });
        let filter = carried.seccomp.take().map(crate::seccomp::Filter::from);
        match rebuild(&carried) {
            Ok((plan, joins)) => {
                let init = Init {
                    id: &carried.id,
                    spec: &carried.spec,
                    bundle: &carried.bundle,
                    rootfs: carried.rootfs.clone(),
                    plan: &plan,
                    joins,
                    chan,
                    gate: match &carried.fifo {
                        Some(p) => StartGate::Fifo(p.clone()),
                        None => StartGate::Channel,
                    },
                    terminal: match (carried.console, carried.terminal_to_parent) {
                        // SAFETY: as for the channel: carried across exec for us alone.
                        (Some(fd), _) => {
                            Some(TerminalSink::Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
                        }
                        (None, true) => Some(TerminalSink::Parent),
                        (None, false) => None,
                    },
                    no_pivot: carried.no_pivot,
                    preserve_fds: carried.preserve_fds,
                    cgroup: carried.cgroup.as_ref(),
                    seccomp: filter.as_ref(),
                    host_pid: carried.host_pid,
                };
                // exec made us dumpable again.
                let res = nix::sys::prctl::set_dumpable(false)
                    .context(|| "prctl(PR_SET_DUMPABLE)".into())
                    .and_then(|()| init.setup_after_prologue());
                init.chan.finish_child(res)
            }
            Err(e) => chan.finish_child(Err(e)),
        }
    }

    type Joins = Vec<(oci_spec::runtime::LinuxNamespaceType, std::fs::File)>;

    /// What the parent had checked and the child holds in memory, built again from the spec.
    fn rebuild(c: &Carried) -> Result<(Plan, Joins)> {
        let plan = Plan::from_linux(c.spec.linux().as_ref())?;
        let joins = plan
            .child_joins()
            .map(|(kind, path)| Ok((*kind, namespaces::open(*kind, path)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((plan, joins))
    }

    fn read_carried(fd: RawFd) -> Result<Carried> {
        // SAFETY: the pre-exec init left this memfd open for us; we are its only owner.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.rewind()
            .context(|| "rewind the init's configuration".into())?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .context(|| "read the init's configuration".into())?;
        serde_json::from_slice(&text).map_err(|e| Error::Init(format!("init configuration: {e}")))
    }
}

pub use carry::{resume, ARG as RESUME_ARG};

/// Tells `start`, through the exec fifo, that the container has started.
fn confirm_start(gate: Option<File>) -> Result<()> {
    match gate {
        Some(mut fifo) => fifo
            .write_all(b"0")
            .context(|| "write the exec fifo".into()),
        None => Ok(()),
    }
}
