//! `twlab init [DIR]`: a starting point in a repository. It writes an example case with a
//! comment per key, the harness file, a CI job and the case schema for editors. Without a
//! Cargo.toml it also writes a minimal crate whose `cargo test` runs the case; with one, it
//! prints the lines to add. It refuses to overwrite anything: if one of its files is there,
//! it writes none.

use std::path::{Path, PathBuf};

/// What `init` writes, relative to the directory.
const CASE: &str = include_str!("init/case.yaml");
const HARNESS: &str = include_str!("init/harness.rs.txt");
const CI: &str = include_str!("init/ci.yml");

/// The lines a Cargo.toml needs for the harness.
fn manifest_lines(dep: &str) -> String {
    format!("[dev-dependencies]\ntwlab = {dep}\n\n[[test]]\nname = \"twlab\"\nharness = false\n")
}

/// How the new project depends on twlab: on the checkout this twlab was built from, when it
/// is still there (so `init` works before twlab is published), else on the crate's version.
pub fn default_dependency() -> String {
    let here = env!("CARGO_MANIFEST_DIR");
    if Path::new(here).join("Cargo.toml").is_file() {
        format!("{{ path = {here:?} }}")
    } else {
        format!("{:?}", env!("CARGO_PKG_VERSION"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "nothing written, because these are already there: {}; move them away or init another directory",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Exists(Vec<PathBuf>),
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `init` did: the files written, and what the user still has to do.
#[derive(Debug)]
pub struct Initialized {
    pub written: Vec<PathBuf>,
    /// Lines to add to an existing Cargo.toml, if there was one.
    pub add_to_manifest: Option<String>,
}

/// Writes the starting point into `dir` (made if missing), depending on twlab as `dep`
/// (a TOML value: `"0.1"`, `{ path = "..." }`).
pub fn init(dir: &Path, dep: &str) -> Result<Initialized, InitError> {
    let manifest = dir.join("Cargo.toml");
    let has_manifest = manifest.is_file();
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join("cases/example.yaml"), CASE.to_string()),
        (dir.join("tests/twlab.rs"), HARNESS.to_string()),
        (dir.join(".github/workflows/twlab.yml"), CI.to_string()),
        (
            dir.join("twlab.schema.json"),
            crate::case::schema_text() + "\n",
        ),
    ];
    if !has_manifest {
        let name = dir
            .canonicalize()
            .ok()
            .or_else(|| std::path::absolute(dir).ok())
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .map(|n| crate_name(&n))
            .unwrap_or_else(|| "twlab-cases".into());
        files.push((
            manifest.clone(),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n{}",
                manifest_lines(dep)
            ),
        ));
        files.push((
            dir.join("src/lib.rs"),
            "//! Your code; twlab's cases are in cases/, run by tests/twlab.rs.\n".into(),
        ));
    }
    let there: Vec<PathBuf> = files
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.exists())
        .collect();
    if !there.is_empty() {
        return Err(InitError::Exists(there));
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(source) = result {
            return Err(InitError::Write { path, source });
        }
        written.push(path);
    }
    Ok(Initialized {
        written,
        add_to_manifest: has_manifest.then(|| manifest_lines(dep)),
    })
}

/// A package name from a directory name: lowercase letters, digits, `-` and `_`.
fn crate_name(dir: &str) -> String {
    let name: String = dir
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    match name.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => name,
        _ => format!("twlab-{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_project_and_then_refuses_to_overwrite_it() {
        let dir = tempfile::tempdir().expect("a directory");
        let done = init(dir.path(), "\"0.1\"").expect("written");
        assert_eq!(done.written.len(), 6);
        assert!(done.add_to_manifest.is_none());
        let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).expect("manifest");
        assert!(manifest.contains("harness = false"), "{manifest}");
        // Cargo.toml is there now, so the other four are what would be overwritten.
        let again = init(dir.path(), "\"0.1\"").unwrap_err();
        assert!(
            matches!(&again, InitError::Exists(p) if p.len() == 4),
            "{again}"
        );
        assert!(again.to_string().contains("nothing written"));
    }

    #[test]
    fn with_a_manifest_init_says_what_to_add_and_leaves_it() {
        let dir = tempfile::tempdir().expect("a directory");
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        let done = init(dir.path(), "\"0.1\"").expect("written");
        assert_eq!(done.written.len(), 4);
        assert!(done.add_to_manifest.expect("lines").contains("[[test]]"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap(),
            "[package]\nname = \"x\"\n"
        );
    }

    #[test]
    fn the_example_case_loads() {
        let dir = tempfile::tempdir().expect("a directory");
        init(dir.path(), "\"0.1\"").expect("written");
        let path = dir.path().join("cases/example.yaml");
        crate::case::load_case(&dir.path().join("cases"), &path)
            .unwrap_or_else(|e| panic!("the example case: {e}"));
    }

    #[test]
    fn package_names_come_from_the_directory() {
        assert_eq!(crate_name("My Service"), "my-service");
        assert_eq!(crate_name("2go"), "twlab-2go");
    }
}
