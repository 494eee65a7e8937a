//! The state file, `bansuri status`, and the control commands, with the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bansuri::control::state::{StateDoc, TaskEntry};
use common::*;

const T: Duration = Duration::from_secs(20);

fn state_path(sb: &Sandbox) -> PathBuf {
    sb.file(".bansuri/config.json/state.json")
}

fn state(sb: &Sandbox) -> Option<StateDoc> {
    StateDoc::read(&state_path(sb)).ok()
}

/// Wait until the state file satisfies `pred`; panic with the file and the log otherwise.
fn wait_state(sb: &Sandbox, b: &Bansuri, what: &str, pred: impl Fn(&StateDoc) -> bool) -> StateDoc {
    wait_for(T, || state(sb).filter(|d| pred(d))).unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; state:\n{}\njob log:\n{}",
            sb.read(".bansuri/config.json/state.json"),
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

/// One rule for the job (src/host.rs): a blank `SLURM_JOB_ID` is outside SLURM, in the
/// state file and in `status` as everywhere else (the state used to name a job " ").
#[test]
fn a_blank_slurm_job_id_is_no_job_in_the_state() {
    let sb = Sandbox::new();
    let b = sb.start_with_env(
        STATUS_CFG,
        &[],
        &[
            ("SLURM_JOB_ID", " "),
            ("SLURM_JOBID", ""),
            ("SLURM_JOB_NAME", "demo"),
        ],
    );
    let d = wait_state(&sb, &b, "svc running", |d| {
        task(d, "svc").state == "RUNNING"
    });
    assert!(d.job.is_none(), "{:?}", d.job);
    let (code, out, err) = client(&sb.file("config.json"), &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("SLURM job"), "{out}");
}

#[test]
fn the_state_names_the_slurm_job_and_a_config_on_disk_that_is_not_in_effect() {
    let sb = Sandbox::new();
    let b = sb.start_with_env(
        STATUS_CFG,
        &[],
        &[("SLURM_JOB_ID", "77"), ("SLURM_JOB_NAME", "demo")],
    );
    let cfg = sb.file("config.json");
    let d = wait_state(&sb, &b, "svc running", |d| {
        task(d, "svc").state == "RUNNING"
    });
    let job = d.job.as_ref().expect("the SLURM job in the state");
    assert_eq!((job.id.as_str(), job.name.as_deref()), ("77", Some("demo")));
    assert!(
        d.config.invalid.is_none() && !d.config.on_disk_differs,
        "{d:?}"
    );
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("bansuri 0.1.0 running on ")
            && first.contains(&format!("(pid {}), SLURM job 77 (demo), up ", b.pid())),
        "{out}"
    );
    assert!(!out.contains("WARNING"), "{out}");

    // A broken config on disk: the old one stays in effect, and everything says so.
    sb.write("config.json", r#"{"scripts": [{"name": "svc"}]}"#);
    b.signal(libc::SIGHUP);
    let d = wait_state(&sb, &b, "the invalid config in the state", |d| {
        d.config.invalid.is_some()
    });
    assert!(d.config.on_disk_differs, "{d:?}");
    let svc = task(&d, "svc");
    assert_eq!(svc.state, "RUNNING", "the old config runs on");
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("WARNING: the config file on disk is NOT in effect: "))
        .unwrap_or_else(|| panic!("no warning in:\n{out}"));
    assert!(warning.contains("it has errors (since "), "{warning}");
    assert!(row(&out, "svc").contains("RUNNING"), "{out}");
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

/// The heartbeat goes on with no task process running, so a state from another node that
/// still says "running" but has not been written for 30 s is a bansuri killed without a
/// last write (SIGKILL: OOM, KillWait, a node failure): `status` says so and the control
/// commands are not sent.
#[test]
fn a_state_from_another_node_without_a_heartbeat_is_probably_not_running() {
    let sb = Sandbox::new();
    let mut b = sb.start(
        r#"{"scripts": [{"name": "ok", "command": "true"},
                        {"name": "hourly", "command": "true", "timer": "1h"}]}"#,
        &[],
    );
    let cfg = sb.file("config.json");
    let d = wait_state(&sb, &b, "ok done, hourly scheduled", |d| {
        task(d, "ok").state == "SUCCESS"
            && task(d, "hourly").state == "SCHEDULED"
            && d.tasks.iter().all(|t| t.pid.is_none())
    });
    // Nothing changes and nothing runs: only the heartbeat (10 s) rewrites the file.
    let beat = wait_state(&sb, &b, "a heartbeat with no process running", |n| {
        n.written_at > d.written_at
    });
    assert!(beat.tasks.iter().all(|t| t.pid.is_none()));
    assert_eq!(
        (task(&beat, "ok").runs, task(&beat, "hourly").runs),
        (task(&d, "ok").runs, task(&d, "hourly").runs),
        "nothing changed: it is the heartbeat"
    );
    b.signal(libc::SIGKILL);
    b.wait(T).expect("killed");

    // As a login node sees it: the state of a bansuri on node17, written long ago.
    let mut doc = state(&sb).expect("state");
    assert!(doc.bansuri.running, "killed: no last write");
    doc.bansuri.host = "node17".into();
    doc.written_at = chrono::Utc::now() - chrono::Duration::hours(2);
    std::fs::write(state_path(&sb), doc.to_json()).expect("write state");
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("bansuri is probably NOT running: its state was last written 2h")
            && first.ends_with(" ago on node17 (no heartbeat since)"),
        "{out}"
    );
    assert!(!out.contains("running on node17"), "{out}");
    let (code, out, err) = client(&cfg, &["stop", "ok"], &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(
            "no bansuri is running for this config, most likely: its state was last written 2h"
        ) && err.contains("the request was not sent"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(sb.file(".bansuri/config.json/requests"))
        .expect("inbox")
        .flatten()
        .collect();
    assert!(left.is_empty(), "no request left: {left:?}");

    // Written 5 s ago on node17: within the heartbeat, taken as running there.
    doc.written_at = chrono::Utc::now() - chrono::Duration::seconds(5);
    std::fs::write(state_path(&sb), doc.to_json()).expect("write state");
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("bansuri 0.1.0 running on node17 (pid "),
        "{out}"
    );
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

// ----- control commands ----------------------------------------------------------------

const CONTROL_CFG: &str = r#"{"scripts": [
    {"name": "svc", "command": "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done"},
    {"name": "once", "command": "echo done"},
    {"name": "hourly", "command": "true", "timer": "1h"}
]}"#;

