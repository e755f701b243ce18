//! Starting programs without handing them any trial's descriptors: every child (nft,
//! iptables, `exec` programs, QEMU) is forked by one spawner process made at start-up. See
//! `server.rs` for why and how.

mod command;
mod server;
mod which;
mod wire;

pub use command::{Child, Command, Output, SpawnError, Stdio, start};
pub use which::{which, which_admin_tool};
pub use wire::Process;
