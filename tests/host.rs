//! twlab::host changes host-global sysctls for real (nf_conntrack_max here), so these tests run
//! only as root, one at a time (a flock shared by every test of this file, whether libtest runs
//! them as threads or nextest as processes), each with its own temporary journal.
//!
//! Other twlab processes (conntrack cases) may run meanwhile: the baseline value and every
//! "restored" check are read under the shared host lock, when no host-global change is in force.
//!
//! Every test leaves nf_conntrack_max as it found it (262144 on this machine), even when it fails:
//! the fixture's `LastResort` takes the exclusive host lock and writes the baseline back if the
//! value differs when the test ends. That write is the only one made outside twlab::host's
//! restore, and only as a last resort; a passing test never needs it.

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use twlab::host::{HostChange, HostConfig, HostError};

const KEY: &str = "net.netfilter.nf_conntrack_max";
const PROC: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const TEST_VALUE: &str = "64";
/// Makes `child_applies_and_waits` do its work (it returns at once otherwise).
const CHILD_ENV: &str = "TWLAB_HOST_TEST_CHILD";

tests_main!(
    HOST => [
        apply_sets_the_value_and_dropping_the_guard_restores_it,
        a_panic_while_the_guard_is_held_restores_the_value,
        after_sigkill_the_change_stays_until_recover_restores_it,
        apply_and_shared_first_restore_what_a_dead_process_left,
        sigterm_restores_the_value_before_the_process_ends,
        shared_and_exclusive_exclude_each_other,
        apply_is_refused_on_a_namespace_thread_and_a_guard_dropped_there_still_restores,
    ],
    harness::NOTHING => [only_allowlisted_keys_and_numeric_values_are_accepted],
    harness::HELPER => [child_applies_and_waits],
);

fn read() -> String {
    std::fs::read_to_string(PROC).unwrap().trim().to_string()
}

/// Last resort (see the file's comment): puts the baseline back, under the exclusive host lock
/// so that it never undoes another twlab process's change in force.
struct LastResort {
    baseline: String,
    cfg: HostConfig,
}

impl Drop for LastResort {
    fn drop(&mut self) {
        let cfg = HostConfig {
            lock_timeout: Duration::from_secs(120),
            ..self.cfg.clone()
        };
        // No change: the exclusive lock only (and recovery of this test's own journal).
        let exclusive = cfg.apply(&[]);
        if let Err(e) = &exclusive {
            eprintln!("LAST RESORT: could not take the host lock ({e}); checking anyway");
        }
        let now = std::fs::read_to_string(PROC).unwrap_or_default();
        if now.trim() != self.baseline {
            eprintln!(
                "LAST RESORT: {KEY} is {} at the end of the test; writing {} back",
                now.trim(),
                self.baseline
            );
            std::fs::write(PROC, &self.baseline).expect("last-resort restore of nf_conntrack_max");
        }
        drop(exclusive);
    }
}

/// Killed (SIGKILL) and reaped if the test ends while it still runs.
struct Child(Option<std::process::Child>);

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Child {
    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Waits for the child to end; returns its status and what it printed on stderr.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

// Fields drop in order: the last resort runs before the serial lock is released.
struct Fixture {
    _last_resort: LastResort,
    cfg: HostConfig,
    host_value: String,
    _dir: tempfile::TempDir,
    _serial: Flock<File>,
}

/// What these tests need: root, and a kernel with conntrack.
fn root_and_conntrack() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("changing host-global sysctls needs root".into());
    }
    if !Path::new(PROC).exists() {
        return Err(
            "this kernel has no conntrack (no /proc/sys/net/netfilter/nf_conntrack_max)".into(),
        );
    }
    Ok(())
}

const HOST: harness::Needs = harness::Needs::Probe(root_and_conntrack);

