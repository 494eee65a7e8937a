//! Python custom tasks (`"no-interface": true, "command": "module:Class"`) with the real
//! binary and python3: the manual's LoggingTask and HealthCheckTask (examples/python, as
//! the manual writes them) under timers, with a timeout and retries; the TaskConfig
//! attributes the manual's examples read; stop() on a timeout and at shutdown; a Python
//! error reported with its traceback, failing the run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{count_events, output_lines, Sandbox, BIN};

fn examples_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python")
}

/// JSON string literal.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

#[test]
fn the_manuals_logging_and_health_check_tasks_run_under_timers() {
    let sb = Sandbox::new();
    let wd = examples_python();
    let logging_out = sb.file("logging-task.log");
    let config = format!(
        r#"{{"watchdog_timeout": 5, "scripts": [
          {{"name": "custom-logging-task", "command": "myapp.tasks:LoggingTask", "no-interface": true,
            "timer": "1s", "timeout": "10s", "working-directory": {wd}, "stdout": {out},
            "env": {{"PYTHONDONTWRITEBYTECODE": "1"}}}},
          {{"name": "health-check", "command": "myapp.tasks:HealthCheckTask", "no-interface": true,
            "timer": "1s", "timeout": "20s", "on-fail": "restart", "times": 2,
            "working-directory": {wd}, "env": {{"PYTHONDONTWRITEBYTECODE": "1"}}}}
        ]}}"#,
        wd = q(&wd.display().to_string()),
        out = q(&logging_out.display().to_string()),
    );
    let mut b = sb.start(&config, &[]);
    let log = b.wait_log("two runs of each task", Duration::from_secs(30), |l| {
        count_events(l, "custom-logging-task", "Process finished with code 0") >= 2
            && count_events(l, "health-check", "Process finished with code 0") >= 2
    });
    let started = count_events(
        &log,
        "health-check",
        "Running Python task: myapp.tasks:HealthCheckTask",
    );
    let ended = count_events(&log, "health-check", "Process finished");
    assert!(started == ended || started == ended + 1, "{log}");
    // LoggingTask appended one line per run to config.logging.stdout_path, naming
    // config.identification.name.
    let written = std::fs::read_to_string(&logging_out).expect("LoggingTask's file");
    let lines: Vec<&str> = written
        .lines()
        .filter(|l| l.ends_with("] Task executed: custom-logging-task"))
        .collect();
    assert!(lines.len() >= 2, "{written}");
    // HealthCheckTask printed its metrics as one JSON line per run into the job log.
    let metrics: Vec<serde_json::Value> = output_lines(&log, "health-check")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(metrics.len() >= 2, "{log}");
    for m in &metrics {
        assert!(
            m["cpu"].as_str().is_some_and(|c| c.starts_with("cpu")),
            "{m}"
        );
        assert!(
            m["disk"].as_str().is_some_and(|d| d.contains("Filesystem")),
            "{m}"
        );
    }
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(Duration::from_secs(20)).expect("exits");
    assert_eq!(st.code(), Some(0));
}

/// A module in the sandbox with test classes written against the manual's API.
const FIXTURES: &str = r#"
import sys, threading, time
from bansuri.base.task_base import AbstractTask
from bansuri.base.config.task_config import TaskConfig
from bansuri.base.config.proc_id_config import IdentificationConfig

class Show(AbstractTask):
    def run(self) -> int:
        c = self.config
        print("name=" + c.identification.name)
        print("command=" + c.identification.command)
        print("workdir=" + str(c.identification.working_directory))
        print("stdout_path=" + str(c.logging.stdout_path))
        print("periodic=" + str(c.scheduling.is_periodic))
        print("cron=" + str(c.scheduling.schedule_cron))
        print("timeout=" + str(c.scheduling.timeout))
        print("times=" + str(c.failure_control.times))
        print("env=" + c.resources.env.get("GREETING", "-"))
        print("isinstance=" + str(isinstance(c, TaskConfig)))
        made = TaskConfig(identification=IdentificationConfig(name="t", command="x"))
        print("made=" + made.identification.name + "," + str(made.scheduling.is_periodic))
        return 0
    def stop(self) -> None:
        pass

class Boom(AbstractTask):
    def run(self) -> int:
        return self.helper()
    def helper(self):
        raise ValueError("boom from run")
    def stop(self) -> None:
        pass

class Slow(AbstractTask):
    def __init__(self, config):
        super().__init__(config)
        self.done = threading.Event()
    def run(self) -> int:
        print("slow started", flush=True)
        self.done.wait()
        print("run returns after stop", flush=True)
        return 5
    def stop(self) -> None:
        print("stop called", flush=True)
        self.done.set()

class Code(AbstractTask):
    def run(self) -> int:
        return 7
    def stop(self) -> None:
        pass

class NotATask:
    pass
"#;

fn fixture_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.file("pkg")).expect("mkdir");
    sb.write("pkg/__init__.py", "");
    sb.write("pkg/fixtures.py", FIXTURES);
    sb
}

