//! Volumes and mounts: named volumes of the local driver (a directory under the root, kept
//! after the container), bind mounts of host paths, tmpfs mounts, and the anonymous volumes
//! an image's `VOLUME`s ask for. A new, empty volume is first filled with what the image
//! has at its target (Docker's copy-up).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A named volume of the local driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Made for an image's VOLUME with no name given: removed with its container by `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
}

/// One mount a container asked for (`-v`, `--mount`, `--tmpfs`, an image's VOLUME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub kind: MountKind,
    /// A host path (bind), a volume name (volume), empty (tmpfs).
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// `-v` makes a missing host directory; `--mount type=bind` refuses it, as Docker does.
    #[serde(default)]
    pub create_source: bool,
    /// tmpfs options (`size=64m,mode=1777`).
    #[serde(default)]
    pub options: Vec<String>,
}

/// Docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.len() < 2 || !first || !rest {
        return Err(Error::Invalid(format!(
            "invalid volume name {name:?}: use two or more of [a-zA-Z0-9_.-], starting with a letter or digit, or give an absolute host path to bind"
        )));
    }
    Ok(())
}

/// `-v SOURCE:TARGET[:OPTIONS]` or `-v TARGET` (an anonymous volume).
pub fn parse_bind(spec: &str) -> Result<MountSpec> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "invalid volume {spec:?}: {why}; write /host/path:/container/path[:ro] or name:/container/path"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return Err(bad("too many ':'")),
    };
    if !target.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    let mut readonly = false;
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave"
            | "slave" | "nocopy" => {}
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    let kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        if !source.is_empty() {
            check_volume_name(source)?;
        }
        MountKind::Volume
    };
    Ok(MountSpec {
        kind,
        source: source.to_string(),
        target: target.to_string(),
        readonly,
        create_source: kind == MountKind::Bind,
        options: Vec::new(),
    })
}

/// The runtime mount for a bind (or a volume's directory).
pub fn bind_mount(source: &Path, target: &str, readonly: bool) -> Result<Mount> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if readonly {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(target)
        .source(source)
        .typ("bind")
        .options(options)
        .build()
        .map_err(|e| Error::Invalid(format!("mount {target}: {e}")))
}

pub fn tmpfs_mount(target: &str, options: &[String], readonly: bool) -> Result<Mount> {
    let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
    opts.extend(options.iter().cloned());
    if readonly {
        opts.push("ro".into());
    }
    MountBuilder::default()
        .destination(target)
        .source("tmpfs")
        .typ("tmpfs")
        .options(opts)
        .build()
        .map_err(|e| Error::Invalid(format!("mount {target}: {e}")))
}

/// Whether a directory is empty (or missing).
pub fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

/// Copies a tree (files, directories, symlinks; modes and owners) into `dst`, which exists.
/// Used once, to fill a new volume from the image.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src)
        .map_err(|e| Error::io(format!("read {}", src.display()), e))?;
    copy_owner_and_mode(&meta, dst)?;
    let entries =
        std::fs::read_dir(src).map_err(|e| Error::io(format!("read {}", src.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read {}", src.display()), e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)
            .map_err(|e| Error::io(format!("read {}", from.display()), e))?;
        let ft = meta.file_type();
        let io = |what: &str, e| Error::io(format!("{what} {}", to.display()), e);
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(|e| io("create", e))?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            let link = std::fs::read_link(&from).map_err(|e| io("read link for", e))?;
            std::os::unix::fs::symlink(link, &to).map_err(|e| io("create", e))?;
            let _ = nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &to,
                Some(meta.uid().into()),
                Some(meta.gid().into()),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| io("copy to", e))?;
            copy_owner_and_mode(&meta, &to)?;
        }
        // Devices, fifos and sockets in a VOLUME path are not copied, as in Docker.
    }
    Ok(())
}

fn copy_owner_and_mode(meta: &std::fs::Metadata, to: &Path) -> Result<()> {
    nix::unistd::chown(to, Some(meta.uid().into()), Some(meta.gid().into()))
        .map_err(|e| Error::sys(format!("chown {}", to.display()), e))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io(format!("chmod {}", to.display()), e))
}

/// Where a named volume's data lives under the engine's root.
pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name).join("_data")
}

