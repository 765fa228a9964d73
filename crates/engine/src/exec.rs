//! `docker exec`: another process in a running container. Each one runs under a shim of
//! its own (the shim binary with `exec` in its spec), because the joining process must be
//! forked from a single-threaded process; the shim serves the same attach socket as a
//! container's and records the process's exit in the exec's directory (under the
//! container's, so it goes with it). The engine keeps execs in memory, as dockerd does.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec, UserBuilder};
use serde::{Deserialize, Serialize};

use crate::attach::{AttachOptions, Attachment, Size};
use crate::container::{Container, Status};
use crate::engine::{alive, make_parent, resize_at, socket_pair, Engine};
use crate::error::{Error, Result};
use crate::shim::{self, ShimSpec};

/// What `docker exec` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`; the container's user when empty.
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
}

/// What `docker exec inspect` (GET /exec/{id}/json) shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecInfo {
    pub id: String,
    pub container_id: String,
    pub running: bool,
    pub exit_code: Option<i32>,
    /// The process's pid on the host; 0 before it starts.
    pub pid: i32,
    pub config: ExecConfig,
}

/// One exec as the engine remembers it.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    container_id: String,
    config: ExecConfig,
    started: bool,
    pid: i32,
    shim_pid: i32,
    exit_code: Option<i32>,
}

impl Engine {
    /// Records an exec in a running container; its id (64 hex digits).
    pub async fn create_exec(&self, key: &str, config: ExecConfig) -> Result<String> {
        let c = self.running(key).await?;
        if config.cmd.is_empty() {
            return Err(Error::Invalid("exec needs a command to run".into()));
        }
        if config.privileged {
            return Err(Error::Invalid(
                "exec --privileged is not supported yet: run the container privileged".into(),
            ));
        }
        let id = berth_network::manager::random_id()?;
        self.announce_exec("exec_create", &c, &config.cmd, &id);
        let exec = Exec {
            container_id: c.id,
            config,
            started: false,
            pid: 0,
            shim_pid: 0,
            exit_code: None,
        };
        self.execs_lock().insert(id.clone(), exec);
        Ok(id)
    }

    /// Starts an exec. Unless `detach`, the attachment it asked for is returned, connected
    /// before the process runs.
    pub async fn start_exec(&self, id: &str, detach: bool) -> Result<Option<Attachment>> {
        let exec = self.claim_exec(id)?;
        let started = self.launch_exec(id, &exec, detach).await;
        let mut execs = self.execs_lock();
        let Some(e) = execs.get_mut(id) else {
            return Err(Error::NoSuchExec(id.into()));
        };
        match started {
            Ok((shim_pid, pid, attachment)) => {
                (e.shim_pid, e.pid) = (shim_pid, pid);
                let (container, cmd) = (e.container_id.clone(), e.config.cmd.clone());
                drop(execs);
                if let Ok(c) = self.get(&container) {
                    self.announce_exec("exec_start", &c, &cmd, id);
                }
                Ok(attachment)
            }
            Err(err) => {
                // As Docker: an exec that could not run counts as ended with 126.
                e.exit_code = Some(126);
                Err(err)
            }
        }
    }

    pub async fn inspect_exec(&self, id: &str) -> Result<ExecInfo> {
        let e = self.exec(id)?;
        let mut exit_code = e.exit_code;
        if e.started && exit_code.is_none() {
            let dir = self.exec_dir(&e.container_id, id);
            let exit = shim::exit_of(&ShimSpec {
                dir,
                ..Default::default()
            })?;
            exit_code = exit.map(|x| x.code);
            if let (Some(code), Some(rec)) = (exit_code, self.execs_lock().get_mut(id)) {
                rec.exit_code = Some(code);
            }
        }
        let running = e.started && exit_code.is_none() && alive(e.shim_pid);
        Ok(ExecInfo {
            id: id.to_string(),
            container_id: e.container_id,
            running,
            exit_code,
            pid: if running { e.pid } else { 0 },
            config: e.config,
        })
    }

