//! `twlab matrix --merge`: the matrix.json files that shards (`--only K`, `--no-host`) wrote,
//! each on its own machine, made into the one matrix a single run would have written: the
//! host's column first, then the others in the order the files were given (within a file, in
//! its order). Every way a file can be wrong is an error naming the file and what to do.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::columns::Column;
use super::table::{FORMAT, Matrix, MatrixKind};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no shards to merge: name the matrix.json files the shard jobs wrote")]
    NoShards,
    #[error(
        "{path}: cannot read it: {source}; give the matrix.json a shard wrote (`twlab matrix --out DIR` writes DIR/matrix.json)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}:{col}: not JSON: {message}; a shard's matrix.json is whole JSON (was it cut short, or is it another file?)"
    )]
    NotJson {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{path}: not a matrix.json: {why}")]
    NotMatrix { path: PathBuf, why: &'static str },
    #[error(
        "{path}: matrix.json format {found}, this twlab reads format {FORMAT}: merge with the twlab that ran the shards, or run them again with this one"
    )]
    Format { path: PathBuf, found: String },
    #[error("{path}:{line}:{col}: not a matrix.json of format {FORMAT}: {message}")]
    Schema {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error(
        "{path}: the column {label} is also in {first}: each kernel's column must come from one shard (drop one file, or run the other shard without it: --no-host, or without that --kernel)"
    )]
    Duplicate {
        label: String,
        first: PathBuf,
        path: PathBuf,
    },
    #[error(
        "{path} is a shard of a {kind} matrix and {first} of a {first_kind} matrix: merge shards of one matrix (all with the same --profile, or all without)"
    )]
    MixedKinds {
        path: PathBuf,
        kind: &'static str,
        first: PathBuf,
        first_kind: &'static str,
    },
    #[error(
        "{path}: its rollout ran with the profile {found}, {first}'s with {expected}: merge shards that ran the same --profile files"
    )]
    ProfilesDiffer {
        path: PathBuf,
        found: String,
        first: PathBuf,
        expected: String,
    },
    #[error(
        "{path}: the column {label} holds {holds} in a {kind} matrix: the file was put together by hand or by another tool; use the matrix.json the shard wrote"
    )]
    Inconsistent {
        path: PathBuf,
        label: String,
        holds: &'static str,
        kind: &'static str,
    },
}

/// serde_json's message without the ` at line L column C` it appends (said before it here).
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&tail).unwrap_or(&text).to_string()
}

/// Only what tells a matrix.json from another file, read before the whole: a file of another
/// format is refused for its number, not for the first field it shapes differently.
#[derive(Deserialize)]
#[serde(rename = "matrix.json")]
struct Probe {
    format: Option<serde_json::Value>,
    columns: Option<IgnoredAny>,
    trials: Option<IgnoredAny>,
    workloads: Option<IgnoredAny>,
}

/// One shard's matrix, as `path` holds it.
pub fn parse_shard(path: &Path, text: &str) -> Result<Matrix, MergeError> {
    let located = |e: serde_json::Error| {
        let (line, col, message) = (e.line(), e.column(), message(&e));
        let path = path.to_path_buf();
        match e.classify() {
            serde_json::error::Category::Data => MergeError::Schema {
                path,
                line,
                col,
                message,
            },
            _ => MergeError::NotJson {
                path,
                line,
                col,
                message,
            },
        }
    };
    let probe: Probe = serde_json::from_str(text).map_err(located)?;
    let not = |why| MergeError::NotMatrix {
        path: path.to_path_buf(),
        why,
    };
    match probe.format {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(FORMAT) => {}
        Some(other) => {
            return Err(MergeError::Format {
                path: path.to_path_buf(),
                found: other.to_string(),
            });
        }
        None if probe.columns.is_some() => {
            return Err(not(
                "it has no \"format\": a twlab older than shards wrote it; run the shard again with this twlab",
            ));
        }
        None if probe.trials.is_some() => {
            return Err(not(
                "it is one run's results (`twlab run --json`, a column's results.json); give the matrix.json next to the column's directory",
            ));
        }
        None if probe.workloads.is_some() => {
            return Err(not(
                "it is a rollout report (`twlab rollout --json`); give the matrix.json a `twlab matrix --profile` shard wrote",
            ));
        }
        None => {
            return Err(not(
                "it has no \"format\" and no \"columns\"; give the matrix.json a shard wrote",
            ));
        }
    }
    let m: Matrix = serde_json::from_str(text).map_err(located)?;
    for c in &m.columns {
        let holds = match (m.kind, &c.results, &c.rollout) {
            (MatrixKind::Cases, _, Some(_)) => "a rollout report",
            (MatrixKind::Profile, Some(_), _) => "case results",
            _ => continue,
        };
        return Err(MergeError::Inconsistent {
            path: path.to_path_buf(),
            label: c.label.clone(),
            holds,
            kind: m.kind.name(),
        });
    }
    Ok(m)
}

/// One shard's matrix, read from `path`.
pub fn read_shard(path: &Path) -> Result<Matrix, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_shard(path, &text)
}

/// The merged matrix, and for each of its columns the file it came from.
#[derive(Debug)]
pub struct Merged {
    pub matrix: Matrix,
    pub sources: Vec<PathBuf>,
}

/// The one matrix of `shards` (each a file and its matrix, in the order given): the host's
/// column first, then every other column in the order given.
pub fn merge(shards: Vec<(PathBuf, Matrix)>) -> Result<Merged, MergeError> {
    let Some((first, first_matrix)) = shards.first() else {
        return Err(MergeError::NoShards);
    };
    let (first, kind) = (first.clone(), first_matrix.kind);
    // The first rollout report's profile files, and where it came from.
    let mut profile: Option<(PathBuf, Vec<String>)> = None;
    let mut columns: Vec<(PathBuf, Column)> = Vec::new();
    for (path, m) in shards {
        if m.kind != kind {
            return Err(MergeError::MixedKinds {
                path,
                kind: m.kind.name(),
                first,
                first_kind: kind.name(),
            });
        }
        for c in m.columns {
            if let Some((seen, _)) = columns.iter().find(|(_, d)| d.label == c.label) {
                return Err(MergeError::Duplicate {
                    label: c.label.clone(),
                    first: seen.clone(),
                    path,
                });
            }
            if let Some(r) = &c.rollout {
                match &profile {
                    None => profile = Some((path.clone(), r.profiles.clone())),
                    Some((at, files)) if files != &r.profiles => {
                        return Err(MergeError::ProfilesDiffer {
                            path,
                            found: r.profiles.join(", "),
                            first: at.clone(),
                            expected: files.join(", "),
                        });
                    }
                    Some(_) => {}
                }
            }
            columns.push((path.clone(), c));
        }
    }
    // The host's column first, as one run has it; a stable sort keeps the rest in order.
    columns.sort_by_key(|(_, c)| c.guest);
    let (sources, columns) = columns.into_iter().unzip();
    Ok(Merged {
        matrix: Matrix { kind, columns },
        sources,
    })
}

/// [`merge`] of the files at `paths`.
pub fn merge_files(paths: &[PathBuf]) -> Result<Merged, MergeError> {
    let shards = paths
        .iter()
        .map(|p| read_shard(p).map(|m| (p.clone(), m)))
        .collect::<Result<Vec<_>, _>>()?;
    merge(shards)
}
