//! `struct tcp_info` (include/uapi/linux/tcp.h) read from the raw INET_DIAG_INFO attribute by
//! byte offset. The kernel copies as much of the struct as it has (`tcp_diag_get_info`), so
//! an older kernel's is shorter (6.1's ends earlier than 6.18's) and a newer one's longer: a
//! field past the end is None, never a misread, and fields a crate's copy lacks still read.

use strum::VariantArray;

use crate::vocab::{TcpInfoField, TcpOption};

/// Where a field lies in the struct.
#[derive(Clone, Copy)]
enum Layout {
    U8(usize),
    /// `__u8 tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4;` at this byte: the first bit-field is
    /// the low nibble on little-endian ABIs and the high one on big-endian ones.
    FirstNibble(usize),
    SecondNibble(usize),
    U32(usize),
    U64(usize),
}

fn layout(field: TcpInfoField) -> Layout {
    use Layout::*;
    use TcpInfoField::*;
    match field {
        CaState => U8(1),
        Retransmits => U8(2),
        Probes => U8(3),
        Backoff => U8(4),
        // tcpi_options is byte 5.
        SndWscale => FirstNibble(6),
        RcvWscale => SecondNibble(6),
        RtoMs => U32(8),
        AtoMs => U32(12),
        SndMss => U32(16),
        RcvMss => U32(20),
        Unacked => U32(24),
        Sacked => U32(28),
        Lost => U32(32),
        Retrans => U32(36),
        // tcpi_fackets (40) is always 0 since 4.15; tcpi_last_ack_sent (48) was never set.
        LastDataSentMs => U32(44),
        LastDataRecvMs => U32(52),
        LastAckRecvMs => U32(56),
        Pmtu => U32(60),
        RcvSsthresh => U32(64),
        RttMs => U32(68),
        RttvarMs => U32(72),
        SndSsthresh => U32(76),
        SndCwnd => U32(80),
        Advmss => U32(84),
        Reordering => U32(88),
        TotalRetrans => U32(100),
        BytesAcked => U64(120),
        BytesReceived => U64(128),
        SegsOut => U32(136),
        SegsIn => U32(140),
        NotsentBytes => U32(144),
        MinRttMs => U32(148),
    }
}

/// The bytes before the first u32 (state, ca_state, retransmits, probes, backoff, options,
/// the window scales): every kernel with tcp_info has them; a shorter attribute is not one.
const HEADER: usize = 8;
const OPTIONS: usize = 5;

const FIELDS: usize = TcpInfoField::VARIANTS.len();

/// One socket's tcp_info, each field as the kernel reported it (None past the struct's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo {
    values: [Option<u64>; FIELDS],
    /// `tcpi_options`: the TCPI_OPT_* bits.
    options: u8,
}

impl TcpInfo {
    /// The struct from the attribute's bytes; None when it is too short to be one.
    pub fn parse(raw: &[u8]) -> Option<TcpInfo> {
        if raw.len() < HEADER {
            return None;
        }
        let mut values = [None; FIELDS];
        for (slot, field) in values.iter_mut().zip(TcpInfoField::VARIANTS) {
            *slot = read(raw, layout(*field));
        }
        Some(TcpInfo {
            values,
            options: raw[OPTIONS],
        })
    }

    pub fn get(&self, field: TcpInfoField) -> Option<u64> {
        let index = TcpInfoField::VARIANTS.iter().position(|f| *f == field)?;
        self.values[index]
    }

    pub fn has(&self, option: TcpOption) -> bool {
        self.options & option.bit() != 0
    }

    pub fn options(&self) -> impl Iterator<Item = TcpOption> {
        TcpOption::in_bits(self.options)
    }

    /// A tcp_info with these fields set and the others 0, for tests of what reads it.
    pub fn with(fields: &[(TcpInfoField, u64)], options: &[TcpOption]) -> TcpInfo {
        let mut info = TcpInfo {
            values: [Some(0); FIELDS],
            options: options.iter().fold(0, |bits, o| bits | o.bit()),
        };
        for (field, value) in fields {
            if let Some(index) = TcpInfoField::VARIANTS.iter().position(|f| f == field) {
                info.values[index] = Some(*value);
            }
        }
        info
    }
}

