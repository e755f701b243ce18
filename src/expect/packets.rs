//! Judging `packets:` expectations: select a sender's packets (kind, flags, ports, a
//! connection's 4-tuples), count them, and check what every selected packet shows (relative
//! seq/ack, length, window, options, timestamp echo, send time) and the gaps between them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::case::{Check, PacketFields, PacketSelect, TsecrRule};
use crate::observe::Packet;
use crate::vocab::tcp_flags;

use super::Observations;

/// Packets listed in an observed text; the rest are counted.
const SHOWN: usize = 8;

/// Initial sequence numbers per direction (source, destination): the seq of the first SYN
/// (or SYN-ACK) seen from that source to that destination.
pub struct Isns(HashMap<(SocketAddr, SocketAddr), u32>);

impl Isns {
    pub fn of<'a>(packets: impl IntoIterator<Item = &'a Packet>) -> Isns {
        let mut isns = HashMap::new();
        for p in packets {
            if p.flags & tcp_flags::SYN != 0 {
                isns.entry(key(p.src, p.dst)).or_insert(p.seq);
            }
        }
        Isns(isns)
    }

    /// The packet's seq relative to its direction's ISN (`seq: 1` is ISN+1).
    pub fn rel_seq(&self, p: &Packet) -> Option<u32> {
        self.0
            .get(&key(p.src, p.dst))
            .map(|isn| p.seq.wrapping_sub(*isn))
    }

    /// The packet's ack relative to the opposite direction's ISN; `None` without ACK.
    pub fn rel_ack(&self, p: &Packet) -> Option<u32> {
        if p.flags & tcp_flags::ACK == 0 {
            return None;
        }
        self.0
            .get(&key(p.dst, p.src))
            .map(|isn| p.ack.wrapping_sub(*isn))
    }
}

