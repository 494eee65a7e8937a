//! The words of every event and reply, byte for byte as the job log and control clients
//! have always had them (integration tests and users grep these lines), and each event's
//! level.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::core::Reply;
use crate::level::Level;
use crate::model::{TaskState, Usage};
use crate::schedule::{CronSchedule, CronTz};
use crate::spec::StopSignal;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at() -> DateTime<Utc> {
    "2026-01-19T10:02:30Z".parse().expect("RFC 3339")
}

fn task(what: TaskEvent) -> Event {
    Event::Task {
        task: "t".into(),
        what,
    }
}

/// The line and level of a task event.
fn said(what: TaskEvent) -> (String, Level) {
    let e = task(what);
    assert_eq!(e.task(), Some("t"));
    (e.to_string(), e.level())
}

fn master(m: MasterEvent) -> (String, Level) {
    let e = Event::Master(m);
    assert_eq!(e.task(), None);
    (e.to_string(), e.level())
}

fn info(s: &str) -> (String, Level) {
    (s.to_owned(), Level::Info)
}

fn warning(s: &str) -> (String, Level) {
    (s.to_owned(), Level::Warning)
}

fn error(s: &str) -> (String, Level) {
    (s.to_owned(), Level::Error)
}

const GROUP: StopHow = StopHow::Group {
    signal: StopSignal::Term,
    pid: 42,
};

// ----- task events ---------------------------------------------------------------------

#[test]
fn start_up_lines() {
    assert_eq!(
        said(TaskEvent::Disabled),
        info("Disabled (enabled: false): not started")
    );
    assert_eq!(
        said(TaskEvent::AutostartOff),
        info("autostart: false: not started (start it with `bansuri start t`)")
    );
    assert_eq!(
        said(TaskEvent::Resumed),
        info("Succeeded before with the same settings: not run again (--resume)")
    );
    assert_eq!(
        said(TaskEvent::OnceScheduled),
        ("Schedule: once at start-up".to_owned(), Level::Debug)
    );
    assert_eq!(
        said(TaskEvent::PeriodicNeverDone),
        warning("periodic task: with --exit-when-done bansuri runs until stopped, because this task can always run again")
    );
}

#[test]
fn timer_and_cron_lines() {
    let timer = Schedule::Timer(secs(30));
    assert_eq!(
        said(TaskEvent::TimerSet {
            schedule: timer.clone(),
            next: None
        }),
        info("Timer configured: every 30s")
    );
    assert_eq!(
        said(TaskEvent::TimerSet {
            schedule: timer,
            next: Some(at())
        }),
        info(&format!(
            "Timer configured: every 30s; next run {}",
            fmt_wall(at())
        ))
    );
    let cron = Schedule::Cron(CronSchedule::parse("*/5 * * * *", CronTz::Utc).expect("cron"));
    let words = schedule::describe(&cron);
    assert_eq!(
        said(TaskEvent::CronSet {
            schedule: cron.clone(),
            next: Some(at())
        }),
        info(&format!(
            "Cron configured: {words}; next run {}",
            fmt_wall(at())
        ))
    );
    assert_eq!(
        said(TaskEvent::CronSet {
            schedule: cron,
            next: None
        }),
        info(&format!(
            "Cron configured: {words}; it never matches: no run will start"
        ))
    );
}

#[test]
fn timeout_and_grace_lines() {
    assert_eq!(
        said(TaskEvent::TimedOut {
            limit: secs(30),
            grace: secs(10),
            how: GROUP
        }),
        warning(
            "Timed out after 30s: sending SIGTERM to its process group (pid 42), SIGKILL in 10s"
        )
    );
    assert_eq!(
        said(TaskEvent::TimedOut {
            limit: secs(30),
            grace: secs(10),
            how: StopHow::InProcess
        }),
        warning("Timed out after 30s: asking the in-process task to stop, abandoning it in 10s")
    );
    assert_eq!(
        said(TaskEvent::GraceOver {
            grace: secs(8),
            how: GROUP
        }),
        warning("Still running at the end of its stop grace (8s) after SIGTERM: sending SIGKILL to its process group (pid 42)")
    );
    assert_eq!(
        said(TaskEvent::GraceOver {
            grace: secs(8),
            how: StopHow::InProcess
        }),
        warning("Still running 8s after the stop request: abandoning its thread")
    );
}

