//! Human-readable trial reports: verdicts with their source positions, then the evidence
//! (step results, socket states, counters that moved).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::case::Case;
use crate::expect::Observations;
use crate::observe::{ALL_STATES, SocketRow, TcpState};
use crate::scenario::{ProgramRun, outcome_counts};
use crate::vocab::{TcpInfoField, TcpTimer};

use super::trial::TrialReport;

const MAX_ROWS: usize = 12;

/// The report's first line: the case, its title, the family and the verdict.
pub fn headline(case: &Case, report: &TrialReport) -> String {
    let failed = report.verdicts.iter().filter(|v| !v.passed).count();
    let judged = report.verdicts.iter().filter(|v| v.applies).count();
    let foreseen = report
        .verdicts
        .iter()
        .filter(|v| v.applies && !v.held)
        .count();
    let not_here = match report.verdicts.len() - judged {
        0 => String::new(),
        n => format!(" ({n} not applicable on this kernel)"),
    };
    format!(
        "{} ({}, {}): {}",
        case.id,
        case.name,
        report.family.name(),
        if failed == 0 && foreseen > 0 {
            format!("{foreseen} of {judged} expectations failed as marked xfail{not_here}")
        } else if failed == 0 {
            format!("all {judged} expectations hold{not_here}")
        } else {
            format!("{failed} of {judged} expectations failed{not_here}")
        }
    )
}

/// The host-global change lines of a report, which are shown even for passing cases.
pub fn host_change_lines(report: &TrialReport) -> Vec<String> {
    report
        .observations
        .host_changes
        .iter()
        .map(|change| format!("host-global change (restored after the case): {change}"))
        .collect()
}

pub fn render(case: &Case, report: &TrialReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", headline(case, report));
    let o = &report.observations;
    let _ = writeln!(
        s,
        "  topology {} ({}), setup {:.1} ms, steps {:.1} ms",
        case.topology.name,
        case.topology.origin,
        o.setup.as_secs_f64() * 1e3,
        o.run.as_secs_f64() * 1e3
    );
    let _ = writeln!(s, "expectations:");
    for v in &report.verdicts {
        let e = &v.expectation;
        let _ = writeln!(
            s,
            "  {} {}:{}:{}  {}\n       observed: {}",
            match (v.applies, v.passed, &e.xfail) {
                (false, _, _) => "n/a ",
                (true, true, None) => "ok  ",
                (true, false, None) => "FAIL",
                (true, true, Some(_)) => "xfail",
                (true, false, Some(_)) => "XPASS",
            },
            case.path.display(),
            e.line,
            e.col,
            e.check,
            v.observed
        );
        if let (false, Some(why)) = (v.passed, &e.why) {
            let _ = writeln!(s, "       why expected: {why}");
        }
        if let (true, Some(reason)) = (v.applies, &e.xfail) {
            let _ = writeln!(
                s,
                "       {}: {reason}",
                if v.held {
                    "held, but marked xfail (remove the mark)"
                } else {
                    "failed as marked xfail"
                }
            );
        }
    }
    render_evidence(&mut s, o);
    s
}

/// The evidence after the verdicts, in the order a reader checks it: what was set on the host,
/// what the links did, each step's results, the programs, the sockets, the counters.
fn render_evidence(s: &mut String, o: &Observations) {
    render_host_and_conntrack(s, o);
    render_links(s, o);
    render_steps(s, o);
    render_programs(s, o);
    render_workloads(s, o);
    render_samples(s, o);
    render_counters(s, o);
}

/// Host-global changes and conntrack statistics that moved.
fn render_host_and_conntrack(s: &mut String, o: &Observations) {
    for change in &o.host_changes {
        let _ = writeln!(s, "host-global change (restored after the case): {change}");
    }
    for (ns, stats) in &o.conntrack_stats {
        let moved: Vec<String> = stats
            .iter()
            .filter(|(k, v)| **v != 0 && *k != "entries")
            .map(|(k, v)| format!("{k} {v:+}"))
            .collect();
        let _ = writeln!(
            s,
            "conntrack statistics in {ns}: {}",
            if moved.is_empty() {
                "none moved".into()
            } else {
                moved.join(", ")
            }
        );
    }
}

/// Impairments, drops, and the packets each sender put on its link.
fn render_links(s: &mut String, o: &Observations) {
    if !o.impairments.is_empty() {
        let _ = writeln!(s, "impairments:");
        for line in &o.impairments {
            let _ = writeln!(s, "  {line}");
        }
    }
    if !o.dropped.is_empty() {
        let shown: Vec<String> = o.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "dropped: {}", shown.join(", "));
    }
    if o.captured {
        let _ = writeln!(s, "packets on the wire, by sender:");
        for (ns, packets) in &o.packets {
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for p in packets {
                *kinds.entry(p.kind.name()).or_default() += 1;
            }
            let shown: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                s,
                "  {ns}: {}",
                if shown.is_empty() {
                    "none".into()
                } else {
                    shown.join(", ")
                }
            );
        }
        for line in &o.packet_log {
            let _ = writeln!(s, "    {line}");
        }
    }
}

