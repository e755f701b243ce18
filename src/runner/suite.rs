//! The suite: case files turned into trials (one per case and address family), and running one
//! trial to a result. Shared by the `cases` test target and `twlab run`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::case::{
    Case, CaseErrors, ClaimSpec, Family, LoadOptions, SourceError, case_id, discover,
    expected_refusal, load_case_with,
};

use super::probe::{allowed_missing, namespaces_available, strict};
use super::report::render;
use super::trial::{KERNEL_TOO_OLD, TrialError, TrialReport, run_trial};

pub enum TrialKind {
    Run {
        case: Arc<Case>,
        family: Family,
    },
    /// A case file that failed to load: one failing trial, so the rest still run.
    Broken(CaseErrors),
    /// A case file that documents refused input (`expect_invalid`) and was refused as it says.
    Refused {
        errors: CaseErrors,
        expected: String,
        claim: Option<ClaimSpec>,
    },
}

pub struct TrialSpec {
    pub name: String,
    pub kind: TrialKind,
}

pub enum TrialResult {
    Passed(String),
    /// Failed where `xfail:` said it would: counts as a pass, reported as its own status.
    Xfail(String),
    Failed(String),
    Ignored(String),
}

/// What a trial's result means for machines (`twlab run --json`, the kernel matrix): the
/// status, why it failed or was skipped in one line each, and the backend it ran with.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrialFacts {
    /// `file:line:col  check  observed: value` for each failed expectation; or the error that
    /// stopped the trial before its expectations were judged.
    pub failures: Vec<String>,
    /// Each expectation that failed as its `xfail:` (or its case's) said it would, in the
    /// form of `failures`, with the mark's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xfails: Vec<String>,
    /// The distinct reasons of the marks behind `xfails`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xfail_reasons: Vec<String>,
    /// The impairment backend (`netem`, `substitute`) when the case impairs its links.
    pub backend: Option<String>,
    /// The trial's workloads: totals and their series, interval by interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<crate::scenario::workload::WorkloadRun>,
    /// The trial drawn for the HTML report (only when the run records it: `--html`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<Box<super::picture::Picture>>,
}

/// Undo host-global changes left by a twlab that died (SIGKILL) before restoring them; say so.
/// Called before any trial runs, by `twlab run` and by the test harness.
pub fn recover_host() -> Vec<String> {
    if namespaces_available().is_err() {
        // Without privileges nothing could have been changed, and nothing can be restored.
        return Vec::new();
    }
    match crate::host::recover() {
        Ok(messages) => messages
            .into_iter()
            .map(|m| format!("twlab: {m}"))
            .collect(),
        Err(e) => vec![format!(
            "twlab: failed to restore host settings left by an earlier run: {e}"
        )],
    }
}

/// A trial that stands for a path that gave no cases: a failure, so a typo cannot look green.
fn broken_path(path: &std::path::Path, message: String) -> TrialSpec {
    TrialSpec {
        name: path.display().to_string(),
        kind: TrialKind::Broken(CaseErrors(vec![SourceError::whole_file(path, message)])),
    }
}

/// Trials for every case file below `paths`. A path that cannot be read, or holds no case
/// file, is one failing trial that says so.
pub fn collect(paths: &[PathBuf]) -> Vec<TrialSpec> {
    collect_with(paths, &LoadOptions::default())
}

/// `collect`, the cases given variables and binaries (a harness call's).
pub fn collect_with(paths: &[PathBuf], given: &LoadOptions) -> Vec<TrialSpec> {
    let mut files = Vec::new();
    let mut out = Vec::new();
    for p in paths {
        match discover(std::slice::from_ref(p)) {
            Ok(found) if found.is_empty() => out.push(broken_path(
                p,
                format!(
                    "no case files (*.yaml, *.yml) under {}: is the path right?",
                    p.display()
                ),
            )),
            Ok(found) => files.extend(found),
            Err(e) => out.push(broken_path(p, format!("failed to list case files: {e}"))),
        }
    }
    for (root, path) in files {
        match load_case_with(&root, &path, given) {
            Ok(case) => {
                let case = Arc::new(case);
                let many = case.families.len() > 1;
                for family in case.families.clone() {
                    let name = if many {
                        format!("{}::{}", case.id, family.name())
                    } else {
                        case.id.clone()
                    };
                    out.push(TrialSpec {
                        name,
                        kind: TrialKind::Run {
                            case: case.clone(),
                            family,
                        },
                    });
                }
            }
            Err(errors) => {
                let source = std::fs::read_to_string(&path).unwrap_or_default();
                let kind = match expected_refusal(&source) {
                    Some((expected, claim))
                        if errors.0.iter().any(|e| e.message.contains(&expected)) =>
                    {
                        TrialKind::Refused {
                            errors,
                            expected,
                            claim,
                        }
                    }
                    _ => TrialKind::Broken(errors),
                };
                out.push(TrialSpec {
                    name: case_id(&root, &path),
                    kind,
                });
            }
        }
    }
    out
}

