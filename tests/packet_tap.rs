//! The packet tap on a real veth: one TCP connection in the pair topology, closed by the
//! client first, must show exactly one SYN, one SYN_ACK, one FIN each way and no RST, each
//! frame once, and the pcap must hold every frame. Needs root (namespaces, AF_PACKET).

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use twlab::netns::Lab;
use twlab::observe::{Capture, Packet, PacketTap, TcpKind, read_pcap};

tests_main!(harness::NAMESPACES => [
    one_connection_closed_by_the_client_over_ipv4,
    one_connection_closed_by_the_client_over_ipv6,
    errors_say_what_failed_and_drop_ends_the_reader,
    a_bulk_transfer_counts_every_payload_byte_once,
]);

fn pair_lab() -> Lab {
    let topology = twlab::topology::builtin("pair")
        .expect("pair is built in")
        .unwrap_or_else(|e| panic!("pair topology: {e:?}"));
    Lab::build(&topology).unwrap_or_else(|e| panic!("building the pair lab: {e}"))
}

/// IPv6 addresses are tentative until duplicate address detection ends; wait for that on the
/// namespace's own thread so that no SYN is sent from or to a tentative address.
fn wait_ipv6_ready(lab: &Lab, ns: &str) {
    lab.ns(ns)
        .run(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let table =
                    std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap_or_default();
                // Columns: address, ifindex, prefix length, scope, flags (0x40 tentative), name.
                let tentative = table.lines().any(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() >= 5 && u32::from_str_radix(cols[4], 16).is_ok_and(|f| f & 0x40 != 0)
                });
                if !tentative {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "IPv6 addresses still tentative:\n{table}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .expect("namespace thread");
}

/// Connect client -> server, send 5 bytes, close the client first, the server closes on EOF.
/// Returns the capture of the client's `to-server` and the client's socket address.
fn one_connection(lab: &Lab, server: SocketAddr) -> (Capture, SocketAddr) {
    let tap = lab
        .ns("client")
        .run(|| PacketTap::start("to-server"))
        .expect("namespace thread")
        .unwrap_or_else(|e| panic!("{e}"));
    let listener = lab
        .ns("server")
        .run(move || TcpListener::bind(server))
        .expect("namespace thread")
        .unwrap_or_else(|e| panic!("listen on {server}: {e}"));
    let server_side = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read to EOF");
        got // conn drops here: the server's FIN
    });
    let mut client = lab
        .ns("client")
        .run(move || TcpStream::connect_timeout(&server, Duration::from_secs(5)))
        .expect("namespace thread")
        .unwrap_or_else(|e| panic!("connect to {server}: {e}"));
    let local = client.local_addr().unwrap();
    client.write_all(b"hello").unwrap();
    drop(client); // the client closes first
    assert_eq!(server_side.join().expect("server thread"), b"hello");

    // The close ends with the client's ACK of the server's FIN; wait for it on the wire.
    let done = |ps: &[Packet]| {
        ps.iter()
            .position(|p| p.kind == TcpKind::Fin && p.src == server)
            .is_some_and(|i| {
                ps[i..]
                    .iter()
                    .any(|p| p.src == local && p.kind == TcpKind::Ack)
            })
    };
    let complete = tap.wait_for(Duration::from_secs(5), done);
    let stopping = Instant::now();
    let capture = tap.stop();
    let stop_took = stopping.elapsed();
    assert!(complete, "the close never finished:\n{}", capture.render());
    assert!(
        stop_took < Duration::from_millis(500),
        "stop() took {stop_took:?}"
    );
    (capture, local)
}

