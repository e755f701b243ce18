//! The matrix as a case × kernel table, with the failures' observed values and the reasons
//! for skips below it, and the verdict for the exit code.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use crate::runner::results::{RunResults, Status, TrialOutcome};
use crate::runner::{html, junit};

use super::columns::Column;
use crate::runner::rollout::{RolloutReport, SubjectReport, decisive};

/// A left-aligned text table: the first column named `first`, then one per head.
fn grid(first: &str, heads: &[String], rows: &[(String, Vec<String>)]) -> String {
    let w0 = rows
        .iter()
        .map(|(n, _)| n.len())
        .chain([first.len()])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|(_, c)| c[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = format!("{first:<w0$}");
    for (h, w) in heads.iter().zip(&widths) {
        let _ = write!(s, "  {h:<w$}");
    }
    s.push('\n');
    s += &"-".repeat(w0 + widths.iter().map(|w| w + 2).sum::<usize>());
    s.push('\n');
    for (name, cells) in rows {
        let _ = write!(s, "{name:<w0$}");
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(s, "  {c:<w$}");
        }
        s.push('\n');
    }
    s
}

/// The version of matrix.json's shape: `"format"` at its top. A change that an older twlab
/// would read wrongly (a field renamed, a meaning changed) takes the next number.
pub const FORMAT: u64 = 1;

/// What every kernel ran: the cases (`twlab run`), or with `--profile` the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatrixKind {
    Cases,
    Profile,
}

impl MatrixKind {
    pub fn name(self) -> &'static str {
        match self {
            MatrixKind::Cases => "cases",
            MatrixKind::Profile => "profile (rollout)",
        }
    }
}

/// The kernels' columns, in the table's order. matrix.json is this with `"format"` first;
/// what it writes reads back as the same matrix (floats exactly: serde_json's
/// `float_roundtrip`), so shards run apart merge into what one run writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "MatrixFile")]
pub struct Matrix {
    pub kind: MatrixKind,
    pub columns: Vec<Column>,
}

#[derive(Deserialize)]
#[serde(rename = "Matrix")]
struct MatrixFile {
    format: u64,
    kind: MatrixKind,
    columns: Vec<Column>,
}

impl TryFrom<MatrixFile> for Matrix {
    type Error = String;

    fn try_from(f: MatrixFile) -> Result<Matrix, String> {
        if f.format != FORMAT {
            return Err(format!(
                "matrix.json format {}, this twlab reads format {FORMAT}",
                f.format
            ));
        }
        Ok(Matrix {
            kind: f.kind,
            columns: f.columns,
        })
    }
}

impl Serialize for Matrix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Matrix", 3)?;
        m.serialize_field("format", &FORMAT)?;
        m.serialize_field("kind", &self.kind)?;
        m.serialize_field("columns", &self.columns)?;
        m.end()
    }
}

impl Matrix {
    /// Trial names in first-seen order across columns (host first).
    fn rows(&self) -> Vec<String> {
        let mut rows: Vec<String> = Vec::new();
        for c in &self.columns {
            for t in c.results.iter().flat_map(|r| &r.trials) {
                if !rows.contains(&t.name) {
                    rows.push(t.name.clone());
                }
            }
        }
        rows
    }

