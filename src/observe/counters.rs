//! MIB counters from a namespace's /proc/net/{netstat,snmp}: the `TcpExt`, `IpExt`, `Tcp`,
//! `Ip`... tables, named `Group.Name` (`TcpExt.TCPTimeWaitOverflow`, `Tcp.OutRsts`).
//! `/proc/self/net` follows the main thread's namespace, so these files are read either on the
//! namespace's own thread (`/proc/thread-self/net`) or, from any thread, through that thread's
//! entry (`/proc/self/task/<tid>/net`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

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
        Self::read_dir("/proc/thread-self/net")
    }

    /// Read the namespace of the thread `tid` of this process, from any thread: no round trip
    /// to the namespace's thread.
    pub fn read_of_thread(tid: libc::pid_t) -> Result<Counters, CounterError> {
        Self::read_dir(&format!("/proc/self/task/{tid}/net"))
    }

    fn read_dir(dir: &str) -> Result<Counters, CounterError> {
        let mut texts = [String::new(), String::new()];
        for (text, name) in texts.iter_mut().zip(["netstat", "snmp"]) {
            let file = format!("{dir}/{name}");
            *text =
                std::fs::read_to_string(&file).map_err(|source| CounterError { file, source })?;
        }
        Ok(Self::parse(&[&texts[0], &texts[1]]))
    }

    /// Counters from the text of netstat and snmp files read elsewhere.
    pub fn parse(texts: &[&str]) -> Counters {
        Counters(parse(texts))
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.get(name).copied()
    }

    /// end - start for every counter present in both. Both maps are walked once side by side
    /// (their keys are sorted) instead of looking each key up.
    pub fn delta(start: &Counters, end: &Counters) -> Counters {
        let mut start = start.0.iter().peekable();
        let mut out = Vec::with_capacity(end.0.len());
        for (key, value) in &end.0 {
            while start.next_if(|(k, _)| *k < key).is_some() {}
            if let Some((_, s)) = start.next_if(|(k, _)| *k == key) {
                out.push((key.clone(), value - s));
            }
        }
        // Sorted already, so collecting only builds the tree.
        Counters(out.into_iter().collect())
    }

    /// Counters that moved, for evidence.
    pub fn nonzero(&self) -> impl Iterator<Item = (&String, &i64)> {
        self.0.iter().filter(|(_, v)| **v != 0)
    }
}

/// Both files' tables as one map. The names are the same in every read on one kernel, so the
/// first read's are kept (`Layout`) and later reads with the same name lines only parse
/// values; building a few hundred keys and sorting them took longer than reading the files.
fn parse(texts: &[&str]) -> BTreeMap<String, i64> {
    static LAYOUT: OnceLock<Option<Layout>> = OnceLock::new();
    if let Some(Some(layout)) = LAYOUT.get()
        && let Some(map) = layout.fill(texts)
    {
        return map;
    }
    let mut entries = Vec::with_capacity(512);
    for text in texts {
        parse_tables(text, &mut entries);
    }
    LAYOUT.get_or_init(|| Layout::of(texts, &entries));
    entries.into_iter().collect()
}

/// The names of one kernel's tables: their lines as read, and a map of every key to clone and
/// fill in.
#[derive(Debug)]
struct Layout {
    name_lines: Vec<String>,
    template: BTreeMap<String, i64>,
    /// For each key in the map's (sorted) order, the index of its value in the files' order.
    order: Vec<usize>,
}

impl Layout {
    /// None when the files hold anything the plain parse treats specially: a value that is not
    /// a number, a name without a value, a name given twice, a line that is not a table's.
    fn of(texts: &[&str], entries: &[(String, i64)]) -> Option<Layout> {
        let mut name_lines = Vec::new();
        let mut count = 0;
        for text in texts {
            let mut lines = text.lines();
            while let Some(names) = lines.next() {
                let values = lines.next()?;
                let (_, n) = names.split_once(':')?;
                let (_, v) = values.split_once(':')?;
                let n = n.split_whitespace().count();
                if n != v.split_whitespace().count() {
                    return None;
                }
                count += n;
                name_lines.push(names.to_string());
            }
        }
        if count != entries.len() {
            return None;
        }
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0));
        if order.windows(2).any(|w| entries[w[0]].0 == entries[w[1]].0) {
            return None;
        }
        let template = entries.iter().map(|(k, _)| (k.clone(), 0)).collect();
        Some(Layout {
            name_lines,
            template,
            order,
        })
    }

    /// The map of these files, if their name lines are the layout's and every value is a
    /// number.
    fn fill(&self, texts: &[&str]) -> Option<BTreeMap<String, i64>> {
        let mut values = Vec::with_capacity(self.order.len());
        let mut expected = self.name_lines.iter();
        for text in texts {
            let mut lines = text.lines();
            while let Some(names) = lines.next() {
                if expected.next().map(String::as_str) != Some(names) {
                    return None;
                }
                let (_, v) = lines.next()?.split_once(':')?;
                for value in v.split_whitespace() {
                    values.push(value.parse::<i64>().ok()?);
                }
            }
        }
        if expected.next().is_some() || values.len() != self.order.len() {
            return None;
        }
        let mut map = self.template.clone();
        for (slot, &i) in map.values_mut().zip(&self.order) {
            *slot = values[i];
        }
        Some(map)
    }
}

