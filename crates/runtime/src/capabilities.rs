//! Linux capabilities of the container process (`process.capabilities`).
//!
//! Order of use, in the container's init:
//! 1. [`validate`] in the parent, before any kernel object exists, so a bad config fails early;
//! 2. [`drop_bounding`] while still root (dropping from the bounding set needs CAP_SETPCAP);
//! 3. `prctl(PR_SET_KEEPCAPS, 1)` + `setresuid`/`setresgid` (done by the caller);
//! 4. [`apply`]: permitted, effective and inheritable in one `capset`, then ambient.
//!
//! Capabilities are handled by number, not through the `caps` crate's enum, so that a
//! kernel newer than this crate still gets its unknown bounding capabilities dropped.

use std::collections::BTreeSet;
use std::fs;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::{Error, Result};

/// Capability numbers as the kernel counts them (`CAP_CHOWN` is 0).
type CapSet = BTreeSet<u8>;

/// Checks a capability config against the running kernel without changing anything.
///
/// Errors when a capability is unknown to this kernel (above `cap_last_cap`), and for the
/// two sets `capset` would refuse with a bare EPERM: `effective` not within `permitted`,
/// and `inheritable` not within `bounding` (plus what this process already inherits).
pub fn validate(c: &LinuxCapabilities) -> Result<()> {
    let last = last_cap()?;
    let sets = Sets::from_spec(c, last)?;
    let bounding = to_numbers(c.bounding().as_ref(), "bounding", last)?;
    let inheritable_now: CapSet = caps::read(None, caps::CapSet::Inheritable)
        .map_err(|e| Error::Capability(format!("read this process's inheritable set: {e}")))?
        .iter()
        .map(|c| c.index())
        .collect();
    let allowed: CapSet = bounding.union(&inheritable_now).copied().collect();
    not_within(&sets.effective, &sets.permitted, "effective", "permitted")?;
    not_within(&sets.inheritable, &allowed, "inheritable", "bounding")
}

/// Errors naming the capabilities of `set` missing from `limit`.
fn not_within(set: &CapSet, limit: &CapSet, set_name: &str, limit_name: &str) -> Result<()> {
    let extra: Vec<String> = set.difference(limit).map(|n| cap_name(*n)).collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(Error::Capability(format!(
        "{} in process.capabilities.{set_name} but not in {limit_name}: the kernel refuses \
         {set_name} capabilities outside {limit_name}",
        extra.join(", ")
    )))
}

/// Drops every capability of the bounding set that is not in `c.bounding`.
///
/// Call while still privileged (CAP_SETPCAP), before switching to the container's user.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let last = last_cap()?;
    let keep = to_numbers(c.bounding().as_ref(), "bounding", last)?;
    for cap in (0..=last).filter(|cap| !keep.contains(cap)) {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            return Err(sys_err(format!(
                "drop {} from the bounding set",
                cap_name(cap)
            )));
        }
    }
    Ok(())
}

/// Sets permitted, effective and inheritable, then raises the ambient capabilities.
///
/// Called after `setresuid` with `PR_SET_KEEPCAPS`, so permitted still holds what root had.
/// An ambient capability can only be raised when it is both permitted and inheritable; the
/// others are skipped with a warning (the kernel would refuse them with EPERM).
pub fn apply(c: &LinuxCapabilities) -> Result<()> {
    let last = last_cap()?;
    let sets = Sets::from_spec(c, last)?;
    capset(&sets)?;
    set_ambient(&sets)
}

/// The five sets of a config, as numbers, checked against the kernel's last capability.
struct Sets {
    permitted: CapSet,
    effective: CapSet,
    inheritable: CapSet,
    ambient: CapSet,
}

impl Sets {
    fn from_spec(c: &LinuxCapabilities, last: u8) -> Result<Self> {
        // Bounding is converted only to report unknown capabilities early.
        to_numbers(c.bounding().as_ref(), "bounding", last)?;
        Ok(Sets {
            permitted: to_numbers(c.permitted().as_ref(), "permitted", last)?,
            effective: to_numbers(c.effective().as_ref(), "effective", last)?,
            inheritable: to_numbers(c.inheritable().as_ref(), "inheritable", last)?,
            ambient: to_numbers(c.ambient().as_ref(), "ambient", last)?,
        })
    }
}

