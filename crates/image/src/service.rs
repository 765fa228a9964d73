//! `ImageService`: what the engine calls. It ties the content store, snapshots, image
//! database and registry client into user actions: pull, push, list, inspect, tag, remove,
//! prune, login/logout (archives live in `archive/`).
//!
//! Pulls, loads and imports hold a shared lock on `<root>/gc.lock` while they add files
//! not yet recorded in the database; deletion of files takes it exclusively, so garbage
//! collection never takes a blob or snapshot that a running pull is about to record.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use futures::{StreamExt, TryStreamExt};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, ImageConfiguration};

use crate::digest::{chain_ids, Digest};
use crate::error::{Error, Result};
use crate::idmap::IdMap;
use crate::images::{Garbage, ImageDb, ImageRecord, Layer};
use crate::manifest::{self, Config, Parsed, Platform};
use crate::progress::{Progress, ProgressSink};
use crate::reference::Reference;
use crate::registry::{BlobPush, Credentials, RegistryClient, RegistryOptions, Repo};
use crate::snapshot::{self, Snapshots};
use crate::store::ContentStore;
use crate::unpack::Limits;

/// Tells which containers use an image; the engine provides it.
pub trait UsageCheck: Send + Sync {
    fn users(&self, image: &Digest) -> Vec<String>;
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Everything lives under here: blobs/, ingest/, snapshots/, images.db.
    pub root: PathBuf,
    pub registry: RegistryOptions,
    pub limits: Limits,
    /// Layers downloaded at once.
    pub parallel: usize,
    /// Layers uploaded at once.
    pub uploads: usize,
    /// Mirrors of Docker Hub (base URLs), tried in order before it for docker.io pulls.
    pub mirrors: Vec<String>,
    /// Layer owners as the host stores them (shifted under userns-remap).
    pub ids: IdMap,
}

impl Options {
    pub fn new(root: impl Into<PathBuf>) -> Options {
        Options {
            root: root.into(),
            registry: RegistryOptions::default(),
            limits: Limits::default(),
            parallel: 4,
            uploads: 5,
            mirrors: Vec::new(),
            ids: IdMap::default(),
        }
    }
}

/// The daemon's registry settings that a reload may change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfers {
    pub mirrors: Vec<String>,
    pub insecure: Vec<String>,
    pub downloads: usize,
    pub uploads: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Which image of a multi-platform index; linux on the host's architecture by default.
    pub platform: Option<Platform>,
    pub progress: ProgressSink,
}

/// What `remove` did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(Reference),
    Deleted(Digest),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub images: Vec<Digest>,
    pub snapshots: usize,
    pub blobs: usize,
}

/// `inspect`'s answer: the record plus the parsed config (cmd, entrypoint, env, workdir,
/// ports, user, labels, history).
#[derive(Debug, Clone)]
pub struct Inspect {
    pub image: ImageRecord,
    pub config: ImageConfiguration,
    /// The config as stored, with fields oci-spec does not model (Docker's extras).
    pub raw_config: serde_json::Value,
}

pub struct ImageService {
    pub(crate) root: PathBuf,
    pub(crate) store: ContentStore,
    pub(crate) snapshots: Snapshots,
    db: Mutex<ImageDb>,
    registry: RegistryClient,
    pub(crate) limits: Limits,
    parallel: AtomicUsize,
    uploads: AtomicUsize,
    mirrors: RwLock<Vec<String>>,
    usage: RwLock<Option<Arc<dyn UsageCheck>>>,
}

