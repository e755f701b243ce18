//! Runs a case's steps against a built lab and records what the kernel answered.
//!
//! Sockets are created on their namespace's thread (a socket belongs to the namespace it was
//! created in) and then driven from here; a socket keeps its namespace whichever thread uses it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::case::{Close, CloseHow, Listen, PeerAction, RecvStep, Role, SendStep};
use crate::case::{
    Inject, OptionName, OptionValue, Shutdown, ShutdownHow, SocketOption, options_of,
};
use crate::impair::{ImpairError, LinkImpairments};
use crate::netns::{Lab, NetnsError};
use crate::observe::{ConntrackError, ConntrackTable, SockDiag, SockDiagError, SocketRow};
use crate::plan::{Control, Op, OpKind, PlanStep, WorkloadPlan};
use crate::topology::Topology;

use super::exec::Filled;
use super::inject;
use super::outcome::StepRecord;
use super::program::{ProgramRun, Running};
use super::socket::{self as so, RecvEnd};
use super::workload::{self, WorkloadRun};
use crate::vocab::{Outcome, TcpState};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    SockDiag(#[from] SockDiagError),
    #[error(transparent)]
    Conntrack(#[from] ConntrackError),
    #[error("failed to change an impairment: {0}")]
    Impair(#[from] ImpairError),
    #[error(transparent)]
    NotReady(Box<NotReady>),
    #[error(transparent)]
    Workload(#[from] super::workload::WorkloadError),
}

/// A background program whose readiness condition never held.
#[derive(Debug, thiserror::Error)]
#[error(
    "program `{label}` ({command}) in namespace `{ns}` never became ready: {what} within {timeout:?}{exited}{tail}"
)]
pub struct NotReady {
    pub label: String,
    pub command: String,
    pub ns: String,
    pub what: String,
    pub timeout: Duration,
    /// How it ended, if it exited while twlab waited.
    pub exited: String,
    /// Its last lines of output.
    pub tail: String,
}

/// Socket states of every namespace at one moment.
#[derive(Debug, Clone)]
pub struct SocketSample {
    pub label: String,
    /// Since the first step started.
    pub at: Duration,
    pub sockets: BTreeMap<String, Vec<SocketRow>>,
    /// Conntrack tables of the namespaces that track connections.
    pub conntrack: BTreeMap<String, ConntrackTable>,
}

pub(super) struct Listener {
    pub(super) ns: String,
    pub(super) fd: OwnedFd,
    pub(super) addr: SocketAddr,
}

/// A socket a `bind` step made, until a `listen` or `connect` takes it.
pub(super) struct Bound {
    pub(super) ns: String,
    pub(super) fd: OwnedFd,
    /// Its options, for a `reconnect` of the connection it becomes.
    pub(super) options: Vec<SocketOption>,
    pub(super) device: Option<String>,
}

/// An address as a comparison sees it: v4-mapped IPv6 as the IPv4 address it stands for
/// (a dual-stack listener's accepted peers are `::ffff:198.18.0.1`).
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The case's listener that serves this connection's destination, if one does.
fn listener_for<'a>(listeners: &'a HashMap<String, Listener>, conn: &Conn) -> Option<&'a Listener> {
    let server_ns = conn.server_ns.as_ref()?;
    let remote = canonical(conn.remote);
    listeners.values().find(|l| {
        let ip = l.addr.ip().to_canonical();
        &l.ns == server_ns
            && l.addr.port() == remote.port()
            && (ip == remote.ip()
                || ip.is_unspecified()
                // connect() to the unspecified address reaches this host's loopback.
                || (remote.ip().is_unspecified() && ip.is_loopback()))
    })
}

/// A connect() to make: from a `connect` step, or a `reconnect` reusing an earlier 4-tuple.
struct ConnectArgs {
    from: String,
    remote: SocketAddr,
    /// The client namespace's own address, for an explicit bind.
    local_ip: IpAddr,
    local_port: Option<u16>,
    reuseaddr: bool,
    bind_address_no_port: bool,
    bind_device: Option<String>,
    /// Set after the flags above, in order.
    options: Vec<SocketOption>,
    /// A socket a `bind` step made, connected as it is; the first `inherited` of `options`
    /// are the ones its `bind` set.
    bound: Option<OwnedFd>,
    inherited: usize,
    /// Accept the server side at once (else an `accept` step does).
    accept: bool,
    /// Bytes to send with the SYN (TCP Fast Open).
    syn_data: Option<u64>,
    timeout: Duration,
}

