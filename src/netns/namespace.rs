//! A network namespace owned by a file descriptor and served by its own thread.
//!
//! The thread calls `unshare(CLONE_NEWNET)` and then runs jobs sent to it, so every socket,
//! netlink connection and /proc/thread-self/net read made in a job belongs to this namespace.
//! No bind mount under /run/netns is made: when the last reference (this fd, the thread, a
//! socket) goes, the kernel tears the namespace down with its veth, qdiscs and rules, which is
//! also what happens if the whole process is SIGKILLed.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "failed to create network namespace `{name}`: unshare(CLONE_NEWNET) returned {errno}; \
         twlab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    )]
    Unshare { name: String, errno: Errno },
    #[error("failed to open /proc/thread-self/ns/net for namespace `{name}`: {source}")]
    OpenFd {
        name: String,
        source: std::io::Error,
    },
    #[error("failed to start the thread of namespace `{name}`: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("a job on the thread of namespace `{name}` panicked: {message}")]
    JobPanicked { name: String, message: String },
    #[error("the thread of namespace `{name}` is gone")]
    ThreadGone { name: String },
    #[error("failed to enter namespace `{name}` from the calling thread: {errno}")]
    Enter { name: String, errno: Errno },
}

pub struct Namespace {
    name: String,
    fd: OwnedFd,
    tid: libc::pid_t,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A namespace whose thread is started and not yet known to have its namespace: several are
/// started before any is waited for, so that their `unshare` calls overlap. Jobs given to it
/// run as soon as the namespace exists.
pub(super) struct Starting {
    name: String,
    ready: mpsc::Receiver<Result<(OwnedFd, libc::pid_t), NetnsError>>,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A job given to a namespace's thread, not yet waited for.
pub struct Pending<R> {
    name: String,
    result: mpsc::Receiver<Result<R, String>>,
}

impl<R> Pending<R> {
    /// The job's result, once it has run.
    pub fn wait(self) -> Result<R, NetnsError> {
        self.result
            .recv()
            .map_err(|_| NetnsError::ThreadGone {
                name: self.name.clone(),
            })?
            .map_err(|message| NetnsError::JobPanicked {
                name: self.name,
                message,
            })
    }
}

/// Sends `f` to a namespace's job queue.
fn submit<R, F>(
    name: &str,
    jobs: Option<&mpsc::Sender<Job>>,
    f: F,
) -> Result<Pending<R>, NetnsError>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let out =
            catch_unwind(AssertUnwindSafe(f)).map_err(|p| crate::vocab::panic_message(p.as_ref()));
        let _ = tx.send(out);
    });
    let gone = || NetnsError::ThreadGone {
        name: name.to_string(),
    };
    jobs.ok_or_else(gone)?.send(job).map_err(|_| gone())?;
    Ok(Pending {
        name: name.to_string(),
        result: rx,
    })
}

impl Starting {
    pub(super) fn spawn(name: &str) -> Result<Starting, NetnsError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(OwnedFd, libc::pid_t), NetnsError>>();
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let ns_name = name.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let fd = unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|errno| NetnsError::Unshare {
                        name: ns_name.clone(),
                        errno,
                    })
                    .and_then(|()| {
                        File::open("/proc/thread-self/ns/net")
                            .map(|f| (OwnedFd::from(f), nix::unistd::gettid().as_raw()))
                            .map_err(|source| NetnsError::OpenFd {
                                name: ns_name.clone(),
                                source,
                            })
                    });
                let ok = fd.is_ok();
                if ready_tx.send(fd).is_err() || !ok {
                    return;
                }
                for job in job_rx {
                    job();
                }
            })
            .map_err(|source| NetnsError::Spawn {
                name: name.to_string(),
                source,
            })?;
        Ok(Starting {
            name: name.to_string(),
            ready: ready_rx,
            jobs: Some(job_tx),
            thread: Some(thread),
        })
    }

    /// Queues `f` to run in the namespace once it exists (never if it cannot be made).
    pub(super) fn start<R, F>(&self, f: F) -> Result<Pending<R>, NetnsError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        submit(&self.name, self.jobs.as_ref(), f)
    }

    /// Waits until the thread is in its namespace.
    pub(super) fn ready(mut self) -> Result<Namespace, NetnsError> {
        let name = std::mem::take(&mut self.name);
        let fd = self
            .ready
            .recv()
            .map_err(|_| NetnsError::ThreadGone { name: name.clone() })?;
        // On failure, dropping `self` joins the thread, which has ended.
        let (fd, tid) = fd?;
        Ok(Namespace {
            name,
            fd,
            tid,
            jobs: self.jobs.take(),
            thread: self.thread.take(),
        })
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Namespace {
    pub fn create(name: &str) -> Result<Namespace, NetnsError> {
        Starting::spawn(name)?.ready()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's fd, for IFLA_NET_NS_FD and setns by other code.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Run `f` on the calling thread inside this namespace, then put the thread back in the
    /// namespace it was in. For one quick syscall (a socket() to create here) this is about
    /// ten times cheaper than `run`'s hop to the namespace's thread and back; `f` must not
    /// block. The thread is back in its own namespace when this returns, even if `f` panics.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> Result<R, NetnsError> {
        let enter_err = |errno| NetnsError::Enter {
            name: self.name.clone(),
            errno,
        };
        let original: OwnedFd = File::open("/proc/thread-self/ns/net")
            .map(OwnedFd::from)
            .map_err(|e| enter_err(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        setns(&self.fd, CloneFlags::CLONE_NEWNET).map_err(enter_err)?;
        struct Back(OwnedFd);
        impl Drop for Back {
            fn drop(&mut self) {
                // A thread left in a case's namespace would put the next trial's sockets
                // there: better to stop than to go on.
                if let Err(e) = setns(&self.0, CloneFlags::CLONE_NEWNET) {
                    eprintln!("twlab: cannot return a thread to its network namespace: {e}");
                    std::process::abort();
                }
            }
        }
        let back = Back(original);
        let out = f();
        drop(back);
        Ok(out)
    }

    /// The namespace's thread (its id), which stays in the namespace for as long as this
    /// value lives: `/proc/self/task/<tid>/net/` is the namespace's `/proc/net`, for reading
    /// from any thread.
    pub fn tid(&self) -> libc::pid_t {
        self.tid
    }

    /// Run `f` on the namespace's thread and wait for its result.
    pub fn run<R, F>(&self, f: F) -> Result<R, NetnsError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        self.start(f)?.wait()
    }

    /// Give `f` to the namespace's thread without waiting: jobs given to several namespaces
    /// run at the same time. Jobs given to one namespace run one after the other, in order.
    pub fn start<R, F>(&self, f: F) -> Result<Pending<R>, NetnsError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        submit(&self.name, self.jobs.as_ref(), f)
    }

    /// Ends the thread's job loop without waiting for the thread: the namespaces of a lab are
    /// all told before any is waited for.
    pub(super) fn hang_up(&mut self) {
        self.jobs.take();
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Closing the channel ends the thread's job loop.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
