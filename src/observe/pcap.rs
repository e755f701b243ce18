//! Classic libpcap files (the format every version of Wireshark and tcpdump reads): a 24-byte
//! global header, then per frame a 16-byte record header and the captured bytes. Written
//! little-endian with microsecond timestamps and LINKTYPE_ETHERNET; readers detect the byte
//! order from the magic number.

use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The magic number for microsecond timestamps, as written (little-endian) it is d4 c3 b2 a1.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
pub const LINKTYPE_ETHERNET: u32 = 1;

/// One record of a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Wall-clock time of the frame.
    pub time: SystemTime,
    /// The frame's length on the wire; `data` may be shorter (snap length).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Write the global header and one record per frame.
pub fn write_pcap<'a, W: Write>(
    mut out: W,
    snaplen: u32,
    records: impl IntoIterator<Item = (SystemTime, &'a [u8], usize)>,
) -> io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&PCAP_MAGIC.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes()); // version_major
    header.extend_from_slice(&4u16.to_le_bytes()); // version_minor
    header.extend_from_slice(&0i32.to_le_bytes()); // thiszone: timestamps are UTC
    header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    header.extend_from_slice(&snaplen.max(1).to_le_bytes());
    header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    out.write_all(&header)?;
    for (time, data, orig_len) in records {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let incl = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = &data[..incl as usize];
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(
            &u32::try_from(since.as_secs())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        rec[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        rec[8..12].copy_from_slice(&incl.to_le_bytes());
        let orig = u32::try_from(orig_len).unwrap_or(u32::MAX).max(incl);
        rec[12..16].copy_from_slice(&orig.to_le_bytes());
        out.write_all(&rec)?;
        out.write_all(data)?;
    }
    out.flush()
}

/// Read a classic pcap file of either byte order (microsecond or nanosecond timestamps).
pub fn read_pcap<R: Read>(mut input: R) -> io::Result<Vec<PcapRecord>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut header = [0u8; 24];
    input.read_exact(&mut header)?;
    let magic = [header[0], header[1], header[2], header[3]];
    let (big_endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
        (PCAP_MAGIC, _) => (false, false),
        (_, PCAP_MAGIC) => (true, false),
        (0xa1b2_3c4d, _) => (false, true),
        (_, 0xa1b2_3c4d) => (true, true),
        _ => return Err(bad("not a classic pcap file: unknown magic number")),
    };
    let u32_at = |b: &[u8], i: usize| {
        let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let mut records = Vec::new();
    loop {
        let mut rec = [0u8; 16];
        match input.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(records),
            Err(e) => return Err(e),
        }
        let (secs, frac, incl, orig) = (
            u32_at(&rec, 0),
            u32_at(&rec, 4),
            u32_at(&rec, 8),
            u32_at(&rec, 12),
        );
        if incl > 1 << 24 {
            return Err(bad("pcap record longer than 16 MiB"));
        }
        let mut data = vec![0u8; incl as usize];
        input.read_exact(&mut data)?;
        let sub = if nanos {
            Duration::from_nanos(frac.into())
        } else {
            Duration::from_micros(frac.into())
        };
        records.push(PcapRecord {
            time: UNIX_EPOCH + Duration::from_secs(secs.into()) + sub,
            orig_len: orig,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let frames: Vec<(SystemTime, Vec<u8>, usize)> =
            vec![(t, vec![1, 2, 3], 3), (t, vec![4; 10], 1500)];
        let mut buf = Vec::new();
        write_pcap(
            &mut buf,
            256,
            frames.iter().map(|(t, d, l)| (*t, d.as_slice(), *l)),
        )
        .unwrap();
        assert_eq!(&buf[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(buf.len(), 24 + 16 + 3 + 16 + 10);
        let back = read_pcap(&buf[..]).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, vec![1, 2, 3]);
        assert_eq!(back[1].orig_len, 1500);
        assert_eq!(
            back[0].time,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000)
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(read_pcap(&[0u8; 24][..]).is_err());
        assert!(read_pcap(&[0u8; 3][..]).is_err());
    }
}
