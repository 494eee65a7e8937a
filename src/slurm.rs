//! SLURM as bansuri sees it from inside a batch job.
//!
//! Owns: running Slurm's commands (`scontrol`, `squeue`, `scancel`) with a timeout, parsing
//! what they print (pure functions, unit-tested on output captured from Slurm 22.05), the
//! `srun` command line of a task, and the arithmetic of stop graces against Slurm's
//! `KillWait`. The job's environment (`SLURM_JOB_ID` and friends) is read by
//! [`crate::host`].
//!
//! Facts this is built on (measured on Slurm 22.05.8 with proctrack/cgroup, see the README):
//! - A plain `scancel` and the time limit send SIGTERM to the batch step's top process
//!   (bansuri, `exec`ed by the batch script) and SIGKILL the whole job `KillWait` later.
//!   At that moment the job's state is no longer RUNNING (COMPLETING).
//! - `--signal=B:TERM@T` and `scancel --batch --signal=TERM` signal bansuri alone and the
//!   job stays RUNNING: Slurm's SIGKILL comes only at the end time plus `KillWait`.
//! - There is no `SLURM_JOB_END_TIME` in 22.05: the end time comes from
//!   `squeue -h -j ID -o %e` (local time, `NONE` without a time limit).
//! - `srun` turns a SIGTERM it receives into a SIGKILL of its step ("forcing job
//!   termination"); `scancel --signal=SIG JOB.STEP` delivers SIG to the step's tasks and
//!   nothing more. `scontrol -o show step JOB` names each step's srun host and pid.
//!
//! Must not: decide anything about tasks (the core does), wait on a command without a
//! deadline, or complain outside SLURM (there, [`JobEnv::from_env`] is `None` and nothing
//! here runs).

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

use crate::spec::{CommandSpec, SrunSpec};
use crate::text::{fmt_dur, fmt_wall};

/// Longest wait for one Slurm command: slurmctld answers in milliseconds when healthy.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Slurm's default `KillWait`, assumed when `scontrol show config` cannot be read.
pub const DEFAULT_KILL_WAIT: Duration = Duration::from_secs(30);
/// How often the job's end time is read again while `stop_before_end` is set (the time
/// limit can be changed with `scontrol update`).
pub const END_TIME_REFRESH: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// The job's environment

/// The job bansuri runs in: read once by [`crate::host`], which owns the rule.
pub use crate::host::JobEnv;

// ---------------------------------------------------------------------------------------------
// Errors

/// Why Slurm's answer could not be had or read. `Display` is the message the job log shows.
#[derive(Debug)]
pub enum SlurmError {
    /// The program is not in PATH.
    NotFound {
        /// `scontrol`, `squeue`, `scancel`.
        program: String,
    },
    /// The command could not be started.
    Start {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command did not finish within its time (it was killed).
    TimedOut {
        /// The command line.
        command: String,
        /// The time it had.
        timeout: Duration,
    },
    /// Waiting for the command failed.
    Wait {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command exited with a failure: its status and stderr.
    Failed {
        /// The command line.
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it wrote on stderr, trimmed.
        stderr: String,
    },
    /// `scontrol show config` has no `KillWait` line.
    NoKillWait,
    /// A `KillWait` line without `=`.
    KillWaitLine(String),
    /// A `KillWait` value that is not a number (of seconds).
    KillWaitValue(String),
    /// A `KillWait` value in a unit other than seconds.
    KillWaitUnit {
        /// The unit.
        unit: String,
        /// The whole value.
        value: String,
    },
    /// An end time that is neither a time stamp nor a "no time" word.
    EndTime(String),
    /// squeue printed nothing: the job is not (or no longer) listed.
    NotListed,
    /// A line of squeue without the `|` bansuri asked for.
    QueueLine(String),
    /// Not asked yet (the state before the first answer).
    NotReadYet,
}

impl std::fmt::Display for SlurmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlurmError::NotFound { program } => write!(f, "`{program}` not found in PATH"),
            SlurmError::Start { command, source } => {
                write!(f, "`{command}` could not start: {source}")
            }
            SlurmError::TimedOut { command, timeout } => {
                write!(f, "`{command}` did not answer within {}", fmt_dur(*timeout))
            }
            SlurmError::Wait { command, source } => write!(f, "`{command}`: {source}"),
            SlurmError::Failed {
                command,
                status,
                stderr,
            } => write!(f, "`{command}` failed ({status}): {stderr}"),
            SlurmError::NoKillWait => f.write_str("no KillWait line in `scontrol show config`"),
            SlurmError::KillWaitLine(line) => write!(f, "cannot read `{line}`"),
            SlurmError::KillWaitValue(value) => write!(f, "cannot read KillWait `{value}`"),
            SlurmError::KillWaitUnit { unit, value } => {
                write!(f, "unknown unit `{unit}` in KillWait `{value}`")
            }
            SlurmError::EndTime(s) => write!(f, "cannot read the end time `{s}`"),
            SlurmError::NotListed => f.write_str("squeue does not list the job"),
            SlurmError::QueueLine(line) => write!(f, "cannot read squeue's `{line}`"),
            SlurmError::NotReadYet => f.write_str("not read yet"),
        }
    }
}

