//! Socket options as a case writes them: one typed word per option, in the kernel's own units
//! (seconds for the keepalive timers, TCP_LINGER2 and SO_LINGER, milliseconds for
//! TCP_USER_TIMEOUT), applied in the order written.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::when::KernelVersion;
use crate::vocab::{Comparison, PortRange};

/// The options a case can set or read. Names are one table for case files and reports.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::EnumIter,
    strum::EnumMessage,
)]
#[strum(serialize_all = "snake_case")]
pub enum OptionName {
    /// SO_REUSEADDR.
    Reuseaddr,
    /// SO_REUSEPORT.
    Reuseport,
    /// SO_LINGER {1, N}: close() waits up to N seconds; 0 aborts with an RST.
    Linger,
    /// SO_KEEPALIVE.
    Keepalive,
    /// TCP_KEEPIDLE, seconds of idleness before the first probe.
    Keepidle,
    /// TCP_KEEPINTVL, seconds between probes.
    Keepintvl,
    /// TCP_KEEPCNT, probes before the connection is dropped.
    Keepcnt,
    /// TCP_LINGER2, seconds an orphaned FIN_WAIT2 lives (-1: go to CLOSE at once).
    Linger2,
    /// TCP_USER_TIMEOUT, milliseconds data may stay unacknowledged.
    UserTimeout,
    /// TCP_NODELAY.
    Nodelay,
    /// IP_LOCAL_PORT_RANGE (Linux 6.3): this socket's own ephemeral range, within the
    /// namespace's.
    LocalPortRange,
    /// IPV6_V6ONLY.
    V6only,
    /// TCP_FASTOPEN on a listener: the queue of pending Fast Open requests.
    Fastopen,
    /// TCP_FASTOPEN_CONNECT: connect() returns at once, the first write rides on the SYN.
    FastopenConnect,
    /// IP_BIND_ADDRESS_NO_PORT: bind the address now, choose the port at connect().
    BindAddressNoPort,
    /// SO_RCVBUF, bytes (the kernel doubles it).
    Rcvbuf,
    /// SO_SNDBUF, bytes (the kernel doubles it).
    Sndbuf,
}

/// What kind of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Flag,
    Int { min: i64, max: i64 },
    Range,
}

impl OptionName {
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn kind(self) -> ValueKind {
        use OptionName::*;
        let int = |min, max| ValueKind::Int { min, max };
        match self {
            Reuseaddr | Reuseport | Keepalive | Nodelay | V6only | FastopenConnect
            | BindAddressNoPort => ValueKind::Flag,
            Linger => int(0, i64::from(u16::MAX)),
            Keepidle | Keepintvl => int(1, 32767),
            Keepcnt => int(1, 127),
            Linger2 => int(-1, i64::from(i32::MAX)),
            UserTimeout => int(0, i64::from(i32::MAX)),
            Fastopen => int(0, i64::from(i32::MAX)),
            Rcvbuf | Sndbuf => int(0, i64::from(i32::MAX)),
            LocalPortRange => ValueKind::Range,
        }
    }

    /// The first kernel that has the option, for options newer than every kernel twlab
    /// supports: a case that sets one is skipped on older kernels, with this as the reason.
    pub fn since(self) -> Option<KernelVersion> {
        match self {
            OptionName::LocalPortRange => Some(KernelVersion(6, 3, 0)),
            _ => None,
        }
    }

    fn names() -> &'static [&'static str] {
        <Self as strum::VariantNames>::VARIANTS
    }
}

/// A value set or read back: flags are 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum OptionValue {
    Int(i64),
    Range { lo: u16, hi: u16 },
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Int(v) => write!(f, "{v}"),
            OptionValue::Range { lo, hi } => write!(f, "{lo}..{hi}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOption {
    pub name: OptionName,
    pub value: OptionValue,
}

impl fmt::Display for SocketOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name.name(), self.value)
    }
}

/// `options: {reuseport: true, keepidle: 1}`: set in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketOptions(pub Vec<SocketOption>);

impl SocketOptions {
    pub fn names(&self) -> impl Iterator<Item = OptionName> + '_ {
        self.0.iter().map(|o| o.name)
    }
}

impl FromStr for OptionName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <OptionName as strum::IntoEnumIterator>::iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a socket option twlab knows: write one of {}",
                    OptionName::names().join(", ")
                )
            })
    }
}

