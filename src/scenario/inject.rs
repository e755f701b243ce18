//! A single stray TCP segment sent into a connection's 4-tuple from a raw socket, for cases
//! about what the kernel does with segments no socket expects (a stray ACK reaching TIME_WAIT,
//! a delayed duplicate). Only the first segment is ours: every reaction is the kernel's.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use etherparse::{TcpHeader, TcpOptionElement};
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage,
};

use crate::case::{Inject, InjectFlag, SeqBase, TsBase};
use crate::observe::Packet;
use crate::vocab::tcp_flags;

/// What the capture saw of a connection, from the injected segment's point of view: the
/// bases its relative numbers start from. `None` where the capture had nothing to say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeenState {
    /// The ack of the receiver's latest segment with ACK: its rcv_nxt.
    pub rcv_nxt: Option<u32>,
    /// The end (seq + payload + SYN + FIN) of the receiver's latest segment: its snd_nxt.
    pub snd_nxt: Option<u32>,
    /// The latest TSval `by` (the segment's source) sent.
    pub own_tsval: Option<u32>,
    /// The latest TSval the receiver sent.
    pub peer_tsval: Option<u32>,
}

impl SeenState {
    /// From the packets of a capture: `src` is the side the segment pretends to come from,
    /// `dst` the receiver; later packets override earlier ones.
    pub fn from_packets<'a>(
        packets: impl IntoIterator<Item = &'a Packet>,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> SeenState {
        let mut s = SeenState::default();
        for p in packets {
            if same(p.src, dst) && same(p.dst, src) {
                if p.flags & tcp_flags::ACK != 0 {
                    s.rcv_nxt = Some(p.ack);
                }
                s.snd_nxt = Some(p.seq.wrapping_add(p.seq_len()));
                if let Some(t) = p.options.timestamps {
                    s.peer_tsval = Some(t.tsval);
                }
            } else if same(p.src, src)
                && same(p.dst, dst)
                && let Some(t) = p.options.timestamps
            {
                s.own_tsval = Some(t.tsval);
            }
        }
        s
    }

    fn seq(&self, base: SeqBase) -> Option<u32> {
        match base {
            SeqBase::RcvNxt => self.rcv_nxt,
            SeqBase::SndNxt => self.snd_nxt,
        }
    }

    fn ts(&self, base: TsBase) -> Option<u32> {
        match base {
            TsBase::Own => self.own_tsval,
            TsBase::Peer => self.peer_tsval,
        }
    }
}

/// The same address and port, an IPv4-mapped IPv6 address being its IPv4 one.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// An injected segment's header fields, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub seq: u32,
    pub ack: u32,
    pub mss: Option<u16>,
    /// (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    pub payload: u16,
}

impl Segment {
    /// Resolve the step's numbers against what the capture saw; the error names the number the
    /// capture could not give.
    pub fn resolve(i: &Inject, seen: &SeenState) -> Result<Segment, String> {
        let missing = |what: &str, n: String| {
            format!(
                "{what}: {n} needs the capture to have seen the connection's segments, and it saw none that give it"
            )
        };
        let seq = i
            .seq
            .resolve(|b| seen.seq(b))
            .ok_or_else(|| missing("seq", i.seq.to_string()))?;
        let ack = i
            .ack
            .resolve(|b| seen.seq(b))
            .ok_or_else(|| missing("ack", i.ack.to_string()))?;
        let timestamps = match &i.options.timestamps {
            Some(t) => Some((
                t.tsval
                    .resolve(|b| seen.ts(b))
                    .ok_or_else(|| missing("tsval", t.tsval.to_string()))?,
                t.tsecr
                    .resolve(|b| seen.ts(b))
                    .ok_or_else(|| missing("tsecr", t.tsecr.to_string()))?,
            )),
            None => None,
        };
        Ok(Segment {
            seq,
            ack,
            mss: i.options.mss,
            timestamps,
            payload: i.payload.as_ref().map_or(0, |p| p.value),
        })
    }
}