impl std::error::Error for SlurmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SlurmError::Start { source, .. } | SlurmError::Wait { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing what Slurm prints

/// `KillWait` from the output of `scontrol show config` (`KillWait = 30 sec`).
pub fn parse_kill_wait(config: &str) -> Result<Duration, SlurmError> {
    let line = config
        .lines()
        .find(|l| l.split_whitespace().next() == Some("KillWait"))
        .ok_or(SlurmError::NoKillWait)?;
    let value = line
        .split_once('=')
        .map(|(_, v)| v.trim())
        .ok_or_else(|| SlurmError::KillWaitLine(line.trim().to_owned()))?;
    let mut words = value.split_whitespace();
    let number = words.next().unwrap_or_default();
    let secs: u64 = number
        .parse()
        .map_err(|_| SlurmError::KillWaitValue(value.to_owned()))?;
    match words.next() {
        None | Some("sec") | Some("secs") | Some("s") => Ok(Duration::from_secs(secs)),
        Some(unit) => Err(SlurmError::KillWaitUnit {
            unit: unit.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// A job's end time as Slurm prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndTime {
    /// At this local time.
    At(NaiveDateTime),
    /// No time limit (`NONE`, `Unknown`, `N/A`).
    Unlimited,
}

impl EndTime {
    /// The end time on the wall clock, read in this machine's time zone (as Slurm prints it).
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        match self {
            EndTime::At(t) => Local
                .from_local_datetime(&t)
                .earliest()
                .map(|l| l.with_timezone(&Utc)),
            EndTime::Unlimited => None,
        }
    }
}

/// Parse a Slurm time stamp (`2026-11-22T05:00:48`) or one of its "no time" words.
pub fn parse_end_time(s: &str) -> Result<EndTime, SlurmError> {
    let s = s.trim();
    if ["NONE", "Unknown", "N/A", "UNLIMITED", "INFINITE"].contains(&s) {
        return Ok(EndTime::Unlimited);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .map(EndTime::At)
        .map_err(|_| SlurmError::EndTime(s.to_owned()))
}

/// The squeue format bansuri asks for: state and end time.
pub const QUEUE_FORMAT: &str = "%T|%e";

/// A job's state and end time, from `squeue -h -j ID -o '%T|%e'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// `RUNNING`, `COMPLETING`, ...
    pub state: String,
    /// When its time limit ends it.
    pub end: EndTime,
}

/// States in which Slurm is not ending the job. `SIGNALING` is a running job with a
/// signal in flight: squeue shows it while a `--signal=B:` warning or a `scancel --batch
/// --signal` is being delivered (seen here right when bansuri asks). A job being ended
/// shows `COMPLETING` first (the flag outranks the others), then its final state.
pub const RUNNING_STATES: &[&str] = &["RUNNING", "SIGNALING", "CONFIGURING", "RESIZING"];

impl QueueInfo {
    /// Slurm is not ending the job: a SIGTERM now is a warning, not the start of a kill.
    pub fn running(&self) -> bool {
        RUNNING_STATES.contains(&self.state.as_str())
    }
}

/// Parse the output of `squeue -h -j ID -o '%T|%e'`.
pub fn parse_queue(out: &str) -> Result<QueueInfo, SlurmError> {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or(SlurmError::NotListed)?;
    let (state, end) = line
        .split_once('|')
        .ok_or_else(|| SlurmError::QueueLine(line.to_owned()))?;
    Ok(QueueInfo {
        state: state.trim().to_owned(),
        end: parse_end_time(end)?,
    })
}

/// One job step, from `scontrol -o show step JOB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// `1234.0`
    pub id: String,
    /// The host its srun client runs on.
    pub srun_host: String,
    /// The pid of its srun client (0 for the batch step).
    pub srun_pid: u32,
}

/// Parse `scontrol -o show step JOB` (one step per line, `Key=Value` words).
pub fn parse_steps(out: &str) -> Vec<StepInfo> {
    out.lines()
        .filter_map(|line| {
            let mut id = None;
            let mut srun = None;
            for word in line.split_whitespace() {
                if let Some(v) = word.strip_prefix("StepId=") {
                    id = Some(v.to_owned());
                } else if let Some(v) = word.strip_prefix("SrunHost:Pid=") {
                    let (host, pid) = v.rsplit_once(':')?;
                    srun = Some((host.to_owned(), pid.parse().ok()?));
                }
            }
            let (srun_host, srun_pid) = srun?;
            Some(StepInfo {
                id: id?,
                srun_host,
                srun_pid,
            })
        })
        .collect()
}

/// The step whose srun client is `pid` on `host` (short or full host names).
pub fn find_step<'a>(steps: &'a [StepInfo], host: &str, pid: u32) -> Option<&'a StepInfo> {
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_owned();
    steps
        .iter()
        .find(|s| s.srun_pid == pid && short(&s.srun_host) == short(host))
}

