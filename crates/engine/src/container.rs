//! The container object: what the user asked for (its config) and where its life stands (its
//! state), as the store keeps them and as the runtime's bundle is made from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, Spec,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// What `create` takes, in Docker's terms. Fields added later default when reading older
/// records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The image the container runs (a reference or an id); empty with `rootfs`.
    pub image: String,
    /// The image's id, filled in at create.
    pub image_id: String,
    /// Without an image, a root filesystem directory (as podman's `--rootfs`).
    pub rootfs: PathBuf,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `--network`: none, host, container:<id>, or a network name.
    pub network: String,
    /// `-p` values as the user wrote them.
    pub publish: Vec<String>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--rm`: removed as soon as it exits.
    pub auto_remove: bool,
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `--stop-signal` (the image's StopSignal when not given); SIGTERM by default.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds; 10 by default.
    pub stop_timeout: Option<u32>,
    /// `-v`, `--mount`, `--tmpfs`, and the image's VOLUMEs (named at create).
    pub mounts: Vec<crate::volumes::MountSpec>,
    /// `--user`, capabilities, `--privileged`, `--read-only`.
    pub security: crate::limits::Security,
    /// `--memory`, `--cpus`, `--pids-limit` …
    pub resources: crate::limits::Resources,
    /// `--log-driver` and `--log-opt`; resolved at create (the daemon's default filled in).
    pub log: crate::logdriver::LogConfig,
    /// `-P`: the image's exposed ports are published too, on free host ports.
    pub publish_all: bool,
    /// Networks joined after create (`network connect`), besides `network`.
    pub extra_networks: Vec<Joined>,
    /// `--init`: a minimal init runs as PID 1, reaping and forwarding signals (the daemon's
    /// `init` when unsaid).
    pub init: Option<bool>,
    /// `--userns=host`: outside the daemon's user namespace (userns-remap) for this one.
    pub userns_host: bool,
    /// `--cgroupns` (the daemon's `default-cgroupns-mode` when unsaid).
    pub cgroupns: Option<crate::defaults::CgroupnsMode>,
    /// `--dns`, `--dns-search`, `--dns-option` (the daemon's when empty).
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `-t`: the process gets a terminal.
    pub tty: bool,
    /// `-i`: stdin stays open for attached clients.
    pub open_stdin: bool,
    /// Close stdin once the first attached client that wrote to it is done (`docker run -i`).
    pub stdin_once: bool,
    /// `--runtime`: the OCI runtime's name, the daemon's default at create when not given.
    pub runtime: String,
}

/// A network joined by `network connect`, with the aliases given there (they name the
/// container on that network only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub network: String,
    pub aliases: Vec<String>,
}

/// When a container that exited is started again, as Docker's `--restart` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    /// On a non-zero exit, at most this many times in a row (0: no limit).
    OnFailure(u32),
    Always,
    /// As always, except after the user stopped it (and across daemon restarts then).
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's `--restart` values: no, on-failure[:N], always, unless-stopped.
    pub fn parse(name: &str, max_retries: u32) -> Result<RestartPolicy> {
        let (name, count) = match name.split_once(':') {
            Some((n, c)) => (
                n,
                c.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "invalid restart policy count {c:?}: give a whole number, as on-failure:3"
                    ))
                })?,
            ),
            None => (name, max_retries),
        };
        match name {
            "" | "no" => Ok(RestartPolicy::No),
            "on-failure" => Ok(RestartPolicy::OnFailure(count)),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            other => Err(Error::Invalid(format!(
                "invalid restart policy {other:?}: use no, on-failure[:N], always or unless-stopped"
            ))),
        }
    }

    /// Docker's name and maximum retry count for it.
    pub fn docker_name(&self) -> (&'static str, u32) {
        match self {
            RestartPolicy::No => ("no", 0),
            RestartPolicy::OnFailure(n) => ("on-failure", *n),
            RestartPolicy::Always => ("always", 0),
            RestartPolicy::UnlessStopped => ("unless-stopped", 0),
        }
    }
}

impl Config {
    /// `--dns` as addresses; a name that is not one is refused at create.
    pub fn nameservers(&self) -> Result<Vec<std::net::IpAddr>> {
        self.dns
            .iter()
            .map(|d| {
                d.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "--dns {d:?} is not an IP address: give one, as 10.0.0.2"
                    ))
                })
            })
            .collect()
    }
    /// The process: entrypoint then cmd, as Docker joins them.
    pub fn args(&self) -> Result<Vec<String>> {
        let args: Vec<String> = self
            .entrypoint
            .iter()
            .chain(self.cmd.iter())
            .cloned()
            .collect();
        if args.is_empty() {
            return Err(Error::Invalid(
                "no command to run: give one after the image, or an entrypoint".into(),
            ));
        }
        Ok(args)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// Where a container's life stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub shim_pid: i32,
    pub exit_code: Option<i32>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished_at: Option<OffsetDateTime>,
    /// Restarts by policy since the user last started it.
    #[serde(default)]
    pub restart_count: u32,
    /// The user stopped it (stop, kill): no restart by policy until started again.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Frozen by `pause` (its cgroup's freezer), while running.
    #[serde(default)]
    pub paused: bool,
    /// The external runtime it was last started with, as it was then (none: the built-in
    /// one), so that a change of the daemon's runtimes does not strand it.
    #[serde(default)]
    pub runtime: Option<crate::oci::Oci>,
    /// Its last start booted systemd (see `machine`): stopped with systemd's own signal.
    #[serde(default)]
    pub machine: bool,
}

impl State {
    pub fn created() -> State {
        State {
            status: Status::Created,
            pid: 0,
            shim_pid: 0,
            exit_code: None,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            stopped_by_user: false,
            paused: false,
            runtime: None,
            machine: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub config: Config,
    pub state: State,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

impl Container {
    /// The first 12 hex digits of the id, as Docker shows and resolves it.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// `--hostname`, or the short id as in Docker.
    pub fn hostname(&self) -> String {
        self.config
            .hostname
            .clone()
            .unwrap_or_else(|| self.short_id().to_string())
    }

    /// What `stop` sends first: the configured signal, systemd's halt for a machine
    /// container, or SIGTERM.
    pub fn stop_signal(&self) -> &str {
        match &self.config.stop_signal {
            Some(s) => s,
            None if self.state.machine => crate::machine::STOP_SIGNAL,
            None => "SIGTERM",
        }
    }
}

/// Docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.len() < 2 || !first_ok || !rest_ok {
        return Err(Error::Invalid(format!(
            "invalid container name {name:?}: use two or more of [a-zA-Z0-9_.-], starting with a letter or digit"
        )));
    }
    Ok(())
}

/// A signal by Docker's spellings: `SIGTERM`, `TERM`, `term`, `15` or `SIGRTMIN+3`.
pub fn parse_signal(s: &str) -> Result<i32> {
    Ok(berth_runtime::signal::parse(s)?)
}

/// Where the container's network namespace comes from.
pub enum NetNs<'a> {
    /// The host's: no network namespace in the spec.
    Host,
    /// A pinned namespace (a sandbox, its own or shared) to join.
    Join(&'a Path),
}

/// The files a sandbox gives the container's /etc.
pub struct EtcMounts<'a> {
    pub hosts: &'a Path,
    pub hostname: &'a Path,
    pub resolv_conf: &'a Path,
}

/// Where an init program (the daemon's `init-path`) appears in a container, as in Docker.
pub const INIT_PROGRAM_TARGET: &str = "/sbin/docker-init";

/// `--init` with the daemon's `init-path`: that program, bind-mounted read-only, is PID 1
/// and runs the container's command after `--`, in place of the built-in runtime's reaper.
pub fn use_init_program(spec: &mut Spec, program: &Path) -> Result<()> {
    if let Some(a) = spec.annotations().clone() {
        let mut a = a;
        a.remove(berth_runtime::reaper::INIT_ANNOTATION);
        spec.set_annotations(Some(a));
    }
    let mut process = spec.process().clone().unwrap_or_default();
    let mut args = vec![INIT_PROGRAM_TARGET.to_string(), "--".to_string()];
    args.extend(process.args().clone().unwrap_or_default());
    process.set_args(Some(args));
    spec.set_process(Some(process));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(crate::volumes::bind_mount(
        program,
        INIT_PROGRAM_TARGET,
        true,
    )?);
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// The runtime spec for a container whose root filesystem is at `rootfs`: the runtime's
/// defaults, the config's process, the network namespace to join, and the sandbox's /etc
/// files bind-mounted.
pub fn spec_for(
    c: &Container,
    rootfs: &Path,
    netns: NetNs,
    etc: Option<&EtcMounts>,
) -> Result<Spec> {
    let mut spec = berth_runtime::spec::default_spec(false);
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_terminal(Some(c.config.tty));
    process.set_args(Some(c.config.args()?));
    let mut env = process.env().clone().unwrap_or_default();
    if c.config.tty {
        // As Docker: a terminal says what it is, unless the user says otherwise below.
        env.push("TERM=xterm".into());
    }
    env.extend(c.config.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(dir) = &c.config.workdir {
        process.set_cwd(PathBuf::from(dir));
    }
    spec.set_process(Some(process));
    if c.config.init == Some(true) {
        let annotation = berth_runtime::reaper::INIT_ANNOTATION.to_string();
        spec.set_annotations(Some([(annotation, "true".to_string())].into()));
    }
    spec.set_hostname(Some(c.hostname()));
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<LinuxNamespace> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    if let NetNs::Join(path) = netns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.to_path_buf())
                .build()
                .map_err(|e| Error::Invalid(format!("network namespace: {e}")))?,
        );
    }
    if c.config.cgroupns == Some(crate::defaults::CgroupnsMode::Private) {
        namespaces.push(new_cgroup_namespace()?);
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    if let Some(etc) = etc {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for (file, dest) in [
            (etc.hosts, "/etc/hosts"),
            (etc.hostname, "/etc/hostname"),
            (etc.resolv_conf, "/etc/resolv.conf"),
        ] {
            mounts.push(bind(file, dest)?);
        }
        spec.set_mounts(Some(mounts));
    }
    Ok(spec)
}

/// A cgroup namespace of the container's own.
pub fn new_cgroup_namespace() -> Result<LinuxNamespace> {
    LinuxNamespaceBuilder::default()
        .typ(LinuxNamespaceType::Cgroup)
        .build()
        .map_err(|e| Error::Invalid(format!("cgroup namespace: {e}")))
}

/// The cgroup berth's runtime gives a container by default, below the caller's own cgroup:
/// named in the spec for an external runtime, so that the engine finds it there too (runc
/// would otherwise use `<id>` alone).
pub fn name_cgroup(spec: &mut Spec, id: &str) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_cgroups_path(Some(cgroup_path(id)));
    spec.set_linux(Some(linux));
}

/// Relative: under the cgroup of the process that creates the container (the shim, which is
/// in the daemon's).
pub fn cgroup_path(id: &str) -> PathBuf {
    Path::new("berth").join(id)
}

fn bind(source: &Path, dest: &str) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .source(source)
        .typ("bind")
        .options(vec!["rbind".to_string(), "rprivate".to_string()])
        .build()
        .map_err(|e| Error::Invalid(format!("mount {dest}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        Container {
            id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            config: Config {
                rootfs: "/r".into(),
                entrypoint: vec!["/bin/sh".into(), "-c".into()],
                cmd: vec!["echo hi".into()],
                env: vec!["A=1".into()],
                workdir: Some("/srv".into()),
                ..Default::default()
            },
            state: State::created(),
            created: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_spec_follows_the_config() {
        let ns = Path::new("/run/ns/x");
        let spec = spec_for(&container(), Path::new("/r"), NetNs::Join(ns), None).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(
            p.args().as_ref().unwrap(),
            &["/bin/sh", "-c", "echo hi"].map(String::from)
        );
        assert!(p.env().as_ref().unwrap().contains(&"A=1".to_string()));
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("/r"));
        let net = network_namespaces(&spec);
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].path().as_deref(), Some(ns));
        let host = spec_for(&container(), Path::new("/r"), NetNs::Host, None).unwrap();
        assert!(network_namespaces(&host).is_empty());
    }

    fn network_namespaces(spec: &Spec) -> Vec<LinuxNamespace> {
        let linux = spec.linux().as_ref().unwrap();
        linux
            .namespaces()
            .iter()
            .flatten()
            .filter(|n| n.typ() == LinuxNamespaceType::Network)
            .cloned()
            .collect()
    }

    #[test]
    fn nothing_to_run_and_bad_names_are_refused() {
        let mut c = container();
        c.config.entrypoint.clear();
        c.config.cmd.clear();
        assert!(spec_for(&c, Path::new("/r"), NetNs::Host, None)
            .unwrap_err()
            .to_string()
            .contains("no command"));
        assert!(check_name("web-1").is_ok());
        assert!(check_name("w").is_err());
        assert!(check_name("-web").is_err());
        assert!(check_name("a/b").is_err());
    }

    #[test]
    fn signals_and_restart_policies_parse_as_docker_spells_them() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("kill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(
            RestartPolicy::parse("on-failure:3", 0).unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(
            RestartPolicy::parse("on-failure", 5).unwrap(),
            RestartPolicy::OnFailure(5)
        );
        assert_eq!(RestartPolicy::parse("", 0).unwrap(), RestartPolicy::No);
        assert!(RestartPolicy::parse("sometimes", 0).is_err());
        assert!(RestartPolicy::parse("on-failure:x", 0).is_err());
    }
}
