//! Per-namespace sysctls: what may be set inside a case's namespace, and setting it.
//!
//! Only `net.*` keys are namespaced; writing any other key from a namespace thread would change
//! the whole host, so they are refused outright. Among `net.*` keys, the kernel decides what a
//! child namespace sees and may write: the authoritative check is made in the case's own
//! namespace before any step runs (`apply`). `static_check` catches what can be known without
//! privileges, for `twlab check`.

use std::io::Write;
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

fn proc_path(key: &str) -> String {
    key.replace('.', "/")
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

/// What can be known without privileges and without entering a namespace.
pub fn static_check(key: &str) -> Result<(), SysctlIssue> {
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
    // The host's initial namespace (this thread's) shows every network sysctl the kernel has.
    let path = proc_path(key);
    if !PathBuf::from("/proc/sys").join(&path).exists() {
        if let Some((_, since)) = ADDED.iter().find(|(k, _)| *k == key) {
            return Err(SysctlIssue::NewerKernel {
                key: key.to_string(),
                since: since.to_string(),
                release: crate::observe::kernel_release(),
            });
        }
        // Only once this kernel lacks the key: an older kernel that has it may be tested.
        if let Some((_, why)) = REMOVED.iter().find(|(k, _)| *k == key) {
            return Err(SysctlIssue::Removed {
                key: key.to_string(),
                why: why.to_string(),
            });
        }
        return Err(SysctlIssue::Unknown {
            key: key.to_string(),
            path,
        });
    }
    Ok(())
}

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Read a sysctl in the current thread's namespace.
pub fn read(key: &str) -> Result<String, SysctlIssue> {
    let path = proc_path(key);
    std::fs::read_to_string(PathBuf::from("/proc/sys").join(&path))
        .map(|s| normalize(&s))
        .map_err(|e| SysctlIssue::Io {
            path,
            message: e.to_string(),
        })
}

/// Set a sysctl in the current thread's namespace and read it back.
pub fn apply(key: &str, value: &str) -> Result<(), SysctlIssue> {
    static_check(key)?;
    let path = proc_path(key);
    let full = PathBuf::from("/proc/sys").join(&path);
    if !full.exists() {
        return Err(SysctlIssue::MissingInNamespace {
            key: key.to_string(),
        });
    }
    let errno_of = |e: &std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let mut file = match std::fs::OpenOptions::new().write(true).open(&full) {
        Ok(f) => f,
        Err(e) => {
            return Err(match errno_of(&e) {
                errno @ (Errno::EACCES | Errno::EPERM | Errno::EROFS) => SysctlIssue::ReadOnly {
                    key: key.to_string(),
                    errno,
                },
                _ => SysctlIssue::Io {
                    path,
                    message: e.to_string(),
                },
            });
        }
    };
    if let Err(e) = file.write_all(value.as_bytes()) {
        return Err(match errno_of(&e) {
            errno @ (Errno::EACCES | Errno::EPERM) => SysctlIssue::ReadOnly {
                key: key.to_string(),
                errno,
            },
            errno => SysctlIssue::Rejected {
                key: key.to_string(),
                value: value.to_string(),
                errno,
            },
        });
    }
    drop(file);
    let read_back = read(key)?;
    if read_back != normalize(value) {
        return Err(SysctlIssue::NotStored {
            key: key.to_string(),
            value: value.to_string(),
            read_back,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_keys_outside_net() {
        assert!(matches!(
            static_check("kernel.pid_max"),
            Err(SysctlIssue::NotNetwork(_))
        ));
        assert!(matches!(
            static_check("net..x"),
            Err(SysctlIssue::NotNetwork(_))
        ));
    }

    #[test]
    fn explains_host_global_and_removed_keys() {
        assert!(matches!(
            static_check("net.netfilter.nf_conntrack_max"),
            Err(SysctlIssue::HostGlobal { .. })
        ));
        let removed = static_check("net.ipv4.tcp_tw_recycle")
            .unwrap_err()
            .to_string();
        assert!(removed.contains("4.12"), "{removed}");
    }

    #[test]
    fn unknown_key_names_its_path() {
        let e = static_check("net.ipv4.tcp_fin_timeout_typo")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/proc/sys/net/ipv4/tcp_fin_timeout_typo"), "{e}");
    }
}