// ---------------------------------------------------------------------------------------------
// Stop graces against KillWait

/// How long before Slurm's SIGKILL bansuri sends its own: time for the SIGKILL to land,
/// the reaping, the summary and the exit. 2 s, less when KillWait itself is tiny.
pub fn kill_margin(kill_wait: Duration) -> Duration {
    (kill_wait / 4).min(Duration::from_secs(2))
}

/// The longest stop grace that fits when Slurm's SIGKILL comes `kill_wait` after its
/// SIGTERM (a plain scancel, the time limit).
pub fn grace_within(kill_wait: Duration) -> Duration {
    kill_wait.saturating_sub(kill_margin(kill_wait))
}

/// The `T` of `--signal=B:TERM@T` that leaves a stop grace of `grace`: Slurm's SIGKILL
/// comes `kill_wait` after the end time.
pub fn signal_lead_for(grace: Duration, kill_wait: Duration) -> Duration {
    (grace + kill_margin(kill_wait)).saturating_sub(kill_wait)
}

/// When bansuri must have sent its own SIGKILL at the latest, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillDeadline {
    /// The wall time.
    pub at: DateTime<Utc>,
    /// Why, for the log.
    pub why: String,
}

/// Bansuri got SIGTERM at `signal_at`; `queue` is the job's state and end time read just
/// after (or why it could not be read). `None`: no SIGKILL from Slurm is coming (the job
/// runs on and has no time limit).
pub fn kill_deadline(
    signal_at: DateTime<Utc>,
    queue: Result<&QueueInfo, &SlurmError>,
    kill_wait: Duration,
) -> Option<KillDeadline> {
    let margin = kill_margin(kill_wait);
    let kw = fmt_dur(kill_wait);
    let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    match queue {
        Ok(q) if q.running() => {
            // A warning (--signal=B:..., scancel --batch): the kill comes at the time limit.
            let end = q.end.to_utc()?;
            Some(KillDeadline {
                at: end + chrono(kill_wait) - chrono(margin),
                why: format!(
                    "The job is still RUNNING (state {}: this SIGTERM is a warning, e.g. --signal=B:TERM@T or scancel --batch): Slurm ends it at {} and SIGKILLs it KillWait ({kw}) later",
                    q.state,
                    fmt_wall(end)
                ),
            })
        }
        Ok(q) => Some(KillDeadline {
            at: signal_at + chrono(kill_wait) - chrono(margin),
            why: format!(
                "Slurm is ending the job (state {}) and SIGKILLs it KillWait ({kw}) after its SIGTERM",
                q.state
            ),
        }),
        Err(e) => Some(KillDeadline {
            at: signal_at + chrono(kill_wait) - chrono(margin),
            why: format!(
                "The job's state could not be read ({e}); assuming Slurm is ending it and SIGKILLs it KillWait ({kw}) after its SIGTERM"
            ),
        }),
    }
}

