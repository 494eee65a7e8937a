//! A problem of the machine (a working directory not created yet, an unknown user, an
//! environment-file not written yet) fails that task's start, not the whole config; and
//! dated output files. With the real binary and real processes.

mod common;

use std::time::Duration;

use bansuri::control::state::StateDoc;
use chrono::Datelike;
use common::*;

/// Generous: the machine is shared with other builds.
const T: Duration = Duration::from_secs(30);

/// The state of `task` from `bansuri status --json`, once `pred` holds for it.
fn wait_task_state(sb: &Sandbox, b: &Bansuri, task: &str, pred: impl Fn(&str) -> bool) -> String {
    let cfg = sb.file("config.json");
    wait_for(T, || {
        let (code, json, _) = client(&cfg, &["status", "--json"], &[]);
        if code != 0 {
            return None;
        }
        let doc = StateDoc::parse(&json).ok()?;
        let state = doc.task(task)?.state.clone();
        pred(&state).then_some(state)
    })
    .unwrap_or_else(|| {
        panic!(
            "timed out waiting for the state of {task}; job log:\n{}",
            b.log()
        )
    })
}

/// Lines of the job log about `task` (not its output).
fn task_lines<'a>(log: &'a str, task: &str) -> Vec<&'a str> {
    let tag = format!("[{task}]");
    log.lines().filter(|l| l.contains(&tag)).collect()
}

#[test]
fn validate_warns_and_a_missing_directory_user_or_env_file_fails_only_that_task() {
    let sb = Sandbox::new();
    let cfg = format!(
        r#"{{"scripts": [
    {{"name": "good", "command": "echo ran > {good}"}},
    {{"name": "nodir", "command": "true", "working-directory": "not-yet"}},
    {{"name": "nouser", "command": "true", "user": "no-such-user-bansuri"}},
    {{"name": "noenv", "command": "true", "environment-file": "vars.env"}}
]}}"#,
        good = sb.file("good.out").display()
    );
    // `validate`: the file is valid (exit 0), each problem a warning at its line.
    let path = sb.write("config.json", &cfg);
    let (code, out, err) = client(&path, &["validate"], &[]);
    assert_eq!(code, 0, "validate refused it:\n{out}\n{err}");
    for (line, field) in [
        (3, "working-directory"),
        (4, "user"),
        (5, "environment-file"),
    ] {
        let here = format!("--> {}:{line}:", path.display());
        assert!(
            out.contains(&format!("warning: `{field}` in task `")) && out.contains(&here),
            "a warning for {field} at {here} in:\n{out}"
        );
    }
    assert!(!out.contains("error"), "{out}");

    let b = sb.start(&cfg, &[]);
    wait_for(T, || (sb.read("good.out") == "ran\n").then_some(()))
        .unwrap_or_else(|| panic!("the good task did not run; job log:\n{}", b.log()));
    for (task, why) in [
        (
            "nodir",
            format!(
                "Failed to start: working directory {} does not exist",
                sb.file("not-yet").display()
            ),
        ),
        (
            "nouser",
            "Failed to start: unknown user `no-such-user-bansuri` on this machine".to_owned(),
        ),
        (
            "noenv",
            format!(
                "Failed to start: environment-file `{}` does not exist",
                sb.file("vars.env").display()
            ),
        ),
    ] {
        assert_eq!(wait_task_state(&sb, &b, task, |s| s == "FAILED"), "FAILED");
        let log = b.log();
        assert!(
            task_lines(&log, task).iter().any(|l| l.contains(&why)),
            "{task}: {why:?} in the job log:\n{log}"
        );
    }
    assert_eq!(
        wait_task_state(&sb, &b, "good", |s| s == "SUCCESS"),
        "SUCCESS"
    );
    let log = b.log();
    assert!(
        log.contains("WARNING: Config: `working-directory` in task `nodir`"),
        "the warnings are in the job log:\n{log}"
    );
}

