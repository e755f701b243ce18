//! The twlab side: a `Command` like std's, started by the spawner process, and the `Child` it
//! returns (pid, pipes, orders to its supervisor, exit status).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::server::{program_name, serve};
use super::wire::{self, Order, Process, Report, Request, StreamSpec, WireError};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("failed to start the spawner process: {0}; twlab starts every program through it")]
    Start(String),
    #[error("failed to ask the spawner to start `{program}`: {reason}")]
    Request { program: String, reason: String },
    #[error("failed to start `{program}`: {stage}: {errno}")]
    Failed {
        program: String,
        stage: String,
        errno: Errno,
    },
    #[error("lost the supervisor of `{program}` (pid {pid}): {reason}")]
    Lost {
        program: String,
        pid: i32,
        reason: String,
    },
}

impl SpawnError {
    /// The errno behind a failed start (ENOENT for a missing program), if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            SpawnError::Failed { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// As an io::Error, for callers that speak std's language (NotFound for a missing program).
    pub fn into_io(self) -> std::io::Error {
        match self.errno() {
            Some(e) => std::io::Error::from_raw_os_error(e as i32),
            None => std::io::Error::other(self.to_string()),
        }
    }
}

/// The spawner: its request socket. Sends from several threads are fine (one packet each).
struct Spawner {
    requests: OwnedFd,
}

static SPAWNER: OnceLock<Result<Spawner, String>> = OnceLock::new();
/// Serialises the lazy start, whose fork must happen on a thread that lives as long as the
/// process (the spawner's parent-death signal follows the thread that forked it).
static LAZY: Mutex<()> = Mutex::new(());

fn fork_spawner() -> Result<Spawner, String> {
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the child runs `serve`, which touches only what it owns; called where no other
    // thread exists (at start-up) or, when lazily started, from a thread that only forks.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", Errno::last())),
        0 => {
            drop(mine);
            serve(theirs, parent)
        }
        _ => Ok(Spawner { requests: mine }),
    }
}

/// Starts the spawner. Call it first thing in `main`, before any thread, namespace or socket
/// exists: the spawner is then a copy of a process that holds nothing of any trial. twlab's
/// command and its test harness do; without it the first spawn starts it, from a thread of
/// its own, and other threads' descriptors are copied into it for the instant before it
/// closes them.
pub fn start() {
    SPAWNER.get_or_init(fork_spawner);
}

fn spawner() -> Result<&'static Spawner, SpawnError> {
    if SPAWNER.get().is_none() {
        let _one = LAZY.lock().unwrap_or_else(|p| p.into_inner());
        if SPAWNER.get().is_none() {
            // A thread that never ends, so the spawner's parent-death signal never fires
            // while this process lives.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("twlab-spawner".into())
                .spawn(move || {
                    let _ = tx.send(fork_spawner());
                    loop {
                        std::thread::park();
                    }
                })
                .map_err(|e| SpawnError::Start(e.to_string()))?;
            let s = rx
                .recv()
                .unwrap_or_else(|_| Err("the starting thread died".into()));
            let _ = SPAWNER.set(s);
        }
    }
    match SPAWNER.get() {
        Some(Ok(s)) => Ok(s),
        Some(Err(e)) => Err(SpawnError::Start(e.clone())),
        None => Err(SpawnError::Start("not started".into())),
    }
}

/// Where a standard stream of the child goes.
#[derive(Debug)]
pub enum Stdio {
    Null,
    Piped,
    /// twlab's own stream, as it was at start-up.
    Inherit,
    File(OwnedFd),
}

impl From<File> for Stdio {
    fn from(f: File) -> Stdio {
        Stdio::File(f.into())
    }
}

/// Which network namespace the child runs in.
#[derive(Debug)]
enum Netns {
    /// The calling thread's (as a fork from this thread would have): the default.
    CurrentThread,
    /// The spawner's, which is twlab's initial one.
    Initial,
    Fd(OwnedFd),
}

/// A program to start, built like `std::process::Command`.
#[derive(Debug)]
pub struct Command {
    argv: Vec<Vec<u8>>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
    env_remove: Vec<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    netns: Netns,
    pid_namespace: bool,
    stdio: [Stdio; 3],
}

