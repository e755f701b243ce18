//! The tap's parsing and counting, on frames built by hand.

use super::capture::*;
use super::packet::*;
use super::tap::*;
use super::{PacketOptions, Timestamps};
use crate::vocab::{TcpKind, tcp_flags};
use etherparse::PacketBuilder;
use std::net::IpAddr;
use std::time::Duration;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn v4(
    build: impl FnOnce(
        etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .tcp(40000, 8080, 1000, 64240);
    let b = build(b);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn v6(
    build: impl FnOnce(
        etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    payload: &[u8],
) -> Vec<u8> {
    let src: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    let dst: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let b = PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv6(src.octets(), dst.octets(), 64)
        .tcp(8080, 40000, 7, 64240);
    let b = build(b);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn parse(frame: &[u8]) -> Option<Packet> {
    Packet::from_ethernet(frame, frame.len(), Duration::ZERO)
}

#[test]
fn classifies_every_kind_over_ipv4() {
    let cases: Vec<(Vec<u8>, TcpKind)> = vec![
        (v4(|b| b.syn(), b""), TcpKind::Syn),
        (v4(|b| b.syn().ack(5), b""), TcpKind::SynAck),
        (v4(|b| b.ack(5), b""), TcpKind::Ack),
        (v4(|b| b.ack(5).psh(), b"hello"), TcpKind::Data),
        (v4(|b| b.fin().ack(5), b""), TcpKind::Fin),
        (v4(|b| b.fin().ack(5).psh(), b"bye"), TcpKind::Fin),
        (v4(|b| b.rst(), b""), TcpKind::Rst),
        (v4(|b| b.rst().ack(5), b""), TcpKind::Rst),
    ];
    for (frame, kind) in cases {
        let p = parse(&frame).expect("a TCP frame");
        assert_eq!(p.kind, kind, "{p}");
        assert_eq!(p.src, "198.18.0.1:40000".parse().unwrap());
        assert_eq!(p.dst, "198.18.0.2:8080".parse().unwrap());
        assert_eq!(p.seq, 1000);
    }
    let data = parse(&v4(|b| b.ack(77).psh(), b"hello")).unwrap();
    assert_eq!((data.payload_len, data.ack), (5, 77));
    assert_eq!(data.flags, tcp_flags::ACK | tcp_flags::PSH);
    assert_eq!(data.flags_text(), "P.");
}

#[test]
fn classifies_ipv6() {
    let p = parse(&v6(|b| b.syn().ack(1), b"")).unwrap();
    assert_eq!(p.kind, TcpKind::SynAck);
    assert_eq!(p.src, "[fd00::2]:8080".parse().unwrap());
    let p = parse(&v6(|b| b.ack(1), &[0u8; 1000])).unwrap();
    assert_eq!((p.kind, p.payload_len), (TcpKind::Data, 1000));
}

#[test]
fn payload_length_comes_from_the_ip_header() {
    // A frame cut short (snap length, or a super-packet longer than the read buffer).
    let full = v4(|b| b.ack(1), &[0u8; 3000]);
    let p = Packet::from_ethernet(&full[..100], full.len(), Duration::ZERO).unwrap();
    assert_eq!((p.kind, p.payload_len), (TcpKind::Data, 3000));
    // BIG TCP: IPv4 total length 0, the frame length counts.
    let mut big = full.clone();
    big[16] = 0;
    big[17] = 0;
    let p = Packet::from_ethernet(&big[..100], 14 + 20 + 20 + 70_000, Duration::ZERO);
    assert_eq!(p.unwrap().payload_len, 70_000);
    let full6 = v6(|b| b.ack(1), &[0u8; 2000]);
    let p = Packet::from_ethernet(&full6[..90], full6.len(), Duration::ZERO).unwrap();
    assert_eq!(p.payload_len, 2000);
}

#[test]
fn other_frames_are_not_packets() {
    // ARP request.
    let arp = PacketBuilder::ethernet2(MAC_A, [0xff; 6]).arp(
        etherparse::ArpPacket::new(
            etherparse::ArpHardwareId::ETHERNET,
            etherparse::EtherType::IPV4,
            etherparse::ArpOperation::REQUEST,
            &MAC_A,
            &[198, 18, 0, 1],
            &[0; 6],
            &[198, 18, 0, 2],
        )
        .unwrap(),
    );
    let mut frame = Vec::new();
    arp.write(&mut frame).unwrap();
    assert_eq!(parse(&frame), None);
    // UDP over IPv4.
    let udp = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .udp(1, 2);
    let mut frame = Vec::new();
    udp.write(&mut frame, b"x").unwrap();
    assert_eq!(parse(&frame), None);
    // ICMPv6 (NDP neighbour solicitation is ICMPv6 too).
    let icmp = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6([0xfd; 16], [0xfd; 16], 255)
        .icmpv6_echo_request(1, 1);
    let mut frame = Vec::new();
    icmp.write(&mut frame, b"").unwrap();
    assert_eq!(parse(&frame), None);
}

#[test]
fn malformed_frames_do_not_panic() {
    let good = v4(|b| b.syn(), b"");
    for n in 0..good.len() {
        let _ = Packet::from_ethernet(&good[..n], good.len(), Duration::ZERO);
        let _ = Packet::from_ethernet(&good[..n], 0, Duration::ZERO);
    }
    // Corrupt each byte in turn.
    for i in 0..good.len() {
        for v in [0u8, 0x0f, 0xff] {
            let mut f = good.clone();
            f[i] = v;
            let _ = parse(&f);
        }
    }
    // Pseudo-random bytes.
    let mut x: u32 = 12345;
    for len in 0..300 {
        let f: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let _ = parse(&f);
    }
}

#[test]
fn counts_and_summary() {
    let frames = [
        v4(|b| b.syn(), b""),
        v4(|b| b.ack(1), b""),
        v4(|b| b.fin().ack(1), b""),
    ];
    let mut cap = Capture {
        ifname: "to-server".into(),
        max_frames: 10,
        ..Capture::default()
    };
    for f in &frames {
        cap.packets.push(parse(f).unwrap());
        cap.frames.push(Frame {
            at: Duration::ZERO,
            direction: Direction::Out,
            wire_len: f.len(),
            data: f.clone(),
        });
    }
    cap.frames.push(Frame {
        at: Duration::ZERO,
        direction: Direction::In,
        wire_len: 42,
        data: vec![0; 42],
    });
    cap.truncated = 3;
    let client: IpAddr = "198.18.0.1".parse().unwrap();
    assert_eq!(cap.count(Some(TcpKind::Syn), Some(client)), 1);
    assert_eq!(cap.count(None, Some(client)), 3);
    assert_eq!(cap.count(Some(TcpKind::Rst), None), 0);
    assert_eq!(
        cap.summary(),
        "198.18.0.1 -> 198.18.0.2: SYN 1, ACK 1, FIN 1; 1 other frame; \
         TRUNCATED: 3 more frames not kept (cap 10)"
    );
}

#[test]
fn parses_window_and_options() {
    use crate::vocab::HeaderOption;
    use etherparse::TcpOptionElement as E;
    let frame = v4(
        |b| {
            b.syn()
                .options(&[
                    E::MaximumSegmentSize(1460),
                    E::SelectiveAcknowledgementPermitted,
                    E::Timestamp(7, 0),
                    E::Noop,
                    E::WindowScale(10),
                ])
                .unwrap()
        },
        b"",
    );
    let p = parse(&frame).unwrap();
    assert_eq!(p.window, 64240);
    assert_eq!(p.options.mss, Some(1460));
    assert_eq!(p.options.wscale, Some(10));
    assert_eq!(
        p.options.timestamps,
        Some(Timestamps { tsval: 7, tsecr: 0 })
    );
    assert_eq!(
        p.options.present.to_string(),
        "mss,wscale,sack_ok,timestamps"
    );
    assert!(!p.options.present.contains(HeaderOption::Sack));
    assert_eq!(p.seq_len(), 1, "a SYN takes one sequence number");
}

#[test]
fn options_etherparse_does_not_know_stop_only_themselves() {
    use crate::vocab::HeaderOption;
    // Fast Open cookie (kind 34, 8-byte cookie), then timestamps after two NOPs.
    let mut area = vec![34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 8, 10];
    area.extend(5u32.to_be_bytes());
    area.extend(6u32.to_be_bytes());
    let o = PacketOptions::parse(&area);
    assert!(o.present.contains(HeaderOption::Fastopen));
    assert_eq!(o.timestamps, Some(Timestamps { tsval: 5, tsecr: 6 }));
    // An unknown kind is skipped by its length; a length past the end stops the parse.
    let o = PacketOptions::parse(&[99, 4, 0, 0, 2, 4, 5, 180]);
    assert_eq!(o.mss, Some(1460));
    let o = PacketOptions::parse(&[2, 40, 5, 180]);
    assert!(o.present.is_empty());
    // A length below 2 would loop forever: it ends the parse.
    assert!(
        PacketOptions::parse(&[99, 0, 2, 4, 5, 180])
            .present
            .is_empty()
    );
    // SACK blocks.
    let mut sack = vec![5, 10];
    sack.extend(1u32.to_be_bytes());
    sack.extend(2u32.to_be_bytes());
    assert!(
        PacketOptions::parse(&sack)
            .present
            .contains(HeaderOption::Sack)
    );
}
