//! Seccomp filters (`linux.seccomp`), compiled with libseccomp.
//!
//! [`compile`] runs in the parent before anything is created, so a bad profile fails early,
//! and turns the profile into a classic BPF program. [`load`] runs in the container's init
//! right before exec: it is one `seccomp(2)` call on memory prepared in advance, so it does
//! not allocate after fork and does not depend on libseccomp's global state.
//!
//! Loading a filter needs either `no_new_privs` or CAP_SYS_ADMIN. This module sets neither:
//! the runtime sets `PR_SET_NO_NEW_PRIVS` when `process.noNewPrivileges` is true, and
//! otherwise loads the filter before dropping capabilities (as runc does).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

use libseccomp::ScmpSyscall;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::{Error, Result};

mod cache;
pub use cache::compile_cached;

/// The kernel refuses longer classic BPF programs (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;

/// A compiled filter: a BPF program and the `seccomp(2)` flags to load it with.
#[derive(Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// A filter as plain numbers, to carry it across the init's re-exec.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FilterData {
    program: Vec<(u16, u8, u8, u32)>,
    flags: libc::c_ulong,
}

impl From<&Filter> for FilterData {
    fn from(f: &Filter) -> Self {
        FilterData {
            program: f
                .program
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect(),
            flags: f.flags,
        }
    }
}

impl From<FilterData> for Filter {
    fn from(d: FilterData) -> Self {
        Filter {
            program: d
                .program
                .into_iter()
                .map(|(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
                .collect(),
            flags: d.flags,
        }
    }
}

impl Filter {
    /// Number of BPF instructions (useful in logs and tests).
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// A compiled program is never empty; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .finish()
    }
}

/// Compiles an OCI seccomp profile. Errors name the offending field.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    reject_notify(s)?;
    let default = action(s.default_action(), s.default_errno_ret(), "defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(scmp("create the filter"))?;
    // A binary tree of syscall numbers instead of a chain: an allow list of ~400 syscalls
    // then costs a process a dozen comparisons per syscall, not hundreds.
    ctx.set_ctl_optimize(2)
        .map_err(scmp("ask for a binary-tree filter"))?;
    add_architectures(&mut ctx, s.architectures().as_deref().unwrap_or_default())?;
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        add_syscall_rule(&mut ctx, rule, default, i)?;
    }
    let program = export(&ctx)?;
    let flags = filter_flags(s.flags().as_deref().unwrap_or_default());
    Ok(Filter { program, flags })
}

/// Installs the filter on the calling thread (and on all threads with TSYNC).
///
/// Async-signal-safe: no allocation, one syscall.
pub fn load(f: &Filter) -> Result<()> {
    let prog = libc::sock_fprog {
        // compile() guarantees the length fits (MAX_INSTRUCTIONS).
        len: f.program.len() as libc::c_ushort,
        filter: f.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `len` valid instructions owned by `f`, alive during the call;
    // the kernel copies the program and keeps no pointer to it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            f.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    match rc {
        0 => Ok(()),
        // With TSYNC the kernel returns the id of a thread it could not synchronise.
        tid if tid > 0 => Err(Error::Seccomp(format!(
            "load the filter: thread {tid} cannot be synchronised (SECCOMP_FILTER_FLAG_TSYNC)"
        ))),
        _ => Err(Error::Sys {
            context: "seccomp: load the filter (needs noNewPrivileges or CAP_SYS_ADMIN)".into(),
            source: nix::errno::Errno::last(),
        }),
    }
}

/// SCMP_ACT_NOTIFY needs a listener socket and an agent protocol: not implemented yet.
fn reject_notify(s: &LinuxSeccomp) -> Result<()> {
    if s.listener_path().is_some() {
        return Err(Error::Seccomp(
            "linux.seccomp.listenerPath (seccomp user notification) is not supported yet".into(),
        ));
    }
    let notify_rule = s
        .syscalls()
        .iter()
        .flatten()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    if s.default_action() == LinuxSeccompAction::ScmpActNotify || notify_rule {
        return Err(Error::Seccomp(
            "SCMP_ACT_NOTIFY (seccomp user notification) is not supported yet".into(),
        ));
    }
    Ok(())
}

/// The libseccomp action of an OCI action; ERRNO and TRACE default to EPERM, as in runc.
fn action(a: LinuxSeccompAction, errno_ret: Option<u32>, field: &str) -> Result<ScmpAction> {
    let ret = errno_ret.unwrap_or(libc::EPERM as u32);
    let errno = || {
        u16::try_from(ret)
            .map_err(|_| Error::Seccomp(format!("{field}: errnoRet {ret} does not fit in 16 bits")))
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(errno()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno()?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(format!(
                "{field}: SCMP_ACT_NOTIFY is not supported yet"
            )))
        }
    })
}

