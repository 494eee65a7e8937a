//! Fake-clock tests of the deadlines fed from outside: `KillBy` (Slurm's KillWait) and
//! `ShutdownAt` (`stop_before_end`).

use super::*;

impl Harness {
    /// Every process must be SIGKILLed by `at` (time since the fake start).
    fn kill_by(&mut self, at: Duration) -> Vec<Action> {
        self.pump(Some(Input::KillBy {
            at: Mono(at),
            why: "Slurm SIGKILLs the job KillWait (10s) after its SIGTERM".into(),
        }))
    }

    /// Plan the shutdown at the wall time `at` after the fake start (`None`: cancel).
    fn shutdown_at(&mut self, at: Option<Duration>) -> Vec<Action> {
        let at = at.map(|d| wall(T0) + chrono::Duration::from_std(d).unwrap());
        self.pump(Some(Input::ShutdownAt {
            at,
            why: "stop_before_end is 1m and the job ends at ...".into(),
        }))
    }

    /// (time, event) of the `[MASTER]` events that `pick` picks.
    fn master_picked(&self, pick: impl Fn(&MasterEvent) -> bool) -> Vec<(Duration, MasterEvent)> {
        self.master_events()
            .into_iter()
            .filter(|(_, m)| pick(m))
            .collect()
    }

    fn kill_by_events(&self) -> Vec<(Duration, MasterEvent)> {
        self.master_picked(|m| matches!(m, MasterEvent::KillBy { .. }))
    }

    fn planned_begun(&self) -> Vec<(Duration, MasterEvent)> {
        self.master_picked(|m| {
            matches!(
                m,
                MasterEvent::ShutdownBegun {
                    cause: ShutdownCause::Planned(_),
                    ..
                }
            )
        })
    }
}

// ===== KillBy ==========================================================================

/// A plain scancel with KillWait 10 and a watchdog of 120 s: the runtime feeds KillBy
/// (SIGTERM + 8 s) and then the shutdown; SIGKILL comes at 8 s, not at 120 s, and bansuri
/// exits right after reaping.
#[test]
fn kill_by_shortens_the_watchdog_of_a_shutdown() {
    let mut h = Harness::new(vec![task("stubborn"), task("polite")]);
    h.script("stubborn", Script::forever());
    h.script("polite", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(10));
    h.kill_by(secs(18));
    assert_eq!(h.deadline(), None, "KillBy alone stops nothing");
    assert!(h.signals("stubborn").is_empty());
    h.shutdown();
    h.step(secs(200));
    assert_eq!(h.signals("stubborn"), [(secs(10), TERM), (secs(18), KILL)]);
    assert_eq!(h.signals("polite"), [(secs(10), TERM)]);
    assert_eq!(h.exit_at(), Some((secs(18), 0)));
    let said = h.master_picked(|m| matches!(m, MasterEvent::ShutdownBegun { .. }));
    assert_eq!(
        said,
        [(
            secs(10),
            MasterEvent::ShutdownBegun {
                cause: ShutdownCause::Signal(TERM),
                running: 2,
                grace: secs(120),
                sooner: Some(secs(8)),
                // KillWait decides: no "again to kill at once".
                hint: false,
            }
        )],
        "{}",
        h.job_log()
    );
    let why = h.kill_by_events();
    assert_eq!(why.len(), 1, "{}", h.job_log());
    assert!(
        matches!(
            &why[0].1,
            MasterEvent::KillBy { why, when: Some((_, within)) }
                if why.contains("KillWait (10s)") && *within == secs(8)
        ),
        "{:?}",
        why[0]
    );
    assert_eq!(
        h.event_times("stubborn", |e| matches!(
            e,
            TaskEvent::Stopping { grace, .. } if *grace == secs(8)
        )),
        [secs(10)]
    );
    // The SIGKILL line names the grace the run was given, not what is left of it.
    assert_eq!(
        h.event_times("stubborn", |e| matches!(
            e,
            TaskEvent::GraceOver {
                grace,
                how: StopHow::Group {
                    signal: StopSignal::Term,
                    ..
                }
            } if *grace == secs(8)
        )),
        [secs(18)],
        "{}",
        h.job_log()
    );
}

