//! The profile against traffic: every rollout workload (a case with `profile:`) and every
//! shipped claim runs twice in one run, with this kernel's defaults and with the profile's
//! keys, and the two are compared expectation by expectation. A workload that changed is run
//! again without each key that changes a default, one at a time, to find the keys that
//! decide it: what defeats a setting is observed, never looked up.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_saphyr::Location;

use crate::case::{Case, SysctlSetting};
use crate::profile::KeyClass;

use super::super::pool::{Watch, run_observed};
use super::super::results::RunResults;
use super::super::suite::{Executed, TrialKind, TrialResult, TrialSpec};
use super::keys::KeyReport;

/// What a subject is: a workload (its roles take the profile) or a claim (every namespace
/// takes it, under the claim's own sysctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    Workload,
    Claim,
}

/// How the profile's run compares with the defaults' run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Every expectation judged the same.
    Same,
    /// Fewer failed attempts or resets, none more.
    Better,
    /// More failed attempts or more resets.
    Worse,
    /// Expectations judged differently, attempts and resets alike.
    Changed,
    /// One of the two runs could not be judged (an error, a skip): nothing to compare.
    Undecided,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::Better => "better",
            Change::Worse => "worse",
            Change::Changed => "changed",
            Change::Undecided => "undecided",
        }
    }

    pub fn differs(self) -> bool {
        matches!(self, Change::Better | Change::Worse | Change::Changed)
    }
}

/// One expectation of a subject: what each run observed and whether it held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// `file:line:col` of the expectation.
    pub at: String,
    pub check: String,
    pub baseline: String,
    pub baseline_holds: bool,
    pub profile: String,
    pub profile_holds: bool,
}

/// One run of a subject, summed up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// `passed`, `failed`, `skipped: ...` or `error: ...`.
    pub status: String,
    /// Connection attempts (connect, bind, listen, accept steps and workload connections).
    pub attempts: u64,
    /// Those whose outcome was not `ok`.
    pub failed: u64,
    /// RSTs sent, over every namespace (Tcp.OutRsts).
    pub resets: i64,
    /// Which expectations held, in the file's order; empty when nothing was judged.
    #[serde(skip)]
    pub holds: Vec<bool>,
}

/// A run with one key of the profile left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ablation {
    pub key: String,
    /// `defaults` (without this key the subject behaves as with the defaults: the key decides
    /// it), `profile` (no effect on its own), `other` (a part of the change), `undecided`.
    pub result: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectReport {
    pub case: String,
    pub name: String,
    pub kind: SubjectKind,
    /// The namespaces the profile's keys were set in.
    pub roles: Vec<String>,
    pub baseline: RunSummary,
    pub profile: RunSummary,
    pub change: Change,
    /// Whether any expectation was judged differently (`change` other than same/undecided).
    pub changed: bool,
    pub figures: Vec<Figure>,
    pub ablation: Vec<Ablation>,
    /// When leaving out no single key undid the change: one run per key with only that key
    /// set (`profile`: it makes the whole change alone; `defaults`: nothing alone; `other`:
    /// a part). Keys that each suffice alone are an either-or the one-key-out runs cannot see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alone: Vec<Ablation>,
    /// Why the ablation stopped short or did not run, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ablation_note: Option<String>,
}

/// How the rollout runs its subjects.
pub struct RunOptions {
    pub jobs: usize,
    pub include_slow: bool,
    /// `--roles`: the namespaces every workload sets the profile in (each workload's own
    /// `profile: roles:` otherwise).
    pub roles: Option<Vec<String>>,
    /// At most this many one-key-out runs per changed subject.
    pub ablation_limit: usize,
}

/// The keys a profile run sets: per-namespace ones the kernel took, and host-global ones
/// marked for `--host`.
fn used(keys: &[KeyReport]) -> Vec<&KeyReport> {
    keys.iter().filter(|k| k.used).collect()
}

