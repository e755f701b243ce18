//! One rollout: read the profiles (or the host's values), classify each key, run the
//! workloads and claims with the defaults and with the profile, and gather the report.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::netns::NetnsError;
use crate::profile::{Profile, parse_file};
use crate::vocab::SourceError;

use super::super::pool::{Quiet, Watch};
use super::super::suite::{collect, with_pictures};
use super::keys::{FROM_HOST, KeyReport, Overridden, classify, overridden, profile_from_host};
use super::workloads::{RunOptions, SubjectKind, SubjectReport, SubjectRuns, run_subjects};

/// What `--fail-on` gates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Any workload or claim judged differently with the profile.
    Changed,
    /// A workload or claim with more failed attempts or resets with the profile.
    Worse,
}

pub struct RolloutOptions {
    pub profiles: Vec<PathBuf>,
    /// Take the host's `net.*` values that differ from a new namespace's as the profile.
    pub from_host: bool,
    /// Set the profile's host-global keys (through `host/`, restored after each run).
    pub host: bool,
    pub roles: Option<Vec<String>>,
    /// Where workloads and claims are found.
    pub cases: Vec<PathBuf>,
    /// Only classify the keys; run nothing.
    pub keys_only: bool,
    pub claims: bool,
    pub jobs: usize,
    pub include_slow: bool,
    pub ablation_limit: usize,
    /// Draw each claim run (its links tapped, its states followed) for `--html`.
    pub pictures: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutReport {
    pub release: String,
    /// The profile files in order, or the host's values.
    pub profiles: Vec<String>,
    /// Whether host-global keys were set (`--host`).
    pub host: bool,
    pub keys: Vec<KeyReport>,
    pub overridden: Vec<Overridden>,
    /// Lines that are not assignments and files that cannot be read, as `file:line:col: ...`.
    pub problems: Vec<String>,
    pub workloads: Vec<SubjectReport>,
    pub claims: Vec<SubjectReport>,
    /// Subjects left out, and why.
    pub notes: Vec<String>,
}

impl RolloutReport {
    /// Whether the gate `on` fails: a subject judged differently, or one that got worse.
    pub fn fails(&self, on: FailOn) -> bool {
        self.workloads.iter().chain(&self.claims).any(|s| match on {
            FailOn::Changed => s.changed,
            FailOn::Worse => s.change == super::Change::Worse,
        })
    }
}

pub fn rollout(opts: &RolloutOptions) -> Result<RolloutReport, NetnsError> {
    rollout_watched(opts, &Quiet).map(|(report, _)| report)
}

/// `rollout`, watched, with the subjects' runs on both sides (none with `keys_only`).
pub fn rollout_watched(
    opts: &RolloutOptions,
    watch: &dyn Watch,
) -> Result<(RolloutReport, Option<SubjectRuns>), NetnsError> {
    let mut runs = None;
    let mut profile = Profile::default();
    let mut names = Vec::new();
    if opts.from_host {
        profile = profile_from_host()?;
        names.push(FROM_HOST.to_string());
    }
    for path in &opts.profiles {
        let (settings, problems) = parse_file(path);
        profile.extend(settings, problems);
        names.push(path.display().to_string());
    }
    let keys = classify(&profile, opts.host)?;
    let (mut workloads, mut claims, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    if !opts.keys_only {
        let mut trials = collect(&opts.cases);
        if opts.pictures {
            trials = with_pictures(trials);
        }
        let run = RunOptions {
            jobs: opts.jobs,
            include_slow: opts.include_slow,
            roles: opts.roles.clone(),
            ablation_limit: opts.ablation_limit,
        };
        let (subjects, left_out, sides) = run_subjects(&trials, &keys, &run, opts.claims, watch);
        notes = left_out;
        runs = Some(sides);
        for s in subjects {
            match s.kind {
                SubjectKind::Workload => workloads.push(s),
                SubjectKind::Claim => claims.push(s),
            }
        }
        if workloads.is_empty() {
            notes.push(format!(
                "no workload (a case with `profile:`) under {}",
                opts.cases
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let report = RolloutReport {
        release: crate::kernel::kernel_release(),
        profiles: names,
        host: opts.host,
        keys,
        overridden: overridden(&profile),
        problems: profile
            .problems
            .iter()
            .map(SourceError::to_string)
            .collect(),
        workloads,
        claims,
        notes,
    };
    Ok((report, runs))
}
