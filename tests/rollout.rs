//! `twlab rollout` on the example profile: every key's class comes from the running kernel
//! (per-namespace keys are written in a namespace of twlab's), and the host keeps its values.
//! Needs root: the per-namespace tries need a namespace.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::Path;

use twlab::profile::KeyClass;
use twlab::runner::rollout::{
    Change, FailOn, RolloutOptions, RolloutReport, SubjectReport, decisive, rollout, sufficient,
};

tests_main!(harness::NAMESPACES => [
    every_kind_of_key_in_the_example_profile_gets_its_class,
    the_host_keeps_its_values,
    timestamps_off_defeats_tw_reuse_and_breaks_bound_reconnects,
    two_keys_that_each_prevent_exhaustion_are_both_named,
    a_profile_that_touches_no_close_behaviour_changes_nothing,
    from_host_takes_the_values_that_differ_from_a_new_namespace,
]);

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/example-tuning.conf")
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `profile` against the workloads `cases` (no claims), with the defaults and with it.
fn against(profile: &str, cases: &[&str]) -> RolloutReport {
    rollout(&RolloutOptions {
        profiles: vec![repo(profile)],
        from_host: false,
        host: false,
        roles: None,
        cases: cases.iter().map(|c| repo(c)).collect(),
        keys_only: false,
        claims: false,
        jobs: 4,
        include_slow: false,
        ablation_limit: 12,
        pictures: false,
    })
    .expect("rollout runs")
}

fn workload<'a>(report: &'a RolloutReport, name: &str) -> &'a SubjectReport {
    report
        .workloads
        .iter()
        .find(|w| w.case.ends_with(name))
        .unwrap_or_else(|| panic!("{name} not among {:?}", report.workloads))
}

/// The old gist's tcp_tw_reuse=1 does nothing for a client that churns through its ports,
/// because the same file turns timestamps off; and timestamps off also takes away the
/// takeover of a TIME_WAIT by a bound reconnect, which the ablation finds by itself.
fn timestamps_off_defeats_tw_reuse_and_breaks_bound_reconnects() {
    let report = against(
        "profiles/old-gist.conf",
        &[
            "cases/rollout/client-closes-churn.yaml",
            "cases/rollout/reconnect-same-tuple.yaml",
        ],
    );
    let churn = workload(&report, "client-closes-churn");
    assert_eq!(churn.change, Change::Same, "{churn:?}");
    let reconnect = workload(&report, "reconnect-same-tuple");
    assert_eq!(reconnect.change, Change::Worse, "{reconnect:?}");
    assert_eq!(
        (reconnect.baseline.failed, reconnect.profile.failed),
        (0, 4)
    );
    assert_eq!(
        decisive(reconnect),
        ["net.ipv4.tcp_timestamps"],
        "{reconnect:?}"
    );
    assert!(report.fails(FailOn::Worse) && report.fails(FailOn::Changed));
    // What CI reads.
    let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    for k in json["keys"].as_array().unwrap() {
        for field in ["key", "value", "class", "reason", "file", "line"] {
            assert!(!k[field].is_null(), "{field} missing in {k}");
        }
    }
    for w in json["workloads"].as_array().unwrap() {
        for field in ["case", "baseline", "profile", "changed"] {
            assert!(!w[field].is_null(), "{field} missing in {w}");
        }
    }
}

/// tcp_tw_reuse=1 and a wide port range (as in the example profile) each keep the churning
/// client from running out of ports: leaving out either keeps the change, so no key decides
/// it, and the runs with one key only name both; tcp_keepalive_time alone does nothing.
fn two_keys_that_each_prevent_exhaustion_are_both_named() {
    let report = against(
        "tests/fixtures/either-or.conf",
        &["cases/rollout/client-closes-churn.yaml"],
    );
    let churn = workload(&report, "client-closes-churn");
    assert_eq!(churn.change, Change::Better, "{churn:?}");
    assert!(decisive(churn).is_empty(), "{churn:?}");
    let mut either = sufficient(churn);
    either.sort();
    assert_eq!(
        either,
        ["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"],
        "{churn:?}"
    );
    // The third key alone leaves the defaults' verdicts.
    let others: Vec<(&str, &str)> = churn
        .alone
        .iter()
        .filter(|a| !either.contains(&a.key.as_str()))
        .map(|a| (a.key.as_str(), a.result.as_str()))
        .collect();
    assert_eq!(
        others,
        [("net.ipv4.tcp_keepalive_time", "defaults")],
        "{:?}",
        churn.alone
    );
    assert!(
        report
            .text()
            .contains("each of net.ipv4.tcp_tw_reuse, net.ipv4.ip_local_port_range alone makes it"),
        "{}",
        report.text()
    );
}

