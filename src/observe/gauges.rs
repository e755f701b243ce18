//! A namespace's gauges read again and again during a workload: sockstat's TCP line (sockets
//! in use, TIME_WAIT), its MIB counters, its conntrack count and statistics.
//!
//! A /proc/net file is bound to the namespace of the thread that opened it, so the files are
//! opened once on the namespace's own thread and then re-read (pread at offset 0) from the
//! sampling thread, which never enters the namespace.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::Counters;
use super::conntrack::parse_stats;

pub struct NsGauges {
    sockstat: File,
    netstat: File,
    snmp: File,
    conntrack: Option<(File, File)>,
    buf: Vec<u8>,
}

/// One reading of a namespace's gauges.
#[derive(Debug, Clone, Default)]
pub struct GaugeReading {
    /// TCP sockets of the namespace, both families, not counting TIME_WAIT (sockstat `inuse`
    /// of TCP and TCP6).
    pub tcp_inuse: u64,
    /// TIME_WAIT sockets of the namespace, both families (sockstat `tw`: the namespace's
    /// death row).
    pub time_wait: u64,
    pub counters: Counters,
    pub conntrack_entries: Option<u64>,
    pub conntrack_drop: Option<u64>,
}

impl NsGauges {
    /// Opens the files; call on the namespace's thread. `conntrack`: the namespace tracks
    /// connections, so its conntrack files exist.
    pub fn open(conntrack: bool) -> io::Result<NsGauges> {
        let open = |f: &str| File::open(format!("/proc/thread-self/net/{f}"));
        let conntrack = if conntrack {
            Some((
                File::open("/proc/sys/net/netfilter/nf_conntrack_count")?,
                open("stat/nf_conntrack")?,
            ))
        } else {
            None
        };
        Ok(NsGauges {
            sockstat: open("sockstat")?,
            netstat: open("netstat")?,
            snmp: open("snmp")?,
            conntrack,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    pub fn read(&mut self) -> io::Result<GaugeReading> {
        let sockstat = reread(&self.sockstat, &mut self.buf)?;
        let (tcp_inuse, time_wait) = parse_sockstat(&sockstat);
        let netstat = reread(&self.netstat, &mut self.buf)?;
        let snmp = reread(&self.snmp, &mut self.buf)?;
        let counters = Counters::parse(&[&netstat, &snmp]);
        let (conntrack_entries, conntrack_drop) = match &self.conntrack {
            Some((count, stat)) => {
                let n = reread(count, &mut self.buf)?.trim().parse().ok();
                let drop = parse_stats(&reread(stat, &mut self.buf)?)
                    .get("drop")
                    .copied();
                (n, drop)
            }
            None => (None, None),
        };
        Ok(GaugeReading {
            tcp_inuse,
            time_wait,
            counters,
            conntrack_entries,
            conntrack_drop,
        })
    }
}

fn reread(file: &File, buf: &mut Vec<u8>) -> io::Result<String> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = file.read_at(&mut chunk, buf.len() as u64)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(buf).into_owned())
}

/// `TCP: inuse 3 orphan 0 tw 7 alloc 9 mem 1` and `TCP6: inuse 2`: (inuse of both, tw).
/// `orphan`, `alloc` and `mem` are host-wide, so they are not a namespace's.
fn parse_sockstat(text: &str) -> (u64, u64) {
    let field = |line: &str, name: &str| -> u64 {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == name {
                return words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
        0
    };
    let (mut inuse, mut tw) = (0, 0);
    for line in text.lines() {
        if line.starts_with("TCP:") {
            inuse += field(line, "inuse");
            tw = field(line, "tw");
        } else if line.starts_with("TCP6:") {
            inuse += field(line, "inuse");
        }
    }
    (inuse, tw)
}

/// The object size of a slab cache (`tw_sock_TCP`, `tw_sock_TCPv6`) from /proc/slabinfo, the
/// bytes the kernel allocates per object; `None` where the file is unreadable or the cache
/// is merged into another under a different name.
pub fn slab_object_size(cache: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(cache)).then(|| w.nth(2)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_lines() {
        let text = "sockets: used 10\nTCP: inuse 3 orphan 1 tw 7 alloc 9 mem 1\nUDP: inuse 0 mem 0\nTCP6: inuse 2\n";
        assert_eq!(parse_sockstat(text), (5, 7));
    }
}