impl ImageService {
    pub fn open(opts: Options) -> Result<ImageService> {
        std::fs::create_dir_all(&opts.root)
            .map_err(Error::io(format!("create {}", opts.root.display())))?;
        let transfers = Transfers {
            mirrors: opts.mirrors.clone(),
            insecure: opts.registry.insecure.clone(),
            downloads: opts.parallel,
            uploads: opts.uploads,
        };
        let service = ImageService {
            store: ContentStore::open(&opts.root)?,
            snapshots: Snapshots::open(&opts.root, &opts.ids)?,
            db: Mutex::new(ImageDb::open(&opts.root.join("images.db"))?),
            registry: RegistryClient::new(opts.registry)?,
            limits: opts.limits,
            parallel: AtomicUsize::new(1),
            uploads: AtomicUsize::new(1),
            mirrors: RwLock::new(Vec::new()),
            usage: RwLock::new(None),
            root: opts.root,
        };
        service.set_transfers(&transfers);
        Ok(service)
    }

    /// Applies the daemon's registry settings (at start and on reload): mirrors, insecure
    /// registries, and how many layers move at once.
    pub fn set_transfers(&self, t: &Transfers) {
        for m in &t.mirrors {
            if let Some(host) = m.strip_prefix("http://") {
                self.registry.set_scheme(host, "http");
            }
        }
        *self.mirrors.write().unwrap_or_else(|p| p.into_inner()) = t.mirrors.clone();
        self.registry.set_insecure(t.insecure.clone());
        self.parallel.store(t.downloads.max(1), Ordering::Relaxed);
        self.uploads.store(t.uploads.max(1), Ordering::Relaxed);
    }

