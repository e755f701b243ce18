//! What a step record says about the close it observed: the peer's read that ended in an
//! RST must not be described as a clean end-of-file.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::Path;

use twlab::case::load_case_source;
use twlab::runner::run_trial;

tests_main!(harness::NAMESPACES => [
    a_peer_read_that_ended_in_econnreset_says_so,
]);

/// The `close.peer` record's outcome and detail after a close done `how`.
fn peer_record(how: &str) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let source = format!(
        "name: n\ndescription: d\ntopology: pair\nsteps:\n  - listen: {{on: server, port: 8080}}\n  - connect: {{from: client, to: server, port: 8080}}\n  - send: {{by: client, bytes: 1000}}\n  - recv: {{by: server, bytes: 1000}}\n  - close: {{by: client, how: {how}}}\nexpect:\n  - result: close\n    all: ok\n"
    );
    let case = load_case_source(&root, &root.join("records.yaml"), source).expect("loads");
    let report = run_trial(&case, case.families[0]).expect("runs");
    let rec = report
        .observations
        .steps
        .iter()
        .find(|r| r.label == "close.peer")
        .expect("a close.peer record");
    (rec.outcome.to_string(), rec.detail.clone())
}

fn a_peer_read_that_ended_in_econnreset_says_so() {
    let (outcome, detail) = peer_record("abort");
    assert_eq!(outcome, "ECONNRESET");
    assert_eq!(detail, "server's read ended in ECONNRESET, then it closed");
    let (outcome, detail) = peer_record("fin");
    assert_eq!(outcome, "ok");
    assert_eq!(detail, "server read to EOF, then closed");
}
