//! Running the same cases on each kernel of the matrix: the host as it is, then each guest in
//! turn (one at a time: a TCG guest uses every CPU, and timing cases need them).

use crate::spawn::{Command, Stdio};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::observe::kernel_release;
use crate::runner::results::RunResults;
use crate::runner::rollout::RolloutReport;

use super::guest::{self, GuestSpec};
use super::initramfs;
use super::kernel::{self, Kernel};
use super::watch::watched;

pub struct MatrixOptions {
    /// Whether the host's column runs (`--no-host`, `--only K`: not).
    pub host: bool,
    /// The guests' kernels, in the table's order after the host.
    pub kernels: Vec<String>,
    pub paths: Vec<PathBuf>,
    /// Cases at once on the host.
    pub host_jobs: usize,
    /// Cases at once in a guest (2 emulated CPUs: more makes timing cases fail spuriously).
    pub guest_jobs: usize,
    pub guest_cpus: usize,
    pub guest_memory_mb: usize,
    pub timeout: Duration,
    pub include_slow: bool,
    /// Full reports of passing trials too (every observed value), in each kernel's report.
    pub verbose: bool,
    pub out: PathBuf,
    pub cache: PathBuf,
    /// `--profile`: each kernel runs `twlab rollout` with these files instead of the cases.
    pub profiles: Vec<PathBuf>,
    /// `--pictures`: each kernel's `twlab run` also gets `--html` (its own report.html), so
    /// that its trials are drawn (links tapped, states followed) and the results carry the
    /// pictures into matrix.html.
    pub pictures: bool,
}

/// One column of the table: a kernel and what its run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    /// `host` or what the user named (package or image path).
    pub label: String,
    pub release: String,
    pub guest: bool,
    /// Why this kernel produced no results (did not boot, timed out, crashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<RunResults>,
    /// With `--profile`: the kernel's rollout report instead of case results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutReport>,
    /// Where its report, console and JSON are.
    pub dir: PathBuf,
    pub seconds: f64,
}

impl Column {
    /// `6.1.0-57-amd64 (linux-image-6.1.0-57-amd64)`, or the label alone before the kernel
    /// was known.
    pub fn head(&self) -> String {
        if self.release.is_empty() {
            self.label.clone()
        } else {
            format!("{} ({})", self.release, self.label)
        }
    }
}

fn safe_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches(['_', '.'])
        .to_string()
}

fn twlab_args(o: &MatrixOptions, jobs: usize, json: &Path) -> Vec<String> {
    let subcommand = if o.profiles.is_empty() {
        "run"
    } else {
        "rollout"
    };
    let mut args = vec![
        subcommand.to_string(),
        "-j".into(),
        jobs.to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    if o.include_slow {
        args.push("--include-slow".into());
    }
    if o.profiles.is_empty() {
        if o.verbose {
            args.push("-v".into());
        }
        if o.pictures {
            args.push("--html".into());
            args.push(json.with_file_name("report.html").display().to_string());
        }
        args.extend(o.paths.iter().map(|p| p.display().to_string()));
    } else {
        for p in &o.paths {
            args.push("--cases".into());
            args.push(p.display().to_string());
        }
        args.extend(o.profiles.iter().map(|p| p.display().to_string()));
    }
    args
}

/// What a column's run wrote: case results, or with `--profile` a rollout report.
fn read_results(o: &MatrixOptions, path: &Path, col: &mut Column) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no results at {}: {e}", path.display()))?;
    let unreadable = |e: serde_json::Error| format!("unreadable results {}: {e}", path.display());
    if o.profiles.is_empty() {
        col.results = Some(serde_json::from_str(&text).map_err(unreadable)?);
    } else {
        col.rollout = Some(serde_json::from_str(&text).map_err(unreadable)?);
    }
    Ok(())
}

fn fresh_dir(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))
}