/// `case` with the profile's keys (all but `without`) in `roles`. A workload's own sysctls
/// are its scenario's starting point (a narrow port range) and the profile's keys replace
/// them; a claim's own sysctls are the claim's subject and win over the profile.
fn with_profile(case: &Case, keys: &[&KeyReport], roles: &[String], without: Option<&str>) -> Case {
    let mut c = case.clone();
    let keys: Vec<&&KeyReport> = keys
        .iter()
        .filter(|k| Some(k.key.as_str()) != without)
        .collect();
    let mut sysctls: Vec<SysctlSetting> = Vec::new();
    for role in roles {
        for k in keys.iter().filter(|k| k.class == KeyClass::Applied) {
            sysctls.push(SysctlSetting {
                ns: role.clone(),
                key: k.key.clone(),
                value: k.value.clone(),
                key_at: Location::UNKNOWN,
                value_at: Location::UNKNOWN,
                from_profile: Some((k.file.clone(), k.line)),
                except: k.except.clone(),
            });
        }
    }
    c.sysctls = if case.profile_roles.is_some() {
        case.sysctls.iter().cloned().chain(sysctls).collect()
    } else {
        sysctls
            .into_iter()
            .chain(case.sysctls.iter().cloned())
            .collect()
    };
    // The host-global keys twlab can set are conntrack's; a case without conntrack would
    // only be made to run alone for them.
    let host_keys = keys
        .iter()
        .filter(|k| k.class == KeyClass::HostGlobal && !case.conntrack.is_empty());
    for k in host_keys {
        if !c.host_sysctls.iter().any(|(key, _)| key == &k.key) {
            c.host_sysctls.push((k.key.clone(), k.value.clone()));
        }
    }
    c
}

struct Subject {
    spec_name: String,
    case: Arc<Case>,
    family: crate::vocab::Family,
    kind: SubjectKind,
    roles: Vec<String>,
}

/// The subjects among `trials`: workloads, then claims (claims only when `claims`).
fn subjects(trials: &[TrialSpec], opts: &RunOptions, claims: bool) -> (Vec<Subject>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for t in trials {
        let (case, family) = match &t.kind {
            TrialKind::Run { case, family } => (case, family),
            // A workload that does not load must not vanish from the report.
            TrialKind::Broken(errors) => {
                notes.push(format!(
                    "{}: not run, the file does not load: {errors}",
                    t.name
                ));
                continue;
            }
            TrialKind::Refused { .. } => continue,
        };
        let (kind, wanted) = match (&case.profile_roles, &case.claim) {
            (Some(roles), _) => (
                SubjectKind::Workload,
                opts.roles.clone().unwrap_or_else(|| roles.clone()),
            ),
            (None, Some(_)) if claims => (SubjectKind::Claim, case.topology.namespaces.clone()),
            _ => continue,
        };
        let roles: Vec<String> = wanted
            .iter()
            .filter(|r| case.topology.has_namespace(r))
            .cloned()
            .collect();
        if roles.is_empty() {
            notes.push(format!(
                "{}: none of the roles {} is a namespace of topology `{}` ({}); not run",
                t.name,
                wanted.join(", "),
                case.topology.name,
                case.topology.namespaces.join(", ")
            ));
            continue;
        }
        out.push(Subject {
            spec_name: t.name.clone(),
            case: case.clone(),
            family: *family,
            kind,
            roles,
        });
    }
    (out, notes)
}

fn spec(name: String, case: Arc<Case>, family: crate::vocab::Family) -> TrialSpec {
    TrialSpec {
        name,
        kind: TrialKind::Run { case, family },
    }
}

