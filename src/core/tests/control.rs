//! Fake-clock tests of the control commands (`start`, `stop`, `restart`), `--resume`, the
//! status view and the resource totals (src/core/control.rs).

use std::collections::HashMap;

use super::*;

impl Harness {
    fn control(&mut self, input: Input) -> Reply {
        let acts = self.pump(Some(input));
        let replies: Vec<Reply> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Reply(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "one reply per control input: {acts:?}");
        replies[0].clone()
    }

    fn start_task(&mut self, t: &str) -> Reply {
        self.control(Input::StartTask { task: t.into() })
    }

    fn stop_task(&mut self, t: &str) -> Reply {
        self.control(Input::StopTask { task: t.into() })
    }

    fn restart_task(&mut self, t: &str) -> Reply {
        self.control(Input::RestartTask { task: t.into() })
    }

    fn status_of(&self, t: &str) -> TaskStatus {
        self.core
            .status(self.now)
            .into_iter()
            .find(|s| s.name == t)
            .unwrap_or_else(|| panic!("no task {t}"))
    }
}

fn svc(name: &str) -> TaskSpec {
    TaskSpec {
        stop_time: Some(secs(10)),
        ..task(name)
    }
}

#[test]
fn stop_holds_a_timer_task_until_start_which_runs_it_now() {
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script("t", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(5));
    assert_eq!(
        h.stop_task("t"),
        Reply::Stopping {
            task: "t".into(),
            signal: StopSignal::Term,
            grace: Globals::default().watchdog_timeout,
        }
    );
    assert_eq!(h.signals("t"), [(secs(5), TERM)]);
    assert_eq!(h.state("t"), TaskState::Stopping);
    h.step(secs(1));
    assert_eq!(h.state("t"), TaskState::Stopped);
    assert_eq!(
        h.stats("t").last_end,
        Some(ProcessEnd::Stopped(StopReason::Command))
    );
    // No tick of its timer, no retry starts it again.
    h.step(secs(100));
    assert_eq!(h.spawn_times("t"), [secs(0)], "{}", h.job_log());
    assert_eq!(h.deadline(), None, "a stopped task needs no wake-up");
    assert_eq!(h.stop_task("t"), Reply::AlreadyStopped { task: "t".into() });

    let reply = h.start_task("t");
    assert!(reply.ok(), "{reply:?}");
    assert_eq!(h.spawn_times("t"), [secs(0), secs(106)], "runs at once");
    assert_eq!(h.state("t"), TaskState::Running);
    h.step(secs(10));
    assert!(h
        .event_times("t", |e| *e == TaskEvent::OverlapSkipped)
        .contains(&secs(116)));
}

#[test]
fn stop_kills_a_process_that_ignores_the_stop_signal_after_its_stoptime() {
    let mut h = Harness::new(vec![svc("s")]);
    h.start();
    h.step(secs(2));
    h.stop_task("s");
    h.step(secs(20));
    assert_eq!(h.signals("s"), [(secs(2), TERM), (secs(12), KILL)]);
    assert_eq!(h.state("s"), TaskState::Stopped);
}

#[test]
fn start_runs_a_finished_one_shot_again_and_leaves_a_running_one_alone() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::exits(secs(2), 0));
    h.start();
    h.step(secs(10));
    assert_eq!(h.state("a"), TaskState::Success);
    assert_eq!(
        h.start_task("a"),
        Reply::Started {
            task: "a".into(),
            schedule_goes_on: false
        }
    );
    assert_eq!(h.spawn_times("a"), [secs(0), secs(10)]);
    let pid = h.view("a").pid.expect("a runs");
    assert_eq!(
        h.start_task("a"),
        Reply::AlreadyRunning {
            task: "a".into(),
            pid
        }
    );
    assert_eq!(h.spawn_times("a").len(), 2, "no second process");
    h.step(secs(10));
    assert_eq!(h.stats("a").runs, 2);
    assert_eq!(h.state("a"), TaskState::Success);
}

#[test]
fn start_of_a_scheduled_task_adds_a_run_and_keeps_its_schedule() {
    let mut h = Harness::new(vec![timer("t", secs(60))]);
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(20));
    assert_eq!(
        h.start_task("t"),
        Reply::Started {
            task: "t".into(),
            schedule_goes_on: true
        }
    );
    h.step(secs(100));
    assert_eq!(h.spawn_times("t"), [secs(0), secs(20), secs(60), secs(120)]);
}

