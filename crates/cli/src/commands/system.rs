//! `inspect`, `version`, `info`, `system df/prune`, `events`.

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::{confirm, filters_json, prune, Exit};
use crate::client::{enc_path, query, Body, Client, DaemonError, JsonLines, API_VERSION};
use crate::format::{self, human_size, render};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only inspect objects of this type (container, image, network, volume)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    pub size: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn inspect_path(kind: &str, name: &str, size: bool) -> Result<String> {
    let name = enc_path(name);
    Ok(match kind {
        "container" => format!(
            "/containers/{name}/json{}",
            if size { "?size=1" } else { "" }
        ),
        "image" => format!("/images/{name}/json"),
        "network" => format!("/networks/{name}"),
        "volume" => format!("/volumes/{name}"),
        other => {
            return Err(anyhow!(
                "unknown type {other:?}: use container, image, network or volume"
            ))
        }
    })
}

/// Looks a name up as the given kind, or as each kind in docker's order.
async fn inspect_one(client: &Client, kind: Option<&str>, name: &str, size: bool) -> Result<Value> {
    let kinds = match kind {
        Some(k) => vec![k],
        None => vec!["container", "image", "network", "volume"],
    };
    for k in &kinds {
        match client.get::<Value>(&inspect_path(k, name, size)?).await {
            Err(e) if is_404(&e) => continue,
            other => return other,
        }
    }
    Err(anyhow!("Error: No such object: {name}"))
}

fn is_404(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DaemonError>()
        .is_some_and(|d| d.status == 404)
}

pub async fn inspect(client: &Client, a: InspectArgs) -> Result<()> {
    inspect_many(
        client,
        a.kind.as_deref(),
        &a.names,
        a.format.as_deref(),
        a.size,
    )
    .await
}

/// `network inspect`, `volume inspect`.
pub async fn inspect_kind(
    client: &Client,
    kind: &str,
    names: &[String],
    format: Option<&str>,
) -> Result<()> {
    inspect_many(client, Some(kind), names, format, false).await
}