    /// Installs the engine's answer to "which containers use this image".
    /// The directory given at open.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn set_usage_check(&self, check: Arc<dyn UsageCheck>) {
        *self.usage.write().unwrap() = Some(check);
    }

    fn users(&self, id: &Digest) -> Vec<String> {
        self.usage
            .read()
            .unwrap()
            .as_ref()
            .map(|c| c.users(id))
            .unwrap_or_default()
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, ImageDb> {
        self.db.lock().unwrap()
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    fn gc_lock_blocking(&self, exclusive: bool) -> Result<Flock<File>> {
        lock_gc(&self.root, exclusive)
    }

    pub(crate) async fn gc_shared(&self) -> Result<Flock<File>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || lock_gc(&root, false))
            .await
            .map_err(|e| Error::io("lock task")(std::io::Error::other(e)))?
    }

    pub(crate) fn gc_shared_blocking(&self) -> Result<Flock<File>> {
        self.gc_lock_blocking(false)
    }

    // ---------------------------------------------------------------- pull

    /// Pulls an image and returns it as recorded. Layers download in parallel and each is
    /// unpacked into its snapshot as soon as it is in; the image becomes visible (one
    /// transaction) only once every layer is verified and unpacked.
    /// Docker Hub images come from the daemon's mirrors first, in order, then from Docker Hub
    /// when no mirror has them (or none answers).
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<ImageRecord> {
        let r: Reference = reference.parse()?;
        let _gc = self.gc_shared().await?;
        let mirrors = if r.registry() == crate::reference::DEFAULT_REGISTRY {
            self.mirrors
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            Vec::new()
        };
        for mirror in &mirrors {
            let host = mirror.split_once("://").map_or(mirror.as_str(), |(_, h)| h);
            let repo = Repo {
                registry: host,
                host,
                name: r.repository(),
            };
            match self.pull_from(&r, &repo, opts).await {
                Ok(record) => return Ok(record),
                Err(e) => {
                    tracing::info!("mirror {mirror} did not serve {r}: {e}; trying the next source")
                }
            }
        }
        let repo = Repo {
            registry: r.registry(),
            host: r.api_host(),
            name: r.repository(),
        };
        self.pull_from(&r, &repo, opts).await
    }

    /// Pulls `r` from the registry `repo` names.
    async fn pull_from(
        &self,
        r: &Reference,
        repo: &Repo<'_>,
        opts: &PullOptions,
    ) -> Result<ImageRecord> {
        let (bytes, ct, top) = self.registry.get_manifest(repo, &r.manifest_ref()).await?;
        let want = opts.platform.clone().unwrap_or_default();
        let (manifest_bytes, media_type, manifest_digest) = self
            .resolve_index(repo, bytes, ct, top.clone(), &want)
            .await?;
        let Parsed::Image { manifest, .. } = manifest::parse(&manifest_bytes, Some(&media_type))?
        else {
            return Err(Error::manifest(
                "manifest",
                "an index inside an index is not supported",
            ));
        };
        let config_digest = manifest::digest_of(manifest.config())?;
        self.fetch_blob(repo, manifest.config(), &ProgressSink::default())
            .await?;
        let config = Config::parse(&self.store.read(&config_digest)?)?;
        manifest::check_layers_match(&manifest, &config)?;
        opts.progress.send(Progress::Resolved {
            reference: r.to_string(),
            digest: manifest_digest.clone(),
            layers: manifest.layers().len(),
        });

        let chains = chain_ids(&config.diff_ids);
        let jobs = manifest
            .layers()
            .iter()
            .zip(&config.diff_ids)
            .zip(&chains)
            .map(|((d, diff), chain)| self.pull_layer(repo, d, diff, chain, &opts.progress));
        let layers: Vec<Layer> = futures::stream::iter(jobs)
            .buffered(self.parallel.load(Ordering::Relaxed))
            .try_collect()
            .await?;

        let record = ImageRecord::new(
            config_digest,
            manifest_digest,
            media_type,
            &config.parsed,
            layers,
            r.tag()
                .map(|t| r.with_tag(t))
                .transpose()?
                .into_iter()
                .collect(),
            vec![r.with_digest(top)],
        );
        self.record(&record, Some((r.registry(), r.repository())))?;
        opts.progress.send(Progress::Done {
            id: record.id.clone(),
        });
        self.db()
            .get(&record.id)?
            .ok_or_else(|| Error::ImageNotFound(record.id.to_string()))
    }

    /// From what a tag resolved to, the image manifest for `want` (through the index if it
    /// is one); every manifest fetched is kept in the store.
    async fn resolve_index(
        &self,
        repo: &Repo<'_>,
        bytes: Vec<u8>,
        ct: Option<String>,
        digest: Digest,
        want: &Platform,
    ) -> Result<(Vec<u8>, String, Digest)> {
        self.store.write_bytes(&bytes, Some(&digest))?;
        match manifest::parse(&bytes, ct.as_deref())? {
            Parsed::Image { media_type, .. } => Ok((bytes, media_type, digest)),
            Parsed::Index { index, .. } => {
                let d = manifest::select_platform(&index, want)?;
                let dd = manifest::digest_of(&d)?;
                let (b, ct, _) = self.registry.get_manifest(repo, &dd.to_string()).await?;
                self.store.write_bytes(&b, Some(&dd))?;
                let mt = ct
                    .filter(|c| c == manifest::OCI_MANIFEST || c == manifest::DOCKER_MANIFEST)
                    .unwrap_or_else(|| d.media_type().to_string());
                Ok((b, mt, dd))
            }
        }
    }

    /// Downloads a blob unless stored; returns whether it was transferred.
    async fn fetch_blob(
        &self,
        repo: &Repo<'_>,
        d: &Descriptor,
        progress: &ProgressSink,
    ) -> Result<bool> {
        let digest = manifest::digest_of(d)?;
        let Some(mut w) = self.store.begin(&digest).await? else {
            return Ok(false);
        };
        self.registry
            .fetch_blob(repo, &digest, d.size(), &mut w, progress)
            .await?;
        let size = d.size();
        tokio::task::spawn_blocking(move || w.commit(Some(&digest), Some(size), "blob").map(drop))
            .await
            .map_err(|e| Error::io("commit task")(std::io::Error::other(e)))??;
        Ok(true)
    }

    async fn pull_layer(
        &self,
        repo: &Repo<'_>,
        d: &Descriptor,
        diff_id: &Digest,
        chain_id: &Digest,
        progress: &ProgressSink,
    ) -> Result<Layer> {
        let blob = manifest::digest_of(d)?;
        if self.fetch_blob(repo, d, progress).await? {
            progress.send(Progress::Transferred {
                digest: blob.clone(),
            });
        } else {
            progress.send(Progress::Cached {
                digest: blob.clone(),
            });
        }
        let size = self.ensure_snapshot_async(&blob, diff_id, chain_id).await?;
        progress.send(Progress::Unpacked {
            digest: blob.clone(),
        });
        Ok(Layer {
            blob,
            media_type: d.media_type().to_string(),
            blob_size: d.size(),
            diff_id: diff_id.clone(),
            chain_id: chain_id.clone(),
            size,
        })
    }

    async fn ensure_snapshot_async(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<u64> {
        let (store, snaps, limits) = (self.store.clone(), self.snapshots.clone(), self.limits);
        let known = self.db().snapshot_size(chain_id)?;
        let (blob, diff_id, chain_id) = (blob.clone(), diff_id.clone(), chain_id.clone());
        tokio::task::spawn_blocking(move || {
            ensure_snapshot(&store, &snaps, &limits, known, &blob, &diff_id, &chain_id)
        })
        .await
        .map_err(|e| Error::io("unpack task")(std::io::Error::other(e)))?
    }

    pub(crate) fn ensure_snapshot_blocking(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<u64> {
        let known = self.db().snapshot_size(chain_id)?;
        ensure_snapshot(
            &self.store,
            &self.snapshots,
            &self.limits,
            known,
            blob,
            diff_id,
            chain_id,
        )
    }

    /// Records a complete image in one transaction, and where its blobs came from.
    pub(crate) fn record(&self, record: &ImageRecord, source: Option<(&str, &str)>) -> Result<()> {
        let mut db = self.db();
        db.insert_image(record)?;
        if let Some((registry, repository)) = source {
            for l in &record.layers {
                db.add_blob_source(&l.blob, registry, repository)?;
            }
            db.add_blob_source(&record.id, registry, repository)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- push

    /// Pushes a local image (by name or ID) to `target` (default: its own name). Returns
    /// the manifest digest.
    pub async fn push(
        &self,
        source: &str,
        target: Option<&str>,
        progress: &ProgressSink,
    ) -> Result<Digest> {
        let img = self.db().resolve(source)?;
        let target: Reference = target.unwrap_or(source).parse()?;
        let repo = Repo {
            registry: target.registry(),
            host: target.api_host(),
            name: target.repository(),
        };
        let jobs = img
            .layers
            .iter()
            .map(|l| (l.blob.clone(), l.blob_size))
            .chain([(img.id.clone(), self.store.size(&img.id)?)])
            .map(|(d, size)| self.push_blob(&repo, d, size, progress));
        futures::stream::iter(jobs)
            .buffer_unordered(self.uploads.load(Ordering::Relaxed))
            .try_collect::<Vec<()>>()
            .await?;
        let bytes = self.store.read(&img.manifest_digest)?;
        let reference = target
            .tag()
            .map(str::to_string)
            .unwrap_or_else(|| img.manifest_digest.to_string());
        let digest = self
            .registry
            .put_manifest(&repo, &reference, &img.manifest_media_type, &bytes)
            .await?;
        let mut db = self.db();
        for l in &img.layers {
            db.add_blob_source(&l.blob, target.registry(), target.repository())?;
        }
        db.add_repo_digest(&img.id, &target.with_digest(digest.clone()))?;
        progress.send(Progress::Done { id: img.id.clone() });
        Ok(digest)
    }

    async fn push_blob(
        &self,
        repo: &Repo<'_>,
        digest: Digest,
        size: u64,
        progress: &ProgressSink,
    ) -> Result<()> {
        if !self.store.contains(&digest) {
            return Err(Error::InvalidArchive(format!(
                "blob {digest} of the image is missing from the store; pull the image again"
            )));
        }
        let sources = self.db().blob_sources(&digest, repo.registry)?;
        match self
            .registry
            .push_blob(
                repo,
                &digest,
                size,
                &self.store.path(&digest),
                &sources,
                progress,
            )
            .await?
        {
            BlobPush::Uploaded => progress.send(Progress::Transferred { digest }),
            BlobPush::Exists => progress.send(Progress::Skipped {
                digest,
                reason: "already exists".into(),
            }),
            BlobPush::Mounted { from } => progress.send(Progress::Skipped {
                digest,
                reason: format!("mounted from {from}"),
            }),
        }
        Ok(())
    }

    // ---------------------------------------------------------------- login

    /// Checks credentials against the registry, then stores them (config.json, 0600).
    pub async fn login(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let r: Reference = format!("{registry}/x").parse()?;
        self.registry
            .check_login(r.registry(), r.api_host(), creds)
            .await?;
        self.registry.credentials().set(r.registry(), creds)
    }

    pub fn logout(&self, registry: &str) -> Result<bool> {
        let r: Reference = format!("{registry}/x").parse()?;
        self.registry.credentials().remove(r.registry())
    }

    // ---------------------------------------------------------------- local

    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        self.db().list()
    }

    pub fn inspect(&self, what: &str) -> Result<Inspect> {
        let image = self.db().resolve(what)?;
        let raw = self.store.read(&image.id)?;
        let config = Config::parse(&raw)?.parsed;
        let raw_config =
            serde_json::from_slice(&raw).map_err(|e| Error::manifest("image config", e))?;
        Ok(Inspect {
            image,
            config,
            raw_config,
        })
    }

    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let img = self.db().resolve(source)?;
        let t: Reference = target.parse()?;
        let t = match t.digest() {
            Some(_) => {
                return Err(Error::InvalidReference {
                    input: target.into(),
                    reason: "a tag cannot carry a digest".into(),
                })
            }
            None => t,
        };
        self.db().tag(&img.id, &t)
    }

    /// The snapshot directories of an image, top layer first: overlayfs lowerdirs.
    pub fn lowerdirs(&self, what: &str) -> Result<Vec<PathBuf>> {
        let img = self.db().resolve(what)?;
        Ok(img
            .layers
            .iter()
            .rev()
            .map(|l| self.snapshots.path(&l.chain_id))
            .collect())
    }

    /// Mounts an image's layers with overlayfs at `target`, writes going to `upper`.
    /// How layer owners are stored on the host (shifted under userns-remap).
    pub fn ids(&self) -> &IdMap {
        self.snapshots.ids()
    }

    pub fn mount(&self, what: &str, upper: &Path, work: &Path, target: &Path) -> Result<()> {
        snapshot::mount_overlay(&self.lowerdirs(what)?, upper, work, target)
    }

    /// Removes a name or an image, as `docker rmi`: a tag of an image that has others is
    /// only untagged; the last name, or an ID, deletes the image. An image a container uses
    /// is refused unless `force`, and even then only loses its names (its layers stay until
    /// the container is gone, then `prune` takes them).
    pub fn remove(&self, what: &str, force: bool) -> Result<Vec<Removed>> {
        let img = self.db().resolve(what)?;
        let named: Option<Reference> = what
            .parse::<Reference>()
            .ok()
            .filter(|r| img.tags.contains(r) || img.repo_digests.contains(r));
        let users = self.users(&img.id);
        let all_names: Vec<Reference> = img.tags.iter().chain(&img.repo_digests).cloned().collect();
        let (names, delete) = match &named {
            Some(n) if img.tags.iter().any(|t| t != n) => (vec![n.clone()], false),
            Some(_) | None if !users.is_empty() && !force => {
                return Err(Error::ImageInUse {
                    image: img.id.short().to_string(),
                    users,
                })
            }
            None if img.tags.len() > 1 && !force => {
                return Err(Error::ImageInUse {
                    image: img.id.short().to_string(),
                    users: vec![format!(
                        "(none, but it has {} tags: remove them by name or force)",
                        img.tags.len()
                    )],
                })
            }
            _ => (all_names, users.is_empty()),
        };
        let garbage = self.db().remove(&img.id, &names, delete)?;
        let mut out: Vec<Removed> = names
            .into_iter()
            .filter(|n| n.tag().is_some())
            .map(Removed::Untagged)
            .collect();
        self.delete_files(&garbage)?;
        if delete {
            out.push(Removed::Deleted(img.id.clone()));
            self.remove_unused_parents(img.parent, &mut out)?;
        }
        Ok(out)
    }

    /// After an image is deleted, its build parents go too, as in Docker, each as long as
    /// it has no name, no other child and no container.
    fn remove_unused_parents(
        &self,
        mut next: Option<Digest>,
        out: &mut Vec<Removed>,
    ) -> Result<()> {
        while let Some(id) = next.take() {
            let Some(img) = self.db().get(&id)? else {
                break;
            };
            if !img.tags.is_empty()
                || !self.db().children(&id)?.is_empty()
                || !self.users(&id).is_empty()
            {
                break;
            }
            let garbage = self.db().remove(&id, &img.repo_digests, true)?;
            self.delete_files(&garbage)?;
            out.push(Removed::Deleted(id));
            next = img.parent;
        }
        Ok(())
    }

    /// Deletes what the database no longer references, under the exclusive gc lock.
    fn delete_files(&self, g: &Garbage) -> Result<()> {
        let _gc = self.gc_lock_blocking(true)?;
        for s in &g.snapshots {
            self.snapshots.remove(s)?;
        }
        for b in &g.blobs {
            self.store.delete(b)?;
        }
        Ok(())
    }

    /// Deletes untagged images no container uses, then every snapshot and blob no image
    /// references (including leftovers of interrupted work).
    pub fn prune(&self) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let dangling = self.db().dangling()?;
        for id in dangling {
            if !self.users(&id).is_empty() {
                continue;
            }
            let Some(img) = self.db().get(&id)? else {
                continue;
            };
            let g = self.db().remove(&id, &img.repo_digests, true)?;
            self.delete_files(&g)?;
            report.images.push(id);
            let mut parents = Vec::new();
            self.remove_unused_parents(img.parent, &mut parents)?;
            report
                .images
                .extend(parents.into_iter().filter_map(|r| match r {
                    Removed::Deleted(d) => Some(d),
                    Removed::Untagged(_) => None,
                }));
        }
        let _gc = self.gc_lock_blocking(true)?;
        let (snaps, blobs) = self.db().referenced()?;
        for s in self.snapshots.list()? {
            if !snaps.contains(&s) {
                self.snapshots.remove(&s)?;
                report.snapshots += 1;
            }
        }
        for b in self.store.list()? {
            if !blobs.contains(&b) {
                self.store.delete(&b)?;
                report.blobs += 1;
            }
        }
        self.store.clean_ingest()?;
        Ok(report)
    }
}

