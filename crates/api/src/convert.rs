//! Between Docker's shapes and the engine's: a create body into the engine's container
//! config, and a container (with its endpoints) into inspect and list answers.

use std::collections::HashMap;

use berth_engine::container::RestartPolicy;
use berth_engine::limits::ResourceUpdate;
use berth_engine::volumes::{parse_bind, MountKind, MountSpec};
use berth_engine::{Config, Container, Engine, Status};
use bollard_stubs::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryNetworkSettings,
    ContainerSummaryStateEnum, EndpointSettings, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigLogConfig, NetworkSettings, PortBinding, PortMap, PortSummary, PortSummaryTypeEnum,
    RestartPolicyNameEnum,
};
use bollard_stubs::models::{MountPoint, MountType};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};

/// Docker's create body as the engine's config.
pub fn create_config(body: ContainerCreateBody) -> ApiResult<Config> {
    let asked = body_options(&body);
    let image = body
        .image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("no image given: name the image to run"))?;
    let host = body.host_config.unwrap_or_default();
    refuse_unsupported(&asked, &host)?;
    let mut mounts = mounts(&host)?;
    // `-v /path`: an anonymous volume, made at create as the image's VOLUMEs are.
    for target in body.volumes.iter().flatten() {
        if !mounts.iter().any(|m| &m.target == target) {
            mounts.push(MountSpec {
                kind: MountKind::Volume,
                source: String::new(),
                target: target.clone(),
                readonly: false,
                create_source: false,
                options: Vec::new(),
            });
        }
    }
    let network = match host.network_mode.as_deref() {
        None | Some("") | Some("default") => berth_network::mode::DEFAULT_NETWORK.to_string(),
        Some(m) => m.to_string(),
    };
    let mut aliases = Vec::new();
    if let Some(endpoints) = body.networking_config.and_then(|n| n.endpoints_config) {
        for settings in endpoints.into_values() {
            aliases.extend(settings.aliases.unwrap_or_default());
        }
    }
    let restart = match host.restart_policy.clone() {
        Some(p) => {
            let name = p.name.map(|n| n.to_string()).unwrap_or_default();
            let max = p.maximum_retry_count.unwrap_or(0).max(0) as u32;
            RestartPolicy::parse(&name, max)?
        }
        None => RestartPolicy::No,
    };
    if host.auto_remove == Some(true) && restart != RestartPolicy::No {
        return Err(ApiError::bad_request(
            "--rm and a restart policy cannot be used together: choose one",
        ));
    }
    let mut publish = port_bindings(host.port_bindings.clone().unwrap_or_default());
    if host.publish_all_ports == Some(true) {
        for port in body.exposed_ports.unwrap_or_default() {
            if !publish.iter().any(|p| p.ends_with(&format!(":{port}"))) {
                publish.push(port);
            }
        }
    }
    let (no_new_privileges, seccomp) = security_options(host.security_opt.as_deref())?;
    Ok(Config {
        image,
        mounts,
        entrypoint: body.entrypoint.unwrap_or_default(),
        cmd: body.cmd.unwrap_or_default(),
        env: body.env.unwrap_or_default(),
        workdir: body.working_dir.filter(|w| !w.is_empty()),
        hostname: body.hostname.filter(|h| !h.is_empty()),
        labels: body.labels.unwrap_or_default().into_iter().collect(),
        network,
        publish,
        aliases,
        auto_remove: host.auto_remove.unwrap_or(false),
        restart,
        stop_signal: body.stop_signal.filter(|s| !s.is_empty()),
        stop_timeout: body.stop_timeout.map(|t| t.max(0) as u32),
        security: berth_engine::limits::Security {
            user: body.user.filter(|u| !u.is_empty()),
            privileged: host.privileged.unwrap_or(false),
            cap_add: host.cap_add.clone().unwrap_or_default(),
            cap_drop: host.cap_drop.clone().unwrap_or_default(),
            read_only: host.readonly_rootfs.unwrap_or(false),
            no_new_privileges,
            seccomp,
            devices: devices(&host),
        },
        resources: berth_engine::limits::Resources {
            // Docker sends 0 for "not set".
            memory: host.memory.filter(|m| *m > 0),
            memory_swap: host.memory_swap.filter(|m| *m != 0),
            nano_cpus: host.nano_cpus.filter(|n| *n > 0),
            cpu_shares: host.cpu_shares.filter(|s| *s > 0).map(|s| s as u64),
            cpuset_cpus: host.cpuset_cpus.clone().filter(|c| !c.is_empty()),
            pids_limit: host.pids_limit.filter(|p| *p > 0),
            ulimits: ulimits(&host)?,
            shm_size: host.shm_size.filter(|s| *s > 0),
        },
        init: host.init,
        cgroupns: cgroupns(&host),
        userns_host: userns_host(&host)?,
        dns: host.dns.clone().unwrap_or_default(),
        dns_search: host.dns_search.clone().unwrap_or_default(),
        dns_options: host.dns_options.clone().unwrap_or_default(),
        publish_all: host.publish_all_ports == Some(true),
        log: log_config_of(host.log_config.as_ref()),
        tty: body.tty.unwrap_or(false),
        open_stdin: body.open_stdin.unwrap_or(false),
        stdin_once: body.stdin_once.unwrap_or(false),
        // Empty: the engine records the daemon's default.
        runtime: host.runtime.clone().unwrap_or_default(),
        ..Default::default()
    })
}