#[test]
fn kill_by_keeps_a_shorter_stoptime() {
    let quick = TaskSpec {
        stop_time: Some(secs(3)),
        ..task("quick")
    };
    let mut h = Harness::new(vec![quick, task("slow")]);
    h.start();
    h.kill_by(secs(8));
    h.shutdown();
    h.step(secs(100));
    assert_eq!(h.signals("quick"), [(secs(0), TERM), (secs(3), KILL)]);
    assert_eq!(h.signals("slow"), [(secs(0), TERM), (secs(8), KILL)]);
    assert_eq!(h.exit_at(), Some((secs(8), 0)));
}

/// The cap also reaches runs already being stopped (a timeout with a long stoptime), and
/// a later, looser KillBy does not undo it.
#[test]
fn kill_by_tightens_runs_already_stopping_and_never_loosens() {
    let t = TaskSpec {
        timeout: Some(secs(5)),
        stop_time: Some(secs(60)),
        ..task("t")
    };
    let mut h = Harness::new(vec![t, task("m")]);
    h.start();
    h.step(secs(6));
    assert_eq!(h.signals("t"), [(secs(5), TERM)]);
    assert_eq!(h.deadline(), Some(secs(65)));
    h.kill_by(secs(20));
    assert_eq!(h.deadline(), Some(secs(20)));
    h.kill_by(secs(40));
    assert_eq!(
        h.deadline(),
        Some(secs(20)),
        "a later KillBy does not loosen"
    );
    assert_eq!(h.kill_by_events().len(), 1, "{}", h.job_log());
    h.step(secs(30));
    assert_eq!(h.signals("t"), [(secs(5), TERM), (secs(20), KILL)]);
    assert!(h.signals("m").is_empty(), "m is not being stopped");
    // A stop that begins after the cap has passed gets no grace at all.
    h.shutdown();
    assert_eq!(h.signals("m"), [(secs(36), TERM), (secs(36), KILL)]);
}

#[test]
fn kill_by_already_past_kills_what_is_stopping_at_once() {
    let mut h = Harness::new(vec![task("a")]);
    h.start();
    h.step(secs(10));
    h.shutdown();
    h.step(secs(5));
    let acts = h.kill_by(secs(12));
    assert_eq!(signals_in(&acts).len(), 1);
    assert_eq!(h.signals("a"), [(secs(10), TERM), (secs(15), KILL)]);
    assert_eq!(h.exit_at(), Some((secs(15), 0)));
    assert_eq!(
        h.master_picked(|m| matches!(m, MasterEvent::KillBy { when: None, .. }))
            .len(),
        1,
        "{}",
        h.job_log()
    );
}

// ===== ShutdownAt ======================================================================

/// `stop_before_end`: the shutdown begins exactly at the planned wall time, with the
/// whole watchdog, and ends the way a SIGTERM would (summary, exit 0).
#[test]
fn planned_shutdown_begins_at_its_time() {
    let mut h = Harness::new(vec![task("a"), timer("t", secs(7))]);
    h.script("a", Script::forever().obeys_stop_after(secs(2)));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.shutdown_at(Some(secs(60)));
    assert_eq!(h.deadline(), Some(secs(7)), "the timer first");
    let planned = h.master_picked(|m| matches!(m, MasterEvent::ShutdownPlanned { .. }));
    assert_eq!(
        planned,
        [(
            secs(0),
            MasterEvent::ShutdownPlanned {
                at: wall(T0) + chrono::Duration::seconds(60),
                within: Some(secs(60)),
                why: "stop_before_end is 1m and the job ends at ...".into(),
            }
        )],
        "{}",
        h.job_log()
    );
    h.step(secs(60) - ms(1));
    assert!(h.signals("a").is_empty());
    assert_eq!(h.deadline(), Some(secs(60)));
    h.step(ms(1));
    assert_eq!(h.signals("a"), [(secs(60), TERM)]);
    let begun = h.planned_begun();
    assert_eq!(
        begun,
        [(
            secs(60),
            MasterEvent::ShutdownBegun {
                cause: ShutdownCause::Planned(
                    "stop_before_end is 1m and the job ends at ...".into()
                ),
                running: 1,
                grace: secs(120),
                sooner: None,
                hint: false,
            }
        )],
        "{}",
        h.job_log()
    );
    h.step(secs(10));
    assert_eq!(h.exit_at(), Some((secs(62), 0)));
    assert_eq!(
        h.spawn_times("t"),
        [
            secs(0),
            secs(7),
            secs(14),
            secs(21),
            secs(28),
            secs(35),
            secs(42),
            secs(49),
            secs(56)
        ],
        "nothing new after the shutdown began"
    );
    assert!(
        h.master_events()
            .iter()
            .any(|(_, m)| matches!(m, MasterEvent::Done { shutdown: true, .. })),
        "{}",
        h.job_log()
    );
}

