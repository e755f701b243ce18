//! The `twlab` command line: run cases with a report, list them, check them without
//! privileges, run claims, a rollout or a kernel matrix, and tell what this machine offers.
//! The `twlab` binary is [`main`] and nothing else, so a project can ship the same command
//! under its own name.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::matrix::{
    Matrix, MatrixKind, MatrixOptions, column_link, default_cache, guest_column, host_column,
    merge_files,
};
use crate::runner::progress::with_progress;
use crate::runner::results::RunResults;
use crate::runner::rollout;
use crate::runner::{
    TrialKind, TrialResult, artifacts_dir, claims, collect, doctor, headline, host_change_lines,
    html, include_slow_from_env, junit, recover_host, run_observed, with_pictures,
};
use clap::{Parser, Subcommand};

/// Writes to stdout where `print!` would panic when the reader has gone (`twlab list |
/// head`): the command then ends as a program killed by SIGPIPE would, with status 141.
/// (twlab keeps Rust's ignored SIGPIPE: a write to a program's closed stdin pipe must be an
/// error, not the end of twlab.)
fn write_stdout(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("twlab: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

macro_rules! out {
    ($($arg:tt)*) => { write_stdout(format_args!($($arg)*)) };
}

macro_rules! outln {
    () => { write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

#[derive(Parser)]
#[command(
    name = "twlab",
    version,
    about = "Integration tests for Linux TCP connection close: TIME_WAIT, port exhaustion, RSTs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run cases (default: cases/) and print a report with totals.
    Run {
        paths: Vec<PathBuf>,
        /// Print the full report of passing cases too.
        #[arg(short, long)]
        verbose: bool,
        /// Also run slow cases (they wait out real timers, minutes).
        #[arg(long)]
        include_slow: bool,
        /// Cases run at once (they mostly wait on kernel timers).
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// Also write the results as JSON to this file (status, failures, backend per trial).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write JUnit XML to this file (shaped like nextest's: a testcase per trial, the
        /// failed expectations with their observed values in each failure).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write an HTML report to this file: one self-contained page with every trial
        /// (failures first, filters), each expectation with its observed value, a ladder of
        /// the captured packets with each side's TCP states, and workloads' series. Taps
        /// every link of every case without a workload and follows its connections' states.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// List the trials the case files expand to.
    List { paths: Vec<PathBuf> },
    /// Run the cases that carry a claim (default: all of cases/) and print the claims table.
    Claims {
        paths: Vec<PathBuf>,
        /// text, md (Markdown, for a review) or json (a CI artifact).
        #[arg(long, value_enum, default_value_t = ClaimsFormat::Text)]
        format: ClaimsFormat,
        /// Also run slow claims (they wait out real timers, minutes).
        #[arg(long)]
        include_slow: bool,
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// Also write an HTML report to this file: every claim trial as `twlab run --html`
        /// draws it (its expectations, the ladder of its packets, its states).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Run the same cases on the host kernel and on other kernels booted under QEMU, and print
    /// a case × kernel table (exit 1 if any kernel failed a case or produced no results).
    ///
    /// Each kernel's column can also run as its own CI job (a shard: `--only host`, or
    /// `--kernel K --no-host`), each writing its matrix.json; `--merge` then builds the one
    /// matrix from them.
    Matrix {
        /// A kernel image (vmlinuz) or a Debian package (linux-image-6.1.0-56-amd64), fetched
        /// with apt-get download and cached. Repeat for more kernels; the host is the first
        /// column unless --no-host.
        #[arg(
            short,
            long = "kernel",
            value_name = "K",
            required_unless_present_any = ["only", "merge"],
            conflicts_with = "only"
        )]
        kernels: Vec<String>,
        /// Case files or directories (default: cases/); with --profile, where the workloads
        /// and claims are.
        paths: Vec<PathBuf>,
        /// Run this one kernel's column and no other: `host` (no QEMU), or a kernel as for
        /// --kernel (then without the host). A shard for one CI job; its matrix.json is
        /// what --merge reads.
        #[arg(long, value_name = "K", conflicts_with = "no_host")]
        only: Option<String>,
        /// Do not run the host's column: a shard of guests only (the host's column is
        /// another job's `--only host`).
        #[arg(long)]
        no_host: bool,
        /// Cases at once inside a guest (more than its CPUs makes timing cases fail).
        #[arg(long, default_value_t = 2)]
        guest_jobs: usize,
        /// Cases at once on the host.
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// Emulated CPUs per guest (default: this machine's).
        #[arg(long)]
        cpus: Option<usize>,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 2048)]
        memory: usize,
        /// Seconds a guest may run before it is stopped and reported.
        #[arg(long, default_value_t = 1200)]
        timeout: u64,
        #[arg(long)]
        include_slow: bool,
        /// Full reports of passing cases too, in each kernel's report.txt.
        #[arg(short, long)]
        verbose: bool,
        /// Merge the matrix.json files shards wrote (`--only K`, `--no-host`, on other
        /// machines) into one matrix, run nothing: the table on stdout, matrix.json and
        /// junit.xml in --out, exactly as one run of all their kernels writes them, and the
        /// same exit status. Columns: the host's first, then the others in the order the
        /// files are given. A file that is missing, not JSON, of another format, a kernel
        /// in two files, or shards of a --profile matrix with a cases matrix: exit 2.
        #[arg(
            long,
            value_name = "MATRIX_JSON",
            num_args = 1..,
            conflicts_with_all = [
                "kernels", "only", "no_host", "paths", "profiles", "guest_jobs", "jobs",
                "cpus", "memory", "timeout", "include_slow", "verbose", "cache", "pictures",
            ]
        )]
        merge: Vec<PathBuf>,
        /// Where reports, consoles and matrix.json go.
        #[arg(long, default_value = "target/twlab/matrix")]
        out: PathBuf,
        /// Where fetched kernels are kept (default: ~/.cache/twlab/kernels).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Run `twlab rollout` with this sysctl profile on every kernel instead of the cases
        /// (repeat for several files, applied in order): a workload × kernel table of what
        /// the profile changes on each. PATHS are then where the workloads and claims are.
        #[arg(long = "profile", value_name = "FILE")]
        profiles: Vec<PathBuf>,
        /// Draw each trial in matrix.html as `twlab run --html` does (the packet ladder with
        /// each side's TCP states): every kernel's run taps every link and follows its
        /// connections, which costs time under emulation; each column also gets its own
        /// report.html. Without it matrix.html lists the trials and their evidence, undrawn.
        #[arg(long, conflicts_with = "profiles")]
        pictures: bool,
    },
    /// What a sysctl profile changes on this kernel. Each key (sysctl.d syntax; several files
    /// apply in order, the later winning) is classified: applied per namespace, host-global,
    /// absent, refused or outside net., with its file:line and the reason. Then every workload
    /// (a case with `profile:`) and every shipped claim runs twice in this run, with this
    /// kernel's defaults and with the profile's keys, and the report says what changed and,
    /// by leaving one key out at a time, which key decided it. Needs root; per-namespace keys
    /// are only ever set in twlab's own namespaces.
    Rollout {
        /// Profile files (sysctl.d syntax), applied in order.
        #[arg(required_unless_present = "from_host")]
        profiles: Vec<PathBuf>,
        /// Take this host's current net.* values that differ from a new namespace's as the
        /// profile (before any files given).
        #[arg(long)]
        from_host: bool,
        /// Also set the profile's host-global keys (nf_conntrack_max...) for the profile's runs,
        /// through the guarded host path; restored after each run, and after a SIGKILL by the
        /// next twlab.
        #[arg(long)]
        host: bool,
        /// The namespaces every workload sets the profile in (comma-separated: client,server,router),
        /// instead of each workload's own `profile: roles:`.
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<String>>,
        /// Where workloads and claims are (default: cases/).
        #[arg(long = "cases")]
        cases: Vec<PathBuf>,
        /// Only classify the keys; run no workload.
        #[arg(long)]
        keys_only: bool,
        /// Do not run the shipped claims with the profile.
        #[arg(long)]
        no_claims: bool,
        /// At most this many one-key-out runs per changed workload.
        #[arg(long, default_value_t = 12)]
        ablation_limit: usize,
        /// Exit 1 when a workload or claim changed (`changed`) or got worse (`worse`: more
        /// failed attempts or RSTs) with the profile.
        #[arg(long, value_enum)]
        fail_on: Option<FailOnArg>,
        /// text, md (Markdown, for a review) or json (a CI artifact).
        #[arg(long, value_enum, default_value_t = ClaimsFormat::Text)]
        format: ClaimsFormat,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also run slow workloads and claims (they wait out real timers, minutes).
        #[arg(long)]
        include_slow: bool,
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// Also write an HTML report to this file: every subject with the defaults and with
        /// the profile side by side (a grid of two columns), each drawn as `twlab run --html`
        /// draws a trial; claims get their packet ladders, workloads their series.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Write a starting point into a repository (default: here): an example case with a
    /// comment per key, tests/twlab.rs (the harness), a CI job and the case schema; a
    /// minimal crate too where there is no Cargo.toml. Refuses to overwrite anything.
    Init {
        dir: Option<PathBuf>,
        /// How the project depends on twlab, as a TOML value (default: this twlab's checkout
        /// by path when it is still there, else its version).
        #[arg(long, value_name = "TOML")]
        twlab_dep: Option<String>,
    },
    /// Validate case files without running them (no privileges needed).
    Check { paths: Vec<PathBuf> },
    /// Print the JSON Schema of the case file format (for editors' YAML language servers).
    Schema {
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// What this machine offers (root, kernel, netem, nftables, conntrack, sysctl scope) and
    /// what each missing piece disables.
    Doctor,
}

/// What `twlab rollout --fail-on` gates on.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FailOnArg {
    Changed,
    Worse,
}

