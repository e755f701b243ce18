//! Which host-global sysctls twlab may change at all, and checking a declared change.

use std::collections::BTreeSet;

use super::change::HostChange;
use super::error::HostError;

/// The host-global sysctls a case may declare. Each is one limit for the whole machine, read-only
/// inside a child network namespace, compared with every namespace's own count.
pub const HOST_SETTABLE: &[&str] = &[
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_expect_max",
];

/// Whether `key` may be declared as a host-global setting (the allowlist above).
pub fn is_host_settable(key: &str) -> bool {
    HOST_SETTABLE.contains(&key)
}

/// `/proc/sys/...` path of an allowlisted key.
pub(crate) fn proc_path(key: &str) -> String {
    crate::kernel::sysctl::proc_file(key).display().to_string()
}

/// Refuses keys outside the allowlist, keys declared twice and values that are not a
/// non-negative decimal integer (every allowlisted key is one). Returns the trimmed values.
pub(crate) fn validate(changes: &[HostChange]) -> Result<Vec<HostChange>, HostError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        if !is_host_settable(&change.key) {
            return Err(HostError::NotAllowed {
                key: change.key.clone(),
                allowed: HOST_SETTABLE.join(", "),
            });
        }
        if !seen.insert(change.key.as_str()) {
            return Err(HostError::Duplicate {
                key: change.key.clone(),
            });
        }
        let value = change.value.trim();
        if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostError::BadValue {
                key: change.key.clone(),
                value: change.value.clone(),
            });
        }
        out.push(HostChange {
            key: change.key.clone(),
            value: value.to_string(),
        });
    }
    Ok(out)
}
