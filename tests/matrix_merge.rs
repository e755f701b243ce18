//! `twlab matrix --merge`: shards written apart and merged give, byte for byte, the table,
//! matrix.json and junit.xml of the one matrix with all their columns; every bad input is a
//! typed error whose message names the file and what to do. No root, no QEMU: the columns
//! are made here, as the shards' runs would have written them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use twlab::matrix::{Column, Matrix, MatrixKind, MergeError, merge_files, read_shard};
use twlab::runner::picture::{
    Connection, ExpectationView, Ladder, LinkView, Picture, SampleCounts, Segment, StateSpan,
};
use twlab::runner::results::{RunResults, Status, TrialOutcome};
use twlab::runner::rollout::RolloutReport;
use twlab::scenario::workload::{FirstError, Interval, NsInterval, Percentiles, WorkloadRun};

/// serde_json's default reader gives 985.6906946328696 for this: a float that only
/// `float_roundtrip` brings back.
const AWKWARD: f64 = 985.690_694_632_869_5;

fn trial(name: &str, status: Status, seconds: f64) -> TrialOutcome {
    TrialOutcome {
        name: name.into(),
        status,
        reason: (status == Status::Ignored).then(|| "needs Linux 6.14".to_string()),
        failures: if status == Status::Failed {
            vec![
                "cases/x.yaml:3:5  `connect`: every attempt is ok  observed: ETIMEDOUT x1".into(),
                "cases/x.yaml:9:5  sockets client TIME_WAIT = 10  observed: 9 <&> \"quoted\""
                    .into(),
            ]
        } else {
            Vec::new()
        },
        xfails: Vec::new(),
        backend: (status != Status::Ignored).then(|| "netem".to_string()),
        workloads: Vec::new(),
        picture: None,
        seconds,
    }
}

fn picture() -> Picture {
    Picture {
        file: "cases/impairment/lost-final-ack.yaml".into(),
        question: "the last ACK is lost".into(),
        description: "LAST_ACK retransmits its FIN".into(),
        family: "ipv4".into(),
        topology: String::new(),
        claim: None,
        expectations: vec![ExpectationView {
            at: "cases/impairment/lost-final-ack.yaml:20:5".into(),
            check: "packets FIN from server >= 2".into(),
            observed: "2".into(),
            passed: true,
            xfail: None,
            applies: true,
            why: Some("the FIN is sent again".into()),
        }],
        ladder: Some(Ladder {
            lanes: vec!["client".into(), "server".into()],
            links: vec![LinkView {
                ifname: "veth0".into(),
                lanes: [0, 1],
            }],
            connections: vec![Connection {
                link: 0,
                a: "198.18.0.1:40000".into(),
                b: "198.18.0.2:8080".into(),
            }],
            segments: vec![Segment {
                at_us: -12,
                link: 0,
                from: 1,
                to: 0,
                conn: 0,
                flags: "FIN ACK".into(),
                seq: 1,
                ack: Some(1),
                len: 0,
                win: 502,
                options: "ts 1 2".into(),
                dropped: true,
            }],
            states: vec![StateSpan {
                lane: 1,
                conn: 0,
                state: "LAST_ACK".into(),
                from_us: 250,
                to_us: None,
            }],
            omitted: 0,
            untracked: 0,
            end_us: 200_123,
            notes: vec![],
        }),
        samples: vec![SampleCounts {
            label: "end".into(),
            at_us: 200_000,
            counts: BTreeMap::from([(
                "client".to_string(),
                BTreeMap::from([("TIME_WAIT".to_string(), 1)]),
            )]),
        }],
        impairments: vec!["loss on veth0 (netem)".into()],
        setup_ms: 0.1 + 0.2,
        run_ms: AWKWARD,
    }
}

