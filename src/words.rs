//! The words of the core: each [`Event`] as its job log line, each [`Reply`] as the text a
//! control client gets, the reasons `status` shows for a FATAL or SKIPPED task.
//!
//! Owns every sentence the core's lifecycle writes (integration tests and users grep the
//! job log, so a line changes here or nowhere). Must not decide anything, import the
//! runtime, or be read back: the runtime answers requests from the typed events and
//! replies, never by matching these words.

use crate::core::{
    Command, DepFailure, DepWait, Event, FatalWhy, Launch, MasterEvent, Reason, ReloadSummary,
    Reply, RetryWhy, ShutdownCause, StopHow, Suggestion, SummaryRow, TaskEvent, UnknownTask,
};
use crate::model::{shell_code, ExitStatus, ProcessEnd, StopReason, Usage};
use crate::schedule::{self, Schedule};
use crate::spec::{StopSignal, UNLIMITED_ATTEMPTS};
use crate::text::{fmt_bytes, fmt_dur, fmt_wall, signal_name};
use std::fmt::{self, Display, Formatter};
use std::time::Duration;

impl Display for Event {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Event::Task { task, what } => task_line(f, task, what),
            Event::Master(m) => master_line(f, m),
        }
    }
}

/// `attempt 2/3`, or `attempt 2` when the attempts are unlimited.
fn attempt_text(attempt: u32, times: u32) -> String {
    if times == UNLIMITED_ATTEMPTS {
        format!("attempt {attempt}")
    } else {
        format!("attempt {attempt}/{times}")
    }
}

fn task_line(f: &mut Formatter<'_>, name: &str, what: &TaskEvent) -> fmt::Result {
    use TaskEvent::*;
    match what {
        Disabled => f.write_str("Disabled (enabled: false): not started"),
        AutostartOff => write!(
            f,
            "autostart: false: not started (start it with `bansuri start {name}`)"
        ),
        Resumed => f.write_str("Succeeded before with the same settings: not run again (--resume)"),
        OnceScheduled => write!(f, "Schedule: {}", schedule::describe(&Schedule::Once)),
        TimerSet { schedule, next } => {
            write!(f, "Timer configured: {}", schedule::describe(schedule))?;
            match next {
                Some(w) => write!(f, "; next run {}", fmt_wall(*w)),
                None => Ok(()),
            }
        }
        CronSet { schedule, next } => {
            write!(f, "Cron configured: {}; ", schedule::describe(schedule))?;
            match next {
                Some(w) => write!(f, "next run {}", fmt_wall(*w)),
                None => f.write_str("it never matches: no run will start"),
            }
        }
        PeriodicNeverDone => f.write_str("periodic task: with --exit-when-done bansuri runs until stopped, because this task can always run again"),
        TimedOut { limit, grace, how } => timed_out(f, *limit, *grace, *how),
        GraceOver { grace, how } => grace_over(f, *grace, *how),
        OverlapSkipped => f.write_str("Scheduled run skipped: the previous run is still going (overlap: skip)"),
        OverlapQueued => f.write_str("Scheduled run queued until the previous run ends (overlap: queue)"),
        OverlapReplaced => f.write_str("Scheduled run replaces the previous run, which is being stopped (overlap: replace)"),
        Started {
            command,
            launch,
            pid,
            node,
            attempt,
            times,
        } => started_line(f, command, *launch, (*pid, node.as_deref()), *attempt, *times),
        LeaderExited {
            pid,
            status,
            signal,
            grace,
        } => leader_exited(f, *pid, *status, *signal, *grace),
        Ended {
            end,
            success,
            success_codes,
            uptime,
            usage,
        } => ended_line(f, end, *success, success_codes, *uptime, *usage),
        Retrying { delay, why } => write!(f, "Restarting in {} ({why})", fmt_dur(*delay)),
        GaveUp { attempts } => {
            write!(f, "Failed after {attempts} attempts; giving up on this run")
        }
        Stopping { reason, grace, how } => stopping_line(f, *reason, *grace, *how),
        TakesOver { was, same_process } => write!(
            f,
            "Takes over from `{was}` (numprocs changed): {}",
            if *same_process {
                "same process, same counters"
            } else {
                "same counters"
            }
        ),
        Waiting(why) => write!(f, "Waiting: {why}"),
        Skipped(why) => write!(f, "SKIPPED: {why}"),
        Fatal(why) => write!(f, "FATAL: {why}; not started again until a reload changes it"),
        ServiceRestart { delay } => {
            write!(f, "Restarting in {} (autorestart: always)", fmt_dur(*delay))
        }
        StartCommand => f.write_str("Start command: running it now"),
        StopCommand => write!(
            f,
            "Stop command: not started again until `bansuri start {name}`"
        ),
        RestartIdle => f.write_str("Restart command: nothing running, starting it now"),
        StartingAgain => f.write_str("Starting it again"),
        Checkpoint { signal, before } => write!(
            f,
            "checkpoint signal {}, {} before the job's end",
            signal_name(*signal),
            fmt_dur(*before)
        ),
        MemExceeded { rss, mem, stop } => {
            write!(
                f,
                "Memory over its request: peak RSS {}, mem {}",
                crate::resources::fmt_mem(*rss),
                crate::resources::fmt_mem(*mem)
            )?;
            if *stop {
                f.write_str("; stopping it (mem-exceeded: stop)")
            } else {
                f.write_str(" (mem-exceeded: warn, told once per run)")
            }
        }
    }
}

