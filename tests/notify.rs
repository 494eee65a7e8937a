//! Notifications with real processes (notify_command, its placeholders, environment,
//! timeout and independence from the schedule) and the library API through the example
//! programs (in-process tasks, a custom notifier).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{name}:` line in:\n{text}"))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn job_id() -> String {
    std::env::var("SLURM_JOB_ID")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "local".into())
}

fn is_timestamp(s: &str) -> bool {
    // 2026-01-19 14:30:45
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn mail_notice_holds_every_field_attempt_3_of_3_and_the_stderr_tail() {
    let sb = Sandbox::new();
    let cfg = r#"{"notify_command": "cat > OUT", "scripts": [{
        "name": "flaky",
        "command": "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo out-$BANSURI_ATTEMPT-$i; done; echo err-first-$BANSURI_ATTEMPT >&2; echo err-last-$BANSURI_ATTEMPT >&2; exit 3",
        "description": "Nightly copy of the results",
        "on-fail": "restart", "times": 3, "restart-delay": "50ms",
        "stderr": "log", "notify": "mail"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("bansuri exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "log:\n{log}");
    // Written before bansuri exited: the exit waits for the notifier.
    let out = sb.read("OUT");
    assert!(
        out.starts_with("==== [Bansuri] Task Failure ===="),
        "{out}\nlog:\n{log}"
    );
    assert!(out.contains("Task 'flaky' has failed."), "{out}");
    assert_eq!(field(&out, "Name"), "flaky");
    assert!(
        field(&out, "Command").starts_with("for i in 1 2 3"),
        "{out}"
    );
    assert_eq!(
        Path::new(field(&out, "Working Directory")),
        sb.path(),
        "{out}"
    );
    assert_eq!(field(&out, "Return Code"), "3");
    assert_eq!(field(&out, "Attempt"), "3/3");
    assert!(is_timestamp(field(&out, "Timestamp")), "{out}");
    assert_eq!(field(&out, "Description"), "Nightly copy of the results");
    assert_eq!(
        field(&out, "Host"),
        format!("{} (job {})", host(), job_id())
    );
    // The tails are of the last attempt only, the last 20 lines of stdout.
    let stdout = out
        .split("--- Output ---\n")
        .nth(1)
        .and_then(|s| s.split("\n\n--- Error").next())
        .unwrap_or_else(|| panic!("no output section:\n{out}"));
    let want: Vec<String> = (6..=25).map(|i| format!("out-3-{i}")).collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{out}");
    assert!(
        out.contains("--- Error ---\nerr-first-3\nerr-last-3\n"),
        "{out}"
    );
    assert!(
        !out.contains("out-2-") && !out.contains("err-last-2"),
        "{out}"
    );
    assert!(
        log.contains("Notification sent (failure): notify_command exited with code 0"),
        "log:\n{log}"
    );
    assert_eq!(
        count_events(&log, "flaky", "Notifying (failure)"),
        1,
        "{log}"
    );
}

#[test]
fn tail_of_file_outputs_is_what_the_run_appended() {
    let sb = Sandbox::new();
    sb.write("task.out", "line of an earlier run\n");
    let cfg = r#"{"notify_command": "cat > OUT", "scripts": [{
        "name": "f", "command": "echo to-file; echo oops >&2; exit 1",
        "stdout": "task.out", "stderr": "task.err", "notify": "mail"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    b.wait(T).expect("bansuri exits");
    let out = sb.read("OUT");
    assert!(
        out.contains("--- Output ---\nto-file\n"),
        "{out}\nlog:\n{}",
        b.log()
    );
    assert!(!out.contains("earlier run"), "{out}");
    assert!(out.contains("--- Error ---\noops\n"), "{out}");
    // The files themselves got everything, as before.
    assert_eq!(sb.read("task.out"), "line of an earlier run\nto-file\n");
    assert_eq!(sb.read("task.err"), "oops\n");
}

#[test]
fn placeholders_and_environment_cannot_inject_shell_syntax() {
    let sb = Sandbox::new();
    let evil = r#"$(touch pwned) '; touch pwned; ' `touch pwned` \"; touch pwned; \""#;
    let cfg = format!(
        r#"{{"notify_command": "echo {{description}} > d1; echo \"{{description}}\" > d2; echo '{{description}}' > d3; echo {{task}} {{code}} {{attempt}} {{host}} {{job_id}} {{command}} > p; env > envs",
        "scripts": [{{"name": "t", "command": ["sh", "-c", "exit 4", "$(touch pwned)"],
        "description": "{evil}", "notify": "mail"}}]}}"#
    );
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    b.wait(T).expect("bansuri exits");
    let log = b.log();
    let description = evil.replace("\\\"", "\"");
    for f in ["d1", "d2", "d3"] {
        assert_eq!(
            sb.read(f).trim_end_matches('\n'),
            description,
            "{f}; log:\n{log}"
        );
    }
    assert_eq!(
        sb.read("p").trim_end(),
        format!(
            "t 4 1/1 {} {} sh -c exit 4 $(touch pwned)",
            host(),
            job_id()
        )
    );
    assert!(
        !sb.file("pwned").exists(),
        "a task field was run as shell code; log:\n{log}"
    );
    let envs = sb.read("envs");
    for want in [
        "BANSURI_TASK=t",
        "BANSURI_CODE=4",
        "BANSURI_ATTEMPT=1/1",
        "BANSURI_EVENT=failure",
        "BANSURI_RESULT=4",
        &format!("BANSURI_DESCRIPTION={description}"),
        &format!("BANSURI_WORKDIR={}", sb.path().display()),
        &format!("BANSURI_HOST={}", host()),
        &format!("BANSURI_JOB_ID={}", job_id()),
        "BANSURI_COMMAND=sh -c exit 4 $(touch pwned)",
        "BANSURI_TIMESTAMP=",
    ] {
        assert!(
            envs.lines().any(|l| l.starts_with(want)),
            "{want} missing in:\n{envs}"
        );
    }
}

