//! Real programs inside a case's namespaces: started, watched until ready, waited for or
//! stopped, and what they did (exit status, output) kept as an observation.
//!
//! Lifetime rules, and why:
//! - The child is forked by the namespace's own thread (`spawn` runs in `Namespace::run`):
//!   setns is per thread, and a child inherits the network namespace of the thread that forked
//!   it.
//! - It gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies when twlab does, even on SIGKILL. The
//!   signal fires when the *thread* that forked it exits; that is the namespace thread, which
//!   lives until the lab is dropped, after every program has been stopped.
//! - It leads its own process group, so stopping it (SIGTERM, then SIGKILL after the grace
//!   period) also reaches what it forked (a server's workers, a shell's commands). The group is
//!   signalled only while its leader is not yet reaped: its pid, and so the group id, cannot
//!   have been reused for anything else.
//! - Descriptors other than stdio are closed at exec: an inherited socket of the case would
//!   keep a connection open that the case closed.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::socket::wait;

/// How much of each stream is kept (the end of it, when a program writes more).
const KEEP_BYTES: usize = 256 * 1024;
/// How long to wait for the output pipes to reach end-of-file once the group is gone.
const DRAIN: Duration = Duration::from_millis(500);

/// A program to start, with every placeholder already filled in.
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    pub label: String,
    pub ns: String,
    /// Source line of the `exec` step.
    pub line: u64,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub grace: Duration,
    pub background: bool,
}

impl ProgramSpec {
    /// The command line as a shell would show it, for reports.
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                    // One line per command in reports: control characters escaped.
                    format!(
                        "'{}'",
                        a.replace('\'', "'\\''")
                            .replace('\n', "\\n")
                            .replace('\t', "\\t")
                    )
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(String),
}

impl Exit {
    fn from_status(s: ExitStatus) -> Exit {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(
                Signal::try_from(sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}")),
            ),
            (None, None) => Exit::Signal("unknown".into()),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by {s}"),
        }
    }
}

/// What one run of a program did: an observation expectations read.
#[derive(Debug, Clone)]
pub struct ProgramRun {
    pub spec: ProgramSpec,
    pub duration: Duration,
    pub exit: Exit,
    /// Why twlab stopped it, if it did: `timeout`, `stop step`, `case end`.
    pub stopped_by: Option<&'static str>,
    pub stdout: String,
    pub stderr: String,
}

impl ProgramRun {
    /// The last `n` lines of a stream, for reports.
    pub fn tail(text: &str, n: usize) -> Vec<&str> {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("failed to start `{program}` in namespace `{ns}`: {source}")]
    Spawn {
        program: String,
        ns: String,
        source: std::io::Error,
    },
    #[error("failed to watch `{program}` (pidfd_open): {errno}")]
    Pidfd { program: String, errno: Errno },
}

impl ProgramError {
    /// The errno behind a failed start (ENOENT for a missing program), if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ProgramError::Spawn { source, .. } => source.raw_os_error().map(Errno::from_raw),
            ProgramError::Pidfd { errno, .. } => Some(*errno),
        }
    }
}

/// A stream's captured end, shared with the thread that reads it.
#[derive(Default)]
struct Captured {
    stdout: VecDeque<u8>,
    stderr: VecDeque<u8>,
    /// Streams that reached end-of-file.
    closed: u8,
}

#[derive(Default)]
struct Output {
    data: Mutex<Captured>,
    changed: Condvar,
}

impl Output {
    fn text(&self) -> (String, String) {
        let c = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let s = |d: &VecDeque<u8>| {
            let (a, b) = d.as_slices();
            String::from_utf8_lossy(&[a, b].concat()).into_owned()
        };
        (s(&c.stdout), s(&c.stderr))
    }
}

/// A started program. Dropping it kills its process group and reaps it.
pub struct Running {
    pub spec: ProgramSpec,
    child: Option<Child>,
    pidfd: OwnedFd,
    output: Arc<Output>,
    started: Instant,
}