fn timed_out(f: &mut Formatter<'_>, limit: Duration, grace: Duration, how: StopHow) -> fmt::Result {
    match how {
        StopHow::InProcess => write!(
            f,
            "Timed out after {}: asking the in-process task to stop, abandoning it in {}",
            fmt_dur(limit),
            fmt_dur(grace)
        ),
        StopHow::Group { signal, pid } => write!(
            f,
            "Timed out after {}: sending SIG{} to its process group (pid {pid}), SIGKILL in {}",
            fmt_dur(limit),
            signal.name(),
            fmt_dur(grace)
        ),
    }
}

fn grace_over(f: &mut Formatter<'_>, grace: Duration, how: StopHow) -> fmt::Result {
    match how {
        StopHow::InProcess => write!(
            f,
            "Still running {} after the stop request: abandoning its thread",
            fmt_dur(grace)
        ),
        StopHow::Group { signal, pid } => write!(
            f,
            "Still running at the end of its stop grace ({}) after SIG{}: sending SIGKILL to its process group (pid {pid})",
            fmt_dur(grace),
            signal.name()
        ),
    }
}

fn stopping_line(
    f: &mut Formatter<'_>,
    reason: StopReason,
    grace: Duration,
    how: StopHow,
) -> fmt::Result {
    let why = reason.words();
    match how {
        StopHow::InProcess => write!(
            f,
            "Stopping ({why}): asking the in-process task to stop, abandoning it in {}",
            fmt_dur(grace)
        ),
        StopHow::Group { signal, pid } => write!(
            f,
            "Stopping ({why}): SIG{} to process group {pid}, SIGKILL in {}",
            signal.name(),
            fmt_dur(grace)
        ),
    }
}

fn leader_exited(
    f: &mut Formatter<'_>,
    pid: u32,
    status: ExitStatus,
    signal: StopSignal,
    grace: Duration,
) -> fmt::Result {
    let how = match status {
        ExitStatus::Code(c) => format!("with code {c}"),
        ExitStatus::Signal(s) => format!("killed by {} ({})", signal_name(s), shell_code(s)),
    };
    write!(
        f,
        "Main process (pid {pid}) exited {how} but left processes in its group: SIG{} to the group, SIGKILL in {}",
        signal.name(),
        fmt_dur(grace)
    )
}

