//! The numbers of an `inject` step: sequence and acknowledgment numbers and timestamps, given
//! as they are (`seq: 1000`) or relative to what the capture saw of the connection
//! (`seq: "rcv_nxt-1"`, `ack: snd_nxt`, `tsval: "own+10"`, `tsecr: peer`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

/// Where a relative sequence or acknowledgment number starts. The segment pretends to come
/// from side `by`; the other side receives it, and both bases are the receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqBase {
    /// The receiver's rcv_nxt: the ack number of the latest segment the receiver sent on the
    /// 4-tuple (the next sequence number it expects from `by`).
    RcvNxt,
    /// The receiver's snd_nxt: the end (seq + payload + SYN + FIN) of the latest segment the
    /// receiver sent (what `by` acknowledges once it has everything).
    SndNxt,
}

/// Where a relative timestamp starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsBase {
    /// The latest TSval `by` itself sent on the 4-tuple.
    Own,
    /// The latest TSval the receiver sent on the 4-tuple (what an echo reply carries).
    Peer,
}

/// A base's name in the case language.
pub trait Base: Copy + fmt::Debug + PartialEq + 'static {
    const NAMES: &'static [(&'static str, Self)];
    /// The name of a number with this base in the case file's JSON Schema.
    const SCHEMA_NAME: &'static str;
    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }
}

impl Base for SeqBase {
    const NAMES: &'static [(&'static str, Self)] =
        &[("rcv_nxt", SeqBase::RcvNxt), ("snd_nxt", SeqBase::SndNxt)];
    const SCHEMA_NAME: &'static str = "SeqNumber";
}

impl Base for TsBase {
    const NAMES: &'static [(&'static str, Self)] = &[("own", TsBase::Own), ("peer", TsBase::Peer)];
    const SCHEMA_NAME: &'static str = "TsNumber";
}

/// A 32-bit number as written (`1000`), or `BASE`, `BASE+N`, `BASE-N` read from the capture
/// when the step runs (modulo 2^32, as sequence numbers and timestamps are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number<B> {
    Absolute(u32),
    Relative { base: B, offset: i64 },
}

pub type SeqNumber = Number<SeqBase>;
pub type TsNumber = Number<TsBase>;

impl<B> Default for Number<B> {
    fn default() -> Self {
        Number::Absolute(0)
    }
}

impl<B: Base> Number<B> {
    pub fn is_relative(&self) -> bool {
        matches!(self, Number::Relative { .. })
    }

    /// The value, given the base's value from the capture.
    pub fn resolve(&self, base: impl FnOnce(B) -> Option<u32>) -> Option<u32> {
        match *self {
            Number::Absolute(v) => Some(v),
            Number::Relative { base: b, offset } => {
                // Modulo 2^32: truncating the offset is the arithmetic meant.
                base(b).map(|v| v.wrapping_add(offset as u32))
            }
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Ok(v) = t.parse::<u32>() {
            return Ok(Number::Absolute(v));
        }
        let names = || {
            B::NAMES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let split = t.find(['+', '-']).unwrap_or(t.len());
        let (name, rest) = t.split_at(split);
        let Some(&(_, base)) = B::NAMES.iter().find(|(n, _)| *n == name.trim()) else {
            return Err(format!(
                "`{text}` is neither a number (0 to 4294967295) nor {}, optionally with +N or -N",
                names()
            ));
        };
        let offset = if rest.is_empty() {
            0
        } else {
            let digits = rest[1..].trim();
            let n: i64 = digits.parse().ok().filter(|n| *n <= i64::from(u32::MAX)).ok_or_else(|| {
                format!("`{digits}` in `{text}` is not an offset: write {}+N or {}-N with N a number", name.trim(), name.trim())
            })?;
            if rest.starts_with('-') { -n } else { n }
        };
        Ok(Number::Relative { base, offset })
    }
}

impl<B: Base> fmt::Display for Number<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Absolute(v) => write!(f, "{v}"),
            Number::Relative { base, offset: 0 } => f.write_str(base.name()),
            Number::Relative { base, offset } if offset < 0 => {
                write!(f, "{}{offset}", base.name())
            }
            Number::Relative { base, offset } => write!(f, "{}+{offset}", base.name()),
        }
    }
}

impl<'de, B: Base> Deserialize<'de> for Number<B> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<B>(std::marker::PhantomData<B>);
        impl<B: Base> Visitor<'_> for V<B> {
            type Value = Number<B>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                let names: Vec<&str> = B::NAMES.iter().map(|(n, _)| *n).collect();
                write!(f, "a number or one of {} (with +N or -N)", names.join(", "))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number<B>, E> {
                u32::try_from(v)
                    .map(Number::Absolute)
                    .map_err(|_| E::custom(format!("{v} does not fit in 32 bits")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number<B>, E> {
                Err(E::custom(format!(
                    "{v} is negative: sequence numbers and timestamps are 0 to 4294967295"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number<B>, E> {
                Number::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<B: Base> schemars::JsonSchema for Number<B> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        B::SCHEMA_NAME.into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = B::NAMES.iter().map(|(n, _)| *n).collect();
        let first = names[0];
        schemars::json_schema!({
            "description": format!(
                "A 32-bit number (0 to 4294967295), or relative to the capture: {} alone or with +N or -N (modulo 2^32).",
                names.join(", ")
            ),
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": u32::MAX},
                {
                    "type": "string",
                    "pattern": format!(
                        r"^\s*([0-9]+|({})\s*([+-]\s*[0-9]+)?)\s*$",
                        names.join("|")
                    ),
                },
            ],
            "examples": [0, first, format!("{first}+1"), format!("{first}-1")],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_and_resolve() {
        assert_eq!(SeqNumber::parse("1000"), Ok(Number::Absolute(1000)));
        let r = SeqNumber::parse("rcv_nxt-1").unwrap();
        assert_eq!(
            r,
            Number::Relative {
                base: SeqBase::RcvNxt,
                offset: -1
            }
        );
        assert_eq!(r.to_string(), "rcv_nxt-1");
        assert_eq!(r.resolve(|_| Some(0)), Some(u32::MAX), "wraps modulo 2^32");
        assert_eq!(r.resolve(|_| None), None);
        assert_eq!(
            SeqNumber::parse(" snd_nxt ").unwrap().to_string(),
            "snd_nxt"
        );
        assert_eq!(
            TsNumber::parse("own+10")
                .unwrap()
                .resolve(|b| (b == TsBase::Own).then_some(5)),
            Some(15)
        );
        assert!(
            SeqNumber::parse("rcv")
                .unwrap_err()
                .contains("rcv_nxt, snd_nxt")
        );
        assert!(
            SeqNumber::parse("rcv_nxt+x")
                .unwrap_err()
                .contains("not an offset")
        );
        assert!(
            TsNumber::parse("rcv_nxt").is_err(),
            "seq bases are not timestamp bases"
        );
    }
}
