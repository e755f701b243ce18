//! The kernel's side of a workload's series: at the end of every interval, each namespace's
//! gauges (sockstat, MIB counters, conntrack) and, when asked, its sockets by state. Runs on
//! a thread of its own so that the event loop never waits for a read of /proc or a dump.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use crate::observe::{Counters, GaugeReading, NsGauges, SockDiag};

use super::driver::Live;
use super::series::NsInterval;

pub struct NsProbe<'a> {
    pub name: String,
    pub gauges: NsGauges,
    /// For socket states, when the workload counts them.
    pub diag: Option<&'a SockDiag>,
    /// Count this namespace's sockets with a local port in the range as ports in use.
    pub ports: Option<(u16, u16)>,
}

/// One interval's readings: per namespace, and the ports in use over the client namespaces.
pub struct Row {
    pub ns: BTreeMap<String, NsInterval>,
    pub ports_in_use: Option<u64>,
}

/// Where the live progress line goes: a terminal's stderr, rewritten each interval.
pub struct Progress<'a> {
    pub name: String,
    pub live: &'a Live,
}

/// Samples at `t0 + k * interval` for k = 1, 2... until `stop` says so, then once more.
pub fn sample(
    mut probes: Vec<NsProbe<'_>>,
    t0: Instant,
    interval: Duration,
    stop: Receiver<()>,
    progress: Option<Progress<'_>>,
) -> Vec<Row> {
    let mut last: Vec<Option<GaugeReading>> =
        probes.iter_mut().map(|p| p.gauges.read().ok()).collect();
    let mut rows = Vec::new();
    for k in 1u32.. {
        let due = t0 + interval * k;
        let stopping = match stop.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let row = read_row(&mut probes, &mut last);
        if let Some(p) = &progress {
            show_progress(p, &row, t0, stopping);
        }
        rows.push(row);
        if stopping {
            break;
        }
    }
    rows
}

/// `workload churn (rates/x::ipv4): 12.0 s, 7200 opened, 7200 ok, 0 failed, TIME_WAIT
/// client 7200 server 0`, rewritten in place; cleared when the workload ends.
fn show_progress(p: &Progress<'_>, row: &Row, t0: Instant, done: bool) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    if done {
        let _ = write!(err, "\r\x1b[2K");
        return;
    }
    let tw: Vec<String> = row
        .ns
        .iter()
        .map(|(ns, g)| format!("{ns} {}", g.time_wait))
        .collect();
    let _ = write!(
        err,
        "\r\x1b[2Kworkload {}: {:.0} s, {} opened, {} ok, {} failed, TIME_WAIT {}",
        p.name,
        t0.elapsed().as_secs_f64(),
        p.live.opened.load(Ordering::Relaxed),
        p.live.ok.load(Ordering::Relaxed),
        p.live.failed.load(Ordering::Relaxed),
        tw.join(" ")
    );
    let _ = err.flush();
}

fn read_row(probes: &mut [NsProbe<'_>], last: &mut [Option<GaugeReading>]) -> Row {
    let mut ns = BTreeMap::new();
    let mut ports: Option<u64> = None;
    for (p, prev) in probes.iter_mut().zip(last.iter_mut()) {
        let Ok(now) = p.gauges.read() else {
            continue;
        };
        let mut row = NsInterval {
            time_wait: now.time_wait,
            tcp_inuse: now.tcp_inuse,
            conntrack: now.conntrack_entries,
            ..NsInterval::default()
        };
        if let Some(before) = prev.as_ref() {
            row.counters = Counters::delta(&before.counters, &now.counters)
                .nonzero()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            row.conntrack_drops = match (before.conntrack_drop, now.conntrack_drop) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
        }
        if let Some(diag) = p.diag
            && let Ok(sockets) = diag.dump_all()
        {
            for s in &sockets {
                *row.states.entry(s.state.name().to_string()).or_default() += 1;
            }
            if let Some((lo, hi)) = p.ports {
                let n = sockets
                    .iter()
                    .filter(|s| s.state.name() != "LISTEN" && (lo..=hi).contains(&s.local.port()))
                    .count() as u64;
                *ports.get_or_insert(0) += n;
            }
        }
        *prev = Some(now);
        ns.insert(p.name.clone(), row);
    }
    Row {
        ns,
        ports_in_use: ports,
    }
}
