//! Comparisons an expectation applies to an observed number: a bare number means "equal",
//! otherwise exactly one of `eq`, `at_least`, `at_most`, `between: [lo, hi]` (inclusive).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq(i64),
    AtLeast(i64),
    AtMost(i64),
    Between(i64, i64),
}

impl Comparison {
    pub fn holds(&self, observed: i64) -> bool {
        match *self {
            Comparison::Eq(v) => observed == v,
            Comparison::AtLeast(v) => observed >= v,
            Comparison::AtMost(v) => observed <= v,
            Comparison::Between(lo, hi) => (lo..=hi).contains(&observed),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Comparison::Eq(v) => write!(f, "= {v}"),
            Comparison::AtLeast(v) => write!(f, ">= {v}"),
            Comparison::AtMost(v) => write!(f, "<= {v}"),
            Comparison::Between(lo, hi) => write!(f, "between {lo} and {hi}"),
        }
    }
}

impl<'de> Deserialize<'de> for Comparison {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ComparisonVisitor;
        impl<'de> Visitor<'de> for ComparisonVisitor {
            type Value = Comparison;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a number, or one of {eq: N}, {at_least: N}, {at_most: N}, {between: [LO, HI]}",
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Comparison::Eq)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Comparison::Eq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let key: String = map.next_key()?.ok_or_else(|| {
                    de::Error::custom("empty comparison: write {at_least: N} or a number")
                })?;
                let out = match key.as_str() {
                    "eq" => Comparison::Eq(map.next_value()?),
                    "at_least" => Comparison::AtLeast(map.next_value()?),
                    "at_most" => Comparison::AtMost(map.next_value()?),
                    "between" => {
                        let [lo, hi]: [i64; 2] = map.next_value()?;
                        if lo > hi {
                            return Err(de::Error::custom(format!(
                                "between [{lo}, {hi}] is empty: the first bound must not exceed the second"
                            )));
                        }
                        Comparison::Between(lo, hi)
                    }
                    other => {
                        return Err(de::Error::unknown_field(
                            other,
                            &["eq", "at_least", "at_most", "between"],
                        ));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a comparison takes one operator; `{extra}` is one too many"
                    )));
                }
                Ok(out)
            }
        }
        deserializer.deserialize_any(ComparisonVisitor)
    }
}

impl schemars::JsonSchema for Comparison {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Comparison".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let int = || schemars::json_schema!({"type": "integer"});
        let one = |key: &str, value: schemars::Schema| {
            schemars::json_schema!({
                "type": "object",
                "properties": {key: value},
                "required": [key],
                "additionalProperties": false,
            })
        };
        let pair = schemars::json_schema!({
            "type": "array",
            "items": {"type": "integer"},
            "minItems": 2,
            "maxItems": 2,
        });
        schemars::json_schema!({
            "description": "A number (equal to it), or exactly one of {eq: N}, {at_least: N}, {at_most: N}, {between: [LO, HI]} (inclusive, LO <= HI).",
            "oneOf": [
                int(),
                one("eq", int()),
                one("at_least", int()),
                one("at_most", int()),
                one("between", pair),
            ],
            "examples": [0, {"at_least": 1}, {"between": [200, 250]}],
        })
    }
}
