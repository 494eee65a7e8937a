//! The core's side of control and observability: the `start`/`stop`/`restart` commands,
//! the status view the state file is built from, `--resume`, and per-task resource totals.
//!
//! Pure like the rest of the core: the runtime turns socket and request-file messages into
//! [`Input::StartTask`], [`Input::StopTask`] and [`Input::RestartTask`], and every answer
//! comes back as one [`Action::Reply`]. Reading the previous state file, the socket and the
//! clock all happen in the runtime.
//!
//! Semantics (where SPEC.md is silent):
//! - `stop`: the stop signal to the task's process groups (SIGKILL after its `stoptime`);
//!   no schedule, no retry, and no reload starts it again until a `start` (status shows
//!   STOPPED).
//! - `start`: runs the task now: a stopped or finished task (a one-shot that ended, a
//!   timer that was stopped) starts again with its schedule; a scheduled task gets one
//!   extra run now and its schedule goes on; a task in retry backoff retries now; a running
//!   task is left alone ("already running"). A task disabled in the config is not started
//!   (the config says so).
//! - `restart`: `stop`, then `start` once every process of the task has ended.

use std::collections::HashMap;

use super::*;

/// One live process of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessView {
    /// The run it belongs to.
    pub run: RunId,
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// 1-based attempt of its run.
    pub attempt: u32,
    /// Wall time it started.
    pub started_at: Option<DateTime<Utc>>,
    /// How long it has been up.
    pub uptime: Duration,
    /// The stop signal has been sent to it.
    pub stopping: bool,
    /// The node it runs on when not bansuri's own (issue 18).
    pub node: Option<String>,
}

/// Everything the state file says about a task, as the core knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    /// Name.
    pub name: String,
    /// Description from the config.
    pub description: String,
    /// The schedule in words ("every 10s", "once at start-up").
    pub schedule: String,
    /// True for a task that runs once (no timer, no cron).
    pub one_shot: bool,
    /// `enabled` in the config.
    pub enabled: bool,
    /// State.
    pub state: TaskState,
    /// Processes alive now (Running or Stopping), oldest first.
    pub processes: Vec<ProcessView>,
    /// Counters and last result.
    pub stats: TaskStats,
    /// Why it is FATAL or SKIPPED.
    pub reason: Option<Reason>,
    /// When the next scheduled run is due.
    pub next_run: Option<DateTime<Utc>>,
    /// When the next retry starts (RESTARTING).
    pub retry_at: Option<DateTime<Utc>>,
    /// Hash of the settings that decide what runs ([`settings_hash`]).
    pub settings_hash: String,
    /// What each run asks for (`cpus`, `gpus`, `mem`); `None`: not packed (issue 17).
    pub request: Option<crate::resources::Request>,
    /// What its live runs were granted (CPUs, GPUs, memory), oldest first.
    pub grants: Vec<crate::resources::Grant>,
    /// Why a due run waits, in `status` words ("needs 4 CPUs, 2 free", "would end after
    /// the job's time limit").
    pub waiting_for: Option<String>,
    /// The durations of its last successful runs, oldest first (what its expected runtime
    /// is learned from; the state file keeps them).
    pub recent_runtimes: Vec<std::time::Duration>,
}

