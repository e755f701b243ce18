//! Finding and checking a topology file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::vocab::{CaseErrors, SourceError};

use super::model::{EndSpec, Link, LinkEnd, Origin, Topology, TopologyFile, address_allowed};

/// The `namespaces/` directory that serves a case file: the nearest one in the case's
/// directory or above it, so cases run the same from any working directory.
pub fn topology_dir(case_path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(case_path).ok()?;
    abs.ancestors()
        .skip(1)
        .map(|d| d.join("namespaces"))
        .find(|d| d.is_dir())
}

pub fn load_topology(path: &Path, name: &str) -> Result<Topology, CaseErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        CaseErrors(vec![SourceError::whole_file(
            path,
            format!("failed to read topology file: {e}"),
        )])
    })?;
    parse_topology(path, &source, name, Origin::File(path.to_path_buf()))
}

/// A topology from its text; `path` is what diagnostics name.
pub fn parse_topology(
    path: &Path,
    source: &str,
    name: &str,
    origin: Origin,
) -> Result<Topology, CaseErrors> {
    let source = source.to_string();
    let file: TopologyFile = crate::vocab::parse_yaml(&source)
        .map_err(|e| CaseErrors(vec![SourceError::from_yaml(path, &source, &e)]))?;
    let mut errors = Vec::new();
    let mut namespaces = Vec::new();
    for ns in &file.namespaces {
        if namespaces.contains(&ns.value) {
            errors.push(SourceError::at(
                path,
                &source,
                ns.referenced,
                format!("namespace `{}` is listed twice", ns.value),
            ));
        }
        namespaces.push(ns.value.clone());
    }
    let mut links = Vec::new();
    for link in &file.links {
        let mut ends = Vec::new();
        for end in &link.ends {
            match check_end(path, &source, end, &namespaces) {
                Ok(e) => ends.push(e),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if let Ok(ends) = <[LinkEnd; 2]>::try_from(ends) {
            links.push(Link { ends });
        }
    }
    let mut forwarding = Vec::new();
    for ns in &file.forwarding {
        if !namespaces.contains(&ns.value) {
            errors.push(SourceError::at(
                path,
                &source,
                ns.referenced,
                format!("`{}` is not one of this topology's namespaces", ns.value),
            ));
        }
        forwarding.push(ns.value.clone());
    }
    let mut loopback = Vec::new();
    for lo in &file.loopback {
        let end = EndSpec {
            ns: lo.ns.clone(),
            ifname: serde_saphyr::Spanned::new("lo".to_string(), lo.ns.referenced, lo.ns.defined),
            ipv4: lo.ipv4.clone(),
            ipv6: lo.ipv6.clone(),
        };
        match check_end(path, &source, &end, &namespaces) {
            Ok(e) => loopback.push((e.ns, e.ipv4, e.ipv6)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let mut routes = Vec::new();
    for r in &file.routes {
        let shared = super::model::link_between(&links, &r.ns.value, &r.via.value).is_some();
        if !shared {
            errors.push(SourceError::at(
                path,
                &source,
                r.via.referenced,
                format!(
                    "`{}` shares no link with `{}`, so it cannot be its gateway",
                    r.via.value, r.ns.value
                ),
            ));
        }
        routes.push((r.ns.value.clone(), r.via.value.clone()));
    }
    if errors.is_empty() {
        Ok(Topology {
            name: name.to_string(),
            origin,
            description: file.description.clone(),
            namespaces,
            links,
            forwarding,
            loopback,
            routes,
        })
    } else {
        Err(CaseErrors(errors))
    }
}

fn check_end(
    path: &Path,
    source: &str,
    end: &EndSpec,
    namespaces: &[String],
) -> Result<LinkEnd, Vec<SourceError>> {
    let mut errors = Vec::new();
    if !namespaces.contains(&end.ns.value) {
        errors.push(SourceError::at(
            path,
            source,
            end.ns.referenced,
            format!(
                "`{}` is not one of this topology's namespaces ({})",
                end.ns.value,
                namespaces.join(", ")
            ),
        ));
    }
    let name = &end.ifname.value;
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        errors.push(SourceError::at(
            path,
            source,
            end.ifname.referenced,
            format!(
                "`{name}` is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)"
            ),
        ));
    }
    let v4 = parse_cidr(&end.ipv4.value).and_then(|(a, p)| match a {
        IpAddr::V4(a) if p <= 32 => Ok((a, p)),
        _ => Err("expected an IPv4 address with a prefix length, such as 198.18.0.1/24".into()),
    });
    let v6 = parse_cidr(&end.ipv6.value).and_then(|(a, p)| match a {
        IpAddr::V6(a) if p <= 128 => Ok((a, p)),
        _ => Err("expected an IPv6 address with a prefix length, such as fd00::1/64".into()),
    });
    for (res, spanned) in [
        (v4.as_ref().map(|(a, _)| IpAddr::V4(*a)), &end.ipv4),
        (v6.as_ref().map(|(a, _)| IpAddr::V6(*a)), &end.ipv6),
    ] {
        match res {
            Err(msg) => errors.push(SourceError::at(path, source, spanned.referenced, msg.clone())),
            Ok(addr) if !address_allowed(addr) => errors.push(SourceError::at(
                path,
                source,
                spanned.referenced,
                format!("{addr} is outside the harness's ranges: use 198.18.0.0/15 or fd00::/8 so traffic can never leave the case's namespaces"),
            )),
            Ok(_) => {}
        }
    }
    match (v4, v6) {
        (Ok(ipv4), Ok(ipv6)) if errors.is_empty() => Ok(LinkEnd {
            ns: end.ns.value.clone(),
            ifname: name.clone(),
            ipv4,
            ipv6,
        }),
        _ => Err(errors),
    }
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` has no prefix length (/24, /64)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("`{prefix}` is not a prefix length"))?;
    Ok((addr, prefix))
}
