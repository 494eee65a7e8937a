//! Fake-clock tests of allocation-aware scheduling (issue 17): packing into a declared
//! 4-CPU / 4-GPU inventory, `max_parallel` with it, the time left, the checkpoint signal,
//! the memory policy and the requeue.

use std::collections::HashMap;

use super::*;
use crate::resources::{
    Declared, DeclaredCpus, Grant, Inputs, Inventory, Place, Request, Topology,
};
use crate::spec::{Checkpoint, MemExceeded, Needs};

const USR1: i32 = libc::SIGUSR1;

/// A declared block of 4 CPUs (0-3) and 4 GPUs ("0".."3"), 16 GiB, on one socket.
fn inventory() -> Inventory {
    let affinity = crate::resources::CpuSet::parse("0-7").expect("CPU list");
    Inventory::from_inputs(&Inputs {
        env: Default::default(),
        topology: Topology::from_fn(&affinity, |_| Place::default()),
        affinity,
        mem_total: 64 << 30,
        declared: Some(Declared {
            cpus: Some(DeclaredCpus::Count(4)),
            gpus: Some(vec!["0".into(), "1".into(), "2".into(), "3".into()]),
            mem: Some(16 << 30),
        }),
    })
    .expect("the test inventory is valid")
}

/// `t` asking for `cpus` CPUs and `gpus` GPUs.
fn asking(t: TaskSpec, cpus: u32, gpus: u32) -> TaskSpec {
    TaskSpec {
        needs: Needs {
            request: Some(Request {
                cpus,
                gpus,
                mem: None,
            }),
            ..t.needs.clone()
        },
        ..t
    }
}

/// `t` expected to run `d`.
fn expecting(t: TaskSpec, d: Duration) -> TaskSpec {
    TaskSpec {
        needs: Needs {
            expected_runtime: Some(d),
            ..t.needs.clone()
        },
        ..t
    }
}

impl Harness {
    /// Tell the inventory (before `Start`, as the runtime does).
    fn resources(&mut self) -> Vec<Action> {
        self.pump(Some(Input::Resources {
            inventory: inventory(),
        }))
    }

    /// The job ends at `at` after the fake start.
    fn job_end(&mut self, at: Duration) -> Vec<Action> {
        self.pump(Some(Input::JobEnd {
            end: Some(Mono(at)),
        }))
    }

    /// Plan the `stop_before_end` shutdown at `at` after the fake start.
    fn shutdown_at_wall(&mut self, at: Duration) -> Vec<Action> {
        let at = wall(T0) + chrono::Duration::from_std(at).expect("a test duration");
        self.pump(Some(Input::ShutdownAt {
            at: Some(at),
            why: "stop_before_end is 1m and the job ends at ...".into(),
        }))
    }

    fn status_for(&self, task: &str) -> TaskStatus {
        self.core
            .status(self.now)
            .into_iter()
            .find(|s| s.name == task)
            .unwrap_or_else(|| panic!("no task {task}"))
    }

    /// The grant of every spawn of `task`, in order.
    fn grants(&self, task: &str) -> Vec<Option<Grant>> {
        self.outs()
            .filter_map(|(_, a)| match a {
                Action::Spawn { task: t, grant, .. } if t.name == task => Some(grant.clone()),
                _ => None,
            })
            .collect()
    }

    fn grant(&self, task: &str) -> Grant {
        let g = self.grants(task);
        assert_eq!(g.len(), 1, "one spawn of {task}: {g:?}\n{}", self.job_log());
        g[0].clone()
            .unwrap_or_else(|| panic!("{task} was spawned with no grant"))
    }

    fn requeues(&self) -> Vec<Duration> {
        self.outs()
            .filter(|(_, a)| matches!(a, Action::Requeue))
            .map(|(r, _)| r.t())
            .collect()
    }
}

