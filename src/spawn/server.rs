//! The spawner process and the supervisor it forks for each program.
//!
//! Why a separate process: fork() copies every descriptor of the whole process into the child
//! until it execs (CLOEXEC acts only at exec). A trial that closes a listener while another
//! trial forks `nft` would see its listener live on in that child for the window, and a bind
//! fail that the kernel would have allowed. The spawner is forked once, before any trial
//! exists, keeps no descriptor but its request socket, and is single-threaded: each fork it
//! makes copies only what belongs to the one request it is serving.
//!
//! Per program, three processes, each dying with its parent (PR_SET_PDEATHSIG, checked
//! against a parent that died before the prctl):
//! - the supervisor: enters the network namespace passed with the request, forks the program,
//!   reports its pid, takes orders (signal, list processes) and reports its exit status. Only
//!   the supervisor signals and reaps the program, so a pid is never signalled after reuse.
//! - with a PID namespace: a minimal init as its pid 1, which forwards catchable signals to
//!   every process of the namespace and reports the program's wait status; when init exits
//!   the kernel kills whatever the program left behind (a forking server's workers).
//! - the program itself, leading its own process group.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};

use super::wire::{self, Order, Process, Report, Request, StreamSpec, WireError};

/// The descriptor the spawner keeps its request socket on.
const REQUESTS: RawFd = 3;

/// Exit without running Rust's exit machinery (atexit handlers, stdio flushes of a process
/// this one was forked from).
fn quit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(code) }
}

/// Ties this process's life to its parent's, which must be `parent`: if the parent died
/// before the prctl took hold, the signal would never come, so end now.
fn die_with_parent(parent: libc::pid_t) {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            quit(1);
        }
    }
}

/// Closes every descriptor from `from` up, except standard streams below it.
fn close_from(from: RawFd) {
    // SAFETY: close_range takes integers; closing descriptors this process owns.
    unsafe { libc::close_range(from as libc::c_uint, libc::c_uint::MAX, 0) };
}

/// The spawner's life, in the child of the fork made at start-up. Never returns.
pub fn serve(requests: OwnedFd, parent: libc::pid_t) -> ! {
    die_with_parent(parent);
    // Only the request socket survives, on a known number.
    let raw = requests.into_raw_fd();
    if raw != REQUESTS {
        // SAFETY: dup2 onto a number this process then owns; the original is closed next.
        unsafe {
            libc::dup2(raw, REQUESTS);
            libc::close(raw);
        }
    }
    close_from(REQUESTS + 1);
    // Supervisors are reaped by the kernel: the spawner never waits for them.
    // SAFETY: setting a disposition in a single-threaded process.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    // SAFETY: REQUESTS is open and owned by this process from here on.
    let sock = unsafe { BorrowedFd::borrow_raw(REQUESTS) };
    loop {
        let (request, fds) = match wire::recv::<Request>(sock) {
            Ok(r) => r,
            // twlab is gone (or wrote garbage): nothing more will come.
            Err(WireError::Closed) => quit(0),
            Err(_) => continue,
        };
        let me = std::process::id() as libc::pid_t;
        // SAFETY: this process is single-threaded, so the child may run any code.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: the request socket is the spawner's, not the supervisor's.
                unsafe { libc::close(REQUESTS) };
                supervise(request, fds, me)
            }
            // The request's descriptors are the supervisor's now (or, when fork failed, the
            // reply socket closing tells twlab).
            _ => drop(fds),
        }
    }
}

/// What the supervisor keeps of the program's streams for itself and what goes to twlab.
struct Streams {
    /// The program's stdin, stdout, stderr.
    child: [OwnedFd; 3],
    /// Parent ends of pipes, in stream order, for twlab.
    back: Vec<OwnedFd>,
}