fn ended_line(
    f: &mut Formatter<'_>,
    end: &ProcessEnd,
    success: bool,
    success_codes: &[i32],
    uptime: Option<Duration>,
    usage: Option<Usage>,
) -> fmt::Result {
    end_line(f, end, success, success_codes)?;
    let mut parts = Vec::new();
    if let Some(u) = uptime {
        parts.push(format!("ran {}", fmt_dur(u)));
    }
    if let Some(u) = usage {
        parts.push(format!("cpu {:.2}s", u.cpu.as_secs_f64()));
        parts.push(format!("max RSS {}", fmt_bytes(u.max_rss)));
    }
    if parts.is_empty() {
        Ok(())
    } else {
        write!(f, " ({})", parts.join(", "))
    }
}

impl Display for RetryWhy {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            RetryWhy::FailedStart {
                n,
                start_time,
                start_retries,
            } => write!(
                f,
                "failed start within starttime {}; retry {n} of startretries {start_retries}",
                fmt_dur(*start_time)
            ),
            RetryWhy::Policy {
                attempt,
                times,
                autorestart,
            } => write!(
                f,
                "{}, {}",
                attempt_text(*attempt, *times),
                if *autorestart {
                    "autorestart"
                } else {
                    "on-fail: restart"
                }
            ),
        }
    }
}

fn started_line(
    f: &mut Formatter<'_>,
    command: &str,
    launch: Launch,
    (pid, node): (u32, Option<&str>),
    attempt: u32,
    times: u32,
) -> fmt::Result {
    let tries = (times > 1).then(|| attempt_text(attempt, times));
    let what = match launch {
        Launch::InProcess => {
            write!(f, "Running in-process task `{command}`")?;
            return match tries {
                Some(t) => write!(f, " ({t})"),
                None => Ok(()),
            };
        }
        Launch::Shell => "Executing shell command",
        Launch::Python => "Running Python task",
        Launch::Argv => "Executing",
    };
    write!(f, "{what}: {command} (pid {pid}")?;
    if let Some(node) = node {
        write!(f, " on {node}")?;
    }
    if let Some(t) = tries {
        write!(f, ", {t}")?;
    }
    f.write_str(")")
}

fn end_line(
    f: &mut Formatter<'_>,
    end: &ProcessEnd,
    success: bool,
    success_codes: &[i32],
) -> fmt::Result {
    match end {
        ProcessEnd::Exited(c) if success => write!(f, "Process finished with code {c}"),
        ProcessEnd::Exited(126) => f.write_str("Process finished with code 126: the command was found but could not be executed (check its permissions and its #! line)"),
        ProcessEnd::Exited(127) => f.write_str("Process finished with code 127: command not found (check the command's spelling, its path and PATH)"),
        ProcessEnd::Exited(c) => write!(
            f,
            "Process finished with code {c} (failure: success-codes are {success_codes:?})"
        ),
        ProcessEnd::Signaled(s) if success => write!(
            f,
            "Process killed by {} ({}): a success code",
            signal_name(*s),
            shell_code(*s)
        ),
        ProcessEnd::Signaled(s) => {
            write!(f, "Process killed by {} ({})", signal_name(*s), shell_code(*s))
        }
        ProcessEnd::TimedOut(t) => write!(f, "Process stopped: timed out after {}", fmt_dur(*t)),
        ProcessEnd::Stopped(StopReason::Timeout) => f.write_str("Process stopped (timeout)"),
        ProcessEnd::Stopped(reason) => write!(f, "Process stopped ({})", reason.words()),
        ProcessEnd::SpawnFailed(reason) => write!(f, "Failed to start: {reason}"),
        ProcessEnd::Lost(node) => write!(
            f,
            "Failed: node {node} lost (its agent is gone; the process there was killed with it)"
        ),
    }
}

