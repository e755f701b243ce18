//! Killing twlab with SIGKILL in the middle of a case leaves nothing behind: its namespaces
//! are owned only by its own threads and file descriptors, so once the process is gone nothing
//! references them and the kernel frees them with their veth links and sockets.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

tests_main!(harness::NAMESPACES => [
    sigkill_mid_case_leaves_no_namespace_veth_or_process,
]);

/// Network-namespace identities (`net:[inode]`) referenced by any thread of `pid` (or of every
/// process, with `None`), plus any nsfs bind mount.
fn netns_refs(pid: Option<u32>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pids: Vec<String> = match pid {
        Some(p) => vec![p.to_string()],
        None => std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
            .collect(),
    };
    for p in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(link) = std::fs::read_link(t.path().join("ns/net")) {
                out.insert(link.to_string_lossy().into_owned());
            }
        }
    }
    if pid.is_none() {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mounts.lines().filter(|l| l.contains("nsfs")) {
            if let Some(ns) = line.split_whitespace().find(|w| w.starts_with("net:[")) {
                out.insert(ns.to_string());
            }
        }
    }
    out
}

fn sigkill_mid_case_leaves_no_namespace_veth_or_process() {
    let host = netns_refs(None);
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cases/claims/fin-timeout-does-not-shorten-time-wait.yaml"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .args(["run", case])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start twlab");
    let pid = child.id();

    // Wait until the case's two namespaces exist (the case then runs for 15 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let created = loop {
        let ours: BTreeSet<String> = netns_refs(Some(pid)).difference(&host).cloned().collect();
        if ours.len() >= 2 {
            break ours;
        }
        assert!(
            Instant::now() < deadline,
            "twlab never created its namespaces"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());

    // Nothing in the system may still reference the case's namespaces.
    let left: BTreeSet<String> = netns_refs(None).intersection(&created).cloned().collect();
    assert!(
        left.is_empty(),
        "namespaces still referenced after SIGKILL: {left:?}"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "twlab process {pid} is still there"
    );
    for name in ["to-server", "to-client"] {
        assert!(
            !std::path::Path::new("/sys/class/net").join(name).exists(),
            "veth `{name}` appeared in the host namespace"
        );
    }
}
