//! A libtest-compatible harness for tests that need what only some machines have (root,
//! namespaces, conntrack): where that is missing each test is reported as ignored with the
//! reason, not as a pass; under TWLAB_STRICT (privileged CI) as a failure. The standard
//! harness cannot ignore at run time, so these test targets use `harness = false`.

// Each test target uses the parts it needs.
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// What a test needs before it can run.
#[derive(Clone, Copy)]
pub enum Needs {
    /// Ok, or why this machine cannot run it.
    Probe(fn() -> Result<(), String>),
    /// A helper other tests start in a child process: ignored unless asked for (--ignored).
    Helper,
}

fn namespaces_probe() -> Result<(), String> {
    twlab::runner::namespaces_available()
}

fn nothing_probe() -> Result<(), String> {
    Ok(())
}

/// Network namespaces (root): what most of these tests need.
pub const NAMESPACES: Needs = Needs::Probe(namespaces_probe);
/// Runs anywhere.
pub const NOTHING: Needs = Needs::Probe(nothing_probe);
pub const HELPER: Needs = Needs::Helper;

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// Runs `tests` as a libtest binary; each checks what it needs first. Never returns.
pub fn run(tests: Vec<(&'static str, fn(), Needs)>) -> ! {
    // Before any thread: programs these tests start are forked from a clean copy.
    twlab::spawn::start();
    let args = Arguments::from_args();
    let trials = tests
        .into_iter()
        .map(|(name, test, needs)| {
            let probe = match needs {
                Needs::Probe(p) => p,
                Needs::Helper => nothing_probe,
            };
            Trial::ignorable_test(name, move || match probe() {
                Err(reason) if twlab::runner::strict() => Err(Failed::from(format!(
                    "TWLAB_STRICT is set and this test would be skipped: {reason}"
                ))),
                Err(reason) => Ok(Completion::ignored_with(reason)),
                Ok(()) => match catch_unwind(AssertUnwindSafe(test)) {
                    Ok(()) => Ok(Completion::Completed),
                    Err(p) => Err(Failed::from(panic_message(p))),
                },
            })
            .with_ignored_flag(matches!(needs, Needs::Helper))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// The target's `main`: `tests_main!(harness::NAMESPACES => [test_a, test_b], ...)`.
#[macro_export]
macro_rules! tests_main {
    ($($needs:expr => [$($test:ident),* $(,)?]),+ $(,)?) => {
        fn main() {
            let tests: Vec<(&'static str, fn(), harness::Needs)> =
                vec![$($((stringify!($test), $test as fn(), $needs)),*),+];
            harness::run(tests);
        }
    };
}
