//! Checked expectations: what is observed and the comparison it must meet.

use std::fmt;

use super::sockopt::ValueWanted;
use super::workload::{SeriesAgg, SeriesMetric, Window};
use crate::vocab::{
    Comparison, FlagSet, InfoUnit, OptionSet, PortRange, TcpInfoField, TcpKind, TcpOption,
    TcpState, TcpTimer,
};

#[derive(Debug, Clone)]
pub struct Expectation {
    /// Position of the comparison in the case file.
    pub line: u64,
    pub col: u64,
    pub why: Option<String>,
    /// Known to fail, and why (`xfail:`): a failure is expected, a pass is an error.
    pub xfail: Option<String>,
    /// Shown as the evidence of a claim.
    pub evidence: bool,
    /// Where the expectation applies (all kernels when `None`).
    pub when: Option<super::When>,
    pub check: Check,
}

#[derive(Debug, Clone)]
pub enum Check {
    /// How many attempts of the steps under `label` had this outcome (`None`: any outcome).
    ResultCount {
        label: String,
        outcome: Option<String>,
        cmp: Comparison,
    },
    /// The first failing attempt's outcome (`None`: no attempt failed).
    FirstError {
        label: String,
        expected: Option<String>,
    },
    /// Every attempt had this outcome.
    All { label: String, outcome: String },
    /// Every attempt's duration, in milliseconds.
    DurationMs { label: String, cmp: Comparison },
    /// Bytes moved by all attempts together.
    Bytes { label: String, cmp: Comparison },
    /// The value every attempt read back (each must have read one).
    ResultValue { label: String, wanted: ValueWanted },
    /// Every successful attempt's own port (getsockname) is in this range.
    ResultLocalPort { label: String, range: PortRange },
    /// Sockets in a namespace at a sample (`end` or a `sample` step's label).
    Sockets {
        ns: String,
        filter: SocketFilter,
        at: String,
        cmp: Comparison,
    },
    /// Every socket of a namespace that the filter matches at a sample meets `test`; no
    /// matching socket fails it (a check that nothing was there to meet cannot pass).
    SocketRows {
        ns: String,
        filter: SocketFilter,
        at: String,
        test: RowTest,
    },
    /// Packets sent by `from` that crossed its link and match `select`: how many (`cmp`), and
    /// what every one of them must show (`each`).
    Packets {
        from: String,
        select: PacketSelect,
        each: PacketFields,
        cmp: Comparison,
    },
    /// Conntrack entries in a namespace at a sample (`state`: TCP entries in that state).
    ConntrackEntries {
        ns: String,
        state: Option<String>,
        at: String,
        cmp: Comparison,
    },
    /// A conntrack statistics column's change over the case (summed over CPUs).
    ConntrackStat {
        ns: String,
        stat: String,
        cmp: Comparison,
    },
    /// Kernel log records written during the case that contain `text`.
    KernelLog { text: String, cmp: Comparison },
    /// Packets a targeted drop (or a direction's random loss) took.
    Dropped { name: String, cmp: Comparison },
    /// The exit status of the last run of the program an `exec` step with this label started.
    ProgramExit { label: String, cmp: Comparison },
    /// The signal that ended that run.
    ProgramSignal { label: String, signal: String },
    /// Text in that run's output.
    ProgramOutput {
        label: String,
        stream: OutputStream,
        text: String,
    },
    /// How long that run lasted, in milliseconds.
    ProgramDuration { label: String, cmp: Comparison },
    /// How many processes that run had in its PID namespace when twlab stopped it.
    ProgramProcesses { label: String, cmp: Comparison },
    /// A MIB counter's change over the case.
    Counter {
        ns: String,
        name: String,
        cmp: Comparison,
    },
    /// How many of a workload's connections had this outcome (`None`: all of them).
    WorkloadTotal {
        label: String,
        outcome: Option<String>,
        cmp: Comparison,
    },
    /// A workload's first failed connection: its outcome (`None`: none failed) and, with
    /// `at_s`, the whole seconds from the workload's start to it.
    WorkloadFirstError {
        label: String,
        expected: Option<String>,
        at_s: Option<Comparison>,
    },
    /// A workload's series over a window, summed up by `agg`.
    WorkloadSeries {
        label: String,
        metric: SeriesMetric,
        window: Window,
        agg: SeriesAgg,
        cmp: Comparison,
    },
}