#[test]
fn overlap_lines() {
    assert_eq!(
        said(TaskEvent::OverlapSkipped),
        info("Scheduled run skipped: the previous run is still going (overlap: skip)")
    );
    assert_eq!(
        said(TaskEvent::OverlapQueued),
        info("Scheduled run queued until the previous run ends (overlap: queue)")
    );
    assert_eq!(
        said(TaskEvent::OverlapReplaced),
        info("Scheduled run replaces the previous run, which is being stopped (overlap: replace)")
    );
}

#[test]
fn started_lines_by_launch_and_attempt() {
    let started = |launch, attempt, times| {
        said(TaskEvent::Started {
            command: "./t.sh".into(),
            launch,
            pid: 42,
            node: None,
            attempt,
            times,
        })
    };
    assert_eq!(
        started(Launch::Shell, 1, 1),
        info("Executing shell command: ./t.sh (pid 42)")
    );
    assert_eq!(
        started(Launch::Python, 2, 3),
        info("Running Python task: ./t.sh (pid 42, attempt 2/3)")
    );
    assert_eq!(
        started(Launch::Argv, 4, UNLIMITED_ATTEMPTS),
        info("Executing: ./t.sh (pid 42, attempt 4)")
    );
    assert_eq!(
        started(Launch::InProcess, 1, 1),
        info("Running in-process task `./t.sh`")
    );
    assert_eq!(
        started(Launch::InProcess, 2, 3),
        info("Running in-process task `./t.sh` (attempt 2/3)")
    );
    // A run on another node (issue 18) says where its pid is.
    assert_eq!(
        said(TaskEvent::Started {
            command: "./t.sh".into(),
            launch: Launch::Shell,
            pid: 42,
            node: Some("n2".into()),
            attempt: 2,
            times: 3,
        }),
        info("Executing shell command: ./t.sh (pid 42 on n2, attempt 2/3)")
    );
}

#[test]
fn leader_exited_lines() {
    let left = |status| {
        said(TaskEvent::LeaderExited {
            pid: 42,
            status,
            signal: StopSignal::Term,
            grace: secs(10),
        })
    };
    assert_eq!(
        left(ExitStatus::Code(0)),
        warning("Main process (pid 42) exited with code 0 but left processes in its group: SIGTERM to the group, SIGKILL in 10s")
    );
    assert_eq!(
        left(ExitStatus::Signal(9)),
        warning("Main process (pid 42) exited killed by SIGKILL (137) but left processes in its group: SIGTERM to the group, SIGKILL in 10s")
    );
}

#[test]
fn end_lines_with_their_levels() {
    let ended = |end, success, uptime, usage| {
        said(TaskEvent::Ended {
            end,
            success,
            success_codes: vec![0, 2],
            uptime,
            usage,
        })
    };
    let usage = Usage {
        cpu: Duration::from_millis(2500),
        max_rss: 200 << 20,
    };
    assert_eq!(
        ended(ProcessEnd::Exited(0), true, Some(secs(5)), Some(usage)),
        info("Process finished with code 0 (ran 5s, cpu 2.50s, max RSS 200.0 MB)")
    );
    assert_eq!(
        ended(ProcessEnd::Exited(1), false, Some(secs(5)), None),
        warning("Process finished with code 1 (failure: success-codes are [0, 2]) (ran 5s)")
    );
    assert_eq!(
        ended(ProcessEnd::Exited(126), false, None, None),
        warning("Process finished with code 126: the command was found but could not be executed (check its permissions and its #! line)")
    );
    assert_eq!(
        ended(ProcessEnd::Exited(127), false, None, None),
        warning("Process finished with code 127: command not found (check the command's spelling, its path and PATH)")
    );
    assert_eq!(
        ended(ProcessEnd::Signaled(9), true, None, None),
        info("Process killed by SIGKILL (137): a success code")
    );
    assert_eq!(
        ended(ProcessEnd::Signaled(9), false, Some(secs(1)), None),
        warning("Process killed by SIGKILL (137) (ran 1s)")
    );
    assert_eq!(
        ended(ProcessEnd::TimedOut(secs(30)), false, None, None),
        warning("Process stopped: timed out after 30s")
    );
    assert_eq!(
        ended(ProcessEnd::Stopped(StopReason::Timeout), false, None, None),
        warning("Process stopped (timeout)")
    );
    assert_eq!(
        ended(ProcessEnd::Stopped(StopReason::Shutdown), false, None, None),
        info("Process stopped (shutdown)")
    );
    assert_eq!(
        ended(
            ProcessEnd::SpawnFailed("no such file".into()),
            false,
            None,
            None
        ),
        error("Failed to start: no such file")
    );
}

