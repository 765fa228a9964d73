//! `run`/`create` flags and their mapping to the API's create body (Config, HostConfig,
//! NetworkingConfig), as the docker CLI maps them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};

/// The resource limits `run`, `create` and `update` take.
#[derive(Args, Debug, Default, Clone)]
pub struct ResourceFlags {
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// The flags `run` and `create` share.
#[derive(Args, Debug, Default, Clone)]
pub struct ContainerOpts {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "VAR=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Publish a container's port(s) to the host
    #[arg(short, long, value_name = "[IP:][HOST:]CONTAINER[/PROTO]")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Bind mount a volume
    #[arg(short, long, value_name = "[SRC:]DST[:OPTS]")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=…,target=…[,readonly])
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (DST[:size=64m,mode=1777])
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Signal to stop the container (e.g. SIGTERM, SIGRTMIN+3)
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the stop signal before SIGKILL
    #[arg(long)]
    pub stop_timeout: Option<u32>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long)]
    pub dns_option: Vec<String>,
    /// Cgroup namespace to use: host or private [default: the daemon's]
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub network_alias: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set meta data on a container
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long)]
    pub label_file: Vec<PathBuf>,
    #[command(flatten)]
    pub resources: ResourceFlags,
    /// Ulimit options (e.g. nofile=1024:2048)
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm (e.g. 128m)
    #[arg(long)]
    pub shm_size: Option<String>,
    /// Add a host device to the container (/dev/x[:/dev/y[:rwm]])
    #[arg(long)]
    pub device: Vec<String>,
    /// Logging driver for the container: json-file, local or none [default: the daemon's]
    #[arg(long)]
    pub log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3, compress=true)
    #[arg(long)]
    pub log_opt: Vec<String>,
    /// Security options (no-new-privileges, seccomp=unconfined|PROFILE.json)
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// Restart policy (no, always, unless-stopped, on-failure[:max-retries])
    #[arg(long)]
    pub restart: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// The OCI runtime to run the container with (the daemon's default when not given)
    #[arg(long)]
    pub runtime: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// User namespace to use: "host" runs outside the daemon's (userns-remap)
    #[arg(long)]
    pub userns: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Add Linux capabilities
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// The create body for `image` and `cmd`; `detach` is run's -d (create is detached).
pub fn create_body(o: &ContainerOpts, image: &str, cmd: &[String], detach: bool) -> Result<Value> {
    let (exposed, bindings) = port_bindings(&o.publish)?;
    let (binds, anon) = volumes(&o.volume)?;
    let attach_stdin = o.interactive && !detach;
    let mut config = json!({
        "Image": image,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": attach_stdin,
        "AttachStdin": attach_stdin,
        "AttachStdout": !detach,
        "AttachStderr": !detach,
        "Env": env(&o.env, &o.env_file)?,
        "Labels": labels(&o.label, &o.label_file)?,
    });
    set(
        &mut config,
        "StopSignal",
        o.stop_signal.as_ref().map(|s| json!(s)),
    );
    set(&mut config, "StopTimeout", o.stop_timeout.map(|t| json!(t)));
    set(&mut config, "Cmd", (!cmd.is_empty()).then(|| json!(cmd)));
    set(
        &mut config,
        "Entrypoint",
        o.entrypoint.as_ref().map(|e| json!([e])),
    );
    set(
        &mut config,
        "Hostname",
        o.hostname.as_ref().map(|h| json!(h)),
    );
    set(&mut config, "User", o.user.as_ref().map(|u| json!(u)));
    set(
        &mut config,
        "WorkingDir",
        o.workdir.as_ref().map(|w| json!(w)),
    );
    set(
        &mut config,
        "ExposedPorts",
        (!exposed.is_empty()).then_some(Value::Object(exposed)),
    );
    set(
        &mut config,
        "Volumes",
        (!anon.is_empty()).then_some(Value::Object(anon)),
    );
    config["HostConfig"] = host_config(o, binds, bindings)?;
    if let Some(net) = &o.network {
        if !o.network_alias.is_empty() {
            config["NetworkingConfig"] =
                json!({"EndpointsConfig": {net: {"Aliases": o.network_alias}}});
        }
    }
    Ok(config)
}

