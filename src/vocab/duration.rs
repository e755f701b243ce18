//! Durations written with a unit (`500ms`, `5s`, `2m`). A bare number is refused: in a case
//! about timers, "5" could mean seconds or milliseconds and a wrong guess hides the question.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaseDuration(pub Duration);

impl CaseDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has no unit: write it as 500ms, 5s or 2m"))?;
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` does not start with a number"))?;
        let millis = match unit.trim() {
            "ms" => value,
            "s" => value * 1000.0,
            "m" | "min" => value * 60_000.0,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`: use ms, s or m"
                ));
            }
        };
        if !millis.is_finite() || millis > 24.0 * 3600.0 * 1000.0 {
            return Err(format!("`{text}` is longer than a day"));
        }
        Ok(CaseDuration(Duration::from_micros(
            (millis * 1000.0) as u64,
        )))
    }
}

impl fmt::Display for CaseDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) && ms > 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for CaseDuration {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = CaseDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, such as 500ms, 5s or 2m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                CaseDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit: write it as {v}ms or {v}s"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit: write it as {v}ms or {v}s"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!("`{v}` has no unit: write it as {v}s")))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// The text of a duration, without anchors: a number and one of the units `parse` takes.
/// Shared by the schemas of the types that embed durations (a workload's `window`).
pub const DURATION_PATTERN: &str = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|min)";

impl schemars::JsonSchema for CaseDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": format!(r"^\s*{DURATION_PATTERN}\s*$"),
            "description": "A duration with its unit: ms, s, m (or min); fractions allowed, at most a day. A bare number is refused: in a case about timers it could mean seconds or milliseconds.",
            "examples": ["250ms", "5s", "1.5s", "2m"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(
            CaseDuration::parse("500ms").unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            CaseDuration::parse("1.5s").unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            CaseDuration::parse("2m").unwrap().0,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn refuses_missing_or_unknown_units() {
        assert!(CaseDuration::parse("5").unwrap_err().contains("no unit"));
        assert!(
            CaseDuration::parse("5h")
                .unwrap_err()
                .contains("unknown unit")
        );
    }
}