async fn inspect_many(
    client: &Client,
    kind: Option<&str>,
    names: &[String],
    format: Option<&str>,
    size: bool,
) -> Result<()> {
    let mut found = Vec::new();
    let mut failed = false;
    for n in names {
        match inspect_one(client, kind, n, size).await {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    match format {
        Some(t) if t != "json" => {
            for v in &found {
                println!("{}", render(t, v)?);
            }
        }
        _ => println!("{}", pretty(&Value::Array(found))?),
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// JSON indented by four spaces, as docker prints inspect output.
pub fn pretty(v: &Value) -> Result<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// `version`: the client's version, and the server's when it answers.
pub async fn version(client: &Client, format: Option<&str>) -> Result<()> {
    let client_info = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
    });
    let server = client.get::<Value>("/version").await;
    if let Some(t) = format {
        let shown = server.as_ref().cloned().unwrap_or(Value::Null);
        println!(
            "{}",
            render(t, &json!({"Client": client_info, "Server": shown}))?
        );
        return server.map(|_| ());
    }
    println!("Client:");
    println!(
        " Version:             {}",
        client_info["Version"].as_str().unwrap_or("")
    );
    println!(" API version:         {API_VERSION}");
    println!(
        " OS/Arch:             {}/{}",
        std::env::consts::OS,
        go_arch()
    );
    let s = server?;
    println!("\nServer:");
    for (label, key) in [
        ("Version", "Version"),
        ("API version", "ApiVersion"),
        ("Minimum API version", "MinAPIVersion"),
        ("Kernel version", "KernelVersion"),
    ] {
        println!(" {:<20} {}", format!("{label}:"), format::text(&s[key]));
    }
    println!(
        " {:<20} {}/{}",
        "OS/Arch:",
        format::text(&s["Os"]),
        format::text(&s["Arch"])
    );
    Ok(())
}

/// The architecture as Go (and so the API) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `info`: a summary of the daemon's `/info`.
pub async fn info(client: &Client, format: Option<&str>) -> Result<()> {
    let i: Value = client.get("/info").await?;
    if let Some(t) = format {
        println!("{}", render(t, &i)?);
        return Ok(());
    }
    let t = |k: &str| format::text(&i[k]);
    println!("Server:");
    println!(" Containers: {}", t("Containers"));
    println!(
        "  Running: {}\n  Paused: {}\n  Stopped: {}",
        t("ContainersRunning"),
        t("ContainersPaused"),
        t("ContainersStopped")
    );
    println!(" Images: {}", t("Images"));
    for (label, key) in [
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
    ] {
        println!(" {label}: {}", t(key));
    }
    // As docker prints them: the names, then the default.
    let mut runtimes: Vec<&String> = i["Runtimes"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    runtimes.sort();
    let names: Vec<&str> = runtimes.iter().map(|n| n.as_str()).collect();
    println!(" Runtimes: {}", names.join(" "));
    println!(" Default Runtime: {}", t("DefaultRuntime"));
    for (label, key) in [
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
    ] {
        println!(" {label}: {}", t(key));
    }
    println!(
        " Total Memory: {}",
        format::human_binary(i["MemTotal"].as_f64().unwrap_or(0.0))
    );
    for (label, key) in [
        ("Name", "Name"),
        ("ID", "ID"),
        ("Docker Root Dir", "DockerRootDir"),
        ("Debug Mode", "Debug"),
    ] {
        println!(" {label}: {}", t(key));
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show disk usage
    Df,
    /// Remove unused data
    Prune {
        /// Remove all unused images not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Prune anonymous volumes
        #[arg(long)]
        volumes: bool,
    },
    /// Display system-wide information
    Info {
        /// Format output using a template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Get real time events from the server
    Events(EventsArgs),
}

pub async fn system(client: &Client, cmd: SystemCmd) -> Result<()> {
    match cmd {
        SystemCmd::Df => df(client).await,
        SystemCmd::Prune {
            all,
            force,
            volumes,
        } => system_prune(client, all, force, volumes).await,
        SystemCmd::Info { format } => info(client, format.as_deref()).await,
        SystemCmd::Events(a) => events(client, a).await,
    }
}

async fn df(client: &Client) -> Result<()> {
    let d: Value = client.get("/system/df").await?;
    let header = ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        .map(String::from)
        .to_vec();
    print!("{}", format::table(header, df_rows(&d)));
    Ok(())
}

/// An object's size and whether it is in use.
type Measure = fn(&Value) -> (f64, bool);

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0).max(0.0)
}

fn image_use(i: &Value) -> (f64, bool) {
    (num(&i["Size"]), num(&i["Containers"]) > 0.0)
}

fn container_use(c: &Value) -> (f64, bool) {
    (num(&c["SizeRw"]), c["State"] == "running")
}

fn volume_use(v: &Value) -> (f64, bool) {
    (
        num(&v["UsageData"]["Size"]),
        num(&v["UsageData"]["RefCount"]) > 0.0,
    )
}

/// The rows of `system df` from `/system/df`: per kind, how many, how many in use, their
/// size and what removing the unused would free.
fn df_rows(d: &Value) -> Vec<Vec<String>> {
    let kinds: [(&str, &str, Measure); 3] = [
        ("Images", "Images", image_use),
        ("Containers", "Containers", container_use),
        ("Local Volumes", "Volumes", volume_use),
    ];
    kinds
        .iter()
        .map(|(label, key, measure)| {
            let items: Vec<(f64, bool)> = d[*key]
                .as_array()
                .into_iter()
                .flatten()
                .map(*measure)
                .collect();
            let size: f64 = items.iter().map(|(s, _)| s).sum();
            let unused: f64 = items.iter().filter(|(_, used)| !used).map(|(s, _)| s).sum();
            let active = items.iter().filter(|(_, used)| *used).count();
            vec![
                label.to_string(),
                items.len().to_string(),
                active.to_string(),
                human_size(size),
                human_size(unused),
            ]
        })
        .collect()
}

async fn system_prune(client: &Client, all: bool, force: bool, volumes: bool) -> Result<()> {
    let mut warning = String::from("This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
    if volumes {
        warning.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    warning.push_str(if all {
        "  - all images without at least one container associated to them\n"
    } else {
        "  - all dangling images\n"
    });
    if !confirm(force, warning.trim_end()) {
        return Ok(());
    }
    prune(client, "containers", &[], "ContainersDeleted").await?;
    prune(client, "networks", &[], "NetworksDeleted").await?;
    if volumes {
        prune(client, "volumes", &[], "VolumesDeleted").await?;
    }
    super::images_prune(client, all, &[]).await
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a template, or json
    #[arg(long)]
    pub format: Option<String>,
}

pub async fn events(client: &Client, a: EventsArgs) -> Result<()> {
    let time = |t: &Option<String>| t.as_deref().map(format::parse_time_arg).transpose();
    let q = query(&[
        ("since", time(&a.since)?.unwrap_or_default()),
        ("until", time(&a.until)?.unwrap_or_default()),
        ("filters", filters_json(&a.filter)?),
    ]);
    let res = client
        .stream(Method::GET, &format!("/events{q}"), Body::Empty)
        .await?;
    let mut lines = JsonLines::new(res);
    while let Some(ev) = lines.next().await? {
        match a.format.as_deref() {
            Some("json") => println!("{ev}"),
            Some(t) => println!("{}", render(t, &ev)?),
            None => println!("{}", event_line(&ev)),
        }
    }
    Ok(())
}

/// Docker's event line: `TIME TYPE ACTION ID (attr=value, ...)`.
pub fn event_line(ev: &Value) -> String {
    let nanos = ev["timeNano"]
        .as_i64()
        .unwrap_or_else(|| ev["time"].as_i64().unwrap_or(0) * 1_000_000_000);
    let attrs: Vec<String> = ev["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", format::text(v)))
        .collect();
    let mut line = format!(
        "{} {} {} {}",
        format::rfc3339_nanos(nanos),
        format::text(&ev["Type"]),
        format::text(&ev["Action"]),
        format::text(&ev["Actor"]["ID"])
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines() {
        let ev = json!({"Type": "container", "Action": "start", "timeNano": 86_400_000_000_001i64,
                        "Actor": {"ID": "abc", "Attributes": {"name": "web"}}});
        assert_eq!(
            event_line(&ev),
            "1970-01-02T00:00:00.000000001Z container start abc (name=web)"
        );
    }

    #[test]
    fn disk_usage() {
        let d = json!({"Images": [{"Size": 2000, "Containers": 1}, {"Size": 3000, "Containers": 0}],
                       "Containers": [{"SizeRw": 10, "State": "running"}, {"SizeRw": 5, "State": "exited"}],
                       "Volumes": [{"UsageData": {"Size": -1, "RefCount": 0}}]});
        let rows = df_rows(&d);
        assert_eq!(rows[0], ["Images", "2", "1", "5kB", "3kB"]);
        assert_eq!(rows[1], ["Containers", "2", "1", "15B", "5B"]);
        assert_eq!(rows[2], ["Local Volumes", "1", "0", "0B", "0B"]);
    }

    #[test]
    fn pretty_json() {
        assert_eq!(
            pretty(&json!([{"a": 1}])).unwrap(),
            "[\n    {\n        \"a\": 1\n    }\n]"
        );
        assert!(inspect_path("thing", "x", false).is_err());
    }
}
