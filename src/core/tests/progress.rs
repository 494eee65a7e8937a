//! Fake-clock tests of the batch progress counts.

use super::*;

#[test]
fn progress_counts_done_running_and_failed_tasks() {
    let globals = Globals {
        max_parallel: Some(2),
        ..Globals::default()
    };
    let off = TaskSpec {
        enabled: false,
        ..task("off")
    };
    let retry = TaskSpec {
        on_fail: OnFail::Restart,
        times: 2,
        ..task("retry")
    };
    let mut h = Harness::build(
        globals,
        batch(),
        vec![task("a"), task("b"), task("c"), retry, off],
    );
    h.script("a", Script::exits(secs(1), 0));
    h.script("b", Script::exits(secs(2), 1));
    h.script("c", Script::exits(secs(1), 0));
    h.script("retry", Script::exits(secs(1), 1));
    let p = h.core.progress();
    assert_eq!(
        (p.total, p.done, p.running, p.failed),
        (4, 0, 0, 0),
        "before start"
    );
    h.start();
    // Two slots: a and b run, c and retry wait (waiting runs do not count as running).
    let p = h.core.progress();
    assert_eq!((p.total, p.done, p.running, p.failed), (4, 0, 2, 0));
    h.step(ms(1500));
    // a succeeded; c took its slot.
    let p = h.core.progress();
    assert_eq!((p.done, p.running, p.failed), (1, 2, 0));
    h.step(secs(1));
    // b failed at 2 s, c succeeded at 2 s; retry's first attempt runs.
    let p = h.core.progress();
    assert_eq!((p.done, p.running, p.failed), (3, 1, 1));
    h.step(secs(1));
    // retry's first attempt failed: it waits for its second, so it is not done.
    let p = h.core.progress();
    assert_eq!((p.done, p.failed), (3, 1), "a pending retry is not done");
    h.step(secs(5));
    let p = h.core.progress();
    assert_eq!((p.total, p.done, p.running, p.failed), (4, 4, 0, 2));
    assert!(h.core.has_exited());
}
