//! The supervisor core: a pure state machine over tasks and their runs.
//!
//! It owns every lifecycle rule (schedules, overlap, slots, timeouts, retries with backoff,
//! the stop-signal/watchdog/SIGKILL sequence, shutdown, "done") and nothing else. It never
//! reads a clock, touches a process, a file or a pipe: the runtime feeds it [`Input`]s with
//! a [`Now`], executes the [`Action`]s it returns, and sleeps until [`Core::next_deadline`].
//! Tests drive it with a fake clock, so every timing rule is checked in microseconds.
//!
//! Terms: a *task* is a config entry; a *run* is one logical execution of it, which may take
//! several *attempts* (processes) when `on-fail: restart` retries it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{Mono, Now};
use crate::level::Level;
use crate::model::{shell_code, ExitStatus, ProcessEnd, StopReason, TaskState, Usage};
use crate::schedule::{self, Schedule};
use crate::spec::{
    Globals, NotifyEvent, OnFail, Overlap, Spec, StopSignal, TaskSpec, UNLIMITED_ATTEMPTS,
};
use crate::text::{fmt_bytes, fmt_dur, fmt_wall, signal_name};

mod notify;
mod program;
mod progress;
use program::{attempt_text, FailedStart};
mod control;
mod deadline;
pub use progress::Progress;
#[cfg(test)]
mod tests;

pub use control::{names_task, select_tasks, settings_hash, unknown_task, ProcessView, TaskStatus};

/// Identifies one process started for a task (one attempt of a run).
pub type RunId = u64;

/// A process that stays up this long resets the retry backoff.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// What happened, as reported by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start-up: schedule every task.
    Start,
    /// A deadline returned by [`Core::next_deadline`] has passed.
    Tick,
    /// The runtime started the process of `run`.
    Spawned {
        /// The run the process belongs to.
        run: RunId,
        /// Its pid (also its process group id: every run gets its own session).
        pid: u32,
    },
    /// The runtime could not start the process of `run`.
    SpawnFailed {
        /// The run.
        run: RunId,
        /// Why, in words for the log.
        reason: String,
    },
    /// The main process of `run` ended and was reaped, but other processes of its group
    /// are still alive. `Exited` follows once the group is empty.
    LeaderExited {
        /// The run.
        run: RunId,
        /// How the main process ended.
        status: ExitStatus,
    },
    /// The run is over: its main process was reaped and its process group is empty.
    Exited {
        /// The run.
        run: RunId,
        /// How it ended.
        status: ExitStatus,
        /// Kernel accounting of the process (wait4 rusage), when available.
        usage: Option<Usage>,
    },
    /// The config file changed and is valid: converge to it.
    Reload {
        /// The new config (CLI overrides already applied).
        spec: Arc<Spec>,
    },
    /// The wall clock jumped (set by hand, NTP step, suspend): cron deadlines are re-aimed
    /// from the new wall time (a jump forward fires a missed match once, a jump back fires
    /// nothing early).
    ClockChanged,
    /// Control command `start TASK`: run it now (a stopped or finished task included).
    StartTask {
        /// The task's name.
        task: String,
    },
    /// Control command `stop TASK`: stop it gracefully; it is not started again until a
    /// `start` (no schedule, no retry, no reload).
    StopTask {
        /// The task's name.
        task: String,
    },
    /// Control command `restart TASK`: stop it gracefully, then start it.
    RestartTask {
        /// The task's name.
        task: String,
    },
    /// SIGTERM or SIGINT reached bansuri. A second one forces SIGKILL.
    Shutdown {
        /// The signal's name, for the log ("SIGTERM").
        signal: &'static str,
    },
    /// Every process must have been SIGKILLed by `at` (Slurm will SIGKILL the whole job
    /// soon after): each stop grace that would end later is shortened to end then. Only
    /// ever tightens an earlier `KillBy`.
    KillBy {
        /// The latest instant for bansuri's own SIGKILL.
        at: Mono,
        /// Why, in words for the log.
        why: String,
    },
    /// Begin the graceful shutdown at wall time `at` (`None` cancels a planned one), as
    /// if SIGTERM had come then (`stop_before_end`).
    ShutdownAt {
        /// When; a time already past starts the shutdown at once.
        at: Option<DateTime<Utc>>,
        /// Why, in words for the log.
        why: String,
    },
}

/// Final result of a run (after its attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with a success code.
    Success,
    /// Failed (bad code, signal, failed to start).
    Failed,
    /// Its last attempt timed out.
    Timeout,
    /// Stopped by bansuri (shutdown, replace).
    Stopped,
    /// Failed to start `startretries` + 1 times in a row: not started again.
    Fatal,
    /// Not run: a dependency failed.
    Skipped,
}

impl Outcome {
    /// The outcome of a failed end: a timeout, or any other failure.
    fn of_failure(end: &ProcessEnd) -> Outcome {
        if matches!(end, ProcessEnd::TimedOut(_)) {
            Outcome::Timeout
        } else {
            Outcome::Failed
        }
    }

    /// Counts as a failure for `--exit-when-done` and dependencies.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Timeout | Outcome::Fatal | Outcome::Skipped
        )
    }
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a process for `run` (then report `Spawned` or `SpawnFailed`).
    Spawn {
        /// The new run's id.
        run: RunId,
        /// The task's settings.
        task: Arc<TaskSpec>,
        /// 1-based attempt number.
        attempt: u32,
    },
    /// Send `signal` to the process group of `run`.
    Signal {
        /// The run.
        run: RunId,
        /// Raw signal number.
        signal: i32,
    },
    /// Write a lifecycle line to the job log.
    Log {
        /// Task name, or `None` for bansuri itself (`[MASTER]`).
        task: Option<String>,
        /// Severity.
        level: Level,
        /// The line.
        msg: String,
    },
    /// Tell the task's notifier how a run ended (`notify`, `notify-on`). The runtime
    /// builds the notice (adding the tail of the attempt's output) and runs the notifier
    /// beside the tasks: nothing waits for it.
    Notify {
        /// The attempt that ended; its output tail is the runtime's, under this id.
        run: RunId,
        /// The task's settings.
        task: Arc<TaskSpec>,
        /// What is told.
        event: NotifyEvent,
        /// How the attempt ended.
        end: ProcessEnd,
        /// 1-based number of that attempt.
        attempt: u32,
        /// Attempts the run was allowed (`times` with `on-fail: restart`, else 1).
        attempts: u32,
        /// When it ended.
        at: DateTime<Utc>,
    },
    /// The answer to a control input (`StartTask`, `StopTask`, `RestartTask`).
    Reply {
        /// The command was carried out (or had nothing to do).
        ok: bool,
        /// What happened, in words for the user.
        msg: String,
    },
    /// Everything is over: flush and exit (the code: `model::Exit::Run(ending).code()`).
    Exit {
        /// How the run ended.
        ending: crate::model::Ending,
    },
}

/// How the core runs: normal service, or a batch mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mode {
    /// Exit once no task can run again (`--exit-when-done`).
    pub exit_when_done: bool,
    /// Run every enabled task once now, ignoring schedules, then exit (`--once`).
    pub once: bool,
}

/// Where a task's schedule stands.
#[derive(Debug, Clone, PartialEq)]
enum Sched {
    /// Runs once; `fired` after its run was started.
    Once { fired: bool },
    /// Fixed rate: `next` = anchor + k * period.
    Timer {
        anchor: Mono,
        period: Duration,
        next: Mono,
    },
    /// Cron: next matching wall time and the monotonic deadline it maps to.
    Cron {
        next_wall: Option<DateTime<Utc>>,
        next_mono: Option<Mono>,
    },
    /// Nothing more will be scheduled (disabled, shutting down).
    Off,
}

