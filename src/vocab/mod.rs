//! The words of the case language and of what the kernel reports, each a type defined once:
//! families and roles, TCP and conntrack states, socket timers, tcp_info fields and TCP
//! options, packet kinds, comparisons, durations, rates, step outcomes, source positions. This module depends on nothing else in the crate, so
//! every other module can use it.

mod compare;
mod conntrack_state;
mod diagnostic;
mod duration;
mod family;
mod outcome;
mod packet_kind;
mod ports;
mod rate;
mod tcp_info;
mod tcp_option;
mod tcp_state;

pub use compare::Comparison;
pub use conntrack_state::CONNTRACK_TCP_STATES;
pub use diagnostic::{CaseErrors, SourceError, panic_message, parse_yaml};
pub use duration::{CaseDuration, DURATION_PATTERN};
pub use family::{Family, Role, SocketFamily};
pub use outcome::{EARLY_EOF, LIMIT, OK, Outcome, TIMEOUT, errno_by_name, is_outcome_name};
pub use packet_kind::{TcpKind, tcp_flags};
pub use ports::PortRange;
pub use rate::Rate;
pub use tcp_info::{InfoUnit, TcpInfoField, TcpOption, TcpTimer};
pub use tcp_option::{ALL_OPTIONS, FlagSet, HeaderOption, OptionSet};
pub use tcp_state::{ALL_STATES, TcpState};