fn host_config(
    o: &ContainerOpts,
    binds: Vec<String>,
    bindings: Map<String, Value>,
) -> Result<Value> {
    let mut hc = json!({
        "Binds": binds,
        "PortBindings": bindings,
        "PublishAllPorts": o.publish_all,
        "NetworkMode": o.network.clone().unwrap_or_else(|| "default".into()),
        "AutoRemove": o.rm,
        "Privileged": o.privileged,
        "ReadonlyRootfs": o.read_only,
        "CapAdd": o.cap_add,
        "CapDrop": o.cap_drop,
        "RestartPolicy": restart_policy(o.restart.as_deref())?,
    });
    set(&mut hc, "Init", o.init.then_some(json!(true)));
    set(&mut hc, "Runtime", o.runtime.as_ref().map(|r| json!(r)));
    set(&mut hc, "UsernsMode", o.userns.as_ref().map(|u| json!(u)));
    set(&mut hc, "CgroupnsMode", cgroupns(o.cgroupns.as_deref())?);
    set(&mut hc, "Dns", (!o.dns.is_empty()).then(|| json!(o.dns)));
    set(
        &mut hc,
        "DnsSearch",
        (!o.dns_search.is_empty()).then(|| json!(o.dns_search)),
    );
    set(
        &mut hc,
        "DnsOptions",
        (!o.dns_option.is_empty()).then(|| json!(o.dns_option)),
    );
    if !o.tmpfs.is_empty() {
        hc["Tmpfs"] = Value::Object(tmpfs(&o.tmpfs)?);
    }
    if !o.mount.is_empty() {
        hc["Mounts"] = json!(o
            .mount
            .iter()
            .map(|m| mount(m))
            .collect::<Result<Vec<_>>>()?);
    }
    set_resources(&mut hc, &o.resources)?;
    set(
        &mut hc,
        "ShmSize",
        o.shm_size
            .as_deref()
            .map(ram_bytes)
            .transpose()?
            .map(|m| json!(m)),
    );
    if o.log_driver.is_some() || !o.log_opt.is_empty() {
        let mut opts = Map::new();
        for opt in &o.log_opt {
            let (k, v) = opt.split_once('=').ok_or_else(|| {
                anyhow!("invalid --log-opt {opt:?}: give KEY=VALUE, as max-size=10m")
            })?;
            opts.insert(k.to_string(), json!(v));
        }
        // No driver: the daemon's default, which the options then go with (as docker's CLI).
        let driver = o.log_driver.clone().unwrap_or_default();
        hc["LogConfig"] = json!({"Type": driver, "Config": opts});
    }
    hc["Ulimits"] = json!(o
        .ulimit
        .iter()
        .map(|u| ulimit(u))
        .collect::<Result<Vec<_>>>()?);
    hc["Devices"] = json!(o.device.iter().map(|d| device(d)).collect::<Vec<_>>());
    hc["SecurityOpt"] = json!(o
        .security_opt
        .iter()
        .map(|s| security_opt(s))
        .collect::<Result<Vec<_>>>()?);
    if o.rm && o.restart.as_deref().is_some_and(|r| r != "no") {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    Ok(hc)
}

/// `nofile=1024[:2048]` as Docker's `{Name, Soft, Hard}` (hard defaults to soft).
fn ulimit(spec: &str) -> Result<Value> {
    let bad = || anyhow!("invalid ulimit {spec:?}: give NAME=SOFT[:HARD], as nofile=1024:2048");
    let (name, limits) = spec.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `/dev/x[:/dev/y][:perms]` as Docker's device mapping.
fn device(spec: &str) -> Value {
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, inside, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p, ..] => (*h, *c, *p),
        [] => (spec, spec, "rwm"),
    };
    json!({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms})
}

/// `seccomp=FILE` is sent as the file's content, as the docker CLI does.
fn security_opt(opt: &str) -> Result<String> {
    match opt.split_once(['=', ':']) {
        Some(("seccomp", file)) if file != "unconfined" => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the seccomp profile {file}"))?;
            Ok(format!("seccomp={text}"))
        }
        _ => Ok(opt.to_string()),
    }
}

