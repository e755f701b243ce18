//! A case compiled for one trial: its steps with every name and address resolved for the
//! trial's family, split into control steps (the engine's own) and operations on sockets and
//! programs, so that the engine matches each exhaustively and resolves nothing at run time.

mod compile;
mod step;

pub use compile::{PlanError, compile};
pub use step::{Control, Op, OpKind, PlanStep, WorkloadPlan};
