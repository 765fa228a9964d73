//! Compiled filters kept on disk, by profile. libseccomp takes ~10 ms to compile an allow
//! list of 400 syscalls for three architectures (Docker's default profile, and berth's),
//! longer than the rest of a container's start, while an engine starts every container with
//! one of a few profiles.
//!
//! An entry is named by the SHA-256 of the profile's JSON, this runtime's version and
//! libseccomp's version, so a changed profile, runtime or library never meets an old
//! program. It is written under a temporary name and renamed, so a reader finds a whole entry
//! or none; an entry that does not read back as a program is compiled again and replaced.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::{compile, libseccomp_version, Filter, MAX_INSTRUCTIONS};
use crate::Result;

/// More entries than this means profiles are being made up per container: the directory is
/// emptied before the next entry is added, so it stays small.
const MAX_ENTRIES: usize = 32;

/// `compile`, or the program compiled earlier for the same profile, from `dir`.
pub fn compile_cached(s: &LinuxSeccomp, dir: &Path) -> Result<Filter> {
    let key = key(s)?;
    let path = dir.join(&key);
    if let Some(filter) = fs::read(&path).ok().and_then(|b| decode(&b)) {
        return Ok(filter);
    }
    let filter = compile(s)?;
    // The cache only saves time: a start does not fail because it cannot be written.
    if let Err(e) = store(dir, &key, &filter) {
        tracing::debug!(error = %e, dir = %dir.display(), "seccomp: filter not cached");
    }
    Ok(filter)
}

fn key(s: &LinuxSeccomp) -> Result<String> {
    let json = serde_json::to_vec(s)
        .map_err(|e| crate::Error::Seccomp(format!("serialise the profile: {e}")))?;
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update([0]);
    h.update(libseccomp_version());
    h.update([0]);
    h.update(json);
    Ok(hex::encode(h.finalize()))
}

fn store(dir: &Path, key: &str, filter: &Filter) -> std::io::Result<()> {
    // The root (the parent) is made as `claim` makes it: a user-namespaced container's init
    // must pass through it to its exec fifo, so it may not be made 0700 here.
    if let Some(root) = dir.parent() {
        fs::create_dir_all(root)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    if fs::read_dir(dir)?.count() >= MAX_ENTRIES {
        for entry in fs::read_dir(dir)?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
    }
    let tmp = dir.join(format!(".{key}.{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&encode(filter)))
        .and_then(|()| fs::rename(&tmp, dir.join(key)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The flags (8 bytes), then each instruction as the kernel lays out `sock_filter`
/// (code: 2 bytes, jt, jf: 1 each, k: 4), little-endian.
fn encode(f: &Filter) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 * f.program.len());
    out.extend_from_slice(&f.flags.to_le_bytes());
    for i in &f.program {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Filter> {
    let (flags, program) = bytes.split_first_chunk::<8>()?;
    let count = program.len() / 8;
    if program.len() % 8 != 0 || count == 0 || count > MAX_INSTRUCTIONS {
        return None;
    }
    let program = program
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let flags = libc::c_ulong::from_le_bytes(*flags);
    Some(Filter { program, flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn same(a: &Filter, b: &Filter) -> bool {
        encode(a) == encode(b)
    }

    #[test]
    fn a_cached_filter_is_the_compiled_one_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let first = compile_cached(&s, &cache).unwrap();
        assert!(same(&first, &compile(&s).unwrap()));
        let entries: Vec<_> = fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(entries.len(), 1, "one entry, no temporary left");
        // What is read back is what was stored: prove it by storing a different program
        // under this profile's name.
        let other = compile(&profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).unwrap();
        fs::write(entries[0].path(), encode(&other)).unwrap();
        assert!(same(&compile_cached(&s, &cache).unwrap(), &other));
    }

    #[test]
    fn a_damaged_entry_is_compiled_again_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let s = profile(r#"{"defaultAction": "SCMP_ACT_KILL"}"#);
        let path = dir.path().join(key(&s).unwrap());
        for damage in [&b""[..], &[1, 2, 3][..], &[0; 8][..], &[0; 13][..]] {
            fs::write(&path, damage).unwrap();
            let filter = compile_cached(&s, dir.path()).unwrap();
            assert!(same(&filter, &compile(&s).unwrap()));
            assert_eq!(fs::read(&path).unwrap(), encode(&filter));
        }
    }

    #[test]
    fn different_profiles_get_different_entries_and_the_directory_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        for errno in 1..=(MAX_ENTRIES as u32 + 5) {
            let s = profile(&format!(
                r#"{{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": {errno}}}"#
            ));
            compile_cached(&s, dir.path()).unwrap();
        }
        let n = fs::read_dir(dir.path()).unwrap().count();
        assert!((1..=MAX_ENTRIES).contains(&n), "{n} entries");
    }
}