/// The lines of issue 18's nodes: the agents starting, a node ready, a node lost.
fn node_line(f: &mut Formatter<'_>, m: &MasterEvent) -> fmt::Result {
    match m {
        MasterEvent::AgentsStarting { nodes } => write!(
            f,
            "Starting agents on {} other node(s) in one job step: {}",
            nodes.len(),
            nodes.join(", ")
        ),
        MasterEvent::NodeReady { node, has } => write!(f, "Node {node} ready: {has}"),
        MasterEvent::NodeLost { node, reason, runs } => write!(
            f,
            "Node {node} lost: {reason}; its {runs} run(s) failed and it takes no more runs"
        ),
        _ => Ok(()),
    }
}

fn master_line(f: &mut Formatter<'_>, m: &MasterEvent) -> fmt::Result {
    match m {
        MasterEvent::Configured {
            tasks,
            max_parallel,
        } => {
            write!(
                f,
                "{tasks} task{} configured; ",
                if *tasks == 1 { "" } else { "s" }
            )?;
            match max_parallel {
                Some(p) => write!(f, "at most {p} at once"),
                None => f.write_str("no limit on parallel runs"),
            }
        }
        MasterEvent::ClockChanged { wall } => write!(
            f,
            "The wall clock changed (now {}): cron schedules re-aimed",
            fmt_wall(*wall)
        ),
        MasterEvent::Reloaded(summary) => write!(f, "{summary}"),
        MasterEvent::ForcedKill { cause } => write!(
            f,
            "Received {} again: killing every remaining process group now",
            cause_words(cause)
        ),
        MasterEvent::ShutdownBegun { cause, .. } => {
            match cause {
                ShutdownCause::Planned(why) => write!(f, "Planned shutdown ({why})")?,
                c => write!(f, "Received {}", cause_words(c))?,
            }
            f.write_str(": shutdown of ")?;
            shutdown_rest(f, m)
        }
        MasterEvent::Done {
            shutdown,
            failed,
            code,
        } => {
            if *shutdown {
                f.write_str("Shutdown complete")?;
            } else if *failed > 0 {
                write!(f, "All tasks done; {failed} failed")?;
            } else {
                f.write_str("All tasks done; all succeeded")?;
            }
            write!(f, ": exiting with code {code}")
        }
        MasterEvent::SummaryHeader { width } => write!(
            f,
            "{:<width$}  {:<10}  {:>5}  {:>8}  {:>9}  {:>9}  LAST",
            "TASK", "STATE", "RUNS", "FAILURES", "CPU TIME", "PEAK RSS"
        ),
        MasterEvent::SummaryRow(row) => summary_row(f, row),
        MasterEvent::ArraySummary {
            name,
            elements,
            succeeded,
            failed,
        } => array_summary(f, name, *elements, *succeeded, *failed),
        MasterEvent::KillBy { why, when } => {
            write!(
                f,
                "{why}: bansuri sends SIGKILL to whatever is still running "
            )?;
            match when {
                Some((wall, within)) => {
                    write!(f, "by {} (in {})", fmt_wall(*wall), fmt_dur(*within))
                }
                None => f.write_str("now"),
            }
        }
        MasterEvent::ShutdownPlanned { at, within, why } => {
            let in_words = match within {
                Some(d) => format!("in {}", fmt_dur(*d)),
                None => "now".to_owned(),
            };
            write!(
                f,
                "Graceful shutdown planned at {} ({in_words}): {why}",
                fmt_wall(*at)
            )
        }
        MasterEvent::PlannedCancelled { why } => write!(f, "Planned shutdown cancelled: {why}"),
        MasterEvent::NotRunForTime { tasks } => write!(
            f,
            "Not run for lack of time (would have ended after the job's time limit): {}; --resume runs them next time",
            tasks.join(", ")
        ),
        MasterEvent::Requeue { runs_left } => write!(
            f,
            "The time limit ends the job with {runs_left} run(s) left: requeueing it (requeue_on_end, scontrol requeue)"
        ),
        MasterEvent::AgentsStarting { .. }
        | MasterEvent::NodeReady { .. }
        | MasterEvent::NodeLost { .. } => node_line(f, m),
    }
}

