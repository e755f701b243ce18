//! One trial: one case over one address family, from building its namespaces to verdicts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::case::{Backend, Case, Family, Requirement, SourceError};
use crate::expect::{Check, Observations, Verdict, evaluate};
use crate::host::{self, HostChange};
use crate::impair::conntrack;
use crate::impair::{ImpairError, LinkImpairments, ResolvedBackend, netem_available};
use crate::netns::{Lab, LabError, NetnsError, sysctl};
use crate::observe::{
    Capture, CounterError, Counters, DROP_LOG_GROUP, DropLog, DropLogSocket, KernelLog,
    KernelLogError, LoggedDrop, Packet, PacketTap, SockDiag, StateLog, StateLogError, StateLogSide,
    StateOutcome, TapError, read_conntrack_stats,
};
use crate::plan::{PlanError, PlanStep, compile};
use crate::scenario::{Engine, EngineError, program_installed};

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// A sysctl the kernel refused inside the case's namespace: bad input, shown at its place.
    #[error("{0}")]
    Sysctl(SourceError),
    /// The case needs a kernel part (`feature`) this machine lacks: the trial is ignored.
    #[error("{reason}")]
    Unsupported {
        feature: &'static str,
        reason: String,
    },
    #[error("failed to build the case's namespaces: {0}")]
    Lab(#[from] LabError),
    #[error("failed to set up impairments: {0}")]
    Impair(#[from] ImpairError),
    #[error("failed to capture packets: {0}")]
    Tap(#[from] TapError),
    #[error("the steps cannot run in this trial: {0}")]
    Plan(#[from] PlanError),
    #[error("failed to run the steps: {0}")]
    Engine(#[from] EngineError),
    #[error("failed to read counters: {0}")]
    Counters(#[from] CounterError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    KernelLog(#[from] KernelLogError),
    #[error(transparent)]
    StateLog(#[from] StateLogError),
    #[error("failed to enable conntrack: {0}")]
    Conntrack(String),
    #[error("failed to change a host-global setting: {0}")]
    Host(String),
}

/// The `feature` of an Unsupported error for a case that needs a newer kernel (a sysctl it
/// predates): skipped with the reason, even under TWLAB_STRICT.
pub const KERNEL_TOO_OLD: &str = "kernel";

/// Which side of the host lock a trial holds for its duration.
enum HostLock {
    None,
    Shared(host::SharedGuard),
    Exclusive(host::HostGuard),
}

fn conntrack_stats(
    lab: &Lab,
    namespaces: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, TrialError> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let stats = lab
            .ns(ns)
            .run(read_conntrack_stats)?
            .map_err(|e| TrialError::Conntrack(e.to_string()))?;
        out.insert(ns.clone(), stats);
    }
    Ok(out)
}

#[derive(Debug)]
pub struct TrialReport {
    pub family: Family,
    pub verdicts: Vec<Verdict>,
    pub observations: Observations,
    /// Packets seen on each link (only when an expectation needs them), for a pcap on failure.
    pub captures: Vec<Capture>,
    /// The impairment backend the case ran with (`netem` or `substitute`), if it impairs links.
    pub backend: Option<&'static str>,
    /// Per capture: how long its tap ran before the first step (its packets' `at` minus this
    /// count from the first step).
    pub capture_leads: Vec<Duration>,
    /// Each followed connection's states, `at` counted from the first step (only for the
    /// picture: `Case::picture`).
    pub states: Option<StateOutcome>,
    /// The packets the substitute's rules dropped, by the namespace that dropped them (on
    /// arrival), `at` counted from the first step (only for the picture).
    pub link_drops: Vec<(String, LoggedDrop)>,
    /// Why dropped packets could not be logged, if they could not.
    pub link_drops_unlogged: Option<String>,
}

impl TrialReport {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

/// Packets listed in a report per capture; the pcap written on failure has them all.
const PACKET_LOG_LINES: usize = 40;

/// Every namespace's counters, read from this thread through each namespace's thread's /proc
/// entry: waking each namespace's thread to read them cost more than the reading.
fn read_counters(lab: &Lab) -> Result<BTreeMap<String, Counters>, TrialError> {
    let mut out = BTreeMap::new();
    for ns in lab.namespaces() {
        out.insert(ns.name().to_string(), Counters::read_of_thread(ns.tid())?);
    }
    Ok(out)
}

/// Which impairment backend serves this case here, and why; or why it cannot run here.
fn resolve_backend(case: &Case) -> Result<(ResolvedBackend, String), TrialError> {
    let netem = netem_available();
    let needs_netem = case.requires.contains(&Requirement::Netem)
        || case.backend == Some(Backend::Netem)
        || case.needs_netem_only_features();
    if needs_netem {
        return match netem {
            Ok(()) => Ok((ResolvedBackend::Netem, "the case requires netem".into())),
            Err(why) => Err(TrialError::Unsupported {
                feature: "netem",
                reason: format!(
                    "the case needs netem (requires: [netem], backend: netem, reorder or duplicate): {why}"
                ),
            }),
        };
    }
    Ok(match (case.backend, netem) {
        (Some(Backend::Substitute), _) => (
            ResolvedBackend::Substitute,
            "the case asks for the substitute".into(),
        ),
        (_, Ok(())) => (ResolvedBackend::Netem, "this kernel has sch_netem".into()),
        (_, Err(why)) => (ResolvedBackend::Substitute, why),
    })
}

/// Every program the case's `exec` steps start must be installed; otherwise the case cannot
/// run here, like a case that needs a kernel part this machine lacks.
fn check_programs(case: &Case) -> Result<(), TrialError> {
    let missing: Vec<&str> = case
        .programs()
        .into_iter()
        .filter(|p| !p.contains('{') && !program_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(TrialError::Unsupported {
        feature: "programs",
        reason: format!(
            "the case runs {} which this machine does not have (not in PATH); ci/setup.sh installs the programs the cases use",
            missing
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// A case's world, set up and not yet run: its namespaces with their settings, the host lock,
/// impairments, taps, and the readings taken before the first step.
struct Prepared {
    lab: Lab,
    backend: Option<(ResolvedBackend, String)>,
    host_guard: HostLock,
    host_changes: Vec<String>,
    impairments: Option<LinkImpairments>,
    taps: Vec<PacketTap>,
    wants_packets: bool,
    state_log: Option<StateLog>,
    drop_logs: Vec<(String, DropLog)>,
    drop_logs_missing: Option<String>,
    kernel_log: Option<KernelLog>,
    conntrack_ns: Vec<String>,
    ct_before: BTreeMap<String, BTreeMap<String, u64>>,
    before: BTreeMap<String, Counters>,
}

/// What the steps left and the readings taken after them.
struct Ran {
    steps: Vec<crate::scenario::StepRecord>,
    samples: Vec<crate::scenario::SocketSample>,
    programs: Vec<crate::scenario::ProgramRun>,
    workloads: Vec<crate::scenario::workload::WorkloadRun>,
    captures: Vec<Capture>,
    /// Per capture: how long its tap ran before the first step.
    tap_leads: Vec<Duration>,
    states: Option<StateOutcome>,
    link_drops: Vec<(String, LoggedDrop)>,
    conn_tuples: BTreeMap<String, Vec<(std::net::SocketAddr, std::net::SocketAddr)>>,
    dropped: BTreeMap<String, u64>,
    impairment_log: Vec<String>,
    after: BTreeMap<String, Counters>,
    ct_after: BTreeMap<String, BTreeMap<String, u64>>,
    kernel_log: Vec<String>,
    run: std::time::Duration,
}

/// Workloads run one at a time: each keeps a CPU busy at its rate, and two at once would
/// slow each other's loop and the kernel's softirqs, so that a verdict about connect latency,
/// timeouts or a rate would depend on what ran beside it. Other cases (mostly waiting on
/// kernel timers) still run alongside.
static WORKLOADS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A socket option this kernel predates skips the case, as a too-new sysctl does.
fn too_new_options(case: &Case) -> Result<(), TrialError> {
    let release = crate::kernel::kernel_release();
    let Some(running) = crate::case::KernelVersion::parse(&release) else {
        return Ok(());
    };
    for name in case.steps.iter().flat_map(|s| s.value.option_names()) {
        if let Some(since) = name.since().filter(|since| running < *since) {
            return Err(TrialError::Unsupported {
                feature: KERNEL_TOO_OLD,
                reason: format!(
                    "the case uses the socket option `{}`, which exists from Linux {}.{} on; this kernel is {release}",
                    name.name(),
                    since.0,
                    since.1
                ),
            });
        }
    }
    Ok(())
}

pub fn run_trial(case: &Case, family: Family) -> Result<TrialReport, TrialError> {
    check_programs(case)?;
    let _one_workload = case.has_workload().then(|| {
        WORKLOADS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    });
    let backend = if case.uses_impairments() {
        Some(resolve_backend(case)?)
    } else {
        None
    };
    too_new_options(case)?;
    // Compiled before anything is built: a step that cannot run here stops the trial first.
    let plan = compile(&case.steps, &case.topology, family, &case.vars)?;
    let mut prepared = prepare(case, backend)?;
    let ran = run_steps(case, family, &plan, &mut prepared)?;
    let setup = prepared.lab.setup_time;
    let Prepared {
        lab,
        backend,
        host_guard,
        host_changes,
        wants_packets,
        drop_logs_missing,
        conntrack_ns: _,
        ct_before,
        before,
        ..
    } = prepared;
    teardown(lab, host_guard)?;
    let observations = Observations {
        counters: before
            .iter()
            .filter_map(|(ns, b)| {
                ran.after
                    .get(ns)
                    .map(|a| (ns.clone(), Counters::delta(b, a)))
            })
            .collect(),
        conntrack_stats: stat_deltas(&ct_before, &ran.ct_after),
        packets: packets_by_sender(case, family, &ran.captures, &ran.tap_leads),
        conn_tuples: ran.conn_tuples,
        captured: wants_packets,
        packet_log: ran
            .captures
            .iter()
            .flat_map(|c| {
                c.packets
                    .iter()
                    .take(PACKET_LOG_LINES)
                    .map(move |p| format!("{}: {p}", c.ifname))
            })
            .collect(),
        steps: ran.steps,
        samples: ran.samples,
        dropped: ran.dropped,
        kernel_log: ran.kernel_log,
        host_changes,
        impairments: ran.impairment_log,
        programs: ran.programs,
        workloads: ran.workloads,
        setup,
        run: ran.run,
        platform: super::probe::platform(backend.as_ref().map(|(b, _)| b.name()), family),
    };
    Ok(TrialReport {
        family,
        verdicts: evaluate(&case.expectations, &observations),
        observations,
        captures: ran.captures,
        backend: backend.map(|(b, _)| b.name()),
        capture_leads: ran.tap_leads,
        states: ran.states,
        link_drops: ran.link_drops,
        link_drops_unlogged: drop_logs_missing,
    })
}

/// Builds the case's world, in this order: namespaces, per-namespace sysctls, conntrack,
/// host-global settings last (so they are in force only while the case runs), impairments,
/// taps and the kernel log, then the counters before the first step.
fn prepare(
    case: &Case,
    backend: Option<(ResolvedBackend, String)>,
) -> Result<Prepared, TrialError> {
    let lab = Lab::build(&case.topology)?;
    for s in &case.sysctls {
        let (key, value, except) = (s.key.clone(), s.value.clone(), s.except.clone());
        lab.ns(&s.ns)
            .run(move || {
                // A profile's glob names this namespace's own keys (its interfaces too).
                if crate::profile::glob::is_glob(&key) {
                    sysctl::apply_glob(&key, &value, &except).map(drop)
                } else {
                    sysctl::apply(&key, &value)
                }
            })?
            .map_err(|issue| {
                if let sysctl::SysctlIssue::NewerKernel { .. } = issue {
                    return TrialError::Unsupported {
                        feature: KERNEL_TOO_OLD,
                        reason: format!("the case sets a sysctl this kernel predates: {issue}"),
                    };
                }
                if let Some((file, line)) = &s.from_profile {
                    return TrialError::Sysctl(SourceError {
                        file: file.clone(),
                        line: *line,
                        col: 1,
                        message: format!("in namespace `{}` (from the profile): {issue}", s.ns),
                        source_line: None,
                    });
                }
                let at = match issue {
                    sysctl::SysctlIssue::Rejected { .. }
                    | sysctl::SysctlIssue::NotStored { .. } => s.value_at,
                    _ => s.key_at,
                };
                TrialError::Sysctl(SourceError::at(
                    &case.path,
                    &case.source,
                    at,
                    format!("in namespace `{}`: {issue}", s.ns),
                ))
            })?;
    }
    for c in &case.conntrack {
        let masquerade = c.masquerade.as_ref().map(|m| m.value.clone());
        lab.ns(&c.ns.value)
            .run(move || conntrack::enable(masquerade.as_deref()))?
            .map_err(|e| TrialError::Conntrack(e.to_string()))?;
    }
    let conntrack_ns: Vec<String> = case.conntrack.iter().map(|c| c.ns.value.clone()).collect();
    let ct_before = conntrack_stats(&lab, &conntrack_ns)?;
    // Cases that track connections but change nothing on the host hold the shared side of
    // the same lock.
    let host_guard = if !case.host_sysctls.is_empty() {
        let changes: Vec<HostChange> = case
            .host_sysctls
            .iter()
            .map(|(key, value)| HostChange {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        HostLock::Exclusive(host::apply(&changes).map_err(|e| TrialError::Host(e.to_string()))?)
    } else if !case.conntrack.is_empty() {
        HostLock::Shared(host::shared().map_err(|e| TrialError::Host(e.to_string()))?)
    } else {
        HostLock::None
    };
    let host_changes = match &host_guard {
        HostLock::Exclusive(g) => g.changes(),
        _ => Vec::new(),
    };
    let picture = case.picture && !case.has_workload();
    // The substitute drops packets after the tap saw them arrive: for the picture, each drop
    // rule also logs what it took to an NFLOG group read in every namespace.
    let (mut drop_logs, mut drop_logs_missing) = (Vec::new(), None);
    if picture && matches!(backend, Some((ResolvedBackend::Substitute, _))) {
        for ns in lab.namespaces() {
            match ns.run(DropLogSocket::open)?.and_then(DropLogSocket::start) {
                Ok(log) => drop_logs.push((ns.name().to_string(), log)),
                Err(e) => {
                    drop_logs_missing = Some(e.to_string());
                    drop_logs.clear();
                    break;
                }
            }
        }
    }
    let impairments = match &backend {
        Some((b, why)) => {
            let mut imp = LinkImpairments::new(*b, why);
            if !drop_logs.is_empty() {
                imp.log_drops = Some(DROP_LOG_GROUP);
            }
            for spec in &case.impair {
                imp.apply(&lab, &case.topology, spec)?;
            }
            imp.install_drops(&lab, &case.topology, &case.drops)?;
            Some(imp)
        }
        None => None,
    };
    // Taps on one end of every link, only when an expectation looks at packets.
    let wants_packets = case.injects_from_capture()
        || case
            .expectations
            .iter()
            .any(|e| matches!(e.check, Check::Packets { .. }));
    let mut taps = Vec::new();
    if wants_packets || picture {
        for link in &case.topology.links {
            let ifname = link.ends[0].ifname.clone();
            taps.push(
                lab.ns(&link.ends[0].ns)
                    .run(move || PacketTap::start(&ifname))??,
            );
        }
    }
    let state_log = if picture {
        Some(start_state_log(&lab, &case.topology, &taps)?)
    } else {
        None
    };
    let wants_log = case
        .expectations
        .iter()
        .any(|e| matches!(e.check, Check::KernelLog { .. }));
    let kernel_log = if wants_log {
        Some(KernelLog::start()?)
    } else {
        None
    };
    let before = read_counters(&lab)?;
    Ok(Prepared {
        lab,
        backend,
        host_guard,
        host_changes,
        impairments,
        taps,
        wants_packets,
        state_log,
        drop_logs,
        drop_logs_missing,
        kernel_log,
        conntrack_ns,
        ct_before,
        before,
    })
}

/// Runs the steps, then takes the readings after them: taps and impairments stop even when a
/// step failed (then the failure is returned); background programs run until every
/// observation is made.
fn run_steps(
    case: &Case,
    family: Family,
    plan: &[PlanStep<'_>],
    p: &mut Prepared,
) -> Result<Ran, TrialError> {
    let mut engine = Engine::new(&p.lab, &case.topology)?;
    engine.impairments = p.impairments.take();
    engine.conntrack_ns = p.conntrack_ns.clone();
    engine.nat_in_path = case.conntrack.iter().any(|c| c.masquerade.is_some());
    engine.trial_name = format!("{}::{}", case.id, family.name());
    engine.socket_state_workloads = case
        .expectations
        .iter()
        .filter_map(|e| match &e.check {
            crate::case::Check::WorkloadSeries { label, metric, .. }
                if metric.needs_socket_states() =>
            {
                Some(label.clone())
            }
            _ => None,
        })
        .collect();
    engine.case_dir = case
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    engine.taps = std::mem::take(&mut p.taps);
    let started = Instant::now();
    let ran = engine.run(plan);
    let run = started.elapsed();
    let impairments = engine.impairments.take();
    // How long each tap ran before the first step: its packets' times minus this count from
    // the first step, as step records do.
    let tap_leads: Vec<Duration> = engine
        .taps
        .iter()
        .map(|t| {
            engine
                .started_at()
                .saturating_duration_since(t.clock_start())
        })
        .collect();
    let state_log = p.state_log.take();
    let state_lead = state_log.as_ref().map(|l| {
        engine
            .started_at()
            .saturating_duration_since(l.clock_start())
    });
    let states = state_log.map(StateLog::stop).transpose();
    let link_drops: Vec<(String, LoggedDrop)> = std::mem::take(&mut p.drop_logs)
        .into_iter()
        .flat_map(|(ns, log)| {
            let lead = engine
                .started_at()
                .saturating_duration_since(log.clock_start());
            log.stop().into_iter().map(move |mut d| {
                d.at = d.at.saturating_sub(lead);
                d.packet.at = d.at;
                (ns.clone(), d)
            })
        })
        .collect();
    let captures: Vec<Capture> = std::mem::take(&mut engine.taps)
        .into_iter()
        .map(PacketTap::stop)
        .collect();
    let dropped = match &impairments {
        Some(i) => i.counters(&p.lab),
        None => Ok(BTreeMap::new()),
    };
    let impairment_log = impairments.map(LinkImpairments::finish).unwrap_or_default();
    ran?;
    let dropped = dropped?;
    let states = states?.map(|mut s| {
        let lead = state_lead.unwrap_or_default();
        for c in &mut s.changes {
            c.at = c.at.saturating_sub(lead);
        }
        s
    });
    let end = engine.sample("end")?;
    let after = read_counters(&p.lab)?;
    let ct_after = conntrack_stats(&p.lab, &p.conntrack_ns)?;
    let kernel_log = match p.kernel_log.as_mut() {
        Some(log) => log.read_new()?,
        None => Vec::new(),
    };
    engine.stop_all_programs();
    let programs = std::mem::take(&mut engine.program_runs);
    let mut samples = std::mem::take(&mut engine.samples);
    samples.push(end);
    let steps = std::mem::take(&mut engine.records);
    Ok(Ran {
        steps,
        samples,
        programs,
        workloads: std::mem::take(&mut engine.workloads),
        captures,
        tap_leads,
        states,
        link_drops,
        conn_tuples: std::mem::take(&mut engine.conn_tuples),
        dropped,
        impairment_log,
        after,
        ct_after,
        kernel_log,
        run,
    })
}

/// The poller that follows each tapped connection's state in every namespace (each
/// namespace's sock_diag socket opened on its own thread), for the picture.
fn start_state_log(
    lab: &Lab,
    topology: &crate::topology::Topology,
    taps: &[PacketTap],
) -> Result<StateLog, TrialError> {
    let mut sides = Vec::new();
    for ns in lab.namespaces() {
        let name = ns.name().to_string();
        let mut addrs: Vec<IpAddr> = topology
            .links
            .iter()
            .flat_map(|l| l.ends.iter())
            .filter(|e| e.ns == name)
            .flat_map(|e| [IpAddr::V4(e.ipv4.0), IpAddr::V6(e.ipv6.0)])
            .collect();
        addrs.extend(
            topology
                .loopback
                .iter()
                .filter(|(n, _, _)| *n == name)
                .flat_map(|(_, v4, v6)| [IpAddr::V4(v4.0), IpAddr::V6(v6.0)]),
        );
        let diag = ns.run(SockDiag::open)?.map_err(StateLogError::from)?;
        sides.push(StateLogSide {
            ns: name,
            diag,
            addrs,
        });
    }
    Ok(StateLog::start(
        sides,
        taps.iter().map(PacketTap::watch).collect(),
    )?)
}

/// The end of a case, in this order: the namespaces go first (with their sockets, links and
/// rules), then the host is restored as soon as the case is over (its journal covers a crash
/// before this), which also releases the host lock for the next case.
fn teardown(lab: Lab, host_guard: HostLock) -> Result<(), TrialError> {
    drop(lab);
    match host_guard {
        HostLock::Exclusive(g) => g.restore().map_err(|e| TrialError::Host(e.to_string())),
        HostLock::Shared(g) => {
            drop(g);
            Ok(())
        }
        HostLock::None => Ok(()),
    }
}

/// Per-column changes of conntrack statistics, per namespace.
fn stat_deltas(
    before: &BTreeMap<String, BTreeMap<String, u64>>,
    after: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    before
        .iter()
        .filter_map(|(ns, b)| {
            let a = after.get(ns)?;
            Some((
                ns.clone(),
                a.iter()
                    .map(|(k, v)| (k.clone(), *v as i64 - b.get(k).copied().unwrap_or(0) as i64))
                    .collect(),
            ))
        })
        .collect()
}

/// Packets per sender namespace and kind, each counted on the first link its sender is on
/// (so a packet is counted once even when it crosses several links).
fn packets_by_sender(
    case: &Case,
    family: Family,
    captures: &[Capture],
    leads: &[Duration],
) -> BTreeMap<String, Vec<Packet>> {
    let mut out: BTreeMap<String, Vec<Packet>> = BTreeMap::new();
    for ns in &case.topology.namespaces {
        let Some(addr) = case.topology.address_of(ns, family) else {
            continue;
        };
        let Some(i) = case
            .topology
            .links
            .iter()
            .position(|l| l.ends.iter().any(|e| e.ns == *ns))
        else {
            continue;
        };
        let Some(capture) = captures.get(i) else {
            continue;
        };
        let lead = leads.get(i).copied().unwrap_or_default();
        let sent = out.entry(ns.clone()).or_default();
        for p in capture
            .packets
            .iter()
            .filter(|p| p.src.ip() == addr || same_v4(p.src.ip(), addr))
        {
            let mut p = p.clone();
            p.at = p.at.saturating_sub(lead);
            sent.push(p);
        }
    }
    out
}

fn same_v4(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V6(a), IpAddr::V4(b)) => a.to_ipv4_mapped() == Some(b),
        _ => false,
    }
}
