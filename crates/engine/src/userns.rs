//! `userns-remap`: containers run in a user namespace whose root is an unprivileged host uid
//! (a subordinate range of the remap user, from /etc/subuid and /etc/subgid), so a process
//! that escapes its container is nobody on the host.
//!
//! The daemon keeps such a configuration's state under `<data-root>/<uid>.<gid>`, as dockerd
//! does: its image layers are unpacked with owners shifted into the range, and what the
//! engine makes for a container (upper directory, volumes) belongs to the range's root.

use std::path::{Path, PathBuf};

use berth_image::IdMap;
use nix::unistd::{Gid, Group, Uid, User};
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use crate::container::Config;
use crate::error::{Error, Result};

/// The user `"default"` stands for, made on first use as dockerd makes it.
pub const DEFAULT_USER: &str = "dockremap";

/// Where subordinate ranges are listed.
const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

/// Whether a container runs in the daemon's user namespace: not with `--userns=host`.
pub fn applies(ids: &IdMap, c: &Config) -> bool {
    !ids.is_identity() && !c.userns_host
}

/// Refuses, at create, what cannot work inside the daemon's user namespace.
pub fn check(ids: &IdMap, c: &Config) -> Result<()> {
    if applies(ids, c) && c.security.privileged {
        return Err(Error::Invalid(
            "privileged mode is incompatible with user namespaces (userns-remap): add --userns=host to run this container privileged".into(),
        ));
    }
    Ok(())
}

/// Puts the container in a new user namespace mapped by `ids`.
pub fn apply(spec: &mut Spec, ids: &IdMap) -> Result<()> {
    let invalid = |e: oci_spec::OciSpecError| Error::Invalid(format!("user namespace: {e}"));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::User);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .map_err(invalid)?,
    );
    linux.set_namespaces(Some(namespaces));
    let map = |ranges: &[berth_image::idmap::IdRange]| {
        ranges
            .iter()
            .map(|r| {
                LinuxIdMappingBuilder::default()
                    .container_id(r.inside)
                    .host_id(r.host)
                    .size(r.size)
                    .build()
                    .map_err(invalid)
            })
            .collect::<Result<Vec<_>>>()
    };
    linux.set_uid_mappings(Some(map(&ids.uids)?));
    linux.set_gid_mappings(Some(map(&ids.gids)?));
    spec.set_linux(Some(linux));
    Ok(())
}

/// Gives `path` to the namespace's root, so the container's root owns what it should.
pub fn own(path: &Path, ids: &IdMap) -> Result<()> {
    ids.own_as_root(path)
        .map_err(|e| Error::io(format!("chown {}", path.display()), e))
}

/// The state root of a remapped daemon, `<data_root>/<uid>.<gid>` as dockerd names it,
/// made and given to the namespace's root (0700); `data_root` itself is left searchable
/// (0711). Every directory above it and `exec_root` must let the namespace's root pass,
/// since the container's root reaches its files through them: refused, naming the
/// directory, otherwise.
pub fn prepare_root(data_root: &Path, exec_root: &Path, ids: &IdMap) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let (uid, gid) = ids.root();
    let root = data_root.join(format!("{uid}.{gid}"));
    for dir in [&root, &exec_root.to_path_buf()] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    let set_mode = |dir: &Path, mode| {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))
    };
    set_mode(data_root, 0o711)?;
    set_mode(&root, 0o700)?;
    own(&root, ids)?;
    for dir in root.ancestors().skip(1).chain(exec_root.ancestors()) {
        check_passable(dir, uid)?;
    }
    Ok(root)
}

/// Refuses a directory the namespace's root cannot search.
fn check_passable(dir: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(dir).map_err(|e| Error::io(format!("stat {}", dir.display()), e))?;
    let mode = meta.mode();
    if mode & 0o001 != 0 || (meta.uid() == uid && mode & 0o100 != 0) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "userns-remap: {} ({:o}) does not let the remapped root ({uid}) through: chmod o+x it, or choose another data-root/exec-root",
        dir.display(),
        mode & 0o7777
    )))
}

/// The map for a `userns-remap` value: `default`, `user`, `user:group`, `uid` or `uid:gid`.
/// The user's (and group's) ranges are read from /etc/subuid and /etc/subgid, where an entry
/// may name them or give their number. `default` makes the user `dockremap` and its ranges
/// when they do not exist yet.
pub fn resolve(remap: &str) -> Result<IdMap> {
    let (user, group) = match remap.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (remap, None),
    };
    if user.is_empty() || group == Some("") {
        return Err(Error::Invalid(format!(
            "userns-remap {remap:?}: give \"default\", a user, or user:group"
        )));
    }
    let user = if user == "default" {
        ensure_default_user()?
    } else {
        find_user(user)?
    };
    let group = match group {
        Some(g) => find_group(g)?,
        None => (user.0.clone(), user.1),
    };
    if user.1 == 0 || group.1 == 0 {
        return Err(Error::Invalid(
            "userns-remap: remapping to root is not allowed: name an unprivileged user".into(),
        ));
    }
    let uids = ranges(&read(SUBUID)?, &user.0, user.1);
    let gids = ranges(&read(SUBGID)?, &group.0, group.1);
    if uids.is_empty() || gids.is_empty() {
        let (file, who) = if uids.is_empty() {
            (SUBUID, &user.0)
        } else {
            (SUBGID, &group.0)
        };
        return Err(Error::Invalid(format!(
            "userns-remap: {file} has no range for {who}: add one (usermod --add-subuids/--add-subgids)"
        )));
    }
    Ok(IdMap::from_subordinate(&uids, &gids))
}

