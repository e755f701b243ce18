//! `twlab claims`: claim cases run as trials and reported as a table a reviewer can paste:
//! the claim, the verdict on the kernel the run happened on, one line of evidence (observed
//! figures), the kernel. A claim whose expectations no longer hold is reported as changed.

use std::fmt::Write;

use serde::Serialize;

use crate::case::{ClaimSpec, Verdict};
use crate::observe::kernel_release;

use super::suite::{TrialKind, TrialSpec, include_slow_from_env};
use super::trial::{TrialError, run_trial};

#[derive(Debug, Clone, Serialize)]
pub struct ClaimRow {
    pub case: String,
    pub claim: String,
    pub source: String,
    /// What the case's expectations encode.
    pub expected: Verdict,
    /// `holds`, `refuted`, `depends on ...`, `CHANGED: ...` or `undecided: ...` on this kernel.
    pub verdict: String,
    /// True when this kernel agreed with the encoded verdict.
    pub confirmed: bool,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimsReport {
    pub kernel: String,
    pub rows: Vec<ClaimRow>,
}

fn decided(claim: &ClaimSpec) -> String {
    match (&claim.verdict, &claim.on) {
        (Verdict::Depends, Some(on)) => format!("depends on {on}"),
        (v, _) => v.name().to_string(),
    }
}

/// Run one claim trial; `None` for trials that are not claims.
pub fn claim_row(spec: &TrialSpec, include_slow: bool) -> Option<ClaimRow> {
    let (claim, row_for) = match &spec.kind {
        TrialKind::Refused {
            errors,
            claim: Some(claim),
            ..
        } => {
            let evidence = errors
                .0
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            return Some(ClaimRow {
                case: spec.name.clone(),
                claim: claim.says.clone(),
                source: claim.source.clone(),
                expected: claim.verdict,
                verdict: decided(claim),
                confirmed: true,
                evidence,
            });
        }
        TrialKind::Run { case, family } => (case.claim.clone()?, (case, *family)),
        _ => return None,
    };
    let (case, family) = row_for;
    let mut row = ClaimRow {
        case: spec.name.clone(),
        claim: claim.says.clone(),
        source: claim.source.clone(),
        expected: claim.verdict,
        verdict: String::new(),
        confirmed: false,
        evidence: String::new(),
    };
    if case.slow && !include_slow {
        row.verdict = "undecided: slow case not run (--include-slow)".into();
        return Some(row);
    }
    match run_trial(case, family) {
        Ok(report) => {
            let failed = report.verdicts.iter().filter(|v| !v.passed).count();
            let marked: Vec<_> = report
                .verdicts
                .iter()
                .filter(|v| v.expectation.evidence && v.applies)
                .collect();
            let shown = if marked.is_empty() {
                report.verdicts.iter().take(2).collect()
            } else {
                marked
            };
            row.evidence = shown
                .iter()
                .map(|v| format!("{}: {}", v.expectation.check, v.observed))
                .collect::<Vec<_>>()
                .join("; ");
            if failed == 0 {
                row.verdict = decided(&claim);
                row.confirmed = true;
            } else {
                row.verdict = format!(
                    "CHANGED: {failed} of {} expectations no longer hold",
                    report.verdicts.len()
                );
            }
        }
        Err(TrialError::Unsupported { reason, .. }) => row.verdict = format!("undecided: {reason}"),
        Err(e) => row.verdict = format!("undecided: {e}"),
    }
    Some(row)
}

pub fn run_claims(trials: &[TrialSpec], jobs: usize) -> ClaimsReport {
    let include_slow = include_slow_from_env();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let rows = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(t) = trials.get(i) else { break };
                    if let Some(row) = claim_row(t, include_slow) {
                        rows.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((i, row));
                    }
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
    rows.sort_by_key(|(i, _)| *i);
    ClaimsReport {
        kernel: kernel_release(),
        rows: rows.into_iter().map(|(_, r)| r).collect(),
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\\\|").replace('\n', " ")
}

impl ClaimsReport {
    pub fn markdown(&self) -> String {
        let mut s = format!("Claims checked on Linux {}\n\n", self.kernel);
        s += "| claim | verdict here | evidence | case |\n|---|---|---|---|\n";
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | `{}` |",
                cell(&r.claim),
                cell(&r.verdict),
                cell(&r.evidence),
                r.case
            );
        }
        s
    }

    pub fn text(&self) -> String {
        let mut s = format!("claims on Linux {}\n", self.kernel);
        for r in &self.rows {
            let _ = writeln!(
                s,
                "\n{}  [{}]\n  claim:    {}\n  evidence: {}",
                r.verdict, r.case, r.claim, r.evidence
            );
        }
        let changed = self.rows.iter().filter(|r| !r.confirmed).count();
        let _ = writeln!(
            s,
            "\n{} claims, {} decided as encoded, {changed} changed or undecided",
            self.rows.len(),
            self.rows.len() - changed
        );
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn all_confirmed(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.confirmed || r.verdict.starts_with("undecided: slow"))
    }
}