/// The TCP segment's bytes (header, options, zero payload) from `src` to `dst`, checksum
/// included. Options are laid out as Linux does: MSS first, timestamps after two NOPs.
pub fn segment(src: SocketAddr, dst: SocketAddr, flags: &[InjectFlag], s: &Segment) -> Vec<u8> {
    let mut h = TcpHeader::new(src.port(), dst.port(), s.seq, 64240);
    for f in flags {
        match f {
            InjectFlag::Syn => h.syn = true,
            InjectFlag::Ack => h.ack = true,
            InjectFlag::Fin => h.fin = true,
            InjectFlag::Rst => h.rst = true,
            InjectFlag::Psh => h.psh = true,
        }
    }
    h.acknowledgment_number = s.ack;
    let mut options = Vec::new();
    if let Some(mss) = s.mss {
        options.push(TcpOptionElement::MaximumSegmentSize(mss));
    }
    if let Some((tsval, tsecr)) = s.timestamps {
        options.extend([
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(tsval, tsecr),
        ]);
    }
    // At most 4 + 12 bytes: always fits the 40 bytes of option space.
    let _ = h.set_options(&options);
    let payload = vec![0u8; usize::from(s.payload)];
    h.checksum = match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            h.calc_checksum_ipv4_raw(a.octets(), b.octets(), &payload)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            h.calc_checksum_ipv6_raw(a.octets(), b.octets(), &payload)
        }
        _ => Ok(0),
    }
    .unwrap_or(0);
    let mut bytes = h.to_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    bytes
}

/// Send the segment from a raw socket in the current thread's namespace; the kernel adds the
/// IP header (source: `src`'s address, to which the socket is bound).
pub fn send(src: SocketAddr, dst: SocketAddr, bytes: &[u8]) -> nix::Result<()> {
    let family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )?;
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(src.ip(), 0)),
    )?;
    // Raw sockets take no port in the destination address.
    let to = SockaddrStorage::from(SocketAddr::new(dst.ip(), 0));
    let sent = socket::sendto(fd.as_raw_fd(), bytes, &to, MsgFlags::empty())?;
    if sent == bytes.len() {
        Ok(())
    } else {
        Err(Errno::EMSGSIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{PacketOptions, Timestamps};
    use crate::vocab::TcpKind;
    use std::time::Duration;

    fn pkt(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, tsval: u32) -> Packet {
        Packet {
            at: Duration::ZERO,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            kind: TcpKind::classify(flags, 0),
            flags,
            payload_len: 0,
            seq,
            ack,
            window: 0,
            options: PacketOptions {
                timestamps: Some(Timestamps { tsval, tsecr: 0 }),
                ..PacketOptions::default()
            },
        }
    }

    #[test]
    fn seen_state_is_the_receivers_latest() {
        use tcp_flags::*;
        let c: SocketAddr = "198.18.0.1:40000".parse().unwrap();
        let s: SocketAddr = "198.18.0.2:8080".parse().unwrap();
        // The client's FIN (seq 101) and its final ACK; the server's FIN (seq 501).
        let packets = [
            pkt(
                "198.18.0.1:40000",
                "198.18.0.2:8080",
                FIN | ACK,
                101,
                501,
                10,
            ),
            pkt(
                "198.18.0.2:8080",
                "198.18.0.1:40000",
                FIN | ACK,
                501,
                102,
                70,
            ),
            pkt("198.18.0.1:40000", "198.18.0.2:8080", ACK, 102, 502, 11),
        ];
        // Injected as if from the server into the client (the receiver).
        let seen = SeenState::from_packets(&packets, s, c);
        assert_eq!(
            seen,
            SeenState {
                rcv_nxt: Some(502),
                snd_nxt: Some(102),
                own_tsval: Some(70),
                peer_tsval: Some(11),
            }
        );
    }

    #[test]
    fn segments_carry_payload_and_options() {
        let seg = Segment {
            seq: 501,
            ack: 102,
            mss: Some(1460),
            timestamps: Some((71, 11)),
            payload: 100,
        };
        let c: SocketAddr = "198.18.0.1:40000".parse().unwrap();
        let s: SocketAddr = "198.18.0.2:8080".parse().unwrap();
        let bytes = segment(s, c, &[InjectFlag::Psh, InjectFlag::Ack], &seg);
        let h = etherparse::TcpHeaderSlice::from_slice(&bytes).unwrap();
        assert_eq!((h.sequence_number(), h.acknowledgment_number()), (501, 102));
        assert!(h.psh() && h.ack() && !h.fin());
        assert_eq!(bytes.len() - h.slice().len(), 100);
        let o = PacketOptions::parse(h.options());
        assert_eq!(o.mss, Some(1460));
        assert_eq!(
            o.timestamps,
            Some(Timestamps {
                tsval: 71,
                tsecr: 11
            })
        );
    }
}