#[test]
fn two_runs_of_2_cpus_get_disjoint_cpus_and_a_third_waits_with_its_reason() {
    let tasks = ["a", "b", "c"].map(|n| asking(task(n), 2, 0)).to_vec();
    let mut h = Harness::new(tasks);
    h.script("a", Script::exits(secs(10), 0));
    h.script("b", Script::forever());
    h.script("c", Script::forever());
    h.resources();
    h.start();
    let (a, b) = (h.grant("a"), h.grant("b"));
    assert_eq!((a.cpus.len(), b.cpus.len()), (2, 2));
    assert!(a.cpus.intersection(&b.cpus).is_empty(), "{a} / {b}");
    assert!(h.grants("c").is_empty());
    assert_eq!(h.state("c"), TaskState::Waiting);
    let c = h.status_for("c");
    assert_eq!(c.waiting_for.as_deref(), Some("needs 2 CPUs, 0 free"));
    assert_eq!(c.request.map(|r| r.cpus), Some(2));
    assert_eq!(h.status_for("a").grants, vec![a.clone()]);
    // a ends: c gets what a held, and no longer waits.
    h.step(secs(10));
    assert_eq!(h.grant("c"), a);
    assert_eq!(h.spawn_times("c"), vec![secs(10)]);
    assert_eq!(h.status_for("c").waiting_for, None);
    assert!(h.status_for("a").grants.is_empty());
}

#[test]
fn four_runs_of_1_gpu_get_distinct_gpus_and_a_fifth_waits() {
    let tasks = ["g1", "g2", "g3", "g4", "g5"]
        .map(|n| asking(task(n), 0, 1))
        .to_vec();
    let mut h = Harness::new(tasks);
    h.resources();
    h.start();
    let mut gpus: Vec<String> = ["g1", "g2", "g3", "g4"]
        .iter()
        .flat_map(|t| h.grant(t).gpus)
        .collect();
    gpus.sort();
    assert_eq!(gpus, ["0", "1", "2", "3"]);
    assert!(h.grants("g5").is_empty());
    assert_eq!(
        h.status_for("g5").waiting_for.as_deref(),
        Some("needs 1 GPU, 0 free")
    );
    // A GPU freed by a crash goes to the fifth.
    let g2 = h.grant("g2");
    h.killed("g2", libc::SIGSEGV);
    assert_eq!(h.grant("g5").gpus, g2.gpus);
}

#[test]
fn backfill_never_delays_the_first_waiting_run_and_the_large_one_is_not_starved() {
    // a holds 1 CPU until 50s; big needs all 4 and reserves the CPUs at 50s. s1 fits now
    // and ends by then: it backfills. s2 fits now but would run past 50s: it waits.
    let tasks = vec![
        expecting(asking(task("a"), 1, 0), secs(50)),
        expecting(asking(task("big"), 4, 0), secs(100)),
        expecting(asking(task("s1"), 1, 0), secs(30)),
        expecting(asking(task("s2"), 1, 0), secs(80)),
    ];
    let mut h = Harness::build(Globals::default(), batch(), tasks);
    h.script("a", Script::exits(secs(50), 0));
    h.script("big", Script::exits(secs(100), 0));
    h.script("s1", Script::exits(secs(30), 0));
    h.script("s2", Script::exits(secs(80), 0));
    h.resources();
    h.start();
    assert_eq!(
        h.status_for("big").waiting_for.as_deref(),
        Some("needs 4 CPUs, 2 free")
    );
    assert_eq!(
        h.status_for("s2").waiting_for.as_deref(),
        Some("waits behind task big (reserved)")
    );
    h.step(secs(400));
    assert_eq!(h.spawn_times("a"), vec![secs(0)]);
    assert_eq!(h.spawn_times("s1"), vec![secs(0)]);
    // The reservation held: big starts the moment a ends, s2 only after big.
    assert_eq!(h.spawn_times("big"), vec![secs(50)]);
    assert_eq!(h.spawn_times("s2"), vec![secs(150)]);
    assert_eq!(h.exit_at(), Some((secs(230), 0)), "{}", h.job_log());
}

#[test]
fn small_runs_due_again_and_again_do_not_starve_a_large_one() {
    // A 1-CPU timer every 10s whose runs take 15s (overlap allowed) keeps 2 CPUs busy.
    // Without the reservation the 4-CPU run would never find 4 free; with it the small
    // runs that would run past its reserved start wait.
    let small = TaskSpec {
        overlap: Overlap::Allow,
        ..expecting(asking(timer("small", secs(10)), 1, 0), secs(15))
    };
    let big = expecting(asking(task("big"), 4, 0), secs(30));
    let mut h = Harness::new(vec![small, big]);
    h.script("small", Script::exits(secs(15), 0));
    h.script("big", Script::exits(secs(30), 0));
    h.resources();
    h.start();
    h.step(secs(200));
    let big_at = h.spawn_times("big");
    assert_eq!(big_at, vec![secs(15)], "{}", h.job_log());
    // Nothing else ran while big held all 4 CPUs.
    let during: Vec<Duration> = h
        .spawn_times("small")
        .into_iter()
        .filter(|t| *t > secs(15) && *t < secs(45))
        .collect();
    assert!(
        during.is_empty(),
        "small started at {during:?} while big ran"
    );
}

