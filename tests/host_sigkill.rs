//! SIGKILL twlab while the table-full case (or `twlab rollout --host` with a profile) has the
//! host's nf_conntrack_max changed: nothing can restore it then, so the value stays; the next
//! twlab must restore it from the journal and say so.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

tests_main!(harness::NAMESPACES => [
    host_global_changes_are_restored_after_a_run_and_after_sigkill,
]);

/// SIGKILL `child` as soon as nf_conntrack_max reads `wanted` (other twlab processes may
/// hold the host lock first: wait generously), and check that nothing restored it.
fn kill_once_set(child: &mut std::process::Child, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_max() != wanted {
        assert!(
            Instant::now() < deadline,
            "twlab never set nf_conntrack_max to {wanted}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "twlab ended before changing the host"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(
        read_max(),
        wanted,
        "after SIGKILL nothing could have restored the value yet"
    );
}

/// One test, so that the two never run at once: both change the same host key.
fn host_global_changes_are_restored_after_a_run_and_after_sigkill() {
    sigkill_during_a_host_global_change_is_repaired_by_the_next_run();
    rollout_host_restores_the_profile_s_host_keys_after_a_run_and_after_sigkill();
}

const KEY: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

fn read_max() -> String {
    std::fs::read_to_string(KEY)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Last resort if the test fails half-way: put the original value back so a failing test
/// cannot leave the host changed. (twlab's own recovery is what the test checks.)
struct Failsafe(String);
impl Drop for Failsafe {
    fn drop(&mut self) {
        if read_max() != self.0 {
            let _ = std::fs::write(KEY, &self.0);
        }
    }
}

fn sigkill_during_a_host_global_change_is_repaired_by_the_next_run() {
    let original = read_max();
    let _failsafe = Failsafe(original.clone());
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cases/conntrack/table-full-from-time-wait.yaml"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .args(["run", case])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start twlab");
    kill_once_set(&mut child, "64");

    let next = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .args([
            "run",
            concat!(env!("CARGO_MANIFEST_DIR"), "/cases/abort/linger-zero.yaml"),
        ])
        .output()
        .expect("run twlab again");
    let stdout = String::from_utf8_lossy(&next.stdout);
    assert_eq!(
        read_max(),
        original,
        "the next run did not restore nf_conntrack_max:\n{stdout}"
    );
    assert!(
        stdout.contains("restored net.netfilter.nf_conntrack_max") && stdout.contains(&original),
        "the next run restored the value but did not say so:\n{stdout}"
    );
}

/// `twlab rollout --host` sets a profile's nf_conntrack_max for the profile's runs only: after
/// a whole run the host has its value back, and after a SIGKILL in the middle the next twlab
/// puts it back from the journal.
fn rollout_host_restores_the_profile_s_host_keys_after_a_run_and_after_sigkill() {
    let original = read_max();
    let _failsafe = Failsafe(original.clone());
    // A value no other test uses, so that seeing it means this rollout set it.
    let wanted = "4097";
    let dir = std::env::temp_dir().join(format!("twlab-rollout-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("small-table.conf");
    std::fs::write(
        &profile,
        format!("net.netfilter.nf_conntrack_max = {wanted}\n"),
    )
    .unwrap();
    let workload = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cases/rollout/conntrack-router-churn.yaml"
    );
    let rollout = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_twlab"));
        c.args(["rollout", "--host", "--no-claims", "--cases", workload])
            .arg(&profile);
        c
    };

    let whole = rollout().output().expect("run twlab rollout");
    let text = String::from_utf8_lossy(&whole.stdout);
    assert_eq!(read_max(), original, "not restored after the run:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("worse") && l.contains("conntrack-router-churn")),
        "a 4097-entry table at 1000/s for 5 s must drop SYNs:\n{text}"
    );

    let mut child = rollout()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start twlab rollout");
    kill_once_set(&mut child, wanted);
    let next = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .args(["rollout", "--keys-only"])
        .arg(&profile)
        .output()
        .expect("run twlab rollout again");
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert_eq!(
        read_max(),
        original,
        "the next twlab did not restore it:\n{stderr}"
    );
    assert!(
        stderr.contains("restored net.netfilter.nf_conntrack_max"),
        "restored without saying so:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