/// A user by name or number: its name (the number when it has none) and uid.
fn find_user(user: &str) -> Result<(String, u32)> {
    find(
        "user",
        user,
        |uid| Ok(User::from_uid(Uid::from_raw(uid))?.map(|u| (u.name, u.uid.as_raw()))),
        |name| Ok(User::from_name(name)?.map(|u| (u.name, u.uid.as_raw()))),
    )
}

fn find_group(group: &str) -> Result<(String, u32)> {
    find(
        "group",
        group,
        |gid| Ok(Group::from_gid(Gid::from_raw(gid))?.map(|g| (g.name, g.gid.as_raw()))),
        |name| Ok(Group::from_name(name)?.map(|g| (g.name, g.gid.as_raw()))),
    )
}

/// A user or group by number (which need not have an entry) or by name (which must).
fn find(
    kind: &str,
    key: &str,
    by_id: impl Fn(u32) -> nix::Result<Option<(String, u32)>>,
    by_name: impl Fn(&str) -> nix::Result<Option<(String, u32)>>,
) -> Result<(String, u32)> {
    let number = key.parse::<u32>().ok();
    let found = match number {
        Some(id) => by_id(id),
        None => by_name(key),
    }
    .map_err(|e| Error::sys(format!("look up {kind} {key}"), e))?;
    match (found, number) {
        (Some(f), _) => Ok(f),
        (None, Some(id)) => Ok((key.to_string(), id)),
        (None, None) => Err(Error::Invalid(format!(
            "userns-remap: no {kind} {key}: create it, or give its number"
        ))),
    }
}

fn read(path: &str) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io(format!("read {path}"), e)),
    }
}

/// The `start:count` ranges of a subordinate-id file that belong to `name` or `id`, in order.
fn ranges(file: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    let id = id.to_string();
    file.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != name && who != id {
                return None;
            }
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .filter(|&(_, count)| count > 0)
        .collect()
}

/// `dockremap`, as dockerd makes it: a system user with no shell, given 65536 subordinate
/// uids and gids after the highest range already listed.
fn ensure_default_user() -> Result<(String, u32)> {
    let user = match User::from_name(DEFAULT_USER)
        .map_err(|e| Error::sys(format!("look up user {DEFAULT_USER}"), e))?
    {
        Some(u) => u,
        None => {
            run(
                "useradd",
                &[
                    "--system",
                    "--shell",
                    "/bin/false",
                    "--user-group",
                    DEFAULT_USER,
                ],
            )?;
            User::from_name(DEFAULT_USER)
                .map_err(|e| Error::sys(format!("look up user {DEFAULT_USER}"), e))?
                .ok_or_else(|| {
                    Error::Invalid(format!("useradd did not make the user {DEFAULT_USER}"))
                })?
        }
    };
    let uid = user.uid.as_raw();
    for (path, gid) in [(SUBUID, false), (SUBGID, true)] {
        let text = read(path)?;
        let id = if gid { user.gid.as_raw() } else { uid };
        if ranges(&text, DEFAULT_USER, id).is_empty() {
            add_range(path, &text)?;
        }
    }
    Ok((user.name, uid))
}

/// Appends `dockremap:<start>:65536` with `start` past every range in the file (and never
/// below 100000, where distributions begin them).
fn add_range(path: &str, text: &str) -> Result<()> {
    let end = text
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':').skip(1);
            let start: u64 = f.next()?.parse().ok()?;
            let count: u64 = f.next()?.parse().ok()?;
            Some(start + count)
        })
        .max()
        .unwrap_or(0)
        .max(100_000);
    let mut new = text.to_string();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{DEFAULT_USER}:{end}:65536\n"));
    std::fs::write(path, new).map_err(|e| Error::io(format!("write {path}"), e))
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::io(format!("run {program} (install passwd)"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_found_by_name_or_number_in_order() {
        let file =
            "alice:100000:65536\n# comment\nbob:200000:1000\n1001:300000:10\nalice:400000:5\n";
        assert_eq!(ranges(file, "alice", 1000), [(100000, 65536), (400000, 5)]);
        assert_eq!(ranges(file, "carol", 1001), [(300000, 10)]);
        assert!(ranges(file, "dave", 7).is_empty());
    }

    #[test]
    fn a_new_range_starts_past_every_listed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        let path = path.to_str().unwrap();
        add_range(path, "a:100000:65536\nb:165536:65536").unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.ends_with("\ndockremap:231072:65536\n"), "{text}");
        add_range(path, "").unwrap();
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            "dockremap:100000:65536\n"
        );
    }

    #[test]
    fn a_directory_the_remapped_root_cannot_pass_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let set = |mode| {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(0o700);
        let err = check_passable(dir.path(), 100000).unwrap_err().to_string();
        assert!(err.contains("o+x") && err.contains("700"), "{err}");
        set(0o711);
        check_passable(dir.path(), 100000).unwrap();
    }

    #[test]
    fn the_map_lays_ranges_end_to_end() {
        let spec_ids = IdMap::from_subordinate(&[(100000, 65536)], &[(100000, 65536)]);
        let mut spec = Spec::default();
        apply(&mut spec, &spec_ids).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let users = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|n| n.typ() == LinuxNamespaceType::User)
            .count();
        assert_eq!(users, 1);
        let m = &linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!(
            (m.container_id(), m.host_id(), m.size()),
            (0, 100000, 65536)
        );
    }
}
