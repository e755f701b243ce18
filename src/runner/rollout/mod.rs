//! `twlab rollout`: what a sysctl profile is on the running kernel (each key classified) and
//! what it changes for traffic (workloads and claims run with the defaults and with it).

mod keys;
mod render;
mod run;
mod workloads;

pub use keys::{FROM_HOST, KeyReport, Overridden, profile_from_host, same_value};
pub use run::{FailOn, RolloutOptions, RolloutReport, rollout, rollout_watched};
pub use workloads::{
    Ablation, Change, Figure, RunSummary, SubjectKind, SubjectReport, SubjectRuns, decisive,
    sufficient,
};