fn svc_pid(sb: &Sandbox, b: &Bansuri, not: Option<u32>) -> u32 {
    let d = wait_state(sb, b, "svc running (new pid)", |d| {
        let t = task(d, "svc");
        t.state == "RUNNING" && t.pid.is_some() && t.pid != not
    });
    task(&d, "svc").pid.expect("pid")
}

/// start, stop, restart, reload and shutdown, through whatever `env` makes the client use
/// (`server_env`: bansuri's environment); `via` is what the job log must show ("socket" or
/// "request file"). Each request is answered within 2.5 s (the inbox is read at least once
/// a second).
fn control_round_trip(
    server_env: &[(&str, &str)],
    env: &[(&str, &str)],
    remove_socket: bool,
    via: &str,
) {
    let sb = Sandbox::new();
    let mut b = sb.start_with_env(CONTROL_CFG, &[], server_env);
    let cfg = sb.file("config.json");
    let client = |cfg: &Path, args: &[&str], env: &[(&str, &str)]| {
        let t0 = Instant::now();
        let r = client(cfg, args, env);
        let took = t0.elapsed();
        eprintln!("`{}` answered in {took:?}", args.join(" "));
        assert!(
            took < Duration::from_millis(2500),
            "`{}` answered in {took:?} (at most 2.5 s): {r:?}",
            args.join(" ")
        );
        r
    };
    let pid1 = svc_pid(&sb, &b, None);
    let inbox = if server_env.contains(&("BANSURI_INBOX_POLL_ONLY", "1")) {
        "(read every second: BANSURI_INBOX_POLL_ONLY=1)"
    } else {
        "(watched with inotify)"
    };
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Control socket: ") && l.ends_with(inbox)),
        "the inbox is {inbox}:\n{log}"
    );
    wait_state(&sb, &b, "once done", |d| task(d, "once").state == "SUCCESS");
    if remove_socket {
        std::fs::remove_file(sb.file(".bansuri/config.json/control.sock")).expect("remove socket");
    }

    let (code, out, err) = client(&cfg, &["stop", "svc"], env);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("stopping `svc`: SIGTERM"), "{out}");
    wait_state(&sb, &b, "svc stopped", |d| {
        task(d, "svc").state == "STOPPED"
    });
    assert!(!alive(pid1 as i32), "svc's process is gone");
    assert_eq!(count_events(&b.log(), "svc", "Executing"), 1);
    let (code, out, err) = client(&cfg, &["start", "svc", "once"], env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "started `svc`\nstarted `once`\n");
    let pid2 = svc_pid(&sb, &b, Some(pid1));
    wait_state(&sb, &b, "once ran again", |d| task(d, "once").runs == 2);

    let (code, out, err) = client(&cfg, &["restart", "svc"], env);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("restarting `svc`"), "{out}");
    let pid3 = svc_pid(&sb, &b, Some(pid2));
    assert_ne!(pid3, pid2);
    assert!(
        output_lines(&b.log(), "svc")
            .iter()
            .filter(|l| **l == "bye")
            .count()
            >= 2
    );

    // Replaced by a rename: applied at once (an in-place write would settle for 1 s).
    let tmp = sb.write(
        "config.json.new",
        &CONTROL_CFG.replace(
            "\n]}",
            ",\n    {\"name\": \"new\", \"command\": \"echo new\"}\n]}",
        ),
    );
    std::fs::rename(tmp, &cfg).expect("rename the new config");
    let (code, out, err) = client(&cfg, &["reload"], env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Config reloaded: 1 added (new), 0 removed, 0 changed, 3 kept\n"
    );
    wait_state(&sb, &b, "new ran", |d| {
        d.task("new").is_some_and(|t| t.state == "SUCCESS")
    });

    let (code, out, err) = client(&cfg, &["shutdown"], env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Shutdown started: 1 running process"),
        "{out}"
    );
    let (st, _) = b.wait(T).expect("bansuri exits after shutdown");
    assert_eq!(st.code(), Some(0));
    let log = b.log();
    for what in [
        "stop svc",
        "start svc once",
        "restart svc",
        "reload",
        "shutdown",
    ] {
        assert!(
            log.contains(&format!("({via}): {what}\n")),
            "`{what}` came through the {via}:\n{log}"
        );
    }
    let d = state(&sb).expect("state");
    assert!(!d.bansuri.running);
}

