//! The shared vocabulary of runs: how a process ended ([`ExitStatus`] as the kernel says,
//! [`ProcessEnd`] in the core's terms, [`StopReason`]), what it used ([`Usage`]), and the
//! state of a task as users see it ([`TaskState`]); how bansuri itself ends ([`Exit`]:
//! how a run ended, [`Ending`], or the kind of error that stopped a command,
//! [`ErrorKind`]), with the one table of process exit codes, [`Exit::code`].
//!
//! Plain data read by the core, the runtime, spawn, the notices, the status table and the
//! dashboard alike, so none of them imports another for a type. Must not: decide anything
//! about tasks (the core does), do I/O, or format for people (text and the callers do).

use std::time::Duration;

/// How a process ended, as the kernel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Resource use of one process, from wait4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size in bytes.
    pub max_rss: u64,
}

impl Usage {
    /// Add another process's figures: CPU times add up, peak RSS is the larger one (as
    /// wait4 reports a process and the children it waited for).
    pub fn absorb(&mut self, other: Usage) {
        self.cpu += other.cpu;
        self.max_rss = self.max_rss.max(other.max_rss);
    }
}

/// Why bansuri stopped a run itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It ran past its `timeout`.
    Timeout,
    /// bansuri is shutting down.
    Shutdown,
    /// `overlap: replace`: a newer run is due.
    Replaced,
    /// The main process exited and left other processes in its group.
    Leftovers,
    /// The task was removed from the config.
    Removed,
    /// The task's settings changed in the config: it restarts with the new ones.
    Changed,
    /// The task was disabled in the config (`enabled: false`).
    Disabled,
    /// A `stop` control command.
    Command,
    /// A `restart` control command.
    Restart,
    /// Its sampled RSS went over its `mem` with `mem-exceeded: stop` (issue 17): the end
    /// counts as a failure.
    MemExceeded,
}

impl StopReason {
    /// Why, in words for the log.
    pub fn words(self) -> &'static str {
        match self {
            StopReason::Timeout => "timeout",
            StopReason::Shutdown => "shutdown",
            StopReason::Replaced => "replaced by a newer run",
            StopReason::Leftovers => "leftover processes",
            StopReason::Removed => "removed from the config",
            StopReason::Changed => "its settings changed",
            StopReason::Disabled => "disabled in the config",
            StopReason::Command => "stop command",
            StopReason::Restart => "restart command",
            StopReason::MemExceeded => "over its memory request",
        }
    }
}

/// How a run's process ended, in the core's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEnd {
    /// Exited by itself with this code.
    Exited(i32),
    /// Killed by a signal bansuri did not send.
    Signaled(i32),
    /// Stopped by bansuri after its timeout.
    TimedOut(Duration),
    /// Stopped by bansuri for another reason.
    Stopped(StopReason),
    /// Never started.
    SpawnFailed(String),
    /// Its node was lost (issue 18: the agent there died or stopped answering): what
    /// became of the process is unknown, so the run counts as failed. The node's name.
    Lost(String),
}

impl ProcessEnd {
    /// Does this end count as a success for `success-codes`? An exit code in the list;
    /// or death by signal S with 128 + S in the list, the code a shell reports for it
    /// (the manual lists 137 for "killed by SIGKILL").
    pub fn is_success(&self, codes: &[i32]) -> bool {
        match self {
            ProcessEnd::Exited(c) => codes.contains(c),
            ProcessEnd::Signaled(s) => codes.contains(&shell_code(*s)),
            _ => false,
        }
    }
}

/// The exit code a shell reports for death by `signal`: 128 + its number.
pub fn shell_code(signal: i32) -> i32 {
    128 + signal
}

/// State of a task as shown to users (status, summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Not started yet.
    Pending,
    /// Waiting for its next scheduled run.
    Scheduled,
    /// Due, waiting for a free slot (`max_parallel`).
    Waiting,
    /// Process being started.
    Starting,
    /// Process running.
    Running,
    /// Stop signal sent, waiting for the process to end.
    Stopping,
    /// Last run succeeded, nothing more to run.
    Success,
    /// Last run failed finally.
    Failed,
    /// Last run timed out finally.
    Timeout,
    /// In backoff before a retry.
    Restarting,
    /// Stopped by bansuri or disabled.
    Stopped,
    /// Failed to start too often in a row; not started again.
    Fatal,
    /// Not run because a dependency failed.
    Skipped,
}

