//! One trial: one case over one address family, from building its namespaces to verdicts.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::case::{Case, Family, SourceError};
use crate::expect::{Observations, Verdict, evaluate};
use crate::netns::{Lab, LabError, NetnsError, sysctl};
use crate::observe::{CounterError, Counters};
use crate::scenario::{Engine, EngineError};

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// A sysctl the kernel refused inside the case's namespace: bad input, shown at its place.
    #[error("{0}")]
    Sysctl(SourceError),
    #[error("failed to build the case's namespaces: {0}")]
    Lab(#[from] LabError),
    #[error("failed to run the steps: {0}")]
    Engine(#[from] EngineError),
    #[error("failed to read counters: {0}")]
    Counters(#[from] CounterError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

#[derive(Debug)]
pub struct TrialReport {
    pub family: Family,
    pub verdicts: Vec<Verdict>,
    pub observations: Observations,
}

impl TrialReport {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

fn read_counters(lab: &Lab) -> Result<BTreeMap<String, Counters>, TrialError> {
    let mut out = BTreeMap::new();
    for ns in lab.namespaces() {
        out.insert(ns.name().to_string(), ns.run(Counters::read_current)??);
    }
    Ok(out)
}

pub fn run_trial(case: &Case, family: Family) -> Result<TrialReport, TrialError> {
    let lab = Lab::build(&case.topology)?;
    for s in &case.sysctls {
        let (key, value) = (s.key.clone(), s.value.clone());
        lab.ns(&s.ns)
            .run(move || sysctl::apply(&key, &value))?
            .map_err(|issue| {
                let at = match issue {
                    sysctl::SysctlIssue::Rejected { .. }
                    | sysctl::SysctlIssue::NotStored { .. } => s.value_at,
                    _ => s.key_at,
                };
                TrialError::Sysctl(SourceError::at(
                    &case.path,
                    &case.source,
                    at,
                    format!("in namespace `{}`: {issue}", s.ns),
                ))
            })?;
    }
    let before = read_counters(&lab)?;
    let mut engine = Engine::new(&lab, &case.topology, family)?;
    let started = Instant::now();
    engine.run(&case.steps)?;
    let run = started.elapsed();
    let end = engine.sample("end")?;
    let after = read_counters(&lab)?;
    let mut samples = std::mem::take(&mut engine.samples);
    samples.push(end);
    let steps = std::mem::take(&mut engine.records);
    drop(engine);
    let setup = lab.setup_time;
    drop(lab);
    let counters = before
        .iter()
        .filter_map(|(ns, b)| after.get(ns).map(|a| (ns.clone(), Counters::delta(b, a))))
        .collect();
    let observations = Observations {
        steps,
        samples,
        counters,
        setup,
        run,
    };
    Ok(TrialReport {
        family,
        verdicts: evaluate(&case.expectations, &observations),
        observations,
    })
}
