//! Building a lab: the namespaces' threads build their parts at once and meet at a gate. What
//! each built is there (links, addresses, carrier, routes through a router), and a part that
//! fails releases the others: the build returns that failure, promptly, and leaves nothing.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use twlab::netns::{Lab, LabError};
use twlab::topology::{Topology, builtin};

tests_main!(harness::NAMESPACES => [
    a_router_topology_carries_a_connection_end_to_end,
    a_refused_link_fails_the_build_without_waiting,
]);

fn topology(name: &str) -> Topology {
    builtin(name).expect("built in").unwrap()
}

/// Two links made by two different namespaces' parts (client's, then router's), forwarding
/// and default routes: a connection from the client reaches the server over both families.
fn a_router_topology_carries_a_connection_end_to_end() {
    let lab = Lab::build(&topology("router")).unwrap();
    for server in ["198.18.2.2:8080", "[fd00:2::2]:8080"] {
        let server: SocketAddr = server.parse().unwrap();
        let listener = lab
            .ns("server")
            .run(move || TcpListener::bind(server).unwrap())
            .unwrap();
        let started = Instant::now();
        let client = lab
            .ns("client")
            .run(move || TcpStream::connect_timeout(&server, Duration::from_secs(2)))
            .unwrap()
            .unwrap();
        // The first SYN was not lost to a link not yet up (it would wait out 1 s).
        assert!(started.elapsed() < Duration::from_millis(900), "{server}");
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    }
}

/// A veth name longer than IFNAMSIZ: the kernel refuses the client's link; the server's
/// part, which waits for that link, is released instead of waiting forever.
fn a_refused_link_fails_the_build_without_waiting() {
    let mut t = topology("pair");
    t.links[0].ends[0].ifname = "a-name-too-long-for-an-interface".into();
    let started = Instant::now();
    let Err(e) = Lab::build(&t) else {
        panic!("the kernel took an interface name longer than IFNAMSIZ")
    };
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
    match &e {
        LabError::Link { ns, .. } => assert_eq!(ns, "client", "{e}"),
        other => panic!("not the link's failure: {other}"),
    }
    assert!(e.to_string().contains("create veth"), "{e}");
    // Named in no namespace of the host's.
    assert!(!Path::new("/sys/class/net/to-client").exists());
}