impl TaskState {
    /// Every state, in declaration order (the one-hot `bansuri_task_state` metric lists
    /// them all). A new variant must be added here too: [`TaskState::position`] matches on
    /// every variant, so the crate does not compile until the variant is given its place,
    /// and a compile-time check below says whether each state sits at that place.
    pub const ALL: [TaskState; 13] = [
        TaskState::Pending,
        TaskState::Scheduled,
        TaskState::Waiting,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Stopping,
        TaskState::Success,
        TaskState::Failed,
        TaskState::Timeout,
        TaskState::Restarting,
        TaskState::Stopped,
        TaskState::Fatal,
        TaskState::Skipped,
    ];

    /// The index of the state in [`TaskState::ALL`].
    pub const fn position(self) -> usize {
        match self {
            TaskState::Pending => 0,
            TaskState::Scheduled => 1,
            TaskState::Waiting => 2,
            TaskState::Starting => 3,
            TaskState::Running => 4,
            TaskState::Stopping => 5,
            TaskState::Success => 6,
            TaskState::Failed => 7,
            TaskState::Timeout => 8,
            TaskState::Restarting => 9,
            TaskState::Stopped => 10,
            TaskState::Fatal => 11,
            TaskState::Skipped => 12,
        }
    }

    /// Upper-case name, as in status tables.
    pub const fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Scheduled => "SCHEDULED",
            TaskState::Waiting => "WAITING",
            TaskState::Starting => "STARTING",
            TaskState::Running => "RUNNING",
            TaskState::Stopping => "STOPPING",
            TaskState::Success => "SUCCESS",
            TaskState::Failed => "FAILED",
            TaskState::Timeout => "TIMEOUT",
            TaskState::Restarting => "RESTARTING",
            TaskState::Stopped => "STOPPED",
            TaskState::Fatal => "FATAL",
            TaskState::Skipped => "SKIPPED",
        }
    }
}

// `TaskState::ALL` lists every state once, at its `position`.
const _: () = {
    let mut i = 0;
    while i < TaskState::ALL.len() {
        assert!(TaskState::ALL[i].position() == i);
        i += 1;
    }
};

/// How a `bansuri run` ended, as the core decides it ([`crate::core::Action::Exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A shutdown (SIGTERM/SIGINT, a control request, `stop_before_end`) is complete.
    ShutDown,
    /// Batch mode (`--exit-when-done`, `--once`): no task can run again, and every one that
    /// ran succeeded.
    AllSucceeded,
    /// Batch mode: no task can run again, and `failed` tasks failed finally.
    TasksFailed {
        /// How many (at least one).
        failed: usize,
    },
}

/// The kind of error that stopped a command: the exit code tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line or the config is wrong (or names an unknown task): nothing ran.
    Usage,
    /// bansuri could not do its work: the job log cannot be opened, the event loop
    /// failed, no bansuri answers, stdout is closed...
    Runtime,
}

/// How the bansuri process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A command (`validate`, `status`, `start`, `completions`, ...) did what it was asked.
    Done,
    /// `bansuri run` ended.
    Run(Ending),
    /// A command failed.
    Failed(ErrorKind),
    /// `step-exec` (inside an srun step): the exit code of the command it ran, passed on
    /// as it is (128 + N for a signal, 126/127 when it could not be run).
    StepExec(i32),
}

impl Exit {
    /// The process exit code: the one table (README, "Exit codes"; the job log's
    /// "exiting with code N" and the state file's `exit_code` are read from here too).
    ///
    /// | code | meaning |
    /// | --- | --- |
    /// | 0 | ok: a command did its work, a shutdown completed, or (batch) all tasks succeeded |
    /// | 1 | runtime failure (the job log cannot be opened, no bansuri answers, ...) |
    /// | 2 | usage or config error |
    /// | 3 | a task failed finally (`--exit-when-done`, `--once`) |
    /// | any | `step-exec`: its command's own code |
    pub fn code(self) -> i32 {
        match self {
            Exit::Done | Exit::Run(Ending::ShutDown | Ending::AllSucceeded) => 0,
            Exit::Failed(ErrorKind::Runtime) => 1,
            Exit::Failed(ErrorKind::Usage) => 2,
            Exit::Run(Ending::TasksFailed { .. }) => 3,
            Exit::StepExec(code) => code,
        }
    }
}

#[cfg(test)]
mod exit_tests {
    use super::*;

    #[test]
    fn the_exit_codes_are_the_documented_ones() {
        let table = [
            (Exit::Done, 0),
            (Exit::Run(Ending::ShutDown), 0),
            (Exit::Run(Ending::AllSucceeded), 0),
            (Exit::Failed(ErrorKind::Runtime), 1),
            (Exit::Failed(ErrorKind::Usage), 2),
            (Exit::Run(Ending::TasksFailed { failed: 2 }), 3),
            (Exit::StepExec(143), 143),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }
}