/// What the create body asks for outside HostConfig that berth does not do.
struct BodyOptions {
    healthcheck: bool,
    domainname: bool,
    network_disabled: bool,
}

fn body_options(body: &ContainerCreateBody) -> BodyOptions {
    BodyOptions {
        healthcheck: body
            .healthcheck
            .as_ref()
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| !t.is_empty() && t[0] != "NONE"),
        domainname: body.domainname.as_ref().is_some_and(|d| !d.is_empty()),
        network_disabled: body.network_disabled == Some(true),
    }
}

/// Options berth does not implement are refused by their flag's name, not ignored: a
/// container that silently runs without its `--sysctl` or `--add-host` is worse than an
/// error. Clients send zero values for what the user did not give, so only set values count.
fn refuse_unsupported(body: &BodyOptions, h: &HostConfig) -> ApiResult<()> {
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let text = |v: &Option<String>| v.as_ref().is_some_and(|v| !v.is_empty());
    let positive = |v: Option<i64>| v.is_some_and(|v| v > 0);
    let mode =
        |v: &Option<String>, fine: &[&str]| v.as_ref().is_some_and(|m| !fine.contains(&m.as_str()));
    let unsupported = [
        ("--add-host", some(&h.extra_hosts)),
        (
            "--sysctl",
            h.sysctls.as_ref().is_some_and(|s| !s.is_empty()),
        ),
        ("--pid", mode(&h.pid_mode, &["", "private"])),
        ("--ipc", mode(&h.ipc_mode, &["", "private", "shareable"])),
        ("--uts", mode(&h.uts_mode, &["", "private"])),
        ("--group-add", some(&h.group_add)),
        ("--link", some(&h.links)),
        ("--volumes-from", some(&h.volumes_from)),
        ("--volume-driver", mode(&h.volume_driver, &["", "local"])),
        ("--cgroup-parent", text(&h.cgroup_parent)),
        ("--oom-score-adj", h.oom_score_adj.is_some_and(|v| v != 0)),
        ("--oom-kill-disable", h.oom_kill_disable == Some(true)),
        ("--memory-reservation", positive(h.memory_reservation)),
        (
            "--memory-swappiness",
            h.memory_swappiness.is_some_and(|v| v >= 0),
        ),
        ("--cpu-period", positive(h.cpu_period)),
        ("--cpu-quota", positive(h.cpu_quota)),
        ("--cpu-rt-period", positive(h.cpu_realtime_period)),
        ("--cpu-rt-runtime", positive(h.cpu_realtime_runtime)),
        ("--cpu-count", positive(h.cpu_count)),
        ("--cpu-percent", positive(h.cpu_percent)),
        ("--cpuset-mems", text(&h.cpuset_mems)),
        ("--blkio-weight", h.blkio_weight.is_some_and(|w| w > 0)),
        (
            "--blkio-weight-device",
            h.blkio_weight_device
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
        (
            "--device-read-bps/--device-write-bps/--device-read-iops/--device-write-iops",
            [
                &h.blkio_device_read_bps,
                &h.blkio_device_write_bps,
                &h.blkio_device_read_iops,
                &h.blkio_device_write_iops,
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty())),
        ),
        ("--device-cgroup-rule", some(&h.device_cgroup_rules)),
        (
            "--gpus",
            h.device_requests.as_ref().is_some_and(|v| !v.is_empty()),
        ),
        (
            "--storage-opt",
            h.storage_opt.as_ref().is_some_and(|s| !s.is_empty()),
        ),
        (
            "--annotation",
            h.annotations.as_ref().is_some_and(|a| !a.is_empty()),
        ),
        ("--health-cmd", body.healthcheck),
        ("--domainname", body.domainname),
        ("--network-disabled", body.network_disabled),
    ];
    match unsupported.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(ApiError::bad_request(format!(
            "berth does not support {flag} yet: run the container without it"
        ))),
        None => Ok(()),
    }
}

