//! What people and machines read, pinned: the text report of a trial, the claims table in
//! each format, the kernel matrix table and its JSON, and the `--json` results of a run. Each
//! is rendered from hand-made values (no kernel), so a change to a renderer shows up as a
//! snapshot diff to review (`INSTA_UPDATE=always cargo test --test snapshots`, then read the
//! `.snap` files in the diff).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use twlab::case::{Family, Verdict as ClaimVerdict, load_case_source};
use twlab::expect::{Observations, evaluate};
use twlab::matrix::{Column, Matrix, MatrixKind};
use twlab::observe::{Counters, SocketRow, TcpState};
use twlab::runner::claims::{ClaimRow, ClaimStatus, ClaimsReport};
use twlab::runner::results::{RunResults, Status, TrialOutcome};
use twlab::runner::{TrialReport, render};
use twlab::scenario::{Outcome, SocketSample, StepRecord};

const CASE: &str = "name: the side that closes first runs out of ports
description: a 10-port range, the client closes first
topology: pair
sysctls:
  client:
    net.ipv4.ip_local_port_range: \"40000 40009\"
steps:
  - listen: {on: server, port: 8080}
  - repeat:
      times: 11
      steps:
        - connect: {from: client, to: server, port: 8080}
        - close: {by: client}
expect:
  - result: connect
    ok: 10
  - result: connect
    first_error: EADDRNOTAVAIL
  - sockets: client
    state: TIME_WAIT
    count: 10
  - counter: TcpExt.TW
    ns: client
    delta: 11
    why: one TIME_WAIT per close
";

fn record(label: &str, line: u64, i: u32, outcome: Outcome, ms: u64) -> StepRecord {
    StepRecord {
        label: label.into(),
        kind: "connect",
        line,
        iteration: Some(i),
        outcome,
        started: Duration::ZERO,
        duration: Duration::from_micros(ms * 100),
        bytes: None,
        detail: format!("198.18.0.1:{} -> 198.18.0.2:8080", 40000 + i - 1),
        local: None,
        value: None,
    }
}

fn time_wait(port: u16) -> SocketRow {
    let a: SocketAddr = format!("198.18.0.1:{port}").parse().unwrap();
    let b: SocketAddr = "198.18.0.2:8080".parse().unwrap();
    SocketRow::bare(TcpState::TimeWait, a, b)
}

#[test]
fn text_report_of_a_failed_trial() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let case = load_case_source(&root, &root.join("snapshot.yaml"), CASE.into()).unwrap();
    let mut steps: Vec<StepRecord> = (1..=10)
        .map(|i| record("connect", 13, i, Outcome::Ok, u64::from(i)))
        .collect();
    steps.push(record(
        "connect",
        13,
        11,
        Outcome::Errno(nix::errno::Errno::EADDRNOTAVAIL),
        2,
    ));
    let mut counters = BTreeMap::new();
    counters.insert(
        "client".to_string(),
        Counters(BTreeMap::from([
            ("TcpExt.TW".to_string(), 10),
            ("Tcp.ActiveOpens".to_string(), 10),
        ])),
    );
    let observations = Observations {
        steps,
        samples: vec![SocketSample {
            label: "end".into(),
            at: Duration::from_millis(1100),
            sockets: BTreeMap::from([
                (
                    "client".to_string(),
                    (40000..40010).map(time_wait).collect::<Vec<_>>(),
                ),
                ("server".to_string(), Vec::new()),
            ]),
            conntrack: BTreeMap::new(),
        }],
        counters,
        setup: Duration::from_micros(6200),
        run: Duration::from_millis(1100),
        ..Observations::default()
    };
    let report = TrialReport {
        family: Family::Ipv4,
        verdicts: evaluate(&case.expectations, &observations),
        observations,
        captures: Vec::new(),
        backend: None,
        capture_leads: Vec::new(),
        states: None,
        link_drops: Vec::new(),
        link_drops_unlogged: None,
    };
    // The case's path is this machine's checkout: shown relative.
    let text = render(&case, &report).replace(&format!("{}/", root.display()), "cases/");
    insta::assert_snapshot!(text);
}

