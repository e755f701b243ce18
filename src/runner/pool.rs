//! The worker pool of `twlab run` and `twlab claims` (and so of the matrix's host column,
//! which is a `twlab run`): trials taken in order by `jobs` threads, each run by every rule
//! of the suite, a panic caught as that trial's failure.

use std::borrow::Borrow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::suite::{Executed, TrialKind, TrialSpec, execute_full};

/// Runs every trial; `done` is called as each one ends (for progress lines). The results are
/// in the trials' order.
pub fn run_all<T: Borrow<TrialSpec> + Sync>(
    trials: &[T],
    jobs: usize,
    include_slow: bool,
    done: impl Fn(&TrialSpec, &Executed, f64) + Sync,
) -> Vec<(Executed, f64)> {
    run_watched(trials, jobs, include_slow, |_| {}, done)
}

/// Who watches a run go by (live progress): told how many trials a batch adds, and when
/// each starts and ends. A rollout runs several batches through one watch.
pub trait Watch: Sync {
    fn planned(&self, _trials: usize) {}
    fn started(&self, _trial: &TrialSpec) {}
    fn finished(&self, _trial: &TrialSpec, _run: &Executed) {}
}

/// Nobody watches.
pub struct Quiet;

impl Watch for Quiet {}

/// `run_all`, with `watch` told of the batch and of each trial as it starts and ends.
pub fn run_observed<T: Borrow<TrialSpec> + Sync>(
    trials: &[T],
    jobs: usize,
    include_slow: bool,
    watch: &dyn Watch,
) -> Vec<(Executed, f64)> {
    watch.planned(trials.len());
    run_watched(
        trials,
        jobs,
        include_slow,
        |t| watch.started(t),
        |t, e, _| watch.finished(t, e),
    )
}

/// `run_all`, also told when each trial starts (for live progress).
pub fn run_watched<T: Borrow<TrialSpec> + Sync>(
    trials: &[T],
    jobs: usize,
    include_slow: bool,
    started: impl Fn(&TrialSpec) + Sync,
    done: impl Fn(&TrialSpec, &Executed, f64) + Sync,
) -> Vec<(Executed, f64)> {
    run_with(
        trials,
        jobs,
        |t| {
            started(t);
            execute_full(t, include_slow)
        },
        done,
    )
}

/// A panic in a trial is that trial's failure, with the message: the other trials still run
/// and the report is still written.
fn caught(spec: &TrialSpec, execute: impl FnOnce() -> Executed) -> Executed {
    catch_unwind(AssertUnwindSafe(execute)).unwrap_or_else(|panic| {
        let message = crate::vocab::panic_message(panic.as_ref());
        let text = format!(
            "{}: twlab panicked while running this trial (a bug in twlab; please report it): \
             {message}",
            spec.name
        );
        Executed::stopped(text.clone(), text)
    })
}

fn run_with<T: Borrow<TrialSpec> + Sync>(
    trials: &[T],
    jobs: usize,
    execute: impl Fn(&TrialSpec) -> Executed + Sync,
    done: impl Fn(&TrialSpec, &Executed, f64) + Sync,
) -> Vec<(Executed, f64)> {
    // Workload trials run one at a time (see `run_trial`). One worker takes them in turn
    // while the others take the rest, so that they neither form a serial tail at the end nor
    // hold every worker waiting for the one that runs.
    let heavy = |i: &usize| match &trials[*i].borrow().kind {
        TrialKind::Run { case, .. } => case.has_workload(),
        _ => false,
    };
    let (workloads, others): (Vec<usize>, Vec<usize>) = (0..trials.len()).partition(heavy);
    let queues = [
        (workloads, AtomicUsize::new(0)),
        (others, AtomicUsize::new(0)),
    ];
    let take = |q: usize| {
        let (order, next) = &queues[q];
        order.get(next.fetch_add(1, Ordering::SeqCst)).copied()
    };
    let results: Mutex<Vec<Option<(Executed, f64)>>> =
        Mutex::new((0..trials.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for worker in 0..jobs.max(1) {
            let (mine, then) = if worker == 0 { (0, 1) } else { (1, 0) };
            let (take, results, execute, done) = (&take, &results, &execute, &done);
            s.spawn(move || {
                while let Some(i) = take(mine).or_else(|| take(then)) {
                    let t = trials[i].borrow();
                    let began = std::time::Instant::now();
                    let e = caught(t, || execute(t));
                    let seconds = began.elapsed().as_secs_f64();
                    done(t, &e, seconds);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some((e, seconds));
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{CaseErrors, SourceError};
    use crate::runner::suite::TrialResult;

    fn broken(name: &str) -> TrialSpec {
        TrialSpec {
            name: name.into(),
            kind: TrialKind::Broken(CaseErrors(vec![SourceError::whole_file(
                std::path::Path::new(name),
                "x".to_string(),
            )])),
        }
    }

    #[test]
    fn a_panicking_trial_fails_with_its_message_and_the_others_still_run() {
        let trials = [broken("a"), broken("boom"), broken("c")];
        let runs = run_with(
            &trials,
            2,
            |t| {
                if t.name == "boom" {
                    panic!("index out of range in the engine");
                }
                Executed::without_report(TrialResult::Passed(t.name.clone()))
            },
            |_, _, _| {},
        );
        assert_eq!(runs.len(), 3);
        assert!(matches!(&runs[0].0.result, TrialResult::Passed(n) if n == "a"));
        assert!(matches!(&runs[2].0.result, TrialResult::Passed(n) if n == "c"));
        let TrialResult::Failed(text) = &runs[1].0.result else {
            panic!("the panicking trial did not fail");
        };
        assert!(text.starts_with("boom: twlab panicked"), "{text}");
        assert!(text.contains("index out of range in the engine"), "{text}");
        assert_eq!(runs[1].0.facts.failures.len(), 1);
    }
}
