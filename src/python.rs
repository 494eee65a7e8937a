//! Python custom tasks: `{"no-interface": true, "command": "myapp.tasks:LoggingTask"}`.
//!
//! Owns what tells a Python class spec from a registered in-process task name
//! ([`class_spec`]), the runner bansuri carries in its binary (src/python/runner.py), and
//! the command line and environment that start it ([`command`]). A Python task is a real
//! process (python3 running the runner), started by `spawn` like any other, so timeouts,
//! retries, stop signals, process-group kills and output prefixing are the same. This
//! module decides nothing about when a task runs.

use std::ffi::OsString;
use std::process::Command;

use serde_json::json;

use crate::schedule::Schedule;
use crate::spec::{OutputTarget, StderrTarget, TaskSpec};

/// The runner's source (Python 3.8+).
pub const RUNNER: &str = include_str!("python/runner.py");

/// The program `python3 -c` runs: it takes the runner's text out of the environment (so
/// the task and its children do not inherit it) and executes it.
pub(crate) const BOOTSTRAP: &str =
    "import os; exec(compile(os.environ.pop('BANSURI_PYTHON_RUNNER'), '<bansuri-runner>', 'exec'))";

/// Environment variable naming the interpreter (in the task's `env` or bansuri's own
/// environment); default `python3` from PATH.
pub const INTERPRETER_VAR: &str = "BANSURI_PYTHON";

/// `module.path:ClassName` (or `module.path.ClassName`) as (module, class), when `s` has
/// that form: dotted Python identifiers, a module and a class.
pub fn class_spec(s: &str) -> Option<(&str, &str)> {
    let (module, class) = match s.split_once(':') {
        Some(mc) => mc,
        None => s.rsplit_once('.')?,
    };
    let ident = |p: &str| {
        let mut cs = p.chars();
        cs.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && cs.all(|c| c == '_' || c.is_alphanumeric())
    };
    (module.split('.').all(ident) && class.split('.').all(ident)).then_some((module, class))
}

/// The interpreter for `task`: `BANSURI_PYTHON` from its `env`, then from bansuri's
/// environment, else `python3`.
pub fn interpreter(task: &TaskSpec) -> OsString {
    interpreter_with(task, std::env::var_os(INTERPRETER_VAR))
}

/// [`interpreter`] with bansuri's own `BANSURI_PYTHON` given (`own`) rather than read.
pub fn interpreter_with(task: &TaskSpec, own: Option<OsString>) -> OsString {
    task.env
        .get(INTERPRETER_VAR)
        .map(OsString::from)
        .or_else(|| own.filter(|v| !v.is_empty()))
        .unwrap_or_else(|| OsString::from("python3"))
}

/// The settings the runner turns into a `TaskConfig` (JSON).
pub fn settings(task: &TaskSpec, spec: &str) -> String {
    let (timer, cron, timezone) = match &task.schedule {
        Schedule::Once => (None, None, None),
        Schedule::Timer(d) => (Some(crate::text::fmt_dur_as_config(*d)), None, None),
        Schedule::Cron(c) => (
            None,
            Some(c.expr().to_owned()),
            Some(match c.tz() {
                crate::schedule::CronTz::Local => "local",
                crate::schedule::CronTz::Utc => "UTC",
            }),
        ),
    };
    let stdout = match &task.stdout {
        OutputTarget::File(p) => Some(p.display().to_string()),
        OutputTarget::JobLog => None,
    };
    let stderr = match &task.stderr {
        StderrTarget::File(p) => Some(p.display().to_string()),
        StderrTarget::Combined | StderrTarget::JobLog => None,
    };
    json!({
        "command": spec,
        "name": task.name,
        "description": task.description,
        "user": task.user.as_ref().map(|u| u.name.clone()),
        "working_directory": task.working_directory.display().to_string(),
        "timer": timer,
        "schedule_cron": cron,
        "timezone": timezone,
        "timeout": task.timeout.map(crate::text::fmt_dur_as_config),
        "depends_on": task.depends_on,
        "times": task.times,
        "on_fail": match task.on_fail {
            crate::spec::OnFail::Stop => "stop",
            crate::spec::OnFail::Restart => "restart",
        },
        "success_codes": task.success_codes,
        "notify": match &task.notify {
            crate::spec::Notify::Off => "none".to_owned(),
            crate::spec::Notify::Command => "mail".to_owned(),
            crate::spec::Notify::Registered(n) | crate::spec::Notify::Python(n) => n.clone(),
        },
        "priority": task.priority,
        "environment_file": task.environment_file.as_ref().map(|p| p.display().to_string()),
        "env": task.env,
        "stdout": stdout,
        "stderr": stderr,
        "stop_signal": task.stop_signal.name(),
    })
    .to_string()
}