#[test]
fn max_parallel_and_the_resources_combine() {
    let globals = Globals {
        max_parallel: Some(1),
        ..Globals::default()
    };
    // a holds no CPU: only the slot keeps b waiting.
    let tasks = vec![asking(task("a"), 0, 0), asking(task("b"), 3, 0)];
    let mut h = Harness::build(globals, Mode::default(), tasks);
    h.script("a", Script::exits(secs(5), 0));
    h.script("b", Script::exits(secs(5), 0));
    h.resources();
    h.start();
    // CPUs are free, the slot is not.
    assert!(h.grants("b").is_empty());
    assert_eq!(h.state("b"), TaskState::Waiting);
    assert_eq!(
        h.status_for("b").waiting_for.as_deref(),
        Some("a slot (max_parallel 1, all in use)")
    );
    // Each dispatch while the slot is taken finds b its CPUs and must give them back
    // (kept, the second dispatch would find only 1 free, and a frees none).
    for _ in 0..3 {
        h.tick();
    }
    h.step(secs(5));
    assert_eq!(h.spawn_times("b"), vec![secs(5)], "{}", h.job_log());
    assert_eq!(h.grant("b").cpus.len(), 3);
}

#[test]
fn without_an_inventory_requests_are_not_enforced() {
    let tasks = ["a", "b", "c"].map(|n| asking(task(n), 4, 0)).to_vec();
    let mut h = Harness::new(tasks);
    h.start();
    for t in ["a", "b", "c"] {
        assert_eq!(h.grants(t), vec![None], "{t}");
    }
}

#[test]
fn a_new_inventory_keeps_what_live_runs_hold() {
    let tasks = vec![asking(task("a"), 2, 0), asking(timer("b", secs(10)), 2, 0)];
    let mut h = Harness::new(tasks);
    h.script("a", Script::forever());
    h.script("b", Script::exits(secs(1), 0));
    h.resources();
    h.start();
    let a = h.grant("a");
    // The resources block is told again (a reload): b's next run still avoids a's CPUs.
    h.resources();
    h.step(secs(10));
    let b = h.grants("b");
    assert_eq!(b.len(), 2);
    for g in b.into_iter().flatten() {
        assert!(g.cpus.intersection(&a.cpus).is_empty(), "{g} / {a}");
    }
}

#[test]
fn a_reload_that_changes_a_request_applies_to_the_next_runs() {
    let b = asking(timer("b", secs(10)), 1, 0);
    let mut h = Harness::new(vec![b.clone()]);
    h.script("b", Script::exits(secs(1), 0));
    h.resources();
    h.start();
    h.step(secs(5));
    let spec = Spec {
        source: PathBuf::from("/tmp/scripts_config.json"),
        version: Some("1.0".into()),
        globals: Globals::default(),
        tasks: vec![asking(timer("b", secs(10)), 3, 0)],
        warnings: Vec::new(),
    };
    h.pump(Some(Input::Reload {
        spec: Arc::new(spec),
    }));
    h.step(secs(20));
    let sizes: Vec<usize> = h
        .grants("b")
        .into_iter()
        .map(|g| g.expect("granted").cpus.len())
        .collect();
    assert_eq!(sizes.first(), Some(&1));
    assert!(
        sizes.len() >= 2 && sizes[1..].iter().all(|&n| n == 3),
        "{sizes:?}"
    );
}

