//! Address families and the two sides of a connection.

use serde::Deserialize;

/// Names are one table for the case files (serde) and the reports (strum): `ipv4`, `ipv6`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The family of one socket, where a step chooses it rather than the trial: `mapped` is an
/// IPv6 socket that reaches an IPv4 address through its v4-mapped form (`::ffff:198.18.0.2`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SocketFamily {
    Ipv4,
    Ipv6,
    Mapped,
}

impl SocketFamily {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One side of a connection: the one that called connect() or the one that accepted it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    Client,
    Server,
}

impl Role {
    pub fn other(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
    pub fn name(self) -> &'static str {
        self.into()
    }
}
