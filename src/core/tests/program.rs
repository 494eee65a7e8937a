//! Fake-clock tests of the program model: autorestart, starttime/startretries (FATAL),
//! autostart, depends-on (WAITING, SKIPPED).

use super::*;

fn service(name: &str) -> TaskSpec {
    TaskSpec {
        on_fail: OnFail::Restart,
        times: UNLIMITED_ATTEMPTS,
        restart_on_success: true,
        ..task(name)
    }
}

fn unexpected(name: &str) -> TaskSpec {
    TaskSpec {
        on_fail: OnFail::Restart,
        times: UNLIMITED_ATTEMPTS,
        ..task(name)
    }
}

fn after(t: TaskSpec, deps: &[&str]) -> TaskSpec {
    TaskSpec {
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        ..t
    }
}

#[test]
fn autorestart_always_restarts_after_a_clean_exit() {
    let mut h = Harness::new(vec![service("s")]);
    h.script("s", Script::exits(secs(2), 0));
    h.start();
    h.step(ms(2500));
    assert_eq!(h.state("s"), TaskState::Restarting);
    h.step(ms(4500));
    // Up 2 s, 1 s restart-delay, again and again; never a growing backoff after success.
    assert_eq!(h.spawn_times("s"), [0, 3, 6].map(secs));
    assert_eq!(
        h.event_times("s", |e| *e == TaskEvent::ServiceRestart { delay: secs(1) }),
        [2, 5].map(secs)
    );
}

#[test]
fn autorestart_unexpected_restarts_only_outside_exitcodes() {
    let t = |name: &str| TaskSpec {
        success_codes: vec![0, 2],
        ..unexpected(name)
    };
    let mut h = Harness::new(vec![t("ok"), t("bad")]);
    h.script("ok", Script::exits(secs(1), 2));
    h.script("bad", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(20));
    assert_eq!(h.spawn_times("ok"), [secs(0)], "2 is expected: no restart");
    assert_eq!(h.state("ok"), TaskState::Success);
    // 1 is unexpected: restarted with the doubling backoff, without a limit.
    assert_eq!(h.spawn_times("bad"), [0, 2, 5, 10, 19].map(secs));
    assert!(
        h.events("bad").iter().any(|(_, e)| matches!(
            e,
            TaskEvent::Retrying {
                why: RetryWhy::Policy {
                    attempt: 3,
                    times: UNLIMITED_ATTEMPTS,
                    autorestart: false
                },
                ..
            }
        )),
        "{}",
        h.job_log()
    );
}

#[test]
fn autorestart_never_never_restarts() {
    let mut h = Harness::new(vec![task("n")]);
    h.script("n", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(30));
    assert_eq!(h.spawn_times("n"), [secs(0)]);
}

#[test]
fn startretries_three_is_three_retries_after_the_first_failed_start() {
    // supervisord and Taskmaster: `startretries: N` is N retries, N + 1 starts in all.
    let t = TaskSpec {
        start_time: secs(2),
        start_retries: 3,
        ..service("s")
    };
    let mut h = Harness::new(vec![t]);
    h.script("s", Script::exits(ms(500), 1));
    h.start();
    h.step(secs(60));
    // 0 -> dies at 0.5, +1 s; 1.5 -> 2.0, +2 s; 4.0 -> 4.5, +4 s; 8.5 -> 9.0: the fourth
    // failed start (the third retry failed too): FATAL.
    assert_eq!(
        h.spawn_times("s"),
        [ms(0), ms(1500), ms(4000), ms(8500)],
        "{}",
        h.job_log()
    );
    assert_eq!(h.state("s"), TaskState::Fatal);
    assert_eq!(h.deadline(), None, "nothing more is scheduled");
    let log = h.job_log();
    assert!(
        log.contains(
            "FATAL: exited 4 times in a row before staying up 2s (starttime; startretries: 3; last: exit 1)"
        ),
        "{log}"
    );
}

#[test]
fn startretries_zero_is_fatal_at_the_first_failed_start() {
    let t = TaskSpec {
        start_time: secs(2),
        start_retries: 0,
        ..service("s")
    };
    let mut h = Harness::new(vec![t]);
    h.script("s", Script::exits(ms(500), 1));
    h.start();
    h.step(secs(60));
    assert_eq!(h.spawn_times("s"), [ms(0)], "{}", h.job_log());
    assert_eq!(h.state("s"), TaskState::Fatal);
}