/// "SIGTERM", "a shutdown request".
fn cause_words(cause: &ShutdownCause) -> String {
    match cause {
        ShutdownCause::Signal(n) => signal_name(*n),
        ShutdownCause::Request => "a shutdown request".to_owned(),
        ShutdownCause::Planned(why) => format!("the planned shutdown ({why})"),
    }
}

/// What follows "shutdown of" in [`MasterEvent::ShutdownBegun`]'s line: "2 running
/// processes (stop signal now, SIGKILL after 10s; send SIGTERM again to kill at once)".
fn shutdown_rest(f: &mut Formatter<'_>, m: &MasterEvent) -> fmt::Result {
    let MasterEvent::ShutdownBegun {
        cause,
        running,
        grace,
        sooner,
        hint,
    } = m
    else {
        return Ok(());
    };
    let after = match sooner {
        Some(k) => format!(
            "{}, sooner than the watchdog's {} (see above)",
            fmt_dur(*k),
            fmt_dur(*grace)
        ),
        None => fmt_dur(*grace),
    };
    write!(
        f,
        "{running} running process{} (stop signal now, SIGKILL after {after}",
        if *running == 1 { "" } else { "es" },
    )?;
    if *hint {
        write!(f, "; send {} again to kill at once", cause_words(cause))?;
    }
    f.write_str(")")
}

/// The answer to a `shutdown` request, from what the core did with it: the shutdown it
/// began, the SIGKILL of a second request, or nothing (already forced).
pub fn shutdown_reply(event: Option<&MasterEvent>) -> String {
    struct Rest<'a>(&'a MasterEvent);
    impl Display for Rest<'_> {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            shutdown_rest(f, self.0)
        }
    }
    match event {
        Some(m @ MasterEvent::ShutdownBegun { .. }) => format!("Shutdown started: {}", Rest(m)),
        Some(m @ MasterEvent::ForcedKill { .. }) => Event::Master(m.clone()).to_string(),
        _ => "Shutting down".to_owned(),
    }
}

/// `Array w: 50 elements: 49 succeeded, 1 failed, 0 not run` (issue 19).
fn array_summary(
    f: &mut Formatter<'_>,
    name: &str,
    elements: u64,
    succeeded: u64,
    failed: u64,
) -> fmt::Result {
    write!(
        f,
        "Array {name}: {elements} element{}: {succeeded} succeeded, {failed} failed, {} not run",
        if elements == 1 { "" } else { "s" },
        elements.saturating_sub(succeeded + failed)
    )
}

fn summary_row(f: &mut Formatter<'_>, r: &SummaryRow) -> fmt::Result {
    let last = r.last.as_ref().map_or("-".to_owned(), short_end);
    let cpu = format!("{:.2}s", r.cpu.as_secs_f64());
    let rss = if r.peak_rss == 0 {
        "-".to_owned()
    } else {
        fmt_bytes(r.peak_rss)
    };
    write!(
        f,
        "{:<width$}  {:<10}  {:>5}  {:>8}  {cpu:>9}  {rss:>9}  {last}",
        r.name,
        r.state.name(),
        r.runs,
        r.failures,
        width = r.width
    )
}

impl Display for ReloadSummary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.join(", "))
            }
        };
        write!(
            f,
            "Config reloaded: {} added{}, {} removed{}, {} changed{}",
            self.added.len(),
            list(&self.added),
            self.removed.len(),
            list(&self.removed),
            self.changed.len(),
            list(&self.changed),
        )?;
        if !self.rescheduled.is_empty() {
            write!(
                f,
                ", {} rescheduled{}",
                self.rescheduled.len(),
                list(&self.rescheduled)
            )?;
        }
        write!(f, ", {} kept", self.kept)
    }
}

impl Display for DepWait {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            DepWait::NotUp { dep, start_time } => write!(
                f,
                "dependency `{dep}` is not started yet (up {})",
                fmt_dur(*start_time)
            ),
            DepWait::NotSucceeded { dep } => {
                write!(f, "dependency `{dep}` has not succeeded yet")
            }
        }
    }
}

