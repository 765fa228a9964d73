//! The engine: containers' lives from create to remove, each one run by its shim, with its
//! network sandbox from the network crate, recorded in the store at every step.
//!
//! Attaching (and resizing) is at the end of this file; execs are in `exec.rs`.
//!
//! A container's truth is split on purpose: the store says what was asked and last seen; the
//! shim's directory says what happened since (its exit record). `refresh` joins the two, so a
//! daemon that was away (or crashed) sees each container as it really is.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_image::ImageService;
use berth_network::{
    parse_mode, parse_publish, EndpointSpec, EtcSpec, Manager, Mode, NetworkSpec, Placement,
};
use futures_util::StreamExt;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use time::OffsetDateTime;

use crate::attach::{AttachOptions, Attachment, Request, Size};
use crate::container::{
    self, check_name, Config, Container, EtcMounts, NetNs, RestartPolicy, State, Status,
};
use crate::error::{Error, Result};
use crate::events::{Event, Events, Kind};
use crate::limits::ResourceUpdate;
use crate::logdriver::{LogConfig, NOT_READABLE};
use crate::logs::{self, Entry, Query};
use crate::oci::Oci;
use crate::runtimes::{self, Driver, RuntimeCommand};
use crate::shim::{self, ShimSpec};
use crate::stats::{self, Stats};
use crate::store::Store;

/// Where an engine keeps its state, the shim program it starts, and the OCI runtimes its
/// containers may run with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub run_root: PathBuf,
    pub shim: PathBuf,
    pub network: berth_network::Settings,
    /// The default bridge as the daemon is configured to make it (`bip`, `icc`, `mtu`, …);
    /// None for no default bridge (`bridge: none`).
    pub default_bridge: Option<NetworkSpec>,
    /// What containers get when they do not say (`dns`, `default-ulimits`, …).
    pub defaults: crate::defaults::Defaults,
    /// The image service's registry options and transfer limits.
    pub images: berth_image::Options,
    /// The external runtimes by name (the built-in `berth` is always known besides them).
    pub runtimes: BTreeMap<String, RuntimeCommand>,
    /// The runtime of containers created without `--runtime`.
    pub default_runtime: String,
    /// The daemon's log driver and options, for containers created without a driver.
    pub log: LogConfig,
    /// An init program (`init-path`) to run as PID 1 of `--init` containers, instead of the
    /// built-in runtime's own reaper; with one, `--init` works with every runtime.
    pub init_path: Option<PathBuf>,
}

impl Settings {
    /// The built-in runtime as the default, and runc when it is on PATH.
    pub fn new(root: &Path, run_root: &Path, shim: &Path) -> Settings {
        Settings {
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            shim: shim.to_path_buf(),
            network: berth_network::Settings::new(&root.join("network"), &run_root.join("network")),
            default_bridge: Some(default_bridge_spec()),
            defaults: Default::default(),
            images: image_options(root),
            runtimes: runtimes::found_on_path(),
            default_runtime: runtimes::BUILT_IN.to_string(),
            log: LogConfig::docker_default(),
            init_path: None,
        }
    }

    /// Adds (or replaces) runtimes and sets the default, as a daemon's configuration says.
    pub fn configure_runtimes(
        &mut self,
        added: impl IntoIterator<Item = (String, RuntimeCommand)>,
        default: Option<&str>,
    ) -> Result<()> {
        runtimes::configure(&mut self.runtimes, added)?;
        if let Some(d) = default.filter(|d| !d.is_empty()) {
            self.default_runtime = d.to_string();
        }
        runtimes::check(&self.runtimes, &self.default_runtime)
    }
}

/// Docker's default bridge, as dockerd makes it when nothing is configured.
pub fn default_bridge_spec() -> NetworkSpec {
    NetworkSpec {
        name: berth_network::mode::DEFAULT_NETWORK.into(),
        options: [(DEFAULT_BRIDGE_OPTION.to_string(), "true".to_string())].into(),
        ..Default::default()
    }
}

/// The image service under the state root, with the daemon's own credentials (from `login`),
/// never the invoking user's.
fn image_options(root: &Path) -> berth_image::Options {
    let mut options = berth_image::Options::new(root.join("image"));
    options.registry.credentials = root.join("image").join("credentials.json");
    options
}

pub struct Engine {
    settings: Settings,
    /// The external runtimes and the default, which a reload may replace.
    runtimes: std::sync::RwLock<(BTreeMap<String, RuntimeCommand>, String)>,
    store: Arc<Mutex<Store>>,
    net: Manager,
    images: ImageService,
    events: Events,
    /// Held while a container's exit is recorded.
    transitions: tokio::sync::Mutex<()>,
    /// Attachments (and a terminal size) waiting for a container's next start.
    pending: Mutex<HashMap<String, Pending>>,
    pub(crate) execs: Mutex<HashMap<String, crate::exec::Exec>>,
}

/// What a container that is not running yet keeps for its start.
#[derive(Default)]
struct Pending {
    clients: Vec<(OwnedFd, AttachOptions)>,
    size: Option<Size>,
}

/// What `wait` waits for, as Docker's `condition` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Returns at once if the container is not running (Docker's default).
    NotRunning,
    /// The next exit, even of a container not started yet.
    NextExit,
    /// Its removal (`--rm`).
    Removed,
}

/// Tells the image service which containers use an image, so `rmi` refuses it.
struct ImageUsers(Arc<Mutex<Store>>);

impl berth_image::UsageCheck for ImageUsers {
    fn users(&self, image: &berth_image::Digest) -> Vec<String> {
        let store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = image.to_string();
        store
            .all()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.config.image_id == id)
            .map(|c| c.name)
            .collect()
    }
}

/// Seconds between the stop signal and SIGKILL, as in Docker.
const DEFAULT_STOP_TIMEOUT: u32 = 10;

/// Docker's default bridge: made at first open, as dockerd does.
const DEFAULT_BRIDGE_OPTION: &str = "com.docker.network.bridge.default_bridge";

