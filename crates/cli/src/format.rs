//! Output: aligned tables, Go-template-like `{{.Field}}` formats, human sizes and durations.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// How a listing is printed, from `--format`.
pub enum Format {
    /// The default table, or `table` alone.
    Table,
    /// `json`: one JSON object per line.
    Json,
    /// `table {{...}}`: a template with a header row.
    TableTemplate(String),
    /// `{{...}}`: a template per item, no header.
    Template(String),
}

impl Format {
    pub fn parse(spec: Option<&str>) -> Format {
        match spec.map(str::trim) {
            None | Some("") | Some("table") => Format::Table,
            Some("json") => Format::Json,
            Some(s) => match s.strip_prefix("table ") {
                Some(t) => Format::TableTemplate(t.to_owned()),
                None => Format::Template(s.to_owned()),
            },
        }
    }
}

/// Prints rows (each a JSON object with the listing's fields) in the chosen format;
/// `columns` are (header, field) for the default table.
pub fn print_rows(format: &Format, columns: &[(&str, &str)], rows: &[Value]) -> Result<()> {
    if let Format::Template(t) | Format::TableTemplate(t) = format {
        render(t, &Value::Null)?;
    }
    match format {
        Format::Table => {
            let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
            let body = rows
                .iter()
                .map(|r| columns.iter().map(|(_, f)| text(&r[*f])).collect())
                .collect();
            print!("{}", table(header, body));
        }
        Format::Json => {
            for r in rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        Format::TableTemplate(t) => {
            let header = template_header(t, columns);
            let mut lines = vec![header];
            for r in rows {
                lines.push(render(t, r)?);
            }
            print!("{}", tabify(&lines));
        }
        Format::Template(t) => {
            for r in rows {
                println!("{}", render(t, r)?);
            }
        }
    }
    Ok(())
}

/// Aligns cells in columns three spaces apart, as docker's tabwriter does.
pub fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let lines: Vec<String> = std::iter::once(header)
        .chain(rows)
        .map(|r| r.join("\t"))
        .collect();
    tabify(&lines)
}

/// Aligns tab-separated lines.
pub fn tabify(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let ncols = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; ncols];
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The text of a value as a Go template prints it: strings bare, lists as `[a b]`, objects as
/// `map[k:v]` (keys sorted), null as `<no value>`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut pairs: Vec<String> =
                m.iter().map(|(k, v)| format!("{k}:{}", text(v))).collect();
            pairs.sort();
            format!("map[{}]", pairs.join(" "))
        }
        other => other.to_string(),
    }
}

