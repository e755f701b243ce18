//! The cost of a minimal case beside the cost of the topology it builds, in the same run:
//!
//! - raw: two namespace threads (unshare), `lo` up in both, a veth pair created from the
//!   client's namespace with its peer directly in the server's, an IPv4 and an IPv6 address
//!   on each end, both ends up, then both namespaces closed; over the rtnetlink crate, one
//!   connection per namespace, no twlab code;
//! - ip: the same steps with one `ip` process per step, started from the namespace's thread
//!   (no named namespace: the peer goes to `/proc/PID/task/TID/ns/net`);
//! - twlab: a case on the pair topology with one `listen` step and one expectation
//!   (`sockets: server, state: LISTEN, count: 1`), the whole `run_trial`.
//!
//! Raw and twlab alternate, one of each per round, so that the kernel's asynchronous clean-up
//! of the namespaces closed before weighs on both alike. `ip` runs first in a block of its own:
//! interleaved, its nine processes' exits and its namespaces' clean-up fell on whichever came
//! next (measured: twlab right after `ip` took 1.4 times as long as after raw).
//!
//! `cargo bench --bench lab` (root; a few seconds). Under `cargo test --all-targets` it does
//! nothing.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoVeth};
use nix::sched::{CloneFlags, unshare};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use twlab::case::{Case, load_case_source};
use twlab::runner::run_trial;

const ROUNDS: usize = 200;
const WARM_UP: usize = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A thread in a network namespace of its own, running jobs; this file's, not twlab's.
struct NsThread {
    fd: OwnedFd,
    tid: libc::pid_t,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsThread {
    fn new() -> NsThread {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare");
            let fd = OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("ns fd"));
            ready_tx.send((fd, nix::unistd::gettid().as_raw())).unwrap();
            for job in job_rx {
                job();
            }
        });
        let (fd, tid) = ready_rx.recv().expect("namespace thread");
        NsThread {
            fd,
            tid,
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        rx.recv().expect("job")
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

struct End {
    ifname: &'static str,
    addrs: [(IpAddr, u8); 2],
}

const CLIENT: End = End {
    ifname: "to-server",
    addrs: [
        (IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1)), 24),
        (
            IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            64,
        ),
    ],
};
const SERVER: End = End {
    ifname: "to-client",
    addrs: [
        (IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)), 24),
        (
            IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
            64,
        ),
    ],
};

/// One rtnetlink conversation on the calling thread.
fn netlink<F, Fut>(f: F)
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        let task = tokio::spawn(conn);
        f(handle).await;
        task.abort();
    });
}

async fn index(handle: &Handle, name: &str) -> u32 {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    links.try_next().await.unwrap().expect("link").header.index
}

async fn up(handle: &Handle, index: u32) {
    let msg = LinkUnspec::new_with_index(index).up().build();
    handle.link().set(msg).execute().await.unwrap();
}