    /// Waits until an exec's process has ended and its exit is recorded; its exit code.
    pub async fn wait_exec(&self, id: &str) -> Result<Option<i32>> {
        let e = self.exec(id)?;
        if e.started {
            crate::monitor::exited(e.shim_pid).await?;
        }
        Ok(self.inspect_exec(id).await?.exit_code)
    }

    /// Waits for an exec's end, then tells the event stream (`exec_die`, with its exit
    /// code); its exit code. Called once per exec, by whoever follows it.
    pub async fn finish_exec(&self, id: &str) -> Result<Option<i32>> {
        let code = self.wait_exec(id).await?;
        let e = self.exec(id)?;
        if let Ok(c) = self.get(&e.container_id) {
            self.announce_exec_end(&c, id, code);
        }
        Ok(code)
    }

    /// Sets a running exec's terminal size.
    pub async fn resize_exec(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let info = self.inspect_exec(id).await?;
        if !info.config.tty {
            return Err(Error::Conflict(format!(
                "exec {id} has no terminal to resize"
            )));
        }
        if !info.running {
            return Err(Error::Conflict(format!("exec {id} is not running")));
        }
        let size = Size { height, width };
        resize_at(&self.socket_path("e", id), size, &format!("exec {id}")).await
    }

    /// Forgets a removed container's execs; the pids of their shims, which end with the
    /// container (their processes die with its pid namespace).
    pub(crate) fn forget_execs(&self, container_id: &str) -> Vec<i32> {
        let mut shims = Vec::new();
        self.execs_lock().retain(|_, e| {
            let theirs = e.container_id == container_id;
            if theirs && e.shim_pid > 0 {
                shims.push(e.shim_pid);
            }
            !theirs
        });
        shims
    }

    fn execs_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Exec>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn exec(&self, id: &str) -> Result<Exec> {
        self.execs_lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.into()))
    }

    /// Marks the exec started, once: a second start is a conflict.
    fn claim_exec(&self, id: &str) -> Result<Exec> {
        let mut execs = self.execs_lock();
        let e = execs
            .get_mut(id)
            .ok_or_else(|| Error::NoSuchExec(id.into()))?;
        if e.started {
            return Err(Error::Conflict(format!(
                "exec {id} has already been started"
            )));
        }
        e.started = true;
        Ok(e.clone())
    }

    fn exec_dir(&self, container_id: &str, id: &str) -> PathBuf {
        self.dir(container_id).join("execs").join(id)
    }

    async fn running(&self, key: &str) -> Result<Container> {
        let c = self.inspect(key).await?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is not running: start it before exec",
                c.name
            )));
        }
        Ok(c)
    }

    /// Starts the exec's shim; its pid, the process's, and the attachment if any.
    async fn launch_exec(
        &self,
        id: &str,
        e: &Exec,
        detach: bool,
    ) -> Result<(i32, i32, Option<Attachment>)> {
        let c = self.running(&e.container_id).await?;
        let cfg = &e.config;
        let process = exec_process(&self.bundle_dir(&c.id), cfg)?;
        let attach = !detach && (cfg.attach_stdin || cfg.attach_stdout || cfg.attach_stderr);
        let spec = ShimSpec {
            id: c.id.clone(),
            bundle: self.bundle_dir(&c.id),
            runtime_root: self.runtime_root(),
            runtime: c.state.runtime.clone(),
            dir: self.exec_dir(&c.id, id),
            socket: Some(self.socket_path("e", id)),
            tty: cfg.tty,
            open_stdin: attach && cfg.attach_stdin,
            // As Docker: the exec's stdin closes when the client's does.
            stdin_once: true,
            exec: Some(process),
            ..Default::default()
        };
        let mut clients = Vec::new();
        let mut attachment = None;
        if attach {
            let (ours, theirs) = socket_pair()?;
            let options = AttachOptions {
                stdin: cfg.attach_stdin,
                stdout: cfg.attach_stdout,
                stderr: cfg.attach_stderr,
                logs: false,
                stream: true,
            };
            clients.push((theirs, options));
            attachment = Some(Attachment {
                stream: ours,
                tty: cfg.tty,
            });
        }
        let program = self.shim_program();
        let started = tokio::task::spawn_blocking(move || {
            make_parent(spec.socket.as_deref())?;
            shim::start_attached(&program, &spec, clients)
        })
        .await
        .map_err(|e| Error::Invalid(format!("starting the exec's shim: {e}")))??;
        Ok((started.shim_pid, started.pid, attachment))
    }
}

