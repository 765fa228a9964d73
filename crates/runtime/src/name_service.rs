//! glibc's name service (getpwnam, getgrnam, getaddrinfo...) held to the sources built into
//! libc itself.
//!
//! berth's binaries are linked statically (see .cargo/config.toml). A static glibc that
//! finds another source in /etc/nsswitch.conf (`systemd`, `resolve`, `myhostname`, `sss`...)
//! and has to consult it, because the built-in `files` did not answer, dlopens that
//! module; the module expects a shared libc and the process crashes. Docker's static
//! binaries avoid the same trap by reading /etc/passwd and /etc/group and resolving names
//! themselves; berth keeps glibc's readers and tells them, before anything looks a name up,
//! to use only `files` (and `dns` for hosts).

use std::ffi::{c_char, c_int, CStr};

/// Each database the product may consult, and the sources it gets.
const SOURCES: [(&CStr, &CStr); 8] = [
    (c"passwd", c"files"),
    (c"group", c"files"),
    (c"initgroups", c"files"),
    (c"shadow", c"files"),
    (c"hosts", c"files dns"),
    (c"services", c"files"),
    (c"protocols", c"files"),
    (c"networks", c"files"),
];

extern "C" {
    /// glibc's own override of nsswitch.conf for one database (declared in <nss.h>).
    fn __nss_configure_lookup(dbname: *const c_char, sources: *const c_char) -> c_int;
}

/// Call first thing in `main`, before any thread starts or any name is looked up.
pub fn use_builtin_sources() {
    for (db, sources) in SOURCES {
        // SAFETY: both arguments are NUL-terminated strings with static lifetime; glibc
        // parses them into its own table. Called before any other thread exists, so nothing
        // looks a name up while the table changes.
        unsafe { __nss_configure_lookup(db.as_ptr(), sources.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_no_file_knows_is_simply_unknown() {
        use_builtin_sources();
        // Without the override, a static test binary on a host whose nsswitch.conf lists
        // `systemd` after `files` (as this one does) would crash here.
        let group = nix::unistd::Group::from_name("berth-no-such-group-x").unwrap();
        assert!(group.is_none());
        let user = nix::unistd::User::from_name("berth-no-such-user-x").unwrap();
        assert!(user.is_none());
        assert_eq!(
            nix::unistd::User::from_uid(0.into()).unwrap().unwrap().name,
            "root"
        );
    }
}
