//! The example `config.json` (`berth-runtime spec`) and the features document
//! (`berth-runtime features`).
//!
//! [`default_spec`] writes what `runc spec` writes, field for field, except the hostname
//! ("berth" where runc writes "runc"). oci-spec's `Spec::default()` is close but differs:
//! it has no terminal, youki's hostname, an empty device cgroup (everything allowed),
//! inheritable and ambient capabilities (runc dropped those after CVE-2022-29162), and
//! always a cgroup namespace (runc adds it on cgroup v2 only).

use std::collections::HashMap;
use std::path::PathBuf;

use libseccomp::{ScmpArch, ScmpFilterContext};
use oci_spec::runtime::{
    Apparmor, Arch, Capability, Features, IDMap, IntelRdt, LinuxCapabilities, LinuxDeviceCgroup,
    LinuxFeature, LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, MemoryPolicy,
    Mount, MountExtensions, NetDevices, Seccomp, Selinux, Spec,
};

use crate::seccomp::{libseccomp_version, serde_name};

/// The newest runtime-spec version berth reads (the maximum in `features`).
pub const OCI_VERSION: &str = "1.2.1";
/// The version `spec` writes: the default config uses nothing newer, and older runtimes
/// (crun 1.8 refuses anything past 1.1) can then run the same bundle.
pub const DEFAULT_CONFIG_VERSION: &str = "1.0.2";
/// The oldest runtime-spec version berth accepts.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// The example config of `berth-runtime spec` (`rootless`: `--rootless`).
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(DEFAULT_CONFIG_VERSION.to_string());
    spec.set_hostname(Some("berth".to_string()));
    spec.set_annotations(None);
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
        process.set_capabilities(Some(default_capabilities()));
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_masked_paths(Some(masked_paths()));
        linux.set_resources(Some(deny_all_devices()));
        linux.set_namespaces(Some(default_namespaces(cgroup2_mounted())));
    }
    if rootless {
        make_rootless(&mut spec, nix::unistd::geteuid(), nix::unistd::getegid());
    }
    spec
}

/// runc's default: AUDIT_WRITE, KILL and NET_BIND_SERVICE in bounding, permitted and
/// effective; nothing inheritable or ambient.
fn default_capabilities() -> LinuxCapabilities {
    let caps: oci_spec::runtime::Capabilities = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into_iter()
    .collect();
    capability_sets(caps)
}

/// `caps` in the bounding, permitted and effective sets; nothing inheritable or ambient
/// (as runc since CVE-2022-29162, and Docker).
pub fn capability_sets(caps: oci_spec::runtime::Capabilities) -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(caps.clone()));
    c.set_permitted(Some(caps.clone()));
    c.set_effective(Some(caps));
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}

fn masked_paths() -> Vec<String> {
    let mut paths = oci_spec::runtime::get_default_maskedpaths();
    paths.push("/sys/devices/virtual/tpm".to_string());
    paths
}

/// The device cgroup starts with "deny everything"; the runtime then allows the default
/// devices it creates.
fn deny_all_devices() -> LinuxResources {
    let mut deny = LinuxDeviceCgroup::default();
    deny.set_allow(false);
    deny.set_access(Some("rwm".to_string()));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![deny]));
    resources
}

fn default_namespaces(cgroup2: bool) -> Vec<LinuxNamespace> {
    let mut types = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if cgroup2 {
        types.push(LinuxNamespaceType::Cgroup);
    }
    types.into_iter().map(namespace).collect()
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns
}

fn cgroup2_mounted() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// What `runc spec --rootless` changes: a user namespace mapping the caller to root and
/// no network namespace (no privilege to set one up), /sys bind-mounted (sysfs cannot be
/// mounted without owning the network namespace), no uid=/gid= mount options (those ids
/// are not mapped), and no cgroup resources (no write access to the cgroup tree).
fn make_rootless(spec: &mut Spec, uid: nix::unistd::Uid, gid: nix::unistd::Gid) {
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces: Vec<LinuxNamespace> = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|ns| {
                !matches!(
                    ns.typ(),
                    LinuxNamespaceType::Network | LinuxNamespaceType::User
                )
            })
            .collect();
        namespaces.push(namespace(LinuxNamespaceType::User));
        linux.set_namespaces(Some(namespaces));
        linux.set_uid_mappings(Some(vec![map_to_root(uid.as_raw())]));
        linux.set_gid_mappings(Some(vec![map_to_root(gid.as_raw())]));
        linux.set_resources(None);
    }
    let mounts = spec.mounts().clone().unwrap_or_default();
    spec.set_mounts(Some(mounts.into_iter().map(rootless_mount).collect()));
}

