//! What a step did: its outcome, how long it took, what it moved.

use std::time::Duration;

use crate::vocab::Outcome;

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub label: String,
    pub kind: &'static str,
    /// Source line of the step, for the evidence.
    pub line: u64,
    /// Iteration index inside the innermost `repeat`, from 1.
    pub iteration: Option<u32>,
    pub outcome: Outcome,
    /// When the step started, since the case's first step started (the packet tap's clock
    /// is aligned to it).
    pub started: Duration,
    pub duration: Duration,
    pub bytes: Option<u64>,
    /// Addresses and ports involved, for the evidence.
    pub detail: String,
    /// The socket's own address after the step, where it has one (getsockname after bind,
    /// listen or connect).
    pub local: Option<std::net::SocketAddr>,
    /// A value the step read back from the kernel: a socket option's (`sockopt`), or the
    /// bytes that rode on the SYN (`connect` with `syn_data`).
    pub value: Option<crate::case::OptionValue>,
}

/// Outcomes of these records by name with their counts (`ok x9, EADDRNOTAVAIL x1`); empty
/// when there are none.
pub fn outcome_counts<'a>(records: impl IntoIterator<Item = &'a StepRecord>) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in records {
        *counts.entry(r.outcome.name()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