/// A distribution's latency profile sets one per-namespace key (tcp_fastopen) and otherwise
/// host-wide vm. and kernel. keys: the close workloads must come out the same.
fn a_profile_that_touches_no_close_behaviour_changes_nothing() {
    let report = against(
        "profiles/tuned-network-latency.conf",
        &[
            "cases/rollout/reconnect-same-tuple.yaml",
            "cases/rollout/server-restart.yaml",
            "cases/rollout/rst-into-time-wait.yaml",
        ],
    );
    assert_eq!(report.workloads.len(), 3);
    for w in &report.workloads {
        assert_eq!(w.change, Change::Same, "{w:?}");
    }
    assert!(!report.fails(FailOn::Changed));
}

/// `--from-host` in a namespace of the test's own (unshare), standing in for a tuned host:
/// the two values changed there, and nothing else, become the profile.
fn from_host_takes_the_values_that_differ_from_a_new_namespace() {
    let script = format!(
        "echo 15 > /proc/sys/net/ipv4/tcp_fin_timeout && echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse && exec {} rollout --from-host --keys-only --format json",
        env!("CARGO_BIN_EXE_twlab")
    );
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<(String, String)> = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().into(),
                k["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("net.ipv4.tcp_fin_timeout".to_string(), "15".to_string()),
            ("net.ipv4.tcp_tw_reuse".to_string(), "1".to_string())
        ]
    );
}

/// The keys of `profiles`, classified; no workload runs.
fn keys_of(profiles: &[std::path::PathBuf]) -> RolloutReport {
    rollout(&RolloutOptions {
        profiles: profiles.to_vec(),
        from_host: false,
        host: false,
        roles: None,
        cases: Vec::new(),
        keys_only: true,
        claims: false,
        jobs: 1,
        include_slow: false,
        ablation_limit: 0,
        pictures: false,
    })
    .expect("rollout runs")
}

fn every_kind_of_key_in_the_example_profile_gets_its_class() {
    let report = keys_of(&[example()]);
    let class = |key: &str| {
        report
            .keys
            .iter()
            .find(|k| k.key == key)
            .unwrap_or_else(|| panic!("{key} not in the report"))
            .class
    };
    assert_eq!(class("net.ipv4.tcp_tw_reuse"), KeyClass::Applied);
    assert_eq!(
        class("net.ipv4.tcp_fastopen"),
        KeyClass::Applied,
        "written with slashes"
    );
    assert_eq!(
        class("net.netfilter.nf_conntrack_max"),
        KeyClass::HostGlobal
    );
    assert_eq!(class("net.core.netdev_max_backlog"), KeyClass::HostGlobal);
    assert_eq!(class("net.ipv4.tcp_tw_recycle"), KeyClass::Absent);
    assert_eq!(class("net.ipv4.tcp_fin_timout"), KeyClass::Absent);
    assert_eq!(class("net.ipv4.tcp_syn_retries"), KeyClass::Refused);
    assert_eq!(class("vm.swappiness"), KeyClass::NotNet);
    assert_eq!(
        class("net.ipv4.conf.*.rp_filter"),
        KeyClass::Applied,
        "a glob, expanded in a namespace"
    );
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("example-tuning.conf:35:1"),
        "{:?}",
        report.problems
    );
}

fn the_host_keeps_its_values() {
    let read =
        |k: &str| std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/"))).unwrap();
    let keys = [
        "net/ipv4/tcp_fin_timeout",
        "net/ipv4/tcp_tw_reuse",
        "net/core/somaxconn",
    ];
    let before: Vec<String> = keys.iter().map(|k| read(k)).collect();
    keys_of(&[example()]);
    let after: Vec<String> = keys.iter().map(|k| read(k)).collect();
    assert_eq!(before, after);
}