fn map_to_root(host_id: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .host_id(host_id)
        .container_id(0u32)
        .size(1u32)
        .build()
        .expect("the builder has a default for every field, so build cannot fail")
}

fn rootless_mount(mut m: Mount) -> Mount {
    if m.destination() == &PathBuf::from("/sys") {
        m.set_typ(Some("none".to_string()));
        m.set_source(Some(PathBuf::from("/sys")));
        m.set_options(Some(
            ["rbind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        ));
        return m;
    }
    let options = m.options().clone().map(|opts| {
        opts.into_iter()
            .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
            .collect()
    });
    m.set_options(options);
    m
}

/// Mount options berth understands in `mounts[].options` (idmap/ridmap are not yet).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// The features document of `berth-runtime features`.
pub fn features() -> Features {
    let mut f = Features::default();
    f.set_oci_version_min(OCI_VERSION_MIN.to_string());
    f.set_oci_version_max(OCI_VERSION.to_string());
    f.set_hooks(Some(
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]
        .map(String::from)
        .to_vec(),
    ));
    f.set_mount_options(Some(MOUNT_OPTIONS.iter().map(|o| o.to_string()).collect()));
    f.set_linux(Some(linux_features()));
    f.set_annotations(Some(HashMap::from([(
        "io.github.seccomp.libseccomp.version".to_string(),
        libseccomp_version(),
    )])));
    f.set_potentially_unsafe_config_annotations(Some(Vec::new()));
    f
}

fn linux_features() -> LinuxFeature {
    let mut l = LinuxFeature::default();
    l.set_namespaces(Some(vec![
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
    ]));
    l.set_capabilities(Some(known_capabilities()));
    l.set_cgroup(Some(cgroup_features()));
    l.set_seccomp(Some(seccomp_features()));
    let mut apparmor = Apparmor::default();
    apparmor.set_enabled(Some(false));
    l.set_apparmor(Some(apparmor));
    let mut selinux = Selinux::default();
    selinux.set_enabled(Some(false));
    l.set_selinux(Some(selinux));
    l.set_intel_rdt(Some(IntelRdt::default().set_enabled(Some(false)).clone()));
    let mut policy = MemoryPolicy::default();
    policy.set_modes(Some(Vec::new()));
    policy.set_flags(Some(Vec::new()));
    l.set_memory_policy(Some(policy));
    let mut idmap = IDMap::default();
    idmap.set_enabled(Some(false));
    let mut extensions = MountExtensions::default();
    extensions.set_idmap(Some(idmap));
    l.set_mount_extensions(Some(extensions));
    let mut net_devices = NetDevices::default();
    net_devices.set_enabled(Some(false));
    l.set_net_devices(Some(net_devices));
    l
}

/// Every capability the `caps` crate knows, in kernel order ("CAP_CHOWN" first).
fn known_capabilities() -> Vec<String> {
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    caps.iter().map(|c| c.to_string()).collect()
}

fn cgroup_features() -> oci_spec::runtime::Cgroup {
    let mut c = oci_spec::runtime::Cgroup::default();
    c.set_v1(Some(true));
    c.set_v2(Some(true));
    c.set_systemd(Some(false));
    c.set_systemd_user(Some(false));
    c
}

fn seccomp_features() -> Seccomp {
    let mut s = Seccomp::default();
    s.set_enabled(Some(true));
    s.set_actions(Some(seccomp_actions()));
    s.set_operators(Some(seccomp_operators()));
    s.set_archs(Some(seccomp_archs()));
    s.set_known_flags(Some(ALL_FLAGS.iter().map(|(f, _)| serde_name(f)).collect()));
    s.set_supported_flags(Some(supported_flags()));
    s
}

/// Every action but SCMP_ACT_NOTIFY, which `seccomp::compile` refuses for now.
fn seccomp_actions() -> Vec<LinuxSeccompAction> {
    vec![
        LinuxSeccompAction::ScmpActKill,
        LinuxSeccompAction::ScmpActKillThread,
        LinuxSeccompAction::ScmpActKillProcess,
        LinuxSeccompAction::ScmpActTrap,
        LinuxSeccompAction::ScmpActErrno,
        LinuxSeccompAction::ScmpActTrace,
        LinuxSeccompAction::ScmpActLog,
        LinuxSeccompAction::ScmpActAllow,
    ]
}

fn seccomp_operators() -> Vec<String> {
    [
        LinuxSeccompOperator::ScmpCmpNe,
        LinuxSeccompOperator::ScmpCmpLt,
        LinuxSeccompOperator::ScmpCmpLe,
        LinuxSeccompOperator::ScmpCmpEq,
        LinuxSeccompOperator::ScmpCmpGe,
        LinuxSeccompOperator::ScmpCmpGt,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
    ]
    .iter()
    .map(serde_name)
    .collect()
}

/// The architectures of the OCI list that the linked libseccomp can add to a filter.
fn seccomp_archs() -> Vec<Arch> {
    let Ok(mut ctx) = ScmpFilterContext::new(libseccomp::ScmpAction::Allow) else {
        return Vec::new();
    };
    ALL_ARCHS
        .iter()
        .copied()
        .filter(|arch| {
            let Ok(scmp) = serde_name(arch).parse::<ScmpArch>() else {
                return false;
            };
            scmp == ScmpArch::Native
                || ctx.is_arch_present(scmp).unwrap_or(false)
                || ctx.add_arch(scmp).is_ok()
        })
        .collect()
}

const ALL_ARCHS: &[Arch] = &[
    Arch::ScmpArchNative,
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

/// The OCI filter flags and their kernel bits; WAIT_KILLABLE_RECV only matters with a
/// notification listener, which berth does not support yet.
const ALL_FLAGS: &[(LinuxSeccompFilterFlag, libc::c_ulong)] = &[
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
        libc::SECCOMP_FILTER_FLAG_TSYNC,
    ),
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        libc::SECCOMP_FILTER_FLAG_LOG,
    ),
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ),
];

