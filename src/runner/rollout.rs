//! `twlab rollout`: what a sysctl profile's keys are on the running kernel, each with its
//! file:line and the reason. A per-namespace key is written in a namespace of twlab's own
//! (never the host's), so "applied" and "refused" are the kernel's answers, not a table's.

use std::path::PathBuf;

use serde::Serialize;

use crate::netns::{Namespace, NetnsError};
use crate::profile::{KeyClass, Profile, Setting, from_issue, parse_file, static_class};
use crate::vocab::SourceError;

/// One key of the profile as the running kernel takes it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    pub key: String,
    pub value: String,
    pub class: KeyClass,
    pub reason: String,
    pub file: PathBuf,
    pub line: u64,
    /// A leading `-` in the profile: a failure to set it is ignored by systemd-sysctl.
    pub ignore_failure: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overridden {
    pub key: String,
    pub value: String,
    pub file: PathBuf,
    pub line: u64,
    /// Where the value that won was set.
    pub by_file: PathBuf,
    pub by_line: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub release: String,
    pub keys: Vec<KeyReport>,
    pub overridden: Vec<Overridden>,
    /// Lines that are not assignments and files that cannot be read, as `file:line:col: ...`.
    pub problems: Vec<String>,
}

/// Read the profiles in order (the later winning) and classify every key.
pub fn rollout(profiles: &[PathBuf]) -> Result<RolloutReport, NetnsError> {
    let mut profile = Profile::default();
    for path in profiles {
        let (settings, problems) = parse_file(path);
        profile.extend(settings, problems);
    }
    // One namespace for every try: keys are set one after another, as the profile would be.
    let probe = Namespace::create("rollout")?;
    let mut keys = Vec::new();
    for s in &profile.settings {
        let (class, reason) = match static_class(s) {
            Some(known) => known,
            None => {
                let (key, value) = (s.key.clone(), s.value.clone());
                match probe.run(move || crate::netns::sysctl::apply(&key, &value))? {
                    Ok(()) => (
                        KeyClass::Applied,
                        "per network namespace: the kernel took the value in a namespace of twlab's"
                            .into(),
                    ),
                    Err(issue) => from_issue(&s.key, issue),
                }
            }
        };
        keys.push(key_report(s, class, reason));
    }
    Ok(RolloutReport {
        release: crate::kernel::kernel_release(),
        keys,
        overridden: profile
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
            .collect(),
        problems: profile
            .problems
            .iter()
            .map(SourceError::to_string)
            .collect(),
    })
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
    }
}

impl RolloutReport {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// One line a key, grouped by class in a fixed order.
    pub fn text(&self) -> String {
        let mut out = format!("keys on Linux {}:\n", self.release);
        for class in CLASS_ORDER {
            for k in self.keys.iter().filter(|k| k.class == class) {
                out += &format!(
                    "  {:<11} {} = {}   ({}:{})\n              {}\n",
                    class.name(),
                    k.key,
                    k.value,
                    k.file.display(),
                    k.line,
                    k.reason
                );
            }
        }
        for o in &self.overridden {
            out += &format!(
                "  overridden  {} = {} ({}:{}) by {}:{}\n",
                o.key,
                o.value,
                o.file.display(),
                o.line,
                o.by_file.display(),
                o.by_line
            );
        }
        for p in &self.problems {
            out += &format!("{p}\n");
        }
        out
    }

    /// A Markdown table, for a review.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Keys on Linux {}\n\n| class | key | value | where | why |\n|---|---|---|---|---|\n",
            self.release
        );
        for class in CLASS_ORDER {
            for k in self.keys.iter().filter(|k| k.class == class) {
                out += &format!(
                    "| {} | `{}` | `{}` | {}:{} | {} |\n",
                    class.name(),
                    k.key,
                    k.value,
                    k.file.display(),
                    k.line,
                    k.reason.replace('|', "\\|")
                );
            }
        }
        out
    }
}

const CLASS_ORDER: [KeyClass; 6] = [
    KeyClass::Applied,
    KeyClass::HostGlobal,
    KeyClass::Absent,
    KeyClass::Refused,
    KeyClass::NotNet,
    KeyClass::Pattern,
];
