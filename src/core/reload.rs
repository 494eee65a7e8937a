//! Hot reload in the core: converge to a new `Spec`. Tasks are matched by identity (name,
//! or command string for a shorthand entry; instance 0 of a `numprocs` program and the
//! plain task are one task) and compared setting by setting; each case has its function:
//! an added task ([`added`]), a task still in the file ([`Core::reload_kept`]: unchanged,
//! description, schedule, enabled or disabled, restart), the tasks removed
//! ([`mark_removed`]); the globals are swapped.
//!
//! An `impl Core` block beside the main state machine; like it, pure.

use super::*;

/// What happens to each new entry, applied once `self.tasks` holds them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Schedule it, a timer keeping its rhythm from its last start.
    Schedule(Option<Mono>),
    /// Stop its runs for good.
    Stop(StopReason),
    /// Leave it as it is.
    Nothing,
}

impl Core {
    /// Converge to `spec`: start added tasks, stop removed ones, restart changed ones, and
    /// leave the others alone (same processes, same counters, same schedule).
    pub(super) fn reload(&mut self, spec: &Spec, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        let mut summary = ReloadSummary::default();
        // Arrays (issue 19): each feed takes its new settings; each element that is a
        // task is compared with the element the new array makes (gone from it: removed).
        let elements = self.reloaded_elements(spec);
        self.reload_feeds(spec, &mut summary);
        let wanted: Vec<&TaskSpec> = spec
            .tasks
            .iter()
            .filter(|t| t.sweep.is_none())
            .chain(&elements)
            .collect();
        let mut old: Vec<Task> = std::mem::take(&mut self.tasks);
        let mut tasks = Vec::with_capacity(wanted.len());
        let mut then = Vec::with_capacity(wanted.len());
        for new in wanted {
            let (task, step) = match find_old(&old, new) {
                Some(pos) => self.reload_kept(old.remove(pos), new, &mut summary),
                None => {
                    summary.added.push(new.name.clone());
                    added(&mut old, new)
                }
            };
            tasks.push(task);
            then.push(step);
        }
        summary.removed = mark_removed(old, &mut tasks);
        self.tasks = tasks;
        self.globals = spec.globals.clone();

        for (i, step) in then.into_iter().enumerate() {
            match step {
                Then::Nothing => {}
                Then::Schedule(last) => self.schedule_task(i, now, last),
                Then::Stop(reason) => self.halt(i, reason, now),
            }
        }
        for i in 0..self.tasks.len() {
            if self.tasks[i].removed() && self.tasks[i].sched != Sched::Off {
                self.halt(i, StopReason::Removed, now);
            }
        }
        self.master(MasterEvent::Reloaded(summary));
    }

    /// A task still in the file, as `new` says it now (perhaps under another name).
    fn reload_kept(
        &mut self,
        mut task: Task,
        new: &TaskSpec,
        summary: &mut ReloadSummary,
    ) -> (Task, Then) {
        let mut before = Arc::clone(task.pending().unwrap_or(&task.spec));
        let new = Arc::new(new.clone());
        let was = (before.name != new.name).then(|| before.name.clone());
        if was.is_some() {
            before = Arc::new(under_name_of(&before, &new));
        }
        let change = match compare(&before, &new) {
            // Only the name changed: the settings must still take it.
            Change::None if was.is_some() => Change::Description,
            c => c,
        };
        if let Some(was) = was {
            let same_process = matches!(change, Change::Description | Change::Schedule);
            self.out.push(Action::Event(Event::Task {
                task: new.name.clone(),
                what: TaskEvent::TakesOver { was, same_process },
            }));
        }
        let name = new.name.clone();
        match change {
            Change::None | Change::Description => summary.kept += 1,
            Change::Schedule => summary.rescheduled.push(name),
            Change::Enabled(_) | Change::Restart => summary.changed.push(name),
        }
        let step = converge(&mut task, change, new);
        (task, step)
    }
}

/// The old task that `new` is: the same identity, or else (`numprocs` added, `w` ->
/// `w:0..`, or dropped, `w:0..` -> `w`) the plain task and instance 0, one task under two
/// names, so its process runs on.
fn find_old(old: &[Task], new: &TaskSpec) -> Option<usize> {
    let key = identity(new);
    old.iter()
        .position(|t| !t.removed() && identity(&t.spec) == key)
        .or_else(|| {
            old.iter()
                .position(|t| !t.removed() && takes_over(&t.spec, new))
        })
}

/// A task new in the file. Removed, then added back before its old run has stopped: the
/// new one waits for that run to end, as a changed task does (never two at once).
fn added(old: &mut Vec<Task>, new: &TaskSpec) -> (Task, Then) {
    let key = identity(new);
    let mut task = Task::new(Arc::new(new.clone()));
    let gone = old
        .iter()
        .position(|t| t.removed() && !t.runs.is_empty() && identity(&t.spec) == key);
    let Some(gone) = gone else {
        return (task, Then::Schedule(None));
    };
    let gone = old.remove(gone);
    task.config = InConfig::Changing(std::mem::replace(&mut task.spec, gone.spec));
    task.runs = gone.runs;
    (task, Then::Nothing)
}

