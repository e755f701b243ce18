//! The NFQUEUE netlink protocol (`include/uapi/linux/netfilter/nfnetlink_queue.h`), only what a
//! delay line needs: bind a queue, configure it, read packet ids, send verdicts.
//!
//! Written here instead of using the `nfq` crate (0.2.5, the latest release): its `Queue` does
//! not expose its socket, so a holder cannot wait on it with a deadline nor be woken to stop,
//! and each held `Message` keeps its whole receive buffer (page + 64 KiB copy range) alive.
//!
//! The socket is opened by the caller on the namespace's thread (a netlink socket belongs to
//! the namespace it was created in) and then used from any thread.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// Attribute types carry two flag bits (nested, network byte order) above the type proper.
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;

/// Packets beyond the queue length are accepted instead of dropped.
pub const NFQA_CFG_F_FAIL_OPEN: u32 = 1 << 0;
/// GSO super-packets are queued whole instead of being segmented in software first.
pub const NFQA_CFG_F_GSO: u32 = 1 << 2;

const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_SKB_INFO: u16 = 14;
const NFQA_SKB_GSO: u32 = 1 << 1;

const NF_ACCEPT: u32 = 1;

/// How long a configuration request may wait for the kernel's answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Verdicts are sent in one datagram once this many bytes are pending (32 bytes each).
const VERDICT_BATCH_BYTES: usize = 32 * 1024;
/// Receive buffer: unread packet notices wait here while the holder is busy.
const RCVBUF: usize = 4 << 20;

/// A queued packet, as the kernel announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub id: u32,
    /// A GSO super-packet (several segments queued as one).
    pub gso: bool,
}

pub struct NfQueue {
    fd: OwnedFd,
    queue_num: u16,
    seq: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Packets read while waiting for a configuration answer, handed out by `recv_packets`.
    pending: Vec<Packet>,
    /// Error answers to verdicts (the kernel reports them even without NLM_F_ACK).
    pub verdict_errors: u64,
    /// Times the socket reported ENOBUFS: the kernel could not deliver a packet notice.
    pub overruns: u64,
}

