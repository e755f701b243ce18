//! Sysctl profiles as people ship them (`/etc/sysctl.d/*.conf`, a gist, a node image's
//! defaults): read in sysctl.d(5) syntax, several files in order, the later one winning.

mod classify;
pub mod glob;
mod parse;

pub use classify::{KeyClass, from_issue, static_class};
pub use parse::{Profile, Setting, parse_file, parse_text};