#[test]
fn retry_lines() {
    let retry = |why| {
        said(TaskEvent::Retrying {
            delay: secs(2),
            why,
        })
    };
    assert_eq!(
        retry(RetryWhy::Policy {
            attempt: 2,
            times: 3,
            autorestart: false
        }),
        info("Restarting in 2s (attempt 2/3, on-fail: restart)")
    );
    assert_eq!(
        retry(RetryWhy::Policy {
            attempt: 3,
            times: UNLIMITED_ATTEMPTS,
            autorestart: true
        }),
        info("Restarting in 2s (attempt 3, autorestart)")
    );
    assert_eq!(
        retry(RetryWhy::FailedStart {
            n: 1,
            start_time: secs(2),
            start_retries: 3
        }),
        info("Restarting in 2s (failed start within starttime 2s; retry 1 of startretries 3)")
    );
    assert_eq!(
        said(TaskEvent::GaveUp { attempts: 3 }),
        error("Failed after 3 attempts; giving up on this run")
    );
    assert_eq!(
        said(TaskEvent::ServiceRestart { delay: secs(1) }),
        info("Restarting in 1s (autorestart: always)")
    );
}

#[test]
fn stopping_lines() {
    assert_eq!(
        said(TaskEvent::Stopping {
            reason: StopReason::Shutdown,
            grace: secs(8),
            how: GROUP
        }),
        info("Stopping (shutdown): SIGTERM to process group 42, SIGKILL in 8s")
    );
    assert_eq!(
        said(TaskEvent::Stopping {
            reason: StopReason::Replaced,
            grace: secs(8),
            how: StopHow::InProcess
        }),
        info("Stopping (replaced by a newer run): asking the in-process task to stop, abandoning it in 8s")
    );
}

#[test]
fn reload_and_command_lines() {
    assert_eq!(
        said(TaskEvent::TakesOver {
            was: "w".into(),
            same_process: true
        }),
        info("Takes over from `w` (numprocs changed): same process, same counters")
    );
    assert_eq!(
        said(TaskEvent::TakesOver {
            was: "w".into(),
            same_process: false
        }),
        info("Takes over from `w` (numprocs changed): same counters")
    );
    assert_eq!(
        said(TaskEvent::StartCommand),
        info("Start command: running it now")
    );
    assert_eq!(
        said(TaskEvent::StopCommand),
        info("Stop command: not started again until `bansuri start t`")
    );
    assert_eq!(
        said(TaskEvent::RestartIdle),
        info("Restart command: nothing running, starting it now")
    );
    assert_eq!(said(TaskEvent::StartingAgain), info("Starting it again"));
}

