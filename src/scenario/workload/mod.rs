//! The workload step: many connections from one event loop, kept as aggregates and series.

mod driver;
mod run;
mod sampler;
mod series;

pub use run::{Context, Started, WorkloadError, run};
pub use series::{FirstError, Interval, NsInterval, Percentiles, WorkloadRun};
