//! twlab: an integration-test harness for Linux TCP connection-close behaviour.
//!
//! Each case (a YAML file) runs in fresh network namespaces with real kernel sockets; what the
//! kernel did (syscall results, socket states, MIB counters) is checked against the case's
//! expectations.

pub mod case;
pub mod expect;
pub mod harness;
pub mod host;
pub mod impair;
pub mod init;
pub mod kernel;
pub mod matrix;
pub mod netns;
pub mod observe;
pub mod plan;
pub mod profile;
pub mod runner;
pub mod scenario;
pub mod spawn;
pub mod topology;
pub mod vocab;

pub use harness::Harness;
