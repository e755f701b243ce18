//! Link delay without netem: an NFQUEUE delay line.
//!
//! `iptables -t mangle -A POSTROUTING -o IF -j NFQUEUE --queue-num N --queue-bypass` (and the
//! same with ip6tables) in the case's namespace hands every packet leaving on `IF` to a netlink
//! queue. A holder thread notes when each packet arrived and gives the kernel an ACCEPT verdict
//! for it `delay` (± jitter) later; the packet then continues out of the interface.
//!
//! - Order: with no jitter, packets leave in the order they came (a later packet never leaves
//!   before an earlier one, even right after `set` lowered the delay). With jitter each packet
//!   has its own release time, so packets reorder, as netem's jitter does.
//! - Timing: the holder sleeps in `ppoll` on the queue socket until the next release time
//!   (nanosecond timeout, timer slack 1 ns), set early by its learnt wake-up latency and spun
//!   for the rest, so releases are within tens of µs. A hold is timed from when the holder reads
//!   the packet's notice: the holder's own wake-up on arrival (0.1-0.2 ms in a VM) is added.
//! - Queue length: at most [`QUEUE_MAXLEN`] packets are held; beyond it the kernel drops new
//!   packets (fail-closed, like netem's `limit`) and counts them, reported in
//!   [`DelayStats::dropped_queue_full`]. Fail-open would let overflow packets skip the delay and
//!   overtake held ones: a silently different link, which a case could not tell from the real one.
//! - GSO: the queue takes GSO super-packets whole (NFQA_CFG_F_GSO), so a 64 KB burst is held and
//!   released as one; turning offloads off (for per-segment loss) works too, at more packets.
//! - TCP Small Queues: a packet held at the sender's egress still counts against its socket
//!   (`sk_wmem_alloc`; netem avoids this with `skb_orphan_partial`, which userspace cannot do),
//!   so TSQ lets only about a millisecond of data wait below TCP and a bulk sender collapses
//!   (measured: 0.3 MB/s through 20 ms each way). [`Hook::Ingress`] holds the packet at the
//!   receiving end instead, after `ip_rcv` has orphaned it: same link delay, normal throughput.
//!   Small exchanges (handshakes, closes, ping-pongs) are timed the same either way.
//! - Stop: held packets are released first, then the queue turns fail-open with length 0 so
//!   that nothing is held (or dropped) while the socket closes; after that `--queue-bypass` lets
//!   packets through the rules undelayed. The rules stay until the namespace goes.
//! - Nothing runs in the host namespace: the netlink socket and both iptables processes are
//!   created on the namespace's thread. If the process dies, the kernel drops the namespace with
//!   its rules and queue.

mod nfqueue;

use crate::spawn::{Command, SpawnError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use crate::netns::{Namespace, NetnsError};

use nfqueue::{NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO, NfQueue};

/// Packets a delay line holds at most (the kernel queue's length). At 100 ms of delay this is
/// 100 000 packets per second before anything is dropped.
pub const QUEUE_MAXLEN: u32 = 10_000;

/// Hold and lateness samples kept for the percentiles (a uniform sample beyond this).
const SAMPLES: usize = 1 << 16;
/// Packet notices read per wake-up before due packets are released again.
const RECV_BURST: usize = 256;

/// The delay of one direction: each packet is held `delay` plus a uniform random offset in
/// `[-jitter, +jitter]` (clamped at zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelaySpec {
    pub delay: Duration,
    pub jitter: Duration,
}

impl DelaySpec {
    pub fn fixed(delay: Duration) -> DelaySpec {
        DelaySpec {
            delay,
            jitter: Duration::ZERO,
        }
    }
}

