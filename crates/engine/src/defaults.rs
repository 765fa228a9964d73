//! The daemon's defaults for containers (daemon.json's `dns*`, `default-ulimits`,
//! `default-shm-size`, `default-cgroupns-mode`, `seccomp-profile`, `no-new-privileges`,
//! `init`): filled into a container's config at create where the container said nothing, so
//! the container keeps what it was made with whatever the daemon is later told.

use serde::{Deserialize, Serialize};

use crate::container::Config;
use crate::limits::{Seccomp, Ulimit};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    /// Bytes of /dev/shm (64 MiB when None, as Docker).
    pub shm_size: Option<i64>,
    pub cgroupns: CgroupnsMode,
    /// Replaces berth's built-in profile for containers that do not choose one.
    pub seccomp: Option<Seccomp>,
    pub no_new_privileges: bool,
    /// Run berth's init in containers of the built-in runtime that do not choose.
    pub init: bool,
}

/// `--cgroupns`: the host's cgroup namespace, or one of the container's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupnsMode {
    #[default]
    Host,
    Private,
}

impl Defaults {
    /// Fills what `config` leaves unsaid.
    pub fn fill(&self, config: &mut Config) {
        if config.dns.is_empty() {
            config.dns = self.dns.clone();
        }
        if config.dns_search.is_empty() {
            config.dns_search = self.dns_search.clone();
        }
        if config.dns_options.is_empty() {
            config.dns_options = self.dns_options.clone();
        }
        let r = &mut config.resources;
        for u in &self.ulimits {
            if !r.ulimits.iter().any(|mine| mine.name == u.name) {
                r.ulimits.push(u.clone());
            }
        }
        if r.shm_size.is_none() {
            r.shm_size = self.shm_size;
        }
        config.cgroupns.get_or_insert(self.cgroupns);
        let s = &mut config.security;
        if let (Seccomp::Default, Some(profile)) = (&s.seccomp, &self.seccomp) {
            s.seccomp = profile.clone();
        }
        s.no_new_privileges.get_or_insert(self.no_new_privileges);
        // `init` is filled once the container's runtime is known (the engine's create).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            dns: vec!["10.0.0.2".into()],
            ulimits: vec![
                Ulimit {
                    name: "nofile".into(),
                    soft: 100,
                    hard: 200,
                },
                Ulimit {
                    name: "nproc".into(),
                    soft: 50,
                    hard: 50,
                },
            ],
            shm_size: Some(1 << 20),
            cgroupns: CgroupnsMode::Private,
            seccomp: Some(Seccomp::Unconfined),
            no_new_privileges: true,
            init: true,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_only_what_the_container_left_unsaid() {
        let mut c = Config::default();
        c.resources.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1,
            hard: 2,
        }];
        c.security.no_new_privileges = Some(false);
        c.dns_search = vec!["mine.local".into()];
        defaults().fill(&mut c);
        assert_eq!(c.dns, ["10.0.0.2"]);
        assert_eq!(c.dns_search, ["mine.local"]);
        let names: Vec<(&str, u64)> = c
            .resources
            .ulimits
            .iter()
            .map(|u| (u.name.as_str(), u.soft))
            .collect();
        assert_eq!(names, [("nofile", 1), ("nproc", 50)]);
        assert_eq!(c.resources.shm_size, Some(1 << 20));
        assert_eq!(c.cgroupns, Some(CgroupnsMode::Private));
        assert_eq!(c.security.seccomp, Seccomp::Unconfined);
        assert_eq!(c.security.no_new_privileges, Some(false));
    }

    #[test]
    fn a_chosen_seccomp_profile_is_kept() {
        let mut c = Config::default();
        c.security.seccomp = Seccomp::Profile("{}".into());
        defaults().fill(&mut c);
        assert_eq!(c.security.seccomp, Seccomp::Profile("{}".into()));
    }
}
