//! The program model across hot reloads, with real processes: the dependency graph stays
//! consistent (cycles and dangling names refused, the old config running on), `numprocs`
//! changes only add or stop instances, and FATAL / SKIPPED tasks say why in `status`.

mod common;

use std::process::Command;
use std::time::Duration;

use bansuri::control::state::StateDoc;
use common::*;

const T: Duration = Duration::from_secs(20);

fn config(tasks: &[&str]) -> String {
    format!(r#"{{"scripts": [{}]}}"#, tasks.join(", "))
}

/// The pids a task wrote to `NAME.pids`, in order.
fn pids(sb: &Sandbox, name: &str) -> Vec<i32> {
    sb.read(&format!("{name}.pids"))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_pids(sb: &Sandbox, b: &Bansuri, name: &str, n: usize) -> Vec<i32> {
    wait_for(T, || {
        let p = pids(sb, name);
        (p.len() >= n).then_some(p)
    })
    .unwrap_or_else(|| panic!("{name} did not start {n} time(s); log:\n{}", b.log()))
}

/// Write `text` as the config, SIGHUP, and wait until the log has `n` refusals.
fn refused(sb: &Sandbox, b: &Bansuri, text: &str, n: usize) -> String {
    sb.write("config.json", text);
    b.signal(libc::SIGHUP);
    b.wait_log("the refusal", T, |l| {
        l.matches("was not loaded").count() == n
    })
}

/// Write `text` as the config, SIGHUP, and return the log's new `Config reloaded` line.
fn reloaded(sb: &Sandbox, b: &Bansuri, text: &str) -> String {
    let before = b.log().matches("Config reloaded:").count();
    sb.write("config.json", text);
    b.signal(libc::SIGHUP);
    let log = b.wait_log("the reload", T, |l| {
        l.matches("Config reloaded:").count() > before
    });
    log.lines()
        .filter(|l| l.contains("Config reloaded:"))
        .nth(before)
        .unwrap_or_default()
        .to_owned()
}

/// `bansuri status` (table) and `status --json` (the state document) for the sandbox's
/// config.
fn status(sb: &Sandbox) -> (String, StateDoc) {
    let cfg = sb.file("config.json");
    let run = |json: bool| {
        let mut c = Command::new(BIN);
        c.args(["status", "--config", cfg.to_str().unwrap()]);
        if json {
            c.arg("--json");
        }
        let out = c.output().expect("run bansuri status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let doc = StateDoc::parse(&run(true)).expect("status --json is the state document");
    (run(false), doc)
}

#[test]
fn reload_keeps_the_dependency_graph_consistent() {
    let sb = Sandbox::new();
    // `a` runs on (never succeeds while it runs), so `b` waits for it.
    let a = r#"{"name": "a", "command": "echo $$ >> a.pids; exec sleep 300"}"#;
    let b_waits =
        r#"{"name": "b", "command": "echo $$ >> b.pids; exec sleep 300", "depends-on": "a"}"#;
    let bansuri = sb.start(&config(&[a, b_waits]), &["--check-interval", "1h"]);
    let a_pid = wait_pids(&sb, &bansuri, "a", 1)[0];
    bansuri.wait_log("b waiting", T, |l| {
        l.contains("[b] Waiting: dependency `a` has not succeeded yet")
    });

    // A cycle: refused, named, and the config in effect runs on.
    let a_cycle =
        r#"{"name": "a", "command": "echo $$ >> a.pids; exec sleep 300", "depends-on": "b"}"#;
    let log = refused(&sb, &bansuri, &config(&[a_cycle, b_waits]), 1);
    assert!(log.contains("dependency cycle: a -> b -> a"), "{log}");

    // Removing a task that another still depends on: refused too.
    let log = refused(&sb, &bansuri, &config(&[b_waits]), 2);
    assert!(
        log.contains("unknown task `a` in `depends-on` in task `b`"),
        "{log}"
    );
    assert!(!log.contains("Config reloaded:"), "{log}");
    assert!(alive(a_pid), "a runs on: {log}");
    assert_eq!(pids(&sb, "a"), [a_pid], "a was not restarted");
    assert!(pids(&sb, "b").is_empty(), "b still waits: {log}");

    // Dropping the dependency: the waiting task starts, with nothing "skipped".
    let b_free = r#"{"name": "b", "command": "echo $$ >> b.pids; exec sleep 300"}"#;
    let line = reloaded(&sb, &bansuri, &config(&[a, b_free]));
    assert!(
        line.contains("0 added, 0 removed, 1 changed (b), 1 kept"),
        "{line}"
    );
    let b_pid = wait_pids(&sb, &bansuri, "b", 1)[0];
    assert!(alive(b_pid) && alive(a_pid));
    let log = bansuri.log();
    assert!(
        !log.contains("Scheduled run skipped"),
        "no run of b was going:\n{log}"
    );
}

#[test]
fn numprocs_added_and_dropped_on_reload_keeps_the_running_process() {
    let sb = Sandbox::new();
    // Each instance records its pid and says who it is every 50 ms.
    let w = |numprocs: &str| {
        format!(
            r#"{{"name": "w", {numprocs} "command": "echo $$ >> w.pids; while true; do echo tick-$BANSURI_INSTANCE; sleep 0.05; done"}}"#
        )
    };
    let b = sb.start(&config(&[&w("")]), &["--check-interval", "1h"]);
    let first = wait_pids(&sb, &b, "w", 1)[0];

    let line = reloaded(&sb, &b, &config(&[&w(r#""numprocs": 3,"#)]));
    assert!(
        line.contains("2 added (w:1, w:2), 0 removed, 0 changed, 1 kept"),
        "{line}"
    );
    let all = wait_pids(&sb, &b, "w", 3);
    assert_eq!(all[0], first);
    assert!(all.iter().all(|p| alive(*p)), "{all:?}");
    // The old process goes on, now under the name w:0 (it has no BANSURI_INSTANCE: it was
    // started as plain `w`).
    b.wait_log("w's output under its new name", T, |l| {
        output_lines(l, "w:0").contains(&"tick-")
            && output_lines(l, "w:1").contains(&"tick-1")
            && output_lines(l, "w:2").contains(&"tick-2")
    });
    // The state file is rewritten within 200 ms of a change.
    let names =
        |doc: &StateDoc| -> Vec<String> { doc.tasks.iter().map(|t| t.name.clone()).collect() };
    let (_, doc) = wait_for(T, || {
        let (table, doc) = status(&sb);
        (names(&doc) == ["w:0", "w:1", "w:2"]).then_some((table, doc))
    })
    .unwrap_or_else(|| panic!("status names w:0..2: {}", status(&sb).0));
    assert_eq!(doc.task("w:0").and_then(|t| t.pid), Some(first as u32));
    assert_eq!(doc.task("w:0").map(|t| t.starts), Some(1), "counters kept");

    // And back: w:0 is plain `w` again; w:1 and w:2 are stopped.
    let line = reloaded(&sb, &b, &config(&[&w("")]));
    assert!(
        line.contains("0 added, 2 removed (w:1, w:2), 0 changed, 1 kept"),
        "{line}"
    );
    wait_for(T, || (!alive(all[1]) && !alive(all[2])).then_some(()))
        .unwrap_or_else(|| panic!("w:1 and w:2 stopped; log:\n{}", b.log()));
    assert!(alive(first), "{}", b.log());
    assert_eq!(pids(&sb, "w").len(), 3, "nothing restarted: {}", b.log());
    assert_eq!(count_events(&b.log(), "w", "Stopping"), 0);
    assert_eq!(count_events(&b.log(), "w:0", "Stopping"), 0);
}

#[test]
fn status_says_why_a_task_is_fatal_or_skipped() {
    let sb = Sandbox::new();
    let cfg = config(&[
        r#"{"name": "a", "command": "exit 1"}"#,
        r#"{"name": "c", "command": "true", "depends-on": "a"}"#,
        r#"{"name": "crashy", "command": "exit 1", "autorestart": "unexpected",
            "starttime": 1, "startretries": 2, "restart-delay": "50ms"}"#,
        r#"{"name": "ok", "command": "exec sleep 300"}"#,
    ]);
    let b = sb.start(&cfg, &["--check-interval", "1h"]);
    b.wait_log("FATAL and SKIPPED", T, |l| {
        l.contains("[crashy] ERROR: FATAL") && l.contains("[c] WARNING: SKIPPED")
    });
    let skipped = "dependency `a` failed (exit 1)";
    let fatal =
        "exited 3 times in a row before staying up 1s (starttime; startretries: 2; last: exit 1)";
    // The state file is rewritten within 200 ms of a change.
    let (table, doc) = wait_for(T, || {
        let (table, doc) = status(&sb);
        (doc.task("crashy")?.state == "FATAL").then_some((table, doc))
    })
    .unwrap_or_else(|| panic!("crashy FATAL in status; log:\n{}", b.log()));
    let reason = |name: &str| doc.task(name).and_then(|t| t.reason.clone());
    assert_eq!(doc.task("c").map(|t| t.state.as_str()), Some("SKIPPED"));
    assert_eq!(reason("c").as_deref(), Some(skipped));
    assert_eq!(reason("crashy").as_deref(), Some(fatal));
    assert_eq!(reason("a"), None, "FAILED: the exit code says why");
    assert_eq!(reason("ok"), None);
    assert!(
        table.contains(&format!("\nc: SKIPPED: {skipped}\n")),
        "{table}"
    );
    assert!(
        table.contains(&format!("\ncrashy: FATAL: {fatal}\n")),
        "{table}"
    );
    assert!(!table.contains("\na: "), "{table}");
}
