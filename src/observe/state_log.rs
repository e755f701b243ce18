//! The TCP state of each connection the taps see, polled over sock_diag while a case runs: the
//! states drawn along each namespace's lane of the HTML report's ladder.
//!
//! A dump walks the whole established hash of the namespace (the host's, 262,144 buckets
//! here, about 1 ms), so the poller asks for each 4-tuple by itself instead (one hash lookup),
//! and only for the 4-tuples the taps have seen. A state changes when a segment arrives or
//! leaves, or when a timer fires; so a connection is polled soon after each of its segments
//! (250 µs, then backing off to 50 ms), which sees what a segment changed within a
//! millisecond and what a timer changed within 50 ms. A change that is undone between two
//! polls (FIN_WAIT1 on a link without delay lasts microseconds) is not seen: what the log
//! holds is what sock_diag answered, when it answered.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::packets::TapWatch;
use super::sockets::{SockDiag, SockDiagError};
use crate::vocab::TcpState;

/// Connections followed at most per trial; a ladder of more is not read connection by
/// connection, and a load shows its series instead.
pub const MAX_TRACKED: usize = 64;

const FIRST_POLL: Duration = Duration::from_micros(250);
const SLOWEST_POLL: Duration = Duration::from_millis(50);

/// One answer of sock_diag that differed from the one before for this socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// Since the log started.
    pub at: Duration,
    pub ns: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `None`: the socket is gone.
    pub state: Option<TcpState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateLogError {
    #[error("failed to start the socket-state poller: {0}")]
    Spawn(std::io::Error),
    #[error("the socket-state poller failed: {0}")]
    Diag(#[from] SockDiagError),
    #[error("the socket-state poller panicked")]
    Panicked,
}

/// One namespace the poller asks: its sock_diag socket (opened on the namespace's thread) and
/// the addresses that are its own.
pub struct StateLogSide {
    pub ns: String,
    pub diag: SockDiag,
    pub addrs: Vec<IpAddr>,
}

/// What the poller keeps per socket it follows.
struct Followed {
    last: Option<Option<TcpState>>,
    due: Instant,
    every: Duration,
}

/// A running poller; [`StateLog::stop`] ends it and hands over the changes.
pub struct StateLog {
    start: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<StateOutcome, SockDiagError>>>,
}

/// The changes, and how many connections were not followed because of [`MAX_TRACKED`].
#[derive(Debug, Clone, Default)]
pub struct StateOutcome {
    pub changes: Vec<StateChange>,
    pub untracked: usize,
}

impl StateLog {
    pub fn start(sides: Vec<StateLogSide>, taps: Vec<TapWatch>) -> Result<StateLog, StateLogError> {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("state-log".into())
            .spawn(move || poll(&sides, &taps, start, &flag))
            .map_err(StateLogError::Spawn)?;
        Ok(StateLog {
            start,
            stop,
            thread: Some(thread),
        })
    }

    /// The instant the changes' `at` counts from.
    pub fn clock_start(&self) -> Instant {
        self.start
    }

    pub fn stop(mut self) -> Result<StateOutcome, StateLogError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(out)) => Ok(out?),
            Some(Err(_)) => Err(StateLogError::Panicked),
            None => Ok(StateOutcome::default()),
        }
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Key = (usize, SocketAddr, SocketAddr);

fn poll(
    sides: &[StateLogSide],
    taps: &[TapWatch],
    start: Instant,
    stop: &AtomicBool,
) -> Result<StateOutcome, SockDiagError> {
    let mut seen = vec![0usize; taps.len()];
    let mut followed: BTreeMap<Key, Followed> = BTreeMap::new();
    // Connections (unordered address pairs) followed, and those left out past the limit.
    let mut pairs: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    let mut untracked: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    let mut out = StateOutcome::default();
    // One last round after the stop, so the final states are in the log.
    let mut last_round = false;
    loop {
        if stop.load(Ordering::Acquire) {
            last_round = true;
        }
        let now = Instant::now();
        for (t, tap) in taps.iter().enumerate() {
            let (new, n) = tap.since(seen[t]);
            seen[t] = n;
            for p in new {
                let pair = if p.src < p.dst {
                    (p.src, p.dst)
                } else {
                    (p.dst, p.src)
                };
                if !pairs.contains(&pair) {
                    if pairs.len() >= MAX_TRACKED {
                        if !untracked.contains(&pair) {
                            untracked.push(pair);
                        }
                        continue;
                    }
                    pairs.push(pair);
                }
                for (s, side) in sides.iter().enumerate() {
                    for (local, remote) in [(p.src, p.dst), (p.dst, p.src)] {
                        if side.addrs.contains(&local.ip()) {
                            let f = followed.entry((s, local, remote)).or_insert(Followed {
                                last: None,
                                due: now,
                                every: FIRST_POLL,
                            });
                            f.every = FIRST_POLL;
                            f.due = f.due.min(now + FIRST_POLL);
                        }
                    }
                }
            }
        }
        for (&(s, local, remote), f) in followed.iter_mut() {
            if f.due > now && !last_round {
                continue;
            }
            // Without a connection on the 4-tuple the kernel answers with the listener that
            // would take it: not this connection's state.
            let state = sides[s]
                .diag
                .lookup(local, remote)?
                .filter(|row| row.remote == remote)
                .map(|row| row.state);
            // The last round says what each socket is in at the end even when it did not
            // change: a reconnect on the same 4-tuple may have passed between two polls
            // unseen (TIME_WAIT, then TIME_WAIT again), and the end state belongs to the
            // last connection, not to the one before.
            let changed = f.last != Some(state);
            // A socket never seen is not a change; one that was there and is not is.
            let worth = (changed && (f.last.is_some() || state.is_some()))
                || (last_round && state.is_some());
            if worth {
                out.changes.push(StateChange {
                    at: start.elapsed(),
                    ns: sides[s].ns.clone(),
                    local,
                    remote,
                    state,
                });
            }
            if changed {
                f.last = Some(state);
                f.every = FIRST_POLL;
            } else {
                f.every = (f.every * 2).min(SLOWEST_POLL);
            }
            f.due = Instant::now() + f.every;
        }
        if last_round {
            out.untracked = untracked.len();
            return Ok(out);
        }
        let next = followed
            .values()
            .map(|f| f.due)
            .min()
            .unwrap_or(now + Duration::from_millis(1))
            .min(now + Duration::from_millis(1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
