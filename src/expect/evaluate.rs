//! Expectations against observations: each gives a verdict with the observed value.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::case::Platform;
use std::net::SocketAddr;

use crate::observe::{Counters, Packet, SocketRow};
use crate::scenario::workload::WorkloadRun;
use crate::scenario::{Exit, ProgramRun, SocketSample, StepRecord, outcome_counts};

use crate::case::{Check, Expectation, OutputStream, RowTest, SocketField, SocketFilter};
use crate::vocab::InfoUnit;

/// Everything observed in one trial.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub steps: Vec<StepRecord>,
    /// `sample` steps in order, then `end`.
    pub samples: Vec<SocketSample>,
    /// Counter changes over the steps, per namespace.
    pub counters: BTreeMap<String, Counters>,
    /// TCP packets each sender namespace put on its first link, in capture order. Their `at`
    /// counts from the start of the case's first step (the taps' clocks re-based to it), like
    /// `StepRecord::started`.
    pub packets: BTreeMap<String, Vec<Packet>>,
    /// Each connection's 4-tuples as its client saw them, (client address, server address);
    /// a name that a later `connect` reused has several. What `packets:` `conn:` matches.
    pub conn_tuples: BTreeMap<String, Vec<(SocketAddr, SocketAddr)>>,
    /// Whether packets were captured at all (only when an expectation needs them).
    pub captured: bool,
    /// The first packets of each capture, one line each, for the evidence.
    pub packet_log: Vec<String>,
    /// Targeted drops and random loss: name -> packets dropped.
    pub dropped: BTreeMap<String, u64>,
    /// Conntrack statistics changes over the case, per namespace with conntrack.
    pub conntrack_stats: BTreeMap<String, BTreeMap<String, i64>>,
    /// Kernel log records written during the case (only when an expectation reads them).
    pub kernel_log: Vec<String>,
    /// Host-global settings changed for the case, and restored.
    pub host_changes: Vec<String>,
    /// Impairments applied and through which backend, delay-line statistics.
    pub impairments: Vec<String>,
    /// Programs run by `exec` steps, in the order they ended.
    pub programs: Vec<ProgramRun>,
    /// Workloads that ran, in order.
    pub workloads: Vec<WorkloadRun>,
    pub setup: Duration,
    pub run: Duration,
    /// The kernel, its features and the backend: what `when:` conditions are judged against.
    pub platform: Platform,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub expectation: Expectation,
    /// Whether the verdict is good for the case: the expectation held, or it is marked
    /// `xfail:` and did not (an XPASS is not). True also when it does not apply here.
    pub passed: bool,
    /// Whether the expectation itself held (what `passed` is without `xfail:`).
    pub held: bool,
    /// False when its `when:` does not hold on this kernel: not judged.
    pub applies: bool,
    pub observed: String,
}

pub fn matches(filter: &SocketFilter, row: &SocketRow) -> bool {
    filter.state.is_none_or(|s| s == row.state)
        && filter.has_file.is_none_or(|f| f == (row.inode != 0))
        && filter
            .port
            .is_none_or(|p| p.contains(row.local.port()) || p.contains(row.remote.port()))
        && filter
            .local_port
            .is_none_or(|p| p.contains(row.local.port()))
        && filter
            .remote_port
            .is_none_or(|p| p.contains(row.remote.port()))
}

pub fn evaluate(expectations: &[Expectation], obs: &Observations) -> Vec<Verdict> {
    expectations
        .iter()
        .map(|e| {
            if let Some(when) = e.when.as_ref().filter(|w| !w.holds(&obs.platform)) {
                return Verdict {
                    expectation: e.clone(),
                    passed: true,
                    held: true,
                    applies: false,
                    observed: format!(
                        "not judged: `when: {}` does not hold on kernel {}{}",
                        when.text,
                        obs.platform.release,
                        obs.platform
                            .backend
                            .as_ref()
                            .map(|b| format!(" with backend {b}"))
                            .unwrap_or_default()
                    ),
                };
            }
            let (held, observed) = judge(&e.check, obs);
            Verdict {
                expectation: e.clone(),
                passed: held != e.xfail.is_some(),
                held,
                applies: true,
                observed,
            }
        })
        .collect()
}