fn open_null(write: bool) -> Result<OwnedFd, Errno> {
    let flags = if write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    // SAFETY: a constant path; a new descriptor or -1.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

fn streams(
    req: &Request,
    passed: &mut std::vec::IntoIter<OwnedFd>,
) -> Result<Streams, (String, Errno)> {
    let specs = [req.stdin, req.stdout, req.stderr];
    let mut child = Vec::new();
    let mut back = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let input = i == 0;
        let fd = match spec {
            StreamSpec::Null => open_null(!input).map_err(|e| ("open /dev/null".into(), e))?,
            StreamSpec::Inherit => nix::unistd::dup(
                // SAFETY: 0, 1 and 2 are the spawner's standard streams.
                unsafe { BorrowedFd::borrow_raw(i as RawFd) },
            )
            .map_err(|e| ("dup a standard stream".into(), e))?,
            StreamSpec::Passed => passed
                .next()
                .ok_or(("take a passed stream".into(), Errno::EBADF))?,
            StreamSpec::Piped => {
                let (r, w) = pipe().map_err(|e| ("pipe".into(), e))?;
                let (mine, theirs) = if input { (r, w) } else { (w, r) };
                back.push(theirs);
                mine
            }
        };
        child.push(fd);
    }
    let child: [OwnedFd; 3] = child
        .try_into()
        .map_err(|_| ("streams".into(), Errno::EINVAL))?;
    Ok(Streams { child, back })
}

fn cstring(bytes: &[u8]) -> CString {
    // A NUL inside an argument cannot be passed to exec; cut it there, as a shell would.
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

/// Everything exec needs, prepared before the fork that runs it.
struct Exec {
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
}

impl Exec {
    fn new(req: &Request) -> Exec {
        let mut env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .filter(|(k, _)| !req.env_remove.contains(k) && !req.env.iter().any(|(n, _)| n == k))
            .collect();
        env.extend(req.env.iter().cloned());
        Exec {
            argv: req.argv.iter().map(|a| cstring(a)).collect(),
            envp: env
                .into_iter()
                .map(|(k, v)| cstring(&[k, b"=".to_vec(), v].concat()))
                .collect(),
            cwd: req.cwd.as_deref().map(cstring),
        }
    }

    /// In the program's process: stdio, group, signals, directory, then exec. On failure the
    /// errno goes down `errors` (close-on-exec, so a successful exec closes it unwritten).
    fn run(&self, stdio: &[OwnedFd; 3], errors: &OwnedFd) -> ! {
        let fail = |stage: u8| -> ! {
            let errno = Errno::last() as i32;
            let mut msg = [0u8; 5];
            msg[0] = stage;
            msg[1..].copy_from_slice(&errno.to_ne_bytes());
            // SAFETY: writing a local buffer to a pipe this process owns.
            unsafe { libc::write(errors.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
            quit(127)
        };
        // SAFETY: syscalls on descriptors and memory this process owns; the pointers passed
        // to execvpe are NUL-terminated arrays of C strings that live until exec.
        unsafe {
            for (i, fd) in stdio.iter().enumerate() {
                if libc::dup2(fd.as_raw_fd(), i as RawFd) < 0 {
                    fail(1);
                }
            }
            libc::setpgid(0, 0);
            // Rust ignores SIGPIPE; a program expects the default, and no blocked signal.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if let Some(dir) = &self.cwd
                && libc::chdir(dir.as_ptr()) != 0
            {
                fail(2);
            }
            let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
            argv.push(std::ptr::null());
            let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|e| e.as_ptr()).collect();
            envp.push(std::ptr::null());
            if let Some(program) = self.argv.first() {
                libc::execvpe(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            } else {
                Errno::set_raw(libc::EINVAL);
            }
            fail(3)
        }
    }
}

const STAGES: [&str; 4] = [
    "start",
    "set up the standard streams",
    "change directory",
    "exec",
];

fn report(reply: BorrowedFd<'_>, r: &Report, fds: &[BorrowedFd<'_>]) {
    let _ = wire::send(reply, r, fds);
}

fn failed(reply: BorrowedFd<'_>, stage: &str, errno: Errno) -> ! {
    report(
        reply,
        &Report::Failed {
            stage: stage.into(),
            errno: errno as i32,
        },
        &[],
    );
    quit(1)
}

/// A forwarded signal goes to every process of the PID namespace (kill(-1) from its init).
extern "C" fn forward(signal: libc::c_int) {
    // SAFETY: kill is async-signal-safe.
    unsafe { libc::kill(-1, signal) };
}

/// pid 1 of the program's PID namespace: starts the program, forwards signals, reaps
/// everything, and when the program ends writes its wait status to `status` and exits (the
/// kernel then kills what is left in the namespace).
fn init(exec: &Exec, stdio: [OwnedFd; 3], errors: OwnedFd, status: OwnedFd) -> ! {
    // Handlers first, so a stop that comes at once is not lost (exec resets them in the
    // program).
    // SAFETY: installing a handler that only calls kill; in a single-threaded process.
    unsafe {
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(s, &action, std::ptr::null_mut());
        }
    }
    // SAFETY: this process is single-threaded.
    let program = unsafe { libc::fork() };
    if program < 0 {
        quit(1);
    }
    if program == 0 {
        drop(status);
        die_with_parent(1);
        exec.run(&stdio, &errors);
    }
    drop(stdio);
    drop(errors);
    loop {
        let mut wstatus = 0;
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(-1, &mut wstatus, 0) };
        if pid == program {
            // SAFETY: writing a local to a pipe this process owns.
            unsafe {
                libc::write(
                    status.as_raw_fd(),
                    (&wstatus as *const i32).cast(),
                    size_of::<i32>(),
                )
            };
            quit(0);
        }
        if pid < 0 && Errno::last() != Errno::EINTR {
            quit(0);
        }
    }
}

