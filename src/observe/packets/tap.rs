//! A packet tap on one interface of a namespace: an AF_PACKET socket (SOCK_RAW, ETH_P_ALL) bound
//! to the interface sees every frame it sends (PACKET_OUTGOING) and receives, once each. TCP
//! segments over IPv4 and IPv6 are classified (SYN, SYN_ACK, FIN, RST, ACK, DATA); every frame,
//! TCP or not (ARP, NDP, ICMP), is kept for the pcap file.
//!
//! The socket belongs to the namespace it was created in, so [`PacketTap::start`] must run on
//! that namespace's thread (inside `Namespace::run`). A plain thread then reads frames until
//! [`PacketTap::stop`]. Frames arrive through a mapped ring (`ring.rs`: the kernel copies
//! each frame's headers and lets go of the packet at once, so the tap changes nothing TCP
//! does). Timestamps come from the kernel, taken when the frame passed the tap point.
//!
//! veth may hand the tap GSO super-packets (one frame carrying several MSS of data): they are
//! recorded as seen, one `Packet` with the whole payload length.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, getsockopt, socket, sockopt};

use super::capture::Capture;
use super::packet::Packet;
use super::ring::Ring;

/// Frames kept by default; later ones are counted as truncated.
pub const DEFAULT_MAX_FRAMES: usize = 200_000;
/// Bytes of each frame kept for the pcap by default: every header of a TCP/IP frame fits.
pub const DEFAULT_SNAPLEN: usize = 256;

/// How long the reader sleeps in poll before it looks at the stop flag.
const POLL_MS: u8 = 20;
/// How long stop() lets the reader drain what is already queued.
const DRAIN_LIMIT: Duration = Duration::from_millis(50);

const ETH_P_ALL: u16 = libc::ETH_P_ALL as u16;
const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;
const ARPHRD_LOOPBACK: u16 = libc::ARPHRD_LOOPBACK;

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
    /// Bytes of each frame kept for the pcap (classification sees the ring slot's copy, 446
    /// bytes: every header).
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
    /// Times the interface went down under the tap (ENETDOWN as the socket's error).
    netdown: u64,
    error: Option<String>,
}

