//! Link impairment: netem over netlink where the kernel has it; otherwise nftables loss, an
//! NFQUEUE delay line and tbf; targeted drops of chosen packets; the nft rules that turn
//! conntrack on in a namespace.

pub mod conntrack;
mod delay_line;
mod link_impairments;
pub(crate) mod nft;
mod offload;
mod probe;
pub mod qdisc;

pub use delay_line::{
    DelayLine, DelayLineError, DelaySpec, DelayStats, Hook, QUEUE_MAXLEN, Scheduling,
};
pub use link_impairments::{ImpairError, LinkImpairments, ResolvedBackend};
pub use nft::NftError;
pub use probe::netem_available;