#[test]
fn a_run_that_would_end_after_the_time_limit_waits_and_is_listed_at_exit() {
    let globals = Globals {
        stop_before_end: secs(60),
        ..Globals::default()
    };
    // The job ends at 1000s, bansuri stops everything at 940s. `long` (no request, a
    // declared runtime) would end at 1200s; `short` at 100s; `packed` learned 2000s.
    let tasks = vec![
        expecting(task("long"), secs(1200)),
        expecting(task("short"), secs(100)),
        asking(task("packed"), 1, 0),
        task("plain"),
        asking(task("fits"), 1, 0),
    ];
    let mut h = Harness::build(globals, batch(), tasks);
    h.script("fits", Script::exits(secs(100), 0));
    h.script("short", Script::exits(secs(100), 0));
    h.script("plain", Script::exits(secs(100), 0));
    h.core.learn_runtimes(&HashMap::from([(
        "packed".to_owned(),
        vec![secs(2000), secs(1500)],
    )]));
    h.resources();
    h.job_end(secs(1000));
    h.shutdown_at_wall(secs(940));
    h.start();
    assert_eq!(h.spawn_times("short"), vec![secs(0)]);
    assert_eq!(h.spawn_times("plain"), vec![secs(0)]);
    for t in ["long", "packed"] {
        assert!(h.spawn_times(t).is_empty(), "{t}");
        assert_eq!(h.state(t), TaskState::Waiting);
        assert_eq!(
            h.status_for(t).waiting_for.as_deref(),
            Some("would end after the job's time limit"),
            "{t}"
        );
    }
    assert_eq!(
        h.status_for("packed").recent_runtimes,
        vec![secs(2000), secs(1500)]
    );
    h.step(secs(1000));
    let late: Vec<MasterEvent> = h
        .master_events()
        .into_iter()
        .filter(|(_, m)| matches!(m, MasterEvent::NotRunForTime { .. }))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        late,
        vec![MasterEvent::NotRunForTime {
            tasks: vec!["long".into(), "packed".into()]
        }]
    );
    // Their runs were dropped at the shutdown: no reason is shown any more.
    assert_eq!(h.status_for("long").waiting_for, None);
    // They did not succeed (a `--resume` runs them).
    for t in ["long", "packed"] {
        assert_eq!(h.stats(t).last_outcome, None, "{t}");
    }
    assert_eq!(h.stats("short").last_outcome, Some(Outcome::Success));
    // A successful run of a task with a request is learned; one without is not.
    assert_eq!(h.status_for("fits").recent_runtimes, vec![secs(100)]);
    assert!(h.status_for("short").recent_runtimes.is_empty());
    // No requeue unless asked.
    assert!(h.requeues().is_empty());
}

#[test]
fn the_checkpoint_signal_goes_once_at_the_lead_and_at_once_to_a_later_run() {
    let ckpt = |t: TaskSpec| TaskSpec {
        needs: Needs {
            checkpoint: Some(Checkpoint {
                signal: USR1,
                lead: secs(600),
            }),
            ..t.needs.clone()
        },
        ..t
    };
    let late = TaskSpec {
        autostart: false,
        ..ckpt(task("late"))
    };
    let mut h = Harness::new(vec![ckpt(task("sim")), late, task("other")]);
    for t in ["sim", "late", "other"] {
        h.script(t, Script::forever());
    }
    h.job_end(secs(3600));
    h.start();
    h.step(secs(3100));
    assert_eq!(h.signals("sim"), vec![(secs(3000), USR1)]);
    assert!(h.signals("other").is_empty());
    let lines = h.event_times("sim", |e| {
        *e == TaskEvent::Checkpoint {
            signal: USR1,
            before: secs(600),
        }
    });
    assert_eq!(lines, vec![secs(3000)]);
    // A run started after the moment gets it at once, with the time really left.
    h.pump(Some(Input::StartTask {
        task: "late".into(),
    }));
    assert_eq!(h.signals("late"), vec![(secs(3100), USR1)]);
    assert!(h.events("late").iter().any(|(_, e)| *e
        == TaskEvent::Checkpoint {
            signal: USR1,
            before: secs(500)
        }));
    // Re-told the same end: no second signal.
    h.job_end(secs(3600));
    h.step(secs(400));
    assert_eq!(h.signals("sim"), vec![(secs(3000), USR1)]);
    assert_eq!(h.signals("late").len(), 1);
}

fn with_mem(t: TaskSpec, policy: MemExceeded) -> TaskSpec {
    TaskSpec {
        needs: Needs {
            request: Some(Request {
                cpus: 1,
                gpus: 0,
                mem: Some(1 << 30),
            }),
            mem_exceeded: policy,
            ..t.needs.clone()
        },
        ..t
    }
}

