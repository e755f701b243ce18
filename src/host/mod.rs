mod error;
mod guard;
mod journal;
mod keys;
mod lock;
mod netns;
mod recover;
mod signals;

pub use error::HostError;
pub use guard::{
    DEFAULT_LOCK_TIMEOUT, HostChange, HostConfig, HostGuard, SharedGuard, apply, shared,
};
pub use keys::{HOST_SETTABLE, is_host_settable};
pub use recover::recover;
