//! One TCP segment as the tap classified it: addresses, kind, flags, seq/ack, length.

use crate::vocab::{TcpKind, tcp_flags};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket, TcpHeaderSlice};

/// One TCP segment seen on the tapped interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Since the tap started.
    pub at: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub kind: TcpKind,
    /// Raw TCP flags (see [`tcp_flags`]).
    pub flags: u8,
    /// TCP payload bytes, from the IP header's length fields (the frame's length when the
    /// header says 0, as for BIG TCP super-packets).
    pub payload_len: usize,
    pub seq: u32,
    pub ack: u32,
}

impl Packet {
    /// Parse an Ethernet frame. `wire_len` is the frame's full length (`frame` may be cut
    /// short). `None` for anything that is not an unfragmented TCP segment over IPv4 or IPv6,
    /// and for malformed frames; never panics.
    pub fn from_ethernet(frame: &[u8], wire_len: usize, at: Duration) -> Option<Packet> {
        let sliced = LaxSlicedPacket::from_ethernet(frame).ok()?;
        let base = frame.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize).saturating_sub(base);
        let wire_len = wire_len.max(frame.len());
        let (src_ip, dst_ip, payload, declared): (IpAddr, IpAddr, _, Option<usize>) =
            match sliced.net? {
                LaxNetSlice::Ipv4(ip) => {
                    let h = ip.header();
                    let p = ip.payload();
                    // total_len counts the IP header and its extensions (AH) too.
                    let before = offset(p.payload).saturating_sub(offset(h.slice()));
                    let total = usize::from(h.total_len());
                    let declared = (total != 0).then(|| total.saturating_sub(before));
                    (
                        h.source_addr().into(),
                        h.destination_addr().into(),
                        p.clone(),
                        declared,
                    )
                }
                LaxNetSlice::Ipv6(ip) => {
                    let h = ip.header();
                    let p = ip.payload();
                    // payload_length counts the extension headers, not the fixed header.
                    let exts = offset(p.payload)
                        .saturating_sub(offset(h.slice()))
                        .saturating_sub(h.slice().len());
                    let len = usize::from(h.payload_length());
                    let declared = (len != 0).then(|| len.saturating_sub(exts));
                    (
                        h.source_addr().into(),
                        h.destination_addr().into(),
                        p.clone(),
                        declared,
                    )
                }
                LaxNetSlice::Arp(_) => return None,
            };
        if payload.ip_number != IpNumber::TCP || payload.fragmented {
            return None;
        }
        let tcp = TcpHeaderSlice::from_slice(payload.payload).ok()?;
        let ip_payload_len =
            declared.unwrap_or_else(|| wire_len.saturating_sub(offset(payload.payload)));
        let payload_len = ip_payload_len.saturating_sub(tcp.slice().len());
        let flags = tcp.slice()[13];
        Some(Packet {
            at,
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            kind: TcpKind::classify(flags, payload_len),
            flags,
            payload_len,
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
        })
    }

    /// tcpdump's flag letters: S F R P U E W and `.` for ACK.
    pub fn flags_text(&self) -> String {
        use tcp_flags::*;
        let mut s = String::new();
        for (bit, c) in [
            (SYN, 'S'),
            (FIN, 'F'),
            (RST, 'R'),
            (PSH, 'P'),
            (URG, 'U'),
            (ECE, 'E'),
            (CWR, 'W'),
            (ACK, '.'),
        ] {
            if self.flags & bit != 0 {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "+{:.6}s {} > {} {} [{}] seq={} ack={} len={}",
            self.at.as_secs_f64(),
            self.src,
            self.dst,
            self.kind,
            self.flags_text(),
            self.seq,
            self.ack,
            self.payload_len
        )
    }
}
