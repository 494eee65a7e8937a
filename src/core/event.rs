//! What the core tells: every lifecycle line of the job log as a typed [`Event`], and every
//! answer to a control command as a typed [`Reply`].
//!
//! Owns the data of each kind of event (task, pid, attempt, exit status, reasons...) and
//! its severity. Must not hold words: `crate::words` renders an event as the job log's
//! line and a reply as the text sent back to the client, so the runtime never decides
//! anything by reading English.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::level::Level;
use crate::model::{ExitStatus, ProcessEnd, StopReason, TaskState, Usage};
use crate::schedule::Schedule;
use crate::spec::StopSignal;

/// One lifecycle line of the job log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// About one task (`[name]` in the job log).
    Task {
        /// The task's name.
        task: String,
        /// What happened to it.
        what: TaskEvent,
    },
    /// About bansuri itself (`[MASTER]` in the job log).
    Master(MasterEvent),
}

impl Event {
    /// The task the line is about; `None` for bansuri itself.
    pub fn task(&self) -> Option<&str> {
        match self {
            Event::Task { task, .. } => Some(task),
            Event::Master(_) => None,
        }
    }

    /// The severity of the line.
    pub fn level(&self) -> Level {
        match self {
            Event::Task { what, .. } => what.level(),
            Event::Master(m) => m.level(),
        }
    }
}

/// How a run is stopped: a signal to its process group, or a request to an in-process task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// The stop signal to the process group of `pid`.
    Group {
        /// The task's stop signal.
        signal: StopSignal,
        /// The group's leader (and group id).
        pid: u32,
    },
    /// An in-process task (library API): asked to stop, its thread abandoned after the grace.
    InProcess,
}

/// How the process of a run was launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// A shell command.
    Shell,
    /// A Python custom task (`module:Class`).
    Python,
    /// An argv list.
    Argv,
    /// A registered in-process task (library API): no pid of its own.
    InProcess,
}

/// Why a failed attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryWhy {
    /// It ended before `starttime`: the `n`-th failed start in a row.
    FailedStart {
        /// Failed starts in a row.
        n: u32,
        /// The task's `starttime`.
        start_time: Duration,
        /// The task's `startretries`.
        start_retries: u32,
    },
    /// The task's restart policy (`on-fail: restart`, or `autorestart`).
    Policy {
        /// The attempt about to start.
        attempt: u32,
        /// Attempts allowed (`times`).
        times: u32,
        /// The policy is `autorestart` (else `on-fail: restart`).
        autorestart: bool,
    },
}

/// Why a run waits for its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepWait {
    /// A service dependency has not stayed up its `starttime` yet.
    NotUp {
        /// The dependency.
        dep: String,
        /// Its `starttime`.
        start_time: Duration,
    },
    /// A one-shot dependency has not succeeded yet.
    NotSucceeded {
        /// The dependency.
        dep: String,
    },
}

/// Why a task is not run: a dependency cannot be met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepFailure {
    /// No task or program of that name.
    NotInConfig(String),
    /// Disabled in the config.
    Disabled(String),
    /// FATAL.
    Fatal(String),
    /// Skipped itself.
    Skipped(String),
    /// Its last run failed (`last`: how, when told).
    Failed {
        /// The dependency.
        dep: String,
        /// How its last process ended.
        last: Option<ProcessEnd>,
    },
}

/// Why a task went FATAL: it failed to start too many times in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatalWhy {
    /// Failed starts in a row.
    pub failed_starts: u32,
    /// The task's `starttime`.
    pub start_time: Duration,
    /// The task's `startretries`.
    pub start_retries: u32,
    /// How the last one ended.
    pub last: ProcessEnd,
}

/// Why a task is FATAL or SKIPPED (shown by `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// SKIPPED: a dependency cannot be met.
    Skipped(DepFailure),
    /// FATAL: too many failed starts.
    Fatal(FatalWhy),
}