/// The files hold pairs of lines: `Group: Name1 Name2 ...` then `Group: v1 v2 ...`.
fn parse_tables(text: &str, out: &mut Vec<(String, i64)>) {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((group, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = value.parse::<i64>() {
                let mut key = String::with_capacity(group.len() + 1 + name.len());
                key.push_str(group);
                key.push('.');
                key.push_str(name);
                out.push((key, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(texts: &[&str]) -> BTreeMap<String, i64> {
        let mut m = Vec::new();
        for t in texts {
            parse_tables(t, &mut m);
        }
        m.into_iter().collect()
    }

    #[test]
    fn a_layout_fills_in_what_the_plain_parse_reads() {
        let first = [
            "TcpExt: TW Abc SyncookiesSent\nTcpExt: 7 1 0\nIpExt: InOctets\nIpExt: 99\n",
            "Tcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n",
        ];
        // `of` wants the entries in the files' order, as the plain parse reads them.
        let mut in_order = Vec::new();
        for t in first {
            parse_tables(t, &mut in_order);
        }
        let layout = Layout::of(&first, &in_order).expect("a layout");
        let later = [
            "TcpExt: TW Abc SyncookiesSent\nTcpExt: 9 2 5\nIpExt: InOctets\nIpExt: 100\n",
            "Tcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n",
        ];
        assert_eq!(layout.fill(&later), Some(plain(&later)));
        assert_eq!(layout.fill(&later).unwrap()["TcpExt.SyncookiesSent"], 5);
        // Other names, a missing table, a value that is no number: the plain parse's turn.
        let renamed = later[0].replace("Abc", "Abd");
        assert_eq!(layout.fill(&[&renamed, later[1]]), None);
        assert_eq!(layout.fill(&later[..1]), None);
        let odd = later[0].replace("9 2 5", "9 x 5");
        assert_eq!(layout.fill(&[&odd, later[1]]), None);
        assert_eq!(parse(&later), plain(&later));
        assert_eq!(parse(&[&odd, later[1]]), plain(&[&odd, later[1]]));
    }

    #[test]
    fn no_layout_for_what_it_cannot_fill() {
        for text in ["A: x x\nA: 1 2\n", "A: x y\nA: 1\n", "A: x\nA: 1\nB: y\n"] {
            let mut e = Vec::new();
            parse_tables(text, &mut e);
            assert!(Layout::of(&[text], &e).is_none(), "{text:?}");
        }
    }

    #[test]
    fn delta_of_the_keys_in_both() {
        let c = |pairs: &[(&str, i64)]| {
            Counters(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        };
        let start = c(&[("A.a", 1), ("A.c", 5), ("B.x", 10)]);
        let end = c(&[("A.a", 4), ("A.b", 2), ("B.x", 7), ("C.y", 1)]);
        assert_eq!(Counters::delta(&start, &end), c(&[("A.a", 3), ("B.x", -3)]));
        assert_eq!(
            Counters::delta(&Counters::default(), &start),
            Counters::default()
        );
    }

    #[test]
    fn parses_paired_lines() {
        let mut m = Vec::new();
        parse_tables(
            "TcpExt: SyncookiesSent TW\nTcpExt: 0 7\nTcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n",
            &mut m,
        );
        let m: BTreeMap<String, i64> = m.into_iter().collect();
        assert_eq!(m["TcpExt.TW"], 7);
        assert_eq!(m["Tcp.MaxConn"], -1);
    }
}
