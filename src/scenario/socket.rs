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

use crate::case::{OptionName, OptionValue, ShutdownHow, SocketOption};
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

/// SO_REUSEADDR: the same setsockopt as `options: {reuseaddr: true}`.
pub fn set_reuseaddr(fd: &OwnedFd) -> nix::Result<()> {
    set_option(
        fd,
        &SocketOption {
            name: OptionName::Reuseaddr,
            value: OptionValue::Int(1),
        },
    )
}

pub fn bind_to_device(fd: &OwnedFd, ifname: &str) -> nix::Result<()> {
    setsockopt(fd, sockopt::BindToDevice, &std::ffi::OsString::from(ifname))
}

/// SO_LINGER {1, seconds}: the same setsockopt as `options: {linger: N}`.
pub fn set_linger(fd: &OwnedFd, seconds: u16) -> nix::Result<()> {
    set_option(
        fd,
        &SocketOption {
            name: OptionName::Linger,
            value: OptionValue::Int(seconds.into()),
        },
    )
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
    handshake_answer(fd, deadline)
}

/// The answer to a connect in progress: writable, then SO_ERROR says how it ended.
fn handshake_answer(fd: &OwnedFd, deadline: Instant) -> Outcome {
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

/// close(2) with its result (dropping an OwnedFd throws the result away, and with SO_LINGER
/// the result is the point).
pub fn close(fd: OwnedFd) -> Outcome {
    nix::unistd::close(fd.into_raw_fd()).into()
}

/// IP_LOCAL_PORT_RANGE (include/uapi/linux/in.h, Linux 6.3); the libc crate does not name it.
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

/// Where the kernel keeps an option: (level, optname).
fn option_address(name: OptionName) -> (libc::c_int, libc::c_int) {
    use OptionName::*;
    match name {
        Reuseaddr => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
        Reuseport => (libc::SOL_SOCKET, libc::SO_REUSEPORT),
        Linger => (libc::SOL_SOCKET, libc::SO_LINGER),
        Keepalive => (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        Rcvbuf => (libc::SOL_SOCKET, libc::SO_RCVBUF),
        Sndbuf => (libc::SOL_SOCKET, libc::SO_SNDBUF),
        Keepidle => (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        Keepintvl => (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        Keepcnt => (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
        Linger2 => (libc::IPPROTO_TCP, libc::TCP_LINGER2),
        UserTimeout => (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
        Nodelay => (libc::IPPROTO_TCP, libc::TCP_NODELAY),
        Fastopen => (libc::IPPROTO_TCP, libc::TCP_FASTOPEN),
        FastopenConnect => (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT),
        // SOL_IP options work on IPv6 TCP sockets too: ipv6_setsockopt hands level SOL_IP
        // to ip_setsockopt.
        BindAddressNoPort => (libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT),
        LocalPortRange => (libc::IPPROTO_IP, IP_LOCAL_PORT_RANGE),
        V6only => (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    }
}

/// setsockopt() of one option, its value in the kernel's own form.
pub fn set_option(fd: &OwnedFd, opt: &SocketOption) -> nix::Result<()> {
    let (level, name) = option_address(opt.name);
    let raw = |ptr: *const libc::c_void, len: usize| {
        // SAFETY: a valid fd, and `ptr` points at `len` bytes that live across the call.
        let rc =
            unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr, len as libc::socklen_t) };
        Errno::result(rc).map(drop)
    };
    match (opt.name, opt.value) {
        (OptionName::Linger, OptionValue::Int(seconds)) => {
            let l = libc::linger {
                l_onoff: 1,
                l_linger: seconds as libc::c_int,
            };
            raw(
                (&l as *const libc::linger).cast(),
                size_of::<libc::linger>(),
            )
        }
        // The kernel packs the range as lo | hi << 16 (inet_sk's local_port_range).
        (_, OptionValue::Range { lo, hi }) => {
            let v: u32 = u32::from(lo) | (u32::from(hi) << 16);
            raw((&v as *const u32).cast(), size_of::<u32>())
        }
        (_, OptionValue::Int(v)) => {
            let v = v as libc::c_int;
            raw((&v as *const libc::c_int).cast(), size_of::<libc::c_int>())
        }
    }
}

/// getsockopt() of one option, in the form a case writes it (SO_LINGER: its seconds when on,
/// -1 when off).
pub fn get_option(fd: &OwnedFd, option: OptionName) -> nix::Result<OptionValue> {
    let (level, name) = option_address(option);
    let mut buf = [0u8; 16];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: a valid fd and a buffer of `len` bytes the kernel writes into.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    Errno::result(rc)?;
    let word = |at: usize| i32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4]));
    Ok(match option {
        OptionName::Linger => OptionValue::Int(if word(0) != 0 { i64::from(word(4)) } else { -1 }),
        OptionName::LocalPortRange => {
            let v = word(0) as u32;
            OptionValue::Range {
                lo: (v & 0xffff) as u16,
                hi: (v >> 16) as u16,
            }
        }
        _ => OptionValue::Int(i64::from(word(0))),
    })
}

/// shutdown() in the direction a case names.
pub fn shutdown(fd: &OwnedFd, how: ShutdownHow) -> nix::Result<()> {
    let how = match how {
        ShutdownHow::Rd => socket::Shutdown::Read,
        ShutdownHow::Wr => socket::Shutdown::Write,
        ShutdownHow::Rdwr => socket::Shutdown::Both,
    };
    socket::shutdown(fd.as_raw_fd(), how)
}

/// A TCP Fast Open connect: sendto() with MSG_FASTOPEN carries up to `n` bytes in the SYN
/// when the client holds a cookie for the server; without one the kernel sends a SYN asking
/// for a cookie and queues nothing (the call says EINPROGRESS). Returns the connect's
/// outcome and the bytes the SYN took.
pub fn connect_with_data(
    fd: &OwnedFd,
    to: SocketAddr,
    n: u64,
    timeout: Duration,
) -> (Outcome, u64) {
    let deadline = Instant::now() + timeout;
    let data = vec![0x5au8; usize::try_from(n).unwrap_or(usize::MAX).min(64 * 1024)];
    let addr = SockaddrStorage::from(to);
    let with_syn = match socket::sendto(
        fd.as_raw_fd(),
        &data,
        &addr,
        MsgFlags::from_bits_retain(libc::MSG_FASTOPEN | libc::MSG_NOSIGNAL),
    ) {
        Ok(k) => k as u64,
        Err(Errno::EINPROGRESS) => 0,
        Err(e) => return (Outcome::Errno(e), 0),
    };
    (handshake_answer(fd, deadline), with_syn)
}

/// Options in order; the first that fails names itself.
pub fn apply_options(fd: &OwnedFd, options: &[SocketOption]) -> Result<(), (String, Errno)> {
    for o in options {
        set_option(fd, o).map_err(|e| (format!("setsockopt({o})"), e))?;
    }
    Ok(())
}
