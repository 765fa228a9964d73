//! berth-runtime: the OCI runtime command line, spelled as runc spells it, so that docker,
//! podman, containerd and the OCI test tools can drive berth's runtime unchanged.

mod args;
mod logging;
mod process_flags;
mod resources_flags;
mod table;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_runtime::{CreateOptions, ExecOptions, RunOutcome, Runtime};
use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    berth_runtime::name_service::use_builtin_sources();
    let argv: Vec<OsString> = std::env::args_os().collect();
    // A container's init that re-executed itself from the read-only copy of this binary.
    if argv.get(1).is_some_and(|a| a == berth_runtime::RESUME_ARG) {
        let memfd = argv.get(2).and_then(|a| a.to_str()).unwrap_or_default();
        berth_runtime::resume_init(memfd);
    }
    // Before anything else: the guard may re-execute us, and work done before that is lost.
    if enters_containers(&argv) {
        if let Err(e) = berth_runtime::exe_guard::ensure_readonly_exe(&argv) {
            eprintln!("berth-runtime: {e}");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse_from(&argv);
    let log = logging::init(&cli);
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = one_line(&e);
            log.error(&msg);
            eprintln!("berth-runtime: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (a library error often already
/// names its cause in its own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}

fn dispatch(cli: &Cli) -> Result<u8> {
    tracing::debug!("runtime started");
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported yet: leave it out to use cgroupfs");
    }
    let rt = Runtime::new(&cli.root);
    match &cli.command {
        Command::Create(c) => {
            rt.create(&c.id, &c.create.options())?;
        }
        Command::Start { id } => rt.start(id)?,
        Command::Run(r) => {
            return match rt.run(&r.id, &r.create.options(), r.detach)? {
                RunOutcome::Exited(code) => Ok(code.clamp(0, 255) as u8),
                RunOutcome::Detached { .. } => Ok(0),
            };
        }
        Command::State { id } => print_json(&rt.report(id)?)?,
        Command::Kill { all, id, signal } => {
            rt.kill(id, berth_runtime::signal::parse(signal)?, *all)?;
        }
        Command::Delete { force, id } => rt.delete(id, *force)?,
        Command::Exec(e) => return exec(&rt, e),
        Command::Ps { format, id, .. } => ps(&rt, id, format)?,
        Command::List { format, quiet } => list(&rt, format, *quiet)?,
        Command::Pause { id } => rt.pause(id)?,
        Command::Resume { id } => rt.resume(id)?,
        Command::Update(u) => {
            let resources = resources_flags::resources(u)?;
            rt.update(&u.id, &resources)?;
        }
        Command::Spec { bundle, rootless } => write_spec(bundle, *rootless)?,
        Command::Features => print_json(&berth_runtime::spec::features())?,
    }
    Ok(0)
}

/// `exec` forks the process that enters the container from this one, so this one must not
/// carry a writable runtime binary in. (create and run protect their init themselves, after
/// the clone; an id spelled "exec" costs only a needless re-exec.)
fn enters_containers(argv: &[OsString]) -> bool {
    argv.iter().skip(1).any(|a| a == "exec")
}

impl args::CreateFlags {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
        }
    }
}

fn exec(rt: &Runtime, e: &args::ExecArgs) -> Result<u8> {
    let (record, _) = rt.load_with_status(&e.id)?;
    let process = process_flags::process(e, record.spec.process().as_ref())?;
    let opts = ExecOptions {
        console_socket: e.console_socket.clone(),
        pid_file: e.pid_file.clone(),
        detach: e.detach,
        preserve_fds: e.preserve_fds,
    };
    match rt.exec(&e.id, &process, &opts)? {
        RunOutcome::Exited(code) => Ok(code.clamp(0, 255) as u8),
        RunOutcome::Detached { .. } => Ok(0),
    }
}

fn ps(rt: &Runtime, id: &str, format: &str) -> Result<()> {
    let pids = rt.ps(id)?;
    match format {
        "json" => print_json(&pids),
        "table" => table::print_processes(&pids),
        other => bail!("unknown --format {other:?}: use table or json"),
    }
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let reports = rt.list()?;
    if quiet {
        for r in &reports {
            println!("{}", r.id);
        }
        return Ok(());
    }
    match format {
        "json" => print_json(&reports),
        "table" => table::print_containers(&reports),
        other => bail!("unknown --format {other:?}: use table or json"),
    }
}

fn write_spec(bundle: &std::path::Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists: remove it first", path.display());
    }
    let spec = berth_runtime::spec::default_spec(rootless);
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
