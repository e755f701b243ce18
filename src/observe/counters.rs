//! MIB counters from a namespace's /proc/thread-self/net/{netstat,snmp}: the `TcpExt`, `IpExt`,
//! `Tcp`, `Ip`... tables, named `Group.Name` (`TcpExt.TCPTimeWaitOverflow`, `Tcp.OutRsts`).
//! `/proc/net` follows the main thread's namespace, so these files must be read on the
//! namespace's own thread.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, i64>);

#[derive(Debug, thiserror::Error)]
#[error("failed to read {file}: {source}")]
pub struct CounterError {
    file: String,
    source: std::io::Error,
}

impl Counters {
    /// Read on the calling thread's namespace.
    pub fn read_current() -> Result<Counters, CounterError> {
        let mut map = BTreeMap::new();
        for file in [
            "/proc/thread-self/net/netstat",
            "/proc/thread-self/net/snmp",
        ] {
            let text = std::fs::read_to_string(file).map_err(|source| CounterError {
                file: file.to_string(),
                source,
            })?;
            parse_tables(&text, &mut map);
        }
        Ok(Counters(map))
    }

    /// Counters from the text of netstat and snmp files read elsewhere.
    pub fn parse(texts: &[&str]) -> Counters {
        let mut map = BTreeMap::new();
        for text in texts {
            parse_tables(text, &mut map);
        }
        Counters(map)
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.get(name).copied()
    }

    /// end - start for every counter present in both.
    pub fn delta(start: &Counters, end: &Counters) -> Counters {
        Counters(
            end.0
                .iter()
                .filter_map(|(k, v)| start.0.get(k).map(|s| (k.clone(), v - s)))
                .collect(),
        )
    }

    /// Counters that moved, for evidence.
    pub fn nonzero(&self) -> impl Iterator<Item = (&String, &i64)> {
        self.0.iter().filter(|(_, v)| **v != 0)
    }
}

/// The files hold pairs of lines: `Group: Name1 Name2 ...` then `Group: v1 v2 ...`.
fn parse_tables(text: &str, out: &mut BTreeMap<String, i64>) {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((group, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = value.parse::<i64>() {
                out.insert(format!("{group}.{name}"), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paired_lines() {
        let mut m = BTreeMap::new();
        parse_tables(
            "TcpExt: SyncookiesSent TW\nTcpExt: 0 7\nTcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n",
            &mut m,
        );
        assert_eq!(m["TcpExt.TW"], 7);
        assert_eq!(m["Tcp.MaxConn"], -1);
    }
}