    fn outcome<'a>(c: &'a Column, name: &str) -> Option<&'a TrialOutcome> {
        c.results.as_ref()?.trials.iter().find(|t| t.name == name)
    }

    /// True when every kernel produced results and no trial failed on any kernel; with
    /// `--profile`, when every kernel produced its rollout report.
    pub fn green(&self) -> bool {
        self.columns.iter().all(|c| {
            c.error.is_none()
                && (c.rollout.is_some() || c.results.as_ref().is_some_and(|r| r.failed() == 0))
        })
    }

    fn heads(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| match (c.guest, c.release.is_empty()) {
                (false, _) => format!("{} (host)", c.release),
                (true, true) => c.label.clone(),
                (true, false) => c.release.clone(),
            })
            .collect()
    }

    /// With `--profile`: a workload × kernel table of what the profile changed (and which key
    /// decided it), the claims it changed on any kernel, and the keys whose class differs
    /// between kernels.
    fn rollout_text(&self) -> String {
        let reports: Vec<Option<&RolloutReport>> =
            self.columns.iter().map(|c| c.rollout.as_ref()).collect();
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        let add = |name: &str, col: usize, cell: String, rows: &mut Vec<(String, Vec<String>)>| {
            let i = rows.iter().position(|(n, _)| n == name).unwrap_or_else(|| {
                rows.push((name.to_string(), vec!["-".to_string(); reports.len()]));
                rows.len() - 1
            });
            rows[i].1[col] = cell;
        };
        let cell = |w: &SubjectReport| {
            let keys = decisive(w);
            if keys.is_empty() {
                w.change.name().to_string()
            } else {
                format!("{} ({})", w.change.name(), keys.join(", "))
            }
        };
        for (col, r) in reports.iter().enumerate() {
            for w in r.iter().flat_map(|r| &r.workloads) {
                add(&w.case, col, cell(w), &mut rows);
            }
        }
        let changed_claims: Vec<&str> = reports
            .iter()
            .flatten()
            .flat_map(|r| &r.claims)
            .filter(|c| c.changed)
            .map(|c| c.case.as_str())
            .collect();
        for (col, r) in reports.iter().enumerate() {
            for c in r.iter().flat_map(|r| &r.claims) {
                if changed_claims.contains(&c.case.as_str()) {
                    add(&c.case, col, cell(c), &mut rows);
                }
            }
        }
        let profiles = reports
            .iter()
            .flatten()
            .next()
            .map(|r| r.profiles.join(", "))
            .unwrap_or_default();
        let mut s = format!("profile: {profiles}\n");
        s += &grid("workload or claim", &self.heads(), &rows);
        // Keys whose class is not the same on every kernel that reported.
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        for (col, r) in reports.iter().enumerate() {
            for k in r.iter().flat_map(|r| &r.keys) {
                let i = keys
                    .iter()
                    .position(|(n, _)| n == &k.key)
                    .unwrap_or_else(|| {
                        keys.push((k.key.clone(), vec!["-".to_string(); reports.len()]));
                        keys.len() - 1
                    });
                keys[i].1[col] = k.class.name().to_string();
            }
        }
        keys.retain(|(_, classes)| classes.iter().any(|c| c != &classes[0]));
        if !keys.is_empty() {
            s += "\nkeys whose class differs between kernels:\n";
            s += &grid("key", &self.heads(), &keys);
        }
        s.push('\n');
        for c in &self.columns {
            let head = c.head();
            match (&c.rollout, &c.error) {
                (_, Some(e)) => {
                    let _ = writeln!(s, "{head}: NO RESULTS: {e}");
                }
                (Some(r), None) => {
                    let _ = writeln!(
                        s,
                        "{head}: {} in {:.0} s; report {}",
                        r.summary(),
                        c.seconds,
                        c.dir.join("report.txt").display()
                    );
                }
                (None, None) => {}
            }
            for note in &c.notes {
                let _ = writeln!(s, "    {note}");
            }
        }
        s
    }

    pub fn text(&self) -> String {
        if self.kind == MatrixKind::Profile {
            return self.rollout_text();
        }
        let mut s = String::new();
        let rows = self.rows();
        let heads = self.heads();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|name| {
                self.columns
                    .iter()
                    .map(|c| match (Self::outcome(c, name), &c.error) {
                        (_, Some(_)) => "no result".into(),
                        (None, None) => "-".into(),
                        (Some(t), None) => {
                            let status = match t.status {
                                Status::Passed => "pass",
                                Status::Xfail => "xfail",
                                Status::Failed => "FAIL",
                                Status::Ignored => "skip",
                            };
                            match &t.backend {
                                Some(b) if t.status != Status::Ignored => format!("{status} ({b})"),
                                _ => status.to_string(),
                            }
                        }
                    })
                    .collect()
            })
            .collect();
        let table: Vec<(String, Vec<String>)> = rows.into_iter().zip(cells).collect();
        s += &grid("case", &heads, &table);
        s.push('\n');
        for c in &self.columns {
            let head = c.head();
            match (&c.results, &c.error) {
                (_, Some(e)) => {
                    let _ = writeln!(s, "{head}: NO RESULTS: {e}");
                }
                (Some(r), None) => {
                    let count = |st| r.trials.iter().filter(|t| t.status == st).count();
                    let xfail = match count(Status::Xfail) {
                        0 => String::new(),
                        n => format!(", {n} xfail"),
                    };
                    let _ = writeln!(
                        s,
                        "{head}: {} passed{xfail}, {} failed, {} skipped in {:.0} s; report {}",
                        count(Status::Passed),
                        count(Status::Failed),
                        count(Status::Ignored),
                        c.seconds,
                        c.dir.join("report.txt").display()
                    );
                }
                (None, None) => {}
            }
            for note in &c.notes {
                let _ = writeln!(s, "    {note}");
            }
            for t in c.results.iter().flat_map(|r| &r.trials) {
                if t.status == Status::Failed {
                    let _ = writeln!(s, "  FAIL {}", t.name);
                    for f in &t.failures {
                        let _ = writeln!(s, "       {f}");
                    }
                }
            }
            // Skips grouped by reason: one kernel often skips several cases for one reason.
            let mut skips: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for t in c.results.iter().flat_map(|r| &r.trials) {
                if let (Status::Ignored, Some(reason)) = (t.status, &t.reason) {
                    skips.entry(reason).or_default().push(&t.name);
                }
            }
            for (reason, names) in skips {
                let _ = writeln!(s, "  skip {}: {reason}", names.join(", "));
            }
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// For a kernel that produced no results, one failing trial that says why, so that it
    /// cannot vanish from a dashboard or a report.
    fn stand_ins(&self) -> Vec<Option<RunResults>> {
        self.columns
            .iter()
            .map(|c| match (&c.results, &c.error) {
                (Some(_), _) => None,
                (None, error) => Some(RunResults {
                    kernel: c.release.clone(),
                    twlab: env!("CARGO_PKG_VERSION").to_string(),
                    trials: vec![TrialOutcome {
                        name: "(the kernel produced no results)".into(),
                        status: Status::Failed,
                        reason: None,
                        failures: vec![error.clone().unwrap_or_else(|| "no results".into())],
                        xfails: Vec::new(),
                        backend: None,
                        workloads: Vec::new(),
                        picture: None,
                        seconds: c.seconds,
                    }],
                    seconds: c.seconds,
                }),
            })
            .collect()
    }

    /// JUnit with one testsuite per kernel. A kernel that produced no results is a suite
    /// with one failing testcase that says why.
    pub fn junit(&self) -> String {
        let stand_ins = self.stand_ins();
        let suites: Vec<junit::Suite> = self
            .columns
            .iter()
            .zip(&stand_ins)
            .filter_map(|(c, stand_in)| {
                let results = c.results.as_ref().or(stand_in.as_ref())?;
                Some(junit::Suite {
                    name: format!("twlab@{}", c.head()),
                    results,
                })
            })
            .collect();
        junit::render("twlab-matrix", &suites)
    }

    /// The HTML report (`runner::html`): a section per kernel, in the table's order (a
    /// kernel without results as one failed trial that says why). `links[i]`: where column
    /// `i`'s directory is, relative to the report, for its pcaps (`dir/artifacts/...`, where
    /// each column's run keeps them). None for a `--profile` matrix: a rollout report is not
    /// trials.
    pub fn html(&self, links: &[Option<String>]) -> Option<String> {
        if self.kind != MatrixKind::Cases {
            return None;
        }
        let stand_ins = self.stand_ins();
        let sections: Vec<html::Section> = self
            .columns
            .iter()
            .zip(&stand_ins)
            .enumerate()
            .filter_map(|(i, (c, stand_in))| {
                Some(html::Section {
                    kernel: c.head(),
                    results: c.results.as_ref().or(stand_in.as_ref())?,
                    link: links.get(i).cloned().flatten(),
                })
            })
            .collect();
        let heads: Vec<String> = self.columns.iter().map(Column::head).collect();
        let title = format!("twlab matrix: {}", heads.join(", "));
        Some(html::render(&title, &sections, "artifacts"))
    }
}

