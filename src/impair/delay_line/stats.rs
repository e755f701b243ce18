//! Hold-time statistics: samples and percentiles.

use std::time::Duration;

use super::holder::SplitMix64;
use super::*;

/// A uniform sample of (hold, late) pairs: every pair until full, then reservoir sampling.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) kept: Vec<(Duration, Duration)>,
    pub(super) seen: u64,
}

impl Samples {
    pub(super) fn add(&mut self, hold: Duration, late: Duration, rng: &mut SplitMix64) {
        self.seen += 1;
        if self.kept.len() < SAMPLES {
            self.kept.push((hold, late));
        } else {
            let slot = (rng.next() % self.seen) as usize;
            if slot < SAMPLES {
                self.kept[slot] = (hold, late);
            }
        }
    }

    /// ((hold p50, hold p99), (late p50, late p99)), nearest rank.
    pub(super) fn percentiles(&self) -> ((Duration, Duration), (Duration, Duration)) {
        let mut hold: Vec<Duration> = self.kept.iter().map(|s| s.0).collect();
        let mut late: Vec<Duration> = self.kept.iter().map(|s| s.1).collect();
        hold.sort_unstable();
        late.sort_unstable();
        let pair = |v: &[Duration]| (percentile(v, 0.50), percentile(v, 0.99));
        (pair(&hold), pair(&late))
    }
}

/// Nearest-rank percentile of sorted values (zero when empty).
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