/// Which packets a `packets:` expectation looks at; every given selector must match.
#[derive(Debug, Clone, Default)]
pub struct PacketSelect {
    /// `None`: any kind (`packets: ANY`).
    pub kind: Option<TcpKind>,
    /// Exactly these flags, no other.
    pub flags: Option<FlagSet>,
    /// Either end's port.
    pub port: Option<PortRange>,
    pub src_port: Option<PortRange>,
    pub dst_port: Option<PortRange>,
    /// Only the 4-tuples of this connection, either direction, as its client sees them.
    pub conn: Option<String>,
    /// Only packets sent once the first step filed under this label had started; `sent_ms`
    /// counts from there too.
    pub since: Option<String>,
}

/// What every selected packet must show, and the gaps between them.
#[derive(Debug, Clone, Default)]
pub struct PacketFields {
    /// Relative to the initial sequence number of the packet's direction (its SYN's seq).
    pub seq: Option<Comparison>,
    /// Relative to the initial sequence number of the opposite direction.
    pub ack: Option<Comparison>,
    /// Payload bytes.
    pub len: Option<Comparison>,
    /// The raw window field.
    pub window: Option<Comparison>,
    /// Options every selected packet carries (others may be there too).
    pub options: OptionSet,
    /// Options no selected packet carries.
    pub no_options: OptionSet,
    pub mss: Option<Comparison>,
    pub tsecr: Option<TsecrRule>,
    /// Send time in ms since the start of the step `since` names (the case's first step
    /// without `since`).
    pub sent_ms: Option<Comparison>,
    /// Every gap between consecutive selected packets, in ms.
    pub gap_ms: Option<Comparison>,
}

impl PacketFields {
    /// Whether any field is judged per packet (so the check needs at least one packet).
    pub fn judges_packets(&self) -> bool {
        self.seq.is_some()
            || self.ack.is_some()
            || self.len.is_some()
            || self.window.is_some()
            || !self.options.is_empty()
            || !self.no_options.is_empty()
            || self.mss.is_some()
            || self.tsecr.is_some()
            || self.sent_ms.is_some()
    }
}

/// What a packet's timestamp echo reply must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TsecrRule {
    /// TSecr equals the TSval of the latest packet the peer sent on this 4-tuple before it.
    Echoes,
    /// TSecr is the TSval of an earlier packet of the peer, not its latest (an answer to an
    /// out-of-window segment echoes TS.Recent, which only in-window segments update).
    EchoesEarlier,
}

impl fmt::Display for PacketSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(k) => write!(f, "{k}")?,
            None => write!(f, "TCP")?,
        }
        write!(f, " packets")?;
        if let Some(fl) = self.flags {
            write!(f, " [{fl}]")?;
        }
        if let Some(c) = &self.conn {
            write!(f, " of `{c}`")?;
        }
        if let Some(p) = self.port {
            write!(f, ", port {p}")?;
        }
        if let Some(p) = self.src_port {
            write!(f, ", source port {p}")?;
        }
        if let Some(p) = self.dst_port {
            write!(f, ", destination port {p}")?;
        }
        if let Some(l) = &self.since {
            write!(f, " since `{l}` started")?;
        }
        Ok(())
    }
}