/// Attempts, failures and resets of one run, and which expectations held.
fn summary(run: &Executed) -> RunSummary {
    let status = match &run.result {
        TrialResult::Passed(_) => "passed".to_string(),
        TrialResult::Xfail(_) => "xfail".to_string(),
        TrialResult::Failed(_) if run.report.is_some() => "failed".to_string(),
        TrialResult::Failed(text) => format!(
            "error: {}",
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
        ),
        TrialResult::Ignored(why) => format!("skipped: {why}"),
    };
    let mut s = RunSummary {
        status,
        attempts: 0,
        failed: 0,
        resets: 0,
        holds: Vec::new(),
    };
    let Some(report) = &run.report else {
        return s;
    };
    let obs = &report.observations;
    for r in obs.steps.iter().filter(|r| {
        matches!(
            r.kind,
            "connect" | "reconnect" | "bind" | "listen" | "accept"
        )
    }) {
        s.attempts += 1;
        if r.outcome != crate::vocab::Outcome::Ok {
            s.failed += 1;
        }
    }
    for w in &obs.workloads {
        for (outcome, n) in &w.outcomes {
            s.attempts += n;
            if outcome != "ok" {
                s.failed += n;
            }
        }
    }
    s.resets = obs
        .counters
        .values()
        .filter_map(|c| c.get("Tcp.OutRsts"))
        .sum();
    s.holds = report.verdicts.iter().map(|v| v.passed).collect();
    s
}

/// A difference larger than noise: more than 2% of the larger figure (so any difference
/// among a few dozen, one RST where there was none).
fn grew(from: i64, to: i64) -> bool {
    to - from > from.max(to) / 50
}

/// The expectations say whether anything changed (what a workload pins is what its author
/// judged to matter); the failed attempts and RSTs say in which direction. A count that moved
/// while every expectation held alike is not a change: one RST more or less in a claim that
/// does not pin RSTs is the run, not the profile.
fn compare(baseline: &RunSummary, profile: &RunSummary) -> Change {
    if baseline.holds.is_empty() || profile.holds.is_empty() {
        return Change::Undecided;
    }
    if baseline.holds == profile.holds {
        return Change::Same;
    }
    let (bf, pf) = (baseline.failed as i64, profile.failed as i64);
    let worse = grew(bf, pf) || grew(baseline.resets, profile.resets);
    let better = grew(pf, bf) || grew(profile.resets, baseline.resets);
    match (worse, better) {
        (true, _) => Change::Worse,
        (false, true) => Change::Better,
        _ => Change::Changed,
    }
}

fn figures(path: &std::path::Path, base: &Executed, prof: &Executed) -> Vec<Figure> {
    let (Some(b), Some(p)) = (&base.report, &prof.report) else {
        return Vec::new();
    };
    b.verdicts
        .iter()
        .zip(&p.verdicts)
        .map(|(bv, pv)| Figure {
            at: format!(
                "{}:{}:{}",
                path.display(),
                bv.expectation.line,
                bv.expectation.col
            ),
            check: bv.expectation.check.to_string(),
            baseline: bv.observed.clone(),
            baseline_holds: bv.passed,
            profile: pv.observed.clone(),
            profile_holds: pv.passed,
        })
        .collect()
}

/// Runs every subject with the defaults and with the profile, then the one-key-out runs of
/// those that changed. Returns the reports and notes on subjects left out.
pub fn run_subjects(
    trials: &[TrialSpec],
    keys: &[KeyReport],
    opts: &RunOptions,
    claims: bool,
    watch: &dyn Watch,
) -> (Vec<SubjectReport>, Vec<String>, SubjectRuns) {
    let began = std::time::Instant::now();
    let (subjects, notes) = subjects(trials, opts, claims);
    let used = used(keys);
    let mut specs = Vec::new();
    for s in &subjects {
        specs.push(spec(
            format!("{} [defaults]", s.spec_name),
            s.case.clone(),
            s.family,
        ));
        specs.push(spec(
            format!("{} [profile]", s.spec_name),
            Arc::new(with_profile(&s.case, &used, &s.roles, None)),
            s.family,
        ));
    }
    let runs = run_observed(&specs, opts.jobs, opts.include_slow, watch);
    let seconds = began.elapsed().as_secs_f64();
    // Each side under the subject's own name, so that a report lines the two up.
    let side = |k: usize| {
        let names = subjects.iter().map(|s| s.spec_name.as_str());
        RunResults::of_runs(names.zip(runs.iter().skip(k).step_by(2)), seconds)
    };
    let sides = SubjectRuns {
        defaults: side(0),
        profile: side(1),
    };
    let mut reports: Vec<SubjectReport> = subjects
        .iter()
        .zip(runs.chunks(2))
        .map(|(s, pair)| {
            let (base, prof) = (&pair[0].0, &pair[1].0);
            let baseline = summary(base);
            let profile = summary(prof);
            let change = compare(&baseline, &profile);
            SubjectReport {
                case: s.spec_name.clone(),
                name: s.case.name.clone(),
                kind: s.kind,
                roles: s.roles.clone(),
                change,
                changed: change.differs(),
                figures: figures(&s.case.path, base, prof),
                baseline,
                profile,
                ablation: Vec::new(),
                alone: Vec::new(),
                ablation_note: None,
            }
        })
        .collect();
    ablate(&subjects, &mut reports, &used, opts, watch);
    alone(&subjects, &mut reports, &used, opts, watch);
    (reports, notes, sides)
}

