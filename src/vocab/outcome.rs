//! A step's outcome: its syscall result by errno name, `ok`, `TIMEOUT`, a program's exit.

use std::fmt;

use nix::errno::Errno;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Errno(Errno),
    /// The harness stopped waiting (connect, accept or recv timeout from the case); distinct
    /// from the kernel's own ETIMEDOUT.
    Timeout,
    /// A program run by an `exec` step exited with this non-zero status (`EXIT_<n>`).
    Exit(i32),
    /// A program run by an `exec` step was killed by this signal (`SIGKILL`...).
    Signal(String),
    /// Not attempted, with why (its connection was never established, say).
    Skipped(String),
}

pub const OK: &str = "ok";
pub const TIMEOUT: &str = "TIMEOUT";
/// A workload's open-loop attempt that found `max_in_flight` connections open: not made.
pub const LIMIT: &str = "LIMIT";
/// A workload's connection whose peer closed before the exchange was complete.
pub const EARLY_EOF: &str = "EOF";

impl Outcome {
    pub fn name(&self) -> String {
        match self {
            Outcome::Ok => OK.into(),
            Outcome::Errno(e) => format!("{e:?}"),
            Outcome::Timeout => TIMEOUT.into(),
            Outcome::Exit(c) => format!("EXIT_{c}"),
            Outcome::Signal(s) => s.clone(),
            Outcome::Skipped(_) => "skipped".into(),
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Errno(_) | Outcome::Timeout | Outcome::Exit(_) | Outcome::Signal(_)
        )
    }

    pub fn is_attempt(&self) -> bool {
        !matches!(self, Outcome::Skipped(_))
    }
}

impl From<Errno> for Outcome {
    fn from(e: Errno) -> Self {
        Outcome::Errno(e)
    }
}

impl<T> From<nix::Result<T>> for Outcome {
    fn from(r: nix::Result<T>) -> Self {
        match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Errno(e),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Skipped(why) => write!(f, "skipped ({why})"),
            other => f.write_str(&other.name()),
        }
    }
}

/// Whether `name` is an outcome an expectation may name: `ok`, `TIMEOUT`, an errno name, or
/// for programs `EXIT_<n>` (a non-zero exit status) or a signal name (`SIGKILL`).
pub fn is_outcome_name(name: &str) -> bool {
    name == OK
        || name == TIMEOUT
        || errno_by_name(name).is_some()
        || name
            .strip_prefix("EXIT_")
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| n > 0)
        || name.parse::<nix::sys::signal::Signal>().is_ok()
}

pub fn errno_by_name(name: &str) -> Option<Errno> {
    (1..200)
        .map(Errno::from_raw)
        .find(|e| *e != Errno::UnknownErrno && format!("{e:?}") == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_round_trip() {
        assert_eq!(errno_by_name("EADDRNOTAVAIL"), Some(Errno::EADDRNOTAVAIL));
        assert!(is_outcome_name("ECONNRESET"));
        assert!(is_outcome_name("TIMEOUT"));
        assert!(!is_outcome_name("EFOO"));
        assert!(is_outcome_name("EXIT_7"));
        assert!(!is_outcome_name("EXIT_0"));
        assert!(is_outcome_name("SIGKILL"));
        assert_eq!(Outcome::Exit(7).name(), "EXIT_7");
    }
}
