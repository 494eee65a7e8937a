//! When the core asks for notifications (`Action::Notify`), on the fake clock.

use super::*;
use crate::spec::{Notify, NotifyEvent, NotifyOn};

/// One Notify action as seen in the trace.
#[derive(Debug, Clone, PartialEq)]
struct Told {
    at: Duration,
    event: NotifyEvent,
    end: ProcessEnd,
    attempt: u32,
    attempts: u32,
}

impl Harness {
    fn told(&self, task: &str) -> Vec<Told> {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Notify {
                    task: t,
                    event,
                    end,
                    attempt,
                    attempts,
                    at,
                    run,
                } if t.name == task => {
                    assert_eq!(*at, r.now.wall, "the notice carries the time of the end");
                    assert_eq!(self.run_task[run], task, "the notice names the ended run");
                    Some(Told {
                        at: r.t(),
                        event: *event,
                        end: end.clone(),
                        attempt: *attempt,
                        attempts: *attempts,
                    })
                }
                _ => None,
            })
            .collect()
    }
}

fn mail(t: TaskSpec) -> TaskSpec {
    TaskSpec {
        notify: Notify::Command,
        ..t
    }
}

fn on(t: TaskSpec, failure: bool, success: bool, recovery: bool) -> TaskSpec {
    TaskSpec {
        notify_on: NotifyOn {
            failure,
            success,
            recovery,
            attempt: false,
        },
        ..t
    }
}

fn failure(at: Duration, end: ProcessEnd, attempt: u32, attempts: u32) -> Told {
    Told {
        at,
        event: NotifyEvent::Failure,
        end,
        attempt,
        attempts,
    }
}

#[test]
fn final_failure_is_told_once_after_the_last_attempt() {
    let t = TaskSpec {
        restart_delay: secs(1),
        ..mail(retrying(task("a"), 3))
    };
    let mut h = Harness::new(vec![t]);
    h.script("a", Script::exits(secs(2), 1));
    h.start();
    h.step(secs(60));
    // Attempts at 0, 3 (2 s run + 1 s), 7 (+2 s backoff): the third fails at 9 s.
    assert_eq!(h.spawns("a"), [(secs(0), 1), (secs(3), 2), (secs(7), 3)]);
    assert_eq!(
        h.told("a"),
        [failure(secs(9), ProcessEnd::Exited(1), 3, 3)],
        "{}",
        h.job_log()
    );
    // The notice follows the lines that say what happened.
    let after = h.events("a").last().cloned().unwrap();
    assert_eq!(after.1, TaskEvent::GaveUp { attempts: 3 }, "{after:?}");
}

#[test]
fn notify_on_attempt_tells_each_failed_attempt_as_the_manual_does() {
    let mut t = TaskSpec {
        restart_delay: secs(1),
        ..mail(retrying(task("a"), 3))
    };
    t.notify_on.attempt = true;
    let mut h = Harness::new(vec![t]);
    h.script("a", Script::exits(secs(2), 1));
    h.start();
    h.step(secs(60));
    let attempt = |at, n| Told {
        event: NotifyEvent::Attempt,
        ..failure(at, ProcessEnd::Exited(1), n, 3)
    };
    assert_eq!(
        h.told("a"),
        [
            attempt(secs(2), 1),
            attempt(secs(5), 2),
            failure(secs(9), ProcessEnd::Exited(1), 3, 3)
        ],
        "{}",
        h.job_log()
    );
}

#[test]
fn without_notify_nothing_is_told() {
    let mut h = Harness::new(vec![retrying(task("a"), 2)]);
    h.script("a", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(30));
    assert_eq!(h.stats("a").failures, 2, "each failed attempt");
    assert!(h.told("a").is_empty());
}

#[test]
fn periodic_task_is_told_about_each_failed_run_and_the_timer_keeps_its_rate() {
    let mut h = Harness::new(vec![mail(timer("a", secs(10)))]);
    h.script("a", Script::exits(ms(500), 2));
    h.start();
    h.step(ms(30_600));
    assert_eq!(h.spawn_times("a"), [0, 10, 20, 30].map(secs));
    let at: Vec<Duration> = h.told("a").iter().map(|t| t.at).collect();
    assert_eq!(at, [500, 10_500, 20_500, 30_500].map(ms));
    assert!(h
        .told("a")
        .iter()
        .all(|t| t.attempts == 1 && t.attempt == 1));
}

