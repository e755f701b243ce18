//! What can go wrong when twlab touches the host, each message saying what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "`{key}` may not be changed on the host: the only host-global settings twlab changes are \
         {allowed}; set per-namespace sysctls in the case's own namespaces instead"
    )]
    NotAllowed { key: String, allowed: String },
    #[error("`{key}` is declared twice among the host-global settings; declare it once")]
    Duplicate { key: String },
    #[error("{value:?} is not a valid value for `{key}`: expected a non-negative decimal integer")]
    BadValue { key: String, value: String },
    #[error(
        "host-global settings must be changed from a thread in the initial network namespace, \
         but this thread is in {thread} and the initial one is {initial}; call \
         twlab::host::apply from the runner's own thread, not from a namespace's thread"
    )]
    NotInitialNamespace { thread: String, initial: String },
    #[error(
        "cannot {action} {path}: {source} (changing host-global settings needs root and a \
         writable /run/twlab)"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "waited {waited:?} for the {mode} host lock {path} without getting it ({holders}): another \
         twlab process or thread is running a case that changes a host-global setting \
         (exclusive) or uses conntrack (shared); let it finish, or find it with \
         `grep FLOCK /proc/locks` or `fuser {path}`"
    )]
    LockTimeout {
        mode: &'static str,
        path: PathBuf,
        waited: Duration,
        holders: String,
    },
    #[error(
        "the host journal {path} cannot be read ({message}); it lists host settings twlab \
         changed and did not restore: set each key back to its `original` value by hand, then \
         delete the file"
    )]
    JournalCorrupt { path: PathBuf, message: String },
    #[error(
        "the host journal {path} belongs to twlab pid {pid}, which is still running but no \
         longer holds the host lock (its restore probably failed: see its output); stop that \
         process, and its settings are restored at the next start of twlab"
    )]
    JournalBusy { path: PathBuf, pid: u32 },
    #[error("cannot read {path} (`{key}`): {source}")]
    SysctlRead {
        key: String,
        path: String,
        source: std::io::Error,
    },
    #[error("the kernel refused {value:?} for `{key}` (writing {path}): {source}")]
    SysctlWrite {
        key: String,
        value: String,
        path: String,
        source: std::io::Error,
    },
    #[error("`{key}` reads back {read_back:?} after {value:?} was written to it")]
    NotStored {
        key: String,
        value: String,
        read_back: String,
    },
    #[error(
        "cannot enter the initial network namespace (pid 1's) to write host-global settings: \
         setns returned {errno}"
    )]
    EnterNamespace { errno: Errno },
    #[error(
        "cannot install the SIGINT/SIGTERM handler that restores host-global settings: {message}"
    )]
    Signals { message: String },
    #[error(
        "restoring host-global settings failed: {failures}. The journal {journal} is kept and \
         this process keeps the host lock, so no other case runs against the changed setting; \
         set the values back by hand, or let twlab::host::recover do it after this process exits"
    )]
    Restore { failures: String, journal: PathBuf },
    #[error(
        "an earlier restore of host-global settings failed in this process ({message}); cases \
         that change host settings or use conntrack cannot run until this process exits and the \
         journal is recovered"
    )]
    Poisoned { message: String },
}