/// The command that runs class `spec` of `task`: `python3 -u -c BOOTSTRAP spec`, the
/// runner and the settings in the environment. The caller adds the working directory,
/// the task's environment and the rest, as for any process.
pub fn command(task: &TaskSpec, spec: &str) -> Command {
    let mut c = Command::new(interpreter(task));
    c.args(runner_args(spec)).envs(runner_env(task, spec));
    c
}

/// The interpreter's arguments that run class `spec`: `-u -c BOOTSTRAP spec`.
pub fn runner_args(spec: &str) -> [&str; 4] {
    // -u: unbuffered, so lines reach the job log as they are printed.
    ["-u", "-c", BOOTSTRAP, spec]
}

/// The runner and the task's settings, as the environment carries them to the runner.
pub fn runner_env(task: &TaskSpec, spec: &str) -> [(&'static str, String); 2] {
    [
        ("BANSURI_PYTHON_RUNNER", RUNNER.to_owned()),
        ("BANSURI_PYTHON_TASK", settings(task, spec)),
    ]
}

/// The command that runs the Python notifier class `spec` for `task` (`"notify":
/// "module:Class"`): the runner in notifier mode, with the notice (typed, JSON:
/// `Notice::to_json`) in its environment beside the task's settings, and the task's `env`
/// (the notifier's constructor parameters come from there). The caller adds the rest, as
/// for `notify_command`.
pub fn notifier_command(task: &TaskSpec, spec: &str, notice_json: &str) -> Command {
    let mut c = command(task, &task.command.display());
    c.env("BANSURI_PYTHON_NOTIFIER", spec)
        .env("BANSURI_PYTHON_NOTICE", notice_json)
        .envs(&task.env);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::CommandSpec;

    #[test]
    fn class_specs() {
        assert_eq!(
            class_spec("myapp.tasks:LoggingTask"),
            Some(("myapp.tasks", "LoggingTask"))
        );
        assert_eq!(
            class_spec("tasks:Outer.Inner"),
            Some(("tasks", "Outer.Inner"))
        );
        assert_eq!(
            class_spec("myapp.tasks.Backup"),
            Some(("myapp.tasks", "Backup"))
        );
        assert_eq!(class_spec("_m:_C1"), Some(("_m", "_C1")));
        for bad in [
            "disk-check",
            "hello",
            "myapp.tasks:",
            ":Class",
            "my-app:Task",
            "1mod:Task",
            "a..b:C",
            "a:b:C",
            "python3 run.py",
            "mod:Cls extra",
        ] {
            assert_eq!(class_spec(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_carry_the_manuals_attributes() {
        let mut t =
            TaskSpec::with_defaults("log", CommandSpec::Python("m:C".into()), "/srv/app".into());
        t.schedule = Schedule::Timer(std::time::Duration::from_secs(3600));
        t.timeout = Some(std::time::Duration::from_millis(1500));
        t.stdout = OutputTarget::File("/srv/app/out.log".into());
        let v: serde_json::Value = serde_json::from_str(&settings(&t, "m:C")).expect("json");
        assert_eq!(v["command"], "m:C");
        assert_eq!(v["name"], "log");
        assert_eq!(v["working_directory"], "/srv/app");
        assert_eq!(v["timer"], "3600s");
        assert_eq!(v["timeout"], "1500ms");
        assert_eq!(v["schedule_cron"], serde_json::Value::Null);
        assert_eq!(v["stdout"], "/srv/app/out.log");
        assert_eq!(v["stop_signal"], "TERM");
    }

    #[test]
    fn interpreter_from_the_tasks_env() {
        let mut t = TaskSpec::with_defaults("p", CommandSpec::Python("m:C".into()), "/".into());
        t.env
            .insert(INTERPRETER_VAR.into(), "/opt/venv/bin/python".into());
        assert_eq!(interpreter(&t), "/opt/venv/bin/python");
    }
}
