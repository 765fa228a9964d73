//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-25T08:00:00.123456789Z"}`, rotated by size
//! into `<file>.1` … `<file>.N` (the higher, the older), as dockerd's json-file driver does, so
//! tools that read Docker's log files read berth's. With `compress`, each rotated file is
//! gzipped right after its rotation (`<file>.1.gz` …), and reading spans those too.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Docker splits lines longer than this into several entries.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

/// `--log-opt max-size`, `max-file` and `compress` (see [`crate::logdriver`]): no limit by
/// default, as in Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub max_size: Option<u64>,
    pub max_files: u32,
    /// Rotated files are gzipped.
    #[serde(default)]
    pub compress: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: None,
            max_files: 1,
            compress: false,
        }
    }
}

/// Appends a container's output to its log, a line per entry, rotating when it is full.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    /// Output after the last newline, per stream, until its line is complete.
    pending: [Vec<u8>; 2],
}

impl Writer {
    pub fn open(path: &Path, rotation: Rotation) -> Result<Writer> {
        if rotation.max_files == 0 {
            return Err(Error::Invalid(
                "max-file must be at least 1: it counts the current log file".into(),
            ));
        }
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes output as it comes; every complete line (or 16 KiB of one) becomes an entry.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        let slot = stream as usize;
        self.pending[slot].extend_from_slice(bytes);
        loop {
            let buf = &self.pending[slot];
            let cut = match buf.iter().position(|b| *b == b'\n') {
                Some(nl) if nl < MAX_LINE => nl + 1,
                _ if buf.len() >= MAX_LINE => MAX_LINE,
                _ => return Ok(()),
            };
            let line: Vec<u8> = self.pending[slot].drain(..cut).collect();
            self.append(stream, &line)?;
        }
    }

    /// At the end of the output: what is left of an unfinished line is written as it is.
    pub fn finish(&mut self) -> Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.append(stream, &rest)?;
            }
        }
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("sync {}", self.path.display()), e))
    }

    fn append(&mut self, stream: Stream, line: &[u8]) -> Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: OffsetDateTime::now_utc(),
        };
        let mut json = serde_json::to_vec(&entry)
            .map_err(|e| Error::Invalid(format!("encode a log entry: {e}")))?;
        json.push(b'\n');
        if let Some(max) = self.rotation.max_size {
            if self.size > 0 && self.size + json.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file
            .write_all(&json)
            .map_err(|e| Error::io(format!("write {}", self.path.display()), e))?;
        self.size += json.len() as u64;
        Ok(())
    }

    /// file.N-1 → file.N, …, file → file.1 (each with its `.gz` when compressed), and a new
    /// empty file; with max-file 1 the log simply starts again. The new file is there before
    /// file.1 is compressed, so followers go on at once.
    fn rotate(&mut self) -> Result<()> {
        let keep = self.rotation.max_files - 1;
        if keep == 0 {
            std::fs::remove_file(&self.path)
                .map_err(|e| Error::io(format!("remove {}", self.path.display()), e))?;
        } else {
            for n in (1..keep).rev() {
                remove_rotated(&self.path, n + 1)?;
                for (from, to) in [
                    (rotated(&self.path, n), rotated(&self.path, n + 1)),
                    (gzipped(&self.path, n), gzipped(&self.path, n + 1)),
                ] {
                    if from.exists() {
                        rename(&from, &to)?;
                    }
                }
            }
            remove_rotated(&self.path, 1)?;
            rename(&self.path, &rotated(&self.path, 1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        if keep > 0 && self.rotation.compress {
            let gz = gzipped(&self.path, 1);
            // The plain file stays readable; losing output for want of compression is worse.
            if let Err(e) = compress(&rotated(&self.path, 1), &gz) {
                tracing::warn!("{e}; the rotated log stays uncompressed");
                let _ = std::fs::remove_file(&gz);
            }
        }
        Ok(())
    }
}

/// Gzips `plain` into `gz`, then removes `plain`. Readers prefer the plain file while both
/// are there, so a half-written `.gz` (a crash) is never read in its place. The fastest level
/// keeps the pause in the shim's copying short.
fn compress(plain: &Path, gz: &Path) -> Result<()> {
    use flate2::{write::GzEncoder, Compression};
    let mut input = File::open(plain).map_err(io_error("open", plain))?;
    let out = File::create(gz).map_err(io_error("create", gz))?;
    let mut encoder = GzEncoder::new(BufWriter::new(out), Compression::fast());
    std::io::copy(&mut input, &mut encoder).map_err(io_error("compress", plain))?;
    encoder
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(io_error("write", gz))?;
    std::fs::remove_file(plain).map_err(io_error("remove", plain))
}

/// Removes rotated file `n`, plain and compressed, if there.
fn remove_rotated(path: &Path, n: u32) -> Result<()> {
    for f in [rotated(path, n), gzipped(path, n)] {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error("remove", &f)(e))
            }
            _ => {}
        }
    }
    Ok(())
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(format!("rotate {}", from.display()), e))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn gzipped(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}.gz"));
    PathBuf::from(name)
}

