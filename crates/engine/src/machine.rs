//! Machine containers: an image whose command is systemd boots as a machine would, given
//! what systemd needs from its container manager and cannot do itself without
//! CAP_SYS_ADMIN (podman's `--systemd` does the same):
//! - tmpfs on /run, /run/lock, /tmp and /var/log/journal (systemd refuses to boot without
//!   a /run it can write, and mounts nothing itself here);
//! - `container=berth` in its environment, which is how systemd knows it is in a container
//!   (it then skips what only a real machine does);
//! - a cgroup namespace of its own, and its own cgroup writable in the hierarchies that hold
//!   no resource controllers (name=systemd, and the unified one beside it on a hybrid
//!   host), so it can put each service in a cgroup; the controllers berth limits stay
//!   read-only;
//! - SIGRTMIN+3 (systemd's "halt") as the stop signal, unless the image or user chose one.
//!
//! A mount the user gave at one of these paths wins. The command is systemd when its last
//! symbolic link, followed inside the image, is named `systemd` (`/sbin/init` on Debian's
//! systemd-sysv is one; busybox's `/sbin/init` is not).

use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, Spec};

use crate::error::{Error, Result};
use crate::volumes::MountSpec;

/// systemd's "halt": it stops every unit and exits.
pub const STOP_SIGNAL: &str = "SIGRTMIN+3";

/// tmpfs a booting systemd needs, with their modes.
const TMPFS: [(&str, &str); 4] = [
    ("/run", "mode=755"),
    ("/run/lock", "mode=1777"),
    ("/tmp", "mode=1777"),
    ("/var/log/journal", "mode=755"),
];

/// Enough links to follow for any real image; more is a loop.
const MAX_LINKS: usize = 16;

/// Whether `command` (the container's first argument) boots systemd in `rootfs`.
pub fn boots_systemd(rootfs: &Path, command: &str) -> bool {
    last_link(rootfs, command).file_name() == Some("systemd".as_ref())
}

/// The name the command's chain of symbolic links ends at (the command itself when it is
/// not a link). Each step is resolved inside `rootfs`, so an absolute link never leads to
/// the host's files; a link to a file the image lacks ends the chain at that name.
fn last_link(rootfs: &Path, command: &str) -> PathBuf {
    let mut path = PathBuf::from(command);
    let Ok(root) = nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
    else {
        return path;
    };
    for _ in 0..MAX_LINKS {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let Ok(fd) = nix::fcntl::openat2(&root, &path, how) else {
            break;
        };
        let Ok(target) = nix::fcntl::readlinkat(&fd, "") else {
            break; // not a link: the chain ends here
        };
        let target = PathBuf::from(target);
        path = match path.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    path
}

/// Gives a machine container's spec what systemd needs (see the module's comment).
/// `user_mounts` are the container's own; `cgroup` names its cgroup as the runtime makes it.
pub fn adapt(spec: &mut Spec, user_mounts: &[MountSpec], cgroup: &Path, id: &str) -> Result<()> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (target, mode) in TMPFS {
        if !user_mounts.iter().any(|m| m.target == target) {
            mounts.push(crate::volumes::tmpfs_mount(
                target,
                &[mode.to_string()],
                false,
            )?);
        }
    }
    let cg = berth_cgroups::Cgroup::new(Some(cgroup), id)
        .map_err(|e| Error::Invalid(format!("the container's cgroup: {e}")))?;
    let hierarchies = cg.hierarchies();
    let v2_only = hierarchies.len() == 1;
    for h in hierarchies {
        if h.is_v2() || h.mount_options().contains("name=") {
            let target = match h.is_v2() && v2_only {
                true => PathBuf::from("/sys/fs/cgroup"),
                false => Path::new("/sys/fs/cgroup").join(h.mount_name()),
            };
            let m = MountBuilder::default()
                .destination(target)
                .source(h.container_dir())
                .typ("bind")
                .options(["rbind", "rprivate", "nosuid", "nodev", "noexec"].map(String::from))
                .build()
                .map_err(|e| Error::Invalid(format!("mount the container's cgroup: {e}")))?;
            mounts.push(m);
        }
    }
    spec.set_mounts(Some(mounts));

    let mut process = spec.process().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("container=")) {
        env.push("container=berth".into());
    }
    process.set_env(Some(env));
    spec.set_process(Some(process));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Cgroup)
    {
        namespaces.push(crate::container::new_cgroup_namespace()?);
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    // systemd must be PID 1 itself: no --init in front of it.
    if let Some(annotations) = spec.annotations().clone() {
        let annotations = annotations
            .into_iter()
            .filter(|(k, _)| k != berth_runtime::reaper::INIT_ANNOTATION)
            .collect();
        spec.set_annotations(Some(annotations));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn the_command_is_systemd_by_its_last_link_inside_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        symlink("usr/sbin", root.join("sbin")).unwrap();
        // Debian's systemd-sysv: an absolute link to a file this image may lack.
        symlink("/lib/systemd/systemd", root.join("usr/sbin/init")).unwrap();
        assert!(boots_systemd(root, "/sbin/init"));
        assert!(boots_systemd(root, "/lib/systemd/systemd"));
        // busybox's init is busybox.
        std::fs::write(root.join("bin/busybox"), "").unwrap();
        symlink("../bin/busybox", root.join("usr/sbin/busyinit")).unwrap();
        assert!(!boots_systemd(root, "/sbin/busyinit"));
        assert!(!boots_systemd(root, "sh"));
        // A link out of the image is followed inside it: /etc/passwd here is the image's
        // (missing), so the chain ends at that name.
        symlink("/etc/passwd", root.join("bin/out")).unwrap();
        assert_eq!(last_link(root, "/bin/out"), Path::new("/etc/passwd"));
        // A loop ends.
        symlink("/bin/b", root.join("bin/a")).unwrap();
        symlink("/bin/a", root.join("bin/b")).unwrap();
        assert!(!boots_systemd(root, "/bin/a"));
    }

    #[test]
    fn the_spec_gets_tmpfs_env_a_cgroup_namespace_and_writable_systemd_cgroups() {
        let mut spec = berth_runtime::spec::default_spec(false);
        let user = MountSpec {
            kind: crate::volumes::MountKind::Tmpfs,
            source: String::new(),
            target: "/tmp".into(),
            readonly: false,
            create_source: false,
            options: vec!["size=1m".into()],
        };
        adapt(&mut spec, &[user], Path::new("berth/x"), "x").unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let at = |t: &str| {
            mounts
                .iter()
                .filter(|m| m.destination() == Path::new(t))
                .count()
        };
        assert_eq!(at("/run"), 1);
        assert_eq!(at("/run/lock"), 1);
        assert_eq!(at("/var/log/journal"), 1);
        assert_eq!(at("/tmp"), 0, "the user's /tmp is kept");
        // This host is hybrid: name=systemd and unified are bound writable, no controller.
        let systemd = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys/fs/cgroup/systemd"))
            .expect("name=systemd bound");
        assert!(systemd.source().as_ref().unwrap().ends_with("berth/x"));
        assert!(!systemd
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string()));
        assert_eq!(at("/sys/fs/cgroup/memory"), 0);
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert!(env.contains(&"container=berth".to_string()));
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
    }
}