/// What the log says at start-up about stop graces and KillWait, when the longest grace
/// (`longest`, the watchdog or a task's stoptime) does not fit inside it.
pub fn grace_note(longest: Duration, kill_wait: Duration) -> Option<String> {
    let fits = grace_within(kill_wait);
    if longest <= fits {
        return None;
    }
    Some(format!(
        "The longest stop grace ({}) does not fit in KillWait ({}): after a plain scancel or at the time limit bansuri sends its SIGKILL {} after the SIGTERM, {} before Slurm's. For the full grace, stop the job with scancel --batch --signal=TERM, or submit with --signal=B:TERM@{} or more",
        fmt_dur(longest),
        fmt_dur(kill_wait),
        fmt_dur(fits),
        fmt_dur(kill_margin(kill_wait)),
        signal_lead_for(longest, kill_wait).as_secs()
    ))
}

/// When `stop_before_end` starts the shutdown for a job that ends at `end`.
pub fn planned_shutdown(end: DateTime<Utc>, stop_before_end: Duration) -> DateTime<Utc> {
    end - chrono::Duration::from_std(stop_before_end).unwrap_or(chrono::Duration::zero())
}

// ---------------------------------------------------------------------------------------------
// srun

/// The program and arguments that run `command` as a job step:
/// `srun --job-name=TASK --nodes=N --ntasks=n --cpus-per-task=c --exact|--overlap
/// [extra] [HELPER step-exec --] COMMAND`, where a shell command runs under
/// `/bin/sh -c`. `helper` is bansuri's own binary: in the step it passes stop signals on
/// to the command's whole process group (see [`step_exec`]).
pub fn srun_argv(
    task: &str,
    srun: &SrunSpec,
    command: &CommandSpec,
    helper: Option<&std::path::Path>,
) -> Vec<String> {
    let mut argv = vec!["srun".to_owned(), format!("--job-name={task}")];
    // Always the task's own node count: without one, srun inherits the allocation's
    // SLURM_NNODES (3 in a 3-node job) and a 1-task step warns "can't run 1 processes on
    // 3 nodes, setting nnodes to 1". A count given in `extra-args` is the user's.
    if !srun.extra_args.iter().any(|a| sets_nodes(a)) {
        argv.push(format!("--nodes={}", srun.nodes.unwrap_or(1)));
    }
    argv.push(format!("--ntasks={}", srun.ntasks));
    argv.push(format!("--cpus-per-task={}", srun.cpus_per_task));
    argv.push(if srun.overlap { "--overlap" } else { "--exact" }.to_owned());
    argv.extend(srun.extra_args.iter().cloned());
    if let Some(h) = helper {
        argv.extend([
            h.to_string_lossy().into_owned(),
            "step-exec".to_owned(),
            "--".to_owned(),
        ]);
    }
    match command {
        CommandSpec::Shell(s) => {
            argv.extend(["/bin/sh".to_owned(), "-c".to_owned(), s.clone()]);
        }
        CommandSpec::Argv(v) => argv.extend(v.iter().cloned()),
        CommandSpec::Python(class) => argv.extend([
            "python3".to_owned(),
            "-u".to_owned(),
            "-c".to_owned(),
            crate::python::BOOTSTRAP.to_owned(),
            class.clone(),
        ]),
    }
    argv
}