impl NfQueue {
    /// A NETLINK_NETFILTER socket in the current thread's namespace (nonblocking).
    pub fn open(queue_num: u16) -> Result<NfQueue, Errno> {
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            flags,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, 0),
        )?;
        // Forcing past rmem_max needs CAP_NET_ADMIN; without it the default is kept.
        if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
        }
        Ok(NfQueue {
            fd,
            queue_num,
            seq: 0,
            rx: vec![0; 64 * 1024],
            tx: Vec::with_capacity(VERDICT_BATCH_BYTES + 64),
            pending: Vec::new(),
            verdict_errors: 0,
            overruns: 0,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Become the queue's listener (EBUSY: another socket already is).
    pub fn bind_queue(&mut self) -> Result<(), Errno> {
        // struct nfqnl_msg_config_cmd { u8 command; u8 _pad; __be16 pf; }
        self.configure(&[(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])])
    }

    /// Copy only metadata to userspace: the holder needs packet ids, not contents.
    pub fn copy_meta(&mut self) -> Result<(), Errno> {
        // struct nfqnl_msg_config_params { __be32 copy_range; u8 copy_mode; } (packed, 5 bytes)
        let mut params = [0u8; 5];
        params[4] = NFQNL_COPY_META;
        self.configure(&[(NFQA_CFG_PARAMS, &params)])
    }

    /// Packets held in the kernel at most; beyond it new ones are dropped (or accepted with
    /// NFQA_CFG_F_FAIL_OPEN).
    pub fn set_max_len(&mut self, len: u32) -> Result<(), Errno> {
        self.configure(&[(NFQA_CFG_QUEUE_MAXLEN, &len.to_be_bytes())])
    }

    /// Set the flags in `mask` to their values in `flags`.
    pub fn set_flags(&mut self, flags: u32, mask: u32) -> Result<(), Errno> {
        let (flags, mask) = (flags.to_be_bytes(), mask.to_be_bytes());
        self.configure(&[(NFQA_CFG_FLAGS, &flags), (NFQA_CFG_MASK, &mask)])
    }

    /// One configuration request, answered by the kernel (NLM_F_ACK).
    fn configure(&mut self, attrs: &[(u16, &[u8])]) -> Result<(), Errno> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut msg = Vec::with_capacity(64);
        put_header(
            &mut msg,
            NFQNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            self.queue_num,
        );
        for (kind, value) in attrs {
            put_attr(&mut msg, *kind, value);
        }
        finish(&mut msg, 0);
        self.send_all(&msg)?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            let n = match recv(raw(&self.fd), &mut self.rx, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Errno::ETIMEDOUT);
                    }
                    let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                    let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::from(ms)) {
                        Ok(_) | Err(Errno::EINTR) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    self.overruns += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(answer) = self.parse(n, Some(seq)) {
                return answer;
            }
        }
    }

    /// Read the packets that are waiting, at most `max`, without blocking. Returns how many
    /// were handed to `f`.
    pub fn recv_packets(&mut self, max: usize, mut f: impl FnMut(Packet)) -> Result<usize, Errno> {
        let mut count = 0;
        for p in self.pending.drain(..) {
            f(p);
            count += 1;
        }
        while count < max {
            let n = match recv(raw(&self.fd), &mut self.rx, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    self.overruns += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.parse(n, None);
            for p in self.pending.drain(..) {
                f(p);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Queue an ACCEPT verdict for packet `id`; sent by `flush` (or once enough are pending).
    pub fn accept(&mut self, id: u32) -> Result<(), Errno> {
        let start = self.tx.len();
        put_header(
            &mut self.tx,
            NFQNL_MSG_VERDICT,
            NLM_F_REQUEST,
            0,
            self.queue_num,
        );
        // struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
        hdr[4..].copy_from_slice(&id.to_be_bytes());
        put_attr(&mut self.tx, NFQA_VERDICT_HDR, &hdr);
        finish(&mut self.tx, start);
        if self.tx.len() >= VERDICT_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Send the pending verdicts: several netlink messages in one datagram, which the kernel
    /// processes in order.
    pub fn flush(&mut self) -> Result<(), Errno> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let tx = std::mem::take(&mut self.tx);
        let sent = self.send_all(&tx);
        self.tx = tx;
        self.tx.clear();
        sent
    }

    fn send_all(&self, msg: &[u8]) -> Result<(), Errno> {
        loop {
            match send(raw(&self.fd), msg, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
                    match poll(&mut fds, PollTimeout::from(100u16)) {
                        Ok(_) | Err(Errno::EINTR) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Walk the messages of one datagram: packets go to `pending`; the answer to request `seq`
    /// (if awaited and present) is returned; other error answers count as verdict errors.
    fn parse(&mut self, n: usize, awaited: Option<u32>) -> Option<Result<(), Errno>> {
        let mut answer = None;
        let mut rest = &self.rx[..n.min(self.rx.len())];
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32_ne(&rest[0..4]) as usize;
            if len < NLMSG_HDRLEN || len > rest.len() {
                break;
            }
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let seq = u32_ne(&rest[8..12]);
            let body = &rest[NLMSG_HDRLEN..len];
            if kind == NLMSG_ERROR && body.len() >= 4 {
                let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                let result = match code {
                    0 => Ok(()),
                    c => Err(Errno::from_raw(-c)),
                };
                if awaited == Some(seq) {
                    answer = Some(result);
                } else if result.is_err() {
                    self.verdict_errors += 1;
                }
            } else if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
                && let Some(p) = parse_packet(body)
            {
                self.pending.push(p);
            }
            rest = &rest[align(len).min(rest.len())..];
        }
        answer
    }
}

fn raw(fd: &OwnedFd) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

fn u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// nlmsghdr (length filled in by `finish`) and nfgenmsg (AF_UNSPEC, version 0, queue number).
fn put_header(buf: &mut Vec<u8>, msg: u16, flags: u16, seq: u32, queue_num: u16) {
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&queue_num.to_be_bytes());
}

fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align(buf.len()), 0);
}

/// Write the length of the message that starts at `start`.
fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// The packet id and GSO flag of an NFQNL_MSG_PACKET body (nfgenmsg, then attributes).
fn parse_packet(body: &[u8]) -> Option<Packet> {
    let mut attrs = body.get(NFGENMSG_LEN..)?;
    let (mut id, mut gso) = (None, false);
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            break;
        }
        let value = &attrs[4..len];
        match kind {
            // struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16 hw_protocol; u8 hook; }
            NFQA_PACKET_HDR if value.len() >= 4 => {
                id = Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]));
            }
            NFQA_SKB_INFO if value.len() >= 4 => {
                let info = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                gso = info & NFQA_SKB_GSO != 0;
            }
            _ => {}
        }
        attrs = &attrs[align(len).min(attrs.len())..];
    }
    id.map(|id| Packet { id, gso })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_message_layout() {
        let mut buf = Vec::new();
        put_header(&mut buf, NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, 2);
        put_attr(&mut buf, NFQA_VERDICT_HDR, &[0, 0, 0, 1, 0, 0, 0, 7]);
        finish(&mut buf, 0);
        assert_eq!(buf.len(), 32);
        assert_eq!(u32_ne(&buf[0..4]), 32);
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x0301);
        assert_eq!(&buf[18..20], &[0, 2], "queue number, big endian");
        assert_eq!(u16::from_ne_bytes([buf[20], buf[21]]), 12, "nla_len");
    }

    #[test]
    fn odd_sized_attributes_are_padded() {
        let mut buf = Vec::new();
        put_attr(&mut buf, NFQA_CFG_PARAMS, &[0; 5]);
        assert_eq!(buf.len(), 12);
        assert_eq!(
            u16::from_ne_bytes([buf[0], buf[1]]),
            9,
            "nla_len excludes padding"
        );
    }

    #[test]
    fn parses_packet_id_and_gso_flag() {
        let mut body = vec![0, 0, 0, 1];
        put_attr(&mut body, NFQA_PACKET_HDR, &[0, 0, 1, 2, 8, 0, 4]);
        put_attr(&mut body, NFQA_SKB_INFO, &2u32.to_be_bytes());
        let p = parse_packet(&body).expect("a packet");
        assert_eq!(p, Packet { id: 258, gso: true });
        assert_eq!(parse_packet(&[0, 0, 0, 1]), None);
    }
}