pub(super) struct Conn {
    pub(super) client: Option<OwnedFd>,
    pub(super) server: Option<OwnedFd>,
    pub(super) client_ns: String,
    pub(super) server_ns: Option<String>,
    /// Client's local address once connected (or bound).
    pub(super) local: Option<SocketAddr>,
    pub(super) remote: SocketAddr,
    reuseaddr: bool,
    bind_device: Option<String>,
    /// The options its socket was given, for a `reconnect`.
    options: Vec<SocketOption>,
    /// Why there is no connection: the connect's errno.
    pub(super) failed: Option<String>,
}

/// How long `inject` waits at most for the taps to read what is queued (a busy machine can
/// keep a reader thread off the CPU for a while).
const TAP_CATCH_UP: Duration = Duration::from_secs(1);

pub struct Engine<'a> {
    pub(super) lab: &'a Lab,
    pub(super) topology: &'a Topology,
    pub(super) diag: BTreeMap<String, SockDiag>,
    pub(super) listeners: HashMap<String, Listener>,
    pub(super) conns: HashMap<String, Conn>,
    /// Sockets `bind` steps made that no `listen` or `connect` has taken yet.
    pub(super) bound: HashMap<String, Bound>,
    /// Sockets replaced under a reused name: kept open until the case ends, so that no step
    /// closes anything implicitly.
    pub(super) retired: Vec<OwnedFd>,
    pub(super) start: Instant,
    /// A masquerading router is on the path: accepted peers are not the clients' addresses.
    pub nat_in_path: bool,
    /// Namespaces whose conntrack table every sample reads.
    pub conntrack_ns: Vec<String>,
    /// The case's link impairments and drops, which `impair` and `set_drop` steps change.
    pub impairments: Option<LinkImpairments>,
    pub records: Vec<StepRecord>,
    pub samples: Vec<SocketSample>,
    /// Where `exec` steps run by default and resolve a relative `cwd`: the case file's directory.
    pub case_dir: std::path::PathBuf,
    /// Background programs still running, in start order.
    pub(super) running: Vec<Running>,
    /// Programs that have ended (or were stopped), in the order they ended.
    pub program_runs: Vec<ProgramRun>,
    /// Workloads that ran, in order.
    pub workloads: Vec<WorkloadRun>,
    /// Labels of workloads whose series count sockets by state (an expectation reads them).
    pub socket_state_workloads: Vec<String>,
    /// `case::family`, for progress lines.
    pub trial_name: String,
    /// The packet taps, while the steps run: `inject` reads relative numbers from them.
    pub taps: Vec<crate::observe::PacketTap>,
    /// Each connection name's 4-tuples (client address, server address), in connect order.
    pub conn_tuples: BTreeMap<String, Vec<(SocketAddr, SocketAddr)>>,
}

impl<'a> Engine<'a> {
    pub fn new(lab: &'a Lab, topology: &'a Topology) -> Result<Self, EngineError> {
        let mut diag = BTreeMap::new();
        for ns in lab.namespaces() {
            diag.insert(ns.name().to_string(), ns.run(SockDiag::open)??);
        }
        Ok(Engine {
            lab,
            topology,
            diag,
            listeners: HashMap::new(),
            conns: HashMap::new(),
            bound: HashMap::new(),
            retired: Vec::new(),
            start: Instant::now(),
            impairments: None,
            conntrack_ns: Vec::new(),
            nat_in_path: false,
            records: Vec::new(),
            samples: Vec::new(),
            case_dir: std::path::PathBuf::from("."),
            running: Vec::new(),
            program_runs: Vec::new(),
            workloads: Vec::new(),
            socket_state_workloads: Vec::new(),
            trial_name: String::new(),
            taps: Vec::new(),
            conn_tuples: BTreeMap::new(),
        })
    }