/// The given resource flags as HostConfig's (or an update body's) fields.
pub fn set_resources(hc: &mut Value, r: &ResourceFlags) -> Result<()> {
    let bytes = |s: &Option<String>| s.as_deref().map(ram_bytes).transpose();
    set(hc, "Memory", bytes(&r.memory)?.map(|m| json!(m)));
    let swap = match r.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        _ => bytes(&r.memory_swap)?,
    };
    set(hc, "MemorySwap", swap.map(|m| json!(m)));
    let cpus = r.cpus.as_deref().map(nano_cpus).transpose()?;
    set(hc, "NanoCpus", cpus.map(|n| json!(n)));
    set(hc, "CpuShares", r.cpu_shares.map(|c| json!(c)));
    set(hc, "CpusetCpus", r.cpuset_cpus.as_ref().map(|c| json!(c)));
    set(hc, "PidsLimit", r.pids_limit.map(|p| json!(p)));
    Ok(())
}

fn set(obj: &mut Value, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        obj[key] = v;
    }
}

/// `-e` and `--env-file` entries; `VAR` alone takes the local value, and is left out when unset.
pub fn env(flags: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        out.extend(file_lines(f, "env")?.iter().filter_map(|l| env_entry(l)));
    }
    out.extend(flags.iter().filter_map(|e| env_entry(e)));
    Ok(out)
}

/// The lines of an `--env-file` or `--label-file`, without blanks and `#` comments.
fn file_lines(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_owned());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

fn labels(flags: &[String], files: &[PathBuf]) -> Result<Map<String, Value>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(file_lines(f, "label")?);
    }
    all.extend(flags.iter().cloned());
    let mut m = Map::new();
    for l in &all {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("bad label {l:?}: use --label key=value");
        }
        m.insert(k.to_owned(), json!(v));
    }
    Ok(m)
}

/// `--tmpfs DST[:OPTS]` as HostConfig.Tmpfs (destination to mount options).
fn tmpfs(specs: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for spec in specs {
        let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
        if !dst.starts_with('/') {
            bail!("invalid --tmpfs {spec:?}: give an absolute path, as /run or /tmp:size=64m");
        }
        out.insert(dst.to_owned(), json!(opts));
    }
    Ok(out)
}

/// `--mount type=…,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]` as one of
/// HostConfig.Mounts, with Docker's key names and aliases.
fn mount(spec: &str) -> Result<Value> {
    let bad = |why: String| {
        anyhow!("invalid --mount {spec:?}: {why}; use type=bind|volume|tmpfs,source=…,target=…")
    };
    let mut m = json!({"Type": "volume"});
    let mut tmpfs = Map::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let value_of = || value.ok_or_else(|| bad(format!("{key} needs a value")));
        match key {
            "type" => m["Type"] = json!(value_of()?),
            "source" | "src" => m["Source"] = json!(value_of()?),
            "target" | "destination" | "dst" => m["Target"] = json!(value_of()?),
            "readonly" | "ro" => {
                let on = match value.unwrap_or("true") {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    v => return Err(bad(format!("{key}={v} is not true or false"))),
                };
                m["ReadOnly"] = json!(on);
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(ram_bytes(value_of()?)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(value_of()?, 8)
                    .map_err(|_| bad("tmpfs-mode is an octal mode, as 1777".into()))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            // Docker accepts it and ignores it on Linux.
            "consistency" => {}
            other => return Err(bad(format!("berth does not support the key {other:?}"))),
        }
    }
    if !m["Target"].as_str().is_some_and(|t| t.starts_with('/')) {
        return Err(bad("target must be an absolute path".into()));
    }
    if !tmpfs.is_empty() {
        m["TmpfsOptions"] = Value::Object(tmpfs);
    }
    Ok(m)
}

/// `--cgroupns host|private` as HostConfig.CgroupnsMode.
fn cgroupns(mode: Option<&str>) -> Result<Option<Value>> {
    match mode {
        None => Ok(None),
        Some(m @ ("host" | "private")) => Ok(Some(json!(m))),
        Some(m) => bail!("invalid --cgroupns {m:?}: use host or private"),
    }
}

/// `-p` specs as Config.ExposedPorts and HostConfig.PortBindings.
pub fn port_bindings(specs: &[String]) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let mut exposed = Map::new();
    let mut bindings = Map::new();
    for spec in specs {
        for (port, binding) in parse_publish(spec)? {
            exposed.insert(port.clone(), json!({}));
            let list = bindings.entry(port).or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                a.push(binding);
            }
        }
    }
    Ok((exposed, bindings))
}

