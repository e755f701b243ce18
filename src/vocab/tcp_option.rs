//! TCP header words: the options a segment carries (`mss`, `wscale`, `sack_ok`, `sack`,
//! `timestamps`, `fastopen`) and flag combinations in tcpdump's letters (`"FP."`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

use super::packet_kind::tcp_flags;

/// A TCP option kind, as cases name it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HeaderOption {
    /// Maximum segment size (kind 2).
    Mss,
    /// Window scale (kind 3).
    Wscale,
    /// SACK permitted (kind 4).
    SackOk,
    /// SACK blocks (kind 5).
    Sack,
    /// Timestamps, TSval and TSecr (kind 8).
    Timestamps,
    /// TCP Fast Open cookie (kind 34, or the experimental 254 with magic 0xF989).
    Fastopen,
}

pub const ALL_OPTIONS: [HeaderOption; 6] = [
    HeaderOption::Mss,
    HeaderOption::Wscale,
    HeaderOption::SackOk,
    HeaderOption::Sack,
    HeaderOption::Timestamps,
    HeaderOption::Fastopen,
];

impl HeaderOption {
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The error lists the names (these are the options a segment's header carries; the
    /// options a connection negotiated, tcp_info's, are `TcpOption`).
    pub fn from_name(name: &str) -> Result<HeaderOption, String> {
        let n = name.trim().to_ascii_lowercase();
        ALL_OPTIONS
            .into_iter()
            .find(|o| o.name() == n)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL_OPTIONS.iter().map(|o| o.name()).collect();
                format!(
                    "`{name}` is not a TCP header option: write one of {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for HeaderOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of option kinds (which a segment carries, or which a check asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct OptionSet(u8);

impl OptionSet {
    pub fn insert(&mut self, o: HeaderOption) {
        self.0 |= o.bit();
    }

    pub fn contains(&self, o: HeaderOption) -> bool {
        self.0 & o.bit() != 0
    }

    /// Every option of `other` is in this set.
    pub fn has_all(&self, other: OptionSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = HeaderOption> + '_ {
        ALL_OPTIONS.into_iter().filter(|o| self.contains(*o))
    }
}

impl FromIterator<HeaderOption> for OptionSet {
    fn from_iter<I: IntoIterator<Item = HeaderOption>>(iter: I) -> Self {
        let mut s = OptionSet::default();
        for o in iter {
            s.insert(o);
        }
        s
    }
}

impl fmt::Display for OptionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(HeaderOption::name).collect();
        f.write_str(&names.join(","))
    }
}

/// An exact combination of TCP flags, written in tcpdump's letters in any order: S (SYN),
/// F (FIN), R (RST), P (PSH), U (URG), E (ECE), W (CWR) and `.` (ACK); `"S."` is a SYN-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlagSet(pub u8);

/// The letters in the order tcpdump prints them.
const LETTERS: [(u8, char); 8] = [
    (tcp_flags::SYN, 'S'),
    (tcp_flags::FIN, 'F'),
    (tcp_flags::RST, 'R'),
    (tcp_flags::PSH, 'P'),
    (tcp_flags::URG, 'U'),
    (tcp_flags::ECE, 'E'),
    (tcp_flags::CWR, 'W'),
    (tcp_flags::ACK, '.'),
];

impl FlagSet {
    /// The error says which letter is not a flag, or which one is repeated.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bits = 0u8;
        if text.trim().is_empty() {
            return Err("an empty flag set: write tcpdump's letters, such as \"S.\" or \"FP.\" (S F R P U E W, `.` for ACK)".into());
        }
        for c in text.trim().chars() {
            let Some((bit, _)) = LETTERS.iter().find(|(_, l)| *l == c.to_ascii_uppercase()) else {
                return Err(format!(
                    "`{c}` in \"{text}\" is not a TCP flag letter: write S F R P U E W, and `.` for ACK (as tcpdump prints them)"
                ));
            };
            if bits & bit != 0 {
                return Err(format!("`{c}` appears twice in \"{text}\""));
            }
            bits |= bit;
        }
        Ok(FlagSet(bits))
    }
}

impl fmt::Display for FlagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: String = LETTERS
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        f.write_str(if s.is_empty() { "none" } else { &s })
    }
}

impl<'de> Deserialize<'de> for FlagSet {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FlagSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("TCP flags in tcpdump's letters, such as \"S.\" or \"FP.\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FlagSet, E> {
                FlagSet::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl schemars::JsonSchema for FlagSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FlagSet".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let letters: String = LETTERS
            .iter()
            .flat_map(|(_, c)| [*c, c.to_ascii_lowercase()])
            .filter(|c| *c != '.')
            .collect();
        schemars::json_schema!({
            "type": "string",
            "pattern": format!(r"^\s*[{letters}.]+\s*$"),
            "description": "Exactly these TCP flags, in tcpdump's letters in any order, each once: S (SYN), F (FIN), R (RST), P (PSH), U (URG), E (ECE), W (CWR), `.` (ACK).",
            "examples": ["S.", "F.", "FP.", "R"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_in_any_order_and_print_as_tcpdump() {
        let f = FlagSet::parse(".PF").unwrap();
        assert_eq!(f.0, tcp_flags::FIN | tcp_flags::PSH | tcp_flags::ACK);
        assert_eq!(f.to_string(), "FP.");
        assert_eq!(FlagSet::parse("s.").unwrap().to_string(), "S.");
        assert!(FlagSet::parse("SX").unwrap_err().contains("`X`"));
        assert!(FlagSet::parse("SS").unwrap_err().contains("twice"));
        assert!(FlagSet::parse("").is_err());
    }

    #[test]
    fn option_sets() {
        let s: OptionSet = [HeaderOption::Mss, HeaderOption::Timestamps]
            .into_iter()
            .collect();
        assert!(s.contains(HeaderOption::Mss) && !s.contains(HeaderOption::Sack));
        assert_eq!(s.to_string(), "mss,timestamps");
        let all: OptionSet = ALL_OPTIONS.into_iter().collect();
        assert!(all.has_all(s) && !s.has_all(all));
        assert_eq!(OptionSet::default().to_string(), "none");
    }
}
