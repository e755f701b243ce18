//! Errors about a case or topology file, each pointing at file:line:col with the source line
//! and a caret under the problem, the way compilers show them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole (unreadable, empty).
    pub line: u64,
    pub col: u64,
    pub message: String,
    /// The source line the caret points into.
    pub source_line: Option<String>,
}

impl SourceError {
    pub fn at(file: &Path, source: &str, loc: Location, message: impl Into<String>) -> Self {
        let (line, col) = (loc.line(), loc.column());
        let source_line = (line > 0)
            .then(|| source.lines().nth((line - 1) as usize).map(str::to_string))
            .flatten();
        SourceError {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
            source_line,
        }
    }

    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        SourceError {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
            source_line: None,
        }
    }

    /// A serde-saphyr parse error, re-rendered in our format (its own snippet names the file
    /// `<input>`, and we want one style for all errors).
    pub fn from_yaml(file: &Path, source: &str, err: &serde_saphyr::Error) -> Self {
        let message = yaml_message(err);
        match err.location() {
            Some(loc) if loc.line() > 0 => SourceError::at(file, source, loc, message),
            _ => SourceError::whole_file(file, message),
        }
    }
}

/// Parses a case or topology file as YAML 1.2, as editors and `twlab schema`'s JSON Schema
/// read it: a boolean is `true` or `false`, and YAML 1.1's `yes`, `no`, `on` and `off` are
/// refused (at their place) rather than read as booleans an editor would call strings.
pub fn parse_yaml<'de, T: serde::Deserialize<'de>>(
    source: &'de str,
) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(source, serde_saphyr::options! { strict_booleans: true })
}

/// The bare message of a saphyr error, without its position (ours is printed in front) and
/// without advice meant for the program rather than for the case's author.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let rendered = err.without_snippet().to_string();
    let mut msg = rendered.lines().next().unwrap_or_default();
    msg = msg.strip_prefix("error: ").unwrap_or(msg);
    if msg.starts_with("line ")
        && let Some(i) = msg.find(": ")
    {
        msg = &msg[i + 2..];
    }
    if let Some(i) = msg.rfind(" at line ") {
        msg = &msg[..i];
    }
    if let Some(i) = msg.find(", set DuplicateKeyPolicy") {
        return format!("{}: each key may appear once", &msg[..i]);
    }
    if msg.starts_with("invalid boolean") {
        return "expected true or false (in YAML 1.2, as editors read it, yes, no, on and off \
                are not booleans)"
            .into();
    }
    if msg == "invalid u16" {
        return "expected a whole number from 0 to 65535".into();
    }
    msg.to_string()
}

impl SourceError {
    /// The first line of the error: `error: file:line:col: message`, without the snippet.
    pub fn headline(&self) -> String {
        let file = self.file.display();
        if self.line == 0 {
            format!("error: {file}: {}", self.message)
        } else {
            format!("error: {file}:{}:{}: {}", self.line, self.col, self.message)
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            return write!(f, "error: {file}: {}", self.message);
        }
        writeln!(
            f,
            "error: {file}:{}:{}: {}",
            self.line, self.col, self.message
        )?;
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_at: String = src
                .chars()
                .take(self.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{gutter} | {src}")?;
            write!(f, "{pad} | {caret_at}^")?;
        }
        Ok(())
    }
}

/// All the errors found in one file; the case is not run, the rest of the suite is.
#[derive(Debug, Clone)]
pub struct CaseErrors(pub Vec<SourceError>);

impl fmt::Display for CaseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CaseErrors {}

/// The message a panic carried (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
