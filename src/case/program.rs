//! The `exec` step as written: a real program run inside one of the case's namespaces, and
//! the `vars:` its arguments may refer to.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::entries::Entries;
use crate::vocab::CaseDuration;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// Namespace the program runs in (its sockets, and its children's, belong to it).
    #[schemars(with = "String")]
    pub on: Spanned<String>,
    /// Program and arguments; the program is looked up in PATH. Placeholders are filled in.
    #[schemars(with = "Vec<Scalar>")]
    pub argv: Spanned<Vec<Spanned<Scalar>>>,
    /// Added to (or replacing) twlab's environment; placeholders are filled in.
    #[serde(default)]
    #[schemars(with = "Entries<Scalar>")]
    pub env: Entries<Spanned<Scalar>>,
    /// Working directory, relative to the case file's directory (default: that directory).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cwd: Option<Spanned<String>>,
    /// Start it and go on with the case (it is stopped when the case ends, or by `stop`);
    /// otherwise wait for it to exit.
    #[serde(default)]
    pub background: bool,
    /// Foreground only: how long to wait for the exit before stopping it (outcome TIMEOUT).
    #[serde(default)]
    #[schemars(with = "Option<CaseDuration>")]
    pub timeout: Option<Spanned<CaseDuration>>,
    /// Background only: what to wait for before the next step.
    #[serde(default)]
    #[schemars(with = "Option<Ready>")]
    pub ready: Option<Spanned<Ready>>,
    /// Between SIGTERM and SIGKILL when the program is stopped.
    #[serde(default = "default_grace")]
    pub grace: CaseDuration,
    /// Names the program for `stop` steps and `program:` expectations (default `exec`).
    #[serde(default)]
    pub label: Option<String>,
}

/// Readiness of a background program: exactly one of `listening` and `output`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A TCP socket listens on this port in the program's namespace (seen over sock_diag).
    #[serde(default)]
    pub listening: Option<u16>,
    /// A line of its stdout or stderr contains this text (placeholders are filled in).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub output: Option<Spanned<Scalar>>,
    #[serde(default = "default_ready_timeout")]
    pub timeout: CaseDuration,
}

pub fn default_exec_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_grace() -> CaseDuration {
    CaseDuration(Duration::from_secs(2))
}
fn default_ready_timeout() -> CaseDuration {
    CaseDuration(Duration::from_secs(5))
}

/// A YAML scalar taken as text: `-n 100` on a command line is the text "100", so numbers are
/// accepted where text is expected (arguments, environment values, vars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text or a number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Err(E::custom(format!(
                    "`{v}` is a YAML boolean: quote it (\"{v}\") if the program should get the text"
                )))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl schemars::JsonSchema for Scalar {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "number"],
            "description": format!(
                "Text, or a number taken as its text; not a YAML boolean (quote it: \"true\"). Where placeholders are filled in (an exec's argv, env and ready output): {}.",
                super::placeholder::SYNTAX
            ),
        })
    }
}

/// The case's `vars:`: names for values its `exec` arguments use as `{NAME}`.
pub type Vars = Entries<Spanned<Scalar>>;