/// The engine's volume verbs (`volume create/ls/inspect/rm/prune`) and the mounts a
/// container gets at start.
impl crate::Engine {
    /// Creates a volume (a random name when none is given); an existing one is returned as
    /// it is, as Docker does.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                check_volume_name(n)?;
                n.to_string()
            }
            None => berth_network::manager::random_id()?,
        };
        if let Some(v) = self.store().volume(&name)? {
            return Ok(v);
        }
        let dir = data_dir(self.root(), &name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        // A new volume belongs to the containers' root, as dockerd gives it to the remapped
        // root (copy-up from the image may give it another owner).
        crate::userns::own(&dir, self.ids())?;
        let v = Volume {
            name,
            labels,
            created: OffsetDateTime::now_utc(),
            anonymous,
        };
        if !self.store().insert_volume(&v)? {
            // Made by someone else meanwhile: theirs stands.
            return self.volume(&v.name);
        }
        self.events().send(
            crate::events::Event::new(crate::events::Kind::Volume, "create", &v.name)
                .with("driver", "local"),
        );
        Ok(v)
    }

    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.store().volume(name)?.ok_or_else(|| {
            Error::NotFoundOf("volume", format!("{name} (see the volume list for names)"))
        })
    }

    pub fn volumes(&self) -> Result<Vec<Volume>> {
        self.store().volumes()
    }

    pub fn volume_dir(&self, name: &str) -> PathBuf {
        data_dir(self.root(), name)
    }

    /// The containers whose mounts name the volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .store()
            .all()?
            .into_iter()
            .filter(|c| {
                c.config
                    .mounts
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.source == name)
            })
            .map(|c| c.name)
            .collect())
    }

    /// Removes a volume and its data; one in use is refused unless `force`.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let v = self.volume(name)?;
        let users = self.volume_users(&v.name)?;
        if !users.is_empty() && !force {
            return Err(Error::Conflict(format!(
                "volume {} is in use by container {}: remove the container first",
                v.name,
                users.join(", ")
            )));
        }
        let dir = data_dir(self.root(), &v.name);
        if let Some(parent) = dir.parent().filter(|p| p.exists()) {
            std::fs::remove_dir_all(parent)
                .map_err(|e| Error::io(format!("remove {}", parent.display()), e))?;
        }
        self.store().delete_volume(&v.name)?;
        self.events().send(crate::events::Event::new(
            crate::events::Kind::Volume,
            "destroy",
            &v.name,
        ));
        Ok(())
    }

    /// Removes unused volumes: anonymous ones, or all with `all` (as Docker 23 on).
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for v in self.volumes()? {
            if (all || v.anonymous) && self.volume_users(&v.name)?.is_empty() {
                self.remove_volume(&v.name, false)?;
                removed.push(v.name);
            }
        }
        Ok(removed)
    }

    /// Names the anonymous volumes and makes every named one a container's mounts need, at
    /// create.
    pub(crate) fn claim_volumes(&self, mounts: &mut [MountSpec]) -> Result<()> {
        for m in mounts.iter_mut().filter(|m| m.kind == MountKind::Volume) {
            let anonymous = m.source.is_empty();
            let v = self.create_volume(
                Some(&m.source).filter(|_| !anonymous).map(|s| s.as_str()),
                BTreeMap::new(),
                anonymous,
            )?;
            m.source = v.name;
        }
        Ok(())
    }

    /// The runtime mounts for a container whose root filesystem is at `rootfs`: binds checked
    /// (or made, for `-v`), volumes filled from the image when new and empty.
    pub(crate) fn runtime_mounts(&self, mounts: &[MountSpec], rootfs: &Path) -> Result<Vec<Mount>> {
        let mut out = Vec::new();
        for m in mounts {
            out.push(match m.kind {
                MountKind::Bind => {
                    let source = Path::new(&m.source);
                    if !source.exists() {
                        if !m.create_source {
                            return Err(Error::Invalid(format!(
                                "bind source path does not exist: {}: create it, or use -v to have it made",
                                m.source
                            )));
                        }
                        std::fs::create_dir_all(source)
                            .map_err(|e| Error::io(format!("create {}", source.display()), e))?;
                    }
                    bind_mount(source, &m.target, m.readonly)?
                }
                MountKind::Volume => {
                    let dir = data_dir(self.root(), &m.source);
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                    if is_empty_dir(&dir) {
                        copy_up(rootfs, &m.target, &dir)?;
                    }
                    bind_mount(&dir, &m.target, m.readonly)?
                }
                MountKind::Tmpfs => tmpfs_mount(&m.target, &m.options, m.readonly)?,
            });
        }
        Ok(out)
    }

    /// Removes a removed container's anonymous volumes that nothing else uses (`rm -v`).
    pub(crate) fn release_anonymous_volumes(&self, mounts: &[MountSpec]) -> Result<()> {
        for m in mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            if let Ok(v) = self.volume(&m.source) {
                if v.anonymous && self.volume_users(&v.name)?.is_empty() {
                    self.remove_volume(&v.name, false)?;
                }
            }
        }
        Ok(())
    }
}

/// Fills a new volume with the image's content at `target`, if it has a directory there
/// that stays inside the root filesystem (an image's symlink never leads the copy out).
fn copy_up(rootfs: &Path, target: &str, volume: &Path) -> Result<()> {
    let inside = rootfs.join(target.trim_start_matches('/'));
    let (Ok(root), Ok(real)) = (rootfs.canonicalize(), inside.canonicalize()) else {
        return Ok(());
    };
    if !real.starts_with(&root) || !real.is_dir() {
        return Ok(());
    }
    copy_tree(&real, volume)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_as_docker_writes_them() {
        let m = parse_bind("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str(), m.readonly),
            (MountKind::Bind, "/srv/data", "/data", true)
        );
        let v = parse_bind("cache:/var/cache").unwrap();
        assert_eq!((v.kind, v.readonly), (MountKind::Volume, false));
        let anon = parse_bind("/scratch").unwrap();
        assert_eq!((anon.kind, anon.source.as_str()), (MountKind::Volume, ""));
        for bad in ["a:b", "/a:/b:xx", "/a:/b:ro:z", "-x:/b"] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_up_keeps_files_links_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "data").unwrap();
        std::fs::set_permissions(src.join("sub/f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        assert!(is_empty_dir(&dst));
        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("link")).unwrap(), "data");
        let mode = std::fs::metadata(dst.join("sub/f")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(!is_empty_dir(&dst));
    }
}
