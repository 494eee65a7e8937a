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
    let spec = |cmd: &str| -> Vec<TaskSpec> {
        (1..=4)
            .map(|id| TaskSpec {
                command: CommandSpec::Shell(format!("{cmd} {id}")),
                ..element("w", id, Some(2))
            })
            .collect()
    };
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
            ("w[1]".to_owned(), "v1 1".to_owned()),
            ("w[2]".to_owned(), "v1 2".to_owned()),
            ("w[3]".to_owned(), "v1 3".to_owned()),
            ("w[4]".to_owned(), "v1 4".to_owned()),
        ],
        "nothing that started is stopped or run again:\n{}",
        h.job_log()
    );
    assert!(!h.job_log().contains("Stopping"), "{}", h.job_log());
}

#[test]
fn an_element_not_yet_run_takes_the_new_command() {
    let spec = |cmd: &str| -> Vec<TaskSpec> {
        (1..=3)
            .map(|id| TaskSpec {
                command: CommandSpec::Shell(format!("{cmd} {id}")),
                ..element("w", id, Some(1))
            })
            .collect()
    };
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
    assert_eq!(last, ["v2 2", "v2 3"], "{}", h.job_log());
}
