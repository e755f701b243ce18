//! Facts about the running kernel that need no privileges and no namespace: its release, and
//! the scope of its sysctls. Depends on nothing else in the crate.

mod release;
pub mod sysctl;

pub use release::kernel_release;