#[test]
fn planned_shutdown_can_move_or_be_cancelled() {
    let mut h = Harness::new(vec![task("a")]);
    h.start();
    h.shutdown_at(Some(secs(60)));
    h.shutdown_at(Some(secs(60)));
    assert_eq!(
        h.master_picked(|m| matches!(m, MasterEvent::ShutdownPlanned { .. }))
            .len(),
        1,
        "the same plan is not logged twice"
    );
    // The time limit was extended (scontrol update): the plan moves.
    h.step(secs(30));
    h.shutdown_at(Some(secs(90)));
    h.step(secs(59));
    assert!(h.signals("a").is_empty());
    h.step(secs(1));
    assert_eq!(h.signals("a"), [(secs(90), TERM)]);

    let mut h = Harness::new(vec![task("a")]);
    h.start();
    h.shutdown_at(Some(secs(60)));
    h.shutdown_at(None);
    assert_eq!(h.deadline(), None);
    assert_eq!(
        h.master_picked(|m| matches!(m, MasterEvent::PlannedCancelled { .. }))
            .len(),
        1
    );
    h.step(secs(300));
    assert!(h.signals("a").is_empty());
    assert_eq!(h.exit_at(), None);
}

#[test]
fn planned_shutdown_in_the_past_begins_at_once() {
    let mut h = Harness::new(vec![task("a")]);
    h.start();
    h.step(secs(100));
    let acts = h.shutdown_at(Some(secs(40)));
    assert_eq!(signals_in(&acts).len(), 1);
    assert_eq!(h.signals("a"), [(secs(100), TERM)]);
}

/// The plan is a wall time: when the wall clock is set back, the shutdown waits for the
/// wall clock to reach it (as cron does), it does not begin early.
#[test]
fn planned_shutdown_waits_for_the_wall_clock() {
    let mut h = Harness::new(vec![task("a")]);
    h.start();
    h.shutdown_at(Some(secs(60)));
    h.step(secs(10));
    h.jump_wall(chrono::Duration::seconds(-30));
    h.step(secs(50));
    assert!(h.signals("a").is_empty(), "{}", h.job_log());
    h.step(secs(30) - ms(1));
    assert!(h.signals("a").is_empty());
    h.step(ms(1));
    assert_eq!(h.signals("a"), [(secs(90), TERM)]);
}

/// `stop_before_end` then the time limit's SIGTERM: the runtime turns Slurm's SIGTERM
/// into a KillBy, which shortens the grace of the shutdown already going on.
#[test]
fn planned_shutdown_then_the_time_limit_kill_by() {
    let mut h = Harness::new(vec![task("slow")]);
    h.start();
    h.shutdown_at(Some(secs(60)));
    h.step(secs(90));
    assert_eq!(h.signals("slow"), [(secs(60), TERM)]);
    h.kill_by(secs(98));
    h.step(secs(100));
    assert_eq!(h.signals("slow"), [(secs(60), TERM), (secs(98), KILL)]);
    assert_eq!(h.exit_at(), Some((secs(98), 0)));
}

#[test]
fn a_shutdown_by_signal_cancels_the_plan() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(100)));
    h.start();
    h.shutdown_at(Some(secs(60)));
    h.step(secs(10));
    h.shutdown();
    h.step(secs(70));
    assert_eq!(h.signals("a"), [(secs(10), TERM)], "no second stop at 60 s");
    assert_eq!(h.planned_begun().len(), 0);
}
