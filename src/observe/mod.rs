//! What the kernel did: socket states (sock_diag) and MIB counters, per namespace.

mod counters;
mod sockets;
mod tcp_state;

pub use counters::{CounterError, Counters};
pub use sockets::{SockDiag, SockDiagError, SocketRow};
pub use tcp_state::{ALL_STATES, TcpState};
