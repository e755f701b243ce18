//! The `workload` step as written, and the words its expectations use: which series
//! (`time_wait@server`), over which window (`20s..40s`), summed up how (`every`, `max`...).
//!
//! A workload opens many connections and keeps only aggregates: counts by outcome, connect
//! latency, and per-interval series of what the client saw and what the kernel held. The
//! engine that runs it is `scenario/workload/`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::vocab::{CaseDuration, Role, TcpState};

use super::model::{CloseHow, PeerAction};

/// One namespace or several, used in turn.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Client namespace, or a list of them used in turn (one connection each).
    #[schemars(with = "OneOrMany")]
    pub from: Spanned<OneOrMany>,
    /// Server namespace (its address on the client's side) or an address literal.
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// The first server port; the workload listens on it itself.
    pub port: u16,
    /// Listen on this many consecutive ports from `port`, connections spread over them in turn.
    #[serde(default = "one_port")]
    #[schemars(with = "u16")]
    pub ports: Spanned<u16>,
    /// Open loop: new connections per second, whatever happens to earlier ones.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub rate: Option<Spanned<u32>>,
    /// Closed loop: this many connections in flight, a new one as soon as one is done.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<Spanned<u32>>,
    /// How long to open connections for.
    #[serde(default)]
    #[schemars(with = "Option<CaseDuration>")]
    pub duration: Option<Spanned<CaseDuration>>,
    /// How many connections to open.
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub count: Option<Spanned<u64>>,
    /// Stop opening connections at the first failed one.
    #[serde(default)]
    pub until_error: bool,
    /// Who closes first, how, and what the other side does.
    #[serde(default)]
    pub close: WorkloadClose,
    /// Bytes the client sends after connecting, read in full by the server.
    #[serde(default)]
    pub request_bytes: u32,
    /// Bytes the server answers with once it has the request, read in full by the client.
    #[serde(default)]
    pub response_bytes: u32,
    /// How long the side that closes first holds the connection before closing it.
    #[serde(default)]
    pub think: Option<CaseDuration>,
    /// A connect not established by then counts as TIMEOUT and its socket is closed.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: CaseDuration,
    /// The series' interval: 1s by default, 100ms at the least.
    #[serde(default = "default_interval")]
    #[schemars(with = "CaseDuration")]
    pub interval: Spanned<CaseDuration>,
    /// The listeners' accept backlog.
    #[serde(default = "default_backlog")]
    pub backlog: i32,
    /// Connections open at once at most (open loop): an attempt beyond it counts as `LIMIT`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Count sockets by state in every namespace each interval (a sock_diag dump each):
    /// needed for `STATE@ns` and `ports_in_use` series; TIME_WAIT alone comes from sockstat.
    #[serde(default)]
    pub socket_states: bool,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadClose {
    #[serde(default = "default_by")]
    pub by: Role,
    /// `fin` or `abort`; `linger: N` blocks the loop in close() as it would block the
    /// application's thread (up to N seconds for the FIN's ACK).
    #[serde(default = "default_how")]
    pub how: CloseHow,
    #[serde(default = "default_peer")]
    pub peer: PeerAction,
}

impl Default for WorkloadClose {
    fn default() -> Self {
        WorkloadClose {
            by: default_by(),
            how: default_how(),
            peer: default_peer(),
        }
    }
}

fn one_port() -> Spanned<u16> {
    Spanned {
        value: 1,
        referenced: serde_saphyr::Location::UNKNOWN,
        defined: serde_saphyr::Location::UNKNOWN,
    }
}
fn default_by() -> Role {
    Role::Client
}
fn default_how() -> CloseHow {
    CloseHow::Fin
}
fn default_peer() -> PeerAction {
    PeerAction::CloseOnEof
}
fn default_connect_timeout() -> CaseDuration {
    CaseDuration(Duration::from_secs(1))
}
fn default_interval() -> Spanned<CaseDuration> {
    Spanned {
        value: CaseDuration(Duration::from_secs(1)),
        referenced: serde_saphyr::Location::UNKNOWN,
        defined: serde_saphyr::Location::UNKNOWN,
    }
}
fn default_backlog() -> i32 {
    4096
}
fn default_max_in_flight() -> u32 {
    8192
}

/// The shortest interval a workload's series may have.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// One series of a workload, per interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesMetric {
    /// Connections opened.
    Attempts,
    /// Connections that completed without an error.
    Ok,
    /// Successes per second.
    Rate,
    /// Failed connections, of one outcome (`errors:EADDRNOTAVAIL`) or all.
    Errors(Option<String>),
    /// Connect latency percentiles of the interval, in microseconds.
    ConnectP50Us,
    ConnectP99Us,
    /// Connections open at the interval's end.
    InFlight,
    /// The client namespaces' sockets holding a local port in the ephemeral range.
    PortsInUse,
    /// sockstat's `tw` of a namespace.
    TimeWait(String),
    /// That many TIME_WAIT sockets times the slab object the kernel allocates for each, KiB.
    TimeWaitKib(String),
    /// Sockets of a namespace in a state (`None`: all but listeners), from sock_diag.
    Sockets {
        ns: String,
        state: Option<TcpState>,
    },
    /// Conntrack entries of a namespace.
    Conntrack(String),
    /// Packets conntrack dropped in the interval (statistics column `drop`).
    ConntrackDrops(String),
    /// A MIB counter's change in the interval (`TcpExt.TWRecycled@client`).
    Counter {
        ns: String,
        name: String,
    },
}

