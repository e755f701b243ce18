//! One trial: one case over one address family, from building its namespaces to verdicts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::case::{Backend, Case, Family, Requirement, SourceError};
use crate::expect::{Check, Observations, Verdict, evaluate};
use crate::host::{self, HostChange};
use crate::impair::conntrack;
use crate::impair::{ImpairError, LinkImpairments, ResolvedBackend, netem_available};
use crate::netns::{Lab, LabError, NetnsError, sysctl};
use crate::observe::{
    Capture, CounterError, Counters, KernelLog, KernelLogError, PacketTap, TapError,
    read_conntrack_stats,
};
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
    #[error("failed to run the steps: {0}")]
    Engine(#[from] EngineError),
    #[error("failed to read counters: {0}")]
    Counters(#[from] CounterError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    KernelLog(#[from] KernelLogError),
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
}

impl TrialReport {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

/// Packets listed in a report per capture; the pcap written on failure has them all.
const PACKET_LOG_LINES: usize = 40;

fn read_counters(lab: &Lab) -> Result<BTreeMap<String, Counters>, TrialError> {
    let mut out = BTreeMap::new();
    for ns in lab.namespaces() {
        out.insert(ns.name().to_string(), ns.run(Counters::read_current)??);
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

pub fn run_trial(case: &Case, family: Family) -> Result<TrialReport, TrialError> {
    check_programs(case)?;
    let backend = if case.uses_impairments() {
        Some(resolve_backend(case)?)
    } else {
        None
    };
    let lab = Lab::build(&case.topology)?;
    for s in &case.sysctls {
        let (key, value) = (s.key.clone(), s.value.clone());
        lab.ns(&s.ns)
            .run(move || sysctl::apply(&key, &value))?
            .map_err(|issue| {
                if let sysctl::SysctlIssue::NewerKernel { .. } = issue {
                    return TrialError::Unsupported {
                        feature: KERNEL_TOO_OLD,
                        reason: format!("the case sets a sysctl this kernel predates: {issue}"),
                    };
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
    // Host-global settings last, so they are in force only while the case runs; cases that
    // track connections but change nothing on the host hold the shared side of the same lock.
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
    let mut impairments = match &backend {
        Some((b, why)) => {
            let mut imp = LinkImpairments::new(*b, why);
            for spec in &case.impair {
                imp.apply(&lab, &case.topology, spec)?;
            }
            imp.install_drops(&lab, &case.topology, &case.drops)?;
            Some(imp)
        }
        None => None,
    };
    // Taps on one end of every link, only when an expectation looks at packets.
    let wants_packets = case
        .expectations
        .iter()
        .any(|e| matches!(e.check, Check::Packets { .. }));
    let mut taps = Vec::new();
    if wants_packets {
        for link in &case.topology.links {
            let ifname = link.ends[0].ifname.clone();
            taps.push(
                lab.ns(&link.ends[0].ns)
                    .run(move || PacketTap::start(&ifname))??,
            );
        }
    }

    let wants_log = case
        .expectations
        .iter()
        .any(|e| matches!(e.check, Check::KernelLog { .. }));
    let mut kernel_log = if wants_log {
        Some(KernelLog::start()?)
    } else {
        None
    };
    let before = read_counters(&lab)?;
    let mut engine = Engine::new(&lab, &case.topology, family)?;
    engine.impairments = impairments.take();
    engine.conntrack_ns = conntrack_ns.clone();
    engine.nat_in_path = case.conntrack.iter().any(|c| c.masquerade.is_some());
    engine.case_dir = case
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    engine.vars = case.vars.iter().cloned().collect();
    let started = Instant::now();
    let ran = engine.run(&case.steps);
    let run = started.elapsed();
    impairments = engine.impairments.take();
    // Stop taps and delay lines even when a step failed, then report the failure.
    let captures: Vec<Capture> = taps.into_iter().map(PacketTap::stop).collect();
    let dropped = match &impairments {
        Some(i) => i.counters(&lab),
        None => Ok(BTreeMap::new()),
    };
    let impairment_log = impairments.map(LinkImpairments::finish).unwrap_or_default();
    ran?;
    let dropped = dropped?;
    let end = engine.sample("end")?;
    let after = read_counters(&lab)?;
    let ct_after = conntrack_stats(&lab, &conntrack_ns)?;
    let kernel_log = match kernel_log.as_mut() {
        Some(log) => log.read_new()?,
        None => Vec::new(),
    };
    // Background programs run until every observation of the case is made.
    engine.stop_all_programs();
    let programs = std::mem::take(&mut engine.program_runs);
    let mut samples = std::mem::take(&mut engine.samples);
    samples.push(end);
    let steps = std::mem::take(&mut engine.records);
    drop(engine);
    let setup = lab.setup_time;
    drop(lab);
    // Restore the host as soon as the case is over (the journal covers a crash before this).
    match host_guard {
        HostLock::Exclusive(g) => g.restore().map_err(|e| TrialError::Host(e.to_string()))?,
        HostLock::Shared(g) => drop(g),
        HostLock::None => {}
    }
    let conntrack_stats = ct_before
        .iter()
        .filter_map(|(ns, b)| {
            let a = ct_after.get(ns)?;
            Some((
                ns.clone(),
                a.iter()
                    .map(|(k, v)| (k.clone(), *v as i64 - b.get(k).copied().unwrap_or(0) as i64))
                    .collect(),
            ))
        })
        .collect();

    let counters = before
        .iter()
        .filter_map(|(ns, b)| after.get(ns).map(|a| (ns.clone(), Counters::delta(b, a))))
        .collect();
    let observations = Observations {
        steps,
        samples,
        counters,
        packets: packets_by_sender(case, family, &captures),
        captured: wants_packets,
        packet_log: captures
            .iter()
            .flat_map(|c| {
                c.packets
                    .iter()
                    .take(PACKET_LOG_LINES)
                    .map(move |p| format!("{}: {p}", c.ifname))
            })
            .collect(),
        dropped,
        conntrack_stats,
        kernel_log,
        host_changes,
        impairments: impairment_log,
        programs,
        setup,
        run,
        platform: super::probe::platform(backend.as_ref().map(|(b, _)| b.name())),
    };
    Ok(TrialReport {
        family,
        verdicts: evaluate(&case.expectations, &observations),
        observations,
        captures,
        backend: backend.map(|(b, _)| b.name()),
    })
}

/// Packets per sender namespace and kind, each counted on the first link its sender is on
/// (so a packet is counted once even when it crosses several links).
fn packets_by_sender(
    case: &Case,
    family: Family,
    captures: &[Capture],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
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
        let by_kind = out.entry(ns.clone()).or_default();
        for p in capture
            .packets
            .iter()
            .filter(|p| p.src.ip() == addr || same_v4(p.src.ip(), addr))
        {
            *by_kind.entry(p.kind.name().to_string()).or_default() += 1;
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
