//! SIGKILL twlab while the table-full case has the host's nf_conntrack_max at 64: nothing can
//! restore it then, so the value stays; the next twlab run must restore it from the journal
//! and say so.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

tests_main!(harness::NAMESPACES => [
    sigkill_during_a_host_global_change_is_repaired_by_the_next_run,
]);

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
    // Other twlab processes may hold the host lock first: wait generously for our change.
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_max() != "64" {
        assert!(
            Instant::now() < deadline,
            "twlab never set nf_conntrack_max to 64"
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
        "64",
        "after SIGKILL nothing could have restored the value yet"
    );

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