impl SeriesMetric {
    /// Parses `time_wait@server`, `errors:EADDRNOTAVAIL`, `TcpExt.TWRecycled@client`...
    pub fn parse(text: &str) -> Result<SeriesMetric, String> {
        let (name, ns) = match text.split_once('@') {
            Some((n, ns)) => (n, Some(ns.to_string())),
            None => (text, None),
        };
        fn per_ns(
            name: &str,
            ns: &Option<String>,
            m: impl FnOnce(String) -> SeriesMetric,
        ) -> Result<SeriesMetric, String> {
            match ns {
                Some(ns) => Ok(m(ns.clone())),
                None => Err(format!("`{name}` is per namespace: write `{name}@NS`")),
            }
        }
        let needs_ns = |m: fn(String) -> SeriesMetric| per_ns(name, &ns, m);
        let global = |m: SeriesMetric| match ns {
            None => Ok(m),
            Some(_) => Err(format!(
                "`{name}` is the workload's own, not per namespace: write it without `@`"
            )),
        };
        match name {
            "attempts" => global(SeriesMetric::Attempts),
            "ok" => global(SeriesMetric::Ok),
            "rate" => global(SeriesMetric::Rate),
            "errors" => global(SeriesMetric::Errors(None)),
            "connect_p50_us" => global(SeriesMetric::ConnectP50Us),
            "connect_p99_us" => global(SeriesMetric::ConnectP99Us),
            "in_flight" => global(SeriesMetric::InFlight),
            "ports_in_use" => global(SeriesMetric::PortsInUse),
            "time_wait" => needs_ns(SeriesMetric::TimeWait),
            "time_wait_kib" => needs_ns(SeriesMetric::TimeWaitKib),
            "sockets" => needs_ns(|ns| SeriesMetric::Sockets { ns, state: None }),
            "conntrack" => needs_ns(SeriesMetric::Conntrack),
            "conntrack_drops" => needs_ns(SeriesMetric::ConntrackDrops),
            _ => {
                if let Some(outcome) = name.strip_prefix("errors:") {
                    return global(SeriesMetric::Errors(Some(outcome.to_string())));
                }
                if let Some(state) = TcpState::from_name(name) {
                    return per_ns(name, &ns, |ns| SeriesMetric::Sockets {
                        ns,
                        state: Some(state),
                    });
                }
                if name.starts_with("Tcp") || name.starts_with("Ip") {
                    return per_ns(name, &ns, |ns| SeriesMetric::Counter {
                        ns,
                        name: name.to_string(),
                    });
                }
                Err(format!(
                    "`{text}` is not a workload series: attempts, ok, rate, errors, errors:ERRNO, connect_p50_us, connect_p99_us, in_flight, ports_in_use, time_wait@NS, time_wait_kib@NS, sockets@NS, STATE@NS (TIME_WAIT@server), conntrack@NS, conntrack_drops@NS or a counter such as TcpExt.TWRecycled@NS"
                ))
            }
        }
    }

    /// The namespace the series is about, if it is per namespace.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            SeriesMetric::TimeWait(ns)
            | SeriesMetric::TimeWaitKib(ns)
            | SeriesMetric::Conntrack(ns)
            | SeriesMetric::ConntrackDrops(ns)
            | SeriesMetric::Sockets { ns, .. }
            | SeriesMetric::Counter { ns, .. } => Some(ns),
            _ => None,
        }
    }

    /// Whether the series needs a sock_diag dump each interval.
    pub fn needs_socket_states(&self) -> bool {
        matches!(
            self,
            SeriesMetric::Sockets { .. } | SeriesMetric::PortsInUse
        )
    }
}

