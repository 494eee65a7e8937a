//! The command line as a user meets it: validate, exit codes, --once, log formats and
//! levels, config lookup, and the shipped demo.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);

fn bansuri(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("BANSURI_CONFIG")
        .env_remove("BANSURI_LOG_LEVEL")
        .stdin(Stdio::null())
        .output()
        .expect("run bansuri");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_summarises_each_task() {
    let sb = Sandbox::new();
    sb.write(
        "scripts_config.json",
        r#"{"scripts": [
            {"name": "once", "command": "true"},
            {"name": "tick", "command": "true", "timer": "90s"},
            {"name": "nightly", "command": "true", "schedule-cron": "0 2 * * *"},
            "python3 monitor.py --arg 1"
        ]}"#,
    );
    for args in [&["validate"][..], &["--validate-config"][..]] {
        let (code, out, err) = bansuri(sb.path(), args);
        assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
        assert!(out.contains("valid, 4 tasks"), "{out}");
        assert!(
            out.contains("once") && out.contains("once at start-up"),
            "{out}"
        );
        assert!(
            out.contains("tick") && out.contains("every 1m 30s"),
            "{out}"
        );
        assert!(
            out.contains("nightly") && out.contains("next run 20"),
            "{out}"
        );
        assert!(
            out.contains("monitor"),
            "shorthand name from the script: {out}"
        );
    }
}

#[test]
fn validate_reports_every_error_and_exits_2() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "bad.json",
        r#"{"scripts": [
    {"name": "a", "command": "true", "working_dir": "/tmp"},
    {"name": "b", "command": "true", "timer": "-5"},
    {"name": "c", "command": "true", "on-fail": "retry"},
    {"name": "d", "command": "true", "stopsignal": "BOGUS"},
    {"name": "e", "command": "true", "times": 0}
]}"#,
    );
    let (code, out, err) = bansuri(sb.path(), &["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    for (line, task) in [(2, "a"), (3, "b"), (4, "c"), (5, "d"), (6, "e")] {
        assert!(
            err.contains(&format!("bad.json:{line}:")),
            "error for task {task} at line {line} missing:\n{err}"
        );
        assert!(
            err.contains(&format!("`{task}`")),
            "task {task} not named:\n{err}"
        );
    }
    assert!(err.contains("did you mean `working-directory`"), "{err}");
    // `run` refuses the same file with the same report and exit code.
    let (code, _, err2) = bansuri(sb.path(), &["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(err, err2);
}

#[test]
fn settings_without_effect_are_warnings_validate_exits_0_and_the_run_goes_on() {
    // Seed 003's `"times": 5` alone, the manual's `notify: "mail"` without a
    // `notify_command`, and supervisord's `startretries` with `starttime: 0`.
    let sb = Sandbox::new();
    sb.write(
        "scripts_config.json",
        r#"{"scripts": [
    {"name": "data-processor", "command": "true", "times": 5, "timeout": "10m"},
    {"name": "mailer", "command": "exit 1", "notify": "mail"},
    {"name": "svc", "command": "true", "startretries": 2, "starttime": 0}
]}"#,
    );
    let (code, out, err) = bansuri(sb.path(), &["validate"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("valid, 3 tasks, 3 warnings (below)"), "{out}");
    for want in [
        "warning: `times: 5` has no effect in task `data-processor`: without `on-fail: restart` a failed run is not retried",
        "scripts_config.json:2:60",
        "= help: add \"on-fail\": \"restart\", or remove `times`",
        "warning: `notify` has no effect in task `mailer`: \"mail\" runs the global `notify_command`, which is not set, so nothing is sent (the run goes on)",
        "scripts_config.json:3:55",
        "warning: `startretries: 2` has no effect in task `svc`: with `starttime: 0` no start can fail",
        "scripts_config.json:4:56",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The run: the same warnings in the job log, every task runs, nothing is sent.
    let (code, out, err) = bansuri(sb.path(), &["--once"]);
    assert_eq!(code, 3, "`mailer` fails; stdout:\n{out}\nstderr:\n{err}");
    for want in [
        "[MASTER] WARNING: Config: `times: 5` has no effect in task `data-processor`",
        "[MASTER] WARNING: Config: `notify` has no effect in task `mailer`",
        "[MASTER] WARNING: Config: `startretries: 2` has no effect in task `svc`",
        "[data-processor] Process finished with code 0",
        "[svc] Process finished with code 0",
        "[mailer] WARNING: Process finished with code 1",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("[data-processor] Restarting"), "{out}");
}

#[test]
fn config_lookup_order_and_none_found() {
    let sb = Sandbox::new();
    let (code, _, err) = bansuri(sb.path(), &["validate"]);
    assert_eq!(code, 2);
    for place in ["BANSURI_CONFIG", "scripts_config.json", "scripts.json"] {
        assert!(err.contains(place), "the error lists {place}:\n{err}");
    }
    sb.write("scripts.json", r#"{"scripts": ["echo second"]}"#);
    let (code, out, _) = bansuri(sb.path(), &["validate"]);
    assert_eq!(code, 0);
    assert!(out.contains("scripts.json"), "{out}");
    sb.write("scripts_config.json", r#"{"scripts": ["echo first"]}"#);
    let (_, out, _) = bansuri(sb.path(), &["validate"]);
    assert!(out.contains("scripts_config.json"), "{out}");
    sb.write("env.json", r#"{"scripts": ["echo env"]}"#);
    let out = Command::new(BIN)
        .arg("validate")
        .current_dir(sb.path())
        .env("BANSURI_CONFIG", "env.json")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("env.json"));
}

#[test]
fn toml_config_runs() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "tasks.toml",
        r#"
watchdog_timeout = "5s"

[[scripts]]
name = "hello"
command = ["echo", "hello from toml"]
"#,
    );
    let (code, out, err) = bansuri(
        sb.path(),
        &["--config", cfg.to_str().unwrap(), "--exit-when-done"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("] [hello] | hello from toml"), "{out}");
}

#[test]
fn once_runs_periodic_tasks_once_and_prints_a_table() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "c.json",
        r#"{"scripts": [
            {"name": "tick", "command": "echo tick", "timer": "1h"},
            {"name": "cronny", "command": "echo cron", "schedule-cron": "0 3 * * *"},
            {"name": "bad", "command": "exit 4"}
        ]}"#,
    );
    let t0 = Instant::now();
    let (code, out, _) = bansuri(sb.path(), &["--config", cfg.to_str().unwrap(), "--once"]);
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("] [tick] | tick") && out.contains("] [cronny] | cron"),
        "{out}"
    );
    assert!(
        out.contains("TASK") && out.contains("STATE"),
        "result table: {out}"
    );
    let row = out
        .lines()
        .find(|l| l.contains("[MASTER] bad "))
        .expect("row for bad");
    assert!(row.contains("FAILED") && row.contains("exit 4"), "{row}");
}

