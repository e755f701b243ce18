//! The holder thread: takes packets from the queue, keeps each for its hold time, releases
//! them on time (a sleep, then a short spin, measured against the wake-up latency).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use super::nfqueue::{NFQA_CFG_F_FAIL_OPEN, NfQueue};
use super::stats::Samples;
use super::*;

/// A held packet, ordered by release time, then arrival.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Held {
    due: Instant,
    seq: u64,
    id: u32,
    queued: Instant,
}

pub(super) struct Holder {
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
    /// Shortest hold released on time (over every packet, not just the kept samples).
    hold_min: Option<Duration>,
    stats: DelayStats,
}

impl Holder {
    pub(super) fn new(
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
            hold_min: None,
            stats: DelayStats::default(),
        }
    }

    pub(super) fn run(mut self) -> DelayStats {
        // Wake at the release time, not up to 50 µs (the default timer slack) after it.
        let _ = nix::sys::prctl::set_timerslack(1);
        self.stats.scheduling = match become_realtime() {
            Ok(()) => Scheduling::Realtime,
            Err(e) => Scheduling::Ordinary { refused: Some(e) },
        };
        if let Err(e) = self.serve() {
            self.stats.failure = Some(e);
        }
        if let Err(e) = self.hand_off() {
            self.stats.failure.get_or_insert(e);
        }
        self.finish()
    }

    /// Hold and release until told to stop.
    pub(super) fn serve(&mut self) -> Result<(), String> {
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
            // A real-time thread runs until it blocks, and the next ppoll need not block: the
            // other delay lines on this CPU (same priority) get their turn between wake-ups.
            // One syscall per wake-up, returning at once when no other line is runnable.
            std::thread::yield_now();
        }
    }

    /// Busy-wait for the next release if it is at most `lead` (+ a little) away: cheaper and
    /// more punctual than another sleep.
    pub(super) fn spin_to_next_release(&self) {
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
    pub(super) fn take(&mut self, max: usize) -> Result<usize, String> {
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
    pub(super) fn release(&mut self, now: Instant) -> Result<(), String> {
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

    pub(super) fn verdict(&mut self, h: &Held) -> Result<(), String> {
        self.queue
            .accept(h.id)
            .map_err(|e| format!("sending verdicts failed: {e}"))?;
        let now = Instant::now();
        self.stats.packets += 1;
        if now < h.due {
            // Only `stop` releases a packet before its time; its hold is no sample of the link.
            self.stats.released_early += 1;
            return Ok(());
        }
        // hold = scheduled hold + late, exactly: both are read from this one `now`.
        let hold = now.saturating_duration_since(h.queued);
        let late = now.saturating_duration_since(h.due);
        self.stats.late_max = self.stats.late_max.max(late);
        self.hold_min = Some(self.hold_min.map_or(hold, |m| m.min(hold)));
        self.samples.add(hold, late, &mut self.rng);
        Ok(())
    }

    /// Stop holding without dropping anything: release what is held, then make the kernel pass
    /// new packets itself (fail-open at length 0) and release what arrived meanwhile.
    pub(super) fn hand_off(&mut self) -> Result<(), String> {
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
    pub(super) fn read_kernel_counters(&mut self) {
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

    pub(super) fn finish(mut self) -> DelayStats {
        self.stats.verdict_errors = self.queue.verdict_errors;
        let (hold, late) = self.samples.percentiles();
        (self.stats.hold_p50, self.stats.hold_p99) = (hold.0, hold.1);
        self.stats.hold_min = self.hold_min.unwrap_or_default();
        self.stats.late_p99 = late.1;
        self.stats
    }
}

/// The holder's SCHED_FIFO priority: above every ordinary thread, below the kernel's own
/// real-time threads (migration, watchdogs at 99).
pub(super) const RT_PRIORITY: i32 = 10;

/// Puts the calling thread in SCHED_FIFO at [`RT_PRIORITY`], as netem's release is a kernel
/// timer that no process outruns: as an ordinary thread the holder waits its turn behind the
/// case's own busy threads, a scheduler tick (4 ms at HZ=250) late on 2 busy CPUs. Its spin is
/// bounded by [`MAX_LEAD`] and the kernel's RT throttling (`sched_rt_runtime_us`) still holds.
/// Err where the kernel refuses (no CAP_SYS_NICE, an RT-less cgroup): the line then runs as
/// an ordinary thread and says so.
pub(super) fn become_realtime() -> Result<(), Errno> {
    let param = libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: pid 0 is the calling thread; param is a valid sched_param for the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `delay` plus a uniform offset in [-jitter, +jitter], clamped at zero.
pub(super) fn hold_time(spec: DelaySpec, rng: &mut SplitMix64) -> Duration {
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
pub(super) struct WakeLatency {
    mean_ns: f64,
    dev_ns: f64,
    lead: Duration,
}

/// Spinning is bounded: a lead never exceeds this, whatever the machine's wake-ups.
pub(super) const MAX_LEAD: Duration = Duration::from_micros(500);
/// Spin for a release this much further away than the lead, rather than sleep again.
pub(super) const SPIN_SLOP: Duration = Duration::from_micros(20);

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
    pub(super) fn observe(&mut self, late: Duration) {
        let late = late.min(MAX_LEAD * 4).as_nanos() as f64;
        self.dev_ns += ((late - self.mean_ns).abs() - self.dev_ns) / 4.0;
        self.mean_ns += (late - self.mean_ns) / 8.0;
        let lead = (self.mean_ns + 2.0 * self.dev_ns).max(0.0) as u64;
        self.lead = Duration::from_nanos(lead).min(MAX_LEAD);
    }
}

/// A small, fast generator for jitter and sampling; no cryptographic use.
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
