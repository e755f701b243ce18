//! The HTML report, checked in a real browser: headless Chromium opens it offline, runs its
//! script, and the DOM it leaves must hold one arrow per captured segment, a cut arrow per
//! packet the link's drop rule took (as many as the rule's nft counter), and no script error.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::{Path, PathBuf};

use twlab::observe::Packet;
use twlab::runner::html::{self, Section};
use twlab::runner::picture::MAX_SEGMENTS;
use twlab::runner::results::{RunResults, TrialOutcome};
use twlab::runner::{Executed, collect, run_all, with_pictures};
use twlab::spawn::Command;

tests_main!(harness::Needs::Probe(browser_and_namespaces) => [
    the_ladder_draws_every_captured_segment_and_each_drop,
    a_script_error_is_caught,
    a_tapped_trial_judges_as_an_untapped_one,
]);

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn browser_and_namespaces() -> Result<(), String> {
    twlab::runner::namespaces_available()?;
    chromium()
        .map(drop)
        .ok_or_else(|| "needs chromium (apt-get install chromium, or run ci/setup.sh)".into())
}

/// The DOM after the page's script ran, as headless Chromium serializes it.
fn dom_of(page: &Path) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let out = Command::new(chromium().expect("probed"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}#open-all", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

/// The `<body ...>` tag: where the page says it is ready or what script error happened.
fn body_tag(dom: &str) -> &str {
    let start = dom.find("<body").expect("a body");
    &dom[start..start + dom[start..].find('>').expect("the tag ends")]
}

/// Each trial's part of the DOM, by its name.
fn trial_parts(dom: &str) -> Vec<(String, &str)> {
    dom.split("<details class=\"trial\"")
        .skip(1)
        .map(|part| {
            let name = part
                .split("data-name=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("each trial has its name")
                .to_string();
            (name, part)
        })
        .collect()
}

fn tcp_frames(e: &Executed) -> usize {
    e.report.as_ref().map_or(0, |r| {
        r.captures
            .iter()
            .flat_map(|c| &c.frames)
            .filter(|f| Packet::from_ethernet(&f.data, f.wire_len, f.at).is_some())
            .count()
    })
}

fn the_ladder_draws_every_captured_segment_and_each_drop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let trials = with_pictures(collect(&[
        root.join("seeds/client-close-reconnect-no-timestamps.yaml"),
        root.join("seeds/server-close-reconnect.yaml"),
        root.join("impairment/lost-final-ack.yaml"),
    ]));
    let runs = run_all(&trials, 4, false, |_, _, _| {});
    let outcomes: Vec<TrialOutcome> = trials
        .iter()
        .zip(&runs)
        .map(|(t, (e, s))| TrialOutcome::new(&t.name, &e.result, e.facts.clone(), *s))
        .collect();
    let results = RunResults::new(outcomes, 1.0);
    let dir = tempfile::tempdir().expect("a directory");
    let page = dir.path().join("report.html");
    let section = Section {
        kernel: results.kernel.clone(),
        results: &results,
        link: None,
    };
    std::fs::write(&page, html::render("test", &[section], "artifacts")).expect("written");
    let dom = dom_of(&page);
    let body = body_tag(&dom);
    assert!(!body.contains("data-script-error"), "script error: {body}");
    assert!(body.contains("data-ready=\"1\""), "never ready: {body}");
    let parts = trial_parts(&dom);
    assert_eq!(parts.len(), trials.len(), "one part per trial");
    for (t, (e, _)) in trials.iter().zip(&runs) {
        let part = parts
            .iter()
            .find(|(n, _)| *n == t.name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("{} is in the page", t.name));
        let captured = tcp_frames(e);
        assert!(captured > 0, "{} captured nothing", t.name);
        let drawn = part.matches("<g class=\"seg").count();
        assert_eq!(
            drawn,
            captured.min(MAX_SEGMENTS),
            "{}: arrows drawn vs TCP frames captured",
            t.name
        );
        let dropped = part.matches("<g class=\"seg dropped\"").count() as u64;
        let counted: u64 = e
            .report
            .as_ref()
            .map_or(0, |r| r.observations.dropped.values().sum());
        assert_eq!(
            dropped, counted,
            "{}: cut arrows vs nft's drop counter",
            t.name
        );
    }
    let lost = parts
        .iter()
        .find(|(n, _)| n == "lost-final-ack")
        .map(|(_, p)| *p)
        .expect("lost-final-ack");
    assert!(lost.matches("<g class=\"seg dropped\"").count() >= 2);
    // Its sides sit in LAST_ACK and TIME_WAIT for seconds: the poller must have seen both.
    // (A case over in 20 ms may end before the poller reads the tap: states are not
    // asserted there.)
    assert!(
        lost.contains(">LAST_ACK<") && lost.contains(">TIME_WAIT<"),
        "states along the lanes"
    );
}

/// The check above would see a script error: a page whose data the script cannot draw says
/// so on its body.
fn a_script_error_is_caught() {
    let results: RunResults = serde_json::from_value(serde_json::json!({
        "kernel": "test", "twlab": "0", "seconds": 0.0,
        "trials": [{"name": "x", "status": "failed", "seconds": 0.0,
            "picture": {"file": "x.yaml", "question": "q", "description": "", "family": "ipv4",
                "expectations": [], "samples": [], "setup_ms": 0.0, "run_ms": 0.0,
                "ladder": {"lanes": ["a"], "links": [], "connections": [], "segments": [
                    {"at_us": 0, "link": 5, "from": 0, "to": 0, "conn": 9, "flags": "SYN",
                     "seq": 0, "len": 0, "win": 0}],
                    "states": [], "omitted": 0, "untracked": 0, "end_us": 0}}}]
    }))
    .expect("the results parse");
    let dir = tempfile::tempdir().expect("a directory");
    let page = dir.path().join("broken.html");
    let section = Section {
        kernel: "test".into(),
        results: &results,
        link: None,
    };
    std::fs::write(&page, html::render("broken", &[section], "artifacts")).expect("written");
    let dom = dom_of(&page);
    assert!(
        body_tag(&dom).contains("data-script-error"),
        "a segment on a link and connection that do not exist must fail the script"
    );
}

/// Recording a picture taps every link; the tap must not change what the kernel does. A
/// linger-0 abort mid-upload counts the bytes that reached the peer's receive queue, which
/// depends on how TCP packs it: with a tap that queued clones of every frame (recvmsg), TCP
/// could not coalesce the shared segments and delivered 119288 bytes instead of 127480, so
/// these trials failed only with `--html`. The ring tap lets go of each frame in the softirq.
fn a_tapped_trial_judges_as_an_untapped_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let files = [
        root.join("claims/linger-zero-discards-unsent-data.yaml"),
        root.join("patterns/goodbye-then-abort.yaml"),
    ];
    let trials = with_pictures(collect(&files));
    let runs = run_all(&trials, 2, false, |_, _, _| {});
    for (t, (e, _)) in trials.iter().zip(&runs) {
        let tapped = e
            .facts
            .picture
            .as_ref()
            .and_then(|p| p.ladder.as_ref())
            .is_some_and(|l| !l.segments.is_empty());
        assert!(tapped, "{}: the picture recorded no segment", t.name);
        if let twlab::runner::TrialResult::Failed(report) = &e.result {
            panic!("{} failed with the tap on:\n{report}", t.name);
        }
    }
}