/// `docker update`'s body as the engine's changes. The docker CLI sends 0 (or "") for what
/// the user did not give; a limit berth cannot change is refused, not ignored.
pub fn update(
    body: &bollard_stubs::models::ContainerUpdateBody,
) -> ApiResult<(ResourceUpdate, Option<RestartPolicy>)> {
    let unsupported = [
        ("--blkio-weight", body.blkio_weight.is_some_and(|w| w > 0)),
        ("--cpu-period", body.cpu_period.is_some_and(|p| p > 0)),
        ("--cpu-quota", body.cpu_quota.is_some_and(|q| q > 0)),
        (
            "--cpu-rt-period",
            body.cpu_realtime_period.is_some_and(|p| p > 0),
        ),
        (
            "--cpu-rt-runtime",
            body.cpu_realtime_runtime.is_some_and(|r| r > 0),
        ),
        (
            "--cpuset-mems",
            body.cpuset_mems.as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "--memory-reservation",
            body.memory_reservation.is_some_and(|m| m > 0),
        ),
    ];
    if let Some((flag, _)) = unsupported.iter().find(|(_, given)| *given) {
        return Err(ApiError::bad_request(format!(
            "berth's update does not change {flag}: give --memory, --memory-swap, --cpus, \
             --cpu-shares, --cpuset-cpus, --pids-limit or --restart"
        )));
    }
    let changes = ResourceUpdate {
        memory: body.memory.filter(|m| *m > 0),
        memory_swap: body.memory_swap.filter(|m| *m != 0),
        nano_cpus: body.nano_cpus.filter(|n| *n > 0),
        cpu_shares: body.cpu_shares.filter(|s| *s > 0).map(|s| s as u64),
        cpuset_cpus: body.cpuset_cpus.clone().filter(|c| !c.is_empty()),
        pids_limit: body.pids_limit.filter(|p| *p != 0),
    };
    // The CLI always sends a policy; an empty name means it was not given.
    let restart = match &body.restart_policy {
        Some(p) => match p.name.map(|n| n.to_string()).filter(|n| !n.is_empty()) {
            Some(name) => {
                let max = p.maximum_retry_count.unwrap_or(0).max(0) as u32;
                Some(RestartPolicy::parse(&name, max)?)
            }
            None => None,
        },
        None => None,
    };
    Ok((changes, restart))
}

/// `SecurityOpt`: `no-new-privileges[:true|false]` and `seccomp=unconfined|<profile JSON>`
/// (the docker CLI sends a profile file's content). This host has neither AppArmor nor
/// SELinux, so their `apparmor=`/`label=` options are refused rather than ignored.
fn security_options(
    options: Option<&[String]>,
) -> ApiResult<(Option<bool>, berth_engine::limits::Seccomp)> {
    use berth_engine::limits::Seccomp;
    let mut no_new_privileges = None;
    let mut seccomp = Seccomp::Default;
    for opt in options.unwrap_or_default() {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map_or((opt.as_str(), None), |(k, v)| (k, Some(v)));
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => no_new_privileges = Some(false),
            ("seccomp", Some("unconfined")) => seccomp = Seccomp::Unconfined,
            ("seccomp", Some(profile)) if profile.trim_start().starts_with('{') => {
                seccomp = Seccomp::Profile(profile.to_string())
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid --security-opt {opt:?}: berth takes no-new-privileges[=true|false], \
                     seccomp=unconfined or seccomp=PROFILE.json"
                )))
            }
        }
    }
    Ok((no_new_privileges, seccomp))
}

