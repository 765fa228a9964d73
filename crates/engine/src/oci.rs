//! An external OCI runtime driven through runc's command line: `<path> <args…> --root R
//! <subcommand> …`, one process per operation, as containerd's runc shim drives runc.
//!
//! `create` and `exec` hand the runtime the container process's stdio as their own (the
//! runtime passes it on), so their errors cannot be read from stderr: those two get
//! `--log FILE --log-format json` and the error is read back from that file. The other
//! subcommands' stderr is captured.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runtimes::RuntimeCommand;

/// An external runtime as a container runs with it: its name, its command and the state
/// root it keeps its containers in (one per runtime under the daemon's run root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oci {
    pub name: String,
    pub command: RuntimeCommand,
    pub root: PathBuf,
}

/// The files of a create or an exec: where the runtime writes the process's pid, where it
/// hands the process's terminal over (with one), and where it logs.
pub struct Launch {
    pub pid_file: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub log: PathBuf,
}

/// What `state` reports (the fields berth reads).
#[derive(Debug, Clone, Deserialize)]
pub struct OciState {
    pub pid: i32,
    pub status: String,
}

impl Oci {
    /// The command with its fixed arguments and `--root`, before the subcommand.
    fn base(&self) -> Command {
        let mut c = Command::new(&self.command.path);
        c.args(&self.command.args).arg("--root").arg(&self.root);
        c
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`, with this process's stdio
    /// handed to the container; the container's init pid.
    pub fn create(&self, id: &str, bundle: &Path, launch: &Launch) -> Result<i32> {
        let mut c = self.base();
        c.arg("--log")
            .arg(&launch.log)
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(&launch.pid_file);
        if let Some(s) = &launch.console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        self.launch(c, "create", launch)
    }

    /// `exec --detach --pid-file P --process FILE [--console-socket S] ID`; the process's pid.
    pub fn exec(&self, id: &str, process: &Path, launch: &Launch) -> Result<i32> {
        let mut c = self.base();
        c.arg("--log")
            .arg(&launch.log)
            .args(["--log-format", "json", "exec", "--detach", "--pid-file"])
            .arg(&launch.pid_file)
            .arg("--process")
            .arg(process);
        if let Some(s) = &launch.console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        self.launch(c, "exec", launch)
    }

    fn launch(&self, mut c: Command, what: &str, launch: &Launch) -> Result<i32> {
        let _ = std::fs::remove_file(&launch.log);
        let status = c.status().map_err(|e| self.spawn_error(what, e))?;
        if !status.success() {
            let log = std::fs::read_to_string(&launch.log).unwrap_or_default();
            let msg = json_log_error(&log).unwrap_or_else(|| format!("it exited with {status}"));
            return Err(self.failed(what, &msg));
        }
        let text = std::fs::read_to_string(&launch.pid_file)
            .map_err(|e| Error::io(format!("read {}", launch.pid_file.display()), e))?;
        text.trim().parse().map_err(|_| {
            self.failed(
                what,
                &format!("its pid file holds {text:?}, not a process id"),
            )
        })
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run("start", [id]).map(drop)
    }

    /// `delete --force`: kills what is left of the container and forgets it.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.run("delete", ["--force", id]).map(drop)
    }

    pub fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let number = signal.to_string();
        self.run("kill", [id, number.as_str()]).map(drop)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.run("pause", [id]).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.run("resume", [id]).map(drop)
    }

    /// `update` with runc's flags (every OCI runtime with runc's command line has them).
    pub fn update(&self, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let mut args: Vec<String> = Vec::new();
        let mut flag = |name: &str, value: String| args.extend([format!("--{name}"), value]);
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                flag("memory", l.to_string());
            }
            if let Some(s) = m.swap() {
                flag("memory-swap", s.to_string());
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(q) = c.quota() {
                flag("cpu-quota", q.to_string());
            }
            if let Some(p) = c.period() {
                flag("cpu-period", p.to_string());
            }
            if let Some(s) = c.shares() {
                flag("cpu-share", s.to_string());
            }
            if let Some(set) = c.cpus() {
                flag("cpuset-cpus", set.clone());
            }
        }
        if let Some(p) = r.pids() {
            flag("pids-limit", p.limit().to_string());
        }
        args.push(id.to_string());
        self.run("update", args.iter().map(String::as_str))
            .map(drop)
    }

    /// `ps --format json`: the host pids of the container's processes.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let out = self.run("ps", ["--format", "json", id])?;
        serde_json::from_slice::<Option<Vec<i32>>>(&out.stdout)
            .map(Option::unwrap_or_default)
            .map_err(|e| self.failed("ps", &format!("its answer is not a JSON list of pids: {e}")))
    }

    pub fn state(&self, id: &str) -> Result<OciState> {
        let out = self.run("state", [id])?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| self.failed("state", &format!("its answer is not a state: {e}")))
    }

    /// Runs a subcommand with nothing on stdin, its output captured.
    fn run<'a>(&self, what: &str, args: impl IntoIterator<Item = &'a str>) -> Result<Output> {
        let out = self
            .base()
            .arg(what)
            .args(args.into_iter().map(OsStr::new))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(what, e))?;
        if out.status.success() {
            return Ok(out);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr_error(&stderr).unwrap_or_else(|| format!("it exited with {}", out.status));
        Err(self.failed(what, &msg))
    }

    fn spawn_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::Invalid(format!(
            "cannot run the runtime {} ({}) to {what}: {e}: install it there, or point the daemon's --add-runtime {}=PATH at it",
            self.name,
            self.command.path.display(),
            self.name
        ))
    }

    /// A `what` that did not succeed, as one line: which runtime, and what it said.
    pub fn failed(&self, what: &str, msg: &str) -> Error {
        let msg = msg.trim();
        // "does not exist" from runc is a container that ended meanwhile: a conflict, as
        // with the built-in runtime's own not-found.
        if msg.contains("does not exist") || msg.contains("not running") {
            return Error::Conflict(format!("runtime {} {what}: {msg}", self.name));
        }
        Error::Invalid(format!("runtime {} {what}: {msg}", self.name))
    }
}

/// The last error in a `--log-format json` log: one JSON object a line, runc's logrus
/// fields `level` and `msg`.
fn json_log_error(log: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Line {
        level: String,
        msg: String,
    }
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .find(|l| matches!(l.level.as_str(), "error" | "fatal" | "panic"))
        .map(|l| l.msg)
}

/// What a failed subcommand said on stderr, on one line: logrus's text lines
/// (`time=… level=error msg="…"`) by their message, other lines as they are.
fn stderr_error(stderr: &str) -> Option<String> {
    let mut msgs: Vec<String> = Vec::new();
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let msg = logrus_msg(line).unwrap_or_else(|| line.to_string());
        if !msgs.contains(&msg) {
            msgs.push(msg);
        }
    }
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// The `msg="…"` field of a logrus text line, unquoted.
fn logrus_msg(line: &str) -> Option<String> {
    let start = line.find("msg=\"")? + "msg=\"".len();
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_from_runcs_json_log() {
        let log = r#"{"level":"info","msg":"starting","time":"t"}
{"level":"error","msg":"first","time":"t"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"t"}
"#;
        assert_eq!(
            json_log_error(log).unwrap(),
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(json_log_error("{\"level\":\"info\",\"msg\":\"x\"}"), None);
        assert_eq!(json_log_error("not json"), None);
    }

    #[test]
    fn stderr_becomes_one_line() {
        let stderr = "time=\"2024-01-01T00:00:00Z\" level=error msg=\"container \\\"x\\\" does not exist\"\ncontainer \"x\" does not exist\n";
        assert_eq!(
            stderr_error(stderr).unwrap(),
            "container \"x\" does not exist"
        );
        assert_eq!(stderr_error("a\n\nb\n").unwrap(), "a; b");
        assert_eq!(stderr_error("  \n"), None);
    }

    #[test]
    fn failures_name_the_runtime() {
        let oci = Oci {
            name: "runc".into(),
            command: RuntimeCommand {
                path: "/nonexistent/runc".into(),
                args: Vec::new(),
            },
            root: "/nonexistent/root".into(),
        };
        let e = oci.pause("abc").unwrap_err().to_string();
        assert!(
            e.starts_with("cannot run the runtime runc (/nonexistent/runc) to pause:"),
            "{e}"
        );
        assert!(e.contains("--add-runtime runc=PATH"), "{e}");
        assert!(matches!(
            oci.failed("kill", "container does not exist"),
            Error::Conflict(_)
        ));
    }
}