fn workload() -> WorkloadRun {
    WorkloadRun {
        label: "churn".into(),
        started_at: Duration::from_nanos(1_234_567_891),
        opening: Duration::from_micros(2_000_001),
        total: Duration::from_millis(2500),
        interval: Duration::from_secs(1),
        behind: Duration::from_nanos(333),
        outcomes: BTreeMap::from([("ok".to_string(), 990), ("EADDRNOTAVAIL".to_string(), 10)]),
        first_error: Some(FirstError {
            outcome: "EADDRNOTAVAIL".into(),
            at: Duration::from_nanos(1_999_999_999),
        }),
        unfinished: 0,
        server_errors: BTreeMap::new(),
        connect_us: Percentiles {
            p50: 40,
            p90: 80,
            p99: 120,
            max: 900,
            count: 990,
        },
        refused_connect_us: Percentiles::default(),
        time_wait_object_bytes: Some(232),
        port_range: Some((40000, 40999)),
        intervals: vec![Interval {
            start: Duration::from_nanos(999_999_500),
            attempts: 1000,
            ok: 990,
            errors: BTreeMap::from([("EADDRNOTAVAIL".to_string(), 10)]),
            connect_us: Percentiles::default(),
            in_flight: 3,
            ports_in_use: Some(1000),
            ns: BTreeMap::from([(
                "client".to_string(),
                NsInterval {
                    time_wait: 990,
                    tcp_inuse: 3,
                    counters: BTreeMap::from([("TcpExt.TW".to_string(), -1)]),
                    ..NsInterval::default()
                },
            )]),
        }],
    }
}

fn column(label: &str, release: &str, guest: bool, trials: Vec<TrialOutcome>) -> Column {
    // As a shard's `--out out/NAME` leaves it.
    let name = label.replace('/', "_");
    let name = name.trim_start_matches('_');
    let dir = Path::new("out").join(name).join(name);
    Column {
        label: label.into(),
        release: release.into(),
        guest,
        error: None,
        notes: vec![format!("guest ran {AWKWARD:.1} s (boot to power-off)")],
        results: Some(RunResults {
            kernel: release.into(),
            twlab: "0.1.0".into(),
            trials,
            seconds: AWKWARD / 3.0,
        }),
        rollout: None,
        dir,
        seconds: AWKWARD,
    }
}

/// Host, 6.1 (a failure, a skip), 6.12 (a trial the others lack, so the rows' order
/// follows the columns'), and a kernel that did not boot.
fn columns() -> Vec<Column> {
    let mut drawn = trial("impairment/lost-final-ack::ipv4", Status::Passed, 0.1 + 0.2);
    drawn.picture = Some(Box::new(picture()));
    let mut churn = trial("rates/churn::ipv4", Status::Passed, 2.5);
    churn.workloads = vec![workload()];
    let host = column(
        "host",
        "6.18.44-test",
        false,
        vec![
            drawn.clone(),
            churn,
            trial("exhaustion/tw-reuse-delay::ipv4", Status::Passed, AWKWARD),
        ],
    );
    let old = column(
        "linux-image-6.1.0-57-amd64",
        "6.1.0-57-amd64",
        true,
        vec![
            drawn,
            trial("impairment/syn-loss", Status::Failed, 1.0 / 3.0),
            trial("exhaustion/tw-reuse-delay::ipv4", Status::Ignored, 0.0),
        ],
    );
    let mid = column(
        "linux-image-6.12.57+deb13-amd64",
        "6.12.57+deb13-amd64",
        true,
        vec![trial("only/on-6.12", Status::Passed, 1e-9)],
    );
    let mut dead = column("/boot/vmlinuz-broken", "", true, Vec::new());
    dead.results = None;
    dead.error = Some("the guest never ran twlab (did not boot or init failed)".into());
    vec![host, old, mid, dead]
}

fn cases(columns: Vec<Column>) -> Matrix {
    Matrix {
        kind: MatrixKind::Cases,
        columns,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Each column as its own shard, written as `twlab matrix` writes matrix.json.
fn shards(dir: &Path, columns: &[Column]) -> Vec<PathBuf> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            write(
                dir,
                &format!("shard-{i}.json"),
                &(cases(vec![c.clone()]).json() + "\n"),
            )
        })
        .collect()
}

fn assert_same(merged: &Matrix, single: &Matrix) {
    assert_eq!(merged.text(), single.text());
    assert_eq!(merged.json(), single.json());
    assert_eq!(merged.junit(), single.junit());
    assert_eq!(merged.html(&[]), single.html(&[]));
}

