//! Judging `workload:` checks: totals, the first failure and when it came, series over a
//! window. The observed value shows the figures the comparison saw.

use crate::case::{Check, SeriesAgg, SeriesMetric, Window};
use crate::scenario::workload::WorkloadRun;

use super::Observations;

/// How many interval values the evidence lists before it abbreviates.
const SHOWN: usize = 12;

pub(super) fn judge_workload(check: &Check, obs: &Observations) -> (bool, String) {
    let label = match check {
        Check::WorkloadTotal { label, .. }
        | Check::WorkloadFirstError { label, .. }
        | Check::WorkloadSeries { label, .. } => label,
        _ => return (false, format!("not a workload check: {check}")),
    };
    let Some(run) = obs.workloads.iter().find(|w| &w.label == label) else {
        return (false, format!("workload `{label}` did not run"));
    };
    match check {
        Check::WorkloadTotal { outcome, cmp, .. } => {
            let n = run.count(outcome.as_deref()) as i64;
            (cmp.holds(n), format!("{n} ({})", run.summary()))
        }
        Check::WorkloadFirstError { expected, at_s, .. } => match (&run.first_error, expected) {
            (None, None) => (true, format!("none failed ({})", run.summary())),
            (None, Some(_)) => (false, format!("no connection failed ({})", run.summary())),
            (Some(f), None) => (
                false,
                format!(
                    "{} at {:.1} s ({})",
                    f.outcome,
                    f.at.as_secs_f64(),
                    run.summary()
                ),
            ),
            (Some(f), Some(want)) => {
                let secs = f.at.as_secs() as i64;
                let kind_ok = &f.outcome == want;
                let at_ok = at_s.is_none_or(|c| c.holds(secs));
                (
                    kind_ok && at_ok,
                    format!(
                        "{} at {:.1} s (whole seconds: {secs}); {}",
                        f.outcome,
                        f.at.as_secs_f64(),
                        run.summary()
                    ),
                )
            }
        },
        Check::WorkloadSeries {
            metric,
            window,
            agg,
            cmp,
            ..
        } => judge_series(run, metric, window, *agg, cmp),
        _ => (false, format!("not a workload check: {check}")),
    }
}

fn judge_series(
    run: &WorkloadRun,
    metric: &SeriesMetric,
    window: &Window,
    agg: SeriesAgg,
    cmp: &crate::vocab::Comparison,
) -> (bool, String) {
    // Only whole intervals count: the last, shorter one would understate a rate or a count.
    let points: Vec<(f64, Option<i64>)> = run
        .intervals
        .iter()
        .filter(|i| window.holds(i.start, run.interval) && i.start + run.interval <= run.total)
        .map(|i| (i.start.as_secs_f64(), run.value(i, metric)))
        .collect();
    if points.is_empty() {
        return (
            false,
            format!(
                "no whole interval of {:?} lies in the window {window} (the workload ran {:.1} s)",
                run.interval,
                run.total.as_secs_f64()
            ),
        );
    }
    if points.iter().all(|(_, v)| v.is_none()) {
        let why = if metric.needs_socket_states() {
            " (socket states are counted only when the workload says `socket_states: true` or an expectation reads them)"
        } else {
            ""
        };
        return (false, format!("{metric} was not recorded{why}"));
    }
    let values: Vec<i64> = points.iter().filter_map(|(_, v)| *v).collect();
    let shown = show(&points);
    let value = match agg {
        SeriesAgg::Every => {
            let bad = points
                .iter()
                .find(|(_, v)| v.is_some_and(|v| !cmp.holds(v)));
            return match bad {
                Some((at, v)) => (
                    false,
                    format!("{} at {at:.1} s; values {shown}", v.unwrap_or_default()),
                ),
                None => (true, format!("values {shown}")),
            };
        }
        SeriesAgg::Max => values.iter().copied().max().unwrap_or(0),
        SeriesAgg::Min => values.iter().copied().min().unwrap_or(0),
        SeriesAgg::Mean => values.iter().sum::<i64>() / values.len() as i64,
        SeriesAgg::Sum => values.iter().sum(),
        SeriesAgg::Last => *values.last().unwrap_or(&0),
    };
    (
        cmp.holds(value),
        format!("{} {value}; values {shown}", agg.name()),
    )
}