/// Where `column`'s own directory (report.txt, console, artifacts/) is, relative to
/// `report_dir`, when the matrix.json it came from is in `shard_dir`: a shard's column
/// directories sit next to its matrix.json. None when it is not there (a CI job that kept
/// only the matrix.json).
pub fn column_link(report_dir: &Path, shard_dir: &Path, column: &Column) -> Option<String> {
    let target = std::fs::canonicalize(shard_dir.join(column.dir.file_name()?)).ok()?;
    let from = std::fs::canonicalize(report_dir).ok()?;
    if !target.is_dir() {
        return None;
    }
    let common = from
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common) {
        rel.push("..");
    }
    for c in target.components().skip(common) {
        rel.push(c);
    }
    Some(if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.display().to_string()
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::runner::results::RunResults;

    fn trial(name: &str, status: Status, backend: Option<&str>) -> TrialOutcome {
        TrialOutcome {
            name: name.into(),
            status,
            reason: (status == Status::Ignored).then(|| "needs 6.14".to_string()),
            failures: if status == Status::Failed {
                vec!["x.yaml:3:5  bytes = 1  observed: 2".into()]
            } else {
                Vec::new()
            },
            xfails: Vec::new(),
            backend: backend.map(str::to_string),
            workloads: Vec::new(),
            picture: None,
            seconds: 0.1,
        }
    }

    fn column(release: &str, guest: bool, trials: Vec<TrialOutcome>) -> Column {
        Column {
            label: if guest { "linux-image-x" } else { "host" }.into(),
            release: release.into(),
            guest,
            error: None,
            notes: Vec::new(),
            rollout: None,
            results: Some(RunResults {
                kernel: release.into(),
                twlab: "0".into(),
                trials,
                seconds: 1.0,
            }),
            dir: PathBuf::from("/tmp"),
            seconds: 1.0,
        }
    }

    #[test]
    fn table_shows_each_kernel_backend_failures_and_skips() {
        let m = Matrix {
            kind: MatrixKind::Cases,
            columns: vec![
                column(
                    "6.18.0",
                    false,
                    vec![
                        trial("a", Status::Passed, Some("substitute")),
                        trial("b", Status::Passed, None),
                    ],
                ),
                column(
                    "6.1.0",
                    true,
                    vec![
                        trial("a", Status::Failed, Some("netem")),
                        trial("b", Status::Ignored, None),
                    ],
                ),
            ],
        };
        let text = m.text();
        assert!(text.contains("pass (substitute)"), "{text}");
        assert!(text.contains("FAIL (netem)"), "{text}");
        assert!(text.contains("observed: 2"), "{text}");
        assert!(text.contains("skip b: needs 6.14"), "{text}");
        assert!(!m.green());
    }

    #[test]
    fn a_kernel_without_results_is_not_green() {
        let mut guest = column("6.1.0", true, vec![trial("a", Status::Passed, None)]);
        let host = column("6.18.0", false, vec![trial("a", Status::Passed, None)]);
        assert!(
            Matrix {
                kind: MatrixKind::Cases,
                columns: vec![host.clone(), guest.clone()]
            }
            .green()
        );
        guest.results = None;
        guest.error = Some("did not boot".into());
        let m = Matrix {
            kind: MatrixKind::Cases,
            columns: vec![host, guest],
        };
        assert!(!m.green());
        assert!(m.text().contains("no result"));
    }

    #[test]
    fn json_reads_back_as_the_same_matrix() {
        let mut host = column("6.18.0", false, vec![trial("a", Status::Failed, None)]);
        // serde_json's default reader gives 985.6906946328696 for this (one in ten of
        // random seconds below 1000 comes back a bit off without `float_roundtrip`).
        host.seconds = 985.690_694_632_869_5;
        host.results.as_mut().unwrap().trials[0].seconds = 0.1 + 0.2;
        let mut guest = column("", true, Vec::new());
        guest.results = None;
        guest.error = Some("did not boot".into());
        let m = Matrix {
            kind: MatrixKind::Cases,
            columns: vec![host, guest],
        };
        let json = m.json();
        assert!(json.starts_with("{\n  \"format\": 1,\n"), "{json}");
        let back: Matrix = serde_json::from_str(&json).unwrap();
        assert_eq!(back.json(), json);
        assert_eq!(back.text(), m.text());
        assert_eq!(
            back.columns[0].seconds.to_bits(),
            m.columns[0].seconds.to_bits()
        );
        let t = |m: &Matrix| m.columns[0].results.as_ref().unwrap().trials[0].seconds;
        assert_eq!(t(&back).to_bits(), t(&m).to_bits());
        let newer = json.replacen("\"format\": 1", "\"format\": 2", 1);
        let e = serde_json::from_str::<Matrix>(&newer).unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
    }
}
