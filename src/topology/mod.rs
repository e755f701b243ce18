//! Topologies: the namespaces and links a case runs in, built in (`builtin.rs`) or read from
//! a `namespaces/*.yaml` beside the cases.

mod builtin;
mod load;
mod model;

pub use builtin::{builtin, builtin_names};
pub use load::{load_topology, parse_topology, topology_dir};
pub use model::{Link, LinkEnd, Origin, Topology, address_allowed, step_address_allowed};