fn read(raw: &[u8], at: Layout) -> Option<u64> {
    let little = cfg!(target_endian = "little");
    Some(match at {
        Layout::U8(o) => u64::from(*raw.get(o)?),
        Layout::FirstNibble(o) => {
            let b = *raw.get(o)?;
            u64::from(if little { b & 0x0f } else { b >> 4 })
        }
        Layout::SecondNibble(o) => {
            let b = *raw.get(o)?;
            u64::from(if little { b >> 4 } else { b & 0x0f })
        }
        Layout::U32(o) => u64::from(u32::from_ne_bytes(raw.get(o..o + 4)?.try_into().ok()?)),
        Layout::U64(o) => u64::from_ne_bytes(raw.get(o..o + 8)?.try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tcp_info of `len` bytes with a few fields set at their offsets.
    fn raw(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[2] = 3; // retransmits
        b[4] = 2; // backoff
        b[5] = 1 | 2 | 4; // timestamps, sack, wscale
        b[6] = if cfg!(target_endian = "little") {
            0x7 | (0x9 << 4)
        } else {
            (0x7 << 4) | 0x9
        };
        let put = |b: &mut Vec<u8>, o: usize, v: u32| {
            if o + 4 <= b.len() {
                b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
            }
        };
        put(&mut b, 8, 812_000); // rto
        put(&mut b, 24, 1); // unacked
        put(&mut b, 68, 1_500); // rtt
        put(&mut b, 100, 4); // total_retrans
        put(&mut b, 148, 1_200); // min_rtt
        b
    }

    #[test]
    fn fields_read_at_their_offsets() {
        let info = TcpInfo::parse(&raw(232)).unwrap();
        assert_eq!(info.get(TcpInfoField::Retransmits), Some(3));
        assert_eq!(info.get(TcpInfoField::Backoff), Some(2));
        assert_eq!(info.get(TcpInfoField::SndWscale), Some(7));
        assert_eq!(info.get(TcpInfoField::RcvWscale), Some(9));
        assert_eq!(info.get(TcpInfoField::RtoMs), Some(812_000));
        assert_eq!(info.get(TcpInfoField::Unacked), Some(1));
        assert_eq!(info.get(TcpInfoField::RttMs), Some(1_500));
        assert_eq!(info.get(TcpInfoField::TotalRetrans), Some(4));
        assert_eq!(info.get(TcpInfoField::MinRttMs), Some(1_200));
        assert!(info.has(TcpOption::Sack) && !info.has(TcpOption::Ecn));
        let options: Vec<_> = info.options().collect();
        assert_eq!(
            options,
            [TcpOption::Timestamps, TcpOption::Sack, TcpOption::Wscale]
        );
    }

    #[test]
    fn a_short_struct_lacks_its_tail_and_misreads_nothing() {
        // 104 bytes: tcp_info as it ended before tcpi_pacing_rate (3.15).
        let info = TcpInfo::parse(&raw(104)).unwrap();
        assert_eq!(info.get(TcpInfoField::TotalRetrans), Some(4));
        assert_eq!(info.get(TcpInfoField::MinRttMs), None);
        assert_eq!(info.get(TcpInfoField::BytesAcked), None);
        // A field cut in half is absent too.
        let info = TcpInfo::parse(&raw(150)).unwrap();
        assert_eq!(info.get(TcpInfoField::MinRttMs), None);
        assert_eq!(info.get(TcpInfoField::NotsentBytes), Some(0));
        // Only the header: the u8 fields and the options, nothing else.
        let info = TcpInfo::parse(&raw(8)).unwrap();
        assert_eq!(info.get(TcpInfoField::Retransmits), Some(3));
        assert_eq!(info.get(TcpInfoField::RtoMs), None);
        assert!(info.has(TcpOption::Timestamps));
    }

    #[test]
    fn fewer_bytes_than_the_header_is_no_tcp_info() {
        assert_eq!(TcpInfo::parse(&raw(7)), None);
        assert_eq!(TcpInfo::parse(&[]), None);
    }

    #[test]
    fn a_longer_struct_from_a_newer_kernel_still_reads() {
        let info = TcpInfo::parse(&raw(400)).unwrap();
        assert_eq!(info.get(TcpInfoField::MinRttMs), Some(1_200));
    }
}