/// What `logs` asks for: `--tail`, `--since`, `--until`, and which streams.
#[derive(Debug, Clone)]
pub struct Query {
    pub tail: Option<usize>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub stdout: bool,
    pub stderr: bool,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            tail: None,
            since: None,
            until: None,
            stdout: true,
            stderr: true,
        }
    }
}

/// The entries of a log and its rotated files, oldest first, filtered by the query. A line
/// that cannot be parsed (a file cut short by a crash) is skipped.
pub fn read(path: &Path, query: &Query) -> Result<Vec<Entry>> {
    Ok(read_and_follow(path, query)?.0)
}

/// As `read`, and a `Follower` that reads what is appended to the log from there on.
pub fn read_and_follow(path: &Path, query: &Query) -> Result<(Vec<Entry>, Follower)> {
    let rotated_count = (1..)
        .take_while(|n| rotated(path, *n).exists() || gzipped(path, *n).exists())
        .count() as u32;
    let mut out = Vec::new();
    for n in (1..=rotated_count).rev() {
        read_rotated(path, n, &mut out, query)?;
    }
    let mut follower = Follower {
        path: path.to_path_buf(),
        file: None,
        partial: Vec::new(),
        query: query.clone(),
    };
    out.extend(follower.read_new()?);
    if let Some(n) = query.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok((out, follower))
}

/// Rotated file `n`: the plain one while it is there (it may be being compressed), else its
/// `.gz`. One that went meanwhile (a rotation under the reader) is skipped.
fn read_rotated(path: &Path, n: u32, out: &mut Vec<Entry>, query: &Query) -> Result<()> {
    let plain = rotated(path, n);
    match File::open(&plain) {
        Ok(f) => return read_lines(f, &plain, out, query),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error("open", &plain)(e))
        }
        Err(_) => {}
    }
    let gz = gzipped(path, n);
    match File::open(&gz) {
        Ok(f) => read_gz_lines(f, &gz, out, query),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("open", &gz)(e)),
    }
}

fn read_lines(file: impl Read, path: &Path, out: &mut Vec<Entry>, query: &Query) -> Result<()> {
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io_error("read", path))?;
        push_entry(out, &line, query);
    }
    Ok(())
}

/// A compressed file's lines. One cut short (the shim died while writing it, and its plain
/// file was kept) ends where its data does, as a plain file cut by a crash would.
fn read_gz_lines(file: File, path: &Path, out: &mut Vec<Entry>, query: &Query) -> Result<()> {
    use std::io::ErrorKind;
    let decoder = flate2::read::GzDecoder::new(file);
    for line in BufReader::new(decoder).split(b'\n') {
        match line {
            Ok(line) => push_entry(out, &line, query),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::InvalidData | ErrorKind::InvalidInput
                ) =>
            {
                break
            }
            Err(e) => return Err(io_error("read", path)(e)),
        }
    }
    Ok(())
}

fn push_entry(out: &mut Vec<Entry>, line: &[u8], query: &Query) {
    if let Ok(entry) = serde_json::from_slice::<Entry>(line) {
        if wanted(&entry, query) {
            out.push(entry);
        }
    }
}

/// A stream that yields whenever something in the log's directory is written, created or
/// renamed (appends and rotations), for `Follower::read_new`.
pub fn watch_dir(path: &Path) -> Result<inotify::EventStream<Vec<u8>>> {
    use inotify::{Inotify, WatchMask};
    let dir = path.parent().unwrap_or(Path::new("/"));
    let what = || format!("watch {}", dir.display());
    let inotify = Inotify::init().map_err(|e| Error::io(what(), e))?;
    inotify
        .watches()
        .add(
            dir,
            WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO,
        )
        .map_err(|e| Error::io(what(), e))?;
    inotify
        .into_event_stream(vec![0u8; 4096])
        .map_err(|e| Error::io(what(), e))
}

/// Reads a log's new entries as they are appended (`logs --follow`). It keeps the file it
/// reads open: that pins the inode, so a rotation (a new file under the same name) is seen
/// even when the file system hands the new file an inode number it had used before, and the
/// old file's last lines are read before it goes on at the new file's beginning.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    /// The start of a line not yet complete.
    partial: Vec<u8>,
    query: Query,
}

