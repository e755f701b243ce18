//! The rollout report for a terminal (text), a review (Markdown) and CI (JSON).

use std::fmt::Write;

use crate::profile::KeyClass;

use super::keys::KeyReport;
use super::run::RolloutReport;
use super::workloads::{Change, SubjectReport, decisive, sufficient};

const CLASS_ORDER: [KeyClass; 6] = [
    KeyClass::Applied,
    KeyClass::HostGlobal,
    KeyClass::Absent,
    KeyClass::Refused,
    KeyClass::NotNet,
    KeyClass::Pattern,
];

/// `3 applied, 1 host-global, ...` in the fixed order, classes that occur only.
fn class_counts(r: &RolloutReport) -> String {
    CLASS_ORDER
        .iter()
        .filter_map(|c| {
            let n = r.keys.iter().filter(|k| k.class == *c).count();
            (n > 0).then(|| format!("{n} {}", c.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line on the attempts: `failed attempts 0 -> 5881, RSTs sent 0 -> 0`.
fn attempts_line(s: &SubjectReport) -> String {
    format!(
        "attempts {} -> {}, failed {} -> {}, RSTs sent {} -> {}",
        s.baseline.attempts,
        s.profile.attempts,
        s.baseline.failed,
        s.profile.failed,
        s.baseline.resets,
        s.profile.resets
    )
}

/// The keys that decide a change for the Markdown table: the decisive ones, or else those
/// that each make it alone (`A or B`).
fn deciders(s: &SubjectReport) -> String {
    let decisive = decisive(s);
    if !decisive.is_empty() {
        return decisive.join(", ");
    }
    sufficient(s).join(" or ")
}

/// What the ablation found, in words: the keys that decide, those that are part of the
/// change, and how many made no difference alone.
fn ablation_line(s: &SubjectReport) -> Option<String> {
    if s.ablation.is_empty() {
        return s.ablation_note.clone();
    }
    let keys = |result: &str| -> Vec<&str> {
        s.ablation
            .iter()
            .filter(|a| a.result == result)
            .map(|a| a.key.as_str())
            .collect()
    };
    let decisive = decisive(s);
    let mut parts = vec![if decisive.is_empty() {
        "no single key decides it".to_string()
    } else {
        format!(
            "decided by {}: without it, the defaults' verdicts",
            decisive.join(", ")
        )
    }];
    let part = keys("other");
    if !part.is_empty() {
        parts.push(format!(
            "without {}: part of the change undone",
            part.join(" or ")
        ));
    }
    let undecided = keys("undecided");
    if !undecided.is_empty() {
        parts.push(format!("without {}: undecided", undecided.join(" or ")));
    }
    let none = keys("profile").len();
    if none > 0 {
        parts.push(format!(
            "{none} other key{} made no difference alone",
            if none == 1 { "" } else { "s" }
        ));
    }
    if !s.alone.is_empty() {
        let enough = sufficient(s);
        parts.push(match enough.len() {
            0 => "and no key alone makes it: it takes several together".to_string(),
            1 => format!("{} alone makes it", enough[0]),
            _ => format!(
                "each of {} alone makes it (either suffices)",
                enough.join(", ")
            ),
        });
    }
    let mut line = parts.join("; ");
    if let Some(note) = &s.ablation_note {
        let _ = write!(line, " [{note}]");
    }
    Some(line)
}

fn subject_text(out: &mut String, s: &SubjectReport) {
    let _ = writeln!(
        out,
        "  {:<9} {}  ({}; profile in {})",
        s.change.name(),
        s.case,
        s.name,
        s.roles.join(", ")
    );
    if s.change == Change::Undecided {
        let _ = writeln!(
            out,
            "            defaults: {}\n            profile:  {}",
            s.baseline.status, s.profile.status
        );
        return;
    }
    for f in s
        .figures
        .iter()
        .filter(|f| f.baseline_holds != f.profile_holds)
    {
        let _ = writeln!(
            out,
            "            {}  {}\n              defaults: {}\n              profile:  {}",
            f.at, f.check, f.baseline, f.profile
        );
    }
    if s.changed {
        let _ = writeln!(out, "            {}", attempts_line(s));
    }
    if s.baseline.status != "passed" {
        let _ = writeln!(
            out,
            "            note: with the defaults the case's own expectations did not all hold ({}): compare the figures, not the verdict",
            s.baseline.status
        );
    }
    if let Some(line) = ablation_line(s) {
        let _ = writeln!(out, "            {line}");
    }
}

impl RolloutReport {
    /// The keys grouped by class in the fixed order, each group in the profile's order.
    fn keys_by_class(&self) -> impl Iterator<Item = &KeyReport> {
        CLASS_ORDER
            .iter()
            .flat_map(|c| self.keys.iter().filter(move |k| k.class == *c))
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "twlab rollout on Linux {}: {}\n\nkeys ({}):\n",
            self.release,
            self.profiles.join(", "),
            class_counts(self)
        );
        if self.keys.is_empty() {
            out += "  none: the profile sets no key (from the host: every net.* value is this kernel's default)\n";
        }
        for k in self.keys_by_class() {
            let _ = writeln!(
                out,
                "  {:<11} {} = {}   ({})\n              {}",
                k.class.name(),
                k.key,
                k.value,
                k.place(),
                k.reason
            );
        }
        for o in &self.overridden {
            let _ = writeln!(
                out,
                "  overridden  {} = {} ({}:{}) by {}:{}",
                o.key,
                o.value,
                o.file.display(),
                o.line,
                o.by_file.display(),
                o.by_line
            );
        }
        for p in &self.problems {
            let _ = writeln!(out, "{p}");
        }
        if !self.workloads.is_empty() {
            out += "\nworkloads, with this kernel's defaults and with the profile:\n";
            for s in &self.workloads {
                subject_text(&mut out, s);
            }
        }
        let changed: Vec<&SubjectReport> = self.claims.iter().filter(|c| c.changed).collect();
        if !self.claims.is_empty() {
            let _ = writeln!(
                out,
                "\nshipped claims whose verdict the profile changes ({} of {}):",
                changed.len(),
                self.claims.len()
            );
            for s in &changed {
                subject_text(&mut out, s);
            }
            for s in self.claims.iter().filter(|c| c.change == Change::Undecided) {
                if s.baseline.status.starts_with("skipped: slow") {
                    let _ = writeln!(
                        out,
                        "  not run   {}  (slow: --include-slow runs it)",
                        s.case
                    );
                } else {
                    subject_text(&mut out, s);
                }
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(out, "\n{}", self.summary());
        out
    }

    /// `rollout: 3 of 9 workloads changed (1 better, 1 worse); 2 of 17 claims changed`.
    pub fn summary(&self) -> String {
        let count = |v: &[SubjectReport], c: Change| v.iter().filter(|s| s.change == c).count();
        let changed = self.workloads.iter().filter(|s| s.changed).count();
        let mut line = format!(
            "rollout: {changed} of {} workloads changed ({} better, {} worse)",
            self.workloads.len(),
            count(&self.workloads, Change::Better),
            count(&self.workloads, Change::Worse)
        );
        if !self.claims.is_empty() {
            let _ = write!(
                line,
                "; {} of {} claims changed",
                self.claims.iter().filter(|s| s.changed).count(),
                self.claims.len()
            );
        }
        let undecided =
            count(&self.workloads, Change::Undecided) + count(&self.claims, Change::Undecided);
        if undecided > 0 {
            let _ = write!(line, "; {undecided} undecided");
        }
        line
    }

    /// Markdown tables, for a review.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### Sysctl profile on Linux {}: {}\n\n{}\n\n| class | key | value | where | why |\n|---|---|---|---|---|\n",
            self.release,
            self.profiles.join(", "),
            class_counts(self)
        );
        for k in self.keys_by_class() {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | {} |",
                k.class.name(),
                k.key,
                k.value,
                k.place(),
                cell(&k.reason)
            );
        }
        for p in &self.problems {
            let _ = writeln!(out, "\n- {}", cell(p));
        }
        let table = |out: &mut String, title: &str, rows: &[&SubjectReport]| {
            let _ = write!(
                out,
                "\n#### {title}\n\n| case | with the profile | what changed (defaults -> profile) | decided by |\n|---|---|---|---|\n"
            );
            for s in rows {
                let what: Vec<String> = s
                    .figures
                    .iter()
                    .filter(|f| f.baseline_holds != f.profile_holds)
                    .map(|f| format!("{}: {} -> {}", f.check, f.baseline, f.profile))
                    .collect();
                let what = if what.is_empty() {
                    "-".to_string()
                } else {
                    what.join("; ")
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    s.case,
                    s.change.name(),
                    cell(&what),
                    cell(&deciders(s))
                );
            }
        };
        if !self.workloads.is_empty() {
            let rows: Vec<&SubjectReport> = self.workloads.iter().collect();
            table(&mut out, "Workloads", &rows);
        }
        let changed: Vec<&SubjectReport> = self.claims.iter().filter(|c| c.changed).collect();
        if !changed.is_empty() {
            table(
                &mut out,
                "Claims whose verdict the profile changes",
                &changed,
            );
        }
        let _ = writeln!(out, "\n{}", self.summary());
        out
    }
}

/// A Markdown table cell: a pipe escaped as `\|` (GFM), newlines folded.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
