//! A built topology: the case's namespaces, their links and addresses. Dropping it ends the
//! namespace threads; the kernel then frees everything inside.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::topology::Topology;
use crate::vocab::Family;

use super::sysctl::{self, SysctlIssue};

use super::link::{self, LinkError, LinkEvents, Rtnl};
use super::namespace::{Namespace, NetnsError, Starting};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("failed to set up namespace `{ns}`: {source}")]
    Link { ns: String, source: LinkError },
    #[error("failed to set a sysctl of the topology in `{ns}`: {source}")]
    Forwarding { ns: String, source: SysctlIssue },
    #[error(
        "route of `{ns}` via `{via}`: they share no link (topologies loaded from files are checked for this)"
    )]
    NoGateway { ns: String, via: String },
}

pub struct Lab {
    namespaces: Vec<Namespace>,
    pub setup_time: Duration,
}

/// What one namespace's thread does to build its part of the topology, all in one job:
///
/// 1. its prologue (no DAD on interfaces made from now on, `lo` up), after which it publishes
///    its namespace on the gate, so that links may have their peer end put there;
/// 2. the links it is the first end of, each once every link before it exists and its peer's
///    namespace is published, so that links are made in the topology's order as before;
/// 3. once every link exists: its link ends' addresses (and up), the wait until they are
///    operationally up, addresses on `lo`, forwarding, default routes.
///
/// Each namespace does its own at the same time as the others; they meet only at the gate.
#[derive(Default)]
struct Part {
    /// (link number, local name, peer name, peer namespace's index).
    links: Vec<(usize, String, String, usize)>,
    ends: Vec<(String, Vec<(IpAddr, u8)>)>,
    loopback: Vec<Vec<(IpAddr, u8)>>,
    forwarding: bool,
    routes: Vec<IpAddr>,
}

/// Where the namespaces' threads wait for one another while they build.
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    links: usize,
}

struct GateState {
    /// Each namespace's fd, once its prologue is done (opened by its own thread).
    namespaces: Vec<Option<OwnedFd>>,
    /// How many links exist, in the topology's order.
    links: usize,
    /// A namespace's part failed (or its job never ran): the others stop waiting.
    failed: bool,
}

/// A part that stopped because another one failed.
struct Abandoned;

impl Gate {
    fn wait_for<T>(&self, mut ready: impl FnMut(&GateState) -> Option<T>) -> Result<T, Abandoned> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.failed {
                return Err(Abandoned);
            }
            if let Some(t) = ready(&state) {
                return Ok(t);
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn update(&self, f: impl FnOnce(&mut GateState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_all();
    }
}

/// Held by a part's job from when it is made: a part that fails, panics, or is dropped without
/// running (its namespace could not be made) releases every other part from the gate.
struct PartGuard {
    gate: Arc<Gate>,
    succeeded: bool,
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        if !self.succeeded {
            self.gate.update(|s| s.failed = true);
        }
    }
}

impl Part {
    fn run(
        self,
        ns: &str,
        index: usize,
        mut guard: PartGuard,
    ) -> Result<(), Result<LabError, Abandoned>> {
        let gate = guard.gate.clone();
        let link_error = |source| {
            Ok(LabError::Link {
                ns: ns.to_string(),
                source,
            })
        };
        prologue(ns).map_err(Ok)?;
        let own = File::open("/proc/thread-self/ns/net").map_err(|source| {
            Ok(LabError::Netns(NetnsError::OpenFd {
                name: ns.to_string(),
                source,
            }))
        })?;
        gate.update(|s| s.namespaces[index] = Some(OwnedFd::from(own)));
        let mut rtnl = Rtnl::open().map_err(link_error)?;
        for (number, local, peer, peer_ns) in &self.links {
            // The peer's fd stays open while the gate lives, which this job keeps alive.
            let peer_fd = gate
                .wait_for(|s| {
                    let fd = s.namespaces[*peer_ns].as_ref()?;
                    (s.links == *number).then(|| fd.as_raw_fd())
                })
                .map_err(Err)?;
            link::create_veth(&mut rtnl, local, peer, peer_fd).map_err(link_error)?;
            gate.update(|s| s.links += 1);
        }
        gate.wait_for(|s| (s.links == gate.links).then_some(()))
            .map_err(Err)?;
        if !self.ends.is_empty() {
            // Opened before any end is brought up: no carrier change goes unheard.
            let mut events = LinkEvents::open().map_err(link_error)?;
            for (ifname, addrs) in &self.ends {
                link::configure(&mut rtnl, ifname, addrs).map_err(link_error)?;
            }
            for (ifname, _) in &self.ends {
                link::wait_up(&mut rtnl, &mut events, ifname, Duration::from_secs(5))
                    .map_err(link_error)?;
            }
        }
        for addrs in &self.loopback {
            link::configure(&mut rtnl, "lo", addrs).map_err(link_error)?;
        }
        link::wait_addresses_ready(&mut rtnl, Duration::from_secs(5)).map_err(link_error)?;
        if self.forwarding {
            for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
                sysctl::apply(key, "1").map_err(|source| {
                    Ok(LabError::Forwarding {
                        ns: ns.to_string(),
                        source,
                    })
                })?;
            }
        }
        for gateway in &self.routes {
            link::default_route(&mut rtnl, *gateway).map_err(link_error)?;
        }
        guard.succeeded = true;
        Ok(())
    }
}

