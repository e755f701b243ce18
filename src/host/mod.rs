mod active;
mod change;
mod config;
mod error;
mod guard;
mod journal;
mod keys;
mod lock;
mod netns;
mod recover;
mod signals;

pub use change::HostChange;
pub use config::{DEFAULT_LOCK_TIMEOUT, HostConfig};
pub use error::HostError;
pub use guard::{HostGuard, SharedGuard, apply, shared};
pub use keys::{HOST_SETTABLE, is_host_settable};
pub use recover::recover;
