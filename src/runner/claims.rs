//! `twlab claims`: claim cases run as trials and reported as a table a reviewer can paste:
//! the claim, the verdict on the kernel the run happened on, one line of evidence (observed
//! figures), the kernel. A claim whose expectations no longer hold is reported as changed.

use std::fmt::Write;

use serde::Serialize;

use crate::case::{ClaimSpec, Verdict};
use crate::observe::kernel_release;

use super::pool::{Quiet, Watch, run_observed};
use super::results::RunResults;
use super::suite::{Executed, SLOW_REASON, TrialKind, TrialResult, TrialSpec};

#[derive(Debug, Clone, Serialize)]
pub struct ClaimRow {
    pub case: String,
    pub claim: String,
    pub source: String,
    /// What the case's expectations encode.
    pub expected: Verdict,
    /// `holds`, `refuted`, `depends on ...`, `CHANGED: ...` or `undecided: ...` on this kernel.
    pub verdict: String,
    /// What this run decided about the claim.
    pub status: ClaimStatus,
    /// True when this kernel agreed with the encoded verdict.
    pub confirmed: bool,
    pub evidence: String,
}

/// What one run decided about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimStatus {
    /// The kernel agreed with the encoded verdict.
    Confirmed,
    /// Expectations no longer hold: the verdict changed.
    Changed,
    /// The trial could not decide (a missing part, a broken set-up).
    Undecided,
    /// Deliberately not run (a slow case without --include-slow).
    NotRun,
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

/// The claim of a trial, if it carries one.
fn claim_of(spec: &TrialSpec) -> Option<&ClaimSpec> {
    match &spec.kind {
        TrialKind::Refused { claim, .. } => claim.as_ref(),
        TrialKind::Run { case, .. } => case.claim.as_ref(),
        TrialKind::Broken(_) => None,
    }
}

/// The row of one claim trial, from its run by the suite's rules.
pub fn claim_row(spec: &TrialSpec, claim: &ClaimSpec, run: &Executed) -> ClaimRow {
    let mut row = ClaimRow {
        case: spec.name.clone(),
        claim: claim.says.clone(),
        source: claim.source.clone(),
        expected: claim.verdict,
        verdict: String::new(),
        status: ClaimStatus::Undecided,
        confirmed: false,
        evidence: String::new(),
    };
    if let TrialKind::Refused { errors, .. } = &spec.kind {
        // Refused as the case expects: the refusal is the evidence (a removed sysctl...).
        row.evidence = errors
            .0
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
    }
    if let Some(report) = &run.report {
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
    }
    match &run.result {
        TrialResult::Passed(_) => {
            row.verdict = decided(claim);
            row.status = ClaimStatus::Confirmed;
        }
        // The case's own mark says the claim does not hold here: not confirmed, and not a
        // change either.
        TrialResult::Xfail(_) => {
            row.verdict = format!(
                "known not to hold (xfail: {})",
                run.facts.xfail_reasons.join("; ")
            );
            row.status = ClaimStatus::NotRun;
        }
        TrialResult::Failed(text) => match &run.report {
            Some(report) => {
                let failed = report.verdicts.iter().filter(|v| !v.passed).count();
                row.verdict = format!(
                    "CHANGED: {failed} of {} expectations no longer hold",
                    report.verdicts.len()
                );
                row.status = ClaimStatus::Changed;
            }
            None => {
                let why = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                row.verdict = format!("undecided: {}", why.trim());
            }
        },
        TrialResult::Ignored(reason) if reason == SLOW_REASON => {
            row.verdict = "undecided: slow case not run (--include-slow)".into();
            row.status = ClaimStatus::NotRun;
        }
        TrialResult::Ignored(reason) => row.verdict = format!("undecided: {reason}"),
    }
    row.confirmed = row.status == ClaimStatus::Confirmed;
    row
}

/// Runs the claim trials among `trials` in the suite's pool, by the suite's rules.
pub fn run_claims(trials: &[TrialSpec], jobs: usize, include_slow: bool) -> ClaimsReport {
    run_claims_watched(trials, jobs, include_slow, &Quiet).0
}

/// `run_claims`, watched, with each claim trial's results too (for `--html`, `--json`).
pub fn run_claims_watched(
    trials: &[TrialSpec],
    jobs: usize,
    include_slow: bool,
    watch: &dyn Watch,
) -> (ClaimsReport, RunResults) {
    let began = std::time::Instant::now();
    // A file that does not load may be a claim: it is a row, so it cannot vanish from the table.
    let claims: Vec<&TrialSpec> = trials
        .iter()
        .filter(|t| claim_of(t).is_some() || matches!(t.kind, TrialKind::Broken(_)))
        .collect();
    let runs = run_observed(&claims, jobs, include_slow, watch);
    let results = RunResults::of_runs(
        claims.iter().map(|t| t.name.as_str()).zip(&runs),
        began.elapsed().as_secs_f64(),
    );
    let rows = claims
        .iter()
        .zip(runs.iter())
        .map(|(t, (run, _))| match claim_of(t) {
            Some(claim) => claim_row(t, claim, run),
            None => ClaimRow {
                case: t.name.clone(),
                claim: "(the case file does not load)".into(),
                source: String::new(),
                expected: Verdict::Holds,
                verdict: match &run.result {
                    TrialResult::Failed(text) => format!(
                        "undecided: {}",
                        text.lines()
                            .find(|l| !l.trim().is_empty())
                            .unwrap_or("")
                            .trim()
                    ),
                    _ => "undecided".into(),
                },
                status: ClaimStatus::Undecided,
                confirmed: false,
                evidence: String::new(),
            },
        })
        .collect();
    let report = ClaimsReport {
        kernel: kernel_release(),
        rows,
    };
    (report, results)
}

/// A Markdown table cell: a pipe escaped as `\|` (GFM), newlines folded.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
                cell(&r.case)
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
            .all(|r| matches!(r.status, ClaimStatus::Confirmed | ClaimStatus::NotRun))
    }
}
