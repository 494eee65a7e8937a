//! The state file, `bansuri status`, and the control commands, with the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bansuri::control::state::{StateDoc, TaskEntry};
use common::*;

const T: Duration = Duration::from_secs(20);

/// Run the client: (exit code, stdout, stderr).
fn client(cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .env_remove("BANSURI_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run bansuri client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state_path(sb: &Sandbox) -> PathBuf {
    sb.file(".bansuri/state.json")
}

fn state(sb: &Sandbox) -> Option<StateDoc> {
    StateDoc::read(&state_path(sb)).ok()
}

/// Wait until the state file satisfies `pred`; panic with the file and the log otherwise.
fn wait_state(sb: &Sandbox, b: &Bansuri, what: &str, pred: impl Fn(&StateDoc) -> bool) -> StateDoc {
    wait_for(T, || state(sb).filter(|d| pred(d))).unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; state:\n{}\njob log:\n{}",
            sb.read(".bansuri/state.json"),
            b.log()
        )
    })
}

fn task<'a>(d: &'a StateDoc, name: &str) -> &'a TaskEntry {
    d.task(name)
        .unwrap_or_else(|| panic!("no task {name} in the state"))
}

fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"))
}

const STATUS_CFG: &str = r#"{"scripts": [
    {"name": "svc", "command": "exec sleep 300"},
    {"name": "ok", "command": "true"},
    {"name": "bad", "command": "exit 3"},
    {"name": "hourly", "command": "true", "timer": "1h"}
]}"#;

#[test]
fn status_table_and_json_while_running_and_after_exit() {
    let sb = Sandbox::new();
    let mut b = sb.start(STATUS_CFG, &[]);
    let cfg = sb.file("config.json");
    let d = wait_state(&sb, &b, "svc running, ok and bad done", |d| {
        d.task("svc").is_some_and(|t| t.state == "RUNNING")
            && d.task("ok").is_some_and(|t| t.state == "SUCCESS")
            && d.task("bad").is_some_and(|t| t.state == "FAILED")
            && d.task("hourly").is_some_and(|t| t.state == "SCHEDULED")
    });
    let svc_pid = task(&d, "svc").pid.expect("svc pid");
    assert_eq!(task(&d, "svc").pgid, Some(svc_pid));
    assert!(task(&d, "svc").pid_start.is_some());
    assert_eq!(d.bansuri.pid, b.pid() as u32);
    assert!(d.bansuri.running);

    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bansuri 0.1.0 running on "), "{out}");
    assert!(out.contains(&format!("(pid {})", b.pid())), "{out}");
    let header = row(&out, "TASK");
    for h in [
        "STATE",
        "PID",
        "UPTIME/NEXT",
        "RUNS",
        "FAILS",
        "LAST EXIT",
        "CPU%",
        "RSS",
    ] {
        assert!(header.contains(h), "{h} in {header}");
    }
    let svc = row(&out, "svc");
    assert!(
        svc.contains("RUNNING") && svc.contains(&svc_pid.to_string()) && svc.contains("up "),
        "{svc}"
    );
    assert!(row(&out, "ok").contains("SUCCESS"), "{out}");
    let bad = row(&out, "bad");
    assert!(bad.contains("FAILED") && bad.contains("exit 3"), "{bad}");
    assert!(row(&out, "hourly").contains("next "), "{out}");
    assert!(
        out.contains("4 tasks: 1 RUNNING, 1 SUCCESS, 1 FAILED, 1 SCHEDULED"),
        "{out}"
    );

    let (code, json, err) = client(&cfg, &["status", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let doc = StateDoc::parse(&json).expect("status --json is the state document");
    assert_eq!(
        task(&doc, "bad").last_exit.as_ref().and_then(|e| e.code),
        Some(3)
    );
    assert_eq!(task(&doc, "bad").failures, 1);
    assert_eq!(task(&doc, "svc").pid, Some(svc_pid));

    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("bansuri exits");
    assert_eq!(st.code(), Some(0));
    let (code, out, _) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("bansuri is NOT running: it exited at "),
        "{out}"
    );
    assert!(out.contains("with code 0"), "{out}");
    assert!(row(&out, "svc").contains("STOPPED"), "{out}");
    let (_, json, _) = client(&cfg, &["status", "--json"], &[]);
    let doc = StateDoc::parse(&json).expect("json");
    assert!(!doc.bansuri.running);
    assert_eq!(doc.bansuri.exit_code, Some(0));
    assert!(doc.bansuri.ended_at.is_some());
    assert_eq!(task(&doc, "svc").pid, None);
}

#[test]
fn status_of_a_killed_bansuri_says_so_and_errors_are_clear() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "config.json",
        r#"{"scripts": [{"name": "svc", "command": "exec sleep 300"}]}"#,
    );
    let (code, _, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no bansuri has run with") && err.contains("there is no state file"),
        "{err}"
    );

    let mut b = sb.start(
        r#"{"scripts": [{"name": "svc", "command": "exec sleep 300"}]}"#,
        &[],
    );
    wait_state(&sb, &b, "svc running", |d| {
        task(d, "svc").state == "RUNNING"
    });
    b.signal(libc::SIGKILL);
    b.wait(T).expect("killed");
    let (code, out, _) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "bansuri is NOT running: its process (pid {}) on ",
            b_pid(&sb)
        )),
        "{out}"
    );
    assert!(out.contains("is gone: it was killed"), "{out}");
}

fn b_pid(sb: &Sandbox) -> u32 {
    state(sb).expect("state").bansuri.pid
}

#[test]
fn state_file_is_written_on_changes_and_a_second_bansuri_is_refused() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "svc", "command": "exec sleep 300"},
                              {"name": "t", "command": "true", "timer": "300ms"}]}"#;
    let b = sb.start(cfg, &[]);
    let d = wait_state(&sb, &b, "t ran 3 times", |d| task(d, "t").runs >= 3);
    assert!(d.tasks.iter().all(|t| !t.settings_hash.is_empty()));
    // A second bansuri on the same state directory would fight over it.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(sb.file("config.json"))
        .arg("--log-file")
        .arg(sb.file("log2.txt"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "another bansuri (pid {}) is running with the state directory",
            b.pid()
        )),
        "{err}"
    );
}