#[test]
fn json_log_format_and_levels() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "c.json",
        r#"{"log_format": "json", "scripts": [{"name": "j", "command": "echo hi"}]}"#,
    );
    let (code, out, _) = bansuri(
        sb.path(),
        &["--config", cfg.to_str().unwrap(), "--exit-when-done"],
    );
    assert_eq!(code, 0);
    let mut saw_line = false;
    for l in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
        if v["kind"] == "stdout" && v["task"] == "j" && v["line"] == "hi" {
            saw_line = true;
        }
    }
    assert!(saw_line, "{out}");

    // -q keeps child output but drops INFO lifecycle lines; -v adds DEBUG lines.
    let cfg = sb.write(
        "t.json",
        r#"{"scripts": [{"name": "q", "command": "echo quiet"}]}"#,
    );
    let (_, out, _) = bansuri(
        sb.path(),
        &["--config", cfg.to_str().unwrap(), "--exit-when-done", "-q"],
    );
    assert!(out.contains("] [q] | quiet"), "{out}");
    assert!(!out.contains("Process finished"), "{out}");
    let (_, out, _) = bansuri(
        sb.path(),
        &["--config", cfg.to_str().unwrap(), "--exit-when-done", "-v"],
    );
    assert!(out.contains("DEBUG: "), "{out}");
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "--exit-when-done"])
        .env("BANSURI_LOG_LEVEL", "WARNING")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("] [q] | quiet") && !text.contains("Process finished"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap()])
        .env("BANSURI_LOG_LEVEL", "LOUD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn log_file_expands_job_id() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "c.json",
        r#"{"log_file": "master_{job_id}.log", "scripts": ["echo hi"]}"#,
    );
    // One run with `SLURM_JOB_ID` set to `job` (`None`: unset).
    let run = |job: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["--config", cfg.to_str().unwrap(), "--exit-when-done"])
            .current_dir(sb.path())
            .env_remove("SLURM_JOBID");
        match job {
            Some(id) => cmd.env("SLURM_JOB_ID", id),
            None => cmd.env_remove("SLURM_JOB_ID"),
        };
        assert_eq!(cmd.output().unwrap().status.code(), Some(0));
    };
    run(None);
    assert!(
        sb.read("master_local.log").contains("] [echo] | hi"),
        "{}",
        sb.read("master_local.log")
    );
    run(Some("4242"));
    assert!(sb.read("master_4242.log").contains("SLURM job 4242"));
    // One rule for the job id (src/host.rs): a blank `SLURM_JOB_ID` is outside SLURM, so
    // `{job_id}` is `local` (it used to expand to nothing while notices said `local`).
    run(Some(" "));
    let local = sb.read("master_local.log");
    assert_eq!(local.matches("] [echo] | hi").count(), 2, "{local}");
}

