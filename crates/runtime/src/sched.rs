//! How the container's process is scheduled: process.scheduler (policy, nice, priority,
//! deadline parameters), process.execCPUAffinity, and linux.personality.

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process,
};

use crate::error::{Context, Error, Result};

/// struct sched_attr as of Linux 3.14 (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn policy_number(p: LinuxSchedulerPolicy) -> Result<u32> {
    use LinuxSchedulerPolicy as P;
    Ok(match p {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
        P::SchedIso => {
            return Err(Error::invalid(
                "process.scheduler.policy SCHED_ISO is not implemented by Linux: choose another",
            ))
        }
    })
}

fn flag_bit(f: LinuxSchedulerFlag) -> u64 {
    use LinuxSchedulerFlag as F;
    match f {
        F::SchedResetOnFork => 0x01,
        F::SchedFlagReclaim => 0x02,
        F::SchedFlagDLOverrun => 0x04,
        F::SchedFlagKeepPolicy => 0x08,
        F::SchedFlagKeepParams => 0x10,
        F::SchedFlagUtilClampMin => 0x20,
        F::SchedFlagUtilClampMax => 0x40,
    }
}

/// Applies process.scheduler to this process (before privileges are dropped: real-time
/// policies need CAP_SYS_NICE).
pub fn set_scheduler(p: &Process) -> Result<()> {
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_number(*s.policy())?,
        flags: s
            .flags()
            .iter()
            .flatten()
            .map(|f| flag_bit(*f))
            .fold(0, |a, b| a | b),
        nice: s.nice().unwrap_or(0),
        priority: u32::try_from(s.priority().unwrap_or(0))
            .map_err(|_| Error::invalid("process.scheduler.priority must not be negative"))?,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: sched_setattr reads `attr`, whose size field is set, for the calling thread (0).
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(Error::Sys {
            context: format!("set process.scheduler ({:?})", s.policy()),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

/// Parses a cpu list such as "0-3,6" (the cpuset syntax execCPUAffinity uses).
pub fn parse_cpus(list: &str) -> Result<CpuSet> {
    let bad = || {
        Error::invalid(format!(
            "process.execCPUAffinity {list:?}: use a cpu list such as \"0-3,6\""
        ))
    };
    let mut set = CpuSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (lo, hi) = (lo.map_err(|_| bad())?, hi.map_err(|_| bad())?);
        if lo > hi {
            return Err(bad());
        }
        for cpu in lo..=hi {
            set.set(cpu).map_err(|_| bad())?;
        }
    }
    Ok(set)
}

/// execCPUAffinity.initial (`initial` true: on entering the container) or .final (just
/// before the user's program runs).
pub fn set_exec_affinity(p: &Process, initial: bool) -> Result<()> {
    let Some(a) = p.exec_cpu_affinity() else {
        return Ok(());
    };
    let list = if initial {
        a.initial()
    } else {
        a.cpu_affinity_final()
    };
    let Some(list) = list else {
        return Ok(());
    };
    let set = parse_cpus(list)?;
    sched_setaffinity(Pid::from_raw(0), &set).context(|| format!("set cpu affinity {list}"))
}

/// linux.personality: the execution domain (LINUX or LINUX32).
pub fn set_personality(p: Option<&LinuxPersonality>) -> Result<()> {
    let Some(p) = p else {
        return Ok(());
    };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::invalid(
            "linux.personality.flags are not supported: remove them",
        ));
    }
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes a number and changes only this process's execution domain.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(Error::Sys {
            context: "set linux.personality".into(),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        let s = parse_cpus("0-1,3").unwrap();
        assert!(s.is_set(0).unwrap() && s.is_set(1).unwrap() && s.is_set(3).unwrap());
        assert!(!s.is_set(2).unwrap());
        for bad in ["x", "3-1", "1-", "-"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }
}
