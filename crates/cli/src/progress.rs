//! Docker's JSON progress stream (pull, push, import, load) shown as one bar per layer on a
//! terminal, or as plain status lines otherwise.

use std::collections::HashMap;

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::client::JsonLines;

/// One message of the stream, as the daemon sends it.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// `{"error": ...}`: the operation failed.
    Error(String),
    /// A layer's (or the whole operation's, without id) status with optional byte counts.
    Status {
        id: Option<String>,
        status: String,
        current: Option<u64>,
        total: Option<u64>,
    },
    /// `{"stream": ...}`: text to print as is (load, build).
    Text(String),
    /// Anything else (`aux`, empty objects).
    Other,
}

/// Classifies one message.
pub fn parse(v: &Value) -> Event {
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Event::Error(e.to_owned());
    }
    if let Some(s) = v.get("stream").and_then(Value::as_str) {
        return Event::Text(s.to_owned());
    }
    let Some(status) = v.get("status").and_then(Value::as_str) else {
        return Event::Other;
    };
    let detail = v.get("progressDetail");
    let num = |k: &str| detail.and_then(|d| d.get(k)).and_then(Value::as_u64);
    Event::Status {
        id: v.get("id").and_then(Value::as_str).map(str::to_owned),
        status: status.to_owned(),
        current: num("current"),
        total: num("total").filter(|t| *t > 0),
    }
}

/// Where a progress stream is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Shows nothing (errors still end the stream).
    Nowhere,
    Stdout,
    /// For pulls that are not the command's output (run's pull of a missing image).
    Stderr,
}

/// Shows a progress stream to its end; an `error` message becomes the command's error.
pub async fn show(mut lines: JsonLines, to: To) -> Result<()> {
    let mut view = View::new(to);
    while let Some(v) = lines.next().await? {
        match parse(&v) {
            Event::Error(e) => {
                view.finish();
                bail!("{e}");
            }
            ev => view.update(ev),
        }
    }
    view.finish();
    Ok(())
}

struct View {
    to: To,
    tty: bool,
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl View {
    fn new(to: To) -> View {
        let (tty, target) = match to {
            To::Stderr => (crate::terminal::is_tty(2), ProgressDrawTarget::stderr()),
            _ => (crate::terminal::is_tty(1), ProgressDrawTarget::stdout()),
        };
        let multi = MultiProgress::with_draw_target(target);
        View {
            to,
            tty,
            multi,
            bars: HashMap::new(),
        }
    }

    fn update(&mut self, ev: Event) {
        if self.to == To::Nowhere {
            return;
        }
        match ev {
            Event::Text(t) => self.line(t.trim_end()),
            Event::Status {
                id: None, status, ..
            } => self.line(&status),
            Event::Status {
                id: Some(id),
                status,
                current,
                total,
            } => {
                if self.tty {
                    self.bar(&id, &status, current, total);
                } else if current.is_none() {
                    self.line(&format!("{id}: {status}"));
                }
            }
            Event::Error(_) | Event::Other => {}
        }
    }

    fn line(&self, text: &str) {
        if self.tty {
            let _ = self.multi.println(text);
        } else if self.to == To::Stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    fn bar(&mut self, id: &str, status: &str, current: Option<u64>, total: Option<u64>) {
        let multi = &self.multi;
        let bar = self.bars.entry(id.to_owned()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style(false));
            b.set_prefix(id.to_owned());
            b
        });
        match (current, total) {
            (Some(c), Some(t)) => {
                bar.set_style(style(true));
                bar.set_length(t);
                bar.set_position(c);
            }
            _ => bar.set_style(style(false)),
        }
        bar.set_message(status.to_owned());
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.set_style(style(false));
            bar.finish();
        }
    }
}

fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "{prefix}: {msg} [{bar:40}] {bytes}/{total_bytes}"
    } else {
        "{prefix}: {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages() {
        assert_eq!(
            parse(&json!({"error": "boom", "errorDetail": {}})),
            Event::Error("boom".into())
        );
        assert_eq!(
            parse(&json!({"status": "Downloading", "id": "abc",
                          "progressDetail": {"current": 5, "total": 10}})),
            Event::Status {
                id: Some("abc".into()),
                status: "Downloading".into(),
                current: Some(5),
                total: Some(10)
            }
        );
        assert_eq!(
            parse(&json!({"status": "Pull complete", "id": "abc", "progressDetail": {}})),
            Event::Status {
                id: Some("abc".into()),
                status: "Pull complete".into(),
                current: None,
                total: None
            }
        );
        assert_eq!(
            parse(&json!({"stream": "Loaded image: x\n"})),
            Event::Text("Loaded image: x\n".into())
        );
        assert_eq!(parse(&json!({"aux": {}})), Event::Other);
    }
}