impl Follower {
    /// The log's file, whose directory to watch for changes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines appended since the last call.
    pub fn read_new(&mut self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if self.file.is_none() {
            self.file = self.open()?;
        }
        while let Some(file) = self.file.as_mut() {
            let mut bytes = std::mem::take(&mut self.partial);
            std::io::Read::read_to_end(file, &mut bytes).map_err(io_error("read", &self.path))?;
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            self.partial = bytes.split_off(complete);
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                push_entry(&mut out, line, &self.query);
            }
            if !self.rotated()? {
                break;
            }
            // The writer only writes whole lines, so a partial one was cut by a crash.
            self.partial.clear();
            self.file = self.open()?;
        }
        Ok(out)
    }

    fn open(&self) -> Result<Option<File>> {
        match File::open(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("open", &self.path)(e)),
        }
    }

    /// Whether the name now holds another file than the one being read, or the file was
    /// truncated under the reader.
    fn rotated(&mut self) -> Result<bool> {
        use std::io::Seek;
        use std::os::unix::fs::MetadataExt;
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        let held = file.metadata().map_err(io_error("stat", &self.path))?;
        let at = file
            .stream_position()
            .map_err(io_error("seek", &self.path))?;
        let named = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            // Renamed away and not yet recreated: wait for the new file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("stat", &self.path)(e)),
        };
        Ok((named.dev(), named.ino()) != (held.dev(), held.ino()) || held.len() < at)
    }
}

/// The error for `what` failing on the log at `path`, made only when it fails.
fn io_error<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(format!("{what} {}", path.display()), e)
}

