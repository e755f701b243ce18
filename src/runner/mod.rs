//! Trials for libtest-mimic and `twlab run`: capability probes, skip reasons, reports.

pub mod doctor;
mod probe;
mod report;
mod suite;
mod trial;

pub use probe::{allowed_missing, namespaces_available, strict};
pub use report::render;
pub use suite::{TrialKind, TrialResult, TrialSpec, collect, execute, recover_host};
pub use trial::{TrialError, TrialReport, run_trial};