/// A placeholder reaches the command as one literal argument, whatever the value holds
/// (spaces, `*`, quotes, `$(...)`), also inside a command substitution within double
/// quotes, where the shell splits and globs again.
#[test]
fn a_placeholder_is_one_literal_argument_even_inside_a_command_substitution() {
    let sb = Sandbox::new();
    let description = "two  words * and 'quoted' $(touch pwned)";
    let cfg = format!(
        r#"{{"notify_command": "sh -c 'echo $#; for a; do echo \"<$a>\"; done' - {{description}} > args; echo \"$(set -- {{description}}; echo $#) $(printf '<%s>' {{description}})\" > sub; echo \"`printf '<%s>' {{description}}`\" > bq",
        "scripts": [{{"name": "t", "command": "exit 1", "description": {desc}, "notify": "mail"}}]}}"#,
        desc = serde_json::to_string(description).unwrap()
    );
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    b.wait(T).expect("bansuri exits");
    let log = b.log();
    assert_eq!(
        sb.read("args"),
        format!("1\n<{description}>\n"),
        "log:\n{log}"
    );
    assert_eq!(
        sb.read("sub"),
        format!("1 <{description}>\n"),
        "log:\n{log}"
    );
    assert_eq!(sb.read("bq"), format!("<{description}>\n"), "log:\n{log}");
    assert!(!sb.file("pwned").exists(), "log:\n{log}");
}