/// lo up, the veth (from the client's side, with `peer_fd`), the end's addresses, the end up.
async fn raw_namespace(handle: Handle, end: &End, peer: Option<(RawFd, &str)>) {
    up(&handle, index(&handle, "lo").await).await;
    if let Some((fd, peer)) = peer {
        let peer_msg = LinkUnspec::new_with_name(peer).setns_by_fd(fd).build();
        let msg = LinkVeth::new(end.ifname, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        handle.link().add(msg).execute().await.unwrap();
    }
    let ifindex = index(&handle, end.ifname).await;
    for (addr, prefix) in end.addrs {
        let mut req = handle.address().add(ifindex, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute().await.unwrap();
    }
    up(&handle, ifindex).await;
}

fn raw() -> Duration {
    let started = Instant::now();
    let client = NsThread::new();
    let server = NsThread::new();
    let server_fd = server.fd.as_raw_fd();
    client.run(move || {
        netlink(
            |h| async move { raw_namespace(h, &CLIENT, Some((server_fd, SERVER.ifname))).await },
        )
    });
    server.run(|| netlink(|h| async move { raw_namespace(h, &SERVER, None).await }));
    drop((client, server));
    started.elapsed()
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?}: {status}");
}

fn ip_namespace(end: &End, peer: Option<String>) {
    ip(&["link", "set", "lo", "up"]);
    if let Some(path) = peer {
        let add = ["link", "add", end.ifname, "type", "veth", "peer", "name"];
        ip(&[&add[..], &[SERVER.ifname, "netns", &path]].concat());
    }
    for (addr, prefix) in end.addrs {
        let a = format!("{addr}/{prefix}");
        if addr.is_ipv6() {
            ip(&["-6", "addr", "add", &a, "dev", end.ifname, "nodad"]);
        } else {
            ip(&["addr", "add", &a, "dev", end.ifname]);
        }
    }
    ip(&["link", "set", end.ifname, "up"]);
}

fn with_ip() -> Duration {
    let started = Instant::now();
    let client = NsThread::new();
    let server = NsThread::new();
    let path = format!("/proc/{}/task/{}/ns/net", std::process::id(), server.tid);
    client.run(move || ip_namespace(&CLIENT, Some(path)));
    server.run(|| ip_namespace(&SERVER, None));
    drop((client, server));
    started.elapsed()
}

fn minimal_case() -> Case {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let source = "name: minimal\ndescription: one listener on the pair topology\ntopology: pair\nfamilies: [ipv4]\nsteps:\n  - listen: {on: server, port: 8080}\nexpect:\n  - sockets: server\n    state: LISTEN\n    count: 1\n";
    load_case_source(&root, &root.join("minimal.yaml"), source.to_string()).expect("case")
}

fn with_twlab(case: &Case) -> Duration {
    let started = Instant::now();
    let report = run_trial(case, case.families[0]).expect("trial");
    let took = started.elapsed();
    assert!(
        report.passed(),
        "the listener is seen: {:?}",
        report.verdicts
    );
    took
}

struct Figures {
    mean: f64,
    median: f64,
    p90: f64,
}

fn figures(mut d: Vec<Duration>) -> Figures {
    d.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Figures {
        mean: d.iter().copied().map(ms).sum::<f64>() / d.len() as f64,
        median: ms(d[d.len() / 2]),
        p90: ms(d[d.len() * 9 / 10]),
    }
}

/// Veths named like the pair topology's ends in the host's namespace: there must be none.
fn host_is_clean() -> bool {
    ["to-server", "to-client"]
        .iter()
        .all(|n| !Path::new("/sys/class/net").join(n).exists())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("lab bench: run with `cargo bench --bench lab`");
        return;
    }
    twlab::spawn::start();
    if let Err(reason) = twlab::runner::namespaces_available() {
        println!("lab bench skipped: {reason}");
        return;
    }
    let release = twlab::observe::kernel_release();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "namespace pair with a veth and addresses: {ROUNDS} rounds, kernel {release}, {cpus} CPUs\n"
    );
    let case = minimal_case();
    // `ip` apart: its processes' exits and its namespaces' clean-up would fall on whichever
    // came next.
    let b: Vec<Duration> = (0..WARM_UP + ROUNDS)
        .map(|_| with_ip())
        .skip(WARM_UP)
        .collect();
    for _ in 0..WARM_UP {
        raw();
        with_twlab(&case);
    }
    let (mut a, mut c) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.push(raw());
        c.push(with_twlab(&case));
    }
    assert!(host_is_clean(), "a veth was left in the host's namespace");
    let (a, b, c) = (figures(a), figures(b), figures(c));
    println!(
        "  {:<42} {:>9} {:>9} {:>9}",
        "per iteration", "mean ms", "median ms", "p90 ms"
    );
    for (label, f) in [
        ("a. raw rtnetlink: create, configure, close", &a),
        ("b. `ip`, one process per step", &b),
        ("c. twlab minimal case (run_trial)", &c),
    ] {
        println!(
            "  {label:<42} {:>9.3} {:>9.3} {:>9.3}",
            f.mean, f.median, f.p90
        );
    }
    println!(
        "\n  c/a {:.2} (median {:.2}), c/b {:.2} (median {:.2})",
        c.mean / a.mean,
        c.median / a.median,
        c.mean / b.mean,
        c.median / b.median
    );
}
