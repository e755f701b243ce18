//! A packet tap on one interface of a namespace: an AF_PACKET socket (SOCK_RAW, ETH_P_ALL) bound
//! to the interface sees every frame it sends (PACKET_OUTGOING) and receives, once each. TCP
//! segments over IPv4 and IPv6 are classified (SYN, SYN_ACK, FIN, RST, ACK, DATA); every frame,
//! TCP or not (ARP, NDP, ICMP), is kept for the pcap file.
//!
//! The socket belongs to the namespace it was created in, so [`PacketTap::start`] must run on
//! that namespace's thread (inside `Namespace::run`). A plain thread then reads frames until
//! [`PacketTap::stop`]. Timestamps come from the kernel (SO_TIMESTAMPNS), taken when the frame
//! passed the tap point.
//!
//! veth may hand the tap GSO super-packets (one frame carrying several MSS of data): they are
//! recorded as seen, one `Packet` with the whole payload length.

use crate::vocab::{TcpKind, tcp_flags};
use std::collections::BTreeMap;
use std::fmt;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket, TcpHeaderSlice};
use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockType, recvmsg,
    setsockopt, socket, sockopt,
};

pub use super::pcap::{PcapRecord, read_pcap};

/// Frames kept by default; later ones are counted as truncated.
pub const DEFAULT_MAX_FRAMES: usize = 200_000;
/// Bytes of each frame kept for the pcap by default: every header of a TCP/IP frame fits.
pub const DEFAULT_SNAPLEN: usize = 256;

/// Bytes read per frame: more than a veth GSO super-packet (64 KiB) and the BIG TCP sizes; a
/// longer frame is still classified from its headers and its length is known (MSG_TRUNC).
const RECV_BUF: usize = 256 * 1024;
/// Socket receive buffer asked for, so that a burst is not dropped while the reader sleeps.
const SOCKET_RCVBUF: usize = 8 * 1024 * 1024;
/// How long the reader sleeps in poll before it looks at the stop flag.
const POLL_MS: u8 = 20;
/// How long stop() lets the reader drain what is already queued.
const DRAIN_LIMIT: Duration = Duration::from_millis(50);

const ETH_P_ALL: u16 = libc::ETH_P_ALL as u16;
const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;
const ARPHRD_LOOPBACK: u16 = libc::ARPHRD_LOOPBACK;

/// One TCP segment seen on the tapped interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Since the tap started.
    pub at: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub kind: TcpKind,
    /// Raw TCP flags (see [`tcp_flags`]).
    pub flags: u8,
    /// TCP payload bytes, from the IP header's length fields (the frame's length when the
    /// header says 0, as for BIG TCP super-packets).
    pub payload_len: usize,
    pub seq: u32,
    pub ack: u32,
}

