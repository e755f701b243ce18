//! A single stray TCP segment sent into a connection's 4-tuple from a raw socket, for cases
//! about what the kernel does with segments no socket expects (a stray ACK reaching TIME_WAIT,
//! a delayed duplicate). Only the first segment is ours: every reaction is the kernel's.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use etherparse::TcpHeader;
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage,
};

use crate::case::InjectFlag;

/// The TCP header bytes of a segment from `src` to `dst`, checksum included.
pub fn segment(
    src: SocketAddr,
    dst: SocketAddr,
    flags: &[InjectFlag],
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let mut h = TcpHeader::new(src.port(), dst.port(), seq, 64240);
    for f in flags {
        match f {
            InjectFlag::Syn => h.syn = true,
            InjectFlag::Ack => h.ack = true,
            InjectFlag::Fin => h.fin = true,
            InjectFlag::Rst => h.rst = true,
        }
    }
    h.acknowledgment_number = ack;
    h.checksum = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), &[]),
        (IpAddr::V6(s), IpAddr::V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), &[]),
        _ => Ok(0),
    }
    .unwrap_or(0);
    h.to_bytes().to_vec()
}

/// Send the segment from a raw socket in the current thread's namespace; the kernel adds the
/// IP header (source: `src`'s address, to which the socket is bound).
pub fn send(src: SocketAddr, dst: SocketAddr, bytes: &[u8]) -> nix::Result<()> {
    let family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )?;
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(src.ip(), 0)),
    )?;
    // Raw sockets take no port in the destination address.
    let to = SockaddrStorage::from(SocketAddr::new(dst.ip(), 0));
    let sent = socket::sendto(fd.as_raw_fd(), bytes, &to, MsgFlags::empty())?;
    if sent == bytes.len() {
        Ok(())
    } else {
        Err(Errno::EMSGSIZE)
    }
}
