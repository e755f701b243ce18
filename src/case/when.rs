//! `when:` on an expectation: the kernels (or impairment backend) on which it holds, so one
//! case file states how behaviour differs across kernels:
//!
//! ```yaml
//! - kernel_log: "table full in netns"
//!   when: kernel >= 6.2
//! - kernel_log: "table full, dropping packet"
//!   when: kernel < 6.2
//! ```
//!
//! Conditions: `kernel OP X.Y[.Z]` (OP one of >= > <= < == !=), `feature NAME`,
//! `no feature NAME`, `backend netem|substitute`; joined with `and`.

use std::collections::BTreeSet;
use std::fmt;

use crate::vocab::Family;

/// Features a condition may name, with what makes them present. A closed list, so a typo is
/// an error at its place rather than a condition that is silently never true.
pub const FEATURES: &[(&str, &str)] = &[
    ("netem", "the sch_netem qdisc can be created"),
    (
        "tcp_tw_reuse_delay",
        "the sysctl net.ipv4.tcp_tw_reuse_delay exists (Linux 6.14+)",
    ),
    ("conntrack", "nf_conntrack is loaded or loadable"),
];

/// A kernel version, compared numerically (6.14 > 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// The leading `X.Y[.Z]` of a release string (`6.1.0-56-amd64`, `6.18.44-fc`).
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let head: String = release
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = head.split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion(major, minor, patch))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Kernel(Op, KernelVersion),
    Feature {
        name: String,
        present: bool,
    },
    Backend(String),
    /// The trial's address family: IPv4 and IPv6 differ in header sizes (an MSS 20 bytes
    /// apart), so one case can state both.
    Family(Family),
}

/// A parsed `when:`; `text` is what the case says, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub text: String,
    all: Vec<Condition>,
}

/// What a condition is judged against: the kernel the trial runs on, its features, and the
/// impairment backend the trial used.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    pub release: String,
    pub features: BTreeSet<String>,
    pub backend: Option<String>,
    /// The trial's family (`None`: not judged per family, and a `family` condition fails).
    pub family: Option<Family>,
}

fn parse_condition(c: &str) -> Result<Condition, String> {
    let words: Vec<&str> = c.split_whitespace().collect();
    match words.as_slice() {
        ["kernel", op, version] => {
            let op = match *op {
                ">=" => Op::Ge,
                ">" => Op::Gt,
                "<=" => Op::Le,
                "<" => Op::Lt,
                "==" => Op::Eq,
                "!=" => Op::Ne,
                other => {
                    return Err(format!(
                        "`{other}` is not a comparison: write >=, >, <=, <, == or !="
                    ));
                }
            };
            let v = KernelVersion::parse(version)
                .filter(|_| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("`{version}` is not a kernel version: write e.g. 6.14"))?;
            Ok(Condition::Kernel(op, v))
        }
        ["feature", name] | ["no", "feature", name] => {
            if !FEATURES.iter().any(|(f, _)| f == name) {
                let known: Vec<&str> = FEATURES.iter().map(|(f, _)| *f).collect();
                return Err(format!(
                    "unknown feature `{name}`: known features are {}",
                    known.join(", ")
                ));
            }
            Ok(Condition::Feature {
                name: name.to_string(),
                present: words[0] == "feature",
            })
        }
        ["backend", b @ ("netem" | "substitute")] => Ok(Condition::Backend(b.to_string())),
        ["backend", other] => Err(format!(
            "unknown backend `{other}`: write netem or substitute"
        )),
        ["family", "ipv4"] => Ok(Condition::Family(Family::Ipv4)),
        ["family", "ipv6"] => Ok(Condition::Family(Family::Ipv6)),
        ["family", other] => Err(format!("unknown family `{other}`: write ipv4 or ipv6")),
        _ => Err(format!(
            "`{c}` is not a condition: write `kernel >= 6.14`, `feature NAME`, `no feature NAME`, `backend netem` or `family ipv6`, joined with `and`"
        )),
    }
}