/// A stable hash of everything in a task's settings that changes what runs: all of them
/// but `description` and `enabled`. `--resume` compares it with the one in the previous
/// state file. 16 hex digits (FNV-1a, 64 bits, over the settings' debug form).
pub fn settings_hash(t: &TaskSpec) -> String {
    let mut probe = t.clone();
    probe.description.clear();
    probe.enabled = true;
    // How long a run is expected to take changes nothing it does.
    probe.needs.expected_runtime = None;
    let mut text = format!("{probe:?}");
    // A task that needs nothing hashes as it did before `needs` existed: an upgrade does
    // not make `--resume` run again what already succeeded.
    if probe.needs == crate::spec::Needs::default() {
        text = text.replace(&format!(", needs: {:?}", probe.needs), "");
    }
    // Likewise a task that is no array element (issue 19).
    if probe.element.is_none() {
        text = text.replace(", element: None", "");
    }
    if probe.sweep.is_none() {
        text = text.replace(", sweep: None", "");
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Core {
    /// Every task's status, in config order.
    pub fn status(&self, now: Now) -> Vec<TaskStatus> {
        let views = self.views();
        self.tasks
            .iter()
            .zip(views)
            .enumerate()
            .map(|(i, (t, v))| {
                let processes = t
                    .runs
                    .iter()
                    .filter_map(|r| match r.phase {
                        Phase::Running { proc, .. } => Some((r, proc, false)),
                        Phase::Stopping { proc, .. } => Some((r, proc, true)),
                        _ => None,
                    })
                    .map(|(r, proc, stopping)| ProcessView {
                        run: r.id,
                        pid: proc.pid,
                        attempt: r.attempt,
                        started_at: Some(proc.wall),
                        uptime: now.mono.since(proc.started),
                        stopping,
                        node: self.node_name(r.node).map(|n| n.to_string()),
                    })
                    .collect();
                let next_run = match t.sched {
                    _ if !self.started => None,
                    Sched::Timer { next, .. } => Some(now.wall_at(next)),
                    Sched::Cron { next_wall, .. } => next_wall,
                    _ => None,
                };
                TaskStatus {
                    name: t.spec.name.clone(),
                    description: t.spec.description.clone(),
                    schedule: schedule::describe(&t.spec.schedule),
                    one_shot: t.spec.schedule == Schedule::Once,
                    enabled: t.spec.enabled,
                    state: v.state,
                    processes,
                    stats: v.stats,
                    reason: v.reason,
                    next_run,
                    retry_at: t.retry().map(|r| now.wall_at(r.at)),
                    settings_hash: t.settings_hash(),
                    request: t.spec.needs.request,
                    grants: self.grants_of(i),
                    waiting_for: self.waiting_for(i),
                    recent_runtimes: self.recent_runtimes(&t.spec.name),
                }
            })
            .collect()
    }

    /// `--resume`: one-shot tasks whose settings hash is in `succeeded` (name -> hash of a
    /// run that succeeded in the previous state) are not run again. Call before
    /// [`Input::Start`]. Returns the names of the tasks skipped.
    pub fn resume(&mut self, succeeded: &HashMap<String, String>) -> Vec<String> {
        self.deadline_memo.set(None);
        let mut skipped = Vec::new();
        for t in &mut self.tasks {
            if t.spec.schedule != Schedule::Once {
                continue;
            }
            if succeeded.get(&t.spec.name) == Some(&t.settings_hash()) {
                t.resumed = true;
                t.stats.last_outcome = Some(Outcome::Success);
                skipped.push(t.spec.name.clone());
            }
        }
        skipped.extend(self.resume_arrays(succeeded));
        skipped
    }

    /// Task `name`'s settings and the attempts its runs have made so far (issue 19: the
    /// status file's record of an element).
    pub fn task_record(&self, name: &str) -> Option<(Arc<TaskSpec>, u32)> {
        let t = self.tasks.iter().find(|t| t.spec.name == name)?;
        let attempts = u32::try_from(t.stats.runs).unwrap_or(u32::MAX);
        Some((Arc::clone(&t.spec), attempts))
    }

    /// `--retry-failed` (issue 19): of the array elements, only those in `failed` run (the
    /// others succeeded before or never ran: left for a later run). Call after
    /// [`Core::resume`] and before [`Input::Start`]. Returns how many were held back.
    pub fn only_failed(&mut self, failed: &std::collections::HashSet<String>) -> usize {
        self.deadline_memo.set(None);
        let mut held = self.only_failed_arrays(failed);
        for t in &mut self.tasks {
            if t.spec.element.is_none() || t.spec.schedule != Schedule::Once || t.resumed {
                continue;
            }
            if !failed.contains(&t.spec.name) {
                t.resumed = true;
                held += 1;
            }
        }
        held
    }

    /// The names of the tasks, in config order.
    pub fn task_names(&self) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|t| !t.removed())
            .map(|t| t.spec.name.clone())
            .collect()
    }

    /// `Err` naming the first unknown task (with the nearest known name, if any).
    pub fn check_tasks(&self, names: &[String]) -> Result<(), UnknownTask> {
        let known = self.task_names();
        let program = |n: &str| {
            self.tasks
                .iter()
                .any(|t| !t.removed() && t.spec.instance.is_some() && t.spec.program == n)
        };
        for n in names {
            if !known.contains(n) && !program(n) && self.feed(n).is_none() {
                return Err(unknown_task(n, &known));
            }
        }
        Ok(())
    }

    fn find_task(&self, name: &str) -> Option<usize> {
        self.tasks
            .iter()
            .position(|t| !t.removed() && t.spec.name == name)
    }

    fn reply(&mut self, reply: Reply) {
        self.out.push(Action::Reply(reply));
    }

    /// The task to act on, or an error reply (unknown task, shutting down).
    fn control_target(&mut self, name: &str, command: Command) -> Option<usize> {
        let Some(i) = self.find_task(name) else {
            let unknown = unknown_task(name, &self.task_names());
            self.reply(Reply::NoSuchTask(unknown));
            return None;
        };
        if self.shutdown.is_some() {
            self.reply(Reply::ShuttingDown {
                command,
                task: name.to_owned(),
            });
            return None;
        }
        Some(i)
    }

    /// [`Core::control_target`] for a command that runs the task: a disabled task is
    /// refused, saying how to enable it.
    fn runnable_target(&mut self, name: &str, command: Command) -> Option<usize> {
        let i = self.control_target(name, command)?;
        if !self.tasks[i].spec.enabled {
            self.reply(Reply::Disabled {
                task: name.to_owned(),
            });
            return None;
        }
        Some(i)
    }

    pub(super) fn control_start(&mut self, name: &str, now: Now) {
        let Some(i) = self.runnable_target(name, Command::Start) else {
            return;
        };
        if self.tasks[i].held() {
            self.tasks[i].life = Lifecycle::Idle;
        }
        let task = &self.tasks[i];
        if !task.runs.is_empty() {
            let task_name = name.to_owned();
            let reply = if task
                .runs
                .iter()
                .all(|r| matches!(r.phase, Phase::Stopping { .. }))
            {
                self.tasks[i].life = Lifecycle::RestartAfterStop;
                Reply::BeingStopped { task: task_name }
            } else if let Some(pid) = task.runs.iter().find_map(|r| match r.phase {
                Phase::Running { proc, .. } => Some(proc.pid),
                _ => None,
            }) {
                Reply::AlreadyRunning {
                    task: task_name,
                    pid,
                }
            } else {
                Reply::AlreadyStarting { task: task_name }
            };
            self.reply(reply);
            return;
        }
        self.event(i, TaskEvent::StartCommand);
        let reply = self.run_now(i, now);
        self.reply(reply);
    }

    /// A control command for `name`: a task, or a `numprocs` program (then every instance,
    /// with one combined reply).
    pub(super) fn control_each(
        &mut self,
        name: &str,
        now: Now,
        command: Command,
        f: fn(&mut Core, &str, Now),
    ) {
        if self.find_task(name).is_none() && self.feed(name).is_some() {
            self.control_array(name, now, command, f);
            return;
        }
        let instances: Vec<String> = if self.find_task(name).is_some() {
            Vec::new()
        } else {
            self.tasks
                .iter()
                .filter(|t| !t.removed() && t.spec.instance.is_some() && t.spec.program == name)
                .map(|t| t.spec.name.clone())
                .collect()
        };
        if instances.is_empty() {
            f(self, name, now);
            return;
        }
        self.each_replying(&instances, now, f, Vec::new());
    }

    /// Run command `f` on each of `names`, then answer once: `first` and their replies, in
    /// order, as one [`Reply::Each`] (their other actions stay as they are).
    fn each_replying(
        &mut self,
        names: &[String],
        now: Now,
        f: fn(&mut Core, &str, Now),
        first: Vec<Reply>,
    ) {
        let before = self.out.len();
        for name in names {
            f(self, name, now);
        }
        let mut replies = first;
        let mut kept = Vec::new();
        for a in self.out.drain(before..) {
            match a {
                Action::Reply(r) => replies.push(r),
                other => kept.push(other),
            }
        }
        self.out.extend(kept);
        self.reply(Reply::Each(replies));
    }

    /// A command naming an array (issue 19): `stop` holds it (no element starts until a
    /// `start`) and stops its elements that run; `start` frees it (and starts its held
    /// elements); `restart` restarts the elements that run. One reply for the array,
    /// then one per element acted on.
    fn control_array(
        &mut self,
        name: &str,
        now: Now,
        command: Command,
        f: fn(&mut Core, &str, Now),
    ) {
        if self.shutdown.is_some() {
            self.reply(Reply::ShuttingDown {
                command,
                task: name.to_owned(),
            });
            return;
        }
        let stop = command == Command::Stop;
        let start = command == Command::Start;
        let mut replies = Vec::new();
        if stop {
            self.hold_feed(name, true);
            replies.push(Reply::Stopped {
                task: name.to_owned(),
            });
        } else if start {
            self.hold_feed(name, false);
            replies.push(Reply::Started {
                task: name.to_owned(),
                schedule_goes_on: false,
            });
        }
        let elements: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| !t.removed())
            .filter(|t| t.spec.element.as_ref().is_some_and(|e| e.array == name))
            .filter(|t| {
                if start {
                    t.held()
                } else {
                    !t.runs.is_empty() || t.busy()
                }
            })
            .map(|t| t.spec.name.clone())
            .collect();
        self.each_replying(&elements, now, f, replies);
    }

    /// Start task `i` now (it has no process): the retry that is waiting, or a new run,
    /// with its schedule set up again if it had none.
    fn run_now(&mut self, i: usize, now: Now) -> Reply {
        self.tasks[i].commanded = true;
        let task = self.tasks[i].spec.name.clone();
        if let Lifecycle::Retrying(r) = &mut self.tasks[i].life {
            r.at = now.mono;
            return Reply::RetryNow {
                task,
                attempt: r.attempt,
            };
        }
        match self.tasks[i].sched {
            Sched::Once { fired: false } => {}
            Sched::Off | Sched::Once { fired: true } => {
                // Set its schedule up again: a one-shot or a timer fires now, a cron task
                // waits for its next match, so it gets a run now as well.
                self.schedule_task(i, now, None);
                if matches!(self.tasks[i].sched, Sched::Cron { .. }) {
                    self.new_run(i, 1, now);
                }
            }
            Sched::Timer { .. } | Sched::Cron { .. } => {
                self.new_run(i, 1, now);
                return Reply::Started {
                    task,
                    schedule_goes_on: true,
                };
            }
        }
        Reply::Started {
            task,
            schedule_goes_on: false,
        }
    }

    pub(super) fn control_stop(&mut self, name: &str, now: Now) {
        let Some(i) = self.control_target(name, Command::Stop) else {
            return;
        };
        let task = &mut self.tasks[i];
        let live = task
            .runs
            .iter()
            .filter(|r| !matches!(r.phase, Phase::Waiting))
            .count();
        if task.held() && live == 0 {
            self.reply(Reply::AlreadyStopped {
                task: name.to_owned(),
            });
            return;
        }
        // Held: no retry, no restart after the stop, no run waiting for its dependencies
        // (it would start when they are met).
        task.life = Lifecycle::Held;
        // New settings waiting for the old runs to end are taken now: nothing else may
        // start the task when they end.
        if let Some(spec) = task.take_pending() {
            task.spec = spec;
        }
        task.sched = Sched::Off;
        task.queued = false;
        let grace = task.stop_grace(&self.globals);
        let signal = task.spec.stop_signal;
        self.stop_runs(i, StopReason::Command, now);
        self.event(i, TaskEvent::StopCommand);
        let task = name.to_owned();
        self.reply(if live > 0 {
            Reply::Stopping {
                task,
                signal,
                grace,
            }
        } else {
            Reply::Stopped { task }
        });
    }

    pub(super) fn control_restart(&mut self, name: &str, now: Now) {
        let Some(i) = self.runnable_target(name, Command::Restart) else {
            return;
        };
        let task = &mut self.tasks[i];
        if task.held() {
            task.life = Lifecycle::Idle;
        }
        let live = task.runs.iter().any(|r| !matches!(r.phase, Phase::Waiting));
        if !live {
            self.event(i, TaskEvent::RestartIdle);
            let reply = self.run_now(i, now);
            self.reply(reply);
            return;
        }
        if let Some(spec) = task.take_pending() {
            task.spec = spec;
        }
        task.sched = Sched::Off;
        task.queued = false;
        // Instead of a retry: it starts again once its runs have ended.
        task.life = Lifecycle::RestartAfterStop;
        let grace = task.stop_grace(&self.globals);
        let signal = task.spec.stop_signal;
        self.stop_runs(i, StopReason::Restart, now);
        self.reply(Reply::Restarting {
            task: name.to_owned(),
            signal,
            grace,
        });
    }

    /// Tasks whose `restart` (or `start` during a stop) waited for their processes to end.
    pub(super) fn restarts_due(&mut self, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        for i in 0..self.tasks.len() {
            let t = &self.tasks[i];
            if t.life == Lifecycle::RestartAfterStop && t.runs.is_empty() && !t.removed() {
                self.tasks[i].life = Lifecycle::Idle;
                if !self.tasks[i].spec.enabled {
                    continue;
                }
                self.event(i, TaskEvent::StartingAgain);
                self.run_now(i, now);
            }
        }
    }

    /// Add a finished process's kernel accounting to its task's totals.
    pub(super) fn record_usage(&mut self, i: usize, usage: Option<Usage>, now: Now) {
        let stats = &mut self.tasks[i].stats;
        stats.last_end_at = Some(now.wall);
        if let Some(u) = usage {
            stats.cpu_time += u.cpu;
            stats.peak_rss = stats.peak_rss.max(u.max_rss);
        }
    }
}