#[test]
fn dependency_lines_and_reasons() {
    assert_eq!(
        said(TaskEvent::Waiting(DepWait::NotUp {
            dep: "db".into(),
            start_time: secs(2)
        })),
        info("Waiting: dependency `db` is not started yet (up 2s)")
    );
    assert_eq!(
        said(TaskEvent::Waiting(DepWait::NotSucceeded {
            dep: "a".into()
        })),
        info("Waiting: dependency `a` has not succeeded yet")
    );
    let skipped = |f: DepFailure| said(TaskEvent::Skipped(f));
    assert_eq!(
        skipped(DepFailure::NotInConfig("x".into())),
        warning("SKIPPED: dependency `x` is not in the config")
    );
    assert_eq!(
        skipped(DepFailure::Disabled("x".into())),
        warning("SKIPPED: dependency `x` is disabled")
    );
    assert_eq!(
        skipped(DepFailure::Fatal("x".into())),
        warning("SKIPPED: dependency `x` is FATAL")
    );
    assert_eq!(
        skipped(DepFailure::Skipped("x".into())),
        warning("SKIPPED: dependency `x` was skipped")
    );
    assert_eq!(
        skipped(DepFailure::Failed {
            dep: "x".into(),
            last: None
        }),
        warning("SKIPPED: dependency `x` failed")
    );
    let failed = DepFailure::Failed {
        dep: "a".into(),
        last: Some(ProcessEnd::Exited(1)),
    };
    assert_eq!(
        Reason::Skipped(failed).to_string(),
        "dependency `a` failed (exit 1)"
    );
    let fatal = FatalWhy {
        failed_starts: 3,
        start_time: secs(2),
        start_retries: 2,
        last: ProcessEnd::Exited(1),
    };
    let why =
        "exited 3 times in a row before staying up 2s (starttime; startretries: 2; last: exit 1)";
    assert_eq!(Reason::Fatal(fatal.clone()).to_string(), why);
    assert_eq!(
        said(TaskEvent::Fatal(fatal)),
        error(&format!(
            "FATAL: {why}; not started again until a reload changes it"
        ))
    );
}

// ----- bansuri's own events ------------------------------------------------------------

#[test]
fn configured_clock_and_done_lines() {
    assert_eq!(
        master(MasterEvent::Configured {
            tasks: 1,
            max_parallel: None
        }),
        info("1 task configured; no limit on parallel runs")
    );
    assert_eq!(
        master(MasterEvent::Configured {
            tasks: 3,
            max_parallel: Some(2)
        }),
        info("3 tasks configured; at most 2 at once")
    );
    assert_eq!(
        master(MasterEvent::ClockChanged { wall: at() }),
        warning(&format!(
            "The wall clock changed (now {}): cron schedules re-aimed",
            fmt_wall(at())
        ))
    );
    let done = |shutdown, failed, code| {
        master(MasterEvent::Done {
            shutdown,
            failed,
            code,
        })
    };
    assert_eq!(
        done(true, 0, 0),
        info("Shutdown complete: exiting with code 0")
    );
    assert_eq!(
        done(false, 2, 3),
        info("All tasks done; 2 failed: exiting with code 3")
    );
    assert_eq!(
        done(false, 0, 0),
        info("All tasks done; all succeeded: exiting with code 0")
    );
}

#[test]
fn reload_summary_line() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        master(MasterEvent::Reloaded(ReloadSummary {
            kept: 2,
            ..ReloadSummary::default()
        })),
        info("Config reloaded: 0 added, 0 removed, 0 changed, 2 kept")
    );
    assert_eq!(
        master(MasterEvent::Reloaded(ReloadSummary {
            added: names(&["w:1", "w:2"]),
            removed: names(&["x"]),
            changed: names(&["w:0"]),
            rescheduled: names(&["t"]),
            kept: 1,
        })),
        info("Config reloaded: 2 added (w:1, w:2), 1 removed (x), 1 changed (w:0), 1 rescheduled (t), 1 kept")
    );
}

