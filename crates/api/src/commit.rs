//! `GET /containers/{id}/changes` (`docker diff`) and `POST /commit` (`docker commit`):
//! a container's filesystem changes, listed or made into an image on top of its own.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::{Container, Engine, Status};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/changes", get(changes))
        .route("/commit", post(commit))
}

async fn changes(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let engine = state.engine.clone();
    let list = tokio::task::spawn_blocking(move || engine.changes(&id))
        .await
        .map_err(|e| internal(format!("changes: {e}")))??;
    let body: Vec<Value> = list
        .iter()
        .map(|c| json!({ "Path": c.path, "Kind": c.kind as u8 }))
        .collect();
    Ok(Json(body).into_response())
}

#[derive(Deserialize, Default)]
struct CommitQuery {
    container: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    comment: Option<String>,
    author: Option<String>,
    pause: Option<String>,
}

async fn commit(
    State(state): State<AppState>,
    Query(q): Query<CommitQuery>,
    req: Request,
) -> ApiResult<Response> {
    let changes = crate::images::query_values(req.uri().query(), "changes");
    let overrides = crate::changes::run_config(&changes)?;
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("read the commit body: {e}")))?;
    let body: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("invalid container config in the body: {e}"))
        })?)
    };
    let key = q
        .container
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("give the container to commit: container=…"))?;
    let tags = reference(&q)?;
    let engine = state.engine.clone();
    let c = engine.inspect(&key).await?;
    let parent = engine.images().inspect(&c.config.image_id)?.raw_config;
    let notes = Notes {
        comment: q.comment.clone().unwrap_or_default(),
        author: q.author.clone().unwrap_or_default(),
    };
    let config = image_config(&parent, &c, body.as_ref(), &overrides, &notes);
    // Docker pauses unless told not to.
    let pause = !matches!(q.pause.as_deref(), Some("0" | "false" | "False" | "no"));
    let layer = capture(&engine, &c, pause).await?;
    let parent_id: berth_image::Digest = c
        .config
        .image_id
        .parse()
        .map_err(|e: berth_image::Error| internal(e.to_string()))?;
    let record = tokio::task::spawn_blocking(move || {
        engine.images().commit(berth_image::NewImage {
            parent: Some(&parent_id),
            layer: Some(berth_image::NewLayer::Tar(layer.path())),
            config,
            tags: &tags,
        })
    })
    .await
    .map_err(|e| internal(format!("commit: {e}")))??;
    state.engine.announce(&key, "commit")?;
    let answer = json!({ "Id": record.id.to_string() });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `repo` and `tag` as one reference to tag the image with, if given.
fn reference(q: &CommitQuery) -> ApiResult<Vec<String>> {
    let repo = q.repo.as_deref().filter(|r| !r.is_empty());
    let tag = q.tag.as_deref().filter(|t| !t.is_empty());
    let name = match (repo, tag) {
        (Some(r), Some(t)) => format!("{r}:{t}"),
        (Some(r), None) => r.to_string(),
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "a tag needs a repository: give repo=…",
            ))
        }
        (None, None) => return Ok(Vec::new()),
    };
    // Checked before any work, so a bad name leaves nothing behind.
    name.parse::<berth_image::Reference>()?;
    Ok(vec![name])
}

/// Writes the container's changes to a layer tar, its processes frozen meanwhile if
/// `pause` and it runs; they are thawed whatever the outcome.
async fn capture(
    engine: &Arc<Engine>,
    c: &Container,
    pause: bool,
) -> ApiResult<tempfile::NamedTempFile> {
    let freeze = pause && c.state.status == Status::Running && !c.state.paused;
    if freeze {
        engine.set_paused(&c.id, true).await?;
    }
    let written = {
        let (engine, c) = (engine.clone(), c.clone());
        tokio::task::spawn_blocking(move || -> ApiResult<tempfile::NamedTempFile> {
            let tmp = tempfile::NamedTempFile::new_in(engine.root())
                .map_err(|e| internal(format!("create a layer file: {e}")))?;
            engine.write_changes_layer(&c, tmp.path())?;
            Ok(tmp)
        })
        .await
        .map_err(|e| internal(format!("write the layer: {e}")))
    };
    if freeze {
        engine.set_paused(&c.id, false).await?;
    }
    written?
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// The history entry's words.
struct Notes {
    comment: String,
    author: String,
}

/// The new image's configuration: the parent's, with the container's run configuration,
/// then the body's fields, then the `changes`, and one history entry more.
fn image_config(
    parent: &Value,
    c: &Container,
    body: Option<&Value>,
    overrides: &Value,
    notes: &Notes,
) -> Value {
    let mut doc = parent.clone();
    if !doc.is_object() {
        doc = json!({});
    }
    let obj = doc.as_object_mut().expect("an object");
    for stale in ["rootfs", "created", "container_config"] {
        obj.remove(stale);
    }
    let mut run = obj
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    container_fields(&mut run, c);
    for layer in body
        .and_then(Value::as_object)
        .into_iter()
        .chain(overrides.as_object())
    {
        merge(&mut run, layer);
    }
    let now = crate::convert::docker_time(Some(time::OffsetDateTime::now_utc()));
    let mut entry =
        json!({ "created": now, "created_by": c.config.args().unwrap_or_default().join(" ") });
    if !notes.comment.is_empty() {
        entry["comment"] = json!(notes.comment);
    }
    if !notes.author.is_empty() {
        entry["author"] = json!(notes.author);
        obj.insert("author".into(), json!(notes.author));
    }
    obj.insert("config".into(), Value::Object(run));
    obj.insert("container".into(), json!(c.id));
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        h.push(entry);
    }
    doc
}