/// Makes the default bridge as configured: made when missing, made again when the daemon's
/// configuration of it changed and no container is on it, removed for `bridge: none`. A
/// bridge in use keeps its old configuration until its containers are gone (as dockerd, the
/// new one applies at a restart without them).
async fn settle_default_bridge(net: &Manager, wanted: Option<&NetworkSpec>) -> Result<()> {
    let name = berth_network::mode::DEFAULT_NETWORK;
    if let Ok(existing) = net.network(name) {
        if wanted.is_some_and(|w| made_as(&existing, w)) {
            return Ok(());
        }
        if !net.endpoints_on(&existing.id)?.is_empty() {
            tracing::warn!(
                "the default bridge's configuration changed, but containers are on it: it keeps \
                 its old one until they are removed and the daemon restarts"
            );
            return Ok(());
        }
        net.remove_network(&existing.id).await?;
    }
    if let Some(spec) = wanted {
        net.create_network(spec).await?;
    }
    Ok(())
}

/// Whether `existing` is what `wanted` makes: the same options, each wanted subnet (with its
/// range and gateway when given) among its subnets, and an IPv6 subnet only when asked for.
fn made_as(existing: &berth_network::Network, wanted: &NetworkSpec) -> bool {
    let has_v6 = existing
        .subnets
        .iter()
        .any(|s| s.subnet.network().is_ipv6());
    let subnets_match = wanted.subnets.iter().all(|w| {
        existing.subnets.iter().any(|e| {
            e.subnet == w.subnet && e.range == w.range && w.gateway.is_none_or(|g| g == e.gateway)
        })
    });
    existing.options == wanted.options && subnets_match && has_v6 == wanted.ipv6
}

impl Engine {
    /// Opens the store and the network manager (which settles its own leftovers), makes the
    /// default bridge if it is missing, and refreshes every container.
    pub async fn open(settings: Settings) -> Result<Engine> {
        runtimes::check(&settings.runtimes, &settings.default_runtime)?;
        for dir in [&settings.root, &settings.run_root] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        let store = Arc::new(Mutex::new(Store::open(&settings.root.join("engine.db"))?));
        let net = Manager::open_with(settings.network.clone()).await?;
        let images = ImageService::open(settings.images.clone())?;
        images.set_usage_check(Arc::new(ImageUsers(store.clone())));
        settle_default_bridge(&net, settings.default_bridge.as_ref()).await?;
        let engine = Engine {
            runtimes: std::sync::RwLock::new((
                settings.runtimes.clone(),
                settings.default_runtime.clone(),
            )),
            settings,
            store,
            net,
            images,
            events: Events::default(),
            transitions: tokio::sync::Mutex::new(()),
            pending: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
        };
        // Listed first: the store's lock must not be held across the awaits below.
        let containers = engine.store().all()?;
        for c in containers {
            engine.refresh(c).await?;
        }
        Ok(engine)
    }