#[test]
fn start_of_a_stopped_cron_task_runs_it_now_and_at_its_next_match() {
    let mut h = Harness::new(vec![cron("c", "*/5 * * * *")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    h.stop_task("c");
    h.step(secs(600));
    assert!(h.spawn_times("c").is_empty(), "stopped: its matches pass");
    h.start_task("c");
    assert_eq!(h.spawn_times("c"), [secs(600)]);
    // T0 is 10:02:30; 600 s later is 10:12:30: the next match is 10:15:00.
    h.step(secs(200));
    assert_eq!(h.spawn_times("c"), [secs(600), secs(750)]);
}

#[test]
fn start_during_backoff_retries_now() {
    let mut h = Harness::new(vec![TaskSpec {
        restart_delay: secs(30),
        ..retrying(task("r"), 3)
    }]);
    h.script("r", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(5));
    assert_eq!(h.state("r"), TaskState::Restarting);
    assert!(h.status_of("r").retry_at.is_some());
    assert_eq!(
        h.start_task("r"),
        Reply::RetryNow {
            task: "r".into(),
            attempt: 2
        }
    );
    assert_eq!(h.spawns("r"), [(secs(0), 1), (secs(5), 2)]);
    assert_eq!(h.stats("r").restarts, 1);
}

#[test]
fn restart_stops_then_starts_once_the_group_is_gone() {
    let mut h = Harness::new(vec![svc("s")]);
    h.script("s", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(secs(5));
    assert_eq!(
        h.restart_task("s"),
        Reply::Restarting {
            task: "s".into(),
            signal: StopSignal::Term,
            grace: secs(10),
        }
    );
    h.step(secs(1));
    assert_eq!(
        h.spawn_times("s"),
        [secs(0)],
        "not before the old one ended"
    );
    assert_eq!(h.state("s"), TaskState::Stopping);
    h.step(secs(1));
    assert_eq!(h.spawn_times("s"), [secs(0), secs(7)], "{}", h.job_log());
    assert_eq!(h.state("s"), TaskState::Running);
    assert_eq!(
        h.stats("s").last_end,
        Some(ProcessEnd::Stopped(StopReason::Restart))
    );
    // Nothing running: restart is a start.
    let mut h = Harness::new(vec![task("o")]);
    h.script("o", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(3));
    let reply = h.restart_task("o");
    assert!(reply.ok(), "{reply:?}");
    assert_eq!(h.spawn_times("o"), [secs(0), secs(3)]);
}

#[test]
fn restart_of_a_stopped_task_starts_it() {
    let mut h = Harness::new(vec![svc("s")]);
    h.script("s", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.stop_task("s");
    h.step(secs(5));
    assert_eq!(h.state("s"), TaskState::Stopped);
    h.restart_task("s");
    assert_eq!(h.spawn_times("s"), [secs(0), secs(5)]);
}

#[test]
fn unknown_task_disabled_task_and_shutdown_are_refused_with_reasons() {
    let mut h = Harness::new(vec![
        task("monitor"),
        TaskSpec {
            enabled: false,
            ..task("off")
        },
    ]);
    h.start();
    let moniter = UnknownTask {
        name: "moniter".into(),
        suggestion: Suggestion::DidYouMean("monitor".into()),
    };
    let reply = h.start_task("moniter");
    assert!(!reply.ok());
    assert_eq!(reply, Reply::NoSuchTask(moniter.clone()));
    let reply = h.stop_task("zzzzzz");
    assert!(!reply.ok());
    assert_eq!(
        reply,
        Reply::NoSuchTask(UnknownTask {
            name: "zzzzzz".into(),
            suggestion: Suggestion::Known(vec!["monitor".into(), "off".into()]),
        })
    );
    assert_eq!(
        h.core.check_tasks(&["monitor".into(), "moniter".into()]),
        Err(moniter)
    );
    let reply = h.start_task("off");
    assert!(!reply.ok());
    assert_eq!(reply, Reply::Disabled { task: "off".into() });
    assert!(h.spawn_times("off").is_empty());
    h.shutdown();
    let reply = h.restart_task("monitor");
    assert!(!reply.ok());
    assert_eq!(
        reply,
        Reply::ShuttingDown {
            command: Command::Restart,
            task: "monitor".into()
        }
    );
}

#[test]
fn a_stopped_task_stays_stopped_across_reloads() {
    let mut h = Harness::new(vec![svc("s"), task("other")]);
    h.script("s", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.stop_task("s");
    h.step(secs(3));
    // Unchanged, then changed (a restart-worthy change): still stopped.
    h.reload(Globals::default(), vec![svc("s"), task("other")]);
    let changed = TaskSpec {
        env: [("X".to_string(), "1".to_string())].into(),
        ..svc("s")
    };
    h.reload(Globals::default(), vec![changed.clone(), task("other")]);
    h.step(secs(30));
    assert_eq!(h.spawn_times("s"), [secs(0)], "{}", h.job_log());
    assert_eq!(h.state("s"), TaskState::Stopped);
    // `start` runs it with the new settings.
    h.start_task("s");
    let spawned: Vec<Arc<TaskSpec>> = h
        .outs()
        .filter_map(|(_, a)| match a {
            Action::Spawn { task, .. } if task.name == "s" => Some(Arc::clone(task)),
            _ => None,
        })
        .collect();
    assert_eq!(spawned.len(), 2);
    assert_eq!(*spawned[1], changed);
}

#[test]
fn a_stopped_task_is_not_restarted_by_new_settings_arriving_during_its_stop() {
    let mut h = Harness::new(vec![svc("s")]);
    h.script("s", Script::forever().obeys_stop_after(secs(5)));
    h.start();
    h.stop_task("s");
    let changed = TaskSpec {
        env: [("X".to_string(), "1".to_string())].into(),
        ..svc("s")
    };
    h.reload(Globals::default(), vec![changed]);
    h.step(secs(60));
    assert_eq!(h.spawn_times("s"), [secs(0)], "{}", h.job_log());
}

#[test]
fn stop_before_the_pid_is_known_stops_the_process_when_it_comes() {
    let mut h = Harness::new(vec![svc("s")]);
    h.auto_spawn = false;
    h.start();
    assert_eq!(
        h.stop_task("s"),
        Reply::Stopping {
            task: "s".into(),
            signal: StopSignal::Term,
            grace: secs(10)
        }
    );
    h.answer("s");
    assert_eq!(h.signals("s"), [(secs(0), TERM)]);
}

#[test]
fn exit_when_done_counts_a_stopped_task_as_finished() {
    let mut h = Harness::build(Globals::default(), batch(), vec![svc("s"), task("o")]);
    h.script("s", Script::forever().obeys_stop_after(secs(1)));
    h.script("o", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(5));
    assert_eq!(h.exit_at(), None);
    h.stop_task("s");
    h.step(secs(2));
    assert_eq!(h.exit_at(), Some((secs(6), 0)), "{}", h.job_log());
}

// ----- --resume ----------------------------------------------------------------------

#[test]
fn resume_skips_succeeded_one_shots_with_the_same_settings_only() {
    let a = task("a");
    let b = task("b");
    let c = TaskSpec {
        command: CommandSpec::Shell("./c-v2.sh".into()),
        ..task("c")
    };
    let t = timer("t", secs(60));
    let mut prev = HashMap::new();
    prev.insert("a".to_string(), settings_hash(&a));
    // c succeeded with other settings (its old command); t is periodic.
    prev.insert("c".to_string(), settings_hash(&task("c")));
    prev.insert("t".to_string(), settings_hash(&t));
    let mut h = Harness::build(Globals::default(), batch(), vec![a, b, c, t]);
    let skipped = h.core.resume(&prev);
    assert_eq!(skipped, ["a"]);
    h.script("b", Script::exits(secs(1), 0));
    h.script("c", Script::exits(secs(1), 0));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    assert!(h.spawn_times("a").is_empty(), "{}", h.job_log());
    assert_eq!(h.spawn_times("b"), [secs(0)]);
    assert_eq!(h.spawn_times("c"), [secs(0)], "changed: runs again");
    assert_eq!(h.spawn_times("t"), [secs(0)], "periodic: not resumed");
    assert_eq!(h.state("a"), TaskState::Success);
    assert_eq!(
        h.event_times("a", |e| *e == TaskEvent::Resumed),
        [secs(0)],
        "{}",
        h.job_log()
    );
    // A `start` still runs a resumed task.
    h.start_task("a");
    assert_eq!(h.spawn_times("a"), [secs(0)]);
}

#[test]
fn resume_of_every_task_exits_at_once_with_exit_when_done() {
    let a = task("a");
    let prev: HashMap<String, String> = [("a".to_string(), settings_hash(&a))].into();
    let mut h = Harness::build(Globals::default(), batch(), vec![a]);
    h.core.resume(&prev);
    h.start();
    assert_eq!(h.exit_at(), Some((secs(0), 0)));
}

#[test]
fn settings_hash_ignores_description_and_enabled_only() {
    let a = task("a");
    let described = TaskSpec {
        description: "x".into(),
        enabled: false,
        ..task("a")
    };
    assert_eq!(settings_hash(&a), settings_hash(&described));
    let other = TaskSpec {
        timeout: Some(secs(5)),
        ..task("a")
    };
    assert_ne!(settings_hash(&a), settings_hash(&other));
    assert_eq!(settings_hash(&a).len(), 16);
}

#[test]
fn a_task_that_needs_nothing_hashes_as_before_resources_existed() {
    // The value the release before issue 17 gave this task: `--resume` after an upgrade
    // must not run again what already succeeded.
    let t = TaskSpec::with_defaults("t", CommandSpec::Shell("echo hi".into()), "/tmp".into());
    assert_eq!(settings_hash(&t), "16269ea12428c274");
    // A request is a setting that changes what runs; an expected runtime is not.
    let mut asks = t.clone();
    asks.needs.request = Some(crate::resources::Request::default());
    assert_ne!(settings_hash(&asks), settings_hash(&t));
    let mut expects = t.clone();
    expects.needs.expected_runtime = Some(secs(60));
    assert_eq!(settings_hash(&expects), settings_hash(&t));
}

// ----- status view and totals --------------------------------------------------------

#[test]
fn status_shows_processes_next_run_and_usage_totals() {
    let mut h = Harness::new(vec![timer("t", secs(60))]);
    h.start();
    h.step(secs(5));
    let st = h.status_of("t");
    assert_eq!(st.state, TaskState::Running);
    assert_eq!(st.processes.len(), 1);
    assert_eq!(st.processes[0].uptime, secs(5));
    assert_eq!(st.processes[0].attempt, 1);
    assert_eq!(
        st.next_run,
        Some(wall(T0) + chrono::Duration::seconds(60)),
        "next tick at T0 + 60 s"
    );
    assert_eq!(st.schedule, "every 1m");
    let run = h.run_of("t");
    h.pump(Some(Input::Exited {
        run,
        status: ExitStatus::Code(0),
        usage: Some(Usage {
            cpu: ms(1500),
            max_rss: 200 << 20,
        }),
    }));
    h.step(secs(60));
    let run = h.run_of("t");
    h.pump(Some(Input::Exited {
        run,
        status: ExitStatus::Code(0),
        usage: Some(Usage {
            cpu: ms(500),
            max_rss: 100 << 20,
        }),
    }));
    let st = h.status_of("t");
    assert_eq!(st.stats.cpu_time, secs(2));
    assert_eq!(st.stats.peak_rss, 200 << 20);
    assert_eq!(
        st.stats.last_end_at,
        Some(wall(T0) + chrono::Duration::seconds(65))
    );
    assert!(st.processes.is_empty());
}

#[test]
fn shutdown_summary_has_cpu_time_and_peak_rss() {
    let mut h = Harness::build(Globals::default(), batch(), vec![task("a"), task("b")]);
    h.start();
    let run = h.run_of("a");
    h.pump(Some(Input::Exited {
        run,
        status: ExitStatus::Code(0),
        usage: Some(Usage {
            cpu: ms(2500),
            max_rss: 200 << 20,
        }),
    }));
    let run = h.run_of("b");
    h.pump(Some(Input::Exited {
        run,
        status: ExitStatus::Code(1),
        usage: None,
    }));
    let rows: Vec<MasterEvent> = h.master_events().into_iter().map(|(_, m)| m).collect();
    let header = rows
        .iter()
        .position(|m| *m == MasterEvent::SummaryHeader { width: 4 })
        .unwrap_or_else(|| panic!("no summary: {rows:?}"));
    let row = |name: &str, cpu, peak_rss, code| {
        MasterEvent::SummaryRow(SummaryRow {
            width: 4,
            name: name.into(),
            state: if code == 0 {
                TaskState::Success
            } else {
                TaskState::Failed
            },
            runs: 1,
            failures: u64::from(code != 0),
            cpu,
            peak_rss,
            last: Some(ProcessEnd::Exited(code)),
        })
    };
    assert_eq!(
        rows[header + 1..header + 3],
        [row("a", ms(2500), 200 << 20, 0), row("b", ms(0), 0, 1)]
    );
}

/// `stop` holds a task: a retry does not start it either, even for a run that was already
/// timing out when the command came (it ends as a failure, and that is final).
#[test]
fn a_run_timing_out_when_stop_comes_is_not_retried() {
    let t = TaskSpec {
        timeout: Some(secs(5)),
        restart_delay: secs(1),
        ..retrying(svc("t"), 3)
    };
    let mut h = Harness::new(vec![t]);
    h.script("t", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(secs(6));
    assert_eq!(h.state("t"), TaskState::Stopping, "timed out at 5 s");
    assert!(h.stop_task("t").ok());
    h.step(secs(60));
    assert_eq!(h.spawn_times("t"), [secs(0)], "{}", h.job_log());
    assert_eq!(h.state("t"), TaskState::Stopped);
    assert_eq!(h.stats("t").last_end, Some(ProcessEnd::TimedOut(secs(5))));
    assert!(h.status_of("t").retry_at.is_none());
}
