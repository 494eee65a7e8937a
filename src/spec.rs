//! The validated, typed configuration (`Spec`): what every module after loading works with.
//!
//! `config` turns a file into a `Spec`; nothing else parses user text. Values here are
//! already checked (durations positive where they must be, schedules compiled, paths
//! resolved), so the core and the runtime never re-validate and never see raw strings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::schedule::Schedule;

pub mod expand;

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
    /// What the file accepts but may be wrong, or waits on the machine (a missing
    /// working directory): printed by `validate`, logged by the runtime.
    pub warnings: Vec<crate::diagnostic::ConfigWarning>,
}

impl Spec {
    /// The tasks with every array replaced by its elements, in element order: what the
    /// config means, one `TaskSpec` per run-to-be. Costly for a large array (the core
    /// never calls it; `validate` and tests do).
    pub fn expanded_tasks(&self) -> Vec<TaskSpec> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in &self.tasks {
            match &t.sweep {
                None => out.push(t.clone()),
                Some(s) => out.extend(
                    (0..s.array.len()).filter_map(|p| crate::spec::expand::element_task(t, p)),
                ),
            }
        }
        out
    }
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
    /// Rotate the job log file at this size (0 = never).
    pub log_max_bytes: u64,
    /// Rotated job log files kept (`.1` .. `.N`).
    pub log_backups: u32,
    /// `notify_command`: shell command run with a notice on stdin (see `crate::notify`).
    pub notify_command: Option<String>,
    /// `notify_timeout`: a notifier still running after this is killed. Default 30 s.
    pub notify_timeout: Duration,
    /// Directory of the state file, control socket and request inbox (absolute);
    /// `None` = `.bansuri/<config file name>/` beside the config file.
    pub state_dir: Option<PathBuf>,
    /// Resource sampling period; zero = off. Default 30 s.
    pub sample_interval: Duration,
    /// Address of the web dashboard; `None` = off.
    pub dashboard: Option<std::net::SocketAddr>,
    /// `dashboard_hosts`: more names the dashboard answers to (`Host` header), lowercase.
    pub dashboard_hosts: Vec<String>,
    /// Under SLURM, begin the graceful shutdown this long before the job's end time;
    /// zero = off.
    pub stop_before_end: Duration,
    /// Hot reload: a file changed in place is used once unchanged this long. Default 1 s.
    pub config_settle: Duration,
    /// The top-level `resources` block: what the allocation has, declared or overriding
    /// what bansuri finds (issue 17). `None`: found from the job or the machine.
    pub resources: Option<crate::resources::Declared>,
    /// `requeue_on_end`: when the time limit ends the job with work left, bansuri requeues
    /// its own job (`scontrol requeue`; the job needs `--requeue`).
    pub requeue_on_end: bool,
    /// `nodes` (issue 18): in a SLURM job of several nodes, use them all through one agent
    /// per node (`all`, the default) or run everything on bansuri's own node (`local`).
    pub nodes: Nodes,
}

/// `nodes`: where runs go in a SLURM job of several nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nodes {
    /// Every node of the allocation, through one agent per other node.
    #[default]
    All,
    /// bansuri's own node only (srun tasks still make their own steps).
    Local,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            check_interval: Duration::from_secs(30),
            watchdog_timeout: Duration::from_secs(120),
            max_parallel: None,
            log_file: None,
            log_format: LogFormat::Text,
            log_max_bytes: 0,
            log_backups: 5,
            notify_command: None,
            notify_timeout: Duration::from_secs(30),
            state_dir: None,
            sample_interval: Duration::from_secs(30),
            dashboard: None,
            dashboard_hosts: Vec::new(),
            stop_before_end: Duration::ZERO,
            config_settle: Duration::from_secs(1),
            resources: None,
            requeue_on_end: false,
            nodes: Nodes::All,
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
    pub schedule: Schedule,
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
    /// The config entry's name when this task is one instance of a `numprocs` program
    /// (`w` for `w:0`); otherwise the task's own name.
    pub program: String,
    /// Instance number of a `numprocs` program (`BANSURI_INSTANCE`); `None` for a plain task.
    pub instance: Option<u32>,
    /// Restart after a successful exit too (`autorestart: always`): a service.
    pub restart_on_success: bool,
    /// A process that exits before this long is a failed start (`starttime`).
    pub start_time: Duration,
    /// Retries after a failed start (`startretries`): the (N+1)-th failed start in a row
    /// makes the task FATAL.
    pub start_retries: u32,
    /// `false`: not started until a control command asks (`autostart`).
    pub autostart: bool,
    /// Run as this user (`user`), resolved at load time.
    pub user: Option<UserSpec>,
    /// Nice value, -20..19 (`priority`).
    pub priority: i32,
    /// File mode creation mask (`umask`); `None` = inherited.
    pub umask: Option<u32>,
    /// Tasks (or programs) that must have succeeded / be started first (`depends-on`).
    pub depends_on: Vec<String>,
    /// Rotate the task's own output files at this size (0 = never).
    pub log_max_bytes: u64,
    /// Rotated output files kept per file.
    pub log_backups: u32,
    /// Who is told about this task's runs (`notify`).
    pub notify: Notify,
    /// Which run results are told (`notify-on`).
    pub notify_on: NotifyOn,
    /// `no-interface: true`: `command` names an in-process task registered through the
    /// library API (`crate::Builder`), not a program. (A `no-interface` task naming a
    /// Python class is a process: `false` here, `command` is [`CommandSpec::Python`].)
    pub no_interface: bool,
    /// Launch each run as a SLURM job step (`srun`) inside the allocation.
    pub srun: Option<SrunSpec>,
    /// What the config names but the machine did not have when it was loaded: settled at
    /// each start instead (`crate::spawn::prepare`), which fails while it is still missing.
    pub pending: Pending,
    /// What each run of the task needs (issue 17): its resource request, binding, memory
    /// policy, expected runtime and checkpoint signal.
    pub needs: Needs,
    /// This task is one element of an array task or a task file (issue 19): the config's
    /// task `array` expands to one `TaskSpec` per element, named `task[id]`.
    pub element: Option<ArrayElement>,
    /// This task is an array task (issue 19): its elements, held compactly. The core
    /// makes element `i`'s `TaskSpec` ([`crate::spec::expand::element_task`]) only when
    /// it is about to run; an element that has not started costs no task.
    pub sweep: Option<Arc<Sweep>>,
}

