//! `--chown` and `--chmod` of COPY/ADD.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, SFlag};

use super::in_root;
use crate::error::{Error, Result};

/// `/etc/passwd` or `/etc/group` larger than this is refused rather than read into memory.
const MAX_ACCOUNT_FILE: u64 = 16 << 20;

/// Parses `--chown`: `uid`, `uid:gid`, `user`, `user:group`, names looked up in the
/// rootfs's `/etc/passwd` and `/etc/group`. A user alone brings their primary group
/// (a bare uid: the gid of the same number).
pub fn parse_chown(spec: &str, rootfs: &Path) -> Result<(u32, u32)> {
    let fail = |reason: String| Error::Chown {
        spec: spec.to_string(),
        reason,
    };
    let (user, group) = match spec.trim().split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec.trim(), None),
    };
    if user.is_empty() || group == Some("") {
        return Err(fail(
            "give a user and optionally a group, like 1000, app or app:staff".into(),
        ));
    }
    let (uid, primary_gid) = match number(user) {
        Some(uid) => (uid, uid),
        None => {
            let passwd = read_account_file(rootfs, "etc/passwd").map_err(&fail)?;
            lookup(&passwd, user, 2, Some(3)).ok_or_else(|| {
                fail(format!("no user `{user}` in the image's /etc/passwd; use a numeric uid or create the user first"))
            })?
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(group) => match number(group) {
            Some(gid) => gid,
            None => {
                let groups = read_account_file(rootfs, "etc/group").map_err(&fail)?;
                lookup(&groups, group, 2, None).map(|(gid, _)| gid).ok_or_else(|| {
                    fail(format!("no group `{group}` in the image's /etc/group; use a numeric gid or create the group first"))
                })?
            }
        },
    };
    Ok((uid, gid))
}

/// Parses `--chmod`: an octal mode such as `755` or `0644`.
pub fn parse_chmod(spec: &str) -> Result<u32> {
    let digits = spec.trim();
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(Error::Chmod(spec.to_string()));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(Error::Chmod(spec.to_string())),
    }
}

fn number(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// In a passwd/group style file, the line whose first field is `name`: its fields
/// `id_field` and (if given) `second_field` as numbers.
fn lookup(
    text: &str,
    name: &str,
    id_field: usize,
    second_field: Option<usize>,
) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) {
            return None;
        }
        let id = number(fields.get(id_field)?)?;
        let second = match second_field {
            Some(i) => number(fields.get(i)?)?,
            None => id,
        };
        Some((id, second))
    })
}

/// Reads `rel` from the rootfs, resolved inside it; only a regular file will do, so that a
/// fifo or device planted there cannot block or flood the build.
fn read_account_file(rootfs: &Path, rel: &str) -> std::result::Result<String, String> {
    let shown = format!("/{rel}");
    let root = in_root::open_root(rootfs).map_err(|e| e.to_string())?;
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = in_root::open_in_root(&root, rel.as_bytes(), flags)
        .map_err(|e| format!("cannot open the image's {shown} ({e}); use numeric ids"))?;
    let st = fstat(&fd).map_err(|e| format!("cannot stat the image's {shown}: {e}"))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(format!(
            "the image's {shown} is not a regular file; use numeric ids"
        ));
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(MAX_ACCOUNT_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the image's {shown}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:app\napp:x:1001:\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn chown_forms() {
        let dir = rootfs();
        let root = dir.path();
        assert_eq!(parse_chown("10", root).unwrap(), (10, 10));
        assert_eq!(parse_chown("10:20", root).unwrap(), (10, 20));
        assert_eq!(parse_chown("app", root).unwrap(), (1000, 1001));
        assert_eq!(parse_chown("app:staff", root).unwrap(), (1000, 50));
        assert_eq!(parse_chown("app:7", root).unwrap(), (1000, 7));
        assert_eq!(parse_chown("0:staff", root).unwrap(), (0, 50));
    }

    #[test]
    fn chown_errors() {
        let dir = rootfs();
        let root = dir.path();
        let err = parse_chown("nobody", root).unwrap_err().to_string();
        assert!(err.contains("no user `nobody`"), "{err}");
        let err = parse_chown("app:wheel", root).unwrap_err().to_string();
        assert!(err.contains("no group `wheel`"), "{err}");
        assert!(parse_chown("", root).is_err());
        assert!(parse_chown("app:", root).is_err());
        assert!(parse_chown(":1", root).is_err());
        assert!(parse_chown("99999999999", root).is_err());
    }

    #[test]
    fn chown_reads_passwd_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("rootfs")).unwrap();
        fs::create_dir_all(dir.path().join("host")).unwrap();
        fs::write(
            dir.path().join("host/passwd"),
            "evil:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        // A hostile image points /etc at the host; the lookup must stay in the rootfs.
        std::os::unix::fs::symlink("../host", dir.path().join("rootfs/etc")).unwrap();
        let err = parse_chown("evil", &dir.path().join("rootfs")).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[test]
    fn chmod_is_octal() {
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
        assert_eq!(parse_chmod("0644").unwrap(), 0o644);
        assert_eq!(parse_chmod("4755").unwrap(), 0o4755);
        for bad in ["", "8", "u+x", "-1", "77777", "0x1ff", "12345"] {
            assert!(parse_chmod(bad).is_err(), "{bad}");
        }
    }
}
