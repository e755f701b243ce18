//! The on-disk journal: who changed which host-global setting, and its value before.
//!
//! Written before anything changes and removed after everything is restored, so a journal found
//! at start-up whose owner is gone means settings were left changed. The owner is named by pid
//! *and* start time (field 22 of `/proc/<pid>/stat`), so a recycled pid is not taken for it, and
//! by boot id, so a journal kept across a reboot (when the settings went back to the boot
//! values anyway) is discarded rather than replayed.
//!
//! Writes are atomic: a temporary file in the same directory, fsync, rename, fsync of the
//! directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::HostError;

/// Default journal location; `TWLAB_HOST_JOURNAL` overrides it (tests use a temporary path).
pub(crate) const DEFAULT_JOURNAL: &str = "/run/twlab/host-journal.json";
pub(crate) const JOURNAL_ENV: &str = "TWLAB_HOST_JOURNAL";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub owner: Owner,
    pub changes: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub pid: u32,
    /// Clock ticks after boot at which the process started (/proc/<pid>/stat field 22).
    pub start_time: u64,
    /// /proc/sys/kernel/random/boot_id of the boot the change was made in.
    pub boot_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub key: String,
    pub original: String,
    pub applied: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// Gone, a zombie, or the pid now belongs to a later process.
    Dead,
    /// Written before the last reboot: the kernel has its boot values again.
    EarlierBoot,
}

/// `(state, start_time)` of a process from /proc/<pid>/stat.
fn stat_of(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some((state, start_time))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Owner {
    /// This process.
    pub fn current() -> Result<Owner, HostError> {
        let pid = std::process::id();
        let (_, start_time) = stat_of(pid).ok_or_else(|| HostError::Io {
            action: "read the start time from",
            path: PathBuf::from(format!("/proc/{pid}/stat")),
            source: std::io::Error::other("unexpected format"),
        })?;
        Ok(Owner {
            pid,
            start_time,
            boot_id: boot_id(),
        })
    }

    pub fn liveness(&self) -> Liveness {
        if self.boot_id != boot_id() {
            return Liveness::EarlierBoot;
        }
        match stat_of(self.pid) {
            Some((state, start)) if start == self.start_time && !matches!(state, 'Z' | 'X') => {
                Liveness::Alive
            }
            _ => Liveness::Dead,
        }
    }
}

pub(crate) fn journal_path_from_env() -> PathBuf {
    std::env::var_os(JOURNAL_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL))
}

/// The journal at `path`, if there is one.
pub(crate) fn read(path: &Path) -> Result<Option<Journal>, HostError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HostError::Io {
                action: "read the host journal",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| HostError::JournalCorrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), HostError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| HostError::Io {
            action: "fsync the journal's directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `journal` to `path` atomically and durably.
pub(crate) fn write(path: &Path, journal: &Journal) -> Result<(), HostError> {
    let dir = parent_of(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| HostError::Io {
            action: "create the journal's directory",
            path: dir.to_path_buf(),
            source,
        })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "host-journal.json".to_string());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| HostError::Io {
            action,
            path: p,
            source,
        }
    };
    let mut text = serde_json::to_string_pretty(journal).expect("a journal always serializes");
    text.push('\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io("create the temporary journal", &tmp))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write the temporary journal", &tmp))?;
    drop(file);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("move the journal into place at", path)(e));
    }
    sync_dir(dir)
}

/// Removes the journal at `path` (durably); a missing journal is fine.
pub(crate) fn remove(path: &Path) -> Result<(), HostError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HostError::Io {
                action: "remove the host journal",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    sync_dir(parent_of(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        assert_eq!(Owner::current().unwrap().liveness(), Liveness::Alive);
    }

    #[test]
    fn a_recycled_pid_is_not_the_owner() {
        let mut owner = Owner::current().unwrap();
        owner.start_time += 1;
        assert_eq!(owner.liveness(), Liveness::Dead);
    }

    #[test]
    fn a_missing_pid_is_dead() {
        let mut owner = Owner::current().unwrap();
        // Above the kernel's pid_max limit (2^22), so never a process.
        owner.pid = 1 << 23;
        assert_eq!(owner.liveness(), Liveness::Dead);
    }

    #[test]
    fn a_journal_from_another_boot_is_recognised() {
        let mut owner = Owner::current().unwrap();
        owner.boot_id = "00000000-0000-0000-0000-000000000000".into();
        assert_eq!(owner.liveness(), Liveness::EarlierBoot);
    }

    #[test]
    fn write_read_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/journal.json");
        assert_eq!(read(&path).unwrap(), None);
        let journal = Journal {
            owner: Owner::current().unwrap(),
            changes: vec![Entry {
                key: "net.netfilter.nf_conntrack_max".into(),
                original: "262144".into(),
                applied: "64".into(),
            }],
        };
        write(&path, &journal).unwrap();
        assert_eq!(read(&path).unwrap(), Some(journal));
        // Only the journal is left in the directory: the temporary file was renamed.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("journal.json")]);
        remove(&path).unwrap();
        assert_eq!(read(&path).unwrap(), None);
        remove(&path).unwrap();
    }

    #[test]
    fn a_corrupt_journal_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("by hand"), "{err}");
    }
}
