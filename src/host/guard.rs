//! Host-global settings: the only code in twlab that changes anything outside a case's own
//! namespaces.
//!
//! Some limits exist once per machine, not once per network namespace: `nf_conntrack_max` is one
//! number compared with every namespace's own conntrack count, and is read-only inside a child
//! namespace. A case that needs such a setting declares it ([`HostChange`]); [`apply`] then
//!
//! 1. refuses keys outside the allowlist ([`is_host_settable`](super::is_host_settable)) and
//!    threads outside the initial network namespace;
//! 2. takes the host lock exclusively (flock on /run/twlab/host.lock; it waits for every other
//!    twlab process and thread, up to [`HostConfig::lock_timeout`]);
//! 3. restores what a twlab process that died left behind (see [`recover`](super::recover));
//! 4. records each key's original value in the journal (/run/twlab/host-journal.json, or
//!    `TWLAB_HOST_JOURNAL`), durably, before changing anything;
//! 5. writes the values and checks they read back.
//!
//! The returned [`HostGuard`] restores the originals, removes the journal and releases the lock
//! when dropped, including during panic unwinding. SIGINT and SIGTERM restore through a handler
//! thread installed with the first guard, then end the process with the signal as before. After
//! a SIGKILL the journal stays, and [`recover`](super::recover) (called at every twlab start, and
//! by `apply`/`shared` before they proceed) restores it once its owner is gone.
//!
//! Cases that use conntrack but change nothing on the host take the lock shared ([`shared`]):
//! they run alongside each other but never while a host-global change is in force.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::active::{Active, NEXT_ID, active, restore_active, unpoisoned};
use super::change::HostChange;
use super::config::HostConfig;
use super::error::HostError;
use super::journal::{self, Entry, Journal, Liveness, Owner};
use super::keys;
use super::lock::{self, HostLock, LockMode};
use super::netns::InitialNetns;
use super::recover::{OnLiveOwner, recover_locked};
use super::signals;

/// Takes the exclusive host lock (waits for other twlab processes and threads), records the
/// original values in the journal before changing anything, applies the values from this thread
/// (which must be in the initial network namespace) and restores them when the guard is dropped
/// (also on panic unwinding, SIGINT and SIGTERM). An empty list takes the exclusive lock only.
pub fn apply(changes: &[HostChange]) -> Result<HostGuard, HostError> {
    HostConfig::from_env().apply(changes)
}

/// Shared host lock for cases that use conntrack but change no host setting: they never run
/// while a host-global change is in force, but may run alongside each other.
pub fn shared() -> Result<SharedGuard, HostError> {
    HostConfig::from_env().shared()
}

/// Set when a restore failed: the process keeps the exclusive lock (so nothing else runs against
/// the changed setting) and refuses further host work; the journal is recovered after it exits.
static POISON: Mutex<Option<(String, Vec<HostLock>)>> = Mutex::new(None);

fn check_poison() -> Result<(), HostError> {
    match &*unpoisoned(&POISON) {
        Some((message, _)) => Err(HostError::Poisoned {
            message: message.clone(),
        }),
        None => Ok(()),
    }
}

fn poison(message: String, lock: HostLock) {
    let mut poison = unpoisoned(&POISON);
    match &mut *poison {
        Some((_, kept)) => kept.push(lock),
        None => *poison = Some((message, vec![lock])),
    }
}

impl HostConfig {
    /// [`apply`] with this configuration.
    pub fn apply(&self, changes: &[HostChange]) -> Result<HostGuard, HostError> {
        check_poison()?;
        let changes = keys::validate(changes)?;
        let netns = Arc::new(InitialNetns::here()?);
        let lock = lock::acquire(LockMode::Exclusive, Instant::now() + self.lock_timeout)?;
        let recovered = recover_locked(&self.journal, &netns, OnLiveOwner::Refuse)?;

        let mut entries = Vec::with_capacity(changes.len());
        for change in &changes {
            entries.push(Entry {
                key: change.key.clone(),
                original: netns.read(&change.key)?,
                applied: change.value.clone(),
            });
        }
        if !entries.is_empty() {
            signals::install()?;
            let record = Journal {
                owner: Owner::current()?,
                changes: entries.clone(),
            };
            journal::write(&self.journal, &record)?;
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        active().insert(
            id,
            Active {
                journal: self.journal.clone(),
                changes: entries.clone(),
                netns: Arc::clone(&netns),
            },
        );
        let guard = HostGuard {
            id,
            lock: Some(lock),
            journal: self.journal.clone(),
            entries,
            recovered,
        };
        for entry in &guard.entries {
            if let Err(err) = netns.write(&entry.key, &entry.applied) {
                // Put back whatever was written already; a failed restore is the worse news.
                return Err(guard.restore().err().unwrap_or(err));
            }
        }
        Ok(guard)
    }

    /// [`shared`] with this configuration.
    pub fn shared(&self) -> Result<SharedGuard, HostError> {
        let deadline = Instant::now() + self.lock_timeout;
        let mut recovered = Vec::new();
        loop {
            check_poison()?;
            let lock = lock::acquire(LockMode::Shared, deadline)?;
            let Some(left) = journal::read(&self.journal)? else {
                return Ok(SharedGuard {
                    _lock: lock,
                    recovered,
                });
            };
            // A journal while nobody holds the lock exclusively: its owner died (or its restore
            // failed). Restore under the exclusive lock, then queue again.
            drop(lock);
            if left.owner.liveness() == Liveness::Alive {
                return Err(HostError::JournalBusy {
                    path: self.journal.clone(),
                    pid: left.owner.pid,
                });
            }
            let netns = InitialNetns::find()?;
            let _exclusive = lock::acquire(LockMode::Exclusive, deadline)?;
            recovered.extend(recover_locked(&self.journal, &netns, OnLiveOwner::Refuse)?);
        }
    }
}

/// Host-global settings in force; dropping it (or [`HostGuard::restore`]) puts them back,
/// removes the journal and releases the exclusive host lock.
pub struct HostGuard {
    id: u64,
    lock: Option<HostLock>,
    journal: PathBuf,
    entries: Vec<Entry>,
    recovered: Vec<String>,
}

impl std::fmt::Debug for HostGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostGuard")
            .field("changes", &self.changes())
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl HostGuard {
    /// One line per key: `"net.netfilter.nf_conntrack_max 262144 -> 64"`.
    pub fn changes(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| format!("{} {} -> {}", e.key, e.original, e.applied))
            .collect()
    }

    /// What `apply` restored first, left behind by a twlab process that died.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }

    /// Restores now and reports failure (dropping the guard does the same, printing failure).
    pub fn restore(mut self) -> Result<(), HostError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), HostError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        let mut active = active();
        let result = match active.get(&self.id) {
            Some(a) => restore_active(a),
            // The signal handler restored it; the process is ending.
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                active.remove(&self.id);
                drop(active);
                // The journal is gone before the lock is released: the next holder finds none.
                drop(lock);
                Ok(())
            }
            Err(failures) => {
                drop(active);
                let err = HostError::Restore {
                    failures,
                    journal: self.journal.clone(),
                };
                poison(err.to_string(), lock);
                Err(err)
            }
        }
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Err(err) = self.finish() {
            eprintln!("twlab: {err}");
        }
    }
}

/// The shared host lock; dropping it releases it.
#[derive(Debug)]
pub struct SharedGuard {
    _lock: HostLock,
    recovered: Vec<String>,
}

impl SharedGuard {
    /// What had to be restored first, left behind by a twlab process that died.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }
}
