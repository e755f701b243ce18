//! Link rates, written with a unit.

use serde::Deserialize;

/// A rate in bits per second, written with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl Rate {
    /// The highest rate tbf and netem take: `u32::MAX` bytes per second.
    pub const MAX_BPS: u64 = u32::MAX as u64 * 8;
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let t = text.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a rate: write 10mbit, 512kbit or 1gbit"
            ))
        })?;
        let mult = match unit {
            "bit" => 1,
            "kbit" => 1_000,
            "mbit" => 1_000_000,
            "gbit" => 1_000_000_000,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "`{text}` has no rate unit: write it with bit, kbit, mbit or gbit"
                )));
            }
        };
        if n == 0 {
            return Err(serde::de::Error::custom(
                "a rate of 0 would stop all traffic",
            ));
        }
        match n.checked_mul(mult) {
            Some(bps) if bps <= Rate::MAX_BPS => Ok(Rate(bps)),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is more than a link impairment can express: at most 34gbit (tbf and \
                 netem take the rate as 32-bit bytes per second)"
            ))),
        }
    }
}

impl schemars::JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            // The unit in any case, as `deserialize` lowercases the text.
            "pattern": r"^\s*0*[1-9][0-9]*([kKmMgG])?[bB][iI][tT]\s*$",
            "description": "A link rate in bits per second with its unit: bit, kbit, mbit or gbit; more than 0 and at most 34gbit.",
            "examples": ["10mbit", "512kbit", "1gbit"],
        })
    }
}