/// Makes sure snapshot `chain_id` exists, unpacking `blob` if needed; returns the layer's
/// uncompressed size. A snapshot directory the database does not know is a leftover of an
/// interrupted pull whose size we cannot vouch for: it is rebuilt.
fn ensure_snapshot(
    store: &ContentStore,
    snaps: &Snapshots,
    limits: &Limits,
    known: Option<u64>,
    blob: &Digest,
    diff_id: &Digest,
    chain_id: &Digest,
) -> Result<u64> {
    if let (Some(size), true) = (known, snaps.exists(chain_id)) {
        return Ok(size);
    }
    snaps.remove(chain_id)?;
    match snaps.create(chain_id, diff_id, blob, store.open_blob(blob)?, limits)? {
        Some(u) => Ok(u.size),
        // Made concurrently by another pull: measure the blob's tar instead.
        None => {
            let mut tar = manifest::decompress(std::io::BufReader::new(store.open_blob(blob)?))?;
            std::io::copy(&mut tar, &mut std::io::sink()).map_err(Error::io("read layer"))
        }
    }
}

fn lock_gc(root: &Path, exclusive: bool) -> Result<Flock<File>> {
    let path = root.join("gc.lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(format!("open {}", path.display())))?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(f, arg).map_err(|(_, e)| Error::io("lock gc.lock")(e.into()))
}
