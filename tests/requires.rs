//! A case that requires a kernel part this machine lacks is ignored with the reason, not run
//! with a substitute that cannot do what it asks (reorder and duplicate exist only in netem).

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::Path;

use twlab::case::load_case_source;
use twlab::impair::netem_available;
use twlab::runner::{TrialError, run_trial};

tests_main!(harness::Needs::Probe(root_without_netem) => [
    netem_requirements_are_ignored_with_the_reason_where_netem_is_missing,
]);

/// The substitute is what runs here, so only a kernel without sch_netem can show the refusal.
fn root_without_netem() -> Result<(), String> {
    twlab::runner::namespaces_available()?;
    match netem_available() {
        Ok(()) => Err("this kernel has sch_netem: the refusal happens only without it".into()),
        Err(_) => Ok(()),
    }
}

fn trial_of(extra: &str) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let source = format!(
        "name: n\ndescription: d\ntopology: pair\n{extra}steps:\n  - listen: {{on: server, port: 8080}}\nexpect:\n  - result: listen\n    all: ok\n"
    );
    let case = load_case_source(&root, &root.join("requires-probe.yaml"), source).expect("loads");
    match run_trial(&case, case.families[0]) {
        Err(TrialError::Unsupported { feature, reason }) => Err(format!("{feature}: {reason}")),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => Ok(()),
    }
}

fn netem_requirements_are_ignored_with_the_reason_where_netem_is_missing() {
    for extra in [
        "requires: [netem]\n",
        "backend: netem\n",
        "impair:\n  - {from: client, to: server, delay: 10ms, reorder: 25}\n",
    ] {
        let err = trial_of(extra).expect_err(extra);
        assert!(
            err.starts_with("netem: ") && err.contains("sch_netem"),
            "{extra}: {err}"
        );
    }
    // Delay alone runs through the substitute.
    trial_of("impair:\n  - {from: client, to: server, delay: 10ms}\n")
        .expect("the substitute serves delay");
}
