//! `twlab rollout` on the example profile: every key's class comes from the running kernel
//! (per-namespace keys are written in a namespace of twlab's), and the host keeps its values.
//! Needs root: the per-namespace tries need a namespace.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::Path;

use twlab::profile::KeyClass;
use twlab::runner::rollout::rollout;

tests_main!(harness::NAMESPACES => [
    every_kind_of_key_in_the_example_profile_gets_its_class,
    the_host_keeps_its_values,
]);

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/example-tuning.conf")
}

fn every_kind_of_key_in_the_example_profile_gets_its_class() {
    let report = rollout(&[example()]).expect("rollout runs");
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
    assert_eq!(class("net.ipv4.conf.*.rp_filter"), KeyClass::Pattern);
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
    rollout(&[example()]).expect("rollout runs");
    let after: Vec<String> = keys.iter().map(|k| read(k)).collect();
    assert_eq!(before, after);
}
