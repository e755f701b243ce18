//! Thin helpers over the socket syscalls a scenario makes. Sockets are non-blocking so every
//! wait has a deadline; `poll` does the waiting.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage, setsockopt, sockopt,
};

use crate::vocab::Outcome;

/// A new TCP socket in the calling thread's namespace.
pub fn tcp_socket(ip: IpAddr) -> nix::Result<OwnedFd> {
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
}

pub fn set_reuseaddr(fd: &OwnedFd) -> nix::Result<()> {
    setsockopt(fd, sockopt::ReuseAddr, &true)
}

pub fn set_bind_address_no_port(fd: &OwnedFd) -> nix::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}

pub fn bind_to_device(fd: &OwnedFd, ifname: &str) -> nix::Result<()> {
    setsockopt(fd, sockopt::BindToDevice, &std::ffi::OsString::from(ifname))
}

pub fn set_linger(fd: &OwnedFd, seconds: u16) -> nix::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: seconds.into(),
    };
    setsockopt(fd, sockopt::Linger, &l)
}

pub fn set_blocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map(drop)
}

pub fn bind(fd: &OwnedFd, addr: SocketAddr) -> nix::Result<()> {
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
}

pub fn listen(fd: &OwnedFd, backlog: i32) -> nix::Result<()> {
    socket::listen(
        fd,
        socket::Backlog::new(backlog).unwrap_or(socket::Backlog::MAXCONN),
    )
}

pub fn local_addr(fd: &OwnedFd) -> nix::Result<SocketAddr> {
    to_std(socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())?)
}

pub fn peer_addr(fd: &OwnedFd) -> nix::Result<SocketAddr> {
    to_std(socket::getpeername::<SockaddrStorage>(fd.as_raw_fd())?)
}

fn to_std(s: SockaddrStorage) -> nix::Result<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Ok(SocketAddr::from(*v4));
    }
    if let Some(v6) = s.as_sockaddr_in6() {
        return Ok(SocketAddr::from(*v6));
    }
    Err(Errno::EAFNOSUPPORT)
}

/// Wait until `fd` is ready for `events` or the deadline passes. Returns false on timeout.
pub fn wait(fd: BorrowedFd<'_>, events: PollFlags, deadline: Instant) -> nix::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) if Instant::now() >= deadline => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Non-blocking connect with a deadline: the kernel's answer, or `Timeout`.
pub fn connect(fd: &OwnedFd, to: SocketAddr, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(to)) {
        Ok(()) => return Outcome::Ok,
        Err(Errno::EINPROGRESS) => {}
        Err(e) => return Outcome::Errno(e),
    }
    match wait(fd.as_fd(), PollFlags::POLLOUT, deadline) {
        Ok(true) => match socket::getsockopt(fd, sockopt::SocketError) {
            Ok(0) => Outcome::Ok,
            Ok(code) => Outcome::Errno(Errno::from_raw(code)),
            Err(e) => Outcome::Errno(e),
        },
        Ok(false) => Outcome::Timeout,
        Err(e) => Outcome::Errno(e),
    }
}

/// Accept one pending connection, waiting up to the deadline.
pub fn accept(listener: &OwnedFd, deadline: Instant) -> Result<OwnedFd, Outcome> {
    loop {
        match socket::accept4(
            listener.as_raw_fd(),
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        ) {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }),
            Err(Errno::EAGAIN) => match wait(listener.as_fd(), PollFlags::POLLIN, deadline) {
                Ok(true) => continue,
                Ok(false) => return Err(Outcome::Timeout),
                Err(e) => return Err(Outcome::Errno(e)),
            },
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Outcome::Errno(e)),
        }
    }
}

/// Send `n` bytes, waiting for buffer space up to the deadline.
pub fn send_all(fd: &OwnedFd, n: u64, deadline: Instant) -> (Outcome, u64) {
    let chunk = [0x5au8; 16 * 1024];
    let mut sent = 0u64;
    while sent < n {
        let len = chunk.len().min((n - sent) as usize);
        match socket::send(fd.as_raw_fd(), &chunk[..len], MsgFlags::MSG_NOSIGNAL) {
            Ok(k) => sent += k as u64,
            Err(Errno::EAGAIN) => match wait(fd.as_fd(), PollFlags::POLLOUT, deadline) {
                Ok(true) => {}
                Ok(false) => return (Outcome::Timeout, sent),
                Err(e) => return (Outcome::Errno(e), sent),
            },
            Err(Errno::EINTR) => {}
            Err(e) => return (Outcome::Errno(e), sent),
        }
    }
    (Outcome::Ok, sent)
}

pub enum RecvEnd {
    /// Got the bytes asked for.
    Filled,
    /// The peer's FIN arrived.
    Eof,
}

/// Read until `want` bytes (None: until EOF), EOF, an error or the deadline.
pub fn recv_until(
    fd: &OwnedFd,
    want: Option<u64>,
    deadline: Instant,
) -> (Result<RecvEnd, Outcome>, u64) {
    let mut buf = [0u8; 16 * 1024];
    let mut got = 0u64;
    loop {
        if want.is_some_and(|w| got >= w) {
            return (Ok(RecvEnd::Filled), got);
        }
        match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return (Ok(RecvEnd::Eof), got),
            Ok(k) => got += k as u64,
            Err(Errno::EAGAIN) => match wait(fd.as_fd(), PollFlags::POLLIN, deadline) {
                Ok(true) => {}
                Ok(false) => return (Err(Outcome::Timeout), got),
                Err(e) => return (Err(Outcome::Errno(e)), got),
            },
            Err(Errno::EINTR) => {}
            Err(e) => return (Err(Outcome::Errno(e)), got),
        }
    }
}

/// shutdown(SHUT_WR): send a FIN, keep reading.
pub fn shutdown_write(fd: &OwnedFd) -> nix::Result<()> {
    socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Write)
}

/// close(2) with its result (dropping an OwnedFd throws the result away, and with SO_LINGER
/// the result is the point).
pub fn close(fd: OwnedFd) -> Outcome {
    nix::unistd::close(fd.into_raw_fd()).into()
}