/// How `twlab claims` prints its table.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ClaimsFormat {
    Text,
    #[value(alias = "markdown")]
    Md,
    Json,
}

fn paths_or_default(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("cases")]
    } else {
        paths
    }
}

fn paths_text(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the process's arguments, runs the subcommand and returns its exit status: success
/// when it did what was asked (for `run`, every trial passed), failure otherwise.
///
/// ```no_run
/// // src/bin/mylab.rs: the twlab command, built with your crate
/// fn main() -> std::process::ExitCode {
///     twlab::cli::main()
/// }
/// ```
pub fn main() -> ExitCode {
    // Before any thread, namespace or socket exists: every program twlab starts is forked
    // from this clean copy, never from a process that holds a trial's descriptors.
    crate::spawn::start();
    match Cli::parse().command {
        Command::Run {
            paths,
            verbose,
            include_slow,
            jobs,
            json,
            junit,
            html,
        } => run(
            paths_or_default(paths),
            verbose,
            include_slow || include_slow_from_env(),
            jobs,
            Outputs { json, junit, html },
        ),
        Command::List { paths } => {
            for t in collect(&paths_or_default(paths)) {
                match t.kind {
                    TrialKind::Run { case, .. } => outln!("{:<56} {}", t.name, case.name),
                    TrialKind::Broken(_) => {
                        outln!("{:<56} (does not load: see `twlab check`)", t.name)
                    }
                    TrialKind::Refused { .. } => {
                        outln!("{:<56} (documents refused input)", t.name)
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Check { paths } => {
            let trials = collect(&paths_or_default(paths));
            let mut bad = 0;
            let mut seen = std::collections::BTreeSet::new();
            for t in &trials {
                match &t.kind {
                    TrialKind::Broken(errors) => {
                        bad += 1;
                        eprintln!("{errors}");
                    }
                    TrialKind::Run { case, .. } => {
                        seen.insert(case.id.clone());
                    }
                    TrialKind::Refused { .. } => {
                        seen.insert(t.name.clone());
                    }
                }
            }
            outln!("{} case files valid, {bad} invalid", seen.len());
            if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Rollout {
            profiles,
            from_host,
            host,
            roles,
            cases,
            keys_only,
            no_claims,
            ablation_limit,
            fail_on,
            format,
            json,
            include_slow,
            jobs,
            html,
        } => {
            for message in recover_host() {
                eprintln!("{message}");
            }
            let opts = rollout::RolloutOptions {
                profiles,
                from_host,
                host,
                roles,
                cases: paths_or_default(cases),
                keys_only,
                claims: !no_claims,
                jobs,
                include_slow: include_slow || include_slow_from_env(),
                ablation_limit,
                pictures: html.is_some(),
            };
            let done = with_progress(|p| rollout::rollout_watched(&opts, p));
            let (report, runs) = match done {
                Ok(r) => r,
                Err(e) => {
                    eprintln!(
                        "twlab rollout: {e} (per-namespace keys are tried in a network namespace of twlab's: run as root)"
                    );
                    return ExitCode::from(2);
                }
            };
            match format {
                ClaimsFormat::Md => out!("{}", report.markdown()),
                ClaimsFormat::Json => outln!("{}", report.json()),
                ClaimsFormat::Text => out!("{}", report.text()),
            }
            if let Some(path) = json
                && let Err(e) = write_file(&path, report.json() + "\n")
            {
                eprintln!("twlab rollout: failed to write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            if let (Some(path), Some(runs)) = (html, runs) {
                let sides = [
                    html::Section {
                        kernel: format!("{} defaults", report.release),
                        results: &runs.defaults,
                        link: None,
                    },
                    html::Section {
                        kernel: format!("{} profile", report.release),
                        results: &runs.profile,
                        link: None,
                    },
                ];
                let title = format!("twlab rollout {}", report.profiles.join(" "));
                let page = html::render(&title, &sides, &artifacts_dir().display().to_string());
                if let Err(e) = write_file(&path, page) {
                    eprintln!("twlab rollout: failed to write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            let gate = fail_on.map(|f| match f {
                FailOnArg::Changed => rollout::FailOn::Changed,
                FailOnArg::Worse => rollout::FailOn::Worse,
            });
            match gate {
                Some(on) if report.fails(on) => {
                    eprintln!("twlab rollout: {} (--fail-on)", report.summary());
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Command::Claims {
            paths,
            format,
            include_slow,
            jobs,
            html,
        } => {
            for message in recover_host() {
                eprintln!("{message}");
            }
            let paths = paths_or_default(paths);
            let mut trials = collect(&paths);
            if html.is_some() {
                trials = with_pictures(trials);
            }
            let slow = include_slow || include_slow_from_env();
            let (report, results) =
                with_progress(|p| claims::run_claims_watched(&trials, jobs, slow, p));
            if let Some(path) = html {
                let section = html::Section {
                    kernel: results.kernel.clone(),
                    results: &results,
                    link: None,
                };
                let title = format!("twlab claims {}", paths_text(&paths));
                let page = html::render(&title, &[section], &artifacts_dir().display().to_string());
                if let Err(e) = write_file(&path, page) {
                    eprintln!("twlab claims: failed to write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            match format {
                ClaimsFormat::Md => out!("{}", report.markdown()),
                ClaimsFormat::Json => outln!("{}", report.json()),
                ClaimsFormat::Text => out!("{}", report.text()),
            }
            if report.all_confirmed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Matrix { merge, out, .. } if !merge.is_empty() => merge_matrix(&merge, &out),
        Command::Matrix {
            kernels,
            only,
            no_host,
            paths,
            guest_jobs,
            jobs,
            cpus,
            memory,
            timeout,
            include_slow,
            verbose,
            out,
            cache,
            profiles,
            pictures,
            ..
        } => {
            // `--only host`: the host alone; `--only K`: K alone.
            let (host, kernels) = match only {
                Some(k) if k == "host" => (true, Vec::new()),
                Some(k) => (false, vec![k]),
                None => (!no_host, kernels),
            };
            matrix(MatrixOptions {
                host,
                kernels,
                paths: paths_or_default(paths),
                host_jobs: jobs,
                guest_jobs,
                guest_cpus: cpus.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
                }),
                guest_memory_mb: memory,
                timeout: std::time::Duration::from_secs(timeout),
                include_slow: include_slow || include_slow_from_env(),
                verbose,
                out,
                cache: cache.unwrap_or_else(default_cache),
                profiles,
                pictures,
            })
        }
        Command::Init { dir, twlab_dep } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let dep = twlab_dep.unwrap_or_else(crate::init::default_dependency);
            match crate::init::init(&dir, &dep) {
                Ok(done) => {
                    for p in &done.written {
                        outln!("wrote {}", p.display());
                    }
                    match done.add_to_manifest {
                        Some(lines) => outln!(
                            "\nadd to {}:\n\n{lines}\nthen, as root: TWLAB_STRICT=1 cargo test --test twlab",
                            dir.join("Cargo.toml").display()
                        ),
                        None => outln!(
                            "\nthen, as root: cd {} && TWLAB_STRICT=1 cargo test",
                            dir.display()
                        ),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("twlab init: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Doctor => {
            out!("{}", doctor::report());
            ExitCode::SUCCESS
        }
        Command::Schema { out } => {
            let text = crate::case::schema_text();
            match out {
                None => {
                    use std::io::Write;
                    match std::io::stdout().lock().write_all(text.as_bytes()) {
                        // `twlab schema | head` is not an error.
                        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                            eprintln!("twlab: cannot print the schema: {e}");
                            ExitCode::FAILURE
                        }
                        _ => ExitCode::SUCCESS,
                    }
                }
                Some(path) => match write_file(&path, text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("twlab: cannot write {}: {e}", path.display());
                        ExitCode::FAILURE
                    }
                },
            }
        }
    }
}

fn matrix(o: MatrixOptions) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&o.out) {
        eprintln!("twlab: failed to create {}: {e}", o.out.display());
        return ExitCode::FAILURE;
    }
    let mut columns = Vec::new();
    if o.host {
        eprintln!("matrix: host kernel ...");
        columns.push(host_column(&o));
    }
    for k in &o.kernels {
        eprintln!("matrix: {k} under QEMU ...");
        columns.push(guest_column(&o, k));
    }
    let kind = if o.profiles.is_empty() {
        MatrixKind::Cases
    } else {
        MatrixKind::Profile
    };
    let m = Matrix { kind, columns };
    let links: Vec<Option<String>> = m
        .columns
        .iter()
        .map(|c| column_link(&o.out, &o.out, c))
        .collect();
    write_matrix(&m, &o.out, &links)
}

/// `twlab matrix --merge`: the shards' matrix.json files as one matrix, written as one run
/// writes it.
fn merge_matrix(shards: &[PathBuf], out: &Path) -> ExitCode {
    let merged = match merge_files(shards) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("twlab matrix --merge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("twlab: failed to create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    // Each column's files are where its shard's matrix.json is, if the job kept them.
    let links: Vec<Option<String>> = merged
        .matrix
        .columns
        .iter()
        .zip(&merged.sources)
        .map(|(c, source)| {
            let dir = source.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            column_link(out, dir, c)
        })
        .collect();
    write_matrix(&merged.matrix, out, &links)
}

/// The table on stdout, matrix.json, junit.xml and matrix.html in `out` (`links`: each
/// column's directory relative to `out`); success when every kernel gave results and passed
/// every case.
fn write_matrix(m: &Matrix, out: &Path, links: &[Option<String>]) -> ExitCode {
    out!("{}", m.text());
    let mut files = vec![("results", "matrix.json", m.json() + "\n")];
    if m.kind == MatrixKind::Cases {
        files.push(("JUnit (a testsuite per kernel)", "junit.xml", m.junit()));
    }
    if let Some(page) = m.html(links) {
        files.push(("HTML report", "matrix.html", page));
    }
    // A file CI was told to keep that is missing fails the command, as a failed case does.
    let mut written = true;
    for (what, name, text) in files {
        let path = out.join(name);
        match std::fs::write(&path, text) {
            Ok(()) => outln!("matrix: {what} in {}", path.display()),
            Err(e) => {
                eprintln!("twlab: failed to write {}: {e}", path.display());
                written = false;
            }
        }
    }
    if m.green() && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The files `twlab run` also writes.
struct Outputs {
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    html: Option<PathBuf>,
}

fn run(
    paths: Vec<PathBuf>,
    verbose: bool,
    include_slow: bool,
    jobs: usize,
    outputs: Outputs,
) -> ExitCode {
    for message in recover_host() {
        outln!("{message}");
    }
    let mut trials = collect(&paths);
    if outputs.html.is_some() {
        trials = with_pictures(trials);
    }
    let started = std::time::Instant::now();
    let runs = with_progress(|p| run_observed(&trials, jobs, include_slow, p));
    let all = RunResults::of_runs(
        trials.iter().map(|t| t.name.as_str()).zip(&runs),
        started.elapsed().as_secs_f64(),
    );
    let mut files = Vec::new();
    if let Some(path) = outputs.json {
        files.push((
            path,
            serde_json::to_string_pretty(&all).expect("results serialize") + "\n",
        ));
    }
    if let Some(path) = outputs.junit {
        let suite = junit::Suite {
            name: format!("twlab@{}", all.kernel),
            results: &all,
        };
        files.push((path, junit::render("twlab-run", &[suite])));
    }
    if let Some(path) = outputs.html {
        let section = html::Section {
            kernel: all.kernel.clone(),
            results: &all,
            link: None,
        };
        let title = format!("twlab run {}", paths_text(&paths));
        files.push((
            path,
            html::render(&title, &[section], &artifacts_dir().display().to_string()),
        ));
    }
    for (path, text) in files {
        if let Err(e) = write_file(&path, text) {
            eprintln!("twlab: failed to write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let (mut passed, mut xfail, mut failed, mut ignored) = (0, 0, 0, 0);
    outln!();
    for (t, (e, _)) in trials.iter().zip(runs.iter()) {
        match &e.result {
            TrialResult::Passed(text) => {
                passed += 1;
                let judged = match (&t.kind, &e.report) {
                    (TrialKind::Run { case, .. }, Some(report)) => Some((case, report)),
                    _ => None,
                };
                match judged {
                    _ if verbose => outln!("{text}"),
                    Some((case, report)) => {
                        outln!("ok   {}", headline(case, report));
                        // Host-global changes are always listed, even for passing cases.
                        for line in host_change_lines(report) {
                            outln!("     {line}");
                        }
                    }
                    None => match &t.kind {
                        TrialKind::Refused { expected, .. } => outln!(
                            "ok   {}: refused before running, as the case expects (\"{expected}\")",
                            t.name
                        ),
                        _ => outln!("ok   {}", t.name),
                    },
                }
            }
            TrialResult::Xfail(text) => {
                xfail += 1;
                match (&t.kind, &e.report) {
                    _ if verbose => outln!("{text}"),
                    (TrialKind::Run { case, .. }, Some(report)) => {
                        outln!("xfail {}", headline(case, report));
                        for line in &e.facts.xfails {
                            outln!("     {line}");
                        }
                    }
                    _ => outln!("xfail {}", t.name),
                }
            }
            TrialResult::Failed(report) => {
                failed += 1;
                outln!("=== FAILED {}\n{report}", t.name);
            }
            TrialResult::Ignored(reason) => {
                ignored += 1;
                outln!("--- skipped {}: {reason}", t.name);
            }
        }
    }
    let xfail = match xfail {
        0 => String::new(),
        n => format!(", {n} xfail"),
    };
    outln!(
        "\ntwlab: {passed} passed{xfail}, {failed} failed, {ignored} skipped in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes an output file the user named, making its directory first (`--html
/// target/twlab/report.html` before anything made `target/twlab`).
fn write_file(path: &std::path::Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}
