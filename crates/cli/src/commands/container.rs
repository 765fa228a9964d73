//! Container commands: run, create, start, stop, restart, kill, rm, ps, logs, exec, attach,
//! wait, rename, top, pause, unpause, stats.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};

use super::create::{create_body, restart_policy, set_resources, ContainerOpts, ResourceFlags};
use super::{each, filters_json, Exit};
use crate::client::{next_chunk, query, Body, Client, DaemonError, JsonLines};
use crate::format::{self, ago, print_rows, short_id, Format};
use crate::stdcopy::Demuxer;
use crate::terminal::{self, Ended, RawMode};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// The first of `args` (an image, or exec's container) and the rest. The first may not
/// look like a flag: clap lets it start with '-' so that the command's own flags pass, and
/// an unknown flag of ours would otherwise be taken for an image.
fn image_and_command<'a>(args: &'a [String], verb: &str) -> Result<(&'a String, &'a [String])> {
    match args.split_first() {
        Some((first, _)) if first.starts_with('-') => {
            bail!("unknown flag: {first}: see 'berth {verb} --help'")
        }
        Some(split) => Ok(split),
        None => bail!("{verb} needs more arguments: see 'berth {verb} --help'"),
    }
}

/// `run`: create (pulling the image if missing), attach, wait, start, stream, exit as the
/// container did.
pub async fn run(client: &Client, a: RunArgs) -> Result<()> {
    let (image, cmd) = image_and_command(&a.args, "run")?;
    if !a.detach {
        check_tty(a.opts.tty, a.opts.interactive)?;
    }
    let mut body = create_body(&a.opts, image, cmd, a.detach)?;
    if let Some((h, w)) = a.opts.tty.then(terminal::size).flatten() {
        // The initial size (API 1.42+; older daemons ignore it and get a resize after start).
        body["HostConfig"]["ConsoleSize"] = json!([h, w]);
    }
    let id = create_pulling(client, a.opts.name.as_deref(), image, body).await?;
    if a.detach {
        client.post(&format!("/containers/{id}/start")).await?;
        println!("{id}");
        return Ok(());
    }
    let condition = if a.opts.rm { "removed" } else { "next-exit" };
    attach_and_start(client, &id, a.opts.tty, a.opts.interactive, condition).await
}

/// Docker's attached start: hijack attach, ask to wait (before the start, so the exit cannot
/// be missed), start, stream until the container closes its output, exit with its code.
async fn attach_and_start(
    client: &Client,
    id: &str,
    tty: bool,
    stdin: bool,
    condition: &str,
) -> Result<()> {
    let attach = format!(
        "/containers/{id}/attach?stream=1&stdin={}&stdout=1&stderr=1",
        u8::from(stdin)
    );
    let io = client.hijack(&attach, Body::Empty).await?;
    let wait_path = format!("/containers/{id}/wait?condition={condition}");
    let wait = client.stream(Method::POST, &wait_path, Body::Empty).await?;
    let raw = (tty && stdin && terminal::is_tty(0))
        .then(RawMode::enter)
        .transpose()?;
    if let Err(e) = client.post(&format!("/containers/{id}/start")).await {
        drop(raw);
        return Err(start_failure(e));
    }
    if tty {
        terminal::follow_size(client.clone(), format!("/containers/{id}/resize"));
    } else {
        terminal::proxy_signals(client.clone(), id.to_owned());
    }
    let pumped = terminal::pump(io, tty, stdin).await;
    if let Ok(Ended::Detached) = pumped {
        return Ok(());
    }
    let code = wait_status(wait).await;
    drop(raw);
    pumped?;
    exit_with(code?)
}

/// Reads the answer of `POST /containers/{id}/wait`: the exit code, or the daemon's error.
async fn wait_status(res: hyper::Response<hyper::body::Incoming>) -> Result<i64> {
    let bytes = res.into_body().collect().await?.to_bytes();
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| anyhow!("the daemon's wait answer is not JSON"))?;
    if let Some(msg) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
        return Err(DaemonError {
            status: 500,
            message: msg.to_owned(),
        }
        .into());
    }
    Ok(v["StatusCode"].as_i64().unwrap_or(0))
}