fn setup() -> Option<Fixture> {
    std::fs::create_dir_all("/run/twlab").unwrap();
    let serial = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/twlab/host-tests.lock")
        .unwrap();
    let serial = Flock::lock(serial, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        journal: dir.path().join("host-journal.json"),
        ..HostConfig::from_env()
    };
    let host_value = settled(&cfg);
    let last_resort = LastResort {
        baseline: host_value.clone(),
        cfg: cfg.clone(),
    };
    assert_ne!(
        host_value, TEST_VALUE,
        "{KEY} is already {TEST_VALUE} before the test: left by an earlier run? \
         twlab::host::recover() restores it if that run's journal is at the default path"
    );
    Some(Fixture {
        _last_resort: last_resort,
        cfg,
        host_value,
        _dir: dir,
        _serial: serial,
    })
}

/// The value while no host-global change is in force (read under the shared host lock).
fn settled(cfg: &HostConfig) -> String {
    let _shared = cfg.shared().unwrap();
    read()
}

fn change(value: &str) -> Vec<HostChange> {
    vec![HostChange::new(KEY, value)]
}

fn journal_owner_pid(path: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["owner"]["pid"].as_u64().unwrap()
}

/// The helper that other tests start in a child process: apply and wait to be killed.
fn child_applies_and_waits() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let guard = twlab::host::apply(&change(TEST_VALUE)).expect("apply in the child");
    println!("applied: {:?}", guard.changes());
    // Bounded: a child nobody kills restores and ends by itself.
    thread::sleep(Duration::from_secs(60));
    drop(guard);
}