#[test]
fn mem_exceeded_warn_tells_once_per_run_and_stops_nothing() {
    let mut h = Harness::new(vec![with_mem(task("m"), MemExceeded::Warn)]);
    h.script("m", Script::forever());
    h.resources();
    h.start();
    let run = h.run_of("m");
    for rss in [2u64 << 30, 3 << 30] {
        h.pump(Some(Input::MemExceeded { run, rss }));
    }
    let warned: Vec<TaskEvent> = h
        .events("m")
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, TaskEvent::MemExceeded { .. }))
        .collect();
    assert_eq!(
        warned,
        vec![TaskEvent::MemExceeded {
            rss: 2 << 30,
            mem: 1 << 30,
            stop: false
        }]
    );
    assert!(h.signals("m").is_empty());
    assert_eq!(h.state("m"), TaskState::Running);
}

#[test]
fn mem_exceeded_stop_stops_the_run_gracefully_and_counts_a_failure() {
    let mut h = Harness::build(
        Globals::default(),
        batch(),
        vec![with_mem(task("m"), MemExceeded::Stop)],
    );
    h.script("m", Script::forever());
    h.resources();
    h.start();
    h.step(secs(3));
    let run = h.run_of("m");
    h.pump(Some(Input::MemExceeded { run, rss: 2 << 30 }));
    let grace = Globals::default().watchdog_timeout;
    assert_eq!(h.signals("m"), vec![(secs(3), TERM)]);
    h.step(grace);
    // It ignored the stop signal: SIGKILL after the grace.
    assert_eq!(
        h.signals("m"),
        vec![(secs(3), TERM), (secs(3) + grace, KILL)]
    );
    assert!(h.events("m").iter().any(|(_, e)| matches!(
        e,
        TaskEvent::Stopping {
            reason: StopReason::MemExceeded,
            ..
        }
    )));
    let stats = h.stats("m");
    assert_eq!(stats.failures, 1);
    assert_eq!(stats.last_outcome, Some(Outcome::Failed));
    assert_eq!(
        stats.last_end,
        Some(ProcessEnd::Stopped(StopReason::MemExceeded))
    );
    assert_eq!(h.exit_at().map(|e| e.1), Some(3), "{}", h.job_log());
}

fn requeue_harness(requeue_on_end: bool) -> Harness {
    let globals = Globals {
        requeue_on_end,
        stop_before_end: secs(60),
        ..Globals::default()
    };
    let mut h = Harness::build(
        globals,
        Mode::default(),
        vec![task("work"), timer("tick", secs(600))],
    );
    h.script("work", Script::forever().obeys_stop_after(secs(1)));
    h.script("tick", Script::exits(secs(1), 0));
    h.job_end(secs(1000));
    h.start();
    h
}

#[test]
fn requeue_goes_before_exit_when_the_time_limit_ends_the_job_with_work_left() {
    let mut h = requeue_harness(true);
    h.shutdown_at_wall(secs(940));
    h.step(secs(1000));
    assert_eq!(h.requeues(), vec![secs(941)], "{}", h.job_log());
    let requeue = h
        .trace
        .iter()
        .position(|r| matches!(r.ev, Ev::Out(Action::Requeue)));
    let exit = h
        .trace
        .iter()
        .position(|r| matches!(r.ev, Ev::Out(Action::Exit { .. })));
    assert!(requeue < exit && exit.is_some());
    assert!(h
        .master_events()
        .iter()
        .any(|(_, m)| *m == MasterEvent::Requeue { runs_left: 1 }));
}

#[test]
fn no_requeue_unless_asked_nor_without_work_left_nor_before_the_time_limit() {
    // Not asked.
    let mut h = requeue_harness(false);
    h.shutdown_at_wall(secs(940));
    h.step(secs(1000));
    assert!(h.exit_at().is_some());
    assert!(h.requeues().is_empty());
    // A SIGTERM long before the end is not the time limit.
    let mut h = requeue_harness(true);
    h.step(secs(10));
    h.shutdown();
    h.step(secs(10));
    assert!(h.exit_at().is_some());
    assert!(h.requeues().is_empty());
    // Slurm's own SIGTERM at the end is.
    let mut h = requeue_harness(true);
    h.step(secs(995));
    h.shutdown();
    h.step(secs(10));
    assert_eq!(h.requeues().len(), 1, "{}", h.job_log());
    // The time limit with nothing left to do: no requeue.
    let mut h = requeue_harness(true);
    h.step(secs(10));
    h.killed("work", libc::SIGSEGV);
    h.shutdown_at_wall(secs(940));
    h.step(secs(1000));
    assert!(h.exit_at().is_some());
    assert!(h.requeues().is_empty(), "{}", h.job_log());
}

