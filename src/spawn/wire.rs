//! What twlab, the spawner and each supervisor say to each other: JSON messages over
//! SOCK_SEQPACKET Unix sockets (one message per packet, so no framing), with descriptors
//! riding along as SCM_RIGHTS.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// Largest message: a request carries argv and env, which stay far below this.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most descriptors one message carries (reply socket, netns, three stdio files).
const MAX_FDS: usize = 8;

/// Where a child's standard stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamSpec {
    /// /dev/null.
    Null,
    /// A pipe whose other end comes back to twlab.
    Piped,
    /// The spawner's own stream (twlab's, as it was at start-up).
    Inherit,
    /// A descriptor sent with the request.
    Passed,
}

/// twlab -> spawner: start one program. The descriptors sent with it, in order: the reply
/// socket, then the network namespace (if `netns`), then one per `Passed` stream (stdin,
/// stdout, stderr).
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Bytes of each argument (argv[0] is looked up in PATH when it has no slash).
    pub argv: Vec<Vec<u8>>,
    /// Set on top of the spawner's environment.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Removed from it.
    pub env_remove: Vec<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    pub netns: bool,
    /// Run the program as pid 2 of a PID namespace of its own, under a minimal init.
    pub pid_namespace: bool,
    pub stdin: StreamSpec,
    pub stdout: StreamSpec,
    pub stderr: StreamSpec,
}

/// supervisor -> twlab.
#[derive(Debug, Serialize, Deserialize)]
pub enum Report {
    /// The program runs; the pipes of `Piped` streams come with it (stdin, stdout, stderr).
    Started { pid: i32 },
    /// It could not be started: which step failed, and the errno.
    Failed { stage: String, errno: i32 },
    /// Its wait status (as from waitpid), once it has been reaped.
    Exited { status: i32 },
    /// The processes in its PID namespace (or its process group), answering `List`.
    Processes { list: Vec<Process> },
}

/// One process of a program: its pid as twlab sees it and its command name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub comm: String,
}

/// twlab -> supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum Order {
    /// Send this signal: in a PID namespace to every process of it, otherwise to the group.
    Signal { signal: i32 },
    /// Say which processes the program has now.
    List,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(Errno),
    #[error("the other side is gone")]
    Closed,
    #[error("a message did not parse: {0}")]
    Parse(String),
}

/// Send one message with descriptors. MSG_NOSIGNAL: a peer that is gone is an error, not a
/// SIGPIPE.
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), WireError> {
    let bytes = serde_json::to_vec(message).map_err(|e| WireError::Parse(e.to_string()))?;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ECONNREFUSED) => {
                return Err(WireError::Closed);
            }
            Err(e) => return Err(WireError::Io(e)),
        }
    }
}

/// Receive one message and the descriptors that came with it (close-on-exec).
pub fn recv<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
) -> Result<(T, Vec<OwnedFd>), WireError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(WireError::Io)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors for us.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Err(WireError::Closed),
            Err(e) => return Err(WireError::Io(e)),
        }
    };
    if n == 0 {
        return Err(WireError::Closed);
    }
    let message = serde_json::from_slice(&buf[..n]).map_err(|e| WireError::Parse(e.to_string()))?;
    Ok((message, fds))
}