/// The flags the running kernel accepts and `seccomp::load` passes on.
fn supported_flags() -> Vec<String> {
    ALL_FLAGS
        .iter()
        .filter(|(f, _)| *f != LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv)
        .filter(|(_, bit)| kernel_accepts_flag(*bit))
        .map(|(f, _)| serde_name(f))
        .collect()
}

/// The kernel checks the flags before reading the program: with a NULL program, a known
/// flag fails with EFAULT and an unknown one with EINVAL. Nothing is installed either way.
fn kernel_accepts_flag(flag: libc::c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced by the kernel beyond copy_from_user,
    // which fails cleanly with EFAULT.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flag,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc == -1 && nix::errno::Errno::last() != nix::errno::Errno::EINVAL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_namespace_only_with_cgroup2() {
        let ns = |v2| -> Vec<LinuxNamespaceType> {
            default_namespaces(v2).iter().map(|n| n.typ()).collect()
        };
        assert!(ns(true).contains(&LinuxNamespaceType::Cgroup));
        assert!(!ns(false).contains(&LinuxNamespaceType::Cgroup));
    }

    #[test]
    fn rootless_maps_the_given_ids_and_rebinds_sys() {
        let mut spec = default_spec(false);
        make_rootless(
            &mut spec,
            nix::unistd::Uid::from_raw(1234),
            nix::unistd::Gid::from_raw(5678),
        );
        let linux = spec.linux().as_ref().unwrap();
        let uid = linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!(
            (uid.host_id(), uid.container_id(), uid.size()),
            (1234, 0, 1)
        );
        let gid = linux.gid_mappings().as_ref().unwrap()[0];
        assert_eq!(
            (gid.host_id(), gid.container_id(), gid.size()),
            (5678, 0, 1)
        );
        let types: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));
        assert!(linux.resources().is_none());
        let mounts = spec.mounts().as_ref().unwrap();
        let sys = mounts
            .iter()
            .find(|m| m.destination() == &PathBuf::from("/sys"))
            .unwrap();
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert!(sys
            .options()
            .as_ref()
            .unwrap()
            .contains(&"rbind".to_string()));
        for m in mounts {
            for o in m.options().iter().flatten() {
                assert!(!o.starts_with("gid=") && !o.starts_with("uid="), "{o}");
            }
        }
    }

    #[test]
    fn kernel_probe_rejects_an_unknown_flag() {
        assert!(kernel_accepts_flag(libc::SECCOMP_FILTER_FLAG_TSYNC));
        assert!(!kernel_accepts_flag(1 << 30));
    }
}
