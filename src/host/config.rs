//! Where the host journal lives and how long to wait for the host lock.

use std::path::PathBuf;
use std::time::Duration;

use super::journal;

/// Where the journal is and how long to wait for the lock. `host::apply`, `host::shared` and
/// `host::recover` use [`HostConfig::from_env`]; tests use their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The journal file; `/run/twlab/host-journal.json` unless `TWLAB_HOST_JOURNAL` is set.
    pub journal: PathBuf,
    /// How long to wait for the host lock before giving up with `HostError::LockTimeout`.
    pub lock_timeout: Duration,
}

/// Default wait for the host lock: long enough for a queue of conntrack cases.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

impl HostConfig {
    pub fn from_env() -> HostConfig {
        HostConfig {
            journal: journal::journal_path_from_env(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig::from_env()
    }
}