/// Converts one set of the config to numbers; every capability above `last` is named in
/// the error, so the user sees all of them at once.
fn to_numbers(caps: Option<&Capabilities>, set: &str, last: u8) -> Result<CapSet> {
    let numbers: CapSet = caps
        .into_iter()
        .flatten()
        .map(cap_number)
        .collect::<Result<_>>()?;
    let unknown: Vec<String> = numbers
        .iter()
        .filter(|n| **n > last)
        .map(|n| cap_name(*n))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Capability(format!(
            "{} in process.capabilities.{set} unknown to this kernel (its last capability is {})",
            unknown.join(", "),
            cap_name(last)
        )));
    }
    Ok(numbers)
}

/// The kernel's number of an OCI capability, found through the `caps` crate's table.
fn cap_number(cap: &Capability) -> Result<u8> {
    let name = format!("CAP_{cap}");
    name.parse::<caps::Capability>()
        .map(|c| c.index())
        .map_err(|_| Error::Capability(format!("{name} is not known to berth")))
}

/// "CAP_KILL" for 5; a bare number for capabilities newer than the `caps` crate.
pub(crate) fn cap_name(n: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == n)
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("capability {n}"))
}

/// The capabilities in this process's bounding set, by name: all that a container made by
/// it can be given (`--privileged` means these, not every one the kernel knows).
pub fn bounding_set() -> Result<Vec<String>> {
    let held = |cap: u8| {
        // SAFETY: PR_CAPBSET_READ takes a capability number and touches no memory.
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) == 1 }
    };
    Ok((0..=last_cap()?)
        .filter(|c| held(*c))
        .map(cap_name)
        .collect())
}

/// The highest capability number the running kernel knows.
///
/// Read from procfs; when /proc is not (yet) mounted, probe the bounding set instead:
/// PR_CAPBSET_READ fails with EINVAL for numbers the kernel does not know.
pub fn last_cap() -> Result<u8> {
    if let Ok(text) = fs::read_to_string("/proc/sys/kernel/cap_last_cap") {
        if let Ok(n) = text.trim().parse::<u8>() {
            return Ok(n);
        }
    }
    let known = |cap: u8| {
        // SAFETY: PR_CAPBSET_READ takes a capability number and touches no memory.
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) >= 0 }
    };
    (0..=u8::MAX - 1)
        .take_while(|cap| known(*cap))
        .last()
        .ok_or_else(|| Error::Capability("cannot find the kernel's last capability".into()))
}

/// Kernel ABI of capset(2), version 3: two 32-bit words per set.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the three sets in one syscall: setting them one by one could pass through a state
/// the kernel rejects (effective not within permitted).
fn capset(sets: &Sets) -> Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    for (word, d) in data.iter_mut().enumerate() {
        d.effective = mask_word(&sets.effective, word);
        d.permitted = mask_word(&sets.permitted, word);
        d.inheritable = mask_word(&sets.inheritable, word);
    }
    // SAFETY: header and data are valid, correctly laid out for version 3 (two data
    // elements), and outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(sys_err("capset (permitted, effective, inheritable)".into()));
    }
    Ok(())
}

/// Bits of word 0 (caps 0..31) or word 1 (caps 32..63) of a set.
fn mask_word(set: &CapSet, word: usize) -> u32 {
    set.iter()
        .filter(|n| usize::from(**n) / 32 == word)
        .fold(0, |acc, n| acc | 1 << (n % 32))
}

/// Clears the ambient set, then raises what the config asks and the kernel allows.
fn set_ambient(sets: &Sets) -> Result<()> {
    ambient_prctl(libc::PR_CAP_AMBIENT_CLEAR_ALL, 0)
        .map_err(|()| sys_err("clear the ambient capability set".into()))?;
    for &cap in &sets.ambient {
        if !sets.permitted.contains(&cap) || !sets.inheritable.contains(&cap) {
            tracing::warn!(
                cap = %cap_name(cap),
                "ambient capability skipped: it must be both permitted and inheritable"
            );
            continue;
        }
        ambient_prctl(libc::PR_CAP_AMBIENT_RAISE, cap)
            .map_err(|()| sys_err(format!("raise ambient {}", cap_name(cap))))?;
    }
    Ok(())
}