fn check(capture: &Capture, client: SocketAddr, server: SocketAddr) {
    let (c, s): (IpAddr, IpAddr) = (client.ip(), server.ip());
    let evidence = format!("{}\n{}", capture.summary(), capture.render());
    eprintln!("{evidence}");
    assert_eq!(capture.ifname, "to-server");
    assert!(capture.error.is_none(), "{evidence}");
    assert_eq!(
        (capture.truncated, capture.kernel_drops),
        (0, 0),
        "{evidence}"
    );
    assert_eq!(capture.count(Some(TcpKind::Syn), Some(c)), 1, "{evidence}");
    assert_eq!(capture.count(Some(TcpKind::Syn), None), 1, "{evidence}");
    assert_eq!(
        capture.count(Some(TcpKind::SynAck), Some(s)),
        1,
        "{evidence}"
    );
    assert_eq!(capture.count(Some(TcpKind::SynAck), None), 1, "{evidence}");
    assert_eq!(capture.count(Some(TcpKind::Fin), Some(c)), 1, "{evidence}");
    assert_eq!(capture.count(Some(TcpKind::Fin), Some(s)), 1, "{evidence}");
    assert_eq!(capture.count(Some(TcpKind::Rst), None), 0, "{evidence}");

    // Addresses and ports: the SYN goes from the client's socket to the listener.
    let syn = capture.select(Some(TcpKind::Syn), None).next().unwrap();
    assert_eq!((syn.src, syn.dst), (client, server), "{evidence}");
    // The client's FIN comes before the server's (the client closed first).
    let fins: Vec<&Packet> = capture.select(Some(TcpKind::Fin), None).collect();
    assert_eq!(fins[0].src, client, "{evidence}");
    // Every payload byte the client sent: exactly the 5 written.
    let sent: usize = capture.select(None, Some(c)).map(|p| p.payload_len).sum();
    assert_eq!(sent, 5, "{evidence}");
    // Each frame once: no segment recorded twice (outgoing and incoming copies).
    for (i, a) in capture.packets.iter().enumerate() {
        for b in &capture.packets[i + 1..] {
            let key = |p: &Packet| (p.src, p.dst, p.flags, p.seq, p.ack, p.payload_len);
            assert_ne!(key(a), key(b), "recorded twice: {a}\n{evidence}");
        }
    }
    // Both directions were seen.
    use twlab::observe::Direction;
    assert!(capture.frames.iter().any(|f| f.direction == Direction::Out));
    assert!(capture.frames.iter().any(|f| f.direction == Direction::In));
    assert!(capture.frames.len() >= capture.packets.len());

    // The pcap: magic, then one record per frame, each as captured.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.pcap");
    capture.write_pcap(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "pcap magic (LE, µs)"
    );
    assert_eq!(
        u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
        1,
        "LINKTYPE_ETHERNET"
    );
    // Walk the records by hand, independently of read_pcap.
    let (mut off, mut records) = (24usize, 0usize);
    while off < bytes.len() {
        let incl = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(bytes[off + 12..off + 16].try_into().unwrap()) as usize;
        assert!(incl <= orig && incl <= capture.snaplen);
        off += 16 + incl;
        records += 1;
    }
    assert_eq!(off, bytes.len(), "the last record is cut");
    assert_eq!(records, capture.frames.len());
    let back = read_pcap(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(back.len(), capture.frames.len());
    for (r, f) in back.iter().zip(&capture.frames) {
        assert_eq!(r.data, f.data);
    }
}

fn one_connection_closed_by_the_client_over_ipv4() {
    let lab = pair_lab();
    let server: SocketAddr = "198.18.0.2:8080".parse().unwrap();
    let (capture, client) = one_connection(&lab, server);
    assert_eq!(client.ip(), "198.18.0.1".parse::<IpAddr>().unwrap());
    check(&capture, client, server);
    // The first IPv4 packet to a new neighbour needs ARP: non-TCP frames are kept too.
    assert!(capture.other_frames() >= 2, "{}", capture.summary());
}

fn one_connection_closed_by_the_client_over_ipv6() {
    let lab = pair_lab();
    wait_ipv6_ready(&lab, "client");
    wait_ipv6_ready(&lab, "server");
    let server: SocketAddr = "[fd00::2]:8080".parse().unwrap();
    let (capture, client) = one_connection(&lab, server);
    assert_eq!(client.ip(), "fd00::1".parse::<IpAddr>().unwrap());
    check(&capture, client, server);
}

fn errors_say_what_failed_and_drop_ends_the_reader() {
    let lab = pair_lab();
    let err = lab
        .ns("client")
        .run(|| PacketTap::start("no-such-if").map(drop))
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`no-such-if`"), "{err}");
    // A tap dropped without stop() does not hang and leaves no thread reading.
    let tap = lab
        .ns("client")
        .run(|| PacketTap::start("to-server"))
        .unwrap()
        .unwrap();
    let t = Instant::now();
    drop(tap);
    assert!(t.elapsed() < Duration::from_millis(500));
    // An idle tap stops promptly with nothing seen but what the kernel sent by itself.
    let tap = lab
        .ns("client")
        .run(|| PacketTap::start("to-server"))
        .unwrap()
        .unwrap();
    let t = Instant::now();
    let capture = tap.stop();
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(capture.count(None, None), 0, "{}", capture.summary());
}

fn a_bulk_transfer_counts_every_payload_byte_once() {
    const BYTES: usize = 4 << 20;
    let lab = pair_lab();
    let server: SocketAddr = "198.18.0.2:8080".parse().unwrap();
    let tap = lab
        .ns("client")
        .run(|| PacketTap::start("to-server"))
        .unwrap()
        .unwrap();
    let listener = lab
        .ns("server")
        .run(move || TcpListener::bind(server))
        .unwrap()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut n = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match conn.read(&mut buf).unwrap() {
                0 => return n,
                k => n += k,
            }
        }
    });
    let mut client = lab
        .ns("client")
        .run(move || TcpStream::connect(server))
        .unwrap()
        .unwrap();
    let local = client.local_addr().unwrap();
    client.write_all(&vec![7u8; BYTES]).unwrap();
    drop(client);
    assert_eq!(reader.join().unwrap(), BYTES);
    let fin_acked = |ps: &[Packet]| {
        ps.iter()
            .position(|p| p.kind == TcpKind::Fin && p.src == server)
            .is_some_and(|i| ps[i..].iter().any(|p| p.src == local))
    };
    assert!(tap.wait_for(Duration::from_secs(5), fin_acked));
    let capture = tap.stop();
    eprintln!("{}", capture.summary());
    assert_eq!(capture.kernel_drops, 0, "{}", capture.summary());
    let sent: Vec<&Packet> = capture.select(None, Some(local.ip())).collect();
    let largest = sent.iter().map(|p| p.payload_len).max().unwrap_or(0);
    eprintln!(
        "{} client segments carried data, the largest {largest} bytes",
        sent.iter().filter(|p| p.payload_len > 0).count()
    );
    // The payload lengths, GSO super-packets included, cover the byte stream exactly: the
    // union of [seq, seq + len) is [ISN + 1, ISN + 1 + BYTES). (Not the sum: a tail loss probe
    // may resend the last segment even on a lossless veth.)
    let isn = capture
        .select(Some(TcpKind::Syn), Some(local.ip()))
        .next()
        .unwrap()
        .seq;
    let mut ranges: Vec<(u64, u64)> = sent
        .iter()
        .filter(|p| p.payload_len > 0)
        .map(|p| {
            let start = u64::from(p.seq.wrapping_sub(isn.wrapping_add(1)));
            (start, start + p.payload_len as u64)
        })
        .collect();
    ranges.sort();
    let mut covered = 0u64;
    for (start, end) in ranges {
        assert!(
            start <= covered,
            "a gap at byte {covered}: {}",
            capture.render()
        );
        covered = covered.max(end);
    }
    assert_eq!(covered, BYTES as u64, "{}", capture.summary());
    assert!(sent.iter().map(|p| p.payload_len).sum::<usize>() >= BYTES);
    assert_eq!(capture.count(Some(TcpKind::Rst), None), 0);
}
