//! Fake-clock tests of array elements in the core (issue 19): an array's `parallel` cap,
//! alone and with `max_parallel` and other tasks.

use super::*;
use crate::spec::ArrayElement;

/// Element `id` of array `array`, capped at `parallel`.
fn element(array: &str, id: u64, parallel: Option<u32>) -> TaskSpec {
    TaskSpec {
        element: Some(ArrayElement {
            array: array.into(),
            id,
            item: id.to_string(),
            named: Vec::new(),
            parallel,
        }),
        ..task(&crate::array::element_name(array, id))
    }
}

#[test]
fn an_arrays_parallel_cap_holds_and_its_elements_start_in_order() {
    let mut tasks: Vec<TaskSpec> = (1..=5).map(|id| element("sweep", id, Some(2))).collect();
    tasks.push(task("other"));
    let mut h = Harness::new(tasks);
    for id in 1..=5 {
        h.script(&format!("sweep[{id}]"), Script::exits(secs(10), 0));
    }
    h.script("other", Script::forever());
    h.start();
    // Two elements, and the other task beside them (the cap is the array's alone).
    assert_eq!(h.spawn_times("sweep[1]"), vec![secs(0)]);
    assert_eq!(h.spawn_times("sweep[2]"), vec![secs(0)]);
    assert!(h.spawn_times("sweep[3]").is_empty());
    assert_eq!(h.spawn_times("other"), vec![secs(0)]);
    h.step_to(secs(10));
    assert_eq!(h.spawn_times("sweep[3]"), vec![secs(10)]);
    assert_eq!(h.spawn_times("sweep[4]"), vec![secs(10)]);
    assert!(h.spawn_times("sweep[5]").is_empty());
    h.step_to(secs(20));
    assert_eq!(h.spawn_times("sweep[5]"), vec![secs(20)]);
    h.step_to(secs(30));
    for id in 1..=5 {
        assert_eq!(h.state(&format!("sweep[{id}]")), TaskState::Success);
    }
}

#[test]
fn the_cap_and_max_parallel_combine_and_a_capped_run_does_not_block_the_queue() {
    // max_parallel 3: two of the capped array, then the uncapped one takes the third slot
    // although a capped element came first.
    let mut tasks: Vec<TaskSpec> = (0..4).map(|id| element("a", id, Some(2))).collect();
    tasks.extend((0..2).map(|id| element("b", id, None)));
    let globals = Globals {
        max_parallel: Some(3),
        ..Globals::default()
    };
    let mut h = Harness::build(globals, Mode::default(), tasks);
    for id in 0..4 {
        h.script(&format!("a[{id}]"), Script::exits(secs(10), 0));
    }
    for id in 0..2 {
        h.script(&format!("b[{id}]"), Script::exits(secs(10), 0));
    }
    h.start();
    let at0: Vec<String> = ["a[0]", "a[1]", "a[2]", "a[3]", "b[0]", "b[1]"]
        .iter()
        .filter(|t| h.spawn_times(t) == [secs(0)])
        .map(|t| t.to_string())
        .collect();
    assert_eq!(at0, ["a[0]", "a[1]", "b[0]"]);
    h.step_to(secs(10));
    let at10: Vec<String> = ["a[2]", "a[3]", "b[1]"]
        .iter()
        .filter(|t| h.spawn_times(t) == [secs(10)])
        .map(|t| t.to_string())
        .collect();
    assert_eq!(at10, ["a[2]", "a[3]", "b[1]"]);
}

#[test]
fn a_changed_command_applies_to_the_elements_not_yet_run() {
    let spec = |cmd: &str| vec![array("w", "1-4", Some(2), &format!("{cmd} {{item}}"))];
    let mut h = Harness::new(spec("v1"));
    for id in 1..=4 {
        h.script(&format!("w[{id}]"), Script::exits(secs(10), 0));
    }
    h.start();
    h.step_to(secs(15));
    // w[1], w[2] done; w[3], w[4] running since 10 s. The command changes.
    h.reload(Globals::default(), spec("v2"));
    h.step_to(secs(40));
    let commands: Vec<(String, String)> = h
        .outs()
        .filter_map(|(_, a)| match a {
            Action::Spawn { task, .. } => Some((task.name.clone(), task.command.display())),
            _ => None,
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("w[1]".to_owned(), "v1 '1'".to_owned()),
            ("w[2]".to_owned(), "v1 '2'".to_owned()),
            ("w[3]".to_owned(), "v1 '3'".to_owned()),
            ("w[4]".to_owned(), "v1 '4'".to_owned()),
        ],
        "nothing that started is stopped or run again:\n{}",
        h.job_log()
    );
    assert!(!h.job_log().contains("Stopping"), "{}", h.job_log());
}

