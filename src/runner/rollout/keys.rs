//! Each key of a sysctl profile on the running kernel, with its file:line and the reason. A
//! per-namespace key is written in a namespace of twlab's own (never the host's), so "applied"
//! and "refused" are the kernel's answers, not a table's; the value it had there before is
//! this kernel's default, which tells a key that changes something from one that does not.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::netns::{Namespace, NetnsError};
use crate::profile::{KeyClass, Profile, Setting, from_issue, static_class};

/// One key of the profile as the running kernel takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyReport {
    pub key: String,
    pub value: String,
    pub class: KeyClass,
    pub reason: String,
    pub file: PathBuf,
    pub line: u64,
    /// A leading `-` in the profile: a failure to set it is ignored by systemd-sysctl.
    pub ignore_failure: bool,
    /// The value before the profile: a new namespace's (this kernel's default) for a
    /// per-namespace key, the host's for a host-global one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Whether the profile's value differs from `default` (whitespace aside).
    pub changes_default: bool,
    /// Whether the workloads' profile runs set it (per-namespace keys; host-global ones with
    /// `--host`).
    pub used: bool,
    /// For a glob: the keys it leaves alone (set explicitly by the profile, or excluded with
    /// `-key`), as systemd-sysctl does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

impl KeyReport {
    /// `file:line`, or the /proc/sys file a value was read from (`--from-host`).
    pub fn place(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}", self.file.display(), self.line)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overridden {
    pub key: String,
    pub value: String,
    pub file: PathBuf,
    pub line: u64,
    /// Where the value that won was set.
    pub by_file: PathBuf,
    pub by_line: u64,
}

/// Whitespace-insensitive form of a value (`1024 65535` and `1024\t65535` are one value).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// Classify every key of `profile`. Per-namespace keys are set one after another in one
/// namespace of twlab's, as the profile would be on a host. With `host`, the host-global
/// keys twlab can restore are marked for the profile runs (through `host/`).
pub fn classify(profile: &Profile, host: bool) -> Result<Vec<KeyReport>, NetnsError> {
    let probe = Namespace::create("rollout")?;
    // A glob leaves alone the keys the profile sets itself and those it excludes (`-key`).
    let except: Vec<String> = profile
        .settings
        .iter()
        .filter(|s| !s.pattern)
        .chain(&profile.excluded)
        .map(|s| s.key.clone())
        .collect();
    let mut keys = Vec::new();
    for s in &profile.settings {
        let report = match static_class(s) {
            None if s.pattern => glob_report(&probe, s, &except)?,
            Some((KeyClass::HostGlobal, reason)) if crate::host::is_host_settable(&s.key) => {
                let current = crate::netns::sysctl::read(&s.key).ok();
                let changes = current.as_deref().is_none_or(|c| !same_value(c, &s.value));
                let reason = if host {
                    format!(
                        "one value for the whole host: set through twlab's guarded host path for the profile's runs and restored after each (--host); the host has {}",
                        current.as_deref().unwrap_or("(unreadable)")
                    )
                } else {
                    reason
                };
                KeyReport {
                    default: current,
                    changes_default: changes,
                    used: host,
                    ..key_report(s, KeyClass::HostGlobal, reason)
                }
            }
            Some((class, reason)) => key_report(s, class, reason),
            None => {
                let (key, value) = (s.key.clone(), s.value.clone());
                let (before, set) = probe.run(move || {
                    let before = crate::netns::sysctl::read(&key).ok();
                    (before, crate::netns::sysctl::apply(&key, &value))
                })?;
                match set {
                    Ok(()) => {
                        let changes = before.as_deref().is_none_or(|b| !same_value(b, &s.value));
                        let reason = match (&before, changes) {
                            (Some(b), false) => format!(
                                "per network namespace; the same as this kernel's default ({b}), so it changes nothing here"
                            ),
                            (Some(b), true) => format!(
                                "per network namespace: the kernel took the value in a namespace of twlab's (default {b})"
                            ),
                            (None, _) => "per network namespace: the kernel took the value in a namespace of twlab's".into(),
                        };
                        KeyReport {
                            default: before,
                            changes_default: changes,
                            used: true,
                            ..key_report(s, KeyClass::Applied, reason)
                        }
                    }
                    Err(issue) => {
                        let (class, reason) = from_issue(&s.key, issue);
                        key_report(s, class, reason)
                    }
                }
            }
        };
        keys.push(report);
    }
    Ok(keys)
}

