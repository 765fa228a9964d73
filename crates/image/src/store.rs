//! The content store: blobs by digest under `blobs/<alg>/<hex>`.
//!
//! A blob is written to `ingest/` first, hashed while it streams in, fsynced, checked against
//! its digest and size, and only then renamed into `blobs/`. So whatever moment a crash hits,
//! every file under `blobs/` matches its name. A download of a known digest goes to
//! `ingest/<alg>-<hex>.partial` under an exclusive `flock`: a second pull of the same blob,
//! in this process or another, waits for the first and then finds the blob there, so it is
//! fetched once; a pull cut off half-way leaves the partial file for the next one to resume.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating) a store under `root`, which gets `blobs/` and `ingest/`.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let blobs = root.join("blobs");
        let ingest = root.join("ingest");
        for dir in [blobs.join("sha256"), blobs.join("sha512"), ingest.clone()] {
            fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        }
        Ok(ContentStore { blobs, ingest })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.algorithm().as_str()).join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn size(&self, d: &Digest) -> Result<u64> {
        let p = self.path(d);
        Ok(fs::metadata(&p)
            .map_err(Error::io(format!("blob {d}")))?
            .len())
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).map_err(Error::io(format!("open blob {d}")))
    }

    /// Reads a whole blob (manifests and configs: small).
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        fs::read(self.path(d)).map_err(Error::io(format!("read blob {d}")))
    }

    /// Stores bytes in one go, checking them against `expected` when given.
    pub fn write_bytes(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(Error::io("write blob"))?;
        w.commit(expected, Some(bytes.len() as u64), "blob")
    }

    /// Streams `r` into the store; returns its digest and size.
    pub fn write_reader(
        &self,
        r: &mut dyn Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        io::copy(r, &mut w).map_err(Error::io(format!("write {what}")))?;
        let size = w.written;
        Ok((w.commit(expected, None, what)?, size))
    }

    /// A writer for a blob whose digest will be known at the end.
    pub fn writer(&self) -> Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            .prefix("tmp-")
            .tempfile_in(&self.ingest)
            .map_err(Error::io("create ingest file"))?;
        let (file, path) = tmp
            .keep()
            .map_err(|e| Error::io("keep ingest file")(e.error))?;
        Ok(BlobWriter {
            store: self.clone(),
            file,
            path,
            hasher: Hasher::new(Algorithm::Sha256),
            written: 0,
            lock: None,
            remove_on_drop: true,
        })
    }

    /// Claims the download of blob `d`. Waits while another writer holds it. Returns `None`
    /// when the blob is already stored (perhaps by the writer we waited for).
    pub fn begin_blocking(&self, d: &Digest) -> Result<Option<BlobWriter>> {
        if self.contains(d) {
            return Ok(None);
        }
        let path = self
            .ingest
            .join(format!("{}-{}.partial", d.algorithm().as_str(), d.hex()));
        let lock = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(Error::io(format!("open {}", path.display())))?;
            let lock = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| Error::io(format!("lock {}", path.display()))(e.into()))?;
            if self.contains(d) {
                return Ok(None);
            }
            // The writer we waited for may have thrown its file away (bad data): then our
            // handle is to an unlinked file and we start over on a fresh one.
            if same_file(&lock, &path) {
                break lock;
            }
        };
        let file = lock
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(Error::io("dup ingest fd"))?;
        let mut w = BlobWriter {
            store: self.clone(),
            file,
            path,
            hasher: Hasher::new(d.algorithm()),
            written: 0,
            lock: Some(lock),
            remove_on_drop: false,
        };
        w.rehash_existing()?;
        Ok(Some(w))
    }

    /// `begin_blocking` off the async runtime's threads (it may wait on a lock).
    pub async fn begin(&self, d: &Digest) -> Result<Option<BlobWriter>> {
        let store = self.clone();
        let d = d.clone();
        tokio::task::spawn_blocking(move || store.begin_blocking(&d))
            .await
            .map_err(|e| Error::io("ingest task")(io::Error::other(e)))?
    }

    /// Every stored blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.blobs.join(alg);
            for entry in fs::read_dir(&dir).map_err(Error::io(format!("list {}", dir.display())))? {
                let entry = entry.map_err(Error::io("list blobs"))?;
                if let Ok(d) = format!("{alg}:{}", entry.file_name().to_string_lossy()).parse() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    pub fn delete(&self, d: &Digest) -> Result<()> {
        match fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(format!("delete blob {d}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes ingest files nobody is writing (partial downloads given up on).
    pub fn clean_ingest(&self) -> Result<()> {
        for entry in fs::read_dir(&self.ingest).map_err(Error::io("list ingest"))? {
            let path = entry.map_err(Error::io("list ingest"))?.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            // A writer holds the lock for as long as it lives: skip those.
            if let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

/// A blob being written. Dropped without `commit`, a temporary one is deleted and a
/// partial download is kept for resuming.
pub struct BlobWriter {
    store: ContentStore,
    file: File,
    path: PathBuf,
    hasher: Hasher,
    written: u64,
    lock: Option<Flock<File>>,
    remove_on_drop: bool,
}

impl BlobWriter {
    /// Bytes already written (by an interrupted earlier attempt, for a resumed download).
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// Forgets what was written: the source could not resume where we were.
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(Error::io("truncate ingest file"))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(Error::io("seek ingest file"))?;
        self.hasher = Hasher::new(match &self.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        });
        self.written = 0;
        Ok(())
    }

    fn rehash_existing(&mut self) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(Error::io("seek ingest file"))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .file
                .read(&mut buf)
                .map_err(Error::io("read partial download"))?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            self.written += n as u64;
        }
        Ok(())
    }

    /// Verifies and publishes the blob. On a mismatch the data is thrown away (a partial
    /// download too: it cannot be trusted to resume from).
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
        what: &str,
    ) -> Result<Digest> {
        let actual = std::mem::replace(&mut self.hasher, Hasher::new(Algorithm::Sha256)).finish();
        let check = self.check(&actual, expected, expected_size, what);
        if check.is_err() {
            let _ = fs::remove_file(&self.path);
            return check.map(|_| actual);
        }
        self.file.sync_all().map_err(Error::io("sync blob"))?;
        let dest = self.store.path(&actual);
        fs::rename(&self.path, &dest).map_err(Error::io(format!("store blob {actual}")))?;
        sync_dir(dest.parent().expect("blob dir"))?;
        self.remove_on_drop = false;
        Ok(actual)
    }

    fn check(
        &self,
        actual: &Digest,
        expected: Option<&Digest>,
        size: Option<u64>,
        what: &str,
    ) -> Result<()> {
        if let Some(size) = size {
            if size != self.written {
                return Err(Error::SizeMismatch {
                    what: what.to_string(),
                    expected: size,
                    actual: self.written,
                });
            }
        }
        match expected {
            Some(e) if e != actual => Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: e.clone(),
                actual: actual.clone(),
            }),
            _ => Ok(()),
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = fs::remove_file(&self.path);
        }
        // The lock (if any) is released when `self.lock` drops, after the rename.
        let _ = self.lock.take();
    }
}

fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(format!("sync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn write_verify_and_reject() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let d = s.write_bytes(b"hello", None).unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(s.read(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let err = s.write_bytes(b"hello!", Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!s.contains(&wrong));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        assert_eq!(s.list().unwrap(), vec![d]);
    }

    #[test]
    fn partial_download_resumes_and_bad_partial_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let data = b"0123456789abcdef";
        let d = Digest::of(data);
        {
            let mut w = s.begin_blocking(&d).unwrap().unwrap();
            w.write_all(&data[..6]).unwrap();
            // dropped: interrupted download
        }
        let mut w = s.begin_blocking(&d).unwrap().unwrap();
        assert_eq!(w.offset(), 6);
        w.write_all(&data[6..]).unwrap();
        w.commit(Some(&d), Some(16), "blob").unwrap();
        assert!(s.begin_blocking(&d).unwrap().is_none());

        let d2 = Digest::of(b"xyz");
        let mut w = s.begin_blocking(&d2).unwrap().unwrap();
        w.write_all(b"xyZ").unwrap();
        assert!(w.commit(Some(&d2), None, "blob").is_err());
        assert!(!s.contains(&d2));
        let w = s.begin_blocking(&d2).unwrap().unwrap();
        assert_eq!(w.offset(), 0);
    }

    #[test]
    fn concurrent_ingest_of_one_digest_writes_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let data = vec![42u8; 1 << 20];
        let d = Digest::of(&data);
        let downloads = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, d, data, downloads) =
                    (s.clone(), d.clone(), data.clone(), downloads.clone());
                std::thread::spawn(move || {
                    if let Some(mut w) = s.begin_blocking(&d).unwrap() {
                        downloads.fetch_add(1, Ordering::SeqCst);
                        for chunk in data.chunks(4096) {
                            w.write_all(chunk).unwrap();
                        }
                        w.commit(Some(&d), Some(data.len() as u64), "blob").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(downloads.load(Ordering::SeqCst), 1);
        assert_eq!(s.read(&d).unwrap(), data);
        s.clean_ingest().unwrap();
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }
}
