//! Listing a directory of the build context in sorted order under `.dockerignore`, one
//! level at a time (`children`) or as a whole tree (`walk`). Symlinks are never followed.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};
use crate::ignore::Ignore;

/// One entry below a directory of the context.
pub(crate) struct Entry {
    /// Relative to the directory the listing or walk started from.
    pub rel: PathBuf,
    /// Relative to the context root, `/`-separated, for `.dockerignore`.
    pub ctx_rel: String,
    /// On the host.
    pub path: PathBuf,
    /// Of the entry itself (`lstat`).
    pub meta: Metadata,
    /// False for an excluded directory that is listed only because an exception may
    /// re-include something inside it: its contents count, the directory itself does not.
    pub included: bool,
}

/// The entries of `dir` (whose path relative to the context root is `ctx_rel`) that are
/// part of the context, or may hold parts of it, sorted by name.
pub(crate) fn children(
    dir: &Path,
    rel: &Path,
    ctx_rel: &str,
    ignore: Option<&Ignore>,
) -> Result<Vec<Entry>> {
    let shown = || dir.display().to_string();
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .map_err(io_err("read directory", shown()))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io_err("read directory", shown()))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", path.display()))?;
        let lossy = name.to_string_lossy();
        let child_ctx_rel = match ctx_rel {
            "" | "." => lossy.into_owned(),
            parent => format!("{parent}/{lossy}"),
        };
        let (included, listed) = match ignore {
            Some(ig) if ig.is_excluded(&child_ctx_rel) => {
                (false, meta.is_dir() && ig.may_include_under(&child_ctx_rel))
            }
            _ => (true, true),
        };
        if listed {
            entries.push(Entry {
                rel: rel.join(&name),
                ctx_rel: child_ctx_rel,
                path,
                meta,
                included,
            });
        }
    }
    Ok(entries)
}

/// Visits every entry below `root` that is part of the context, parents before children,
/// siblings sorted by name. `root` itself is not visited.
pub(crate) fn walk(
    root: &Path,
    ctx_rel: &str,
    ignore: Option<&Ignore>,
    visit: &mut dyn FnMut(&Entry) -> Result<()>,
) -> Result<()> {
    // An explicit stack rather than recursion: the depth of a tree is the user's choice.
    let mut stack = children(root, Path::new(""), ctx_rel, ignore)?;
    stack.reverse();
    while let Some(entry) = stack.pop() {
        if entry.included {
            visit(&entry)?;
        }
        if entry.meta.is_dir() {
            let mut below = children(&entry.path, &entry.rel, &entry.ctx_rel, ignore)?;
            below.reverse();
            stack.append(&mut below);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_sorted_preorder_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["b", "a/x", "c"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a/x/2", "a/x/1", "b/f", "c/keep", "c/drop", "z"] {
            fs::write(root.join(f), f).unwrap();
        }
        let ig = Ignore::parse("c\n!c/keep\nb\n").unwrap();
        let mut seen = Vec::new();
        walk(root, "", Some(&ig), &mut |e| {
            seen.push(e.rel.to_string_lossy().into_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["a", "a/x", "a/x/1", "a/x/2", "c/keep", "z"]);
    }
}
