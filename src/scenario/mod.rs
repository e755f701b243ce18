//! The workload: listen, connect, close, send/recv, repeat... with real kernel sockets.

mod engine;
mod exec;
mod inject;
mod outcome;
mod program;
mod socket;
mod socket_steps;
pub mod workload;

pub use crate::vocab::{OK, Outcome, TIMEOUT, errno_by_name, is_outcome_name};
pub use engine::{Engine, EngineError, SocketSample};
pub use outcome::{StepRecord, outcome_counts};
pub use program::{Exit, ProgramRun, ProgramSpec, installed as program_installed};