#[test]
fn failed_starts_are_retried_even_with_autorestart_never() {
    // The Taskmaster seed's `autorestart: never, startretries: 3, starttime: 3`: a process
    // that dies within 3 s is a failed start, retried (supervisord's rule); one that has
    // stayed up 3 s is started, and `never` means it is not restarted when it exits.
    let t = TaskSpec {
        start_time: secs(3),
        start_retries: 3,
        on_fail: OnFail::Stop,
        ..task("w")
    };
    let mut h = Harness::new(vec![t.clone()]);
    h.script("w", Script::exits(ms(500), 1));
    h.start();
    h.step(secs(60));
    // 0 -> dies at 0.5, +1 s; 1.5 -> 2.0, +2 s; 4.0 -> 4.5, +4 s; 8.5 -> 9.0: the fourth
    // failed start: FATAL.
    assert_eq!(
        h.spawn_times("w"),
        [ms(0), ms(1500), ms(4000), ms(8500)],
        "{}",
        h.job_log()
    );
    assert_eq!(h.state("w"), TaskState::Fatal);
    let log = h.job_log();
    assert!(
        log.contains(
            "Restarting in 1s (failed start within starttime 3s; retry 1 of startretries 3)"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "Restarting in 4s (failed start within starttime 3s; retry 3 of startretries 3)"
        ),
        "{log}"
    );

    let mut h = Harness::new(vec![t]);
    h.script_next("w", Script::exits(ms(500), 1));
    h.script("w", Script::exits(secs(10), 1));
    h.start();
    h.step(secs(60));
    // A failed start, retried; then a process that started and failed: not restarted.
    assert_eq!(h.spawn_times("w"), [ms(0), ms(1500)], "{}", h.job_log());
    assert_eq!(h.state("w"), TaskState::Failed);
}

#[test]
fn staying_up_starttime_resets_the_failed_starts() {
    let t = TaskSpec {
        start_time: secs(2),
        start_retries: 1,
        ..service("s")
    };
    let mut h = Harness::new(vec![t]);
    h.script_next("s", Script::exits(ms(500), 1));
    h.script_next("s", Script::exits(secs(5), 1));
    h.script_next("s", Script::exits(ms(500), 1));
    h.script("s", Script::exits(secs(100), 0));
    h.start();
    h.step(secs(30));
    // Failed start, a long run (resets), a failed start: never two in a row, never FATAL.
    assert_eq!(h.spawn_times("s").len(), 4, "{}", h.job_log());
    assert_ne!(h.state("s"), TaskState::Fatal);
}

#[test]
fn a_quick_successful_one_shot_is_not_a_failed_start() {
    let t = TaskSpec {
        start_time: secs(5),
        start_retries: 1,
        ..task("q")
    };
    let mut h = Harness::build(Globals::default(), batch(), vec![t]);
    h.script("q", Script::exits(ms(10), 0));
    h.start();
    h.step(secs(1));
    assert_eq!(h.state("q"), TaskState::Success);
    assert_eq!(h.exit_at(), Some((ms(10), 0)));
}

#[test]
fn autostart_false_is_not_started() {
    let t = TaskSpec {
        autostart: false,
        ..timer("t", secs(5))
    };
    let mut h = Harness::new(vec![t]);
    h.start();
    h.step(secs(30));
    assert!(h.spawn_times("t").is_empty());
    assert_eq!(h.state("t"), TaskState::Stopped);
    assert!(h.job_log().contains("autostart: false: not started"));
}

#[test]
fn a_dependent_starts_after_its_one_shot_dependency_succeeded() {
    let mut h = Harness::build(
        Globals::default(),
        batch(),
        vec![after(task("b"), &["a"]), task("a")],
    );
    h.script("a", Script::exits(secs(3), 0));
    h.script("b", Script::exits(secs(1), 0));
    h.start();
    assert_eq!(h.state("b"), TaskState::Waiting);
    h.step(secs(10));
    assert_eq!(h.spawn_times("a"), [secs(0)]);
    assert_eq!(h.spawn_times("b"), [secs(3)]);
    assert_eq!(h.exit_at(), Some((secs(4), 0)));
    assert!(h
        .job_log()
        .contains("Waiting: dependency `a` has not succeeded yet"));
}