impl Sched {
    /// Would [`Core::due`] say yes at `now`? (Without advancing anything.)
    fn due_at(&self, now: Now) -> bool {
        match *self {
            Sched::Once { fired } => !fired,
            Sched::Timer { next, .. } => now.mono >= next,
            Sched::Cron {
                next_wall: Some(_),
                next_mono: Some(nm),
            } => now.mono >= nm,
            _ => false,
        }
    }
}

/// Phase of one run's current attempt.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Due, waiting for a slot.
    Waiting,
    /// Spawn requested, pid not known yet.
    Starting,
    /// Process running.
    Running {
        pid: u32,
        started: Mono,
        timeout_at: Option<Mono>,
    },
    /// Stop signal sent.
    Stopping {
        pid: u32,
        started: Mono,
        reason: StopReason,
        /// When the stop signal went (the grace is `kill_at - signalled`).
        signalled: Mono,
        kill_at: Mono,
        killed: bool,
    },
}

#[derive(Debug, Clone)]
struct Run {
    id: RunId,
    attempt: u32,
    phase: Phase,
    /// How the main process ended, when its group outlived it.
    leader_exit: Option<ExitStatus>,
    /// Has stayed up `starttime` (counts as started).
    up: bool,
    /// Wall time the process started (for the log).
    started_wall: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Retry {
    at: Mono,
    attempt: u32,
}

/// Counters and last result of a task.
///
/// `runs` and `failures` count processes, not logical runs: every attempt started is a run
/// (a retry, a restart by `autorestart`, an attempt that failed to start included), and
/// every attempt that ended in failure is a failure (an exit code not in `success-codes`, a
/// signal, a timeout, a failure to start, an exit before `starttime`). An attempt stopped
/// by bansuri (shutdown, `stop`, reload, `overlap: replace`) is neither a success nor a
/// failure; a run SKIPPED for a failed dependency starts nothing and counts in neither.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskStats {
    /// Attempts started (processes, or in-process runs; a failed spawn included).
    pub runs: u64,
    /// Attempts that ended in failure.
    pub failures: u64,
    /// Result of the last finished run.
    pub last_outcome: Option<Outcome>,
    /// How the last process ended.
    pub last_end: Option<ProcessEnd>,
    /// Retries started (attempts after the first of a run).
    pub restarts: u64,
    /// CPU time of the processes that ended (wait4 rusage, their reaped children included).
    pub cpu_time: Duration,
    /// Largest peak RSS of one process that ended (wait4 rusage).
    pub peak_rss: u64,
    /// Wall time the last process ended.
    pub last_end_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Task {
    spec: Arc<TaskSpec>,
    sched: Sched,
    runs: Vec<Run>,
    retry: Option<Retry>,
    /// One more run is wanted once the current one ends (overlap queue/replace).
    queued: bool,
    /// Failures in a row (for the backoff); reset by success or a long-lived process.
    consecutive_failures: u32,
    stats: TaskStats,
    /// When its last process started (a rescheduled timer keeps its rhythm from it).
    last_start: Option<Mono>,
    /// Settings to switch to once the runs being stopped for a reload have ended.
    pending: Option<Arc<TaskSpec>>,
    /// Gone from the config: forgotten once its runs have ended.
    removed: bool,
    /// Processes in a row that ended before `starttime` (FATAL after `startretries` retries).
    failed_starts: u32,
    /// A run is due but waits for its dependencies.
    dep_wait: bool,
    /// Why the task is FATAL or SKIPPED, for status and the log.
    reason: Option<String>,
    /// Its last finished run failed finally: the next success is a recovery.
    failing: bool,
    /// Started by a control command: `autostart: false` no longer holds it back.
    commanded: bool,
    /// Stopped by a `stop` command: not started again (schedule, retry, reload) until a
    /// `start`.
    held: bool,
    /// A `restart` command is waiting for the runs being stopped to end.
    restart_after_stop: bool,
    /// `--resume`: it succeeded with the same settings before; its first scheduling
    /// does not run it.
    resumed: bool,
    /// [`control::settings_hash`] of `spec`, computed once per settings (the state file
    /// asks for it at every write).
    hash_memo: std::cell::RefCell<Option<(Arc<TaskSpec>, String)>>,
}

impl Task {
    fn new(spec: Arc<TaskSpec>) -> Task {
        Task {
            spec,
            sched: Sched::Off,
            runs: Vec::new(),
            retry: None,
            queued: false,
            consecutive_failures: 0,
            stats: TaskStats::default(),
            last_start: None,
            pending: None,
            removed: false,
            failed_starts: 0,
            dep_wait: false,
            reason: None,
            failing: false,
            commanded: false,
            held: false,
            restart_after_stop: false,
            resumed: false,
            hash_memo: std::cell::RefCell::new(None),
        }
    }

    /// The settings hash of the current `spec` (memoized per settings).
    fn settings_hash(&self) -> String {
        let mut memo = self.hash_memo.borrow_mut();
        match &*memo {
            Some((spec, hash)) if Arc::ptr_eq(spec, &self.spec) => hash.clone(),
            _ => {
                let hash = control::settings_hash(&self.spec);
                *memo = Some((Arc::clone(&self.spec), hash.clone()));
                hash
            }
        }
    }

    fn busy(&self) -> bool {
        !self.runs.is_empty() || self.retry.is_some() || self.dep_wait
    }

    /// Nothing running, nothing pending, nothing scheduled.
    fn finished(&self) -> bool {
        !self.busy()
            && !self.queued
            && matches!(self.sched, Sched::Off | Sched::Once { fired: true })
    }

    fn state(&self) -> TaskState {
        if let Some(run) = self.runs.first() {
            return match run.phase {
                Phase::Waiting => TaskState::Waiting,
                Phase::Starting => TaskState::Starting,
                Phase::Running { .. } => TaskState::Running,
                Phase::Stopping { .. } => TaskState::Stopping,
            };
        }
        if self.retry.is_some() {
            return TaskState::Restarting;
        }
        if self.held {
            return TaskState::Stopped;
        }
        if !self.spec.enabled {
            return TaskState::Stopped;
        }
        if self.dep_wait {
            return TaskState::Waiting;
        }
        match self.stats.last_outcome {
            Some(Outcome::Fatal) => return TaskState::Fatal,
            Some(Outcome::Skipped) if matches!(self.sched, Sched::Once { .. } | Sched::Off) => {
                return TaskState::Skipped
            }
            _ => {}
        }
        match (&self.sched, self.stats.last_outcome) {
            (Sched::Once { fired: false }, _) => TaskState::Pending,
            (Sched::Timer { .. } | Sched::Cron { .. }, _) => TaskState::Scheduled,
            (_, Some(Outcome::Success)) => TaskState::Success,
            (_, Some(Outcome::Failed)) => TaskState::Failed,
            (_, Some(Outcome::Timeout)) => TaskState::Timeout,
            (_, Some(Outcome::Fatal)) => TaskState::Fatal,
            (_, Some(Outcome::Skipped)) => TaskState::Skipped,
            (_, Some(Outcome::Stopped)) | (Sched::Off, None) => TaskState::Stopped,
            (Sched::Once { fired: true }, None) => TaskState::Pending,
        }
    }

    /// With `overlap: replace` and a newer run waiting, a failed old run is not retried.
    fn queued_replace(&self) -> bool {
        self.queued && self.spec.overlap == Overlap::Replace
    }

