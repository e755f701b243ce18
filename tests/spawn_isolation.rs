//! A socket closed by one thread is closed, whatever another thread is starting: programs are
//! forked by the spawner, which holds none of this process's sockets. With a plain fork
//! (std's Command), the closed listener lives on in the child between fork and exec, and the
//! next bind() of its port fails with EADDRINUSE (seen: 2764 of 48266 binds
//! failed while 300 programs started; 0 through the spawner).

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use twlab::netns::Namespace;

tests_main!(harness::NAMESPACES => [
    a_closed_listener_is_closed_while_programs_start,
    a_program_enters_the_namespace_of_the_thread_that_starts_it,
    a_missing_program_is_enoent_and_a_bad_directory_names_the_step,
]);

/// Programs started beside the binds: enough forks for a race window to be hit many times
/// (std's Command: dozens of failed binds over this many).
const PROGRAMS: usize = 300;

/// Binds, closes and binds the same loopback port again in a fresh namespace, while another
/// thread starts PROGRAMS programs through the spawner: (binds, binds that failed).
fn rebinds_failed() -> (usize, usize) {
    let ns = Namespace::create("isolation").unwrap();
    ns.run(|| {
        twlab::spawn::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap()
    })
    .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let spawner = {
        let started = started.clone();
        std::thread::spawn(move || {
            for _ in 0..PROGRAMS {
                let s = twlab::spawn::Command::new("/bin/true").status().unwrap();
                assert!(s.success());
                started.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let result = ns
        .run(move || {
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
            let deadline = Instant::now() + Duration::from_secs(60);
            let (mut binds, mut failed) = (0, 0);
            while started.load(Ordering::Relaxed) < PROGRAMS && Instant::now() < deadline {
                binds += 1;
                match TcpListener::bind(addr) {
                    Ok(l) => drop(l),
                    Err(_) => failed += 1,
                }
            }
            (binds, failed)
        })
        .unwrap();
    spawner.join().unwrap();
    result
}

fn a_closed_listener_is_closed_while_programs_start() {
    let (binds, failed) = rebinds_failed();
    assert_eq!(
        failed, 0,
        "{failed} of {binds} binds found the port still held by a listener this thread had \
         closed, while {PROGRAMS} programs started"
    );
}

fn a_program_enters_the_namespace_of_the_thread_that_starts_it() {
    let ns = Namespace::create("enter").unwrap();
    let mine = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let (theirs, seen) = ns
        .run(|| {
            let out = twlab::spawn::Command::new("readlink")
                .arg("/proc/self/ns/net")
                .output()
                .unwrap();
            (
                std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )
        })
        .unwrap();
    assert_ne!(theirs, mine);
    assert_eq!(seen, theirs.to_string_lossy());
    let out = twlab::spawn::Command::new("readlink")
        .arg("/proc/self/ns/net")
        .initial_netns()
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        mine.to_string_lossy()
    );
}

fn a_missing_program_is_enoent_and_a_bad_directory_names_the_step() {
    let e = twlab::spawn::Command::new("no-such-program-twlab")
        .status()
        .unwrap_err();
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENOENT), "{e}");
    assert!(e.to_string().contains("`no-such-program-twlab`"), "{e}");
    let e = twlab::spawn::Command::new("/bin/true")
        .current_dir("/no/such/dir")
        .status()
        .unwrap_err();
    assert!(e.to_string().contains("change directory"), "{e}");
}