/// A failed start exits as docker's does: 127 when the command is missing, 126 when it
/// cannot be run, 125 otherwise.
fn start_failure(e: anyhow::Error) -> anyhow::Error {
    let Some(d) = e.downcast_ref::<DaemonError>() else {
        return e;
    };
    let code = if d.message.contains("executable file not found")
        || d.message.contains("no such file or directory")
    {
        127
    } else if d.message.contains("permission denied") {
        126
    } else {
        125
    };
    eprintln!("{d}");
    Exit(code).into()
}

/// `-it` needs a terminal on stdin, as docker says.
fn check_tty(tty: bool, interactive: bool) -> Result<()> {
    if tty && interactive && !terminal::is_tty(0) {
        // Docker's exit status for this, 1, not run's own 125.
        eprintln!("the input device is not a TTY: drop -t, or run from a terminal");
        return Err(Exit(1).into());
    }
    Ok(())
}

fn exit_with(code: i64) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Exit(code as i32).into())
    }
}

/// POST /containers/create; on "No such image" pulls it with progress and tries again.
async fn create_pulling(
    client: &Client,
    name: Option<&str>,
    image: &str,
    body: Value,
) -> Result<String> {
    let path = format!(
        "/containers/create{}",
        query(&[("name", name.unwrap_or("").into())])
    );
    let res = client
        .json::<Value>(Method::POST, &path, Body::Json(body.clone()))
        .await;
    let res = match res {
        Err(e) if is_no_such_image(&e) => {
            eprintln!("Unable to find image '{image}' locally");
            super::image::pull_image(client, image, crate::progress::To::Stderr).await?;
            client
                .json::<Value>(Method::POST, &path, Body::Json(body))
                .await?
        }
        other => other?,
    };
    for w in res["Warnings"].as_array().into_iter().flatten() {
        eprintln!("WARNING: {}", format::text(w));
    }
    res["Id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the daemon did not answer the container's id"))
}

fn is_no_such_image(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DaemonError>()
        .is_some_and(|d| d.status == 404 && d.message.contains("No such image"))
}