/// `LogConfig` as given; the engine fills in the daemon's default and checks it at create.
fn log_config_of(log: Option<&HostConfigLogConfig>) -> berth_engine::LogConfig {
    let Some(log) = log else {
        return berth_engine::LogConfig::default();
    };
    berth_engine::LogConfig {
        driver: log.typ.clone().unwrap_or_default(),
        options: log.config.clone().unwrap_or_default().into_iter().collect(),
    }
}

/// `Ulimits` (`--ulimit nofile=1024:2048`).
fn ulimits(host: &HostConfig) -> ApiResult<Vec<berth_engine::limits::Ulimit>> {
    let mut out = Vec::new();
    for u in host.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        let (Some(soft), Some(hard)) = (u.soft, u.hard) else {
            return Err(ApiError::bad_request(format!(
                "--ulimit {name}: give soft and hard limits, as nofile=1024:2048"
            )));
        };
        let limit = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        out.push(berth_engine::limits::Ulimit {
            name,
            soft: limit(soft),
            hard: limit(hard),
        });
    }
    Ok(out)
}

/// `Devices` (`--device /dev/x[:/dev/y[:rwm]]`).
fn devices(host: &HostConfig) -> Vec<berth_engine::limits::Device> {
    host.devices
        .iter()
        .flatten()
        .map(|d| {
            let host_path = d.path_on_host.clone().unwrap_or_default();
            berth_engine::limits::Device {
                container: d
                    .path_in_container
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| host_path.clone()),
                host: host_path,
                permissions: d
                    .cgroup_permissions
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "rwm".into()),
            }
        })
        .collect()
}

/// The driver and options a container runs with, as Docker shows them: the driver named,
/// the daemon's options merged in when it is the daemon's driver (not the driver's defaults).
fn log_config(c: &Container) -> HostConfigLogConfig {
    let driver = match c.config.log.driver.as_str() {
        "" => "json-file".to_string(),
        d => d.to_string(),
    };
    HostConfigLogConfig {
        typ: Some(driver),
        config: Some(c.config.log.options.clone().into_iter().collect()),
    }
}

/// The `SecurityOpt` a container was created with, as Docker lists them.
/// `--userns host` takes a container out of the daemon's user namespace (userns-remap);
/// "" is the daemon's choice.
fn userns_host(host: &HostConfig) -> ApiResult<bool> {
    match host.userns_mode.as_deref() {
        None | Some("") => Ok(false),
        Some("host") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid userns mode {other:?}: use \"host\", or leave it out"
        ))),
    }
}

/// `--cgroupns host|private`; unsaid (or "") leaves it to the daemon's default.
fn cgroupns(host: &HostConfig) -> Option<berth_engine::defaults::CgroupnsMode> {
    use berth_engine::defaults::CgroupnsMode;
    match host.cgroupns_mode {
        Some(HostConfigCgroupnsModeEnum::PRIVATE) => Some(CgroupnsMode::Private),
        Some(HostConfigCgroupnsModeEnum::HOST) => Some(CgroupnsMode::Host),
        _ => None,
    }
}

fn security_opt(c: &Container) -> Vec<String> {
    let mut out = Vec::new();
    if c.config.security.no_new_privileges == Some(true) {
        out.push("no-new-privileges".to_string());
    }
    match c.config.security.seccomp {
        berth_engine::limits::Seccomp::Unconfined => out.push("seccomp=unconfined".into()),
        berth_engine::limits::Seccomp::Profile(_) => out.push("seccomp=<profile>".into()),
        berth_engine::limits::Seccomp::Default => {}
    }
    out
}

