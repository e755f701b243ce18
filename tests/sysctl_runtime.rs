//! Sysctls the kernel refuses inside the case's namespace are reported at their position in the
//! case file before any step runs (this needs root: the kernel is what refuses).

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::Path;

use twlab::case::load_case_source;
use twlab::runner::{TrialError, run_trial};

tests_main!(harness::NAMESPACES => [
    a_value_the_kernel_rejects_points_at_the_value,
    a_value_outside_the_kernels_range_is_rejected,
    a_glob_names_the_namespace_s_own_keys_but_not_the_excepted,
]);

/// A profile's glob is expanded in the namespace it is set in, over that namespace's keys
/// (here a new namespace's: all, default, lo), leaving out the keys it must not touch.
fn a_glob_names_the_namespace_s_own_keys_but_not_the_excepted() {
    let ns = twlab::netns::Namespace::create("glob").expect("a namespace");
    let (named, value) = ns
        .run(|| {
            let except = vec!["net.ipv4.conf.all.log_martians".to_string()];
            let named =
                twlab::netns::sysctl::apply_glob("net.ipv4.conf.*.log_martians", "1", &except)
                    .expect("the kernel takes it");
            (
                named,
                twlab::netns::sysctl::read("net.ipv4.conf.lo.log_martians").unwrap(),
            )
        })
        .unwrap();
    assert_eq!(
        named,
        [
            "net.ipv4.conf.default.log_martians",
            "net.ipv4.conf.lo.log_martians"
        ]
    );
    assert_eq!(value, "1");
}

fn run_with_sysctl(key: &str, value: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let path = root.join("sysctl-probe.yaml");
    let source = format!(
        "name: probe\ndescription: d\ntopology: pair\nsysctls:\n  client:\n    {key}: {value}\nsteps:\n  - listen: {{on: server, port: 8080}}\nexpect:\n  - result: listen\n    all: ok\n"
    );
    let case = load_case_source(&root, &path, source).expect("the case loads");
    match run_trial(&case, case.families[0]) {
        Err(TrialError::Sysctl(e)) => e.to_string(),
        Err(other) => panic!("expected a sysctl error, got: {other}"),
        Ok(_) => panic!("the kernel accepted {key}={value}"),
    }
}

fn a_value_the_kernel_rejects_points_at_the_value() {
    let err = run_with_sysctl("net.ipv4.ip_local_port_range", "\"50000 40000\"");
    assert!(err.contains("sysctl-probe.yaml:6:35"), "{err}");
    assert!(err.contains("rejected") && err.contains("EINVAL"), "{err}");
}

fn a_value_outside_the_kernels_range_is_rejected() {
    // tcp_tw_reuse is range-checked (0..=2); note that tcp_fin_timeout is not: the kernel
    // stores -5 there without complaint.
    let err = run_with_sysctl("net.ipv4.tcp_tw_reuse", "3");
    assert!(
        err.contains("net.ipv4.tcp_tw_reuse") && err.contains("EINVAL"),
        "{err}"
    );
}