    pub(crate) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // SQLite rolls a failed transaction back, so a poisoned lock is still consistent.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn network(&self) -> &Manager {
        &self.net
    }

    pub fn images(&self) -> &ImageService {
        &self.images
    }

    /// The state directory given at open.
    /// The user namespace containers run in (userns-remap); the identity without one.
    pub fn ids(&self) -> &berth_image::IdMap {
        &self.settings.images.ids
    }

    pub fn root(&self) -> &Path {
        &self.settings.root
    }

    /// Where a container's log is (none for the `none` driver, which keeps nothing).
    pub fn log_path(&self, c: &Container) -> Option<PathBuf> {
        c.config
            .log
            .readable()
            .then(|| self.shim_spec(c).log_path())
    }

    /// The daemon's default log driver and options.
    pub fn default_log(&self) -> &LogConfig {
        &self.settings.log
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Tells the event stream that `action` happened to container `key` (for what the API
    /// layer does with a container: commit, cp, export).
    pub fn announce(&self, key: &str, action: &str) -> Result<()> {
        let c = self.get(key)?;
        self.events.send(self.container_event(action, &c));
        Ok(())
    }

    /// `exec_create: CMD` and `exec_start: CMD`, as Docker names exec events.
    pub(crate) fn announce_exec(&self, action: &str, c: &Container, cmd: &[String], exec: &str) {
        let action = format!("{action}: {}", cmd.join(" "));
        let event = self
            .container_event(&action, c)
            .with("execID", exec.to_string());
        self.events.send(event);
    }

    /// `exec_die`, with the exec's id and exit code.
    pub(crate) fn announce_exec_end(&self, c: &Container, exec: &str, code: Option<i32>) {
        let mut event = self
            .container_event("exec_die", c)
            .with("execID", exec.to_string());
        if let Some(code) = code {
            event = event.with("exitCode", code.to_string());
        }
        self.events.send(event);
    }

    fn container_event(&self, action: &str, c: &Container) -> Event {
        Event::new(Kind::Container, action, &c.id)
            .with("name", c.name.clone())
            .with("image", c.config.image.clone())
    }

    /// Where an image-based container's root filesystem is mounted while it runs.
    pub(crate) fn rootfs_mount(&self, id: &str) -> PathBuf {
        self.bundle_dir(id).join("rootfs")
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.settings.root.join("containers").join(id)
    }

    pub(crate) fn bundle_dir(&self, id: &str) -> PathBuf {
        self.settings.run_root.join("containers").join(id)
    }

    /// The built-in runtime's state root.
    pub(crate) fn runtime_root(&self) -> PathBuf {
        self.settings.run_root.join("runtime")
    }

    /// The external runtimes this daemon knows (`berth`, built in, is always there too).
    pub fn runtimes(&self) -> BTreeMap<String, RuntimeCommand> {
        self.known_runtimes().0
    }

    pub fn default_runtime(&self) -> String {
        self.known_runtimes().1
    }

    fn known_runtimes(&self) -> (BTreeMap<String, RuntimeCommand>, String) {
        self.runtimes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the runtimes and the default (a daemon reload); refused, with nothing changed,
    /// when the default is not among them. Running containers keep the command they started
    /// with.
    pub fn set_runtimes(
        &self,
        added: impl IntoIterator<Item = (String, RuntimeCommand)>,
        default: &str,
    ) -> Result<()> {
        let mut known = runtimes::found_on_path();
        runtimes::configure(&mut known, added)?;
        runtimes::check(&known, default)?;
        *self.runtimes.write().unwrap_or_else(|p| p.into_inner()) = (known, default.to_string());
        Ok(())
    }

    /// The external runtime named `name` as a container starts with it now, with a state
    /// root of its own; none for the built-in runtime.
    fn external_runtime(&self, name: &str) -> Result<Option<Oci>> {
        let (known, default) = self.known_runtimes();
        let name = runtimes::resolve(&known, &default, name)?;
        Ok(known.get(&name).map(|command| Oci {
            root: self.settings.run_root.join("runtimes").join(&name),
            name,
            command: command.clone(),
        }))
    }

    /// The runtime a running container was started with.
    pub(crate) fn driver(&self, c: &Container) -> Driver {
        Driver::new(c.state.runtime.as_ref(), &self.runtime_root())
    }

    pub(crate) fn shim_program(&self) -> PathBuf {
        self.settings.shim.clone()
    }

    /// A shim's attach socket: under the run root with a short name, since a socket's path
    /// must fit in 108 bytes (the state directory's would not).
    pub(crate) fn socket_path(&self, kind: &str, id: &str) -> PathBuf {
        let short = &id[..id.len().min(16)];
        self.settings
            .run_root
            .join("sockets")
            .join(format!("{kind}-{short}.sock"))
    }

    fn shim_spec(&self, c: &Container) -> ShimSpec {
        ShimSpec {
            id: c.id.clone(),
            bundle: self.bundle_dir(&c.id),
            runtime_root: self.runtime_root(),
            runtime: c.state.runtime.clone(),
            dir: self.dir(&c.id),
            socket: Some(self.socket_path("c", &c.id)),
            tty: c.config.tty,
            open_stdin: c.config.open_stdin,
            stdin_once: c.config.stdin_once,
            ..Default::default()
        }
    }

    /// Records a new container after checking everything it names.
    pub async fn create(&self, name: Option<&str>, mut config: Config) -> Result<Container> {
        let id = berth_network::manager::random_id()?;
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => format!("berth_{}", &id[..12]),
        };
        self.settings.defaults.fill(&mut config);
        if config.network.is_empty() || config.network == "default" {
            // With no default bridge (`bridge: none`), "default" means no network.
            if self.settings.default_bridge.is_none() {
                config.network = "none".into();
            }
        }
        config.log = config.log.resolve(&self.settings.log)?;
        if !config.image.is_empty() {
            self.apply_image(&mut config)?;
        } else if !config.rootfs.is_dir() {
            return Err(Error::Invalid(format!(
                "root filesystem {} does not exist: give a directory, or an image",
                config.rootfs.display()
            )));
        }
        config.args()?;
        config.nameservers()?;
        match parse_mode(&config.network)? {
            Mode::Networks(names) => {
                for n in names {
                    self.net.network(&n)?;
                }
            }
            Mode::Container(other) => {
                self.get(&other)?;
            }
            Mode::None | Mode::Host => {}
        }
        for p in &config.publish {
            parse_publish(p)?;
        }
        crate::limits::check(&config.security, &config.resources)?;
        crate::userns::check(self.ids(), &config)?;
        let (known, default) = self.known_runtimes();
        config.runtime = runtimes::resolve(&known, &default, &config.runtime)?;
        // The daemon's `init` default is the built-in runtime's reaper: containers of other
        // runtimes that did not ask for an init run without one.
        // (An init program of the daemon's runs under any runtime.)
        let built_in = config.runtime == runtimes::BUILT_IN || self.settings.init_path.is_some();
        config
            .init
            .get_or_insert(self.settings.defaults.init && built_in);
        if config.init == Some(true) && !built_in {
            // berth's --init is the built-in runtime's own reaper; another runtime would
            // silently run the container without it.
            return Err(Error::Invalid(format!(
                "--init needs the built-in runtime {}: drop --init, or run with --runtime {}",
                runtimes::BUILT_IN,
                runtimes::BUILT_IN
            )));
        }
        self.claim_volumes(&mut config.mounts)?;
        let c = Container {
            id,
            name,
            config,
            state: State::created(),
            created: OffsetDateTime::now_utc(),
        };
        self.store().insert(&c)?;
        self.events.send(self.container_event("create", &c));
        Ok(c)
    }

    /// The image's defaults under the user's settings, as Docker merges them: its entrypoint
    /// and command unless given, its environment before the user's, its working directory.
    fn apply_image(&self, config: &mut Config) -> Result<()> {
        let image = self.images.inspect(&config.image)?;
        config.image_id = image.image.id.to_string();
        let Some(defaults) = image.config.config() else {
            return Ok(());
        };
        if config.entrypoint.is_empty() {
            config.entrypoint = defaults.entrypoint().clone().unwrap_or_default();
            if config.cmd.is_empty() {
                config.cmd = defaults.cmd().clone().unwrap_or_default();
            }
        }
        let mut env = defaults.env().clone().unwrap_or_default();
        env.append(&mut config.env);
        config.env = env;
        if config.workdir.is_none() {
            config.workdir = defaults.working_dir().clone().filter(|w| !w.is_empty());
        }
        if config.security.user.is_none() {
            config.security.user = defaults.user().clone().filter(|u| !u.is_empty());
        }
        if config.publish_all {
            // `-P`: every port the image exposes, each on a free host port.
            for port in defaults.exposed_ports().clone().unwrap_or_default() {
                if !config.publish.iter().any(|p| publishes(p, &port)) {
                    config.publish.push(port);
                }
            }
        }
        if config.stop_signal.is_none() {
            config.stop_signal = defaults.stop_signal().clone().filter(|s| !s.is_empty());
        }
        for target in defaults.volumes().clone().unwrap_or_default() {
            if !config.mounts.iter().any(|m| m.target == target) {
                config.mounts.push(crate::volumes::MountSpec {
                    kind: crate::volumes::MountKind::Volume,
                    source: String::new(),
                    target,
                    readonly: false,
                    create_source: false,
                    options: Vec::new(),
                });
            }
        }
        Ok(())
    }

    /// The root filesystem to start from: the image's layers under the container's own
    /// upper directory (kept across restarts), or the given directory.
    fn mount_rootfs(&self, c: &Container) -> Result<PathBuf> {
        if c.config.image_id.is_empty() {
            return Ok(c.config.rootfs.clone());
        }
        let dir = self.dir(&c.id);
        let (upper, work, target) = (
            dir.join("upper"),
            dir.join("work"),
            self.rootfs_mount(&c.id),
        );
        let fresh = !upper.exists();
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        if fresh && crate::userns::applies(self.ids(), &c.config) {
            // The upper directory's owner is what the container sees as its "/".
            crate::userns::own(&upper, self.ids())?;
        }
        self.images
            .mount(&c.config.image_id, &upper, &work, &target)?;
        Ok(target)
    }

    /// Unmounts an image-based container's root filesystem if it is mounted.
    fn unmount_rootfs(&self, c: &Container) -> Result<()> {
        let target = self.rootfs_mount(&c.id);
        match nix::mount::umount2(&target, nix::mount::MntFlags::empty()) {
            Ok(()) => Ok(()),
            // Not mounted (EINVAL) or never made (ENOENT): nothing to undo.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys(format!("unmount {}", target.display()), e)),
        }
    }

    /// By id, name or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Container> {
        self.store()
            .find(key)?
            .ok_or_else(|| Error::NotFound(key.to_string()))
    }

    pub async fn inspect(&self, key: &str) -> Result<Container> {
        let c = self.get(key)?;
        self.refresh(c).await
    }

    pub async fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let containers = self.store().all()?;
        for c in containers {
            out.push(self.refresh(c).await?);
        }
        Ok(out)
    }

    /// Starts a created or exited container: its network, its bundle, its shim.
    pub async fn start(&self, key: &str) -> Result<Container> {
        let mut c = self.inspect(key).await?;
        c.state.restart_count = 0;
        let (id, auto_remove) = (c.id.clone(), c.config.auto_remove);
        let started = self.launch(c).await;
        if started.is_err() && auto_remove {
            // As Docker: a `--rm` container that cannot start is removed (its waiters see
            // it go), and the start's error is what the user reads.
            if let Err(e) = self.remove_with(&id, true, true).await {
                tracing::warn!("removing {id} after its failed start: {e}");
            }
        }
        started
    }

    /// Starts it again after an exit, as its restart policy says; false if it is no longer
    /// to be restarted (removed, started or stopped by the user meanwhile).
    pub async fn restart_by_policy(&self, key: &str) -> Result<bool> {
        let mut c = match self.inspect(key).await {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if c.state.status == Status::Running
            || !crate::monitor::should_restart(&c.config.restart, &c.state)
        {
            return Ok(false);
        }
        c.state.restart_count += 1;
        let restarts = c.state.restart_count;
        let c = self.launch(c).await?;
        self.events.send(self.container_event("restart", &c));
        tracing::info!("container {} restarted by policy ({restarts})", c.name);
        Ok(true)
    }

    async fn launch(&self, mut c: Container) -> Result<Container> {
        if c.state.status == Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is already running",
                c.name
            )));
        }
        // The init's cgroup migration comes in ~10 ms; the kernel's first one after a quiet
        // spell waits a grace period, which this takes meanwhile (see prime_migration).
        tokio::task::spawn_blocking(berth_cgroups::prime_migration);
        // Resolved now and recorded with its state: what runs it until it ends.
        let external = self.external_runtime(&c.config.runtime)?;
        let mut shim_spec = self.shim_spec(&c);
        shim_spec.runtime = external.clone();
        shim_spec.log = c.config.log.writer()?;
        let _ = std::fs::remove_file(shim_spec.exit_path());
        // Attachments made while it was not running see everything from its first byte.
        let pending = self.take_pending(&c.id);
        shim_spec.size = pending.size;
        let started = match self.prepare(&c, external.is_some()).await {
            Ok(machine) => {
                c.state.machine = machine;
                let (program, spec) = (self.settings.shim.clone(), shim_spec.clone());
                let clients = pending.clients;
                tokio::task::spawn_blocking(move || {
                    make_parent(spec.socket.as_deref())?;
                    shim::start_attached(&program, &spec, clients)
                })
                .await
                .map_err(|e| Error::Invalid(format!("starting the shim: {e}")))?
            }
            Err(e) => Err(e),
        };
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                self.release_network(&c).await?;
                self.unmount_rootfs(&c)?;
                return Err(e);
            }
        };
        c.state = State {
            status: Status::Running,
            pid: started.pid,
            shim_pid: started.shim_pid,
            exit_code: None,
            started_at: Some(OffsetDateTime::now_utc()),
            finished_at: None,
            restart_count: c.state.restart_count,
            stopped_by_user: false,
            paused: false,
            runtime: external,
            machine: c.state.machine,
        };
        self.store().update(&c)?;
        self.events.send(self.container_event("start", &c));
        Ok(c)
    }

    /// The sandbox (own, shared or none) and the bundle the runtime starts from; whether it
    /// boots systemd (a machine container).
    async fn prepare(&self, c: &Container, external: bool) -> Result<bool> {
        let mode = parse_mode(&c.config.network)?;
        let placement = match &mode {
            Mode::Container(other) => {
                let other = self.get(other)?;
                self.net.placement(&Mode::Container(other.id))?
            }
            m => self.net.placement(m)?,
        };
        let bundle = self.bundle_dir(&c.id);
        std::fs::create_dir_all(&bundle)
            .map_err(|e| Error::io(format!("create {}", bundle.display()), e))?;
        let rootfs = self.mount_rootfs(c)?;
        let command = c.config.args()?.into_iter().next().unwrap_or_default();
        let machine = crate::machine::boots_systemd(&rootfs, &command);
        let spec = match placement {
            Placement::Host => container::spec_for(c, &rootfs, NetNs::Host, None)?,
            Placement::Shared(sandbox) => {
                container::spec_for(c, &rootfs, NetNs::Join(&sandbox.path), None)?
            }
            Placement::Own => {
                let sandbox = self.net.create_sandbox(&c.id).await?;
                if let Mode::Networks(names) = &mode {
                    let mut joins: Vec<(&str, &[String])> = names
                        .iter()
                        .map(|n| (n.as_str(), c.config.aliases.as_slice()))
                        .collect();
                    let extra = &c.config.extra_networks;
                    joins.extend(
                        extra
                            .iter()
                            .map(|j| (j.network.as_str(), j.aliases.as_slice())),
                    );
                    self.connect_all(c, &joins).await?;
                }
                let files = self.net.write_etc(
                    &c.id,
                    &EtcSpec {
                        hostname: c.hostname(),
                        dns: c.config.nameservers()?,
                        dns_search: c.config.dns_search.clone(),
                        dns_options: c.config.dns_options.clone(),
                        ..Default::default()
                    },
                )?;
                if crate::userns::applies(self.ids(), &c.config) {
                    // The container's root may edit them, as it may without a remap.
                    for f in [&files.hosts, &files.hostname, &files.resolv_conf] {
                        crate::userns::own(f, self.ids())?;
                    }
                }
                let etc = EtcMounts {
                    hosts: &files.hosts,
                    hostname: &files.hostname,
                    resolv_conf: &files.resolv_conf,
                };
                container::spec_for(c, &rootfs, NetNs::Join(&sandbox.path), Some(&etc))?
            }
        };
        let mut spec = spec;
        crate::limits::apply(&mut spec, &c.config.security, &c.config.resources, &rootfs)?;
        if crate::userns::applies(self.ids(), &c.config) {
            crate::userns::apply(&mut spec, self.ids())?;
        }
        if let (Some(true), Some(program), false) =
            (c.config.init, &self.settings.init_path, machine)
        {
            container::use_init_program(&mut spec, program)?;
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.extend(self.runtime_mounts(&c.config.mounts, &rootfs)?);
        spec.set_mounts(Some(mounts));
        if machine {
            let cgroup = container::cgroup_path(&c.id);
            crate::machine::adapt(&mut spec, &c.config.mounts, &cgroup, &c.id)?;
        }
        if external {
            container::name_cgroup(&mut spec, &c.id);
        }
        spec.save(bundle.join("config.json"))
            .map_err(|e| Error::Invalid(format!("write the bundle's config.json: {e}")))?;
        Ok(machine)
    }

    /// Joins each network with the aliases the container has there.
    async fn connect_all(&self, c: &Container, networks: &[(&str, &[String])]) -> Result<()> {
        let mut ports = Vec::new();
        for p in &c.config.publish {
            ports.extend(parse_publish(p)?);
        }
        for (i, (n, aliases)) in networks.iter().enumerate() {
            let mut names = vec![c.name.clone(), c.short_id().to_string()];
            names.extend(aliases.iter().cloned());
            let spec = EndpointSpec {
                names,
                // Ports are published through the first network, as Docker does.
                ports: if i == 0 { ports.clone() } else { Vec::new() },
                ..Default::default()
            };
            self.net.connect(&c.id, n, &spec).await?;
        }
        Ok(())
    }

    /// `network connect`: joins one more network, live when the container runs, and again
    /// at each start.
    pub async fn connect_network(
        &self,
        key: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<()> {
        let mut c = self.inspect(key).await?;
        let net = self.net.network(network)?;
        if !matches!(parse_mode(&c.config.network)?, Mode::Networks(_)) {
            return Err(Error::Conflict(format!(
                "container {} runs with --network {}: only containers on networks can join more",
                c.name, c.config.network
            )));
        }
        if self.joined(&c)?.contains(&net.name) {
            return Err(Error::Conflict(format!(
                "container {} is already connected to network {}",
                c.name, net.name
            )));
        }
        if c.state.status == Status::Running {
            let mut names = vec![c.name.clone(), c.short_id().to_string()];
            names.extend(aliases.iter().cloned());
            let spec = EndpointSpec {
                names,
                ..Default::default()
            };
            self.net.connect(&c.id, &net.name, &spec).await?;
        }
        c.config.extra_networks.push(crate::container::Joined {
            network: net.name.clone(),
            aliases: aliases.to_vec(),
        });
        let config = c.config.clone();
        self.store().modify(&c.id, |fresh| fresh.config = config)?;
        self.network_event("connect", &net, &c);
        Ok(())
    }

    /// `network disconnect`: leaves a network, live when the container runs.
    pub async fn disconnect_network(&self, key: &str, network: &str) -> Result<()> {
        let mut c = self.inspect(key).await?;
        let net = self.net.network(network)?;
        if !self.joined(&c)?.contains(&net.name) {
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                c.name, net.name
            )));
        }
        if c.state.status == Status::Running {
            self.net.disconnect(&c.id, &net.name).await?;
        }
        if self
            .net
            .network(&c.config.network)
            .is_ok_and(|n| n.id == net.id)
        {
            // The first remaining network becomes the main one (ports go through it).
            let next = match c.config.extra_networks.is_empty() {
                true => Default::default(),
                false => c.config.extra_networks.remove(0),
            };
            c.config.network = next.network;
            if c.config.network.is_empty() {
                c.config.network = "none".into();
            }
            c.config.aliases = next.aliases;
        } else {
            c.config.extra_networks.retain(|j| j.network != net.name);
        }
        let config = c.config.clone();
        self.store().modify(&c.id, |fresh| fresh.config = config)?;
        self.network_event("disconnect", &net, &c);
        Ok(())
    }

    /// The names of the networks a container is on (or will be, at its next start).
    fn joined(&self, c: &Container) -> Result<Vec<String>> {
        let mut names = Vec::new();
        if let Mode::Networks(main) = parse_mode(&c.config.network)? {
            for n in main {
                names.push(self.net.network(&n)?.name);
            }
        }
        names.extend(c.config.extra_networks.iter().map(|j| j.network.clone()));
        Ok(names)
    }

    fn network_event(&self, action: &str, net: &berth_network::Network, c: &Container) {
        let event = Event::new(Kind::Network, action, &net.id)
            .with("name", net.name.clone())
            .with("container", c.id.clone());
        self.events.send(event);
    }

    /// Takes the container's own sandbox down, if it has one.
    async fn release_network(&self, c: &Container) -> Result<()> {
        match self.net.remove_sandbox(&c.id).await {
            Ok(()) | Err(berth_network::Error::NoSuchSandbox(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Joins the store's record with what the shim left: a running container whose exit is
    /// recorded has exited (and its network is released).
    async fn refresh(&self, mut c: Container) -> Result<Container> {
        if c.state.status != Status::Running {
            return Ok(c);
        }
        let exit = match shim::exit_of(&self.shim_spec(&c))? {
            Some(exit) => Some(exit),
            // No record and no shim: it died with the machine; the container is gone too.
            None if !alive(c.state.shim_pid) => Some(shim::Exit {
                code: 255,
                signal: None,
                finished_at: OffsetDateTime::now_utc(),
            }),
            None => None,
        };
        if let Some(exit) = exit {
            // Several callers may see the same exit at once (a stop, the monitor): one
            // records it, the others read what it recorded.
            let _one = self.transitions.lock().await;
            match self.store().find(&c.id)? {
                Some(now)
                    if now.state.status == Status::Running
                        && now.state.shim_pid == c.state.shim_pid => {}
                Some(now) => return Ok(now),
                None => return Err(Error::NotFound(c.id.clone())),
            }
            c.state.status = Status::Exited;
            c.state.paused = false;
            c.state.exit_code = Some(exit.code);
            c.state.finished_at = Some(exit.finished_at);
            c.state.pid = 0;
            self.release_network(&c).await?;
            self.unmount_rootfs(&c)?;
            self.store().update(&c)?;
            let mut event = self
                .container_event("die", &c)
                .with("exitCode", exit.code.to_string());
            if let Some(signal) = exit.signal {
                event = event.with("signal", signal.to_string());
            }
            self.events.send(event);
        }
        Ok(c)
    }

    /// Waits for `condition`; the container's exit code. Listens to the engine's events
    /// (`events`, subscribed before the caller let anything happen to the container), so
    /// someone must be watching the container (see `monitor::watch`).
    pub async fn wait_for(
        &self,
        key: &str,
        condition: WaitCondition,
        mut events: tokio::sync::broadcast::Receiver<Event>,
    ) -> Result<i32> {
        let c = self.inspect(key).await?;
        if condition == WaitCondition::NotRunning && c.state.status != Status::Running {
            return Ok(c.state.exit_code.unwrap_or(0));
        }
        let mut code = c.state.exit_code.unwrap_or(0);
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed some: look at the container itself.
                    match self.inspect(&c.id).await {
                        Ok(now)
                            if now.state.status != Status::Running
                                && condition != WaitCondition::Removed =>
                        {
                            return Ok(now.state.exit_code.unwrap_or(0))
                        }
                        Ok(_) => continue,
                        Err(Error::NotFound(_)) => return Ok(code),
                        Err(e) => return Err(e),
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(code),
            };
            if event.kind != Kind::Container || event.id != c.id {
                continue;
            }
            match event.action.as_str() {
                "die" => {
                    code = event
                        .attributes
                        .get("exitCode")
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0);
                    if condition != WaitCondition::Removed {
                        return Ok(code);
                    }
                }
                "destroy" => return Ok(code),
                _ => {}
            }
        }
    }

    /// Blocks until the container is not running; its exit code.
    pub async fn wait(&self, key: &str) -> Result<i32> {
        let c = self.inspect(key).await?;
        if c.state.status == Status::Running {
            let pid = c.state.shim_pid;
            tokio::task::spawn_blocking(move || wait_gone(pid, None))
                .await
                .map_err(|e| Error::Invalid(format!("waiting for the container: {e}")))?;
        }
        let c = self.inspect(key).await?;
        Ok(c.state.exit_code.unwrap_or(0))
    }

    /// Sends `signal`; the container is then stopped by the user (no restart by policy).
    pub async fn kill(&self, key: &str, signal: i32) -> Result<()> {
        let mut c = self.inspect(key).await?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        // Stopping it (its stop signal or SIGKILL) keeps restart policies from undoing that.
        let stop_signal = container::parse_signal(c.stop_signal())?;
        if !c.state.stopped_by_user && (signal == stop_signal || signal == libc::SIGKILL) {
            c.state.stopped_by_user = true;
            self.store()
                .modify(&c.id, |fresh| fresh.state.stopped_by_user = true)?;
        }
        self.driver(&c).kill(&c.id, signal)?;
        self.events.send(
            self.container_event("kill", &c)
                .with("signal", signal.to_string()),
        );
        Ok(())
    }

    /// Its stop signal (SIGTERM unless configured), then SIGKILL when `timeout` (or its own
    /// stop timeout, or 10 s) passes; returns once it has exited.
    pub async fn stop(&self, key: &str, timeout: Option<Duration>) -> Result<Container> {
        let c = self.inspect(key).await?;
        if c.state.status == Status::Running {
            let pid = c.state.shim_pid;
            let timeout = timeout.unwrap_or(Duration::from_secs(
                c.config.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT).into(),
            ));
            let signal = container::parse_signal(c.stop_signal())?;
            self.kill(key, signal).await?;
            let gone = tokio::task::spawn_blocking(move || wait_gone(pid, Some(timeout)))
                .await
                .unwrap_or(false);
            if !gone {
                // It may have ended meanwhile: a failed kill of a stopped container is fine.
                let _ = self.kill(key, libc::SIGKILL).await;
                tokio::task::spawn_blocking(move || wait_gone(pid, None))
                    .await
                    .map_err(|e| Error::Invalid(format!("waiting for the container: {e}")))?;
            }
            self.events.send(self.container_event("stop", &c));
        }
        self.inspect(key).await
    }

    /// Removes a container; a running one only with `force` (it is killed first).
    pub async fn remove(&self, key: &str, force: bool) -> Result<()> {
        self.remove_with(key, force, false).await
    }

    /// As `remove`; with `volumes` (`rm -v`, and `--rm`) its anonymous volumes go too.
    pub async fn remove_with(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.inspect(key).await?;
        if c.state.status == Status::Running {
            if !force {
                return Err(Error::Conflict(format!(
                    "container {} is running: stop it first, or remove it with --force",
                    c.name
                )));
            }
            self.stop(key, Some(Duration::ZERO)).await?;
        }
        self.release_network(&c).await?;
        self.unmount_rootfs(&c)?;
        self.take_pending(&c.id);
        // Their shims write into the container's directory until they end: wait for them
        // (bounded: one may still be handing output to a client that does not read).
        for pid in self.forget_execs(&c.id) {
            let bound = Some(Duration::from_secs(15));
            let _ = tokio::task::spawn_blocking(move || wait_gone(pid, bound)).await;
        }
        let socket = self.socket_path("c", &c.id);
        for path in [socket.with_extension("tty"), socket] {
            let _ = std::fs::remove_file(path);
        }
        for dir in [self.dir(&c.id), self.bundle_dir(&c.id)] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io(format!("remove {}", dir.display()), e))?;
            }
        }
        self.store().delete(&c.id)?;
        if volumes {
            self.release_anonymous_volumes(&c.config.mounts)?;
        }
        self.events.send(self.container_event("destroy", &c));
        Ok(())
    }

    /// Freezes (or thaws) every process of a running container.
    pub async fn set_paused(&self, key: &str, paused: bool) -> Result<()> {
        let c = self.inspect(key).await?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        if c.state.paused == paused {
            let state = if paused {
                "already paused"
            } else {
                "not paused"
            };
            return Err(Error::Conflict(format!("container {} is {state}", c.name)));
        }
        let runtime = self.driver(&c);
        match paused {
            true => runtime.pause(&c.id)?,
            false => runtime.resume(&c.id)?,
        }
        let c = self.store().modify(&c.id, |c| c.state.paused = paused)?;
        let action = if paused { "pause" } else { "unpause" };
        self.events.send(self.container_event(action, &c));
        Ok(())
    }

    /// `docker update`: new limits (and restart policy) for a container, written into its
    /// cgroup at once if it runs, and kept for its next starts.
    pub async fn update(
        &self,
        key: &str,
        u: &ResourceUpdate,
        restart: Option<RestartPolicy>,
    ) -> Result<()> {
        let c = self.inspect(key).await?;
        let resources = c.config.resources.updated(u)?;
        if let Some(policy) = &restart {
            if c.config.auto_remove && *policy != RestartPolicy::No {
                return Err(Error::Invalid(format!(
                    "container {} is removed when it exits (--rm), so it cannot restart: \
                     recreate it without --rm to give it a restart policy",
                    c.name
                )));
            }
        }
        if c.state.status == Status::Running {
            let linux = crate::limits::update_resources(&resources, u)?;
            self.driver(&c).update(&c.id, &linux)?;
        }
        let c = self.store().modify(&c.id, |c| {
            c.config.resources = resources;
            if let Some(policy) = restart {
                c.config.restart = policy;
            }
        })?;
        self.events.send(self.container_event("update", &c));
        Ok(())
    }

    /// The host pids of a running container's processes.
    pub async fn processes(&self, key: &str) -> Result<Vec<i32>> {
        let c = self.inspect(key).await?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        self.driver(&c).ps(&c.id)
    }

    /// One sample of a running container's resource use (see stats.rs).
    pub async fn stats(&self, key: &str) -> Result<Stats> {
        let c = self.inspect(key).await?;
        let not_running = || Error::Conflict(format!("container {} is not running", c.name));
        if c.state.status != Status::Running {
            return Err(not_running());
        }
        // A container that exits while it is read loses its runtime record or its /proc
        // files (its init's net/dev goes with its namespaces, before it is even a zombie):
        // say so plainly.
        let Some(target) = self.driver(&c).usage_target(&c.id)? else {
            return Err(not_running());
        };
        let own_network = !matches!(parse_mode(&c.config.network)?, Mode::Host);
        let alive = || berth_runtime::state::is_alive(target.pid, target.pid_start_time);
        stats::sample(target.cgroup.as_ref(), target.pid, own_network).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                not_running()
            }
            _ if !alive() => not_running(),
            e => e,
        })
    }

    /// Gives a container a new name (unique, as at create).
    pub fn rename(&self, key: &str, name: &str) -> Result<()> {
        check_name(name)?;
        let mut c = self.get(key)?;
        let old = std::mem::replace(&mut c.name, name.to_string());
        self.store()
            .modify(&c.id, |fresh| fresh.name = name.to_string())?;
        self.events
            .send(self.container_event("rename", &c).with("oldName", old));
        Ok(())
    }

    /// The log's entries as `logs` would give them, then (with `follow`) each new one until
    /// the container stops; sent on the returned channel, which closes at the end.
    pub async fn stream_logs(
        &self,
        key: &str,
        query: Query,
        follow: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Entry>>> {
        let mut events = self.events.subscribe();
        let c = self.inspect(key).await?;
        let path = self.readable_log(&c)?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        // Following ends at `until`, as Docker's does; an `until` already past means no
        // line can come that it would show.
        let left = query.until.map(|u| u - OffsetDateTime::now_utc());
        let until_passed = left.is_some_and(|l| !l.is_positive());
        let until = left
            .map(|l| tokio::time::Instant::now() + Duration::try_from(l).unwrap_or(Duration::ZERO));
        let mut watch = if follow && c.state.status == Status::Running && !until_passed {
            Some(logs::watch_dir(&path)?)
        } else {
            None
        };
        let (entries, mut follower) = logs::read_and_follow(&path, &query)?;
        tokio::spawn(async move {
            for e in entries {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            let Some(watch) = watch.as_mut() else { return };
            loop {
                let reached_until = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let running = tokio::select! {
                    changed = watch.next() => changed.is_some(),
                    event = events.recv() => !is_end(&event, &c.id),
                    () = reached_until => false,
                };
                let new = follower.read_new();
                let failed = new.is_err();
                for e in new.map_or_else(|e| vec![Err(e)], |v| v.into_iter().map(Ok).collect()) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if !running || failed {
                    return;
                }
            }
        });
        Ok(rx)
    }

    pub fn logs(&self, key: &str, query: &Query) -> Result<Vec<Entry>> {
        let c = self.get(key)?;
        let path = self.readable_log(&c)?;
        if !path.exists() {
            return Ok(Vec::new());
        }
        logs::read(&path, query)
    }

    /// The log's path, or Docker's error for a driver that keeps nothing.
    fn readable_log(&self, c: &Container) -> Result<PathBuf> {
        self.log_path(c)
            .ok_or_else(|| Error::NotImplemented(NOT_READABLE.into()))
    }
}

/// Whether an event says container `id` has stopped (or the channel has closed).
fn is_end(
    event: &std::result::Result<Event, tokio::sync::broadcast::error::RecvError>,
    id: &str,
) -> bool {
    match event {
        Ok(e) => {
            e.kind == Kind::Container
                && e.id == id
                && matches!(e.action.as_str(), "die" | "destroy")
        }
        Err(tokio::sync::broadcast::error::RecvError::Closed) => true,
        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => false,
    }
}

/// Attaching and resizing: what the daemon's attach, `run -it` and resize endpoints use.
impl Engine {
    fn take_pending(&self, id: &str) -> Pending {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(id).unwrap_or_default()
    }

    /// Attaches to a container's stdio. A running container's shim takes the client at
    /// once; one that is not running keeps it for its next start, which hands it to the
    /// shim before the program runs, so nothing of the output is missed.
    pub async fn attach(&self, key: &str, o: AttachOptions) -> Result<Attachment> {
        let c = self.inspect(key).await?;
        let tty = c.config.tty;
        if !o.stream {
            let log = self.shim_spec(&c).log_path();
            return replay_only(log, o, tty);
        }
        if c.state.status == Status::Running {
            let stream =
                connect(&self.socket_path("c", &c.id), &Request::Attach(o), &c.name).await?;
            return Ok(Attachment { stream, tty });
        }
        let (ours, theirs) = socket_pair()?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .entry(c.id.clone())
            .or_default()
            .clients
            .push((theirs, o));
        Ok(Attachment { stream: ours, tty })
    }

    /// Sets a container's terminal size (kept for its start if it is not running yet).
    pub async fn resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let c = self.inspect(key).await?;
        if !c.config.tty {
            return Err(Error::Conflict(format!(
                "container {} has no terminal to resize (it was not created with a tty)",
                c.name
            )));
        }
        let size = Size { height, width };
        if c.state.status != Status::Running {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.entry(c.id.clone()).or_default().size = Some(size);
            return Ok(());
        }
        resize_at(&self.socket_path("c", &c.id), size, &c.name).await
    }
}

