//! Deadlines that come from outside the task config: an instant by which every process
//! must have been SIGKILLed ([`Input::KillBy`], Slurm's KillWait), and a graceful shutdown
//! planned at a wall time ([`Input::ShutdownAt`], `stop_before_end`).
//!
//! The core does not know about Slurm: the runtime works out the instants (see
//! `crate::slurm`) and feeds them in; here they only shorten stop graces and start the
//! shutdown on time, so both are tested with the fake clock like every other timing rule.

use super::*;

/// A shutdown planned at a wall time.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    /// When, on the wall clock (checked again when the monotonic deadline comes, as cron
    /// does: a clock set back does not start the shutdown early).
    wall: DateTime<Utc>,
    /// The monotonic instant that wall time maps to.
    mono: Mono,
    /// Why, for the log.
    why: String,
}

impl Core {
    /// True once a shutdown has begun (by a signal or as planned).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// The latest instant for bansuri's SIGKILL of any process, when one is set.
    pub fn kill_by(&self) -> Option<Mono> {
        self.kill_by
    }

    /// The stop grace task `i` gets when a stop begins `now`: its `stoptime` (or the
    /// watchdog), cut short so that its SIGKILL comes by the kill-by instant.
    pub(super) fn grace_for(&self, i: usize, now: Now) -> Duration {
        let grace = self.tasks[i].stop_grace(&self.globals);
        match self.kill_by {
            Some(k) => grace.min(k.since(now.mono)),
            None => grace,
        }
    }

    pub(super) fn kill_by_input(&mut self, at: Mono, why: String, now: Now) {
        if self.kill_by.is_some_and(|k| k <= at) {
            return;
        }
        self.kill_by = Some(at);
        // Runs already being stopped: their SIGKILL comes by `at` too.
        for task in &mut self.tasks {
            for run in &mut task.runs {
                if let Phase::Stopping { kill_at, .. } = &mut run.phase {
                    *kill_at = (*kill_at).min(at);
                }
            }
        }
        let when = (at > now.mono).then(|| (now.wall_at(at), at.since(now.mono)));
        self.master(MasterEvent::KillBy { why, when });
    }

    pub(super) fn shutdown_at_input(&mut self, at: Option<DateTime<Utc>>, why: String, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(wall) = at else {
            if self.planned.take().is_some() {
                self.master(MasterEvent::PlannedCancelled { why });
            }
            return;
        };
        if self.planned.as_ref().is_some_and(|p| p.wall == wall) {
            return;
        }
        self.master(MasterEvent::ShutdownPlanned {
            at: wall,
            within: (wall - now.wall).to_std().ok(),
            why: why.clone(),
        });
        self.planned = Some(Planned {
            wall,
            mono: mono_for(now, wall),
            why,
        });
    }

    /// When the planned shutdown needs a tick.
    pub(super) fn planned_deadline(&self) -> Option<Mono> {
        if self.shutdown.is_some() {
            return None;
        }
        self.planned.as_ref().map(|p| p.mono)
    }

    /// Start the planned shutdown if its time has come.
    pub(super) fn planned_due(&mut self, now: Now) {
        if self.shutdown.is_some() || !self.started {
            return;
        }
        let Some(p) = &mut self.planned else {
            return;
        };
        if now.mono < p.mono {
            return;
        }
        if now.wall < p.wall {
            // The wall clock went back (or monotonic time ran ahead): aim again.
            p.mono = mono_for(now, p.wall);
            return;
        }
        let why = p.why.clone();
        self.begin_shutdown(ShutdownCause::Planned(why), now);
    }
}