#[test]
fn shutdown_lines_and_the_reply_to_a_shutdown_request() {
    let begun = |cause, running, sooner, hint| MasterEvent::ShutdownBegun {
        cause,
        running,
        grace: secs(120),
        sooner,
        hint,
    };
    assert_eq!(
        master(begun(ShutdownCause::Signal(15), 2, None, true)),
        info("Received SIGTERM: shutdown of 2 running processes (stop signal now, SIGKILL after 2m; send SIGTERM again to kill at once)")
    );
    assert_eq!(
        master(begun(ShutdownCause::Signal(15), 1, Some(secs(8)), false)),
        info("Received SIGTERM: shutdown of 1 running process (stop signal now, SIGKILL after 8s, sooner than the watchdog's 2m (see above))")
    );
    assert_eq!(
        master(begun(ShutdownCause::Planned("the job ends".into()), 0, None, false)),
        info("Planned shutdown (the job ends): shutdown of 0 running processes (stop signal now, SIGKILL after 2m)")
    );
    let request = begun(ShutdownCause::Request, 2, None, true);
    assert_eq!(
        master(request.clone()),
        info("Received a shutdown request: shutdown of 2 running processes (stop signal now, SIGKILL after 2m; send a shutdown request again to kill at once)")
    );
    assert_eq!(
        shutdown_reply(Some(&request)),
        "Shutdown started: 2 running processes (stop signal now, SIGKILL after 2m; send a shutdown request again to kill at once)"
    );
    let again = MasterEvent::ForcedKill {
        cause: ShutdownCause::Request,
    };
    assert_eq!(
        master(again.clone()),
        warning("Received a shutdown request again: killing every remaining process group now")
    );
    assert_eq!(
        shutdown_reply(Some(&again)),
        "Received a shutdown request again: killing every remaining process group now"
    );
    assert_eq!(shutdown_reply(None), "Shutting down");
    assert_eq!(
        master(MasterEvent::ForcedKill {
            cause: ShutdownCause::Signal(2)
        }),
        warning("Received SIGINT again: killing every remaining process group now")
    );
}

#[test]
fn deadline_lines() {
    assert_eq!(
        master(MasterEvent::KillBy {
            why: "Slurm SIGKILLs the job".into(),
            when: Some((at(), secs(8)))
        }),
        info(&format!(
            "Slurm SIGKILLs the job: bansuri sends SIGKILL to whatever is still running by {} (in 8s)",
            fmt_wall(at())
        ))
    );
    assert_eq!(
        master(MasterEvent::KillBy {
            why: "Slurm SIGKILLs the job".into(),
            when: None
        }),
        info("Slurm SIGKILLs the job: bansuri sends SIGKILL to whatever is still running now")
    );
    assert_eq!(
        master(MasterEvent::ShutdownPlanned {
            at: at(),
            within: Some(secs(60)),
            why: "stop_before_end is 1m".into()
        }),
        info(&format!(
            "Graceful shutdown planned at {} (in 1m): stop_before_end is 1m",
            fmt_wall(at())
        ))
    );
    assert_eq!(
        master(MasterEvent::ShutdownPlanned {
            at: at(),
            within: None,
            why: "late".into()
        }),
        info(&format!(
            "Graceful shutdown planned at {} (now): late",
            fmt_wall(at())
        ))
    );
    assert_eq!(
        master(MasterEvent::PlannedCancelled {
            why: "no end time".into()
        }),
        info("Planned shutdown cancelled: no end time")
    );
}

#[test]
fn summary_table_lines() {
    assert_eq!(
        master(MasterEvent::SummaryHeader { width: 4 }),
        info("TASK  STATE        RUNS  FAILURES   CPU TIME   PEAK RSS  LAST")
    );
    let row = |peak_rss, last| {
        master(MasterEvent::SummaryRow(SummaryRow {
            width: 4,
            name: "a".into(),
            state: TaskState::Success,
            runs: 1,
            failures: 0,
            cpu: Duration::from_millis(2500),
            peak_rss,
            last,
        }))
    };
    assert_eq!(
        row(200 << 20, Some(ProcessEnd::Exited(0))),
        info("a     SUCCESS         1         0      2.50s   200.0 MB  exit 0")
    );
    assert_eq!(
        row(0, None),
        info("a     SUCCESS         1         0      2.50s          -  -")
    );
}

