//! The process `exec` runs: from --process, or the container's own process with the command
//! line's changes, as runc builds it.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, Process};

use crate::args::ExecArgs;

pub fn process(e: &ExecArgs, base: Option<&Process>) -> Result<Process> {
    if let Some(path) = &e.process {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read process file {}", path.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid OCI process", path.display()));
    }
    if e.command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(e.command.clone()));
    p.set_terminal(Some(e.tty));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(e.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &e.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(user) = &e.user {
        set_user(&mut p, user)?;
    }
    if !e.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(e.additional_gids.clone()));
        p.set_user(u);
    }
    if e.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    add_caps(&mut p, &e.cap)?;
    p.set_console_size(None);
    Ok(p)
}

fn set_user(p: &mut Process, spec: &str) -> Result<()> {
    let (uid, gid) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let mut u = p.user().clone();
    u.set_uid(uid.parse().with_context(|| {
        format!("--user {spec:?}: give a numeric uid[:gid] (names are resolved by the engine)")
    })?);
    if let Some(g) = gid {
        u.set_gid(
            g.parse()
                .with_context(|| format!("--user {spec:?}: the gid must be a number"))?,
        );
    }
    p.set_user(u);
    Ok(())
}

fn add_caps(p: &mut Process, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut caps = p.capabilities().clone().unwrap_or_default();
    for name in names {
        let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
            .with_context(|| format!("--cap {name:?}: unknown capability (e.g. CAP_NET_ADMIN)"))?;
        let add = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        let (b, e, pm) = (
            add(caps.bounding()),
            add(caps.effective()),
            add(caps.permitted()),
        );
        caps.set_bounding(b);
        caps.set_effective(e);
        caps.set_permitted(pm);
    }
    p.set_capabilities(Some(caps));
    Ok(())
}
