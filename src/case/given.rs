//! What the code that loads the cases gives them from outside the files: variables for
//! `{NAME}` placeholders and the paths of the user's binaries for `{bin.NAME}`. A harness
//! call in the user's repository passes them (`twlab::Harness::var`, `::bin`); the command
//! line takes binaries from `CARGO_BIN_EXE_<NAME>` in its environment.

use std::path::PathBuf;

/// Variables and binaries for the cases' placeholders.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// (name, value): a `{NAME}` placeholder's value, over the case's own `vars:` entry.
    pub vars: Vec<(String, String)>,
    /// (name, path): what `{bin.NAME}` stands for.
    pub bins: Vec<(String, PathBuf)>,
}

impl LoadOptions {
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The binary `name`: as given, else `CARGO_BIN_EXE_<name>` from the environment (cargo
    /// sets it only while compiling an integration test, so a harness passes it with
    /// `env!`; a user of `twlab run` can export it).
    pub fn bin(&self, name: &str) -> Option<PathBuf> {
        self.bins
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, p)| p.clone())
            .or_else(|| std::env::var_os(format!("CARGO_BIN_EXE_{name}")).map(PathBuf::from))
    }

    /// The binaries given, for messages.
    pub fn bin_names(&self) -> String {
        if self.bins.is_empty() {
            "none".into()
        } else {
            self.bins
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}
