//! What sock_diag says about one TCP socket beyond its state: the pending timer (inet_diag_msg
//! `idiag_timer`), the fields of `struct tcp_info` a case can compare, and the options the
//! handshake negotiated (`tcpi_options`). Each is a word of the case language, named from one
//! table (the variant's name), so an unknown name is refused with the list of valid ones.

use std::fmt;

use strum::VariantArray;

/// The timer inet_diag reports for a socket (`idiag_timer`, set in `inet_sk_diag_fill` and
/// `inet_twsk_diag_fill`), named as `ss -o` prints it (`tmr_name` in iproute2's misc/ss.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "lowercase")]
pub enum TcpTimer {
    /// No timer pending (0).
    Off,
    /// The retransmit timer (1): ICSK_TIME_RETRANS, and also the tail-loss probe and RACK's
    /// reordering timeout, which the kernel reports the same way.
    On,
    /// `sk_timer` (2): keepalive on an established socket, the FIN_WAIT2 timer on an orphan,
    /// the SYN-ACK timer a listener runs for its request sockets.
    Keepalive,
    /// A TIME_WAIT socket's timer (3), `inet_twsk_diag_fill`.
    Timewait,
    /// The zero-window probe timer (4), ICSK_TIME_PROBE0.
    Persist,
}

impl TcpTimer {
    /// The timer for an `idiag_timer` value; None for a value this table does not know.
    pub fn from_kernel(v: u8) -> Option<TcpTimer> {
        TcpTimer::VARIANTS.get(usize::from(v)).copied()
    }

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// `ss`'s names in any case; `time_wait` (the state's spelling) is the same word.
    pub fn from_name(name: &str) -> Result<TcpTimer, String> {
        let norm = name.trim().to_ascii_lowercase().replace(['_', '-'], "");
        TcpTimer::VARIANTS
            .iter()
            .copied()
            .find(|t| t.name() == norm)
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a socket timer: write one of {} (as `ss -o` names them)",
                    names(TcpTimer::VARIANTS.iter().map(|t| t.name()))
                )
            })
    }
}

impl fmt::Display for TcpTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a tcp_info field's raw value reads in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoUnit {
    /// A count or a size, compared as it is.
    Plain,
    /// Microseconds in the struct, written and compared in (rounded) milliseconds.
    Micros,
    /// Milliseconds in the struct.
    Millis,
}

/// The fields of `struct tcp_info` (include/uapi/linux/tcp.h) an `info:` map can compare. A
/// field in microseconds is named `_ms` and compared in milliseconds; `tcpi_state` is the
/// row's `state`, `tcpi_options` is `options:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum TcpInfoField {
    /// Congestion-avoidance state (tcpi_ca_state: 0 open, 1 disorder, 2 CWR, 3 recovery, 4 loss).
    CaState,
    /// Consecutive RTO expiries of the current segment (icsk_retransmits).
    Retransmits,
    /// Unanswered zero-window or keepalive probes (icsk_probes_out).
    Probes,
    /// RTO backoff exponent (icsk_backoff).
    Backoff,
    /// Window scale shifts: ours to the peer's (snd) and the peer's to ours (rcv).
    SndWscale,
    RcvWscale,
    /// The retransmission timeout (icsk_rto), including backoff.
    RtoMs,
    /// The delayed-ACK timeout.
    AtoMs,
    SndMss,
    RcvMss,
    /// Segments sent and not yet acknowledged (packets_out).
    Unacked,
    Sacked,
    /// Segments the kernel considers lost.
    Lost,
    /// Segments retransmitted and still in flight (retrans_out), not the lifetime total.
    Retrans,
    LastDataSentMs,
    LastDataRecvMs,
    LastAckRecvMs,
    Pmtu,
    RcvSsthresh,
    /// Smoothed RTT.
    RttMs,
    RttvarMs,
    SndSsthresh,
    SndCwnd,
    Advmss,
    Reordering,
    /// Segments retransmitted over the connection's life.
    TotalRetrans,
    BytesAcked,
    BytesReceived,
    SegsOut,
    SegsIn,
    NotsentBytes,
    /// The lowest RTT seen: unlike the smoothed RTT, not raised by a slow application answer.
    MinRttMs,
}