/// Every subject's two runs, each under the subject's name: with the defaults and with the
/// profile (the one-key-out runs are in the reports' ablation only).
pub struct SubjectRuns {
    pub defaults: RunResults,
    pub profile: RunResults,
}

/// For each changed subject, one run per key that changes a default, without that key.
fn ablate(
    subjects: &[Subject],
    reports: &mut [SubjectReport],
    used: &[&KeyReport],
    opts: &RunOptions,
    watch: &dyn Watch,
) {
    let mut specs = Vec::new();
    let mut owners = Vec::new();
    for (i, (s, r)) in subjects.iter().zip(reports.iter_mut()).enumerate() {
        if !r.changed {
            continue;
        }
        // Host-global keys reach only cases with conntrack (see `with_profile`).
        let candidates: Vec<&KeyReport> = used
            .iter()
            .copied()
            .filter(|k| k.changes_default)
            .filter(|k| k.class == KeyClass::Applied || !s.case.conntrack.is_empty())
            .collect();
        if candidates.len() < 2 {
            r.ablation_note = Some(match candidates.first() {
                Some(k) => format!(
                    "{} is the only key that changes a default: it decides",
                    k.key
                ),
                None => "no key of the profile changes a default".into(),
            });
            continue;
        }
        let take = candidates.len().min(opts.ablation_limit);
        if take < candidates.len() {
            r.ablation_note = Some(format!(
                "{} keys change a default; only the first {take} were left out one at a time (--ablation-limit)",
                candidates.len()
            ));
        }
        for k in &candidates[..take] {
            specs.push(spec(
                format!("{} [profile without {}]", s.spec_name, k.key),
                Arc::new(with_profile(&s.case, used, &s.roles, Some(&k.key))),
                s.family,
            ));
            owners.push((i, k.key.clone()));
        }
    }
    for (i, found) in judge_variants(reports, &specs, owners, opts, watch) {
        reports[i].ablation.push(found);
    }
}

/// Runs a profile's variants (`owners[n]` is `specs[n]`'s subject and key) and says which
/// side each takes on its subject's changed verdicts.
fn judge_variants(
    reports: &[SubjectReport],
    specs: &[TrialSpec],
    owners: Vec<(usize, String)>,
    opts: &RunOptions,
    watch: &dyn Watch,
) -> Vec<(usize, Ablation)> {
    if specs.is_empty() {
        return Vec::new();
    }
    let runs = run_observed(specs, opts.jobs, opts.include_slow, watch);
    owners
        .into_iter()
        .zip(runs.iter())
        .map(|((i, key), (run, _))| {
            let r = &reports[i];
            let result = side(&r.baseline.holds, &r.profile.holds, &summary(run).holds);
            (
                i,
                Ablation {
                    key,
                    result: result.into(),
                },
            )
        })
        .collect()
}

