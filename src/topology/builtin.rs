//! The topologies shipped inside twlab, so a case in any repository needs no `namespaces/`
//! directory: `pair` (client and server on one veth), `router` (client, router, server, with
//! forwarding and default routes) and `nat` (two clients behind one router). A `namespaces/`
//! directory beside the cases adds topologies, or overrides one of these by name.

use std::path::{Path, PathBuf};

use crate::vocab::CaseErrors;

use super::load::parse_topology;
use super::model::{Origin, Topology};

/// (name, text) of every built-in topology.
const BUILTIN: [(&str, &str); 3] = [
    ("nat", include_str!("builtin/nat.yaml")),
    ("pair", include_str!("builtin/pair.yaml")),
    ("router", include_str!("builtin/router.yaml")),
];

/// The names of the built-in topologies, sorted.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// What diagnostics of a built-in topology name as its file.
fn builtin_path(name: &str) -> PathBuf {
    Path::new("<twlab>/src/topology/builtin").join(format!("{name}.yaml"))
}

/// The built-in topology `name`, if there is one.
pub fn builtin(name: &str) -> Option<Result<Topology, CaseErrors>> {
    let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
    Some(parse_topology(
        &builtin_path(name),
        text,
        name,
        Origin::Builtin,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_topology_loads() {
        for name in builtin_names() {
            let t = builtin(name)
                .expect("listed")
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.name, name);
            assert_eq!(t.origin, Origin::Builtin);
            assert!(!t.links.is_empty(), "{name} has links");
        }
        assert!(builtin("mesh").is_none());
    }
}
