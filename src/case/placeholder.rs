//! Placeholders in the arguments of `exec` steps: `{server.addr}`, `{server.host}`, `{port}`...
//! A program's command line is written once and run over every address family of the case, so
//! addresses are named, not written out. The syntax is checked when the case loads (an unknown
//! placeholder is an error at its argument); the values are filled in when the step runs.

use std::fmt;

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{NS.addr}`: the namespace's address in the trial's family (`198.18.0.2`, `fd00::2`).
    Addr(String),
    /// `{NS.host}`: the same, bracketed when IPv6 (`[fd00::2]`), for URLs and `host:port`.
    Host(String),
    /// `{NS.ipv4}`, `{NS.ipv6}`: the namespace's address in that family, whatever the trial's.
    Ipv4(String),
    Ipv6(String),
    /// `{family}`: `ipv4` or `ipv6`.
    Family,
    /// `{any}`: the wildcard address of the trial's family (`0.0.0.0`, `::`).
    Any,
    /// `{NAME}`: a value from the case's `vars:`, or one the harness call passed.
    Var(String),
    /// `{bin.NAME}`: the path of a binary the user's crate builds, as the harness call names
    /// it (`.bin("NAME", env!("CARGO_BIN_EXE_NAME"))`) or `CARGO_BIN_EXE_NAME` in the
    /// environment says.
    Bin(String),
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Addr(ns) => write!(f, "{{{ns}.addr}}"),
            Placeholder::Host(ns) => write!(f, "{{{ns}.host}}"),
            Placeholder::Ipv4(ns) => write!(f, "{{{ns}.ipv4}}"),
            Placeholder::Ipv6(ns) => write!(f, "{{{ns}.ipv6}}"),
            Placeholder::Family => f.write_str("{family}"),
            Placeholder::Any => f.write_str("{any}"),
            Placeholder::Var(v) => write!(f, "{{{v}}}"),
            Placeholder::Bin(b) => write!(f, "{{bin.{b}}}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Slot(Placeholder),
}

/// The help text every placeholder error ends with.
pub const SYNTAX: &str = "placeholders are {NS.addr}, {NS.host} (IPv6 in brackets), {NS.ipv4}, {NS.ipv6}, {family}, {any}, {NAME} for a key of `vars:` (or a variable the harness passes) and {bin.NAME} for a binary of your crate; write {{ and }} for literal braces";

/// Splits a template into text and placeholders. Names are not checked here (see `validate`).
pub fn parse(source: &str) -> Result<Vec<Segment>, String> {
    // Messages quote the template on one line.
    let shown = source.escape_debug().to_string();
    let template = shown.as_str();
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(format!(
                    "`}}` without an opening `{{` in `{template}`: {SYNTAX}"
                ));
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(format!("unclosed `{{` in `{template}`: {SYNTAX}"));
                        }
                        Some(c) => name.push(c),
                    }
                }
                if !text.is_empty() {
                    out.push(Segment::Text(std::mem::take(&mut text)));
                }
                out.push(Segment::Slot(placeholder(&name, template)?));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
    Ok(out)
}

fn placeholder(name: &str, template: &str) -> Result<Placeholder, String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(bin) = name.strip_prefix("bin.") {
        if !valid(bin) {
            return Err(format!(
                "`{{{name}}}` in `{template}` does not name a binary: {SYNTAX}"
            ));
        }
        return Ok(Placeholder::Bin(bin.to_string()));
    }
    if let Some((ns, field)) = name.split_once('.') {
        if !valid(ns) {
            return Err(format!(
                "`{{{name}}}` in `{template}` does not name a namespace: {SYNTAX}"
            ));
        }
        let ns = ns.to_string();
        return match field {
            "addr" => Ok(Placeholder::Addr(ns)),
            "host" => Ok(Placeholder::Host(ns)),
            "ipv4" => Ok(Placeholder::Ipv4(ns)),
            "ipv6" => Ok(Placeholder::Ipv6(ns)),
            other => Err(format!(
                "unknown placeholder `{{{name}}}` in `{template}`: a namespace has .addr, .host, .ipv4 and .ipv6, not .{other}"
            )),
        };
    }
    match name {
        "family" => Ok(Placeholder::Family),
        "any" => Ok(Placeholder::Any),
        v if valid(v) => Ok(Placeholder::Var(v.to_string())),
        _ => Err(format!(
            "`{{{name}}}` in `{template}` is not a placeholder: {SYNTAX}"
        )),
    }
}

/// The template with every placeholder replaced by `value(placeholder)`.
pub fn fill(segments: &[Segment], mut value: impl FnMut(&Placeholder) -> String) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text(t) => t.clone(),
            Segment::Slot(p) => value(p),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_placeholders_and_escapes() {
        let s = parse("http://{server.host}:{port}/{{x}}").unwrap();
        assert_eq!(
            s,
            vec![
                Segment::Text("http://".into()),
                Segment::Slot(Placeholder::Host("server".into())),
                Segment::Text(":".into()),
                Segment::Slot(Placeholder::Var("port".into())),
                Segment::Text("/{x}".into()),
            ]
        );
        let filled = fill(&s, |p| match p {
            Placeholder::Host(_) => "[fd00::2]".into(),
            _ => "8080".into(),
        });
        assert_eq!(filled, "http://[fd00::2]:8080/{x}");
    }

    #[test]
    fn refuses_bad_syntax() {
        assert!(parse("{server.port}").unwrap_err().contains(".addr"));
        assert!(parse("{server").unwrap_err().contains("unclosed"));
        assert!(parse("a}b").unwrap_err().contains("without an opening"));
        assert!(parse("{a b}").unwrap_err().contains("is not a placeholder"));
        assert!(parse("{}").is_err());
    }
}
