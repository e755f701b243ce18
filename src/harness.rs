//! The test harness for a `[[test]] harness = false` target, in your repository or twlab's
//! own: the crate's public entry point (`twlab::Harness`, `twlab::harness!`).

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::case::LoadOptions;
use crate::runner::{
    TrialKind, TrialResult, collect_with, execute_with, include_slow_from_env, recover_host,
};

/// Cases mostly wait on the kernel's timers, not the CPU: more than one per core.
const DEFAULT_THREADS: usize = 8;

/// The cases of one test target: every case file under a directory becomes one test per
/// address family, run by the suite's rules, with libtest's command line (`cargo test --
/// NAME`, `--list`, `--include-ignored`, `--test-threads`, `--nocapture`) and nextest's.
///
/// ```no_run
/// // tests/twlab.rs, with this in Cargo.toml:
/// //   [[test]]
/// //   name = "twlab"
/// //   harness = false
/// # macro_rules! env { ($name:literal) => { concat!("/target/", $name) } }
/// fn main() {
///     twlab::Harness::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cases"))
///         .bin("echo-server", env!("CARGO_BIN_EXE_echo-server"))
///         .var("port", "8080")
///         .run()
/// }
/// ```
///
/// With no variables or binaries, [`harness!`](crate::harness!) is the same in one line.
///
/// What [`run`](Harness::run) does, in order:
/// - starts twlab's program spawner before any thread exists (programs are forked from
///   that clean copy, never from a process holding a trial's sockets);
/// - undoes host-global settings a killed earlier run left behind;
/// - runs each case as a test. A file that does not load is one failing test, and the
///   others still run. A slow case is ignored the libtest way unless `TWLAB_INCLUDE_SLOW=1`
///   or `--include-ignored`. A case skipped for want of root or a kernel part is an ignored
///   test with the reason, and a failure under `TWLAB_STRICT=1`.
#[derive(Debug, Clone)]
pub struct Harness {
    dirs: Vec<PathBuf>,
    given: LoadOptions,
}

impl Harness {
    /// Every case file (`*.yaml`, `*.yml`) under `dir`, recursively. Give an absolute path
    /// (`concat!(env!("CARGO_MANIFEST_DIR"), "/cases")`), so that the tests run the same from
    /// any working directory.
    pub fn new(dir: impl AsRef<Path>) -> Harness {
        Harness {
            dirs: vec![dir.as_ref().to_path_buf()],
            given: LoadOptions::default(),
        }
    }

    /// Also the case files under `dir`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Harness {
        self.dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// A value for the `{NAME}` placeholder in `exec` steps, over a case's own `vars:` entry.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Harness {
        self.given.vars.push((name.into(), value.into()));
        self
    }

    /// A binary of your crate for the `{bin.NAME}` placeholder: pass
    /// `env!("CARGO_BIN_EXE_NAME")`, which cargo sets while it builds integration tests. A
    /// case that names a binary given here nor in the environment is refused at its
    /// placeholder.
    pub fn bin(mut self, name: impl Into<String>, path: impl AsRef<Path>) -> Harness {
        self.given
            .bins
            .push((name.into(), path.as_ref().to_path_buf()));
        self
    }

    /// The tests these cases expand to, as libtest-mimic trials. To run them beside tests of
    /// your own, use [`run_with`](Harness::run_with), which also starts the spawner and
    /// recovers the host first.
    pub fn trials(&self) -> Vec<Trial> {
        collect_with(&self.dirs, &self.given)
            .into_iter()
            .map(|spec| {
                let name = spec.name.clone();
                // Slow cases are ignored the libtest way (run with --include-ignored), so
                // nextest and strict mode treat them as filtered, not as skipped for want of a
                // capability.
                let slow = matches!(&spec.kind, TrialKind::Run { case, .. } if case.slow)
                    && !include_slow_from_env();
                Trial::ignorable_test(name, move || match execute_with(&spec, true) {
                    // libtest has no xfail: it passes, and the report says xfail.
                    TrialResult::Passed(report) | TrialResult::Xfail(report) => {
                        if std::env::args().any(|a| a == "--nocapture") {
                            println!("{report}");
                        }
                        Ok(Completion::Completed)
                    }
                    TrialResult::Failed(report) => Err(Failed::from(report)),
                    TrialResult::Ignored(reason) => Ok(Completion::ignored_with(reason)),
                })
                .with_ignored_flag(slow)
            })
            .collect()
    }

    /// Runs the tests with the process's arguments and exits with their status.
    pub fn run(self) -> ! {
        self.run_with(Vec::new())
    }

    /// [`run`](Harness::run), with tests of your own beside the cases'.
    ///
    /// ```no_run
    /// use twlab::libtest_mimic::Trial;
    ///
    /// fn main() {
    ///     twlab::Harness::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cases"))
    ///         .run_with(vec![Trial::test("config_parses", || Ok(()))])
    /// }
    /// ```
    pub fn run_with(self, mut tests: Vec<Trial>) -> ! {
        // First, before any thread: programs are forked from this clean copy.
        crate::spawn::start();
        let mut args = Arguments::from_args();
        if args.test_threads.is_none() {
            args.test_threads = Some(DEFAULT_THREADS);
        }
        // Listing runs nothing, so it needs no host recovery (nor root).
        if !args.list {
            for message in recover_host() {
                eprintln!("{message}");
            }
        }
        let mut all = self.trials();
        all.append(&mut tests);
        libtest_mimic::run(&args, all).exit()
    }
}

/// `fn main` for a `harness = false` test target that runs every case under `$dir` (relative
/// to the crate's manifest), as [`Harness::run`] does.
///
/// ```no_run
/// // tests/twlab.rs
/// twlab::harness!("cases");
/// ```
#[macro_export]
macro_rules! harness {
    ($dir:expr) => {
        fn main() {
            $crate::Harness::new(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir)).run()
        }
    };
}
