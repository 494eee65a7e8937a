//! When the core asks for a notification: at the end of a run, as the task's `notify` and
//! `notify-on` say; and, with `notify-on: "attempt"`, at each failed attempt that is
//! retried. Building the notice and running
//! the notifier are the runtime's (src/notify.rs); this part only decides.

use std::sync::Arc;

use super::{Action, Core, Now, ProcessEnd, RunId};
use crate::spec::{Notify, NotifyEvent, OnFail};

impl Core {
    /// A run of task `i` is over: `success`, or failed finally (after its attempts).
    /// Emits one [`Action::Notify`] when the task's `notify-on` lists the event: a
    /// failure; a recovery (the first success after a final failure, told instead of a
    /// success); a success.
    pub(super) fn notify_end(
        &mut self,
        i: usize,
        run: RunId,
        attempt: u32,
        end: &ProcessEnd,
        success: bool,
        now: Now,
    ) {
        let task = &mut self.tasks[i];
        let was_failing = std::mem::replace(&mut task.failing, !success);
        let spec = Arc::clone(&task.spec);
        if spec.notify == Notify::Off {
            return;
        }
        let on = spec.notify_on;
        // One notice per run: a recovery is also a success, told once, as a recovery.
        let event = if !success {
            NotifyEvent::Failure
        } else if was_failing && on.recovery {
            NotifyEvent::Recovery
        } else {
            NotifyEvent::Success
        };
        if !on.contains(event) {
            return;
        }
        self.push_notify(spec, run, event, attempt, end, now);
    }

    /// A failed attempt of task `i` that will be retried: told when `notify-on` lists
    /// `attempt` (the Bansuri manual's notice per failed attempt, "Attempt: 1/3").
    pub(super) fn notify_attempt(
        &mut self,
        i: usize,
        run: RunId,
        attempt: u32,
        end: &ProcessEnd,
        now: Now,
    ) {
        let spec = Arc::clone(&self.tasks[i].spec);
        if spec.notify == Notify::Off || !spec.notify_on.attempt {
            return;
        }
        self.push_notify(spec, run, NotifyEvent::Attempt, attempt, end, now);
    }

    fn push_notify(
        &mut self,
        spec: Arc<crate::spec::TaskSpec>,
        run: RunId,
        event: NotifyEvent,
        attempt: u32,
        end: &ProcessEnd,
        now: Now,
    ) {
        let attempts = if spec.on_fail == OnFail::Restart {
            spec.times
        } else {
            1
        };
        self.out.push(Action::Notify {
            run,
            task: spec,
            event,
            end: end.clone(),
            attempt,
            attempts,
            at: now.wall,
        });
    }
}