/// Something that happened to one task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    /// `enabled: false`: not started.
    Disabled,
    /// `autostart: false`: not started until a `start` command.
    AutostartOff,
    /// `--resume`: it succeeded before with the same settings.
    Resumed,
    /// A one-shot's schedule (DEBUG).
    OnceScheduled,
    /// A timer's schedule; `next`: its first run when not now.
    TimerSet {
        /// The schedule.
        schedule: Schedule,
        /// The next run, `None` for now.
        next: Option<DateTime<Utc>>,
    },
    /// A cron schedule; `next`: its next match (`None`: it never matches).
    CronSet {
        /// The schedule.
        schedule: Schedule,
        /// The next match.
        next: Option<DateTime<Utc>>,
    },
    /// A periodic task under `--exit-when-done` (WARNING).
    PeriodicNeverDone,
    /// The run passed its `timeout` and is being stopped.
    TimedOut {
        /// The `timeout`.
        limit: Duration,
        /// The grace before SIGKILL.
        grace: Duration,
        /// How it is stopped.
        how: StopHow,
    },
    /// The stop grace is over: SIGKILL (or the thread is abandoned).
    GraceOver {
        /// The grace it was given.
        grace: Duration,
        /// How it was stopped.
        how: StopHow,
    },
    /// `overlap: skip` dropped a due run.
    OverlapSkipped,
    /// `overlap: queue` queued a due run.
    OverlapQueued,
    /// `overlap: replace`: the previous run is being stopped.
    OverlapReplaced,
    /// A process (or in-process run) started.
    Started {
        /// The command as written.
        command: String,
        /// How it was launched.
        launch: Launch,
        /// Its pid (0 in-process), on its node.
        pid: u32,
        /// The node it runs on, when not bansuri's own (issue 18).
        node: Option<String>,
        /// 1-based attempt.
        attempt: u32,
        /// Attempts allowed (`times`).
        times: u32,
    },
    /// The main process exited, leaving processes in its group.
    LeaderExited {
        /// The main process.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// The stop signal sent to the group.
        signal: StopSignal,
        /// The grace before SIGKILL.
        grace: Duration,
    },
    /// An attempt ended.
    Ended {
        /// How.
        end: ProcessEnd,
        /// It counts as a success.
        success: bool,
        /// The task's `success-codes`.
        success_codes: Vec<i32>,
        /// How long it ran, when it started.
        uptime: Option<Duration>,
        /// Kernel accounting.
        usage: Option<Usage>,
    },
    /// A failed attempt is retried after `delay`.
    Retrying {
        /// The backoff.
        delay: Duration,
        /// Why.
        why: RetryWhy,
    },
    /// Every attempt of the run failed (ERROR).
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
    /// The run is being stopped.
    Stopping {
        /// Why.
        reason: StopReason,
        /// The grace before SIGKILL.
        grace: Duration,
        /// How.
        how: StopHow,
    },
    /// `numprocs` changed: this task is `was` under a new name.
    TakesOver {
        /// The old name.
        was: String,
        /// Its process runs on (else only its counters carry over).
        same_process: bool,
    },
    /// A due run waits for its dependencies.
    Waiting(DepWait),
    /// A due run is not run: a dependency cannot be met (WARNING).
    Skipped(DepFailure),
    /// Too many failed starts: not started again (ERROR).
    Fatal(FatalWhy),
    /// A service that exited is restarted after `delay` (`autorestart: always`).
    ServiceRestart {
        /// The delay.
        delay: Duration,
    },
    /// A `start` command runs it now.
    StartCommand,
    /// A `stop` command holds it.
    StopCommand,
    /// A `restart` command found nothing running: it starts now.
    RestartIdle,
    /// A `restart` (or a `start` while stopping): its runs ended, it starts again.
    StartingAgain,
    /// The checkpoint signal went to a run's process group (issue 17), `before` the job's
    /// end.
    Checkpoint {
        /// The task's `checkpoint-signal`, a raw number.
        signal: i32,
        /// How long before the job's end it went (its `checkpoint-lead`, or less for a
        /// run started after that moment).
        before: Duration,
    },
    /// A run's sampled RSS went over its `mem` (issue 17; WARNING, ERROR when it is
    /// stopped for it).
    MemExceeded {
        /// The sampled RSS, bytes: the run's peak so far.
        rss: u64,
        /// Its `mem`, bytes.
        mem: u64,
        /// `mem-exceeded: stop`: the run is being stopped (else a warning, once per run).
        stop: bool,
    },
}

