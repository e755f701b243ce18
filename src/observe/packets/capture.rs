//! What a tap saw: its packets and frames, counts by kind, the pcap.

use crate::vocab::TcpKind;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::packet::Packet;
use super::tap::{DEFAULT_MAX_FRAMES, DEFAULT_SNAPLEN, Frame};
pub use crate::observe::pcap::{PcapRecord, read_pcap};

/// What a tap saw.
#[derive(Debug, Clone)]
pub struct Capture {
    pub ifname: String,
    /// Wall-clock time the tap started; `at` values count from here.
    pub started: SystemTime,
    pub snaplen: usize,
    pub max_frames: usize,
    /// TCP segments, in the order seen.
    pub packets: Vec<Packet>,
    /// Every frame kept (TCP or not), cut to `snaplen`, in the order seen.
    pub frames: Vec<Frame>,
    /// Frames seen after `max_frames` were kept: not in `frames` nor `packets`.
    pub truncated: u64,
    /// Frames the kernel dropped because the tap's socket buffer was full.
    pub kernel_drops: u64,
    /// Times the interface went down while tapped.
    pub netdown: u64,
    /// Why the reader stopped early, if it did.
    pub error: Option<String>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            ifname: String::new(),
            started: UNIX_EPOCH,
            snaplen: DEFAULT_SNAPLEN,
            max_frames: DEFAULT_MAX_FRAMES,
            packets: Vec::new(),
            frames: Vec::new(),
            truncated: 0,
            kernel_drops: 0,
            netdown: 0,
            error: None,
        }
    }
}

impl Capture {
    /// Packets of `kind` (any kind if `None`) sent from `src_ip` (any source if `None`).
    pub fn count(&self, kind: Option<TcpKind>, src_ip: Option<IpAddr>) -> usize {
        self.select(kind, src_ip).count()
    }

    pub fn select(
        &self,
        kind: Option<TcpKind>,
        src_ip: Option<IpAddr>,
    ) -> impl Iterator<Item = &Packet> {
        self.packets.iter().filter(move |p| {
            kind.is_none_or(|k| p.kind == k) && src_ip.is_none_or(|ip| p.src.ip() == ip)
        })
    }

    /// Frames that were not classified as TCP (ARP, NDP, ICMP...).
    pub fn other_frames(&self) -> usize {
        self.frames.len().saturating_sub(self.packets.len())
    }

    /// Write a classic libpcap file (LINKTYPE_ETHERNET, microsecond timestamps).
    pub fn write_pcap(&self, path: &Path) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        crate::observe::pcap::write_pcap(
            file,
            u32::try_from(self.snaplen).unwrap_or(u32::MAX),
            self.frames
                .iter()
                .map(|f| (self.started + f.at, f.data.as_slice(), f.wire_len)),
        )
    }

    /// Counts per direction (source IP -> destination IP, in order of first appearance), e.g.
    /// `198.18.0.1 -> 198.18.0.2: SYN 1, ACK 3, FIN 1; 198.18.0.2 -> 198.18.0.1: SYN_ACK 1,
    /// ACK 2, FIN 1; 2 other frames`.
    pub fn summary(&self) -> String {
        let mut order: Vec<(IpAddr, IpAddr)> = Vec::new();
        let mut counts: BTreeMap<(IpAddr, IpAddr), BTreeMap<TcpKind, usize>> = BTreeMap::new();
        for p in &self.packets {
            let dir = (p.src.ip(), p.dst.ip());
            if !counts.contains_key(&dir) {
                order.push(dir);
            }
            *counts.entry(dir).or_default().entry(p.kind).or_default() += 1;
        }
        let mut parts: Vec<String> = order
            .iter()
            .map(|dir| {
                let c = &counts[dir];
                let kinds: Vec<String> = TcpKind::SUMMARY_ORDER
                    .iter()
                    .filter_map(|k| c.get(k).map(|n| format!("{k} {n}")))
                    .collect();
                format!("{} -> {}: {}", dir.0, dir.1, kinds.join(", "))
            })
            .collect();
        if parts.is_empty() {
            parts.push(format!("no TCP packets on `{}`", self.ifname));
        }
        let other = self.other_frames();
        if other > 0 {
            parts.push(format!(
                "{other} other frame{}",
                if other == 1 { "" } else { "s" }
            ));
        }
        if self.truncated > 0 {
            parts.push(format!(
                "TRUNCATED: {} more frames not kept (cap {})",
                self.truncated, self.max_frames
            ));
        }
        if self.kernel_drops > 0 {
            parts.push(format!(
                "INCOMPLETE: the kernel dropped {} frames (tap buffer full)",
                self.kernel_drops
            ));
        }
        if self.netdown > 0 {
            parts.push(format!(
                "`{}` went down {} times",
                self.ifname, self.netdown
            ));
        }
        if let Some(e) = &self.error {
            parts.push(format!("INCOMPLETE: the tap stopped early: {e}"));
        }
        parts.join("; ")
    }

    /// One line per TCP packet, for evidence.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for p in &self.packets {
            s.push_str(&p.to_string());
            s.push('\n');
        }
        s
    }
}
