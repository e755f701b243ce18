//! Judging a case's checks against what the kernel did: verdicts that show their evidence.

mod evaluate;
mod packets;
mod workload;

pub use crate::case::{Check, Expectation, OutputStream, SocketFilter};
pub use evaluate::{Observations, Verdict, evaluate, matches};
pub use packets::Isns;
