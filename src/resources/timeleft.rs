//! The time left: how long a run is expected to take, and whether it ends before the job
//! does.
//!
//! A task's expected runtime is its `expected-runtime` when the config gives one, else
//! learned: the 95th percentile (nearest rank) of the durations of its last
//! [`KEPT_RUNS`] successful runs ([`History`]; the caller keeps it in the state dir and
//! feeds it successful runs only: a run that failed fast says nothing of how long a
//! good one takes). With no run yet it is unknown, and an unknown run is started (see
//! `pack`). The 95th percentile rather than the mean or the maximum: one run in twenty
//! may be slower than expected, and one outlier (a run stalled on a file system) does
//! not keep a task from ever starting again once it has left the window.
//!
//! A run fits in the time left when it is expected to end by the job's end minus the
//! stop grace (`stop_before_end`'s lead, so the run is done before bansuri starts
//! stopping everything).

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{Mono, Now};

/// How many successful runs a task's history keeps.
pub const KEPT_RUNS: usize = 20;

/// The 95th percentile of `durations` by nearest rank (the smallest value with at least
/// 95 % of the values at or below it: the largest of up to 19, the second largest of
/// 20 to 39); `None` for none.
pub fn p95(durations: &[Duration]) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * 95).div_ceil(100);
    Some(sorted[rank.max(1) - 1])
}

/// The durations of a task's last successful runs, oldest first, at most [`KEPT_RUNS`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History(VecDeque<Duration>);

impl History {
    /// A history of these durations, oldest first (as read back from the state dir);
    /// only the newest [`KEPT_RUNS`] are kept.
    pub fn from_durations(durations: impl IntoIterator<Item = Duration>) -> History {
        let mut h = History::default();
        for d in durations {
            h.push(d);
        }
        h
    }

    /// A successful run took `d`; the oldest is forgotten past [`KEPT_RUNS`].
    pub fn push(&mut self, d: Duration) {
        if self.0.len() == KEPT_RUNS {
            self.0.pop_front();
        }
        self.0.push_back(d);
    }

    /// The kept durations, oldest first.
    pub fn durations(&self) -> impl Iterator<Item = Duration> + '_ {
        self.0.iter().copied()
    }

    /// The learned expected runtime: the p95 of the kept runs.
    pub fn learned(&self) -> Option<Duration> {
        p95(&self.0.iter().copied().collect::<Vec<_>>())
    }
}

/// The expected runtime of a task's next run: the declared one, else the learned one.
pub fn expected(declared: Option<Duration>, history: &History) -> Option<Duration> {
    declared.or_else(|| history.learned())
}

/// The latest a run may end, on the monotonic clock: the job's end (a wall time, as
/// Slurm gives it) minus the stop grace, converted at `now`; `now` itself when that is
/// already past.
pub fn latest_end(now: Now, job_end: DateTime<Utc>, grace: Duration) -> Mono {
    let left = (job_end - now.wall).to_std().unwrap_or(Duration::ZERO);
    now.mono + left.saturating_sub(grace)
}

/// Whether a run started at `start` and taking `expected` ends by `latest` (ending
/// exactly then is in time).
pub fn ends_by(start: Mono, expected: Duration, latest: Mono) -> bool {
    start + expected <= latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&s| Duration::from_secs(s)).collect()
    }

    #[test]
    fn p95_by_nearest_rank() {
        assert_eq!(p95(&[]), None);
        assert_eq!(p95(&secs(&[7])), Some(Duration::from_secs(7)));
        assert_eq!(p95(&secs(&[3, 9, 1])), Some(Duration::from_secs(9)));
        // Twenty runs: the second largest, so one outlier does not count.
        let mut twenty: Vec<u64> = (1..=19).collect();
        twenty.push(1000);
        assert_eq!(p95(&secs(&twenty)), Some(Duration::from_secs(19)));
        // Order does not matter.
        twenty.reverse();
        assert_eq!(p95(&secs(&twenty)), Some(Duration::from_secs(19)));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(p95(&secs(&hundred)), Some(Duration::from_secs(95)));
    }

    #[test]
    fn history_keeps_the_last_twenty_successful_runs() {
        let mut h = History::default();
        assert_eq!(h.learned(), None);
        h.push(Duration::from_secs(1000));
        assert_eq!(h.learned(), Some(Duration::from_secs(1000)));
        for s in 1..=KEPT_RUNS as u64 {
            h.push(Duration::from_secs(s));
        }
        // The 1000 s run has left the window: the p95 of 1..=20 is 19.
        assert_eq!(h.durations().count(), KEPT_RUNS);
        assert_eq!(h.durations().next(), Some(Duration::from_secs(1)));
        assert_eq!(h.learned(), Some(Duration::from_secs(19)));
        // New slow runs count, wherever they sit in the window.
        h.push(Duration::from_secs(1000));
        h.push(Duration::from_secs(999));
        assert_eq!(h.learned(), Some(Duration::from_secs(999)));
        let back = History::from_durations(h.durations());
        assert_eq!(back, h);
        let long = History::from_durations(secs(&(0..50).collect::<Vec<_>>()));
        assert_eq!(long.durations().next(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn declared_runtime_wins_over_learned() {
        let h = History::from_durations(secs(&[10, 20]));
        assert_eq!(
            expected(Some(Duration::from_secs(5)), &h),
            Some(Duration::from_secs(5))
        );
        assert_eq!(expected(None, &h), Some(Duration::from_secs(20)));
        assert_eq!(expected(None, &History::default()), None);
    }

    #[test]
    fn latest_end_and_the_fit_with_the_grace() {
        let now = Now {
            mono: Mono(Duration::from_secs(100)),
            wall: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        let job_end = now.wall + chrono::Duration::seconds(3600);
        let latest = latest_end(now, job_end, Duration::from_secs(600));
        assert_eq!(latest, Mono(Duration::from_secs(100 + 3000)));
        assert!(ends_by(now.mono, Duration::from_secs(3000), latest));
        assert!(!ends_by(now.mono, Duration::from_secs(3001), latest));
        // A job already past its end, or a grace longer than what is left: now.
        assert_eq!(
            latest_end(now, now.wall - chrono::Duration::seconds(5), Duration::ZERO),
            now.mono
        );
        assert_eq!(
            latest_end(now, job_end, Duration::from_secs(7200)),
            now.mono
        );
    }
}
