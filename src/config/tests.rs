//! Tests of the whole pipeline: text -> tree -> Spec or errors.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::schedule::{CronSchedule, CronTz, Schedule};
use crate::spec::{
    CommandSpec, LogFormat, OnFail, OutputTarget, Overlap, StderrTarget, StopSignal, TaskSpec,
};

mod arrays;
mod needs;
mod notify;

/// A config path whose directory is not checked (the default working directory never is).
const CFG: &str = "/cfg/scripts_config.json";

fn json(text: &str) -> Result<Spec, ConfigErrors> {
    parse_str(text, Path::new(CFG), Format::Json)
}

fn ok(text: &str) -> Spec {
    match json(text) {
        Ok(s) => s,
        Err(e) => panic!("expected the config to load, got:\n{e}\n--- config ---\n{text}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match json(text) {
        Ok(s) => panic!("expected errors, the config loaded: {s:#?}\n--- config ---\n{text}"),
        Err(e) => e.0,
    }
}

/// The single error of a config expected to have exactly one.
fn err1(text: &str) -> ConfigError {
    let mut e = errs(text);
    assert_eq!(
        e.len(),
        1,
        "expected one error, got:\n{}",
        ConfigErrors(e.clone())
    );
    e.remove(0)
}

/// A config with one task `t` (command `x`) plus `fields`.
fn one_task(fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { ", " };
    format!("{{\"scripts\": [{{\"name\": \"t\", \"command\": \"x\"{sep}{fields}}}]}}")
}

fn task(fields: &str) -> TaskSpec {
    ok(&one_task(fields)).tasks.remove(0)
}

/// The single error of a one-task config, checked to name the task and field.
fn task_err(fields: &str, field: &str) -> ConfigError {
    let e = err1(&one_task(fields));
    assert_eq!(e.task.as_deref(), Some("t"), "{e}");
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    assert!(e.line.is_some() && e.column.is_some(), "{e}");
    e
}

/// The single warning of a config that loads, checked to name the task and field and to
/// render as a warning.
fn warn1(text: &str, task: &str, field: &str) -> ConfigWarning {
    let mut w = ok(text).warnings;
    let shown: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(
        w.len(),
        1,
        "expected one warning, got:\n{}",
        shown.join("\n")
    );
    let w = w.remove(0);
    assert!(w.to_string().starts_with("warning: "), "{w}");
    assert_eq!(w.0.task.as_deref(), Some(task), "{w}");
    assert_eq!(w.0.field.as_deref(), Some(field), "{w}");
    assert!(w.0.line.is_some() && w.0.column.is_some(), "{w}");
    w
}

fn assert_has(e: &impl std::fmt::Display, needle: &str) {
    let text = e.to_string();
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

// ---------------------------------------------------------------- defaults and shapes

#[test]
fn minimal_task_gets_every_default() {
    let t = task("");
    let want = TaskSpec {
        name: "t".into(),
        shorthand: false,
        command: CommandSpec::Shell("x".into()),
        description: String::new(),
        enabled: true,
        schedule: Schedule::Once,
        overlap: Overlap::Skip,
        timeout: None,
        on_fail: OnFail::Stop,
        times: 1,
        success_codes: vec![0],
        restart_delay: Duration::from_secs(1),
        max_restart_delay: Duration::from_secs(60),
        stop_signal: StopSignal::Term,
        stop_time: None,
        working_directory: PathBuf::from("/cfg"),
        env: BTreeMap::new(),
        environment_file: None,
        stdout: OutputTarget::JobLog,
        stderr: StderrTarget::Combined,
        program: "t".into(),
        instance: None,
        restart_on_success: false,
        start_time: Duration::ZERO,
        start_retries: 3,
        autostart: true,
        user: None,
        priority: 0,
        umask: None,
        depends_on: Vec::new(),
        log_max_bytes: 0,
        log_backups: 5,
        notify: crate::spec::Notify::Off,
        notify_on: crate::spec::NotifyOn::default(),
        no_interface: false,
        srun: None,
        pending: crate::spec::Pending::default(),
        needs: crate::spec::Needs::default(),
        element: None,
        sweep: None,
    };
    assert_eq!(t, want);
    let s = ok(r#"{"scripts": []}"#);
    assert_eq!(s.globals, crate::spec::Globals::default());
    assert_eq!(s.version, None);
    assert_eq!(s.source, PathBuf::from(CFG));
}

#[test]
fn root_and_scripts_shapes() {
    assert_has(&err1("[]"), "the config must be an object, found a list");
    assert_has(&err1("[]"), "put the list under `scripts`");
    assert_has(&err1("{}"), "missing `scripts`");
    assert_has(
        &err1(r#"{"scripts": {}}"#),
        "invalid `scripts`: expected a list of tasks",
    );
    let e = err1(r#"{"scripts": ["a", 5]}"#);
    assert_has(
        &e,
        "invalid `scripts[1]`: expected a command string or a task object",
    );
    assert_eq!(e.task.as_deref(), Some("scripts[1]"));
    assert_has(&err1(r#"{"scripts": ["  "]}"#), "empty command");
}

// ---------------------------------------------------------------- task fields

#[test]
fn name_values() {
    assert_eq!(task("").name, "t");
    let s = ok(r#"{"scripts": [{"name": "a.B_c-1", "command": "x"}]}"#);
    assert_eq!(s.tasks[0].name, "a.B_c-1");
    let e = err1(r#"{"scripts": [{"name": "my task", "command": "x"}]}"#);
    assert_has(&e, "invalid `name` in task `scripts[0]`");
    assert_has(&e, "\"my-task\"");
    assert_eq!(e.field.as_deref(), Some("name"));
    assert_has(
        &err1(r#"{"scripts": [{"name": "", "command": "x"}]}"#),
        "cannot be empty",
    );
    assert_has(
        &err1(r#"{"scripts": [{"name": 5, "command": "x"}]}"#),
        "expected a string, found the number `5`",
    );
    let e = err1(r#"{"scripts": [{"command": "x"}]}"#);
    assert_has(&e, "missing `name` in task `scripts[0]`");
    assert_eq!((e.line, e.column), (Some(1), Some(14)));
}

/// Names are at most 200 bytes (a 64 KiB one panicked `validate` and the shutdown
/// summary: a formatting width out of range); the message shows only the start of it,
/// and a name derived from a long shorthand command is cut to fit.
#[test]
fn task_names_are_bounded() {
    let _ = task_named(&"a".repeat(200));
    for len in [201, 70_000] {
        let name = "a".repeat(len);
        let e = err1(&format!(
            "{{\"scripts\": [{{\"name\": \"{name}\", \"command\": \"x\"}}]}}"
        ));
        assert_eq!(e.field.as_deref(), Some("name"), "{e}");
        assert_has(
            &e,
            &format!("is {len} bytes long: a task name is at most 200 bytes"),
        );
        assert!(
            e.to_string().len() < 1_000,
            "the whole name was printed:\n{e}"
        );
    }
    let e = err1("{\"scripts\": [{\"name\": \"a\\u0007b\", \"command\": \"x\"}]}");
    assert_has(&e, "contains '\\u{7}'");
    let spec = ok(&format!(
        "{{\"scripts\": [\"/bin/{}.sh\"]}}",
        "b".repeat(70_000)
    ));
    assert!(
        spec.tasks[0].name.len() <= 200,
        "{}",
        spec.tasks[0].name.len()
    );
}

fn task_named(name: &str) -> TaskSpec {
    ok(&format!(
        "{{\"scripts\": [{{\"name\": \"{name}\", \"command\": \"x\"}}]}}"
    ))
    .tasks
    .remove(0)
}

#[test]
fn duplicate_task_names_point_at_the_second() {
    let text = "{\"scripts\": [\n  {\"name\": \"a\", \"command\": \"x\"},\n  {\"name\": \"a\", \"command\": \"y\"}\n]}";
    let e = err1(text);
    assert_has(&e, "duplicate task name `a`");
    assert_has(&e, "first used at line 2");
    assert_eq!((e.line, e.column), (Some(3), Some(12)));
}

#[test]
fn command_values() {
    assert_eq!(task("").command, CommandSpec::Shell("x".into()));
    let s = ok(r#"{"scripts": [{"name": "t", "cmd": ["python", "-c", "print(1)"]}]}"#);
    assert_eq!(
        s.tasks[0].command,
        CommandSpec::Argv(vec!["python".into(), "-c".into(), "print(1)".into()])
    );
    let bad = |c: &str| {
        err1(&format!(
            r#"{{"scripts": [{{"name": "t", "command": {c}}}]}}"#
        ))
    };
    assert_has(&bad(r#""""#), "the command is empty");
    assert_has(&bad("[]"), "the command list is empty");
    assert_has(&bad(r#"[""]"#), "the program (first element) is empty");
    let e = bad(r#"["sleep", 10]"#);
    assert_has(&e, "element 1 of the command list must be a string");
    assert_eq!(e.column, Some(49), "points at the element");
    assert_has(
        &e,
        "\n  |                                                 ^^\n",
    );
    assert_has(
        &bad("{}"),
        "expected a command string or a list of strings, found an object",
    );
    assert_has(&bad(r#""a\u0000b""#), "NUL");
    assert_has(
        &err1(r#"{"scripts": [{"name": "t"}]}"#),
        "missing `command` in task `t`",
    );
    let e = err1(r#"{"scripts": [{"name": "t", "command": "x", "cmd": "y"}]}"#);
    assert_has(
        &e,
        "`command` given twice in task `t`: as `command` and as `cmd`",
    );
}

#[test]
fn description_and_enabled() {
    assert_eq!(task(r#""description": "nightly""#).description, "nightly");
    assert_has(
        &task_err(r#""description": 5"#, "description"),
        "expected a string",
    );
    assert!(!task(r#""enabled": false"#).enabled);
    assert!(task(r#""enabled": true"#).enabled);
    assert_has(
        &task_err(r#""enabled": "yes""#, "enabled"),
        "expected `true` or `false`, found the string \"yes\"",
    );
}

#[test]
fn timer_values() {
    for (v, secs) in [
        ("30", 30.0),
        ("\"30\"", 30.0),
        ("\"30s\"", 30.0),
        ("\"5m\"", 300.0),
        ("\"1h\"", 3600.0),
        ("\"1h30m\"", 5400.0),
        ("\"250ms\"", 0.25),
        ("1.5", 1.5),
        ("\" 2 \"", 2.0),
    ] {
        assert_eq!(
            task(&format!("\"timer\": {v}")).schedule,
            Schedule::Timer(Duration::from_secs_f64(secs)),
            "timer {v}"
        );
    }
    for (v, msg) in [
        ("0", "must be greater than zero"),
        ("\"0s\"", "must be greater than zero"),
        ("-1", "cannot be negative"),
        ("\"-5s\"", "cannot be negative"),
        ("\"abc\"", "`abc` is not a duration"),
        ("\"\"", "empty string"),
        ("true", "expected a duration, found `true`"),
        ("\"inf\"", "not a finite number"),
        ("\"NaN\"", "not a finite number"),
        ("1e999", "not a finite number"),
        ("1e300", "too long"),
    ] {
        let e = task_err(&format!("\"timer\": {v}"), "timer");
        assert_has(&e, msg);
        assert_has(&e, "invalid `timer` in task `t`");
        if msg != "too long" {
            assert_has(&e, "\"1h30m\"");
        }
    }
}

/// Every duration field is bounded by 100 years (anything longer overflowed the clock
/// arithmetic at run time: exit 101), and says so; a timer period is at least 1 ms.
#[test]
fn durations_are_bounded() {
    for field in [
        "timer",
        "timeout",
        "stoptime",
        "restart-delay",
        "max-restart-delay",
        "starttime",
    ] {
        for v in ["1e13", "\"1e13\"", "\"200years\"", "3153600001"] {
            let e = task_err(&format!("\"{field}\": {v}"), field);
            assert_has(
                &e,
                "is too long a duration: the maximum is 100 years (36500 days)",
            );
        }
        // The bound itself is accepted.
        let cap = if field == "restart-delay" {
            ", \"max-restart-delay\": \"36500days\""
        } else {
            ""
        };
        let _ = task(&format!("\"{field}\": \"36500days\"{cap}"));
    }
    for field in [
        "check_interval",
        "watchdog_timeout",
        "notify_timeout",
        "sample_interval",
        "stop_before_end",
    ] {
        let e = err1(&format!(
            "{{\"{field}\": 1e13, \"scripts\": [{{\"name\": \"t\", \"command\": \"x\"}}]}}"
        ));
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_has(&e, "the maximum is 100 years");
    }
    for v in ["\"1ns\"", "\"999us\"", "0.0000001"] {
        let e = task_err(&format!("\"timer\": {v}"), "timer");
        assert_has(&e, "is shorter than the shortest timer period, 1ms");
    }
    assert_eq!(
        task("\"timer\": \"1ms\"").schedule,
        Schedule::Timer(Duration::from_millis(1))
    );
    // bansuri's own periods have floors too (0 still turns sampling off).
    for (field, v, min) in [
        ("check_interval", "\"1ms\"", "10ms"),
        ("sample_interval", "\"10ms\"", "100ms"),
    ] {
        let e = err1(&format!(
            "{{\"{field}\": {v}, \"scripts\": [{{\"name\": \"t\", \"command\": \"x\"}}]}}"
        ));
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_has(&e, &format!("is shorter than the shortest {field}, {min}"));
    }
    let spec = ok(r#"{"sample_interval": 0, "check_interval": "10ms", "scripts": ["x"]}"#);
    assert_eq!(spec.globals.sample_interval, Duration::ZERO);
    assert_eq!(spec.globals.check_interval, Duration::from_millis(10));
}

#[test]
fn cron_and_timezone() {
    let t = task(r#""schedule-cron": "*/5 * * * *""#);
    assert_eq!(
        t.schedule,
        Schedule::Cron(CronSchedule::parse("*/5 * * * *", CronTz::Local).unwrap())
    );
    for tz in ["UTC", "utc", "Z"] {
        let t = task(&format!(r#""schedule_cron": "@daily", "timezone": "{tz}""#));
        let Schedule::Cron(c) = t.schedule else {
            panic!("not cron")
        };
        assert_eq!(c.tz(), CronTz::Utc);
    }
    let t = task(r#""schedule-cron": "@daily", "timezone": "Local""#);
    let Schedule::Cron(c) = t.schedule else {
        panic!("not cron")
    };
    assert_eq!(c.tz(), CronTz::Local);

    let e = task_err(r#""timer": 5, "schedule-cron": "@daily""#, "schedule-cron");
    assert_has(&e, "both `timer` and `schedule-cron` are given in task `t`");
    let e = task_err(r#""timezone": "UTC""#, "timezone");
    assert_has(&e, "only applies to `schedule-cron`");
    assert_has(
        &task_err(
            r#""schedule-cron": "@daily", "timezone": "Europe/Paris""#,
            "timezone",
        ),
        "unknown time zone",
    );
    assert_has(
        &task_err(r#""schedule-cron": 5"#, "schedule-cron"),
        "expected a string",
    );
    assert_has(
        &task_err(r#""schedule-cron": "  ""#, "schedule-cron"),
        "cannot be empty",
    );
    // The schedule module's own message becomes ours.
    let bad = "61 * * * *";
    let msg = CronSchedule::parse(bad, CronTz::Local).unwrap_err();
    let e = task_err(&format!(r#""schedule-cron": "{bad}""#), "schedule-cron");
    assert_has(&e, &format!("invalid `schedule-cron` in task `t`: {msg}"));
}

#[test]
fn overlap_on_fail_times() {
    for (v, want) in [
        ("skip", Overlap::Skip),
        ("queue", Overlap::Queue),
        ("replace", Overlap::Replace),
        ("Allow", Overlap::Allow),
    ] {
        assert_eq!(task(&format!(r#""overlap": "{v}""#)).overlap, want);
    }
    assert_has(
        &task_err(r#""overlap": "sometimes""#, "overlap"),
        "expected one of `skip`, `queue`, `replace`, `allow`",
    );
    assert_has(
        &task_err(r#""overlap": "skp""#, "overlap"),
        "did you mean \"skip\"?",
    );
    assert_eq!(task(r#""on-fail": "restart""#).on_fail, OnFail::Restart);
    assert_eq!(task(r#""on_fail": "stop""#).on_fail, OnFail::Stop);
    assert_has(
        &task_err(r#""on-fail": "retry""#, "on-fail"),
        "`stop`, `restart`",
    );
    assert_eq!(task(r#""times": 3, "on-fail": "restart""#).times, 3);
    for (v, msg) in [
        ("0", "must be at least 1"),
        ("-1", "must be at least 1"),
        ("1.5", "expected a whole number, found `1.5`"),
        ("\"3\"", "expected an integer"),
        ("99999999999", "too large"),
        ("123456789012345678901234567890", "too large"),
    ] {
        assert_has(&task_err(&format!(r#""times": {v}"#), "times"), msg);
    }
}

#[test]
fn timeout_values() {
    assert_eq!(
        task(r#""timeout": "10m""#).timeout,
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        task(r#""timeout": 0.5"#).timeout,
        Some(Duration::from_millis(500))
    );
    assert_has(&task_err(r#""timeout": 0"#, "timeout"), "greater than zero");
    assert_has(&task_err(r#""timeout": [1]"#, "timeout"), "found a list");
}

#[test]
fn success_codes_values() {
    assert_eq!(task(r#""success-codes": 2"#).success_codes, vec![2]);
    assert_eq!(
        task(r#""success_codes": [0, 1, 255]"#).success_codes,
        vec![0, 1, 255]
    );
    assert_eq!(task(r#""exitcodes": [0, 3]"#).success_codes, vec![0, 3]);
    for (v, msg) in [
        ("[]", "cannot be empty"),
        ("[0, 256]", "exit code 256 is out of range"),
        ("-1", "exit code -1 is out of range"),
        ("\"0\"", "expected an exit code or a list"),
        ("[1.5]", "whole number"),
    ] {
        assert_has(
            &task_err(&format!(r#""success-codes": {v}"#), "success-codes"),
            msg,
        );
    }
    let e = err1(&one_task(r#""exitcodes": [0], "success-codes": [1]"#));
    assert_has(
        &e,
        "`success-codes` given twice in task `t`: as `exitcodes` and as `success-codes`",
    );
}

#[test]
fn restart_delays() {
    let t = task(r#""restart-delay": 0, "max_restart_delay": "10m""#);
    assert_eq!(t.restart_delay, Duration::ZERO);
    assert_eq!(t.max_restart_delay, Duration::from_secs(600));
    let t = task(r#""restart_delay": "2s""#);
    assert_eq!(t.restart_delay, Duration::from_secs(2));
    let e = task_err(
        r#""restart-delay": 10, "max-restart-delay": 5"#,
        "max-restart-delay",
    );
    assert_has(&e, "shorter than `restart-delay`");
    let e = task_err(r#""restart-delay": "2m""#, "restart-delay");
    assert_has(&e, "longer than the default `max-restart-delay` (1m)");
    assert_has(&e, "set `max-restart-delay` to at least 2m");
    assert_has(
        &task_err(r#""restart-delay": "soon""#, "restart-delay"),
        "not a duration",
    );
    assert_has(
        &task_err(r#""max-restart-delay": -3"#, "max-restart-delay"),
        "negative",
    );
}

#[test]
fn stop_signal_and_time() {
    for (v, want) in [
        ("TERM", StopSignal::Term),
        ("SIGINT", StopSignal::Int),
        ("int", StopSignal::Int),
        ("sighup", StopSignal::Hup),
        ("Quit", StopSignal::Quit),
        ("USR1", StopSignal::Usr1),
        ("SIGUSR2", StopSignal::Usr2),
        ("kill", StopSignal::Kill),
    ] {
        assert_eq!(
            task(&format!(r#""stopsignal": "{v}""#)).stop_signal,
            want,
            "{v}"
        );
    }
    assert_has(
        &task_err(r#""stopsignal": "SIGFOO""#, "stopsignal"),
        "unknown signal",
    );
    assert_has(
        &task_err(r#""stopsignal": 15"#, "stopsignal"),
        "TERM, INT, HUP",
    );
    assert_eq!(task(r#""stoptime": 0"#).stop_time, Some(Duration::ZERO));
    assert_eq!(
        task(r#""stoptime": "5s""#).stop_time,
        Some(Duration::from_secs(5))
    );
    assert_has(
        &task_err(r#""stoptime": "x""#, "stoptime"),
        "not a duration",
    );
}

#[test]
fn working_directory_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let cfg = dir.path().join("c.json");
    let load_with = |fields: &str| parse_str(&one_task(fields), &cfg, Format::Json);
    let wd = |fields: &str| {
        load_with(fields).unwrap().tasks[0]
            .working_directory
            .clone()
    };
    assert_eq!(wd(""), dir.path());
    assert_eq!(wd(r#""working-directory": "sub""#), dir.path().join("sub"));
    assert_eq!(wd(r#""workingdir": "./sub""#), dir.path().join("sub"));
    assert_eq!(wd(r#""working_directory": "/""#), PathBuf::from("/"));
    let one = |fields: &str| {
        let mut e = load_with(fields).unwrap_err().0;
        assert_eq!(e.len(), 1, "{}", ConfigErrors(e.clone()));
        e.remove(0)
    };
    // A directory that is not there (yet) is the machine's problem, not the file's: a
    // warning at the value, and the task keeps the path (each start checks it).
    let warned = |fields: &str| {
        let s = load_with(fields).unwrap();
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        (
            s.tasks[0].working_directory.clone(),
            s.warnings[0].0.clone(),
        )
    };
    let (path, e) = warned(r#""working-directory": "missing""#);
    assert_eq!(path, dir.path().join("missing"));
    assert_has(&e, "does not exist");
    assert_has(&e, &dir.path().join("missing").display().to_string());
    assert_eq!(e.field.as_deref(), Some("working-directory"));
    let col = one_task(r#""working-directory": "missing""#)
        .find("\"missing")
        .unwrap()
        + 1;
    assert_eq!(e.column, Some(col), "points at the value");
    assert_has(
        &warned(r#""working-directory": "file""#).1,
        "is not a directory",
    );
    assert_has(&one(r#""working-directory": 3"#), "expected a string");
    assert_has(&one(r#""working-directory": """#), "cannot be empty");
}

#[test]
fn relative_config_path_gives_absolute_directories() {
    let s = parse_str(&one_task(""), Path::new("./conf/c.json"), Format::Json).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(s.tasks[0].working_directory, cwd.join("conf"));
    assert!(s.tasks[0].working_directory.is_absolute());
}

#[test]
fn env_values() {
    let t = task(r#""env": {"A": "1", "N": 2.50, "B": true, "EMPTY": ""}"#);
    let want: BTreeMap<String, String> = [("A", "1"), ("N", "2.50"), ("B", "true"), ("EMPTY", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(t.env, want);
    assert_has(
        &task_err(r#""env": {"A": [1]}"#, "env"),
        "must be a string, number or boolean, found a list",
    );
    assert_has(&task_err(r#""env": {"A": null}"#, "env"), "found null");
    assert_has(
        &task_err(r#""env": {"A=B": "x"}"#, "env"),
        "cannot contain `=`",
    );
    assert_has(&task_err(r#""env": {"": "x"}"#, "env"), "cannot be empty");
    assert_has(&task_err(r#""env": ["A=1"]"#, "env"), "expected an object");
    let e = task_err(r#""env": {"A": "1", "A": "2"}"#, "env");
    assert_has(&e, "duplicate variable `A`");
}

#[test]
fn environment_file_is_read_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vars.env"),
        "# settings\nexport A=from-file\nB='quoted # value'\nC=\"x\\ny\"\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.json");
    let text = one_task(r#""environment-file": "vars.env", "env": {"A": "from-env", "D": "d"}"#);
    let t = parse_str(&text, &cfg, Format::Json)
        .unwrap()
        .tasks
        .remove(0);
    assert_eq!(t.environment_file, Some(dir.path().join("vars.env")));
    assert_eq!(t.env["A"], "from-env", "env wins over the file");
    assert_eq!(t.env["B"], "quoted # value");
    assert_eq!(t.env["C"], "x\ny");
    assert_eq!(t.env["D"], "d");
    assert_eq!(t.env.len(), 4);

    // Missing file: a warning at the field; each start reads it (`Pending`).
    let text = one_task(r#""environment_file": "nope.env", "env": {"D": "d"}"#);
    let s = parse_str(&text, &cfg, Format::Json).unwrap();
    let e: Vec<ConfigError> = s.warnings.iter().map(|w| w.0.clone()).collect();
    assert_eq!(e.len(), 1);
    assert_has(&e[0], "nope.env` does not exist");
    assert_eq!(e[0].field.as_deref(), Some("environment-file"));
    assert_eq!(e[0].file, cfg);
    assert!(s.tasks[0].pending.environment_file);
    assert_eq!(s.tasks[0].env.len(), 1, "only `env` so far");

    // Bad lines: one error per line, in the env file, naming it and the line.
    std::fs::write(dir.path().join("bad.env"), "OK=1\noops\nQ=\"open\n").unwrap();
    let text = one_task(r#""environment-file": "bad.env""#);
    let e = parse_str(&text, &cfg, Format::Json).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    let bad = dir.path().join("bad.env");
    assert_eq!(e.0[0].file, bad);
    assert_eq!(e.0[0].config, cfg);
    assert_eq!(e.0[0].line, Some(2));
    assert_eq!(e.0[1].line, Some(3));
    assert_eq!(e.0[0].task.as_deref(), Some("t"));
    assert_has(
        &e.0[0],
        &format!("invalid line 2 in environment-file `{}`", bad.display()),
    );
    assert_has(&e.0[0], &format!("--> {}:2:1", bad.display()));
    assert_has(&e.0[0], "2 | ***");
    let col = text.find("\"environment-file").unwrap() + 1;
    assert_has(&e.0[0], &format!("given at {}:1:{col}", cfg.display()));
    let rendered = e.to_string();
    assert!(
        rendered.ends_with(&format!("could not load `{}`: 2 errors", cfg.display())),
        "{rendered}"
    );
}

#[test]
fn stdout_and_stderr_targets() {
    let t = task(r#""stdout": null, "stderr": null"#);
    assert_eq!(
        (t.stdout, t.stderr),
        (OutputTarget::JobLog, StderrTarget::Combined)
    );
    let t = task(r#""stdout": "log", "stderr": "log""#);
    assert_eq!(
        (t.stdout, t.stderr),
        (OutputTarget::JobLog, StderrTarget::JobLog)
    );
    let t = task(r#""stdout": "joblog", "stderr": "Combined""#);
    assert_eq!(
        (t.stdout, t.stderr),
        (OutputTarget::JobLog, StderrTarget::Combined)
    );
    let t = task(r#""stdout": "out/run.log", "stderr": "/var/err.log""#);
    assert_eq!(
        t.stdout,
        OutputTarget::File(PathBuf::from("/cfg/out/run.log"))
    );
    assert_eq!(t.stderr, StderrTarget::File(PathBuf::from("/var/err.log")));
    // Relative to the task's working directory.
    let t = task(r#""working-directory": "/tmp", "stdout": "./o.txt", "stderr": "e.txt""#);
    assert_eq!(t.stdout, OutputTarget::File(PathBuf::from("/tmp/o.txt")));
    assert_eq!(t.stderr, StderrTarget::File(PathBuf::from("/tmp/e.txt")));
    assert_has(
        &task_err(r#""stdout": 5"#, "stdout"),
        "expected a file path",
    );
    assert_has(
        &task_err(r#""stdout": "  ""#, "stdout"),
        "the path is empty",
    );
    assert_has(
        &task_err(r#""stderr": false"#, "stderr"),
        "expected a file path",
    );
}

// ---------------------------------------------------------------- globals

#[test]
fn global_values() {
    let s = ok(
        r#"{"version": "1.0", "check_interval": "10s", "watchdog-timeout": 0,
        "max_parallel": 4, "log_file": "job-{job_id}.log", "log-format": "json", "scripts": []}"#,
    );
    assert_eq!(s.version.as_deref(), Some("1.0"));
    assert_eq!(s.globals.check_interval, Duration::from_secs(10));
    assert_eq!(s.globals.watchdog_timeout, Duration::ZERO);
    assert_eq!(s.globals.max_parallel, Some(4));
    assert_eq!(s.globals.log_file.as_deref(), Some("job-{job_id}.log"));
    assert_eq!(s.globals.log_format, LogFormat::Json);
    let s =
        ok(r#"{"check-interval": 1.5, "max-parallel": null, "log_format": "TEXT", "scripts": []}"#);
    assert_eq!(s.globals.check_interval, Duration::from_millis(1500));
    assert_eq!(s.globals.max_parallel, None);
    assert_eq!(s.globals.log_format, LogFormat::Text);
    for v in ["\"1\"", "\"1.x\"", "1.0", "1", "\"1.2.3\""] {
        ok(&format!(r#"{{"version": {v}, "scripts": []}}"#));
    }
}

#[test]
fn bad_global_values() {
    let bad = |kv: &str, field: &str, msg: &str| {
        let e = err1(&format!(r#"{{{kv}, "scripts": []}}"#));
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_eq!(e.task, None);
        assert_eq!(e.line, Some(1));
        assert_has(&e, msg);
    };
    bad(
        r#""version": "2.0""#,
        "version",
        "unsupported config version \"2.0\"",
    );
    bad(r#""version": "abc""#, "version", "not a version number");
    bad(r#""version": true"#, "version", "expected a version string");
    bad(
        r#""check_interval": 0"#,
        "check_interval",
        "greater than zero",
    );
    bad(
        r#""check_interval": "often""#,
        "check_interval",
        "not a duration",
    );
    bad(
        r#""watchdog_timeout": "-1s""#,
        "watchdog_timeout",
        "negative",
    );
    bad(
        r#""max_parallel": 0"#,
        "max_parallel",
        "must be at least 1, found 0",
    );
    bad(
        r#""max_parallel": -2"#,
        "max_parallel",
        "must be at least 1",
    );
    bad(r#""max_parallel": 1.5"#, "max_parallel", "whole number");
    bad(
        r#""max_parallel": "4""#,
        "max_parallel",
        "expected an integer",
    );
    bad(r#""log_file": """#, "log_file", "cannot be empty");
    bad(r#""log_file": 5"#, "log_file", "expected a string");
    bad(
        r#""log_format": "xml""#,
        "log_format",
        "expected one of `text`, `json`",
    );
    bad(
        r#""check_interval": 5, "check-interval": 6"#,
        "check_interval",
        "`check_interval` given twice: as `check_interval` and as `check-interval`",
    );
    bad(
        r#""log_file": "a", "log_file": "b""#,
        "log_file",
        "duplicate key `log_file`",
    );
}

#[test]
fn unknown_top_level_keys() {
    let e = err1(r#"{"scripts": [], "check_intervall": 5}"#);
    assert_has(&e, "unknown top-level key `check_intervall`");
    assert_has(&e, "did you mean `check_interval`?");
    let e = err1(r#"{"scripts": [], "command": "x"}"#);
    assert_has(&e, "`command` is a task field");
    let e = err1(r#"{"scripts": [], "zzz": 1}"#);
    assert_has(&e, "known fields: `$schema`, `version`, `scripts`");
    // `programs` (Taskmaster) must be a map of programs.
    assert_has(&err1(r#"{"programs": 1}"#), "a map of program names");
    assert_has(
        &err1(r#"{"scripts": [], "programs": {}}"#),
        "both `scripts` and `programs`",
    );
}

// ---------------------------------------------------------------- unknown task keys

#[test]
fn unknown_task_key_renders_with_suggestion_and_place() {
    let text = "{\n  \"scripts\": [\n    {\n      \"name\": \"backup\",\n      \"command\": \"./b.sh\",\n      \"working_dir\": \"/tmp\"\n    }\n  ]\n}\n";
    let e = json(text).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let r = e.to_string();
    let want = "\
error: unknown field `working_dir` in task `backup`
 --> /cfg/scripts_config.json:6:7
  |
6 |       \"working_dir\": \"/tmp\"
  |       ^^^^^^^^^^^^^
  = help: did you mean `working-directory`?
";
    assert!(r.starts_with(want), "got:\n{r}\nwanted:\n{want}");
    assert!(
        r.ends_with("error: could not load `/cfg/scripts_config.json`: 1 error"),
        "{r}"
    );
    assert_eq!(e.0[0].field.as_deref(), Some("working_dir"));
}

#[test]
fn unknown_task_keys_suggest_or_say_not_yet() {
    for (key, want) in [
        ("nmae", "name"),
        ("comand", "command"),
        ("shedule-cron", "schedule-cron"),
        ("cron", "schedule-cron"),
        ("on_failure", "on-fail"),
        ("stop_signal", "stopsignal"),
        ("successcodes", "success-codes"),
        ("enviroment_file", "environment-file"),
        ("Timer", "timer"),
    ] {
        let e = task_err(&format!(r#""{key}": 1"#), key);
        assert_has(&e, &format!("unknown field `{key}` in task `t`"));
        assert_has(&e, &format!("did you mean `{want}`?"));
    }
    assert_has(
        &task_err(r#""max_parallel": 2"#, "max_parallel"),
        "is a global setting",
    );
}

// ---------------------------------------------------------------- many errors at once

#[test]
fn five_errors_are_all_reported() {
    let text = r#"{
  "check_interval": "never",
  "scripts": [
    {"name": "a", "command": "x", "timer": -1},
    {"name": "b", "command": "y", "overlap": "maybe"},
    {"name": "c", "cmd": [], "stopsignal": "SIGTERM"},
    "python ok.py",
    {"name": "d", "command": "z", "retries": 3}
  ]
}"#;
    let e = json(text).unwrap_err();
    assert_eq!(e.0.len(), 5, "{e}");
    let lines: Vec<Option<usize>> = e.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![Some(2), Some(4), Some(5), Some(6), Some(8)]);
    let fields: Vec<&str> = e.0.iter().map(|e| e.field.as_deref().unwrap()).collect();
    assert_eq!(
        fields,
        vec!["check_interval", "timer", "overlap", "command", "retries"]
    );
    let tasks: Vec<Option<&str>> = e.0.iter().map(|e| e.task.as_deref()).collect();
    assert_eq!(
        tasks,
        vec![None, Some("a"), Some("b"), Some("c"), Some("d")]
    );
    assert!(e
        .0
        .iter()
        .all(|e| e.column.is_some() && e.file == Path::new(CFG)));
    let r = e.to_string();
    assert!(
        r.ends_with("could not load `/cfg/scripts_config.json`: 5 errors"),
        "{r}"
    );
    // More errors in the same task are all reported too.
    let more = text.replace("\"retries\": 3", "\"retries\": 3, \"timeout\": 0");
    assert_eq!(json(&more).unwrap_err().0.len(), 6);
    let more = more.replace("\"command\": \"z\", ", "");
    let e = json(&more).unwrap_err();
    assert_eq!(e.0.len(), 7);
    assert_has(&e.0[4], "missing `command` in task `d`");
    assert_has(&e.0[5], "unknown field `retries`");
}

#[test]
fn errors_in_a_task_without_a_valid_name_use_its_index() {
    let e = errs(r#"{"scripts": ["a", {"name": "bad name", "command": "x", "timer": "no"}]}"#);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].task.as_deref(), Some("scripts[1]"));
    assert_has(&e[1], "invalid `timer` in task `scripts[1]`");
}

// ---------------------------------------------------------------- syntax errors

#[test]
fn json_syntax_errors_give_line_and_column() {
    let text = "{\n  \"scripts\": [\n    \"a\"\n    \"b\"\n  ]\n}";
    let e = err1(text);
    assert_eq!((e.line, e.column), (Some(4), Some(5)));
    assert_has(&e, "expected `,` or `]` after list element");
    assert_has(&e, "--> /cfg/scripts_config.json:4:5");
    assert_has(&e, "4 |     \"b\"");

    let e = err1("{\"scripts\": [\"a\",]}");
    assert_eq!((e.line, e.column), (Some(1), Some(17)));
    assert_has(&e, "trailing comma");
    assert_has(&e, "help: remove this `,`");

    let e = err1("{\"scripts\": [\n\"a\"");
    assert_has(&e, "unexpected end of file");
    assert_has(&e, "the `[` opened here is not closed (line 1, column 13)");

    let e = err1("{\n\"scripts\": [], // x\n}");
    assert_eq!((e.line, e.column), (Some(2), Some(16)));
    assert_has(&e, "comments are not allowed");
}

#[test]
fn toml_syntax_errors_give_line_and_column() {
    let text = "[[scripts]]\nname = \"a\"\ncommand = \"x\"\nname = \"b\"\n";
    let e = parse_str(text, Path::new("/c/x.toml"), Format::Toml).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(4), "{e}");
    assert!(e.0[0].column.is_some());
    assert_has(&e.0[0], "invalid TOML");
}

// ---------------------------------------------------------------- shorthand

#[test]
fn shorthand_entries_get_names_from_their_script() {
    let s = ok(r#"{"scripts": [
        "python monitor.py --arg 1",
        "./example_script3.sh",
        "sleep 10",
        "python other/monitor.py",
        {"name": "sleep", "command": "sleep 1"},
        "python3 -u monitor.py"
    ]}"#);
    let names: Vec<&str> = s.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "monitor",
            "example_script3",
            "sleep-2",
            "monitor-2",
            "sleep",
            "monitor-3"
        ]
    );
    assert!(s.tasks[0].shorthand);
    assert!(!s.tasks[4].shorthand);
    assert_eq!(
        s.tasks[0].command,
        CommandSpec::Shell("python monitor.py --arg 1".into())
    );
    assert_eq!(s.tasks[0].working_directory, PathBuf::from("/cfg"));
    // Explicit names that look generated are skipped over.
    let s = ok(r#"{"scripts": ["w.sh", {"name": "w-2", "command": "x"}, "w.sh"]}"#);
    let names: Vec<&str> = s.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["w", "w-2", "w-3"]);
}

// ---------------------------------------------------------------- TOML = JSON

#[test]
fn toml_and_json_give_the_same_spec() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("e.env"), "FROM_FILE=1\nA=file\n").unwrap();
    let json_text = r#"{
  "version": "1.0",
  "check_interval": "10s",
  "watchdog_timeout": 60,
  "max_parallel": 2,
  "log_file": "job-{job_id}.log",
  "log_format": "json",
  "scripts": [
    "python monitor.py",
    {
      "name": "backup",
      "cmd": ["./backup.sh", "--all"],
      "description": "nightly backup",
      "enabled": false,
      "schedule-cron": "0 3 * * *",
      "timezone": "UTC",
      "overlap": "queue",
      "timeout": "1h",
      "on-fail": "restart",
      "times": 3,
      "exitcodes": [0, 2],
      "restart-delay": 2.5,
      "max-restart-delay": "5m",
      "stopsignal": "SIGINT",
      "stoptime": "10s",
      "working-directory": "work",
      "env": {"A": "env", "N": 5, "B": true},
      "environment-file": "e.env",
      "stdout": "out.log",
      "stderr": "log"
    },
    {"name": "tick", "command": "date", "timer": "5m"}
  ]
}"#;
    let toml_text = r#"
version = "1.0"
check_interval = "10s"
watchdog_timeout = 60
max_parallel = 2
log_file = "job-{job_id}.log"
log_format = "json"
scripts = [
  "python monitor.py",
  { name = "backup", cmd = ["./backup.sh", "--all"], description = "nightly backup", enabled = false, schedule-cron = "0 3 * * *", timezone = "UTC", overlap = "queue", timeout = "1h", on-fail = "restart", times = 3, exitcodes = [0, 2], restart-delay = 2.5, max-restart-delay = "5m", stopsignal = "SIGINT", stoptime = "10s", working-directory = "work", env = { A = "env", N = 5, B = true }, environment-file = "e.env", stdout = "out.log", stderr = "log" },
  { name = "tick", command = "date", timer = "5m" },
]
"#;
    // The same path for both: `source` is part of the Spec.
    let path = dir.path().join("c.conf");
    let a = parse_str(json_text, &path, Format::Json).unwrap();
    let b = parse_str(toml_text, &path, Format::Toml).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.tasks.len(), 3);
    let t = &a.tasks[1];
    assert_eq!(t.env["A"], "env");
    assert_eq!(t.env["FROM_FILE"], "1");
    assert_eq!(t.env["N"], "5");
    assert_eq!(t.restart_delay, Duration::from_millis(2500));
    assert_eq!(
        t.stdout,
        OutputTarget::File(dir.path().join("work/out.log"))
    );

    // Array-of-tables form, with a sub-table.
    let toml_tables = r#"
version = "1.0"
check_interval = "10s"
watchdog_timeout = 60
max_parallel = 2
log_file = "job-{job_id}.log"
log_format = "json"
scripts = ["python monitor.py"]
"#;
    let c = parse_str(toml_tables, &path, Format::Toml).unwrap();
    assert_eq!(c.globals, a.globals);
    let aot = "[[scripts]]\nname = \"a\"\ncommand = \"x\"\n[scripts.env]\nK = \"v\"\n\n[[scripts]]\nname = \"b\"\ncommand = \"y\"\nworking_dir = 3\n";
    let e = parse_str(aot, &path, Format::Toml).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!((e.0[0].line, e.0[0].column), (Some(10), Some(1)));
    assert_has(&e.0[0], "did you mean `working-directory`?");
    let ok_aot = aot.replace("working_dir = 3\n", "");
    let s = parse_str(&ok_aot, &path, Format::Toml).unwrap();
    assert_eq!(s.tasks[0].env["K"], "v");
    assert_eq!(s.tasks[1].name, "b");
    // TOML-only value kinds are type errors, with places.
    let e = parse_str(
        "scripts = []\ncheck_interval = 1979-05-27\n",
        &path,
        Format::Toml,
    )
    .unwrap_err();
    assert_has(&e.0[0], "expected a duration, found a date/time");
    assert_eq!(e.0[0].line, Some(2));
    let e = parse_str("scripts = []\ncheck_interval = nan\n", &path, Format::Toml).unwrap_err();
    assert_has(&e.0[0], "not a finite number");
}

// ---------------------------------------------------------------- locate and load

#[test]
fn locate_order() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let none = locate_in(None, None, cwd).unwrap_err();
    let r = none.to_string();
    for needle in [
        "error: no config file found",
        "--config PATH: not given",
        "$BANSURI_CONFIG: not set",
        &cwd.join("scripts_config.json").display().to_string(),
        &cwd.join("scripts.json").display().to_string(),
    ] {
        assert!(r.contains(needle), "{needle:?} missing from:\n{r}");
    }
    assert!(!r.contains("could not load"), "{r}");
    assert!(
        r.ends_with(&format!("in {}", cwd.display())),
        "no trailing blank lines: {r:?}"
    );

    std::fs::write(cwd.join("scripts.json"), "{}").unwrap();
    assert_eq!(
        locate_in(None, None, cwd).unwrap(),
        PathBuf::from("scripts.json")
    );
    std::fs::write(cwd.join("scripts_config.json"), "{}").unwrap();
    assert_eq!(
        locate_in(None, None, cwd).unwrap(),
        PathBuf::from("scripts_config.json")
    );
    std::fs::write(cwd.join("env.toml"), "").unwrap();
    assert_eq!(
        locate_in(None, Some(OsStr::new("env.toml")), cwd).unwrap(),
        PathBuf::from("env.toml")
    );
    assert_eq!(
        locate_in(None, Some(OsStr::new("")), cwd).unwrap(),
        PathBuf::from("scripts_config.json"),
        "an empty BANSURI_CONFIG is unset"
    );
    std::fs::write(cwd.join("cli.json"), "").unwrap();
    assert_eq!(
        locate_in(
            Some(Path::new("cli.json")),
            Some(OsStr::new("env.toml")),
            cwd
        )
        .unwrap(),
        PathBuf::from("cli.json")
    );
    // Given but missing: an error, not a fall-through.
    let e = locate_in(None, Some(OsStr::new("gone.json")), cwd).unwrap_err();
    assert!(e.to_string().contains("(from $BANSURI_CONFIG)"), "{e}");
    let e = locate_in(Some(Path::new("gone.json")), None, cwd).unwrap_err();
    assert!(e.to_string().contains("(from --config)"), "{e}");
    let e = locate_in(Some(cwd), None, cwd).unwrap_err();
    assert!(e.to_string().contains("is not a file"), "{e}");
    // The public function reads the real environment and directory; it must not panic.
    let _ = locate(Some(Path::new("/nonexistent/x.json")));
}

#[test]
fn load_reads_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("c.json");
    std::fs::write(&j, r#"{"scripts": ["sleep 1"]}"#).unwrap();
    assert_eq!(load(&j).unwrap().tasks[0].name, "sleep");
    let t = dir.path().join("c.TOML");
    std::fs::write(&t, "scripts = [\"sleep 1\"]").unwrap();
    assert_eq!(
        load(&t).unwrap(),
        Spec {
            source: t.clone(),
            ..load(&j).unwrap()
        }
    );
    for (name, msg) in [
        ("c.ini", "unknown config format `.ini`"),
        ("config", "no extension"),
        ("missing.json", "cannot read"),
    ] {
        let p = dir.path().join(name);
        if !name.starts_with("missing") {
            std::fs::write(&p, "scripts: []").unwrap();
        }
        let e = load(&p).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(e.to_string().contains(msg), "{name}: {e}");
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\n \"scripts\": [\"\xff\"]}").unwrap();
    let e = load(&bad).unwrap_err();
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    assert_eq!((e.0[0].line, e.0[0].column), (Some(2), Some(15)));
}

// ---------------------------------------------------------------- robustness

#[test]
fn nasty_inputs_never_panic() {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "\0",
        "{\0}",
        "{",
        "}",
        "{\"scripts\"",
        "{\"scripts\":",
        "{\"scripts\": [",
        "{\"scripts\": [\"",
        "{\"scripts\": [{\"name\": \"a\", \"timer\": ",
        "\"\\ud800\"",
        "{\"scripts\": [\"\\ud800\"]}",
        "{\"scripts\": [\"\\udfff\\ud800\"]}",
        "{\"scripts\": [], \"max_parallel\": 1e99999}",
        "{\"scripts\": [], \"max_parallel\": 99999999999999999999999999999999}",
        "{\"scripts\": [], \"check_interval\": -0}",
        "{\"scripts\": [], \"check_interval\": 1e-999}",
        "{\"scripts\": [], \"check_interval\": \"1e999\"}",
        "{\"scripts\": [], \"check_interval\": \"99999999999999999999y\"}",
        "{\"scripts\": [{\"name\": \"a\", \"command\": \"x\", \"success-codes\": 1e400}]}",
        "{\"scripts\": [{\"name\": \"é\", \"command\": \"\u{1F600}\", \"timer\": \"\u{1F600}\"}]}",
        "\u{feff}",
        "\u{feff}{\"scripts\": []}",
        "[[[[[[[[[[",
        "scripts = [",
        "[[scripts]]\n[[scripts]]\nname = 1979-05-27T07:32:00Z",
        "a.b.c.d = 1\n[a]\n",
        "scripts = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    inputs.push("[".repeat(200_000));
    inputs.push("{\"a\":".repeat(50_000));
    inputs.push(format!("{{\"scripts\": [{}]}}", "1".repeat(100_000)));
    inputs.push("x = ".to_string() + &"[".repeat(10_000));
    inputs.push("x = ".to_string() + &"{a=".repeat(10_000));
    for text in &inputs {
        for format in [Format::Json, Format::Toml] {
            // Rendering must not panic either.
            if let Err(e) = parse_str(text, Path::new("/n/x"), format) {
                assert!(!e.0.is_empty());
                let _ = e.to_string();
            }
        }
    }
}

#[test]
fn every_error_inside_the_file_has_a_position() {
    // A config touching every check at once: each error has file, line, column, field.
    let text = r#"{"version": 7, "max_parallel": 0, "bogus": 1, "scripts": [
      5, "", {"name": "a b", "cmd": 1, "cmd": 2, "timer": "x", "schedule-cron": 3,
      "timezone": "mars", "overlap": 1, "timeout": 0, "on-fail": 1, "times": 0,
      "success-codes": [], "restart-delay": "x", "max-restart-delay": "y", "stopsignal": "z",
      "stoptime": "w", "working-directory": 5, "env": 1,
      "environment-file": "", "stdout": 1, "stderr": 1, "numprocs": 2}]}"#;
    let e = json(text).unwrap_err();
    assert!(e.0.len() >= 25, "{e}");
    for err in &e.0 {
        assert!(
            err.line.is_some() && err.column.is_some() && err.snippet.is_some(),
            "{err}"
        );
        assert_eq!(err.file, Path::new(CFG));
        assert!(err.field.is_some(), "{err}");
    }
}

/// A cheap deterministic fuzzer: mutate valid configs byte by byte (delete, duplicate,
/// replace with a syntax character, truncate) and run the whole pipeline and rendering.
#[test]
fn mutated_configs_never_panic() {
    let seeds = [
        r#"{"version": "1.0", "max_parallel": 2, "scripts": ["python a.py", {"name": "b", "cmd": ["x", "y"], "timer": "5m", "env": {"A": 1}, "success-codes": [0, 1], "stdout": "o.log"}, {"name": "c", "command": "z", "schedule-cron": "@daily", "timezone": "UTC", "restart-delay": 2, "max-restart-delay": "1m"}]}"#,
        "version = \"1\"\nlog_format = \"json\"\n[[scripts]]\nname = \"a\"\ncommand = \"a.sh\"\n[[scripts]]\nname = \"b\"\ncommand = [\"x\"]\ntimer = 1.5\n[scripts.env]\nK = 'v'\n",
    ];
    let alphabet: &[u8] = b"{}[]\",:\\ \n0-.eEtu\x00\xff";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (n, seed) in seeds.iter().enumerate() {
        let format = if n == 0 { Format::Json } else { Format::Toml };
        if let Err(e) = parse_str(seed, Path::new("/n/x"), format) {
            panic!("seed {n} must be valid:\n{e}");
        }
        for _ in 0..3000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(1 + next() % 4) {
                if bytes.is_empty() {
                    break;
                }
                let i = (next() % bytes.len() as u64) as usize;
                match next() % 4 {
                    0 => {
                        bytes.remove(i);
                    }
                    1 => {
                        let b = bytes[i];
                        bytes.insert(i, b);
                    }
                    2 => bytes[i] = alphabet[(next() % alphabet.len() as u64) as usize],
                    _ => bytes.truncate(i),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = parse_str(&text, Path::new("/n/x"), format) {
                assert!(!e.0.is_empty());
                let _ = e.to_string();
            }
        }
    }
}

// ---------------------------------------------------------------- control globals

#[test]
fn state_dir_sample_interval_and_dashboard() {
    let s = ok(
        r#"{"scripts": [], "state_dir": "run/state", "sample_interval": "5s", "dashboard": "8080"}"#,
    );
    assert_eq!(s.globals.state_dir, Some(PathBuf::from("/cfg/run/state")));
    assert_eq!(s.globals.sample_interval, Duration::from_secs(5));
    assert_eq!(
        s.globals.dashboard,
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080)))
    );
    assert_eq!(state_dir(&s), PathBuf::from("/cfg/run/state"));
    let s = ok(
        r#"{"scripts": [], "sample-interval": 0, "dashboard": "0.0.0.0:9000", "state-dir": "/abs"}"#,
    );
    assert!(s.globals.sample_interval.is_zero(), "0 turns sampling off");
    assert_eq!(s.globals.dashboard.map(|a| a.port()), Some(9000));
    assert_eq!(s.globals.state_dir, Some(PathBuf::from("/abs")));
    let s = ok(r#"{"scripts": []}"#);
    assert_eq!(
        state_dir(&s),
        PathBuf::from("/cfg/.bansuri/scripts_config.json"),
        "one state directory per config file"
    );
    assert_eq!(s.globals.sample_interval, Duration::from_secs(30));
    assert_eq!(s.globals.dashboard, None);

    let e = err1(r#"{"scripts": [], "dashboard": "localhost:eighty"}"#);
    assert_has(&e, "`localhost:eighty` is not an address and port");
    assert_has(&e, "127.0.0.1:8080");
    assert_eq!(e.field.as_deref(), Some("dashboard"));
    assert!(e.line.is_some() && e.column.is_some(), "{e}");
    let e = err1(r#"{"scripts": [], "sample_interval": "-1s"}"#);
    assert_eq!(e.field.as_deref(), Some("sample_interval"));
    let e = err1(r#"{"scripts": [], "state_dir": ""}"#);
    assert_has(&e, "cannot be empty");
}

#[test]
fn dashboard_hosts_are_a_list_of_host_names() {
    let s = ok(r#"{"scripts": [], "dashboard_hosts": ["Node042", "10.1.2.3", "[fe80::1]"]}"#);
    assert_eq!(
        s.globals.dashboard_hosts,
        ["node042", "10.1.2.3", "[fe80::1]"]
    );
    let s = ok(r#"{"scripts": [], "dashboard-hosts": []}"#);
    assert!(s.globals.dashboard_hosts.is_empty());
    assert!(ok(r#"{"scripts": []}"#).globals.dashboard_hosts.is_empty());
    let e = err1(r#"{"scripts": [], "dashboard_hosts": "node042"}"#);
    assert_has(&e, "a list of strings");
    assert_eq!(e.field.as_deref(), Some("dashboard_hosts"));
    let e = err1(r#"{"scripts": [], "dashboard_hosts": ["node042", "http://evil/"]}"#);
    assert_has(&e, "element 1 (`http://evil/`) is not a host name");
    assert_eq!(e.field.as_deref(), Some("dashboard_hosts"));
    let e = err1(r#"{"scripts": [], "dashboard_hosts": [""]}"#);
    assert_has(&e, "cannot be empty");
}

#[test]
fn state_dir_of_a_config_that_does_not_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("c.json");
    // Invalid (an unknown key) but parseable: its state_dir is still found.
    std::fs::write(&p, r#"{"scripts": [], "nope": 1, "state_dir": "st"}"#).expect("write");
    assert_eq!(state_dir_of(&p), dir.path().join("st"));
    std::fs::write(&p, r#"{"scripts": [], "#).expect("write");
    assert_eq!(
        state_dir_of(&p),
        dir.path().join(".bansuri/c.json"),
        "unparseable: the default"
    );
    let t = dir.path().join("c.toml");
    std::fs::write(&t, "state-dir = \"/x/y\"\nscripts = []\n").expect("write");
    assert_eq!(state_dir_of(&t), PathBuf::from("/x/y"));
}

// ---------------------------------------------------------------- SLURM: srun, stop_before_end

#[test]
fn srun_values() {
    use crate::spec::SrunSpec;
    assert_eq!(task("").srun, None);
    assert_eq!(task(r#""srun": false"#).srun, None);
    assert_eq!(task(r#""srun": true"#).srun, Some(SrunSpec::default()));
    assert_eq!(task(r#""srun": {}"#).srun, Some(SrunSpec::default()));
    assert_eq!(
        task(
            r#""srun": {"nodes": 2, "ntasks": 4, "cpus-per-task": 8, "overlap": true,
                "extra-args": ["--mem=4G", "--gres=gpu:1"]}"#
        )
        .srun,
        Some(SrunSpec {
            nodes: Some(2),
            ntasks: 4,
            cpus_per_task: 8,
            overlap: true,
            extra_args: vec!["--mem=4G".into(), "--gres=gpu:1".into()],
        })
    );
    // snake_case spellings, and extra-args as one string split at whitespace.
    let s = task(r#""srun": {"cpus_per_task": 2, "extra_args": " --mem=4G  --exclusive "}"#)
        .srun
        .unwrap();
    assert_eq!(s.cpus_per_task, 2);
    assert_eq!(s.extra_args, ["--mem=4G", "--exclusive"]);
    // TOML gives the same.
    let toml = parse_str(
        "[[scripts]]\nname = \"t\"\ncommand = \"x\"\n[scripts.srun]\nntasks = 2\noverlap = true\n",
        Path::new("/cfg/c.toml"),
        Format::Toml,
    )
    .expect("the TOML config loads");
    let s = toml.tasks[0].srun.clone().unwrap();
    assert_eq!((s.ntasks, s.overlap), (2, true));
}

#[test]
fn bad_srun_values() {
    let e = task_err(r#""srun": "yes""#, "srun");
    assert_has(
        &e,
        "invalid `srun` in task `t`: expected `true`, `false` or an object",
    );
    let e = task_err(r#""srun": {"ntasks": 0}"#, "srun.ntasks");
    assert_has(
        &e,
        "invalid `srun.ntasks` in task `t`: must be at least 1, found 0",
    );
    let e = task_err(r#""srun": {"cpus-per-task": "4"}"#, "srun.cpus-per-task");
    assert_has(&e, "expected an integer");
    let e = task_err(r#""srun": {"nodes": 1.5}"#, "srun.nodes");
    assert_has(&e, "whole number");
    let e = task_err(r#""srun": {"overlap": "yes"}"#, "srun.overlap");
    assert_has(&e, "expected `true` or `false`");
    assert_has(&e, "srun --overlap");
    let e = task_err(
        r#""srun": {"extra-args": ["--mem=4G", 5]}"#,
        "srun.extra-args",
    );
    assert_has(&e, "each option must be a string, found the number `5`");
    let e = task_err(r#""srun": {"extra-args": {}}"#, "srun.extra-args");
    assert_has(&e, "expected a list of strings");
    let e = task_err(r#""srun": {"cpus": 4}"#, "srun");
    assert_has(&e, "unknown key `cpus` in `srun` in task `t`");
    assert_has(&e, "did you mean `cpus-per-task`?");
    let e = task_err(r#""srun": {"mem": "4G"}"#, "srun");
    assert_has(&e, "other srun options go in `extra-args`");
    let e = task_err(
        r#""srun": {"cpus-per-task": 2, "cpus_per_task": 3}"#,
        "srun.cpus-per-task",
    );
    assert_has(&e, "`cpus-per-task` given twice in `srun`");
    // Every bad key of one srun object is reported, each at its own place.
    let all = errs(&one_task(r#""srun": {"ntasks": 0, "nodes": -1, "zz": 1}"#));
    assert_eq!(all.len(), 3, "{}", ConfigErrors(all.clone()));
}

#[test]
fn stop_before_end_values() {
    let g = |v: &str| ok(&format!(r#"{{"stop_before_end": {v}, "scripts": []}}"#)).globals;
    assert_eq!(
        ok(r#"{"scripts": []}"#).globals.stop_before_end,
        Duration::ZERO
    );
    assert_eq!(g(r#""5m""#).stop_before_end, Duration::from_secs(300));
    assert_eq!(g("90").stop_before_end, Duration::from_secs(90));
    assert_eq!(g("0").stop_before_end, Duration::ZERO);
    let s = ok(r#"{"stop-before-end": "1h", "scripts": []}"#);
    assert_eq!(s.globals.stop_before_end, Duration::from_secs(3600));
    let e = err1(r#"{"stop_before_end": "-5m", "scripts": []}"#);
    assert_eq!(e.field.as_deref(), Some("stop_before_end"));
    assert_has(&e, "negative");
    let e = err1(r#"{"stop_before_end": "soon", "scripts": []}"#);
    assert_has(&e, "invalid `stop_before_end`: `soon` is not a duration");
}

#[test]
fn config_settle_defaults_to_a_second_and_is_bounded() {
    assert_eq!(
        ok(r#"{"scripts": []}"#).globals.config_settle,
        Duration::from_secs(1)
    );
    let s = ok(r#"{"config-settle": "250ms", "scripts": []}"#);
    assert_eq!(s.globals.config_settle, Duration::from_millis(250));
    assert_eq!(
        ok(r#"{"config_settle": 0, "scripts": []}"#)
            .globals
            .config_settle,
        Duration::ZERO
    );
    let e = err1(r#"{"config_settle": "2m", "scripts": []}"#);
    assert_has(&e, "config_settle");
    assert_has(&e, "`2m` is longer than the 60s allowed");
}
