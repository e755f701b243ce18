//! A port or an inclusive range of ports, as filters and expectations write them: `8080`,
//! `"40000..40009"` (both ends included).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn one(port: u16) -> Self {
        PortRange { lo: port, hi: port }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// `8080` or `LO..HI`; the error says what is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{s}` is not a port (0 to 65535)"))
        };
        let range = match text.split_once("..") {
            Some((lo, hi)) => PortRange {
                lo: port(lo)?,
                hi: port(hi)?,
            },
            None => PortRange::one(port(text)?),
        };
        if range.lo > range.hi {
            return Err(format!(
                "port range {text} is empty: write the lower port first ({}..{})",
                range.hi, range.lo
            ));
        }
        Ok(range)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}..{}", self.lo, self.hi)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port such as 8080 or a range such as \"40000..40009\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                u16::try_from(v)
                    .map(PortRange::one)
                    .map_err(|_| E::custom(format!("{v} is not a port (0 to 65535)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                Err(E::custom(format!("{v} is not a port (0 to 65535)")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                PortRange::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A port as `u16::from_str` reads it (an optional `+`, leading zeros), 0 to 65535.
const PORT_PATTERN: &str =
    r"\+?0*([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

impl schemars::JsonSchema for PortRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRange".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let p = PORT_PATTERN;
        schemars::json_schema!({
            "description": "A port, or an inclusive range of ports `LO..HI` (the lower first).",
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": 65535},
                {"type": "string", "pattern": format!(r"^\s*{p}\s*(\.\.\s*{p}\s*)?$")},
            ],
            "examples": [8080, "40000..40009"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(PortRange::parse("8080"), Ok(PortRange::one(8080)));
        assert_eq!(
            PortRange::parse("40000..40009"),
            Ok(PortRange {
                lo: 40000,
                hi: 40009
            })
        );
        assert!(
            PortRange::parse("40009..40000")
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            PortRange::parse("70000")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(PortRange::one(5).contains(5) && !PortRange::one(5).contains(6));
    }
}
