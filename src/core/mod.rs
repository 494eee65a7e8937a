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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{Mono, Now};
use crate::model::{ExitStatus, ProcessEnd, StopReason, TaskState, Usage};
use crate::schedule::{self, Schedule};
use crate::spec::{
    ArrayElement, Globals, NotifyEvent, OnFail, Overlap, Spec, StopSignal, TaskSpec,
    UNLIMITED_ATTEMPTS,
};

mod alloc;
mod control;
mod deadline;
pub mod event;
mod feed;
mod notify;
mod program;
mod progress;
mod reload;
pub use event::{
    Command, DepFailure, DepWait, Event, FatalWhy, Launch, MasterEvent, Reason, ReloadSummary,
    Reply, RetryWhy, ShutdownCause, StopHow, Suggestion, SummaryRow, TaskEvent, UnknownTask,
};
pub use feed::{ArrayView, FailedElement};
use program::FailedStart;
pub use progress::Progress;
#[cfg(test)]
mod tests;

pub use alloc::{may_run_elsewhere, NodeState, NodeView};
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
    /// SIGTERM or SIGINT reached bansuri, or a `shutdown` request. A second one forces
    /// SIGKILL.
    Shutdown {
        /// What asked for it.
        cause: ShutdownCause,
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
    /// What the allocation has (issue 17), told once before `Start` (and again when the
    /// `resources` block changes on reload). Runs of tasks with a request are packed into
    /// it; without it, requests are not enforced.
    Resources {
        /// CPUs, GPUs and memory, and where they came from.
        inventory: crate::resources::Inventory,
    },
    /// Agents are being started on these other nodes of the allocation (issue 18), once,
    /// after `Resources`: from now on every run a node could run is placed on a node (a
    /// task without a request counts as 1 CPU there, unbound), this node and then each
    /// of these once it is ready.
    Agents {
        /// The other nodes, by name.
        nodes: Vec<String>,
    },
    /// The agent of node `node` answered: it has `inventory`.
    NodeReady {
        /// The node (one of `Agents`'s).
        node: String,
        /// What it has.
        inventory: crate::resources::Inventory,
    },
    /// Node `node` is lost (its agent exited, or stopped answering): its runs end as
    /// failed (`ProcessEnd::Lost`), it takes no more runs.
    NodeLost {
        /// The node.
        node: String,
        /// Why, in words for the log.
        reason: String,
    },
    /// The job's end on the monotonic clock (`None`: no time limit, or outside SLURM),
    /// told at start and whenever the runtime re-reads it. Runs that would end after it
    /// (minus the stop grace) wait; checkpoint signals are sent `checkpoint-lead` before it.
    JobEnd {
        /// When Slurm ends the job.
        end: Option<Mono>,
    },
    /// A run's sampled resident memory went over its task's `mem` (`mem-exceeded`: the
    /// core warns, or stops the run).
    MemExceeded {
        /// The run.
        run: RunId,
        /// The sampled RSS, bytes.
        rss: u64,
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
        /// The CPUs, GPUs and memory packed for it (tasks with a request, issue 17): the
        /// runtime binds the process to them (`task.needs.bind`).
        grant: Option<crate::resources::Grant>,
        /// The node to run it on when it is not bansuri's own (issue 18): the runtime
        /// hands it to that node's agent.
        node: Option<Arc<str>>,
    },
    /// Send `signal` to the process group of `run`.
    Signal {
        /// The run.
        run: RunId,
        /// Raw signal number.
        signal: i32,
    },
    /// A lifecycle event, for the job log (`crate::words` has its line).
    Event(Event),
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
    Reply(Reply),
    /// The time limit ends the job with work left and `requeue_on_end` is set: requeue
    /// bansuri's own job (`scontrol requeue`), before `Exit`.
    Requeue,
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
        proc: Proc,
        timeout_at: Option<Mono>,
    },
    /// Stop signal sent.
    Stopping {
        proc: Proc,
        reason: StopReason,
        /// When the stop signal went (the grace is `kill_at - signalled`).
        signalled: Mono,
        kill_at: Mono,
        killed: bool,
        /// How the main process ended, when its group outlived it.
        leader_exit: Option<ExitStatus>,
    },
}

/// The process of an attempt, from the moment it has a pid.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Proc {
    pid: u32,
    started: Mono,
    /// Wall time it started (status).
    wall: DateTime<Utc>,
    /// Has stayed up `starttime` (counts as started).
    up: bool,
}

#[derive(Debug, Clone)]
struct Run {
    id: RunId,
    attempt: u32,
    phase: Phase,
    /// What it holds from its spawn to its end (packed tasks, issue 17).
    grant: Option<crate::resources::Grant>,
    /// The node it was placed on (issue 18; 0: bansuri's own).
    node: usize,
    /// Its checkpoint signal went.
    checkpointed: bool,
    /// Its `mem-exceeded: warn` line was written.
    mem_warned: bool,
}

impl Run {
    /// Its process has stayed up `starttime` (a service counts as started).
    fn up(&self) -> bool {
        match self.phase {
            Phase::Running { proc, .. } | Phase::Stopping { proc, .. } => proc.up,
            Phase::Waiting | Phase::Starting => false,
        }
    }
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
    /// How long the last process ran (an array's slowest elements, issue 19).
    pub last_uptime: Option<Duration>,
}

