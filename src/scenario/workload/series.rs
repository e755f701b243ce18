//! What a workload leaves behind: totals by outcome, connect latency, and one row per
//! interval. Aggregates only: a workload of a million connections keeps a few kilobytes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::case::SeriesMetric;
use crate::vocab::OK;

/// A workload's run, filed under its step's label.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkloadRun {
    pub label: String,
    /// Since the first step started, when the workload began.
    #[serde(rename = "started_at_ms", with = "millis")]
    pub started_at: Duration,
    /// How long it opened connections, and then how long until its last one was done.
    #[serde(rename = "opening_ms", with = "millis")]
    pub opening: Duration,
    #[serde(rename = "total_ms", with = "millis")]
    pub total: Duration,
    #[serde(rename = "interval_ms", with = "millis")]
    pub interval: Duration,
    /// How late an open loop opened a connection on its schedule at worst: the machine (or
    /// the loop) could not keep the rate while it was this far behind.
    #[serde(rename = "behind_ms", with = "millis")]
    pub behind: Duration,
    /// Connections by outcome (`ok`, `EADDRNOTAVAIL`, `TIMEOUT`, `LIMIT`...).
    pub outcomes: BTreeMap<String, u64>,
    /// The first failed connection: its outcome and when (since the workload started).
    pub first_error: Option<FirstError>,
    /// Connections still not done when the workload stopped waiting for them.
    pub unfinished: u64,
    /// Errors the server side saw (a request cut short, a reset), by outcome.
    pub server_errors: BTreeMap<String, u64>,
    /// Connect latency over the whole run, microseconds.
    pub connect_us: Percentiles,
    /// How long a connect() that failed at once (EADDRNOTAVAIL) took, microseconds: the
    /// kernel searches the whole port range before it gives up.
    pub refused_connect_us: Percentiles,
    /// Bytes one TIME_WAIT socket takes (the slab object), when the kernel reports it.
    pub time_wait_object_bytes: Option<u64>,
    /// The client namespaces' ephemeral port range.
    pub port_range: Option<(u16, u16)>,
    pub intervals: Vec<Interval>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirstError {
    pub outcome: String,
    #[serde(rename = "at_ms", with = "millis")]
    pub at: Duration,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub count: u64,
}

/// One interval of the series: what the client did in it, and what the kernel held at its
/// end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Interval {
    /// Since the workload started.
    #[serde(rename = "start_ms", with = "millis")]
    pub start: Duration,
    pub attempts: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Connect latency of the connections established in the interval, microseconds.
    pub connect_us: Percentiles,
    /// Connections open at the interval's end.
    pub in_flight: u64,
    pub ports_in_use: Option<u64>,
    /// Per namespace, read at the interval's end.
    pub ns: BTreeMap<String, NsInterval>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NsInterval {
    pub time_wait: u64,
    /// TCP sockets in use (not TIME_WAIT), both families.
    pub tcp_inuse: u64,
    /// Sockets by state, when the workload counts them (`socket_states`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_drops: Option<u64>,
    /// MIB counters that moved in the interval.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, i64>,
}

impl WorkloadRun {
    pub fn count(&self, outcome: Option<&str>) -> u64 {
        match outcome {
            None => self.outcomes.values().sum(),
            Some(o) => self.outcomes.get(o).copied().unwrap_or(0),
        }
    }

