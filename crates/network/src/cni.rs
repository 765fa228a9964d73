//! Custom networks through CNI plugins, as the CNI specification (1.0) runs them: a
//! conflist names a chain of plugins; ADD runs them in order, each given the previous one's
//! result; CHECK runs them in order and DEL in reverse, both given the cached ADD result.
//!
//! Plugins run in the host's network namespace with the CNI_* variables set and their
//! configuration on stdin; the result or error comes back on stdout as JSON.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::ports::PortMapping;

/// Where plugins are looked for: Debian's containernetworking-plugins, then the usual
/// upstream location.
pub const PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// A parsed conflist, kept whole: DEL and CHECK must see the configuration ADD saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflist {
    pub cni_version: String,
    pub name: String,
    plugins: Vec<Map<String, Value>>,
}

/// Reads and checks a conflist: JSON with `cniVersion`, `name` and a non-empty `plugins`
/// array whose entries each name a plugin `type`.
pub fn parse_conflist(text: &str, source: &str) -> Result<Conflist> {
    let bad = |why: String| Error::Invalid(format!("CNI conflist {source}: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| bad(format!("needs a string \"{k}\"")))
    };
    let (cni_version, name) = (field("cniVersion")?, field("name")?);
    let plugins: Vec<Map<String, Value>> = v
        .get("plugins")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("needs a non-empty \"plugins\" array".into()))?
        .iter()
        .map(|p| p.as_object().cloned())
        .collect::<Option<_>>()
        .ok_or_else(|| bad("each plugin must be a JSON object".into()))?;
    for p in &plugins {
        let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
        let plain = !ty.is_empty()
            && ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && ty != "."
            && ty != "..";
        if !plain {
            return Err(bad(format!(
                "plugin type {ty:?} must be a plain program name (like \"bridge\")"
            )));
        }
    }
    Ok(Conflist {
        cni_version,
        name,
        plugins,
    })
}

impl Conflist {
    /// Reads a conflist file.
    pub fn load(path: &Path) -> Result<Conflist> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Invalid(format!(
                "cannot read CNI conflist {}: {e}; give the path of a readable .conflist file",
                path.display()
            ))
        })?;
        parse_conflist(&text, &path.display().to_string())
    }

    /// Whether some plugin takes published ports (declares the portMappings capability).
    pub fn maps_ports(&self) -> bool {
        self.plugins.iter().any(|p| capability(p, "portMappings"))
    }

    /// The bridge the chain's `bridge` plugin makes (its default name is cni0).
    pub fn bridge(&self) -> Option<String> {
        self.plugins
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("bridge"))
            .map(|p| {
                p.get("bridge")
                    .and_then(Value::as_str)
                    .unwrap_or("cni0")
                    .to_string()
            })
    }

    pub fn to_json(&self) -> Value {
        json!({"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins})
    }

    pub fn from_json(v: &Value) -> Result<Conflist> {
        parse_conflist(&v.to_string(), "stored with the network")
    }
}

fn capability(plugin: &Map<String, Value>, name: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(name))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// One attachment as the plugins see it.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub container_id: &'a str,
    /// The sandbox's pinned namespace; None when it is gone (DEL after a crash).
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub ports: &'a [PortMapping],
}

/// ADD through the whole chain; on a failure, DEL undoes what the chain did so far.
pub fn add(host: &Netns, conf: &Conflist, at: &Attachment) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for plugin in &conf.plugins {
        match invoke(host, conf, plugin, "ADD", at, prev.as_ref()) {
            Ok(result) => prev = Some(result.unwrap_or(Value::Null)),
            Err(e) => {
                if let Err(undo) = del(host, conf, at, prev.as_ref()) {
                    tracing::warn!("undoing a failed CNI ADD: {undo}");
                }
                return Err(e);
            }
        }
    }
    Ok(prev.unwrap_or(Value::Null))
}

