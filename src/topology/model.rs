//! Topology files (built in, or `namespaces/<name>.yaml` beside the cases): which namespaces a
//! case gets and the veth links between them, with their addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::vocab::Family;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    pub description: String,
    pub namespaces: Vec<Spanned<String>>,
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Namespaces that forward packets between their links (IPv4 and IPv6).
    #[serde(default)]
    pub forwarding: Vec<Spanned<String>>,
    /// Extra addresses on a namespace's `lo` (for traffic the kernel must see as loopback).
    #[serde(default)]
    pub loopback: Vec<LoopbackSpec>,
    /// Default routes: `ns` sends everything off-link through `via`'s address on their shared link.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopbackSpec {
    pub ns: Spanned<String>,
    pub ipv4: Spanned<String>,
    pub ipv6: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub ns: Spanned<String>,
    pub via: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub ends: [EndSpec; 2],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndSpec {
    pub ns: Spanned<String>,
    pub ifname: Spanned<String>,
    pub ipv4: Spanned<String>,
    pub ipv6: Spanned<String>,
}

/// An address pair on a namespace's `lo`: (namespace, IPv4 /prefix, IPv6 /prefix).
pub type LoopbackAddr = (String, (Ipv4Addr, u8), (Ipv6Addr, u8));

/// A loaded, checked topology.
#[derive(Debug, Clone)]
pub struct Topology {
    pub name: String,
    /// Where it came from: the reports say it.
    pub origin: Origin,
    pub description: String,
    pub namespaces: Vec<String>,
    pub links: Vec<Link>,
    pub forwarding: Vec<String>,
    /// Addresses on `lo`: (namespace, IPv4 /prefix, IPv6 /prefix).
    pub loopback: Vec<LoopbackAddr>,
    /// (namespace, gateway namespace) for default routes.
    pub routes: Vec<(String, String)>,
}

/// Where a topology was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Shipped inside twlab (`src/topology/builtin/NAME.yaml`).
    Builtin,
    /// A file of the user's `namespaces/` directory, which adds to the built-in ones or
    /// overrides one of the same name.
    File(std::path::PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Link {
    pub ends: [LinkEnd; 2],
}

#[derive(Debug, Clone)]
pub struct LinkEnd {
    pub ns: String,
    pub ifname: String,
    pub ipv4: (Ipv4Addr, u8),
    pub ipv6: (Ipv6Addr, u8),
}

/// The link that joins `from` and `to`, as (the end in `from`, the end in `to`).
pub fn link_between<'a>(
    links: &'a [Link],
    from: &str,
    to: &str,
) -> Option<(&'a LinkEnd, &'a LinkEnd)> {
    links.iter().find_map(|l| {
        let [a, b] = &l.ends;
        if a.ns == from && b.ns == to {
            Some((a, b))
        } else if b.ns == from && a.ns == to {
            Some((b, a))
        } else {
            None
        }
    })
}

impl Topology {
    pub fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|n| n == ns)
    }

    /// The link that joins `from` and `to`, as (the end in `from`, the end in `to`).
    pub fn link_between(&self, from: &str, to: &str) -> Option<(&LinkEnd, &LinkEnd)> {
        link_between(&self.links, from, to)
    }

    /// The address `via` has on the link it shares with `ns` (a gateway for `ns`).
    pub fn gateway(&self, ns: &str, via: &str, family: Family) -> Option<IpAddr> {
        let (_, end) = self.link_between(ns, via)?;
        Some(match family {
            Family::Ipv4 => IpAddr::V4(end.ipv4.0),
            Family::Ipv6 => IpAddr::V6(end.ipv6.0),
        })
    }

    /// The namespace that has `ip`, on a link or on its `lo`.
    pub fn owner_of(&self, ip: IpAddr) -> Option<&str> {
        let on_link = self
            .links
            .iter()
            .flat_map(|l| l.ends.iter())
            .find(|e| IpAddr::V4(e.ipv4.0) == ip || IpAddr::V6(e.ipv6.0) == ip);
        if let Some(e) = on_link {
            return Some(&e.ns);
        }
        self.loopback
            .iter()
            .find(|(_, v4, v6)| IpAddr::V4(v4.0) == ip || IpAddr::V6(v6.0) == ip)
            .map(|(ns, _, _)| ns.as_str())
    }

    /// The namespace's own address in a family: that of its first link end.
    pub fn address_of(&self, ns: &str, family: Family) -> Option<IpAddr> {
        self.links
            .iter()
            .flat_map(|l| l.ends.iter())
            .find(|e| e.ns == ns)
            .map(|e| match family {
                Family::Ipv4 => IpAddr::V4(e.ipv4.0),
                Family::Ipv6 => IpAddr::V6(e.ipv6.0),
            })
    }
}

/// Traffic must stay inside the harness's namespaces: only RFC 2544 benchmarking space and
/// unique-local IPv6 are allowed, so a case can never aim at a real network.
/// What a step may name as an address: the harness's ranges, and also the namespace's own
/// loopback (127.0.0.0/8, ::1), whose traffic never leaves that namespace, and the v4-mapped
/// forms of both (`::ffff:198.18.0.2`).
pub fn step_address_allowed(addr: IpAddr) -> bool {
    let addr = addr.to_canonical();
    addr.is_loopback() || address_allowed(addr)
}

pub fn address_allowed(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] == 198 && (o[1] == 18 || o[1] == 19)
        }
        IpAddr::V6(a) => a.octets()[0] == 0xfd,
    }
}