/// `Binds` (`-v`), `Mounts` (`--mount`) and `Tmpfs` (`--tmpfs`) as the engine's mounts.
fn mounts(host: &HostConfig) -> ApiResult<Vec<MountSpec>> {
    let mut out = Vec::new();
    for b in host.binds.iter().flatten() {
        out.push(parse_bind(b)?);
    }
    for m in host.mounts.iter().flatten() {
        let target = m
            .target
            .clone()
            .filter(|t| t.starts_with('/'))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "a mount needs an absolute target: --mount type=…,target=/path",
                )
            })?;
        let kind = match m.typ {
            Some(MountType::BIND) => MountKind::Bind,
            Some(MountType::VOLUME) | None => MountKind::Volume,
            Some(MountType::TMPFS) => MountKind::Tmpfs,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "mount type {other} is not available: use bind, volume or tmpfs"
                )))
            }
        };
        let source = m.source.clone().unwrap_or_default();
        if kind == MountKind::Bind && !source.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "bind source {source:?} must be an absolute host path"
            )));
        }
        let mut options = Vec::new();
        if let Some(t) = &m.tmpfs_options {
            if let Some(size) = t.size_bytes {
                options.push(format!("size={size}"));
            }
            if let Some(mode) = t.mode {
                options.push(format!("mode={mode:o}"));
            }
        }
        out.push(MountSpec {
            kind,
            source,
            target,
            readonly: m.read_only.unwrap_or(false),
            create_source: false,
            options,
        });
    }
    for (target, opts) in host.tmpfs.iter().flatten() {
        let options = opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        out.push(MountSpec {
            kind: MountKind::Tmpfs,
            source: String::new(),
            target: target.clone(),
            readonly: false,
            create_source: false,
            options,
        });
    }
    Ok(out)
}

/// `{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}` as `-p` values (`:8080:80/tcp`).
fn port_bindings(map: PortMap) -> Vec<String> {
    let mut out = Vec::new();
    for (port, bindings) in map {
        let bindings = bindings.unwrap_or_default();
        if bindings.is_empty() {
            out.push(port.clone());
        }
        for b in bindings {
            let ip = b.host_ip.unwrap_or_default();
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            let host_port = b.host_port.unwrap_or_default();
            out.push(format!("{ip}:{host_port}:{port}"));
        }
    }
    out.sort();
    out
}

/// Docker's time format (RFC 3339 with nanoseconds); the zero time for "never".
pub fn docker_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

fn state_name(c: &Container) -> &'static str {
    match c.state.status {
        Status::Created => "created",
        Status::Running if c.state.paused => "paused",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// The endpoints of a container, by network name, in Docker's shape.
fn endpoints(engine: &Engine, c: &Container) -> HashMap<String, EndpointSettings> {
    let net = engine.network();
    let mut out = HashMap::new();
    for ep in net.endpoints_of(&c.id).unwrap_or_default() {
        let Ok(network) = net.network(&ep.network_id) else {
            continue;
        };
        let v4 = ep.addresses.iter().find(|a| a.addr().is_ipv4());
        let v6 = ep.addresses.iter().find(|a| a.addr().is_ipv6());
        let gw4 = ep.gateways.iter().find(|g| g.is_ipv4());
        let gw6 = ep.gateways.iter().find(|g| g.is_ipv6());
        let settings = EndpointSettings {
            network_id: Some(network.id.clone()),
            endpoint_id: Some(ep.id.clone()),
            mac_address: Some(ep.mac.clone()),
            aliases: Some(c.config.aliases.clone()),
            dns_names: Some(ep.names.clone()),
            ip_address: Some(v4.map(|a| a.addr().to_string()).unwrap_or_default()),
            ip_prefix_len: Some(v4.map_or(0, |a| a.prefix_len() as i64)),
            gateway: Some(gw4.map(|g| g.to_string()).unwrap_or_default()),
            global_ipv6_address: Some(v6.map(|a| a.addr().to_string()).unwrap_or_default()),
            global_ipv6_prefix_len: Some(v6.map_or(0, |a| a.prefix_len() as i64)),
            ipv6_gateway: Some(gw6.map(|g| g.to_string()).unwrap_or_default()),
            ..Default::default()
        };
        out.insert(network.name.clone(), settings);
    }
    out
}

/// Published ports as Docker's port map, from the endpoints (host ports resolved).
fn port_map(engine: &Engine, c: &Container) -> PortMap {
    let mut map: PortMap = HashMap::new();
    for ep in engine.network().endpoints_of(&c.id).unwrap_or_default() {
        for p in ep.ports {
            let key = format!("{}/{}", p.container_port, p.proto);
            let binding = PortBinding {
                host_ip: Some(p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string())),
                host_port: Some(p.host_port.to_string()),
            };
            map.entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
    }
    map
}

fn restart_policy(c: &Container) -> bollard_stubs::models::RestartPolicy {
    let (name, max) = c.config.restart.docker_name();
    let name = match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::NO,
    };
    bollard_stubs::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: Some(max.into()),
    }
}

