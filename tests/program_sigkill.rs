//! Programs started by twlab never outlive it: killing twlab with SIGKILL, while a forking
//! program runs or at any moment while programs are being started, leaves no process behind
//! (and so no namespace: an unnamed namespace lives only while something is in it).
//!
//! Every process twlab starts, directly or not (the spawner, supervisors, inits, programs and
//! what they fork), inherits twlab's environment; a marker variable set on twlab finds them
//! all in /proc without guessing at names or parentage.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

tests_main!(harness::NAMESPACES => [
    sigkill_while_a_forking_program_runs_leaves_no_process_behind,
    sigkill_at_any_point_while_programs_start_leaves_no_process_behind,
]);

/// Live processes (not zombies) whose environment holds `marker`, with their command lines.
fn marked(marker: &str) -> Vec<(u32, String)> {
    let needle = format!("TWLAB_TEST_MARK={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !zombie(*pid))
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|&b| b == 0)
                .any(|v| v == needle.as_bytes())
                .then(|| (pid, cmdline(pid)))
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether `pid` is a zombie waiting for its new parent to reap it (or gone).
fn zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// A scratch repository with one case (the pair topology is built in).
fn repo(case: &str) -> (tempfile::TempDir, PathBuf) {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("namespaces")).unwrap();
    std::fs::create_dir_all(repo.path().join("cases")).unwrap();
    let path = repo.path().join("cases/program.yaml");
    std::fs::write(&path, case).unwrap();
    (repo, path)
}

fn start_twlab(case: &Path, marker: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_twlab"))
        .arg("run")
        .arg(case)
        .env("TWLAB_TEST_MARK", marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start twlab")
}

/// SIGKILLs twlab, then waits up to 5 s for every marked process to be gone.
fn kill_and_check(mut twlab: Child, marker: &str, when: &str) {
    kill(Pid::from_raw(twlab.id() as i32), Signal::SIGKILL).unwrap();
    let _ = twlab.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = marked(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "5 s after twlab was SIGKILLed {when}, these of its processes still run: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn busybox() {
    if Command::new("busybox").arg("true").status().is_err() {
        panic!("busybox is missing: ci/setup.sh installs busybox-static");
    }
}

/// A shell that forks two sleepers and then becomes a listener: its workers are not in its
/// process group's reach once they leave it, but they are in its PID namespace.
const FORKING: &str = r#"
name: a forking background program and a long wait
description: the program runs in the server namespace while the case sleeps
topology: pair
steps:
  - exec:
      on: server
      argv: [busybox, sh, -c, "setsid busybox sleep 600 & busybox sleep 600 & exec busybox nc -l -p 8080"]
      background: true
      ready: {listening: 8080}
      label: listener
  - sleep: 60s
expect:
  - program: listener
    signal: SIGTERM
"#;

fn sigkill_while_a_forking_program_runs_leaves_no_process_behind() {
    busybox();
    let (_repo, case) = repo(FORKING);
    let marker = format!("forking-{}", std::process::id());
    let twlab = start_twlab(&case, &marker);
    // Wait until the listener and both sleepers run (the case then sleeps 60 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let procs = marked(&marker);
        let sleepers = procs
            .iter()
            .filter(|(_, c)| c.contains("sleep 600"))
            .count();
        if sleepers == 2 && procs.iter().any(|(_, c)| c.contains("nc -l")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the program and its two sleepers never all ran: {procs:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Readiness passes within a few ms of the listener; the kill lands in the sleep.
    std::thread::sleep(Duration::from_millis(300));
    kill_and_check(twlab, &marker, "while a forking program ran");
}

/// Programs started one after another, and an impairment (nft) set up before them.
const SPAWNING: &str = r#"
name: programs started one after another
description: a loop of short programs in the client namespace
topology: pair
impair:
  - {from: client, to: server, loss: 1}
steps:
  - repeat:
      times: 400
      steps:
        - exec: {on: client, argv: [busybox, "true"], label: spawn}
expect:
  - program: spawn
    exit: 0
"#;

fn sigkill_at_any_point_while_programs_start_leaves_no_process_behind() {
    busybox();
    let (_repo, case) = repo(SPAWNING);
    // Kill points spread over start-up, impairment set-up and the spawning loop, shifted by a
    // seed from the clock so that runs probe different moments; the seed is in the message.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 7;
    for i in 0..12u64 {
        let delay = Duration::from_millis(5 + i * 60 + seed * 9);
        let marker = format!("spawning-{}-{i}", std::process::id());
        let twlab = start_twlab(&case, &marker);
        std::thread::sleep(delay);
        kill_and_check(
            twlab,
            &marker,
            &format!("{} ms after it started (seed {seed})", delay.as_millis()),
        );
    }
}