/// Addresses compared as the kernel means them (an IPv4-mapped IPv6 address is the IPv4 one).
fn canon(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn key(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    (canon(src), canon(dst))
}

/// Every packet of every sender, in time order.
fn all_packets(obs: &Observations) -> Vec<&Packet> {
    let mut all: Vec<&Packet> = obs.packets.values().flatten().collect();
    all.sort_by_key(|p| p.at);
    all
}

fn selected(select: &PacketSelect, obs: &Observations, p: &Packet) -> bool {
    let tuples = select
        .conn
        .as_ref()
        .map(|c| obs.conn_tuples.get(c).map(Vec::as_slice).unwrap_or(&[]));
    select.kind.is_none_or(|k| p.kind == k)
        && select.flags.is_none_or(|f| f.0 == p.flags)
        && select
            .port
            .is_none_or(|r| r.contains(p.src.port()) || r.contains(p.dst.port()))
        && select.src_port.is_none_or(|r| r.contains(p.src.port()))
        && select.dst_port.is_none_or(|r| r.contains(p.dst.port()))
        && tuples.is_none_or(|ts| {
            let (s, d) = key(p.src, p.dst);
            ts.iter().any(|(c, sv)| {
                (canon(*c), canon(*sv)) == (s, d) || (canon(*sv), canon(*c)) == (s, d)
            })
        })
}

/// Milliseconds, shown to a tenth; judged in whole milliseconds (rounded down).
fn ms(d: i128) -> (i64, String) {
    let whole = d.div_euclid(1_000_000) as i64;
    (whole, format!("{:.1}", d as f64 / 1e6))
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

pub fn judge(check: &Check, obs: &Observations) -> (bool, String) {
    let Check::Packets {
        from,
        select,
        each,
        cmp,
    } = check
    else {
        return (false, format!("not a packets check: {check}"));
    };
    if !obs.captured {
        return (false, "no capture was made".into());
    }
    let sent: &[Packet] = obs.packets.get(from).map(Vec::as_slice).unwrap_or(&[]);
    if let Some(c) = &select.conn
        && !obs.conn_tuples.contains_key(c)
    {
        return (false, format!("connection `{c}` never had a 4-tuple"));
    }
    let since = match &select.since {
        Some(label) => match obs.steps.iter().find(|r| r.label == *label) {
            Some(r) => r.started,
            None => return (false, format!("no step `{label}` ran")),
        },
        None => Duration::ZERO,
    };
    let chosen: Vec<&Packet> = sent
        .iter()
        .filter(|p| p.at >= since && selected(select, obs, p))
        .collect();
    let n = chosen.len();
    let count_ok = cmp.holds(n as i64);
    let plain = !each.judges_packets() && each.gap_ms.is_none();
    if plain {
        return (count_ok, format!("{n} ({})", by_kind(from, sent)));
    }
    let all = all_packets(obs);
    let isns = Isns::of(all.iter().copied());
    let mut ok = count_ok;
    let mut lines = Vec::new();
    for (i, p) in chosen.iter().enumerate() {
        let (good, text) = fields(each, p, &isns, &all, since);
        ok &= good;
        if i < SHOWN || !good {
            lines.push(format!("{}{text}", if good { "" } else { "FAILS " }));
        }
    }
    if n > lines.len() {
        lines.push(format!("{} more", n - lines.len()));
    }
    let mut out = format!("{n}");
    if !lines.is_empty() {
        out.push_str(&format!(": {}", lines.join("; ")));
    }
    if let Some(g) = each.gap_ms {
        let gaps: Vec<(i64, String)> = chosen
            .windows(2)
            .map(|w| ms(nanos(w[1].at) - nanos(w[0].at)))
            .collect();
        let good = gaps.iter().all(|(v, _)| g.holds(*v));
        ok &= good;
        let shown: Vec<&str> = gaps.iter().map(|(_, s)| s.as_str()).collect();
        out.push_str(&format!(
            "; gaps {} ms{}",
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            },
            if good { "" } else { " (FAILS)" }
        ));
    }
    if n == 0 {
        out.push_str(&format!(" ({})", by_kind(from, sent)));
    }
    (ok, out)
}

/// What one packet shows of the fields judged, and whether it meets them all.
fn fields(
    each: &PacketFields,
    p: &Packet,
    isns: &Isns,
    all: &[&Packet],
    since: Duration,
) -> (bool, String) {
    let mut good = true;
    let mut parts = vec![format!("[{}]", p.flags_text())];
    let mut num = |name: &str, cmp: Option<crate::vocab::Comparison>, v: Option<i64>, why: &str| {
        let Some(cmp) = cmp else { return };
        match v {
            Some(v) => {
                good &= cmp.holds(v);
                parts.push(format!("{name} {v}"));
            }
            None => {
                good = false;
                parts.push(format!("{name} ? ({why})"));
            }
        }
    };
    num(
        "seq",
        each.seq,
        isns.rel_seq(p).map(i64::from),
        "no SYN of this direction was captured",
    );
    num(
        "ack",
        each.ack,
        isns.rel_ack(p).map(i64::from),
        if p.flags & tcp_flags::ACK == 0 {
            "no ACK flag"
        } else {
            "no SYN of the other direction was captured"
        },
    );
    num("len", each.len, Some(p.payload_len as i64), "");
    num("win", each.window, Some(i64::from(p.window)), "");
    num(
        "mss",
        each.mss,
        p.options.mss.map(i64::from),
        "no mss option",
    );
    if !each.options.is_empty() || !each.no_options.is_empty() {
        good &= p.options.present.has_all(each.options);
        good &= !each
            .no_options
            .iter()
            .any(|o| p.options.present.contains(o));
        parts.push(format!("options {}", p.options.present));
    }
    if let Some(rule) = each.tsecr {
        match echo(p, all) {
            Ok((tsecr, peer, earlier)) => {
                good &= match rule {
                    TsecrRule::Echoes => tsecr == peer,
                    TsecrRule::EchoesEarlier => tsecr != peer && earlier.contains(&tsecr),
                };
                parts.push(format!("tsecr {tsecr} (peer's latest tsval {peer})"));
            }
            Err(why) => {
                good = false;
                parts.push(format!("tsecr ? ({why})"));
            }
        }
    }
    if let Some(c) = each.sent_ms {
        let (v, shown) = ms(nanos(p.at) - nanos(since));
        good &= c.holds(v);
        parts.push(format!("sent at {shown} ms"));
    }
    (good, parts.join(" "))
}

/// The packet's TSecr, the TSval of the latest packet the peer sent on the 4-tuple before
/// it, and the peer's earlier TSvals.
fn echo(p: &Packet, all: &[&Packet]) -> Result<(u32, u32, Vec<u32>), &'static str> {
    let ts = p.options.timestamps.ok_or("no timestamps option")?;
    let (s, d) = key(p.src, p.dst);
    let mut peer: Vec<u32> = all
        .iter()
        .filter(|q| q.at <= p.at && key(q.src, q.dst) == (d, s))
        .filter_map(|q| q.options.timestamps.map(|t| t.tsval))
        .collect();
    let latest = peer.pop().ok_or("the peer sent no timestamp before it")?;
    Ok((ts.tsecr, latest, peer))
}

fn by_kind(from: &str, sent: &[Packet]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in sent {
        *counts.entry(p.kind.name()).or_default() += 1;
    }
    let all: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "all from {from}: {}",
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    )
}
