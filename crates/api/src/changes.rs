//! `docker import --change`: Dockerfile instructions that set the imported image's run
//! configuration (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL),
//! turned into the image config's `config` object.

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};

/// The run configuration the changes describe, in order (a later one wins, as in a
/// Dockerfile).
pub fn run_config(changes: &[String]) -> ApiResult<Value> {
    let mut config = Map::new();
    for change in changes.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        let (instruction, args) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let args = args.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(args)?);
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(args)?);
            }
            "ENV" => {
                let env = entry(&mut config, "Env", json!([]));
                for (k, v) in pairs(args, change)? {
                    let list = env.as_array_mut().expect("Env is a list");
                    list.retain(|e| e.as_str().and_then(|e| e.split_once('=')).map(|(n, _)| n) != Some(&k));
                    list.push(json!(format!("{k}={v}")));
                }
            }
            "LABEL" => {
                let labels = entry(&mut config, "Labels", json!({}));
                for (k, v) in pairs(args, change)? {
                    labels[k] = json!(v);
                }
            }
            "EXPOSE" => {
                let ports = entry(&mut config, "ExposedPorts", json!({}));
                for p in args.split_whitespace() {
                    let port = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    let number = port.split('/').next().unwrap_or_default();
                    if number.parse::<u16>().map_or(true, |n| n == 0) {
                        return Err(bad(change, "give ports such as 80 or 53/udp"));
                    }
                    ports[port] = json!({});
                }
            }
            "VOLUME" => {
                let volumes = entry(&mut config, "Volumes", json!({}));
                for v in list(args) {
                    volumes[v] = json!({});
                }
            }
            "USER" | "WORKDIR" | "STOPSIGNAL" if !args.is_empty() => {
                let key = match instruction.to_ascii_uppercase().as_str() {
                    "USER" => "User",
                    "WORKDIR" => "WorkingDir",
                    _ => "StopSignal",
                };
                config.insert(key.into(), json!(args));
            }
            _ => {
                return Err(bad(
                    change,
                    "give one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL with its arguments",
                ))
            }
        }
    }
    Ok(Value::Object(config))
}

fn bad(change: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!("invalid --change {change:?}: {what}"))
}

fn entry<'a>(config: &'a mut Map<String, Value>, key: &str, empty: Value) -> &'a mut Value {
    config.entry(key.to_string()).or_insert(empty)
}

/// The exec form (a JSON list) as it is; the shell form through `/bin/sh -c`.
fn command(args: &str) -> ApiResult<Value> {
    if args.starts_with('[') {
        let list: Vec<String> = serde_json::from_str(args)
            .map_err(|e| bad(args, &format!("a JSON list of strings: {e}")))?;
        return Ok(json!(list));
    }
    Ok(json!(["/bin/sh", "-c", args]))
}

/// `VOLUME ["/a", "/b"]` or `VOLUME /a /b`.
fn list(args: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args)
        .unwrap_or_else(|_| args.split_whitespace().map(str::to_string).collect())
}

/// `K=V K2="v 2"`, or the old `K V` form with one pair.
fn pairs(args: &str, change: &str) -> ApiResult<Vec<(String, String)>> {
    if !args
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .contains('=')
    {
        let (k, v) = args
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(change, "give KEY=VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut rest = args;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| bad(change, "give KEY=VALUE"))?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| bad(change, "a quote is not closed"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        if key.trim().is_empty() {
            return Err(bad(change, "a key is empty"));
        }
        out.push((key.trim().to_string(), value.to_string()));
        rest = next.trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_build_the_run_config() {
        let changes: Vec<String> = [
            "EXPOSE 80 53/udp",
            "CMD [\"httpd\", \"-f\"]",
            "ENTRYPOINT echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "LABEL k=v",
            "USER nobody",
            "WORKDIR /srv",
            "VOLUME [\"/data\"]",
            "STOPSIGNAL SIGINT",
        ]
        .map(String::from)
        .to_vec();
        let c = run_config(&changes).unwrap();
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Cmd"], json!(["httpd", "-f"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(c["Labels"], json!({"k": "v"}));
        assert_eq!(c["User"], "nobody");
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        for wrong in ["RUN true", "EXPOSE http", "CMD [1", "ENV"] {
            let e = run_config(&[wrong.to_string()]).unwrap_err();
            assert!(
                e.message.contains("invalid --change"),
                "{wrong}: {}",
                e.message
            );
        }
    }
}
