//! The commands, one module per kind of object the API serves.

pub mod build;
pub mod commit;
pub mod container;
pub mod copy;
pub mod create;
pub mod image;
pub mod network;
pub mod system;
pub mod volume;

use std::fmt;

use anyhow::Result;
use serde_json::Value;

use crate::client::{query, Client};

/// Ends the program with this status and nothing more to say (a container's exit code).
#[derive(Debug)]
pub struct Exit(pub i32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// `--filter key=value` flags as the API's `filters` JSON: `{"key": ["value", ...]}`.
pub fn filters_json(filters: &[String]) -> Result<String> {
    if filters.is_empty() {
        return Ok(String::new());
    }
    let mut map = serde_json::Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad filter {f:?}: use --filter key=value"))?;
        let entry = map
            .entry(k.to_owned())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(a) = entry {
            a.push(Value::String(v.to_owned()));
        }
    }
    Ok(Value::Object(map).to_string())
}

/// Runs `op` on each name, printing the name on success as docker does; one failure does
/// not stop the others, and makes the exit status 1.
pub async fn each<F, Fut>(names: &[String], print: bool, op: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut failed = false;
    for name in names {
        match op(name.clone()).await {
            Ok(()) if print => println!("{name}"),
            Ok(()) => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// Prunes with `POST /{kind}/prune` and prints what went and the space reclaimed.
pub async fn prune(client: &Client, kind: &str, filters: &[String], key: &str) -> Result<()> {
    let path = format!(
        "/{kind}/prune{}",
        query(&[("filters", filters_json(filters)?)])
    );
    let res: Value = client
        .json(hyper::Method::POST, &path, crate::client::Body::Empty)
        .await?;
    let gone: Vec<&str> = res[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !gone.is_empty() {
        let mut title = kind.to_owned();
        title[..1].make_ascii_uppercase();
        println!("Deleted {title}:");
        for g in gone {
            println!("{g}");
        }
        println!();
    }
    if let Some(space) = res["SpaceReclaimed"].as_f64() {
        println!(
            "Total reclaimed space: {}",
            crate::format::human_size(space)
        );
    }
    Ok(())
}

/// `container prune`.
pub async fn prune_containers(client: &Client, force: bool, filter: &[String]) -> Result<()> {
    if !confirm(force, "This will remove all stopped containers.") {
        return Ok(());
    }
    prune(client, "containers", filter, "ContainersDeleted").await
}

/// `image prune`.
pub async fn prune_images(
    client: &Client,
    all: bool,
    force: bool,
    filter: &[String],
) -> Result<()> {
    let warning = if all {
        "This will remove all images without at least one container associated to them."
    } else {
        "This will remove all dangling images."
    };
    if !confirm(force, warning) {
        return Ok(());
    }
    images_prune(client, all, filter).await
}

/// Prunes images (dangling ones unless `all`) and prints what went.
pub async fn images_prune(client: &Client, all: bool, filter: &[String]) -> Result<()> {
    let mut filter = filter.to_vec();
    filter.push(
        if all {
            "dangling=false"
        } else {
            "dangling=true"
        }
        .to_owned(),
    );
    let q = query(&[("filters", filters_json(&filter)?)]);
    let res: Value = client
        .json(
            hyper::Method::POST,
            &format!("/images/prune{q}"),
            crate::client::Body::Empty,
        )
        .await?;
    for d in res["ImagesDeleted"].as_array().into_iter().flatten() {
        for (k, v) in d.as_object().into_iter().flatten() {
            println!("{k}: {}", crate::format::text(v));
        }
    }
    let space = res["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(space)
    );
    Ok(())
}

/// Asks "are you sure" on a terminal unless forced; false means stop.
pub fn confirm(force: bool, warning: &str) -> bool {
    if force {
        return true;
    }
    eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f =
            filters_json(&["label=a".into(), "label=b".into(), "status=exited".into()]).unwrap();
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["label"], serde_json::json!(["a", "b"]));
        assert_eq!(v["status"], serde_json::json!(["exited"]));
        assert!(filters_json(&["nokey".into()]).is_err());
        assert_eq!(filters_json(&[]).unwrap(), "");
    }
}
