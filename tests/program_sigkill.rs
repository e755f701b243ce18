//! A program started by an `exec` step never outlives twlab: killing twlab with SIGKILL while
//! a background program runs in a case's namespace leaves no process (and so no namespace)
//! behind. The program is forked by the namespace's own thread with PR_SET_PDEATHSIG(SIGKILL);
//! that thread lives as long as the case, and dies with the process.

#[path = "support/privileges.rs"]
mod privileges;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (pid, netns) of every process whose main thread is in a network namespace.
fn processes() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            Some((pid, ns.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Network namespaces referenced by any thread of `pid`.
fn thread_namespaces(pid: u32) -> BTreeSet<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeSet::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_link(t.path().join("ns/net")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// Whether `pid` is gone (or a zombie waiting for its new parent to reap it).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

const CASE: &str = r#"
name: a background program and a long wait
description: the program runs in the server namespace while the case sleeps
topology: pair
steps:
  - exec:
      on: server
      argv: [busybox, nc, -l, -p, "8080"]
      background: true
      ready: {listening: 8080}
      label: listener
  - sleep: 60s
expect:
  - program: listener
    signal: SIGTERM
"#;

#[test]
fn sigkill_while_a_program_runs_leaves_no_process_behind() {
    if !privileges::namespaces_or_skip() {
        return;
    }
    if Command::new("busybox").arg("true").status().is_err() {
        panic!("busybox is missing: ci/setup.sh installs busybox-static");
    }
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("namespaces")).unwrap();
    std::fs::create_dir_all(repo.path().join("cases")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("namespaces/pair.yaml"),
        repo.path().join("namespaces/pair.yaml"),
    )
    .unwrap();
    let case = repo.path().join("cases/program.yaml");
    std::fs::write(&case, CASE).unwrap();

    let host: BTreeSet<String> = processes().into_iter().map(|(_, ns)| ns).collect();
    let mut twlab = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .arg("run")
        .arg(&case)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start twlab");
    let pid = twlab.id();

    // The program: a process other than twlab in one of twlab's own namespaces, which shows
    // it was forked by a namespace thread. Wait until it listens (the case then sleeps 60 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (program, ns) = loop {
        let ours: BTreeSet<String> = thread_namespaces(pid).difference(&host).cloned().collect();
        let found = processes()
            .into_iter()
            .find(|(p, ns)| *p != pid && ours.contains(ns));
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the program never started in a namespace of twlab"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let cmdline = std::fs::read_to_string(format!("/proc/{program}/cmdline")).unwrap_or_default();
    assert!(
        cmdline.contains("nc"),
        "pid {program} in the case's namespace is not the program: {cmdline:?}"
    );
    // Give readiness time to pass, so the kill lands in the 60 s sleep, mid-case.
    std::thread::sleep(Duration::from_millis(300));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(!twlab.wait().unwrap().success());

    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(program) {
        assert!(
            Instant::now() < deadline,
            "program {program} ({cmdline:?}) still runs 5 s after twlab was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<u32> = processes()
        .into_iter()
        .filter(|(p, n)| *n == ns && !gone(*p))
        .map(|(p, _)| p)
        .collect();
    assert!(
        left.is_empty(),
        "processes still in the case's namespace {ns}: {left:?}"
    );
}