/// One `-p` spec: `[IP:][HOST:]CONTAINER[/PROTO]`, ports or equal-sized ranges.
fn parse_publish(spec: &str) -> Result<Vec<(String, Value)>> {
    let bad = || anyhow!("invalid port spec {spec:?}: use [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) if ["tcp", "udp", "sctp"].contains(&p) => (r, p),
        Some(_) => return Err(bad()),
        None => (spec, "tcp"),
    };
    let (ip, rest) = split_ip(rest);
    let (host, container) = match rest.rsplit_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    if host.contains(':') {
        return Err(bad());
    }
    let cports = port_range(container).ok_or_else(bad)?;
    let hports = if host.is_empty() {
        None
    } else {
        Some(port_range(host).ok_or_else(bad)?)
    };
    if let Some(h) = &hports {
        if h.len() != cports.len() && h.len() != 1 {
            bail!("invalid port spec {spec:?}: host and container ranges differ in size");
        }
    }
    Ok(cports
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let hp = match &hports {
                Some(h) if h.len() == 1 => h[0].to_string(),
                Some(h) => h[i].to_string(),
                None => String::new(),
            };
            (
                format!("{c}/{proto}"),
                json!({"HostIp": ip, "HostPort": hp}),
            )
        })
        .collect())
}

/// Splits a leading `IP:` (IPv6 in brackets) from a port spec.
fn split_ip(s: &str) -> (String, &str) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((ip, tail)) = rest.split_once("]:") {
            return (ip.to_owned(), tail);
        }
    }
    if s.matches(':').count() == 2 {
        let (ip, tail) = s.split_once(':').unwrap_or(("", s));
        return (ip.to_owned(), tail);
    }
    (String::new(), s)
}

fn port_range(s: &str) -> Option<Vec<u16>> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0 && a <= b).then(|| (a..=b).collect())
}

/// `-v` specs: binds and named volumes (`SRC:DST[:OPTS]`) as HostConfig.Binds, anonymous
/// volumes (`DST`) as Config.Volumes.
pub fn volumes(specs: &[String]) -> Result<(Vec<String>, Map<String, Value>)> {
    let mut binds = Vec::new();
    let mut anon = Map::new();
    for spec in specs {
        let parts: Vec<&str> = spec.split(':').collect();
        let dst = match parts.as_slice() {
            [dst] => {
                anon.insert((*dst).to_owned(), json!({}));
                dst
            }
            [src, dst] | [src, dst, _] if !src.is_empty() => {
                binds.push(spec.clone());
                dst
            }
            _ => bail!("invalid volume spec {spec:?}: use [SOURCE:]DESTINATION[:ro]"),
        };
        if !dst.starts_with('/') {
            bail!("invalid volume spec {spec:?}: the destination must be an absolute path");
        }
    }
    Ok((binds, anon))
}

/// `64m`, `1g`, `512k`, `1024` (bytes), `1.5g`: binary units as docker reads them.
pub fn ram_bytes(s: &str) -> Result<i64> {
    berth_engine::size::parse(s, true)
        .and_then(|b| i64::try_from(b).ok())
        .ok_or_else(|| anyhow!("invalid size {s:?}: use a number with an optional unit, like 64m"))
}

/// `--cpus 1.5` as NanoCpus.
pub fn nano_cpus(s: &str) -> Result<i64> {
    let n: f64 = s
        .parse()
        .map_err(|_| anyhow!("invalid --cpus {s:?}: use a number like 1.5"))?;
    if !(0.0..=1e6).contains(&n) {
        bail!("invalid --cpus {s:?}: it must be positive");
    }
    Ok((n * 1e9).round() as i64)
}