#[test]
fn a_directory_made_later_by_a_setup_task_lets_a_later_attempt_start() {
    let sb = Sandbox::new();
    let log = sb.file("log.txt");
    // `setup` makes the directory only once `late` has failed to start at least once.
    let cfg = format!(
        r#"{{"scripts": [
    {{"name": "setup", "command": "until grep -q 'Failed to start: working directory' {log}; do sleep 0.05; done; mkdir made-later"}},
    {{"name": "late", "command": "pwd > ../late.out", "working-directory": "made-later",
      "on-fail": "restart", "times": 1000, "restart-delay": "100ms", "max-restart-delay": "300ms"}}
]}}"#,
        log = log.display()
    );
    let b = sb.start(&cfg, &[]);
    let out = wait_for(T, || Some(sb.read("late.out")).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| panic!("late never started; job log:\n{}", b.log()));
    assert_eq!(out.trim(), sb.file("made-later").display().to_string());
    assert_eq!(
        wait_task_state(&sb, &b, "late", |s| s == "SUCCESS"),
        "SUCCESS"
    );
    let log = b.log();
    let late = task_lines(&log, "late");
    let failed = late
        .iter()
        .position(|l| l.contains("Failed to start: working directory"))
        .unwrap_or_else(|| panic!("no failed start of late:\n{log}"));
    assert!(
        late[failed..]
            .iter()
            .any(|l| l.contains("Restarting in") && l.contains("on-fail: restart")),
        "on-fail applies to the failed start:\n{log}"
    );
    assert!(
        late[failed..]
            .iter()
            .any(|l| l.contains("Executing shell command")
                && l.contains("attempt ")
                && !l.contains("attempt 1/")),
        "a later attempt ran:\n{log}"
    );
}

#[test]
fn a_reload_adding_a_good_task_beside_a_bad_environment_starts_the_good_one() {
    let sb = Sandbox::new();
    let first = r#"{"scripts": [{"name": "a", "command": "exec sleep 300"}]}"#;
    let b = sb.start(first, &["--check-interval", "1h"]);
    assert_eq!(wait_task_state(&sb, &b, "a", |s| s == "RUNNING"), "RUNNING");
    let second = format!(
        r#"{{"scripts": [
    {{"name": "a", "command": "exec sleep 300"}},
    {{"name": "bad", "command": "true", "working-directory": "nowhere"}},
    {{"name": "new", "command": "echo new > {new}"}}
]}}"#,
        new = sb.file("new.out").display()
    );
    sb.write("config.json", &second);
    b.signal(libc::SIGHUP);
    wait_for(T, || (sb.read("new.out") == "new\n").then_some(()))
        .unwrap_or_else(|| panic!("the new task did not start; job log:\n{}", b.log()));
    assert_eq!(wait_task_state(&sb, &b, "bad", |s| s == "FAILED"), "FAILED");
    let log = b.log();
    assert!(log.contains("Config reloaded"), "{log}");
    assert!(
        log.contains("WARNING: Config: `working-directory` in task `bad`"),
        "{log}"
    );
    assert!(
        task_lines(&log, "bad")
            .iter()
            .any(|l| l.contains("Failed to start: working directory")),
        "{log}"
    );
}

#[test]
fn a_timer_task_writes_into_the_file_named_with_the_current_year() {
    let sb = Sandbox::new();
    let dir = sb.file("logs");
    std::fs::create_dir(&dir).unwrap();
    // `out-%Y.log`, and the manual's spelling `$(date +%Y)` (read as the same pattern).
    let cfg = format!(
        r#"{{"scripts": [
    {{"name": "dated", "command": "echo dated-line", "timer": "1h", "stdout": "{dir}/out-%Y.log"}},
    {{"name": "manual", "command": "echo manual-line", "timer": "1h",
      "stdout": "{dir}/manual-$(date +%Y).log"}}
]}}"#,
        dir = dir.display()
    );
    let before = chrono::Local::now().year();
    let b = sb.start(&cfg, &[]);
    for (prefix, line) in [("out-", "dated-line"), ("manual-", "manual-line")] {
        let found = wait_for(T, || {
            std::fs::read_dir(&dir)
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {prefix} file; job log:\n{}", b.log()));
        let after = chrono::Local::now().year();
        assert!(
            found == format!("{prefix}{before}.log") || found == format!("{prefix}{after}.log"),
            "the file is named with the year: {found}"
        );
        let text = wait_for(T, || {
            Some(std::fs::read_to_string(dir.join(&found)).unwrap_or_default())
                .filter(|t| t.contains(line))
        })
        .unwrap_or_else(|| panic!("nothing written to {found}; job log:\n{}", b.log()));
        assert_eq!(text, format!("{line}\n"));
    }
    // The job log is buffered: wait for the line rather than read it once.
    b.wait_log("the `$(` warning", T, |log| {
        log.contains("WARNING: Config: `stdout` in task `manual`: no shell runs on the path")
    });
}