/// What a namespace's thread does first, before any link exists.
fn prologue(ns: &str) -> Result<(), LabError> {
    // No duplicate address detection on interfaces created from now on: the addresses are
    // ours by construction, and a tentative link-local address holds up neighbour discovery
    // for forwarded IPv6 traffic (seen: the first SYN through a router waited 2 s).
    for key in [
        "net.ipv6.conf.default.accept_dad",
        "net.ipv6.conf.all.accept_dad",
    ] {
        sysctl::apply(key, "0").map_err(|source| LabError::Forwarding {
            ns: ns.to_string(),
            source,
        })?;
    }
    Rtnl::open()
        .and_then(|mut rtnl| link::loopback_up(&mut rtnl))
        .map_err(|source| LabError::Link {
            ns: ns.to_string(),
            source,
        })
}

impl Lab {
    /// Builds the topology: every namespace's thread is started at once (their `unshare`
    /// calls overlap) with its whole part to do, and the parts wait for one another only where
    /// a link needs both its namespaces, or its ends need the link (see `Part`).
    pub fn build(topology: &Topology) -> Result<Lab, LabError> {
        let started = Instant::now();
        let index_of = |ns: &str| {
            topology
                .namespaces
                .iter()
                .position(|n| n == ns)
                .unwrap_or_else(|| panic!("namespace `{ns}` of a link is not in the topology"))
        };
        let mut parts: Vec<Part> = topology
            .namespaces
            .iter()
            .map(|_| Part::default())
            .collect();
        // Checked before anything is built.
        for (ns, via) in &topology.routes {
            for family in [Family::Ipv4, Family::Ipv6] {
                let gw = topology
                    .gateway(ns, via, family)
                    .ok_or_else(|| LabError::NoGateway {
                        ns: ns.clone(),
                        via: via.clone(),
                    })?;
                parts[index_of(ns)].routes.push(gw);
            }
        }
        for (number, l) in topology.links.iter().enumerate() {
            let [a, b] = &l.ends;
            parts[index_of(&a.ns)].links.push((
                number,
                a.ifname.clone(),
                b.ifname.clone(),
                index_of(&b.ns),
            ));
        }
        for end in topology.links.iter().flat_map(|l| l.ends.iter()) {
            parts[index_of(&end.ns)].ends.push((
                end.ifname.clone(),
                vec![
                    (end.ipv4.0.into(), end.ipv4.1),
                    (end.ipv6.0.into(), end.ipv6.1),
                ],
            ));
        }
        for (ns, v4, v6) in &topology.loopback {
            parts[index_of(ns)]
                .loopback
                .push(vec![(v4.0.into(), v4.1), (v6.0.into(), v6.1)]);
        }
        for ns in &topology.forwarding {
            parts[index_of(ns)].forwarding = true;
        }
        let gate = Arc::new(Gate {
            state: Mutex::new(GateState {
                namespaces: topology.namespaces.iter().map(|_| None).collect(),
                links: 0,
                failed: false,
            }),
            changed: Condvar::new(),
            links: topology.links.len(),
        });
        let starting = topology
            .namespaces
            .iter()
            .map(|name| Starting::spawn(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut jobs = Vec::new();
        for (index, (s, part)) in starting.iter().zip(parts).enumerate() {
            let name = topology.namespaces[index].clone();
            let guard = PartGuard {
                gate: gate.clone(),
                succeeded: false,
            };
            // Refused only by a thread that has ended: its `ready` says why, below.
            jobs.push(s.start(move || part.run(&name, index, guard)));
        }
        drop(gate);
        let mut lab = Lab {
            namespaces: Vec::new(),
            setup_time: Duration::ZERO,
        };
        let mut results = Vec::new();
        for (s, job) in starting.into_iter().zip(jobs) {
            // The job's end first: by then the namespace is there too, and this thread is
            // woken once. When the namespace could not be made, `ready` says why.
            let result = job.and_then(|job| job.wait());
            lab.namespaces.push(s.ready()?);
            results.push(result);
        }
        // The first failure in the namespaces' order, not a part that stopped because of it.
        let mut abandoned = None;
        for (result, name) in results.into_iter().zip(&topology.namespaces) {
            match result? {
                Ok(()) => {}
                Err(Ok(e)) => return Err(e),
                Err(Err(Abandoned)) => abandoned = abandoned.or(Some(name)),
            }
        }
        // Not reached: a part is abandoned only once another fails, which says why above.
        if let Some(name) = abandoned {
            return Err(NetnsError::ThreadGone { name: name.clone() }.into());
        }
        lab.setup_time = started.elapsed();
        Ok(lab)
    }

    /// The namespace by name; names were checked against the topology when the case loaded.
    pub fn ns(&self, name: &str) -> &Namespace {
        self.namespaces
            .iter()
            .find(|n| n.name() == name)
            .unwrap_or_else(|| panic!("namespace `{name}` was validated but is not built"))
    }

    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.iter()
    }
}

impl Drop for Lab {
    /// Every namespace's thread is told to end before any is waited for.
    fn drop(&mut self) {
        for ns in &mut self.namespaces {
            ns.hang_up();
        }
    }
}
