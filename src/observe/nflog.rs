//! The packets the substitute's nft rules dropped, as the kernel logged them to an NFLOG
//! group (`include/uapi/linux/netfilter/nfnetlink_log.h`): which segment of the ladder the
//! link took. A tap sees a packet as it arrives on the interface, before the prerouting hook
//! that drops it, so the capture alone cannot tell a dropped segment from a delivered one.
//!
//! The socket is opened on the namespace's thread (a netlink socket belongs to the namespace
//! it was created in; so does an NFLOG group), then read on a thread of its own.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};

use super::packets::Packet;

/// The NFLOG group the drop rules log to when the trial is drawn (groups are per namespace).
pub const DROP_LOG_GROUP: u16 = 7;

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
/// Bytes of each dropped packet copied: the IP and TCP headers with their options.
const COPY_RANGE: u32 = 160;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const POLL_MS: u16 = 20;

#[derive(Debug, thiserror::Error)]
pub enum DropLogError {
    #[error("failed to open the NFLOG socket: {0}")]
    Open(Errno),
    #[error("the kernel refused to bind NFLOG group {group}: {errno}")]
    Bind { group: u16, errno: Errno },
    #[error("failed to start the NFLOG reader: {0}")]
    Spawn(std::io::Error),
}

/// A packet a drop rule took: when it was read (since the log started) and what it was.
#[derive(Debug, Clone)]
pub struct LoggedDrop {
    pub at: Duration,
    pub packet: Packet,
}

/// A bound NFLOG socket, not yet read.
pub struct DropLogSocket {
    fd: OwnedFd,
}

/// A running reader; [`DropLog::stop`] ends it and returns what was logged.
pub struct DropLog {
    start: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<LoggedDrop>>>,
}

fn nlmsg(kind: u16, flags: u16, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![0u8, 0, 0, 0];
    body[2..4].copy_from_slice(&group.to_be_bytes());
    for (t, v) in attrs {
        let len = 4 + v.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&t.to_ne_bytes());
        body.extend_from_slice(v);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut out = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    out.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&1u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&body);
    out
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Each netlink message in a datagram: (type, payload after the header).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = u32_at(buf, at)? as usize;
        let kind = u16_at(buf, at + 4)?;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return None;
        }
        let payload = &buf[at + NLMSG_HDRLEN..at + len];
        at += len.next_multiple_of(4);
        Some((kind, payload))
    })
}

/// The IP packet in one NFULNL_MSG_PACKET payload.
fn payload_of(msg: &[u8]) -> Option<&[u8]> {
    let mut at = NFGENMSG_LEN;
    while at + 4 <= msg.len() {
        let len = usize::from(u16_at(msg, at)?);
        let kind = u16_at(msg, at + 2)? & NLA_TYPE_MASK;
        if len < 4 || at + len > msg.len() {
            return None;
        }
        if kind == NFULA_PAYLOAD {
            return Some(&msg[at + 4..at + len]);
        }
        at += len.next_multiple_of(4);
    }
    None
}

/// An IP packet read as the Ethernet frame it would be, for the tap's parser.
fn packet_of(ip: &[u8], at: Duration) -> Option<Packet> {
    let ethertype: u16 = match ip.first()? >> 4 {
        4 => 0x0800,
        6 => 0x86dd,
        _ => return None,
    };
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(ip);
    // The IP header's own lengths say how long the packet was; the copy may be cut.
    Packet::from_ethernet(&frame, frame.len(), at)
}

impl DropLogSocket {
    /// Must run on the namespace's thread: binds [`DROP_LOG_GROUP`] of this namespace.
    pub fn open() -> Result<DropLogSocket, DropLogError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(DropLogError::Open)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(DropLogError::Open)?;
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(1usize << 20));
        let group = DROP_LOG_GROUP;
        let bind_err = |errno| DropLogError::Bind { group, errno };
        // struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; }
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        // A threshold of one: each packet is sent at once, not batched for the flush timer.
        let qthresh = 1u32.to_be_bytes();
        let msg = nlmsg(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            group,
            &[
                (NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]),
                (NFULA_CFG_MODE, &mode),
                (NFULA_CFG_QTHRESH, &qthresh),
            ],
        );
        send(fd.as_raw_fd(), &msg, MsgFlags::empty()).map_err(bind_err)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(bind_err(Errno::ETIMEDOUT));
            }
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            poll(&mut fds, PollTimeout::from(ms)).map_err(bind_err)?;
            let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(bind_err(e)),
            };
            for (kind, payload) in messages(&buf[..n]) {
                if kind == NLMSG_ERROR {
                    let code = u32_at(payload, 0).unwrap_or(0) as i32;
                    if code == 0 {
                        return Ok(DropLogSocket { fd });
                    }
                    return Err(bind_err(Errno::from_raw(-code)));
                }
            }
        }
    }

    /// Reads the group on a thread of its own until [`DropLog::stop`].
    pub fn start(self) -> Result<DropLog, DropLogError> {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("drop-log".into())
            .spawn(move || self.read(start, &flag))
            .map_err(DropLogError::Spawn)?;
        Ok(DropLog {
            start,
            stop,
            thread: Some(thread),
        })
    }

    fn read(self, start: Instant, stop: &AtomicBool) -> Vec<LoggedDrop> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let ready = poll(
                &mut fds,
                PollTimeout::from(if stopping { 0 } else { POLL_MS }),
            );
            if matches!(ready, Ok(n) if n > 0) {
                while let Ok(n) = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    let at = start.elapsed();
                    for (kind, payload) in messages(&buf[..n]) {
                        if kind != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
                            continue;
                        }
                        if let Some(packet) = payload_of(payload).and_then(|ip| packet_of(ip, at)) {
                            out.push(LoggedDrop { at, packet });
                        }
                    }
                }
            } else if stopping {
                return out;
            }
        }
    }
}

impl DropLog {
    /// The instant the drops' `at` counts from.
    pub fn clock_start(&self) -> Instant {
        self.start
    }

    /// Stops the reader (within one poll period, after reading what is queued).
    pub fn stop(mut self) -> Vec<LoggedDrop> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for DropLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_ipv4_ack_is_parsed_from_its_payload_attribute() {
        // IPv4 + TCP ACK, 40 bytes: 198.18.0.1:40000 -> 198.18.0.2:80.
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        ip.extend_from_slice(&40000u16.to_be_bytes());
        ip.extend_from_slice(&80u16.to_be_bytes());
        ip.extend_from_slice(&7u32.to_be_bytes());
        ip.extend_from_slice(&9u32.to_be_bytes());
        ip.extend_from_slice(&[0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        let msg = nlmsg(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET,
            0,
            DROP_LOG_GROUP,
            &[(10, b"twlab\0"), (NFULA_PAYLOAD, &ip)],
        );
        let (kind, payload) = messages(&msg).next().unwrap();
        assert_eq!(kind, (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET);
        let p = packet_of(payload_of(payload).unwrap(), Duration::ZERO).unwrap();
        assert_eq!(p.src.to_string(), "198.18.0.1:40000");
        assert_eq!((p.seq, p.ack, p.flags, p.payload_len), (7, 9, 0x10, 0));
    }
}
