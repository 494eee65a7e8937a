//! The validated, typed configuration (`Spec`): what every module after loading works with.
//!
//! `config` turns a file into a `Spec`; nothing else parses user text. Values here are
//! already checked (durations positive where they must be, schedules compiled, paths
//! resolved), so the core and the runtime never re-validate and never see raw strings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::schedule::CronSchedule;

/// A whole config file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The file it came from (as given or found by the lookup).
    pub source: PathBuf,
    /// `version`, when given ("1.0").
    pub version: Option<String>,
    /// Global settings (top-level keys).
    pub globals: Globals,
    /// Tasks, in file order. Names are unique.
    pub tasks: Vec<TaskSpec>,
}

/// Top-level settings. CLI flags override these after loading.
#[derive(Debug, Clone, PartialEq)]
pub struct Globals {
    /// How often the config file is re-read. Default 30 s.
    pub check_interval: Duration,
    /// Default grace between the stop signal and SIGKILL. Default 120 s.
    pub watchdog_timeout: Duration,
    /// Most task processes running at once; `None` = unlimited.
    pub max_parallel: Option<usize>,
    /// Job log path, `{job_id}` not yet expanded; `None` = stdout.
    pub log_file: Option<String>,
    /// Job log format.
    pub log_format: LogFormat,
    /// Under SLURM, begin the graceful shutdown this long before the job's end time;
    /// zero = off.
    pub stop_before_end: Duration,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            check_interval: Duration::from_secs(30),
            watchdog_timeout: Duration::from_secs(120),
            max_parallel: None,
            log_file: None,
            log_format: LogFormat::Text,
            stop_before_end: Duration::ZERO,
        }
    }
}

/// Job log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `[2026-01-19 10:00:01] [task] message` lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One task, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Unique name, `[A-Za-z0-9._-]+`.
    pub name: String,
    /// True when the entry was the plain-string shorthand (identity = command string).
    pub shorthand: bool,
    /// What to run.
    pub command: CommandSpec,
    /// Free text, shown in status and notifications.
    pub description: String,
    /// `false`: the task is not started (and stopped if running).
    pub enabled: bool,
    /// When runs start.
    pub schedule: ScheduleSpec,
    /// What to do when a run is due while the previous one still runs.
    pub overlap: Overlap,
    /// Per-run time limit.
    pub timeout: Option<Duration>,
    /// Retry policy on failure.
    pub on_fail: OnFail,
    /// Max attempts of one run (>= 1).
    pub times: u32,
    /// Exit codes that count as success (non-empty).
    pub success_codes: Vec<i32>,
    /// First delay before a retry; doubles per consecutive failure.
    pub restart_delay: Duration,
    /// Cap of the retry delay.
    pub max_restart_delay: Duration,
    /// Signal sent to the process group to stop a run.
    pub stop_signal: StopSignal,
    /// Grace between stop signal and SIGKILL; `None` = the global watchdog_timeout.
    pub stop_time: Option<Duration>,
    /// Absolute working directory (default: the config file's directory).
    pub working_directory: PathBuf,
    /// Extra environment: environment-file first, then `env` (env wins).
    pub env: BTreeMap<String, String>,
    /// The environment-file path, if any (kept for display and change detection).
    pub environment_file: Option<PathBuf>,
    /// Where stdout goes.
    pub stdout: OutputTarget,
    /// Where stderr goes.
    pub stderr: StderrTarget,
    /// Launch each run as a SLURM job step (`srun`) inside the allocation.
    pub srun: Option<SrunSpec>,
}

/// How an `srun` task's step is shaped: `srun --nodes --ntasks --cpus-per-task
/// (--exact | --overlap) [extra args] -- command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrunSpec {
    /// `--nodes`; `None` lets Slurm choose.
    pub nodes: Option<u32>,
    /// `--ntasks` (>= 1).
    pub ntasks: u32,
    /// `--cpus-per-task` (>= 1).
    pub cpus_per_task: u32,
    /// `--overlap` (a monitor sharing the CPUs of other steps) instead of `--exact`.
    pub overlap: bool,
    /// Further srun options, as given.
    pub extra_args: Vec<String>,
}