/// What is left of the old tasks was removed from the file: marked (forgotten once their
/// runs have ended) and kept after the others; returns the names newly removed.
fn mark_removed(old: Vec<Task>, tasks: &mut Vec<Task>) -> Vec<String> {
    let mut removed = Vec::new();
    for mut task in old {
        if !task.removed() {
            removed.push(task.spec.name.clone());
            task.config = InConfig::Removed;
        }
        tasks.push(task);
    }
    removed
}

/// Take `new` settings into `task` as `change` says: now, or once its runs have ended
/// (`pending`); and what to do next.
fn converge(task: &mut Task, change: Change, new: Arc<TaskSpec>) -> Then {
    match change {
        Change::None => Then::Nothing,
        Change::Description => {
            if task.pending().is_some() {
                task.config = InConfig::Changing(new);
            } else {
                task.spec = new;
            }
            Then::Nothing
        }
        Change::Schedule => {
            if task.pending().is_some() {
                task.config = InConfig::Changing(new);
                Then::Nothing
            } else {
                task.spec = new;
                Then::Schedule(task.last_start)
            }
        }
        Change::Enabled(false) => {
            task.spec = new;
            task.config = InConfig::Current;
            Then::Stop(StopReason::Disabled)
        }
        Change::Enabled(true) => {
            // Switched back on: it starts again as if just added (a monitor that was
            // disabled must come back), once the runs the disabling stopped have ended
            // (started now, its first run would be skipped as an overlap, and a one-shot
            // would never run again).
            if task.runs.is_empty() {
                task.config = InConfig::Current;
                task.spec = new;
                Then::Schedule(None)
            } else {
                task.config = InConfig::Changing(new);
                Then::Nothing
            }
        }
        // An array element that has started (running, or done) keeps the settings it
        // started with: a changed command applies to the elements not yet run (issue 19).
        Change::Restart if new.element.is_some() && task.last_start.is_some() => Then::Nothing,
        Change::Restart => {
            if task.busy() || task.pending().is_some() {
                task.config = InConfig::Changing(new);
                Then::Stop(StopReason::Changed)
            } else {
                task.spec = new;
                Then::Schedule(None)
            }
        }
    }
}

/// What identifies a task across reloads: its name, or for a plain-string (shorthand)
/// entry its command string.
fn identity(t: &TaskSpec) -> String {
    if t.shorthand {
        format!("command:{}", t.command.display())
    } else {
        format!("name:{}", t.name)
    }
}

/// How a task's settings differ between two configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Identical.
    None,
    /// Only the description (or `notify`, `notify-on`): nothing to do but remember it.
    Description,
    /// Only when it runs (timer, schedule-cron, timezone, overlap): reschedule, keep a
    /// running run.
    Schedule,
    /// Only `enabled` flipped (to the given value).
    Enabled(bool),
    /// Anything else: stop the running run gracefully, start over with the new settings.
    Restart,
}

/// Is `old` the same task as `new` under the other name that `numprocs` gives it: the
/// plain task `w` and its instance `w:0`, either way?
fn takes_over(old: &TaskSpec, new: &TaskSpec) -> bool {
    if old.shorthand || new.shorthand || old.program != new.program {
        return false;
    }
    matches!(
        (old.instance, new.instance),
        (None, Some(0)) | (Some(0), None)
    )
}

/// `old`'s settings with `new`'s name, program, instance number and `BANSURI_INSTANCE`:
/// what is left to compare when a task is renamed by a change of `numprocs`.
fn under_name_of(old: &TaskSpec, new: &TaskSpec) -> TaskSpec {
    let mut t = old.clone();
    t.name.clone_from(&new.name);
    t.program.clone_from(&new.program);
    t.instance = new.instance;
    match new.env.get("BANSURI_INSTANCE") {
        Some(v) => {
            t.env.insert("BANSURI_INSTANCE".into(), v.clone());
        }
        None => {
            t.env.remove("BANSURI_INSTANCE");
        }
    }
    t
}

fn compare(old: &TaskSpec, new: &TaskSpec) -> Change {
    if old == new {
        return Change::None;
    }
    // The same task with everything but `field` taken from `new`.
    let mut probe = old.clone();
    probe.description.clone_from(&new.description);
    // Who is notified changes nothing running either.
    probe.notify.clone_from(&new.notify);
    probe.notify_on = new.notify_on;
    if probe == *new {
        return Change::Description;
    }
    probe.schedule = new.schedule.clone();
    probe.overlap = new.overlap;
    if probe == *new {
        return Change::Schedule;
    }
    let mut probe = old.clone();
    probe.description.clone_from(&new.description);
    probe.notify.clone_from(&new.notify);
    probe.notify_on = new.notify_on;
    probe.enabled = new.enabled;
    if probe == *new {
        return Change::Enabled(new.enabled);
    }
    Change::Restart
}
