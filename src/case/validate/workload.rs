//! A `workload` step's values, and `workload: LABEL` expectations lowered to their checks.

use serde_saphyr::{Location, Spanned};

use crate::case::check::Check;
use crate::case::model::{CloseHow, ExpectSpec};
use crate::case::workload::{MIN_INTERVAL, SeriesAgg, SeriesMetric, Window, Workload};

use super::Ctx;
use crate::vocab::LIMIT;

impl Ctx<'_> {
    pub(super) fn workload(&mut self, w: &Workload, label: &str, at: Location) {
        for ns in w.from.value.names() {
            let spanned = Spanned {
                value: ns.to_string(),
                referenced: w.from.referenced,
                defined: w.from.defined,
            };
            self.namespace(&spanned);
        }
        if w.from.value.names().is_empty() {
            self.err(w.from.referenced, "`from` names no namespace");
        }
        self.address(&w.to, false);
        match (&w.rate, &w.concurrency) {
            (Some(_), Some(c)) => self.err(
                c.referenced,
                "a workload is open loop (`rate`) or closed loop (`concurrency`), not both",
            ),
            (None, None) => self.err(
                at,
                "say how fast the workload opens connections: `rate: N` (a second, whatever happens to earlier ones) or `concurrency: N` (in flight at once)",
            ),
            (Some(r), None) if r.value == 0 => self.err(r.referenced, "rate needs at least 1"),
            (None, Some(c)) if c.value == 0 => {
                self.err(c.referenced, "concurrency needs at least 1")
            }
            _ => {}
        }
        if w.duration.is_none() && w.count.is_none() {
            self.err(
                at,
                "say how long the workload runs: `duration: 30s`, `count: N` connections, or both (whichever comes first)",
            );
        }
        if let Some(c) = &w.count
            && c.value == 0
        {
            self.err(c.referenced, "count needs at least 1");
        }
        if w.interval.value.0 < MIN_INTERVAL {
            self.err(
                w.interval.referenced,
                "the series' interval is 100ms at the least",
            );
        }
        if w.ports.value == 0 || u32::from(w.port) + u32::from(w.ports.value) > 65536 {
            self.err(
                w.ports.referenced,
                format!(
                    "ports {}..{} do not fit in 1..65535",
                    w.port,
                    u32::from(w.port) + u32::from(w.ports.value)
                ),
            );
        }
        if w.port == 0 {
            self.err(
                at,
                "a workload listens on a fixed port: `port: 0` is not one",
            );
        }
        if let CloseHow::Linger(0) = w.close.how {
            self.err(at, "`linger: 0` is `how: abort`: write that");
        }
        if self.in_repeat {
            self.err(at, "a workload is a loop of its own: it cannot go inside `repeat` (use `count` or `duration`, or two workload steps with their own labels)");
        }
        if !self.workloads.insert(label.to_string()) {
            self.err(at, format!("another workload step is labelled `{label}`: give each its own `label`, so that expectations say which they mean"));
        }
    }

    /// A `workload: LABEL` expectation.
    pub(super) fn workload_expectation(
        &mut self,
        e: &ExpectSpec,
        label: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        if !self.workloads.contains(&label.value) {
            let known: Vec<_> = self.workloads.iter().cloned().collect();
            self.err(
                label.referenced,
                format!(
                    "no workload step is labelled `{}` (workloads: {}; a step's label defaults to its kind)",
                    label.value,
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            );
        }
        let l = label.value.clone();
        let mut any = self.totals(
            e,
            Self::workload_outcome,
            &|outcome, cmp| Check::WorkloadTotal {
                label: l.clone(),
                outcome,
                cmp,
            },
            push,
        );
        match (&e.first_error, &e.at_s) {
            (Some(f), at_s) => {
                any = true;
                let expected = if f.value == "none" {
                    if let Some(a) = at_s {
                        self.err(a.referenced, "`at_s` says when the first failure came: it cannot go with `first_error: none`");
                    }
                    Some(None)
                } else {
                    self.workload_outcome(f).map(Some)
                };
                if let Some(expected) = expected {
                    push(
                        f.referenced,
                        Check::WorkloadFirstError {
                            label: l.clone(),
                            expected,
                            at_s: at_s.as_ref().map(|a| a.value),
                        },
                    );
                }
            }
            (None, Some(a)) => self.err(
                a.referenced,
                "`at_s` goes with `first_error: OUTCOME`: say which failure it times",
            ),
            (None, None) => {}
        }
        let aggs = [
            (SeriesAgg::Every, &e.every),
            (SeriesAgg::Max, &e.max),
            (SeriesAgg::Min, &e.min),
            (SeriesAgg::Mean, &e.mean),
            (SeriesAgg::Sum, &e.sum),
            (SeriesAgg::Last, &e.last),
        ];
        let given: Vec<_> = aggs
            .iter()
            .filter_map(|(a, c)| c.as_ref().map(|c| (*a, c)))
            .collect();
        let window = match &e.window {
            Some(w) => match Window::parse(&w.value) {
                Ok(w) => Some(w),
                Err(m) => {
                    self.err(w.referenced, m);
                    None
                }
            },
            None => Some(Window::default()),
        };
        match &e.series {
            Some(s) => {
                any = true;
                let metric = match SeriesMetric::parse(&s.value) {
                    Ok(m) => {
                        if let Some(ns) = m.namespace() {
                            self.namespace(&Spanned {
                                value: ns.to_string(),
                                referenced: s.referenced,
                                defined: s.defined,
                            });
                        }
                        if let SeriesMetric::Errors(Some(o)) = &m {
                            self.workload_outcome(&Spanned {
                                value: o.clone(),
                                referenced: s.referenced,
                                defined: s.defined,
                            });
                        }
                        Some(m)
                    }
                    Err(msg) => {
                        self.err(s.referenced, msg);
                        None
                    }
                };
                let [(agg, cmp)] = given.as_slice() else {
                    self.err(
                        s.referenced,
                        "say how the series is judged with exactly one of `every`, `max`, `min`, `mean`, `sum` or `last`",
                    );
                    return;
                };
                if let (Some(metric), Some(window)) = (metric, window) {
                    push(
                        cmp.referenced,
                        Check::WorkloadSeries {
                            label: l,
                            metric,
                            window,
                            agg: *agg,
                            cmp: cmp.value,
                        },
                    );
                }
            }
            None => {
                for (agg, c) in &given {
                    self.err(
                        c.referenced,
                        format!("`{}` sums up a series: it goes with `series:`", agg.name()),
                    );
                }
                if let Some(w) = &e.window {
                    self.err(w.referenced, "`window` goes with `series:`");
                }
            }
        }
        if !any {
            self.err(at, "say what to check about the workload: ok, attempts, errors, first_error (with at_s), or a series with every, max, min, mean, sum or last");
        }
    }

    /// An outcome a workload's connection can have: ok, TIMEOUT, LIMIT or an errno name.
    fn workload_outcome(&mut self, s: &Spanned<String>) -> Option<String> {
        if s.value == LIMIT {
            return Some(LIMIT.into());
        }
        self.outcome(s)
    }
}
