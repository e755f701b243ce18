//! The expectation language and verdicts that show their evidence.

mod check;
mod evaluate;

pub use check::{Check, Expectation, OutputStream, SocketFilter};
pub use evaluate::{Observations, Verdict, evaluate, matches};
