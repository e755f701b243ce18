//! Per-namespace sysctls: what may be set inside a case's namespace, and setting it.
//!
//! Only `net.*` keys are namespaced; writing any other key from a namespace thread would change
//! the whole host, so they are refused outright. Among `net.*` keys, the kernel decides what a
//! child namespace sees and may write: the authoritative check is made in the case's own
//! namespace before any step runs (`apply`). `static_check` catches what can be known without
//! privileges, for `twlab check`.

use std::io::Write;

use nix::errno::Errno;

pub use crate::kernel::sysctl::{SysctlIssue, named_check, static_check};
use crate::kernel::sysctl::{proc_file, proc_path};

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Read a sysctl in the current thread's namespace.
pub fn read(key: &str) -> Result<String, SysctlIssue> {
    let path = proc_path(key);
    std::fs::read_to_string(proc_file(key))
        .map(|s| normalize(&s))
        .map_err(|e| SysctlIssue::Io {
            path,
            message: e.to_string(),
        })
}

/// Set a sysctl in the current thread's namespace and read it back.
pub fn apply(key: &str, value: &str) -> Result<(), SysctlIssue> {
    // Not static_check: this thread is in a child namespace, whose /proc/sys lacks the
    // host-only keys; their absence here is `MissingInNamespace`, not "no such key".
    named_check(key)?;
    let path = proc_path(key);
    let full = proc_file(key);
    if !full.exists() {
        // A per-namespace key a later kernel added (or an earlier one had) is missing from
        // every namespace of this kernel: say so, so that the trial is skipped as too old.
        return Err(crate::kernel::sysctl::known_absence(key).unwrap_or(
            SysctlIssue::MissingInNamespace {
                key: key.to_string(),
            },
        ));
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

/// Every writable sysctl below /proc/sys/`prefix` (`net`, `net/ipv4/conf`) in the current
/// thread's namespace, dotted, with its value (whitespace folded). Read-only files
/// (tcp_ehash_entries) report rather than set, and write-only ones (route.flush) cannot be
/// read: neither is a setting.
pub fn tree(prefix: &str) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![std::path::Path::new("/proc/sys").join(prefix)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if meta.permissions().mode() & 0o222 == 0 {
                continue;
            }
            let (Ok(text), Ok(rel)) = (
                std::fs::read_to_string(&path),
                path.strip_prefix("/proc/sys"),
            ) else {
                continue;
            };
            // A dot inside a component (an interface eth0.100) is a `/` in the dotted form.
            let key = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().replace('.', "/"))
                .collect::<Vec<_>>()
                .join(".");
            out.insert(key, normalize(&text));
        }
    }
    out
}

/// The keys a glob names in the current thread's namespace, without `except` (the keys a
/// profile sets explicitly, which win over a glob, and its `-key` exclusions).
pub fn glob_keys(pattern: &str, except: &[String]) -> Vec<String> {
    tree(&crate::profile::glob::fixed_prefix(pattern))
        .into_keys()
        .filter(|k| crate::profile::glob::matches(pattern, k) && !except.contains(k))
        .collect()
}

/// Set every key a glob names here (see `glob_keys`); returns them. Stops at the first the
/// kernel refuses.
pub fn apply_glob(
    pattern: &str,
    value: &str,
    except: &[String],
) -> Result<Vec<String>, SysctlIssue> {
    let keys = glob_keys(pattern, except);
    for k in &keys {
        apply(k, value)?;
    }
    Ok(keys)
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