/// Starts the program. Call it on the namespace's thread: the child inherits that thread's
/// network namespace (and the parent-death signal is tied to that thread).
pub fn spawn(spec: ProgramSpec) -> Result<Running, ProgramError> {
    let parent = std::process::id();
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid, close_range) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // twlab died between fork and prctl: the signal will never come, so do not start.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            libc::close_range(
                3,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
            );
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ProgramError::Spawn {
        program: spec.argv[0].clone(),
        ns: spec.ns.clone(),
        source,
    })?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if raw < 0 {
        let errno = Errno::last();
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        return Err(ProgramError::Pidfd {
            program: spec.argv[0].clone(),
            errno,
        });
    }
    // SAFETY: a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let output = Arc::new(Output::default());
    if let Some(out) = child.stdout.take() {
        read_stream(out, output.clone(), true);
    }
    if let Some(err) = child.stderr.take() {
        read_stream(err, output.clone(), false);
    }
    Ok(Running {
        spec,
        child: Some(child),
        pidfd,
        output,
        started,
    })
}

/// Reads one stream into the shared buffer until end-of-file, on a thread of its own (it
/// needs no namespace). Not joined: a descendant that escaped the process group could hold
/// the pipe open forever.
fn read_stream(mut stream: impl Read + Send + 'static, output: Arc<Output>, stdout: bool) {
    let _ = std::thread::Builder::new()
        .name("program-output".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let mut c = output.data.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    c.closed += 1;
                    output.changed.notify_all();
                    return;
                }
                let d = if stdout { &mut c.stdout } else { &mut c.stderr };
                d.extend(&buf[..n]);
                let excess = d.len().saturating_sub(KEEP_BYTES);
                d.drain(..excess);
                output.changed.notify_all();
            }
        });
}

impl Running {
    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().map_or(0, |c| c.id() as i32))
    }

    /// Whether the program has exited (it stays unreaped until `finish`).
    pub fn exited(&self) -> bool {
        self.wait_exit(Instant::now())
    }

    /// Waits until the program exits or the deadline passes; true if it exited.
    pub fn wait_exit(&self, deadline: Instant) -> bool {
        wait(self.pidfd.as_fd(), PollFlags::POLLIN, deadline).unwrap_or(true)
    }

    /// Whether `text` has appeared on stdout or stderr.
    pub fn output_contains(&self, text: &str) -> bool {
        let (out, err) = self.output.text();
        out.contains(text) || err.contains(text)
    }

    /// Waits up to `limit` for new output; returns at once if both streams are closed.
    pub fn wait_output(&self, limit: Duration) {
        let c = self.output.data.lock().unwrap_or_else(|p| p.into_inner());
        if c.closed < 2 {
            let _ = self.output.changed.wait_timeout(c, limit);
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace period, then the run's observation.
    pub fn stop(self, why: &'static str) -> ProgramRun {
        let stopped = if self.exited() {
            None
        } else {
            let _ = killpg(self.pgid(), Signal::SIGTERM);
            if !self.wait_exit(Instant::now() + self.spec.grace) {
                let _ = killpg(self.pgid(), Signal::SIGKILL);
                self.wait_exit(Instant::now() + Duration::from_secs(5));
            }
            Some(why)
        };
        self.finish(stopped)
    }

    /// After the leader exited: kill what it left in its group, reap it, collect the output.
    pub fn finish(mut self, stopped_by: Option<&'static str>) -> ProgramRun {
        // The leader is a zombie until reaped below, so the group id is still ours.
        let _ = killpg(self.pgid(), Signal::SIGKILL);
        let exit = match self.child.take().map(|mut c| c.wait()) {
            Some(Ok(status)) => Exit::from_status(status),
            _ => Exit::Signal("unknown (the program could not be waited for)".into()),
        };
        let duration = self.started.elapsed();
        let deadline = Instant::now() + DRAIN;
        loop {
            let c = self.output.data.lock().unwrap_or_else(|p| p.into_inner());
            let left = deadline.saturating_duration_since(Instant::now());
            if c.closed >= 2 || left.is_zero() {
                break;
            }
            let _ = self.output.changed.wait_timeout(c, left);
        }
        let (stdout, stderr) = self.output.text();
        ProgramRun {
            spec: self.spec.clone(),
            duration,
            exit,
            stopped_by,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Not stopped the orderly way (an error or a panic on the way): kill and reap, so
        // nothing outlives the case.
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Whether `program` can be started: a path that exists, or a name found in PATH.
pub fn installed(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
