//! What the running kernel does with each key of a profile, with the reason: set in the
//! workloads' namespaces, host-global, absent from this kernel, refused, or outside `net.`.

use crate::kernel::sysctl::{SysctlIssue, static_check};

use super::Setting;

/// The classes a key of a profile falls in on the running kernel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum KeyClass {
    /// Per network namespace: the kernel took the value in a namespace of twlab's.
    Applied,
    /// One value for the whole host: never set per namespace.
    HostGlobal,
    /// This kernel has no such key.
    Absent,
    /// The kernel refused the value.
    Refused,
    /// Outside `net.` (vm., fs., kernel.): not what twlab tests.
    NotNet,
    /// A glob that names no key in a namespace of twlab's.
    Pattern,
}

impl KeyClass {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Legacy names current kernels no longer have, by prefix, with what replaced them.
const LEGACY_PREFIXES: &[(&str, &str)] = &[
    (
        "net.ipv4.ip_conntrack_max",
        "the table size of the ip_conntrack module, which nf_conntrack replaced in the 2.6 series; current kernels have net.netfilter.nf_conntrack_max",
    ),
    (
        "net.ipv4.netfilter.ip_conntrack_",
        "a legacy ip_conntrack name from before nf_conntrack; current kernels have only net.netfilter.nf_conntrack_*",
    ),
];

/// The class a key has without trying it, or `None` when only setting it in a namespace can
/// tell (a per-namespace key: applied or refused).
pub fn static_class(s: &Setting) -> Option<(KeyClass, String)> {
    if !s.key.starts_with("net.") {
        return Some((
            KeyClass::NotNet,
            "outside net.: a host-wide setting, not part of the network namespaces twlab tests"
                .into(),
        ));
    }
    if s.pattern {
        // What a glob names is known only by expanding it in a namespace.
        return None;
    }
    match static_check(&s.key) {
        Ok(()) => None,
        Err(issue) => Some(from_issue(&s.key, issue)),
    }
}

/// The class a key's issue puts it in.
pub fn from_issue(key: &str, issue: SysctlIssue) -> (KeyClass, String) {
    let host = |why: String| {
        let how = if crate::host::is_host_settable(key) {
            "not tried: `twlab rollout --host` sets it for the profile's runs through twlab's guarded host path, restored after each"
        } else {
            "not tried: twlab never changes it"
        };
        (KeyClass::HostGlobal, format!("{why}; {how}"))
    };
    match issue {
        SysctlIssue::HostGlobal { .. } | SysctlIssue::ReadOnly { .. } => {
            host("one value for the whole host, read-only inside a network namespace".into())
        }
        SysctlIssue::HostOnly { .. } | SysctlIssue::MissingInNamespace { .. } => {
            host("exists only in the host's initial network namespace".into())
        }
        SysctlIssue::Unknown { .. } => {
            let legacy = LEGACY_PREFIXES.iter().find(|(p, _)| key.starts_with(p));
            let why = legacy.map_or("this kernel has no such key".to_string(), |(_, why)| {
                format!("this kernel has no such key: {why}")
            });
            (KeyClass::Absent, why)
        }
        i @ (SysctlIssue::Removed { .. } | SysctlIssue::NewerKernel { .. }) => {
            (KeyClass::Absent, i.to_string())
        }
        i @ (SysctlIssue::Rejected { .. } | SysctlIssue::NotStored { .. }) => {
            (KeyClass::Refused, i.to_string())
        }
        i @ SysctlIssue::NotNetwork(_) => (KeyClass::NotNet, i.to_string()),
        i @ SysctlIssue::Io { .. } => (KeyClass::Refused, i.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str) -> Setting {
        Setting {
            key: key.into(),
            value: "1".into(),
            file: "p.conf".into(),
            line: 1,
            ignore_failure: false,
            pattern: key.contains('*'),
            exclude: false,
        }
    }

    #[test]
    fn keys_known_without_trying_them() {
        let class = |k: &str| static_class(&setting(k)).map(|(c, _)| c);
        assert_eq!(class("vm.swappiness"), Some(KeyClass::NotNet));
        assert_eq!(
            class("net.ipv4.conf.*.rp_filter"),
            None,
            "expanded in a namespace"
        );
        assert_eq!(
            class("net.netfilter.nf_conntrack_max"),
            Some(KeyClass::HostGlobal)
        );
        let (c, why) = static_class(&setting("net.ipv4.netfilter.ip_conntrack_max")).unwrap();
        assert_eq!(c, KeyClass::Absent);
        assert!(why.contains("legacy ip_conntrack"), "{why}");
    }

    #[test]
    fn refusals_and_removals_keep_the_kernel_s_words() {
        let (c, why) = from_issue(
            "net.ipv4.tcp_tw_recycle",
            SysctlIssue::Removed {
                key: "net.ipv4.tcp_tw_recycle".into(),
                why: "removed in Linux 4.12".into(),
            },
        );
        assert_eq!(c, KeyClass::Absent);
        assert!(why.contains("4.12"));
        let (c, _) = from_issue(
            "net.ipv4.tcp_fin_timeout",
            SysctlIssue::Rejected {
                key: "net.ipv4.tcp_fin_timeout".into(),
                value: "x".into(),
                errno: nix::errno::Errno::EINVAL,
            },
        );
        assert_eq!(c, KeyClass::Refused);
    }
}
