//! Reading and writing host-global sysctls in the initial network namespace.
//!
//! A /proc/sys/net path is resolved in the network namespace of the thread that opens it, so the
//! thread matters. `apply` refuses to run on a thread outside the initial namespace; a restore
//! that happens elsewhere (a guard dropped on a namespace's thread) writes from a short-lived
//! helper thread that first enters the initial namespace with setns.
//!
//! Which namespace is the initial one: since Linux 6.18 it has the fixed inode number
//! `NET_NS_INIT_INO` (0xEFFFFFF9, include/uapi/linux/nsfs.h); earlier kernels number it like any
//! other, from 0xF0000000 up, so that number is never a false match. Otherwise it is pid 1's
//! (/proc/1/ns/net), which a sandbox may forbid reading even to root: on such a machine the
//! inode number is the only evidence, and it is enough on 6.18.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use super::error::HostError;
use super::keys::proc_path;

const PID1: &str = "/proc/1/ns/net";
const THREAD: &str = "/proc/thread-self/ns/net";
/// Inode number of the initial network namespace on Linux 6.18 and later.
const NET_NS_INIT_INO: u64 = 0xEFFF_FFF9;

/// The initial network namespace, held open.
#[derive(Debug)]
pub(crate) struct InitialNetns {
    fd: File,
    id: (u64, u64),
}

fn ns_id(path: &str) -> Result<(u64, u64), std::io::Error> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

fn io(action: &'static str, path: &str) -> impl FnOnce(std::io::Error) -> HostError {
    move |source| HostError::Io {
        action,
        path: path.into(),
        source,
    }
}

/// Whether the calling thread is in the initial network namespace.
fn thread_is_initial() -> Result<bool, HostError> {
    let (dev, ino) = ns_id(THREAD).map_err(io("inspect the network namespace", THREAD))?;
    if ino == NET_NS_INIT_INO {
        return Ok(true);
    }
    match ns_id(PID1) {
        Ok(initial) => Ok(initial == (dev, ino)),
        Err(e) => Err(HostError::NotInitialNamespace {
            thread: format!("net:[{ino}]"),
            initial: format!(
                "unknown: this kernel does not give it the fixed inode {NET_NS_INIT_INO} \
                 (Linux 6.18+), and {PID1} cannot be read ({e})"
            ),
        }),
    }
}

impl InitialNetns {
    /// The calling thread's namespace, which must be the initial one.
    pub fn here() -> Result<InitialNetns, HostError> {
        if !thread_is_initial()? {
            let ino = ns_id(THREAD).map(|(_, ino)| ino).unwrap_or_default();
            return Err(HostError::NotInitialNamespace {
                thread: format!("net:[{ino}]"),
                initial: ns_id(PID1)
                    .map(|(_, ino)| format!("net:[{ino}]"))
                    .unwrap_or_else(|_| format!("net:[{NET_NS_INIT_INO}]")),
            });
        }
        Self::open(THREAD)
    }

    /// The initial namespace from any thread: this thread's if it is in it, else pid 1's.
    pub fn find() -> Result<InitialNetns, HostError> {
        if thread_is_initial()? {
            Self::open(THREAD)
        } else {
            Self::open(PID1)
        }
    }

    fn open(path: &'static str) -> Result<InitialNetns, HostError> {
        let fd = File::open(path).map_err(io("open", path))?;
        let meta = fd.metadata().map_err(io("inspect", path))?;
        Ok(InitialNetns {
            fd,
            id: (meta.dev(), meta.ino()),
        })
    }

    fn is_current(&self) -> Result<bool, HostError> {
        Ok(ns_id(THREAD).map_err(io("inspect the network namespace", THREAD))? == self.id)
    }

    /// Runs `f` on a thread in the initial namespace: this one if it is, else a helper.
    fn run<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, HostError> + Send,
    ) -> Result<T, HostError> {
        if self.is_current()? {
            return f();
        }
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("twlab-host-restore".into())
                .spawn_scoped(scope, || {
                    setns(&self.fd, CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| HostError::EnterNamespace { errno })?;
                    f()
                })
                .map_err(|source| HostError::Io {
                    action: "start a thread in",
                    path: "the initial network namespace".into(),
                    source,
                })?;
            helper.join().unwrap_or_else(|_| {
                Err(HostError::Io {
                    action: "write host-global settings from a helper thread in",
                    path: "the initial network namespace".into(),
                    source: std::io::Error::other("the helper thread panicked"),
                })
            })
        })
    }

    /// The current value of `key`, trimmed.
    pub fn read(&self, key: &str) -> Result<String, HostError> {
        self.run(|| read_here(key))
    }

    /// Writes `value` to `key` and checks that it reads back.
    pub fn write(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.run(|| {
            write_here(key, value)?;
            let read_back = read_here(key)?;
            if read_back != value {
                return Err(HostError::NotStored {
                    key: key.to_string(),
                    value: value.to_string(),
                    read_back,
                });
            }
            Ok(())
        })
    }
}

fn read_here(key: &str) -> Result<String, HostError> {
    let path = proc_path(key);
    std::fs::read_to_string(Path::new(&path))
        .map(|s| s.trim().to_string())
        .map_err(|source| HostError::SysctlRead {
            key: key.to_string(),
            path,
            source,
        })
}

fn write_here(key: &str, value: &str) -> Result<(), HostError> {
    let path = proc_path(key);
    std::fs::OpenOptions::new()
        .write(true)
        .open(Path::new(&path))
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| HostError::SysctlWrite {
            key: key.to_string(),
            value: value.to_string(),
            path,
            source,
        })
}
