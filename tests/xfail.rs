//! `xfail:` end to end: real trials whose marks foresee a failure (on one expectation, on the
//! whole case) or do not (XPASS), run by the pool and rendered as the results, JUnit and
//! HTML report carry them. Each case's file is written here, so the expected failures are not
//! in cases/.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use twlab::runner::html::{self, Section};
use twlab::runner::junit::{self, Suite};
use twlab::runner::results::{RunResults, Status};
use twlab::runner::{TrialResult, collect, run_all};

tests_main!(harness::NAMESPACES => [
    marks_that_foresee_a_failure_are_xfail_and_one_that_holds_is_xpass,
]);

/// One connection the client closes first: its TIME_WAIT is the client's, never the server's.
const STEPS: &str = "description: a test of xfail marks
topology: pair
families: [ipv4]
steps:
  - listen: {on: server, port: 8080}
  - connect: {from: client, to: server, port: 8080}
  - close: {by: client}
";

fn marks_that_foresee_a_failure_are_xfail_and_one_that_holds_is_xpass() {
    let dir = tempfile::tempdir().expect("a directory");
    let cases = [
        (
            "one-mark",
            "name: one expectation fails as marked\n".to_string()
                + STEPS
                + "expect:
  - sockets: client
    state: TIME_WAIT
    count: 1
  - sockets: server
    state: TIME_WAIT
    count: 1
    xfail: the closer keeps the TIME_WAIT
",
        ),
        (
            "case-mark",
            "name: the whole case fails as marked\nxfail: the closer keeps the TIME_WAIT\n"
                .to_string()
                + STEPS
                + "expect:
  - sockets: server
    state: TIME_WAIT
    count: 1
",
        ),
        (
            "xpass",
            "name: a mark on an expectation that holds\n".to_string()
                + STEPS
                + "expect:
  - sockets: client
    state: TIME_WAIT
    count: 1
    xfail: wrongly marked
",
        ),
    ];
    let files: Vec<_> = cases
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&path, text).expect("the case is written");
            path
        })
        .collect();
    let trials = collect(&files);
    let runs = run_all(&trials, 3, false, |_, _, _| {});
    let results = RunResults::of_runs(trials.iter().map(|t| t.name.as_str()).zip(&runs), 1.0);
    let status = |stem: &str| {
        let t = results
            .trials
            .iter()
            .find(|t| t.name.contains(stem))
            .unwrap_or_else(|| panic!("no trial {stem}: {:?}", results.trials));
        (t.status, t)
    };
    let texts: Vec<&str> = runs
        .iter()
        .map(|(e, _)| match &e.result {
            TrialResult::Passed(t)
            | TrialResult::Xfail(t)
            | TrialResult::Failed(t)
            | TrialResult::Ignored(t) => t.as_str(),
        })
        .collect();
    let all = texts.join("\n----\n");

    let (one, one_t) = status("one-mark");
    assert_eq!(one, Status::Xfail, "{all}");
    assert_eq!(
        one_t.reason.as_deref(),
        Some("the closer keeps the TIME_WAIT")
    );
    assert!(one_t.failures.is_empty(), "{:?}", one_t.failures);
    assert_eq!(one_t.xfails.len(), 1, "{:?}", one_t.xfails);
    assert!(
        one_t.xfails[0].contains("observed: 0"),
        "the server had no TIME_WAIT: {:?}",
        one_t.xfails
    );

    let (case, case_t) = status("case-mark");
    assert_eq!(case, Status::Xfail, "{all}");
    assert!(case_t.failures.is_empty(), "{:?}", case_t.failures);
    assert_eq!(case_t.xfails.len(), 1, "{:?}", case_t.xfails);

    let (xpass, xpass_t) = status("xpass");
    assert_eq!(xpass, Status::Failed, "{all}");
    assert!(
        xpass_t.failures.iter().any(|f| f.contains("client")),
        "the XPASS names its expectation: {:?}",
        xpass_t.failures
    );
    assert!(all.contains("XPASS"), "{all}");
    assert_eq!(results.failed(), 1);

    let suite = Suite {
        name: "twlab".into(),
        results: &results,
    };
    let xml = junit::render("xfail", &[suite]);
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let skipped: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("skipped"))
        .collect();
    assert_eq!(skipped.len(), 2, "{xml}");
    assert!(
        skipped.iter().all(|n| n.attribute("type") == Some("xfail")
            && n.attribute("message") == Some("xfail: the closer keeps the TIME_WAIT")),
        "{xml}"
    );
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        1,
        "{xml}"
    );

    let page = html::render(
        "xfail",
        &[Section {
            kernel: results.kernel.clone(),
            results: &results,
            link: None,
        }],
        "artifacts",
    );
    assert!(
        page.contains("\"status\":\"xfail\""),
        "the page's data carries the status"
    );
}