/// The interval values, abbreviated in the middle when there are many.
fn show(points: &[(f64, Option<i64>)]) -> String {
    let fmt = |(at, v): &(f64, Option<i64>)| match v {
        Some(v) => format!("{at:.0}s:{v}"),
        None => format!("{at:.0}s:-"),
    };
    if points.len() <= SHOWN {
        return format!("[{}]", points.iter().map(fmt).collect::<Vec<_>>().join(" "));
    }
    let head: Vec<_> = points[..SHOWN / 2].iter().map(fmt).collect();
    let tail: Vec<_> = points[points.len() - SHOWN / 2..].iter().map(fmt).collect();
    format!(
        "[{} ... {}] ({} intervals)",
        head.join(" "),
        tail.join(" "),
        points.len()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::scenario::workload::{FirstError, Interval, NsInterval};
    use crate::vocab::Comparison;

    fn run() -> WorkloadRun {
        let intervals = (0..4u32)
            .map(|k| Interval {
                start: Duration::from_secs(k.into()),
                attempts: 100,
                ok: if k < 2 { 100 } else { 0 },
                errors: if k < 2 {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([("EADDRNOTAVAIL".to_string(), 100)])
                },
                ns: BTreeMap::from([(
                    "client".to_string(),
                    NsInterval {
                        time_wait: (u64::from(k) + 1).min(2) * 100,
                        ..NsInterval::default()
                    },
                )]),
                ..Interval::default()
            })
            .collect();
        WorkloadRun {
            label: "churn".into(),
            total: Duration::from_millis(4500),
            interval: Duration::from_secs(1),
            outcomes: BTreeMap::from([("ok".into(), 200), ("EADDRNOTAVAIL".into(), 200)]),
            first_error: Some(FirstError {
                outcome: "EADDRNOTAVAIL".into(),
                at: Duration::from_millis(2010),
            }),
            time_wait_object_bytes: Some(256),
            intervals,
            ..WorkloadRun::default()
        }
    }

    fn obs() -> Observations {
        Observations {
            workloads: vec![run()],
            ..Observations::default()
        }
    }

    fn series(metric: &str, window: &str, agg: SeriesAgg, cmp: Comparison) -> (bool, String) {
        judge_workload(
            &Check::WorkloadSeries {
                label: "churn".into(),
                metric: SeriesMetric::parse(metric).unwrap(),
                window: Window::parse(window).unwrap(),
                agg,
                cmp,
            },
            &obs(),
        )
    }

    #[test]
    fn every_interval_in_the_window_must_hold() {
        assert!(
            series(
                "time_wait@client",
                "1s..",
                SeriesAgg::Every,
                Comparison::Eq(200)
            )
            .0
        );
        let (passed, observed) = series(
            "time_wait@client",
            "..",
            SeriesAgg::Every,
            Comparison::Eq(200),
        );
        assert!(!passed);
        assert!(observed.starts_with("100 at 0.0 s"), "{observed}");
    }

    #[test]
    fn summaries_and_rates() {
        assert!(series("rate", "..2s", SeriesAgg::Min, Comparison::Eq(100)).0);
        assert!(
            series(
                "errors:EADDRNOTAVAIL",
                "2s..",
                SeriesAgg::Sum,
                Comparison::Eq(200)
            )
            .0
        );
        assert!(
            series(
                "time_wait_kib@client",
                "..",
                SeriesAgg::Last,
                Comparison::Eq(50)
            )
            .0
        );
        assert!(!series("ok", "..", SeriesAgg::Max, Comparison::AtMost(99)).0);
    }

    #[test]
    fn a_series_not_recorded_fails_with_the_reason() {
        let (passed, observed) = series(
            "TIME_WAIT@client",
            "..",
            SeriesAgg::Max,
            Comparison::AtLeast(0),
        );
        assert!(!passed);
        assert!(observed.contains("socket_states: true"), "{observed}");
    }

    #[test]
    fn first_error_and_when() {
        let check = |expected: Option<&str>, at: Option<Comparison>| {
            judge_workload(
                &Check::WorkloadFirstError {
                    label: "churn".into(),
                    expected: expected.map(str::to_string),
                    at_s: at,
                },
                &obs(),
            )
            .0
        };
        assert!(check(Some("EADDRNOTAVAIL"), Some(Comparison::Eq(2))));
        assert!(!check(Some("EADDRNOTAVAIL"), Some(Comparison::Eq(3))));
        assert!(!check(Some("TIMEOUT"), None));
        assert!(!check(None, None));
    }

    #[test]
    fn a_workload_that_did_not_run_fails() {
        let check = Check::WorkloadTotal {
            label: "other".into(),
            outcome: None,
            cmp: Comparison::Eq(0),
        };
        assert_eq!(
            judge_workload(&check, &obs()),
            (false, "workload `other` did not run".to_string())
        );
    }
}