/// `--restart` as HostConfig.RestartPolicy.
pub fn restart_policy(s: Option<&str>) -> Result<Value> {
    let s = s.unwrap_or("no");
    let (name, count) = s.split_once(':').unwrap_or((s, "0"));
    let count: i64 = count
        .parse()
        .map_err(|_| anyhow!("invalid restart policy {s:?}: the retry count must be a number"))?;
    match name {
        "no" | "always" | "unless-stopped" if count == 0 || !s.contains(':') => {}
        "on-failure" => {}
        _ => {
            bail!("invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:N]")
        }
    }
    let name = if name == "no" { "" } else { name };
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ContainerOpts {
        ContainerOpts::default()
    }

    #[test]
    fn run_flags_map_to_docker_body() {
        let o = ContainerOpts {
            publish: vec!["8080:80".into()],
            volume: vec!["/a:/b:ro".into()],
            resources: ResourceFlags {
                memory: Some("64m".into()),
                cpus: Some("1.5".into()),
                ..Default::default()
            },
            env: vec!["A=1".into()],
            ..opts()
        };
        let b = create_body(&o, "busybox", &["echo".into(), "hi".into()], false).unwrap();
        let hc = &b["HostConfig"];
        assert_eq!(
            hc["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(hc["Binds"], json!(["/a:/b:ro"]));
        assert_eq!(hc["Memory"], json!(64 * 1024 * 1024));
        assert_eq!(hc["NanoCpus"], json!(1_500_000_000i64));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(hc["NetworkMode"], "default");
    }

    #[test]
    fn interactive_and_detached() {
        let o = ContainerOpts {
            interactive: true,
            tty: true,
            rm: true,
            ..opts()
        };
        let b = create_body(&o, "x", &[], false).unwrap();
        assert_eq!(
            (
                b["OpenStdin"].clone(),
                b["StdinOnce"].clone(),
                b["Tty"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
        assert_eq!(b["HostConfig"]["AutoRemove"], true);
        assert!(b.get("Cmd").is_none());
        let d = create_body(&o, "x", &[], true).unwrap();
        assert_eq!(d["AttachStdin"], false);
        assert_eq!(d["StdinOnce"], false);
    }

    #[test]
    fn other_flags() {
        let o = ContainerOpts {
            network: Some("net1".into()),
            network_alias: vec!["web".into()],
            entrypoint: Some("/bin/sh".into()),
            label: vec!["a=b".into(), "c".into()],
            restart: Some("on-failure:3".into()),
            resources: ResourceFlags {
                pids_limit: Some(-1),
                ..Default::default()
            },
            cap_add: vec!["NET_ADMIN".into()],
            init: true,
            runtime: Some("runc".into()),
            ..opts()
        };
        let b = create_body(&o, "x", &[], false).unwrap();
        assert_eq!(b["HostConfig"]["Runtime"], "runc");
        assert!(create_body(&opts(), "x", &[], false).unwrap()["HostConfig"]
            .get("Runtime")
            .is_none());
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["net1"]["Aliases"],
            json!(["web"])
        );
        assert_eq!(b["HostConfig"]["NetworkMode"], "net1");
        assert_eq!(b["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(b["Labels"], json!({"a": "b", "c": ""}));
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(b["HostConfig"]["PidsLimit"], -1);
        assert_eq!(b["HostConfig"]["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(b["HostConfig"]["Init"], true);
        let conflict = ContainerOpts {
            rm: true,
            restart: Some("always".into()),
            ..opts()
        };
        assert!(create_body(&conflict, "x", &[], false).is_err());
    }

    #[test]
    fn ports() {
        let (e, b) = port_bindings(&[
            "127.0.0.1:8080:80/udp".into(),
            "90".into(),
            "[::1]:1000-1001:2000-2001".into(),
            "127.0.0.1::53".into(),
        ])
        .unwrap();
        assert_eq!(
            b["80/udp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
        );
        assert_eq!(b["90/tcp"], json!([{"HostIp": "", "HostPort": ""}]));
        assert_eq!(
            b["2001/tcp"],
            json!([{"HostIp": "::1", "HostPort": "1001"}])
        );
        assert_eq!(
            b["53/tcp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": ""}])
        );
        assert_eq!(e.len(), 5);
        for bad in ["x", "80/ftp", "1-3:1-2", "0", "a:b:c:d"] {
            assert!(port_bindings(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_tmpfs_stop_and_dns_flags() {
        let mut o = opts();
        o.mount = vec![
            "type=bind,src=/a,dst=/b,readonly".into(),
            "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777".into(),
            "source=data,target=/data,ro=false".into(),
        ];
        o.tmpfs = vec!["/run".into(), "/tmp:size=1m,mode=1777".into()];
        o.stop_signal = Some("SIGRTMIN+3".into());
        o.stop_timeout = Some(30);
        o.dns = vec!["10.0.0.1".into()];
        o.cgroupns = Some("private".into());
        let b = create_body(&o, "x", &[], true).unwrap();
        let hc = &b["HostConfig"];
        assert_eq!(
            hc["Mounts"],
            json!([
                {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true},
                {"Type": "tmpfs", "Target": "/t",
                 "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 0o1777}},
                {"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": false}
            ])
        );
        assert_eq!(
            hc["Tmpfs"],
            json!({"/run": "", "/tmp": "size=1m,mode=1777"})
        );
        assert_eq!(b["StopSignal"], "SIGRTMIN+3");
        assert_eq!(b["StopTimeout"], 30);
        assert_eq!(hc["Dns"], json!(["10.0.0.1"]));
        assert_eq!(hc["CgroupnsMode"], "private");
        for (bad, says) in [
            ("type=bind,src=/a", "target must be an absolute path"),
            (
                "target=/x,bind-propagation=shared",
                "does not support the key",
            ),
            ("target=/x,ro=maybe", "not true or false"),
            ("target=/x,tmpfs-mode=rwx", "octal"),
        ] {
            let err = mount(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(tmpfs(&["run".into()]).is_err());
        assert!(cgroupns(Some("shared")).is_err());
    }

    #[test]
    fn labels_from_files_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels");
        std::fs::write(&file, "# a comment\na=1\n\nb=2\n").unwrap();
        let l = labels(&["b=3".into()], &[file]).unwrap();
        assert_eq!(Value::Object(l), json!({"a": "1", "b": "3"}));
        assert!(labels(&[], &[dir.path().join("missing")]).is_err());
    }

    #[test]
    fn volume_specs() {
        let (b, a) = volumes(&["/a:/b:ro".into(), "data:/data".into(), "/anon".into()]).unwrap();
        assert_eq!(b, vec!["/a:/b:ro", "data:/data"]);
        assert!(a.contains_key("/anon"));
        assert!(volumes(&["relative".into()]).is_err());
        assert!(volumes(&[":/x".into()]).is_err());
    }

    #[test]
    fn units() {
        assert_eq!(ram_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(ram_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(ram_bytes("100").unwrap(), 100);
        assert_eq!(ram_bytes("1.5g").unwrap(), 3 << 29);
        assert!(ram_bytes("lots").is_err());
        assert!(ram_bytes("-5m").is_err());
        assert_eq!(nano_cpus("0.5").unwrap(), 500_000_000);
        assert!(nano_cpus("-1").is_err());
        assert_eq!(restart_policy(None).unwrap()["Name"], "");
        assert!(restart_policy(Some("sometimes")).is_err());
        assert!(restart_policy(Some("on-failure:x")).is_err());
    }

    #[test]
    fn env_sources() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# comment\nX=1\n\nPATH\n").unwrap();
        let e = env(&["B=2".into(), "BERTH_SURELY_UNSET_VAR".into()], &[file]).unwrap();
        assert_eq!(e[0], "X=1");
        assert!(e[1].starts_with("PATH="));
        assert_eq!(e[2], "B=2");
        assert_eq!(e.len(), 3);
        assert!(env(&[], &["/nonexistent/env".into()]).is_err());
    }
}
