//! What a TCP segment is, by its flags and payload.

use std::fmt;

/// What a TCP segment is, judged by its flags and payload, in this order: RST (also RST|ACK),
/// SYN (SYN_ACK when ACK is set too), FIN (also FIN|ACK and FIN with data), DATA (payload),
/// ACK (ACK set, no payload). A segment with no ACK, no SYN/FIN/RST and no payload, which Linux
/// never sends, is counted as DATA ("anything else").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpKind {
    Syn,
    SynAck,
    Fin,
    Rst,
    /// Pure ACK: ACK set, no SYN/FIN/RST, no payload.
    Ack,
    /// Anything else with payload.
    Data,
}

pub const ALL_KINDS: [TcpKind; 6] = [
    TcpKind::Syn,
    TcpKind::SynAck,
    TcpKind::Fin,
    TcpKind::Rst,
    TcpKind::Ack,
    TcpKind::Data,
];

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

impl TcpKind {
    /// The order kinds are listed in summaries: roughly the life of a connection.
    pub const SUMMARY_ORDER: [TcpKind; 6] = [
        TcpKind::Syn,
        TcpKind::SynAck,
        TcpKind::Data,
        TcpKind::Ack,
        TcpKind::Fin,
        TcpKind::Rst,
    ];

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Accepts the names above in any case, with `-` for `_` (SYN-ACK).
    pub fn from_name(name: &str) -> Option<Self> {
        let norm = name.trim().to_ascii_uppercase().replace('-', "_");
        ALL_KINDS.iter().copied().find(|k| k.name() == norm)
    }

    /// Classify raw TCP flags and a payload length.
    pub fn classify(flags: u8, payload_len: usize) -> TcpKind {
        use tcp_flags::*;
        if flags & RST != 0 {
            TcpKind::Rst
        } else if flags & SYN != 0 {
            if flags & ACK != 0 {
                TcpKind::SynAck
            } else {
                TcpKind::Syn
            }
        } else if flags & FIN != 0 {
            TcpKind::Fin
        } else if payload_len == 0 && flags & ACK != 0 {
            TcpKind::Ack
        } else {
            TcpKind::Data
        }
    }
}

impl fmt::Display for TcpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["SYN", "SYN_ACK", "FIN", "RST", "ACK", "DATA"]);
    }

    #[test]
    fn names_round_trip() {
        for k in ALL_KINDS {
            assert_eq!(TcpKind::from_name(k.name()), Some(k));
        }
        assert_eq!(TcpKind::from_name("syn-ack"), Some(TcpKind::SynAck));
        assert_eq!(TcpKind::from_name("PSH"), None);
    }
}
