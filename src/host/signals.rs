//! SIGINT and SIGTERM while host-global settings are changed: restore them, then end the process
//! the way the signal would have (so the exit status still says "killed by SIGTERM").
//!
//! Installed once, lazily, by the first change. A signal-hook iterator runs on its own thread, so
//! restoring is ordinary code (files, locks), not async-signal-safe code in a handler. A signal
//! the process ignored when the first change was made (e.g. SIGINT of a background job) stays
//! ignored.

use std::sync::OnceLock;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::active::{active, restore_active};
use super::error::HostError;

static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: a query only (no new action); `old` is a plain C struct the kernel fills in.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

pub(crate) fn install() -> Result<(), HostError> {
    INSTALLED
        .get_or_init(|| {
            let wanted: Vec<libc::c_int> = [SIGINT, SIGTERM]
                .into_iter()
                .filter(|s| !ignored(*s))
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            let mut signals = Signals::new(&wanted).map_err(|e| e.to_string())?;
            std::thread::Builder::new()
                .name("twlab-host-signals".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        restore_and_die(signal);
                    }
                })
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| HostError::Signals { message })
}

fn restore_and_die(signal: libc::c_int) -> ! {
    let name = signal_hook::low_level::signal_name(signal).unwrap_or("signal");
    // Held until the process ends: no guard can restore twice and no new change can start.
    let active = active();
    for change in active.values() {
        match restore_active(change) {
            Ok(()) => {
                for entry in &change.changes {
                    eprintln!(
                        "twlab: {name}: restored {} to {}",
                        entry.key, entry.original
                    );
                }
            }
            Err(failures) => eprintln!(
                "twlab: {name}: restoring host settings failed: {failures}; the journal {} is \
                 kept for twlab::host::recover",
                change.journal.display()
            ),
        }
    }
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::process::exit(128 + signal)
}