fn attempts<'a>(
    obs: &'a Observations,
    label: &'a str,
) -> impl Iterator<Item = &'a StepRecord> + 'a {
    obs.steps
        .iter()
        .filter(move |r| r.label == label && r.outcome.is_attempt())
}

fn outcome_summary(obs: &Observations, label: &str) -> String {
    let counts = outcome_counts(attempts(obs, label));
    if counts.is_empty() {
        return "no attempts".into();
    }
    counts
}

/// The sample an expectation names, or the failed verdict saying it was never taken.
fn sample_at<'a>(obs: &'a Observations, at: &str) -> Result<&'a SocketSample, (bool, String)> {
    obs.samples
        .iter()
        .find(|s| s.label == at)
        .ok_or_else(|| (false, format!("no sample `{at}` was taken")))
}

fn judge(check: &Check, obs: &Observations) -> (bool, String) {
    match check {
        Check::ResultCount { .. }
        | Check::FirstError { .. }
        | Check::All { .. }
        | Check::DurationMs { .. }
        | Check::Bytes { .. }
        | Check::ResultValue { .. }
        | Check::ResultLocalPort { .. } => judge_results(check, obs),
        Check::Sockets { .. } | Check::SocketRows { .. } => judge_sockets(check, obs),
        Check::Packets { .. } | Check::Dropped { .. } => judge_packets(check, obs),
        Check::ConntrackEntries { .. } | Check::ConntrackStat { .. } => judge_conntrack(check, obs),
        Check::KernelLog { .. } | Check::Counter { .. } => judge_kernel(check, obs),
        Check::ProgramExit { .. }
        | Check::ProgramSignal { .. }
        | Check::ProgramOutput { .. }
        | Check::ProgramDuration { .. }
        | Check::ProgramProcesses { .. } => judge_program(check, obs),
        Check::WorkloadTotal { .. }
        | Check::WorkloadFirstError { .. }
        | Check::WorkloadSeries { .. } => super::workload::judge_workload(check, obs),
    }
}

/// Step results: counts by outcome, the first error, durations, bytes.
fn judge_results(check: &Check, obs: &Observations) -> (bool, String) {
    match check {
        Check::ResultCount {
            label,
            outcome,
            cmp,
        } => {
            let n = attempts(obs, label)
                .filter(|r| outcome.as_ref().is_none_or(|o| r.outcome.name() == *o))
                .count() as i64;
            (
                cmp.holds(n),
                format!("{n} ({})", outcome_summary(obs, label)),
            )
        }
        Check::FirstError { label, expected } => {
            let first = attempts(obs, label)
                .enumerate()
                .find(|(_, r)| r.outcome.is_failure());
            let seen = first.as_ref().map(|(_, r)| r.outcome.name());
            let text = match &first {
                Some((i, r)) => format!(
                    "{} at attempt {} ({})",
                    r.outcome.name(),
                    i + 1,
                    outcome_summary(obs, label)
                ),
                None => format!("no error ({})", outcome_summary(obs, label)),
            };
            (seen == *expected, text)
        }
        Check::All { label, outcome } => {
            let total = attempts(obs, label).count();
            let ok = total > 0 && attempts(obs, label).all(|r| r.outcome.name() == *outcome);
            (ok, outcome_summary(obs, label))
        }
        Check::DurationMs { label, cmp } => {
            let ms: Vec<i64> = attempts(obs, label)
                .map(|r| r.duration.as_millis() as i64)
                .collect();
            let (lo, hi) = (ms.iter().min(), ms.iter().max());
            let ok = !ms.is_empty() && ms.iter().all(|m| cmp.holds(*m));
            let text = match (lo, hi) {
                (Some(lo), Some(hi)) => format!("{lo}..{hi} ms over {} attempts", ms.len()),
                _ => "no attempts".into(),
            };
            (ok, text)
        }
        Check::Bytes { label, cmp } => {
            let n: u64 = attempts(obs, label).filter_map(|r| r.bytes).sum();
            (cmp.holds(n as i64), format!("{n} bytes"))
        }
        Check::ResultValue { label, wanted } => {
            let read: Vec<String> = attempts(obs, label)
                .map(|r| match &r.value {
                    Some(v) => v.to_string(),
                    None => format!("none ({})", r.outcome.name()),
                })
                .collect();
            let ok = !read.is_empty()
                && attempts(obs, label).all(|r| r.value.as_ref().is_some_and(|v| wanted.holds(v)));
            (ok, values_text(&read))
        }
        Check::ResultLocalPort { label, range } => {
            let ports: Vec<u16> = attempts(obs, label)
                .filter(|r| r.outcome == crate::vocab::Outcome::Ok)
                .filter_map(|r| r.local.map(|a| a.port()))
                .collect();
            let ok = !ports.is_empty() && ports.iter().all(|p| range.contains(*p));
            let text = match (ports.iter().min(), ports.iter().max()) {
                (Some(lo), Some(hi)) => {
                    format!("ports {lo}..{hi} over {} successful attempts", ports.len())
                }
                _ => "no successful attempt with a local port".into(),
            };
            (ok, text)
        }
        _ => (false, format!("not a results check: {check}")),
    }
}

