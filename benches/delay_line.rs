//! The NFQUEUE delay line: configured vs achieved RTT at 20 and 100 ms one way, beside the bare
//! veth RTT measured in the same run; the queue's packet-rate ceiling beside the same traffic
//! without a queue; bulk TCP goodput with the egress and ingress hooks.
//!
//! `cargo bench --bench delay_line` (root; about 30 s). Under `cargo test --all-targets` it
//! does nothing.

#[path = "../tests/support/pingpong.rs"]
mod pingpong;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use pingpong::{SERVER_V4, ms, percentile, ping_pong};
use twlab::impair::{DelayLine, DelaySpec, DelayStats, Hook};
use twlab::netns::Lab;
use twlab::observe::Counters;

const RATE_SECONDS: f64 = 2.0;

fn pair_lab() -> Lab {
    let topology = twlab::topology::builtin("pair")
        .expect("pair is built in")
        .expect("pair topology");
    Lab::build(&topology).expect("lab")
}

/// Delay lines on both directions (client -> server first), at `hook`.
fn both_ways(lab: &Lab, hook: Hook, spec: DelaySpec) -> [DelayLine; 2] {
    let ends = match hook {
        Hook::Egress => [("client", "to-server"), ("server", "to-client")],
        Hook::Ingress => [("server", "to-client"), ("client", "to-server")],
    };
    let mut q = 0;
    ends.map(|(ns, ifname)| {
        q += 1;
        DelayLine::start_at(lab.ns(ns), ifname, hook, q, spec).expect("delay line")
    })
}

struct RttRow {
    label: String,
    configured: Option<f64>,
    rtts: Vec<Duration>,
    lines: Vec<DelayStats>,
}

fn rtt_row(one_way_ms: Option<u64>, hook: Hook, rounds: usize) -> RttRow {
    let lab = pair_lab();
    let lines =
        one_way_ms.map(|d| both_ways(&lab, hook, DelaySpec::fixed(Duration::from_millis(d))));
    let rtts = ping_pong(&lab, SERVER_V4, rounds);
    let lines: Vec<DelayStats> = lines.into_iter().flatten().map(DelayLine::stop).collect();
    let label = match one_way_ms {
        None => "none (bare veth)".to_string(),
        Some(d) => format!("{d} ms, {hook:?}").to_lowercase(),
    };
    RttRow {
        label,
        configured: one_way_ms.map(|d| 2.0 * d as f64),
        rtts,
        lines,
    }
}

struct RateRow {
    label: &'static str,
    sent: u64,
    delivered: u64,
    /// Datagrams the server's full receive buffer dropped (its namespace's Udp.RcvbufErrors).
    overflowed: u64,
    line: Option<DelayStats>,
}

/// UDP datagrams client -> server as fast as one thread sends them, for RATE_SECONDS.
fn rate_row(with_queue: bool) -> RateRow {
    let lab = pair_lab();
    let line = with_queue.then(|| {
        DelayLine::start(lab.ns("client"), "to-server", 1, DelaySpec::default()).expect("start")
    });
    let (client, server) = pingpong::udp_pair(&lab, SERVER_V4);
    let duration = Duration::from_secs_f64(RATE_SECONDS);
    let (sent, got) = pingpong::udp_blast(client, server, duration, Duration::from_millis(300));
    let overflowed = lab
        .ns("server")
        .run(Counters::read_current)
        .expect("server thread")
        .expect("server counters")
        .get("Udp.RcvbufErrors")
        .expect("Udp.RcvbufErrors")
        .unsigned_abs();
    RateRow {
        label: if with_queue {
            "delay line, 0 ms"
        } else {
            "no queue"
        },
        sent,
        delivered: got.len() as u64,
        overflowed,
        line: line.map(DelayLine::stop),
    }
}

