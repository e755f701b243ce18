//! Every YAML file under `cases/` becomes one test per address family (libtest-mimic).
//! A file that fails to load is one failing test; the others still run.

use std::path::PathBuf;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use twlab::runner::{
    TrialKind, TrialResult, collect, execute_with, include_slow_from_env, recover_host,
};

fn main() {
    // First, before any thread: programs are forked from this clean copy (twlab::spawn).
    twlab::spawn::start();
    let mut args = Arguments::from_args();
    // Cases mostly wait on the kernel's timers, not the CPU: run more than one per core.
    if args.test_threads.is_none() {
        args.test_threads = Some(8);
    }
    let nocapture = args.nocapture;
    for message in recover_host() {
        eprintln!("{message}");
    }
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases");
    let trials = collect(&[cases])
        .into_iter()
        .map(|spec| {
            let name = spec.name.clone();
            // Slow cases are ignored the libtest way (run with --include-ignored), so nextest
            // and strict mode treat them as filtered, not as skipped for want of a capability.
            let slow = matches!(&spec.kind, TrialKind::Run { case, .. } if case.slow)
                && !include_slow_from_env();
            Trial::ignorable_test(name, move || match execute_with(&spec, true) {
                TrialResult::Passed(report) => {
                    if nocapture {
                        println!("{report}");
                    }
                    Ok(Completion::Completed)
                }
                TrialResult::Failed(report) => Err(Failed::from(report)),
                TrialResult::Ignored(reason) => Ok(Completion::ignored_with(reason)),
            })
            .with_ignored_flag(slow)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