/// The exec's process: the container's (its capabilities, limits, environment), with the
/// exec's command, environment, working directory, user and terminal.
fn exec_process(bundle: &Path, cfg: &ExecConfig) -> Result<Process> {
    let path = bundle.join("config.json");
    let spec =
        Spec::load(&path).map_err(|e| Error::Invalid(format!("read {}: {e}", path.display())))?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(cfg.cmd.clone()));
    process.set_terminal(Some(cfg.tty));
    process.set_console_size(None);
    let mut env = process.env().clone().unwrap_or_default();
    if cfg.tty && !env.iter().any(|v| v.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env.extend(cfg.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(dir) = cfg.workdir.as_deref().filter(|d| !d.is_empty()) {
        process.set_cwd(PathBuf::from(dir));
    }
    if let Some(user) = cfg.user.as_deref().filter(|u| !u.is_empty()) {
        let rootfs = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let rootfs = if rootfs.is_relative() {
            bundle.join(rootfs)
        } else {
            rootfs
        };
        process.set_user(spec_user(&rootfs, user)?);
    }
    Ok(process)
}

/// `user[:group]` by number or by name in the container's /etc/passwd and /etc/group.
/// `--user` as the spec's user, resolved in the container's root filesystem.
pub(crate) fn spec_user(rootfs: &Path, user: &str) -> Result<oci_spec::runtime::User> {
    let (uid, gid) = resolve_user(rootfs, user)?;
    UserBuilder::default()
        .uid(uid)
        .gid(gid)
        .build()
        .map_err(|e| Error::Invalid(format!("user {user}: {e}")))
}

fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32)> {
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let entry = lookup(&passwd, name);
    let uid = match name.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.map(|e| e.1).ok_or_else(|| unknown("user", name))?,
    };
    let gid = match group {
        None => entry.map(|e| e.2).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                lookup(&groups, g)
                    .map(|e| e.1)
                    .ok_or_else(|| unknown("group", g))?
            }
        },
    };
    Ok((uid, gid))
}

fn unknown(what: &str, name: &str) -> Error {
    Error::Invalid(format!(
        "no {what} {name:?} in the container's /etc/{}: give a number instead",
        if what == "user" { "passwd" } else { "group" }
    ))
}

/// A `name:x:id:gid:...` line by name or id: (name, id, third field or 0).
fn lookup<'a>(file: &'a str, key: &str) -> Option<(&'a str, u32, u32)> {
    file.lines().find_map(|line| {
        let mut f = line.split(':');
        let (name, _, id) = (f.next()?, f.next()?, f.next()?.parse().ok()?);
        let third = f.next().and_then(|g| g.parse().ok()).unwrap_or(0);
        (name == key || key.parse::<u32>().ok() == Some(id)).then_some((name, id, third))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_by_name_or_number() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user(root.path(), "www").unwrap(), (33, 34));
        assert_eq!(resolve_user(root.path(), "www:staff").unwrap(), (33, 50));
        assert_eq!(resolve_user(root.path(), "1000:7").unwrap(), (1000, 7));
        assert_eq!(resolve_user(root.path(), "33").unwrap(), (33, 34));
        let err = resolve_user(root.path(), "nobody").unwrap_err().to_string();
        assert!(err.contains("nobody"), "{err}");
        assert!(resolve_user(root.path(), "www:nogroup").is_err());
    }
}
