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
    pub duration: Duration,
    pub bytes: Option<u64>,
    /// Addresses and ports involved, for the evidence.
    pub detail: String,
}