/// The header of a `table` template: a listing's own header for its fields (`columns`), else
/// the action's last field name in upper case with spaces for its capitals
/// (`{{.CreatedAt}}` -> `CREATED AT`); other text kept.
pub fn template_header(t: &str, columns: &[(&str, &str)]) -> String {
    let t = unescape(t);
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let action = rest[start + 2..start + end].trim();
        let field = action.rsplit('.').next().unwrap_or(action);
        match columns.iter().find(|(_, f)| *f == field) {
            Some((header, _)) => out.push_str(header),
            None => out.push_str(&header_name(field)),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn header_name(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() && starts_word(&chars, i) {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Whether the capital at `i` starts a word: after a lower-case letter (`CreatedAt`), or
/// ending an acronym before a word (`IPAddress`) but not before a plural `s` (`PIDs`).
fn starts_word(chars: &[char], i: usize) -> bool {
    let after_lower = chars[i - 1].is_lowercase();
    let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
    let plural = i + 2 == chars.len() && chars[i + 1] == 's';
    after_lower || (next_lower && !plural)
}

fn unescape(t: &str) -> String {
    t.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders a template against a JSON value: text with `{{.A.B}}`, `{{.}}`, `{{json .X}}`,
/// `{{index .X "key"}}`, `{{upper .X}}`, `{{lower .X}}` and `{{len .X}}` actions.
pub fn render(t: &str, data: &Value) -> Result<String> {
    let t = unescape(t);
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| anyhow!("template: unclosed action in {t:?}"))?;
        let action =
            rest[start + 2..start + end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        out.push_str(&eval_action(action, data)?);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval_action(action: &str, data: &Value) -> Result<String> {
    let words = split_words(action);
    match words.as_slice() {
        [path] => Ok(text(&lookup(data, path)?)),
        [f, path] if f == "json" => Ok(serde_json::to_string(&lookup(data, path)?)?),
        [f, path] if f == "upper" => Ok(text(&lookup(data, path)?).to_uppercase()),
        [f, path] if f == "lower" => Ok(text(&lookup(data, path)?).to_lowercase()),
        [f, path] if f == "len" => Ok(length(&lookup(data, path)?).to_string()),
        [f, path, key] if f == "index" => Ok(text(&index(&lookup(data, path)?, key))),
        _ => bail!("template: unsupported action {{{{{action}}}}}"),
    }
}

fn split_words(action: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in action.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Follows `.A.B.C` through objects (and numeric indexes through arrays).
pub fn lookup(data: &Value, path: &str) -> Result<Value> {
    let Some(path) = path.strip_prefix('.') else {
        bail!("template: {path:?} is not a field (fields start with a dot)");
    };
    let mut cur = data;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(part).unwrap_or(&Value::Null),
            Value::Array(a) => part
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    Ok(cur.clone())
}

fn index(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(m) => m.get(key).cloned().unwrap_or(Value::Null),
        Value::Array(a) => key
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get(i).cloned())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn length(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        Value::String(s) => s.len(),
        _ => 0,
    }
}

/// A size in decimal units with three significant digits, as docker prints them: `4.26MB`.
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes.max(0.0);
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{}{}", three_digits(v), UNITS[unit])
}

/// A size in binary units (`MiB`), as `stats` prints memory.
pub fn human_binary(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{}{}", three_digits(v), UNITS[unit])
}

fn three_digits(v: f64) -> String {
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A duration in words as docker prints "2 minutes" (`RunningFor`, `CREATED`).
pub fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as u64;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

/// Seconds since the epoch now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// "2 minutes ago" for a unix time.
pub fn ago(unix: i64) -> String {
    if unix <= 0 {
        return "N/A".into();
    }
    let secs = (now() as i64 - unix).max(0) as u64;
    format!("{} ago", human_duration(secs))
}

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.123Z`, offsets allowed) to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset) = split_offset(time)?;
    let mut c = clock.split(':');
    let h: i64 = c.next()?.parse().ok()?;
    let min: i64 = c.next()?.parse().ok()?;
    let sec: i64 = c.next()?.split('.').next()?.parse().ok()?;
    Some(days_from_civil(y, m, day) * 86400 + h * 3600 + min * 60 + sec - offset)
}

fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(t) = time.strip_suffix('Z') {
        return Some((t, 0));
    }
    let pos = time.rfind(['+', '-'])?;
    let (clock, off) = time.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let (h, m) = off[1..].split_once(':')?;
    Some((
        clock,
        sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// A unix time in nanoseconds as RFC 3339 UTC with nanoseconds (events).
pub fn rfc3339_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A time argument (`--since`, `--until`): unix seconds, RFC 3339, or a duration before now
/// (`10s`, `5m`, `2h`, `1h30m`), as a unix timestamp string for the API.
pub fn parse_time_arg(s: &str) -> Result<String> {
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_owned());
    }
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t.to_string());
    }
    let secs = parse_duration(s).ok_or_else(|| {
        anyhow!("invalid time {s:?}: use a unix time, an RFC 3339 time or a duration like 10m")
    })?;
    Ok((now() as i64 - secs as i64).to_string())
}

/// `1h30m`, `10s`, `250ms` (rounded down to seconds) as seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = std::mem::take(&mut num).parse().ok()?;
        total += n * match unit.as_str() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then_some(total as u64)
}

/// The first 12 characters of an id, without its `sha256:` prefix.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(4_264_000.0), "4.26MB");
        assert_eq!(human_size(4_300_000.0), "4.3MB");
        assert_eq!(human_size(12_340.0), "12.3kB");
        assert_eq!(human_size(1_500_000_000.0), "1.5GB");
        assert_eq!(human_binary(64.0 * 1024.0 * 1024.0), "64MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(150), "2 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(21 * 86400), "3 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(3 * 365 * 86400), "3 years");
    }

    #[test]
    fn templates() {
        let v = json!({"Names": "web", "State": {"Status": "running", "Pid": 42},
                       "Config": {"Labels": {"a.b": "c"}}, "List": [1, 2]});
        assert_eq!(render("{{.Names}}", &v).unwrap(), "web");
        assert_eq!(
            render("{{ .State.Status }}/{{.State.Pid}}", &v).unwrap(),
            "running/42"
        );
        assert_eq!(
            render("{{json .State}}", &v).unwrap(),
            r#"{"Pid":42,"Status":"running"}"#
        );
        assert_eq!(
            render(r#"{{index .Config.Labels "a.b"}}"#, &v).unwrap(),
            "c"
        );
        assert_eq!(
            render("{{len .List}} {{upper .Names}}", &v).unwrap(),
            "2 WEB"
        );
        assert_eq!(render("{{.Missing}}", &v).unwrap(), "<no value>");
        assert_eq!(
            render("{{.List}} {{.Config.Labels}}", &v).unwrap(),
            "[1 2] map[a.b:c]"
        );
        assert_eq!(render("a\\tb", &v).unwrap(), "a\tb");
        assert!(render("{{.Names", &v).is_err());
        assert!(render("{{Names}}", &v).is_err());
        assert_eq!(
            render("{{json .}}", &json!({"a": 1})).unwrap(),
            r#"{"a":1}"#
        );
    }

    #[test]
    fn headers_and_tables() {
        assert_eq!(
            template_header("{{.ID}}\\t{{.CreatedAt}}", &[]),
            "ID\tCREATED AT"
        );
        assert_eq!(template_header("{{.Names}}", &[]), "NAMES");
        assert_eq!(
            template_header("{{.IPAddress}} {{.PIDs}}", &[]),
            "IP ADDRESS PIDS"
        );
        assert_eq!(
            template_header("{{.ID}} {{.Size}}", &[("CONTAINER ID", "ID")]),
            "CONTAINER ID SIZE"
        );
        let t = table(
            vec!["A".into(), "LONGER".into()],
            vec![vec!["xxxxx".into(), "y".into()]],
        );
        assert_eq!(t, "A       LONGER\nxxxxx   y\n");
        assert!(matches!(Format::parse(Some("json")), Format::Json));
        assert!(matches!(
            Format::parse(Some("table {{.ID}}")),
            Format::TableTemplate(_)
        ));
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(
            parse_rfc3339("2024-03-01T12:30:00.5+01:00"),
            Some(1709292600)
        );
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("10s"), Some(10));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_time_arg("1700000000").unwrap(), "1700000000");
        assert!(parse_time_arg("soon").is_err());
        assert_eq!(
            rfc3339_nanos(1_709_292_600_000_000_000),
            "2024-03-01T11:30:00.000000000Z"
        );
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