/// What a delay line did, from `stop`.
#[derive(Debug, Clone, Default)]
pub struct DelayStats {
    /// Packets held and released (a GSO super-packet counts once).
    pub packets: u64,
    /// Of those, GSO super-packets.
    pub gso_packets: u64,
    /// Most packets held at once.
    pub max_held: usize,
    /// Achieved hold times: from reading the packet's notice to sending its verdict.
    pub hold_p50: Duration,
    pub hold_p99: Duration,
    /// How late verdicts were against their release times.
    pub late_p99: Duration,
    pub late_max: Duration,
    /// Dropped by the kernel because QUEUE_MAXLEN packets were held (`queue_dropped`).
    pub dropped_queue_full: u64,
    /// Dropped by the kernel because the notice could not be delivered to the socket
    /// (`queue_user_dropped`).
    pub dropped_socket_full: u64,
    /// Verdicts the kernel refused (unknown packet id); should stay 0.
    pub verdict_errors: u64,
    /// The holder stopped early (its queue socket failed): packets then passed undelayed.
    pub failure: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DelayLineError {
    #[error("{tool} is missing: apt-get install iptables")]
    ToolMissing { tool: &'static str },
    #[error("invalid interface name `{ifname}`: {why}")]
    BadInterfaceName { ifname: String, why: &'static str },
    #[error(
        "no interface `{ifname}` in namespace `{ns}`: a delay line goes on the egress interface \
         of one of the namespace's links"
    )]
    NoSuchInterface { ns: String, ifname: String },
    #[error(
        "failed to open an NFQUEUE netlink socket in namespace `{ns}`: {errno}; the kernel needs \
         CONFIG_NETFILTER_NETLINK_QUEUE (`twlab doctor` shows whether NFQUEUE works here)"
    )]
    Socket { ns: String, errno: Errno },
    #[error("NFQUEUE queue {queue_num} in namespace `{ns}`: {step} failed: {errno}{hint}")]
    Queue {
        ns: String,
        queue_num: u16,
        step: &'static str,
        errno: Errno,
        hint: &'static str,
    },
    #[error("failed to run `{tool}` in namespace `{ns}`: {source}")]
    Spawn {
        ns: String,
        tool: String,
        source: SpawnError,
    },
    #[error("`{command}` failed in namespace `{ns}` ({status}): {stderr}{hint}")]
    Rule {
        ns: String,
        command: String,
        status: String,
        stderr: String,
        hint: &'static str,
    },
    #[error("failed to start the delay line's holder thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Where a delay line holds packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hook {
    /// Leaving on the interface: `-t mangle -A POSTROUTING -o IF` in the sending namespace.
    #[default]
    Egress,
    /// Arriving on the interface: `-t mangle -A PREROUTING -i IF` in the receiving namespace.
    /// The packet no longer belongs to the sending socket there, so TCP Small Queues does not
    /// throttle a bulk sender as it does with `Egress` (see the module documentation).
    Ingress,
}

impl Hook {
    fn chain_and_flag(self) -> (&'static str, &'static str) {
        match self {
            Hook::Egress => ("POSTROUTING", "-o"),
            Hook::Ingress => ("PREROUTING", "-i"),
        }
    }
}

/// State shared with the holder thread.
struct Shared {
    spec: Mutex<DelaySpec>,
    stop: AtomicBool,
}

/// A running delay line on one interface's egress. `stop` (or drop) ends its thread.
pub struct DelayLine {
    shared: Arc<Shared>,
    waker: UnixStream,
    thread: Option<JoinHandle<DelayStats>>,
    ifname: String,
    queue_num: u16,
}

impl DelayLine {
    /// Installs the iptables+ip6tables NFQUEUE rules for egress on `ifname` in namespace `ns`
    /// (spawned from ns's thread), opens the NFQUEUE socket on ns's thread, and starts a holder
    /// thread that accepts each packet `delay` (+ uniform jitter in [-jitter, +jitter], clamped
    /// at 0) after it was queued.
    ///
    /// `queue_num` must be unique among the delay lines of one namespace; one delay line per
    /// interface (a packet accepted by the first NFQUEUE rule skips the rest of the chain).
    pub fn start(
        ns: &Namespace,
        ifname: &str,
        queue_num: u16,
        spec: DelaySpec,
    ) -> Result<DelayLine, DelayLineError> {
        DelayLine::start_at(ns, ifname, Hook::Egress, queue_num, spec)
    }

