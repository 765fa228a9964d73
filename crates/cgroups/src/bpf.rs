//! Device rules on cgroup v2: v2 has no devices.allow file; instead an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE, attached to the cgroup, answers each open or mknod of a
//! device node. We translate the OCI rules into such a program: the last matching rule
//! decides, as the rules read in order (deny all, then allow these) intend; no match denies.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{Error, Result};

/// One eBPF instruction, laid out as the kernel's struct bpf_insn.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// Registers after the prologue: r2 type, r3 access, r4 major, r5 minor.
fn prologue() -> Vec<Insn> {
    vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ]
}

fn access_bits(access: &str) -> Result<i32> {
    access.chars().try_fold(0, |acc, c| match c {
        'r' => Ok(acc | ACC_READ),
        'w' => Ok(acc | ACC_WRITE),
        'm' => Ok(acc | ACC_MKNOD),
        other => Err(Error::Invalid(format!(
            "device rule access {access:?}: {other:?} is not one of r, w, m"
        ))),
    })
}

/// The checks of one rule, each jumping past the rule's verdict when it does not match.
fn rule_block(r: &LinuxDeviceCgroup) -> Result<Vec<Insn>> {
    let mut checks = Vec::new();
    match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => {}
        LinuxDeviceType::B => checks.push((2, DEV_BLOCK)),
        LinuxDeviceType::C | LinuxDeviceType::U => checks.push((2, DEV_CHAR)),
        // Fifos are not devices the kernel asks about: a rule for them matches nothing.
        LinuxDeviceType::P => return Ok(Vec::new()),
    }
    let num = |n: Option<i64>| -> Result<Option<i32>> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => i32::try_from(n)
                .map(Some)
                .map_err(|_| Error::Invalid(format!("device number {n} is out of range"))),
        }
    };
    if let Some(major) = num(r.major())? {
        checks.push((4, major));
    }
    if let Some(minor) = num(r.minor())? {
        checks.push((5, minor));
    }
    let access = access_bits(r.access().as_deref().unwrap_or("rwm"))?;
    let full_access = access == ACC_READ | ACC_WRITE | ACC_MKNOD;
    // Instructions after each check: the remaining checks, then MOV r0 + EXIT.
    let access_len = if full_access { 0 } else { 3 };
    let mut block = Vec::new();
    for (i, (reg, value)) in checks.iter().enumerate() {
        let remaining = (checks.len() - i - 1) as i16 + access_len + 2;
        block.push(insn(JMP_JNE_K, *reg, 0, remaining, *value));
    }
    if !full_access {
        // Allowed only if every requested access bit is one the rule names.
        block.push(insn(ALU64_MOV_X, 6, 3, 0, 0));
        block.push(insn(ALU64_AND_K, 6, 0, 0, !access & 7));
        block.push(insn(JMP_JNE_K, 6, 0, 2, 0));
    }
    block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow())));
    block.push(insn(EXIT, 0, 0, 0, 0));
    Ok(block)
}

/// The whole program: the rules from last to first, then "deny". A rule that matches every
/// access always returns, and the verifier refuses code after it: emission stops there.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut prog = prologue();
    for r in rules.iter().rev() {
        let block = rule_block(r)?;
        let unconditional = !block.is_empty() && block.iter().all(|i| i.code != JMP_JNE_K);
        prog.extend(block);
        if unconditional {
            return Ok(prog);
        }
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    Ok(prog)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of union bpf_attr for BPF_PROG_LOAD; the kernel takes the rest as zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn load(prog: &[Insn], log: Option<&mut Vec<u8>>) -> std::io::Result<i64> {
    let license = c"Apache-2.0";
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        ..Default::default()
    };
    bpf(BPF_PROG_LOAD, &attr)
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<i64> {
    // SAFETY: attr is a fully initialised #[repr(C)] prefix of union bpf_attr whose size we
    // pass; the kernel only reads it (and the buffers it points to, alive for the call).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Loads the program for `rules` and attaches it to the cgroup v2 directory `dir`. The kernel
/// keeps it attached for the cgroup's life; it goes when the cgroup is removed.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(rules)?;
    let prog_fd = load(&prog, None).map_err(|e| {
        // Load again with the verifier's log, only to say why.
        let mut log = vec![0u8; 1 << 20];
        let _ = load(&prog, Some(&mut log));
        let text = String::from_utf8_lossy(&log);
        let last = text.trim_end_matches('\0').lines().last().unwrap_or("").to_string();
        Error::Unsupported(format!(
            "load the device filter (eBPF): {e} {last} (berth-runtime needs root and a kernel with BPF_PROG_TYPE_CGROUP_DEVICE)"
        ))
    })?;
    // SAFETY: the kernel just returned this descriptor to us alone.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(prog_fd as i32) };
    let cgroup = std::fs::File::open(dir).map_err(|source| Error::Dir {
        context: "cannot open cgroup",
        path: dir.to_path_buf(),
        source,
    })?;
    let att = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &att).map_err(|e| {
        Error::Unsupported(format!(
            "attach the device filter to {}: {e}",
            dir.display()
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        t: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        a: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(t));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(a.into()));
        r
    }

    /// Runs the program on one device access, as the kernel would: a tiny interpreter of
    /// exactly the instructions `program` emits.
    fn verdict(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as i64,
                ALU64_AND_K => r[dst] &= i.imm as i64,
                ALU64_RSH_K => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                ALU64_MOV_K => r[dst] = i.imm as i64,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_last_matching_rule_decides_and_no_match_denies() {
        use LinuxDeviceType::*;
        let rules = vec![
            rule(false, A, None, None, "rwm"),
            rule(true, C, Some(1), Some(3), "rwm"),
            rule(true, C, Some(136), None, "rw"),
            rule(true, B, None, None, "m"),
            rule(false, C, Some(1), Some(3), "w"),
        ];
        let p = program(&rules).unwrap();
        assert_eq!(verdict(&p, DEV_CHAR, ACC_READ, 1, 3), 1, "null readable");
        assert_eq!(
            verdict(&p, DEV_CHAR, ACC_WRITE, 1, 3),
            0,
            "later deny of writes wins"
        );
        assert_eq!(
            verdict(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 136, 7),
            1,
            "any pty"
        );
        assert_eq!(
            verdict(&p, DEV_CHAR, ACC_MKNOD, 136, 7),
            0,
            "no mknod of ptys"
        );
        assert_eq!(
            verdict(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            1,
            "mknod of any block device"
        );
        assert_eq!(
            verdict(&p, DEV_BLOCK, ACC_READ, 8, 0),
            0,
            "but no reading it"
        );
        assert_eq!(
            verdict(&p, DEV_CHAR, ACC_READ, 1, 5),
            0,
            "zero is not allowed"
        );
    }

    #[test]
    fn bad_access_letters_are_refused() {
        let r = rule(true, LinuxDeviceType::C, Some(1), Some(3), "rx");
        assert!(program(&[r]).unwrap_err().to_string().contains("'x'"));
    }
}
