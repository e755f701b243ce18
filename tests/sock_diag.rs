//! sock_diag's exact 4-tuple lookup, which the close's settle asks instead of dumping the
//! namespace's whole established hash: it finds the socket in every state a close passes
//! through, from each side, a listener once the connection is gone, and nothing for a 4-tuple
//! that does not exist. A whole dump (both families in one request) lists every socket, the
//! IPv4 ones first.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::net::{SocketAddr, TcpListener, TcpStream};

use twlab::netns::Lab;
use twlab::observe::{SockDiag, TcpState};

tests_main!(harness::NAMESPACES => [
    lookup_finds_each_side_of_a_connection_through_its_close,
    a_dump_lists_both_families_ipv4_first,
]);

fn a_dump_lists_both_families_ipv4_first() {
    let topology = twlab::topology::builtin("pair").unwrap().unwrap();
    let lab = Lab::build(&topology).unwrap();
    let mut kept = Vec::new();
    // IPv6 sockets made first: the order is the dump's doing, not the order they were made in.
    for server in [
        "[fd00::2]:8081",
        "198.18.0.2:8081",
        "[fd00::2]:8082",
        "198.18.0.2:8082",
    ] {
        let server: SocketAddr = server.parse().unwrap();
        let listener = lab
            .ns("server")
            .run(move || TcpListener::bind(server).unwrap())
            .unwrap();
        let client = lab
            .ns("client")
            .run(move || TcpStream::connect(server).unwrap())
            .unwrap();
        let accepted = listener.accept().unwrap();
        kept.push((listener, client, accepted));
    }
    let diag = lab.ns("server").run(SockDiag::open).unwrap().unwrap();
    let rows = diag.dump_all().unwrap();
    let count = |v4: bool, state| {
        rows.iter()
            .filter(|r| r.local.is_ipv4() == v4 && r.state == state)
            .count()
    };
    for v4 in [true, false] {
        assert_eq!(count(v4, TcpState::Listen), 2, "{rows:#?}");
        assert_eq!(count(v4, TcpState::Established), 2, "{rows:#?}");
    }
    assert_eq!(rows.len(), 8, "{rows:#?}");
    let first_v6 = rows.iter().position(|r| r.local.is_ipv6()).unwrap();
    assert!(
        rows[first_v6..].iter().all(|r| r.local.is_ipv6()),
        "{rows:#?}"
    );
    // Only this namespace's: the client's ends are not here.
    let client = lab.ns("client").run(SockDiag::open).unwrap().unwrap();
    assert_eq!(client.dump_all().unwrap().len(), 4);
}

fn lookup_finds_each_side_of_a_connection_through_its_close() {
    let topology = twlab::topology::builtin("pair").unwrap().unwrap();
    let lab = Lab::build(&topology).unwrap();
    let server: SocketAddr = "198.18.0.2:8080".parse().unwrap();
    let listener = lab
        .ns("server")
        .run(move || TcpListener::bind(server).unwrap())
        .unwrap();
    let client = lab
        .ns("client")
        .run(move || TcpStream::connect(server).unwrap())
        .unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let local = client.local_addr().unwrap();
    let client_diag = lab.ns("client").run(SockDiag::open).unwrap().unwrap();
    let server_diag = lab.ns("server").run(SockDiag::open).unwrap().unwrap();
    let state = |d: &SockDiag, a, b| d.lookup(a, b).unwrap().map(|r| r.state);

    assert_eq!(
        state(&client_diag, local, server),
        Some(TcpState::Established)
    );
    assert_eq!(
        state(&server_diag, server, local),
        Some(TcpState::Established)
    );
    // Each namespace holds only its own end; the other orientation is not there.
    assert_eq!(state(&client_diag, server, local), None);
    let row = client_diag.lookup(local, server).unwrap().unwrap();
    assert!(row.inode != 0, "a socket a descriptor holds");

    // The client closes first: FIN_WAIT2 (once the server ACKs), then TIME_WAIT after the
    // server closes too.
    drop(client);
    // The server ACKs the FIN with its delayed-ACK timer, a few ms later: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while state(&client_diag, local, server) == Some(TcpState::FinWait1)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(state(&client_diag, local, server), Some(TcpState::FinWait2));
    assert_eq!(
        state(&server_diag, server, local),
        Some(TcpState::CloseWait)
    );
    drop(accepted);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while state(&client_diag, local, server) == Some(TcpState::FinWait2)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(state(&client_diag, local, server), Some(TcpState::TimeWait));
    // With its connection gone, the server's lookup finds the listener: the kernel's exact
    // lookup (inet_diag_find_one_icsk -> inet_lookup) tries established sockets, then
    // listeners on the local address. The settle asks for mid-close states only.
    assert_eq!(state(&server_diag, server, local), Some(TcpState::Listen));
    drop(listener);
    assert_eq!(state(&server_diag, server, local), None);

    // A 4-tuple that never existed.
    let other: SocketAddr = "198.18.0.1:1".parse().unwrap();
    assert_eq!(state(&client_diag, other, server), None);
}