fn task(name: &str, class: &str, extra: &str) -> String {
    format!(
        r#"{{"name": "{name}", "command": "pkg.fixtures:{class}", "no-interface": true{extra}}}"#
    )
}

#[test]
fn task_config_has_the_attributes_the_manual_uses() {
    let sb = fixture_sandbox();
    let cfg = format!(
        r#"{{"scripts": [{}]}}"#,
        task(
            "show",
            "Show",
            r#", "schedule-cron": "*/5 * * * *", "timeout": "90s", "on-fail": "restart", "times": 3, "stdout": "show.out", "env": {"GREETING": "hi"}"#
        )
    );
    let mut b = sb.start(&cfg, &["--once"]);
    let (st, err) = b.wait(Duration::from_secs(30)).expect("exits");
    let out = sb.read("show.out");
    assert_eq!(st.code(), Some(0), "{err}\n{}\n{out}", b.log());
    let wd = std::fs::canonicalize(sb.path()).expect("canon");
    for want in [
        "name=show".to_owned(),
        "command=pkg.fixtures:Show".to_owned(),
        format!("workdir={}", wd.display()),
        format!("stdout_path={}", wd.join("show.out").display()),
        "periodic=True".to_owned(),
        "cron=*/5 * * * *".to_owned(),
        "timeout=90s".to_owned(),
        "times=3".to_owned(),
        "env=hi".to_owned(),
        "isinstance=True".to_owned(),
        "made=t,False".to_owned(),
    ] {
        assert!(
            out.lines().any(|l| l == want),
            "missing `{want}` in:\n{out}"
        );
    }
}

#[test]
fn a_python_error_is_reported_with_its_traceback_and_fails_the_run() {
    let sb = fixture_sandbox();
    let cfg = format!(
        r#"{{"scripts": [{}, {}, {}, {}]}}"#,
        task(
            "boom",
            "Boom",
            r#", "on-fail": "restart", "times": 2, "restart-delay": "100ms""#
        ),
        r#"{"name": "missing", "command": "pkg.nowhere:Task", "no-interface": true}"#,
        task("not-a-task", "NotATask", ""),
        task("code", "Code", ""),
    );
    let mut b = sb.start(&cfg, &["--once"]);
    let (st, _) = b.wait(Duration::from_secs(30)).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "{log}");
    let boom = output_lines(&log, "boom");
    assert_eq!(
        boom.iter()
            .filter(|l| l.starts_with("Traceback (most recent call last):"))
            .count(),
        2,
        "one traceback per attempt:\n{log}"
    );
    assert!(boom.iter().any(|l| l.contains("in helper")), "{log}");
    assert!(boom.contains(&"ValueError: boom from run"), "{log}");
    assert!(
        boom.contains(&"bansuri: Boom.run() raised an exception"),
        "{log}"
    );
    assert_eq!(
        count_events(&log, "boom", "Process finished with code 1"),
        2,
        "{log}"
    );
    let missing = output_lines(&log, "missing");
    assert!(
        missing
            .iter()
            .any(|l| l.contains("ModuleNotFoundError: No module named 'pkg.nowhere'")),
        "{log}"
    );
    assert!(
        missing
            .iter()
            .any(|l| l.starts_with("bansuri: cannot import pkg.nowhere:Task")),
        "{log}"
    );
    assert!(
        output_lines(&log, "not-a-task").iter().any(|l| l.contains(
            "pkg.fixtures:NotATask is not a subclass of bansuri.base.task_base.AbstractTask"
        )),
        "{log}"
    );
    // run()'s return value is the exit code.
    assert_eq!(
        count_events(&log, "code", "Process finished with code 7"),
        1,
        "{log}"
    );
    for t in ["boom", "missing", "not-a-task", "code"] {
        assert!(
            log.lines()
                .any(|l| l.contains("[MASTER] ") && l.contains(t) && l.contains("FAILED")),
            "{t} FAILED in the table:\n{log}"
        );
    }
}

#[test]
fn stop_is_called_on_timeout_and_at_shutdown() {
    let sb = fixture_sandbox();
    let cfg = format!(
        r#"{{"watchdog_timeout": 10, "scripts": [{}, {}]}}"#,
        task("timed", "Slow", r#", "timeout": "5s""#),
        task("forever", "Slow", ""),
    );
    let mut b = sb.start(&cfg, &[]);
    let log = b.wait_log("the timeout", Duration::from_secs(30), |l| {
        count_events(l, "timed", "Process stopped: timed out after 5s") >= 1
            && output_lines(l, "forever").contains(&"slow started")
    });
    let timed = output_lines(&log, "timed");
    assert_eq!(
        timed,
        ["slow started", "stop called", "run returns after stop"],
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("[timed] ") && l.contains("Timed out after 5s")),
        "{log}"
    );
    // The run ended by itself after stop(), well before SIGKILL (10 s). (The timeout leaves
    // python3 time to start even on a busy machine: a stop signal before run() began ends
    // the runner at once, with nothing to stop.)
    assert_eq!(count_events(&log, "timed", "sending SIGKILL"), 0, "{log}");
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(Duration::from_secs(20)).expect("exits");
    assert_eq!(st.code(), Some(0));
    let log = b.log();
    assert_eq!(
        output_lines(&log, "forever"),
        ["slow started", "stop called", "run returns after stop"],
        "{log}"
    );
    assert!(
        // A run that bansuri stopped is recorded as stopped, whatever code it then exits with.
        count_events(&log, "forever", "Process stopped (shutdown)") == 1,
        "{log}"
    );
}

