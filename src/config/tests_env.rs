//! Problems of the machine rather than of the file (a working directory not created yet, a
//! user unknown here, an environment-file not written yet) are warnings, settled again at
//! each start; dated output paths (strftime patterns) are checked here and filled in at
//! each start.

use std::path::{Path, PathBuf};

use chrono::TimeZone;

use super::*;
use crate::spec::{OutputTarget, StderrTarget, TaskSpec};

/// `tasks` (JSON objects) in a config at `dir/c.json`.
fn load_in(dir: &Path, tasks: &str) -> Result<Spec, ConfigErrors> {
    let text = format!("{{\"scripts\": [\n{tasks}\n]}}");
    parse_str(&text, &dir.join("c.json"), Format::Json)
}

/// The one warning of a config that must load.
fn one_warning(dir: &Path, tasks: &str) -> (Spec, ConfigWarning) {
    let spec = match load_in(dir, tasks) {
        Ok(s) => s,
        Err(e) => panic!("expected the config to load with a warning, got:\n{e}"),
    };
    assert_eq!(spec.warnings.len(), 1, "{:#?}", spec.warnings);
    let w = spec.warnings[0].clone();
    (spec, w)
}

/// A warning names the file, line, column, task and field, as an error does.
fn assert_located(w: &ConfigWarning, dir: &Path, line: usize, field: &str) {
    let e = &w.0;
    assert_eq!(e.file, dir.join("c.json"));
    assert_eq!(e.line, Some(line), "{w}");
    assert!(e.column.is_some() && e.snippet.is_some(), "{w}");
    assert_eq!(e.task.as_deref(), Some("bad"), "{w}");
    assert_eq!(e.field.as_deref(), Some(field), "{w}");
    let text = w.to_string();
    assert!(text.starts_with("warning: "), "{text}");
    assert!(!text.contains("error"), "{text}");
    let here = format!("--> {}:{line}:", dir.join("c.json").display());
    assert!(text.contains(&here), "{text}");
}

#[test]
fn a_missing_working_directory_is_a_warning_and_the_other_tasks_load() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, w) = one_warning(
        dir.path(),
        r#"{"name": "good", "command": "true"},
{"name": "bad", "command": "true", "working-directory": "later/made"}"#,
    );
    assert_located(&w, dir.path(), 3, "working-directory");
    let text = w.to_string();
    assert!(text.contains("later/made` does not exist (yet)"), "{text}");
    assert!(
        text.contains("each start of the task checks again"),
        "{text}"
    );
    assert_eq!(spec.tasks.len(), 2);
    assert_eq!(
        spec.tasks[1].working_directory,
        dir.path().join("later/made")
    );
    let line = w.one_line();
    assert!(
        line.starts_with("Config: `working-directory` in task `bad`"),
        "{line}"
    );
    assert!(line.contains("c.json:3:"), "{line}");
}

#[test]
fn an_unknown_user_is_a_warning_looked_up_at_each_start() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, w) = one_warning(
        dir.path(),
        r#"{"name": "good", "command": "true"},
{"name": "bad", "command": "true", "user": "no-such-user-bansuri"}"#,
    );
    assert_located(&w, dir.path(), 3, "user");
    assert!(w
        .to_string()
        .contains("unknown user `no-such-user-bansuri`"));
    let bad = &spec.tasks[1];
    assert_eq!(bad.pending.user.as_deref(), Some("no-such-user-bansuri"));
    // Its start fails, naming the user; the task itself is untouched.
    let at = chrono::Local::now();
    let e = crate::spawn::prepare(bad, &at).unwrap_err();
    assert!(
        matches!(
            &e,
            crate::spawn::SpawnError::User(crate::config::StartUserError::Unknown(_))
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("unknown user `no-such-user-bansuri`"),
        "{e}"
    );
    // A user that exists at the start is used (this test's own user needs no root).
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("the test's user is in the user database");
    let mut later = bad.clone();
    later.pending.user = Some(me.name.clone());
    let ready = crate::spawn::prepare(&later, &at).unwrap();
    assert_eq!(ready.user.as_ref().map(|u| u.uid), Some(me.uid.as_raw()));
    assert!(ready.pending.is_empty());
}

