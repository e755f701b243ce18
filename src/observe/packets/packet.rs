//! One TCP segment as the tap classified it: addresses, kind, flags, seq/ack, length, window
//! and the options that matter to cases (MSS, window scale, timestamps; which kinds were there).

use crate::vocab::{FlagSet, HeaderOption, OptionSet, TcpKind};
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
    /// The raw window field (not scaled).
    pub window: u16,
    pub options: PacketOptions,
}

/// The TCP options of one segment: which kinds it carried and the values cases check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketOptions {
    pub present: OptionSet,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub timestamps: Option<Timestamps>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// TCP option kinds (RFC 793, 7323, 2018, 7413; 254 is the experimental kind TFO used first).
const KIND_END: u8 = 0;
const KIND_NOP: u8 = 1;
const KIND_FASTOPEN: u8 = 34;
const KIND_EXPERIMENTAL: u8 = 254;
const TFO_MAGIC: [u8; 2] = [0xF9, 0x89];

impl PacketOptions {
    /// Parse the options area of a TCP header. Each option is cut out by its kind and length
    /// here and read by etherparse, so that an option etherparse does not know (Fast Open) or
    /// a malformed one stops nothing but itself; a length that runs past the area ends it.
    pub fn parse(area: &[u8]) -> PacketOptions {
        use etherparse::TcpOptionElement as E;
        let mut out = PacketOptions::default();
        let mut rest = area;
        while let Some(&kind) = rest.first() {
            match kind {
                KIND_END => break,
                KIND_NOP => {
                    rest = &rest[1..];
                    continue;
                }
                _ => {}
            }
            let Some(&len) = rest.get(1) else { break };
            let len = usize::from(len);
            if len < 2 || len > rest.len() {
                break;
            }
            let (one, tail) = rest.split_at(len);
            rest = tail;
            if kind == KIND_FASTOPEN
                || (kind == KIND_EXPERIMENTAL && one.get(2..4) == Some(&TFO_MAGIC[..]))
            {
                out.present.insert(HeaderOption::Fastopen);
                continue;
            }
            let Some(Ok(element)) = etherparse::TcpOptionsIterator::from_slice(one).next() else {
                continue;
            };
            match element {
                E::MaximumSegmentSize(v) => {
                    out.present.insert(HeaderOption::Mss);
                    out.mss = Some(v);
                }
                E::WindowScale(v) => {
                    out.present.insert(HeaderOption::Wscale);
                    out.wscale = Some(v);
                }
                E::SelectiveAcknowledgementPermitted => out.present.insert(HeaderOption::SackOk),
                E::SelectiveAcknowledgement(..) => out.present.insert(HeaderOption::Sack),
                E::Timestamp(tsval, tsecr) => {
                    out.present.insert(HeaderOption::Timestamps);
                    out.timestamps = Some(Timestamps { tsval, tsecr });
                }
                E::Noop => {}
            }
        }
        out
    }
}

impl std::fmt::Display for PacketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for o in self.present.iter() {
            parts.push(match o {
                HeaderOption::Mss => format!("mss {}", self.mss.unwrap_or(0)),
                HeaderOption::Wscale => format!("wscale {}", self.wscale.unwrap_or(0)),
                HeaderOption::Timestamps => match self.timestamps {
                    Some(t) => format!("TS val {} ecr {}", t.tsval, t.tsecr),
                    None => "TS".into(),
                },
                other => other.name().to_string(),
            });
        }
        f.write_str(&parts.join(","))
    }
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
            window: tcp.window_size(),
            options: PacketOptions::parse(tcp.options()),
        })
    }

    /// tcpdump's flag letters: S F R P U E W and `.` for ACK.
    pub fn flags_text(&self) -> String {
        FlagSet(self.flags).to_string()
    }

    /// The segment's length in sequence space: its payload, plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        use crate::vocab::tcp_flags::{FIN, SYN};
        let len = u32::try_from(self.payload_len).unwrap_or(u32::MAX);
        len.wrapping_add(u32::from(self.flags & SYN != 0))
            .wrapping_add(u32::from(self.flags & FIN != 0))
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "+{:.6}s {} > {} {} [{}] seq={} ack={} win={} len={}",
            self.at.as_secs_f64(),
            self.src,
            self.dst,
            self.kind,
            self.flags_text(),
            self.seq,
            self.ack,
            self.window,
            self.payload_len
        )?;
        if !self.options.present.is_empty() {
            write!(f, " [{}]", self.options)?;
        }
        Ok(())
    }
}