#[test]
fn validate_tells_a_python_class_from_a_bad_name() {
    let sb = Sandbox::new();
    let ok = sb.write(
        "ok.json",
        r#"{"scripts": [{"name": "p", "command": "myapp.tasks:LoggingTask", "no-interface": true, "timer": "1h"}]}"#,
    );
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&ok)
        .output()
        .expect("validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("(Python task `myapp.tasks:LoggingTask`)"),
        "{text}"
    );
    let bad = sb.write(
        "bad.json",
        r#"{"scripts": [{"name": "p", "command": "my-app:Task", "no-interface": true}]}"#,
    );
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no task named \"my-app:Task\" is registered, and it is not a Python class"),
        "{err}"
    );
    assert!(err.contains("bad.json:1:"), "{err}");
}

#[test]
fn a_missing_interpreter_fails_the_start_with_a_reason() {
    let sb = fixture_sandbox();
    let cfg = format!(
        r#"{{"scripts": [{}]}}"#,
        task(
            "nopy",
            "Code",
            r#", "env": {"BANSURI_PYTHON": "/nonexistent/python3"}"#
        )
    );
    let mut b = sb.start(&cfg, &["--once"]);
    let (st, _) = b.wait(Duration::from_secs(20)).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "{log}");
    assert!(
        log.contains("Python interpreter not found: `/nonexistent/python3`"),
        "{log}"
    );
}

/// The hot-reload manager's README (seed 003) imports the flat module:
/// `from task_base import AbstractTask, TaskConfig`. The runner provides it as an alias of
/// `bansuri.base.task_base` (the same classes), so its ShellTask example runs as printed.
#[test]
fn the_flat_task_base_module_of_the_hot_reload_readme_works() {
    let sb = Sandbox::new();
    sb.write(
        "shelltask.py",
        r#"
import subprocess
from task_base import AbstractTask, TaskConfig
import bansuri.base.task_base as canonical

class ShellTask(AbstractTask):
    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self._process = None

    def run(self) -> int:
        print(f"Starting task: {self.config.identification.name}")
        print(f"same classes: {AbstractTask is canonical.AbstractTask and TaskConfig is canonical.TaskConfig}")
        self._process = subprocess.Popen(
            "exit 4", shell=True, cwd=self.config.identification.working_directory
        )
        return self._process.wait()

    def stop(self) -> None:
        if self._process:
            self._process.terminate()
"#,
    );
    let mut b = sb.start(
        r#"{"scripts": [{"name": "shell", "command": "shelltask:ShellTask", "no-interface": true,
            "env": {"PYTHONDONTWRITEBYTECODE": "1"}}]}"#,
        &["--once"],
    );
    let (st, err) = b.wait(Duration::from_secs(30)).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "{err}\n{log}");
    let out = output_lines(&log, "shell");
    assert!(out.contains(&"Starting task: shell"), "{log}");
    assert!(out.contains(&"same classes: True"), "{log}");
    assert_eq!(
        count_events(&log, "shell", "Process finished with code 4"),
        1,
        "run()'s code is the exit code:\n{log}"
    );
}

/// A working directory with a `task_base.py` of its own (the hot-reload manager's file)
/// keeps it: that module is imported, not bansuri's alias, and a class deriving from its
/// AbstractTask runs.
#[test]
fn a_task_base_of_the_users_own_wins_over_the_alias() {
    let sb = Sandbox::new();
    sb.write(
        "task_base.py",
        "import abc\nMARK = 'theirs'\nclass TaskConfig: pass\nclass AbstractTask(abc.ABC):\n    def __init__(self, config):\n        self.config = config\n",
    );
    sb.write(
        "mine.py",
        "import task_base\nfrom task_base import AbstractTask\nclass T(AbstractTask):\n    def run(self):\n        print('task_base is', task_base.MARK)\n        return 0\n    def stop(self):\n        pass\n",
    );
    let mut b = sb.start(
        r#"{"scripts": [{"name": "own", "command": "mine:T", "no-interface": true,
            "env": {"PYTHONDONTWRITEBYTECODE": "1"}}]}"#,
        &["--once"],
    );
    let (st, err) = b.wait(Duration::from_secs(30)).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "{err}\n{log}");
    assert!(
        output_lines(&log, "own").contains(&"task_base is theirs"),
        "{log}"
    );
}