/// The elements of an array task or a task file (issue 19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// The elements.
    pub array: crate::array::Array,
    /// `parallel`: at most this many of its elements run at once.
    pub parallel: Option<u32>,
    /// A task file: each element's command is its line, run as written.
    pub task_file: bool,
}

/// What makes a task an element of an array (issue 19).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArrayElement {
    /// The array task's name as the config writes it (`sweep` for `sweep[17]`).
    pub array: String,
    /// The element's id (`17`): a range's number, else the 0-based position.
    pub id: u64,
    /// `{item}` / `BANSURI_ITEM`: the number, the value, the line (a matrix's values
    /// joined by spaces).
    pub item: String,
    /// A matrix's named values, in key order (`{lr}` and the variable `lr`).
    pub named: Vec<(String, String)>,
    /// The array's `parallel`: at most this many of its elements run at once.
    pub parallel: Option<u32>,
}

/// What a task's runs need from the allocation (issue 17). A task that asks for nothing
/// (`request: None`, the default) is neither packed nor bound: it starts as it always did,
/// under `max_parallel` alone, so configs without requests (500 monitors on a 2-CPU
/// laptop) keep working. A task with `cpus`, `gpus` or `mem` is packed into what is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// `cpus` / `gpus` / `mem`: `None` when the task gives none of them.
    pub request: Option<crate::resources::Request>,
    /// `bind` (default true): pin the run to its CPUs and set the GPU variables.
    pub bind: bool,
    /// `mem-exceeded`: what happens when a run's sampled RSS goes over its `mem`.
    pub mem_exceeded: MemExceeded,
    /// `expected-runtime`: how long a run takes (else learned from past runs).
    pub expected_runtime: Option<Duration>,
    /// `checkpoint-signal` and `checkpoint-lead`: a signal sent once, that long before the
    /// job's end.
    pub checkpoint: Option<Checkpoint>,
}

impl Default for Needs {
    fn default() -> Self {
        Needs {
            request: None,
            bind: true,
            mem_exceeded: MemExceeded::Warn,
            expected_runtime: None,
            checkpoint: None,
        }
    }
}

/// `mem-exceeded`: what a run over its `mem` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemExceeded {
    /// A warning naming the task and its peak (default).
    #[default]
    Warn,
    /// The run is stopped (stop signal, grace, SIGKILL).
    Stop,
}

/// `checkpoint-signal` + `checkpoint-lead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The signal (a raw number).
    pub signal: i32,
    /// How long before the job's end it is sent.
    pub lead: Duration,
}

/// Parts of a task's environment that did not exist when the config was loaded (a user
/// not in the user database, an environment-file not written yet). They are not errors
/// of the file: each start of the task looks again, and fails with the reason while they
/// are missing. (A missing working directory needs no entry: every start checks it.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// `user` names this unknown user: `TaskSpec::user` is `None` until a start finds it.
    pub user: Option<String>,
    /// `environment_file` did not exist: a start reads it, its variables under `env`'s.
    pub environment_file: bool,
}

impl Pending {
    /// Nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && !self.environment_file
    }
}

/// How an `srun` task's step is shaped: `srun --nodes --ntasks --cpus-per-task
/// (--exact | --overlap) [extra args] -- command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrunSpec {
    /// `--nodes`; `None` is 1 (passed explicitly, unless `extra_args` sets it).
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

/// Who is told when a run ends (`notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    /// `"none"` (the default): nobody.
    Off,
    /// `"mail"` or `"on-fail"`: the global `notify_command`.
    Command,
    /// Any other name: a notifier registered through the library API.
    Registered(String),
    /// `"module.path:ClassName"` (not registered): a Python `Notifier` subclass, run by
    /// bansuri's Python runner in a process of its own.
    Python(String),
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A run failed finally (after all its attempts): bad exit code, signal, timeout, or
    /// it could not start.
    Failure,
    /// A run succeeded.
    Success,
    /// The first successful run after a run that failed finally.
    Recovery,
    /// A failed attempt that will be retried (`notify-on: "attempt"`): the Bansuri
    /// manual's notice of each failed attempt ("Attempt: 2/3").
    Attempt,
}

