//! The host lock: flock(2) on a file under /run/twlab, exclusive while a host-global setting is
//! changed, shared while a case that uses conntrack runs.
//!
//! flock locks belong to an open file description, so every guard opens the file itself: two
//! threads of one process then exclude each other exactly like two processes do, and the kernel
//! drops a dead process's locks with its file descriptors.
//!
//! A second file, the gate, keeps a waiting exclusive locker from being starved by shared
//! lockers that keep overlapping: the exclusive side holds the gate while it waits, and a shared
//! locker passes the gate (shared, for an instant) before taking its shared lock.
//!
//! Waiting polls with LOCK_NB (5 ms growing to 100 ms) so that it can give up after a timeout
//! without signals or helper threads.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::HostError;

/// Where the lock files live. Not configurable: the settings are host-wide, so the lock is too.
pub(crate) const LOCK_DIR: &str = "/run/twlab";
const LOCK_FILE: &str = "host.lock";
const GATE_FILE: &str = "host.gate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

impl LockMode {
    fn name(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

/// A held lock; dropping it unlocks (explicitly, so that a copy of the descriptor in a child
/// that has forked but not yet exec'd cannot keep it) and closes the file.
#[derive(Debug)]
pub(crate) struct HostLock {
    file: File,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor this struct owns.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn lock_dir() -> Result<PathBuf, HostError> {
    let dir = PathBuf::from(LOCK_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|source| HostError::Io {
            action: "create the lock directory",
            path: dir.clone(),
            source,
        })?;
    Ok(dir)
}

fn open(path: &Path) -> Result<File, HostError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| HostError::Io {
            action: "open the lock file",
            path: path.to_path_buf(),
            source,
        })
}

/// One non-blocking attempt: Ok(true) when taken, Ok(false) when someone else holds it.
fn try_flock(file: &File, path: &Path, op: libc::c_int) -> Result<bool, HostError> {
    loop {
        // SAFETY: flock on a descriptor owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => {
                return Err(HostError::Io {
                    action: "lock",
                    path: path.to_path_buf(),
                    source: err,
                });
            }
        }
    }
}

fn unlock(file: &File) {
    // SAFETY: flock on a descriptor owned by `file`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// Takes the host lock in `mode`, waiting until `deadline` at most.
pub(crate) fn acquire(mode: LockMode, deadline: Instant) -> Result<HostLock, HostError> {
    let dir = lock_dir()?;
    let lock_path = dir.join(LOCK_FILE);
    let gate_path = dir.join(GATE_FILE);
    let file = open(&lock_path)?;
    let gate = open(&gate_path)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut gate_held = false;
    loop {
        match mode {
            LockMode::Exclusive => {
                if !gate_held {
                    gate_held = try_flock(&gate, &gate_path, libc::LOCK_EX)?;
                }
                if gate_held && try_flock(&file, &lock_path, libc::LOCK_EX)? {
                    unlock(&gate);
                    return Ok(HostLock { file });
                }
            }
            LockMode::Shared => {
                if try_flock(&gate, &gate_path, libc::LOCK_SH)? {
                    let got = try_flock(&file, &lock_path, libc::LOCK_SH)?;
                    unlock(&gate);
                    if got {
                        return Ok(HostLock { file });
                    }
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            if gate_held {
                unlock(&gate);
            }
            return Err(HostError::LockTimeout {
                mode: mode.name(),
                waited: now - started,
                holders: holders(&[&lock_path, &gate_path]),
                path: lock_path,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// "held by pid 1234 (twlab)..." from /proc/locks, best effort.
fn holders(paths: &[&Path]) -> String {
    let inodes: Vec<(u64, u64)> = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let table = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut found = Vec::new();
    for line in table.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" ("->" marks waiters; skip them).
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields.get(1) != Some(&"FLOCK") {
            continue;
        }
        let (Ok(pid), Some((dev, ino))) = (fields[4].parse::<u32>(), parse_dev_ino(fields[5]))
        else {
            continue;
        };
        if !inodes.contains(&(dev, ino)) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let entry = format!("pid {pid} ({}, {})", comm.trim(), fields[3].to_lowercase());
        if !found.contains(&entry) {
            found.push(entry);
        }
    }
    if found.is_empty() {
        "no holder found in /proc/locks".to_string()
    } else {
        format!("held by {}", found.join(", "))
    }
}

/// "00:1a:5678" (hex major:minor, decimal inode) to (st_dev, st_ino).
fn parse_dev_ino(field: &str) -> Option<(u64, u64)> {
    let mut parts = field.split(':');
    let major = u64::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
    let ino = parts.next()?.parse().ok()?;
    Some((libc::makedev(major as u32, minor as u32), ino))
}