#[test]
fn control_over_the_socket() {
    control_round_trip(&[], &[], false, "socket");
}

#[test]
fn control_over_request_files_when_the_socket_is_unreachable() {
    // As from another node: the socket file is there (shared file system) but cannot be
    // reached, or it is gone. Both end up in the request inbox.
    control_round_trip(
        &[],
        &[("BANSURI_CONTROL_VIA", "files")],
        false,
        "request file",
    );
    control_round_trip(&[], &[], true, "request file");
}

#[test]
fn control_over_request_files_read_every_second_as_on_a_network_file_system() {
    // On NFS or Lustre inotify sees no file written on another node: the inbox is read
    // every second. The test's directory is local, so that path is forced.
    control_round_trip(
        &[("BANSURI_INBOX_POLL_ONLY", "1")],
        &[("BANSURI_CONTROL_VIA", "files")],
        false,
        "request file",
    );
}

#[test]
fn control_errors_are_clear() {
    let sb = Sandbox::new();
    let mut b = sb.start(CONTROL_CFG, &[]);
    let cfg = sb.file("config.json");
    svc_pid(&sb, &b, None);
    let (code, _, err) = client(&cfg, &["stop", "svcc"], &[]);
    assert_eq!(code, 2);
    assert_eq!(err, "error: no task named `svcc`; did you mean `svc`?\n");
    // A bansuri that does not answer (stopped): the client gives up, says so, and takes
    // its request back.
    b.signal(libc::SIGSTOP);
    let (code, _, err) = client(&cfg, &["stop", "svc"], &[("BANSURI_CONTROL_TIMEOUT", "1s")]);
    b.signal(libc::SIGCONT);
    assert_eq!(code, 1);
    assert!(err.contains("no answer from bansuri within 1s"), "{err}");
    let left: Vec<_> = std::fs::read_dir(sb.file(".bansuri/config.json/requests"))
        .expect("inbox")
        .flatten()
        .collect();
    assert!(left.is_empty(), "request taken back: {left:?}");
    assert_eq!(task(&state(&sb).expect("state"), "svc").state, "RUNNING");
    // A request file left behind long ago is answered, not carried out.
    sb.write(
        ".bansuri/config.json/requests/old-1.req",
        r#"{"id": "old-1", "cmd": "stop", "tasks": ["svc"], "sent_at": "2020-01-01T00:00:00Z"}"#,
    );
    let answer = wait_for(T, || {
        std::fs::read_to_string(sb.file(".bansuri/config.json/requests/old-1.resp")).ok()
    })
    .expect("an answer to the old request");
    assert!(answer.contains("expired: sent "), "{answer}");
    assert!(answer.contains("\"ok\": false"), "{answer}");
    assert_eq!(task(&state(&sb).expect("state"), "svc").state, "RUNNING");
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    let (code, _, err) = client(&cfg, &["start", "svc"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no bansuri is running for this config: the last one exited at"),
        "{err}"
    );
}

/// Connect to `socket` as uid/gid 65534 (nobody) from a child, send a status request and
/// return what came back. `keep_fs_root`: path lookups still as root (setfsuid), so the
/// connection is made and bansuri's SO_PEERCRED check is what refuses it; otherwise the
/// socket file's mode 0600 refuses the connect itself.
fn connect_as_nobody(socket: &Path, keep_fs_root: bool) -> std::io::Result<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let bytes = socket.as_os_str().as_bytes().to_vec();
    // SAFETY: a zeroed sockaddr_un is valid; the path fits (checked).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    assert!(
        bytes.len() < addr.sun_path.len(),
        "socket path too long for the test"
    );
    for (d, s) in addr.sun_path.iter_mut().zip(&bytes) {
        *d = *s as libc::c_char;
    }
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import socket,sys\ns=socket.socket(fileno=0)\ns.sendall(b'{\"id\":\"x\",\"cmd\":\"status\",\"sent_at\":\"2026-01-01T00:00:00Z\"}\\n')\nprint(s.recv(65536).decode(), end='')",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(65534, 65534, 65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let saved = if keep_fs_root { 0 } else { 65534 };
            if libc::setresuid(65534, 65534, saved) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if keep_fs_root {
                libc::setfsuid(0);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(fd, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Drop the saved root uid before running anything.
            if libc::setresuid(65534, 65534, 65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn the_socket_refuses_other_users() {
    // SAFETY: geteuid has no arguments.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the_socket_refuses_other_users needs root under CI=true (.ci/run runs the tests as root)");
        }
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let sb = Sandbox::new();
    let b = sb.start(CONTROL_CFG, &[]);
    svc_pid(&sb, &b, None);
    let socket = sb.file(".bansuri/config.json/control.sock");
    // Let others reach the directory, so only the socket itself keeps them out.
    use std::os::unix::fs::PermissionsExt;
    for d in [
        sb.path().to_path_buf(),
        sb.file(".bansuri"),
        sb.file(".bansuri/config.json"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let e = connect_as_nobody(&socket, false).expect_err("mode 0600 refuses the connect");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    // Connected anyway (file access as root, process credentials of nobody): bansuri
    // checks the peer's uid and refuses.
    let answer = connect_as_nobody(&socket, true).expect("connects");
    assert!(
        answer.contains("refused: this bansuri belongs to uid 0, you are uid 65534"),
        "{answer}"
    );
    assert!(
        !answer.contains("\"tasks\""),
        "no state given away: {answer}"
    );
    b.wait_log("the refusal logged", T, |l| {
        l.contains("Refused a control connection from uid 65534")
    });
}

// ----- the shell -------------------------------------------------------------------------

fn shell_with_input(cfg: &Path, input: &[&[u8]], tty: bool) -> (String, String) {
    use std::io::Write;
    let mut c = if tty {
        // `script` gives the shell a terminal: line editing and completion are live.
        let mut c = Command::new("script");
        c.args(["-qfec"])
            .arg(format!("{BIN} shell --config {}", cfg.display()))
            .arg("/dev/null");
        c
    } else {
        let mut c = Command::new(BIN);
        c.arg("shell").arg("--config").arg(cfg);
        c
    };
    let mut child = c
        .env_remove("BANSURI_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the shell");
    let mut stdin = child.stdin.take().expect("stdin");
    for chunk in input {
        stdin.write_all(chunk).expect("type");
        stdin.flush().expect("flush");
        // Let each line be answered before the next keys come (a person types slower).
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("shell ends");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shell_runs_commands_and_explains_mistakes() {
    let sb = Sandbox::new();
    let b = sb.start(CONTROL_CFG, &[]);
    let cfg = sb.file("config.json");
    let pid1 = svc_pid(&sb, &b, None);
    let (out, err) = shell_with_input(
        &cfg,
        &[
            b"status\n",
            b"stop svc\n",
            b"status svc\n",
            b"strat svc\n",
            b"start svx\n",
            b"start svc\n",
            b"restart svc\n",
            b"reload\n",
            b"help\n",
            b"exit\n",
        ],
        false,
    );
    assert!(out.contains("`help` lists the commands"), "{out}");
    let tables: Vec<&str> = out.split("bansuri 0.1.0 running on").skip(1).collect();
    assert_eq!(tables.len(), 2, "two status tables:\n{out}");
    assert!(row(tables[0], "svc").contains("RUNNING"), "{out}");
    assert!(row(tables[1], "svc").contains("STOPPED"), "{out}");
    assert!(
        !tables[1].contains("hourly"),
        "status TASK shows that task only:\n{out}"
    );
    assert!(out.contains("stopping `svc`: SIGTERM"), "{out}");
    assert!(out.contains("started `svc`"), "{out}");
    assert!(out.contains("restarting `svc`"), "{out}");
    assert!(
        out.contains("Config reloaded: 0 added, 0 removed, 0 changed, 3 kept\n"),
        "{out}"
    );
    assert!(out.contains("restart TASK..."), "help:\n{out}");
    assert!(
        err.contains("unknown command `strat`; did you mean `start`?"),
        "{err}"
    );
    assert!(
        err.contains("no task named `svx`; did you mean `svc`?"),
        "{err}"
    );
    // Started, started again, restarted: three processes.
    b.wait_log("the shell's restart and reload carried out", T, |l| {
        l.contains("(socket): restart svc\n")
            && l.contains("(socket): reload\n")
            && count_events(l, "svc", "Executing") == 3
    });
    svc_pid(&sb, &b, Some(pid1));
    let history = sb.read(".bansuri/config.json/shell_history");
    assert!(
        history.contains("stop svc") && history.contains("start svc"),
        "{history}"
    );
}

#[test]
fn shell_in_a_terminal_completes_task_names_and_edits_from_history() {
    let have_script = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_script {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "`script` (util-linux) is needed"
        );
        eprintln!("skipped: no `script` (util-linux) to give the shell a terminal");
        return;
    }
    let sb = Sandbox::new();
    let b = sb.start(CONTROL_CFG, &[]);
    let cfg = sb.file("config.json");
    svc_pid(&sb, &b, None);
    let (out, _) = shell_with_input(
        &cfg,
        &[
            // "sto<Tab>" completes the command, "sv<Tab>" the task name.
            b"sto\tsv\t\r",
            // Up: the last line again; Ctrl+A: to its start; 4 x Delete: "stop" gone;
            // type "start": "start svc".
            b"\x1b[A\x01\x1b[3~\x1b[3~\x1b[3~\x1b[3~start\r",
            b"exit\r",
        ],
        true,
    );
    let log = b.wait_log("both requests", T, |l| {
        l.contains("(socket): stop svc\n") && l.contains("(socket): start svc\n")
    });
    assert!(out.contains("stopping `svc`"), "{out}\n{log}");
    assert!(out.contains("started `svc`"), "{out}");
}

#[test]
fn status_watch_redraws_in_place() {
    let sb = Sandbox::new();
    let b = sb.start(STATUS_CFG, &[]);
    svc_pid_of(&sb, &b);
    let mut child = Command::new(BIN)
        .args(["status", "--watch", "--config"])
        .arg(sb.file("config.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("status --watch");
    std::thread::sleep(Duration::from_millis(2500));
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    let redraws = text.matches("\x1b[H\x1b[2J").count();
    assert_eq!(redraws, 2, "drawn at once and after 2 s:\n{text}");
    assert_eq!(text.matches("TASK ").count(), 2, "{text}");
}

fn svc_pid_of(sb: &Sandbox, b: &Bansuri) -> u32 {
    let d = wait_state(sb, b, "svc running", |d| {
        d.task("svc").is_some_and(|t| t.state == "RUNNING")
    });
    task(&d, "svc").pid.expect("pid")
}

/// `status NAME` of a `numprocs` program shows every instance `NAME:0`, `NAME:1`... (the
/// one-shot command and the shell's), and nothing else; a typo still names the nearest.
#[test]
fn status_of_a_numprocs_program_shows_all_its_instances() {
    let sb = Sandbox::new();
    let _b = sb.start(
        r#"{"scripts": [
            {"name": "w", "command": "exec sleep 300", "numprocs": 2},
            {"name": "svc", "command": "exec sleep 300"}
        ]}"#,
        &[],
    );
    let cfg = sb.file("config.json");
    wait_state(&sb, &_b, "w:0, w:1 and svc running", |d| {
        ["w:0", "w:1", "svc"]
            .iter()
            .all(|n| d.task(n).is_some_and(|t| t.state == "RUNNING"))
    });
    let (code, out, err) = client(&cfg, &["status", "w"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(row(&out, "w:0").contains("RUNNING"), "{out}");
    assert!(row(&out, "w:1").contains("RUNNING"), "{out}");
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().next() == Some("svc")),
        "only the instances of w:\n{out}"
    );
    let (code, out, _) = client(&cfg, &["status", "w:1", "--json"], &[]);
    assert_eq!(code, 0);
    let doc: StateDoc = serde_json::from_str(&out).expect("JSON");
    let names: Vec<&str> = doc.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["w:1"]);
    let (code, _, err) = client(&cfg, &["status", "ww"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no task named `ww`"), "{err}");
    let (out, err) = shell_with_input(&cfg, &[b"status w\n", b"exit\n"], false);
    assert!(row(&out, "w:0").contains("RUNNING"), "{out}\n{err}");
    assert!(row(&out, "w:1").contains("RUNNING"), "{out}\n{err}");
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().next() == Some("svc")),
        "{out}"
    );
}

/// `bansuri stop` with no task named stops bansuri gracefully, as the manual's "Reset All
/// Tasks" uses it, and says so; with names it stops those tasks only (as before).
#[test]
fn stop_without_a_task_name_stops_bansuri_gracefully() {
    let sb = Sandbox::new();
    let mut b = sb.start(
        r#"{"scripts": [
            {"name": "svc", "command": "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done"},
            {"name": "other", "command": "exec sleep 300"}
        ]}"#,
        &[],
    );
    let cfg = sb.file("config.json");
    svc_pid_of(&sb, &b);
    let (code, out, err) = client(&cfg, &["stop", "other"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    wait_state(&sb, &b, "other stopped, svc running", |d| {
        task(d, "other").state == "STOPPED" && task(d, "svc").state == "RUNNING"
    });
    let (code, out, err) = client(&cfg, &["stop"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("No task named: stopping bansuri (as `bansuri shutdown`)"),
        "{out}"
    );
    let (st, _) = b
        .wait(T)
        .unwrap_or_else(|| panic!("bansuri exits; log:\n{}", b.log()));
    assert_eq!(st.code(), Some(0), "log:\n{}", b.log());
    let log = b.log();
    assert!(log.contains("got TERM"), "svc got its stop signal:\n{log}");
    assert!(log.contains("a shutdown request"), "{log}");
}