/// Starts `child_applies_and_waits` in a new process using `journal`, and waits until its change
/// is visible.
fn spawn_child(journal: &Path) -> Child {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_applies_and_waits",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("TWLAB_HOST_JOURNAL", journal)
        .env_remove("RUST_TEST_THREADS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(read() == TEST_VALUE && journal.exists()) {
        if let Some(status) = child.0.as_mut().unwrap().try_wait().unwrap() {
            let mut err = String::new();
            let _ = child
                .0
                .as_mut()
                .unwrap()
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err);
            panic!("the child ended ({status}) before its change was visible:\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "the child's change never became visible"
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(journal_owner_pid(journal), u64::from(child.pid()));
    child
}

/// Starts the child, waits for its change, SIGKILLs it: the change and its journal are left.
fn killed_child(fx: &Fixture) -> u32 {
    let child = spawn_child(&fx.cfg.journal);
    let pid = child.pid();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let (status, _) = child.wait();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert_eq!(read(), TEST_VALUE, "a SIGKILLed owner cannot restore");
    assert!(fx.cfg.journal.exists(), "the journal outlives its owner");
    pid
}

fn left_at_message(fx: &Fixture, pid: u32) -> String {
    format!(
        "restored {KEY} to {} (left at {TEST_VALUE} by twlab pid {pid}, which died)",
        fx.host_value
    )
}

fn apply_sets_the_value_and_dropping_the_guard_restores_it() {
    let Some(fx) = setup() else { return };
    let guard = fx.cfg.apply(&change(TEST_VALUE)).unwrap();
    assert_eq!(read(), TEST_VALUE);
    assert_eq!(
        guard.changes(),
        vec![format!("{KEY} {} -> {TEST_VALUE}", fx.host_value)]
    );
    assert!(guard.recovered().is_empty());
    // The journal names this process and the original value while the change is in force.
    let text = std::fs::read_to_string(&fx.cfg.journal).unwrap();
    assert_eq!(
        journal_owner_pid(&fx.cfg.journal),
        u64::from(std::process::id())
    );
    assert!(
        text.contains(&format!("\"original\": \"{}\"", fx.host_value)),
        "{text}"
    );
    drop(guard);
    assert_eq!(settled(&fx.cfg), fx.host_value);
    assert!(
        !fx.cfg.journal.exists(),
        "the journal is removed after the restore"
    );

    // The same through restore(), which reports the outcome.
    let guard = fx.cfg.apply(&change("65")).unwrap();
    assert_eq!(read(), "65");
    guard.restore().unwrap();
    assert_eq!(settled(&fx.cfg), fx.host_value);
    assert!(!fx.cfg.journal.exists());
}

fn a_panic_while_the_guard_is_held_restores_the_value() {
    let Some(fx) = setup() else { return };
    let result = std::panic::catch_unwind(|| {
        let _guard = fx.cfg.apply(&change(TEST_VALUE)).unwrap();
        assert_eq!(read(), TEST_VALUE);
        panic!("a case failed while the host change was in force");
    });
    assert!(result.is_err());
    assert_eq!(settled(&fx.cfg), fx.host_value);
    assert!(!fx.cfg.journal.exists());
}

fn after_sigkill_the_change_stays_until_recover_restores_it() {
    let Some(fx) = setup() else { return };
    let pid = killed_child(&fx);

    // A journal whose owner still runs is not touched: pretend it is this process's.
    let left = std::fs::read_to_string(&fx.cfg.journal).unwrap();
    let mut live: serde_json::Value = serde_json::from_str(&left).unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start_time: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    live["owner"]["pid"] = std::process::id().into();
    live["owner"]["start_time"] = start_time.into();
    std::fs::write(&fx.cfg.journal, live.to_string()).unwrap();
    assert_eq!(fx.cfg.recover().unwrap(), Vec::<String>::new());
    assert_eq!(read(), TEST_VALUE);
    assert_eq!(
        std::fs::read_to_string(&fx.cfg.journal).unwrap(),
        live.to_string()
    );

    // The dead child's journal is restored.
    std::fs::write(&fx.cfg.journal, &left).unwrap();
    let messages = fx.cfg.recover().unwrap();
    assert_eq!(messages, vec![left_at_message(&fx, pid)]);
    assert_eq!(settled(&fx.cfg), fx.host_value);
    assert!(!fx.cfg.journal.exists(), "recover removes the journal");
    assert_eq!(fx.cfg.recover().unwrap(), Vec::<String>::new());
}

fn apply_and_shared_first_restore_what_a_dead_process_left() {
    let Some(fx) = setup() else { return };
    // apply records the real original value, not the one the dead process left.
    let pid = killed_child(&fx);
    let guard = fx.cfg.apply(&change("65")).unwrap();
    assert_eq!(guard.recovered(), [left_at_message(&fx, pid)]);
    assert_eq!(
        guard.changes(),
        vec![format!("{KEY} {} -> 65", fx.host_value)]
    );
    assert_eq!(read(), "65");
    drop(guard);
    assert_eq!(settled(&fx.cfg), fx.host_value);

    // A conntrack case never runs against a setting a dead process left changed.
    let pid = killed_child(&fx);
    let shared = fx.cfg.shared().unwrap();
    assert_eq!(shared.recovered(), [left_at_message(&fx, pid)]);
    assert_eq!(read(), fx.host_value);
    assert!(!fx.cfg.journal.exists());
}

fn sigterm_restores_the_value_before_the_process_ends() {
    let Some(fx) = setup() else { return };
    let child = spawn_child(&fx.cfg.journal);
    kill(Pid::from_raw(child.pid() as i32), Signal::SIGTERM).unwrap();
    let (status, stderr) = child.wait();
    // Ended by the signal as it would have been without the handler.
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}\n{stderr}");
    // The child's handler restored it and removed the journal: no other process knows this
    // test's journal, and this one has not touched it yet (settled() would recover it).
    assert!(!fx.cfg.journal.exists(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "twlab: SIGTERM: restored {KEY} to {}",
            fx.host_value
        )),
        "{stderr}"
    );
    assert_eq!(settled(&fx.cfg), fx.host_value, "{stderr}");
}