/// DEL through the chain in reverse. Every plugin runs even when one fails (each frees its
/// own resources); the first failure is returned.
pub fn del(host: &Netns, conf: &Conflist, at: &Attachment, result: Option<&Value>) -> Result<()> {
    let mut first_error = None;
    for plugin in conf.plugins.iter().rev() {
        if let Err(e) = invoke(host, conf, plugin, "DEL", at, result) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// CHECK through the chain: each plugin verifies that what it made is still there.
pub fn check(host: &Netns, conf: &Conflist, at: &Attachment, result: &Value) -> Result<()> {
    for plugin in &conf.plugins {
        invoke(host, conf, plugin, "CHECK", at, Some(result))?;
    }
    Ok(())
}

/// Runs one plugin for one command; its result for ADD.
fn invoke(
    host: &Netns,
    conf: &Conflist,
    plugin: &Map<String, Value>,
    command: &str,
    at: &Attachment,
    prev: Option<&Value>,
) -> Result<Option<Value>> {
    let ty = plugin.get("type").and_then(Value::as_str).unwrap_or("");
    let program = find_plugin(ty)?;
    let stdin = plugin_config(conf, plugin, at, prev);
    let mut cmd = Command::new(&program);
    cmd.env_clear()
        // Plugins such as portmap and firewall run iptables: they need a PATH.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", at.container_id)
        .env(
            "CNI_NETNS",
            at.netns.map(|p| p.as_os_str()).unwrap_or_default(),
        )
        .env("CNI_IFNAME", at.ifname)
        .env("CNI_PATH", PLUGIN_DIRS.join(":"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    host.enter_on_exec(&mut cmd);
    let failed = |why: String| Error::Cni {
        plugin: ty.to_string(),
        command: command.to_string(),
        message: why,
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", program.display())))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.to_string().as_bytes())
            .map_err(|e| failed(format!("cannot write its configuration: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("cannot wait for it: {e}")))?;
    if !out.status.success() {
        return Err(failed(plugin_error(&out.stdout, &out.stderr)));
    }
    if command != "ADD" {
        return Ok(None);
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| failed(format!("its result is not JSON: {e}")))
}

fn find_plugin(ty: &str) -> Result<PathBuf> {
    PLUGIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(ty))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "CNI plugin {ty:?} is not in {}: install it (Debian: containernetworking-plugins)",
                PLUGIN_DIRS.join(" or ")
            ))
        })
}

/// What a plugin reads on stdin: its own object, the list's name and version, the previous
/// result, and the runtime values of the capabilities it declares.
fn plugin_config(
    conf: &Conflist,
    plugin: &Map<String, Value>,
    at: &Attachment,
    prev: Option<&Value>,
) -> Value {
    let mut c = plugin.clone();
    c.insert("cniVersion".into(), json!(conf.cni_version));
    c.insert("name".into(), json!(conf.name));
    if let Some(prev) = prev.filter(|p| !p.is_null()) {
        c.insert("prevResult".into(), prev.clone());
    }
    if capability(plugin, "portMappings") && !at.ports.is_empty() {
        let mappings: Vec<Value> = at
            .ports
            .iter()
            .map(|p| {
                json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.proto.to_string(),
                    "hostIP": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                })
            })
            .collect();
        c.insert("runtimeConfig".into(), json!({ "portMappings": mappings }));
    }
    Value::Object(c)
}

/// The plugin's error message: the spec's `{"code", "msg", "details"}` on stdout, else
/// whatever it printed.
fn plugin_error(stdout: &[u8], stderr: &[u8]) -> String {
    #[derive(Deserialize)]
    struct CniError {
        code: Option<u32>,
        msg: Option<String>,
        details: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<CniError>(stdout) {
        if let Some(msg) = e.msg {
            let details = e.details.map(|d| format!(" ({d})")).unwrap_or_default();
            return format!("{msg}{details} [code {}]", e.code.unwrap_or(0));
        }
    }
    let text = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
    text.trim().to_string()
}

/// What an ADD result says about the sandbox's interface: its addresses, gateways, MAC.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    pub addresses: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub mac: Option<String>,
}

/// Reads addresses, gateways and the sandbox interface's MAC from a 0.3+/1.0 result.
pub fn assigned(result: &Value, ifname: &str) -> Assigned {
    let interfaces = result.get("interfaces").and_then(Value::as_array);
    let ours = interfaces.and_then(|list| {
        list.iter()
            .position(|i| i.get("name").and_then(Value::as_str) == Some(ifname))
    });
    let mac = ours
        .and_then(|i| interfaces?.get(i)?.get("mac")?.as_str())
        .map(String::from);
    let mut out = Assigned {
        mac,
        ..Default::default()
    };
    for ip in result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // An address bound to another interface (the host's bridge) is not the sandbox's.
        let on = ip.get("interface").and_then(Value::as_u64);
        if on.is_some() && ours.is_some() && on != ours.map(|i| i as u64) {
            continue;
        }
        if let Some(a) = ip
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
        {
            out.addresses.push(a);
        }
        if let Some(g) = ip
            .get("gateway")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok())
        {
            out.gateways.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{
      "cniVersion": "1.0.0", "name": "demo",
      "plugins": [
        {"type": "bridge", "bridge": "cni-demo0", "isGateway": true,
         "ipam": {"type": "host-local", "subnet": "10.99.0.0/24"}},
        {"type": "portmap", "capabilities": {"portMappings": true}}
      ]}"#;

    #[test]
    fn conflists_are_checked_and_say_what_is_wrong() {
        let c = parse_conflist(LIST, "t").unwrap();
        assert_eq!(c.name, "demo");
        assert!(c.maps_ports());
        assert_eq!(c.bridge().as_deref(), Some("cni-demo0"));
        assert_eq!(Conflist::from_json(&c.to_json()).unwrap(), c);
        let err = |t: &str| parse_conflist(t, "t").unwrap_err().to_string();
        assert!(err("{").contains("not valid JSON"));
        assert!(err(r#"{"name":"x","plugins":[{"type":"a"}]}"#).contains("cniVersion"));
        assert!(err(r#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#).contains("non-empty"));
        assert!(
            err(r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}"#)
                .contains("plain program name")
        );
    }

    #[test]
    fn plugins_get_the_lists_name_the_previous_result_and_their_capabilities() {
        let c = parse_conflist(LIST, "t").unwrap();
        let ports = crate::ports::parse_publish("127.0.0.1:8080:80").unwrap();
        let at = Attachment {
            container_id: "c1",
            netns: None,
            ifname: "eth0",
            ports: &ports,
        };
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let bridge = plugin_config(&c, &c.plugins[0], &at, None);
        assert_eq!(bridge["name"], "demo");
        assert!(bridge.get("prevResult").is_none());
        assert!(bridge.get("runtimeConfig").is_none());
        let portmap = plugin_config(&c, &c.plugins[1], &at, Some(&prev));
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0],
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"})
        );
    }

    #[test]
    fn results_give_the_sandbox_interfaces_addresses() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni-demo0", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "eth0", "mac": "02:00:00:00:00:05", "sandbox": "/x"}
            ],
            "ips": [
                {"address": "10.99.0.5/24", "gateway": "10.99.0.1", "interface": 2},
                {"address": "10.99.0.1/24", "interface": 0}
            ]
        });
        assert_eq!(
            assigned(&result, "eth0"),
            Assigned {
                addresses: vec!["10.99.0.5/24".parse().unwrap()],
                gateways: vec!["10.99.0.1".parse().unwrap()],
                mac: Some("02:00:00:00:00:05".into()),
            }
        );
    }

    #[test]
    fn plugin_errors_are_read_from_the_specs_json() {
        let e = plugin_error(
            br#"{"code": 7, "msg": "no such thing", "details": "d"}"#,
            b"",
        );
        assert_eq!(e, "no such thing (d) [code 7]");
        assert_eq!(plugin_error(b"", b"boom\n"), "boom");
    }
}