impl Packet {
    /// Parse an Ethernet frame. `wire_len` is the frame's full length (`frame` may be cut
    /// short). `None` for anything that is not an unfragmented TCP segment over IPv4 or IPv6,
    /// and for malformed frames; never panics.
    pub fn from_ethernet(frame: &[u8], wire_len: usize, at: Duration) -> Option<Packet> {
        let sliced = LaxSlicedPacket::from_ethernet(frame).ok()?;
        let base = frame.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize).saturating_sub(base);
        let wire_len = wire_len.max(frame.len());
        let (src_ip, dst_ip, payload, declared): (IpAddr, IpAddr, _, Option<usize>) =
            match sliced.net? {
                LaxNetSlice::Ipv4(ip) => {
                    let h = ip.header();
                    let p = ip.payload();
                    // total_len counts the IP header and its extensions (AH) too.
                    let before = offset(p.payload).saturating_sub(offset(h.slice()));
                    let total = usize::from(h.total_len());
                    let declared = (total != 0).then(|| total.saturating_sub(before));
                    (
                        h.source_addr().into(),
                        h.destination_addr().into(),
                        p.clone(),
                        declared,
                    )
                }
                LaxNetSlice::Ipv6(ip) => {
                    let h = ip.header();
                    let p = ip.payload();
                    // payload_length counts the extension headers, not the fixed header.
                    let exts = offset(p.payload)
                        .saturating_sub(offset(h.slice()))
                        .saturating_sub(h.slice().len());
                    let len = usize::from(h.payload_length());
                    let declared = (len != 0).then(|| len.saturating_sub(exts));
                    (
                        h.source_addr().into(),
                        h.destination_addr().into(),
                        p.clone(),
                        declared,
                    )
                }
                LaxNetSlice::Arp(_) => return None,
            };
        if payload.ip_number != IpNumber::TCP || payload.fragmented {
            return None;
        }
        let tcp = TcpHeaderSlice::from_slice(payload.payload).ok()?;
        let ip_payload_len =
            declared.unwrap_or_else(|| wire_len.saturating_sub(offset(payload.payload)));
        let payload_len = ip_payload_len.saturating_sub(tcp.slice().len());
        let flags = tcp.slice()[13];
        Some(Packet {
            at,
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            kind: TcpKind::classify(flags, payload_len),
            flags,
            payload_len,
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
        })
    }

    /// tcpdump's flag letters: S F R P U E W and `.` for ACK.
    pub fn flags_text(&self) -> String {
        use tcp_flags::*;
        let mut s = String::new();
        for (bit, c) in [
            (SYN, 'S'),
            (FIN, 'F'),
            (RST, 'R'),
            (PSH, 'P'),
            (URG, 'U'),
            (ECE, 'E'),
            (CWR, 'W'),
            (ACK, '.'),
        ] {
            if self.flags & bit != 0 {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "+{:.6}s {} > {} {} [{}] seq={} ack={} len={}",
            self.at.as_secs_f64(),
            self.src,
            self.dst,
            self.kind,
            self.flags_text(),
            self.seq,
            self.ack,
            self.payload_len
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the tapped interface.
    In,
    /// Sent by the tapped interface (sll_pkttype PACKET_OUTGOING).
    Out,
}

/// One frame as captured, for the pcap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Since the tap started.
    pub at: Duration,
    pub direction: Direction,
    /// The frame's full length; `data` holds at most the snap length of it.
    pub wire_len: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapOptions {
    /// Frames kept at most; the rest are counted in `Capture::truncated`.
    pub max_frames: usize,
    /// Bytes of each frame kept for the pcap (classification always sees the whole frame).
    pub snaplen: usize,
}

impl Default for TapOptions {
    fn default() -> Self {
        TapOptions {
            max_frames: DEFAULT_MAX_FRAMES,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("failed to tap `{ifname}`: no such interface in this namespace ({errno})")]
    NoInterface { ifname: String, errno: Errno },
    #[error(
        "failed to open an AF_PACKET socket on `{ifname}`: {errno} (the tap needs CAP_NET_RAW)"
    )]
    Open { ifname: String, errno: Errno },
    #[error("failed to set {option} on the AF_PACKET socket on `{ifname}`: {errno}")]
    SetOption {
        ifname: String,
        option: &'static str,
        errno: Errno,
    },
    #[error("failed to bind the AF_PACKET socket to `{ifname}` (ifindex {ifindex}): {errno}")]
    Bind {
        ifname: String,
        ifindex: u32,
        errno: Errno,
    },
    #[error("failed to start the reader thread of the tap on `{ifname}`: {source}")]
    Spawn {
        ifname: String,
        source: std::io::Error,
    },
}

/// What the reader has gathered so far.
#[derive(Default)]
struct State {
    frames: Vec<Frame>,
    packets: Vec<Packet>,
    truncated: u64,
    kernel_drops: u64,
    /// Times the interface went down under the tap (ENETDOWN from recvmsg).
    netdown: u64,
    error: Option<String>,
}

/// A running tap; [`PacketTap::stop`] ends it and hands over the [`Capture`]. Dropping it
/// without `stop` also ends the reader thread.
pub struct PacketTap {
    ifname: String,
    options: TapOptions,
    started: SystemTime,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PacketTap {
    /// Must be called on the namespace's thread (inside `Namespace::run`): opens an AF_PACKET
    /// socket bound to `ifname` in the current namespace and starts the reader thread.
    pub fn start(ifname: &str) -> Result<PacketTap, TapError> {
        Self::start_with(ifname, TapOptions::default())
    }

    pub fn start_with(ifname: &str, options: TapOptions) -> Result<PacketTap, TapError> {
        let name = || ifname.to_string();
        let ifindex =
            nix::net::if_::if_nametoindex(ifname).map_err(|errno| TapError::NoInterface {
                ifname: name(),
                errno,
            })?;
        // Protocol 0: the socket receives nothing until bind names the interface, so no frame
        // of another interface slips in between.
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|errno| TapError::Open {
            ifname: name(),
            errno,
        })?;
        let set_err = |option: &'static str| {
            move |errno| TapError::SetOption {
                ifname: ifname.to_string(),
                option,
                errno,
            }
        };
        if setsockopt(&fd, sockopt::RcvBufForce, &SOCKET_RCVBUF).is_err() {
            setsockopt(&fd, sockopt::RcvBuf, &SOCKET_RCVBUF).map_err(set_err("SO_RCVBUF"))?;
        }
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true).map_err(set_err("SO_TIMESTAMPNS"))?;
        bind_ll(&fd, ifindex).map_err(|errno| TapError::Bind {
            ifname: name(),
            ifindex,
            errno,
        })?;
        let started = SystemTime::now();
        let start = Instant::now();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            fd,
            options,
            started,
            start,
            state: state.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("tap-{ifname}"))
            .spawn(move || reader.run())
            .map_err(|source| TapError::Spawn {
                ifname: name(),
                source,
            })?;
        Ok(PacketTap {
            ifname: name(),
            options,
            started,
            state,
            stop,
            thread: Some(thread),
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The TCP packets seen so far.
    pub fn packets(&self) -> Vec<Packet> {
        lock(&self.state).packets.clone()
    }

    /// Wait until `done` holds for the packets seen so far, at most `timeout`. Returns whether
    /// it held. Handy to wait for the last segment of a close before stopping the tap.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Packet]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&lock(&self.state).packets) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the reader thread (within about 70 ms: one poll period plus the final drain of
    /// what is already queued) and returns what was seen.
    pub fn stop(mut self) -> Capture {
        self.halt();
        let state = std::mem::take(&mut *lock(&self.state));
        Capture {
            ifname: std::mem::take(&mut self.ifname),
            started: self.started,
            snaplen: self.options.snaplen,
            max_frames: self.options.max_frames,
            packets: state.packets,
            frames: state.frames,
            truncated: state.truncated,
            kernel_drops: state.kernel_drops,
            netdown: state.netdown,
            error: state.error,
        }
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PacketTap {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind_ll(fd: &OwnedFd, ifindex: u32) -> Result<(), Errno> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the pointer and length describe `sll`, which outlives the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}

/// Frames the kernel dropped because the socket's buffer was full, since the last call.
fn kernel_drops(fd: &OwnedFd) -> Option<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `stats`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(u64::from(stats.tp_drops))
}

struct Reader {
    fd: OwnedFd,
    options: TapOptions,
    started: SystemTime,
    start: Instant,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

enum Recv {
    Frame,
    Empty,
    Failed(Errno),
}

impl Reader {
    fn run(self) {
        let mut buf = vec![0u8; RECV_BUF];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            if !stopping {
                let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                    Ok(0) | Err(Errno::EINTR) => continue,
                    Ok(_) => {}
                    Err(e) => {
                        self.fail(format!("poll failed: {e}"));
                        break;
                    }
                }
            }
            // Read everything queued; when stopping, for at most DRAIN_LIMIT.
            let drain_until = Instant::now() + DRAIN_LIMIT;
            let mut failed = false;
            loop {
                match self.recv_one(&mut buf, &mut cmsg) {
                    Recv::Frame => {}
                    Recv::Empty => break,
                    Recv::Failed(Errno::EINTR) => {}
                    Recv::Failed(Errno::ENETDOWN) => lock(&self.state).netdown += 1,
                    Recv::Failed(e) => {
                        self.fail(format!("recvmsg failed: {e}"));
                        failed = true;
                        break;
                    }
                }
                if stopping && Instant::now() >= drain_until {
                    break;
                }
                if !stopping && self.stop.load(Ordering::Acquire) {
                    break; // the next turn drains, bounded
                }
            }
            if stopping || failed {
                break;
            }
        }
        if let Some(d) = kernel_drops(&self.fd) {
            lock(&self.state).kernel_drops += d;
        }
    }

    fn fail(&self, msg: String) {
        lock(&self.state).error.get_or_insert(msg);
    }

    fn recv_one(&self, buf: &mut [u8], cmsg: &mut [u8]) -> Recv {
        let (len, pkttype, hatype, stamp) = {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match recvmsg::<LinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) {
                Ok(m) => m,
                Err(Errno::EAGAIN) => return Recv::Empty,
                Err(e) => return Recv::Failed(e),
            };
            let stamp = msg.cmsgs().ok().and_then(|mut it| {
                it.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(Duration::new(
                        u64::try_from(ts.tv_sec()).ok()?,
                        u32::try_from(ts.tv_nsec()).ok()?,
                    )),
                    _ => None,
                })
            });
            let (pkttype, hatype) = msg
                .address
                .map(|a| (a.pkttype(), a.hatype()))
                .unwrap_or((0, 0));
            (msg.bytes, pkttype, hatype, stamp)
        };
        // On loopback every frame shows up twice, as sent and as received: keep one.
        if hatype == ARPHRD_LOOPBACK && pkttype == PACKET_OUTGOING {
            return Recv::Frame;
        }
        let at = self.timestamp(stamp);
        let data = &buf[..len.min(buf.len())];
        let packet = Packet::from_ethernet(data, len, at);
        let frame = Frame {
            at,
            direction: if pkttype == PACKET_OUTGOING {
                Direction::Out
            } else {
                Direction::In
            },
            wire_len: len,
            data: data[..data.len().min(self.options.snaplen)].to_vec(),
        };
        let mut st = lock(&self.state);
        if st.frames.len() >= self.options.max_frames {
            st.truncated += 1;
        } else {
            st.frames.push(frame);
            st.packets.extend(packet);
        }
        Recv::Frame
    }

    /// The kernel's timestamp relative to the start, unless it is missing or implausible (a
    /// stepped clock, or a frame stamped in the future): then the time the reader saw it.
    fn timestamp(&self, stamp: Option<Duration>) -> Duration {
        let elapsed = self.start.elapsed();
        let start = self.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        stamp
            .and_then(|s| s.checked_sub(start))
            .filter(|at| *at <= elapsed + Duration::from_millis(100))
            .unwrap_or(elapsed)
    }
}