/// Each step label's outcomes, durations, first failure and addresses.
fn render_steps(s: &mut String, o: &Observations) {
    let _ = writeln!(s, "steps (label: outcomes, durations, addresses):");
    let mut order: Vec<&str> = Vec::new();
    for r in &o.steps {
        if !order.contains(&r.label.as_str()) {
            order.push(&r.label);
        }
    }
    for label in order {
        let recs: Vec<_> = o.steps.iter().filter(|r| r.label == label).collect();
        let outcomes = outcome_counts(recs.iter().copied());
        let min = recs.iter().map(|r| r.duration).min().unwrap_or_default();
        let max = recs.iter().map(|r| r.duration).max().unwrap_or_default();
        let _ = writeln!(
            s,
            "  line {:<4} {:<16} {:<32} {:.1}..{:.1} ms",
            recs[0].line,
            label,
            outcomes,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        if let Some((i, f)) = recs
            .iter()
            .enumerate()
            .find(|(_, r)| r.outcome.is_failure())
        {
            let _ = writeln!(
                s,
                "         first failure at attempt {}: {} ({})",
                i + 1,
                f.outcome,
                f.detail
            );
        }
        if let Some(skip) = recs.iter().find(|r| !r.outcome.is_attempt()) {
            let _ = writeln!(s, "         {}", skip.outcome);
        }
        let details: Vec<&str> = recs
            .iter()
            .map(|r| r.detail.as_str())
            .filter(|d| !d.is_empty())
            .collect();
        match details.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(s, "         {one}");
            }
            [first, .., last] => {
                let _ = writeln!(s, "         first: {first}\n         last:  {last}");
            }
        }
        let bytes: u64 = recs.iter().filter_map(|r| r.bytes).sum();
        if recs.iter().any(|r| r.bytes.is_some()) {
            let _ = writeln!(s, "         bytes: {bytes}");
        }
    }
}

/// The socket table (and conntrack table) of every namespace at each sample.
fn render_samples(s: &mut String, o: &Observations) {
    for sample in &o.samples {
        let _ = writeln!(
            s,
            "sockets at {} ({:.1}s):",
            sample.label,
            sample.at.as_secs_f64()
        );
        for (ns, table) in &sample.conntrack {
            let states: Vec<String> = table
                .tcp_states
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                s,
                "  conntrack in {ns}: {} entries (tcp: {})",
                table.entries,
                states.join(", ")
            );
        }
        for (ns, rows) in &sample.sockets {
            let _ = writeln!(s, "  {ns}: {}", state_counts(rows));
            let interesting: Vec<&SocketRow> = rows.iter().collect();
            for r in interesting.iter().take(MAX_ROWS) {
                let _ = writeln!(
                    s,
                    "    {:<12} {:<28} {}{}",
                    r.state.name(),
                    r.local,
                    r.remote,
                    row_details(r)
                );
            }
            if interesting.len() > MAX_ROWS {
                let _ = writeln!(s, "    ... {} more", interesting.len() - MAX_ROWS);
            }
        }
    }
}

/// What sock_diag said about a row beyond its addresses, where it says something: queues
/// (a listener's accept queue and backlog), the pending timer as `ss -o` prints it, and from
/// tcp_info the RTT, the RTO, what is unacknowledged or retransmitted, the options.
fn row_details(r: &SocketRow) -> String {
    let mut out = String::new();
    if r.recv_q != 0 || r.send_q != 0 || r.state == TcpState::Listen {
        let _ = write!(out, "  q {}/{}", r.recv_q, r.send_q);
    }
    if r.timer != Ok(TcpTimer::Off) {
        let _ = write!(out, "  timer {}", r.timer_text());
    }
    // A listener's tcp_info says nothing more: its unacked and sacked are the queues again.
    let Some(info) = r.info.as_ref().filter(|_| r.state != TcpState::Listen) else {
        return out;
    };
    let ms = |f: TcpInfoField| info.get(f).map(|us| us as f64 / 1e3);
    if let Some(rtt) = ms(TcpInfoField::RttMs).filter(|v| *v > 0.0) {
        let _ = write!(out, "  rtt {rtt:.1} ms");
    }
    if let Some(rto) = ms(TcpInfoField::RtoMs) {
        let _ = write!(out, "  rto {rto:.0} ms");
    }
    for field in [
        TcpInfoField::Unacked,
        TcpInfoField::Retransmits,
        TcpInfoField::Backoff,
        TcpInfoField::Probes,
        TcpInfoField::Lost,
        TcpInfoField::TotalRetrans,
    ] {
        if let Some(v) = info.get(field).filter(|v| *v > 0) {
            let _ = write!(out, "  {field} {v}");
        }
    }
    let options: Vec<&str> = info.options().map(|o| o.name()).collect();
    if !options.is_empty() {
        let _ = write!(out, "  [{}]", options.join(","));
    }
    out
}