fn ambient_prctl(op: libc::c_int, cap: u8) -> std::result::Result<(), ()> {
    // SAFETY: PR_CAP_AMBIENT takes an operation and a capability number, no memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            op as libc::c_ulong,
            libc::c_ulong::from(cap),
            0,
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// An error from the errno the last syscall left.
fn sys_err(context: String) -> Error {
    Error::Sys {
        context,
        source: nix::errno::Errno::last(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxCapabilitiesBuilder;

    fn set(caps: &[Capability]) -> Capabilities {
        caps.iter().copied().collect()
    }

    #[test]
    fn numbers_follow_the_kernel_abi() {
        assert_eq!(cap_number(&Capability::Chown).unwrap(), 0);
        assert_eq!(cap_number(&Capability::Kill).unwrap(), 5);
        assert_eq!(cap_number(&Capability::SysAdmin).unwrap(), 21);
        assert_eq!(cap_number(&Capability::CheckpointRestore).unwrap(), 40);
        assert_eq!(cap_name(5), "CAP_KILL");
        assert_eq!(cap_name(63), "capability 63");
    }

    #[test]
    fn caps_above_the_kernel_last_cap_are_named_in_the_error() {
        let caps = set(&[
            Capability::Kill,
            Capability::CheckpointRestore,
            Capability::Bpf,
        ]);
        // A kernel whose last capability is CAP_PERFMON (38) knows neither BPF (39)
        // nor CHECKPOINT_RESTORE (40).
        let err = to_numbers(Some(&caps), "effective", 38)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CAP_BPF"), "{err}");
        assert!(err.contains("CAP_CHECKPOINT_RESTORE"), "{err}");
        assert!(err.contains("process.capabilities.effective"), "{err}");
        assert!(!err.contains("CAP_KILL"), "{err}");
        assert_eq!(
            to_numbers(Some(&caps), "effective", 40).unwrap(),
            [5, 39, 40].into_iter().collect()
        );
    }

    #[test]
    fn absent_set_is_empty() {
        assert!(to_numbers(None, "ambient", 40).unwrap().is_empty());
    }

    #[test]
    fn mask_words_split_at_32() {
        let s: CapSet = [0, 5, 31, 32, 40].into_iter().collect();
        assert_eq!(mask_word(&s, 0), 1 | 1 << 5 | 1 << 31);
        assert_eq!(mask_word(&s, 1), 1 | 1 << 8);
    }

    #[test]
    fn last_cap_matches_procfs() {
        let procfs: u8 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(last_cap().unwrap(), procfs);
    }

    #[test]
    fn validate_rejects_effective_outside_permitted() {
        let c = LinuxCapabilitiesBuilder::default()
            .permitted(set(&[Capability::Kill]))
            .effective(set(&[Capability::Kill, Capability::Chown]))
            .build()
            .unwrap();
        let err = validate(&c).unwrap_err().to_string();
        assert!(err.contains("CAP_CHOWN"), "{err}");
    }

    #[test]
    fn validate_rejects_inheritable_outside_bounding() {
        let c = LinuxCapabilitiesBuilder::default()
            .bounding(set(&[Capability::Kill]))
            .permitted(set(&[Capability::Kill]))
            .effective(set(&[Capability::Kill]))
            .inheritable(set(&[Capability::Kill, Capability::NetRaw]))
            .build()
            .unwrap();
        let err = validate(&c).unwrap_err().to_string();
        assert!(
            err.contains("CAP_NET_RAW in process.capabilities.inheritable"),
            "{err}"
        );
    }

    #[test]
    fn validate_accepts_the_default_set() {
        validate(&LinuxCapabilities::default()).unwrap();
    }
}