/// The container's run configuration (already merged with its image's at create).
fn container_fields(run: &mut Map<String, Value>, c: &Container) {
    let cfg = &c.config;
    run.insert("Cmd".into(), json!(cfg.cmd));
    run.insert("Entrypoint".into(), nullable(&cfg.entrypoint));
    run.insert("Env".into(), json!(cfg.env));
    run.insert(
        "WorkingDir".into(),
        json!(cfg.workdir.clone().unwrap_or_default()),
    );
    run.insert(
        "User".into(),
        json!(cfg.security.user.clone().unwrap_or_default()),
    );
    if let Some(s) = &cfg.stop_signal {
        run.insert("StopSignal".into(), json!(s));
    }
    let labels = run.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    for (k, v) in &cfg.labels {
        labels[k] = json!(v);
    }
}

fn nullable(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// Lays `layer`'s set fields over `run`: lists and scalars replace, maps (labels, ports,
/// volumes) add their keys, and `Env` replaces variables by name.
fn merge(run: &mut Map<String, Value>, layer: &Map<String, Value>) {
    for (key, value) in layer.iter().filter(|(_, v)| !v.is_null()) {
        match (key.as_str(), run.get_mut(key)) {
            ("Env", Some(Value::Array(env))) => {
                for v in value.as_array().into_iter().flatten() {
                    let name = v.as_str().and_then(|s| s.split('=').next());
                    env.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != name);
                    env.push(v.clone());
                }
            }
            (_, Some(Value::Object(map))) if value.is_object() => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    map.insert(k.clone(), v.clone());
                }
            }
            _ => {
                run.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        let mut c = Container {
            id: "c0ffee".into(),
            name: "ctr".into(),
            config: berth_engine::Config::default(),
            state: berth_engine::container::State::created(),
            created: time::OffsetDateTime::UNIX_EPOCH,
        };
        c.config.cmd = vec!["sh".into()];
        c.config.env = vec!["PATH=/bin".into(), "A=1".into()];
        c.config.labels.insert("mine".into(), "yes".into());
        c
    }

    #[test]
    fn config_is_the_parents_then_the_containers_then_the_overrides() {
        let parent = json!({
            "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"},
            "config": {"Cmd": ["old"], "Labels": {"base": "1"}, "ExposedPorts": {"80/tcp": {}}},
            "history": [{"created_by": "base"}]
        });
        let body = json!({"WorkingDir": "/srv", "Env": ["B=2"]});
        let changes = crate::changes::run_config(&[
            "CMD [\"cat\",\"/added\"]".to_string(),
            "ENV A=3".to_string(),
            "EXPOSE 53/udp".to_string(),
        ])
        .unwrap();
        let notes = Notes {
            comment: "msg".into(),
            author: "me".into(),
        };
        let doc = image_config(&parent, &container(), Some(&body), &changes, &notes);
        let run = &doc["config"];
        assert_eq!(run["Cmd"], json!(["cat", "/added"]));
        assert_eq!(run["Env"], json!(["PATH=/bin", "B=2", "A=3"]));
        assert_eq!(run["WorkingDir"], "/srv");
        assert_eq!(run["Labels"], json!({"base": "1", "mine": "yes"}));
        assert_eq!(run["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(doc["author"], "me");
        assert_eq!(doc["history"][1]["comment"], "msg");
        assert_eq!(doc["history"][1]["created_by"], "sh");
        assert!(
            doc.get("rootfs").is_none(),
            "the store fills it from the layers"
        );
    }

    #[test]
    fn a_tag_needs_a_repository_and_a_valid_name() {
        let q = |repo: &str, tag: &str| CommitQuery {
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        };
        assert_eq!(reference(&q("img", "1")).unwrap(), ["img:1"]);
        assert!(reference(&q("", "")).unwrap().is_empty());
        assert!(reference(&q("", "1")).is_err());
        assert!(reference(&q("Bad Name", "")).is_err());
    }
}
