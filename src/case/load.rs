//! Finding case files and loading one into a checked `Case`.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::check::Expectation;
use crate::topology::{Topology, builtin, builtin_names, load_topology, topology_dir};

use super::given::LoadOptions;

use super::model::{
    Backend, CaseFile, ClaimSpec, ConntrackSpec, DropSpec, ImpairSpec, Requirement, Step,
};
use super::validate::{SysctlSetting, validate};
use crate::vocab::{CaseErrors, Family, SourceError};

/// A case ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// Path under the cases directory without `.yaml`: the test name.
    pub id: String,
    pub path: PathBuf,
    pub source: String,
    pub name: String,
    pub description: String,
    pub topology: Topology,
    pub families: Vec<Family>,
    pub sysctls: Vec<SysctlSetting>,
    /// A rollout workload's roles (`profile: {roles: [...]}`): where a profile's keys go.
    pub profile_roles: Option<Vec<String>>,
    pub claim: Option<ClaimSpec>,
    /// Waits out real timers: skipped unless slow cases are asked for.
    pub slow: bool,
    /// Known to fail as a whole (`xfail:`), and why.
    pub xfail: Option<String>,
    pub impair: Vec<ImpairSpec>,
    pub backend: Option<Backend>,
    pub requires: Vec<Requirement>,
    pub drops: Vec<DropSpec>,
    pub conntrack: Vec<ConntrackSpec>,
    /// Host-global sysctls (key, value) applied through `host` for the case.
    pub host_sysctls: Vec<(String, String)>,
    /// The case's `vars:` (name, value), for `{NAME}` placeholders in `exec` steps.
    pub vars: Vec<(String, String)>,
    pub steps: std::sync::Arc<Vec<Spanned<Step>>>,
    pub expectations: Vec<Expectation>,
    /// Tap every link and follow each connection's state, for the HTML report's ladder: set
    /// by the runner (`--html`), never by the file. A case with a workload shows its series
    /// instead of each packet, so this does nothing there.
    pub picture: bool,
}

impl Case {
    /// Whether the case drives a workload (top-level only: workloads cannot be repeated).
    pub fn has_workload(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.value, Step::Workload(_)))
    }

    /// Whether an `inject` step reads a number from the capture (so the taps must run).
    pub fn injects_from_capture(&self) -> bool {
        fn in_steps(steps: &[Spanned<Step>]) -> bool {
            steps.iter().any(|s| match &s.value {
                Step::Inject(i) => i.needs_capture(),
                Step::Repeat(r) => in_steps(&r.steps),
                _ => false,
            })
        }
        in_steps(&self.steps)
    }

    /// Whether the case sets any impairment or drop, at the start or in a step.
    pub fn uses_impairments(&self) -> bool {
        fn in_steps(steps: &[Spanned<Step>]) -> bool {
            steps.iter().any(|s| match &s.value {
                Step::Impair(_) | Step::SetDrop(_) => true,
                Step::Repeat(r) => in_steps(&r.steps),
                _ => false,
            })
        }
        !self.impair.is_empty()
            || !self.drops.is_empty()
            || !self.requires.is_empty()
            || self.backend.is_some()
            || in_steps(&self.steps)
    }

    /// The programs `exec` steps start (their `argv[0]`), each once, in step order.
    pub fn programs(&self) -> Vec<&str> {
        fn walk<'a>(steps: &'a [Spanned<Step>], out: &mut Vec<&'a str>) {
            for s in steps {
                match &s.value {
                    Step::Exec(e) => {
                        if let Some(p) = e.argv.value.first()
                            && !out.contains(&p.value.0.as_str())
                        {
                            out.push(&p.value.0);
                        }
                    }
                    Step::Repeat(r) => walk(&r.steps, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }

    /// Reorder and duplicate exist only in netem.
    pub fn needs_netem_only_features(&self) -> bool {
        fn netem_only(i: &ImpairSpec) -> bool {
            i.reorder.is_some() || i.duplicate.is_some()
        }
        fn in_steps(steps: &[Spanned<Step>]) -> bool {
            steps.iter().any(|s| match &s.value {
                Step::Impair(i) => netem_only(i),
                Step::Repeat(r) => in_steps(&r.steps),
                _ => false,
            })
        }
        self.impair.iter().any(netem_only) || in_steps(&self.steps)
    }
}

/// Every `*.yaml` / `*.yml` below the given paths (files are taken as they are), sorted.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for root in paths {
        if root.is_file() {
            let base = root.parent().map(Path::to_path_buf).unwrap_or_default();
            out.push((base, root.clone()));
            continue;
        }
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let p = entry?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    out.push((root.clone(), p));
                }
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The test name of a case file: its path under `root`, without the extension.
pub fn case_id(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}

/// What a file that documents refused input expects: `expect_invalid: TEXT`, read leniently so
/// it is found even when the rest of the file does not load.
pub fn expected_refusal(source: &str) -> Option<(String, Option<ClaimSpec>)> {
    #[derive(serde::Deserialize)]
    struct Probe {
        expect_invalid: Option<String>,
        claim: Option<ClaimSpec>,
    }
    let probe = crate::vocab::parse_yaml::<Probe>(source).ok()?;
    Some((probe.expect_invalid?, probe.claim))
}

pub fn load_case(root: &Path, path: &Path) -> Result<Case, CaseErrors> {
    load_case_with(root, path, &LoadOptions::default())
}

/// `load_case` with the variables and binaries a harness call gives.
pub fn load_case_with(root: &Path, path: &Path, given: &LoadOptions) -> Result<Case, CaseErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        CaseErrors(vec![SourceError::whole_file(
            path,
            format!("failed to read case file: {e}"),
        )])
    })?;
    load_case_source_with(root, path, source, given)
}