fn times_in(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn hanging_notifier_is_killed_at_its_timeout_and_never_delays_the_timer() {
    let sb = Sandbox::new();
    let _guard = KillListed(vec![sb.file("npids")]);
    let cfg = r#"{"notify_command": "echo $$ >> npids; sleep 300", "notify_timeout": "2s",
        "scripts": [{"name": "tick", "command": "date +%s.%N >> runs; exit 1",
        "timer": "1s", "notify": "mail"}]}"#;
    let mut b = sb.start(cfg, &[]);
    let first = wait_for(T, || {
        times_in(&sb.read("npids"))
            .first()
            .map(|p| (*p as i32, Instant::now()))
    })
    .unwrap_or_else(|| panic!("no notifier started; log:\n{}", b.log()));
    // The first notifier sleeps 300 s: it is killed at its 2 s timeout, no later.
    wait_for(Duration::from_secs(6), || (!alive(first.0)).then_some(()))
        .unwrap_or_else(|| panic!("notifier {} still alive; log:\n{}", first.0, b.log()));
    let took = first.1.elapsed();
    assert!(
        took > Duration::from_millis(1500) && took < Duration::from_millis(3500),
        "killed after {took:?}, timeout 2s; log:\n{}",
        b.log()
    );
    assert!(group_members(first.0).is_empty());
    // Meanwhile, and after, the timer ran on time: runs 1 s apart from the first.
    let runs = wait_for(T, || {
        let r = times_in(&sb.read("runs"));
        (r.len() >= 6).then_some(r)
    })
    .unwrap_or_else(|| panic!("fewer than 6 runs; log:\n{}", b.log()));
    for (k, t) in runs.iter().enumerate().take(6) {
        let late = t - runs[0] - k as f64;
        assert!(
            late.abs() < 0.4,
            "run {k} is {late:.3}s off its time; runs {runs:?}; log:\n{}",
            b.log()
        );
    }
    let log = b.log();
    assert!(
        log.contains("Notifier failed (failure): notify_command timed out after 2s: SIGKILL to its process group"),
        "log:\n{log}"
    );
    // Runs of `tick` ended while notifiers were running: those are no escaped processes.
    assert!(
        !log.contains("left its task's process group"),
        "a notifier was taken for an escaped task process; log:\n{log}"
    );
    // Shutdown: the running notifiers are waited for (up to their timeout), then gone.
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("bansuri exits");
    assert_eq!(st.code(), Some(0));
    for p in times_in(&sb.read("npids")) {
        assert!(
            group_members(p as i32).is_empty(),
            "notifier group {p} survived"
        );
    }
}

