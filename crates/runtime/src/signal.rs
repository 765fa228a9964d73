//! Signals by number, real-time ones included: systemd halts on SIGRTMIN+3, which nix's
//! `Signal` has no variant for. Names are read as `kill(1)` and Docker read them.

use std::str::FromStr;

use crate::{Error, Result};

/// A signal from "TERM", "SIGTERM", "term", "15", "RTMIN+3" or "SIGRTMAX-1".
pub fn parse(s: &str) -> Result<i32> {
    let found = match s.parse::<i32>() {
        Ok(n) => (1..=libc::SIGRTMAX()).contains(&n).then_some(n),
        Err(_) => named(&s.to_ascii_uppercase()),
    };
    found.ok_or_else(|| {
        Error::invalid(format!(
            "invalid signal {s:?}: give a name such as TERM, KILL or RTMIN+3, or a number \
             from 1 to {}",
            libc::SIGRTMAX()
        ))
    })
}

fn named(upper: &str) -> Option<i32> {
    let name = upper.strip_prefix("SIG").unwrap_or(upper);
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let offset = |rest: &str| -> Option<i32> {
        match rest {
            "" => Some(0),
            _ => rest.parse().ok(),
        }
    };
    let real_time = if let Some(rest) = name.strip_prefix("RTMIN") {
        Some(min + offset(rest.strip_prefix('+').unwrap_or(rest))?)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        Some(max - offset(rest.strip_prefix('-').unwrap_or(rest))?)
    } else {
        None
    };
    match real_time {
        Some(n) => (min..=max).contains(&n).then_some(n),
        None => nix::sys::signal::Signal::from_str(&format!("SIG{name}"))
            .ok()
            .map(|s| s as i32),
    }
}

/// Sends `signal` to `pid`.
pub fn send(pid: i32, signal: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    nix::errno::Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse(s).unwrap(), libc::SIGKILL);
        }
        assert_eq!(parse("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse("rtmin").unwrap(), libc::SIGRTMIN());
        assert_eq!(parse("RTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        assert_eq!(parse("37").unwrap(), 37);
        for bad in ["NOPE", "999", "0", "RTMIN+99", "RTMAX-99", "RTMIN+x", "-1"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid signal"), "{bad}: {err}");
        }
    }
}