/// The arguments of `scontrol` that requeue job `job`.
pub fn requeue_args(job: &str) -> [&str; 2] {
    ["requeue", job]
}

/// `arg` (one of `extra-args`) sets the step's node count: `-N`, `-N2`, `--nodes`,
/// `--nodes=2`.
fn sets_nodes(arg: &str) -> bool {
    arg == "--nodes" || arg.starts_with("--nodes=") || arg.starts_with("-N")
}

/// The srun options of a task, as `bansuri validate` shows them.
pub fn srun_summary(srun: &SrunSpec) -> String {
    let argv = srun_argv("x", srun, &CommandSpec::Argv(Vec::new()), None);
    format!("srun {}", argv[2..].join(" "))
}

/// What `bansuri validate` warns about SLURM. `in_job`: it runs inside a SLURM job;
/// `srun_found`: whether `srun` is in PATH (asked only when it matters).
pub fn validate_warnings(
    spec: &crate::spec::Spec,
    in_job: bool,
    srun_found: impl Fn() -> bool,
) -> Vec<String> {
    let sruns: Vec<&str> = spec
        .tasks
        .iter()
        .filter(|t| t.srun.is_some())
        .map(|t| t.name.as_str())
        .collect();
    if sruns.is_empty() {
        return Vec::new();
    }
    let list = sruns
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    if !in_job {
        out.push(format!(
            "{list} use{} srun: {} run only inside a SLURM job (bansuri submitted with sbatch); here {} would fail to start",
            if sruns.len() == 1 { "s" } else { "" },
            if sruns.len() == 1 { "it can" } else { "they can" },
            if sruns.len() == 1 { "it" } else { "they" },
        ));
    } else if !srun_found() {
        out.push(format!(
            "{list}: `srun` is not in PATH, so {} would fail to start",
            if sruns.len() == 1 { "it" } else { "they" }
        ));
    }
    out
}

/// Is `program` a file in one of PATH's directories?
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Why an srun task cannot start outside SLURM.
pub const SRUN_OUTSIDE_SLURM: &str = "srun task: bansuri is not running inside a SLURM job (SLURM_JOB_ID is not set), so there is no allocation to start a job step in; submit bansuri with sbatch (see slurm/submit.sh), or remove `srun` to run the command directly";

// ---------------------------------------------------------------------------------------------
// Running Slurm's commands