#[test]
fn a_failed_dependency_skips_its_dependents_transitively() {
    let tasks = vec![
        task("f"),
        after(task("c"), &["f"]),
        after(task("d"), &["c"]),
    ];
    let mut h = Harness::build(Globals::default(), batch(), tasks);
    h.script("f", Script::exits(secs(1), 4));
    h.start();
    h.step(secs(10));
    assert!(h.spawn_times("c").is_empty() && h.spawn_times("d").is_empty());
    assert_eq!(h.state("c"), TaskState::Skipped);
    assert_eq!(h.state("d"), TaskState::Skipped);
    let log = h.job_log();
    assert!(
        log.contains("SKIPPED: dependency `f` failed (exit 4)"),
        "{log}"
    );
    assert!(log.contains("SKIPPED: dependency `c` was skipped"), "{log}");
    assert_eq!(h.exit_at(), Some((secs(1), 3)));
}

#[test]
fn a_dependent_of_a_service_starts_once_it_is_up_for_starttime() {
    let svc = TaskSpec {
        start_time: secs(2),
        ..service("db")
    };
    let mut h = Harness::new(vec![svc, after(task("app"), &["db"])]);
    h.script("db", Script::forever());
    h.start();
    h.step(secs(1));
    assert_eq!(h.state("app"), TaskState::Waiting);
    h.step(secs(5));
    assert_eq!(h.spawn_times("app"), [secs(2)], "exactly at db's starttime");
}

#[test]
fn dependencies_on_a_program_wait_for_every_instance() {
    let inst = |i: u32, up: Duration| {
        let t = TaskSpec {
            name: format!("w:{i}"),
            program: "w".into(),
            instance: Some(i),
            ..task("w")
        };
        (t, up)
    };
    let (w0, _) = inst(0, secs(1));
    let (w1, _) = inst(1, secs(4));
    let mut h = Harness::new(vec![w0, w1, after(task("report"), &["w"])]);
    h.script("w:0", Script::exits(secs(1), 0));
    h.script("w:1", Script::exits(secs(4), 0));
    h.start();
    h.step(secs(10));
    assert_eq!(h.spawn_times("report"), [secs(4)]);
}

#[test]
fn a_waiting_task_changed_or_disabled_on_reload_follows_the_new_settings() {
    let mut h = Harness::new(vec![
        task("a"),
        after(task("b"), &["a"]),
        after(task("c"), &["a"]),
    ]);
    h.script("a", Script::exits(secs(5), 0));
    h.start();
    h.step(secs(1));
    assert_eq!(h.state("b"), TaskState::Waiting);
    h.reload(
        Globals::default(),
        vec![
            task("a"),
            after(shell(task("b"), "./b2.sh"), &["a"]),
            TaskSpec {
                enabled: false,
                ..after(task("c"), &["a"])
            },
        ],
    );
    h.step(secs(10));
    // No run of b was going: nothing to skip as an overlap.
    let log = h.job_log();
    assert!(!log.contains("Scheduled run skipped"), "{log}");
    assert_eq!(
        h.spawn_times("b"),
        [secs(5)],
        "b starts once a has succeeded"
    );
    assert_eq!(h.spawns("b").len(), 1);
    assert!(
        h.spawn_times("c").is_empty(),
        "disabled while waiting: {log}"
    );
    assert_eq!(h.state("c"), TaskState::Stopped);
}

#[test]
fn a_timer_waiting_for_its_dependency_does_not_pile_up_or_bypass_it() {
    let t = TaskSpec {
        overlap: Overlap::Allow,
        ..after(timer("t", secs(2)), &["a"])
    };
    let mut h = Harness::new(vec![task("a"), t]);
    h.script("a", Script::exits(secs(7), 0));
    h.script("t", Script::exits(ms(100), 0));
    h.start();
    h.step(secs(8));
    // Ticks at 2, 4, 6 find t waiting for a: the waiting run is the one due, it starts
    // when a has succeeded (7 s), and `overlap: allow` does not start others around it.
    assert_eq!(h.spawn_times("t"), [secs(7), secs(8)]);
    assert!(!h.job_log().contains("Scheduled run skipped"));
}