impl Default for SrunSpec {
    fn default() -> Self {
        SrunSpec {
            nodes: None,
            ntasks: 1,
            cpus_per_task: 1,
            overlap: false,
            extra_args: Vec::new(),
        }
    }
}

/// How a task's command is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// A string, run by `/bin/sh -c`.
    Shell(String),
    /// An array, run as argv with no shell (non-empty).
    Argv(Vec<String>),
}

impl CommandSpec {
    /// The command as a user would type it (for logs).
    pub fn display(&self) -> String {
        match self {
            CommandSpec::Shell(s) => s.clone(),
            CommandSpec::Argv(v) => v.join(" "),
        }
    }
}

/// When a task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleSpec {
    /// Once at start-up (or when added).
    Once,
    /// At start-up, then at a fixed rate anchored at the first start.
    Timer(Duration),
    /// At each matching time of a cron expression.
    Cron(CronSchedule),
}

/// Overlap policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Skip the due run (logged).
    Skip,
    /// Run right after the current one ends (at most one queued).
    Queue,
    /// Stop the current run, then start the new one.
    Replace,
    /// Start another run alongside.
    Allow,
}

/// Failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    /// No retry.
    Stop,
    /// Retry up to `times` attempts.
    Restart,
}

/// The signals a task may be stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM
    Term,
    /// SIGINT
    Int,
    /// SIGHUP
    Hup,
    /// SIGQUIT
    Quit,
    /// SIGUSR1
    Usr1,
    /// SIGUSR2
    Usr2,
    /// SIGKILL
    Kill,
}

impl StopSignal {
    /// The raw signal number.
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Int => libc::SIGINT,
            StopSignal::Hup => libc::SIGHUP,
            StopSignal::Quit => libc::SIGQUIT,
            StopSignal::Usr1 => libc::SIGUSR1,
            StopSignal::Usr2 => libc::SIGUSR2,
            StopSignal::Kill => libc::SIGKILL,
        }
    }
    /// `TERM`, `INT`, ...
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
            StopSignal::Hup => "HUP",
            StopSignal::Quit => "QUIT",
            StopSignal::Usr1 => "USR1",
            StopSignal::Usr2 => "USR2",
            StopSignal::Kill => "KILL",
        }
    }
}

/// Where a task's stdout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// Into the job log, prefixed with time and task name.
    JobLog,
    /// Appended to this file (absolute path).
    File(PathBuf),
}

/// Where a task's stderr goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StderrTarget {
    /// Same place as stdout (one pipe or the same file).
    Combined,
    /// Into the job log, marked as stderr.
    JobLog,
    /// Appended to this file (absolute path).
    File(PathBuf),
}

impl TaskSpec {
    /// A task with every optional field at its documented default (for code and tests
    /// that build specs by hand; the config loader fills the same defaults).
    pub fn with_defaults(name: &str, command: CommandSpec, working_directory: PathBuf) -> TaskSpec {
        TaskSpec {
            name: name.to_owned(),
            shorthand: false,
            command,
            description: String::new(),
            enabled: true,
            schedule: ScheduleSpec::Once,
            overlap: Overlap::Skip,
            timeout: None,
            on_fail: OnFail::Stop,
            times: 1,
            success_codes: vec![0],
            restart_delay: Duration::from_secs(1),
            max_restart_delay: Duration::from_secs(60),
            stop_signal: StopSignal::Term,
            stop_time: None,
            working_directory,
            env: BTreeMap::new(),
            environment_file: None,
            stdout: OutputTarget::JobLog,
            stderr: StderrTarget::Combined,
            srun: None,
        }
    }
}