/// Run `program args` to completion within `timeout`; its stdout, or an error naming the
/// command. A command still running at the deadline is killed.
pub fn run_tool(program: &str, args: &[&str], timeout: Duration) -> Result<String, SlurmError> {
    let shown = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: runs in the forked child before exec; only sigemptyset and sigprocmask
    // (through nix, no allocation), both async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // bansuri blocks the signals it reads through its signalfd; the command must
            // not inherit that mask.
            use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SlurmError::NotFound {
                program: program.to_owned(),
            }
        } else {
            SlurmError::Start {
                command: shown.clone(),
                source: e,
            }
        }
    })?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let read = read_both(
        child.stdout.take(),
        child.stderr.take(),
        &mut out,
        &mut err,
        deadline,
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if read.is_ok() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(SlurmError::TimedOut {
                    command: shown.clone(),
                    timeout,
                });
            }
            Err(e) => {
                break Err(SlurmError::Wait {
                    command: shown.clone(),
                    source: e,
                })
            }
        }
    }?;
    if !status.success() {
        let text = String::from_utf8_lossy(&err);
        return Err(SlurmError::Failed {
            command: shown,
            status,
            stderr: text.trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Read a child's stdout and stderr to EOF, or until `deadline`.
fn read_both(
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), ()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut streams: Vec<(Box<dyn ReadFd>, &mut Vec<u8>)> = Vec::new();
    if let Some(s) = stdout {
        streams.push((Box::new(s), out));
    }
    if let Some(s) = stderr {
        streams.push((Box::new(s), err));
    }
    let mut buf = [0u8; 8192];
    while !streams.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(());
        }
        let ms = u16::try_from(left.as_millis().min(60_000)).unwrap_or(u16::MAX);
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = streams
                .iter()
                .map(|(s, _)| PollFd::new(s.fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Err(()),
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut done = Vec::new();
        for (i, is_ready) in ready.into_iter().enumerate() {
            if !is_ready {
                continue;
            }
            let (s, sink) = &mut streams[i];
            match s.read(&mut buf) {
                Ok(0) => done.push(i),
                Ok(n) => sink.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => done.push(i),
            }
        }
        for i in done.into_iter().rev() {
            streams.remove(i);
        }
    }
    Ok(())
}

/// A readable pipe end that poll can wait on.
trait ReadFd: Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl ReadFd for std::process::ChildStdout {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

impl ReadFd for std::process::ChildStderr {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

// ---------------------------------------------------------------------------------------------
// The session: what the runtime keeps about its job

/// bansuri's view of its job, kept by the runtime while it runs under SLURM.
#[derive(Debug)]
pub struct Session {
    /// The job, from the environment.
    pub job: JobEnv,
    /// This host's name, to find the steps whose srun runs here.
    host: String,
    /// KillWait, or why it could not be read (then [`DEFAULT_KILL_WAIT`] is assumed).
    kill_wait: Result<Duration, SlurmError>,
    /// The job's end time, or why it could not be read.
    pub end: Result<EndTime, SlurmError>,
    /// Step ids found so far, by srun pid.
    steps: HashMap<u32, String>,
}

impl Session {
    /// Read KillWait and the end time for `job` (two commands, milliseconds each).
    pub fn start(job: JobEnv) -> Session {
        let host = crate::host::name().to_owned();
        let kill_wait = run_tool("scontrol", &["show", "config"], TOOL_TIMEOUT)
            .and_then(|out| parse_kill_wait(&out));
        let mut s = Session {
            job,
            host,
            kill_wait,
            end: Err(SlurmError::NotReadYet),
            steps: HashMap::new(),
        };
        s.end = s.queue().map(|q| q.end);
        s
    }

    /// KillWait in effect (Slurm's default when it could not be read).
    pub fn kill_wait(&self) -> Duration {
        *self.kill_wait.as_ref().unwrap_or(&DEFAULT_KILL_WAIT)
    }

    /// Why KillWait could not be read, if so.
    pub fn kill_wait_error(&self) -> Option<&SlurmError> {
        self.kill_wait.as_ref().err()
    }

    /// The end time on the wall clock, when known and limited.
    pub fn end_utc(&self) -> Option<DateTime<Utc>> {
        self.end.as_ref().ok().and_then(|e| e.to_utc())
    }

    /// Ask squeue for the job's state and end time.
    pub fn queue(&self) -> Result<QueueInfo, SlurmError> {
        let out = run_tool(
            "squeue",
            &["-h", "-j", &self.job.id, "-o", QUEUE_FORMAT],
            TOOL_TIMEOUT,
        )?;
        parse_queue(&out)
    }

    /// Read the end time again; true when it changed.
    pub fn refresh_end(&mut self) -> bool {
        let end = self.queue().map(|q| q.end);
        if end.is_err() && self.end.is_ok() {
            // A failed read keeps the end time known so far.
            return false;
        }
        // An error counts as a change when its message does (as the job log shows it).
        let changed = match (&end, &self.end) {
            (Ok(new), Ok(old)) => new != old,
            (Err(new), Err(old)) => new.to_string() != old.to_string(),
            _ => true,
        };
        self.end = end;
        changed
    }

    /// SIGTERM reached bansuri at `at`: by when its own SIGKILL must come.
    pub fn on_sigterm(&mut self, at: DateTime<Utc>) -> Option<KillDeadline> {
        let queue = self.queue();
        if let Ok(q) = &queue {
            self.end = Ok(q.end);
        }
        kill_deadline(at, queue.as_ref(), self.kill_wait())
    }

    /// The log header line naming the job.
    pub fn header(&self) -> String {
        let j = &self.job;
        let or_q = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        let nodes = match &j.num_nodes {
            Some(n) if n == "1" => format!("{} (1 node)", or_q(&j.nodelist)),
            Some(n) => format!("{} ({n} nodes)", or_q(&j.nodelist)),
            None => or_q(&j.nodelist),
        };
        let end = match &self.end {
            Ok(EndTime::Unlimited) => "no time limit".to_owned(),
            Ok(e) => match e.to_utc() {
                Some(w) => {
                    let left = (w - Utc::now()).to_std().unwrap_or_default();
                    format!("ends {} (in {})", fmt_wall(w), fmt_dur(left))
                }
                None => "end time unknown".to_owned(),
            },
            Err(_) => "end time unknown".to_owned(),
        };
        let kw = match &self.kill_wait {
            Ok(d) => format!("KillWait {}", fmt_dur(*d)),
            Err(_) => format!("KillWait unknown (assuming {})", fmt_dur(DEFAULT_KILL_WAIT)),
        };
        format!(
            "SLURM job {} ({}) on {nodes}, CPUs on this node {}, partition {}, {end}, {kw}",
            j.id,
            or_q(&j.name),
            or_q(&j.cpus_on_node),
            or_q(&j.partition),
        )
    }

    /// The step id of the srun client `pid`, looking the job's steps up when it is not
    /// known yet. `None` while the step does not exist (srun still waiting for resources)
    /// or no longer does.
    pub fn step_of(&mut self, pid: u32) -> Result<Option<String>, SlurmError> {
        if let Some(id) = self.steps.get(&pid) {
            return Ok(Some(id.clone()));
        }
        let out = run_tool(
            "scontrol",
            &["-o", "show", "step", &self.job.id],
            TOOL_TIMEOUT,
        )?;
        let steps = parse_steps(&out);
        Ok(find_step(&steps, &self.host, pid).map(|s| {
            self.steps.insert(pid, s.id.clone());
            s.id.clone()
        }))
    }

    /// Forget the step of a finished srun client (its pid may be reused).
    pub fn forget(&mut self, pid: u32) {
        self.steps.remove(&pid);
    }

    /// Requeue this job (`scontrol requeue`, issue 17's `requeue_on_end`): Slurm ends it
    /// and queues it again; it needs `--requeue` (or the cluster's `JobRequeue=1`).
    pub fn requeue(&self) -> Result<(), SlurmError> {
        run_tool("scontrol", &requeue_args(&self.job.id), TOOL_TIMEOUT).map(drop)
    }

    /// Send `signal` to the tasks of step `step` (`scancel --signal`), nothing else.
    pub fn signal_step(&self, step: &str, signal: i32) -> Result<(), SlurmError> {
        let name = crate::text::signal_name(signal);
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        run_tool(
            "scancel",
            &[&format!("--signal={name}"), step],
            TOOL_TIMEOUT,
        )
        .map(drop)
    }
}

pub mod step_exec;

#[cfg(test)]
mod tests;
