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
//!   for the rest, so releases are within tens of µs. The holder is a SCHED_FIFO thread (as
//!   netem's release is a kernel timer): as an ordinary thread it was a scheduler tick (4 ms)
//!   late whenever the case's own threads kept both CPUs busy. In a VM the host can still take
//!   its CPU (steal time); [`DelayStats::late_p99`] says how late it was. A hold is timed from
//!   when the holder reads the packet's notice: the holder's own wake-up on arrival (0.1-0.2 ms
//!   in a VM) is added.
//! - CPU: at saturation the real-time holder keeps its CPU, so on 2 CPUs a sender and receiver
//!   share the other one (measured at 157 000 datagrams/s: the receiver drained 97 000/s and
//!   its buffer dropped the rest; an ordinary holder let 153 000/s through). Cases run at
//!   thousands of connections a second, a few percent of that.
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

mod holder;
mod nfqueue;
mod rules;
mod stats;

use crate::spawn::SpawnError;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;

use crate::netns::{Namespace, NetnsError};

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
    /// Achieved hold times: from reading the packet's notice to sending its verdict, over the
    /// packets released on time (not those `stop` let go early). Each is the packet's drawn
    /// hold (`delay` ± jitter) plus how late its verdict was, so lateness only lengthens holds:
    /// `hold_min` is never below `delay - jitter`, and while the spec stays the same `hold_p99`
    /// is never above `delay + jitter + late_p99` (one set of samples gives both percentiles).
    /// After `set` lowers an unjittered delay, packets also wait for those queued before them.
    pub hold_min: Duration,
    pub hold_p50: Duration,
    pub hold_p99: Duration,
    /// How late verdicts were against their release times. A real-time holder is late by tens
    /// of µs; more means its CPU was taken (in a VM, by the host: steal time).
    pub late_p99: Duration,
    pub late_max: Duration,
    /// Packets still held at `stop`, released before their time.
    pub released_early: u64,
    /// Dropped by the kernel because QUEUE_MAXLEN packets were held (`queue_dropped`).
    pub dropped_queue_full: u64,
    /// Dropped by the kernel because the notice could not be delivered to the socket
    /// (`queue_user_dropped`).
    pub dropped_socket_full: u64,
    /// Verdicts the kernel refused (unknown packet id); should stay 0.
    pub verdict_errors: u64,
    /// The holder stopped early (its queue socket failed): packets then passed undelayed.
    pub failure: Option<String>,
    /// How the holder thread was scheduled.
    pub scheduling: Scheduling,
}

/// How a delay line's holder thread was scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// SCHED_FIFO: releases are on time however busy the CPUs are.
    Realtime,
    /// An ordinary thread, because the kernel refused SCHED_FIFO (`refused`) or the holder
    /// never ran: busy CPUs can make its releases a scheduler tick late.
    Ordinary { refused: Option<Errno> },
}

impl Default for Scheduling {
    fn default() -> Scheduling {
        Scheduling::Ordinary { refused: None }
    }
}

impl std::fmt::Display for Scheduling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduling::Realtime => write!(f, "real-time holder"),
            Scheduling::Ordinary { refused: Some(e) } => write!(
                f,
                "ordinary holder (SCHED_FIFO refused: {e}; releases can be a tick late on busy CPUs)"
            ),
            Scheduling::Ordinary { refused: None } => write!(f, "ordinary holder"),
        }
    }
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

use holder::Holder;
use rules::{check_ifname, find_tool, setup};

#[cfg(test)]
mod tests {
    use super::holder::*;
    use super::stats::*;
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
