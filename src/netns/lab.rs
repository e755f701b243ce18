//! A built topology: the case's namespaces, their links and addresses. Dropping it ends the
//! namespace threads; the kernel then frees everything inside.

use std::time::{Duration, Instant};

use crate::topology::Topology;
use crate::vocab::Family;

use super::sysctl::{self, SysctlIssue};

use super::link::{self, LinkError};
use super::namespace::{Namespace, NetnsError};

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

impl Lab {
    pub fn build(topology: &Topology) -> Result<Lab, LabError> {
        let started = Instant::now();
        let mut namespaces = Vec::new();
        for name in &topology.namespaces {
            let ns = Namespace::create(name)?;
            // No duplicate address detection on interfaces created from now on: the addresses
            // are ours by construction, and a tentative link-local address holds up neighbour
            // discovery for forwarded IPv6 traffic (seen: the first SYN through a router
            // waited 2 s).
            for key in [
                "net.ipv6.conf.default.accept_dad",
                "net.ipv6.conf.all.accept_dad",
            ] {
                ns.run(move || sysctl::apply(key, "0"))?.map_err(|source| {
                    LabError::Forwarding {
                        ns: name.clone(),
                        source,
                    }
                })?;
            }
            ns.run(link::loopback_up)?
                .map_err(|source| LabError::Link {
                    ns: name.clone(),
                    source,
                })?;
            namespaces.push(ns);
        }
        let lab = Lab {
            namespaces,
            setup_time: Duration::ZERO,
        };
        for l in &topology.links {
            let [a, b] = &l.ends;
            let peer_fd = lab.ns(&b.ns).raw_fd();
            let (local, peer) = (a.ifname.clone(), b.ifname.clone());
            lab.ns(&a.ns)
                .run(move || link::create_veth(&local, &peer, peer_fd))?
                .map_err(|source| LabError::Link {
                    ns: a.ns.clone(),
                    source,
                })?;
            for end in [a, b] {
                let ifname = end.ifname.clone();
                let addrs = vec![
                    (end.ipv4.0.into(), end.ipv4.1),
                    (end.ipv6.0.into(), end.ipv6.1),
                ];
                lab.ns(&end.ns)
                    .run(move || link::configure(&ifname, addrs))?
                    .map_err(|source| LabError::Link {
                        ns: end.ns.clone(),
                        source,
                    })?;
            }
        }
        for end in topology.links.iter().flat_map(|l| l.ends.iter()) {
            let ifname = end.ifname.clone();
            lab.ns(&end.ns)
                .run(move || link::wait_up(&ifname, Duration::from_secs(5)))?
                .map_err(|source| LabError::Link {
                    ns: end.ns.clone(),
                    source,
                })?;
        }
        for (ns, v4, v6) in &topology.loopback {
            let addrs = vec![(v4.0.into(), v4.1), (v6.0.into(), v6.1)];
            lab.ns(ns)
                .run(move || link::configure("lo", addrs))?
                .map_err(|source| LabError::Link {
                    ns: ns.clone(),
                    source,
                })?;
        }
        for ns in &topology.forwarding {
            for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
                lab.ns(ns)
                    .run(move || sysctl::apply(key, "1"))?
                    .map_err(|source| LabError::Forwarding {
                        ns: ns.clone(),
                        source,
                    })?;
            }
        }
        for (ns, via) in &topology.routes {
            for family in [Family::Ipv4, Family::Ipv6] {
                let gw = topology
                    .gateway(ns, via, family)
                    .ok_or_else(|| LabError::NoGateway {
                        ns: ns.clone(),
                        via: via.clone(),
                    })?;
                lab.ns(ns)
                    .run(move || link::default_route(gw))?
                    .map_err(|source| LabError::Link {
                        ns: ns.clone(),
                        source,
                    })?;
            }
        }
        Ok(Lab {
            setup_time: started.elapsed(),
            ..lab
        })
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
