//! The host-global changes in force in this process: the registry the guard's restore and the
//! signal handler share, and restoring one entry or one change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::HostError;
use super::journal::{self, Entry};
use super::netns::InitialNetns;

/// A change in force in this process, for the guard's restore and the signal handler.
#[derive(Debug)]
pub(crate) struct Active {
    pub journal: PathBuf,
    pub changes: Vec<Entry>,
    pub netns: Arc<InitialNetns>,
}

static ACTIVE: Mutex<BTreeMap<u64, Active>> = Mutex::new(BTreeMap::new());
pub(crate) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn unpoisoned<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The changes in force in this process. Holding this blocks every restore and new change.
pub(crate) fn active() -> MutexGuard<'static, BTreeMap<u64, Active>> {
    unpoisoned(&ACTIVE)
}

/// Puts `entry.key` back to `entry.original`. Returns the value found if it had to be written,
/// `None` if it already had its original value.
pub(crate) fn restore_entry(
    netns: &InitialNetns,
    entry: &Entry,
) -> Result<Option<String>, HostError> {
    let found = netns.read(&entry.key)?;
    if found == entry.original {
        return Ok(None);
    }
    netns.write(&entry.key, &entry.original)?;
    Ok(Some(found))
}

/// Restores every entry of `active` (last applied first) and removes its journal; returns the
/// failures, if any, with the journal kept.
pub(crate) fn restore_active(active: &Active) -> Result<(), String> {
    let failures: Vec<String> = active
        .changes
        .iter()
        .rev()
        .filter_map(|e| restore_entry(&active.netns, e).err())
        .map(|e| e.to_string())
        .collect();
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    if active.changes.is_empty() {
        return Ok(());
    }
    journal::remove(&active.journal).map_err(|e| e.to_string())
}