impl Command {
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            argv: vec![program.as_ref().as_bytes().to_vec()],
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            netns: Netns::CurrentThread,
            pid_namespace: false,
            stdio: [Stdio::Null, Stdio::Piped, Stdio::Piped],
        }
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Command {
        self.argv.push(a.as_ref().as_bytes().to_vec());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        for a in args {
            self.arg(a);
        }
        self
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((
            k.as_ref().as_bytes().to_vec(),
            v.as_ref().as_bytes().to_vec(),
        ));
        self
    }

    pub fn env_remove(&mut self, k: impl AsRef<OsStr>) -> &mut Command {
        self.env_remove.push(k.as_ref().as_bytes().to_vec());
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().as_os_str().as_bytes().to_vec());
        self
    }

    /// Run in twlab's initial network namespace instead of the calling thread's.
    pub fn initial_netns(&mut self) -> &mut Command {
        self.netns = Netns::Initial;
        self
    }

    /// Run in this network namespace (a descriptor of /proc/.../ns/net).
    pub fn netns(&mut self, fd: OwnedFd) -> &mut Command {
        self.netns = Netns::Fd(fd);
        self
    }

    /// Run the program in a PID namespace of its own: whatever it forks dies when it ends.
    pub fn pid_namespace(&mut self, on: bool) -> &mut Command {
        self.pid_namespace = on;
        self
    }

    pub fn stdin(&mut self, s: Stdio) -> &mut Command {
        self.stdio[0] = s;
        self
    }

    pub fn stdout(&mut self, s: Stdio) -> &mut Command {
        self.stdio[1] = s;
        self
    }

    pub fn stderr(&mut self, s: Stdio) -> &mut Command {
        self.stdio[2] = s;
        self
    }

    pub fn program(&self) -> String {
        program_name(&self.argv)
    }

    /// Starts the program through the spawner.
    pub fn spawn(&mut self) -> Result<Child, SpawnError> {
        let program = self.program();
        let req_err = |reason: String| SpawnError::Request {
            program: program.clone(),
            reason,
        };
        let spawner = spawner()?;
        let (reply, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| req_err(format!("socketpair: {e}")))?;
        let netns = match &self.netns {
            Netns::Initial => None,
            Netns::Fd(fd) => Some(fd.try_clone().map_err(|e| req_err(e.to_string()))?),
            Netns::CurrentThread => Some(
                File::open("/proc/thread-self/ns/net")
                    .map(OwnedFd::from)
                    .map_err(|e| req_err(format!("open /proc/thread-self/ns/net: {e}")))?,
            ),
        };
        let spec = |s: &Stdio| match s {
            Stdio::Null => StreamSpec::Null,
            Stdio::Piped => StreamSpec::Piped,
            Stdio::Inherit => StreamSpec::Inherit,
            Stdio::File(_) => StreamSpec::Passed,
        };
        let request = Request {
            argv: self.argv.clone(),
            env: self.env.clone(),
            env_remove: self.env_remove.clone(),
            cwd: self.cwd.clone(),
            netns: netns.is_some(),
            pid_namespace: self.pid_namespace,
            stdin: spec(&self.stdio[0]),
            stdout: spec(&self.stdio[1]),
            stderr: spec(&self.stdio[2]),
        };
        let mut fds: Vec<BorrowedFd> = vec![theirs.as_fd()];
        fds.extend(netns.as_ref().map(AsFd::as_fd));
        for s in &self.stdio {
            if let Stdio::File(f) = s {
                fds.push(f.as_fd());
            }
        }
        wire::send(spawner.requests.as_fd(), &request, &fds).map_err(|e| req_err(e.to_string()))?;
        drop(fds);
        // The supervisor holds the other end now; ours must not keep it open.
        drop(theirs);
        let (report, mut back) = wire::recv::<Report>(reply.as_fd()).map_err(|e| match e {
            WireError::Closed => req_err("the spawner closed the request without an answer".into()),
            e => req_err(e.to_string()),
        })?;
        let pid = match report {
            Report::Started { pid } => pid,
            Report::Failed { stage, errno } => {
                return Err(SpawnError::Failed {
                    program,
                    stage,
                    errno: Errno::from_raw(errno),
                });
            }
            other => return Err(req_err(format!("unexpected answer {other:?}"))),
        };
        back.reverse();
        let mut take = |s: &Stdio| match s {
            Stdio::Piped => back.pop().map(File::from),
            _ => None,
        };
        let stdin = take(&self.stdio[0]);
        let stdout = take(&self.stdio[1]);
        let stderr = take(&self.stdio[2]);
        Ok(Child {
            program,
            pid,
            reply,
            status: None,
            stdin,
            stdout,
            stderr,
        })
    }

    /// Runs the program to its end and collects its output (stdin is null unless set).
    pub fn output(&mut self) -> Result<Output, SpawnError> {
        self.spawn()?.wait_with_output()
    }

    /// Runs the program with `input` on its stdin and collects its output.
    pub fn output_with_input(&mut self, input: &[u8]) -> Result<Output, SpawnError> {
        self.stdin(Stdio::Piped);
        let mut child = self.spawn()?;
        if let Some(mut w) = child.stdin.take() {
            // A program that exits without reading gets what it read; the rest is dropped.
            let _ = w.write_all(input);
        }
        child.wait_with_output()
    }

    /// Runs the program to its end, streams as set.
    pub fn status(&mut self) -> Result<ExitStatus, SpawnError> {
        self.spawn()?.wait()
    }
}