#[test]
fn tasks_without_a_request_run_the_same_with_an_inventory_and_a_job_end() {
    let run = |alloc: bool| {
        let globals = Globals {
            max_parallel: Some(2),
            ..Globals::default()
        };
        let mut tasks: Vec<TaskSpec> = (0..6).map(|n| task(&format!("t{n}"))).collect();
        tasks.push(retrying(timer("tick", secs(7)), 2));
        let mut h = Harness::build(globals, Mode::default(), tasks);
        for n in 0..6u64 {
            h.script(&format!("t{n}"), Script::exits(secs(n + 1), (n % 2) as i32));
        }
        h.script("tick", Script::exits(secs(3), 1));
        if alloc {
            h.resources();
            h.job_end(secs(100_000));
        }
        h.start();
        h.step(secs(60));
        let grants: Vec<Option<Grant>> = (0..6)
            .map(|n| format!("t{n}"))
            .chain(["tick".to_owned()])
            .flat_map(|t| h.grants(&t))
            .collect();
        assert!(grants.iter().all(Option::is_none), "{grants:?}");
        (h.job_log(), h.spawn_order(), h.spawn_times("tick"))
    };
    let (plain, packed) = (run(false), run(true));
    assert!(!plain.0.is_empty());
    assert_eq!(plain, packed);
}

#[test]
fn a_failed_spawn_gives_its_resources_back() {
    let tasks = vec![asking(task("a"), 4, 2), asking(task("b"), 4, 2)];
    let mut h = Harness::new(tasks);
    h.fail_spawn.insert("a".into());
    h.script("b", Script::forever());
    h.resources();
    h.start();
    assert_eq!(h.grants("a").len(), 1);
    assert_eq!(h.spawn_times("b"), vec![secs(0)], "{}", h.job_log());
    assert_eq!(h.grant("b").cpus.len(), 4);
    assert_eq!(h.grant("b").gpus.len(), 2);
}

// ---- several nodes (issue 18) ---------------------------------------------------------

/// Another node's inventory: `cpus` CPUs, no GPU, 8 GiB.
fn node_inventory(cpus: u32) -> Inventory {
    Inventory::of_node(
        crate::resources::CpuSet::from_cpus(0..cpus),
        Vec::new(),
        8 << 30,
    )
}

impl Harness {
    /// Agents start on `nodes` (after `Resources`, as the runtime does).
    fn agents(&mut self, nodes: &[&str]) -> Vec<Action> {
        self.pump(Some(Input::Agents {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        }))
    }

    fn node_ready(&mut self, node: &str, cpus: u32) -> Vec<Action> {
        self.pump(Some(Input::NodeReady {
            node: node.into(),
            inventory: node_inventory(cpus),
        }))
    }

