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
