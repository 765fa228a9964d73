//! The shim's resident set once its container runs. Setting the container up ran a lot of
//! code (the runtime library, the spec's parser) that the copy loop never touches again;
//! those pages stay mapped but need not stay resident. Dropping the clean, file-backed ones
//! from our page tables leaves them in the page cache (shared with every other shim, and
//! reclaimable), and only what the loop touches comes back.

/// A range of our address space.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
}

/// Drops the pages of every read-only, file-backed mapping that holds no page of its own.
/// Best effort: a mapping the kernel will not advise is left as it is.
pub fn shed_startup_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in clean_file_mappings(&smaps) {
        // SAFETY: the range is one whole mapping of ours that is read-only, backed by a file,
        // and has no anonymous, privately dirtied or swapped page: every page in it equals
        // the file's, so MADV_DONTNEED only unmaps pages that the next touch reads back
        // unchanged from the page cache. Nothing else is affected.
        unsafe {
            libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED);
        }
    }
}

/// The mappings of an smaps text whose contents are exactly their file's: not writable, with
/// an inode, and with no anonymous, privately dirtied or swapped page (relocated read-only
/// data has such pages, and must keep them).
fn clean_file_mappings(smaps: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    let finish = |c: Option<(Mapping, bool)>, out: &mut Vec<Mapping>| {
        if let Some((m, true)) = c {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        if let Some((m, eligible)) = header(line) {
            finish(current.take(), &mut out);
            current = Some((m, eligible));
            continue;
        }
        let Some((_, eligible)) = current.as_mut() else {
            continue;
        };
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        if matches!(key, "Anonymous:" | "Private_Dirty:" | "Swap:") && value != "0" {
            *eligible = false;
        }
    }
    finish(current.take(), &mut out);
    out
}

/// A mapping's first line (`start-end perms offset dev inode path`): its range, and whether
/// it can be eligible at all (not writable, backed by a file).
fn header(line: &str) -> Option<(Mapping, bool)> {
    let mut f = line.split_whitespace();
    let (range, perms, _offset, _dev, inode) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    if perms.len() != 4 || end <= start {
        return None;
    }
    let path = f.next().unwrap_or("");
    let eligible = !perms.contains('w') && inode != "0" && path.starts_with('/');
    Some((
        Mapping {
            start,
            len: end - start,
        },
        eligible,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r-xp 00001000 08:01 1234    /usr/bin/berth-shim
Rss:                 400 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
Swap:                  0 kB
55d0c0100000-55d0c0102000 r--p 00101000 08:01 1234    /usr/bin/berth-shim
Rss:                   8 kB
Anonymous:             8 kB
Private_Dirty:         8 kB
Swap:                  0 kB
55d0c0102000-55d0c0103000 rw-p 00103000 08:01 1234    /usr/bin/berth-shim
Anonymous:             0 kB
Private_Dirty:         0 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0       [heap]
Anonymous:           132 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0       [vdso]
Anonymous:             0 kB
Private_Dirty:         0 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_chosen() {
        assert_eq!(
            clean_file_mappings(SMAPS),
            [Mapping {
                start: 0x55d0c0000000,
                len: 0x100000
            }]
        );
    }

    #[test]
    fn shedding_our_own_pages_loses_nothing() {
        shed_startup_pages();
        // Code and read-only data come back from the page cache as they were.
        let text = format!("{:?}", clean_file_mappings(SMAPS));
        assert!(text.contains("Mapping"));
        assert_eq!(
            serde_json::json!({"a": [1, 2]}).to_string(),
            r#"{"a":[1,2]}"#
        );
    }
}
