//! Resolving a path from config.json inside the container's root without ever leaving it.
//!
//! An image may carry symlinks such as `/etc -> /` or `x -> ../../..`; a mount destination
//! through them must land inside the rootfs, as if the rootfs were `/`. We resolve component
//! by component, reading each symlink and restarting its target from the rootfs, before
//! anything runs in the container, so the tree cannot change under us.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Maximum symlinks followed in one resolution, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// `root` joined with `unsafe_path`, with every symlink resolved as if `root` were `/`.
/// Components that do not exist yet are kept as they are (the caller may create them).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut resolved = PathBuf::new(); // relative to root, never with `..`
    let mut pending: Vec<PathBuf> = vec![unsafe_path.to_path_buf()];
    let mut links = 0;
    while let Some(path) = pending.pop() {
        let mut comps: Vec<Component> = path.components().collect();
        comps.reverse();
        while let Some(comp) = comps.pop() {
            match comp {
                Component::RootDir => resolved.clear(),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => {
                    let candidate = resolved.join(name);
                    match std::fs::read_link(root.join(&candidate)) {
                        Ok(target) => {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(Error::invalid(format!(
                                    "too many symlinks resolving {} in the rootfs",
                                    unsafe_path.display()
                                )));
                            }
                            // Continue with the link's target, then what was left of the path.
                            let rest: PathBuf = comps.iter().rev().collect();
                            pending.push(rest);
                            pending.push(target);
                            break;
                        }
                        Err(_) => resolved = candidate,
                    }
                }
            }
        }
    }
    Ok(root.join(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_and_dotdot_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("/", root.join("escape_abs")).unwrap();
        symlink("../../../..", root.join("usr/escape_rel")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();

        let j = |p: &str| secure_join(root, Path::new(p)).unwrap();
        assert_eq!(j("/escape_abs/etc"), root.join("etc"));
        assert_eq!(j("/usr/escape_rel/etc/passwd"), root.join("etc/passwd"));
        assert_eq!(j("/../../x"), root.join("x"));
        assert_eq!(j("/lib/x"), root.join("usr/lib/x"));
        assert_eq!(j("relative/dir"), root.join("relative/dir"));
        assert!(secure_join(root, Path::new("/loop1/x")).is_err());
    }
}
