//! `notify`, `notify-on`, `notify_command`, `notify_timeout` and `no-interface`.

use super::*;
use crate::spec::{Notify, NotifyOn};

fn ext(tasks: &[&str], notifiers: &[&str]) -> Extensions {
    Extensions {
        tasks: tasks.iter().map(|s| s.to_string()).collect(),
        notifiers: notifiers.iter().map(|s| s.to_string()).collect(),
    }
}

fn with(text: &str, e: &Extensions) -> Result<Spec, ConfigErrors> {
    parse_str_with(text, Path::new(CFG), Format::Json, e)
}

const MAIL: &str = r#""notify_command": "cat > out", "#;

fn mail_task(fields: &str) -> String {
    format!(r#"{{{MAIL}"scripts": [{{"name": "t", "command": "x", {fields}}}]}}"#)
}

#[test]
fn notify_values_and_globals() {
    let s = ok(&mail_task(r#""notify": "mail""#));
    assert_eq!(s.globals.notify_command.as_deref(), Some("cat > out"));
    assert_eq!(s.globals.notify_timeout, Duration::from_secs(30));
    assert_eq!(s.tasks[0].notify, Notify::Command);
    assert_eq!(s.tasks[0].notify_on, NotifyOn::default());
    assert_eq!(
        ok(&mail_task(r#""notify": "On-Fail""#)).tasks[0].notify,
        Notify::Command
    );
    assert_eq!(
        ok(&mail_task(r#""notify": "none""#)).tasks[0].notify,
        Notify::Off
    );
    assert_eq!(task("").notify, Notify::Off);
    let s = ok(
        r#"{"notify-command": "mail x", "notify-timeout": "5s", "scripts": [{"name": "t", "command": "x", "notify": "mail"}]}"#,
    );
    assert_eq!(s.globals.notify_command.as_deref(), Some("mail x"));
    assert_eq!(s.globals.notify_timeout, Duration::from_secs(5));
}

#[test]
fn mail_without_notify_command_is_a_warning() {
    // The manual: nothing is sent, the run goes on. The file loads; the task keeps
    // `notify: mail` (the job log says "not sent" when it would have been).
    let w = warn1(&one_task(r#""notify": "mail""#), "t", "notify");
    assert_has(
        &w,
        "warning: `notify` has no effect in task `t`: \"mail\" runs the global `notify_command`, which is not set, so nothing is sent (the run goes on)",
    );
    assert_has(&w, "help: add a top-level \"notify_command\"");
    assert_eq!(task(r#""notify": "on-fail""#).notify, Notify::Command);
    // The value is quoted as written (seed 003 writes "on-fail").
    let w = warn1(&one_task(r#""notify": "on-fail""#), "t", "notify");
    assert_has(&w, "\"on-fail\" runs the global `notify_command`");
    // `null` is "not set" too.
    let w = warn1(
        r#"{"notify_command": null, "scripts": [{"name": "t", "command": "x", "notify": "mail"}]}"#,
        "t",
        "notify",
    );
    assert_has(&w, "which is not set");
    assert!(ok(&mail_task(r#""notify": "mail""#)).warnings.is_empty());
    // An invalid notify_command is reported once, at its own place.
    let e = err1(
        r#"{"notify_command": "", "scripts": [{"name": "t", "command": "x", "notify": "mail"}]}"#,
    );
    assert_eq!(e.field.as_deref(), Some("notify_command"), "{e}");
}

#[test]
fn bad_globals() {
    let e = err1(r#"{"notify_timeout": 0, "scripts": []}"#);
    assert_has(&e, "invalid `notify_timeout`: must be greater than zero");
    let e = err1(r#"{"notify_command": 3, "scripts": []}"#);
    assert_has(&e, "expected a string");
}

#[test]
fn unknown_notifier_lists_the_registered_ones() {
    let e = task_err(r#""notify": "slack""#, "notify");
    assert_has(&e, "unknown notifier \"slack\"");
    assert_has(&e, "this binary registers no notifiers");
    let reg = ext(&[], &["slack-hook", "pager"]);
    let text = one_task(r#""notify": "slak""#);
    let e = with(&text, &reg).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let r = e.to_string();
    assert!(
        r.contains("notifiers registered in this binary: `pager`, `slack-hook`"),
        "{r}"
    );
    let s = with(&one_task(r#""notify": "pager""#), &reg).unwrap();
    assert_eq!(s.tasks[0].notify, Notify::Registered("pager".into()));
}

#[test]
fn notify_on_lists() {
    let t = &ok(&mail_task(
        r#""notify": "mail", "notify-on": ["failure", "Recovery"]"#,
    ))
    .tasks[0];
    assert_eq!(
        t.notify_on,
        NotifyOn {
            failure: true,
            success: false,
            recovery: true,
            attempt: false
        }
    );
    let t = &ok(&mail_task(r#""notify": "mail", "notify_on": "success""#)).tasks[0];
    assert_eq!(
        t.notify_on,
        NotifyOn {
            failure: false,
            success: true,
            recovery: false,
            attempt: false
        }
    );
    let t = &ok(&mail_task(
        r#""notify": "mail", "notify-on": ["failure", "attempt"]"#,
    ))
    .tasks[0];
    assert!(t.notify_on.failure && t.notify_on.attempt && !t.notify_on.success);
    let e = err1(&mail_task(
        r#""notify": "mail", "notify-on": ["failure", "sucess"]"#,
    ));
    assert_has(&e, "unknown event \"sucess\"");
    assert_eq!(e.field.as_deref(), Some("notify-on"));
    let e = err1(&mail_task(r#""notify": "mail", "notify-on": []"#));
    assert_has(&e, "the list is empty");
    // Without a notifier, `notify-on` tells nothing: a warning, the file loads.
    let w = warn1(&one_task(r#""notify-on": ["failure"]"#), "t", "notify-on");
    assert_has(&w, "it has no effect (the default): `notify` is \"none\"");
    let w = warn1(
        &mail_task(r#""notify": "none", "notify-on": "failure""#),
        "t",
        "notify-on",
    );
    assert_has(&w, "it has no effect: `notify` is \"none\"");
    // An invalid `notify` is not reported a second time through `notify-on`.
    let e = task_err(r#""notify": "pager", "notify-on": "failure""#, "notify");
    assert_has(&e, "unknown notifier");
}

#[test]
fn no_interface_names_a_registered_task() {
    let e = task_err(r#""no-interface": true"#, "command");
    assert_has(
        &e,
        "invalid `command` in task `t`: no task named \"x\" is registered",
    );
    assert_has(&e, "this binary registers no in-process tasks");
    let reg = ext(&["probe", "backup"], &[]);
    let text =
        r#"{"scripts": [{"name": "t", "command": "probe", "no-interface": true, "timer": 5}]}"#;
    let s = with(text, &reg).unwrap();
    assert!(s.tasks[0].no_interface);
    assert_eq!(s.tasks[0].command, CommandSpec::Shell("probe".into()));
    let text = r#"{"scripts": [{"name": "t", "command": "prob", "no_interface": true}]}"#;
    let r = with(text, &reg).unwrap_err().to_string();
    assert!(
        r.contains("in-process tasks registered in this binary: `backup`, `probe`"),
        "{r}"
    );
    assert!(r.contains(":1:"), "names line and column: {r}");
    let text = r#"{"scripts": [{"name": "t", "command": ["probe"], "no-interface": true}]}"#;
    let r = with(text, &reg).unwrap_err().to_string();
    assert!(
        r.contains("is the name of a registered task, not a list"),
        "{r}"
    );
    // `false` is a process task like any other.
    assert!(!task(r#""no-interface": false"#).no_interface);
    let e = task_err(r#""no-interface": "yes""#, "no-interface");
    assert_has(&e, "expected `true` or `false`");
}

#[test]
fn toml_spelling() {
    let text = "notify_command = \"cat > out\"\nnotify_timeout = \"2s\"\n[[scripts]]\nname = \"t\"\ncommand = \"x\"\nnotify = \"mail\"\nnotify-on = [\"failure\", \"recovery\"]\n";
    let s = parse_str(text, Path::new("/cfg/c.toml"), Format::Toml).unwrap();
    assert_eq!(s.globals.notify_timeout, Duration::from_secs(2));
    assert!(s.tasks[0].notify_on.recovery);
}