    /// `start` with the choice of hook: `Hook::Ingress` holds packets arriving on `ifname`
    /// (give the receiving namespace and its end of the link).
    pub fn start_at(
        ns: &Namespace,
        ifname: &str,
        hook: Hook,
        queue_num: u16,
        spec: DelaySpec,
    ) -> Result<DelayLine, DelayLineError> {
        check_ifname(ifname)?;
        let tools = [find_tool("iptables")?, find_tool("ip6tables")?];
        let ns_name = ns.name().to_string();
        let ifname_owned = ifname.to_string();
        let (queue, proc_stats) =
            ns.run(move || setup(&ns_name, &ifname_owned, hook, queue_num, &tools))??;
        let shared = Arc::new(Shared {
            spec: Mutex::new(spec),
            stop: AtomicBool::new(false),
        });
        let (waker, wake) = UnixStream::pair().map_err(DelayLineError::Thread)?;
        for s in [&waker, &wake] {
            s.set_nonblocking(true).map_err(DelayLineError::Thread)?;
        }
        let holder = Holder::new(queue, wake, Arc::clone(&shared), proc_stats, queue_num);
        let thread = std::thread::Builder::new()
            .name(format!("delay-{}-{queue_num}", ns.name()))
            .spawn(move || holder.run())
            .map_err(DelayLineError::Thread)?;
        Ok(DelayLine {
            shared,
            waker,
            thread: Some(thread),
            ifname: ifname.to_string(),
            queue_num,
        })
    }

    /// Change the delay on the fly. Packets already held keep their release time; later ones
    /// get the new delay (with no jitter, never before a packet queued earlier).
    pub fn set(&self, spec: DelaySpec) {
        *self.shared.spec.lock().unwrap_or_else(|e| e.into_inner()) = spec;
    }