/// The results inside matrix.html, as its script reads them.
fn html_data(page: &str) -> serde_json::Value {
    let start = "<script type=\"application/json\" id=\"twlab-data\">";
    let at = page.find(start).expect("the data element") + start.len();
    let len = page[at..].find("</script>").unwrap();
    serde_json::from_str(&page[at..at + len]).unwrap()
}

#[test]
fn shards_merge_into_the_single_matrix_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let all = columns();
    let single = cases(all.clone());
    let paths = shards(dir.path(), &all);
    let merged = merge_files(&paths).unwrap();
    assert_same(&merged.matrix, &single);
    assert_eq!(merged.sources, paths, "each column's source file");
    // matrix.html: a section per kernel in the table's order, the one that did not boot as
    // a failed trial saying why, the pictures carried through.
    let data = html_data(&merged.matrix.html(&[]).unwrap());
    let kernels: Vec<&str> = data["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kernel"].as_str().unwrap())
        .collect();
    assert_eq!(
        kernels,
        [
            "6.18.44-test (host)",
            "6.1.0-57-amd64 (linux-image-6.1.0-57-amd64)",
            "6.12.57+deb13-amd64 (linux-image-6.12.57+deb13-amd64)",
            "/boot/vmlinuz-broken"
        ]
    );
    assert_eq!(
        data["sections"][3]["results"]["trials"][0]["failures"][0],
        "the guest never ran twlab (did not boot or init failed)"
    );
    assert_eq!(
        data["sections"][0]["results"]["trials"][0]["picture"]["ladder"]["segments"][0]["flags"],
        "FIN ACK"
    );
    // The comparison sees a column dropped or two swapped.
    let mut dropped = all.clone();
    dropped.remove(2);
    let mut swapped = all.clone();
    swapped.swap(1, 2);
    for wrong in [cases(dropped), cases(swapped)] {
        assert_ne!(merged.matrix.text(), wrong.text());
        assert_ne!(merged.matrix.json(), wrong.json());
        assert_ne!(merged.matrix.junit(), wrong.junit());
    }
}

#[test]
fn the_host_comes_first_then_the_files_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    let all = columns();
    let paths = shards(dir.path(), &all);
    // 6.12, 6.1, the dead one, the host: the host moves to the front, the rest keep the
    // order given.
    let given = vec![
        paths[2].clone(),
        paths[1].clone(),
        paths[3].clone(),
        paths[0].clone(),
    ];
    let merged = merge_files(&given).unwrap();
    let expected = cases(vec![
        all[0].clone(),
        all[2].clone(),
        all[1].clone(),
        all[3].clone(),
    ]);
    assert_same(&merged.matrix, &expected);
    let labels: Vec<&str> = merged
        .matrix
        .columns
        .iter()
        .map(|c| c.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "host",
            "linux-image-6.12.57+deb13-amd64",
            "linux-image-6.1.0-57-amd64",
            "/boot/vmlinuz-broken"
        ]
    );
    assert_eq!(
        merged.sources,
        [&given[3], &given[0], &given[1], &given[2]].map(PathBuf::clone)
    );
    // A shard of several columns keeps its order; the host's (here the second file's) goes
    // first.
    let guests = write(
        dir.path(),
        "guests.json",
        &cases(vec![all[3].clone(), all[1].clone()]).json(),
    );
    let merged = merge_files(&[guests, paths[0].clone(), paths[2].clone()]).unwrap();
    assert_same(
        &merged.matrix,
        &cases(vec![
            all[0].clone(),
            all[3].clone(),
            all[1].clone(),
            all[2].clone(),
        ]),
    );
}

#[test]
fn matrix_json_reads_back_whole_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let single = cases(columns());
    let json = single.json();
    assert!(json.starts_with("{\n  \"format\": 1,\n  \"kind\": \"cases\",\n"));
    let back = read_shard(&write(dir.path(), "matrix.json", &json)).unwrap();
    assert_eq!(back.json(), json);
    let (a, b) = (&single.columns[0], &back.columns[0]);
    assert_eq!(a.seconds.to_bits(), b.seconds.to_bits());
    let trials = |c: &Column| c.results.clone().unwrap().trials;
    for (x, y) in trials(a).iter().zip(&trials(b)) {
        assert_eq!(x.seconds.to_bits(), y.seconds.to_bits(), "{}", x.name);
        assert_eq!(x.picture, y.picture, "{}", x.name);
        assert_eq!(x.workloads.len(), y.workloads.len());
    }
    let p = trials(b)[0].picture.clone().expect("the picture survives");
    assert_eq!(p.run_ms.to_bits(), AWKWARD.to_bits());
    assert!(p.ladder.unwrap().segments[0].dropped);
}