/// Where failed cases leave their artefacts: `TWLAB_ARTIFACTS`, else `target/twlab`; as an
/// absolute path, so that a report written elsewhere links to them.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("TWLAB_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target").join("twlab"));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The same trials, each case set to be drawn (`Case::picture`): its links tapped and its
/// connections' states followed, for the HTML report.
pub fn with_pictures(trials: Vec<TrialSpec>) -> Vec<TrialSpec> {
    let mut drawn: Vec<(*const Case, Arc<Case>)> = Vec::new();
    trials
        .into_iter()
        .map(|t| match t.kind {
            TrialKind::Run { case, family } => {
                // The families of one case share one copy, as they shared the original.
                let key = Arc::as_ptr(&case);
                let copy = match drawn.iter().find(|(k, _)| *k == key) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let c = Arc::new(Case {
                            picture: true,
                            ..(*case).clone()
                        });
                        drawn.push((key, c.clone()));
                        c
                    }
                };
                TrialSpec {
                    name: t.name,
                    kind: TrialKind::Run { case: copy, family },
                }
            }
            kind => TrialSpec { name: t.name, kind },
        })
        .collect()
}

/// A pcap per captured link of a failed trial, for Wireshark; returns the lines saying where.
fn write_pcaps(name: &str, report: &TrialReport) -> String {
    let dir = artifacts_dir().join(name.replace("::", "-"));
    let mut out = String::new();
    for capture in &report.captures {
        let path = dir.join(format!("{}.pcap", capture.ifname));
        let written = std::fs::create_dir_all(&dir).and_then(|()| capture.write_pcap(&path));
        out += &match written {
            Ok(()) => format!(
                "packets on `{}` written to {}\n",
                capture.ifname,
                path.display()
            ),
            Err(e) => format!("failed to write {}: {e}\n", path.display()),
        };
    }
    out
}

