//! The supervisor program model in the core: services (`autorestart: always`), failed
//! starts and FATAL (`starttime`, `startretries`), and dependencies (`depends-on`).
//!
//! An `impl Core` block beside the main state machine; like it, pure.

use super::*;

/// What a task's dependencies say about starting it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Deps {
    /// All satisfied.
    Ready,
    /// Not yet: why.
    Waiting(DepWait),
    /// One failed: why. The run is skipped.
    Failed(DepFailure),
}

/// What a process's end means for the start-up count (`starttime`, `startretries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailedStart {
    /// Not a failed start (started, or no start-up window).
    No,
    /// The n-th failed start in a row, n <= `startretries`: start it again (retry n).
    Retry(u32),
    /// A failed start after `startretries` retries: the task is FATAL.
    Fatal,
}

impl Core {
    /// A fresh run of task `i` is due: start it, or wait for its dependencies, or skip it.
    pub(super) fn start_when_ready(&mut self, i: usize, now: Now) {
        match self.deps(i) {
            Deps::Ready => {
                if self.tasks[i].dep_wait() {
                    self.tasks[i].life = Lifecycle::Idle;
                }
                self.new_run(i, 1, now);
            }
            Deps::Waiting(why) => {
                if !self.tasks[i].dep_wait() {
                    self.tasks[i].life = Lifecycle::WaitingForDeps;
                    self.event(i, TaskEvent::Waiting(why));
                }
            }
            Deps::Failed(why) => {
                let task = &mut self.tasks[i];
                // Nothing was started: no run, no failure (the state says SKIPPED).
                task.stats.last_outcome = Some(Outcome::Skipped);
                task.life = Lifecycle::Skipped(why.clone());
                self.event(i, TaskEvent::Skipped(why));
            }
        }
    }

    /// Tasks waiting for dependencies: start (or skip) those whose dependencies decided.
    pub(super) fn recheck_dependencies(&mut self, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        // A skip can fail another waiter: loop until nothing changes.
        loop {
            let mut changed = false;
            for i in 0..self.tasks.len() {
                if self.tasks[i].dep_wait() && !matches!(self.deps(i), Deps::Waiting(_)) {
                    self.start_when_ready(i, now);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// The state of task `i`'s dependencies. A dependency names a task or a `numprocs`
    /// program (all its instances). A service (`autorestart: always`) must be running and
    /// up for `starttime`; anything else must have succeeded (its last run).
    pub(super) fn deps(&self, i: usize) -> Deps {
        self.deps_of(&self.tasks[i].spec.depends_on)
    }

    /// The state of dependencies `depends_on` (of a task, or of an array task).
    pub(super) fn deps_of(&self, depends_on: &[String]) -> Deps {
        for dep in depends_on {
            let matched: Vec<&Task> = self
                .tasks
                .iter()
                .filter(|t| !t.removed() && (t.spec.name == *dep || t.spec.program == *dep))
                .collect();
            // An array, or one of its elements (issue 19): what the feed knows first,
            // then its elements that are tasks.
            match self.array_dep(dep) {
                Some(feed::ArrayDep::Failed(why)) => return Deps::Failed(why),
                Some(feed::ArrayDep::Waiting) => {
                    // An element that failed fails the dependency now.
                    if let Some(d) = matched.iter().find(|d| {
                        d.stats.last_outcome.is_some_and(Outcome::is_failure) && !d.busy()
                    }) {
                        return Deps::Failed(DepFailure::Failed {
                            dep: d.spec.name.clone(),
                            last: d.stats.last_end.clone(),
                        });
                    }
                    return Deps::Waiting(DepWait::NotSucceeded { dep: dep.clone() });
                }
                Some(feed::ArrayDep::Settled) if matched.is_empty() => continue,
                _ => {}
            }
            if matched.is_empty() {
                return Deps::Failed(DepFailure::NotInConfig(dep.clone()));
            }
            for d in matched {
                let name = &d.spec.name;
                if !d.spec.enabled {
                    return Deps::Failed(DepFailure::Disabled(name.clone()));
                }
                match d.stats.last_outcome {
                    Some(Outcome::Fatal) => return Deps::Failed(DepFailure::Fatal(name.clone())),
                    Some(Outcome::Skipped) if !d.busy() => {
                        return Deps::Failed(DepFailure::Skipped(name.clone()))
                    }
                    _ => {}
                }
                if d.spec.restart_on_success {
                    if d.runs.iter().any(Run::up) {
                        continue;
                    }
                    if d.stats.last_outcome.is_some_and(Outcome::is_failure) && !d.busy() {
                        return Deps::Failed(DepFailure::Failed {
                            dep: name.clone(),
                            last: None,
                        });
                    }
                    return Deps::Waiting(DepWait::NotUp {
                        dep: name.clone(),
                        start_time: d.spec.start_time,
                    });
                }
                match d.stats.last_outcome {
                    Some(Outcome::Success) if d.retry().is_none() => {}
                    Some(o) if o.is_failure() && !d.busy() => {
                        return Deps::Failed(DepFailure::Failed {
                            dep: name.clone(),
                            last: d.stats.last_end.clone(),
                        });
                    }
                    _ => return Deps::Waiting(DepWait::NotSucceeded { dep: name.clone() }),
                }
            }
        }
        Deps::Ready
    }

    /// Count a process that ended before `starttime` (or never started) as a failed start:
    /// retried whatever the restart policy (supervisord's rule: `autorestart` decides only
    /// for a process that has started). `startretries: N` is N retries after the first
    /// failed start, as in supervisord and Taskmaster: the (N+1)-th failed start in a row
    /// makes the task FATAL.
    pub(super) fn failed_start(
        &mut self,
        i: usize,
        uptime: Option<Duration>,
        success: bool,
        end: &ProcessEnd,
    ) -> FailedStart {
        let spec = Arc::clone(&self.tasks[i].spec);
        if spec.start_time.is_zero() {
            return FailedStart::No;
        }
        let quick = uptime.map_or(true, |u| u < spec.start_time);
        // A one-shot that succeeds quickly is just quick; a service must stay up.
        if !quick || (success && !spec.restart_on_success) {
            self.tasks[i].failed_starts = 0;
            return FailedStart::No;
        }
        let task = &mut self.tasks[i];
        task.failed_starts += 1;
        if task.failed_starts <= spec.start_retries || self.shutdown.is_some() {
            return FailedStart::Retry(task.failed_starts);
        }
        task.queued = false;
        task.sched = Sched::Off;
        let why = FatalWhy {
            failed_starts: task.failed_starts,
            start_time: spec.start_time,
            start_retries: spec.start_retries,
            last: end.clone(),
        };
        // No retry; a task held by `stop` stays held (STOPPED).
        if !task.held() {
            task.life = Lifecycle::Fatal(why.clone());
        }
        self.event(i, TaskEvent::Fatal(why));
        FailedStart::Fatal
    }

    /// A service exited successfully: start it again after `restart-delay`.
    pub(super) fn restart_service(&mut self, i: usize, now: Now) {
        let delay = self.tasks[i].spec.restart_delay;
        self.tasks[i].life = Lifecycle::Retrying(Retry {
            at: now.mono + delay,
            attempt: 1,
        });
        self.event(i, TaskEvent::ServiceRestart { delay });
    }
}