#[test]
fn log_file_job_id_of_a_blank_slurm_job_id_is_local() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "c.json",
        r#"{"log_file": "master_{job_id}.log", "scripts": ["echo hi"]}"#,
    );
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "--exit-when-done"])
        .current_dir(sb.path())
        .env("SLURM_JOB_ID", " ")
        .env_remove("SLURM_JOBID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        sb.read("master_local.log").contains("] [echo] | hi"),
        "{:?}",
        std::fs::read_dir(sb.path())
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
}

#[test]
fn unwritable_log_file_is_a_runtime_error() {
    let sb = Sandbox::new();
    let cfg = sb.write("c.json", r#"{"scripts": ["echo hi"]}"#);
    let (code, _, err) = bansuri(
        sb.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--log-file",
            "/nonexistent-dir/x.log",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent-dir/x.log"), "{err}");
}

/// The shipped demo runs as is and stops within a second on Ctrl+C (its children obey
/// SIGTERM).
#[test]
fn demo_runs_and_stops_on_ctrl_c_within_a_second() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(BIN)
        .current_dir(root)
        .args(["--log-file", log.path().to_str().unwrap()])
        .env_remove("BANSURI_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = Bansuri {
        child: Some(child),
        log: log.path().to_path_buf(),
    };
    // Every monitor has printed, the one-shot has finished.
    b.wait_log("the demo's monitors", T, |l| {
        ["temperature", "system", "humidity_monitor", "disk-report"]
            .iter()
            .all(|t| !output_lines(l, t).is_empty())
            && l.contains("[setup] Process finished with code 0")
    });
    let t0 = Instant::now();
    b.signal(libc::SIGINT);
    let (st, err) = b.wait(Duration::from_secs(5)).expect("demo exits");
    let took = t0.elapsed();
    let text = b.log();
    assert!(
        took < Duration::from_secs(1),
        "Ctrl+C took {took:?}; log:\n{text}"
    );
    assert_eq!(st.code(), Some(0), "{err}\n{text}");
    assert!(text.contains("Shutdown complete"), "{text}");
    assert!(!text.contains("WARNING"), "the demo runs clean:\n{text}");
}

/// The demo's cron task runs only at the start of a minute, so the demo test above may never
/// see it: run the `heartbeat` entry of the shipped scripts_config.json, exactly as written
/// there (only its working directory made absolute, as the config file now lives elsewhere),
/// with `--once`, the way a user smoke-tests a config on the login node.
#[test]
fn demo_heartbeat_task_runs_as_shipped() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("scripts_config.json")).unwrap())
            .unwrap();
    let mut task = shipped["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "heartbeat")
        .expect("the demo has a heartbeat task")
        .clone();
    assert_eq!(task["schedule-cron"], "* * * * *", "{task}");
    let dir = root.join(task["working-directory"].as_str().unwrap());
    task["working-directory"] = dir.to_str().unwrap().into();
    let sb = Sandbox::new();
    let cfg = sb.write(
        "heartbeat.json",
        &serde_json::json!({ "scripts": [task] }).to_string(),
    );
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "--once"])
        .env_remove("BANSURI_CONFIG")
        .env_remove("BANSURI_LOG_LEVEL")
        .env_remove("SLURM_JOB_ID")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines = output_lines(&text, "heartbeat");
    assert!(
        lines.len() == 1
            && lines[0].starts_with("heartbeat from ")
            && lines[0].contains("(not under SLURM); node up "),
        "one heartbeat line expected:\n{text}"
    );
    assert!(
        text.contains("[heartbeat] Process finished with code 0"),
        "{text}"
    );
}

