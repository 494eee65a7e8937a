//! The progress line of batch runs: live on a terminal (a pseudo-terminal made by
//! `script`), cleared before the final table; never in a redirected job log.

mod common;

use std::process::{Command, Stdio};

use common::{Sandbox, BIN};

const CLEAR: &str = "\r\x1b[K";

/// Four short one-shots, one at a time: a run of about a second and a half.
const BATCH: &str = r#"{"max_parallel": 1, "scripts": [
  {"name": "a", "command": "sleep 0.3; echo a done"},
  {"name": "b", "command": "sleep 0.3; echo b done"},
  {"name": "c", "command": "sleep 0.3; exit 1"},
  {"name": "d", "command": "sleep 0.3; echo d done"}
]}"#;

/// Runs `shell_cmd` under a pseudo-terminal (`script`), killed after 60 s whatever
/// happens; returns what appeared on the terminal and the exit code.
fn under_pty(sb: &Sandbox, shell_cmd: &str) -> (String, Option<i32>) {
    let out = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "60",
            "script",
            "-qefc",
            shell_cmd,
            "/dev/null",
        ])
        .current_dir(sb.path())
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

/// Every `[progress]` is drawn over a cleared line and never ends with a newline; the
/// last one is cleared before the final table.
fn assert_live(term: &str) {
    let draws: Vec<usize> = term.match_indices("[progress] ").map(|(i, _)| i).collect();
    assert!(
        !draws.is_empty(),
        "no progress line on the terminal:\n{term:?}"
    );
    let mut lines = Vec::new();
    for &i in &draws {
        assert!(
            term[..i].ends_with(CLEAR),
            "a progress line not drawn over a cleared line:\n{term:?}"
        );
        let rest = &term[i..];
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        // (The terminal turns each log newline into "\r\n", so look for the clear itself.)
        assert!(
            rest[end..].starts_with(CLEAR),
            "a progress line not cleared before what follows:\n{term:?}"
        );
        lines.push(&rest["[progress] ".len()..end]);
    }
    // `3/4 done, 1 running, 1 failed, 0s elapsed, about 0s left`: every count on every
    // draw, the failure counted while the batch still runs, and an estimate once a task
    // has finished (task a ends while b, c and d are still to run).
    for l in &lines {
        let counts: Vec<&str> = l.splitn(4, ", ").collect();
        assert!(
            counts.len() == 4
                && counts[0].ends_with("/4 done")
                && counts[1].ends_with(" running")
                && counts[2].ends_with(" failed")
                && counts[3].contains(" elapsed"),
            "a progress line without its counts: {l:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(", 1 failed, ")),
        "no live line counts the failed task: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| {
            l.split_once(" elapsed, about ").is_some_and(|(_, left)| {
                left.strip_suffix("s left")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
        }),
        "no live line with an estimate (`about Ns left`): {lines:?}"
    );
    let last = *draws.last().expect("a draw");
    let table = term.rfind("STATE").expect("the final table");
    assert!(table > last, "the table comes after the last progress line");
    assert!(
        term[last..table].contains(CLEAR),
        "the last progress line is cleared before the table:\n{term:?}"
    );
}

#[test]
fn live_line_on_a_terminal_disappears_into_the_final_table() {
    let sb = Sandbox::new();
    let cfg = sb.write("c.json", BATCH);
    let (term, code) = under_pty(&sb, &format!("{BIN} --once --config {}", cfg.display()));
    assert_eq!(code, Some(3), "c fails: exit 3\n{term}");
    assert_live(&term);
    // The job log lines themselves are intact lines on the terminal.
    assert!(term.contains("[a] | a done"), "{term:?}");
    assert!(term.contains("1 failed"), "{term:?}");
}

#[test]
fn a_redirected_log_never_gets_the_line() {
    let sb = Sandbox::new();
    let cfg = sb.write("c.json", BATCH);
    // No terminal at all: stdout to a file, stderr to a pipe.
    let log = std::fs::File::create(sb.file("out.log")).expect("create");
    let out = Command::new("timeout")
        .args(["-s", "KILL", "60", BIN, "--once", "--config"])
        .arg(&cfg)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .output()
        .expect("run bansuri");
    assert_eq!(out.status.code(), Some(3));
    let text = sb.read("out.log");
    let err = String::from_utf8_lossy(&out.stderr);
    for t in [&text[..], &err[..]] {
        assert!(
            !t.contains('\r') && !t.contains('\x1b') && !t.contains("[progress]"),
            "{t:?}"
        );
    }
    assert!(text.contains("[a] | a done"), "{text}");
    assert!(text.contains("STATE"), "{text}");

    // On a terminal with the log redirected by the shell: the line goes to the terminal
    // (stderr), the file stays clean.
    let (term, code) = under_pty(
        &sb,
        &format!("{BIN} --once --config {} > shell.log", cfg.display()),
    );
    assert_eq!(code, Some(3), "{term}");
    let shell_log = sb.read("shell.log");
    assert!(shell_log.contains("STATE"), "{shell_log}");
    assert!(!shell_log.contains('\r') && !shell_log.contains("[progress]"));
    assert!(term.contains(&format!("{CLEAR}[progress] ")), "{term:?}");

    // --log-file with --exit-when-done: the same.
    let (term, code) = under_pty(
        &sb,
        &format!(
            "{BIN} --exit-when-done --config {} --log-file job.log",
            cfg.display()
        ),
    );
    assert_eq!(code, Some(3), "{term}");
    let job_log = sb.read("job.log");
    assert!(job_log.contains("STATE"), "{job_log}");
    assert!(!job_log.contains('\r') && !job_log.contains("[progress]"));
    assert!(term.contains(&format!("{CLEAR}[progress] ")), "{term:?}");
    let last = term.rfind("[progress] ").expect("drawn");
    assert!(term[last..].contains(CLEAR), "cleared at the end: {term:?}");
}

#[test]
fn no_line_outside_batch_mode() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "c.json",
        r#"{"scripts": [{"name": "a", "command": "echo hi; exit 0"}]}"#,
    );
    // A long-running (non-batch) bansuri on a terminal: stopped by `timeout -s TERM`.
    let out = Command::new("timeout")
        .args(["-s", "KILL", "60", "script", "-qefc"])
        .arg(format!(
            "timeout -s TERM 2 {BIN} --config {}; true",
            cfg.display()
        ))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let term = String::from_utf8_lossy(&out.stdout);
    assert!(term.contains("[a] | hi"), "{term:?}");
    assert!(!term.contains("[progress]"), "{term:?}");
}
