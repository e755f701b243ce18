//! Machine-readable results of a run (`twlab run --json FILE`): what the kernel matrix reads
//! back from each guest, and what a CI job keeps as an artefact.

use serde::{Deserialize, Serialize};

use super::suite::{Executed, TrialFacts, TrialResult};
use crate::observe::kernel_release;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    /// Failed as an `xfail:` mark said it would; counts as passed.
    Xfail,
    Failed,
    Ignored,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialOutcome {
    pub name: String,
    pub status: Status,
    /// Why it was ignored (`ignored`) or expected to fail (`xfail`: the marks' reasons), or
    /// nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each failed expectation with its observed value, or the error that stopped the trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Each expectation that failed as its `xfail:` mark said, with the mark's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xfails: Vec<String>,
    /// `netem` or `substitute` when the case impairs its links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Workloads with their series (`workload` steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<crate::scenario::workload::WorkloadRun>,
    /// The trial drawn for the HTML report (`--html`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<Box<super::picture::Picture>>,
    pub seconds: f64,
}

impl TrialOutcome {
    pub fn new(name: &str, result: &TrialResult, facts: TrialFacts, seconds: f64) -> Self {
        let (status, reason) = match result {
            TrialResult::Passed(_) => (Status::Passed, None),
            TrialResult::Xfail(_) => (Status::Xfail, Some(facts.xfail_reasons.join("; "))),
            TrialResult::Failed(_) => (Status::Failed, None),
            TrialResult::Ignored(reason) => (Status::Ignored, Some(reason.clone())),
        };
        TrialOutcome {
            name: name.to_string(),
            status,
            reason,
            failures: facts.failures,
            xfails: facts.xfails,
            backend: facts.backend,
            workloads: facts.workloads,
            picture: facts.picture,
            seconds,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    /// `uname -r` of the kernel the trials ran on.
    pub kernel: String,
    pub twlab: String,
    pub trials: Vec<TrialOutcome>,
    pub seconds: f64,
}

impl RunResults {
    pub fn new(trials: Vec<TrialOutcome>, seconds: f64) -> Self {
        RunResults {
            kernel: kernel_release(),
            twlab: env!("CARGO_PKG_VERSION").to_string(),
            trials,
            seconds,
        }
    }

    /// The results of trials as the pool ran them: each trial's name with its run.
    pub fn of_runs<'a>(
        runs: impl IntoIterator<Item = (&'a str, &'a (Executed, f64))>,
        seconds: f64,
    ) -> Self {
        let outcomes = runs
            .into_iter()
            .map(|(name, (e, s))| TrialOutcome::new(name, &e.result, e.facts.clone(), *s))
            .collect();
        RunResults::new(outcomes, seconds)
    }

    pub fn failed(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| t.status == Status::Failed)
            .count()
    }
}