/// Adds the listed architectures; the native one is always in a new filter.
fn add_architectures(ctx: &mut ScmpFilterContext, archs: &[Arch]) -> Result<()> {
    for arch in archs {
        let name = serde_name(arch);
        let scmp = ScmpArch::from_str(&name).map_err(|_| {
            Error::Seccomp(format!(
                "architecture {name} in linux.seccomp.architectures is not supported by libseccomp"
            ))
        })?;
        let present = ctx
            .is_arch_present(scmp)
            .map_err(scmp_err(&format!("check architecture {name}")))?;
        if !present {
            ctx.add_arch(scmp)
                .map_err(scmp_err(&format!("add architecture {name}")))?;
        }
    }
    Ok(())
}

/// Adds one entry of `linux.seccomp.syscalls` (`index` is its position, for errors).
fn add_syscall_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    default: ScmpAction,
    index: usize,
) -> Result<()> {
    let field = format!("linux.seccomp.syscalls[{index}]");
    let act = action(rule.action(), rule.errno_ret(), &field)?;
    let conditions = conditions(rule.args().as_deref().unwrap_or_default(), &field)?;
    for name in rule.names() {
        // libseccomp refuses a rule whose action is the default one; such a rule changes
        // nothing, so it is skipped (runc does the same).
        if act == default {
            continue;
        }
        let Some(syscall) = resolve(name) else {
            continue;
        };
        add_conditional(ctx, syscall, act, &conditions)
            .map_err(scmp_err(&format!("{field}: add rule for {name:?}")))?;
    }
    Ok(())
}

/// A syscall number by name, or None (with a warning) for a name libseccomp does not know:
/// profiles name syscalls newer than the libseccomp at hand (Docker's and podman's do), and
/// a profile must still load there, so such a name is skipped, as runc and crun skip it. A
/// syscall a filter does not name gets the default action.
fn resolve(name: &str) -> Option<ScmpSyscall> {
    let found = ScmpSyscall::from_name(name).ok();
    if found.is_none() {
        tracing::warn!(
            syscall = name,
            libseccomp = %libseccomp_version(),
            "seccomp: skipping a syscall libseccomp does not know"
        );
    }
    found
}

/// Several conditions on the same argument can never all hold (an argument has one
/// value), so profiles use them to mean "any of": like runc, each becomes its own rule.
/// Conditions on distinct arguments form a single rule where all must hold.
fn add_conditional(
    ctx: &mut ScmpFilterContext,
    syscall: ScmpSyscall,
    act: ScmpAction,
    conditions: &[Condition],
) -> std::result::Result<(), libseccomp::error::SeccompError> {
    let compare: Vec<ScmpArgCompare> = conditions.iter().map(|c| c.to_scmp()).collect();
    if has_repeated_argument(conditions) {
        for c in &compare {
            ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))?;
        }
    } else {
        ctx.add_rule_conditional(act, syscall, &compare)?;
    }
    Ok(())
}

fn has_repeated_argument(conditions: &[Condition]) -> bool {
    let mut seen = [false; 6];
    conditions
        .iter()
        .any(|c| std::mem::replace(&mut seen[c.index as usize], true))
}

/// One checked argument comparison (kept in our own type so it can be inspected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Condition {
    index: u32,
    op: ScmpCompareOp,
    datum: u64,
}

impl Condition {
    fn to_scmp(self) -> ScmpArgCompare {
        ScmpArgCompare::new(self.index, self.op, self.datum)
    }
}

fn conditions(args: &[LinuxSeccompArg], field: &str) -> Result<Vec<Condition>> {
    args.iter().map(|a| condition(a, field)).collect()
}

/// One argument comparison. For SCMP_CMP_MASKED_EQ, `value` is the mask and `valueTwo`
/// the value the masked argument must equal (libseccomp's order).
fn condition(a: &LinuxSeccompArg, field: &str) -> Result<Condition> {
    let index = u32::try_from(a.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| {
            Error::Seccomp(format!(
                "{field}: argument index {} out of range (a syscall has 6 arguments: 0..=5)",
                a.index()
            ))
        })?;
    let (op, datum) = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    };
    Ok(Condition { index, op, datum })
}

/// The kernel flags of `linux.seccomp.flags`.
///
/// WAIT_KILLABLE_RECV only changes how a notification listener waits; without
/// SCMP_ACT_NOTIFY (rejected above) it has no effect, and the kernel refuses it without a
/// listener, so it is not passed on.
fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> libc::c_ulong {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        }
    })
}

/// Exports the BPF program through a memfd: `seccomp_export_bpf_mem` needs libseccomp 2.6,
/// and a memfd has no size limit or cleanup, unlike a pipe or a file.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let mut file = memfd()?;
    ctx.export_bpf(&file).map_err(scmp("export the filter"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| Error::Io {
            context: "seccomp: read the exported filter".into(),
            source,
        })?;
    let program = decode(&bytes)?;
    if program.len() > MAX_INSTRUCTIONS {
        return Err(Error::Seccomp(format!(
            "the filter has {} BPF instructions; the kernel accepts at most {MAX_INSTRUCTIONS}",
            program.len()
        )));
    }
    Ok(program)
}

