//! The crate's modules form a one-way chain: each may use the ones before it, never one after
//! it. Data flows case -> plan -> lab -> engine -> observations -> verdicts -> renderers, and
//! a module that reached up the chain would tie the layers into a knot again (six of them
//! were one import cycle before). Add a module to ORDER where it belongs; ARCHITECTURE.md
//! draws the same chain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Lowest first.
const ORDER: &[&str] = &[
    "vocab", "kernel", "host", "profile", "spawn", "topology", "case", "plan", "netns", "observe",
    "impair", "scenario", "expect", "runner", "harness", "init", "matrix", "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a file names through `crate::` (paths and `use crate::{..}` groups).
fn used_modules(source: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            // A macro's `$crate::` is the crate's public surface, not a module.
            let in_macro = rest[..i].ends_with('$');
            rest = &rest[i + "crate::".len()..];
            if in_macro {
                continue;
            }
            let group = rest.strip_prefix('{');
            let names: Vec<&str> = match group {
                // `crate::{a::X, b}`: each first segment (one line groups; rustfmt keeps a
                // multi-line group's items on their own lines, read below).
                Some(g) => g
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest.split("::").next().unwrap_or("")],
            };
            for n in names {
                let n: String = n
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                used.insert(n);
            }
        }
    }
    used.remove("");
    // Items of a multi-line `use crate::{` group.
    let mut in_group = false;
    for line in source.lines() {
        let t = line.trim();
        if t.starts_with("use crate::{") && !t.contains('}') {
            in_group = true;
            continue;
        }
        if in_group {
            if t.starts_with('}') {
                in_group = false;
                continue;
            }
            for item in t.split(',') {
                let n: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !n.is_empty() {
                    used.insert(n);
                }
            }
        }
    }
    used
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut unknown = BTreeSet::new();
    for (rank, module) in ORDER.iter().enumerate() {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let single = src.join(format!("{module}.rs"));
        if single.is_file() {
            files.push(single);
        }
        assert!(!files.is_empty(), "module `{module}` in ORDER has no files");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in used_modules(&text) {
                match ORDER.iter().position(|m| *m == used) {
                    Some(r) if r > rank => violations.push(format!(
                        "{} uses `{used}`, which is above `{module}`",
                        file.strip_prefix(&src).unwrap().display()
                    )),
                    Some(_) => {}
                    None if used == *module => {}
                    None => {
                        unknown.insert(used);
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports up the chain ({}):\n  {}",
        ORDER.join(" < "),
        violations.join("\n  ")
    );
    // Every top-level module is in ORDER (a new one must say where it belongs).
    let mut top = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let name = name.trim_end_matches(".rs").to_string();
        if !["lib", "main"].contains(&name.as_str()) {
            top.insert(name);
        }
    }
    let missing: Vec<&String> = top
        .iter()
        .filter(|m| !ORDER.contains(&m.as_str()))
        .collect();
    assert!(missing.is_empty(), "modules not in ORDER: {missing:?}");
    assert!(
        unknown.iter().all(|u| top.contains(u) || u == "self"),
        "crate:: paths to modules not in src/: {unknown:?}"
    );
}

#[test]
fn the_reader_sees_groups_and_paths() {
    let used = used_modules(
        "use crate::case::Check;\nuse crate::{observe::X, vocab};\nuse crate::{\n    netns::Lab,\n    spawn,\n};\nlet x = crate::host::apply(); // crate::matrix",
    );
    let want: BTreeSet<String> = ["case", "observe", "vocab", "netns", "spawn", "host"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(used, want);
}

/// Inside `host/` (the code that touches the initial namespace), the files form a chain too:
/// the guard uses everything, nothing uses the guard.
const HOST_ORDER: &[&str] = &[
    "error", "change", "keys", "journal", "lock", "netns", "active", "config", "recover",
    "signals", "guard",
];

#[test]
fn host_files_form_a_chain() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/host");
    let mut violations = Vec::new();
    for (rank, file) in HOST_ORDER.iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap();
        for line in text.lines().filter(|l| l.starts_with("use super::"))
        // top level: a test module's `use super::*` is its own
        {
            let used: String = line
                .trim_start()
                .trim_start_matches("use super::")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            match HOST_ORDER.iter().position(|f| *f == used) {
                Some(r) if r >= rank => violations.push(format!(
                    "host/{file}.rs uses `{used}`, which is not below it"
                )),
                Some(_) => {}
                None => violations.push(format!("host/{file}.rs uses `{used}`, not in HOST_ORDER")),
            }
        }
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|f| f != "mod")
        .collect();
    files.sort();
    let mut known: Vec<String> = HOST_ORDER.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(files, known, "every file of host/ is in HOST_ORDER");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