/// `GET /containers/{id}/json`.
pub fn inspect(engine: &Engine, c: &Container) -> serde_json::Value {
    let args = c.config.args().unwrap_or_default();
    let running = c.state.status == Status::Running;
    let status = match c.state.status {
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running if c.state.paused => ContainerStateStatusEnum::PAUSED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
    };
    let networks = endpoints(engine, c);
    let response = ContainerInspectResponse {
        id: Some(c.id.clone()),
        created: Some(docker_time(Some(c.created))),
        path: args.first().cloned(),
        args: Some(args.iter().skip(1).cloned().collect()),
        state: Some(ContainerState {
            status: Some(status),
            running: Some(running),
            paused: Some(c.state.paused),
            restarting: Some(false),
            oom_killed: Some(false),
            dead: Some(false),
            pid: Some(c.state.pid.into()),
            exit_code: Some(c.state.exit_code.unwrap_or(0).into()),
            error: Some(String::new()),
            started_at: Some(docker_time(c.state.started_at)),
            finished_at: Some(docker_time(c.state.finished_at)),
            health: None,
        }),
        image: Some(c.config.image_id.clone()),
        name: Some(format!("/{}", c.name)),
        restart_count: Some(c.state.restart_count.into()),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        log_path: Some(
            engine
                .log_path(c)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        host_config: Some(HostConfig {
            network_mode: Some(c.config.network.clone()),
            auto_remove: Some(c.config.auto_remove),
            restart_policy: Some(restart_policy(c)),
            port_bindings: Some(requested_ports(c)),
            // docker-py's `run` reads this to decide whether it can fetch the output.
            log_config: Some(log_config(c)),
            privileged: Some(c.config.security.privileged),
            cap_add: Some(c.config.security.cap_add.clone()),
            cap_drop: Some(c.config.security.cap_drop.clone()),
            readonly_rootfs: Some(c.config.security.read_only),
            memory: Some(c.config.resources.memory.unwrap_or(0)),
            memory_swap: Some(c.config.resources.memory_swap.unwrap_or(0)),
            nano_cpus: Some(c.config.resources.nano_cpus.unwrap_or(0)),
            cpu_shares: Some(c.config.resources.cpu_shares.unwrap_or(0) as i64),
            cpuset_cpus: Some(c.config.resources.cpuset_cpus.clone().unwrap_or_default()),
            pids_limit: c.config.resources.pids_limit,
            shm_size: Some(c.config.resources.shm_size.unwrap_or(64 * 1024 * 1024)),
            security_opt: Some(security_opt(c)),
            init: Some(c.config.init == Some(true)),
            cgroupns_mode: Some(match c.config.cgroupns {
                Some(berth_engine::defaults::CgroupnsMode::Private) => {
                    HostConfigCgroupnsModeEnum::PRIVATE
                }
                _ => HostConfigCgroupnsModeEnum::HOST,
            }),
            userns_mode: Some(if c.config.userns_host { "host" } else { "" }.into()),
            dns: Some(c.config.dns.clone()),
            dns_search: Some(c.config.dns_search.clone()),
            dns_options: Some(c.config.dns_options.clone()),
            binds: Some(binds(c)),
            runtime: Some(c.config.runtime.clone()),
            ..Default::default()
        }),
        config: Some(ContainerConfig {
            hostname: Some(c.hostname()),
            user: Some(c.config.security.user.clone().unwrap_or_default()),
            image: Some(c.config.image.clone()),
            cmd: Some(c.config.cmd.clone()),
            entrypoint: Some(c.config.entrypoint.clone()),
            env: Some(c.config.env.clone()),
            working_dir: Some(c.config.workdir.clone().unwrap_or_default()),
            labels: Some(c.config.labels.clone().into_iter().collect()),
            stop_signal: c.config.stop_signal.clone(),
            stop_timeout: c.config.stop_timeout.map(i64::from),
            tty: Some(c.config.tty),
            open_stdin: Some(c.config.open_stdin),
            stdin_once: Some(c.config.stdin_once),
            ..Default::default()
        }),
        network_settings: Some(NetworkSettings {
            sandbox_id: Some(c.id.clone()),
            ports: Some(port_map(engine, c)),
            networks: Some(networks.clone()),
            ..Default::default()
        }),
        mounts: Some(mount_points(engine, c)),
        ..Default::default()
    };
    let mut v = serde_json::to_value(response).unwrap_or_default();
    // The pre-1.44 top-level fields that clients still read (docker-py, templates).
    let first = networks.values().next();
    let field = |f: fn(&EndpointSettings) -> Option<String>| first.and_then(f).unwrap_or_default();
    v["NetworkSettings"]["IPAddress"] = field(|e| e.ip_address.clone()).into();
    v["NetworkSettings"]["Gateway"] = field(|e| e.gateway.clone()).into();
    v["NetworkSettings"]["MacAddress"] = field(|e| e.mac_address.clone()).into();
    v["NetworkSettings"]["IPPrefixLen"] = first.and_then(|e| e.ip_prefix_len).unwrap_or(0).into();
    v
}

/// `-v` binds as given back in HostConfig.Binds.
fn binds(c: &Container) -> Vec<String> {
    c.config
        .mounts
        .iter()
        .filter(|m| m.create_source || (m.kind == MountKind::Volume && !m.source.is_empty()))
        .map(|m| {
            let ro = if m.readonly { ":ro" } else { "" };
            format!("{}:{}{ro}", m.source, m.target)
        })
        .collect()
}

/// The container's mounts as inspect lists them.
fn mount_points(engine: &Engine, c: &Container) -> Vec<MountPoint> {
    c.config
        .mounts
        .iter()
        .map(|m| {
            let (typ, source, name) = match m.kind {
                MountKind::Bind => ("bind", m.source.clone(), None),
                MountKind::Volume => (
                    "volume",
                    engine.volume_dir(&m.source).display().to_string(),
                    Some(m.source.clone()),
                ),
                MountKind::Tmpfs => ("tmpfs", String::new(), None),
            };
            MountPoint {
                typ: Some(typ.to_string()),
                name,
                source: Some(source),
                destination: Some(m.target.clone()),
                driver: (m.kind == MountKind::Volume).then(|| "local".to_string()),
                mode: Some(if m.readonly { "ro" } else { "" }.to_string()),
                rw: Some(!m.readonly),
                propagation: Some("rprivate".into()),
            }
        })
        .collect()
}

/// The ports as asked at create, in Docker's shape (host ports as given, 0 unresolved).
fn requested_ports(c: &Container) -> PortMap {
    let mut map: PortMap = HashMap::new();
    for spec in &c.config.publish {
        for p in berth_network::parse_publish(spec).unwrap_or_default() {
            let key = format!("{}/{}", p.container_port, p.proto);
            let binding = PortBinding {
                host_ip: Some(p.host_ip.map(|ip| ip.to_string()).unwrap_or_default()),
                host_port: Some(if p.host_port == 0 {
                    String::new()
                } else {
                    p.host_port.to_string()
                }),
            };
            map.entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
    }
    map
}

/// `docker ps`'s "Up 5 minutes" / "Exited (0) 3 seconds ago" / "Created".
fn status_text(c: &Container) -> String {
    let now = OffsetDateTime::now_utc();
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            human_duration(now - c.state.started_at.unwrap_or(now))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code.unwrap_or(0),
            human_duration(now - c.state.finished_at.unwrap_or(now))
        ),
    }
}