/// The supervisor of one program. Never returns.
fn supervise(req: Request, fds: Vec<OwnedFd>, spawner: libc::pid_t) -> ! {
    // The spawner ignores SIGCHLD; a supervisor waits for its program.
    // SAFETY: single-threaded; a disposition.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    die_with_parent(spawner);
    let mut fds = fds.into_iter();
    let Some(reply) = fds.next() else { quit(1) };
    let reply_fd = reply.as_fd();
    if req.netns {
        let Some(ns) = fds.next() else {
            failed(reply_fd, "receive the network namespace", Errno::EBADF)
        };
        if let Err(e) = setns(&ns, CloneFlags::CLONE_NEWNET) {
            failed(reply_fd, "enter the network namespace (setns)", e);
        }
    }
    if req.pid_namespace
        && let Err(e) = unshare(CloneFlags::CLONE_NEWPID)
    {
        failed(reply_fd, "make a PID namespace (unshare)", e);
    }
    let s = match streams(&req, &mut fds) {
        Ok(s) => s,
        Err((stage, e)) => failed(reply_fd, &stage, e),
    };
    let exec = Exec::new(&req);
    let (err_r, err_w) = pipe().unwrap_or_else(|e| failed(reply_fd, "pipe", e));
    let (status_r, status_w) = pipe().unwrap_or_else(|e| failed(reply_fd, "pipe", e));
    let me = std::process::id() as libc::pid_t;
    // SAFETY: this process is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        failed(reply_fd, "fork", Errno::last());
    }
    if pid == 0 {
        drop(reply);
        drop(err_r);
        drop(status_r);
        drop(s.back);
        // In its own PID namespace the supervisor is invisible: getppid() reads 0 there.
        die_with_parent(if req.pid_namespace { 0 } else { me });
        if req.pid_namespace {
            init(&exec, s.child, err_w, status_w)
        }
        drop(status_w);
        exec.run(&s.child, &err_w)
    }
    drop(s.child);
    drop(err_w);
    drop(status_w);
    // Exec succeeded when the error pipe closes unwritten.
    let mut msg = Vec::new();
    let _ = File::from(err_r).read_to_end(&mut msg);
    if msg.len() == 5 {
        let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
        let stage = STAGES.get(usize::from(msg[0])).copied().unwrap_or("start");
        let mut ws = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut ws, 0) };
        failed(reply_fd, stage, Errno::from_raw(errno));
    }
    let back: Vec<BorrowedFd> = s.back.iter().map(AsFd::as_fd).collect();
    report(reply_fd, &Report::Started { pid }, &back);
    drop(s.back);
    watch(&req, reply, pid, status_r)
}

