//! Real programs inside a case's namespaces: started, watched until ready, waited for or
//! stopped, and what they did (exit status, output) kept as an observation.
//!
//! Lifetime rules, and why:
//! - The program is started by the spawner process (`crate::spawn`), never forked from
//!   twlab itself: a fork copies every descriptor of every trial into the child until it
//!   execs, and a socket a case closed would live on there.
//! - It enters the namespace of the thread that asks (`spawn` runs in `Namespace::run`).
//! - It runs as pid 2 of a PID namespace of its own, under a minimal init: when it ends, or is
//!   stopped, everything it forked (a server's workers, a shell's commands) dies with it, and
//!   its processes can be listed. A chain of parent-death signals (twlab, spawner,
//!   supervisor, init) ends it when twlab dies, even by SIGKILL.
//! - Stopping it sends SIGTERM to every process of its namespace, then SIGKILL to its init
//!   after the grace period. Only its supervisor signals and reaps it, so no pid is signalled
//!   after it was reused.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::spawn::{Child, Command, SpawnError, Stdio};

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
    /// The program's processes (`pid name`) when twlab stopped it, in its PID namespace.
    pub processes: Vec<String>,
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
        source: SpawnError,
    },
}

impl ProgramError {
    /// The errno behind a failed start (ENOENT for a missing program), if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ProgramError::Spawn { source, .. } => source.errno(),
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

/// A started program. Dropping it kills everything in its PID namespace.
pub struct Running {
    pub spec: ProgramSpec,
    child: Child,
    output: Arc<Output>,
    started: Instant,
    /// Its processes (pid and name) just before twlab stopped it; empty if it ended by itself.
    processes: Vec<String>,
}

/// Starts the program. Call it on the namespace's thread: the program enters that thread's
/// network namespace.
pub fn spawn(spec: ProgramSpec) -> Result<Running, ProgramError> {
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .pid_namespace(true)
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ProgramError::Spawn {
        program: spec.argv[0].clone(),
        ns: spec.ns.clone(),
        source,
    })?;
    let output = Arc::new(Output::default());
    if let Some(out) = child.stdout.take() {
        read_stream(out, output.clone(), true);
    }
    if let Some(err) = child.stderr.take() {
        read_stream(err, output.clone(), false);
    }
    Ok(Running {
        spec,
        child,
        output,
        started,
        processes: Vec::new(),
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
    /// Whether the program has exited.
    pub fn exited(&mut self) -> bool {
        self.wait_exit(Instant::now())
    }

    /// Waits until the program exits or the deadline passes; true if it exited. A lost
    /// supervisor counts as an exit (nothing of the program can be left: it died with it).
    pub fn wait_exit(&mut self, deadline: Instant) -> bool {
        self.child
            .wait_until(deadline)
            .map_or(true, |s| s.is_some())
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

    /// SIGTERM to every process of the program, SIGKILL after the grace period, then the
    /// run's observation.
    pub fn stop(mut self, why: &'static str) -> ProgramRun {
        let stopped = if self.exited() {
            None
        } else {
            self.processes = self
                .child
                .processes()
                .unwrap_or_default()
                .into_iter()
                .map(|p| format!("{} {}", p.pid, p.comm))
                .collect();
            let _ = self.child.signal(Signal::SIGTERM);
            if !self.wait_exit(Instant::now() + self.spec.grace) {
                let _ = self.child.kill();
                self.wait_exit(Instant::now() + Duration::from_secs(5));
            }
            Some(why)
        };
        self.finish(stopped)
    }

    /// After the program exited (its namespace is gone with it): its status and output.
    pub fn finish(mut self, stopped_by: Option<&'static str>) -> ProgramRun {
        let exit = match self.child.wait() {
            Ok(status) => Exit::from_status(status),
            Err(e) => Exit::Signal(format!("unknown ({e})")),
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
            processes: std::mem::take(&mut self.processes),
        }
    }
}

/// Whether `program` can be started: a path that is an executable file, or a name on PATH.
pub fn installed(program: &str) -> bool {
    crate::spawn::which(program).is_some()
}