fn claims() -> ClaimsReport {
    ClaimsReport {
        kernel: "6.18.0-test".into(),
        rows: vec![
            ClaimRow {
                case: "claims/fin-timeout-does-not-shorten-time-wait".into(),
                claim: "Lowering tcp_fin_timeout shortens TIME_WAIT.".into(),
                source: "tuning guides".into(),
                expected: ClaimVerdict::Refuted,
                verdict: "refuted".into(),
                status: ClaimStatus::Confirmed,
                confirmed: true,
                // A pipe in a cell must not end it in the Markdown table.
                evidence: "client: sockets (TIME_WAIT) at t15 = 1: 1 (at 15.0s) | kept".into(),
            },
            ClaimRow {
                case: "claims/max-tw-buckets | caps".into(),
                claim: "tcp_max_tw_buckets caps TIME_WAIT.".into(),
                source: "sysctl docs".into(),
                expected: ClaimVerdict::Holds,
                verdict: "CHANGED: 1 of 2 expectations no longer hold".into(),
                status: ClaimStatus::Changed,
                confirmed: false,
                evidence: "server: TcpExt.TCPTimeWaitOverflow delta = 15: +14".into(),
            },
            ClaimRow {
                case: "claims/time-wait-lasts-60-seconds".into(),
                claim: "TIME_WAIT lasts 2 x MSL = 4 minutes.".into(),
                source: "textbooks".into(),
                expected: ClaimVerdict::Refuted,
                verdict: "undecided: slow case not run (--include-slow)".into(),
                status: ClaimStatus::NotRun,
                confirmed: false,
                evidence: String::new(),
            },
        ],
    }
}

#[test]
fn claims_table_in_each_format() {
    let c = claims();
    insta::assert_snapshot!("claims_md", c.markdown());
    insta::assert_snapshot!("claims_text", c.text());
    insta::assert_snapshot!("claims_json", c.json());
    assert!(!c.all_confirmed(), "a changed claim fails the run");
}

fn outcome(name: &str, status: Status, backend: Option<&str>) -> TrialOutcome {
    TrialOutcome {
        name: name.into(),
        status,
        reason: (status == Status::Ignored)
            .then(|| "the case sets a sysctl this kernel predates".to_string()),
        failures: if status == Status::Failed {
            vec!["cases/x.yaml:3:5  `connect`: every attempt is ok  observed: ETIMEDOUT x1".into()]
        } else {
            Vec::new()
        },
        xfails: Vec::new(),
        backend: backend.map(str::to_string),
        workloads: Vec::new(),
        picture: None,
        seconds: 0.5,
    }
}

fn results(kernel: &str, trials: Vec<TrialOutcome>) -> RunResults {
    RunResults {
        kernel: kernel.into(),
        twlab: "0.1.0".into(),
        trials,
        seconds: 12.5,
    }
}

#[test]
fn run_results_json_fields() {
    let r = results(
        "6.18.0-test",
        vec![
            outcome("seeds/server-close-reconnect::ipv4", Status::Passed, None),
            outcome("impairment/syn-loss", Status::Failed, Some("substitute")),
            outcome("exhaustion/tw-reuse-delay::ipv4", Status::Ignored, None),
        ],
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&r).unwrap());
}

#[test]
fn matrix_table_and_json() {
    let column = |label: &str, release: &str, guest: bool, trials| Column {
        label: label.into(),
        release: release.into(),
        guest,
        error: None,
        notes: vec![],
        results: Some(results(release, trials)),
        rollout: None,
        dir: PathBuf::from("target/twlab/matrix").join(label),
        seconds: 40.0,
    };
    let m = Matrix {
        kind: MatrixKind::Cases,
        columns: vec![
            column(
                "host",
                "6.18.0-test",
                false,
                vec![
                    outcome("impairment/syn-loss", Status::Passed, Some("substitute")),
                    outcome("exhaustion/tw-reuse-delay::ipv4", Status::Passed, None),
                ],
            ),
            column(
                "linux-image-6.1.0-56-amd64",
                "6.1.0-56-amd64",
                true,
                vec![
                    outcome("impairment/syn-loss", Status::Failed, Some("netem")),
                    outcome("exhaustion/tw-reuse-delay::ipv4", Status::Ignored, None),
                ],
            ),
        ],
    };
    insta::assert_snapshot!("matrix_text", m.text());
    insta::assert_snapshot!("matrix_json", m.json());
    // One testsuite per kernel, every trial of each a testcase.
    let junit = m.junit();
    let doc = roxmltree::Document::parse(&junit).expect("the matrix JUnit parses");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), m.columns.len(), "{junit}");
    for (suite, column) in suites.iter().zip(&m.columns) {
        let trials = column.results.as_ref().map_or(1, |r| r.trials.len());
        assert_eq!(
            suite
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .count(),
            trials,
            "{junit}"
        );
    }
}