    /// The node of every spawn of `task`, in order (`None`: bansuri's own).
    fn nodes_of(&self, task: &str) -> Vec<Option<String>> {
        self.outs()
            .filter_map(|(_, a)| match a {
                Action::Spawn { task: t, node, .. } if t.name == task => {
                    Some(node.as_deref().map(str::to_owned))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn with_agents_every_run_is_placed_and_a_ready_node_takes_the_waiting_ones() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut h = Harness::new(names.map(task).to_vec());
    for n in names {
        h.script(n, Script::forever());
    }
    h.resources();
    h.agents(&["n2"]);
    assert!(h
        .job_log()
        .contains("Starting agents on 1 other node(s) in one job step: n2"));
    h.start();
    // This node has 4 CPUs: 4 runs of tasks without a request (one CPU each), unbound.
    let here: Vec<&str> = names
        .into_iter()
        .filter(|n| h.nodes_of(n) == [None])
        .collect();
    assert_eq!(here.len(), 4, "{}", h.job_log());
    assert_eq!(h.state("e"), TaskState::Waiting);
    assert_eq!(
        h.status_for("e").waiting_for.as_deref(),
        Some("needs 1 CPU, 0 free")
    );
    // n2 answers with 2 CPUs: the two waiting runs go there.
    h.step(secs(1));
    h.node_ready("n2", 2);
    assert!(h
        .job_log()
        .contains("Node n2 ready: CPUs 0-1, memory 8 GiB"));
    for n in ["e", "f"] {
        assert_eq!(
            h.nodes_of(n),
            [Some("n2".to_owned())],
            "{n}: {}",
            h.job_log()
        );
    }
    let nodes = h.core.nodes();
    assert_eq!(nodes.len(), 2);
    assert_eq!((nodes[0].runs, nodes[1].runs), (4, 2));
    assert_eq!(nodes[1].free.cpus, 0);
    assert_eq!(nodes[1].state, crate::core::NodeState::Ready);
}

#[test]
fn a_lost_node_fails_its_runs_which_retry_elsewhere_and_it_takes_no_more() {
    let retrying = |n: &str| TaskSpec {
        on_fail: OnFail::Restart,
        times: 3,
        ..asking(task(n), 4, 0)
    };
    let mut h = Harness::new(vec![retrying("here"), retrying("there")]);
    h.script("here", Script::exits(secs(30), 0));
    h.script("there", Script::forever());
    h.resources();
    h.agents(&["n2", "n3"]);
    h.node_ready("n2", 4);
    h.start();
    assert_eq!(h.nodes_of("here"), [None]);
    assert_eq!(h.nodes_of("there"), [Some("n2".to_owned())]);
    h.step(secs(5));
    h.pump(Some(Input::NodeLost {
        node: "n2".into(),
        reason: "its agent exited (Killed)".into(),
    }));
    let log = h.job_log();
    assert!(
        log.contains("Node n2 lost: its agent exited (Killed); its 1 run(s) failed and it takes no more runs"),
        "{log}"
    );
    assert!(log.contains("Failed: node n2 lost"), "{log}");
    assert_eq!(h.status_for("there").stats.failures, 1);
    // The retry waits: n2 is gone, this node is busy, n3 is not ready yet.
    h.step(secs(10));
    assert_eq!(h.nodes_of("there").len(), 1, "{}", h.job_log());
    h.node_ready("n3", 4);
    assert_eq!(
        h.nodes_of("there"),
        [Some("n2".to_owned()), Some("n3".to_owned())]
    );
    // A node lost twice, or told ready after it was lost, changes nothing.
    h.node_ready("n2", 4);
    h.pump(Some(Input::NodeLost {
        node: "n2".into(),
        reason: "again".into(),
    }));
    assert_eq!(h.job_log().matches("Node n2 lost").count(), 1);
    let nodes = h.core.nodes();
    assert_eq!(nodes[1].state, crate::core::NodeState::Lost);
    assert_eq!(nodes[1].total.cpus, 0);
}

#[test]
fn tasks_that_cannot_leave_this_node_stay_and_without_a_request_are_not_packed() {
    use crate::spec::{OutputTarget, SrunSpec};
    let mut to_file = task("to-file");
    to_file.stdout = OutputTarget::File("/tmp/x.log".into());
    let mut on_srun = task("on-srun");
    on_srun.srun = Some(SrunSpec::default());
    let big_file = TaskSpec {
        stdout: OutputTarget::File("/tmp/y.log".into()),
        ..asking(task("big-file"), 4, 0)
    };
    assert!(!crate::core::may_run_elsewhere(&to_file));
    assert!(!crate::core::may_run_elsewhere(&on_srun));
    assert!(crate::core::may_run_elsewhere(&task("plain")));
    let mut h = Harness::new(vec![asking(task("hog"), 4, 0), to_file, on_srun, big_file]);
    for n in ["hog", "to-file", "on-srun", "big-file"] {
        h.script(n, Script::forever());
    }
    h.resources();
    h.agents(&["n2"]);
    h.node_ready("n2", 2);
    h.start();
    // The hog (4 CPUs) fits only here (n2 has 2).
    assert_eq!(h.nodes_of("hog"), [None]);
    // Without a request, a task that must stay here is not packed: it starts at once
    // although the hog holds every CPU of this node.
    assert_eq!(h.nodes_of("to-file"), [None]);
    assert_eq!(h.nodes_of("on-srun"), [None]);
    // With one, it waits for this node.
    assert!(h.nodes_of("big-file").is_empty(), "{}", h.job_log());
    assert_eq!(h.state("big-file"), TaskState::Waiting);
    assert_eq!(
        h.status_for("big-file").waiting_for.as_deref(),
        Some("needs 4 CPUs, 0 free")
    );
}