    pub fn spec(&self) -> DelaySpec {
        *self.shared.spec.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// Stops the holder thread promptly (releasing held packets with ACCEPT first) and returns
    /// stats. From then on packets pass the interface undelayed.
    pub fn stop(mut self) -> DelayStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> DelayStats {
        let Some(thread) = self.thread.take() else {
            return DelayStats::default();
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = (&self.waker).write(&[1]);
        thread.join().unwrap_or_else(|_| DelayStats {
            failure: Some("the holder thread panicked".into()),
            ..DelayStats::default()
        })
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn check_ifname(ifname: &str) -> Result<(), DelayLineError> {
    let why = if ifname.is_empty() {
        "empty"
    } else if ifname.len() > 15 {
        "longer than 15 bytes (IFNAMSIZ)"
    } else if ifname.contains(['/', ' ', '\t', '\n', '\0']) || ifname == "." || ifname == ".." {
        "not a Linux interface name"
    } else if ifname.ends_with('+') {
        "a wildcard (`+`); name one interface"
    } else {
        return Ok(());
    };
    Err(DelayLineError::BadInterfaceName {
        ifname: ifname.to_string(),
        why,
    })
}

/// The executable `name` on PATH or in the sbin directories a non-root PATH lacks.
fn find_tool(name: &'static str) -> Result<PathBuf, DelayLineError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    let executable = |m: std::fs::Metadata| m.is_file() && m.permissions().mode() & 0o111 != 0;
    dirs.map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(executable))
        .ok_or(DelayLineError::ToolMissing { tool: name })
}

/// On the namespace's thread: open and configure the queue, then add the rules (so that no
/// packet ever meets a rule without a listener).
fn setup(
    ns: &str,
    ifname: &str,
    hook: Hook,
    queue_num: u16,
    tools: &[PathBuf; 2],
) -> Result<(NfQueue, Option<File>), DelayLineError> {
    if nix::net::if_::if_nametoindex(ifname).is_err() {
        return Err(DelayLineError::NoSuchInterface {
            ns: ns.to_string(),
            ifname: ifname.to_string(),
        });
    }
    let mut queue = NfQueue::open(queue_num).map_err(|errno| DelayLineError::Socket {
        ns: ns.to_string(),
        errno,
    })?;
    let failed = |step: &'static str, hint: &'static str| {
        move |errno| DelayLineError::Queue {
            ns: ns.to_string(),
            queue_num,
            step,
            errno,
            hint,
        }
    };
    const BUSY: &str = "; another listener (another delay line?) holds this queue number in \
                        this namespace: give each delay line its own queue_num";
    // A queue bound by another socket answers EPERM (owner check) before EBUSY.
    queue.bind_queue().map_err(|e| match e {
        Errno::EBUSY | Errno::EPERM => failed("bind", BUSY)(e),
        _ => failed("bind", "")(e),
    })?;
    queue.copy_meta().map_err(failed("set copy mode", ""))?;
    queue
        .set_max_len(QUEUE_MAXLEN)
        .map_err(failed("set queue length", ""))?;
    let gso_hint = "; the kernel refused NFQA_CFG_F_GSO (older than 3.10?)";
    queue
        .set_flags(NFQA_CFG_F_GSO, NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN)
        .map_err(failed("set flags", gso_hint))?;
    // Opened here, the file keeps showing this namespace's queues whichever thread reads it.
    let proc_stats = File::open("/proc/thread-self/net/netfilter/nfnetlink_queue").ok();
    let mut added: Vec<&Path> = Vec::new();
    for tool in tools {
        if let Err(e) = add_rule(ns, tool, ifname, hook, queue_num) {
            for done in added {
                let _ = iptables(ns, done, "-D", ifname, hook, queue_num);
            }
            return Err(e);
        }
        added.push(tool);
    }
    Ok((queue, proc_stats))
}

/// Add the NFQUEUE rule unless an identical one is there (a delay line started again on the
/// same interface and queue).
fn add_rule(
    ns: &str,
    tool: &Path,
    ifname: &str,
    hook: Hook,
    queue_num: u16,
) -> Result<(), DelayLineError> {
    if iptables(ns, tool, "-C", ifname, hook, queue_num).is_ok() {
        return Ok(());
    }
    iptables(ns, tool, "-A", ifname, hook, queue_num)
}

fn iptables(
    ns: &str,
    tool: &Path,
    op: &str,
    ifname: &str,
    hook: Hook,
    queue_num: u16,
) -> Result<(), DelayLineError> {
    let queue = queue_num.to_string();
    let (chain, flag) = hook.chain_and_flag();
    let args = [
        "-w",
        "5",
        "-t",
        "mangle",
        op,
        chain,
        flag,
        ifname,
        "-j",
        "NFQUEUE",
        "--queue-num",
        &queue,
        "--queue-bypass",
    ];
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| DelayLineError::Spawn {
            ns: ns.to_string(),
            tool: tool.display().to_string(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let hint = if stderr.contains("NFQUEUE") || stderr.contains("No chain/target/match") {
        "; the kernel lacks the NFQUEUE target (CONFIG_NETFILTER_XT_TARGET_NFQUEUE with \
         nft_compat for iptables-nft): run `twlab doctor`"
    } else {
        ""
    };
    Err(DelayLineError::Rule {
        ns: ns.to_string(),
        command: format!("{} {}", tool.display(), args.join(" ")),
        status: out.status.to_string(),
        stderr,
        hint,
    })
}

/// A held packet, ordered by release time, then arrival.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    due: Instant,
    seq: u64,
    id: u32,
    queued: Instant,
}

struct Holder {
    queue: NfQueue,
    waker: UnixStream,
    wake: WakeLatency,
    shared: Arc<Shared>,
    proc_stats: Option<File>,
    queue_num: u16,
    held: BinaryHeap<Reverse<Held>>,
    /// Latest release time given so far: with no jitter nobody is released before it.
    last_due: Option<Instant>,
    seq: u64,
    rng: SplitMix64,
    samples: Samples,
    stats: DelayStats,
}

impl Holder {
    fn new(
        queue: NfQueue,
        wake: UnixStream,
        shared: Arc<Shared>,
        proc_stats: Option<File>,
        queue_num: u16,
    ) -> Holder {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(queue_num) << 48;
        Holder {
            queue,
            waker: wake,
            wake: WakeLatency::default(),
            shared,
            proc_stats,
            queue_num,
            held: BinaryHeap::new(),
            last_due: None,
            seq: 0,
            rng: SplitMix64(seed),
            samples: Samples::default(),
            stats: DelayStats::default(),
        }
    }

    fn run(mut self) -> DelayStats {
        // Wake at the release time, not up to 50 µs (the default timer slack) after it.
        let _ = nix::sys::prctl::set_timerslack(1);
        if let Err(e) = self.serve() {
            self.stats.failure = Some(e);
        }
        if let Err(e) = self.hand_off() {
            self.stats.failure.get_or_insert(e);
        }
        self.finish()
    }

    /// Hold and release until told to stop.
    fn serve(&mut self) -> Result<(), String> {
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            // Ask to be woken `lead` before the next release: the wake-up itself takes about
            // that long (tens to hundreds of µs in a VM), and the rest is spun below.
            let wake_at = self
                .held
                .peek()
                .map(|Reverse(h)| h.due.checked_sub(self.wake.lead).unwrap_or(h.due));
            let timeout =
                wake_at.map(|at| TimeSpec::from(at.saturating_duration_since(Instant::now())));
            let (ready, queue_ready, woken) = {
                let mut fds = [
                    PollFd::new(self.queue.fd(), PollFlags::POLLIN),
                    PollFd::new(self.waker.as_fd(), PollFlags::POLLIN),
                ];
                let ready = match ppoll(&mut fds, timeout, None) {
                    Ok(n) => n,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(format!("ppoll on the queue socket failed: {e}")),
                };
                let has = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                (ready, has(&fds[0]), has(&fds[1]))
            };
            if ready == 0
                && let Some(at) = wake_at
            {
                self.wake
                    .observe(Instant::now().saturating_duration_since(at));
            }
            if woken {
                let mut sink = [0u8; 64];
                while matches!((&self.waker).read(&mut sink), Ok(n) if n > 0) {}
            }
            if queue_ready {
                self.take(RECV_BURST)?;
            }
            self.spin_to_next_release();
            self.release(Instant::now())?;
        }
    }

    /// Busy-wait for the next release if it is at most `lead` (+ a little) away: cheaper and
    /// more punctual than another sleep.
    fn spin_to_next_release(&self) {
        let Some(Reverse(h)) = self.held.peek() else {
            return;
        };
        let limit = (self.wake.lead + SPIN_SLOP).min(MAX_LEAD);
        if h.due.saturating_duration_since(Instant::now()) <= limit {
            while Instant::now() < h.due {
                std::hint::spin_loop();
            }
        }
    }

    /// Read waiting packet notices and give each its release time.
    fn take(&mut self, max: usize) -> Result<usize, String> {
        let spec = *self.shared.spec.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut arrived = Vec::new();
        let n = self
            .queue
            .recv_packets(max, |p| arrived.push(p))
            .map_err(|e| format!("reading the queue socket failed: {e}"))?;
        for p in arrived {
            let mut due = now + hold_time(spec, &mut self.rng);
            if spec.jitter.is_zero()
                && let Some(last) = self.last_due
            {
                due = due.max(last);
            }
            self.last_due = Some(self.last_due.map_or(due, |l| l.max(due)));
            self.seq += 1;
            self.held.push(Reverse(Held {
                due,
                seq: self.seq,
                id: p.id,
                queued: now,
            }));
            self.stats.gso_packets += u64::from(p.gso);
        }
        self.stats.max_held = self.stats.max_held.max(self.held.len());
        Ok(n)
    }

    /// Accept every packet due by `now`, in release order.
    fn release(&mut self, now: Instant) -> Result<(), String> {
        while let Some(Reverse(h)) = self.held.peek() {
            if h.due > now {
                break;
            }
            let Reverse(h) = self.held.pop().expect("peeked");
            self.verdict(&h)?;
        }
        self.queue
            .flush()
            .map_err(|e| format!("sending verdicts failed: {e}"))
    }

    fn verdict(&mut self, h: &Held) -> Result<(), String> {
        self.queue
            .accept(h.id)
            .map_err(|e| format!("sending verdicts failed: {e}"))?;
        let now = Instant::now();
        let hold = now.saturating_duration_since(h.queued);
        let late = now.saturating_duration_since(h.due);
        self.stats.packets += 1;
        self.stats.late_max = self.stats.late_max.max(late);
        self.samples.add(hold, late, &mut self.rng);
        Ok(())
    }

    /// Stop holding without dropping anything: release what is held, then make the kernel pass
    /// new packets itself (fail-open at length 0) and release what arrived meanwhile.
    fn hand_off(&mut self) -> Result<(), String> {
        let release_all = |h: &mut Holder| -> Result<(), String> {
            while let Some(Reverse(held)) = h.held.pop() {
                h.verdict(&held)?;
            }
            h.queue
                .flush()
                .map_err(|e| format!("sending verdicts failed: {e}"))
        };
        release_all(self)?;
        let open = self
            .queue
            .set_flags(NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN)
            .and_then(|()| self.queue.set_max_len(0));
        // Read the kernel's counters while the queue still exists.
        self.read_kernel_counters();
        open.map_err(|e| format!("switching the queue to pass-through failed: {e}"))?;
        while self.take(usize::MAX)? > 0 {}
        release_all(self)
    }

    /// queue_dropped and queue_user_dropped from /proc/net/netfilter/nfnetlink_queue:
    /// `queue_num portid queue_total copy_mode copy_range queue_dropped user_dropped id_seq 1`.
    fn read_kernel_counters(&mut self) {
        let Some(file) = self.proc_stats.as_mut() else {
            return;
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_err() || file.read_to_string(&mut text).is_err() {
            return;
        }
        for line in text.lines() {
            let fields: Vec<u64> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            if fields.len() >= 7 && fields[0] == u64::from(self.queue_num) {
                self.stats.dropped_queue_full = fields[5];
                self.stats.dropped_socket_full = fields[6];
            }
        }
    }

    fn finish(mut self) -> DelayStats {
        self.stats.verdict_errors = self.queue.verdict_errors;
        let (hold, late) = self.samples.percentiles();
        (self.stats.hold_p50, self.stats.hold_p99) = (hold.0, hold.1);
        self.stats.late_p99 = late.1;
        self.stats
    }
}

/// `delay` plus a uniform offset in [-jitter, +jitter], clamped at zero.
fn hold_time(spec: DelaySpec, rng: &mut SplitMix64) -> Duration {
    let jitter = spec.jitter.as_nanos() as u64;
    if jitter == 0 {
        return spec.delay;
    }
    let offset = (rng.next() % (2 * jitter + 1)) as i128 - jitter as i128;
    let nanos = (spec.delay.as_nanos() as i128 + offset).max(0);
    Duration::from_nanos(nanos as u64)
}

/// How late this thread wakes from a timed sleep, learnt as it runs (a running mean and mean
/// deviation, as TCP's RTT estimator), and the lead that covers most wake-ups.
struct WakeLatency {
    mean_ns: f64,
    dev_ns: f64,
    lead: Duration,
}

/// Spinning is bounded: a lead never exceeds this, whatever the machine's wake-ups.
const MAX_LEAD: Duration = Duration::from_micros(500);
/// Spin for a release this much further away than the lead, rather than sleep again.
const SPIN_SLOP: Duration = Duration::from_micros(20);

impl Default for WakeLatency {
    fn default() -> WakeLatency {
        WakeLatency {
            mean_ns: 50_000.0,
            dev_ns: 25_000.0,
            lead: Duration::from_micros(100),
        }
    }
}

impl WakeLatency {
    fn observe(&mut self, late: Duration) {
        let late = late.min(MAX_LEAD * 4).as_nanos() as f64;
        self.dev_ns += ((late - self.mean_ns).abs() - self.dev_ns) / 4.0;
        self.mean_ns += (late - self.mean_ns) / 8.0;
        let lead = (self.mean_ns + 2.0 * self.dev_ns).max(0.0) as u64;
        self.lead = Duration::from_nanos(lead).min(MAX_LEAD);
    }
}

/// A uniform sample of (hold, late) pairs: every pair until full, then reservoir sampling.
#[derive(Default)]
struct Samples {
    kept: Vec<(Duration, Duration)>,
    seen: u64,
}

impl Samples {
    fn add(&mut self, hold: Duration, late: Duration, rng: &mut SplitMix64) {
        self.seen += 1;
        if self.kept.len() < SAMPLES {
            self.kept.push((hold, late));
        } else {
            let slot = (rng.next() % self.seen) as usize;
            if slot < SAMPLES {
                self.kept[slot] = (hold, late);
            }
        }
    }

    /// ((hold p50, hold p99), (late p50, late p99)), nearest rank.
    fn percentiles(&self) -> ((Duration, Duration), (Duration, Duration)) {
        let mut hold: Vec<Duration> = self.kept.iter().map(|s| s.0).collect();
        let mut late: Vec<Duration> = self.kept.iter().map(|s| s.1).collect();
        hold.sort_unstable();
        late.sort_unstable();
        let pair = |v: &[Duration]| (percentile(v, 0.50), percentile(v, 0.99));
        (pair(&hold), pair(&late))
    }
}

/// Nearest-rank percentile of sorted values (zero when empty).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A small, fast generator for jitter and sampling; no cryptographic use.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("to-server").is_ok());
        for bad in ["", "a-very-long-interface", "eth+", "a/b"] {
            let err = check_ifname(bad).expect_err(bad).to_string();
            assert!(err.contains("invalid interface name"), "{err}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_clamped_at_zero() {
        let holds = |spec: DelaySpec| {
            let mut rng = SplitMix64(7);
            let hold = |_| hold_time(spec, &mut rng).as_nanos() as u64;
            (0..10_000).map(hold).collect::<Vec<_>>()
        };
        let ms = |n| Duration::from_millis(n);
        let wide = holds(DelaySpec {
            delay: ms(20),
            jitter: ms(5),
        });
        assert!(wide.iter().all(|&n| (15_000_000..=25_000_000).contains(&n)));
        assert!(wide.iter().any(|&n| n < 16_000_000) && wide.iter().any(|&n| n > 24_000_000));
        let clamped = holds(DelaySpec {
            delay: ms(1),
            jitter: ms(5),
        });
        assert!(clamped.contains(&0) && clamped.iter().all(|&n| n <= 6_000_000));
    }

    #[test]
    fn reservoir_keeps_a_bounded_sample() {
        let mut s = Samples::default();
        let mut rng = SplitMix64(1);
        for i in 0..(SAMPLES as u64 * 2) {
            s.add(Duration::from_micros(i), Duration::ZERO, &mut rng);
        }
        assert_eq!(s.kept.len(), SAMPLES);
        let ((p50, _), _) = s.percentiles();
        let mid = Duration::from_micros(SAMPLES as u64);
        assert!(p50 > mid * 9 / 10 && p50 < mid * 11 / 10, "{p50:?}");
    }
}