#[test]
fn an_element_not_yet_run_takes_the_new_command() {
    let spec = |cmd: &str| vec![array("w", "1-3", Some(1), &format!("{cmd} {{item}}"))];
    let mut h = Harness::new(spec("v1"));
    for id in 1..=3 {
        h.script(&format!("w[{id}]"), Script::exits(secs(10), 0));
    }
    h.start();
    h.step_to(secs(5));
    h.reload(Globals::default(), spec("v2"));
    h.step_to(secs(40));
    let last: Vec<String> = h
        .outs()
        .filter_map(|(_, a)| match a {
            Action::Spawn { task, .. } if task.name != "w[1]" => Some(task.command.display()),
            _ => None,
        })
        .collect();
    assert_eq!(last, ["v2 '2'", "v2 '3'"], "{}", h.job_log());
}

/// Array task `name` over `range` (its elements made by the core's feed), capped at
/// `parallel`, running `command` (placeholders filled).
fn array(name: &str, range: &str, parallel: Option<u32>, command: &str) -> TaskSpec {
    TaskSpec {
        command: CommandSpec::Shell(command.into()),
        sweep: Some(Arc::new(crate::spec::Sweep {
            array: crate::array::Array::range(range).expect("range"),
            parallel,
            task_file: false,
        })),
        ..task(name)
    }
}

/// An array's counts.
fn counts(h: &Harness, name: &str) -> crate::core::ArrayView {
    h.core
        .arrays()
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no array {name}"))
}

#[test]
fn a_large_array_is_a_window_of_tasks_not_one_task_per_element() {
    let mut h = Harness::new(vec![array("w", "1-100000", Some(4), "run {item}")]);
    h.script("w", Script::exits(secs(1), 0));
    h.start();
    // Four elements are tasks (running), not 100,000.
    assert_eq!(h.core.views().len(), 4);
    assert_eq!(h.spawn_times("w[4]"), vec![secs(0)]);
    assert!(h.spawn_times("w[5]").is_empty());
    h.step_to(secs(10));
    // Ten rounds of four: the elements that succeeded are bits, not tasks.
    let c = counts(&h, "w");
    assert_eq!((c.elements, c.held), (100_000, 0));
    assert!(
        (36..=40).contains(&c.succeeded),
        "succeeded {}",
        c.succeeded
    );
    assert!(h.core.views().len() <= 8, "{:?}", h.core.views().len());
    assert_eq!(h.core.progress().total, 100_000);
    assert_eq!(h.spawn_times("w[41]"), vec![secs(10)]);
    // The command is the element's, placeholders filled.
    let cmd = h
        .outs()
        .find_map(|(_, a)| match a {
            Action::Spawn { task, .. } if task.name == "w[7]" => Some(task.command.display()),
            _ => None,
        })
        .expect("w[7] spawned");
    assert_eq!(cmd, "run '7'");
}

#[test]
fn a_whole_array_runs_then_the_batch_exits_with_one_summary_row_for_it() {
    let mode = Mode {
        exit_when_done: true,
        ..Mode::default()
    };
    let mut h = Harness::build(
        Globals::default(),
        mode,
        vec![array("w", "1-50", Some(5), "x")],
    );
    h.script("w", Script::exits(secs(1), 0));
    h.script_next("w[7]", Script::exits(secs(1), 3));
    h.start();
    h.step_to(secs(60));
    assert_eq!(
        h.exit_at().map(|(_, code)| code),
        Some(3),
        "{}",
        h.job_log()
    );
    // No element is a task once it ended (those that ended since the last input are
    // retired at the next one): the array's counts say what happened.
    let c = counts(&h, "w");
    assert!(c.succeeded >= 45, "{c:?}");
    assert_eq!(c.failed, 1, "{c:?}");
    assert_eq!(c.failed_first[0].0, "w[7]");
    assert_eq!(c.failed_first[0].1.end, Some(ProcessEnd::Exited(3)));
    assert!(h.core.views().len() <= 5);
    let log = h.job_log();
    assert!(
        log.contains("Array w: 50 elements: 49 succeeded, 1 failed, 0 not run"),
        "{log}"
    );
    assert!(
        !log.contains("w[8]  "),
        "no summary row per element:\n{log}"
    );
    assert!(
        log.contains("] w     FAILED         50"),
        "the array's row:\n{log}"
    );
    assert!(
        !log.contains("Schedule: once"),
        "no line per element made:\n{log}"
    );
    assert!(log.contains("1 task configured"), "{log}");
}

