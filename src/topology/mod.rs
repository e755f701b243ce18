//! Topologies: the namespaces and links a case runs in, read from `namespaces/*.yaml`.

mod load;
mod model;

pub use load::{load_topology, topology_dir};
pub use model::{Link, LinkEnd, Topology, address_allowed, step_address_allowed};
