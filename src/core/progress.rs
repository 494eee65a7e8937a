//! Counts for the progress line of batch runs (`--once`, `--exit-when-done`): how many
//! tasks take part, have finished, are running, have failed. The core only counts; the
//! runtime decides whether and how to show them (src/runtime/progress.rs).

use super::{Core, Phase};

/// Where a batch run stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Enabled tasks (the ones a batch run waits for).
    pub total: usize,
    /// Enabled tasks that cannot run again (their last run ended, no retry is pending).
    pub done: usize,
    /// Processes (attempts) starting, running or being stopped.
    pub running: usize,
    /// Finished tasks whose last run failed (including timeouts, FATAL, skipped).
    pub failed: usize,
}

impl Core {
    /// The progress counts now.
    pub fn progress(&self) -> Progress {
        let mut p = Progress::default();
        for t in &self.tasks {
            p.running += t
                .runs
                .iter()
                .filter(|r| !matches!(r.phase, Phase::Waiting))
                .count();
            if !t.spec.enabled {
                continue;
            }
            // An element that is a task counts with its array (below), when it ends.
            if t.spec.element.is_none() {
                p.total += 1;
            }
            if self.started && t.finished() {
                p.done += 1;
                if t.stats.last_outcome.is_some_and(|o| o.is_failure()) {
                    p.failed += 1;
                }
            }
        }
        // Arrays: every element that is to run; those retired (or resumed) are done.
        for (elements, succeeded, failed, held) in self.array_counts() {
            let total = elements.saturating_sub(held);
            p.total += usize::try_from(total).unwrap_or(usize::MAX);
            p.done += usize::try_from(succeeded + failed).unwrap_or(usize::MAX);
            p.failed += usize::try_from(failed).unwrap_or(usize::MAX);
        }
        p
    }
}