impl fmt::Display for SeriesMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeriesMetric::Attempts => f.write_str("attempts"),
            SeriesMetric::Ok => f.write_str("ok"),
            SeriesMetric::Rate => f.write_str("rate"),
            SeriesMetric::Errors(None) => f.write_str("errors"),
            SeriesMetric::Errors(Some(o)) => write!(f, "errors:{o}"),
            SeriesMetric::ConnectP50Us => f.write_str("connect_p50_us"),
            SeriesMetric::ConnectP99Us => f.write_str("connect_p99_us"),
            SeriesMetric::InFlight => f.write_str("in_flight"),
            SeriesMetric::PortsInUse => f.write_str("ports_in_use"),
            SeriesMetric::TimeWait(ns) => write!(f, "time_wait@{ns}"),
            SeriesMetric::TimeWaitKib(ns) => write!(f, "time_wait_kib@{ns}"),
            SeriesMetric::Sockets { ns, state: None } => write!(f, "sockets@{ns}"),
            SeriesMetric::Sockets { ns, state: Some(s) } => write!(f, "{s}@{ns}"),
            SeriesMetric::Conntrack(ns) => write!(f, "conntrack@{ns}"),
            SeriesMetric::ConntrackDrops(ns) => write!(f, "conntrack_drops@{ns}"),
            SeriesMetric::Counter { ns, name } => write!(f, "{name}@{ns}"),
        }
    }
}

/// The text of a `series:`, as `SeriesMetric::parse` reads it.
impl schemars::JsonSchema for SeriesMetric {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SeriesMetric".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            // The workload's own series, or NAME@NS; which NAMEs are per namespace is checked
            // when the case loads.
            "pattern": r"^(attempts|ok|rate|errors|errors:[^@]+|connect_p50_us|connect_p99_us|in_flight|ports_in_use|[^@]+@.+)$",
            "description": "A workload series, per interval: the workload's own (attempts, ok, rate, errors, errors:ERRNO, connect_p50_us, connect_p99_us, in_flight, ports_in_use), or a namespace's as NAME@NS: time_wait, time_wait_kib, sockets, a TCP state (TIME_WAIT@server), conntrack, conntrack_drops, or a MIB counter (TcpExt.TWRecycled@client).",
            "examples": ["rate", "errors:EADDRNOTAVAIL", "time_wait@server", "TIME_WAIT@client", "TcpExt.TWRecycled@client"],
        })
    }
}

/// Part of a workload's run, from its start: `20s..40s`, `20s..` (to the end), `..10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub from: Option<Duration>,
    pub to: Option<Duration>,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let Some((a, b)) = text.split_once("..") else {
            return Err(format!(
                "`{text}` is not a window: write FROM..TO from the workload's start, such as 20s..40s, 20s.. or ..10s"
            ));
        };
        let end = |s: &str| -> Result<Option<Duration>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                CaseDuration::parse(s).map(|d| Some(d.0))
            }
        };
        let w = Window {
            from: end(a)?,
            to: end(b)?,
        };
        if let (Some(f), Some(t)) = (w.from, w.to)
            && f >= t
        {
            return Err(format!(
                "the window `{text}` is empty: its start is not before its end"
            ));
        }
        Ok(w)
    }

    /// Whether an interval `[start, start + len)` lies inside the window.
    pub fn holds(&self, start: Duration, len: Duration) -> bool {
        self.from.is_none_or(|f| start >= f) && self.to.is_none_or(|t| start + len <= t)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |d: Option<Duration>| d.map(|d| format!("{:?}", d)).unwrap_or_default();
        write!(f, "{}..{}", show(self.from), show(self.to))
    }
}

/// The text of a `window:`, as `Window::parse` reads it.
impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let d = crate::vocab::DURATION_PATTERN;
        schemars::json_schema!({
            "type": "string",
            "pattern": format!(r"^\s*({d})?\s*\.\.\s*({d})?\s*$"),
            "description": "Part of the workload's run, FROM..TO from its start (either end may be left out); the intervals wholly inside it count.",
            "examples": ["20s..40s", "20s..", "..10s"],
        })
    }
}

/// How a series' intervals in a window are summed up before the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum SeriesAgg {
    /// Every interval's value meets the comparison (a plateau, a sustained rate).
    Every,
    Max,
    Min,
    /// The mean, rounded down.
    Mean,
    Sum,
    /// The last interval's value.
    Last,
}

impl SeriesAgg {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse_and_print_back() {
        for text in [
            "attempts",
            "rate",
            "errors:EADDRNOTAVAIL",
            "time_wait@server",
            "TIME_WAIT@client",
            "TcpExt.TWRecycled@client",
            "conntrack_drops@router",
        ] {
            assert_eq!(SeriesMetric::parse(text).unwrap().to_string(), text);
        }
        assert!(SeriesMetric::parse("time_wait").is_err());
        assert!(SeriesMetric::parse("rate@client").is_err());
        assert!(SeriesMetric::parse("tw").is_err());
    }

    #[test]
    fn windows() {
        let w = Window::parse("2s..4s").unwrap();
        assert!(w.holds(Duration::from_secs(2), Duration::from_secs(1)));
        assert!(w.holds(Duration::from_secs(3), Duration::from_secs(1)));
        assert!(!w.holds(Duration::from_secs(4), Duration::from_secs(1)));
        assert!(!w.holds(Duration::from_secs(1), Duration::from_secs(1)));
        assert_eq!(Window::parse("5s..").unwrap().to, None);
        assert!(Window::parse("4s..2s").is_err());
        assert!(Window::parse("4s").is_err());
    }
}