#[test]
fn notifier_running_when_another_task_ends_is_waited_for_at_exit() {
    let sb = Sandbox::new();
    // `a` fails at once; its notifier is still running when `b` ends and when the batch
    // is done: it is no escaped process of `b`, and bansuri waits for it before exiting.
    let cfg = r#"{"notify_command": "sleep 1; cat > OUT",
        "scripts": [{"name": "a", "command": "exit 1", "notify": "mail"},
                    {"name": "b", "command": "sleep 0.3"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("bansuri exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "a failed; log:\n{log}");
    assert!(
        sb.read("OUT").contains("Task 'a' has failed."),
        "the notice was lost; OUT: {:?}; log:\n{log}",
        sb.read("OUT")
    );
    assert!(
        log.contains("[a] Notification sent (failure)"),
        "log:\n{log}"
    );
    assert!(
        !log.contains("left its task's process group"),
        "the notifier was taken for an escaped process of `b`; log:\n{log}"
    );
}

#[test]
fn failing_notifier_is_logged_and_changes_nothing_else() {
    let sb = Sandbox::new();
    let cfg = r#"{"notify_command": "echo cannot reach the mail server >&2; exit 7",
        "scripts": [{"name": "a", "command": "exit 1", "timer": "300ms", "notify": "mail"},
                    {"name": "b", "command": "echo fine", "timer": "300ms"}]}"#;
    let b = sb.start(cfg, &[]);
    let log = b.wait_log("three failed notifications", T, |l| {
        l.matches("notify_command exited with code 7").count() >= 3
    });
    assert!(
        log.contains("[a] WARNING: Notifier failed (failure): notify_command exited with code 7"),
        "log:\n{log}"
    );
    assert!(
        output_lines(&log, "notify:a").contains(&"cannot reach the mail server"),
        "the notifier's output is in the job log:\n{log}"
    );
    assert!(
        count_events(&log, "b", "Process finished with code 0") >= 3,
        "{log}"
    );
}

#[test]
fn success_and_recovery_notices_when_asked() {
    let sb = Sandbox::new();
    // Fails on its first run, succeeds afterwards.
    let cfg = r#"{"notify_command": "cat >> notices",
        "scripts": [{"name": "r", "command": "if [ -e seen ]; then exit 0; fi; touch seen; exit 1",
        "timer": "300ms", "notify": "mail", "notify-on": ["failure", "recovery"]}]}"#;
    let b = sb.start(cfg, &[]);
    b.wait_log("two notifications", T, |l| {
        l.matches("Notification sent").count() >= 2
    });
    wait_for(T, || {
        let n = sb.read("notices");
        (n.matches("Task Recovery").count() == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("notices:\n{}", sb.read("notices")));
    let n = sb.read("notices");
    assert_eq!(
        n.matches("==== [Bansuri] Task Failure ====").count(),
        1,
        "{n}"
    );
    assert!(
        n.contains("Task 'r' has succeeded again after a failure."),
        "{n}"
    );
    // Later successes are not told: two more successful runs, still two notices.
    let log = b.wait_log("three successes", T, |l| {
        count_events(l, "r", "Process finished with code 0") >= 3
    });
    assert_eq!(
        sb.read("notices").matches("==== [Bansuri]").count(),
        2,
        "later successes are not told; log:\n{log}"
    );
    assert_eq!(log.matches("Notifying (").count(), 2, "log:\n{log}");
}

// ---------------------------------------------------------------- library API (examples)

/// The example program `name`, built (once per test run) with the same profile and
/// target directory as this test.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // target/<profile>/deps/notify-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("no profile directory")?
            .to_path_buf();
        let target_dir = profile_dir.parent().ok_or("no target directory")?;
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(p) => p.to_owned(),
            None => return Err("profile directory has no name".into()),
        };
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--profile", &profile])
            .args(["--example", "custom_task", "--example", "custom_notifier"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build --example failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(profile_dir.join("examples"))
    });
    match dir {
        Ok(d) => d.join(name),
        Err(e) => panic!("{e}"),
    }
}

/// Start example `name` like `Sandbox::start` starts bansuri.
fn start_example(sb: &Sandbox, name: &str, config: &str, args: &[&str]) -> Bansuri {
    let cfg = sb.write("config.json", config);
    let log = sb.file("log.txt");
    let child = Command::new(example(name))
        .arg("--config")
        .arg(&cfg)
        .arg("--log-file")
        .arg(&log)
        .args(args)
        .env("NOTIFY_JSONL", sb.file("n.jsonl"))
        .current_dir(sb.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the example");
    Bansuri {
        child: Some(child),
        log,
    }
}

#[test]
fn custom_task_runs_on_a_timer_times_out_retries_and_reports_like_a_process() {
    let sb = Sandbox::new();
    let cfg = r#"{"notify_command": "cat >> notices", "scripts": [{
        "name": "waiter", "command": "wait-file", "no-interface": true,
        "timer": "2s", "timeout": "400ms", "on-fail": "restart", "times": 2,
        "restart-delay": "100ms", "stoptime": "1s", "notify": "mail",
        "env": {"WAIT_FILE": "ready", "WAIT_POLL_MS": "20"}}]}"#;
    let mut b = start_example(&sb, "custom_task", cfg, &[]);
    // First run: two attempts, each timed out, then a final failure told to the notifier.
    let log = b.wait_log("a failed run", T, |l| l.contains("Notification sent"));
    for want in [
        "[waiter] Running in-process task `wait-file` (attempt 1/2)",
        "[waiter] | waiting for ready (attempt 1/2)",
        "[waiter] WARNING: Timed out after 400ms: asking the in-process task to stop",
        "[waiter] | asked to stop before ready appeared",
        "[waiter] WARNING: Process stopped: timed out after 400ms",
        "[waiter] Restarting in 100ms (attempt 2/2, on-fail: restart)",
        "[waiter] Running in-process task `wait-file` (attempt 2/2)",
        "[waiter] ERROR: Failed after 2 attempts; giving up on this run",
    ] {
        assert!(log.contains(want), "missing {want:?}; log:\n{log}");
    }
    let notices = wait_for(T, || {
        let n = sb.read("notices");
        n.contains("automated message").then_some(n)
    })
    .expect("notice written");
    assert_eq!(field(&notices, "Command"), "wait-file");
    assert_eq!(field(&notices, "Return Code"), "timed out after 400ms");
    assert_eq!(field(&notices, "Attempt"), "2/2");
    assert!(
        notices.contains("waiting for ready (attempt 2/2)\nasked to stop before ready appeared"),
        "{notices}"
    );
    // The timer goes on: the next run comes 2 s after the first, and succeeds once the
    // file is there.
    std::fs::write(sb.file("ready"), "").unwrap();
    let log = b.wait_log("a successful run", T, |l| {
        l.contains("[waiter] Process finished with code 0")
    });
    assert!(log.contains("[waiter] | ready is there"), "log:\n{log}");
    let starts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Running in-process task `wait-file` (attempt 1/2)"))
        .collect();
    assert!(starts.len() >= 2, "log:\n{log}");
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("exits");
    assert_eq!(st.code(), Some(0));
    let log = b.log();
    // The summary counts it like a process task: 3 runs (attempts: two timed out, then
    // the success), 2 failures, last exit 0.
    let summary = log
        .lines()
        .find_map(|l| l.split("[MASTER] waiter ").nth(1))
        .unwrap_or_else(|| panic!("no summary line; log:\n{log}"));
    // Columns: STATE RUNS FAILURES CPU-TIME PEAK-RSS LAST.
    let cols: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(cols[..3], ["SUCCESS", "3", "2"], "log:\n{log}");
    assert_eq!(cols[cols.len() - 2..], ["exit", "0"], "log:\n{log}");
}