impl fmt::Display for PacketFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = self.seq {
            parts.push(format!("relative seq {c}"));
        }
        if let Some(c) = self.ack {
            parts.push(format!("relative ack {c}"));
        }
        if let Some(c) = self.len {
            parts.push(format!("payload {c}"));
        }
        if let Some(c) = self.window {
            parts.push(format!("window {c}"));
        }
        if !self.options.is_empty() {
            parts.push(format!("options {}", self.options));
        }
        if !self.no_options.is_empty() {
            parts.push(format!("no option {}", self.no_options));
        }
        if let Some(c) = self.mss {
            parts.push(format!("mss {c}"));
        }
        match self.tsecr {
            Some(TsecrRule::Echoes) => parts.push("TSecr echoing the peer's latest TSval".into()),
            Some(TsecrRule::EchoesEarlier) => {
                parts.push("TSecr echoing an earlier TSval of the peer, not its latest".into())
            }
            None => {}
        }
        if let Some(c) = self.sent_ms {
            parts.push(format!("sent {c} ms after that step started"));
        }
        if !parts.is_empty() {
            write!(f, "each with {}", parts.join(", "))?;
        }
        if let Some(c) = self.gap_ms {
            if !parts.is_empty() {
                write!(f, "; ")?;
            }
            write!(f, "every gap between them {c} ms")?;
        }
        Ok(())
    }
}

/// Which of a program's output streams a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// Either of them.
    #[strum(serialize = "output")]
    Either,
}

impl OutputStream {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A number sock_diag gives for one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketField {
    /// Milliseconds left on the pending timer (`idiag_expires`).
    ExpiresMs,
    /// The timer's retransmit or probe count (`idiag_retrans`).
    Retrans,
    /// Receive queue: unread bytes, or a listener's accept queue length.
    RecvQ,
    /// Send queue: unacknowledged bytes, or a listener's backlog.
    SendQ,
    /// A tcp_info field (`info:`; `rtt_ms` and `min_rtt_ms` are also written at top level).
    Info(TcpInfoField),
}

impl SocketField {
    /// How the raw value reads: tcp_info's microsecond fields compare in milliseconds.
    pub fn unit(self) -> InfoUnit {
        match self {
            SocketField::Info(f) => f.unit(),
            SocketField::ExpiresMs => InfoUnit::Millis,
            SocketField::Retrans | SocketField::RecvQ | SocketField::SendQ => InfoUnit::Plain,
        }
    }
}

impl fmt::Display for SocketField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketField::ExpiresMs => f.write_str("expires_ms"),
            SocketField::Retrans => f.write_str("retrans"),
            SocketField::RecvQ => f.write_str("recv_q"),
            SocketField::SendQ => f.write_str("send_q"),
            SocketField::Info(i) => write!(f, "info.{i}"),
        }
    }
}

/// What every matching socket row must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowTest {
    /// A number, compared (in milliseconds for time fields).
    Field(SocketField, Comparison),
    /// The pending timer is of this kind.
    Timer(TcpTimer),
    /// The handshake negotiated all of these options (`present`), or none of them.
    Options {
        options: Vec<TcpOption>,
        present: bool,
    },
}

