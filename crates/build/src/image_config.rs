//! The image configuration a build carries from step to step: the run config (`Env`, `Cmd`,
//! `Entrypoint`, …, under Docker's key names) and the history, as JSON in the image
//! config's own shape, so that a base image's fields the builder does not know survive.

use serde_json::{json, Map, Value};

/// Docker's default for a container's PATH when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The configuration being built.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    /// The whole image config (`config`, `history`, `author`, …), without `rootfs`, which
    /// the image store fills from the layers.
    doc: Value,
}

impl ImageConfig {
    /// `FROM scratch`.
    pub fn scratch() -> ImageConfig {
        ImageConfig {
            doc: json!({ "architecture": "amd64", "os": "linux", "config": {}, "history": [] }),
        }
    }

    /// A base image's configuration (its raw config document).
    pub fn from_image(raw: &Value) -> ImageConfig {
        let mut doc = raw.clone();
        if !doc.is_object() {
            doc = json!({});
        }
        let obj = doc.as_object_mut().expect("an object");
        obj.remove("rootfs");
        obj.remove("created");
        // The parent's container and container_config describe how it was made, not this.
        obj.remove("container");
        obj.remove("container_config");
        if !obj.get("config").is_some_and(Value::is_object) {
            obj.insert("config".into(), json!({}));
        }
        if !obj.get("history").is_some_and(Value::is_array) {
            obj.insert("history".into(), json!([]));
        }
        ImageConfig { doc }
    }

    /// The document to commit, with `created` set to `now`.
    pub fn document(&self, now: &str) -> Value {
        let mut doc = self.doc.clone();
        doc["created"] = now.into();
        doc
    }

    /// What a step's cache key depends on: everything but the history's timestamps.
    pub fn cache_text(&self) -> String {
        let mut doc = self.doc.clone();
        if let Some(h) = doc.get_mut("history").and_then(Value::as_array_mut) {
            for e in h {
                if let Some(o) = e.as_object_mut() {
                    o.remove("created");
                }
            }
        }
        doc.to_string()
    }

    fn run_config(&mut self) -> &mut Map<String, Value> {
        self.doc["config"]
            .as_object_mut()
            .expect("config is an object")
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.doc["config"].get(key).filter(|v| !v.is_null())
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.run_config().insert(key.into(), value);
    }

    /// `Env` as `NAME=value` strings.
    pub fn env(&self) -> Vec<String> {
        strings(self.get("Env"))
    }

    /// A variable of `Env`.
    pub fn env_var(&self, name: &str) -> Option<String> {
        self.env().into_iter().find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    /// Sets (or replaces, keeping its place) a variable of `Env`.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let mut env = self.env();
        let entry = format!("{name}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|(k, _)| k) == Some(name))
        {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.set("Env", json!(env));
    }

    pub fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    pub fn user(&self) -> Option<String> {
        self.get("User")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    }

    /// `SHELL`, or Docker's default.
    pub fn shell(&self) -> Vec<String> {
        let s = strings(self.get("Shell"));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    /// Adds to an object-valued key (`Labels`, `ExposedPorts`, `Volumes`).
    pub fn insert_into(&mut self, key: &str, name: &str, value: Value) {
        let cfg = self.run_config();
        let slot = cfg.entry(key).or_insert_with(|| json!({}));
        if !slot.is_object() {
            *slot = json!({});
        }
        slot.as_object_mut()
            .expect("an object")
            .insert(name.into(), value);
    }

    /// MAINTAINER: the image's `author`.
    pub fn set_author(&mut self, who: &str) {
        self.doc["author"] = who.into();
    }

    /// Appends to `OnBuild`.
    pub fn push_onbuild(&mut self, trigger: &str) {
        let mut v = strings(self.get("OnBuild"));
        v.push(trigger.to_string());
        self.set("OnBuild", json!(v));
    }

    /// A history entry; `empty_layer` for steps that change only the configuration.
    pub fn add_history(&mut self, created_by: &str, empty_layer: bool, now: &str) {
        let mut entry = json!({ "created": now, "created_by": created_by });
        if empty_layer {
            entry["empty_layer"] = true.into();
        }
        self.doc["history"]
            .as_array_mut()
            .expect("history is an array")
            .push(entry);
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_images_fields_survive_and_its_rootfs_does_not() {
        let raw = json!({
            "architecture": "amd64", "os": "linux", "created": "x",
            "rootfs": { "type": "layers", "diff_ids": [] },
            "config": { "Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Custom": 1 },
            "history": [{ "created": "t", "created_by": "import" }],
        });
        let mut c = ImageConfig::from_image(&raw);
        c.set_env("A", "2");
        c.set_env("B", "3");
        assert_eq!(c.env(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.env_var("A").as_deref(), Some("2"));
        c.add_history("/bin/sh -c #(nop)  ENV B=3", true, "now");
        let doc = c.document("then");
        assert!(doc.get("rootfs").is_none());
        assert_eq!(doc["created"], "then");
        assert_eq!(doc["config"]["Custom"], 1);
        assert_eq!(doc["history"][1]["empty_layer"], true);
        assert_eq!(c.shell(), ["/bin/sh", "-c"]);
        assert_eq!(c.workdir(), "/");
    }

    #[test]
    fn the_cache_text_ignores_history_timestamps_only() {
        let mut a = ImageConfig::scratch();
        let mut b = ImageConfig::scratch();
        a.add_history("x", true, "1");
        b.add_history("x", true, "2");
        assert_eq!(a.cache_text(), b.cache_text());
        b.insert_into("Labels", "k", json!("v"));
        assert_ne!(a.cache_text(), b.cache_text());
    }
}