/// A running tap; [`PacketTap::stop`] ends it and hands over the [`Capture`]. Dropping it
/// without `stop` also ends the reader thread.
pub struct PacketTap {
    ifname: String,
    options: TapOptions,
    started: SystemTime,
    /// The monotonic instant packets' `at` counts from.
    start: Instant,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// Times the reader found the socket's queue empty.
    drained: Arc<AtomicU64>,
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
        // The ring before bind: from bind on, every frame goes to it.
        let ring = Ring::map(&fd).map_err(|(option, errno)| TapError::SetOption {
            ifname: name(),
            option,
            errno,
        })?;
        bind_ll(&fd, ifindex).map_err(|errno| TapError::Bind {
            ifname: name(),
            ifindex,
            errno,
        })?;
        let started = SystemTime::now();
        let start = Instant::now();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let drained = Arc::new(AtomicU64::new(0));
        let mono_start = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .ok()
            .and_then(|t| {
                Some(Duration::new(
                    u64::try_from(t.tv_sec()).ok()?,
                    u32::try_from(t.tv_nsec()).ok()?,
                ))
            });
        let reader = Reader {
            fd,
            ring,
            options,
            started,
            start,
            mono_start,
            state: state.clone(),
            stop: stop.clone(),
            drained: drained.clone(),
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
            start,
            state,
            stop,
            drained,
            thread: Some(thread),
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The instant the packets' `at` counts from, to align the tap's clock with another's.
    pub fn clock_start(&self) -> Instant {
        self.start
    }

    /// A handle that reads this tap's packets while it runs, from another thread.
    pub fn watch(&self) -> TapWatch {
        TapWatch {
            state: self.state.clone(),
            start: self.start,
        }
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

    /// Wait (at most `timeout`) until the reader has read every frame queued before this call:
    /// until it has found the queue empty twice since (once could be a look begun before).
    /// Returns whether it did.
    pub fn sync(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let from = self.drained.load(Ordering::Acquire);
        while self.drained.load(Ordering::Acquire) < from + 2 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
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

/// Reads a running tap's packets from another thread (the state log's poller), without
/// stopping it; the tap's reader keeps them.
#[derive(Clone)]
pub struct TapWatch {
    state: Arc<Mutex<State>>,
    start: Instant,
}

impl TapWatch {
    /// The packets seen after the first `from`, and the count seen so far.
    pub fn since(&self, from: usize) -> (Vec<Packet>, usize) {
        let st = lock(&self.state);
        let n = st.packets.len();
        (st.packets.get(from..).unwrap_or_default().to_vec(), n)
    }

    /// The instant the packets' `at` counts from.
    pub fn clock_start(&self) -> Instant {
        self.start
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
    ring: Ring,
    options: TapOptions,
    started: SystemTime,
    start: Instant,
    /// CLOCK_MONOTONIC when the tap started (`None` if it could not be read).
    mono_start: Option<Duration>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    drained: Arc<AtomicU64>,
}

impl Reader {
    fn run(mut self) {
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            if !stopping {
                let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                    Ok(0) => {
                        self.drained.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    Err(Errno::EINTR) => continue,
                    Ok(_) => {
                        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                        if revents.contains(PollFlags::POLLERR) && !self.take_error() {
                            break;
                        }
                    }
                    Err(e) => {
                        self.fail(format!("poll failed: {e}"));
                        break;
                    }
                }
            }
            // Read everything the ring holds; when stopping, for at most DRAIN_LIMIT.
            let drain_until = Instant::now() + DRAIN_LIMIT;
            while self.read_one() {
                if stopping && Instant::now() >= drain_until {
                    break;
                }
                if !stopping && self.stop.load(Ordering::Acquire) {
                    break; // the next turn drains, bounded
                }
            }
            self.drained.fetch_add(1, Ordering::AcqRel);
            if stopping {
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

    /// The socket's pending error, cleared (SO_ERROR). The interface going down under the tap
    /// (ENETDOWN) is counted and the tap goes on; any other error ends it. Returns whether
    /// to go on.
    fn take_error(&self) -> bool {
        match getsockopt(&self.fd, sockopt::SocketError) {
            Ok(0) => true,
            Ok(e) if e == libc::ENETDOWN => {
                lock(&self.state).netdown += 1;
                true
            }
            Ok(e) => {
                self.fail(format!("socket error: {}", Errno::from_raw(e)));
                false
            }
            Err(e) => {
                self.fail(format!("getsockopt(SO_ERROR) failed: {e}"));
                false
            }
        }
    }

    /// Takes the next frame out of the ring, if the kernel has filled it.
    fn read_one(&mut self) -> bool {
        let Some(f) = self.ring.next() else {
            return false;
        };
        // On loopback every frame shows up twice, as sent and as received: keep one.
        if !(f.hatype == ARPHRD_LOOPBACK && f.pkttype == PACKET_OUTGOING) {
            let at = self.timestamp(Some(f.stamp));
            let packet = Packet::from_ethernet(f.data, f.wire_len, at);
            let frame = Frame {
                at,
                direction: if f.pkttype == PACKET_OUTGOING {
                    Direction::Out
                } else {
                    Direction::In
                },
                wire_len: f.wire_len,
                data: f.data[..f.data.len().min(self.options.snaplen)].to_vec(),
            };
            let mut st = lock(&self.state);
            if st.frames.len() >= self.options.max_frames {
                st.truncated += 1;
            } else {
                st.frames.push(frame);
                st.packets.extend(packet);
            }
        }
        self.ring.release();
        true
    }

    /// The kernel's timestamp relative to the start, unless it is missing or implausible (a
    /// stepped clock, or a frame stamped in the future): then the time the reader saw it.
    /// Frames TCP sent carry its departure time on CLOCK_MONOTONIC (the skb's EDT stamp,
    /// tcp_clock_ns), which AF_PACKET hands over as it is: a stamp that is no wall-clock time
    /// of this run is read on the monotonic clock.
    fn timestamp(&self, stamp: Option<Duration>) -> Duration {
        let elapsed = self.start.elapsed();
        let plausible = |at: &Duration| *at <= elapsed + Duration::from_millis(100);
        let start = self.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        stamp
            .and_then(|s| s.checked_sub(start))
            .filter(plausible)
            .or_else(|| {
                stamp
                    .and_then(|s| s.checked_sub(self.mono_start?))
                    .filter(plausible)
            })
            .unwrap_or(elapsed)
    }
}