/// Usage errors are clap's: exit 2, with the offending flag named on stderr and a pointer
/// to `--help`; nothing is started.
#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let sb = Sandbox::new();
    sb.write("scripts_config.json", r#"{"scripts": ["touch started"]}"#);
    for (args, says) in [
        (&["--bogus"][..], "unexpected argument '--bogus'"),
        (
            &["--once", "--exit-when-done"][..],
            "'--once' cannot be used with '--exit-when-done'",
        ),
        (&["-v", "-q"][..], "cannot be used with '--quiet'"),
        (&["validate", "--once"][..], "unexpected argument '--once'"),
    ] {
        let (code, out, err) = bansuri(sb.path(), args);
        assert_eq!(code, 2, "{args:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains(says), "{args:?}: stderr:\n{err}");
        assert!(err.contains("--help"), "{args:?}: stderr:\n{err}");
    }
    assert!(!sb.file("started").exists(), "a usage error started a task");
}

/// Durations on the command line and in the environment go through the config's parser
/// and bounds: a huge or malformed one is a usage error (exit 2) naming the problem, never
/// a panic (exit 101); nothing is started.
#[test]
fn huge_durations_on_the_command_line_are_usage_errors() {
    let sb = Sandbox::new();
    let cfg = sb.write("scripts_config.json", r#"{"scripts": ["touch started"]}"#);
    for args in [
        &["--watchdog", "1e30"][..],
        &["--check-interval", "1e30"][..],
        &["run", "--watchdog", "200years"][..],
        &["--check-interval", "inf"][..],
    ] {
        let (code, out, err) = bansuri(sb.path(), args);
        assert_eq!(code, 2, "{args:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(!err.contains("panicked"), "{args:?}: stderr:\n{err}");
        assert!(
            err.contains("is too long a duration") || err.contains("finite"),
            "{args:?}: stderr:\n{err}"
        );
    }
    let (code, _, err) = bansuri(sb.path(), &["--check-interval", "1ms"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--check-interval must be at least 10ms"),
        "{err}"
    );
    let (code, _, err) = bansuri(sb.path(), &["--watchdog", "1e30"]);
    assert_eq!(code, 2);
    assert!(err.contains("the maximum is 100 years"), "{err}");
    for v in ["1e30", "soon", "-3s"] {
        let (code, out, err) = client(&cfg, &["stop", "x"], &[("BANSURI_CONTROL_TIMEOUT", v)]);
        assert_eq!(
            code, 2,
            "BANSURI_CONTROL_TIMEOUT={v}: stdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            err.contains("BANSURI_CONTROL_TIMEOUT") && !err.contains("panicked"),
            "BANSURI_CONTROL_TIMEOUT={v}: stderr:\n{err}"
        );
    }
    assert!(!sb.file("started").exists(), "a usage error started a task");
}

/// Every print path of the command line with its reader gone (`bansuri validate 2>&1 |
/// head -1`, both stdout and stderr a pipe with no reader): no panic (exit 101), no
/// backtrace, the same exit code as with the pipe open.
#[test]
fn closed_stdout_and_stderr_end_quietly_with_the_usual_exit_code() {
    let sb = Sandbox::new();
    sb.write(
        "good.json",
        r#"{"scripts": [{"name": "a", "command": "echo one; echo two", "timer": "5s"}, "true"]}"#,
    );
    sb.write(
        "bad.json",
        r#"{"scripts": [{"name": "a", "command": "x", "timer": "soon"}]}"#,
    );
    let run = |args: &[&str], closed: bool| -> i32 {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(sb.path())
            .env_remove("BANSURI_CONFIG")
            .env_remove("BANSURI_LOG_LEVEL")
            .stdin(Stdio::null());
        if closed {
            let (reader, writer) = nix::unistd::pipe().expect("pipe");
            drop(reader);
            c.stdout(writer.try_clone().expect("dup")).stderr(writer);
        } else {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let mut child = c.spawn().expect("run bansuri");
        let status = wait_for(T, || child.try_wait().expect("wait"));
        if status.is_none() {
            let _ = child.kill();
        }
        let status = status.unwrap_or_else(|| child.wait().expect("wait"));
        status.code().unwrap_or(-1)
    };
    for args in [
        &["validate", "-c", "good.json"][..],
        &["validate", "-c", "bad.json"][..],
        &["validate", "-c", "missing.json"][..],
        &["status", "-c", "good.json"][..],
        &["stop", "-c", "good.json", "a"][..],
        &["schema"][..],
        &["completions", "bash"][..],
        &["man"][..],
        &["--help"][..],
        &["-c", "good.json", "--once"][..],
    ] {
        let open = run(args, false);
        let closed = run(args, true);
        assert_ne!(closed, 101, "{args:?} panicked on a closed pipe");
        assert_eq!(closed, open, "{args:?}: exit code with a closed pipe");
    }
    // `status --watch` (a state file exists after `--once`) redraws until nobody reads.
    assert_eq!(run(&["status", "--watch", "-c", "good.json"], true), 0);
}

/// Issue 17: `validate` shows each request and what bansuri found, and refuses a request
/// larger than a declared `resources` block (outside a SLURM job, deterministically).
#[test]
fn validate_shows_requests_and_checks_them_against_the_resources() {
    let sb = Sandbox::new();
    let validate = |cfg: &str| {
        let out = Command::new(BIN)
            .args(["validate", "-c", cfg])
            .current_dir(sb.path())
            .env_remove("BANSURI_CONFIG")
            .env_remove("SLURM_JOB_ID")
            .env_remove("SLURM_JOBID")
            .stdin(Stdio::null())
            .output()
            .expect("run bansuri");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let resources = r#""resources": {"cpus": 1, "gpus": ["0", "1"], "mem": "1G"}"#;
    sb.write(
        "good.json",
        &format!(
            r#"{{{resources}, "requeue_on_end": true, "scripts": [
                {{"name": "train", "command": "true", "gpus": 2, "mem": "512M"}},
                {{"name": "mon", "command": "true"}}
            ]}}"#
        ),
    );
    let (code, out, err) = validate("good.json");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("needs 1 CPU, 2 GPUs, 512 MiB"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("mon") && !l.contains("needs")),
        "{out}"
    );
    assert!(
        out.contains("resources: bansuri found 1 CPU (")
            && out.contains("2 GPUs (0,1 from resources.gpus), 1 GiB (resources.mem)"),
        "{out}"
    );
    assert!(
        out.contains("warning: `requeue_on_end` has no effect outside a SLURM job"),
        "{out}"
    );
    sb.write(
        "bad.json",
        &format!(
            r#"{{{resources}, "scripts": [{{"name": "big", "command": "true", "gpus": 4}}]}}"#
        ),
    );
    let (code, out, err) = validate("bad.json");
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("`gpus` in task `big` asks for more than there is: 4 GPUs (there are 2)"),
        "{err}"
    );
    assert!(!out.contains("valid"), "{out}");
    // More CPUs declared than this machine has: outside a job, a warning (the job's
    // node may have them).
    sb.write(
        "many.json",
        r#"{"resources": {"cpus": 100000}, "scripts": [{"name": "t", "command": "true", "cpus": 2}]}"#,
    );
    let (code, out, err) = validate("many.json");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(
            "warning: cannot tell what the allocation has: resources.cpus asks for 100000 CPUs"
        ),
        "{out}"
    );
    // A config without requests reads nothing and says nothing of resources.
    sb.write("plain.json", r#"{"scripts": ["true"]}"#);
    let (code, out, _) = validate("plain.json");
    assert_eq!(code, 0);
    assert!(!out.contains("resources"), "{out}");
}
