//! Restoring host-global settings left changed by a twlab process that died (SIGKILL, abort,
//! power cut of the process but not of the machine).

use std::path::Path;
use std::time::Instant;

use super::active::restore_entry;
use super::config::HostConfig;
use super::error::HostError;
use super::journal::{self, Liveness};
use super::lock::{self, LockMode};
use super::netns::InitialNetns;

/// At start-up (every twlab process, every test binary): if a journal left by a twlab process
/// that died is found, restores its original values and returns one message per key, e.g.
/// "restored net.netfilter.nf_conntrack_max to 262144 (left at 64 by twlab pid 1234, which
/// died)". A journal whose owner is still running is left alone.
pub fn recover() -> Result<Vec<String>, HostError> {
    HostConfig::from_env().recover()
}

impl HostConfig {
    /// [`recover`] with this configuration.
    pub fn recover(&self) -> Result<Vec<String>, HostError> {
        // The common case costs one failed open and takes no lock.
        match journal::read(&self.journal)? {
            None => return Ok(Vec::new()),
            Some(left) if left.owner.liveness() == Liveness::Alive => return Ok(Vec::new()),
            Some(_) => {}
        }
        let netns = InitialNetns::find()?;
        let _lock = lock::acquire(LockMode::Exclusive, Instant::now() + self.lock_timeout)?;
        // Read again under the lock: another process may have recovered it meanwhile.
        recover_locked(&self.journal, &netns, OnLiveOwner::Leave)
    }
}

/// What to do with a journal whose owner still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLiveOwner {
    /// recover(): not ours to touch.
    Leave,
    /// apply()/shared() holding the lock: the owner should hold it, so its restore failed.
    Refuse,
}

/// Restores the journal at `path` if its owner is gone. The caller holds the exclusive lock.
pub(crate) fn recover_locked(
    path: &Path,
    netns: &InitialNetns,
    on_live: OnLiveOwner,
) -> Result<Vec<String>, HostError> {
    let Some(left) = journal::read(path)? else {
        return Ok(Vec::new());
    };
    let pid = left.owner.pid;
    match left.owner.liveness() {
        Liveness::Alive => match on_live {
            OnLiveOwner::Leave => Ok(Vec::new()),
            OnLiveOwner::Refuse => Err(HostError::JournalBusy {
                path: path.to_path_buf(),
                pid,
            }),
        },
        Liveness::EarlierBoot => {
            journal::remove(path)?;
            Ok(vec![format!(
                "discarded {}: twlab pid {pid} wrote it before the machine last booted, and \
                 host settings do not survive a reboot; nothing restored",
                path.display()
            )])
        }
        Liveness::Dead => {
            let mut messages = Vec::new();
            let mut failures = Vec::new();
            for entry in left.changes.iter().rev() {
                let (key, original, applied) = (&entry.key, &entry.original, &entry.applied);
                match restore_entry(netns, entry) {
                    Ok(None) => messages.push(format!(
                        "{key} was already {original} (journal of twlab pid {pid}, which died)"
                    )),
                    Ok(Some(found)) if found == *applied => messages.push(format!(
                        "restored {key} to {original} (left at {found} by twlab pid {pid}, which died)"
                    )),
                    Ok(Some(found)) => messages.push(format!(
                        "restored {key} to {original} (found {found}; twlab pid {pid}, which died, \
                         had set {applied})"
                    )),
                    Err(err) => failures.push(err.to_string()),
                }
            }
            if !failures.is_empty() {
                return Err(HostError::Restore {
                    failures: failures.join("; "),
                    journal: path.to_path_buf(),
                });
            }
            journal::remove(path)?;
            messages.reverse();
            Ok(messages)
        }
    }
}
