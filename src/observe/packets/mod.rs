//! The packet tap: AF_PACKET capture on one interface of a namespace (`tap`), the segments it
//! classifies (`packet`), what one tap saw (`capture`), and the mapped ring it reads (`ring`).

mod capture;
mod packet;
mod ring;
mod tap;
#[cfg(test)]
mod tests;

pub use capture::{Capture, PcapRecord, read_pcap};
pub use packet::{Packet, PacketOptions, Timestamps};
pub use tap::{Direction, Frame, PacketTap, TapError, TapOptions, TapWatch};
