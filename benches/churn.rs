//! Connection churn: a `workload` step (one connection in flight, then eight) and a twlab
//! `repeat` of connect + close against a raw loop doing the same syscalls between the same two
//! namespaces, in the same run, client first and server first, and the ratios of their rates. The raw loop is this file's own: one thread that enters the
//! client namespace by setns, a listener made once in the server namespace, then per cycle
//! socket, connect, accept, close in the case's order, read to EOF, close.
//!
//! `cargo bench --bench churn` (root; a few seconds). Under `cargo test --all-targets` it does
//! nothing.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use twlab::case::load_case_source;
use twlab::netns::Lab;
use twlab::runner::run_trial;

const CYCLES: u32 = 5000;
const SERVER: &str = "198.18.0.2:8080";

fn pair_lab() -> Lab {
    let topology = twlab::topology::builtin("pair")
        .expect("pair is built in")
        .expect("pair topology");
    Lab::build(&topology).expect("lab")
}

/// The raw loop: `CYCLES` connections, closed first by the client or the server.
fn raw(client_first: bool) -> Duration {
    let lab = pair_lab();
    let server: SocketAddr = SERVER.parse().unwrap();
    let listener = lab
        .ns("server")
        .run(move || TcpListener::bind(server).expect("listen"))
        .unwrap();
    // A thread of its own enters the client namespace: sockets it creates belong there.
    let client_ns = lab.ns("client").raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: the namespace's fd stays open while `lab` lives, past this scope.
            let ns = unsafe { BorrowedFd::borrow_raw(client_ns) };
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            let started = Instant::now();
            let mut buf = [0u8; 1];
            for _ in 0..CYCLES {
                let mut client = TcpStream::connect(server).expect("connect");
                let (mut accepted, _) = listener.accept().expect("accept");
                if client_first {
                    drop(client);
                    assert_eq!(accepted.read(&mut buf).expect("read"), 0);
                } else {
                    drop(accepted);
                    assert_eq!(client.read(&mut buf).expect("read"), 0);
                }
            }
            started.elapsed()
        })
        .join()
        .unwrap()
    })
}

/// The same through a case: the trial's step time (setup and observation not counted).
fn twlab(client_first: bool) -> Duration {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let by = if client_first { "client" } else { "server" };
    let source = format!(
        "name: churn\ndescription: d\ntopology: pair\nsteps:\n  - listen: {{on: server, port: 8080}}\n  - repeat:\n      times: {CYCLES}\n      steps:\n        - connect: {{from: client, to: server, port: 8080}}\n        - close: {{by: {by}}}\nexpect:\n  - result: connect\n    ok: {CYCLES}\n"
    );
    let case = load_case_source(&root, &root.join("churn.yaml"), source).expect("case");
    let report = run_trial(&case, case.families[0]).expect("trial");
    assert!(report.passed(), "every connect succeeded");
    report.observations.run
}

/// The same cycles as a `workload` step with `concurrency` connections in flight: the time
/// the workload spent opening and closing them (its own clock, listeners and gauges aside).
fn workload(client_first: bool, concurrency: u32) -> Duration {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let by = if client_first { "client" } else { "server" };
    let source = format!(
        "name: churn\ndescription: d\ntopology: pair\nsteps:\n  - workload: {{from: client, to: server, port: 8080, concurrency: {concurrency}, count: {CYCLES}, close: {{by: {by}}}}}\nexpect:\n  - workload: workload\n    ok: {CYCLES}\n"
    );
    let case = load_case_source(&root, &root.join("churn.yaml"), source).expect("case");
    let report = run_trial(&case, case.families[0]).expect("trial");
    let run = &report.observations.workloads[0];
    assert!(
        report.passed(),
        "every connection succeeded: {}",
        run.summary()
    );
    run.opening
}

fn rate(d: Duration) -> f64 {
    f64::from(CYCLES) / d.as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("churn bench: run with `cargo bench --bench churn`");
        return;
    }
    if let Err(reason) = twlab::runner::namespaces_available() {
        println!("churn bench skipped: {reason}");
        return;
    }
    twlab::spawn::start();
    let release = twlab::observe::kernel_release();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("connection churn, {CYCLES} cycles each, kernel {release}, {cpus} CPUs\n");
    println!(
        "  {:<14} {:>12} {:>14} {:>6} {:>14} {:>6} {:>14} {:>6}",
        "who closes",
        "raw loop /s",
        "workload c=1",
        "ratio",
        "workload c=8",
        "ratio",
        "repeat /s",
        "ratio"
    );
    for client_first in [true, false] {
        let raw = rate(raw(client_first));
        let one = rate(workload(client_first, 1));
        let eight = rate(workload(client_first, 8));
        let repeat = rate(twlab(client_first));
        println!(
            "  {:<14} {:>12.0} {:>14.0} {:>6.2} {:>14.0} {:>6.2} {:>14.0} {:>6.2}",
            if client_first {
                "client first"
            } else {
                "server first"
            },
            raw,
            one,
            one / raw,
            eight,
            eight / raw,
            repeat,
            repeat / raw
        );
    }
}