/// Docker's units: "Less than a second", "5 seconds", "About a minute", "3 hours".
pub fn human_duration(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0 => "Less than a second".into(),
        1..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// One row of `GET /containers/json`.
pub fn summary(engine: &Engine, c: &Container) -> ContainerSummary {
    let state = match c.state.status {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running if c.state.paused => ContainerSummaryStateEnum::PAUSED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
    };
    let mut ports = Vec::new();
    for ep in engine.network().endpoints_of(&c.id).unwrap_or_default() {
        for p in ep.ports {
            ports.push(PortSummary {
                ip: Some(p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string())),
                private_port: p.container_port,
                public_port: Some(p.host_port),
                typ: Some(match p.proto {
                    berth_network::ports::Proto::Udp => PortSummaryTypeEnum::UDP,
                    _ => PortSummaryTypeEnum::TCP,
                }),
            });
        }
    }
    ContainerSummary {
        id: Some(c.id.clone()),
        names: Some(vec![format!("/{}", c.name)]),
        image: Some(c.config.image.clone()),
        image_id: Some(c.config.image_id.clone()),
        command: Some(shell_words(&c.config.args().unwrap_or_default())),
        created: Some(c.created.unix_timestamp()),
        ports: Some(ports),
        labels: Some(c.config.labels.clone().into_iter().collect()),
        state: Some(state),
        status: Some(status_text(c)),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(endpoints(engine, c)),
        }),
        mounts: Some(Vec::new()),
        ..Default::default()
    }
}