/// Where a task stands between its runs, beside its schedule ([`Sched`]) and the phases of
/// its runs ([`Phase`]): what starts it next or what holds it. One at a time: a held task
/// has no retry, a FATAL one waits for no dependency.
#[derive(Debug, Clone, PartialEq)]
enum Lifecycle {
    /// Free: its schedule starts it.
    Idle,
    /// A due run waits for its dependencies (WAITING).
    WaitingForDeps,
    /// A failed attempt is retried at `at` (RESTARTING).
    Retrying(Retry),
    /// Stopped by a `stop` command: no schedule, retry or reload starts it until a
    /// `start` (STOPPED).
    Held,
    /// A `restart` command (or a `start` while stopping): it starts again once the runs
    /// being stopped have ended.
    RestartAfterStop,
    /// Failed to start too often: not started again until a reload changes it or a
    /// `start` (FATAL).
    Fatal(FatalWhy),
    /// A run was not started: a dependency cannot be met (SKIPPED for a one-shot).
    Skipped(DepFailure),
}

/// A task's place in the config in effect.
#[derive(Debug, Clone, PartialEq)]
enum InConfig {
    /// In it, as `spec` says.
    Current,
    /// Changed by a reload: these settings are taken once its runs being stopped have
    /// ended.
    Changing(Arc<TaskSpec>),
    /// Gone from it: forgotten once its runs have ended.
    Removed,
}

#[derive(Debug)]
struct Task {
    spec: Arc<TaskSpec>,
    sched: Sched,
    runs: Vec<Run>,
    /// Where it stands between runs: what starts it next, or what holds it.
    life: Lifecycle,
    /// One more run is wanted once the current one ends (overlap queue/replace).
    queued: bool,
    /// Failures in a row (for the backoff); reset by success or a long-lived process.
    consecutive_failures: u32,
    stats: TaskStats,
    /// When its last process started (a rescheduled timer keeps its rhythm from it).
    last_start: Option<Mono>,
    /// Its place in the config in effect: current, changing, removed.
    config: InConfig,
    /// Processes in a row that ended before `starttime` (FATAL after `startretries` retries).
    failed_starts: u32,
    /// Its last finished run failed finally: the next success is a recovery.
    failing: bool,
    /// Started by a control command: `autostart: false` no longer holds it back.
    commanded: bool,
    /// `--resume`: it succeeded with the same settings before; its first scheduling
    /// does not run it.
    resumed: bool,
    /// [`control::settings_hash`] of `spec`, computed once per settings (the state file
    /// asks for it at every write).
    hash_memo: std::cell::RefCell<Option<(Arc<TaskSpec>, String)>>,
    /// Why its first waiting run waits, in `status` words (issue 17).
    waiting_for: Option<String>,
    /// A due run of it was held back: it would have ended after the job's time limit.
    late: bool,
}