/// A glob, expanded and set in the probe namespace: the keys it names there, their defaults,
/// and whether the kernel took the value for each. Every workload namespace expands it again
/// over its own keys (its veth interfaces too), as systemd-sysctl does over the interfaces
/// that exist when it runs.
fn glob_report(probe: &Namespace, s: &Setting, except: &[String]) -> Result<KeyReport, NetnsError> {
    let (pattern, value, except) = (s.key.clone(), s.value.clone(), except.to_vec());
    let skip = except.clone();
    let (before, set) = probe.run(move || {
        let before: Vec<(String, String)> = crate::netns::sysctl::glob_keys(&pattern, &except)
            .into_iter()
            .map(|k| {
                let v = crate::netns::sysctl::read(&k).unwrap_or_default();
                (k, v)
            })
            .collect();
        (
            before,
            crate::netns::sysctl::apply_glob(&pattern, &value, &except),
        )
    })?;
    let report = match set {
        Ok(names) if names.is_empty() => key_report(
            s,
            KeyClass::Pattern,
            "a glob that names no key in a namespace of twlab's".into(),
        ),
        Ok(names) => {
            let mut defaults: Vec<&str> = before.iter().map(|(_, v)| v.as_str()).collect();
            defaults.dedup();
            let changes = before.iter().any(|(_, v)| !same_value(v, &s.value));
            KeyReport {
                default: Some(defaults.join(" / ")),
                changes_default: changes,
                used: true,
                except: skip,
                ..key_report(
                    s,
                    KeyClass::Applied,
                    format!(
                        "a glob: in a namespace of twlab's it names {} key{} ({}; default {}){}; each workload namespace expands it over its own keys, its interfaces too",
                        names.len(),
                        if names.len() == 1 { "" } else { "s" },
                        names.join(", "),
                        defaults.join(" / "),
                        if changes {
                            ""
                        } else {
                            ", so it changes nothing there"
                        }
                    ),
                )
            }
        }
        Err(issue) => {
            let (class, reason) = from_issue(&s.key, issue);
            key_report(s, class, format!("a glob, and one key it names: {reason}"))
        }
    };
    Ok(report)
}

fn key_report(s: &Setting, class: KeyClass, reason: String) -> KeyReport {
    KeyReport {
        key: s.key.clone(),
        value: s.value.clone(),
        class,
        reason,
        file: s.file.clone(),
        line: s.line,
        ignore_failure: s.ignore_failure,
        default: None,
        changes_default: false,
        used: false,
        except: Vec::new(),
    }
}

pub fn overridden(profile: &Profile) -> Vec<Overridden> {
    profile
        .overridden
        .iter()
        .map(|(old, new)| Overridden {
            key: old.key.clone(),
            value: old.value.clone(),
            file: old.file.clone(),
            line: old.line,
            by_file: new.file.clone(),
            by_line: new.line,
        })
        .collect()
}

/// Where `--from-host` says the values came from.
pub const FROM_HOST: &str = "/proc/sys (the host's current values)";

/// The host's `net.*` values that differ from a new namespace's, as a profile: what this host
/// was tuned to, in the form a file would state it. Keys of one interface (`conf.eth0.*`,
/// `neigh.eth0.*`) are left out: the workloads' interfaces are not the host's. Only reads
/// the host's /proc/sys.
pub fn profile_from_host() -> Result<Profile, NetnsError> {
    let host = crate::netns::sysctl::tree("net");
    let probe = Namespace::create("rollout-defaults")?;
    let fresh = probe.run(|| crate::netns::sysctl::tree("net"))?;
    let mut profile = Profile::default();
    let settings = host
        .into_iter()
        .filter(|(key, _)| !per_interface(key))
        .filter_map(|(key, value)| {
            let default = fresh.get(&key)?;
            (!same_value(default, &value)).then(|| Setting {
                file: crate::kernel::sysctl::proc_file(&key),
                key,
                value,
                line: 0,
                ignore_failure: false,
                pattern: false,
                exclude: false,
            })
        })
        .collect();
    profile.extend(settings, Vec::new());
    Ok(profile)
}

/// Keys of one interface: `net.ipv4.conf.eth0.rp_filter`, `net.ipv6.neigh.eth0.*`; `all`,
/// `default` and `lo` are kept (every namespace has them).
fn per_interface(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() > 4
        && matches!(parts[2], "conf" | "neigh")
        && !matches!(parts[3], "all" | "default" | "lo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_without_whitespace() {
        assert!(same_value("1024 65535", "1024\t65535\n"));
        assert!(!same_value("1", "2"));
    }

    #[test]
    fn interface_keys_are_left_out_of_a_host_profile() {
        assert!(per_interface("net.ipv4.conf.eth0.rp_filter"));
        assert!(per_interface("net.ipv6.neigh.ens3.base_reachable_time_ms"));
        assert!(!per_interface("net.ipv4.conf.all.rp_filter"));
        assert!(!per_interface("net.ipv4.conf.default.rp_filter"));
        assert!(!per_interface("net.ipv4.tcp_tw_reuse"));
    }
}
