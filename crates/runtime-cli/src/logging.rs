//! Where the runtime's log goes: stderr, or the --log file in text or in runc's JSON shape
//! ({"level","msg","time"}), which containerd and docker read back when a command fails.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use crate::args::Cli;

pub struct Log {
    file: Option<Mutex<File>>,
    json: bool,
}

pub fn init(cli: &Cli) -> Log {
    let file = cli
        .log
        .as_ref()
        .and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    let json = cli.log_format == "json";
    // A plain level: an EnvFilter costs a directive parse on every start of a short-lived
    // process, and this one starts once per container operation.
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let builder = tracing_subscriber::fmt().with_max_level(level);
    // A second subscriber cannot be installed; ignoring that keeps tests that call us twice
    // working.
    let _ = match (&file, json) {
        (Some(f), true) => builder
            .json()
            .with_writer(Mutex::new(f.try_clone().expect("dup log file")))
            .try_init(),
        (Some(f), false) => builder
            .with_ansi(false)
            .with_writer(Mutex::new(f.try_clone().expect("dup log file")))
            .try_init(),
        (None, _) => builder.with_writer(std::io::stderr).try_init(),
    };
    Log {
        file: file.map(Mutex::new),
        json,
    }
}

impl Log {
    /// Records a fatal error in the log file (stderr gets it from the caller).
    pub fn error(&self, msg: &str) {
        let Some(file) = &self.file else {
            return;
        };
        let time = berth_runtime::state::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let line = if self.json {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        } else {
            format!("{time} error {msg}")
        };
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}