/// For each changed subject where no key decided (leaving out any one key kept the change),
/// one run per key the ablation left out, with only that key of the profile set.
fn alone(
    subjects: &[Subject],
    reports: &mut [SubjectReport],
    used: &[&KeyReport],
    opts: &RunOptions,
    watch: &dyn Watch,
) {
    let mut specs = Vec::new();
    let mut owners = Vec::new();
    for (i, (s, r)) in subjects.iter().zip(reports.iter()).enumerate() {
        if r.ablation.is_empty() || !decisive(r).is_empty() {
            continue;
        }
        for a in &r.ablation {
            let Some(k) = used.iter().find(|k| k.key == a.key) else {
                continue;
            };
            specs.push(spec(
                format!("{} [only {}]", s.spec_name, k.key),
                Arc::new(with_profile(&s.case, &[*k], &s.roles, None)),
                s.family,
            ));
            owners.push((i, k.key.clone()));
        }
    }
    for (i, found) in judge_variants(reports, &specs, owners, opts, watch) {
        reports[i].alone.push(found);
    }
}

/// The keys that each make a subject's whole change alone.
pub fn sufficient(r: &SubjectReport) -> Vec<&str> {
    r.alone
        .iter()
        .filter(|a| a.result == "profile")
        .map(|a| a.key.as_str())
        .collect()
}

/// Which side a one-key-out run takes on the expectations the profile changed: all back to
/// the defaults' verdicts (`defaults`: the key decides), all as with the profile
/// (`profile`), or some of each (`other`). Expectations the profile left alone are not
/// asked: one that is random under the profile (which port a reusing connect() lands on)
/// must not make a key look decisive.
fn side(baseline: &[bool], profile: &[bool], without: &[bool]) -> &'static str {
    if without.len() != baseline.len() || baseline.len() != profile.len() {
        return "undecided";
    }
    let changed: Vec<usize> = (0..baseline.len())
        .filter(|&i| baseline[i] != profile[i])
        .collect();
    if changed.is_empty() {
        // Only attempts or resets differed: no verdict to side with.
        return "undecided";
    }
    let back = changed
        .iter()
        .filter(|&&i| without[i] == baseline[i])
        .count();
    match back {
        0 => "profile",
        n if n == changed.len() => "defaults",
        _ => "other",
    }
}

/// The keys that alone undo a subject's change.
pub fn decisive(r: &SubjectReport) -> Vec<&str> {
    r.ablation
        .iter()
        .filter(|a| a.result == "defaults")
        .map(|a| a.key.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(failed: u64, resets: i64, holds: &[bool]) -> RunSummary {
        RunSummary {
            status: "passed".into(),
            attempts: 100,
            failed,
            resets,
            holds: holds.to_vec(),
        }
    }

    #[test]
    fn more_failures_or_resets_are_worse_fewer_are_better() {
        let base = run(10, 0, &[true, true]);
        assert_eq!(compare(&base, &run(10, 0, &[true, true])), Change::Same);
        // Counts that moved while every expectation held alike: not a change.
        assert_eq!(compare(&base, &run(11, 1, &[true, true])), Change::Same);
        assert_eq!(compare(&base, &run(40, 0, &[false, true])), Change::Worse);
        assert_eq!(compare(&base, &run(0, 0, &[false, true])), Change::Better);
        assert_eq!(compare(&base, &run(10, 5, &[true, false])), Change::Worse);
        assert_eq!(compare(&base, &run(10, 0, &[true, false])), Change::Changed);
        assert_eq!(compare(&base, &run(10, 0, &[])), Change::Undecided);
    }

    #[test]
    fn a_key_decides_when_leaving_it_out_restores_every_changed_verdict() {
        let (base, prof) = ([false, true, true], [true, false, true]);
        assert_eq!(side(&base, &prof, &[false, true, true]), "defaults");
        // The third expectation flipping is not the profile's change: ignored.
        assert_eq!(side(&base, &prof, &[false, true, false]), "defaults");
        assert_eq!(side(&base, &prof, &[true, false, false]), "profile");
        assert_eq!(side(&base, &prof, &[true, true, true]), "other");
        assert_eq!(side(&base, &prof, &[]), "undecided");
    }

    #[test]
    fn noise_is_not_a_change_of_direction() {
        // 2% of 5000 failed attempts is noise at a rate.
        let base = run(5000, 0, &[true]);
        assert_eq!(compare(&base, &run(5060, 0, &[false])), Change::Changed);
        assert_eq!(compare(&base, &run(5200, 0, &[false])), Change::Worse);
    }
}