#[test]
fn short_ends_for_tables() {
    let cases = [
        (ProcessEnd::Exited(0), "exit 0"),
        (ProcessEnd::Signaled(9), "SIGKILL (137)"),
        (ProcessEnd::TimedOut(secs(30)), "timeout 30s"),
        (ProcessEnd::Stopped(StopReason::Timeout), "timeout"),
        (
            ProcessEnd::Stopped(StopReason::Shutdown),
            "stopped (shutdown)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Replaced),
            "stopped (replaced)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Leftovers),
            "stopped (leftovers)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Removed),
            "stopped (removed)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Changed),
            "stopped (changed)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Disabled),
            "stopped (disabled)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Command),
            "stopped (stop command)",
        ),
        (
            ProcessEnd::Stopped(StopReason::Restart),
            "stopped (restart)",
        ),
        (
            ProcessEnd::Stopped(StopReason::MemExceeded),
            "stopped (memory)",
        ),
        (ProcessEnd::SpawnFailed("x".into()), "failed to start"),
    ];
    for (end, words) in cases {
        assert_eq!(short_end(&end), words, "{end:?}");
    }
}

#[test]
fn allocation_lines() {
    assert_eq!(
        said(TaskEvent::Checkpoint {
            signal: libc::SIGUSR1,
            before: secs(600),
        }),
        info("checkpoint signal SIGUSR1, 10m before the job's end")
    );
    assert_eq!(
        said(TaskEvent::MemExceeded {
            rss: 5 << 30,
            mem: 4 << 30,
            stop: false,
        }),
        warning("Memory over its request: peak RSS 5 GiB, mem 4 GiB (mem-exceeded: warn, told once per run)")
    );
    assert_eq!(
        said(TaskEvent::MemExceeded {
            rss: (3 << 29) + (1 << 20),
            mem: 1 << 30,
            stop: true,
        }),
        error("Memory over its request: peak RSS 1.5 GiB, mem 1 GiB; stopping it (mem-exceeded: stop)")
    );
    assert_eq!(
        said(TaskEvent::Stopping {
            reason: StopReason::MemExceeded,
            grace: secs(8),
            how: GROUP
        }),
        info("Stopping (over its memory request): SIGTERM to process group 42, SIGKILL in 8s")
    );
    // A run stopped for its memory ended as a failure: a warning, like a timeout.
    assert_eq!(
        said(TaskEvent::Ended {
            end: ProcessEnd::Stopped(StopReason::MemExceeded),
            success: false,
            success_codes: vec![0],
            uptime: Some(secs(5)),
            usage: None,
        }),
        warning("Process stopped (over its memory request) (ran 5s)")
    );
    assert_eq!(
        master(MasterEvent::NotRunForTime {
            tasks: vec!["train".into(), "eval".into()],
        }),
        warning("Not run for lack of time (would have ended after the job's time limit): train, eval; --resume runs them next time")
    );
    assert_eq!(
        master(MasterEvent::Requeue { runs_left: 3 }),
        info("The time limit ends the job with 3 run(s) left: requeueing it (requeue_on_end, scontrol requeue)")
    );
}

// ----- replies -------------------------------------------------------------------------

fn answered(r: Reply) -> (bool, String) {
    (r.ok(), r.to_string())
}

