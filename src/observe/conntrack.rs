//! Conntrack in one namespace: its entries (total and TCP entries by state) from
//! /proc/thread-self/net/nf_conntrack, and its statistics (drop, early_drop, insert_failed...)
//! from /proc/thread-self/net/stat/nf_conntrack, one hex row per CPU, summed here. Both files
//! follow the reading thread's namespace, so these run on the namespace's thread.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConntrackTable {
    pub entries: u64,
    /// TCP entries by conntrack state name (TIME_WAIT, ESTABLISHED, SYN_SENT, CLOSE...).
    pub tcp_states: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("failed to read {file}: {source} (is conntrack enabled in this namespace?)")]
pub struct ConntrackError {
    file: &'static str,
    source: std::io::Error,
}

fn read(file: &'static str) -> Result<String, ConntrackError> {
    std::fs::read_to_string(file).map_err(|source| ConntrackError { file, source })
}

impl ConntrackTable {
    pub fn read_current() -> Result<ConntrackTable, ConntrackError> {
        Ok(parse_table(&read("/proc/thread-self/net/nf_conntrack")?))
    }
}

/// Lines look like `ipv4 2 tcp 6 117 TIME_WAIT src=... dst=...`: the TCP state follows the
/// protocol number and the timeout.
fn parse_table(text: &str) -> ConntrackTable {
    let mut t = ConntrackTable::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        t.entries += 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(2) == Some(&"tcp")
            && let Some(state) = words.get(5)
        {
            *t.tcp_states.entry(state.to_string()).or_default() += 1;
        }
    }
    t
}

/// The statistics columns summed over CPUs.
pub fn read_stats() -> Result<BTreeMap<String, u64>, ConntrackError> {
    Ok(parse_stats(&read(
        "/proc/thread-self/net/stat/nf_conntrack",
    )?))
}

pub(super) fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines();
    let names: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mut sums: BTreeMap<String, u64> = names.iter().map(|n| (n.to_string(), 0)).collect();
    for line in lines {
        for (name, value) in names.iter().zip(line.split_whitespace()) {
            // `entries` is the global count repeated on every row, not a per-CPU share.
            let v = u64::from_str_radix(value, 16).unwrap_or(0);
            let sum = sums.entry(name.to_string()).or_default();
            *sum = if *name == "entries" { v } else { *sum + v };
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tcp_states() {
        let t = parse_table(
            "ipv4     2 tcp      6 117 TIME_WAIT src=198.18.1.2 dst=198.18.2.2 sport=1 dport=2 [ASSURED] mark=0 use=1\n\
             ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.2.2 sport=3 dport=2\n\
             ipv6     10 udp      17 29 src=fd00::1 dst=fd00::2 sport=5 dport=6\n",
        );
        assert_eq!(t.entries, 3);
        assert_eq!(t.tcp_states["TIME_WAIT"], 1);
        assert_eq!(t.tcp_states["ESTABLISHED"], 1);
    }

    #[test]
    fn sums_hex_columns_over_cpus() {
        let s = parse_stats(
            "entries  clashres found new invalid ignore delete delete_list insert insert_failed drop early_drop\n\
             00000040  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000005a 00000000\n\
             00000040  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000052 00000000\n",
        );
        assert_eq!(s["drop"], 0x5a + 0x52);
        assert_eq!(s["insert_failed"], 1);
        assert_eq!(s["entries"], 64);
    }
}