fn memfd() -> Result<File> {
    // SAFETY: the name is a valid NUL-terminated string; the fd returned is new and owned here.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Sys {
            context: "seccomp: memfd_create".into(),
            source: nix::errno::Errno::last(),
        });
    }
    // SAFETY: fd was just returned by memfd_create and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Classic BPF instructions are 8 bytes each, in native byte order.
fn decode(bytes: &[u8]) -> Result<Vec<libc::sock_filter>> {
    if bytes.is_empty() || !bytes.chunks_exact(8).remainder().is_empty() {
        return Err(Error::Seccomp(format!(
            "libseccomp exported {} bytes, not a whole number of BPF instructions",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect())
}

/// The name a value has in config.json (e.g. "SCMP_ARCH_X86_64").
pub(crate) fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// "2.5.4", for messages that depend on what libseccomp knows.
pub fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "(unknown version)".into())
}

fn scmp(what: &'static str) -> impl Fn(libseccomp::error::SeccompError) -> Error {
    move |e| Error::Seccomp(format!("{what}: {e}"))
}

fn scmp_err(what: &str) -> impl Fn(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| Error::Seccomp(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("test profile parses")
    }

    #[test]
    fn compiles_a_profile_with_every_operator() {
        let s = profile(
            r#"{
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
              {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                 {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                 {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
              {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
                 {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
              {"names": ["kill"], "action": "SCMP_ACT_LOG", "args": [
                 {"index": 0, "value": 1, "op": "SCMP_CMP_NE"},
                 {"index": 1, "value": 9, "op": "SCMP_CMP_LT"}]},
              {"names": ["lseek"], "action": "SCMP_ACT_TRAP", "args": [
                 {"index": 2, "value": 1, "op": "SCMP_CMP_LE"}]},
              {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS", "args": [
                 {"index": 0, "value": 1, "op": "SCMP_CMP_GE"},
                 {"index": 1, "value": 1, "op": "SCMP_CMP_GT"}]},
              {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"},
              {"names": ["mount"], "action": "SCMP_ACT_KILL"},
              {"names": ["umount2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]}"#,
        );
        let f = compile(&s).unwrap();
        assert!(!f.is_empty());
        assert_eq!(
            f.flags,
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
    }

    #[test]
    fn a_profile_allowing_every_syscall_on_three_archs_fits_the_kernel_limit() {
        // Roughly Docker's default profile: an allow-list of every x86_64 syscall, for the
        // three x86 ABIs, with an errno default.
        let names: Vec<String> = (0..460)
            .filter_map(|nr| {
                ScmpSyscall::from_raw_syscall(nr)
                    .get_name_by_arch(ScmpArch::X8664)
                    .ok()
            })
            .collect();
        assert!(names.len() > 300, "{}", names.len());
        let json = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        });
        let f = compile(&serde_json::from_value(json).unwrap()).unwrap();
        assert!(f.len() <= MAX_INSTRUCTIONS, "{}", f.len());
    }

    #[test]
    fn an_unknown_syscall_is_skipped() {
        let program = |names: &str| {
            let s = profile(&format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{{"names": {names}, "action": "SCMP_ACT_ERRNO"}}]}}"#
            ));
            FilterData::from(&compile(&s).unwrap()).program
        };
        let with_unknown = program(r#"["getpid", "foo"]"#);
        assert_eq!(with_unknown, program(r#"["getpid"]"#));
        assert_ne!(with_unknown, program("[]"));
    }

    #[test]
    fn notify_is_not_supported_yet() {
        let s =
            profile(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#);
        assert!(compile(&s)
            .unwrap_err()
            .to_string()
            .contains("not supported yet"));
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(compile(&s)
            .unwrap_err()
            .to_string()
            .contains("not supported yet"));
    }

    #[test]
    fn argument_index_out_of_range_is_an_error() {
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let err = compile(&s).unwrap_err().to_string();
        assert!(
            err.contains("linux.seccomp.syscalls[0]: argument index 6"),
            "{err}"
        );
    }

    #[test]
    fn errno_ret_must_fit_16_bits() {
        let s = profile(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#);
        assert!(compile(&s)
            .unwrap_err()
            .to_string()
            .contains("defaultAction"));
    }

    #[test]
    fn rule_equal_to_the_default_is_skipped() {
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        compile(&s).unwrap();
    }

    #[test]
    fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
        let a: LinuxSeccompArg = serde_json::from_str(
            r#"{"index": 1, "value": 255, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}"#,
        )
        .unwrap();
        let c = condition(&a, "t").unwrap();
        let expected = Condition {
            index: 1,
            op: ScmpCompareOp::MaskedEqual(255),
            datum: 7,
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn repeated_argument_means_any_of() {
        let eq = |index, datum| Condition {
            index,
            op: ScmpCompareOp::Equal,
            datum,
        };
        assert!(has_repeated_argument(&[eq(0, 1), eq(0, 2)]));
        assert!(!has_repeated_argument(&[eq(0, 1), eq(1, 2)]));
    }
}