fn wanted(e: &Entry, q: &Query) -> bool {
    let stream = match e.stream {
        Stream::Stdout => q.stdout,
        Stream::Stderr => q.stderr,
    };
    // Both bounds are inclusive, as in Docker (a line at exactly `until` is shown).
    stream && q.since.is_none_or(|s| e.time >= s) && q.until.is_none_or(|u| e.time <= u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(|e| e.log.clone()).collect()
    }

    #[test]
    fn lines_are_entries_in_dockers_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = Writer::open(&path, Rotation::default()).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nwor").unwrap();
        w.finish().unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
        assert_eq!(first["log"], "oops\n");
        assert_eq!(first["stream"], "stderr");
        assert!(first["time"].as_str().unwrap().ends_with('Z'));
        let all = read(&path, &Query::default()).unwrap();
        assert_eq!(texts(&all), ["oops\n", "hello\n", "wor"]);
        let out_only = Query {
            stderr: false,
            ..Query::default()
        };
        assert_eq!(texts(&read(&path, &out_only).unwrap()), ["hello\n", "wor"]);
    }

    #[test]
    fn a_follower_reads_only_what_is_appended_and_starts_over_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: Some(200),
            max_files: 2,
            ..Rotation::default()
        };
        let mut w = Writer::open(&path, rotation).unwrap();
        w.write(Stream::Stdout, b"one\n").unwrap();
        let (first, mut follower) = read_and_follow(&path, &Query::default()).unwrap();
        assert_eq!(texts(&first), ["one\n"]);
        assert!(follower.read_new().unwrap().is_empty());
        w.write(Stream::Stderr, b"two\n").unwrap();
        assert_eq!(texts(&follower.read_new().unwrap()), ["two\n"]);
        // Enough to rotate: the follower goes on in the new file.
        for _ in 0..5 {
            w.write(Stream::Stdout, b"a longer line that fills the file\n")
                .unwrap();
        }
        w.write(Stream::Stdout, b"last\n").unwrap();
        let after = texts(&follower.read_new().unwrap());
        // The old file's tail is read before the new file's lines.
        assert_eq!(after[0], "a longer line that fills the file\n");
        assert_eq!(after.last().map(String::as_str), Some("last\n"));
        assert!(follower.read_new().unwrap().is_empty());
    }

    #[test]
    fn long_lines_are_split_at_16k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::open(&path, Rotation::default()).unwrap();
        let mut long = vec![b'x'; MAX_LINE + 10];
        long.push(b'\n');
        w.write(Stream::Stdout, &long).unwrap();
        w.finish().unwrap();
        let all = read(&path, &Query::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].log.len(), MAX_LINE);
        assert_eq!(all[1].log.len(), 11);
    }

    #[test]
    fn rotation_keeps_max_files_and_reading_spans_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rotation = Rotation {
            max_size: Some(200),
            max_files: 3,
            ..Rotation::default()
        };
        let mut w = Writer::open(&path, rotation).unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
        assert!(rotated(&path, 2).exists() && !rotated(&path, 3).exists());
        for f in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert!(std::fs::metadata(&f).unwrap().len() <= 200);
        }
        let all = texts(&read(&path, &Query::default()).unwrap());
        // The oldest went with the third rotation; the rest are in order.
        assert_eq!(all.last().unwrap(), "line 19\n");
        let numbers: Vec<u32> = all.iter().map(|l| l[5..7].parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(numbers[0] > 0, "the oldest lines were dropped");
        let tail = Query {
            tail: Some(2),
            ..Query::default()
        };
        assert_eq!(
            texts(&read(&path, &tail).unwrap()),
            ["line 18\n", "line 19\n"]
        );
    }

    #[test]
    fn since_and_until_bound_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let at = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let mut f = File::create(&path).unwrap();
        for (t, l) in [
            ("2026-01-01T00:00:00Z", "a"),
            ("2026-01-02T00:00:00Z", "b"),
            ("2026-01-03T00:00:00Z", "c"),
        ] {
            let e = Entry {
                log: l.into(),
                stream: Stream::Stdout,
                time: at(t),
            };
            writeln!(f, "{}", serde_json::to_string(&e).unwrap()).unwrap();
        }
        // A line cut short by a crash is skipped, not an error.
        write!(f, "{{\"log\":\"d").unwrap();
        let q = Query {
            since: Some(at("2026-01-02T00:00:00Z")),
            until: Some(at("2026-01-03T00:00:00Z")),
            ..Query::default()
        };
        assert_eq!(texts(&read(&path, &q).unwrap()), ["b", "c"]);
        let q = Query {
            since: Some(at("2026-01-01T00:00:01Z")),
            until: Some(at("2026-01-02T23:59:59Z")),
            ..Query::default()
        };
        assert_eq!(texts(&read(&path, &q).unwrap()), ["b"]);
    }

    fn compressed(max_files: u32) -> Rotation {
        // About five lines a file.
        Rotation {
            max_size: Some(400),
            max_files,
            compress: true,
        }
    }

    fn numbers(entries: &[Entry]) -> Vec<u32> {
        entries
            .iter()
            .map(|e| e.log[5..7].parse().unwrap())
            .collect()
    }

    #[test]
    fn rotated_files_are_gzipped_and_reading_spans_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::open(&path, compressed(3)).unwrap();
        for i in 0..30 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
        for n in 1..=2 {
            assert!(!rotated(&path, n).exists(), "plain file {n} is left");
            let gz = std::fs::read(gzipped(&path, n)).unwrap();
            assert_eq!(gz[..2], [0x1f, 0x8b], "file {n} is not gzip");
        }
        assert!(!gzipped(&path, 3).exists() && !rotated(&path, 3).exists());
        let all = read(&path, &Query::default()).unwrap();
        let nums = numbers(&all);
        assert_eq!(nums.last(), Some(&29));
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        // The current file holds only a few lines: a tail of 8 reaches into the .gz files.
        let current = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(current < 8, "{current} lines in the current file");
        let tail = Query {
            tail: Some(8),
            ..Query::default()
        };
        assert_eq!(
            numbers(&read(&path, &tail).unwrap()),
            (22..30).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_follower_goes_on_across_compressed_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::open(&path, compressed(2)).unwrap();
        w.write(Stream::Stdout, b"line 00\n").unwrap();
        let tail = Query {
            tail: Some(1),
            ..Query::default()
        };
        let (first, mut follower) = read_and_follow(&path, &tail).unwrap();
        assert_eq!(numbers(&first), [0]);
        let mut seen = Vec::new();
        for i in 1..40 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
            // Read after each line: at most one rotation between two reads.
            seen.extend(numbers(&follower.read_new().unwrap()));
        }
        assert_eq!(seen, (1..40).collect::<Vec<_>>());
        assert!(
            gzipped(&path, 1).exists(),
            "no compressed rotation happened"
        );
    }

    #[test]
    fn a_half_compressed_file_is_read_from_its_plain_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::open(&path, Rotation::default()).unwrap();
        for i in 0..4 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
        // As a shim that died while compressing file 1 leaves it: plain, and a .gz cut short.
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        compress_copy(&rotated(&path, 1), &gzipped(&path, 1));
        let full = std::fs::read(gzipped(&path, 1)).unwrap();
        std::fs::write(gzipped(&path, 1), &full[..full.len() / 2]).unwrap();
        assert_eq!(
            numbers(&read(&path, &Query::default()).unwrap()),
            [0, 1, 2, 3]
        );
        // Without its plain copy, a cut .gz gives what it holds, and no error.
        std::fs::remove_file(rotated(&path, 1)).unwrap();
        let partial = numbers(&read(&path, &Query::default()).unwrap());
        assert!(partial.len() < 4 && partial.iter().enumerate().all(|(i, n)| *n == i as u32));
    }

    /// `compress`, keeping the plain file.
    fn compress_copy(plain: &Path, gz: &Path) {
        let copy = plain.with_extension("copy");
        std::fs::copy(plain, &copy).unwrap();
        compress(&copy, gz).unwrap();
    }

    #[test]
    fn max_file_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Writer::open(
            &dir.path().join("log"),
            Rotation {
                max_size: Some(10),
                max_files: 0,
                ..Rotation::default()
            },
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("max-file"));
    }
}