#[test]
fn fatal_and_skipped_tasks_say_why_in_their_view() {
    let crashy = TaskSpec {
        start_time: secs(2),
        start_retries: 2,
        restart_delay: ms(100),
        ..unexpected("crashy")
    };
    let mut h = Harness::new(vec![task("a"), after(task("c"), &["a"]), crashy]);
    h.script("a", Script::exits(secs(1), 1));
    h.script("crashy", Script::exits(ms(500), 1));
    h.start();
    h.step(secs(5));
    assert_eq!(h.view("a").reason, None, "FAILED has no reason line");
    let c = h.view("c");
    assert_eq!(c.state, TaskState::Skipped);
    assert_eq!(
        c.reason,
        Some(Reason::Skipped(DepFailure::Failed {
            dep: "a".into(),
            last: Some(ProcessEnd::Exited(1))
        }))
    );
    let f = h.view("crashy");
    assert_eq!(f.state, TaskState::Fatal);
    assert_eq!(
        f.reason,
        Some(Reason::Fatal(FatalWhy {
            failed_starts: 3,
            start_time: secs(2),
            start_retries: 2,
            last: ProcessEnd::Exited(1)
        }))
    );
}

#[test]
fn a_task_stopped_while_waiting_for_its_dependency_stays_stopped() {
    let mut h = Harness::new(vec![task("a"), after(task("b"), &["a"])]);
    h.script("a", Script::exits(secs(2), 0));
    h.start();
    h.step(secs(1));
    assert_eq!(h.state("b"), TaskState::Waiting);
    h.pump(Some(Input::StopTask { task: "b".into() }));
    h.step(secs(5));
    assert!(h.spawn_times("b").is_empty(), "{}", h.job_log());
    assert_eq!(h.state("b"), TaskState::Stopped);
}

#[test]
fn every_start_is_a_run_and_every_failed_exit_a_failure() {
    // Under `autorestart` a run never ends: the counters count processes, not runs.
    let fast = |t: TaskSpec| TaskSpec {
        restart_delay: ms(100),
        max_restart_delay: ms(100),
        ..t
    };
    let crashy = TaskSpec {
        start_time: secs(2),
        start_retries: 2,
        ..fast(service("crashy"))
    };
    let mut h = Harness::new(vec![
        fast(unexpected("u")),
        fast(service("s")),
        crashy,
        task("bad"),
        after(task("dep"), &["bad"]),
    ]);
    h.script("u", Script::exits(secs(1), 1));
    h.script("s", Script::exits(secs(1), 0));
    h.script("crashy", Script::exits(ms(500), 0));
    h.script("bad", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(30) + ms(50));
    let ends = |name: &str| {
        h.event_times(name, |e| {
            matches!(
                e,
                TaskEvent::Ended {
                    end: ProcessEnd::Exited(_),
                    ..
                }
            )
        })
        .len() as u64
    };
    let u = h.stats("u");
    // Up 1 s, 100 ms delay: starts at 0, 1.1, 2.2, ... 29.7; 27 exits by 30.05 s.
    assert_eq!(u.runs, h.spawn_times("u").len() as u64);
    assert_eq!(
        (u.runs, u.failures, ends("u")),
        (28, 27, 27),
        "{}",
        h.job_log()
    );
    let s = h.stats("s");
    assert_eq!((s.runs, s.failures), (28, 0), "clean exits are no failures");
    // A service that exits 0 before `starttime` has failed to start: 3 failures, FATAL.
    let c = h.stats("crashy");
    assert_eq!((c.runs, c.failures), (3, 3), "{}", h.job_log());
    assert_eq!(h.state("crashy"), TaskState::Fatal);
    let bad = h.stats("bad");
    assert_eq!((bad.runs, bad.failures), (1, 1));
    // A skipped run starts nothing.
    let dep = h.stats("dep");
    assert_eq!((dep.runs, dep.failures), (0, 0));
    assert_eq!(h.state("dep"), TaskState::Skipped);
    // An attempt stopped by bansuri is no failure.
    h.pump(Some(Input::Shutdown {
        cause: ShutdownCause::Signal(TERM),
    }));
    h.step(secs(5));
    assert_eq!(h.stats("u").failures, 27, "{}", h.job_log());
    let log = h.job_log();
    let row = h
        .master_events()
        .into_iter()
        .find_map(|(_, m)| match m {
            MasterEvent::SummaryRow(r) if r.name == "u" => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a summary row for u:\n{log}"));
    assert_eq!((row.runs, row.failures), (28, 27), "summary: {row:?}");
}