/// Sends `signal` to the program: its whole PID namespace, or its process group. The program
/// is not reaped yet (only this process reaps it), so its pid is still its own.
fn signal(req: &Request, pid: libc::pid_t, signal: i32) {
    // SAFETY: kill with integers.
    unsafe {
        if req.pid_namespace {
            // init forwards catchable signals; SIGKILL to init ends the namespace.
            libc::kill(pid, signal);
        } else {
            libc::kill(-pid, signal);
        }
    }
}

/// The processes of the program: those in its PID namespace (but init), or in its group.
fn processes(req: &Request, pid: libc::pid_t) -> Vec<Process> {
    let ns_of = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let target_ns = ns_of(&pid.to_string());
    let mut list = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return list;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(p) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let pgrp: Option<i32> = stat[close + 1..]
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok());
        let ours = if req.pid_namespace {
            p != pid && target_ns.is_some() && ns_of(&p.to_string()) == target_ns
        } else {
            pgrp == Some(pid)
        };
        if ours {
            list.push(Process { pid: p, comm });
        }
    }
    list.sort_by_key(|p| p.pid);
    list
}

fn watch(req: &Request, reply: OwnedFd, pid: libc::pid_t, status: OwnedFd) -> ! {
    // SAFETY: pidfd_open takes a pid and flags; our own unreaped child.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        signal(req, pid, libc::SIGKILL);
    }
    // SAFETY: a new descriptor when raw >= 0.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as RawFd) });
    let mut twlab_gone = false;
    while let Some(pidfd) = &pidfd {
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if !twlab_gone {
            fds.push(PollFd::new(reply.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let exited = fds[0].any().unwrap_or(false);
        let ordered = fds.get(1).and_then(PollFd::revents);
        if exited {
            break;
        }
        if let Some(ev) = ordered
            && !ev.is_empty()
        {
            match wire::recv::<Order>(reply.as_fd()) {
                Ok((Order::Signal { signal: s }, _)) => signal(req, pid, s),
                Ok((Order::List, _)) => report(
                    reply.as_fd(),
                    &Report::Processes {
                        list: processes(req, pid),
                    },
                    &[],
                ),
                // twlab dropped its handle (or died): the program must not outlive it.
                Err(_) => {
                    twlab_gone = true;
                    signal(req, pid, libc::SIGKILL);
                }
            }
        }
    }
    // The program has exited and is a zombie: its group id cannot have been reused, so
    // whatever it left in the group can be killed before it is reaped.
    if !req.pid_namespace {
        // SAFETY: kill with integers.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let mut ws = 0;
    // SAFETY: reaping our own child.
    while unsafe { libc::waitpid(pid, &mut ws, 0) } < 0 && Errno::last() == Errno::EINTR {}
    if req.pid_namespace {
        // The program's own status, as init saw it; none if init was killed first.
        let mut buf = [0u8; 4];
        let n = File::from(status).read(&mut buf).unwrap_or(0);
        ws = if n == 4 {
            i32::from_ne_bytes(buf)
        } else {
            libc::SIGKILL
        };
    }
    report(reply.as_fd(), &Report::Exited { status: ws }, &[]);
    quit(0)
}

/// The first argument's file name, for messages.
pub fn program_name(argv: &[Vec<u8>]) -> String {
    argv.first()
        .map(|a| OsStr::from_bytes(a).to_string_lossy().into_owned())
        .unwrap_or_default()
}