#[test]
fn dependencies_on_an_array_wait_for_every_element_and_one_element_for_itself() {
    let mut all = task("all");
    all.depends_on = vec!["w".into()];
    let mut one = task("one");
    one.depends_on = vec!["w[2]".into()];
    let mut h = Harness::new(vec![array("w", "1-6", Some(2), "x"), all, one]);
    h.script("w", Script::exits(secs(10), 0));
    h.script("all", Script::exits(secs(1), 0));
    h.script("one", Script::exits(secs(1), 0));
    h.start();
    h.step_to(secs(10));
    // w[2] succeeded (and is retired at the next input): `one` starts, `all` waits.
    h.step_to(secs(11));
    assert_eq!(h.spawn_times("one"), vec![secs(10)]);
    assert!(h.spawn_times("all").is_empty());
    h.step_to(secs(40));
    assert_eq!(h.spawn_times("all"), vec![secs(30)]);
}

#[test]
fn an_array_whose_dependency_failed_is_skipped_without_making_its_elements() {
    let mut arr = array("w", "1-100000", None, "x");
    arr.depends_on = vec!["prep".into()];
    let mut h = Harness::new(vec![task("prep"), arr]);
    h.script("prep", Script::exits(secs(1), 1));
    h.start();
    h.step_to(secs(5));
    assert_eq!(h.core.views().len(), 1, "only prep is a task");
    assert!(counts(&h, "w").skipped.is_some());
    assert!(h.job_log().contains("w"), "{}", h.job_log());
}

#[test]
fn resume_marks_elements_done_and_retry_failed_runs_only_the_failed() {
    let spec = array("w", "1-5", None, "x {item}");
    let hash = |id: u64| {
        let pos = id - 1;
        crate::core::settings_hash(&crate::spec::expand::element_task(&spec, pos).unwrap())
    };
    let mut h = Harness::new(vec![spec.clone()]);
    h.script("w", Script::exits(secs(1), 0));
    let succeeded: HashMap<String, String> = [1, 2, 4]
        .into_iter()
        .map(|id| (format!("w[{id}]"), hash(id)))
        .chain([("w[5]".to_owned(), "other settings".to_owned())])
        .collect();
    let skipped = h.core.resume(&succeeded);
    assert_eq!(skipped, ["w[1]", "w[2]", "w[4]"]);
    let failed: std::collections::HashSet<String> = ["w[3]".to_owned()].into();
    assert_eq!(h.core.only_failed(&failed), 1, "w[5] is held back");
    h.start();
    h.step_to(secs(5));
    for id in [1, 2, 4, 5] {
        assert!(h.spawn_times(&format!("w[{id}]")).is_empty(), "w[{id}]");
    }
    assert_eq!(h.spawn_times("w[3]"), vec![secs(0)]);
    let c = counts(&h, "w");
    // Three resumed; w[3] succeeded (a task until the next input); w[5] held back.
    assert_eq!((c.succeeded, c.held), (3, 1));
    assert_eq!(h.state("w[3]"), TaskState::Success);
    let p = h.core.progress();
    assert_eq!((p.total, p.done), (4, 4));
}

#[test]
fn a_reload_grows_and_shrinks_an_array_by_element_id() {
    let mut h = Harness::new(vec![array("w", "1-4", Some(2), "x")]);
    h.script("w", Script::exits(secs(10), 0));
    h.start();
    h.step_to(secs(15));
    // w[1], w[2] done; w[3], w[4] running. Shrink to 1-3 and grow to 1-3,7-8.
    h.reload(
        Globals::default(),
        vec![array("w", "1-3,7-8", Some(2), "x")],
    );
    h.step_to(secs(60));
    assert_eq!(h.spawn_times("w[3]"), vec![secs(10)]);
    assert_eq!(
        h.spawn_times("w[4]"),
        vec![secs(10)],
        "w[4] was stopped, not rerun"
    );
    assert_eq!(h.spawn_times("w[7]"), vec![secs(20)]);
    assert_eq!(h.spawn_times("w[8]"), vec![secs(20)]);
    assert!(h.spawn_times("w[1]").len() == 1 && h.spawn_times("w[2]").len() == 1);
    let log = h.job_log();
    assert!(log.contains("w[4]"), "{log}");
    // Elements 1, 2, 3, 7 and 8 succeeded (the last two still tasks until the next input).
    let p = h.core.progress();
    assert_eq!((p.total, p.done), (5, 5), "{log}");
}

