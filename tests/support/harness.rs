//! A libtest-compatible harness for tests that need what only some machines have (root,
//! namespaces, conntrack): where that is missing each test is reported as ignored with the
//! reason, not as a pass; under TWLAB_STRICT (privileged CI) as a failure. The standard
//! harness cannot ignore at run time, so these test targets use `harness = false`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// What a test target needs: Ok, or why this machine cannot run it.
pub type Needs = fn() -> Result<(), String>;

/// Network namespaces (root): what most of these tests need.
pub fn namespaces() -> Result<(), String> {
    twlab::runner::namespaces_available()
}

/// Runs `tests` as a libtest binary; each checks `needs` first. Never returns.
pub fn run(needs: Needs, tests: &[(&'static str, fn())]) -> ! {
    // Before any thread: programs these tests start are forked from a clean copy.
    twlab::spawn::start();
    let args = Arguments::from_args();
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            Trial::ignorable_test(name, move || match needs() {
                Err(reason) if twlab::runner::strict() => Err(Failed::from(format!(
                    "TWLAB_STRICT is set and this test would be skipped: {reason}"
                ))),
                Err(reason) => Ok(Completion::ignored_with(reason)),
                Ok(()) => match catch_unwind(AssertUnwindSafe(test)) {
                    Ok(()) => Ok(Completion::Completed),
                    Err(p) => Err(Failed::from(
                        p.downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panicked".into()),
                    )),
                },
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// `harness::main!(needs; test_a, test_b)`: the target's `main`.
#[macro_export]
macro_rules! tests_main {
    ($needs:expr; $($test:ident),+ $(,)?) => {
        fn main() {
            harness::run($needs, &[$((stringify!($test), $test as fn())),+]);
        }
    };
}