    fn stop_grace(&self, globals: &Globals) -> Duration {
        self.spec.stop_time.unwrap_or(globals.watchdog_timeout)
    }
}

/// A task's public view, for summaries and (later) the state file.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// Name.
    pub name: String,
    /// Current state.
    pub state: TaskState,
    /// Pid of the (first) running process.
    pub pid: Option<u32>,
    /// Counters.
    pub stats: TaskStats,
    /// Why it is FATAL or SKIPPED (`None` in any other state).
    pub reason: Option<String>,
}

/// The supervisor state machine.
#[derive(Debug)]
pub struct Core {
    globals: Globals,
    mode: Mode,
    tasks: Vec<Task>,
    /// Runs waiting for a slot, in order of arrival.
    slot_queue: VecDeque<RunId>,
    /// Runs holding a slot (Starting, Running, Stopping).
    active: usize,
    next_id: RunId,
    started: bool,
    shutdown: Option<ShutdownState>,
    exited: bool,
    out: Vec<Action>,
    /// Latest instant for bansuri's SIGKILL of any process ([`Input::KillBy`]).
    kill_by: Option<Mono>,
    /// A shutdown planned at a wall time ([`Input::ShutdownAt`]).
    planned: Option<deadline::Planned>,
    /// [`Core::next_deadline`] as of the last change (`None`: not computed since). The
    /// state changes only in `&mut self` methods, which clear it; the loop asks twice per
    /// wake-up, and with 500 tasks the scan is most of an idle wake-up's cost.
    deadline_memo: std::cell::Cell<Option<Option<Mono>>>,
}

#[derive(Debug, Clone, Copy)]
struct ShutdownState {
    forced: bool,
}

impl Core {
    /// A core for `spec`, not started yet (feed it [`Input::Start`]).
    pub fn new(spec: &Spec, mode: Mode) -> Core {
        let tasks = spec
            .tasks
            .iter()
            .map(|t| Task::new(Arc::new(t.clone())))
            .collect();
        Core {
            globals: spec.globals.clone(),
            mode,
            tasks,
            slot_queue: VecDeque::new(),
            active: 0,
            next_id: 1,
            started: false,
            shutdown: None,
            exited: false,
            out: Vec::new(),
            kill_by: None,
            planned: None,
            deadline_memo: std::cell::Cell::new(None),
        }
    }

    /// Global settings in effect.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }

    /// Feed one input; returns the actions to execute, in order.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Action> {
        self.deadline_memo.set(None);
        if self.exited {
            return Vec::new();
        }
        match input {
            Input::Start => self.start(now),
            Input::Tick => self.tick(now),
            Input::Spawned { run, pid } => self.spawned(run, pid, now),
            Input::SpawnFailed { run, reason } => {
                self.process_ended(run, None, ProcessEnd::SpawnFailed(reason), None, now)
            }
            Input::LeaderExited { run, status } => self.leader_exited(run, status, now),
            Input::Exited { run, status, usage } => self.exited(run, status, usage, now),
            Input::Shutdown { signal } => self.shutdown(signal, now),
            Input::Reload { spec } => self.reload(&spec, now),
            Input::ClockChanged => self.clock_changed(now),
            Input::StartTask { task } => self.control_each(&task, now, Core::control_start),
            Input::StopTask { task } => self.control_each(&task, now, Core::control_stop),
            Input::RestartTask { task } => self.control_each(&task, now, Core::control_restart),
            Input::KillBy { at, why } => self.kill_by_input(at, why, now),
            Input::ShutdownAt { at, why } => self.shutdown_at_input(at, why, now),
        }
        self.tick(now);
        std::mem::take(&mut self.out)
    }

    /// The earliest time at which the core needs a [`Input::Tick`]; `None` = only events.
    pub fn next_deadline(&self) -> Option<Mono> {
        if let Some(memo) = self.deadline_memo.get() {
            // The unit tests check the memo against a fresh scan at every call.
            if cfg!(test) {
                assert_eq!(memo, self.scan_deadline(), "stale deadline memo");
            }
            return memo;
        }
        let best = self.scan_deadline();
        self.deadline_memo.set(Some(best));
        best
    }

    fn scan_deadline(&self) -> Option<Mono> {
        let mut best: Option<Mono> = None;
        let mut consider = |t: Mono| best = Some(best.map_or(t, |b| b.min(t)));
        if let Some(p) = self.planned_deadline() {
            consider(p);
        }
        for task in &self.tasks {
            match task.sched {
                Sched::Timer { next, .. } => consider(next),
                Sched::Cron {
                    next_mono: Some(m), ..
                } => consider(m),
                _ => {}
            }
            if let Some(r) = task.retry {
                consider(r.at);
            }
            for run in &task.runs {
                if let (Phase::Running { started, .. }, false) = (&run.phase, run.up) {
                    // A process counts as started (for dependents, and against FATAL) once
                    // it has stayed up `starttime`.
                    consider(*started + task.spec.start_time);
                }
                match run.phase {
                    Phase::Running {
                        timeout_at: Some(t),
                        ..
                    } => consider(t),
                    Phase::Stopping {
                        kill_at,
                        killed: false,
                        ..
                    } => consider(kill_at),
                    _ => {}
                }
            }
        }
        best
    }

    /// Every task's state and counters, in config order.
    pub fn views(&self) -> Vec<TaskView> {
        self.tasks
            .iter()
            .map(|t| TaskView {
                name: t.spec.name.clone(),
                // Before `Start` every schedule is still `Off`: show the enabled ones as
                // PENDING, not STOPPED.
                state: if self.started || !t.spec.enabled {
                    t.state()
                } else {
                    TaskState::Pending
                },
                pid: t.runs.iter().find_map(|r| match r.phase {
                    Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
                    _ => None,
                }),
                stats: t.stats.clone(),
                reason: t.reason.clone().filter(|_| {
                    // Set when it went FATAL or SKIPPED; stale once it runs again.
                    matches!(t.state(), TaskState::Fatal | TaskState::Skipped)
                }),
            })
            .collect()
    }

    /// The task each live run belongs to, by its current name (a reload that changes
    /// `numprocs` renames a task whose process runs on).
    pub fn run_tasks(&self) -> impl Iterator<Item = (RunId, &str)> {
        self.tasks
            .iter()
            .filter(|t| !t.removed)
            .flat_map(|t| t.runs.iter().map(move |r| (r.id, t.spec.name.as_str())))
    }

    /// True once an [`Action::Exit`] has been emitted.
    pub fn has_exited(&self) -> bool {
        self.exited
    }

    // ----- logging helpers -------------------------------------------------------------

    fn log(&mut self, task: Option<&str>, level: Level, msg: String) {
        self.out.push(Action::Log {
            task: task.map(str::to_owned),
            level,
            msg,
        });
    }

    fn master(&mut self, level: Level, msg: String) {
        self.log(None, level, msg);
    }

    // ----- start-up and schedules ------------------------------------------------------

    fn start(&mut self, now: Now) {
        if self.started {
            return;
        }
        self.started = true;
        let n = self.tasks.len();
        let limit = match self.globals.max_parallel {
            Some(p) => format!("at most {p} at once"),
            None => "no limit on parallel runs".to_owned(),
        };
        self.master(
            Level::Info,
            format!(
                "{n} task{} configured; {limit}",
                if n == 1 { "" } else { "s" }
            ),
        );
        for i in 0..n {
            self.schedule_task(i, now, None);
        }
    }

    /// Set task `i`'s schedule from its spec, as at start-up. `last_start`: when a task
    /// that already ran is rescheduled (reload), a timer keeps its rhythm from its last
    /// start instead of firing at once, and a one-shot that ran does not run again.
    fn schedule_task(&mut self, i: usize, now: Now, last_start: Option<Mono>) {
        let name = self.tasks[i].spec.name.clone();
        if self.tasks[i].held {
            // Stopped by a `stop` command: nothing runs it (reload, new settings) until
            // a `start`.
            self.tasks[i].sched = Sched::Off;
            return;
        }
        if !self.tasks[i].spec.enabled {
            self.tasks[i].sched = Sched::Off;
            self.log(
                Some(&name),
                Level::Info,
                "Disabled (enabled: false): not started".into(),
            );
            return;
        }
        if !self.tasks[i].spec.autostart
            && !self.tasks[i].commanded
            && last_start.is_none()
            && !self.mode.once
        {
            self.tasks[i].sched = Sched::Off;
            self.log(
                Some(&name),
                Level::Info,
                format!("autostart: false: not started (start it with `bansuri start {name}`)"),
            );
            return;
        }
        let schedule = if self.mode.once {
            Schedule::Once
        } else {
            self.tasks[i].spec.schedule.clone()
        };
        let words = schedule::describe(&schedule);
        match schedule {
            Schedule::Once => {
                let resumed = std::mem::take(&mut self.tasks[i].resumed);
                if resumed {
                    self.log(
                        Some(&name),
                        Level::Info,
                        "Succeeded before with the same settings: not run again (--resume)".into(),
                    );
                }
                self.tasks[i].sched = Sched::Once {
                    fired: last_start.is_some() || resumed,
                };
                self.log(Some(&name), Level::Debug, format!("Schedule: {words}"));
            }
            Schedule::Timer(period) => {
                let next = match last_start {
                    Some(last) => (last + period).max(now.mono),
                    None => now.mono,
                };
                self.tasks[i].sched = Sched::Timer {
                    anchor: next,
                    period,
                    next,
                };
                let when = if next == now.mono {
                    String::new()
                } else {
                    format!("; next run {}", fmt_wall(now.wall_at(next)))
                };
                self.log(
                    Some(&name),
                    Level::Info,
                    format!("Timer configured: {words}{when}"),
                );
                if self.mode.exit_when_done {
                    self.exit_when_done_warning(&name);
                }
            }
            Schedule::Cron(cron) => {
                let next_wall = cron.next_after(now.wall);
                let next_mono = next_wall.map(|w| mono_for(now, w));
                self.tasks[i].sched = Sched::Cron {
                    next_wall,
                    next_mono,
                };
                let when = match next_wall {
                    Some(w) => format!("next run {}", fmt_wall(w)),
                    None => "it never matches: no run will start".to_owned(),
                };
                self.log(
                    Some(&name),
                    Level::Info,
                    format!("Cron configured: {words}; {when}"),
                );
                if self.mode.exit_when_done {
                    self.exit_when_done_warning(&name);
                }
            }
        }
    }

    fn exit_when_done_warning(&mut self, name: &str) {
        self.log(
            Some(name),
            Level::Warning,
            "periodic task: with --exit-when-done bansuri runs until stopped, because this task can always run again".into(),
        );
    }

    /// Everything that is due at `now`, then dispatch and the done check.
    fn tick(&mut self, now: Now) {
        if self.exited {
            return;
        }
        self.restarts_due(now);
        self.planned_due(now);
        for i in 0..self.tasks.len() {
            self.tick_task(i, now);
        }
        self.recheck_dependencies(now);
        self.tasks.retain(|t| !(t.removed && t.runs.is_empty()));
        self.dispatch(now);
        self.check_done();
    }

    fn tick_task(&mut self, i: usize, now: Now) {
        // Most tasks have nothing to do at a given tick (a thousand one-shots that ran or
        // wait for a slot): skip them cheaply. Mirrors the conditions below: a schedule
        // that is due, a retry, a process running or being stopped.
        let t = &self.tasks[i];
        if t.retry.is_none()
            && !t.sched.due_at(now)
            && !t
                .runs
                .iter()
                .any(|r| matches!(r.phase, Phase::Running { .. } | Phase::Stopping { .. }))
        {
            return;
        }
        if self.due(i, now) {
            self.fire(i, now);
        }

        // Retry backoff.
        if let Some(r) = self.tasks[i].retry {
            if now.mono >= r.at {
                self.tasks[i].retry = None;
                self.new_run(i, r.attempt, now);
            }
        }

        // Processes that have now stayed up `starttime` count as started.
        let start_time = self.tasks[i].spec.start_time;
        for run in &mut self.tasks[i].runs {
            if let Phase::Running { started, .. } = run.phase {
                if !run.up && now.mono >= started + start_time {
                    run.up = true;
                }
            }
        }

        // Timeouts and the watchdog.
        let grace = self.grace_for(i, now);
        let task = &mut self.tasks[i];
        let stop = task.spec.stop_signal;
        let limit = task.spec.timeout.unwrap_or_default();
        let inproc = task.spec.no_interface;
        let mut lines = Vec::new();
        for run in &mut task.runs {
            match &mut run.phase {
                Phase::Running {
                    pid,
                    started,
                    timeout_at: Some(t),
                } if now.mono >= *t => {
                    lines.push(if inproc {
                        format!(
                            "Timed out after {}: asking the in-process task to stop, abandoning it in {}",
                            fmt_dur(limit),
                            fmt_dur(grace)
                        )
                    } else {
                        format!(
                            "Timed out after {}: sending SIG{} to its process group (pid {pid}), SIGKILL in {}",
                            fmt_dur(limit),
                            stop.name(),
                            fmt_dur(grace)
                        )
                    });
                    run.phase = stopping(*pid, *started, StopReason::Timeout, stop, now, grace);
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: stop.number(),
                    });
                }
                Phase::Stopping {
                    pid,
                    signalled,
                    kill_at,
                    killed,
                    ..
                } if !*killed && now.mono >= *kill_at => {
                    *killed = true;
                    // The grace this run was given, which a KillWait bound may
                    // have shortened after the stop signal went.
                    let grace = kill_at.since(*signalled);
                    lines.push(if inproc {
                        format!(
                            "Still running {} after the stop request: abandoning its thread",
                            fmt_dur(grace)
                        )
                    } else {
                        format!(
                            "Still running at the end of its stop grace ({}) after SIG{}: sending SIGKILL to its process group (pid {pid})",
                            fmt_dur(grace),
                            stop.name()
                        )
                    });
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: libc::SIGKILL,
                    });
                }
                _ => {}
            }
        }
        if !lines.is_empty() {
            let name = self.tasks[i].spec.name.clone();
            for line in lines {
                self.log(Some(&name), Level::Warning, line);
            }
        }
    }

    /// Advance task `i`'s schedule; true when a run is due now.
    fn due(&mut self, i: usize, now: Now) -> bool {
        let Task { sched, spec, .. } = &mut self.tasks[i];
        match sched {
            Sched::Once { fired } if !*fired => {
                *fired = true;
                true
            }
            Sched::Timer {
                anchor,
                period,
                next,
            } if now.mono >= *next => {
                *next = schedule::timer_next(*anchor, *period, now.mono);
                true
            }
            Sched::Cron {
                next_wall: Some(nw),
                next_mono: Some(nm),
            } if now.mono >= *nm => {
                if now.wall < *nw {
                    // The wall clock went back (or monotonic time ran ahead): re-aim.
                    *nm = mono_for(now, *nw);
                    return false;
                }
                // Fire once even if several matches were missed (clock jump, suspend): the
                // next match is computed from now, not from the missed one.
                let next = match &spec.schedule {
                    Schedule::Cron(cron) => cron.next_after(now.wall),
                    _ => None,
                };
                *sched = Sched::Cron {
                    next_wall: next,
                    next_mono: next.map(|w| mono_for(now, w)),
                };
                true
            }
            _ => false,
        }
    }

    /// A scheduled run is due for task `i`.
    fn fire(&mut self, i: usize, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        if !self.tasks[i].busy() {
            self.start_when_ready(i, now);
            return;
        }
        let t = &self.tasks[i];
        if t.runs.is_empty() && t.retry.is_none() {
            // Only a run waiting for its dependencies: that is the run due now. No
            // overlap rule applies (nothing is running), and none may bypass the wait.
            return;
        }
        let name = self.tasks[i].spec.name.clone();
        match self.tasks[i].spec.overlap {
            Overlap::Skip => self.log(
                Some(&name),
                Level::Info,
                "Scheduled run skipped: the previous run is still going (overlap: skip)".into(),
            ),
            Overlap::Queue => {
                if !self.tasks[i].queued {
                    self.tasks[i].queued = true;
                    self.log(
                        Some(&name),
                        Level::Info,
                        "Scheduled run queued until the previous run ends (overlap: queue)".into(),
                    );
                }
            }
            Overlap::Replace => {
                self.tasks[i].queued = true;
                self.tasks[i].retry = None;
                self.log(
                    Some(&name),
                    Level::Info,
                    "Scheduled run replaces the previous run, which is being stopped (overlap: replace)"
                        .into(),
                );
                self.stop_runs(i, StopReason::Replaced, now);
                // A run that never got a process can be replaced at once.
                if self.tasks[i].runs.is_empty() && self.tasks[i].queued {
                    self.tasks[i].queued = false;
                    self.new_run(i, 1, now);
                }
            }
            Overlap::Allow => self.new_run(i, 1, now),
        }
    }

    // ----- runs ------------------------------------------------------------------------

    fn new_run(&mut self, i: usize, attempt: u32, _now: Now) {
        let id = self.next_id;
        self.next_id += 1;
        self.tasks[i].runs.push(Run {
            id,
            attempt,
            phase: Phase::Waiting,
            leader_exit: None,
            up: false,
            started_wall: None,
        });
        self.slot_queue.push_back(id);
    }

    /// Start waiting runs while slots are free.
    fn dispatch(&mut self, _now: Now) {
        while !self.slot_queue.is_empty() {
            if self.shutdown.is_some() {
                break;
            }
            if let Some(max) = self.globals.max_parallel {
                if self.active >= max {
                    break;
                }
            }
            let Some(id) = self.slot_queue.pop_front() else {
                break;
            };
            let Some((i, r)) = self.find_run(id) else {
                continue;
            };
            let run = &mut self.tasks[i].runs[r];
            run.phase = Phase::Starting;
            let attempt = run.attempt;
            self.active += 1;
            self.tasks[i].stats.runs += 1;
            if attempt > 1 {
                self.tasks[i].stats.restarts += 1;
            }
            self.out.push(Action::Spawn {
                run: id,
                task: Arc::clone(&self.tasks[i].spec),
                attempt,
            });
        }
    }

    fn find_run(&self, id: RunId) -> Option<(usize, usize)> {
        self.tasks
            .iter()
            .enumerate()
            .find_map(|(i, t)| t.runs.iter().position(|r| r.id == id).map(|r| (i, r)))
    }

    fn spawned(&mut self, id: RunId, pid: u32, now: Now) {
        let Some((i, r)) = self.find_run(id) else {
            return;
        };
        let timeout = self.tasks[i].spec.timeout;
        let times = self.tasks[i].spec.times;
        let cmd = self.tasks[i].spec.command.display();
        let what = match self.tasks[i].spec.command {
            crate::spec::CommandSpec::Shell(_) => "Executing shell command",
            crate::spec::CommandSpec::Python(_) => "Running Python task",
            crate::spec::CommandSpec::Argv(_) => "Executing",
        };
        let run = &mut self.tasks[i].runs[r];
        run.phase = Phase::Running {
            pid,
            started: now.mono,
            timeout_at: timeout.map(|t| now.mono + t),
        };
        run.started_wall = Some(now.wall);
        let attempt = run.attempt;
        self.tasks[i].last_start = Some(now.mono);
        let name = self.tasks[i].spec.name.clone();
        let tries = if times > 1 {
            format!(", {}", attempt_text(attempt, times))
        } else {
            String::new()
        };
        let line = if self.tasks[i].spec.no_interface {
            // In-process (library API): a thread of bansuri, no pid of its own.
            let tries = tries.trim_start_matches(", ");
            let tries = if tries.is_empty() {
                String::new()
            } else {
                format!(" ({tries})")
            };
            format!("Running in-process task `{cmd}`{tries}")
        } else {
            format!("{what}: {cmd} (pid {pid}{tries})")
        };
        self.log(Some(&name), Level::Info, line);
        if let Some(s) = self.shutdown {
            // Started while the stop was being decided: stop it like the others.
            self.stop_runs(i, StopReason::Shutdown, now);
            if s.forced {
                // A second SIGTERM already came: no grace for this one either.
                if let Phase::Stopping { killed, .. } = &mut self.tasks[i].runs[r].phase {
                    if !*killed {
                        *killed = true;
                        self.out.push(Action::Signal {
                            run: id,
                            signal: libc::SIGKILL,
                        });
                    }
                }
            }
        } else if self.tasks[i].held {
            // A `stop` command came before this run had a pid.
            self.stop_runs(i, StopReason::Command, now);
        } else if self.tasks[i].queued_replace() {
            // `overlap: replace` came due before this (older) run had a pid: stop it now,
            // the queued run starts when it has exited.
            self.stop_runs(i, StopReason::Replaced, now);
        }
    }

    /// The main process is gone but its group is not: whatever it left behind gets the
    /// stop signal and, after the grace, SIGKILL (what systemd does with a service's
    /// leftover processes). A run already being stopped just goes on waiting.
    fn leader_exited(&mut self, id: RunId, status: ExitStatus, now: Now) {
        let Some((i, r)) = self.find_run(id) else {
            return;
        };
        let grace = self.grace_for(i, now);
        let stop = self.tasks[i].spec.stop_signal;
        let run = &mut self.tasks[i].runs[r];
        run.leader_exit = Some(status);
        let Phase::Running { pid, started, .. } = run.phase else {
            return;
        };
        run.phase = stopping(pid, started, StopReason::Leftovers, stop, now, grace);
        self.out.push(Action::Signal {
            run: id,
            signal: stop.number(),
        });
        let how = match status {
            ExitStatus::Code(c) => format!("with code {c}"),
            ExitStatus::Signal(s) => format!("killed by {} ({})", signal_name(s), shell_code(s)),
        };
        let name = self.tasks[i].spec.name.clone();
        self.log(
            Some(&name),
            Level::Warning,
            format!(
                "Main process (pid {pid}) exited {how} but left processes in its group: SIG{} to the group, SIGKILL in {}",
                stop.name(),
                fmt_dur(grace)
            ),
        );
    }

    fn exited(&mut self, id: RunId, status: ExitStatus, usage: Option<Usage>, now: Now) {
        let Some((i, r)) = self.find_run(id) else {
            return;
        };
        let run = &self.tasks[i].runs[r];
        // When the group outlived the main process, the run's result is the main process's.
        let status = run.leader_exit.unwrap_or(status);
        let (started, end) = match (&run.phase, status) {
            (
                Phase::Stopping {
                    started,
                    reason: StopReason::Timeout,
                    ..
                },
                _,
            ) => (
                Some(*started),
                ProcessEnd::TimedOut(self.tasks[i].spec.timeout.unwrap_or_default()),
            ),
            (
                Phase::Stopping {
                    started,
                    reason: StopReason::Leftovers,
                    ..
                },
                ExitStatus::Code(c),
            ) => (Some(*started), ProcessEnd::Exited(c)),
            (
                Phase::Stopping {
                    started,
                    reason: StopReason::Leftovers,
                    ..
                },
                ExitStatus::Signal(sig),
            ) => (Some(*started), ProcessEnd::Signaled(sig)),
            (
                Phase::Stopping {
                    started, reason, ..
                },
                _,
            ) => (Some(*started), ProcessEnd::Stopped(*reason)),
            (Phase::Running { started, .. }, ExitStatus::Code(c)) => {
                (Some(*started), ProcessEnd::Exited(c))
            }
            (Phase::Running { started, .. }, ExitStatus::Signal(s)) => {
                (Some(*started), ProcessEnd::Signaled(s))
            }
            (_, ExitStatus::Code(c)) => (None, ProcessEnd::Exited(c)),
            (_, ExitStatus::Signal(s)) => (None, ProcessEnd::Signaled(s)),
        };
        self.process_ended(id, started, end, usage, now);
    }

    /// A run's process is over (or never started): record, retry, queue, done.
    fn process_ended(
        &mut self,
        id: RunId,
        started: Option<Mono>,
        end: ProcessEnd,
        usage: Option<Usage>,
        now: Now,
    ) {
        let Some((i, r)) = self.find_run(id) else {
            return;
        };
        let run = self.tasks[i].runs.remove(r);
        if !matches!(run.phase, Phase::Waiting) {
            self.active = self.active.saturating_sub(1);
        }
        let uptime = started.map(|s| now.mono.since(s));
        let spec = Arc::clone(&self.tasks[i].spec);
        let name = spec.name.as_str();
        let success = end.is_success(&spec.success_codes);
        self.tasks[i].stats.last_end = Some(end.clone());
        self.record_usage(i, usage, now);

        let detail = run_detail(uptime, usage);
        let (level, mut line) = describe_end(&end, success, &spec);
        line.push_str(&detail);
        self.log(Some(name), level, line);

        if let ProcessEnd::Stopped(reason) = end {
            self.tasks[i].stats.last_outcome = Some(Outcome::Stopped);
            if self.tasks[i].runs.is_empty() && self.shutdown.is_none() {
                if let Some(spec) = self.tasks[i].pending.take() {
                    // The old runs of a changed task are gone: start over with the new settings.
                    self.tasks[i].spec = spec;
                    self.schedule_task(i, now, None);
                    return;
                }
            }
            if reason == StopReason::Replaced
                && self.tasks[i].queued
                && self.shutdown.is_none()
                && self.tasks[i].runs.is_empty()
            {
                self.tasks[i].queued = false;
                self.new_run(i, 1, now);
            }
            return;
        }

        if self.tasks[i].runs.is_empty() && self.shutdown.is_none() {
            if let Some(spec) = self.tasks[i].pending.take() {
                // A reload changed the task while this run was ending on its own terms (a
                // timeout's stop was already under way): the end is counted, and the task
                // starts over with the new settings; no retry of the old ones.
                let task = &mut self.tasks[i];
                task.stats.last_outcome = Some(if success {
                    Outcome::Success
                } else {
                    Outcome::of_failure(&end)
                });
                if !success {
                    task.stats.failures += 1;
                }
                task.consecutive_failures = 0;
                task.failed_starts = 0;
                task.spec = spec;
                self.schedule_task(i, now, None);
                return;
            }
        }
        let start = self.failed_start(i, uptime, success, &end, now);
        if !success || start != FailedStart::No {
            // A failed attempt; a service's exit before `starttime` too, even with a
            // success code (it is a failed start, and counts towards FATAL).
            self.tasks[i].stats.failures += 1;
        }
        if start == FailedStart::Fatal {
            // FATAL: the task's final failure.
            self.notify_end(i, id, run.attempt, &end, false, now);
            return;
        }
        if success {
            let task = &mut self.tasks[i];
            task.consecutive_failures = 0;
            task.stats.last_outcome = Some(Outcome::Success);
            self.notify_end(i, id, run.attempt, &end, true, now);
            if spec.restart_on_success && self.shutdown.is_none() {
                self.restart_service(i, now);
                return;
            }
            self.after_run(i, now);
            return;
        }

        // A failed attempt.
        let task = &mut self.tasks[i];
        if uptime.is_some_and(|u| u >= BACKOFF_RESET_AFTER) {
            task.consecutive_failures = 0;
        }
        task.consecutive_failures = task.consecutive_failures.saturating_add(1);
        let by_policy = spec.on_fail == OnFail::Restart && run.attempt < spec.times;
        let retry = (by_policy || matches!(start, FailedStart::Retry(_)))
            && self.shutdown.is_none()
            && !task.queued_replace();
        if retry {
            let delay = backoff(
                spec.restart_delay,
                spec.max_restart_delay,
                task.consecutive_failures,
            );
            task.retry = Some(Retry {
                at: now.mono + delay,
                attempt: run.attempt + 1,
            });
            let why = match start {
                FailedStart::Retry(n) if !by_policy => format!(
                    "failed start within starttime {}; retry {n} of startretries {}",
                    fmt_dur(spec.start_time),
                    spec.start_retries
                ),
                _ => format!(
                    "{}, {}",
                    attempt_text(run.attempt + 1, spec.times),
                    if spec.restart_on_success {
                        "autorestart"
                    } else {
                        "on-fail: restart"
                    }
                ),
            };
            self.log(
                Some(name),
                Level::Info,
                format!("Restarting in {} ({why})", fmt_dur(delay)),
            );
            self.notify_attempt(i, id, run.attempt, &end, now);
            return;
        }
        let outcome = Outcome::of_failure(&end);
        task.stats.last_outcome = Some(outcome);
        // The backoff belongs to one run: the next scheduled run starts from restart-delay.
        task.consecutive_failures = 0;
        if spec.on_fail == OnFail::Restart && spec.times > 1 && spec.times != UNLIMITED_ATTEMPTS {
            self.log(
                Some(name),
                Level::Error,
                format!(
                    "Failed after {} attempts; giving up on this run",
                    run.attempt
                ),
            );
        }
        self.notify_end(i, id, run.attempt, &end, false, now);
        self.after_run(i, now);
    }

    /// After a run has finished (success or final failure): queued runs, one-shot end.
    fn after_run(&mut self, i: usize, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        if self.tasks[i].queued && !self.tasks[i].busy() {
            self.tasks[i].queued = false;
            self.new_run(i, 1, now);
        }
    }

    /// Send the stop signal to every run of task `i` (waiting runs are dropped).
    fn stop_runs(&mut self, i: usize, reason: StopReason, now: Now) {
        let grace = self.grace_for(i, now);
        let stop = self.tasks[i].spec.stop_signal;
        let name = self.tasks[i].spec.name.clone();
        let inproc = self.tasks[i].spec.no_interface;
        let mut dropped = Vec::new();
        let mut lines = Vec::new();
        for run in &mut self.tasks[i].runs {
            match run.phase {
                Phase::Waiting => dropped.push(run.id),
                Phase::Running { pid, started, .. } => {
                    run.phase = stopping(pid, started, reason, stop, now, grace);
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: stop.number(),
                    });
                    let why = reason.words();
                    lines.push(if inproc {
                        format!(
                            "Stopping ({why}): asking the in-process task to stop, abandoning it in {}",
                            fmt_dur(grace)
                        )
                    } else {
                        format!(
                            "Stopping ({why}): SIG{} to process group {pid}, SIGKILL in {}",
                            stop.name(),
                            fmt_dur(grace)
                        )
                    });
                }
                Phase::Stopping {
                    ref mut kill_at, ..
                } => {
                    // Already stopping (a timeout): keep the earlier SIGKILL deadline.
                    *kill_at = (*kill_at).min(now.mono + grace);
                }
                Phase::Starting => {}
            }
        }
        for line in lines {
            self.log(Some(&name), Level::Info, line);
        }
        for id in dropped {
            self.slot_queue.retain(|q| *q != id);
            self.tasks[i].runs.retain(|r| r.id != id);
        }
    }

    fn clock_changed(&mut self, now: Now) {
        for task in &mut self.tasks {
            if let Sched::Cron {
                next_wall: Some(nw),
                next_mono,
            } = &mut task.sched
            {
                *next_mono = Some(mono_for(now, *nw));
            }
        }
        self.master(
            Level::Warning,
            format!(
                "The wall clock changed (now {}): cron schedules re-aimed",
                fmt_wall(now.wall)
            ),
        );
    }

    // ----- reload ----------------------------------------------------------------------

    /// Converge to `spec`: start added tasks, stop removed ones, restart changed ones, and
    /// leave the others alone (same processes, same counters, same schedule).
    fn reload(&mut self, spec: &Spec, now: Now) {
        if self.shutdown.is_some() {
            return;
        }
        let mut old: Vec<Task> = std::mem::take(&mut self.tasks);
        let mut tasks = Vec::with_capacity(spec.tasks.len());
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut rescheduled = Vec::new();
        let mut kept = 0usize;
        // What happens to each new entry, applied once `self.tasks` holds them all.
        enum Then {
            Schedule(Option<Mono>),
            Stop(StopReason),
            Nothing,
        }
        let mut then = Vec::with_capacity(spec.tasks.len());
        for new in &spec.tasks {
            let key = identity(new);
            let pos = old
                .iter()
                .position(|t| !t.removed && identity(&t.spec) == key);
            // `numprocs` added (`w` -> `w:0..`) or dropped (`w:0..` -> `w`): instance 0 and
            // the plain task are one task under two names, so its process runs on.
            let takeover = pos.is_none().then(|| {
                old.iter()
                    .position(|t| !t.removed && takes_over(&t.spec, new))
            });
            let Some(pos) = pos.or(takeover.flatten()) else {
                added.push(new.name.clone());
                let mut task = Task::new(Arc::new(new.clone()));
                // Removed, then added back before its old run has stopped: the new one
                // waits for that run to end, as a changed task does (never two at once).
                let gone = old
                    .iter()
                    .position(|t| t.removed && !t.runs.is_empty() && identity(&t.spec) == key);
                if let Some(gone) = gone {
                    let gone = old.remove(gone);
                    task.pending = Some(std::mem::replace(&mut task.spec, gone.spec));
                    task.runs = gone.runs;
                    then.push(Then::Nothing);
                } else {
                    then.push(Then::Schedule(None));
                }
                tasks.push(task);
                continue;
            };
            let mut task = old.remove(pos);
            let mut before = Arc::clone(task.pending.as_ref().unwrap_or(&task.spec));
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
                let runs_on = matches!(change, Change::Description | Change::Schedule);
                let msg = format!(
                    "Takes over from `{was}` (numprocs changed): {}",
                    if runs_on {
                        "same process, same counters"
                    } else {
                        "same counters"
                    }
                );
                self.log(Some(&new.name), Level::Info, msg);
            }
            let step = match change {
                Change::None => {
                    kept += 1;
                    Then::Nothing
                }
                Change::Description => {
                    kept += 1;
                    if task.pending.is_some() {
                        task.pending = Some(new);
                    } else {
                        task.spec = new;
                    }
                    Then::Nothing
                }
                Change::Schedule => {
                    rescheduled.push(new.name.clone());
                    if task.pending.is_some() {
                        task.pending = Some(new);
                        Then::Nothing
                    } else {
                        task.spec = new;
                        Then::Schedule(task.last_start)
                    }
                }
                Change::Enabled(false) => {
                    changed.push(new.name.clone());
                    task.spec = new;
                    task.pending = None;
                    Then::Stop(StopReason::Disabled)
                }
                Change::Enabled(true) => {
                    // Switched back on: it starts again as if just added (a monitor that
                    // was disabled must come back), once the runs the disabling stopped
                    // have ended (started now, its first run would be skipped as an
                    // overlap, and a one-shot would never run again).
                    changed.push(new.name.clone());
                    if task.runs.is_empty() {
                        task.pending = None;
                        task.spec = new;
                        Then::Schedule(None)
                    } else {
                        task.pending = Some(new);
                        Then::Nothing
                    }
                }
                Change::Restart => {
                    changed.push(new.name.clone());
                    if task.busy() || task.pending.is_some() {
                        task.pending = Some(new);
                        Then::Stop(StopReason::Changed)
                    } else {
                        task.spec = new;
                        Then::Schedule(None)
                    }
                }
            };
            tasks.push(task);
            then.push(step);
        }
        // What is left of the old tasks was removed from the file.
        let mut removed = Vec::new();
        for mut task in old {
            if !task.removed {
                removed.push(task.spec.name.clone());
                task.removed = true;
                task.pending = None;
            }
            tasks.push(task);
        }
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
            if self.tasks[i].removed && self.tasks[i].sched != Sched::Off {
                self.halt(i, StopReason::Removed, now);
            }
        }

        let list = |v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.join(", "))
            }
        };
        let mut msg = format!(
            "Config reloaded: {} added{}, {} removed{}, {} changed{}",
            added.len(),
            list(&added),
            removed.len(),
            list(&removed),
            changed.len(),
            list(&changed),
        );
        if !rescheduled.is_empty() {
            msg.push_str(&format!(
                ", {} rescheduled{}",
                rescheduled.len(),
                list(&rescheduled)
            ));
        }
        msg.push_str(&format!(", {kept} kept"));
        self.master(Level::Info, msg);
    }

    /// Stop task `i` for good (until a reload says otherwise): no schedule, no retry, no
    /// queued run; its runs get the stop signal.
    fn halt(&mut self, i: usize, reason: StopReason, now: Now) {
        let task = &mut self.tasks[i];
        task.sched = Sched::Off;
        task.retry = None;
        task.queued = false;
        // Nor a run waiting for its dependencies (a disabled task must not start when
        // they are met; a changed one waits again under its new settings).
        task.dep_wait = false;
        self.stop_runs(i, reason, now);
        // A changed task with nothing left to stop switches to its new settings at once.
        if self.tasks[i].runs.is_empty() {
            if let Some(spec) = self.tasks[i].pending.take() {
                self.tasks[i].spec = spec;
                self.schedule_task(i, now, None);
            }
        }
    }

    // ----- shutdown and done -----------------------------------------------------------

    fn shutdown(&mut self, signal: &'static str, now: Now) {
        if let Some(s) = &mut self.shutdown {
            if s.forced {
                return;
            }
            s.forced = true;
            self.master(
                Level::Warning,
                format!("Received {signal} again: killing every remaining process group now"),
            );
            let mut kills = Vec::new();
            for task in &mut self.tasks {
                for run in &mut task.runs {
                    if let Phase::Stopping { killed, .. } = &mut run.phase {
                        if !*killed {
                            *killed = true;
                            kills.push(run.id);
                        }
                    }
                }
            }
            for run in kills {
                self.out.push(Action::Signal {
                    run,
                    signal: libc::SIGKILL,
                });
            }
            return;
        }
        let hint = if self.kill_by.is_none() {
            format!("; send {signal} again to kill at once")
        } else {
            String::new()
        };
        self.begin_shutdown(format!("Received {signal}"), &hint, now);
    }

    /// Stop every task now (stop signal to every run, SIGKILL after its grace); `cause`
    /// starts the log line.
    fn begin_shutdown(&mut self, cause: String, hint: &str, now: Now) {
        self.shutdown = Some(ShutdownState { forced: false });
        self.planned = None;
        let running: usize = self
            .tasks
            .iter()
            .map(|t| {
                t.runs
                    .iter()
                    .filter(|r| !matches!(r.phase, Phase::Waiting))
                    .count()
            })
            .sum();
        let grace = self.globals.watchdog_timeout;
        let after = match self.kill_by {
            Some(k) if now.mono + grace > k => format!(
                "{}, sooner than the watchdog's {} (see above)",
                fmt_dur(k.since(now.mono)),
                fmt_dur(grace)
            ),
            _ => fmt_dur(grace),
        };
        self.master(
            Level::Info,
            format!(
                "{cause}: shutdown of {running} running process{} (stop signal now, SIGKILL after {after}{hint})",
                if running == 1 { "" } else { "es" },
            ),
        );
        for i in 0..self.tasks.len() {
            let task = &mut self.tasks[i];
            task.sched = Sched::Off;
            task.retry = None;
            task.queued = false;
            self.stop_runs(i, StopReason::Shutdown, now);
        }
        self.slot_queue.clear();
    }

    fn check_done(&mut self) {
        if self.exited || !self.started {
            return;
        }
        let all_finished = self.tasks.iter().all(Task::finished);
        if !all_finished {
            return;
        }
        let batch = self.mode.exit_when_done || self.mode.once;
        if self.shutdown.is_none() && !batch {
            return;
        }
        let failed = self
            .tasks
            .iter()
            .filter(|t| t.stats.last_outcome.is_some_and(Outcome::is_failure))
            .count();
        let ending = if self.shutdown.is_some() {
            crate::model::Ending::ShutDown
        } else if failed > 0 {
            crate::model::Ending::TasksFailed { failed }
        } else {
            crate::model::Ending::AllSucceeded
        };
        let code = crate::model::Exit::Run(ending).code();
        self.summary();
        let why = if self.shutdown.is_some() {
            "Shutdown complete".to_owned()
        } else if failed > 0 {
            format!("All tasks done; {failed} failed")
        } else {
            "All tasks done; all succeeded".to_owned()
        };
        self.master(Level::Info, format!("{why}: exiting with code {code}"));
        self.exited = true;
        self.out.push(Action::Exit { ending });
    }

    /// One aligned line per task: state, runs, failures, CPU time and peak RSS of its
    /// processes (wait4 rusage), last end.
    fn summary(&mut self) {
        let views = self.views();
        let width = views.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
        self.master(
            Level::Info,
            format!(
                "{:<width$}  {:<10}  {:>5}  {:>8}  {:>9}  {:>9}  LAST",
                "TASK", "STATE", "RUNS", "FAILURES", "CPU TIME", "PEAK RSS"
            ),
        );
        for v in views {
            let last = v.stats.last_end.as_ref().map_or("-".to_owned(), short_end);
            let cpu = format!("{:.2}s", v.stats.cpu_time.as_secs_f64());
            let rss = if v.stats.peak_rss == 0 {
                "-".to_owned()
            } else {
                fmt_bytes(v.stats.peak_rss)
            };
            self.master(
                Level::Info,
                format!(
                    "{:<width$}  {:<10}  {:>5}  {:>8}  {cpu:>9}  {rss:>9}  {last}",
                    v.name,
                    v.state.name(),
                    v.stats.runs,
                    v.stats.failures
                ),
            );
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

fn stopping(
    pid: u32,
    started: Mono,
    reason: StopReason,
    stop: StopSignal,
    now: Now,
    grace: Duration,
) -> Phase {
    Phase::Stopping {
        pid,
        started,
        reason,
        signalled: now.mono,
        kill_at: now.mono + grace,
        killed: stop == StopSignal::Kill,
    }
}

/// Exponential backoff: `base * 2^(failures-1)`, capped.
pub fn backoff(base: Duration, cap: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << shift).min(cap.max(base))
}

/// The monotonic instant at which wall time `w` will come, seen from `now`.
fn mono_for(now: Now, w: DateTime<Utc>) -> Mono {
    match (w - now.wall).to_std() {
        Ok(d) => now.mono + d,
        Err(_) => now.mono,
    }
}

fn run_detail(uptime: Option<Duration>, usage: Option<Usage>) -> String {
    let mut parts = Vec::new();
    if let Some(u) = uptime {
        parts.push(format!("ran {}", fmt_dur(u)));
    }
    if let Some(u) = usage {
        parts.push(format!("cpu {:.2}s", u.cpu.as_secs_f64()));
        parts.push(format!("max RSS {}", fmt_bytes(u.max_rss)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn describe_end(end: &ProcessEnd, success: bool, spec: &TaskSpec) -> (Level, String) {
    match end {
        ProcessEnd::Exited(c) if success => (Level::Info, format!("Process finished with code {c}")),
        ProcessEnd::Exited(126) => (
            Level::Warning,
            "Process finished with code 126: the command was found but could not be executed (check its permissions and its #! line)".to_owned(),
        ),
        ProcessEnd::Exited(127) => (
            Level::Warning,
            "Process finished with code 127: command not found (check the command's spelling, its path and PATH)".to_owned(),
        ),
        ProcessEnd::Exited(c) => (
            Level::Warning,
            format!(
                "Process finished with code {c} (failure: success-codes are {:?})",
                spec.success_codes
            ),
        ),
        ProcessEnd::Signaled(s) if success => (
            Level::Info,
            format!(
                "Process killed by {} ({}): a success code",
                signal_name(*s),
                shell_code(*s)
            ),
        ),
        ProcessEnd::Signaled(s) => (
            Level::Warning,
            format!(
                "Process killed by {} ({})",
                signal_name(*s),
                shell_code(*s)
            ),
        ),
        ProcessEnd::TimedOut(t) => (
            Level::Warning,
            format!("Process stopped: timed out after {}", fmt_dur(*t)),
        ),
        ProcessEnd::Stopped(StopReason::Timeout) => {
            (Level::Warning, "Process stopped (timeout)".to_owned())
        }
        ProcessEnd::Stopped(reason) => (Level::Info, format!("Process stopped ({})", reason.words())),
        ProcessEnd::SpawnFailed(reason) => {
            (Level::Error, format!("Failed to start: {reason}"))
        }
    }
}

/// Compact form of a process end for tables: `exit 0`, `SIGKILL (137)`, `timeout 30s`.
pub fn short_end(end: &ProcessEnd) -> String {
    match end {
        ProcessEnd::Exited(c) => format!("exit {c}"),
        ProcessEnd::Signaled(s) => format!("{} ({})", signal_name(*s), shell_code(*s)),
        ProcessEnd::TimedOut(t) => format!("timeout {}", fmt_dur(*t)),
        ProcessEnd::Stopped(StopReason::Timeout) => "timeout".to_owned(),
        ProcessEnd::Stopped(StopReason::Shutdown) => "stopped (shutdown)".to_owned(),
        ProcessEnd::Stopped(StopReason::Replaced) => "stopped (replaced)".to_owned(),
        ProcessEnd::Stopped(StopReason::Leftovers) => "stopped (leftovers)".to_owned(),
        ProcessEnd::Stopped(StopReason::Removed) => "stopped (removed)".to_owned(),
        ProcessEnd::Stopped(StopReason::Changed) => "stopped (changed)".to_owned(),
        ProcessEnd::Stopped(StopReason::Disabled) => "stopped (disabled)".to_owned(),
        ProcessEnd::Stopped(StopReason::Command) => "stopped (stop command)".to_owned(),
        ProcessEnd::Stopped(StopReason::Restart) => "stopped (restart)".to_owned(),
        ProcessEnd::SpawnFailed(_) => "failed to start".to_owned(),
    }
}