/// Creates the directory a socket goes in, for root only: whoever connects to a shim's
/// socket reads the container's output and writes its stdin.
pub(crate) fn make_parent(socket: Option<&Path>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = socket.and_then(|s| s.parent()) {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    Ok(())
}

/// A connected pair: the caller's end for tokio, the shim's end to hand over.
pub(crate) fn socket_pair() -> Result<(tokio::net::UnixStream, OwnedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Error::io("make an attach socket pair", e))?;
    ours.set_nonblocking(true)
        .map_err(|e| Error::io("make an attach socket non-blocking", e))?;
    let ours = tokio::net::UnixStream::from_std(ours)
        .map_err(|e| Error::io("register an attach socket", e))?;
    Ok((ours, OwnedFd::from(theirs)))
}

/// Connects to a shim's socket and sends the request line.
pub(crate) async fn connect(
    socket: &Path,
    request: &Request,
    name: &str,
) -> Result<tokio::net::UnixStream> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|_| Error::Conflict(format!("{name} is not running (its shim is gone)")))?;
    let mut line = serde_json::to_vec(request)
        .map_err(|e| Error::Invalid(format!("encode an attach request: {e}")))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| Error::io(format!("attach to {name}"), e))?;
    Ok(stream)
}

/// Asks a shim to resize its terminal; it closes the connection once done.
pub(crate) async fn resize_at(socket: &Path, size: Size, name: &str) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let mut stream = connect(socket, &Request::Resize { resize: size }, name).await?;
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .map_err(|e| Error::io(format!("resize {name}"), e))?;
    Ok(())
}