impl When {
    pub fn parse(text: &str) -> Result<When, String> {
        let all = text
            .split(" and ")
            .map(|c| parse_condition(c.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(When {
            text: text.trim().to_string(),
            all,
        })
    }

    pub fn holds(&self, p: &Platform) -> bool {
        self.all.iter().all(|c| match c {
            Condition::Kernel(op, v) => {
                let Some(mut k) = KernelVersion::parse(&p.release) else {
                    return false;
                };
                // `6.1` means every 6.1.z: compare at the precision the case wrote.
                if v.2 == 0 {
                    k.2 = 0;
                }
                match op {
                    Op::Ge => k >= *v,
                    Op::Gt => k > *v,
                    Op::Le => k <= *v,
                    Op::Lt => k < *v,
                    Op::Eq => k == *v,
                    Op::Ne => k != *v,
                }
            }
            Condition::Feature { name, present } => p.features.contains(name) == *present,
            Condition::Backend(b) => p.backend.as_deref() == Some(b.as_str()),
            Condition::Family(f) => p.family == Some(*f),
        })
    }
}

/// The text of a `when:`, as `When::parse` reads it: conditions joined with ` and `.
impl schemars::JsonSchema for When {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "When".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let features: Vec<&str> = FEATURES.iter().map(|(f, _)| *f).collect();
        let features = features.join("|");
        // A version as `parse_condition` takes it: digits and dots, two numbers at least.
        let version = r"\.*[0-9]+\.+[0-9][0-9.]*";
        let condition = format!(
            r"(kernel\s+(>=|>|<=|<|==|!=)\s+{version}|(no\s+)?feature\s+({features})|backend\s+(netem|substitute)|family\s+(ipv4|ipv6))"
        );
        let described: Vec<String> = FEATURES
            .iter()
            .map(|(f, what)| format!("`{f}`: {what}"))
            .collect();
        schemars::json_schema!({
            "type": "string",
            "pattern": format!(r"^\s*{condition}\s*( and \s*{condition}\s*)*$"),
            "description": format!(
                "Where the expectation applies; elsewhere it is reported as not applicable. Conditions joined with ` and `: `kernel OP X.Y[.Z]` (OP one of >= > <= < == !=), `feature NAME` or `no feature NAME`, `backend netem|substitute`, `family ipv4|ipv6`. Features: {}.",
                described.join("; ")
            ),
            "examples": ["kernel >= 6.14", "kernel < 6.2 and feature netem", "backend substitute", "family ipv6"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(release: &str) -> Platform {
        Platform {
            release: release.into(),
            ..Platform::default()
        }
    }

    #[test]
    fn versions_compare_numerically() {
        let w = When::parse("kernel >= 6.14").unwrap();
        assert!(w.holds(&on("6.18.44-fc-v657")));
        assert!(!w.holds(&on("6.1.0-56-amd64")));
        assert!(!w.holds(&on("6.2.0")));
        assert!(
            When::parse("kernel == 6.1")
                .unwrap()
                .holds(&on("6.1.0-56-amd64"))
        );
        assert!(When::parse("kernel < 6.2").unwrap().holds(&on("6.1.192")));
        assert!(When::parse("kernel <= 6.1").unwrap().holds(&on("6.1.192")));
        assert!(
            !When::parse("kernel <= 6.1.100")
                .unwrap()
                .holds(&on("6.1.192"))
        );
        assert!(When::parse("kernel > 6.1").unwrap().holds(&on("6.2.0")));
        assert!(!When::parse("kernel > 6.1").unwrap().holds(&on("6.1.192")));
    }

    #[test]
    fn features_and_backends_combine() {
        let mut p = on("6.1.0");
        p.backend = Some("netem".into());
        let w = When::parse("backend netem and no feature tcp_tw_reuse_delay").unwrap();
        assert!(w.holds(&p));
        p.features.insert("tcp_tw_reuse_delay".into());
        assert!(!w.holds(&p));
    }

    #[test]
    fn family_conditions_hold_for_their_trial_only() {
        let mut p = on("6.18.0");
        let w = When::parse("family ipv6 and kernel >= 6.1").unwrap();
        assert!(!w.holds(&p), "no family: the condition fails");
        p.family = Some(Family::Ipv6);
        assert!(w.holds(&p));
        p.family = Some(Family::Ipv4);
        assert!(!w.holds(&p));
        assert!(
            When::parse("family ip6")
                .unwrap_err()
                .contains("ipv4 or ipv6")
        );
    }

    #[test]
    fn bad_conditions_say_what_to_write() {
        assert!(When::parse("kernel => 6.1").unwrap_err().contains(">="));
        assert!(
            When::parse("feature tw_reuse_delay")
                .unwrap_err()
                .contains("known features")
        );
        assert!(
            When::parse("kernel >= six")
                .unwrap_err()
                .contains("kernel version")
        );
        assert!(
            When::parse("on netem")
                .unwrap_err()
                .contains("not a condition")
        );
    }
}