fn shared_and_exclusive_exclude_each_other() {
    let Some(fx) = setup() else { return };
    let short = HostConfig {
        lock_timeout: Duration::from_millis(300),
        ..fx.cfg.clone()
    };
    let timed_out = |r: Result<(), HostError>, mode: &str| match r {
        Err(HostError::LockTimeout { mode: m, .. }) if m == mode => {}
        other => panic!("expected a {mode} lock timeout, got {other:?}"),
    };

    // An exclusive guard (host change in force) keeps shared lockers out...
    let guard = fx.cfg.apply(&change(TEST_VALUE)).unwrap();
    let r = thread::scope(|s| s.spawn(|| short.shared().map(drop)).join().unwrap());
    timed_out(r, "shared");
    // ...and a waiting one proceeds once it is gone, finding the value restored.
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let _shared = fx.cfg.shared().unwrap();
            (Instant::now(), read())
        });
        thread::sleep(Duration::from_millis(300));
        let released = Instant::now();
        drop(guard);
        let (acquired, value) = waiter.join().unwrap();
        assert!(acquired >= released, "shared() did not wait");
        assert_eq!(value, fx.host_value);
    });

    // Shared guards coexist, and keep an exclusive one out.
    let s1 = fx.cfg.shared().unwrap();
    let s2 = thread::scope(|s| s.spawn(|| short.shared()).join().unwrap()).unwrap();
    let r = thread::scope(|s| {
        s.spawn(|| short.apply(&change(TEST_VALUE)).map(drop))
            .join()
            .unwrap()
    });
    timed_out(r, "exclusive");
    assert_eq!(read(), fx.host_value);
    drop(s2);

    // A waiting exclusive locker gets in once the last shared one goes, and shared lockers that
    // come while it waits queue behind it (no starvation by overlapping conntrack cases).
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let guard = fx.cfg.apply(&change(TEST_VALUE)).unwrap();
            let acquired = Instant::now();
            assert_eq!(read(), TEST_VALUE);
            drop(guard);
            acquired
        });
        thread::sleep(Duration::from_millis(300));
        timed_out(short.shared().map(drop), "shared");
        assert_eq!(read(), fx.host_value);
        let released = Instant::now();
        drop(s1);
        assert!(writer.join().unwrap() >= released, "apply() did not wait");
    });
    assert_eq!(settled(&fx.cfg), fx.host_value);
    assert!(!fx.cfg.journal.exists());
}

fn only_allowlisted_keys_and_numeric_values_are_accepted() {
    // No privileges needed: these are refused before anything is locked or read.
    assert!(twlab::host::is_host_settable(
        "net.netfilter.nf_conntrack_max"
    ));
    assert!(twlab::host::is_host_settable(
        "net.netfilter.nf_conntrack_expect_max"
    ));
    for key in [
        "net.netfilter.nf_conntrack_buckets",
        "net.ipv4.tcp_fin_timeout",
        "kernel.pid_max",
        "net/netfilter/nf_conntrack_max",
    ] {
        assert!(!twlab::host::is_host_settable(key), "{key}");
    }
    let cfg = HostConfig {
        journal: PathBuf::from("/nonexistent/never-written.json"),
        ..HostConfig::from_env()
    };
    let err = cfg
        .apply(&[HostChange::new("net.ipv4.tcp_fin_timeout", "30")])
        .unwrap_err();
    assert!(matches!(err, HostError::NotAllowed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`net.ipv4.tcp_fin_timeout` may not be changed on the host"),
        "{msg}"
    );
    assert!(msg.contains("net.netfilter.nf_conntrack_max"), "{msg}");

    let err = cfg.apply(&change("sixty-four")).unwrap_err();
    assert!(matches!(err, HostError::BadValue { .. }), "{err:?}");
    let err = cfg
        .apply(&[HostChange::new(KEY, "64"), HostChange::new(KEY, "65")])
        .unwrap_err();
    assert!(matches!(err, HostError::Duplicate { .. }), "{err:?}");
}

fn apply_is_refused_on_a_namespace_thread_and_a_guard_dropped_there_still_restores() {
    let Some(fx) = setup() else { return };
    let in_child_namespace = |f: &(dyn Fn() + Sync)| {
        thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    };
    in_child_namespace(&|| {
        let err = fx.cfg.apply(&change(TEST_VALUE)).unwrap_err();
        assert!(
            matches!(err, HostError::NotInitialNamespace { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("initial network namespace"),
            "{err}"
        );
    });
    assert_eq!(settled(&fx.cfg), fx.host_value);

    // The restore enters the initial namespace itself when the guard is dropped elsewhere.
    let guard = std::sync::Mutex::new(Some(fx.cfg.apply(&change(TEST_VALUE)).unwrap()));
    in_child_namespace(&|| {
        let guard = guard.lock().unwrap().take().unwrap();
        // This thread sees its own namespace's read-only copy, not the host's value.
        guard.restore().unwrap();
    });
    assert_eq!(settled(&fx.cfg), fx.host_value);
    assert!(!fx.cfg.journal.exists());
}