    pub fn run(&mut self, steps: &[PlanStep<'_>]) -> Result<(), EngineError> {
        self.start = Instant::now();
        self.run_block(steps, None, false)?;
        Ok(())
    }

    /// When the first step started: step records and re-based packet times count from here.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Socket states in every namespace now.
    pub fn sample(&self, label: &str) -> Result<SocketSample, EngineError> {
        let mut sockets = BTreeMap::new();
        for (ns, d) in &self.diag {
            sockets.insert(ns.clone(), d.dump_all()?);
        }
        let mut conntrack = BTreeMap::new();
        for ns in &self.conntrack_ns {
            conntrack.insert(
                ns.clone(),
                self.lab.ns(ns).run(ConntrackTable::read_current)??,
            );
        }
        Ok(SocketSample {
            label: label.to_string(),
            at: self.start.elapsed(),
            sockets,
            conntrack,
        })
    }

    /// Runs the steps; true if one of them failed. With `stop_on_failure`, stops there.
    fn run_block(
        &mut self,
        steps: &[PlanStep<'_>],
        iteration: Option<u32>,
        stop_on_failure: bool,
    ) -> Result<bool, EngineError> {
        let mut failed = false;
        for step in steps {
            let before = self.records.len();
            match step {
                PlanStep::Control(c) => failed |= self.control(c)?,
                PlanStep::Op(op) => self.run_op(op, iteration)?,
            }
            failed |= self.records[before..]
                .iter()
                .any(|r| r.outcome.is_failure());
            if failed && stop_on_failure {
                break;
            }
        }
        Ok(failed)
    }

    /// A control step; true if a repeated block failed.
    fn control(&mut self, c: &Control<'_>) -> Result<bool, EngineError> {
        let mut failed = false;
        match c {
            Control::Repeat {
                times,
                until_error,
                steps,
            } => {
                for i in 1..=*times {
                    let f = self.run_block(steps, Some(i), *until_error)?;
                    failed |= f;
                    if f && *until_error {
                        break;
                    }
                }
            }
            Control::Sleep(d) => std::thread::sleep(*d),
            Control::Impair(spec) => {
                if let Some(i) = self.impairments.as_mut() {
                    i.apply(self.lab, self.topology, spec)?;
                }
            }
            Control::SetDrop { name, active } => {
                if let Some(i) = self.impairments.as_mut() {
                    i.set_drop(self.lab, name, *active)?;
                }
            }
            Control::Stop { label } => self.stop_programs(Some(label), "stop step"),
            Control::Sample { label, at, after } => {
                if let Some(at) = at {
                    let base = after
                        .and_then(|a| self.records.iter().rev().find(|r| r.label == a))
                        .map_or(Duration::ZERO, |r| r.started);
                    std::thread::sleep((base + *at).saturating_sub(self.start.elapsed()));
                }
                let sample = self.sample(label)?;
                self.samples.push(sample);
            }
        }
        Ok(failed)
    }

    fn run_op(&mut self, op: &Op<'_>, iteration: Option<u32>) -> Result<(), EngineError> {
        let line = op.line;
        let started = Instant::now();
        let mut rec = StepRecord {
            label: op.label.to_string(),
            kind: op.kind_name,
            line,
            iteration,
            outcome: Outcome::Ok,
            started: self.start.elapsed(),
            duration: Duration::ZERO,
            bytes: None,
            detail: String::new(),
            local: None,
            value: None,
        };
        let mut extra = Vec::new();
        match &op.kind {
            OpKind::Bind { step, addr } => self.bind(step, *addr, &mut rec)?,
            OpKind::Listen { step, addr } => self.listen(step, *addr, &mut rec)?,
            OpKind::Accept(a) => self.accept_step(a, &mut rec)?,
            OpKind::Sockopt(s) => self.sockopt(s, &mut rec),
            OpKind::CloseListener(c) => match self.listeners.remove(&c.name) {
                Some(l) => {
                    rec.detail = format!("{} in {}", l.addr, l.ns);
                    rec.outcome = so::close(l.fd);
                }
                None => rec.outcome = Outcome::Skipped(format!("no open listener `{}`", c.name)),
            },
            OpKind::Connect {
                step: c,
                remote,
                local_ip,
            } => {
                let mut options = Vec::new();
                let mut device = c.bind_device.clone();
                let (from, bound, local_ip) = match (&c.socket, &c.from, local_ip) {
                    (Some(name), _, _) => match self.bound.remove(&name.value) {
                        Some(b) => {
                            options = b.options;
                            device = b.device;
                            let ip = so::local_addr(&b.fd).map(|a| a.ip());
                            let ip = ip.unwrap_or(remote.ip());
                            (b.ns, Some(b.fd), ip)
                        }
                        None => {
                            rec.outcome = Outcome::Skipped(format!(
                                "socket `{}` was taken by an earlier step or never made",
                                name.value
                            ));
                            self.records.push(rec);
                            return Ok(());
                        }
                    },
                    (None, Some(from), Some(ip)) => (from.value.clone(), None, *ip),
                    // The plan refuses a connect without `from:` or `socket:`.
                    _ => {
                        rec.outcome =
                            Outcome::Skipped("a connect without `from:` or `socket:`".into());
                        self.records.push(rec);
                        return Ok(());
                    }
                };
                let inherited = options.len();
                options.extend_from_slice(options_of(&c.options));
                let args = ConnectArgs {
                    inherited,
                    from,
                    remote: *remote,
                    local_ip,
                    local_port: c.local_port,
                    reuseaddr: c.reuseaddr,
                    bind_address_no_port: c.bind_address_no_port,
                    bind_device: device,
                    options,
                    bound,
                    accept: c.accept,
                    syn_data: c.syn_data,
                    timeout: c.timeout.0,
                };
                self.connect(args, &c.name, &mut rec)?;
            }
            OpKind::Reconnect(r) => match self
                .conns
                .get(&r.conn)
                .and_then(|c| c.local.map(|l| (l, c)))
            {
                Some((local, c)) => {
                    let args = ConnectArgs {
                        from: c.client_ns.clone(),
                        remote: c.remote,
                        local_ip: local.ip(),
                        local_port: Some(local.port()),
                        reuseaddr: c.reuseaddr,
                        bind_address_no_port: false,
                        bind_device: c.bind_device.clone(),
                        options: c.options.clone(),
                        bound: None,
                        inherited: 0,
                        accept: true,
                        syn_data: None,
                        timeout: r.timeout.0,
                    };
                    self.connect(args, &r.conn, &mut rec)?;
                }
                None => {
                    rec.outcome = Outcome::Skipped(format!(
                        "connection `{}` never had a local address",
                        r.conn
                    ));
                }
            },
            OpKind::Close(c) => extra = self.close(c, &mut rec)?,
            OpKind::Send(s) => self.send(s, &mut rec),
            OpKind::Recv(r) => self.recv(r, &mut rec),
            OpKind::Inject(i) => self.inject(i, &mut rec)?,
            OpKind::Shutdown(s) => self.shutdown(s, &mut rec),
            OpKind::Exec {
                step,
                argv,
                env,
                ready_output,
            } => {
                let filled = Filled {
                    argv: argv.clone(),
                    env: env.clone(),
                    ready_output: ready_output.clone(),
                };
                self.exec(step, filled, line, &mut rec)?
            }
            OpKind::Workload(plan) => self.workload(plan, &mut rec)?,
        }
        rec.duration = started.elapsed();
        self.records.push(rec);
        self.records.extend(extra);
        Ok(())
    }

    fn workload(
        &mut self,
        plan: &WorkloadPlan<'_>,
        rec: &mut StepRecord,
    ) -> Result<(), EngineError> {
        let cx = workload::Context {
            lab: self.lab,
            diag: &self.diag,
            conntrack_ns: &self.conntrack_ns,
            case_start: self.start,
            socket_states: plan.step.socket_states
                || self.socket_state_workloads.iter().any(|l| l == plan.label),
            trial: &self.trial_name,
        };
        match workload::run(&cx, plan)? {
            workload::Started::Ran(run, leftovers) => {
                rec.detail = run.summary();
                self.retired.extend(leftovers);
                self.workloads.push(*run);
            }
            workload::Started::ListenFailed(addr, e) => {
                rec.detail = format!("listen on {addr} in {}", plan.server_ns);
                rec.outcome = Outcome::Errno(e);
            }
        }
        Ok(())
    }

    /// The namespace that serves a connection from `from` to `ip`: the topology's owner of
    /// the address, or `from` itself for its own loopback and the unspecified address.
    fn server_ns_for(&self, from: &str, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        if ip.is_loopback() || ip.is_unspecified() {
            return Some(from.to_string());
        }
        self.topology.owner_of(ip).map(str::to_string)
    }

    fn listen(
        &mut self,
        l: &Listen,
        addr: Option<SocketAddr>,
        rec: &mut StepRecord,
    ) -> Result<(), EngineError> {
        let options = options_of(&l.options).to_vec();
        let backlog = l.backlog;
        let listen_on = move |fd: &OwnedFd| -> Result<(), (String, nix::errno::Errno)> {
            so::listen(fd, backlog).map_err(|e| ("listen()".to_string(), e))
        };
        let (ns, result) = match (addr, &l.socket) {
            (Some(addr), _) => {
                let ns = l.on.as_ref().map(|o| o.value.clone()).unwrap_or_default();
                rec.detail = format!("{addr} in {ns}");
                let reuse = l.reuseaddr;
                let made = self.lab.ns(&ns).run(move || {
                    let fd = so::tcp_socket(addr.ip()).map_err(|e| ("socket()".to_string(), e))?;
                    // Before bind(): some options only apply to an unbound socket
                    // (IPV6_V6ONLY says EINVAL once the socket has a port).
                    so::apply_options(&fd, &options)?;
                    if reuse {
                        so::set_reuseaddr(&fd)
                            .map_err(|e| ("setsockopt(reuseaddr)".to_string(), e))?;
                    }
                    so::bind(&fd, addr).map_err(|e| (format!("bind({addr})"), e))?;
                    listen_on(&fd)?;
                    Ok(fd)
                })?;
                (ns, made)
            }
            (None, Some(name)) => match self.bound.remove(&name.value) {
                Some(b) => {
                    rec.detail = format!("socket `{}` in {}", name.value, b.ns);
                    let made = so::apply_options(&b.fd, options_of(&l.options))
                        .and_then(|()| listen_on(&b.fd))
                        .map(|()| b.fd);
                    (b.ns, made)
                }
                None => {
                    rec.outcome = Outcome::Skipped(format!(
                        "socket `{}` was taken by an earlier step or never made",
                        name.value
                    ));
                    return Ok(());
                }
            },
            // The plan refuses a listen without `on:`/`port:` or `socket:`.
            (None, None) => {
                rec.outcome =
                    Outcome::Skipped("a listen without `on:` and `port:` or `socket:`".into());
                return Ok(());
            }
        };
        match result {
            Ok(fd) => {
                let local = so::local_addr(&fd).ok();
                rec.local = local;
                if let Some(a) = local {
                    rec.detail = format!("{a} in {ns}");
                }
                let addr = local
                    .or(addr)
                    .unwrap_or_else(|| SocketAddr::from(([0u8; 4], 0)));
                let old = self
                    .listeners
                    .insert(l.name.clone(), Listener { ns, fd, addr });
                self.retired.extend(old.map(|o| o.fd));
            }
            Err((call, e)) => {
                rec.detail = format!("{call} failed: {}", rec.detail);
                rec.outcome = Outcome::Errno(e);
            }
        }
        Ok(())
    }

    fn connect(
        &mut self,
        c: ConnectArgs,
        name: &str,
        rec: &mut StepRecord,
    ) -> Result<(), EngineError> {
        let remote = c.remote;
        let local_ip = c.local_ip;
        let (reuse, no_port, local_port) = (c.reuseaddr, c.bind_address_no_port, c.local_port);
        let device = c.bind_device.clone();
        // The step's own flags are the same options as `options:`, set first.
        let flag = |on: bool, name: OptionName| {
            on.then_some(SocketOption {
                name,
                value: OptionValue::Int(1),
            })
        };
        let options: Vec<SocketOption> = flag(reuse, OptionName::Reuseaddr)
            .into_iter()
            .chain(flag(no_port, OptionName::BindAddressNoPort))
            .chain(c.options.iter().copied())
            .collect();
        let bind_to = (no_port || local_port.is_some())
            .then(|| SocketAddr::new(local_ip, local_port.unwrap_or(0)));
        let created = match c.bound {
            // A bound socket keeps its namespace; only the connect's own options are new.
            Some(fd) => so::apply_options(&fd, &c.options[c.inherited..]).map(|()| fd),
            // Created from this thread by entering the namespace: no hop to its thread.
            None => self.lab.ns(&c.from).enter(
                move || -> Result<OwnedFd, (String, nix::errno::Errno)> {
                    let fd =
                        so::tcp_socket(remote.ip()).map_err(|e| ("socket()".to_string(), e))?;
                    so::apply_options(&fd, &options)?;
                    if let Some(dev) = &device {
                        so::bind_to_device(&fd, dev)
                            .map_err(|e| (format!("setsockopt(SO_BINDTODEVICE {dev})"), e))?;
                    }
                    if let Some(addr) = bind_to {
                        so::bind(&fd, addr).map_err(|e| (format!("bind({addr})"), e))?;
                    }
                    Ok(fd)
                },
            )?,
        };
        let mut conn = Conn {
            client: None,
            server: None,
            client_ns: c.from.clone(),
            server_ns: self.server_ns_for(&c.from, remote.ip()),
            local: None,
            remote,
            reuseaddr: c.reuseaddr,
            bind_device: c.bind_device.clone(),
            options: c.options.clone(),
            failed: None,
        };
        rec.detail = format!("-> {remote}");
        match created {
            Err((call, e)) => {
                rec.outcome = Outcome::Errno(e);
                rec.detail = format!("{call} failed, before connect() -> {remote}");
                conn.failed = Some(format!("{e:?} from {call}"));
            }
            Ok(fd) => {
                let outcome = match c.syn_data {
                    None => so::connect(&fd, remote, c.timeout),
                    Some(n) => {
                        let (outcome, with_syn) = so::connect_with_data(&fd, remote, n, c.timeout);
                        // What did not ride on the SYN goes once the connection is up, as
                        // an application would send it.
                        let (outcome, rest) = match outcome {
                            Outcome::Ok if with_syn < n => {
                                so::send_all(&fd, n - with_syn, Instant::now() + c.timeout)
                            }
                            o => (o, 0),
                        };
                        rec.bytes = Some(with_syn + rest);
                        rec.value = Some(OptionValue::Int(with_syn as i64));
                        rec.detail = format!("{with_syn} of {n} bytes rode on the SYN");
                        outcome
                    }
                };
                conn.local = so::local_addr(&fd).ok().filter(|a| a.port() != 0);
                rec.local = conn.local;
                let what = std::mem::take(&mut rec.detail);
                rec.detail = match conn.local {
                    Some(local) => format!("{local} -> {remote}"),
                    None => format!("-> {remote}"),
                };
                if c.syn_data.is_some() {
                    rec.detail = format!("{}: {what}", rec.detail);
                }
                match &outcome {
                    Outcome::Ok => {
                        if c.accept {
                            conn.server = self.accept_for(&conn, c.timeout)?.ok();
                            // Without a listener of the case (a program's server), nothing
                            // of twlab's was to accept it.
                            if conn.server.is_none() && self.listener_for(&conn).is_some() {
                                rec.detail += " (the server did not accept it in time)";
                            }
                        } else {
                            rec.detail += " (left in the accept queue)";
                        }
                        conn.client = Some(fd);
                    }
                    // Still in SYN_SENT: keep it, its state is part of what the case observes.
                    Outcome::Timeout => conn.client = Some(fd),
                    // The kernel refused: the socket holds no connection, so a later close of
                    // it would report a close that never happened. Close it now.
                    _ => {
                        conn.failed = Some(format!("{} from connect()", outcome.name()));
                        rec.detail = format!(
                            "connect() from {} -> {remote} failed",
                            bind_to.map_or("an unbound socket".to_string(), |a| a.to_string())
                        );
                    }
                }
                rec.outcome = outcome;
            }
        }
        if let Some(local) = conn.local {
            let tuples = self.conn_tuples.entry(name.to_string()).or_default();
            if !tuples.contains(&(local, conn.remote)) {
                tuples.push((local, conn.remote));
            }
        }
        if let Some(old) = self.conns.insert(name.to_string(), conn) {
            self.retired.extend(old.client);
            self.retired.extend(old.server);
        }
        Ok(())
    }
    /// The case's listener that serves this connection's destination, if one does.
    fn listener_for(&self, conn: &Conn) -> Option<&Listener> {
        listener_for(&self.listeners, conn)
    }

    /// The server side of a just-established connection: accept from the listener that serves
    /// it until the accepted peer is our client (others stay open, retired).
    pub(super) fn accept_for(
        &mut self,
        conn: &Conn,
        timeout: Duration,
    ) -> Result<Result<OwnedFd, Outcome>, EngineError> {
        let Some(local) = conn.local else {
            return Ok(Err(Outcome::Skipped(
                "the connection has no local address".into(),
            )));
        };
        let Some(listener) = listener_for(&self.listeners, conn) else {
            return Ok(Err(Outcome::Skipped(
                "no listener of the case serves its destination".into(),
            )));
        };
        // The same budget as the connect: a lost handshake ACK delays the accept by the
        // server's SYN-ACK retransmission (1 s) although connect() already returned.
        let deadline = Instant::now() + timeout;
        loop {
            let fd = match so::accept(&listener.fd, deadline) {
                Ok(fd) => fd,
                Err(outcome) => return Ok(Err(outcome)),
            };
            // Behind NAT the server sees the router's address, not the client's: steps run one
            // at a time, so the next connection accepted is this one.
            let peer = so::peer_addr(&fd).ok().map(canonical);
            if self.nat_in_path || peer == Some(canonical(local)) {
                return Ok(Ok(fd));
            }
            self.retired.push(fd);
        }
    }

    /// Why a step finds no socket on this side of the connection.
    pub(super) fn missing(&self, conn: &str, role: Role) -> String {
        match self.conns.get(conn).and_then(|c| c.failed.as_ref()) {
            Some(errno) => format!("connection `{conn}` failed to connect ({errno})"),
            None => format!("connection `{conn}` has no open {} socket", role.name()),
        }
    }

    /// One side's socket of a connection, still open, or why there is none.
    pub(super) fn open_socket(&self, conn: &str, role: Role) -> Result<&OwnedFd, String> {
        let c = self
            .conns
            .get(conn)
            .ok_or_else(|| format!("no connection `{conn}`"))?;
        match role {
            Role::Client => c.client.as_ref(),
            Role::Server => c.server.as_ref(),
        }
        .ok_or_else(|| self.missing(conn, role))
    }

    fn side(&mut self, conn: &str, role: Role) -> Option<OwnedFd> {
        let c = self.conns.get_mut(conn)?;
        match role {
            Role::Client => c.client.take(),
            Role::Server => c.server.take(),
        }
    }

    fn close(&mut self, c: &Close, rec: &mut StepRecord) -> Result<Vec<StepRecord>, EngineError> {
        let Some(fd) = self.side(&c.conn, c.by) else {
            rec.outcome = Outcome::Skipped(self.missing(&c.conn, c.by));
            return Ok(Vec::new());
        };
        let tuple = self
            .conns
            .get(&c.conn)
            .and_then(|k| k.local.map(|l| (l, k.remote)));
        let (client_ns, server_ns) = match self.conns.get(&c.conn) {
            Some(k) => (k.client_ns.clone(), k.server_ns.clone()),
            None => (String::new(), None),
        };
        if let Some((l, r)) = tuple {
            rec.detail = format!("{} closes {l} <-> {r}", c.by.name());
        }
        let set = match c.how {
            CloseHow::Fin => Ok(()),
            CloseHow::Abort => so::set_linger(&fd, 0),
            CloseHow::Linger(n) => so::set_linger(&fd, n).and_then(|()| so::set_blocking(&fd)),
        };
        rec.outcome = match set {
            Ok(()) => so::close(fd),
            Err(e) => Outcome::Errno(e),
        };
        let mut extra = Vec::new();
        if c.peer == PeerAction::CloseOnEof {
            let peer = self.side(&c.conn, c.by.other());
            if peer.is_none() {
                extra.push(StepRecord {
                    label: format!("{}.peer", rec.label),
                    kind: "peer_close",
                    line: rec.line,
                    iteration: rec.iteration,
                    outcome: Outcome::Skipped(format!(
                        "connection `{}` has no open {} socket",
                        c.conn,
                        c.by.other().name()
                    )),
                    started: rec.started,
                    duration: Duration::ZERO,
                    bytes: None,
                    detail: String::new(),
                    local: None,
                    value: None,
                });
            }
            if let Some(peer) = peer {
                let started = Instant::now();
                let (end, bytes) = so::recv_until(&peer, None, started + c.peer_timeout.0);
                let reader = c.by.other().name();
                let (outcome, detail) = match end {
                    Ok(_) => (
                        so::close(peer),
                        format!("{reader} read to EOF, then closed"),
                    ),
                    Err(o) => {
                        drop(peer);
                        let detail = format!("{reader}'s read ended in {o}, then it closed");
                        (o, detail)
                    }
                };
                extra.push(StepRecord {
                    label: format!("{}.peer", rec.label),
                    kind: "peer_close",
                    line: rec.line,
                    iteration: rec.iteration,
                    outcome,
                    started: self.start.elapsed().saturating_sub(started.elapsed()),
                    duration: started.elapsed(),
                    bytes: Some(bytes),
                    detail,
                    local: None,
                    value: None,
                });
            }
            if let Some((l, r)) = tuple {
                self.settle(l, r, &client_ns, server_ns.as_deref(), c.settle.0)?;
            }
        }
        Ok(extra)
    }

    /// Wait (bounded) until no socket of this 4-tuple is mid-close, in any namespace, so the
    /// next step sees the end state of this close rather than a race with it.
    /// Waits until neither side of the 4-tuple `a` -> `b` is mid-close: the client's socket
    /// looked up in the client's namespace, the server's (`b` -> `a`) in the server's.
    fn settle(
        &self,
        a: SocketAddr,
        b: SocketAddr,
        client_ns: &str,
        server_ns: Option<&str>,
        limit: Duration,
    ) -> Result<(), EngineError> {
        let deadline = Instant::now() + limit;
        let mid_close = |row: Option<SocketRow>| {
            row.is_some_and(|r| {
                matches!(
                    r.state,
                    TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
                )
            })
        };
        loop {
            // Exact 4-tuple lookups, one per side: no table walk per close (a dump walks the
            // whole established hash of the namespace).
            let mut busy = match self.diag.get(client_ns) {
                Some(d) => mid_close(d.lookup(a, b)?),
                None => false,
            };
            if let Some(d) = server_ns.and_then(|ns| self.diag.get(ns)) {
                busy |= mid_close(d.lookup(b, a)?);
            }
            if !busy || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// One stray segment into the connection's 4-tuple, from the namespace of side `by`.
    fn inject(&mut self, i: &Inject, rec: &mut StepRecord) -> Result<(), EngineError> {
        let Some(c) = self.conns.get(&i.conn) else {
            rec.outcome = Outcome::Skipped(format!("no connection `{}`", i.conn));
            return Ok(());
        };
        let (Some(local), Some(server_ns)) = (c.local, c.server_ns.clone()) else {
            rec.outcome = Outcome::Skipped(format!(
                "connection `{}` has no 4-tuple to inject into",
                i.conn
            ));
            return Ok(());
        };
        let (ns, src, dst) = match i.by {
            Role::Server => (server_ns, c.remote, local),
            Role::Client => (c.client_ns.clone(), local, c.remote),
        };
        let seen = if i.needs_capture() {
            // The segments sent so far may still wait in a tap's queue: read them all first.
            for t in &self.taps {
                t.sync(TAP_CATCH_UP);
            }
            let packets: Vec<_> = self.taps.iter().flat_map(|t| t.packets()).collect();
            inject::SeenState::from_packets(&packets, src, dst)
        } else {
            inject::SeenState::default()
        };
        let seg = match inject::Segment::resolve(i, &seen) {
            Ok(seg) => seg,
            Err(why) => {
                rec.outcome = Outcome::Skipped(why);
                return Ok(());
            }
        };
        let bytes = inject::segment(src, dst, &i.flags, &seg);
        rec.detail = format!(
            "{:?} {src} -> {dst} seq {} ({}) ack {} ({}) len {}{}{}",
            i.flags,
            seg.seq,
            i.seq,
            seg.ack,
            i.ack,
            seg.payload,
            seg.mss.map(|m| format!(" mss {m}")).unwrap_or_default(),
            seg.timestamps
                .map(|(v, e)| format!(" TS val {v} ecr {e}"))
                .unwrap_or_default()
        );
        rec.bytes = Some(u64::from(seg.payload));
        rec.outcome = self
            .lab
            .ns(&ns)
            .run(move || inject::send(src, dst, &bytes))?
            .into();
        Ok(())
    }

    fn send(&mut self, s: &SendStep, rec: &mut StepRecord) {
        let fd = match self.open_socket(&s.conn, s.by) {
            Ok(fd) => fd,
            Err(why) => {
                rec.outcome = Outcome::Skipped(why);
                return;
            }
        };
        let (outcome, sent) = so::send_all(fd, s.bytes, Instant::now() + Duration::from_secs(5));
        rec.outcome = outcome;
        rec.bytes = Some(sent);
        rec.detail = format!("{} sends {} bytes", s.by.name(), s.bytes);
    }

    /// shutdown(): SHUT_WR sends this side's FIN and it can still read; SHUT_RD sends
    /// nothing.
    fn shutdown(&mut self, s: &Shutdown, rec: &mut StepRecord) {
        let fd = match self.open_socket(&s.conn, s.by) {
            Ok(fd) => fd,
            Err(why) => {
                rec.outcome = Outcome::Skipped(why);
                return;
            }
        };
        rec.outcome = so::shutdown(fd, s.how).into();
        let what = match s.how {
            ShutdownHow::Rd => "receiving side",
            ShutdownHow::Wr => "sending side",
            ShutdownHow::Rdwr => "both sides",
        };
        rec.detail = format!("{} shuts down its {what}", s.by.name());
    }

    fn recv(&mut self, r: &RecvStep, rec: &mut StepRecord) {
        let fd = match self.open_socket(&r.conn, r.by) {
            Ok(fd) => fd,
            Err(why) => {
                rec.outcome = Outcome::Skipped(why);
                return;
            }
        };
        let (end, got) = so::recv_until(fd, Some(r.bytes), Instant::now() + r.timeout.0);
        rec.bytes = Some(got);
        rec.detail = format!("{} reads up to {} bytes", r.by.name(), r.bytes);
        rec.outcome = match end {
            Ok(RecvEnd::Filled) | Ok(RecvEnd::Eof) => Outcome::Ok,
            Err(o) => o,
        };
    }
}
