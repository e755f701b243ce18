//! A workload step from start to end: its listeners on the server's thread, the gauges opened
//! on each namespace's thread, then the event loop and the sampler side by side on two scoped
//! threads (joined before the step ends, so nothing of it outlives the step), and their
//! results merged into one `WorkloadRun`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::Instant;

use nix::errno::Errno;

use crate::netns::{Lab, NetnsError, sysctl};
use crate::observe::{NsGauges, SockDiag, slab_object_size};
use crate::plan::WorkloadPlan;
use crate::scenario::socket as so;

use super::driver::{DriverInput, Live, drive};
use super::sampler::{NsProbe, Progress, sample};
use super::series::{Interval, WorkloadRun};

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("workload `{label}`: could not open {what} in namespace `{ns}`: {source}")]
    Gauges {
        label: String,
        what: &'static str,
        ns: String,
        source: std::io::Error,
    },
    #[error("workload `{label}`: its event loop failed: {errno}")]
    Loop { label: String, errno: Errno },
    #[error("workload `{label}`: its event loop panicked: {message}")]
    Panicked { label: String, message: String },
}

/// How the workload's step went when it could not run at all (its listeners could not bind).
pub enum Started {
    Ran(Box<WorkloadRun>, Vec<OwnedFd>),
    /// listen() or bind() failed on this address: the step's outcome.
    ListenFailed(SocketAddr, Errno),
}

pub struct Context<'a> {
    pub lab: &'a Lab,
    pub diag: &'a BTreeMap<String, SockDiag>,
    /// Namespaces whose conntrack tables are read.
    pub conntrack_ns: &'a [String],
    /// Since the case's first step.
    pub case_start: Instant,
    /// Count sockets by state each interval (an expectation or the step asks).
    pub socket_states: bool,
    /// The trial's name, for the progress line and the summary line.
    pub trial: &'a str,
}

pub fn run(cx: &Context<'_>, plan: &WorkloadPlan<'_>) -> Result<Started, WorkloadError> {
    let w = plan.step;
    let label = plan.label.to_string();
    let backlog = w.backlog;
    let mut listeners = Vec::new();
    for &addr in &plan.targets {
        let made = cx
            .lab
            .ns(&plan.server_ns)
            .run(move || -> nix::Result<OwnedFd> {
                let fd = so::tcp_socket(addr.ip())?;
                so::set_reuseaddr(&fd)?;
                so::bind(&fd, addr)?;
                so::listen(&fd, backlog)?;
                Ok(fd)
            })?;
        match made {
            Ok(fd) => listeners.push(fd),
            Err(e) => return Ok(Started::ListenFailed(addr, e)),
        }
    }
    let client0 = plan.clients[0].clone();
    let port_range = cx
        .lab
        .ns(&client0)
        .run(|| sysctl::read("net.ipv4.ip_local_port_range"))?
        .ok()
        .and_then(|r| {
            let mut it = r.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        });
    let mut probes = Vec::new();
    for ns in cx.lab.namespaces() {
        let name = ns.name().to_string();
        let conntrack = cx.conntrack_ns.contains(&name);
        let gauges = ns
            .run(move || NsGauges::open(conntrack))?
            .map_err(|source| WorkloadError::Gauges {
                label: label.clone(),
                what: "its /proc/net gauges",
                ns: name.clone(),
                source,
            })?;
        let client = plan.clients.contains(&name);
        probes.push(NsProbe {
            diag: cx.socket_states.then(|| cx.diag.get(&name)).flatten(),
            ports: if client && cx.socket_states {
                port_range
            } else {
                None
            },
            name,
            gauges,
        });
    }
    let v6 = plan.targets.first().is_some_and(SocketAddr::is_ipv6);
    let tw_object = slab_object_size(if v6 { "tw_sock_TCPv6" } else { "tw_sock_TCP" });
    let client_ns: Vec<_> = plan.clients.iter().map(|c| cx.lab.ns(c).raw_fd()).collect();
    raise_fd_limit();

    let interval = w.interval.value.0;
    let t0 = Instant::now();
    let started_at = t0 - cx.case_start;
    let (stop, stopped) = mpsc::channel();
    let live = Live::default();
    let name = format!("{label} ({})", cx.trial);
    // A live line only where someone watches; a log gets the summary line at the end.
    let tty = std::io::stderr().is_terminal();
    let progress = tty.then(|| Progress {
        name: name.clone(),
        live: &live,
    });
    let (driven, rows) = std::thread::scope(|s| {
        let sampler = s.spawn(move || sample(probes, t0, interval, stopped, progress));
        let live = &live;
        let driver = s.spawn(move || {
            drive(DriverInput {
                w,
                client_ns,
                targets: plan.targets.clone(),
                listeners,
                t0,
                live,
            })
        });
        let driven = driver.join();
        let _ = stop.send(());
        (driven, sampler.join())
    });
    let panicked = |p: Box<dyn std::any::Any + Send>| WorkloadError::Panicked {
        label: label.clone(),
        message: crate::vocab::panic_message(p.as_ref()),
    };
    let out = driven
        .map_err(panicked)?
        .map_err(|errno| WorkloadError::Loop {
            label: label.clone(),
            errno,
        })?;
    let rows = rows.map_err(panicked)?;

    // One row per interval of the run: the client's buckets beside the kernel's readings.
    let n = out.buckets.len().max(rows.len());
    let intervals = (0..n)
        .map(|k| {
            let b = out.buckets.get(k).cloned().unwrap_or_default();
            let (ns, ports_in_use) = match rows.get(k) {
                Some(r) => (r.ns.clone(), r.ports_in_use),
                None => (BTreeMap::new(), None),
            };
            Interval {
                start: interval * k as u32,
                attempts: b.attempts,
                ok: b.ok,
                errors: b.errors,
                connect_us: b.connect_us,
                in_flight: b.in_flight,
                ports_in_use,
                ns,
            }
        })
        .collect();
    let run = WorkloadRun {
        label,
        started_at,
        opening: out.opening,
        total: out.total,
        behind: out.behind,
        interval,
        outcomes: out.outcomes,
        first_error: out.first_error,
        unfinished: out.unfinished,
        server_errors: out.server_errors,
        connect_us: out.connect_us,
        refused_connect_us: out.refused_connect_us,
        time_wait_object_bytes: tw_object,
        port_range,
        intervals,
    };
    eprintln!("twlab: workload {name}: {}", run.summary());
    Ok(Started::Ran(Box::new(run), out.leftovers))
}

/// A workload may hold thousands of sockets: the soft descriptor limit goes up to the hard
/// one (the process's own limit, not a host setting).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
