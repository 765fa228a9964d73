//! Tables for humans, in the columns runc prints.

use anyhow::Result;
use berth_runtime::Report;

pub fn print_containers(reports: &[Report]) -> Result<()> {
    println!(
        "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for r in reports {
        println!(
            "{:<24} {:<8} {:<10} {:<40} {:<32} {}",
            r.id, r.pid, r.status, r.bundle, r.created, r.owner
        );
    }
    Ok(())
}

pub fn print_processes(pids: &[i32]) -> Result<()> {
    println!("{:<8} CMD", "PID");
    for pid in pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!("{pid:<8} {cmd}");
    }
    Ok(())
}
