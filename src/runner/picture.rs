//! The picture of one trial for the HTML report: its question, every expectation with the
//! value observed, the ladder of captured segments between the namespaces with each side's
//! TCP states, and the counts of sockets by state over time. Built from the typed report
//! while the case is at hand, carried in the results (`--json`, the matrix's shards) as
//! data, and drawn by `runner::html`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::trial::TrialReport;
use crate::case::Case;
use crate::observe::{Direction, Packet, StateChange};
use crate::vocab::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};

/// Segments drawn per trial at most; the rest are counted (`Ladder::omitted`) and are in the
/// pcap. A ladder of thousands of arrows is not read arrow by arrow.
pub const MAX_SEGMENTS: usize = 600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Picture {
    pub file: String,
    /// The case's `name`: the question it asks.
    pub question: String,
    pub description: String,
    pub family: String,
    /// The topology and where it came from: `pair (built in)`, `mesh (namespaces/mesh.yaml)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub topology: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    pub expectations: Vec<ExpectationView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Ladder>,
    /// Sockets by state over time, per namespace: from the samples the case takes (each a
    /// full sock_diag dump) and the end.
    pub samples: Vec<SampleCounts>,
    /// Impairments applied, through which backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impairments: Vec<String>,
    pub setup_ms: f64,
    pub run_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpectationView {
    /// `file:line:col` of the expectation.
    pub at: String,
    pub check: String,
    pub observed: String,
    /// Whether it counts as passed (an xfail that failed does).
    pub passed: bool,
    /// Its `xfail:` mark's reason. With a mark, `passed` means it failed as foreseen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xfail: Option<String>,
    /// False when its `when:` does not hold on this kernel.
    pub applies: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleCounts {
    pub label: String,
    pub at_us: i64,
    /// Namespace -> state -> sockets.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The captured segments between the namespaces, in time order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ladder {
    /// One lane per namespace, in the topology's order.
    pub lanes: Vec<String>,
    pub links: Vec<LinkView>,
    pub connections: Vec<Connection>,
    pub segments: Vec<Segment>,
    /// Each side's states as sock_diag answered, per connection.
    pub states: Vec<StateSpan>,
    /// Segments captured beyond [`MAX_SEGMENTS`], not drawn.
    pub omitted: usize,
    /// Connections whose states were not followed (past the poller's limit).
    pub untracked: usize,
    /// When the trial's last reading was taken, since the first step.
    pub end_us: i64,
    /// What the ladder cannot show here, said plainly (drops netem took before the tap).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkView {
    /// The tapped interface (the first end's).
    pub ifname: String,
    /// The lanes of its two ends.
    pub lanes: [usize; 2],
}

/// One connection as one link saw it: its two addresses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connection {
    pub link: usize,
    /// The side that sent the first segment (the SYN, usually).
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Since the first step (negative: before it).
    pub at_us: i64,
    pub link: usize,
    pub from: usize,
    pub to: usize,
    pub conn: usize,
    /// Flag names, `SYN ACK`.
    pub flags: String,
    /// Relative to the sender's first sequence number (its SYN's), as Wireshark shows them.
    pub seq: u32,
    /// Relative to the receiver's first sequence number; `None` without the ACK flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    pub len: usize,
    pub win: u16,
    /// Options, as the report's text shows them (`mss 1460, ts ...`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
    /// The link took it: a drop rule in the receiving namespace logged this segment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateSpan {
    pub lane: usize,
    pub conn: usize,
    pub state: String,
    /// When sock_diag first answered this state, since the first step.
    pub from_us: i64,
    /// When it first answered something else (or the socket was gone); `None`: still so at
    /// the last reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_us: Option<i64>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Flag names in the order people say them.
pub fn flag_names(flags: u8) -> String {
    [
        (SYN, "SYN"),
        (FIN, "FIN"),
        (RST, "RST"),
        (PSH, "PSH"),
        (URG, "URG"),
        (ACK, "ACK"),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(" ")
}

impl Picture {
    pub fn new(case: &Case, report: &TrialReport) -> Picture {
        let obs = &report.observations;
        let expectations = report
            .verdicts
            .iter()
            .map(|v| ExpectationView {
                at: format!(
                    "{}:{}:{}",
                    case.path.display(),
                    v.expectation.line,
                    v.expectation.col
                ),
                check: v.expectation.check.to_string(),
                observed: v.observed.clone(),
                passed: v.passed,
                xfail: v.expectation.xfail.clone(),
                applies: v.applies,
                why: v.expectation.why.clone(),
            })
            .collect();
        let samples = obs
            .samples
            .iter()
            .map(|s| SampleCounts {
                label: s.label.clone(),
                at_us: micros(s.at),
                counts: s
                    .sockets
                    .iter()
                    .map(|(ns, rows)| {
                        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
                        for r in rows {
                            *by_state.entry(r.state.name().to_string()).or_default() += 1;
                        }
                        (ns.clone(), by_state)
                    })
                    .collect(),
            })
            .collect::<Vec<_>>();
        let end_us = samples.last().map(|s| s.at_us).unwrap_or(0);
        Picture {
            file: case.path.display().to_string(),
            question: case.name.clone(),
            description: case.description.clone(),
            family: report.family.name().to_string(),
            topology: format!("{} ({})", case.topology.name, case.topology.origin),
            claim: case.claim.as_ref().map(|c| c.says.clone()),
            expectations,
            ladder: (!report.captures.is_empty()).then(|| ladder(case, report, end_us)),
            samples,
            impairments: obs.impairments.clone(),
            setup_ms: obs.setup.as_secs_f64() * 1e3,
            run_ms: obs.run.as_secs_f64() * 1e3,
        }
    }
}

/// Connections by link and unordered address pair (a new SYN on a pair starts a new one),
/// and each direction's first sequence number.
#[derive(Default)]
struct Connections {
    list: Vec<Connection>,
    /// Each connection's first segment, since the first step.
    first_at: Vec<i64>,
    by_pair: BTreeMap<(usize, SocketAddr, SocketAddr), Vec<usize>>,
    isn: BTreeMap<(usize, SocketAddr), u32>,
}

fn pair(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a < b { (a, b) } else { (b, a) }
}

impl Connections {
    /// The connection `p` belongs to, and its sequence and acknowledgment numbers relative to
    /// each side's first.
    fn of(&mut self, link: usize, at_us: i64, p: &Packet) -> (usize, u32, Option<u32>) {
        let (x, y) = pair(p.src, p.dst);
        let pure_syn = p.flags & SYN != 0 && p.flags & ACK == 0;
        let current = self
            .by_pair
            .get(&(link, x, y))
            .and_then(|v| v.last().copied());
        // A SYN with another initial number than the connection's own is a new connection on
        // the same 4-tuple (a reconnect); a retransmitted SYN has the same number.
        let conn = match current {
            Some(c) if !(pure_syn && self.isn.get(&(c, p.src)).is_some_and(|i| *i != p.seq)) => c,
            _ => {
                self.list.push(Connection {
                    link,
                    a: p.src.to_string(),
                    b: p.dst.to_string(),
                });
                self.first_at.push(at_us);
                let c = self.list.len() - 1;
                self.by_pair.entry((link, x, y)).or_default().push(c);
                c
            }
        };
        if p.flags & SYN != 0 {
            self.isn.insert((conn, p.src), p.seq);
        }
        let own = *self.isn.entry((conn, p.src)).or_insert(p.seq);
        let ack = (p.flags & ACK != 0).then(|| match self.isn.get(&(conn, p.dst)) {
            Some(isn) => p.ack.wrapping_sub(*isn),
            None => p.ack,
        });
        (conn, p.seq.wrapping_sub(own), ack)
    }

    /// When the next connection on `conn`'s 4-tuple and link (a reconnect) began, if one did.
    fn next_start(&self, conn: usize) -> Option<i64> {
        self.by_pair.values().find_map(|v| {
            let i = v.iter().position(|c| *c == conn)?;
            v.get(i + 1).map(|n| self.first_at[*n])
        })
    }

    /// The connection on this pair, on one of `links`, that was the latest to start by `at_us`.
    fn find(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        links: &[usize],
        at_us: i64,
    ) -> Option<usize> {
        let (x, y) = pair(local, remote);
        links.iter().find_map(|l| {
            let conns = self.by_pair.get(&(*l, x, y))?;
            conns
                .iter()
                .rev()
                .find(|c| self.first_at[**c] <= at_us)
                .or(conns.first())
                .copied()
        })
    }
}

fn ladder(case: &Case, report: &TrialReport, end_us: i64) -> Ladder {
    let topo = &case.topology;
    let lanes = topo.namespaces.clone();
    let lane_of = |ns: &str| lanes.iter().position(|l| l == ns).unwrap_or(0);
    let links: Vec<LinkView> = topo
        .links
        .iter()
        .map(|l| LinkView {
            ifname: l.ends[0].ifname.clone(),
            lanes: [lane_of(&l.ends[0].ns), lane_of(&l.ends[1].ns)],
        })
        .collect();
    // Every TCP frame of every capture, with the link it crossed and its direction there.
    let mut seen: Vec<(i64, usize, Direction, Packet)> = Vec::new();
    for (i, capture) in report.captures.iter().enumerate() {
        let Some(link) = topo
            .links
            .iter()
            .position(|l| l.ends[0].ifname == capture.ifname)
        else {
            continue;
        };
        let lead = micros(report.capture_leads.get(i).copied().unwrap_or_default());
        for f in &capture.frames {
            if let Some(p) = Packet::from_ethernet(&f.data, f.wire_len, f.at) {
                seen.push((micros(f.at) - lead, link, f.direction, p));
            }
        }
    }
    seen.sort_by_key(|(at, ..)| *at);
    let omitted = seen.len().saturating_sub(MAX_SEGMENTS);
    seen.truncate(MAX_SEGMENTS);
    let mut conns = Connections::default();
    let segments = seen
        .iter()
        .map(|(at_us, link, dir, p)| {
            let (conn, seq, ack) = conns.of(*link, *at_us, p);
            let [a, b] = links[*link].lanes;
            // The tap is on the link's first end: what it sent went out, the rest came in.
            let (from, to) = match dir {
                Direction::Out => (a, b),
                Direction::In => (b, a),
            };
            Segment {
                at_us: *at_us,
                link: *link,
                from,
                to,
                conn,
                flags: flag_names(p.flags),
                seq,
                ack,
                len: p.payload_len,
                win: p.window,
                options: if p.options.present.is_empty() {
                    String::new()
                } else {
                    p.options.to_string()
                },
                dropped: false,
            }
        })
        .collect::<Vec<_>>();
    let mut segments = segments;
    mark_drops(&mut segments, &seen, &lanes, &report.link_drops);
    let (states, untracked) = match &report.states {
        Some(s) => (state_spans(&s.changes, &conns, &lanes, topo), s.untracked),
        None => (Vec::new(), 0),
    };
    let mut notes = Vec::new();
    if let Some(why) = &report.link_drops_unlogged {
        notes.push(format!(
            "dropped segments are not marked: the drops could not be logged ({why})"
        ));
    }
    if report.backend == Some("netem") && report.observations.dropped.values().any(|n| *n > 0) {
        notes.push(
            "netem drops a packet in the sender's queue, before the tap sees it: the segments it dropped are not drawn (see the drop counts)".to_string(),
        );
    }
    Ladder {
        lanes,
        links,
        connections: conns.list,
        segments,
        states,
        omitted,
        untracked,
        end_us,
        notes,
    }
}

/// How much later than the tap the drop log may have read a dropped packet: the tap stamps
/// it as it arrives, the log when its reader got it.
const DROP_SLACK_US: i64 = 2_000;

/// Marks each segment a drop rule logged: the latest segment with the same addresses, flags,
/// numbers and length that arrived in the dropping namespace before the log read it (a
/// retransmission repeats a segment exactly, but not within a millisecond).
fn mark_drops(
    segments: &mut [Segment],
    seen: &[(i64, usize, Direction, Packet)],
    lanes: &[String],
    drops: &[(String, crate::observe::LoggedDrop)],
) {
    for (ns, d) in drops {
        let Some(lane) = lanes.iter().position(|l| l == ns) else {
            continue;
        };
        let q = &d.packet;
        let at = micros(d.at);
        let hit = seen
            .iter()
            .zip(segments.iter())
            .enumerate()
            .filter(|(_, ((t, _, _, p), s))| {
                s.to == lane
                    && !s.dropped
                    && *t <= at + DROP_SLACK_US
                    && (p.src, p.dst, p.seq, p.ack, p.flags, p.payload_len)
                        == (q.src, q.dst, q.seq, q.ack, q.flags, q.payload_len)
            })
            .map(|(i, _)| i)
            .next_back();
        if let Some(i) = hit {
            segments[i].dropped = true;
        }
    }
}

/// Each socket's run of one state, from the poller's changes, on its namespace's lane and the
/// connection a link next to that namespace saw it as.
fn state_spans(
    changes: &[StateChange],
    conns: &Connections,
    lanes: &[String],
    topo: &crate::topology::Topology,
) -> Vec<StateSpan> {
    // Open runs by socket (its namespace and 4-tuple): a reconnect's socket on the same
    // 4-tuple ends the run of the connection before it.
    let mut open: BTreeMap<(usize, SocketAddr, SocketAddr), StateSpan> = BTreeMap::new();
    let mut out = Vec::new();
    for c in changes {
        let Some(lane) = lanes.iter().position(|l| *l == c.ns) else {
            continue;
        };
        let near: Vec<usize> = (0..topo.links.len())
            .filter(|i| topo.links[*i].ends.iter().any(|e| e.ns == c.ns))
            .collect();
        let all: Vec<usize> = (0..topo.links.len()).collect();
        let at = micros(c.at);
        let Some(conn) = conns
            .find(c.local, c.remote, &near, at)
            .or_else(|| conns.find(c.local, c.remote, &all, at))
        else {
            continue;
        };
        let key = (lane, c.local, c.remote);
        let state = c.state.map(|s| s.name().to_string());
        // The same state seen again on the same connection (the log's end round) goes on.
        if open
            .get(&key)
            .is_some_and(|o| o.conn == conn && Some(&o.state) == state.as_ref())
        {
            continue;
        }
        if let Some(mut span) = open.remove(&key) {
            span.to_us = Some(at);
            out.push(span);
        }
        if let Some(state) = state {
            open.insert(
                key,
                StateSpan {
                    lane,
                    conn,
                    state,
                    from_us: at,
                    to_us: None,
                },
            );
        }
    }
    out.extend(open.into_values());
    // A socket's state ends where a reconnect on its 4-tuple began: between two polls the
    // old socket was replaced, and the run must not reach across the new one's segments.
    for span in &mut out {
        if let Some(next) = conns.next_start(span.conn) {
            let end = span.to_us.map_or(next, |t| t.min(next));
            span.to_us = Some(end.max(span.from_us));
        }
    }
    out.sort_by_key(|s| (s.lane, s.conn, s.from_us));
    out
}
