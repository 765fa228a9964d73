//! `diff` and `commit`: a container's filesystem changes, listed or made into an image.

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::{enc_path, query, Body, Client};

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub container: String,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `diff`: one line per change, `C`, `A` or `D` and the path, as docker prints them.
pub async fn diff(client: &Client, a: DiffArgs) -> Result<()> {
    let path = format!("/containers/{}/changes", enc_path(&a.container));
    let changes: Vec<Value> = client.get(&path).await?;
    for c in changes {
        let letter = match c["Kind"].as_u64() {
            Some(0) => 'C',
            Some(1) => 'A',
            _ => 'D',
        };
        println!("{letter} {}", c["Path"].as_str().unwrap_or_default());
    }
    Ok(())
}

/// `commit`: prints the new image's id.
pub async fn commit(client: &Client, a: CommitArgs) -> Result<()> {
    let (repo, tag) = split_reference(a.reference.as_deref().unwrap_or_default());
    let mut pairs = vec![
        ("container", a.container.clone()),
        ("repo", repo.to_string()),
        ("tag", tag.to_string()),
        ("comment", a.message.unwrap_or_default()),
        ("author", a.author.unwrap_or_default()),
        ("pause", a.pause.to_string()),
    ];
    pairs.extend(a.change.into_iter().map(|c| ("changes", c)));
    let path = format!("/commit{}", query(&pairs));
    let answer: Value = client.json(hyper::Method::POST, &path, Body::Empty).await?;
    println!("{}", answer["Id"].as_str().unwrap_or_default());
    Ok(())
}

/// `REPO[:TAG]`: the tag is after the last colon unless that colon is a registry's port.
fn split_reference(r: &str) -> (&str, &str) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (r, ""),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(super::split_reference("img:1"), ("img", "1"));
        assert_eq!(super::split_reference("reg:5000/img"), ("reg:5000/img", ""));
        assert_eq!(
            super::split_reference("reg:5000/img:2"),
            ("reg:5000/img", "2")
        );
        assert_eq!(super::split_reference(""), ("", ""));
    }
}