/// An attachment that only replays the log (`stream: false`), then ends.
fn replay_only(log: PathBuf, o: AttachOptions, tty: bool) -> Result<Attachment> {
    use tokio::io::AsyncWriteExt;
    let (ours, theirs) = socket_pair()?;
    let entries = if o.logs && log.exists() {
        let query = logs::Query {
            stdout: o.stdout,
            stderr: o.stderr,
            ..Default::default()
        };
        logs::read(&log, &query)?
    } else {
        Vec::new()
    };
    let mut bytes = Vec::new();
    for e in entries {
        match tty {
            true => bytes.extend_from_slice(e.log.as_bytes()),
            false => bytes.extend(crate::attach::frame(e.stream, e.log.as_bytes())),
        }
    }
    let theirs = std::os::unix::net::UnixStream::from(theirs);
    theirs
        .set_nonblocking(true)
        .map_err(|e| Error::io("make an attach socket non-blocking", e))?;
    let mut theirs = tokio::net::UnixStream::from_std(theirs)
        .map_err(|e| Error::io("register an attach socket", e))?;
    tokio::spawn(async move {
        let _ = theirs.write_all(&bytes).await;
    });
    Ok(Attachment { stream: ours, tty })
}

pub(crate) fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Waits (up to `timeout`, or for ever) until process `pid` has exited; true if it has.
fn wait_gone(pid: i32, timeout: Option<Duration>) -> bool {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return true;
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let wait = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, wait) {
            Ok(n) => return n > 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Whether a `-p` spec already publishes the container port `port` ("80/tcp", as images
/// list their exposed ports).
fn publishes(spec: &str, port: &str) -> bool {
    let Ok(exposed) = parse_publish(port) else {
        return false;
    };
    let mappings = parse_publish(spec).unwrap_or_default();
    exposed.iter().all(|e| {
        mappings
            .iter()
            .any(|m| m.container_port == e.container_port && m.proto == e.proto)
    })
}