/// A rollout report as people and CI read it: keys by class, a workload that got worse with the
/// figures of both runs and the key that decided it, one that stayed the same.
#[test]
fn rollout_report_in_each_format() {
    use twlab::profile::KeyClass;
    use twlab::runner::rollout::{
        Ablation, Change, Figure, KeyReport, RolloutReport, RunSummary, SubjectKind, SubjectReport,
    };
    let key = |key: &str, value: &str, class, line, default: Option<&str>| KeyReport {
        key: key.into(),
        value: value.into(),
        class,
        reason: format!("reason for {key}"),
        file: PathBuf::from("profiles/p.conf"),
        line,
        ignore_failure: false,
        default: default.map(str::to_string),
        changes_default: default.is_some(),
        used: class == KeyClass::Applied,
        except: vec![],
    };
    let run = |failed, resets, holds: &[bool]| RunSummary {
        status: "passed".into(),
        attempts: 2,
        failed,
        resets,
        holds: holds.to_vec(),
    };
    let report = RolloutReport {
        release: "6.18.0".into(),
        profiles: vec!["profiles/p.conf".into()],
        host: false,
        keys: vec![
            key(
                "net.ipv4.tcp_fin_timeout",
                "15",
                KeyClass::Applied,
                3,
                Some("60"),
            ),
            key("net.ipv4.tcp_tw_recycle", "1", KeyClass::Absent, 2, None),
        ],
        overridden: vec![],
        problems: vec!["profiles/p.conf:9:1: not an assignment".into()],
        workloads: vec![
            SubjectReport {
                case: "rollout/late-fin".into(),
                name: "a late FIN".into(),
                kind: SubjectKind::Workload,
                roles: vec!["client".into(), "server".into()],
                baseline: run(0, 0, &[true]),
                profile: run(0, 1, &[false]),
                change: Change::Worse,
                changed: true,
                figures: vec![Figure {
                    at: "cases/rollout/late-fin.yaml:26:12".into(),
                    check: "RST packets sent by client = 0".into(),
                    baseline: "0".into(),
                    baseline_holds: true,
                    profile: "1".into(),
                    profile_holds: false,
                }],
                ablation: vec![Ablation {
                    key: "net.ipv4.tcp_fin_timeout".into(),
                    result: "defaults".into(),
                }],
                alone: vec![],
                ablation_note: None,
            },
            SubjectReport {
                case: "rollout/server-restart".into(),
                name: "a restart".into(),
                kind: SubjectKind::Workload,
                roles: vec!["server".into()],
                baseline: run(1, 0, &[true, true]),
                profile: run(1, 0, &[true, true]),
                change: Change::Same,
                changed: false,
                figures: vec![],
                ablation: vec![],
                alone: vec![],
                ablation_note: None,
            },
        ],
        claims: vec![],
        notes: vec![],
    };
    insta::assert_snapshot!("rollout_text", report.text());
    insta::assert_snapshot!("rollout_markdown", report.markdown());
    insta::assert_snapshot!("rollout_json", report.json());
}

/// JUnit as CI reads it: the document parses, every trial is a testcase, a failure carries the
/// failed expectations with their observed values, a skip its reason, and markup in evidence
/// is escaped.
#[test]
fn junit_of_a_run() {
    let mut failed = outcome("impairment/syn-loss", Status::Failed, Some("substitute"));
    failed.failures = vec![
        "cases/impairment/syn-loss.yaml:20:5  packets SYN from client >= 2  observed: 1 <one>"
            .into(),
    ];
    let r = results(
        "6.18.0-test",
        vec![
            outcome("seeds/server-close-reconnect::ipv4", Status::Passed, None),
            failed,
            outcome("exhaustion/tw-reuse-delay::ipv4", Status::Ignored, None),
        ],
    );
    let xml = twlab::runner::junit::render(
        "twlab-run",
        &[twlab::runner::junit::Suite {
            name: "twlab@6.18.0-test".into(),
            results: &r,
        }],
    );
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit parses");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3);
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure element");
    assert!(failure.text().unwrap().contains("observed: 1 <one>"));
    assert_eq!(doc.root_element().attribute("failures"), Some("1"), "{xml}");
    assert!(doc.descendants().any(|n| n.has_tag_name("skipped")));
    insta::assert_snapshot!(xml);
}