/// `docker ps`'s COMMAND column: the arguments joined, quoted where they hold spaces.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') || a.is_empty() {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn state_matches(c: &Container, wanted: &[String]) -> bool {
    wanted.iter().any(|w| w == state_name(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_create_body_becomes_the_engines_config() {
        let body: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "Image": "busybox",
            "Cmd": ["sh", "-c", "echo hi"],
            "Env": ["A=1"],
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "HostConfig": {
                "NetworkMode": "default",
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                "PublishAllPorts": true,
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Runtime": "runc"
            },
            "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["db"]}}}
        }))
        .unwrap();
        let c = create_config(body).unwrap();
        assert_eq!(c.image, "busybox");
        assert_eq!(c.cmd, ["sh", "-c", "echo hi"]);
        assert_eq!(c.network, "bridge");
        assert_eq!(c.publish, ["127.0.0.1:8080:80/tcp", "53/udp"]);
        assert_eq!(c.restart, RestartPolicy::OnFailure(3));
        assert_eq!(c.aliases, ["db"]);
        assert_eq!(c.runtime, "runc");
        let no_image: ContainerCreateBody = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(create_config(no_image).unwrap_err().status, 400);
        let both: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "Image": "x", "HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": "always"}}
        }))
        .unwrap();
        assert!(create_config(both).unwrap_err().message.contains("--rm"));
    }

    #[test]
    fn log_config_is_taken_as_given_for_the_engine_to_resolve() {
        let body: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "Image": "busybox",
            "HostConfig": {"LogConfig": {"Type": "local", "Config": {"max-size": "1m"}}}
        }))
        .unwrap();
        let log = create_config(body).unwrap().log;
        assert_eq!(log.driver, "local");
        assert_eq!(log.options["max-size"], "1m");
        let bare: ContainerCreateBody =
            serde_json::from_value(serde_json::json!({"Image": "busybox"})).unwrap();
        assert_eq!(
            create_config(bare).unwrap().log,
            berth_engine::LogConfig::default()
        );
    }

    #[test]
    fn durations_read_as_dockers() {
        assert_eq!(human_duration(time::Duration::seconds(5)), "5 seconds");
        assert_eq!(
            human_duration(time::Duration::seconds(90)),
            "About a minute"
        );
        assert_eq!(human_duration(time::Duration::minutes(7)), "7 minutes");
        assert_eq!(human_duration(time::Duration::hours(30)), "30 hours");
    }
}