impl Display for DepFailure {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            DepFailure::NotInConfig(d) => write!(f, "dependency `{d}` is not in the config"),
            DepFailure::Disabled(d) => write!(f, "dependency `{d}` is disabled"),
            DepFailure::Fatal(d) => write!(f, "dependency `{d}` is FATAL"),
            DepFailure::Skipped(d) => write!(f, "dependency `{d}` was skipped"),
            DepFailure::Failed { dep, last } => {
                write!(f, "dependency `{dep}` failed")?;
                match last {
                    Some(e) => write!(f, " ({})", short_end(e)),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Display for FatalWhy {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exited {} times in a row before staying up {} (starttime; startretries: {}; last: {})",
            self.failed_starts,
            fmt_dur(self.start_time),
            self.start_retries,
            short_end(&self.last)
        )
    }
}

impl Display for Reason {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Skipped(why) => write!(f, "{why}"),
            Reason::Fatal(why) => write!(f, "{why}"),
        }
    }
}

impl Display for UnknownTask {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.suggestion {
            Suggestion::DidYouMean(k) => write!(f, "no task named `{name}`; did you mean `{k}`?"),
            Suggestion::NoTasks => write!(f, "no task named `{name}` (the config has no tasks)"),
            Suggestion::Known(all) => write!(
                f,
                "no task named `{name}`; the tasks are: {}",
                all.join(", ")
            ),
        }
    }
}

/// The message of an unknown task name, for clients and `status` (which report it as text).
impl From<UnknownTask> for String {
    fn from(u: UnknownTask) -> String {
        u.to_string()
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Start => "start",
            Command::Stop => "stop",
            Command::Restart => "restart",
        })
    }
}

impl Display for Reply {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Reply::NoSuchTask(u) => write!(f, "{u}"),
            Reply::ShuttingDown { command, task } => {
                write!(f, "cannot {command} `{task}`: bansuri is shutting down")
            }
            Reply::Disabled { task } => write!(
                f,
                "`{task}` is disabled in the config (enabled: false): set it to true there to run it"
            ),
            Reply::BeingStopped { task } => write!(
                f,
                "`{task}` is being stopped; it starts again once its processes have ended"
            ),
            Reply::AlreadyRunning { task, pid } => {
                write!(f, "`{task}` is already running (pid {pid})")
            }
            Reply::AlreadyStarting { task } => {
                write!(f, "`{task}` is already starting (waiting for a free slot)")
            }
            Reply::RetryNow { task, attempt } => {
                write!(f, "`{task}`: its retry (attempt {attempt}) starts now")
            }
            Reply::Started {
                task,
                schedule_goes_on,
            } => {
                write!(f, "started `{task}`")?;
                if *schedule_goes_on {
                    f.write_str(" (its schedule goes on)")?;
                }
                Ok(())
            }
            Reply::AlreadyStopped { task } => write!(f, "`{task}` is already stopped"),
            Reply::Stopping {
                task,
                signal,
                grace,
            } => write!(
                f,
                "stopping `{task}`: SIG{} to its process group, SIGKILL after {}; it stays stopped until `bansuri start {task}`",
                signal.name(),
                fmt_dur(*grace)
            ),
            Reply::Stopped { task } => write!(
                f,
                "stopped `{task}`; it stays stopped until `bansuri start {task}`"
            ),
            Reply::Restarting {
                task,
                signal,
                grace,
            } => write!(
                f,
                "restarting `{task}`: SIG{} to its process group (SIGKILL after {}), then it starts again",
                signal.name(),
                fmt_dur(*grace)
            ),
            Reply::Each(all) => {
                for (n, r) in all.iter().enumerate() {
                    if n > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{r}")?;
                }
                Ok(())
            }
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
        ProcessEnd::Stopped(StopReason::MemExceeded) => "stopped (memory)".to_owned(),
        ProcessEnd::SpawnFailed(_) => "failed to start".to_owned(),
        ProcessEnd::Lost(node) => format!("node {node} lost"),
    }
}

#[cfg(test)]
mod tests;
