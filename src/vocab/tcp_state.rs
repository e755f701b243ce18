//! TCP states as the kernel numbers them (include/net/tcp_states.h) and as `ss` names them.

use std::fmt;

/// Names as the kernel's headers spell them (`TIME_WAIT`, `FIN_WAIT1`), from one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
}

pub const ALL_STATES: [TcpState; 12] = [
    TcpState::Established,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::FinWait1,
    TcpState::FinWait2,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::Listen,
    TcpState::Closing,
    TcpState::NewSynRecv,
];

impl TcpState {
    pub fn from_kernel(v: u8) -> Option<TcpState> {
        ALL_STATES.iter().copied().find(|s| *s as u8 == v)
    }

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Accepts the kernel's names and `ss`'s (TIME-WAIT), in any case.
    pub fn from_name(name: &str) -> Option<TcpState> {
        let norm = name.trim().to_ascii_uppercase().replace('-', "_");
        ALL_STATES.iter().copied().find(|s| s.name() == norm)
    }

    /// States in which a close handshake is still under way.
    pub fn is_closing(self) -> bool {
        matches!(
            self,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_kernels_and_round_trip() {
        let names: Vec<&str> = ALL_STATES.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT1",
                "FIN_WAIT2",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "CLOSING",
                "NEW_SYN_RECV"
            ]
        );
        for s in ALL_STATES {
            assert_eq!(TcpState::from_name(s.name()), Some(s));
        }
    }
}