impl TcpInfoField {
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn unit(self) -> InfoUnit {
        use TcpInfoField::*;
        match self {
            RtoMs | AtoMs | RttMs | RttvarMs | MinRttMs => InfoUnit::Micros,
            LastDataSentMs | LastDataRecvMs | LastAckRecvMs => InfoUnit::Millis,
            _ => InfoUnit::Plain,
        }
    }

    pub fn from_name(name: &str) -> Result<TcpInfoField, String> {
        TcpInfoField::VARIANTS
            .iter()
            .copied()
            .find(|f| f.name() == name.trim())
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a tcp_info field: write one of {}",
                    names(TcpInfoField::VARIANTS.iter().map(|f| f.name()))
                )
            })
    }
}

impl fmt::Display for TcpInfoField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options the handshake negotiated, the bits of `tcpi_options` (TCPI_OPT_*), in bit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum TcpOption {
    Timestamps,
    Sack,
    Wscale,
    /// ECN negotiated at the handshake.
    Ecn,
    /// A segment with ECT was received.
    EcnSeen,
    /// The SYN-ACK acknowledged data sent or received in the SYN (Fast Open).
    SynData,
    /// Microsecond timestamps (6.7+).
    UsecTs,
    /// A child created from a Fast Open SYN (6.8+).
    TfoChild,
}

impl TcpOption {
    pub fn bit(self) -> u8 {
        let index = TcpOption::VARIANTS
            .iter()
            .position(|o| *o == self)
            .unwrap_or(0);
        1 << index
    }

    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn from_name(name: &str) -> Result<TcpOption, String> {
        TcpOption::VARIANTS
            .iter()
            .copied()
            .find(|o| o.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a negotiated TCP option: write one of {}",
                    names(TcpOption::VARIANTS.iter().map(|o| o.name()))
                )
            })
    }

    /// The options set in a `tcpi_options` byte, in bit order.
    pub fn in_bits(bits: u8) -> impl Iterator<Item = TcpOption> {
        TcpOption::VARIANTS
            .iter()
            .copied()
            .filter(move |o| bits & o.bit() != 0)
    }
}

impl fmt::Display for TcpOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_numbered_as_inet_diag_does() {
        assert_eq!(TcpTimer::from_kernel(0), Some(TcpTimer::Off));
        assert_eq!(TcpTimer::from_kernel(1), Some(TcpTimer::On));
        assert_eq!(TcpTimer::from_kernel(2), Some(TcpTimer::Keepalive));
        assert_eq!(TcpTimer::from_kernel(3), Some(TcpTimer::Timewait));
        assert_eq!(TcpTimer::from_kernel(4), Some(TcpTimer::Persist));
        assert_eq!(TcpTimer::from_kernel(5), None);
    }

    #[test]
    fn timer_names_are_ss_names_and_time_wait_is_one() {
        assert_eq!(TcpTimer::from_name("time_wait"), Ok(TcpTimer::Timewait));
        assert_eq!(TcpTimer::from_name("TIMEWAIT"), Ok(TcpTimer::Timewait));
        assert_eq!(TcpTimer::from_name("on"), Ok(TcpTimer::On));
        let err = TcpTimer::from_name("retransmit").unwrap_err();
        assert!(
            err.contains("off, on, keepalive, timewait, persist"),
            "{err}"
        );
    }

    #[test]
    fn option_bits_are_the_kernels() {
        assert_eq!(TcpOption::Timestamps.bit(), 1);
        assert_eq!(TcpOption::Sack.bit(), 2);
        assert_eq!(TcpOption::Wscale.bit(), 4);
        assert_eq!(TcpOption::Ecn.bit(), 8);
        assert_eq!(TcpOption::EcnSeen.bit(), 16);
        assert_eq!(TcpOption::SynData.bit(), 32);
        assert_eq!(TcpOption::UsecTs.bit(), 64);
        assert_eq!(TcpOption::TfoChild.bit(), 128);
        let set: Vec<_> = TcpOption::in_bits(7).collect();
        assert_eq!(
            set,
            [TcpOption::Timestamps, TcpOption::Sack, TcpOption::Wscale]
        );
    }

    #[test]
    fn field_names_come_from_one_table() {
        assert_eq!(TcpInfoField::from_name("rto_ms"), Ok(TcpInfoField::RtoMs));
        assert_eq!(TcpInfoField::RtoMs.unit(), InfoUnit::Micros);
        let err = TcpInfoField::from_name("rto").unwrap_err();
        assert!(err.contains("rto_ms") && err.contains("unacked"), "{err}");
    }
}