impl NotifyEvent {
    /// `failure`, `success`, `recovery`, `attempt`: the word used in the config and
    /// `BANSURI_EVENT`.
    pub fn word(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::Success => "success",
            NotifyEvent::Recovery => "recovery",
            NotifyEvent::Attempt => "attempt",
        }
    }
}

/// The run results a task's notifier is told about (`notify-on`). Default: failures only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyOn {
    /// A run failed finally.
    pub failure: bool,
    /// Every successful run.
    pub success: bool,
    /// The first success after a final failure.
    pub recovery: bool,
    /// Each failed attempt that will be retried (the final one is a `failure`).
    pub attempt: bool,
}

impl Default for NotifyOn {
    fn default() -> Self {
        NotifyOn {
            failure: true,
            success: false,
            recovery: false,
            attempt: false,
        }
    }
}

impl NotifyOn {
    /// Is `event` in the set?
    pub fn contains(self, event: NotifyEvent) -> bool {
        match event {
            NotifyEvent::Failure => self.failure,
            NotifyEvent::Success => self.success,
            NotifyEvent::Recovery => self.recovery,
            NotifyEvent::Attempt => self.attempt,
        }
    }
}

/// The identity a task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from the group database).
    pub groups: Vec<u32>,
    /// Home directory (for `HOME`).
    pub home: PathBuf,
}

/// `times` value meaning "no limit" (Taskmaster's autorestart without `times`).
pub const UNLIMITED_ATTEMPTS: u32 = u32::MAX;

/// How a task's command is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// A string, run by `/bin/sh -c`.
    Shell(String),
    /// An array, run as argv with no shell (non-empty).
    Argv(Vec<String>),
    /// A Python class, `module.path:ClassName` (`no-interface: true`), run by the Python
    /// runner bansuri carries (see `crate::python`).
    Python(String),
}

impl CommandSpec {
    /// The command as a user would type it (for logs).
    pub fn display(&self) -> String {
        match self {
            CommandSpec::Shell(s) | CommandSpec::Python(s) => s.clone(),
            CommandSpec::Argv(v) => v.join(" "),
        }
    }
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

/// What is wrong with a strftime pattern in an output path (`%Y-%m-%d`, `%%` for a
/// literal `%`), if anything: chrono's strftime, as a run start expands it.
pub fn strftime_problem(pattern: &str) -> Option<String> {
    use chrono::format::{Item, StrftimeItems};
    if !pattern.contains('%') {
        return None;
    }
    StrftimeItems::new(pattern)
        .any(|i| matches!(i, Item::Error))
        .then(|| {
            format!("`{pattern}` is not a valid strftime pattern (write `%%` for a literal `%`)")
        })
}

/// `path` with its strftime patterns filled in for `at` (a run's start, local time), so a
/// task whose `stdout` is `out-%Y-%m-%d.log` writes a new file each day. A path without
/// `%` is returned as it is.
pub fn dated_path<Tz: chrono::TimeZone>(
    path: &std::path::Path,
    at: &chrono::DateTime<Tz>,
) -> Result<PathBuf, DatedPathError>
where
    Tz::Offset: std::fmt::Display,
{
    use std::fmt::Write;
    let Some(pattern) = path.to_str().filter(|s| s.contains('%')) else {
        return Ok(path.to_path_buf());
    };
    if let Some(p) = strftime_problem(pattern) {
        return Err(DatedPathError::Invalid(p));
    }
    let mut out = String::new();
    write!(out, "{}", at.format(pattern))
        .map_err(|_| DatedPathError::Unexpandable(pattern.to_owned()))?;
    Ok(PathBuf::from(out))
}

/// Why an output path's strftime patterns could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatedPathError {
    /// The pattern is invalid: what [`strftime_problem`] says.
    Invalid(String),
    /// chrono could not expand the pattern (given) for the time.
    Unexpandable(String),
}

impl std::fmt::Display for DatedPathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatedPathError::Invalid(problem) => f.write_str(problem),
            DatedPathError::Unexpandable(pattern) => {
                write!(f, "cannot expand the strftime pattern `{pattern}`")
            }
        }
    }
}

impl std::error::Error for DatedPathError {}

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
            schedule: Schedule::Once,
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
            program: name.to_owned(),
            instance: None,
            restart_on_success: false,
            start_time: Duration::ZERO,
            start_retries: 3,
            autostart: true,
            user: None,
            priority: 0,
            umask: None,
            depends_on: Vec::new(),
            log_max_bytes: 0,
            log_backups: 5,
            notify: Notify::Off,
            notify_on: NotifyOn::default(),
            no_interface: false,
            srun: None,
            pending: Pending::default(),
            needs: Needs::default(),
            element: None,
            sweep: None,
        }
    }
}