/// What a tap saw.
#[derive(Debug, Clone)]
pub struct Capture {
    pub ifname: String,
    /// Wall-clock time the tap started; `at` values count from here.
    pub started: SystemTime,
    pub snaplen: usize,
    pub max_frames: usize,
    /// TCP segments, in the order seen.
    pub packets: Vec<Packet>,
    /// Every frame kept (TCP or not), cut to `snaplen`, in the order seen.
    pub frames: Vec<Frame>,
    /// Frames seen after `max_frames` were kept: not in `frames` nor `packets`.
    pub truncated: u64,
    /// Frames the kernel dropped because the tap's socket buffer was full.
    pub kernel_drops: u64,
    /// Times the interface went down while tapped.
    pub netdown: u64,
    /// Why the reader stopped early, if it did.
    pub error: Option<String>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            ifname: String::new(),
            started: UNIX_EPOCH,
            snaplen: DEFAULT_SNAPLEN,
            max_frames: DEFAULT_MAX_FRAMES,
            packets: Vec::new(),
            frames: Vec::new(),
            truncated: 0,
            kernel_drops: 0,
            netdown: 0,
            error: None,
        }
    }
}

impl Capture {
    /// Packets of `kind` (any kind if `None`) sent from `src_ip` (any source if `None`).
    pub fn count(&self, kind: Option<TcpKind>, src_ip: Option<IpAddr>) -> usize {
        self.select(kind, src_ip).count()
    }

