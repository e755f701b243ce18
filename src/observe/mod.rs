//! What the kernel did: socket states (sock_diag) and MIB counters, per namespace.

mod conntrack;
mod counters;
mod gauges;
mod kernel_log;
mod nflog;
mod packets;
mod pcap;
mod sockets;
mod state_log;
mod tcp_info;

pub use crate::kernel::kernel_release;
pub use crate::vocab::{ALL_STATES, TcpKind, TcpState};
pub use conntrack::{ConntrackError, ConntrackTable, read_stats as read_conntrack_stats};
pub use counters::{CounterError, Counters};
pub use gauges::{GaugeReading, NsGauges, slab_object_size};
pub use kernel_log::{KernelLog, KernelLogError};
pub use nflog::{DROP_LOG_GROUP, DropLog, DropLogError, DropLogSocket, LoggedDrop};
pub use packets::{
    Capture, Direction, Frame, Packet, PacketOptions, PacketTap, PcapRecord, TapError, TapOptions,
    TapWatch, Timestamps, read_pcap,
};
pub use sockets::{SockDiag, SockDiagError, SocketRow};
pub use state_log::{
    MAX_TRACKED, StateChange, StateLog, StateLogError, StateLogSide, StateOutcome,
};
pub use tcp_info::TcpInfo;