impl<'de> Deserialize<'de> for OptionName {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// One option's value as written, checked against what the option takes.
struct Written(OptionName);

impl<'de> de::DeserializeSeed<'de> for Written {
    type Value = OptionValue;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<OptionValue, D::Error> {
        let name = self.0;
        match name.kind() {
            ValueKind::Flag => {
                let on = bool::deserialize(d).map_err(|_| {
                    de::Error::custom(format!("`{}` takes true or false", name.name()))
                })?;
                Ok(OptionValue::Int(i64::from(on)))
            }
            ValueKind::Int { min, max } => {
                let v = i64::deserialize(d).map_err(|_| {
                    de::Error::custom(format!(
                        "`{}` takes a whole number from {min} to {max}",
                        name.name()
                    ))
                })?;
                if !(min..=max).contains(&v) {
                    return Err(de::Error::custom(format!(
                        "`{}` takes a whole number from {min} to {max}, not {v}",
                        name.name()
                    )));
                }
                Ok(OptionValue::Int(v))
            }
            ValueKind::Range => {
                let r = PortRange::deserialize(d)?;
                Ok(OptionValue::Range { lo: r.lo, hi: r.hi })
            }
        }
    }
}

impl<'de> Deserialize<'de> for SocketOptions {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SocketOptions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of socket options, such as {reuseport: true, keepidle: 1}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SocketOptions, A::Error> {
                let mut out: Vec<SocketOption> = Vec::new();
                while let Some(name) = map.next_key::<OptionName>()? {
                    if out.iter().any(|o| o.name == name) {
                        return Err(de::Error::custom(format!("`{}` is set twice", name.name())));
                    }
                    let value = map.next_value_seed(Written(name))?;
                    out.push(SocketOption { name, value });
                }
                Ok(SocketOptions(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl OptionName {
    /// The variant's doc comment on one line: what the option is, in the kernel's units.
    fn doc(self) -> String {
        strum::EnumMessage::get_documentation(&self)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The schema of the value the option takes, as `Written` checks it.
    fn value_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = match self.kind() {
            ValueKind::Flag => schemars::json_schema!({"type": "boolean"}),
            ValueKind::Int { min, max } => {
                schemars::json_schema!({"type": "integer", "minimum": min, "maximum": max})
            }
            ValueKind::Range => generator.subschema_for::<PortRange>(),
        };
        let mut doc = self.doc();
        if let Some(v) = self.since() {
            doc.push_str(&format!(
                " Linux {}.{} and later (skipped on older kernels).",
                v.0, v.1
            ));
        }
        if matches!(self.kind(), ValueKind::Range) {
            // A `$ref` takes no sibling keywords in draft 7: wrap it.
            schema = schemars::json_schema!({"allOf": [schema], "description": doc});
        } else {
            schema.insert("description".into(), doc.into());
        }
        schema
    }
}

impl schemars::JsonSchema for OptionName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SocketOptionName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": OptionName::names(),
            "description": "A socket option twlab knows.",
        })
    }
}

impl schemars::JsonSchema for SocketOptions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SocketOptions".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let properties: serde_json::Map<String, serde_json::Value> =
            <OptionName as strum::IntoEnumIterator>::iter()
                .map(|o| (o.name().to_string(), o.value_schema(generator).into()))
                .collect();
        schemars::json_schema!({
            "type": "object",
            "description": "Socket options, set in the order written: flags take true or false, numbers are in the kernel's own units.",
            "properties": properties,
            "additionalProperties": false,
            "examples": [{"reuseport": true, "keepidle": 1}],
        })
    }
}

/// What a `result:` expectation's `value:` wants of the value a step read back: a
/// comparison for numbers and flags, a range for `local_port_range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueWanted {
    Number(Comparison),
    Range(PortRange),
}

impl ValueWanted {
    pub fn holds(&self, v: &OptionValue) -> bool {
        match (self, v) {
            (ValueWanted::Number(c), OptionValue::Int(i)) => c.holds(*i),
            (ValueWanted::Range(r), OptionValue::Range { lo, hi }) => r.lo == *lo && r.hi == *hi,
            _ => false,
        }
    }
}

impl fmt::Display for ValueWanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueWanted::Number(c) => write!(f, "{c}"),
            ValueWanted::Range(r) => write!(f, "= {r}"),
        }
    }
}

impl<'de> Deserialize<'de> for ValueWanted {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ValueWanted;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a comparison such as {at_least: N}, true/false, or a port range such as \"40000..40009\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ValueWanted, E> {
                Ok(ValueWanted::Number(Comparison::Eq(i64::from(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueWanted, E> {
                i64::try_from(v)
                    .map(|v| ValueWanted::Number(Comparison::Eq(v)))
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueWanted, E> {
                Ok(ValueWanted::Number(Comparison::Eq(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueWanted, E> {
                PortRange::parse(v)
                    .map(ValueWanted::Range)
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ValueWanted, A::Error> {
                Comparison::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ValueWanted::Number)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl schemars::JsonSchema for ValueWanted {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValueWanted".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "What the value read back must be: a number or a comparison (true and false are 1 and 0), or a port range for `local_port_range`.",
            "anyOf": [
                {"type": "boolean"},
                generator.subschema_for::<Comparison>(),
                generator.subschema_for::<PortRange>(),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SocketOptions, String> {
        crate::vocab::parse_yaml(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn options_keep_their_order_and_kernel_units() {
        let o =
            parse("{keepidle: 1, reuseport: true, local_port_range: \"40000..40009\"}").unwrap();
        let text: Vec<String> = o.0.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            text,
            ["keepidle=1", "reuseport=1", "local_port_range=40000..40009"]
        );
    }

    #[test]
    fn bad_options_say_what_to_write() {
        assert!(
            parse("{keepalives: true}")
                .unwrap_err()
                .contains("keepalive,")
        );
        assert!(
            parse("{keepidle: 0}")
                .unwrap_err()
                .contains("from 1 to 32767")
        );
        assert!(
            parse("{reuseport: 1}")
                .unwrap_err()
                .contains("true or false")
        );
        let twice = parse("{nodelay: true, nodelay: false}").unwrap_err();
        assert!(
            twice.contains("twice") || twice.contains("duplicate"),
            "{twice}"
        );
        assert!(
            parse("{local_port_range: \"9..1\"}")
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn read_back_values_are_judged_by_their_kind() {
        let r = ValueWanted::Range(PortRange { lo: 1, hi: 2 });
        assert!(r.holds(&OptionValue::Range { lo: 1, hi: 2 }));
        assert!(!r.holds(&OptionValue::Int(1)));
        let n = ValueWanted::Number(Comparison::AtLeast(5));
        assert!(n.holds(&OptionValue::Int(7)) && !n.holds(&OptionValue::Int(4)));
    }
}