#[test]
fn custom_task_that_ignores_stop_is_abandoned_at_the_grace() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{
        "name": "stubborn", "command": "wait-file", "no-interface": true,
        "timeout": "300ms", "stoptime": "700ms",
        "env": {"WAIT_FILE": "never", "WAIT_IGNORE_STOP": "1", "WAIT_POLL_MS": "20"}}]}"#;
    let t0 = Instant::now();
    let mut b = start_example(&sb, "custom_task", cfg, &["--exit-when-done"]);
    let (st, _) = b
        .wait(T)
        .expect("bansuri exits although the thread never returns");
    let took = t0.elapsed();
    let log = b.log();
    assert_eq!(st.code(), Some(3), "log:\n{log}");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "timeout 300 ms + grace 700 ms, exit after {took:?}; log:\n{log}"
    );
    let order = [
        "Timed out after 300ms: asking the in-process task to stop, abandoning it in 700ms",
        "Still running 700ms after the stop request: abandoning its thread",
        "its thread is abandoned",
        "Process stopped: timed out after 300ms",
    ];
    let mut at = 0;
    for want in order {
        let i = log[at..]
            .find(want)
            .unwrap_or_else(|| panic!("{want:?} missing or out of order; log:\n{log}"));
        at += i;
    }
    assert!(log.contains("stubborn  TIMEOUT"), "log:\n{log}");
}

#[test]
fn custom_notifier_gets_the_notice() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "bad", "command": "echo partial; echo broken >&2; exit 5",
        "description": "fails", "notify": "jsonl"}]}"#;
    let out = sb.file("n.jsonl");
    let mut b = start_example(&sb, "custom_notifier", cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "log:\n{log}");
    let text = std::fs::read_to_string(&out).unwrap_or_else(|_| panic!("no jsonl; log:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(v["event"], "failure");
    assert_eq!(v["task"], "bad");
    assert_eq!(v["code"], "5");
    assert_eq!(v["attempt"], "1/1");
    assert_eq!(v["description"], "fails");
    assert_eq!(v["stdout"], "partial\nbroken");
    assert!(
        log.contains("Notification sent (failure): notifier `jsonl` returned"),
        "log:\n{log}"
    );
}

#[test]
fn validate_names_the_registered_tasks_and_notifiers() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "config.json",
        r#"{"scripts": [{"name": "t", "command": "wait-fil", "no-interface": true, "notify": "jsonl"}]}"#,
    );
    let out = Command::new(example("custom_task"))
        .arg("validate")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no task named \"wait-fil\" is registered"),
        "{err}"
    );
    assert!(
        err.contains("in-process tasks registered in this binary: `disk-check`, `wait-file`"),
        "{err}"
    );
    assert!(err.contains("unknown notifier \"jsonl\""), "{err}");
    // The plain binary registers nothing.
    let out = Command::new(BIN)
        .arg("validate")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("this binary registers no in-process tasks"),
        "{err}"
    );
    // A correct config validates, and says which tasks run in-process.
    let cfg = sb.write(
        "ok.json",
        r#"{"scripts": [{"name": "t", "command": "disk-check", "no-interface": true}]}"#,
    );
    let out = Command::new(example("custom_task"))
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .expect("run validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(in-process task `disk-check`)"), "{text}");
}

