//! What the running kernel's sysctls are, known without privileges or a namespace: which keys
//! a network namespace may set, which are host-global or host-only, which this kernel lacks
//! (removed, or newer than it), and the issues that setting one can meet.

use std::path::PathBuf;

use nix::errno::Errno;

/// Keys that exist in a child namespace but are read-only there, because the limit is
/// host-global (one value compared with each namespace's own count).
const HOST_GLOBAL_READ_ONLY: &[&str] = &[
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
    "net.nf_conntrack_max",
    "net.core.rmem_default",
    "net.core.rmem_max",
    "net.core.wmem_default",
    "net.core.wmem_max",
];

/// Keys that exist only in the initial namespace on 6.x kernels.
const HOST_ONLY: &[&str] = &[
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_max_orphans",
    "net.core.netdev_max_backlog",
];

/// Keys that once existed and are gone from current kernels, with when and why.
const REMOVED: &[(&str, &str)] = &[(
    "net.ipv4.tcp_tw_recycle",
    "removed in Linux 4.12: it broke clients behind NAT (per-host timestamps are not monotonic across hosts)",
)];

/// Sysctls newer kernels added: on an older kernel a case that sets one is not wrong, it is
/// for a newer kernel, and is skipped with this reason (the kernel matrix shows it).
const ADDED: &[(&str, &str)] = &[("net.ipv4.tcp_tw_reuse_delay", "6.14")];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysctlIssue {
    #[error("`{key}` exists from Linux {since} on; this kernel is {release}")]
    NewerKernel {
        key: String,
        since: String,
        release: String,
    },
    #[error(
        "`{0}` is not a network sysctl: outside `net.` a sysctl is host-wide, and a case may only change its own namespaces"
    )]
    NotNetwork(String),
    #[error(
        "`{key}` is host-global: it is read-only inside a network namespace (the kernel compares one host-wide value with each namespace's own count), so it cannot be set per namespace"
    )]
    HostGlobal { key: String },
    #[error(
        "`{key}` exists only in the host's initial network namespace, not inside a child namespace"
    )]
    HostOnly { key: String },
    #[error("`{key}` does not exist on this kernel: {why}")]
    Removed { key: String, why: String },
    #[error("unknown sysctl `{key}`: there is no /proc/sys/{path} on this kernel")]
    Unknown { key: String, path: String },
    #[error(
        "`{key}` is not present inside a network namespace on this kernel (it exists only in the host's initial namespace)"
    )]
    MissingInNamespace { key: String },
    #[error("the kernel rejected {value:?} for `{key}`: {errno}")]
    Rejected {
        key: String,
        value: String,
        errno: Errno,
    },
    #[error("`{key}` is read-only inside a network namespace on this kernel ({errno})")]
    ReadOnly { key: String, errno: Errno },
    #[error("the kernel accepted {value:?} for `{key}` but reads back {read_back:?}")]
    NotStored {
        key: String,
        value: String,
        read_back: String,
    },
    #[error("failed to access /proc/sys/{path}: {message}")]
    Io { path: String, message: String },
}

/// The file of `key` under /proc/sys (in the namespace of the thread that opens it).
pub fn proc_file(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(proc_path(key))
}

/// The path under /proc/sys of a dotted key. A `/` inside a dotted key is a dot in a name
/// (`net.ipv4.conf.eth0/100.rp_filter` is `net/ipv4/conf/eth0.100/rp_filter`), as sysctl.d(5)
/// writes it.
pub fn proc_path(key: &str) -> String {
    key.split('.')
        .map(|c| c.replace('/', "."))
        .collect::<Vec<_>>()
        .join("/")
}

fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// What the key's name alone tells: outside `net.`, malformed, or one of the keys known to be
/// host-global or host-only. Valid on any thread.
pub fn named_check(key: &str) -> Result<(), SysctlIssue> {
    if !key.starts_with("net.") || !is_valid_key(key) {
        return Err(SysctlIssue::NotNetwork(key.to_string()));
    }
    if HOST_GLOBAL_READ_ONLY.contains(&key) {
        return Err(SysctlIssue::HostGlobal {
            key: key.to_string(),
        });
    }
    if HOST_ONLY.contains(&key) {
        return Err(SysctlIssue::HostOnly {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// What can be known without privileges and without entering a namespace. Call it on a
/// thread in the host's initial namespace: whether the key exists is judged by that
/// namespace's /proc/sys, which shows every network sysctl the kernel has (a child
/// namespace lacks the host-only ones).
pub fn static_check(key: &str) -> Result<(), SysctlIssue> {
    named_check(key)?;
    let path = proc_path(key);
    if !PathBuf::from("/proc/sys").join(&path).exists() {
        return Err(known_absence(key).unwrap_or(SysctlIssue::Unknown {
            key: key.to_string(),
            path,
        }));
    }
    Ok(())
}

/// Why a key this kernel lacks is missing, where twlab knows: added by a later kernel, or
/// removed. Asked only once the key is absent: an older kernel that has it may be tested.
pub fn known_absence(key: &str) -> Option<SysctlIssue> {
    if let Some((_, since)) = ADDED.iter().find(|(k, _)| *k == key) {
        return Some(SysctlIssue::NewerKernel {
            key: key.to_string(),
            since: since.to_string(),
            release: super::kernel_release(),
        });
    }
    REMOVED
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, why)| SysctlIssue::Removed {
            key: key.to_string(),
            why: why.to_string(),
        })
}