/// `create`: prints the new container's id.
pub async fn create(client: &Client, a: CreateArgs) -> Result<()> {
    let (image, cmd) = image_and_command(&a.args, "create")?;
    let body = create_body(&a.opts, image, cmd, true)?;
    println!(
        "{}",
        create_pulling(client, a.opts.name.as_deref(), image, body).await?
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `start`: starts each container; with -a attaches to the one given and exits as it does.
pub async fn start(client: &Client, a: StartArgs) -> Result<()> {
    if !a.attach && !a.interactive {
        return each(&a.containers, true, |c| async move {
            client.post(&format!("/containers/{c}/start")).await
        })
        .await;
    }
    let [c] = a.containers.as_slice() else {
        return Err(anyhow!(
            "you cannot start and attach multiple containers at once"
        ));
    };
    let info: Value = client.get(&format!("/containers/{c}/json")).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    attach_and_start(client, c, tty, stdin, "next-exit").await
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<u32>,
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn stop_query(a: &StopArgs) -> String {
    query(&[
        ("t", a.time.map(|t| t.to_string()).unwrap_or_default()),
        ("signal", a.signal.clone().unwrap_or_default()),
    ])
}

pub async fn stop(client: &Client, a: StopArgs) -> Result<()> {
    let q = stop_query(&a);
    each(&a.containers, true, |c| {
        let q = q.clone();
        async move { client.post(&format!("/containers/{c}/stop{q}")).await }
    })
    .await
}

pub async fn restart(client: &Client, a: StopArgs) -> Result<()> {
    let q = stop_query(&a);
    each(&a.containers, true, |c| {
        let q = q.clone();
        async move { client.post(&format!("/containers/{c}/restart{q}")).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub async fn kill(client: &Client, a: KillArgs) -> Result<()> {
    let q = query(&[("signal", a.signal.clone())]);
    each(&a.containers, true, |c| {
        let q = q.clone();
        async move { client.post(&format!("/containers/{c}/kill{q}")).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub async fn rm(client: &Client, a: RmArgs) -> Result<()> {
    let q = format!("?force={}&v={}", a.force, a.volumes);
    each(&a.containers, true, |c| {
        let q = q.clone();
        async move { client.delete(&format!("/containers/{c}{q}")).await }
    })
    .await
}

/// A simple verb on each container (pause, unpause).
pub async fn simple(client: &Client, verb: &str, containers: &[String]) -> Result<()> {
    each(containers, true, |c| async move {
        client.post(&format!("/containers/{c}/{verb}")).await
    })
    .await
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub resources: ResourceFlags,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `update`: new limits for running or stopped containers.
pub async fn update(client: &Client, a: UpdateArgs) -> Result<()> {
    let mut body = json!({});
    set_resources(&mut body, &a.resources)?;
    if let Some(policy) = a.restart.as_deref() {
        let mut p = restart_policy(Some(policy))?;
        // In an update an empty name means "unchanged": "no" is said as such.
        if p["Name"] == "" {
            p["Name"] = json!("no");
        }
        body["RestartPolicy"] = p;
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        return Err(anyhow!(
            "nothing to update: give --memory, --memory-swap, --cpus, --cpu-shares, \
             --cpuset-cpus, --pids-limit or --restart"
        ));
    }
    let body = &body;
    each(&a.containers, true, |c| async move {
        let path = format!("/containers/{c}/update");
        client
            .send(Method::POST, &path, Body::Json(body.clone()))
            .await
            .map(drop)
    })
    .await
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: table, json, or a template like '{{.Names}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long)]
    pub last: Option<i64>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
}

pub async fn ps(client: &Client, a: PsArgs) -> Result<()> {
    let limit = if a.latest { Some(1) } else { a.last };
    let q = query(&[
        ("all", if a.all { "1".into() } else { String::new() }),
        ("limit", limit.map(|l| l.to_string()).unwrap_or_default()),
        ("size", if a.size { "1".into() } else { String::new() }),
        ("filters", filters_json(&a.filter)?),
    ]);
    let list: Vec<Value> = client.get(&format!("/containers/json{q}")).await?;
    let rows: Vec<Value> = list.iter().map(|c| ps_row(c, a.no_trunc)).collect();
    if a.quiet {
        rows.iter()
            .for_each(|r| println!("{}", format::text(&r["ID"])));
        return Ok(());
    }
    let columns = [
        ("CONTAINER ID", "ID"),
        ("IMAGE", "Image"),
        ("COMMAND", "Command"),
        ("CREATED", "RunningFor"),
        ("STATUS", "Status"),
        ("PORTS", "Ports"),
        ("NAMES", "Names"),
    ];
    print_rows(&Format::parse(a.format.as_deref()), &columns, &rows)
}

/// The fields `ps` shows and templates see, as docker names them.
fn ps_row(c: &Value, no_trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let names: Vec<&str> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/'))
                .collect()
        })
        .unwrap_or_default();
    let mut command = c["Command"].as_str().unwrap_or("").to_owned();
    if !no_trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    let created = c["Created"].as_i64().unwrap_or(0);
    json!({
        "ID": if no_trunc { id.to_owned() } else { short_id(id) },
        "Image": c["Image"],
        "Command": format!("\"{command}\""),
        "CreatedAt": created,
        "RunningFor": ago(created),
        "Status": c["Status"],
        "State": c["State"],
        "Ports": ports_text(&c["Ports"]),
        "Names": names.join(","),
        "Labels": labels_text(&c["Labels"]),
        "Size": size_text(c),
        "Networks": c["NetworkSettings"]["Networks"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(",")).unwrap_or_default(),
    })
}

fn ports_text(ports: &Value) -> String {
    let list = ports.as_array().cloned().unwrap_or_default();
    let texts: Vec<String> = list
        .iter()
        .map(|p| {
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            let proto = p["Type"].as_str().unwrap_or("tcp");
            match p["PublicPort"].as_u64() {
                Some(public) => format!(
                    "{}:{public}->{private}/{proto}",
                    p["IP"].as_str().unwrap_or("0.0.0.0")
                ),
                None => format!("{private}/{proto}"),
            }
        })
        .collect();
    texts.join(", ")
}

fn labels_text(labels: &Value) -> String {
    let map = labels.as_object().cloned().unwrap_or_default();
    map.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

fn size_text(c: &Value) -> String {
    match (c["SizeRw"].as_f64(), c["SizeRootFs"].as_f64()) {
        (Some(rw), Some(root)) => format!(
            "{} (virtual {})",
            format::human_size(rw),
            format::human_size(root)
        ),
        _ => String::new(),
    }
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    pub container: String,
}

pub async fn logs(client: &Client, a: LogsArgs) -> Result<()> {
    let c = &a.container;
    let info: Value = client.get(&format!("/containers/{c}/json")).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let time = |t: &Option<String>| t.as_deref().map(format::parse_time_arg).transpose();
    let q = query(&[
        ("stdout", "1".into()),
        ("stderr", "1".into()),
        ("follow", if a.follow { "1".into() } else { String::new() }),
        ("tail", a.tail.clone()),
        ("since", time(&a.since)?.unwrap_or_default()),
        ("until", time(&a.until)?.unwrap_or_default()),
        (
            "timestamps",
            if a.timestamps {
                "1".into()
            } else {
                String::new()
            },
        ),
    ]);
    let res = client
        .stream(
            Method::GET,
            &format!("/containers/{c}/logs{q}"),
            Body::Empty,
        )
        .await?;
    let mut body = res.into_body();
    let mut demux = Demuxer::default();
    while let Some(chunk) = next_chunk(&mut body).await? {
        if tty {
            terminal::write_out(crate::stdcopy::Stream::Stdout, &chunk)?;
            continue;
        }
        for (stream, payload) in demux.push(&chunk).map_err(|e| anyhow!(e))? {
            terminal::write_out(stream, &payload)?;
        }
    }
    if demux.pending() > 0 {
        return Err(anyhow!("the log stream ended in the middle of a frame"));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments
    #[arg(value_name = "CONTAINER COMMAND [ARG...]", num_args = 2.., required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The exec create body for `exec`'s flags.
pub fn exec_body(a: &ExecArgs, cmd: &[String]) -> Result<Value> {
    let attach = !a.detach;
    let mut body = json!({
        "AttachStdin": a.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": a.tty,
        "Cmd": cmd,
        "Env": super::create::env(&a.env, &[])?,
        "Privileged": a.privileged,
    });
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    Ok(body)
}

pub async fn exec(client: &Client, a: ExecArgs) -> Result<()> {
    let (c, cmd) = image_and_command(&a.args, "exec")?;
    if !a.detach {
        check_tty(a.tty, a.interactive)?;
    }
    let body = exec_body(&a, cmd)?;
    let created: Value = client
        .json(
            Method::POST,
            &format!("/containers/{c}/exec"),
            Body::Json(body),
        )
        .await?;
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon did not answer the exec's id"))?;
    let start = json!({"Detach": a.detach, "Tty": a.tty});
    if a.detach {
        client
            .send(
                Method::POST,
                &format!("/exec/{id}/start"),
                Body::Json(start),
            )
            .await?;
        return Ok(());
    }
    let io = client
        .hijack(&format!("/exec/{id}/start"), Body::Json(start))
        .await?;
    let raw = (a.tty && a.interactive && terminal::is_tty(0))
        .then(RawMode::enter)
        .transpose()?;
    if a.tty {
        terminal::follow_size(client.clone(), format!("/exec/{id}/resize"));
    }
    let pumped = terminal::pump(io, a.tty, a.interactive).await;
    drop(raw);
    if pumped? == Ended::Detached {
        return Ok(());
    }
    let info: Value = client.get(&format!("/exec/{id}/json")).await?;
    exit_with(info["ExitCode"].as_i64().unwrap_or(0))
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    pub container: String,
}

pub async fn attach(client: &Client, a: AttachArgs) -> Result<()> {
    let c = &a.container;
    let info: Value = client.get(&format!("/containers/{c}/json")).await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        return Err(anyhow!(
            "You cannot attach to a stopped container, start it first"
        ));
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let path = format!(
        "/containers/{c}/attach?stream=1&stdin={}&stdout=1&stderr=1",
        u8::from(stdin)
    );
    let io = client.hijack(&path, Body::Empty).await?;
    let raw = (tty && stdin && terminal::is_tty(0))
        .then(RawMode::enter)
        .transpose()?;
    if tty {
        terminal::follow_size(client.clone(), format!("/containers/{c}/resize"));
    }
    let pumped = terminal::pump(io, tty, stdin).await;
    drop(raw);
    if pumped? == Ended::Detached {
        return Ok(());
    }
    let res = client
        .stream(Method::POST, &format!("/containers/{c}/wait"), Body::Empty)
        .await?;
    exit_with(wait_status(res).await?)
}

/// `wait`: prints each container's exit code.
pub async fn wait(client: &Client, containers: &[String]) -> Result<()> {
    each(containers, false, |c| async move {
        let res = client
            .stream(Method::POST, &format!("/containers/{c}/wait"), Body::Empty)
            .await?;
        println!("{}", wait_status(res).await?);
        Ok(())
    })
    .await
}

pub async fn rename(client: &Client, old: &str, new: &str) -> Result<()> {
    client
        .post(&format!(
            "/containers/{old}/rename{}",
            query(&[("name", new.into())])
        ))
        .await
}

/// `top`: the container's processes as a table.
pub async fn top(client: &Client, container: &str, ps_args: &[String]) -> Result<()> {
    let q = query(&[("ps_args", ps_args.join(" "))]);
    let v: Value = client
        .get(&format!("/containers/{container}/top{q}"))
        .await?;
    let header = strings(&v["Titles"]);
    let rows = v["Processes"]
        .as_array()
        .map(|r| r.iter().map(strings).collect())
        .unwrap_or_default();
    print!("{}", format::table(header, rows));
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(format::text).collect())
        .unwrap_or_default()
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Format output: table, json, or a template
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

/// `stats`: one sample per container (with --no-stream; without, samples every second).
pub async fn stats(client: &Client, a: StatsArgs) -> Result<()> {
    let names = if a.containers.is_empty() {
        let list: Vec<Value> = client
            .get(&format!("/containers/json?all={}", a.all))
            .await?;
        list.iter()
            .filter_map(|c| c["Id"].as_str().map(str::to_owned))
            .collect()
    } else {
        a.containers.clone()
    };
    let format = Format::parse(a.format.as_deref());
    let columns = [
        ("CONTAINER ID", "ID"),
        ("NAME", "Name"),
        ("CPU %", "CPUPerc"),
        ("MEM USAGE / LIMIT", "MemUsage"),
        ("MEM %", "MemPerc"),
        ("NET I/O", "NetIO"),
        ("BLOCK I/O", "BlockIO"),
        ("PIDS", "PIDs"),
    ];
    loop {
        let rows = stats_sample(client, &names).await?;
        if !a.no_stream && terminal::is_tty(1) {
            print!("\x1b[2J\x1b[H");
        }
        print_rows(&format, &columns, &rows)?;
        if a.no_stream {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One stats row per container, from one sample each.
async fn stats_sample(client: &Client, names: &[String]) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for c in names {
        let path = format!("/containers/{c}/stats?stream=0");
        let res = client.stream(Method::GET, &path, Body::Empty).await?;
        if let Some(s) = JsonLines::new(res).next().await? {
            rows.push(stats_row(c, &s));
        }
    }
    Ok(rows)
}

/// One `stats` row from the API's stats object, computed as docker does.
pub fn stats_row(id: &str, s: &Value) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu_delta = f(&s["cpu_stats"]["cpu_usage"]["total_usage"])
        - f(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta =
        f(&s["cpu_stats"]["system_cpu_usage"]) - f(&s["precpu_stats"]["system_cpu_usage"]);
    let cpus = s["cpu_stats"]["online_cpus"].as_f64().unwrap_or(1.0);
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = memory_used(&s["memory_stats"]);
    let limit = f(&s["memory_stats"]["limit"]);
    let mem_perc = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let (rx, tx) = s["networks"].as_object().map_or((0.0, 0.0), |n| {
        n.values().fold((0.0, 0.0), |(r, t), v| {
            (r + f(&v["rx_bytes"]), t + f(&v["tx_bytes"]))
        })
    });
    let (read, write) = block_io(&s["blkio_stats"]["io_service_bytes_recursive"]);
    json!({
        "ID": short_id(s["id"].as_str().unwrap_or(id)),
        "Name": s["name"].as_str().unwrap_or(id).trim_start_matches('/'),
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", format::human_binary(mem), format::human_binary(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", format::human_size(rx), format::human_size(tx)),
        "BlockIO": format!("{} / {}", format::human_size(read), format::human_size(write)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

/// Usage less the page cache that could be dropped, as docker shows it: cgroup v1 names it
/// total_inactive_file (this cgroup and those below), v2 inactive_file.
fn memory_used(m: &Value) -> f64 {
    let usage = m["usage"].as_f64().unwrap_or(0.0);
    let stats = &m["stats"];
    let cache = stats["total_inactive_file"]
        .as_f64()
        .or_else(|| stats["inactive_file"].as_f64())
        .filter(|c| *c < usage)
        .unwrap_or(0.0);
    usage - cache
}

fn block_io(entries: &Value) -> (f64, f64) {
    let mut read = 0.0;
    let mut write = 0.0;
    for e in entries.as_array().into_iter().flatten() {
        let v = e["value"].as_f64().unwrap_or(0.0);
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += v,
            Some("write") => write += v,
            _ => {}
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_as_docker() {
        let c = json!({"Id": "0123456789abcdef0123", "Names": ["/web"], "Image": "busybox",
            "Command": "sh -c 'while true; do sleep 1; done'", "Created": 0, "Status": "Up 2 minutes",
            "State": "running", "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"}], "Labels": {"a": "b"}});
        let r = ps_row(&c, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp, 53/udp");
        assert_eq!(r["Labels"], "a=b");
        assert_eq!(ps_row(&c, true)["ID"], "0123456789abcdef0123");
    }

    #[test]
    fn exec_flags() {
        let a = ExecArgs {
            detach: false,
            interactive: true,
            tty: false,
            env: vec!["A=1".into()],
            workdir: Some("/tmp".into()),
            user: Some("1000".into()),
            privileged: false,
            args: vec!["c".into(), "sh".into()],
        };
        let b = exec_body(&a, &a.args[1..]).unwrap();
        assert_eq!(b["Cmd"], json!(["sh"]));
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["WorkingDir"], "/tmp");
        assert_eq!(b["User"], "1000");
        assert_eq!(b["Env"], json!(["A=1"]));
    }

    #[test]
    fn stats_numbers() {
        let s = json!({"id": "abcdef0123456789", "name": "/x",
            "cpu_stats": {"cpu_usage": {"total_usage": 200}, "system_cpu_usage": 1000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 500},
            "memory_stats": {"usage": 2097152, "limit": 4194304, "stats": {"inactive_file": 1048576}},
            "pids_stats": {"current": 3}});
        let r = stats_row("x", &s);
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "1MiB / 4MiB");
        assert_eq!(r["MemPerc"], "25.00%");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["Name"], "x");
        let v1 = json!({"usage": 3145728, "stats": {"total_inactive_file": 2097152, "inactive_file": 0}});
        assert_eq!(memory_used(&v1), 1048576.0);
        let odd = json!({"usage": 10, "stats": {"inactive_file": 20}});
        assert_eq!(memory_used(&odd), 10.0);
    }
}