#[test]
fn timeout_signal_and_spawn_failure_are_failures_with_their_end() {
    let t = TaskSpec {
        timeout: Some(secs(30)),
        stop_time: Some(secs(5)),
        ..mail(task("slow"))
    };
    let mut h = Harness::new(vec![t, mail(task("crash")), mail(task("missing"))]);
    h.script("slow", Script::forever().obeys_stop_after(secs(1)));
    h.script("crash", Script::forever());
    h.fail_spawn.insert("missing".into());
    h.start();
    h.step(secs(2));
    h.killed("crash", libc::SIGSEGV);
    h.step(secs(60));
    assert_eq!(
        h.told("slow"),
        [failure(secs(31), ProcessEnd::TimedOut(secs(30)), 1, 1)]
    );
    assert_eq!(
        h.told("crash"),
        [failure(secs(2), ProcessEnd::Signaled(libc::SIGSEGV), 1, 1)]
    );
    let missing = h.told("missing");
    assert_eq!(missing.len(), 1);
    assert!(matches!(missing[0].end, ProcessEnd::SpawnFailed(_)));
}

#[test]
fn stopped_runs_are_not_failures() {
    let mut h = Harness::new(vec![mail(task("a"))]);
    h.script("a", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(5));
    h.shutdown();
    h.step(secs(5));
    assert!(h.told("a").is_empty(), "{}", h.job_log());
}

#[test]
fn recovery_is_the_first_success_after_a_final_failure() {
    let t = on(mail(timer("a", secs(10))), true, false, true);
    let mut h = Harness::new(vec![t]);
    // fail, fail, ok, ok, fail, ok
    for code in [1, 1, 0, 0, 1, 0] {
        h.script_next("a", Script::exits(secs(1), code));
    }
    h.start();
    h.step(secs(55));
    let events: Vec<(Duration, NotifyEvent)> =
        h.told("a").iter().map(|t| (t.at, t.event)).collect();
    use NotifyEvent::*;
    assert_eq!(
        events,
        [
            (secs(1), Failure),
            (secs(11), Failure),
            (secs(21), Recovery),
            (secs(41), Failure),
            (secs(51), Recovery),
        ]
    );
}

#[test]
fn success_and_recovery_are_told_only_when_listed() {
    // success only: every success, failures not told, a recovery counts as a success.
    let mut h = Harness::new(vec![on(mail(timer("a", secs(10))), false, true, false)]);
    for code in [0, 1, 0] {
        h.script_next("a", Script::exits(secs(1), code));
    }
    h.start();
    h.step(secs(25));
    let events: Vec<NotifyEvent> = h.told("a").iter().map(|t| t.event).collect();
    assert_eq!(events, [NotifyEvent::Success, NotifyEvent::Success]);

    // success and recovery: one notice per run, the recovery instead of a success.
    let mut h = Harness::new(vec![on(mail(timer("a", secs(10))), false, true, true)]);
    for code in [0, 1, 0] {
        h.script_next("a", Script::exits(secs(1), code));
    }
    h.start();
    h.step(secs(25));
    let events: Vec<NotifyEvent> = h.told("a").iter().map(|t| t.event).collect();
    assert_eq!(events, [NotifyEvent::Success, NotifyEvent::Recovery]);
}

#[test]
fn a_retry_that_succeeds_is_no_failure_and_no_recovery() {
    let t = on(mail(retrying(task("a"), 3)), true, false, true);
    let mut h = Harness::new(vec![t]);
    h.script_next("a", Script::exits(secs(1), 1));
    h.script_next("a", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(30));
    // The failed attempt is counted; the run succeeded: nothing is told.
    assert_eq!(h.stats("a").failures, 1);
    assert_eq!(h.state("a"), TaskState::Success);
    assert!(h.told("a").is_empty(), "{:?}", h.told("a"));
}

#[test]
fn changing_notify_on_reload_restarts_nothing() {
    let g = Globals {
        notify_command: Some("cat".into()),
        ..Globals::default()
    };
    let mut h = Harness::build(g.clone(), Mode::default(), vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(5));
    let t = on(mail(task("a")), true, true, true);
    h.reload(g, vec![t]);
    h.step(secs(5));
    assert!(h.signals("a").is_empty(), "{}", h.job_log());
    assert_eq!(h.spawn_times("a"), [secs(0)]);
    // The running run now notifies with the new settings.
    h.exit("a", 0);
    assert_eq!(h.told("a").len(), 1);
    assert_eq!(h.told("a")[0].event, NotifyEvent::Success);
}
