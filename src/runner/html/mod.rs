//! The HTML report: one self-contained file (inline CSS, script and the results as JSON;
//! nothing fetched) that lists every trial, failures first, and draws each captured close as
//! a ladder with the sides' TCP states, and workloads' series as plots.

mod page;

pub use page::{Section, render};