impl fmt::Display for RowTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowTest::Field(field, cmp) => write!(f, "{field} {cmp}"),
            RowTest::Timer(t) => write!(f, "timer {t}"),
            RowTest::Options { options, present } => {
                let names: Vec<&str> = options.iter().map(|o| o.name()).collect();
                let which = if *present {
                    "options"
                } else {
                    "none of options"
                };
                write!(f, "{which} {}", names.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SocketFilter {
    pub state: Option<TcpState>,
    /// Only sockets that a file (so a descriptor) holds, or only those none holds.
    pub has_file: Option<bool>,
    pub port: Option<PortRange>,
    pub local_port: Option<PortRange>,
    pub remote_port: Option<PortRange>,
}

impl fmt::Display for SocketFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            Some(s) => write!(f, "{s}")?,
            None => write!(f, "any state")?,
        }
        if let Some(p) = self.port {
            write!(f, ", port {p}")?;
        }
        match self.has_file {
            Some(true) => write!(f, ", held by a file")?,
            Some(false) => write!(f, ", held by no file")?,
            None => {}
        }
        if let Some(p) = self.local_port {
            write!(f, ", local port {p}")?;
        }
        if let Some(p) = self.remote_port {
            write!(f, ", remote port {p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::ResultCount {
                label,
                outcome: None,
                cmp,
            } => write!(f, "`{label}`: attempts {cmp}"),
            Check::ResultCount {
                label,
                outcome: Some(o),
                cmp,
            } => write!(f, "`{label}`: results {o} {cmp}"),
            Check::FirstError {
                label,
                expected: Some(e),
            } => write!(f, "`{label}`: first error is {e}"),
            Check::FirstError {
                label,
                expected: None,
            } => write!(f, "`{label}`: no error"),
            Check::All { label, outcome } => write!(f, "`{label}`: every attempt is {outcome}"),
            Check::DurationMs { label, cmp } => {
                write!(f, "`{label}`: every attempt takes {cmp} ms")
            }
            Check::Bytes { label, cmp } => write!(f, "`{label}`: bytes {cmp}"),
            Check::ResultValue { label, wanted } => {
                write!(f, "`{label}`: every value read back {wanted}")
            }
            Check::ResultLocalPort { label, range } => {
                write!(f, "`{label}`: every local port in {range}")
            }
            Check::Sockets {
                ns,
                filter,
                at,
                cmp,
            } => write!(f, "{ns}: sockets ({filter}) at {at} {cmp}"),
            Check::Counter { ns, name, cmp } => write!(f, "{ns}: {name} delta {cmp}"),
            Check::WorkloadTotal {
                label,
                outcome: None,
                cmp,
            } => write!(f, "workload `{label}`: connections {cmp}"),
            Check::WorkloadTotal {
                label,
                outcome: Some(o),
                cmp,
            } => write!(f, "workload `{label}`: {o} {cmp}"),
            Check::WorkloadFirstError {
                label,
                expected: None,
                ..
            } => write!(f, "workload `{label}`: no connection failed"),
            Check::WorkloadFirstError {
                label,
                expected: Some(o),
                at_s: None,
            } => write!(f, "workload `{label}`: first failure {o}"),
            Check::WorkloadFirstError {
                label,
                expected: Some(o),
                at_s: Some(at),
            } => write!(f, "workload `{label}`: first failure {o}, at second {at}"),
            Check::WorkloadSeries {
                label,
                metric,
                window,
                agg,
                cmp,
            } => {
                let over = if *window == Window::default() {
                    String::new()
                } else {
                    format!(" over {window}")
                };
                write!(
                    f,
                    "workload `{label}`: {metric}{over}, {} {cmp}",
                    agg.name()
                )
            }
            Check::SocketRows {
                ns,
                filter,
                at,
                test,
            } => write!(f, "{ns}: every socket ({filter}) at {at} has {test}"),
            Check::Packets {
                from,
                select,
                each,
                cmp,
            } => {
                write!(f, "{select} sent by {from} on the wire {cmp}")?;
                let fields = each.to_string();
                if !fields.is_empty() {
                    write!(f, "; {fields}")?;
                }
                Ok(())
            }
            Check::ConntrackEntries { ns, state, at, cmp } => {
                write!(
                    f,
                    "{ns}: conntrack entries ({}) at {at} {cmp}",
                    state.as_deref().unwrap_or("all")
                )
            }
            Check::ConntrackStat { ns, stat, cmp } => {
                write!(f, "{ns}: conntrack {stat} delta {cmp}")
            }
            Check::KernelLog { text, cmp } => {
                write!(f, "kernel log lines containing {text:?} {cmp}")
            }
            Check::Dropped { name, cmp } => write!(f, "drop `{name}` took {cmp} packets"),
            Check::ProgramExit { label, cmp } => write!(f, "program `{label}`: exit status {cmp}"),
            Check::ProgramSignal { label, signal } => {
                write!(f, "program `{label}`: killed by {signal}")
            }
            Check::ProgramOutput {
                label,
                stream,
                text,
            } => write!(f, "program `{label}`: {} contains {text:?}", stream.name()),
            Check::ProgramDuration { label, cmp } => {
                write!(f, "program `{label}`: runs {cmp} ms")
            }
            Check::ProgramProcesses { label, cmp } => {
                write!(f, "program `{label}`: processes when stopped {cmp}")
            }
        }
    }
}