/// The host kernel: the same binary, as a child process, so every column ran the same way.
pub fn host_column(o: &MatrixOptions) -> Column {
    let dir = o.out.join("host");
    let started = Instant::now();
    let mut col = Column {
        label: "host".into(),
        release: kernel_release(),
        guest: false,
        error: None,
        notes: Vec::new(),
        results: None,
        rollout: None,
        dir: dir.clone(),
        seconds: 0.0,
    };
    let outcome = fresh_dir(&dir).and_then(|()| {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find twlab itself: {e}"))?;
        let report = std::fs::File::create(dir.join("report.txt"))
            .map_err(|e| format!("failed to create the report: {e}"))?;
        let json = dir.join("results.json");
        let mut cmd = Command::new(exe);
        cmd.args(twlab_args(o, o.host_jobs, &json))
            .env("TWLAB_ARTIFACTS", dir.join("artifacts"))
            .stdin(Stdio::Null)
            .stdout(report.try_clone().map_err(|e| e.to_string())?.into())
            .stderr(report.into());
        watched("host", &dir.join("report.txt"), || cmd.status())
            .map_err(|e| format!("failed to run twlab: {e}"))?;
        Ok(json)
    });
    match outcome.and_then(|json| read_results(o, &json, &mut col)) {
        Ok(()) => {}
        Err(e) => col.error = Some(e),
    }
    col.seconds = started.elapsed().as_secs_f64();
    col
}

/// A guest column: prepare the kernel, boot it, run the cases, read back the JSON.
pub fn guest_column(o: &MatrixOptions, spec: &str) -> Column {
    let dir = o.out.join(safe_name(spec));
    let started = Instant::now();
    let mut col = Column {
        label: spec.to_string(),
        release: String::new(),
        guest: true,
        error: None,
        notes: Vec::new(),
        results: None,
        rollout: None,
        dir: dir.clone(),
        seconds: 0.0,
    };
    let kernel = match kernel::resolve(spec, &o.cache) {
        Ok(k) => k,
        Err(e) => {
            col.error = Some(e.to_string());
            return col;
        }
    };
    col.release = kernel.release.clone();
    col.notes = kernel.notes.clone();
    if let Err(e) = boot(o, &kernel, &dir, &mut col) {
        col.error = Some(e);
    }
    col.seconds = started.elapsed().as_secs_f64();
    col
}

fn boot(o: &MatrixOptions, kernel: &Kernel, dir: &Path, col: &mut Column) -> Result<(), String> {
    fresh_dir(dir)?;
    // Absolute paths: the guest sees the host root at the same places.
    let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let initrd = dir.join("initramfs.cpio");
    initramfs::build(&kernel.modules, &kernel.release, &initrd).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find twlab itself: {e}"))?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let json = dir.join("results.json");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let args: Vec<String> = twlab_args(o, o.guest_jobs, &json)
        .iter()
        .map(|a| quote(a))
        .collect();
    let script = format!(
        "# run by twlab's guest init (twlab matrix)\ncd {cwd}\nexport TWLAB_ARTIFACTS={artifacts}\n{exe} {args} >{report} 2>&1\necho $? >{rc}\n",
        // The guest's own writes vanish with its overlay: pcaps of failures go to the share.
        artifacts = quote(&dir.join("artifacts").display().to_string()),
        cwd = quote(&cwd.display().to_string()),
        exe = quote(&exe.display().to_string()),
        args = args.join(" "),
        report = quote(&dir.join("report.txt").display().to_string()),
        rc = quote(&dir.join("rc").display().to_string()),
    );
    let script_path = dir.join("run.sh");
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    let spec = GuestSpec {
        kernel,
        initramfs: &initrd,
        script: &script_path,
        results: &dir,
        timeout: o.timeout,
        cpus: o.guest_cpus,
        memory_mb: o.guest_memory_mb,
    };
    let run = watched(&col.label, &dir.join("report.txt"), || guest::run(&spec))
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&initrd);
    col.notes.push(format!(
        "guest ran {:.1} s (boot to power-off)",
        run.elapsed.as_secs_f64()
    ));
    if run.timed_out {
        return Err(format!(
            "the guest did not finish within {} s and was stopped; last console lines:\n{}",
            o.timeout.as_secs(),
            run.console_tail(20)
        ));
    }
    match read_results(o, &json, col) {
        Ok(()) => Ok(()),
        Err(e) => {
            let rc = std::fs::read_to_string(dir.join("rc")).ok();
            let why = match rc {
                Some(rc) => format!(
                    "twlab ran in the guest but wrote no results (exit {}); see {}",
                    rc.trim(),
                    dir.join("report.txt").display()
                ),
                None => "the guest never ran twlab (did not boot or init failed)".to_string(),
            };
            Err(format!(
                "{why}: {e}; last console lines ({}):\n{}",
                run.console.display(),
                run.console_tail(20)
            ))
        }
    }
}