/// Does `asked` (a name given to a control command or `status`) name the task `name`: the
/// task itself, or a `numprocs` program whose instance `name` is (`w` names `w:0`, `w:1`...).
pub fn names_task(asked: &str, name: &str) -> bool {
    name == asked
        || name.rsplit_once(':').is_some_and(|(program, i)| {
            program == asked && !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The tasks of `known` (in its order) that `asked` names ([`names_task`]); `Err` with
/// [`unknown_task`] for the first name that names none.
pub fn select_tasks(asked: &[String], known: &[String]) -> Result<Vec<String>, UnknownTask> {
    if let Some(bad) = asked
        .iter()
        .find(|a| !known.iter().any(|k| names_task(a, k)))
    {
        return Err(unknown_task(bad, known));
    }
    Ok(known
        .iter()
        .filter(|k| asked.iter().any(|a| names_task(a, k)))
        .cloned()
        .collect())
}

/// An unknown task name with the nearest known name, or the list of known ones
/// (`crate::words` says "no task named `x`; did you mean `y`?").
pub fn unknown_task(name: &str, known: &[String]) -> UnknownTask {
    let best = known
        .iter()
        .map(|k| {
            (
                strsim::levenshtein(&k.to_lowercase(), &name.to_lowercase()),
                k,
            )
        })
        .min();
    let suggestion = match best {
        Some((d, k)) if d <= (name.len().max(k.len()) / 3).max(1) => {
            Suggestion::DidYouMean(k.clone())
        }
        _ if known.is_empty() => Suggestion::NoTasks,
        _ => Suggestion::Known(known.to_vec()),
    };
    UnknownTask {
        name: name.to_owned(),
        suggestion,
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_program_name_selects_all_its_instances() {
        let known = names(&["w:0", "w:1", "web", "w:x", "ww:0", "svc"]);
        assert_eq!(
            select_tasks(&names(&["w"]), &known).unwrap(),
            names(&["w:0", "w:1"])
        );
        assert_eq!(
            select_tasks(&names(&["svc", "w:1"]), &known).unwrap(),
            names(&["w:1", "svc"])
        );
        assert_eq!(
            select_tasks(&names(&["sv"]), &known).unwrap_err(),
            UnknownTask {
                name: "sv".into(),
                suggestion: Suggestion::DidYouMean("svc".into())
            }
        );
        assert!(!names_task("w", "w:"));
        assert!(!names_task("w:", "w:0"));
    }
}
