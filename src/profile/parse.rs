//! sysctl.d(5) syntax as systemd-sysctl and procps `sysctl -p` read it: `key = value` or
//! `key=value`, comments from `#` or `;` at the start of a line, blank lines, `/` or `.` as
//! the separator (if the first separator is `/`, slashes and dots swap, so a dot inside an
//! interface name survives), and a leading `-` that makes a failure to set the key ignorable.
//! Several files apply in order and the later assignment of a key wins.

use std::path::{Path, PathBuf};

use crate::vocab::SourceError;

/// One assignment as the profile states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Dotted, as /proc/sys spells it with `/` for `.` (`net.ipv4.tcp_tw_reuse`).
    pub key: String,
    pub value: String,
    pub file: PathBuf,
    /// 1-based.
    pub line: u64,
    /// A leading `-`: a failure to set it is to be ignored, not reported as an error.
    pub ignore_failure: bool,
    /// The key is a glob (`net.ipv4.conf.*.rp_filter`), which systemd-sysctl expands over
    /// the keys that exist.
    pub pattern: bool,
    /// A `-key` line without `=`: not an assignment but an exclusion from globs.
    pub exclude: bool,
}

/// The settings of one or more files in order: the effective ones (the last assignment of
/// each key), the ones a later line replaced, and the lines that are not assignments.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub settings: Vec<Setting>,
    /// `-key` lines without `=`: keys a glob must leave alone (systemd-sysctl's exclusions).
    pub excluded: Vec<Setting>,
    /// Earlier assignments of a key a later line set again, with the one that won.
    pub overridden: Vec<(Setting, Setting)>,
    pub problems: Vec<SourceError>,
}

impl Profile {
    /// Add one file's assignments after what is already there.
    pub fn extend(&mut self, settings: Vec<Setting>, problems: Vec<SourceError>) {
        self.problems.extend(problems);
        let (excluded, settings): (Vec<Setting>, Vec<Setting>) =
            settings.into_iter().partition(|s| s.exclude);
        self.excluded.extend(excluded);
        for s in settings {
            match self.settings.iter().position(|e| e.key == s.key) {
                Some(i) => {
                    let old = std::mem::replace(&mut self.settings[i], s.clone());
                    self.overridden.push((old, s));
                }
                None => self.settings.push(s),
            }
        }
    }
}

/// The dotted form of a key written with either separator.
fn normalize(key: &str) -> String {
    let slash_first = key
        .find(['.', '/'])
        .is_some_and(|i| key.as_bytes()[i] == b'/');
    if !slash_first {
        return key.to_string();
    }
    key.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

/// The assignments of one file's text, and the lines that are not assignments (each at its
/// file:line:col; the rest of the file is still read).
pub fn parse_text(file: &Path, text: &str) -> (Vec<Setting>, Vec<SourceError>) {
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let col = (raw.len() - raw.trim_start().len()) as u64 + 1;
        let problem = |col: u64, message: String| SourceError {
            file: file.to_path_buf(),
            line,
            col,
            message,
            source_line: Some(raw.to_string()),
        };
        if let Some(key) = trimmed.strip_prefix('-').filter(|k| !k.contains('=')) {
            // `-net.ipv4.conf.all.rp_filter`: keep the globs of the profile off this key.
            let key = key.trim();
            settings.push(Setting {
                key: normalize(key),
                value: String::new(),
                file: file.to_path_buf(),
                line,
                ignore_failure: true,
                pattern: false,
                exclude: true,
            });
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            problems.push(problem(
                col,
                format!("`{trimmed}` is not an assignment: write `key = value` (a `#` or `;` starts a comment)"),
            ));
            continue;
        };
        let (ignore_failure, key) = match key.trim().strip_prefix('-') {
            Some(rest) => (true, rest.trim()),
            None => (false, key.trim()),
        };
        if key.is_empty() {
            problems.push(problem(col, format!("`{trimmed}` has no key before `=`")));
            continue;
        }
        settings.push(Setting {
            key: normalize(key),
            value: value.trim().to_string(),
            file: file.to_path_buf(),
            line,
            ignore_failure,
            pattern: super::glob::is_glob(key),
            exclude: false,
        });
    }
    (settings, problems)
}