impl TaskEvent {
    /// The severity of the line.
    pub fn level(&self) -> Level {
        use TaskEvent::*;
        match self {
            OnceScheduled => Level::Debug,
            PeriodicNeverDone
            | TimedOut { .. }
            | GraceOver { .. }
            | LeaderExited { .. }
            | Skipped(_) => Level::Warning,
            GaveUp { .. } | Fatal(_) => Level::Error,
            MemExceeded { stop: true, .. } => Level::Error,
            MemExceeded { stop: false, .. } => Level::Warning,
            Ended { end, success, .. } => match end {
                ProcessEnd::Exited(_) | ProcessEnd::Signaled(_) if *success => Level::Info,
                ProcessEnd::Stopped(r)
                    if !matches!(r, StopReason::Timeout | StopReason::MemExceeded) =>
                {
                    Level::Info
                }
                ProcessEnd::SpawnFailed(_) => Level::Error,
                _ => Level::Warning,
            },
            _ => Level::Info,
        }
    }
}

/// Why bansuri shuts down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownCause {
    /// A signal (SIGTERM, SIGINT), by number.
    Signal(i32),
    /// A `shutdown` control request.
    Request,
    /// The shutdown planned by [`super::Input::ShutdownAt`] (`stop_before_end`) came due.
    Planned(String),
}

/// What a reload changed, by task name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// New tasks.
    pub added: Vec<String>,
    /// Tasks gone from the config.
    pub removed: Vec<String>,
    /// Tasks whose settings changed (restarted, enabled or disabled).
    pub changed: Vec<String>,
    /// Tasks whose schedule only changed.
    pub rescheduled: Vec<String>,
    /// Tasks left as they were.
    pub kept: usize,
}

/// One row of the summary table at exit.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// Width of the name column.
    pub width: usize,
    /// The task.
    pub name: String,
    /// Its state.
    pub state: TaskState,
    /// Attempts started.
    pub runs: u64,
    /// Attempts failed.
    pub failures: u64,
    /// CPU time of its processes.
    pub cpu: Duration,
    /// Largest peak RSS (0: unknown).
    pub peak_rss: u64,
    /// How its last process ended.
    pub last: Option<ProcessEnd>,
}

/// Something that happened to bansuri as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum MasterEvent {
    /// Start-up: how many tasks, and the slot limit.
    Configured {
        /// Tasks in the config.
        tasks: usize,
        /// `max_parallel`.
        max_parallel: Option<usize>,
    },
    /// The wall clock jumped (WARNING).
    ClockChanged {
        /// The wall time now.
        wall: DateTime<Utc>,
    },
    /// A new config was applied.
    Reloaded(ReloadSummary),
    /// A second shutdown signal or request: SIGKILL to every group now (WARNING).
    ForcedKill {
        /// What came again.
        cause: ShutdownCause,
    },
    /// The graceful shutdown began.
    ShutdownBegun {
        /// Why.
        cause: ShutdownCause,
        /// Processes being stopped.
        running: usize,
        /// The watchdog's grace.
        grace: Duration,
        /// A KillWait bound that cuts the grace shorter, from now.
        sooner: Option<Duration>,
        /// Say that the same signal or request again kills at once.
        hint: bool,
    },
    /// Everything is over: bansuri exits with `code`.
    Done {
        /// It was a shutdown (else a batch run that finished).
        shutdown: bool,
        /// Tasks whose last run failed.
        failed: usize,
        /// The exit code.
        code: i32,
    },
    /// The summary table's header.
    SummaryHeader {
        /// Width of the name column.
        width: usize,
    },
    /// One task's row of the summary table.
    SummaryRow(SummaryRow),
    /// At exit, under the summary table: an array's counts (issue 19).
    ArraySummary {
        /// The array task.
        name: String,
        /// Its elements.
        elements: u64,
        /// Elements that succeeded (before a `--resume` included).
        succeeded: u64,
        /// Elements whose last attempt failed.
        failed: u64,
    },
    /// Every process must be SIGKILLed by a bound ([`super::Input::KillBy`]).
    KillBy {
        /// Why, in the runtime's words.
        why: String,
        /// When (wall time) and in how long; `None`: now.
        when: Option<(DateTime<Utc>, Duration)>,
    },
    /// A graceful shutdown is planned ([`super::Input::ShutdownAt`]).
    ShutdownPlanned {
        /// When.
        at: DateTime<Utc>,
        /// In how long (`None`: already past).
        within: Option<Duration>,
        /// Why, in the runtime's words.
        why: String,
    },
    /// The planned shutdown was cancelled.
    PlannedCancelled {
        /// Why, in the runtime's words.
        why: String,
    },
    /// At exit: these tasks had a due run that was not started because it would have
    /// ended after the job's time limit (issue 17; WARNING). They did not succeed, so
    /// `--resume` runs them next time.
    NotRunForTime {
        /// The tasks, in config order.
        tasks: Vec<String>,
    },
    /// The time limit ends the job with work left and `requeue_on_end` is set: bansuri
    /// requeues its own job (issue 17).
    Requeue {
        /// Runs stopped unfinished or never started.
        runs_left: usize,
    },
    /// Agents are being started on the other nodes of the allocation (issue 18), in one
    /// job step.
    AgentsStarting {
        /// The nodes.
        nodes: Vec<String>,
    },
    /// A node's agent answered: runs are placed there from now on.
    NodeReady {
        /// The node.
        node: String,
        /// What it has, in words (`CPUs 0-1, memory 3.9 GiB`).
        has: String,
    },
    /// A node is lost: its runs failed, it takes no more runs.
    NodeLost {
        /// The node.
        node: String,
        /// Why (the agent exited, stopped answering...).
        reason: String,
        /// Runs it had, now failed.
        runs: usize,
    },
}