/// Counter changes per namespace.
fn render_counters(s: &mut String, o: &Observations) {
    let _ = writeln!(s, "counters that moved:");
    for (ns, c) in &o.counters {
        let moved: Vec<String> = c.nonzero().map(|(k, v)| format!("{k} {v:+}")).collect();
        let _ = writeln!(
            s,
            "  {ns}: {}",
            if moved.is_empty() {
                "none".into()
            } else {
                moved.join(", ")
            }
        );
    }
}

/// Lines of each output stream shown per program run.
const PROGRAM_TAIL_LINES: usize = 6;

fn render_programs(s: &mut String, o: &Observations) {
    if o.programs.is_empty() {
        return;
    }
    let _ = writeln!(s, "programs (in the order they ended):");
    for run in &o.programs {
        let how = match run.stopped_by {
            Some(why) => format!("{}, stopped by twlab ({why})", run.exit),
            None => run.exit.to_string(),
        };
        let _ = writeln!(
            s,
            "  line {:<4} {:<16} in {}: {}\n         {how} after {:.1} ms",
            run.spec.line,
            run.spec.label,
            run.spec.ns,
            run.spec.command_line(),
            run.duration.as_secs_f64() * 1e3
        );
        if !run.processes.is_empty() {
            let _ = writeln!(
                s,
                "         {} processes when stopped: {}",
                run.processes.len(),
                run.processes.join(", ")
            );
        }
        for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            let lines = ProgramRun::tail(text, PROGRAM_TAIL_LINES);
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(s, "         {name} (last {} lines):", lines.len());
            for l in lines {
                let _ = writeln!(s, "           {l}");
            }
        }
    }
}

/// Rows of a workload's series shown before the middle is left out.
const SERIES_ROWS: usize = 16;

fn render_workloads(s: &mut String, o: &Observations) {
    for w in &o.workloads {
        let _ = writeln!(s, "workload `{}`: {}", w.label, w.summary());
        if !w.server_errors.is_empty() {
            let errors: Vec<_> = w
                .server_errors
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(s, "  server side: {}", errors.join(", "));
        }
        let namespaces: Vec<&String> = w
            .intervals
            .iter()
            .flat_map(|i| i.ns.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut header = format!(
            "  {:>7} {:>7} {:>7} {:>7} {:>8} {:>9}",
            "at", "opened", "ok", "failed", "p99 us", "in flight"
        );
        for ns in &namespaces {
            let _ = write!(header, " {:>12}", format!("tw@{ns}"));
        }
        let _ = writeln!(s, "{header}");
        let n = w.intervals.len();
        for (k, i) in w.intervals.iter().enumerate() {
            if n > SERIES_ROWS && k == SERIES_ROWS / 2 {
                let _ = writeln!(
                    s,
                    "  {:>7} ({} intervals left out; all are in --json)",
                    "...",
                    n - SERIES_ROWS
                );
            }
            if n > SERIES_ROWS && k >= SERIES_ROWS / 2 && k < n - SERIES_ROWS / 2 {
                continue;
            }
            let failed: u64 = i.errors.values().sum();
            let mut line = format!(
                "  {:>6.1}s {:>7} {:>7} {:>7} {:>8} {:>9}",
                i.start.as_secs_f64(),
                i.attempts,
                i.ok,
                failed,
                i.connect_us.p99,
                i.in_flight
            );
            for ns in &namespaces {
                match i.ns.get(*ns) {
                    Some(g) => {
                        let _ = write!(line, " {:>12}", g.time_wait);
                    }
                    None => {
                        let _ = write!(line, " {:>12}", "-");
                    }
                }
            }
            let _ = writeln!(s, "{line}");
        }
    }
}

fn state_counts(rows: &[SocketRow]) -> String {
    if rows.is_empty() {
        return "no TCP sockets".into();
    }
    ALL_STATES
        .iter()
        .filter_map(|st| {
            let n = rows.iter().filter(|r| r.state == *st).count();
            (n > 0).then(|| format!("{st} {n}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