/// The manual's custom notifier (9.6): a `Notifier` subclass whose constructor takes a
/// `webhook_url`, named by `"notify": "module:Class"` and run like a Python custom task
/// (imported from the task's working directory). Its `FailureInfo` has the manual's fields.
/// A module or class that is not there fails that notification with a clear message.
#[test]
fn a_python_notifier_class_gets_the_failure_info() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.file("alerts")).expect("mkdir");
    sb.write("alerts/__init__.py", "");
    sb.write(
        "alerts/slack.py",
        r#"
import json
from bansuri.alerts.notifier import Notifier, FailureInfo

class SlackNotifier(Notifier):
    def __init__(self, webhook_url: str, retries: int = 1):
        self.webhook_url = webhook_url
        self.retries = retries

    def notify(self, failure_info: FailureInfo) -> bool:
        message = f"Task '{failure_info.task_name}' failed with code {failure_info.return_code}"
        with open("sent.jsonl", "a") as f:
            f.write(json.dumps({
                "url": self.webhook_url, "retries": self.retries, "text": message,
                "attempt": failure_info.attempt, "max_attempts": failure_info.max_attempts,
                "command": failure_info.command, "workdir": failure_info.working_directory,
                "description": failure_info.description, "stdout": failure_info.stdout,
                "stderr": failure_info.stderr, "year": failure_info.timestamp.year,
                "header": failure_info.message.splitlines()[0],
            }) + "\n")
        print("posted to", self.webhook_url)
        return True
"#,
    );
    let cfg = r#"{"scripts": [
        {"name": "job", "command": "echo some output; echo an error >&2; exit 3",
         "description": "nightly", "stderr": "log", "notify": "alerts.slack:SlackNotifier",
         "env": {"WEBHOOK_URL": "https://hooks.example.org/T1", "RETRIES": "2",
                 "PYTHONDONTWRITEBYTECODE": "1"}},
        {"name": "nomodule", "command": "exit 1", "notify": "alerts.nowhere:SlackNotifier"},
        {"name": "noclass", "command": "exit 1", "notify": "alerts.slack:TeamsNotifier"},
        {"name": "nourl", "command": "exit 1", "notify": "alerts.slack:SlackNotifier"}
    ]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("bansuri exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "log:\n{log}");
    let sent = sb.read("sent.jsonl");
    let lines: Vec<&str> = sent.lines().collect();
    assert_eq!(lines.len(), 1, "{sent}\nlog:\n{log}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(v["url"], "https://hooks.example.org/T1");
    assert_eq!(v["retries"], 2);
    assert_eq!(v["text"], "Task 'job' failed with code 3");
    assert_eq!(
        (v["attempt"].clone(), v["max_attempts"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(v["command"], "echo some output; echo an error >&2; exit 3");
    assert_eq!(Path::new(v["workdir"].as_str().unwrap()), sb.path(), "{v}");
    assert_eq!(v["description"], "nightly");
    assert_eq!(v["stdout"], "some output");
    assert_eq!(v["stderr"], "an error");
    assert!(v["year"].as_i64().is_some_and(|y| y >= 2024), "{v}");
    assert_eq!(v["header"], "==== [Bansuri] Task Failure ====");
    assert!(
        log.contains("[notify:job] | posted to https://hooks.example.org/T1"),
        "{log}"
    );
    assert!(
        log.contains(
            "Notification sent (failure): Python notifier alerts.slack:SlackNotifier exited with code 0"
        ),
        "{log}"
    );
    for (task, want) in [
        ("nomodule", "ModuleNotFoundError: No module named 'alerts.nowhere'"),
        ("nomodule", "bansuri: cannot import alerts.nowhere:SlackNotifier"),
        ("noclass", "has no attribute 'TeamsNotifier'"),
        (
            "nourl",
            "bansuri: cannot create alerts.slack:SlackNotifier: parameter `webhook_url`: set WEBHOOK_URL in the task's env",
        ),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("[notify:{task}] | ")) && l.contains(want)),
            "{task}: {want}\nlog:\n{log}"
        );
        assert!(
            log.contains(&format!("[{task}] WARNING: Notifier failed (failure): Python notifier")),
            "{task}\nlog:\n{log}"
        );
    }
}

/// `"notify-on": ["failure", "attempt"]`: each failed attempt is told as the manual shows
/// it ("Attempt: 1/3", "2/3"), then the final failure ("3/3"); the message is the manual's
/// text line for line. Without `attempt` only the final failure is told (above).
#[test]
fn each_failed_attempt_is_told_with_notify_on_attempt_in_the_manuals_exact_text() {
    let sb = Sandbox::new();
    let cfg = r#"{"notify_command": "cat > \"notice-${BANSURI_ATTEMPT%%/*}-$BANSURI_EVENT\"", "scripts": [{
        "name": "critical-backup", "command": "echo out-$BANSURI_ATTEMPT; echo err-$BANSURI_ATTEMPT >&2; exit 1",
        "description": "Optional task description", "stderr": "log",
        "on-fail": "restart", "times": 3, "restart-delay": "50ms",
        "notify": "mail", "notify-on": ["failure", "attempt"]}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("bansuri exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "log:\n{log}");
    let names: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(sb.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("notice-"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names,
        ["notice-1-attempt", "notice-2-attempt", "notice-3-failure"],
        "log:\n{log}"
    );
    for (n, file) in names.iter().enumerate() {
        let text = sb.read(file);
        let n = n + 1;
        let want = format!(
            "==== [Bansuri] Task Failure ====

Task 'critical-backup' has failed.

--- Task Details ---
Name:          critical-backup
Command:       echo out-$BANSURI_ATTEMPT; echo err-$BANSURI_ATTEMPT >&2; exit 1
Working Directory: {wd}
Return Code:    1
Attempt:        {n}/3
Timestamp:      {ts}
Description:    Optional task description
Host:           {host} (job {job})

--- Output ---
out-{n}

--- Error ---
err-{n}

---

This is an automated message from Bansuri Orchestrator.
",
            wd = sb.path().display(),
            ts = field(&text, "Timestamp"),
            host = host(),
            job = job_id(),
        );
        assert_eq!(text, want, "{file}; log:\n{log}");
        assert!(is_timestamp(field(&text, "Timestamp")), "{text}");
    }
    assert_eq!(
        count_events(&log, "critical-backup", "Notifying (attempt)"),
        2,
        "{log}"
    );
    assert_eq!(
        count_events(&log, "critical-backup", "Notifying (failure)"),
        1,
        "{log}"
    );
}

/// CPU time (user + system, in clock ticks) that process `pid` has used; it is still
/// readable while the process is a zombie that this test has not reaped.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and
    // 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

#[test]
fn the_wait_for_a_hanging_notifier_at_exit_ends_at_its_timeout_and_sleeps_meanwhile() {
    let sb = Sandbox::new();
    let _guard = KillListed(vec![sb.file("npids")]);
    // The inbox is polled every second: the alarm is armed for a poll that falls due
    // while bansuri waits for the notifier at exit. The wait must sleep through it (a
    // second loop that never consumed the alarm woke at once, over and over, until the
    // notifier's timeout).
    let cfg = r#"{"notify_command": "echo $$ >> npids; sleep 300", "notify_timeout": "6s",
        "scripts": [{"name": "a", "command": "exit 1", "notify": "mail"}]}"#;
    let mut b = sb.start_with_env(cfg, &["--once"], &[("BANSURI_INBOX_POLL_ONLY", "1")]);
    let pid = b.pid();
    b.wait_log("the wait for the notifier", T, |l| {
        l.contains("Waiting for 1 notifier to finish")
    });
    let before = cpu_ticks(pid);
    let log = b.wait_log("the notifier's timeout", T, |l| {
        l.contains("notify_command timed out after 6s")
    });
    let after = cpu_ticks(pid);
    let (st, _) = b
        .wait(T)
        .expect("bansuri exits after the notifier's timeout");
    assert_eq!(st.code(), Some(3), "a failed; log:\n{log}");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    assert!(
        (after - before) * 4 < hz * 2,
        "bansuri used {} ticks of CPU ({hz}/s) in the 6 s it waited for its notifier: it spun",
        after - before
    );
    let notifier = times_in(&sb.read("npids"))[0] as i32;
    assert!(!alive(notifier), "the notifier outlived bansuri");
}
