//! Network namespaces owned by file descriptors, one executor thread each, and what is set up
//! inside them: veth links, addresses, sysctls.

mod lab;
pub mod link;
mod namespace;
mod rtnl;
pub mod sysctl;

pub use lab::{Lab, LabError};
pub use namespace::{Namespace, NetnsError, Pending};