#[test]
fn refusals() {
    let unknown = |suggestion| {
        Reply::NoSuchTask(UnknownTask {
            name: "moniter".into(),
            suggestion,
        })
    };
    assert_eq!(
        answered(unknown(Suggestion::DidYouMean("monitor".into()))),
        (
            false,
            "no task named `moniter`; did you mean `monitor`?".into()
        )
    );
    assert_eq!(
        answered(unknown(Suggestion::Known(vec!["a".into(), "b".into()]))),
        (false, "no task named `moniter`; the tasks are: a, b".into())
    );
    assert_eq!(
        answered(unknown(Suggestion::NoTasks)),
        (
            false,
            "no task named `moniter` (the config has no tasks)".into()
        )
    );
    let as_string: String = UnknownTask {
        name: "x".into(),
        suggestion: Suggestion::NoTasks,
    }
    .into();
    assert_eq!(as_string, "no task named `x` (the config has no tasks)");
    assert_eq!(
        answered(Reply::ShuttingDown {
            command: Command::Restart,
            task: "m".into()
        }),
        (false, "cannot restart `m`: bansuri is shutting down".into())
    );
    assert_eq!(
        answered(Reply::Disabled { task: "off".into() }),
        (
            false,
            "`off` is disabled in the config (enabled: false): set it to true there to run it"
                .into()
        )
    );
}

#[test]
fn start_replies() {
    let t = || "t".to_owned();
    assert_eq!(
        answered(Reply::BeingStopped { task: t() }),
        (
            true,
            "`t` is being stopped; it starts again once its processes have ended".into()
        )
    );
    assert_eq!(
        answered(Reply::AlreadyRunning { task: t(), pid: 42 }),
        (true, "`t` is already running (pid 42)".into())
    );
    assert_eq!(
        answered(Reply::AlreadyStarting { task: t() }),
        (
            true,
            "`t` is already starting (waiting for a free slot)".into()
        )
    );
    assert_eq!(
        answered(Reply::RetryNow {
            task: t(),
            attempt: 2
        }),
        (true, "`t`: its retry (attempt 2) starts now".into())
    );
    assert_eq!(
        answered(Reply::Started {
            task: t(),
            schedule_goes_on: false
        }),
        (true, "started `t`".into())
    );
    assert_eq!(
        answered(Reply::Started {
            task: t(),
            schedule_goes_on: true
        }),
        (true, "started `t` (its schedule goes on)".into())
    );
}

#[test]
fn stop_and_restart_replies() {
    let t = || "t".to_owned();
    assert_eq!(
        answered(Reply::AlreadyStopped { task: t() }),
        (true, "`t` is already stopped".into())
    );
    assert_eq!(
        answered(Reply::Stopping {
            task: t(),
            signal: StopSignal::Term,
            grace: secs(10)
        }),
        (true, "stopping `t`: SIGTERM to its process group, SIGKILL after 10s; it stays stopped until `bansuri start t`".into())
    );
    assert_eq!(
        answered(Reply::Stopped { task: t() }),
        (
            true,
            "stopped `t`; it stays stopped until `bansuri start t`".into()
        )
    );
    assert_eq!(
        answered(Reply::Restarting {
            task: t(),
            signal: StopSignal::Int,
            grace: secs(10)
        }),
        (
            true,
            "restarting `t`: SIGINT to its process group (SIGKILL after 10s), then it starts again"
                .into()
        )
    );
}

#[test]
fn a_program_gets_one_line_per_instance_and_fails_if_one_does() {
    let each = Reply::Each(vec![
        Reply::AlreadyStopped { task: "w:0".into() },
        Reply::Stopped { task: "w:1".into() },
    ]);
    assert_eq!(
        answered(each),
        (
            true,
            "`w:0` is already stopped\nstopped `w:1`; it stays stopped until `bansuri start w:1`"
                .into()
        )
    );
    let each = Reply::Each(vec![
        Reply::Started {
            task: "w:0".into(),
            schedule_goes_on: false,
        },
        Reply::Disabled { task: "w:1".into() },
    ]);
    assert!(!each.ok());
}

#[test]
fn array_summary_line() {
    let line = |elements, succeeded, failed| {
        master(MasterEvent::ArraySummary {
            name: "sweep".into(),
            elements,
            succeeded,
            failed,
        })
    };
    assert_eq!(
        line(100_000, 99_990, 4),
        info("Array sweep: 100000 elements: 99990 succeeded, 4 failed, 6 not run")
    );
    assert_eq!(
        line(1, 1, 0),
        info("Array sweep: 1 element: 1 succeeded, 0 failed, 0 not run")
    );
}