/// What a finished program did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A started program. Dropping it kills it (its supervisor sees the handle close).
#[derive(Debug)]
pub struct Child {
    program: String,
    pid: i32,
    reply: OwnedFd,
    status: Option<ExitStatus>,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

impl Child {
    /// The program's pid as twlab sees it (its PID namespace's init, when it has one).
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    fn lost(&self, reason: impl ToString) -> SpawnError {
        SpawnError::Lost {
            program: self.program.clone(),
            pid: self.pid,
            reason: reason.to_string(),
        }
    }

    /// Reads one report from the supervisor; an exit is kept.
    fn read_report(&mut self) -> Result<Report, SpawnError> {
        let (r, _) = wire::recv::<Report>(self.reply.as_fd()).map_err(|e| self.lost(e))?;
        if let Report::Exited { status } = r {
            self.status = Some(ExitStatus::from_raw(status));
        }
        Ok(r)
    }

    /// The exit status if the program ended by `deadline` (it is reaped by then).
    pub fn wait_until(&mut self, deadline: Instant) -> Result<Option<ExitStatus>, SpawnError> {
        while self.status.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.reply.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) if Instant::now() >= deadline => return Ok(None),
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {
                    self.read_report()?;
                }
                Err(e) => return Err(self.lost(e)),
            }
        }
        Ok(self.status)
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, SpawnError> {
        self.wait_until(Instant::now())
    }

    pub fn wait(&mut self) -> Result<ExitStatus, SpawnError> {
        self.stdin.take();
        loop {
            if let Some(s) = self.status {
                return Ok(s);
            }
            self.read_report()?;
        }
    }

    /// Sends a signal (to the program's PID namespace or process group); nothing once it ended.
    pub fn signal(&mut self, signal: Signal) -> Result<(), SpawnError> {
        if self.status.is_some() {
            return Ok(());
        }
        match wire::send(
            self.reply.as_fd(),
            &Order::Signal {
                signal: signal as i32,
            },
            &[],
        ) {
            // Gone means it exited and was reported; the report is read by the next wait.
            Ok(()) | Err(WireError::Closed) => Ok(()),
            Err(e) => Err(self.lost(e)),
        }
    }

    pub fn kill(&mut self) -> Result<(), SpawnError> {
        self.signal(Signal::SIGKILL)
    }

    /// The program's processes now (its PID namespace without init, or its process group);
    /// empty once it ended.
    pub fn processes(&mut self) -> Result<Vec<Process>, SpawnError> {
        if self.status.is_some() {
            return Ok(Vec::new());
        }
        match wire::send(self.reply.as_fd(), &Order::List, &[]) {
            Ok(()) => {}
            Err(WireError::Closed) => return Ok(Vec::new()),
            Err(e) => return Err(self.lost(e)),
        }
        loop {
            match self.read_report() {
                Ok(Report::Processes { list }) => return Ok(list),
                Ok(Report::Exited { .. }) => return Ok(Vec::new()),
                Ok(_) => {}
                // The supervisor reported the exit and left before answering.
                Err(_) if self.status.is_some() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the end, reading stdout and stderr (whichever are piped) as they come.
    pub fn wait_with_output(mut self) -> Result<Output, SpawnError> {
        self.stdin.take();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut streams: Vec<(File, bool)> = Vec::new();
        streams.extend(self.stdout.take().map(|f| (f, true)));
        streams.extend(self.stderr.take().map(|f| (f, false)));
        let mut buf = [0u8; 8192];
        while !streams.is_empty() {
            let mut fds: Vec<PollFd> = streams
                .iter()
                .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(self.lost(e)),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let mut i = 0;
            let mut idx = 0;
            while i < streams.len() {
                if !ready[idx] {
                    i += 1;
                    idx += 1;
                    continue;
                }
                idx += 1;
                match streams[i].0.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        streams.remove(i);
                    }
                    Ok(n) => {
                        if streams[i].1 {
                            out.extend_from_slice(&buf[..n]);
                        } else {
                            err.extend_from_slice(&buf[..n]);
                        }
                        i += 1;
                    }
                }
            }
        }
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }

    /// The supervisor socket, to wait on it with other descriptors.
    pub fn as_raw_fd(&self) -> i32 {
        self.reply.as_raw_fd()
    }
}
