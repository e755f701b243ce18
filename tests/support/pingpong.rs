//! Traffic between the `client` and `server` namespaces of a pair lab, for the delay line's test
//! and benchmark: sockets are created on the namespaces' threads, then used from the caller's.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use twlab::netns::Lab;

pub const SERVER_V4: &str = "198.18.0.2";
pub const SERVER_V6: &str = "fd00::2";

/// A connected TCP pair (client end, server end), both with TCP_NODELAY.
pub fn tcp_pair(lab: &Lab, server_ip: &str) -> (TcpStream, TcpStream) {
    let ip: IpAddr = server_ip.parse().expect("an address");
    let listener = lab
        .ns("server")
        .run(move || TcpListener::bind(SocketAddr::new(ip, 0)))
        .expect("server thread")
        .expect("listen");
    let addr = listener.local_addr().expect("bound address");
    let client = lab
        .ns("client")
        .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(10)))
        .expect("client thread")
        .expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_nodelay(true).expect("TCP_NODELAY");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
    }
    (client, server)
}

/// `n` round trips of 1-byte messages (after one warm-up), measured at the client.
pub fn ping_pong(lab: &Lab, server_ip: &str, n: usize) -> Vec<Duration> {
    let (mut client, mut server) = tcp_pair(lab, server_ip);
    let echo = std::thread::spawn(move || {
        let mut b = [0u8; 1];
        while let Ok(1) = server.read(&mut b) {
            if server.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut rtts = Vec::with_capacity(n);
    let mut b = [0u8; 1];
    for i in 0..=n {
        let t = Instant::now();
        client.write_all(&[i as u8]).expect("send");
        client.read_exact(&mut b).expect("echo");
        if i > 0 {
            rtts.push(t.elapsed());
        }
        assert_eq!(b[0], i as u8, "echoed byte");
    }
    drop(client);
    echo.join().expect("echo thread");
    rtts
}

/// Nearest-rank percentile (p in 0..=1).
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn median_ms(values: &[Duration]) -> f64 {
    ms(percentile(values, 0.5))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A UDP pair: (client socket connected to the server, server socket).
pub fn udp_pair(lab: &Lab, server_ip: &str) -> (UdpSocket, UdpSocket) {
    let ip: IpAddr = server_ip.parse().expect("an address");
    let server = lab
        .ns("server")
        .run(move || UdpSocket::bind(SocketAddr::new(ip, 0)))
        .expect("server thread")
        .expect("bind");
    let addr = server.local_addr().expect("bound address");
    let unspecified: IpAddr = if ip.is_ipv4() {
        "0.0.0.0".parse().unwrap()
    } else {
        "::".parse().unwrap()
    };
    let client = lab
        .ns("client")
        .run(move || {
            let s = UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
            s.connect(addr)?;
            Ok::<_, std::io::Error>(s)
        })
        .expect("client thread")
        .expect("client socket");
    (client, server)
}

/// Send numbered datagrams as fast as possible for `duration`; returns (sent, received in
/// order of arrival). The receiver stops once nothing arrives for `quiet`.
pub fn udp_blast(
    client: UdpSocket,
    server: UdpSocket,
    duration: Duration,
    quiet: Duration,
) -> (u64, Vec<u64>) {
    server.set_read_timeout(Some(quiet)).expect("timeout");
    let receiver = collect_numbers(server);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            let mut msg = [0u8; 16];
            msg[..8].copy_from_slice(&sent.to_le_bytes());
            if client.send(&msg).is_ok() {
                sent += 1;
            }
        }
    }
    (sent, receiver.join().expect("receiver"))
}

/// Collect the sequence numbers of datagrams until `server`'s read timeout passes in silence.
fn collect_numbers(server: UdpSocket) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 64];
        while let Ok(n) = server.recv(&mut b) {
            if n >= 8 {
                got.push(u64::from_le_bytes(b[..8].try_into().unwrap()));
            }
        }
        got
    })
}

/// Send `count` numbered datagrams spaced by `gap`; returns what arrived, in arrival order.
pub fn udp_sequence(client: UdpSocket, server: UdpSocket, count: u64, gap: Duration) -> Vec<u64> {
    server
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    // Room for every datagram at once (a small one costs about 1 KB of buffer), so a receiver
    // thread that is not scheduled while a burst is released loses nothing: what is counted
    // is the link's doing, not the reader's.
    let room = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .saturating_mul(2048);
    nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::RcvBufForce, &room)
        .expect("SO_RCVBUFFORCE (root)");
    let receiver = collect_numbers(server);
    for i in 0..count {
        client.send(&i.to_le_bytes()).expect("send");
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    receiver.join().expect("receiver")
}