#[test]
fn stop_holds_an_array_and_start_frees_it() {
    let mut h = Harness::new(vec![array("w", "1-10", Some(2), "x")]);
    h.script("w", Script::exits(secs(10), 0));
    h.start();
    h.pump(Some(Input::StopTask { task: "w".into() }));
    h.step_to(secs(30));
    // The two running were stopped; nothing else started.
    assert_eq!(h.spawn_times("w[3]"), Vec::<Duration>::new());
    h.pump(Some(Input::StartTask { task: "w".into() }));
    h.step_to(secs(50));
    // They run again (they were interrupted), then the array goes on.
    assert_eq!(h.spawn_times("w[1]"), vec![secs(0), secs(30)]);
    assert_eq!(h.spawn_times("w[3]"), vec![secs(40)], "{}", h.job_log());
}

#[test]
fn failed_elements_are_counted_not_kept_and_fail_what_depends_on_them() {
    let mut one = task("one");
    one.depends_on = vec!["w[3]".into()];
    let mut all = task("all");
    all.depends_on = vec!["w".into()];
    let mut h = Harness::new(vec![array("w", "1-1000", Some(2), "x"), one, all]);
    // Every element fails at once, as a typo in the command would make them.
    h.script("w", Script::exits(secs(1), 2));
    h.start();
    h.step_to(secs(600));
    // The last one is retired at the next input, as any element.
    let c = counts(&h, "w");
    assert!(c.failed >= 999, "{}", c.failed);
    assert_eq!(c.failed_first.len(), 100);
    assert_eq!(c.failed_first[0].0, "w[1]");
    // Not a task per failure: the core stays small.
    assert!(h.core.views().len() <= 6, "{}", h.core.views().len());
    assert_eq!(h.state("one"), TaskState::Skipped);
    assert_eq!(h.state("all"), TaskState::Skipped);
    let p = h.core.progress();
    assert_eq!((p.total, p.done, p.failed), (1002, 1002, 1002), "{p:?}");
}

#[test]
fn an_array_with_autostart_false_waits_for_a_start_command() {
    let mut arr = array("w", "1-3", Some(1), "x");
    arr.autostart = false;
    let mut h = Harness::new(vec![arr]);
    h.script("w", Script::exits(secs(1), 0));
    h.start();
    h.step_to(secs(10));
    assert!(h.spawn_times("w[1]").is_empty());
    assert_eq!(h.core.views().len(), 0);
    h.pump(Some(Input::StartTask { task: "w".into() }));
    h.step_to(secs(20));
    assert_eq!(h.spawn_times("w[1]"), vec![secs(10)]);
    assert_eq!(h.spawn_times("w[3]"), vec![secs(12)]);
}

#[test]
fn a_run_waiting_for_a_slot_says_which() {
    let globals = Globals {
        max_parallel: Some(2),
        ..Globals::default()
    };
    let mut h = Harness::build(
        globals,
        Mode::default(),
        vec![task("a"), array("w", "1-4", Some(2), "x"), task("b")],
    );
    h.script("w", Script::forever());
    h.script("a", Script::forever());
    h.script("b", Script::forever());
    h.start();
    // a and b run (the array's elements are made at the first tick, after the tasks);
    // w[1] and w[2] (the array's window is 2) wait for a slot; w[3] is not a task yet
    // (the array's counts say it waits).
    let why = |name: &str| {
        h.core
            .status(h.now)
            .into_iter()
            .find(|s| s.name == name)
            .and_then(|s| s.waiting_for)
    };
    assert_eq!(
        why("w[1]").as_deref(),
        Some("a slot (max_parallel 2, all in use)")
    );
    assert_eq!(
        why("w[2]").as_deref(),
        Some("a slot (max_parallel 2, all in use)")
    );
    assert_eq!(why("a"), None);
    assert_eq!(why("b"), None);
    assert!(h.core.status(h.now).iter().all(|s| s.name != "w[3]"));
}
