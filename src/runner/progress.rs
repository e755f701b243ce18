//! Live progress of a run on a terminal: one status line on stderr (done/total, failures so
//! far, the running trials with their elapsed time), redrawn as trials start and end and on a
//! tick, with each failure printed above it for good. Not on a terminal (CI logs), one plain
//! line per finished trial instead, so a log never holds escape codes.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::pool::Watch;
use super::suite::{Executed, TrialResult, TrialSpec};

pub struct Progress {
    /// Trials planned so far (a rollout adds its one-key-out runs after its first batch).
    total: AtomicUsize,
    tty: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    done: usize,
    failed: usize,
    running: Vec<(String, Instant)>,
}

/// The status line: `[ 37/135] 2 failed | running: rates/x 3.2s, seeds/y 0.1s`, the longest
/// running first, cut to `width` characters.
pub fn status_line(
    done: usize,
    total: usize,
    failed: usize,
    running: &[(String, Duration)],
    width: usize,
) -> String {
    let digits = total.to_string().len();
    let mut line = format!("[{done:>digits$}/{total}]");
    if failed > 0 {
        line += &format!(" {failed} failed");
    }
    let mut running: Vec<&(String, Duration)> = running.iter().collect();
    running.sort_by_key(|r| std::cmp::Reverse(r.1));
    if !running.is_empty() {
        let names: Vec<String> = running
            .iter()
            .map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64()))
            .collect();
        line += &format!(" | running: {}", names.join(", "));
    }
    fit(line, width)
}

/// A status line cut to `width` characters, with `...` where it was cut.
pub fn fit(line: String, width: usize) -> String {
    if line.chars().count() > width {
        line.chars()
            .take(width.saturating_sub(3))
            .collect::<String>()
            + "..."
    } else {
        line
    }
}

/// The terminal's width from `COLUMNS`, else 120.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

impl Progress {
    /// Progress of `total` trials, live when stderr is a terminal.
    pub fn new(total: usize) -> Progress {
        Progress {
            total: AtomicUsize::new(total),
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn started(&self, name: &str) {
        self.state()
            .running
            .push((name.to_string(), Instant::now()));
        self.tick();
    }

    /// A trial ended with `tag` (`pass`, `FAIL`, `skip`).
    pub fn finished(&self, name: &str, tag: &str) {
        let mut st = self.state();
        st.running.retain(|(n, _)| n != name);
        st.done += 1;
        if tag == "FAIL" {
            st.failed += 1;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            // Failures stay on the screen; passes and skips only move the count.
            if tag == "FAIL" {
                let _ = writeln!(err, "\r\x1b[2K  FAIL  {name}");
            }
            let _ = write!(err, "\r\x1b[2K{}", self.line(&st));
        } else {
            let total = self.total.load(Ordering::Relaxed);
            let digits = total.to_string().len();
            let _ = writeln!(err, "  {tag}  [{:>digits$}/{total}] {name}", st.done);
        }
        let _ = err.flush();
    }

    /// Redraw the status line (elapsed times move); nothing when not on a terminal.
    pub fn tick(&self) {
        if !self.tty {
            return;
        }
        let st = self.state();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", self.line(&st));
        let _ = err.flush();
    }

    /// Clear the status line before the report is printed.
    pub fn clear(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }

    fn line(&self, st: &State) -> String {
        let now = Instant::now();
        let running: Vec<(String, Duration)> = st
            .running
            .iter()
            .map(|(n, t)| (n.clone(), now.duration_since(*t)))
            .collect();
        let width = terminal_width();
        let total = self.total.load(Ordering::Relaxed);
        status_line(st.done, total, st.failed, &running, width)
    }
}

/// Runs `work` with a live progress line (counting the trials its batches plan), redrawn on
/// a tick so that elapsed times move while no trial starts or ends, and cleared at the end.
pub fn with_progress<R>(work: impl FnOnce(&Progress) -> R) -> R {
    let progress = Progress::new(0);
    let finished = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                progress.tick();
            }
        });
        let out = work(&progress);
        finished.store(true, Ordering::Relaxed);
        out
    });
    progress.clear();
    out
}

/// The tag of a finished trial.
pub fn tag(result: &TrialResult) -> &'static str {
    match result {
        TrialResult::Passed(_) => "pass",
        TrialResult::Xfail(_) => "xfail",
        TrialResult::Failed(_) => "FAIL",
        TrialResult::Ignored(_) => "skip",
    }
}

impl Watch for Progress {
    fn planned(&self, trials: usize) {
        self.total.fetch_add(trials, Ordering::Relaxed);
    }

    fn started(&self, trial: &TrialSpec) {
        Progress::started(self, &trial.name);
    }

    fn finished(&self, trial: &TrialSpec, run: &Executed) {
        Progress::finished(self, &trial.name, tag(&run.result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_failures_and_lists_the_longest_running_first() {
        let running = [
            ("seeds/a".to_string(), Duration::from_millis(100)),
            ("rates/b".to_string(), Duration::from_millis(3200)),
        ];
        assert_eq!(
            status_line(37, 135, 2, &running, 200),
            "[ 37/135] 2 failed | running: rates/b 3.2s, seeds/a 0.1s"
        );
        assert_eq!(status_line(0, 9, 0, &[], 200), "[0/9]");
        let cut = status_line(1, 9, 0, &running, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with("..."));
    }
}
