//! Trials for libtest-mimic and `twlab run`: capability probes, skip reasons, reports.

pub mod claims;
pub mod doctor;
pub mod html;
pub mod junit;
pub mod picture;
mod pool;
mod probe;
pub mod progress;
mod report;
pub mod results;
pub mod rollout;
mod suite;
mod trial;

pub use pool::{Quiet, Watch, run_all, run_observed, run_watched};
pub use probe::{allowed_missing, namespaces_available, strict};
pub use report::{headline, host_change_lines, render};
pub use suite::{
    Executed, SLOW_REASON, TrialFacts, TrialKind, TrialResult, TrialSpec, artifacts_dir, collect,
    collect_with, execute, execute_detailed, execute_full, execute_with, include_slow_from_env,
    recover_host, with_pictures,
};
pub use trial::{TrialError, TrialReport, run_trial};
