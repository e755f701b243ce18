//! The TCP states of conntrack entries.

/// The TCP states conntrack prints (`tcp_conntrack_names` in nf_conntrack_proto_tcp.c): its
/// own names, not the socket's (FIN_WAIT, not FIN_WAIT1; SYN_SENT2 for a simultaneous open).
pub const CONNTRACK_TCP_STATES: &[&str] = &[
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];