    pub fn select(
        &self,
        kind: Option<TcpKind>,
        src_ip: Option<IpAddr>,
    ) -> impl Iterator<Item = &Packet> {
        self.packets.iter().filter(move |p| {
            kind.is_none_or(|k| p.kind == k) && src_ip.is_none_or(|ip| p.src.ip() == ip)
        })
    }

    /// Frames that were not classified as TCP (ARP, NDP, ICMP...).
    pub fn other_frames(&self) -> usize {
        self.frames.len().saturating_sub(self.packets.len())
    }

    /// Write a classic libpcap file (LINKTYPE_ETHERNET, microsecond timestamps).
    pub fn write_pcap(&self, path: &Path) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        super::pcap::write_pcap(
            file,
            u32::try_from(self.snaplen).unwrap_or(u32::MAX),
            self.frames
                .iter()
                .map(|f| (self.started + f.at, f.data.as_slice(), f.wire_len)),
        )
    }

    /// Counts per direction (source IP -> destination IP, in order of first appearance), e.g.
    /// `198.18.0.1 -> 198.18.0.2: SYN 1, ACK 3, FIN 1; 198.18.0.2 -> 198.18.0.1: SYN_ACK 1,
    /// ACK 2, FIN 1; 2 other frames`.
    pub fn summary(&self) -> String {
        let mut order: Vec<(IpAddr, IpAddr)> = Vec::new();
        let mut counts: BTreeMap<(IpAddr, IpAddr), BTreeMap<TcpKind, usize>> = BTreeMap::new();
        for p in &self.packets {
            let dir = (p.src.ip(), p.dst.ip());
            if !counts.contains_key(&dir) {
                order.push(dir);
            }
            *counts.entry(dir).or_default().entry(p.kind).or_default() += 1;
        }
        let mut parts: Vec<String> = order
            .iter()
            .map(|dir| {
                let c = &counts[dir];
                let kinds: Vec<String> = TcpKind::SUMMARY_ORDER
                    .iter()
                    .filter_map(|k| c.get(k).map(|n| format!("{k} {n}")))
                    .collect();
                format!("{} -> {}: {}", dir.0, dir.1, kinds.join(", "))
            })
            .collect();
        if parts.is_empty() {
            parts.push(format!("no TCP packets on `{}`", self.ifname));
        }
        let other = self.other_frames();
        if other > 0 {
            parts.push(format!(
                "{other} other frame{}",
                if other == 1 { "" } else { "s" }
            ));
        }
        if self.truncated > 0 {
            parts.push(format!(
                "TRUNCATED: {} more frames not kept (cap {})",
                self.truncated, self.max_frames
            ));
        }
        if self.kernel_drops > 0 {
            parts.push(format!(
                "INCOMPLETE: the kernel dropped {} frames (tap buffer full)",
                self.kernel_drops
            ));
        }
        if self.netdown > 0 {
            parts.push(format!(
                "`{}` went down {} times",
                self.ifname, self.netdown
            ));
        }
        if let Some(e) = &self.error {
            parts.push(format!("INCOMPLETE: the tap stopped early: {e}"));
        }
        parts.join("; ")
    }

    /// One line per TCP packet, for evidence.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for p in &self.packets {
            s.push_str(&p.to_string());
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn v4(
        build: impl FnOnce(
            etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        payload: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .tcp(40000, 8080, 1000, 64240);
        let b = build(b);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).unwrap();
        out
    }

    fn v6(
        build: impl FnOnce(
            etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        payload: &[u8],
    ) -> Vec<u8> {
        let src: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
        let b = PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv6(src.octets(), dst.octets(), 64)
            .tcp(8080, 40000, 7, 64240);
        let b = build(b);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).unwrap();
        out
    }

    fn parse(frame: &[u8]) -> Option<Packet> {
        Packet::from_ethernet(frame, frame.len(), Duration::ZERO)
    }

    #[test]
    fn classifies_every_kind_over_ipv4() {
        let cases: Vec<(Vec<u8>, TcpKind)> = vec![
            (v4(|b| b.syn(), b""), TcpKind::Syn),
            (v4(|b| b.syn().ack(5), b""), TcpKind::SynAck),
            (v4(|b| b.ack(5), b""), TcpKind::Ack),
            (v4(|b| b.ack(5).psh(), b"hello"), TcpKind::Data),
            (v4(|b| b.fin().ack(5), b""), TcpKind::Fin),
            (v4(|b| b.fin().ack(5).psh(), b"bye"), TcpKind::Fin),
            (v4(|b| b.rst(), b""), TcpKind::Rst),
            (v4(|b| b.rst().ack(5), b""), TcpKind::Rst),
        ];
        for (frame, kind) in cases {
            let p = parse(&frame).expect("a TCP frame");
            assert_eq!(p.kind, kind, "{p}");
            assert_eq!(p.src, "198.18.0.1:40000".parse().unwrap());
            assert_eq!(p.dst, "198.18.0.2:8080".parse().unwrap());
            assert_eq!(p.seq, 1000);
        }
        let data = parse(&v4(|b| b.ack(77).psh(), b"hello")).unwrap();
        assert_eq!((data.payload_len, data.ack), (5, 77));
        assert_eq!(data.flags, tcp_flags::ACK | tcp_flags::PSH);
        assert_eq!(data.flags_text(), "P.");
    }

    #[test]
    fn classifies_ipv6() {
        let p = parse(&v6(|b| b.syn().ack(1), b"")).unwrap();
        assert_eq!(p.kind, TcpKind::SynAck);
        assert_eq!(p.src, "[fd00::2]:8080".parse().unwrap());
        let p = parse(&v6(|b| b.ack(1), &[0u8; 1000])).unwrap();
        assert_eq!((p.kind, p.payload_len), (TcpKind::Data, 1000));
    }

    #[test]
    fn payload_length_comes_from_the_ip_header() {
        // A frame cut short (snap length, or a super-packet longer than the read buffer).
        let full = v4(|b| b.ack(1), &[0u8; 3000]);
        let p = Packet::from_ethernet(&full[..100], full.len(), Duration::ZERO).unwrap();
        assert_eq!((p.kind, p.payload_len), (TcpKind::Data, 3000));
        // BIG TCP: IPv4 total length 0, the frame length counts.
        let mut big = full.clone();
        big[16] = 0;
        big[17] = 0;
        let p = Packet::from_ethernet(&big[..100], 14 + 20 + 20 + 70_000, Duration::ZERO);
        assert_eq!(p.unwrap().payload_len, 70_000);
        let full6 = v6(|b| b.ack(1), &[0u8; 2000]);
        let p = Packet::from_ethernet(&full6[..90], full6.len(), Duration::ZERO).unwrap();
        assert_eq!(p.payload_len, 2000);
    }

    #[test]
    fn other_frames_are_not_packets() {
        // ARP request.
        let arp = PacketBuilder::ethernet2(MAC_A, [0xff; 6]).arp(
            etherparse::ArpPacket::new(
                etherparse::ArpHardwareId::ETHERNET,
                etherparse::EtherType::IPV4,
                etherparse::ArpOperation::REQUEST,
                &MAC_A,
                &[198, 18, 0, 1],
                &[0; 6],
                &[198, 18, 0, 2],
            )
            .unwrap(),
        );
        let mut frame = Vec::new();
        arp.write(&mut frame).unwrap();
        assert_eq!(parse(&frame), None);
        // UDP over IPv4.
        let udp = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(1, 2);
        let mut frame = Vec::new();
        udp.write(&mut frame, b"x").unwrap();
        assert_eq!(parse(&frame), None);
        // ICMPv6 (NDP neighbour solicitation is ICMPv6 too).
        let icmp = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6([0xfd; 16], [0xfd; 16], 255)
            .icmpv6_echo_request(1, 1);
        let mut frame = Vec::new();
        icmp.write(&mut frame, b"").unwrap();
        assert_eq!(parse(&frame), None);
    }

    #[test]
    fn malformed_frames_do_not_panic() {
        let good = v4(|b| b.syn(), b"");
        for n in 0..good.len() {
            let _ = Packet::from_ethernet(&good[..n], good.len(), Duration::ZERO);
            let _ = Packet::from_ethernet(&good[..n], 0, Duration::ZERO);
        }
        // Corrupt each byte in turn.
        for i in 0..good.len() {
            for v in [0u8, 0x0f, 0xff] {
                let mut f = good.clone();
                f[i] = v;
                let _ = parse(&f);
            }
        }
        // Pseudo-random bytes.
        let mut x: u32 = 12345;
        for len in 0..300 {
            let f: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&f);
        }
    }

    #[test]
    fn counts_and_summary() {
        let frames = [
            v4(|b| b.syn(), b""),
            v4(|b| b.ack(1), b""),
            v4(|b| b.fin().ack(1), b""),
        ];
        let mut cap = Capture {
            ifname: "to-server".into(),
            max_frames: 10,
            ..Capture::default()
        };
        for f in &frames {
            cap.packets.push(parse(f).unwrap());
            cap.frames.push(Frame {
                at: Duration::ZERO,
                direction: Direction::Out,
                wire_len: f.len(),
                data: f.clone(),
            });
        }
        cap.frames.push(Frame {
            at: Duration::ZERO,
            direction: Direction::In,
            wire_len: 42,
            data: vec![0; 42],
        });
        cap.truncated = 3;
        let client: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(cap.count(Some(TcpKind::Syn), Some(client)), 1);
        assert_eq!(cap.count(None, Some(client)), 3);
        assert_eq!(cap.count(Some(TcpKind::Rst), None), 0);
        assert_eq!(
            cap.summary(),
            "198.18.0.1 -> 198.18.0.2: SYN 1, ACK 1, FIN 1; 1 other frame; \
             TRUNCATED: 3 more frames not kept (cap 10)"
        );
    }
}