pub fn load_case_source(root: &Path, path: &Path, source: String) -> Result<Case, CaseErrors> {
    load_case_source_with(root, path, source, &LoadOptions::default())
}

fn load_case_source_with(
    root: &Path,
    path: &Path,
    source: String,
    given: &LoadOptions,
) -> Result<Case, CaseErrors> {
    let blank = source
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Err(CaseErrors(vec![SourceError::whole_file(
            path,
            "the file is empty (nothing but blank lines and comments)",
        )]));
    }
    let file: CaseFile = crate::vocab::parse_yaml(&source)
        .map_err(|e| CaseErrors(vec![SourceError::from_yaml(path, &source, &e)]))?;
    let topo_name = &file.topology;
    // A local `namespaces/NAME.yaml` first (it adds topologies or overrides a built-in one),
    // then the built-in topologies.
    let local = topology_dir(path).map(|d| d.join(format!("{}.yaml", topo_name.value)));
    let topology = match local.filter(|p| p.is_file()) {
        Some(topo_path) => load_topology(&topo_path, &topo_name.value)?,
        None => match builtin(&topo_name.value) {
            Some(t) => t?,
            None => {
                return Err(CaseErrors(vec![SourceError::at(
                    path,
                    &source,
                    topo_name.referenced,
                    unknown_topology(&topo_name.value, topology_dir(path).as_deref()),
                )]));
            }
        },
    };
    let v = validate(&file, path, &source, &topology, given).map_err(CaseErrors)?;
    if let Some(expected) = &file.expect_invalid {
        return Err(CaseErrors(vec![SourceError::at(
            path,
            &source,
            expected.referenced,
            format!(
                "the case says it must be refused (\"{}\"), but it loads without error",
                expected.value
            ),
        )]));
    }
    Ok(Case {
        id: case_id(root, path),
        path: path.to_path_buf(),
        name: file.name.value,
        description: file.description,
        topology,
        families: v.families,
        sysctls: v.sysctls,
        profile_roles: v.profile_roles,
        claim: file.claim.map(|c| c.value),
        slow: file.slow,
        xfail: file.xfail,
        impair: file.impair.into_iter().map(|s| s.value).collect(),
        backend: file.backend.map(|b| b.value),
        requires: file.requires.into_iter().map(|r| r.value).collect(),
        drops: file.drops.into_iter().map(|d| d.value).collect(),
        conntrack: file.conntrack.into_iter().map(|c| c.value).collect(),
        host_sysctls: v.host_sysctls,
        vars: placeholder_values(&file.vars, given, &v.bins),
        steps: std::sync::Arc::new(file.steps),
        expectations: v.expectations,
        source,
        picture: false,
    })
}

/// Why `name` is no topology: the built-in names and the local directory's, if there is one.
fn unknown_topology(name: &str, dir: Option<&Path>) -> String {
    let mut msg = format!(
        "unknown topology `{name}`: the built-in ones are {}",
        builtin_names().join(", ")
    );
    match dir {
        Some(dir) => {
            let mut known: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            known.sort();
            msg += &format!(
                ", and {} has {} (there is no {name}.yaml)",
                dir.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        None => msg += "; a `namespaces/` directory beside the cases (or above them) can add one",
    }
    msg
}

/// The values of `{NAME}` and `{bin.NAME}`: the file's `vars:`, the harness's variables over
/// them, and each binary the case names, as `bin.NAME`.
fn placeholder_values(
    file_vars: &super::program::Vars,
    given: &LoadOptions,
    bins: &[(String, std::path::PathBuf)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = file_vars
        .iter()
        .map(|(k, v)| (k.value.clone(), v.value.0.clone()))
        .collect();
    for (k, v) in &given.vars {
        vars.retain(|(name, _)| name != k);
        vars.push((k.clone(), v.clone()));
    }
    for (name, path) in bins {
        vars.push((format!("bin.{name}"), path.display().to_string()));
    }
    vars
}