/// A matrix.json as `twlab matrix --only host --out out bad.yaml` wrote it (a case file that
/// does not load, so no namespace was needed): what format 1 is, pinned. A change that reads it differently
/// needs a new format number.
#[test]
fn a_shard_twlab_wrote_reads_and_writes_back_the_same() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matrix-format-1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let m = read_shard(&path).unwrap();
    assert_eq!(m.json() + "\n", text);
    assert_eq!(m.columns.len(), 1);
    assert!(!m.green());
}

fn twlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_twlab"))
        .args(args)
        .output()
        .unwrap()
}

/// `twlab matrix --out OUT --merge SHARDS...`.
fn merge_into(out: &Path, shards: &[&Path]) -> std::process::Output {
    let mut args = vec!["matrix", "--out", out.to_str().unwrap(), "--merge"];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    twlab(&args)
}

/// The command itself: the same stdout and files as one run, its exit status; bad input
/// exits 2 with the error.
#[test]
fn twlab_matrix_merge_writes_what_one_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let all = columns();
    let single = cases(all.clone());
    let paths = shards(dir.path(), &all);
    std::fs::create_dir(dir.path().join("host")).unwrap();
    let out = dir.path().join("merged");
    let all_shards: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let run = merge_into(&out, &all_shards);
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert_eq!(run.status.code(), Some(1), "6.1 failed a case: {stdout}");
    let json = out.join("matrix.json");
    let junit = out.join("junit.xml");
    let html = out.join("matrix.html");
    assert_eq!(
        stdout,
        format!(
            "{}matrix: results in {}\nmatrix: JUnit (a testsuite per kernel) in {}\nmatrix: HTML report in {}\n",
            single.text(),
            json.display(),
            junit.display(),
            html.display()
        )
    );
    // The host's shard kept its directory next to its matrix.json: the report links it.
    let links = [Some("../host".to_string()), None, None, None];
    assert_eq!(
        std::fs::read_to_string(&html).unwrap(),
        single.html(&links).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        single.json() + "\n"
    );
    assert_eq!(std::fs::read_to_string(&junit).unwrap(), single.junit());
    let doc = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&doc).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .count(),
        4,
        "one testsuite per kernel"
    );

    // Green when every kernel passed: the host and 6.12.
    let run = merge_into(&out, &[&paths[0], &paths[2]]);
    assert_eq!(run.status.code(), Some(0));
    // A kernel that gave no results fails the merge as it fails a run.
    let run = merge_into(&out, &[&paths[0], &paths[3]]);
    assert_eq!(run.status.code(), Some(1));

    let missing = dir.path().join("missing.json");
    let run = twlab(&["matrix", "--merge", missing.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "twlab matrix --merge: {}: cannot read it",
            missing.display()
        )),
        "{stderr}"
    );
}

fn error(dir: &Path, files: &[(&str, &str)]) -> (MergeError, String) {
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, text)| write(dir, name, text))
        .collect();
    let e = merge_files(&paths).expect_err("the merge must refuse this");
    let message = e.to_string();
    (e, message)
}

fn profile_column(label: &str, guest: bool, profiles: &[&str]) -> Column {
    let mut c = column(label, "6.1.0-57-amd64", guest, Vec::new());
    c.results = None;
    c.rollout = Some(RolloutReport {
        release: c.release.clone(),
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        host: false,
        keys: vec![],
        overridden: vec![],
        problems: vec![],
        workloads: vec![],
        claims: vec![],
        notes: vec![],
    });
    c
}