/// One file's assignments; an unreadable file is one problem for the whole file.
pub fn parse_file(file: &Path) -> (Vec<Setting>, Vec<SourceError>) {
    match std::fs::read_to_string(file) {
        Ok(text) => parse_text(file, &text),
        Err(e) => (
            Vec::new(),
            vec![SourceError::whole_file(
                file,
                format!("cannot read the profile: {e}"),
            )],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Setting>, Vec<SourceError>) {
        parse_text(Path::new("99-tuning.conf"), text)
    }

    #[test]
    fn assignments_comments_and_separators_read_as_systemd_sysctl_does() {
        let (s, problems) = parse(
            "# tuning\n; old style comment\n\nnet.ipv4.tcp_tw_reuse = 1\nnet/ipv4/tcp_fin_timeout=15\n  -net.ipv4.tcp_tw_recycle = 1\nnet/ipv4/conf/eth0.100/rp_filter = 2\nnet.core.somaxconn =\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let keys: Vec<(&str, &str, u64, bool)> = s
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str(), s.line, s.ignore_failure))
            .collect();
        assert_eq!(
            keys,
            [
                ("net.ipv4.tcp_tw_reuse", "1", 4, false),
                ("net.ipv4.tcp_fin_timeout", "15", 5, false),
                ("net.ipv4.tcp_tw_recycle", "1", 6, true),
                ("net.ipv4.conf.eth0/100.rp_filter", "2", 7, false),
                ("net.core.somaxconn", "", 8, false),
            ]
        );
    }

    #[test]
    fn a_line_that_is_not_an_assignment_is_a_problem_at_its_place_and_the_rest_is_read() {
        let (s, problems) =
            parse("net.ipv4.tcp_tw_reuse 1\n   = 3\nnet.ipv4.tcp_fin_timeout = 15\n");
        assert_eq!(s.len(), 1);
        assert_eq!(problems.len(), 2);
        assert_eq!((problems[0].line, problems[0].col), (1, 1));
        assert!(
            problems[0].message.contains("not an assignment"),
            "{}",
            problems[0].message
        );
        assert_eq!((problems[1].line, problems[1].col), (2, 4));
        assert!(
            problems[1].message.contains("no key"),
            "{}",
            problems[1].message
        );
    }

    #[test]
    fn the_later_file_wins_and_the_earlier_assignment_is_kept_as_overridden() {
        let mut p = Profile::default();
        let (a, pa) = parse_text(
            Path::new("10-a.conf"),
            "net.ipv4.tcp_tw_reuse = 2\nnet.core.somaxconn = 4096\n",
        );
        p.extend(a, pa);
        let (b, pb) = parse_text(Path::new("99-b.conf"), "net.ipv4.tcp_tw_reuse = 1\n");
        p.extend(b, pb);
        let reuse = p
            .settings
            .iter()
            .find(|s| s.key == "net.ipv4.tcp_tw_reuse")
            .unwrap();
        assert_eq!(
            (reuse.value.as_str(), reuse.file.to_str()),
            ("1", Some("99-b.conf"))
        );
        assert_eq!(p.settings.len(), 2);
        assert_eq!(p.overridden.len(), 1);
        assert_eq!(p.overridden[0].0.value, "2");
    }

    #[test]
    fn globs_are_marked_for_expansion_and_dash_lines_exclude_keys_from_them() {
        let mut p = Profile::default();
        let (s, problems) = parse(
            "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        p.extend(s, problems);
        assert_eq!(p.settings.len(), 2);
        assert!(p.settings[1].pattern);
        assert_eq!(p.excluded.len(), 1);
        assert_eq!(p.excluded[0].key, "net.ipv4.conf.all.rp_filter");
    }
}