/// Values in order, runs of one value folded (`1 x3, 0`).
fn values_text(values: &[String]) -> String {
    if values.is_empty() {
        return "no attempts".into();
    }
    let mut runs: Vec<(String, usize)> = Vec::new();
    for v in values {
        match runs.last_mut() {
            Some((last, n)) if last == v => *n += 1,
            _ => runs.push((v.clone(), 1)),
        }
    }
    runs.iter()
        .map(|(v, n)| {
            if *n > 1 {
                format!("{v} x{n}")
            } else {
                v.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Socket counts, and what every matching socket shows, at a sample.
fn judge_sockets(check: &Check, obs: &Observations) -> (bool, String) {
    match check {
        Check::Sockets {
            ns,
            filter,
            at,
            cmp,
        } => {
            let sample = match sample_at(obs, at) {
                Ok(s) => s,
                Err(missing) => return missing,
            };
            let n = sample
                .sockets
                .get(ns)
                .map(|rows| rows.iter().filter(|r| matches(filter, r)).count())
                .unwrap_or(0) as i64;
            (
                cmp.holds(n),
                format!("{n} (at {:.1}s)", sample.at.as_secs_f64()),
            )
        }
        Check::SocketRows {
            ns,
            filter,
            at,
            test,
        } => {
            let sample = match sample_at(obs, at) {
                Ok(s) => s,
                Err(missing) => return missing,
            };
            let rows: Vec<&SocketRow> = sample
                .sockets
                .get(ns)
                .into_iter()
                .flatten()
                .filter(|r| matches(filter, r))
                .collect();
            judge_rows(&rows, test)
        }
        _ => (false, format!("not a sockets check: {check}")),
    }
}

/// Rows shown in a verdict before the rest are summed up.
const SHOWN_ROWS: usize = 8;

/// Every row meets the test; each row's value is shown (the failing ones first), so a failure
/// says what was seen where. No row fails: there was nothing to meet it.
fn judge_rows(rows: &[&SocketRow], test: &RowTest) -> (bool, String) {
    if rows.is_empty() {
        return (false, "no matching socket".into());
    }
    let judged: Vec<(bool, String)> = rows
        .iter()
        .map(|r| {
            let (ok, seen) = row_meets(r, test);
            (ok, format!("{}->{} {} {seen}", r.local, r.remote, r.state))
        })
        .collect();
    let failing = judged.iter().filter(|(ok, _)| !ok).count();
    let mut ordered: Vec<&(bool, String)> = judged.iter().filter(|(ok, _)| !ok).collect();
    ordered.extend(judged.iter().filter(|(ok, _)| *ok));
    let mut shown: Vec<String> = ordered
        .iter()
        .take(SHOWN_ROWS)
        .map(|(ok, text)| {
            if *ok {
                text.clone()
            } else {
                format!("{text} (fails)")
            }
        })
        .collect();
    if ordered.len() > SHOWN_ROWS {
        shown.push(format!("... {} more", ordered.len() - SHOWN_ROWS));
    }
    let head = if failing == 0 {
        format!("{} socket(s): ", rows.len())
    } else {
        format!("{failing} of {} socket(s) fail: ", rows.len())
    };
    (failing == 0, head + &shown.join("; "))
}

/// Whether one row meets the test, and what it showed.
fn row_meets(row: &SocketRow, test: &RowTest) -> (bool, String) {
    match test {
        RowTest::Field(field, cmp) => {
            let raw = match field {
                SocketField::ExpiresMs => Some(u64::from(row.expires_ms)),
                SocketField::Retrans => Some(u64::from(row.retrans)),
                SocketField::RecvQ => Some(u64::from(row.recv_q)),
                SocketField::SendQ => Some(u64::from(row.send_q)),
                SocketField::Info(f) => row.info(*f),
            };
            let Some(raw) = raw else {
                let why = if row.info.is_none() {
                    "no tcp_info"
                } else {
                    "not in this kernel's tcp_info"
                };
                return (false, format!("{field}: {why}"));
            };
            let raw = i64::try_from(raw).unwrap_or(i64::MAX);
            match field.unit() {
                // Compared in whole milliseconds (rounded), as the case writes them; the
                // exact value is shown too, so that 1.50 ms passing `at_most: 2` reads right.
                InfoUnit::Micros => {
                    let ms = (raw + 500) / 1000;
                    let exact = raw as f64 / 1000.0;
                    let shown = if raw % 1000 == 0 {
                        format!("{field} {ms}")
                    } else {
                        format!("{field} {exact:.2} (as {ms})")
                    };
                    (cmp.holds(ms), shown)
                }
                InfoUnit::Millis | InfoUnit::Plain => (cmp.holds(raw), format!("{field} {raw}")),
            }
        }
        RowTest::Timer(expected) => {
            let shown = format!("timer {}", row.timer_text());
            (row.timer == Ok(*expected), shown)
        }
        RowTest::Options { options, present } => {
            let Some(info) = &row.info else {
                return (false, "no tcp_info".into());
            };
            let ok = options.iter().all(|o| info.has(*o) == *present);
            let had: Vec<&str> = info.options().map(|o| o.name()).collect();
            let shown = if had.is_empty() {
                "options none".to_string()
            } else {
                format!("options {}", had.join(","))
            };
            (ok, shown)
        }
    }
}

/// Packets on the wire and what the link dropped.
fn judge_packets(check: &Check, obs: &Observations) -> (bool, String) {
    match check {
        Check::Packets { .. } => super::packets::judge(check, obs),
        Check::Dropped { name, cmp } => match obs.dropped.get(name) {
            Some(n) => (cmp.holds(*n as i64), format!("{n}")),
            None => (
                false,
                format!("no drop or loss named `{name}` was installed"),
            ),
        },
        _ => (false, format!("not a packets check: {check}")),
    }
}

/// Conntrack tables at a sample and statistics over the case.
fn judge_conntrack(check: &Check, obs: &Observations) -> (bool, String) {
    match check {
        Check::ConntrackEntries { ns, state, at, cmp } => {
            let sample = match sample_at(obs, at) {
                Ok(s) => s,
                Err(missing) => return missing,
            };
            let Some(table) = sample.conntrack.get(ns) else {
                return (
                    false,
                    format!("conntrack is not enabled in `{ns}` (add it under `conntrack:`)"),
                );
            };
            let n = match state {
                Some(st) => table.tcp_states.get(st).copied().unwrap_or(0),
                None => table.entries,
            };
            let states: Vec<String> = table
                .tcp_states
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            (
                cmp.holds(n as i64),
                format!(
                    "{n} (of {} entries; tcp: {})",
                    table.entries,
                    states.join(", ")
                ),
            )
        }
        Check::ConntrackStat { ns, stat, cmp } => {
            match obs.conntrack_stats.get(ns).and_then(|m| m.get(stat)) {
                Some(d) => (cmp.holds(*d), format!("{d:+}")),
                None => (false, format!("no conntrack statistic `{stat}` in `{ns}`")),
            }
        }
        _ => (false, format!("not a conntrack check: {check}")),
    }
}

/// MIB counters and kernel log lines: what the namespace's kernel counted or logged.
fn judge_kernel(check: &Check, obs: &Observations) -> (bool, String) {
    match check {
        Check::KernelLog { text, cmp } => {
            let matching: Vec<&String> = obs
                .kernel_log
                .iter()
                .filter(|l| l.contains(text.as_str()))
                .collect();
            let shown = match matching.first() {
                Some(first) => format!("{} (first: {first})", matching.len()),
                None => format!(
                    "0 (of {} records logged during the case)",
                    obs.kernel_log.len()
                ),
            };
            (cmp.holds(matching.len() as i64), shown)
        }
        Check::Counter { ns, name, cmp } => match obs.counters.get(ns) {
            None => (false, format!("no counters were read in `{ns}`")),
            Some(counters) => match counters.get(name) {
                Some(d) => (cmp.holds(d), format!("{d:+}")),
                None => (
                    false,
                    format!("{name} is not a counter this kernel has in /proc/net/netstat or snmp"),
                ),
            },
        },
        _ => (false, format!("not a kernel check: {check}")),
    }
}
/// Program checks read the last run of the program with that label.
fn judge_program(check: &Check, obs: &Observations) -> (bool, String) {
    let (Check::ProgramExit { label, .. }
    | Check::ProgramSignal { label, .. }
    | Check::ProgramOutput { label, .. }
    | Check::ProgramDuration { label, .. }
    | Check::ProgramProcesses { label, .. }) = check
    else {
        return (false, "not a program check".into());
    };
    let Some(run) = obs.programs.iter().rev().find(|r| r.spec.label == *label) else {
        return (false, format!("program `{label}` never ran"));
    };
    let how = match run.stopped_by {
        Some(why) => format!("{} (stopped by twlab: {why})", run.exit),
        None => run.exit.to_string(),
    };
    match check {
        Check::ProgramExit { cmp, .. } => match run.exit {
            Exit::Code(c) => (cmp.holds(i64::from(c)), how),
            Exit::Signal(_) => (false, how),
        },
        Check::ProgramSignal { signal, .. } => (run.exit == Exit::Signal(signal.clone()), how),
        Check::ProgramOutput { stream, text, .. } => {
            let found = match stream {
                OutputStream::Stdout => run.stdout.contains(text.as_str()),
                OutputStream::Stderr => run.stderr.contains(text.as_str()),
                OutputStream::Either => {
                    run.stdout.contains(text.as_str()) || run.stderr.contains(text.as_str())
                }
            };
            let shown = |name: &str, t: &str| {
                let last = ProgramRun::tail(t, 1);
                format!(
                    "{name} {} bytes, last line {:?}",
                    t.len(),
                    last.first().copied().unwrap_or("")
                )
            };
            (
                found,
                format!(
                    "{} ({}; {})",
                    if found { "found" } else { "not found" },
                    shown("stdout", &run.stdout),
                    shown("stderr", &run.stderr)
                ),
            )
        }
        Check::ProgramDuration { cmp, .. } => {
            let ms = run.duration.as_millis() as i64;
            (cmp.holds(ms), format!("{ms} ms, {how}"))
        }
        Check::ProgramProcesses { cmp, .. } => {
            let n = run.processes.len();
            let list = match (n, run.stopped_by) {
                (0, None) => "none (it ended before twlab stopped it)".to_string(),
                (0, Some(_)) => "none listed when twlab stopped it".to_string(),
                _ => run.processes.join(", "),
            };
            (cmp.holds(n as i64), format!("{n}: {list}"))
        }
        _ => (false, "not a program check".into()),
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