impl MasterEvent {
    /// The severity of the line.
    pub fn level(&self) -> Level {
        match self {
            MasterEvent::ClockChanged { .. }
            | MasterEvent::ForcedKill { .. }
            | MasterEvent::NotRunForTime { .. } => Level::Warning,
            MasterEvent::NodeLost { .. } => Level::Error,
            _ => Level::Info,
        }
    }
}

/// A control command on one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `restart`.
    Restart,
}

/// A suggestion for a task name that is not in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suggestion {
    /// A close name.
    DidYouMean(String),
    /// The config has no tasks.
    NoTasks,
    /// No close name: every task's.
    Known(Vec<String>),
}

/// A task name that is not in the config, with a suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTask {
    /// The name asked for.
    pub name: String,
    /// What to suggest.
    pub suggestion: Suggestion,
}

/// The answer to a control command (`start`, `stop`, `restart`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No such task (refused).
    NoSuchTask(UnknownTask),
    /// bansuri is shutting down (refused).
    ShuttingDown {
        /// The command.
        command: Command,
        /// The task.
        task: String,
    },
    /// The task is disabled in the config (refused).
    Disabled {
        /// The task.
        task: String,
    },
    /// `start` while its runs are being stopped: it starts again once they have ended.
    BeingStopped {
        /// The task.
        task: String,
    },
    /// `start` while it runs: nothing to do.
    AlreadyRunning {
        /// The task.
        task: String,
        /// The running process.
        pid: u32,
    },
    /// `start` while it waits for a slot: nothing to do.
    AlreadyStarting {
        /// The task.
        task: String,
    },
    /// Its retry starts now.
    RetryNow {
        /// The task.
        task: String,
        /// The attempt that starts.
        attempt: u32,
    },
    /// Started now.
    Started {
        /// The task.
        task: String,
        /// It has a timer or cron schedule, which goes on.
        schedule_goes_on: bool,
    },
    /// `stop` of a task already stopped.
    AlreadyStopped {
        /// The task.
        task: String,
    },
    /// `stop`: its processes get the stop signal.
    Stopping {
        /// The task.
        task: String,
        /// Its stop signal.
        signal: StopSignal,
        /// The grace before SIGKILL.
        grace: Duration,
    },
    /// `stop` of a task with nothing running.
    Stopped {
        /// The task.
        task: String,
    },
    /// `restart`: stopping, then starting again.
    Restarting {
        /// The task.
        task: String,
        /// Its stop signal.
        signal: StopSignal,
        /// The grace before SIGKILL.
        grace: Duration,
    },
    /// A program's instances (`numprocs`), one reply each.
    Each(Vec<Reply>),
}

impl Reply {
    /// The command was carried out (or had nothing to do).
    pub fn ok(&self) -> bool {
        match self {
            Reply::NoSuchTask(_) | Reply::ShuttingDown { .. } | Reply::Disabled { .. } => false,
            Reply::Each(all) => all.iter().all(Reply::ok),
            _ => true,
        }
    }
}