/// Whether slow cases (which wait out real timers) run: `TWLAB_INCLUDE_SLOW=1`, or
/// `twlab run --include-slow`.
pub fn include_slow_from_env() -> bool {
    std::env::var("TWLAB_INCLUDE_SLOW").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub const SLOW_REASON: &str = "slow: it waits out real timers; run it with TWLAB_INCLUDE_SLOW=1, `cargo test -- --include-ignored` or `twlab run --include-slow`";

pub fn execute(spec: &TrialSpec) -> TrialResult {
    execute_with(spec, include_slow_from_env())
}

pub fn execute_with(spec: &TrialSpec, include_slow: bool) -> TrialResult {
    execute_full(spec, include_slow).result
}

/// Run one trial: its result with the full report, and the facts a machine reads.
pub fn execute_detailed(spec: &TrialSpec, include_slow: bool) -> (TrialResult, TrialFacts) {
    let e = execute_full(spec, include_slow);
    (e.result, e.facts)
}

/// One trial run to its end: the rendered result, the facts for machines, and the typed
/// report when its expectations were judged.
pub struct Executed {
    pub result: TrialResult,
    pub facts: TrialFacts,
    pub report: Option<TrialReport>,
}

impl Executed {
    /// A result without a report (passed as refused input, or ignored).
    pub(super) fn without_report(result: TrialResult) -> Executed {
        Executed {
            result,
            facts: TrialFacts::default(),
            report: None,
        }
    }

    /// A failure before the expectations were judged: the text, and why in one line.
    pub(crate) fn stopped(text: String, why: String) -> Executed {
        Executed {
            result: TrialResult::Failed(text),
            facts: TrialFacts {
                failures: vec![why],
                ..TrialFacts::default()
            },
            report: None,
        }
    }
}

/// Run one trial by every rule (slow filter, privileges, TWLAB_STRICT, kernel too old).
pub fn execute_full(spec: &TrialSpec, include_slow: bool) -> Executed {
    let (case, family) = match &spec.kind {
        TrialKind::Run { case, family } => (case, *family),
        TrialKind::Broken(errors) => {
            let why = errors
                .0
                .first()
                .map(SourceError::headline)
                .unwrap_or_default();
            return Executed::stopped(errors.to_string(), why);
        }
        TrialKind::Refused {
            errors, expected, ..
        } => {
            return Executed::without_report(TrialResult::Passed(format!(
                "{}: refused before running, as the case expects (\"{expected}\"):\n{errors}",
                spec.name
            )));
        }
    };
    if case.slow && !include_slow {
        // A deliberate filter, not a missing capability: never a failure, even under TWLAB_STRICT.
        return Executed::without_report(TrialResult::Ignored(SLOW_REASON.into()));
    }
    if let Err(reason) = namespaces_available() {
        if strict() {
            let text = format!("TWLAB_STRICT is set and this case would be skipped: {reason}");
            return Executed::stopped(text.clone(), text);
        }
        return Executed::without_report(TrialResult::Ignored(reason));
    }
    match run_trial(case, family) {
        Ok(report) => {
            let (result, facts) = judged(spec, case, &report);
            Executed {
                result,
                facts,
                report: Some(report),
            }
        }
        Err(e) => stopped(case, e),
    }
}

/// A trial whose expectations were judged: the report, and each failed expectation's place
/// and observed value for machines. A failure an `xfail:` mark foresaw goes to `xfails`, and
/// the trial is `Xfail`; a mark whose case held is an XPASS, a failure.
fn judged(spec: &TrialSpec, case: &Case, report: &TrialReport) -> (TrialResult, TrialFacts) {
    let mut text = render(case, report);
    let place = |v: &crate::expect::Verdict| {
        let e = &v.expectation;
        format!(
            "{}:{}:{}  {}  observed: {}",
            case.path.display(),
            e.line,
            e.col,
            e.check,
            v.observed
        )
    };
    let mut failures: Vec<String> = report
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| match (&v.expectation.xfail, v.held) {
            (Some(reason), true) => {
                format!("{}  (XPASS: held, but marked xfail: {reason})", place(v))
            }
            _ => place(v),
        })
        .collect();
    let mut xfails: Vec<String> = report
        .verdicts
        .iter()
        .filter(|v| v.applies && !v.held)
        .filter_map(|v| {
            let reason = v.expectation.xfail.as_ref()?;
            Some(format!("{}  (xfail: {reason})", place(v)))
        })
        .collect();
    let mut xfail_reasons: Vec<String> = Vec::new();
    for v in &report.verdicts {
        if let (true, false, Some(reason)) = (v.applies, v.held, &v.expectation.xfail)
            && !xfail_reasons.contains(reason)
        {
            xfail_reasons.push(reason.clone());
        }
    }
    let result = match (&case.xfail, report.passed()) {
        (Some(reason), false) => {
            text += &format!("xfail: the case failed as marked: {reason}\n");
            xfails.extend(
                failures
                    .drain(..)
                    .map(|f| format!("{f}  (case xfail: {reason})")),
            );
            xfail_reasons.push(reason.clone());
            TrialResult::Xfail(text)
        }
        (Some(reason), true) => {
            text += &format!(
                "XPASS: every expectation held, but the case is marked xfail (\"{reason}\"): remove the mark\n"
            );
            failures.push(format!(
                "XPASS: the case is marked xfail (\"{reason}\") but held"
            ));
            TrialResult::Failed(text)
        }
        (None, true) if !xfails.is_empty() => TrialResult::Xfail(text),
        (None, true) => TrialResult::Passed(text),
        (None, false) => {
            text += &write_pcaps(&spec.name, report);
            TrialResult::Failed(text)
        }
    };
    let facts = TrialFacts {
        failures,
        xfails,
        xfail_reasons,
        backend: report.backend.map(str::to_string),
        workloads: report.observations.workloads.clone(),
        picture: case
            .picture
            .then(|| Box::new(super::picture::Picture::new(case, report))),
    };
    (result, facts)
}

/// A trial that stopped before its expectations were judged.
fn stopped(case: &Case, error: TrialError) -> Executed {
    match error {
        // A kernel older than the case needs is a fact about the kernel, not a broken set-up:
        // ignored with the reason even under TWLAB_STRICT (the kernel matrix shows it).
        TrialError::Unsupported { feature, reason }
            if !strict() || allowed_missing(feature) || feature == KERNEL_TOO_OLD =>
        {
            Executed::without_report(TrialResult::Ignored(reason))
        }
        TrialError::Unsupported { feature, reason } => {
            let text = format!(
                "TWLAB_STRICT is set and this case would be skipped: {reason} (set TWLAB_ALLOW_MISSING={feature} if this kernel is known to lack it)"
            );
            Executed::stopped(text.clone(), text)
        }
        TrialError::Sysctl(e) => Executed::stopped(e.to_string(), e.headline()),
        e => {
            let text = format!("{}: {e}", case.id);
            // The error's first line says what failed; the rest (rules, output tails) is
            // evidence for the report.
            let why = text.lines().next().unwrap_or_default().to_string();
            Executed::stopped(text, why)
        }
    }
}