fn profile(columns: Vec<Column>) -> Matrix {
    Matrix {
        kind: MatrixKind::Profile,
        columns,
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/6.1/matrix.json");
    let e = merge_files(std::slice::from_ref(&path)).unwrap_err();
    assert!(matches!(e, MergeError::Read { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read it: No such file or directory (os error 2); give the matrix.json a shard wrote (`twlab matrix --out DIR` writes DIR/matrix.json)",
            path.display()
        )
    );
    let e = merge_files(&[]).unwrap_err();
    assert!(matches!(e, MergeError::NoShards), "{e:?}");
}

#[test]
fn not_json_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let whole = cases(columns()).json();
    // Cut short, as a failed upload leaves it: the error is at the end of what is there.
    let cut: String = whole.lines().take(3).collect::<Vec<_>>().join("\n");
    let (e, message) = error(dir.path(), &[("cut.json", &cut)]);
    assert!(matches!(e, MergeError::NotJson { line: 3, .. }), "{e:?}");
    assert!(
        message.starts_with(&format!("{}:3:", dir.path().join("cut.json").display())),
        "{message}"
    );
    assert!(message.contains("not JSON: EOF while parsing"), "{message}");
    assert!(!message.contains(" at line "), "said once: {message}");
    let (e, message) = error(
        dir.path(),
        &[("text.json", "{\n  \"format\": 1,\n  oops\n}")],
    );
    assert!(
        matches!(
            e,
            MergeError::NotJson {
                line: 3,
                col: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        message.contains("text.json:3:3: not JSON: key must be a string"),
        "{message}"
    );
    let (e, _) = error(dir.path(), &[("empty.json", "")]);
    assert!(matches!(e, MergeError::NotJson { .. }), "{e:?}");
}

#[test]
fn another_format_is_refused_by_its_number() {
    let dir = tempfile::tempdir().unwrap();
    // A format 2 whose columns this twlab could not read: the number is what is said.
    let (e, message) = error(
        dir.path(),
        &[(
            "new.json",
            r#"{"format": 2, "columns": {"host": "elsewhere"}}"#,
        )],
    );
    assert!(matches!(e, MergeError::Format { .. }), "{e:?}");
    assert!(
        message.ends_with("new.json: matrix.json format 2, this twlab reads format 1: merge with the twlab that ran the shards, or run them again with this one"),
        "{message}"
    );
    let (_, message) = error(dir.path(), &[("str.json", r#"{"format": "1"}"#)]);
    assert!(message.contains("format \"1\""), "{message}");
    // Before format 1: the columns without a number.
    let old = cases(columns()).json().replacen("\"format\": 1,\n", "", 1);
    let (e, message) = error(dir.path(), &[("old.json", &old)]);
    assert!(matches!(e, MergeError::NotMatrix { .. }), "{e:?}");
    assert!(
        message.contains("old.json: not a matrix.json: it has no \"format\""),
        "{message}"
    );
    assert!(
        message.contains("run the shard again with this twlab"),
        "{message}"
    );
}

#[test]
fn other_files_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let results = serde_json::to_string_pretty(columns()[0].results.as_ref().unwrap()).unwrap();
    let (_, message) = error(dir.path(), &[("results.json", &results)]);
    assert!(
        message.contains(
            "results.json: not a matrix.json: it is one run's results (`twlab run --json`"
        ),
        "{message}"
    );
    let rollout = serde_json::to_string(
        profile_column("host", false, &["p.conf"])
            .rollout
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let (_, message) = error(dir.path(), &[("rollout.json", &rollout)]);
    assert!(message.contains("it is a rollout report"), "{message}");
    let (e, message) = error(dir.path(), &[("list.json", "[1, 2]")]);
    assert!(matches!(e, MergeError::Schema { .. }), "{e:?}");
    assert!(message.contains("list.json:1:"), "{message}");
    // Format 1, but a field of the wrong shape: where it is.
    let bad = cases(columns())
        .json()
        .replacen("\"guest\": false", "\"guest\": \"no\"", 1);
    let (e, message) = error(dir.path(), &[("shape.json", &bad)]);
    let line = bad
        .lines()
        .position(|l| l.contains("\"guest\": \"no\""))
        .unwrap()
        + 1;
    assert!(
        matches!(e, MergeError::Schema { line: l, .. } if l == line),
        "{e:?}"
    );
    assert!(
        message.contains(&format!("shape.json:{line}:"))
            && message.contains(
                "not a matrix.json of format 1: invalid type: string \"no\", expected a boolean"
            ),
        "{message}"
    );
}

#[test]
fn the_same_kernel_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let all = columns();
    let a = cases(vec![all[1].clone()]).json();
    let b = cases(vec![all[2].clone(), all[1].clone()]).json();
    let (e, message) = error(dir.path(), &[("a.json", &a), ("b.json", &b)]);
    assert!(matches!(e, MergeError::Duplicate { .. }), "{e:?}");
    assert_eq!(
        message,
        format!(
            "{}: the column linux-image-6.1.0-57-amd64 is also in {}: each kernel's column must come from one shard (drop one file, or run the other shard without it: --no-host, or without that --kernel)",
            dir.path().join("b.json").display(),
            dir.path().join("a.json").display()
        )
    );
    // Two hosts: two shards ran without --no-host.
    let h1 = cases(vec![all[0].clone()]).json();
    let h2 = cases(vec![all[0].clone(), all[2].clone()]).json();
    let (_, message) = error(dir.path(), &[("h1.json", &h1), ("h2.json", &h2)]);
    assert!(
        message.contains("h2.json: the column host is also in"),
        "{message}"
    );
    assert!(message.contains("--no-host"), "{message}");
}

#[test]
fn profile_shards_and_case_shards_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let c = cases(vec![columns()[0].clone()]).json();
    let p = profile(vec![profile_column(
        "linux-image-6.1.0-57-amd64",
        true,
        &["p.conf"],
    )])
    .json();
    let (e, message) = error(dir.path(), &[("cases.json", &c), ("profile.json", &p)]);
    assert!(matches!(e, MergeError::MixedKinds { .. }), "{e:?}");
    assert_eq!(
        message,
        format!(
            "{} is a shard of a profile (rollout) matrix and {} of a cases matrix: merge shards of one matrix (all with the same --profile, or all without)",
            dir.path().join("profile.json").display(),
            dir.path().join("cases.json").display()
        )
    );
    // Two rollouts with different profiles.
    let q = profile(vec![profile_column("host", false, &["q.conf", "p.conf"])]).json();
    let (e, message) = error(dir.path(), &[("p.json", &p), ("q.json", &q)]);
    assert!(matches!(e, MergeError::ProfilesDiffer { .. }), "{e:?}");
    assert!(
        message.contains("q.json: its rollout ran with the profile q.conf, p.conf, ")
            && message
                .contains("p.json's with p.conf: merge shards that ran the same --profile files"),
        "{message}"
    );
    // Profile shards that agree merge, the host first.
    let h = profile(vec![profile_column("host", false, &["p.conf"])]).json();
    let paths = [
        write(dir.path(), "p.json", &p),
        write(dir.path(), "h.json", &h),
    ];
    let merged = merge_files(&paths).unwrap();
    assert_eq!(merged.matrix.kind, MatrixKind::Profile);
    assert_eq!(merged.matrix.columns[0].label, "host");
    assert!(merged.matrix.text().starts_with("profile: p.conf\n"));
}

#[test]
fn a_column_that_does_not_fit_its_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let odd = cases(vec![profile_column("host", false, &["p.conf"])]).json();
    let (e, message) = error(dir.path(), &[("odd.json", &odd)]);
    assert!(matches!(e, MergeError::Inconsistent { .. }), "{e:?}");
    assert!(
        message.contains("odd.json: the column host holds a rollout report in a cases matrix"),
        "{message}"
    );
}

/// A report file the matrix cannot write fails the command, though every kernel passed: CI
/// was told to keep it.
#[test]
fn a_report_file_that_cannot_be_written_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let green = vec![column(
        "host",
        "6.18.44-test",
        false,
        vec![trial("seeds/a::ipv4", Status::Passed, 0.5)],
    )];
    let paths = shards(dir.path(), &green);
    let shard: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let fine = merge_into(&dir.path().join("fine"), &shard);
    assert_eq!(fine.status.code(), Some(0), "{fine:?}");
    let blocked = dir.path().join("blocked");
    // A directory where the page would go.
    std::fs::create_dir_all(blocked.join("matrix.html")).unwrap();
    let run = merge_into(&blocked, &shard);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to write") && stderr.contains("matrix.html"),
        "{stderr}"
    );
    assert!(
        blocked.join("matrix.json").is_file(),
        "the other files are still written"
    );
}