#[test]
fn a_missing_environment_file_is_a_warning_and_is_read_by_the_start_that_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, w) = one_warning(
        dir.path(),
        r#"{"name": "good", "command": "true"},
{"name": "bad", "command": "true", "environment-file": "vars.env", "env": {"B": "env"}}"#,
    );
    assert_located(&w, dir.path(), 3, "environment-file");
    assert!(w.to_string().contains("vars.env` does not exist (yet)"));
    // The snippet shows the path (it is no secret), and masks `env` values beside it.
    let shown = w.to_string();
    assert!(
        shown.contains(r#""environment-file": "vars.env""#),
        "{shown}"
    );
    assert!(!shown.contains(r#""B": "env""#), "{shown}");
    let bad = &spec.tasks[1];
    assert!(bad.pending.environment_file);
    let at = chrono::Local::now();
    let e = crate::spawn::prepare(bad, &at).unwrap_err();
    assert!(
        matches!(
            &e,
            crate::spawn::SpawnError::EnvironmentFile(crate::config::EnvFileStartError::Missing(p))
                if p.ends_with("vars.env")
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("vars.env` does not exist"), "{e}");
    // Written later: the next start reads it, `env` still wins.
    std::fs::write(dir.path().join("vars.env"), "A=file\nB=file\n").unwrap();
    let ready = crate::spawn::prepare(bad, &at).unwrap();
    assert_eq!(ready.env["A"], "file");
    assert_eq!(ready.env["B"], "env");
    assert!(ready.pending.is_empty());
    // A bad line in it fails that start, naming the line.
    std::fs::write(dir.path().join("vars.env"), "A=1\noops\n").unwrap();
    let e = crate::spawn::prepare(bad, &at).unwrap_err();
    assert!(
        matches!(
            &e,
            crate::spawn::SpawnError::EnvironmentFile(crate::config::EnvFileStartError::BadLine {
                line: 2,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("invalid line 2 in environment-file"),
        "{e}"
    );
}

#[test]
fn problems_of_the_file_itself_are_still_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.env"), "oops\n").unwrap();
    for (fields, want) in [
        (r#""working-directory": 3"#, "expected a string"),
        (r#""working-directory": """#, "cannot be empty"),
        (r#""environment-file": "bad.env""#, "invalid line 1"),
        (r#""user": """#, "expected a login name"),
        (r#""stdout": "out-%Q.log""#, "not a valid strftime pattern"),
    ] {
        let tasks = format!(r#"{{"name": "bad", "command": "true", {fields}}}"#);
        let e = load_in(dir.path(), &tasks).unwrap_err();
        assert!(e.to_string().contains(want), "{fields}: {e}");
    }
}

#[test]
fn an_invalid_strftime_pattern_is_an_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for field in ["stdout", "stderr"] {
        let tasks =
            format!(r#"{{"name": "bad", "command": "true", "{field}": "logs/out-%Y-%Q.log"}}"#);
        let e = load_in(dir.path(), &tasks).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        let e = &e.0[0];
        assert_eq!(e.field.as_deref(), Some(field));
        assert_eq!(e.task.as_deref(), Some("bad"));
        let text = e.to_string();
        assert!(
            text.contains(&format!("invalid `{field}` in task `bad`: `logs/out-%Y-%Q.log` is not a valid strftime pattern (write `%%` for a literal `%`)")),
            "{text}"
        );
    }
    // A lone `%` at the end is invalid too; `%%` is a literal `%`.
    assert!(load_in(
        dir.path(),
        r#"{"name": "t", "command": "x", "stdout": "a%"}"#
    )
    .is_err());
    let s = load_in(
        dir.path(),
        r#"{"name": "t", "command": "x", "stdout": "100%%.log"}"#,
    )
    .unwrap();
    assert!(s.warnings.is_empty());
}

#[test]
fn a_shell_command_in_an_output_path_is_a_warning_showing_the_strftime_form() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, w) = one_warning(
        dir.path(),
        r#"{"name": "bad", "command": "true",
"stdout": "/var/log/sync/$(date +%Y-%m-%d).log"}"#,
    );
    assert_located(&w, dir.path(), 3, "stdout");
    let text = w.to_string();
    assert!(
        text.contains("no shell runs on the path, so its `$(date +...)` is read as a strftime pattern: `/var/log/sync/%Y-%m-%d.log`"),
        "{text}"
    );
    assert!(
        text.contains(r#"write `"stdout": "/var/log/sync/%Y-%m-%d.log"`"#),
        "{text}"
    );
    // It loads, and does what the manual means: a file a day.
    assert_eq!(
        spec.tasks[0].stdout,
        OutputTarget::File(PathBuf::from("/var/log/sync/%Y-%m-%d.log"))
    );
    // Quotes around the format, several commands, stderr too.
    let (spec, w) = one_warning(
        dir.path(),
        r#"{"name": "bad", "command": "true",
"stderr": "e-$(date '+%Y')-$(date +\"%H\").log"}"#,
    );
    assert!(
        w.to_string().contains(r#"write `"stderr": "e-%Y-%H.log"`"#),
        "{w}"
    );
    assert_eq!(
        spec.tasks[0].stderr,
        StderrTarget::File(dir.path().join("e-%Y-%H.log"))
    );
    // Another command: no form to show, the advice is general, the path stays as written.
    let (spec, w) = one_warning(
        dir.path(),
        r#"{"name": "bad", "command": "true",
"stdout": "$(hostname).log"}"#,
    );
    assert!(
        w.to_string()
            .contains("use strftime patterns such as `%Y-%m-%d`"),
        "{w}"
    );
    assert!(
        w.to_string()
            .contains("contains `$(`, but no shell runs on it"),
        "{w}"
    );
    assert_eq!(
        spec.tasks[0].stdout,
        OutputTarget::File(dir.path().join("$(hostname).log"))
    );
}

#[test]
fn dated_output_paths_are_filled_in_at_each_start() {
    let mut t = TaskSpec::with_defaults(
        "t",
        crate::spec::CommandSpec::Shell("x".into()),
        PathBuf::from("/w"),
    );
    t.stdout = OutputTarget::File(PathBuf::from("/logs/out-%Y-%m-%d.log"));
    t.stderr = StderrTarget::File(PathBuf::from("/logs/err-%H%M-100%%.log"));
    let at = chrono::Local.with_ymd_and_hms(2026, 3, 7, 9, 5, 0).unwrap();
    let ready = crate::spawn::prepare(&t, &at).unwrap();
    assert_eq!(
        ready.stdout,
        OutputTarget::File(PathBuf::from("/logs/out-2026-03-07.log"))
    );
    assert_eq!(
        ready.stderr,
        StderrTarget::File(PathBuf::from("/logs/err-0905-100%.log"))
    );
    let next_day = chrono::Local.with_ymd_and_hms(2026, 3, 8, 0, 0, 1).unwrap();
    assert_eq!(
        crate::spawn::prepare(&t, &next_day).unwrap().stdout,
        OutputTarget::File(PathBuf::from("/logs/out-2026-03-08.log"))
    );
    // Nothing to fill in: the task is borrowed as it is.
    let plain = TaskSpec::with_defaults(
        "p",
        crate::spec::CommandSpec::Shell("x".into()),
        "/w".into(),
    );
    assert!(matches!(
        crate::spawn::prepare(&plain, &at).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
}
