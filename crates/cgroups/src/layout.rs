//! Where this host keeps its cgroup hierarchies, read from /proc/self/mountinfo, and where the
//! calling process sits in each of them, read from /proc/self/cgroup.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::{Error, Result};

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub mount_point: PathBuf,
    /// For v1, the hierarchy's controllers and name as mount options ("memory",
    /// "cpu,cpuacct", "name=systemd"); empty for v2.
    pub options: String,
    pub v2: bool,
}

impl Mounted {
    fn key(&self) -> BTreeSet<String> {
        self.options.split(',').map(str::to_string).collect()
    }

    pub fn has_controller(&self, name: &str) -> bool {
        if self.v2 {
            let controllers = self.mount_point.join("cgroup.controllers");
            return std::fs::read_to_string(controllers)
                .map(|c| c.split_whitespace().any(|c| c == name))
                .unwrap_or(false);
        }
        self.options.split(',').any(|o| o == name)
    }
}

/// v1 mount options that are not controllers.
const NOT_CONTROLLERS: [&str; 12] = [
    "rw",
    "ro",
    "nosuid",
    "nodev",
    "noexec",
    "relatime",
    "noatime",
    "clone_children",
    "xattr",
    "nsdelegate",
    "memory_recursiveprot",
    "favordynmods",
];

/// Every cgroup hierarchy mounted here, once each (a hierarchy mounted twice is kept once).
pub fn parse_mountinfo(text: &str) -> Vec<Mounted> {
    let mut out: Vec<Mounted> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = match pre.split(' ').nth(4) {
            Some(p) => PathBuf::from(unescape(p)),
            None => continue,
        };
        let mut post = post.split(' ');
        let (fstype, _source, opts) = (post.next(), post.next(), post.next().unwrap_or(""));
        let m = match fstype {
            Some("cgroup2") => Mounted {
                mount_point,
                options: String::new(),
                v2: true,
            },
            Some("cgroup") => Mounted {
                mount_point,
                options: opts
                    .split(',')
                    .filter(|o| !NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent="))
                    .collect::<Vec<_>>()
                    .join(","),
                v2: false,
            },
            _ => continue,
        };
        if !out.iter().any(|o| o.v2 == m.v2 && o.key() == m.key()) {
            out.push(m);
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(n as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// The caller's cgroup path in `m`, from the text of /proc/self/cgroup.
pub fn own_path(proc_cgroup: &str, m: &Mounted) -> Result<PathBuf> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let matches = if m.v2 {
            controllers.is_empty()
        } else {
            let set: BTreeSet<String> = controllers.split(',').map(str::to_string).collect();
            !controllers.is_empty() && set == m.key()
        };
        if matches {
            return Ok(PathBuf::from(path));
        }
    }
    Err(Error::Layout(format!(
        "/proc/self/cgroup has no entry for the hierarchy at {}",
        m.mount_point.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:28 / /mnt/memory\\040again rw - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_hierarchies_are_found_once_each() {
        let m = parse_mountinfo(HYBRID);
        let summary: Vec<(String, &str, bool)> = m
            .iter()
            .map(|m| {
                (
                    m.mount_point.display().to_string(),
                    m.options.as_str(),
                    m.v2,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("/sys/fs/cgroup/unified".to_string(), "", true),
                ("/sys/fs/cgroup/systemd".to_string(), "name=systemd", false),
                (
                    "/sys/fs/cgroup/cpu,cpuacct".to_string(),
                    "cpu,cpuacct",
                    false
                ),
                ("/sys/fs/cgroup/memory".to_string(), "memory", false),
            ]
        );
    }

    #[test]
    fn pure_v2_is_one_hierarchy() {
        let m = parse_mountinfo(
            "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        );
        assert_eq!(m.len(), 1);
        assert!(m[0].v2);
    }

    #[test]
    fn own_paths_match_by_controller_set() {
        let m = parse_mountinfo(HYBRID);
        let proc = "12:cpuacct,cpu:/a\n4:memory:/b/c\n1:name=systemd:/s\n0::/u\n";
        assert_eq!(own_path(proc, &m[0]).unwrap(), PathBuf::from("/u"));
        assert_eq!(own_path(proc, &m[1]).unwrap(), PathBuf::from("/s"));
        assert_eq!(own_path(proc, &m[2]).unwrap(), PathBuf::from("/a"));
        assert_eq!(own_path(proc, &m[3]).unwrap(), PathBuf::from("/b/c"));
        assert!(own_path("4:pids:/x\n", &m[3]).is_err());
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
    }
}