/// Bulk TCP client -> server for RATE_SECONDS through 20 ms each way; MB/s received.
fn bulk_row(hook: Option<Hook>) -> (String, f64) {
    let lab = pair_lab();
    let spec = DelaySpec::fixed(Duration::from_millis(20));
    let lines = hook.map(|h| both_ways(&lab, h, spec));
    let (mut client, mut server) = pingpong::tcp_pair(&lab, SERVER_V4);
    let duration = Duration::from_secs_f64(RATE_SECONDS);
    let sender = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 16];
        let start = Instant::now();
        while start.elapsed() < duration {
            if client.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Write);
    });
    let start = Instant::now();
    let (mut got, mut buf) = (0u64, vec![0u8; 1 << 16]);
    let mut counted = 0u64;
    while let Ok(n) = server.read(&mut buf) {
        if n == 0 {
            break;
        }
        got += n as u64;
        if start.elapsed() <= duration {
            counted = got;
        }
    }
    sender.join().expect("sender");
    drop(lines);
    let label = match hook {
        None => "no delay line (0 ms)".to_string(),
        Some(h) => format!("20 ms each way, {h:?}").to_lowercase(),
    };
    (label, counted as f64 / RATE_SECONDS / 1e6)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("delay_line bench: run with `cargo bench --bench delay_line`");
        return;
    }
    if let Err(reason) = twlab::runner::namespaces_available() {
        println!("delay_line bench skipped: {reason}");
        return;
    }
    // Before any namespace exists: iptables is started through the spawner.
    twlab::spawn::start();
    let started = Instant::now();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("NFQUEUE delay line, kernel {release}, {cpus} CPUs\n");

    let rows = [
        rtt_row(None, Hook::Egress, 200),
        rtt_row(Some(20), Hook::Egress, 50),
        rtt_row(Some(100), Hook::Egress, 25),
        // Ingress is what twlab's impairments use (see link_impairments.rs).
        rtt_row(Some(20), Hook::Ingress, 50),
        rtt_row(Some(100), Hook::Ingress, 25),
    ];
    let bare = percentile(&rows[0].rtts, 0.5);
    println!("RTT: TCP ping-pong of 1-byte messages (TCP_NODELAY), a delay line on each direction");
    println!(
        "  {:<18} {:>10} {:>10} {:>10} {:>13} {:>6}   {:<29} {:>9}",
        "one-way delay",
        "configured",
        "p50",
        "p99",
        "p50 - target",
        "rounds",
        "hold p50 / p99 (each line)",
        "late p99"
    );
    for r in &rows {
        let (p50, p99) = (percentile(&r.rtts, 0.5), percentile(&r.rtts, 0.99));
        let configured = r.configured.map_or("-".into(), |c| format!("{c:.2} ms"));
        let off = r
            .configured
            .map_or("-".into(), |c| format!("{:+.3} ms", ms(p50) - c));
        let holds = r
            .lines
            .iter()
            .map(|s| format!("{:.3}/{:.3}", ms(s.hold_p50), ms(s.hold_p99)))
            .collect::<Vec<_>>()
            .join(", ");
        let late = r
            .lines
            .iter()
            .map(|s| ms(s.late_p99))
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
            .map_or("-".into(), |v| format!("{:.3} ms", v));
        println!(
            "  {:<18} {:>10} {:>7.3} ms {:>7.3} ms {:>13} {:>6}   {:<29} {:>9}",
            r.label,
            configured,
            ms(p50),
            ms(p99),
            off,
            r.rtts.len(),
            if holds.is_empty() { "-".into() } else { holds },
            late
        );
    }
    println!(
        "  (the bare veth p50 of {:.3} ms is in every delayed RTT too: socket wake-ups on both ends)\n",
        ms(bare)
    );

    let base = rate_row(false);
    let queued = rate_row(true);
    println!(
        "Packet rate: 16-byte UDP datagrams client -> server from one thread for {RATE_SECONDS} s"
    );
    println!(
        "  {:<18} {:>10} {:>12} {:>14} {:>14} {:>22} {:>9} {:>6}",
        "path",
        "sent/s",
        "delivered/s",
        "rcvbuf drop/s",
        "via queue/s",
        "queue drop: full/sock",
        "max held",
        "ratio"
    );
    for r in [&base, &queued] {
        let per_s = |n: u64| format!("{:.0}", n as f64 / RATE_SECONDS);
        let (via, dropped, held) = match &r.line {
            Some(s) => (
                per_s(s.packets),
                format!("{}/{}", s.dropped_queue_full, s.dropped_socket_full),
                s.max_held.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "  {:<18} {:>10} {:>12} {:>14} {:>14} {:>22} {:>9} {:>6.2}",
            r.label,
            per_s(r.sent),
            per_s(r.delivered),
            per_s(r.overflowed),
            via,
            dropped,
            held,
            r.delivered as f64 / base.delivered.max(1) as f64
        );
    }
    println!();

    println!("Bulk TCP goodput client -> server for {RATE_SECONDS} s (one connection)");
    for hook in [None, Some(Hook::Egress), Some(Hook::Ingress)] {
        let (label, mbps) = bulk_row(hook);
        println!("  {label:<26} {mbps:>9.1} MB/s");
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
}