impl Task {
    fn new(spec: Arc<TaskSpec>) -> Task {
        Task {
            spec,
            sched: Sched::Off,
            runs: Vec::new(),
            life: Lifecycle::Idle,
            queued: false,
            consecutive_failures: 0,
            stats: TaskStats::default(),
            last_start: None,
            config: InConfig::Current,
            failed_starts: 0,
            failing: false,
            commanded: false,
            resumed: false,
            hash_memo: std::cell::RefCell::new(None),
            waiting_for: None,
            late: false,
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
        !self.runs.is_empty() || self.busy_between_runs()
    }

    /// Gone from the config: forgotten once its runs have ended.
    fn removed(&self) -> bool {
        self.config == InConfig::Removed
    }

    /// Settings to switch to once the runs being stopped for a reload have ended.
    fn pending(&self) -> Option<&Arc<TaskSpec>> {
        match &self.config {
            InConfig::Changing(spec) => Some(spec),
            _ => None,
        }
    }

    /// The pending settings, now taken (the task is current again).
    fn take_pending(&mut self) -> Option<Arc<TaskSpec>> {
        match std::mem::replace(&mut self.config, InConfig::Current) {
            InConfig::Changing(spec) => Some(spec),
            other => {
                self.config = other;
                None
            }
        }
    }

    /// Its retry, when a failed attempt is to be retried.
    fn retry(&self) -> Option<Retry> {
        match self.life {
            Lifecycle::Retrying(r) => Some(r),
            _ => None,
        }
    }

    /// Held by a `stop` command.
    fn held(&self) -> bool {
        self.life == Lifecycle::Held
    }

    /// A due run waits for its dependencies.
    fn dep_wait(&self) -> bool {
        self.life == Lifecycle::WaitingForDeps
    }

    /// Drop a pending retry or a run waiting for its dependencies (the task is stopped,
    /// replaced, shut down).
    fn drop_next_run(&mut self) {
        if self.busy_between_runs() {
            self.life = Lifecycle::Idle;
        }
    }

    /// Drop a pending retry (replaced, shut down).
    fn drop_retry(&mut self) {
        if self.retry().is_some() {
            self.life = Lifecycle::Idle;
        }
    }

    /// A retry or a run waiting for its dependencies is pending.
    fn busy_between_runs(&self) -> bool {
        matches!(
            self.life,
            Lifecycle::Retrying(_) | Lifecycle::WaitingForDeps
        )
    }

    /// Why it is FATAL or SKIPPED, while it is.
    fn reason(&self) -> Option<Reason> {
        match &self.life {
            Lifecycle::Fatal(why) => Some(Reason::Fatal(why.clone())),
            Lifecycle::Skipped(why) => Some(Reason::Skipped(why.clone())),
            _ => None,
        }
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
        match self.life {
            Lifecycle::Retrying(_) => return TaskState::Restarting,
            Lifecycle::Held => return TaskState::Stopped,
            _ if !self.spec.enabled => return TaskState::Stopped,
            Lifecycle::WaitingForDeps => return TaskState::Waiting,
            Lifecycle::Fatal(_) => return TaskState::Fatal,
            Lifecycle::Skipped(_) if matches!(self.sched, Sched::Once { .. } | Sched::Off) => {
                return TaskState::Skipped
            }
            _ => {}
        }
        // Free: its schedule and its last run say.
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
    pub reason: Option<Reason>,
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
    /// Runs in progress of each array with a `parallel` cap (issue 19), by array name.
    array_active: HashMap<String, u32>,
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
    /// Packing, the job's end, learned runtimes, the requeue (issue 17).
    alloc: alloc::Alloc,
    /// The array tasks, each making its elements into tasks as room frees up (issue 19).
    feeds: Vec<feed::Feed>,
}

#[derive(Debug, Clone, Copy)]
struct ShutdownState {
    forced: bool,
}

impl Core {
    /// A core for `spec`, not started yet (feed it [`Input::Start`]).
    pub fn new(spec: &Spec, mode: Mode) -> Core {
        let (tasks, feeds) = Core::split_feeds(spec, &mode);
        Core {
            globals: spec.globals.clone(),
            mode,
            tasks,
            slot_queue: VecDeque::new(),
            active: 0,
            array_active: HashMap::new(),
            next_id: 1,
            started: false,
            shutdown: None,
            exited: false,
            out: Vec::new(),
            kill_by: None,
            planned: None,
            deadline_memo: std::cell::Cell::new(None),
            alloc: alloc::Alloc::default(),
            feeds,
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
        self.retire();
        match input {
            Input::Start => self.start(now),
            Input::Tick => self.tick(now),
            Input::Spawned { run, pid } => self.spawned(run, pid, now),
            Input::SpawnFailed { run, reason } => {
                self.process_ended(run, None, ProcessEnd::SpawnFailed(reason), None, now)
            }
            Input::LeaderExited { run, status } => self.leader_exited(run, status, now),
            Input::Exited { run, status, usage } => self.exited(run, status, usage, now),
            Input::Shutdown { cause } => self.shutdown(cause, now),
            Input::Reload { spec } => self.reload(&spec, now),
            Input::Resources { inventory } => self.resources_input(&inventory),
            Input::Agents { nodes } => self.agents_input(nodes),
            Input::NodeReady { node, inventory } => self.node_ready(&node, &inventory),
            Input::NodeLost { node, reason } => self.node_lost(&node, reason, now),
            Input::JobEnd { end } => self.job_end_input(end),
            Input::MemExceeded { run, rss } => self.mem_exceeded(run, rss, now),
            Input::ClockChanged => self.clock_changed(now),
            Input::StartTask { task } => {
                self.control_each(&task, now, Command::Start, Core::control_start)
            }
            Input::StopTask { task } => {
                self.control_each(&task, now, Command::Stop, Core::control_stop)
            }
            Input::RestartTask { task } => {
                self.control_each(&task, now, Command::Restart, Core::control_restart)
            }
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
        for (i, task) in self.tasks.iter().enumerate() {
            if let Some(c) = self.checkpoint_deadline(i) {
                consider(c);
            }
            match task.sched {
                Sched::Timer { next, .. } => consider(next),
                Sched::Cron {
                    next_mono: Some(m), ..
                } => consider(m),
                _ => {}
            }
            if let Some(r) = task.retry() {
                consider(r.at);
            }
            for run in &task.runs {
                if let Phase::Running {
                    proc:
                        Proc {
                            started, up: false, ..
                        },
                    ..
                } = &run.phase
                {
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
                    Phase::Running { proc, .. } | Phase::Stopping { proc, .. } => Some(proc.pid),
                    _ => None,
                }),
                stats: t.stats.clone(),
                reason: t
                    .reason()
                    .filter(|_| matches!(t.state(), TaskState::Fatal | TaskState::Skipped)),
            })
            .collect()
    }

    /// The task each live run belongs to, by its current name (a reload that changes
    /// `numprocs` renames a task whose process runs on).
    pub fn run_tasks(&self) -> impl Iterator<Item = (RunId, &str)> {
        self.tasks
            .iter()
            .filter(|t| !t.removed())
            .flat_map(|t| t.runs.iter().map(move |r| (r.id, t.spec.name.as_str())))
    }

    /// True once an [`Action::Exit`] has been emitted.
    pub fn has_exited(&self) -> bool {
        self.exited
    }

    // ----- logging helpers -------------------------------------------------------------

    /// Tell what happened to task `i`.
    fn event(&mut self, i: usize, what: TaskEvent) {
        let task = self.tasks[i].spec.name.clone();
        self.out.push(Action::Event(Event::Task { task, what }));
    }

    /// Tell what happened to bansuri as a whole.
    fn master(&mut self, e: MasterEvent) {
        self.out.push(Action::Event(Event::Master(e)));
    }

    // ----- start-up and schedules ------------------------------------------------------

    fn start(&mut self, now: Now) {
        if self.started {
            return;
        }
        self.started = true;
        let n = self.tasks.len() + self.feeds.len();
        self.master(MasterEvent::Configured {
            tasks: n,
            max_parallel: self.globals.max_parallel,
        });
        for i in 0..self.tasks.len() {
            self.schedule_task(i, now, None);
        }
    }

    /// Set task `i`'s schedule from its spec, as at start-up. `last_start`: when a task
    /// that already ran is rescheduled (reload), a timer keeps its rhythm from its last
    /// start instead of firing at once, and a one-shot that ran does not run again.
    fn schedule_task(&mut self, i: usize, now: Now, last_start: Option<Mono>) {
        if self.tasks[i].held() {
            // Stopped by a `stop` command: nothing runs it (reload, new settings) until
            // a `start`.
            self.tasks[i].sched = Sched::Off;
            return;
        }
        if !self.tasks[i].spec.enabled {
            self.tasks[i].sched = Sched::Off;
            self.event(i, TaskEvent::Disabled);
            return;
        }
        if !self.tasks[i].spec.autostart
            && !self.tasks[i].commanded
            && last_start.is_none()
            && !self.mode.once
        {
            self.tasks[i].sched = Sched::Off;
            self.event(i, TaskEvent::AutostartOff);
            return;
        }
        let schedule = if self.mode.once {
            Schedule::Once
        } else {
            self.tasks[i].spec.schedule.clone()
        };
        match schedule {
            Schedule::Once => {
                let resumed = std::mem::take(&mut self.tasks[i].resumed);
                if resumed {
                    self.event(i, TaskEvent::Resumed);
                }
                self.tasks[i].sched = Sched::Once {
                    fired: last_start.is_some() || resumed,
                };
                // An array element is made when it is about to run: no line of its own.
                if self.tasks[i].spec.element.is_none() {
                    self.event(i, TaskEvent::OnceScheduled);
                }
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
                let next = (next != now.mono).then(|| now.wall_at(next));
                self.event(
                    i,
                    TaskEvent::TimerSet {
                        schedule: Schedule::Timer(period),
                        next,
                    },
                );
                if self.mode.exit_when_done {
                    self.event(i, TaskEvent::PeriodicNeverDone);
                }
            }
            Schedule::Cron(cron) => {
                let next_wall = cron.next_after(now.wall);
                let next_mono = next_wall.map(|w| mono_for(now, w));
                self.tasks[i].sched = Sched::Cron {
                    next_wall,
                    next_mono,
                };
                self.event(
                    i,
                    TaskEvent::CronSet {
                        schedule: Schedule::Cron(cron),
                        next: next_wall,
                    },
                );
                if self.mode.exit_when_done {
                    self.event(i, TaskEvent::PeriodicNeverDone);
                }
            }
        }
    }

    /// Everything that is due at `now`, then dispatch and the done check.
    fn tick(&mut self, now: Now) {
        if self.exited {
            return;
        }
        self.restarts_due(now);
        self.planned_due(now);
        self.materialize(now);
        for i in 0..self.tasks.len() {
            self.tick_task(i, now);
        }
        self.recheck_dependencies(now);
        self.tasks.retain(|t| !(t.removed() && t.runs.is_empty()));
        self.dispatch(now);
        self.checkpoints_due(now);
        self.check_done();
    }

    fn tick_task(&mut self, i: usize, now: Now) {
        // Most tasks have nothing to do at a given tick (a thousand one-shots that ran or
        // wait for a slot): skip them cheaply. Mirrors the conditions below: a schedule
        // that is due, a retry, a process running or being stopped.
        let t = &self.tasks[i];
        if t.retry().is_none()
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
        if let Some(r) = self.tasks[i].retry() {
            if now.mono >= r.at {
                self.tasks[i].life = Lifecycle::Idle;
                self.new_run(i, r.attempt, now);
            }
        }

        // Processes that have now stayed up `starttime` count as started.
        let start_time = self.tasks[i].spec.start_time;
        for run in &mut self.tasks[i].runs {
            if let Phase::Running { proc, .. } = &mut run.phase {
                if !proc.up && now.mono >= proc.started + start_time {
                    proc.up = true;
                }
            }
        }

        // Timeouts and the watchdog.
        let grace = self.grace_for(i, now);
        let task = &mut self.tasks[i];
        let stop = task.spec.stop_signal;
        let limit = task.spec.timeout.unwrap_or_default();
        let inproc = task.spec.no_interface;
        let how = |pid: u32| {
            if inproc {
                StopHow::InProcess
            } else {
                StopHow::Group { signal: stop, pid }
            }
        };
        let mut lines = Vec::new();
        for run in &mut task.runs {
            match &mut run.phase {
                Phase::Running {
                    proc,
                    timeout_at: Some(t),
                } if now.mono >= *t => {
                    let proc = *proc;
                    lines.push(TaskEvent::TimedOut {
                        limit,
                        grace,
                        how: how(proc.pid),
                    });
                    run.phase = stopping(proc, StopReason::Timeout, stop, now, grace);
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: stop.number(),
                    });
                }
                Phase::Stopping {
                    proc: Proc { pid, .. },
                    signalled,
                    kill_at,
                    killed,
                    ..
                } if !*killed && now.mono >= *kill_at => {
                    *killed = true;
                    // The grace this run was given, which a KillWait bound may
                    // have shortened after the stop signal went.
                    lines.push(TaskEvent::GraceOver {
                        grace: kill_at.since(*signalled),
                        how: how(*pid),
                    });
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: libc::SIGKILL,
                    });
                }
                _ => {}
            }
        }
        for line in lines {
            self.event(i, line);
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
        if t.runs.is_empty() && t.retry().is_none() {
            // Only a run waiting for its dependencies: that is the run due now. No
            // overlap rule applies (nothing is running), and none may bypass the wait.
            return;
        }
        match self.tasks[i].spec.overlap {
            Overlap::Skip => self.event(i, TaskEvent::OverlapSkipped),
            Overlap::Queue => {
                if !self.tasks[i].queued {
                    self.tasks[i].queued = true;
                    self.event(i, TaskEvent::OverlapQueued);
                }
            }
            Overlap::Replace => {
                self.tasks[i].queued = true;
                self.tasks[i].drop_retry();
                self.event(i, TaskEvent::OverlapReplaced);
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
        // It runs again: no longer FATAL or SKIPPED.
        if matches!(
            self.tasks[i].life,
            Lifecycle::Fatal(_) | Lifecycle::Skipped(_)
        ) {
            self.tasks[i].life = Lifecycle::Idle;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.tasks[i].runs.push(Run {
            id,
            attempt,
            phase: Phase::Waiting,
            grant: None,
            node: 0,
            checkpointed: false,
            mem_warned: false,
        });
        self.slot_queue.push_back(id);
    }

    /// Start waiting runs while slots are free, in order (no inventory, no job end). A run
    /// of an array at its `parallel` cap keeps its place while later ones may start.
    fn dispatch_fifo(&mut self) {
        let mut held_back = Vec::new();
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
            if self.array_full(i) {
                held_back.push(id);
                continue;
            }
            self.start_run(i, r, None, 0);
        }
        for id in held_back.into_iter().rev() {
            self.slot_queue.push_front(id);
        }
    }

    /// Task `i` is an element of an array whose `parallel` cap is reached (issue 19).
    fn array_full(&self, i: usize) -> bool {
        match &self.tasks[i].spec.element {
            Some(ArrayElement {
                array,
                parallel: Some(cap),
                ..
            }) => self.array_active.get(array).is_some_and(|n| n >= cap),
            _ => false,
        }
    }

    /// A run of task `i` starts (`+1`) or ends (`-1`): its array's count.
    fn count_array(&mut self, i: usize, starts: bool) {
        if let Some(ArrayElement {
            array,
            parallel: Some(_),
            ..
        }) = &self.tasks[i].spec.element
        {
            let n = self.array_active.entry(array.clone()).or_default();
            *n = if starts { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// Spawn waiting run `r` of task `i`, holding `grant`.
    fn start_run(
        &mut self,
        i: usize,
        r: usize,
        grant: Option<crate::resources::Grant>,
        node: usize,
    ) {
        let on = self.node_name(node);
        let run = &mut self.tasks[i].runs[r];
        run.phase = Phase::Starting;
        run.grant.clone_from(&grant);
        run.node = node;
        let (id, attempt) = (run.id, run.attempt);
        self.active += 1;
        self.count_array(i, true);
        self.tasks[i].late = false;
        self.tasks[i].stats.runs += 1;
        if attempt > 1 {
            self.tasks[i].stats.restarts += 1;
        }
        self.out.push(Action::Spawn {
            run: id,
            task: Arc::clone(&self.tasks[i].spec),
            attempt,
            grant,
            node: on,
        });
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
        let command = self.tasks[i].spec.command.display();
        let launch = match self.tasks[i].spec.command {
            // In-process (library API): a thread of bansuri, no pid of its own.
            _ if self.tasks[i].spec.no_interface => Launch::InProcess,
            crate::spec::CommandSpec::Shell(_) => Launch::Shell,
            crate::spec::CommandSpec::Python(_) => Launch::Python,
            crate::spec::CommandSpec::Argv(_) => Launch::Argv,
        };
        let node = self
            .node_name(self.tasks[i].runs[r].node)
            .map(|n| n.to_string());
        let run = &mut self.tasks[i].runs[r];
        run.phase = Phase::Running {
            proc: Proc {
                pid,
                started: now.mono,
                wall: now.wall,
                up: false,
            },
            timeout_at: timeout.map(|t| now.mono + t),
        };
        let attempt = run.attempt;
        self.tasks[i].last_start = Some(now.mono);
        self.event(
            i,
            TaskEvent::Started {
                command,
                launch,
                pid,
                node,
                attempt,
                times,
            },
        );
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
        } else if self.tasks[i].held() {
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
        let proc = match &mut run.phase {
            Phase::Running { proc, .. } => *proc,
            Phase::Stopping { leader_exit, .. } => {
                *leader_exit = Some(status);
                return;
            }
            Phase::Waiting | Phase::Starting => return,
        };
        let pid = proc.pid;
        run.phase = stopping(proc, StopReason::Leftovers, stop, now, grace);
        if let Phase::Stopping { leader_exit, .. } = &mut run.phase {
            *leader_exit = Some(status);
        }
        self.out.push(Action::Signal {
            run: id,
            signal: stop.number(),
        });
        self.event(
            i,
            TaskEvent::LeaderExited {
                pid,
                status,
                signal: stop,
                grace,
            },
        );
    }

    fn exited(&mut self, id: RunId, status: ExitStatus, usage: Option<Usage>, now: Now) {
        let Some((i, r)) = self.find_run(id) else {
            return;
        };
        let run = &self.tasks[i].runs[r];
        // When the group outlived the main process, the run's result is the main process's.
        let status = match run.phase {
            Phase::Stopping {
                leader_exit: Some(s),
                ..
            } => s,
            _ => status,
        };
        let (started, end) = match (&run.phase, status) {
            (
                Phase::Stopping {
                    proc: Proc { started, .. },
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
                    proc: Proc { started, .. },
                    reason: StopReason::Leftovers,
                    ..
                },
                ExitStatus::Code(c),
            ) => (Some(*started), ProcessEnd::Exited(c)),
            (
                Phase::Stopping {
                    proc: Proc { started, .. },
                    reason: StopReason::Leftovers,
                    ..
                },
                ExitStatus::Signal(sig),
            ) => (Some(*started), ProcessEnd::Signaled(sig)),
            (
                Phase::Stopping {
                    proc: Proc { started, .. },
                    reason,
                    ..
                },
                _,
            ) => (Some(*started), ProcessEnd::Stopped(*reason)),
            (
                Phase::Running {
                    proc: Proc { started, .. },
                    ..
                },
                ExitStatus::Code(c),
            ) => (Some(*started), ProcessEnd::Exited(c)),
            (
                Phase::Running {
                    proc: Proc { started, .. },
                    ..
                },
                ExitStatus::Signal(s),
            ) => (Some(*started), ProcessEnd::Signaled(s)),
            (_, ExitStatus::Code(c)) => (None, ProcessEnd::Exited(c)),
            (_, ExitStatus::Signal(s)) => (None, ProcessEnd::Signaled(s)),
        };
        self.process_ended(id, started, end, usage, now);
    }

    /// A run's process is over (or never started): decide what its end means, record it
    /// (once, in [`Core::count_end`]), then retry, queue, start over or finish.
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
            self.count_array(i, false);
        }
        self.release(run.grant.as_ref(), run.node);
        let uptime = started.map(|s| now.mono.since(s));
        let spec = Arc::clone(&self.tasks[i].spec);
        let success = end.is_success(&spec.success_codes);
        self.tasks[i].stats.last_end = Some(end.clone());
        self.record_usage(i, usage, now);
        self.event(
            i,
            TaskEvent::Ended {
                end: end.clone(),
                success,
                success_codes: spec.success_codes.clone(),
                uptime,
                usage,
            },
        );
        let ended = self.verdict(i, run.attempt, &end, success, uptime);
        self.count_end(i, &ended, &end, uptime);
        match ended.verdict {
            Verdict::Stopped(reason) => {
                if !self.take_pending(i, now)
                    && reason == StopReason::Replaced
                    && self.tasks[i].queued
                    && self.shutdown.is_none()
                    && self.tasks[i].runs.is_empty()
                {
                    self.tasks[i].queued = false;
                    self.new_run(i, 1, now);
                }
            }
            Verdict::Superseded => {
                // A reload changed the task while this run was ending on its own terms (a
                // timeout's stop was already under way): the end is counted, and the task
                // starts over with the new settings; no retry of the old ones.
                self.take_pending(i, now);
            }
            // FATAL: the task's final failure.
            Verdict::Fatal => self.notify_end(i, id, run.attempt, &end, false, now),
            Verdict::Success => {
                self.learn(i, uptime);
                self.notify_end(i, id, run.attempt, &end, true, now);
                if spec.restart_on_success && self.shutdown.is_none() && !self.tasks[i].held() {
                    self.restart_service(i, now);
                } else {
                    self.after_run(i, now);
                }
            }
            Verdict::Retry(why) => {
                let task = &mut self.tasks[i];
                let delay = backoff(
                    spec.restart_delay,
                    spec.max_restart_delay,
                    task.consecutive_failures,
                );
                task.life = Lifecycle::Retrying(Retry {
                    at: now.mono + delay,
                    attempt: run.attempt + 1,
                });
                self.event(i, TaskEvent::Retrying { delay, why });
                self.notify_attempt(i, id, run.attempt, &end, now);
            }
            Verdict::Failed => {
                if spec.on_fail == OnFail::Restart
                    && spec.times > 1
                    && spec.times != UNLIMITED_ATTEMPTS
                {
                    self.event(
                        i,
                        TaskEvent::GaveUp {
                            attempts: run.attempt,
                        },
                    );
                }
                self.notify_end(i, id, run.attempt, &end, false, now);
                self.after_run(i, now);
            }
        }
    }

    /// What the end of attempt `attempt` of task `i` leads to. Deciding a failed start
    /// ([`Core::failed_start`]) may make the task FATAL.
    fn verdict(
        &mut self,
        i: usize,
        attempt: u32,
        end: &ProcessEnd,
        success: bool,
        uptime: Option<Duration>,
    ) -> Ended {
        // A run stopped for its memory (`mem-exceeded: stop`) ends as a failure.
        match end {
            ProcessEnd::Stopped(StopReason::MemExceeded) => {}
            ProcessEnd::Stopped(reason) => {
                return Ended {
                    verdict: Verdict::Stopped(*reason),
                    failure: false,
                };
            }
            _ => {}
        }
        let task = &self.tasks[i];
        if task.runs.is_empty() && self.shutdown.is_none() && task.pending().is_some() {
            return Ended {
                verdict: Verdict::Superseded,
                failure: !success,
            };
        }
        let start = self.failed_start(i, uptime, success, end);
        // A failed attempt; a service's exit before `starttime` too, even with a success
        // code (it is a failed start, and counts towards FATAL).
        let failure = !success || start != FailedStart::No;
        let spec = &self.tasks[i].spec;
        let by_policy = spec.on_fail == OnFail::Restart && attempt < spec.times;
        let verdict = if start == FailedStart::Fatal {
            Verdict::Fatal
        } else if success {
            Verdict::Success
        } else if (by_policy || matches!(start, FailedStart::Retry(_)))
            && self.shutdown.is_none()
            && !self.tasks[i].queued_replace()
            // Stopped by a `stop` command: nothing starts it again, a retry neither (a run
            // that was already timing out when the command came ends as a failure).
            && !self.tasks[i].held()
        {
            Verdict::Retry(match start {
                FailedStart::Retry(n) if !by_policy => RetryWhy::FailedStart {
                    n,
                    start_time: spec.start_time,
                    start_retries: spec.start_retries,
                },
                _ => RetryWhy::Policy {
                    attempt: attempt + 1,
                    times: spec.times,
                    autorestart: spec.restart_on_success,
                },
            })
        } else {
            Verdict::Failed
        };
        Ended { verdict, failure }
    }

    /// The one place where an attempt's end is counted: failures, the last outcome, the
    /// failures in a row that the backoff grows with.
    fn count_end(&mut self, i: usize, ended: &Ended, end: &ProcessEnd, uptime: Option<Duration>) {
        let task = &mut self.tasks[i];
        if ended.failure {
            task.stats.failures += 1;
        }
        task.stats.last_uptime = uptime;
        let success = !ended.failure || matches!(ended.verdict, Verdict::Success);
        if !matches!(ended.verdict, Verdict::Retry(_) | Verdict::Fatal)
            && matches!(task.life, Lifecycle::Fatal(_) | Lifecycle::Skipped(_))
        {
            // A run that was going when it went FATAL or SKIPPED: its end is the news now.
            task.life = Lifecycle::Idle;
        }
        task.stats.last_outcome = match ended.verdict {
            Verdict::Stopped(_) => Some(Outcome::Stopped),
            Verdict::Superseded if success => Some(Outcome::Success),
            Verdict::Superseded | Verdict::Failed => Some(Outcome::of_failure(end)),
            Verdict::Fatal => Some(Outcome::Fatal),
            Verdict::Success => Some(Outcome::Success),
            // Told when the run is over, after its last attempt.
            Verdict::Retry(_) => task.stats.last_outcome,
        };
        match ended.verdict {
            Verdict::Stopped(_) | Verdict::Fatal => {}
            Verdict::Retry(_) => {
                if uptime.is_some_and(|u| u >= BACKOFF_RESET_AFTER) {
                    task.consecutive_failures = 0;
                }
                task.consecutive_failures = task.consecutive_failures.saturating_add(1);
            }
            // The backoff belongs to one run: the next scheduled run starts from
            // restart-delay.
            Verdict::Success | Verdict::Failed => task.consecutive_failures = 0,
            Verdict::Superseded => {
                task.consecutive_failures = 0;
                task.failed_starts = 0;
            }
        }
    }

    /// New settings waiting for the runs of task `i` to end: once none is left (and no
    /// shutdown is under way), switch to them and schedule the task afresh.
    fn take_pending(&mut self, i: usize, now: Now) -> bool {
        if !self.tasks[i].runs.is_empty() || self.shutdown.is_some() {
            return false;
        }
        let Some(spec) = self.tasks[i].take_pending() else {
            return false;
        };
        self.tasks[i].spec = spec;
        self.schedule_task(i, now, None);
        true
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
        let inproc = self.tasks[i].spec.no_interface;
        let mut dropped = Vec::new();
        let mut lines = Vec::new();
        for run in &mut self.tasks[i].runs {
            match run.phase {
                Phase::Waiting => dropped.push(run.id),
                Phase::Running { proc, .. } => {
                    let pid = proc.pid;
                    run.phase = stopping(proc, reason, stop, now, grace);
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: stop.number(),
                    });
                    let how = if inproc {
                        StopHow::InProcess
                    } else {
                        StopHow::Group { signal: stop, pid }
                    };
                    lines.push(TaskEvent::Stopping { reason, grace, how });
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
            self.event(i, line);
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
        self.master(MasterEvent::ClockChanged { wall: now.wall });
    }

    /// Stop task `i` for good (until a reload says otherwise): no schedule, no retry, no
    /// queued run; its runs get the stop signal.
    fn halt(&mut self, i: usize, reason: StopReason, now: Now) {
        let task = &mut self.tasks[i];
        task.sched = Sched::Off;
        task.queued = false;
        // No retry, nor a run waiting for its dependencies (a disabled task must not
        // start when they are met; a changed one waits again under its new settings).
        task.drop_next_run();
        self.stop_runs(i, reason, now);
        // A changed task with nothing left to stop switches to its new settings at once.
        if self.tasks[i].runs.is_empty() {
            if let Some(spec) = self.tasks[i].take_pending() {
                self.tasks[i].spec = spec;
                self.schedule_task(i, now, None);
            }
        }
    }

    // ----- shutdown and done -----------------------------------------------------------

    fn shutdown(&mut self, cause: ShutdownCause, now: Now) {
        if let Some(s) = &mut self.shutdown {
            if s.forced {
                return;
            }
            s.forced = true;
            self.master(MasterEvent::ForcedKill { cause });
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
        self.begin_shutdown(cause, now);
    }

    /// Stop every task now (stop signal to every run, SIGKILL after its grace).
    fn begin_shutdown(&mut self, cause: ShutdownCause, now: Now) {
        // The same signal or request again kills at once, unless Slurm's KillWait decides.
        let hint = self.kill_by.is_none() && !matches!(cause, ShutdownCause::Planned(_));
        self.note_time_limit(&cause, now);
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
        let sooner = match self.kill_by {
            Some(k) if now.mono + grace > k => Some(k.since(now.mono)),
            _ => None,
        };
        self.master(MasterEvent::ShutdownBegun {
            cause,
            running,
            grace,
            sooner,
            hint,
        });
        for i in 0..self.tasks.len() {
            let task = &mut self.tasks[i];
            task.sched = Sched::Off;
            task.drop_retry();
            task.queued = false;
            self.stop_runs(i, StopReason::Shutdown, now);
        }
        self.slot_queue.clear();
    }

    fn check_done(&mut self) {
        if self.exited || !self.started {
            return;
        }
        let all_finished = self.tasks.iter().all(Task::finished)
            && (self.shutdown.is_some() || self.feeds_exhausted());
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
            .count()
            + self
                .feeds
                .iter()
                .map(feed::Feed::failed_count)
                .sum::<usize>();
        let ending = if self.shutdown.is_some() {
            crate::model::Ending::ShutDown
        } else if failed > 0 {
            crate::model::Ending::TasksFailed { failed }
        } else {
            crate::model::Ending::AllSucceeded
        };
        let code = crate::model::Exit::Run(ending).code();
        self.summary();
        self.time_limit_at_exit();
        self.master(MasterEvent::Done {
            shutdown: self.shutdown.is_some(),
            failed,
            code,
        });
        self.exited = true;
        self.out.push(Action::Exit { ending });
    }

    /// One aligned line per task: state, runs, failures, CPU time and peak RSS of its
    /// processes (wait4 rusage), last end.
    fn summary(&mut self) {
        // An array is one row (its elements' counters added up), then the elements that
        // did not succeed.
        let arrays = self.array_rows();
        let views: Vec<TaskView> = self
            .views()
            .into_iter()
            .zip(&self.tasks)
            .filter(|(v, t)| t.spec.element.is_none() || v.state != TaskState::Success)
            .map(|(v, _)| v)
            .collect();
        let width = views
            .iter()
            .map(|v| v.name.len())
            .chain(arrays.iter().map(|(r, _)| r.name.len()))
            .max()
            .unwrap_or(4)
            .max(4);
        self.master(MasterEvent::SummaryHeader { width });
        let mut counts = Vec::new();
        for (mut row, count) in arrays {
            row.width = width;
            self.master(MasterEvent::SummaryRow(row));
            counts.push(count);
        }
        for v in views {
            self.master(MasterEvent::SummaryRow(SummaryRow {
                width,
                name: v.name,
                state: v.state,
                runs: v.stats.runs,
                failures: v.stats.failures,
                cpu: v.stats.cpu_time,
                peak_rss: v.stats.peak_rss,
                last: v.stats.last_end,
            }));
        }
        for c in counts {
            self.master(c);
        }
    }
}

/// What the end of an attempt leads to (see [`Core::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Stopped by bansuri: neither a success nor a failure.
    Stopped(StopReason),
    /// The task's settings changed while it ended on its own: counted, then the task
    /// starts over with the new ones.
    Superseded,
    /// Failed to start too often: FATAL.
    Fatal,
    /// Succeeded (a service is started again).
    Success,
    /// Failed; retried after the backoff.
    Retry(RetryWhy),
    /// Failed finally.
    Failed,
}

/// A [`Verdict`], and whether the attempt counts as a failure (a failed start with a
/// success code does).
#[derive(Debug, Clone, Copy)]
struct Ended {
    verdict: Verdict,
    failure: bool,
}

fn stopping(proc: Proc, reason: StopReason, stop: StopSignal, now: Now, grace: Duration) -> Phase {
    Phase::Stopping {
        proc,
        reason,
        leader_exit: None,
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