    /// A series' value in one interval; `None` where the series was not recorded (a
    /// namespace without conntrack, socket states not counted).
    pub fn value(&self, i: &Interval, metric: &SeriesMetric) -> Option<i64> {
        let ns = |name: &str| i.ns.get(name);
        let v = match metric {
            SeriesMetric::Attempts => i.attempts as i64,
            SeriesMetric::Ok => i.ok as i64,
            SeriesMetric::Rate => {
                let secs = self.interval_len(i).as_secs_f64();
                if secs <= 0.0 {
                    return None;
                }
                (i.ok as f64 / secs).round() as i64
            }
            SeriesMetric::Errors(None) => i.errors.values().sum::<u64>() as i64,
            SeriesMetric::Errors(Some(o)) => i.errors.get(o).copied().unwrap_or(0) as i64,
            SeriesMetric::ConnectP50Us => {
                return (i.connect_us.count > 0).then_some(i.connect_us.p50 as i64);
            }
            SeriesMetric::ConnectP99Us => {
                return (i.connect_us.count > 0).then_some(i.connect_us.p99 as i64);
            }
            SeriesMetric::InFlight => i.in_flight as i64,
            SeriesMetric::PortsInUse => i.ports_in_use? as i64,
            SeriesMetric::TimeWait(n) => ns(n)?.time_wait as i64,
            SeriesMetric::TimeWaitKib(n) => {
                (ns(n)?.time_wait * self.time_wait_object_bytes? / 1024) as i64
            }
            SeriesMetric::Sockets { ns: n, state } => {
                let s = ns(n)?;
                if s.states.is_empty() {
                    return None;
                }
                match state {
                    Some(st) => s.states.get(st.name()).copied().unwrap_or(0) as i64,
                    None => s
                        .states
                        .iter()
                        .filter(|(k, _)| k.as_str() != "LISTEN")
                        .map(|(_, v)| *v)
                        .sum::<u64>() as i64,
                }
            }
            SeriesMetric::Conntrack(n) => ns(n)?.conntrack? as i64,
            SeriesMetric::ConntrackDrops(n) => ns(n)?.conntrack_drops? as i64,
            SeriesMetric::Counter { ns: n, name } => {
                ns(n)?.counters.get(name).copied().unwrap_or(0)
            }
        };
        Some(v)
    }

    /// An interval's length: the interval, or less for the last one.
    pub fn interval_len(&self, i: &Interval) -> Duration {
        self.interval.min(self.total.saturating_sub(i.start))
    }

    /// A one-line summary: `12000 connections in 20.0 s (600/s): 11640 ok, 360 EADDRNOTAVAIL
    /// (first at 19.4 s)`.
    pub fn summary(&self) -> String {
        let n = self.count(None);
        let secs = self.opening.as_secs_f64();
        let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let mut parts = vec![format!("{} {OK}", self.count(Some(OK)))];
        for (o, c) in &self.outcomes {
            if o != OK {
                parts.push(format!("{c} {o}"));
            }
        }
        let first = match &self.first_error {
            Some(f) => format!(" (first {} at {:.1} s)", f.outcome, f.at.as_secs_f64()),
            None => String::new(),
        };
        let unfinished = if self.unfinished > 0 {
            format!(", {} unfinished", self.unfinished)
        } else {
            String::new()
        };
        // A loop late by more than a few milliseconds was not keeping its rate: say so.
        let behind = if self.behind > Duration::from_millis(20) {
            format!(
                "; fell behind its schedule by up to {} ms",
                self.behind.as_millis()
            )
        } else {
            String::new()
        };
        let refused = if self.refused_connect_us.count > 0 {
            format!(
                "; a refused connect() took p50 {} us, p99 {} us",
                self.refused_connect_us.p50, self.refused_connect_us.p99
            )
        } else {
            String::new()
        };
        format!(
            "{n} connections in {secs:.1} s ({rate:.0}/s): {}{first}{unfinished}; connect p50 {} us, p99 {} us{refused}{behind}",
            parts.join(", "),
            self.connect_us.p50,
            self.connect_us.p99
        )
    }
}

mod millis {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel matrix reads a guest's results back: every field must survive the trip,
    /// including the ones left out when empty.
    #[test]
    fn a_run_survives_json() {
        let run = WorkloadRun {
            label: "churn".into(),
            total: Duration::from_millis(2500),
            interval: Duration::from_secs(1),
            outcomes: BTreeMap::from([("ok".into(), 3)]),
            intervals: vec![Interval {
                ns: BTreeMap::from([("client".into(), NsInterval::default())]),
                ..Interval::default()
            }],
            ..WorkloadRun::default()
        };
        let text = serde_json::to_string(&run).unwrap();
        let back: WorkloadRun = serde_json::from_str(&text).unwrap();
        assert_eq!(back.count(Some("ok")), 3);
        assert_eq!(back.total, Duration::from_millis(2500));
        assert_eq!(back.intervals[0].ns["client"].time_wait, 0);
    }
}
