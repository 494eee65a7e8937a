//! `--resume` and stale process groups: a bansuri starting after a previous one (that
//! finished, or was killed) with the same state directory.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use bansuri::control::state::{StateDoc, TaskEntry};
use common::*;

const T: Duration = Duration::from_secs(20);

fn lines(sb: &Sandbox, f: &str) -> Vec<String> {
    sb.read(f).lines().map(str::to_owned).collect()
}

fn cfg(chg: &str) -> String {
    format!(
        r#"{{"scripts": [
        {{"name": "ok", "command": "echo ran >> ok.txt"}},
        {{"name": "bad", "command": "echo ran >> bad.txt; exit 1"}},
        {{"name": "chg", "command": "echo {chg} >> chg.txt"}},
        {{"name": "tick", "command": "echo tick >> tick.txt; sleep 0.2", "timer": "1h"}}
    ]}}"#
    )
}

fn run_to_end(sb: &Sandbox, config: &str, args: &[&str]) -> (i32, String) {
    let mut b = sb.start(config, args);
    let (st, _) = b
        .wait(T)
        .unwrap_or_else(|| panic!("bansuri did not finish; log:\n{}", b.log()));
    (st.code().unwrap_or(-1), b.log())
}

#[test]
fn resume_skips_a_succeeded_one_shot_and_reruns_a_failed_and_a_changed_one() {
    let sb = Sandbox::new();
    // The timer task keeps --exit-when-done from ending: stop with a shutdown instead.
    let cfg1 = cfg("v1").replace(
        ",\n        {\"name\": \"tick\", \"command\": \"echo tick >> tick.txt; sleep 0.2\", \"timer\": \"1h\"}",
        "",
    );
    let (code, _) = run_to_end(&sb, &cfg1, &["--exit-when-done"]);
    assert_eq!(code, 3, "bad failed");
    assert_eq!(lines(&sb, "ok.txt"), ["ran"]);

    let cfg2 = cfg("v2").replace(
        ",\n        {\"name\": \"tick\", \"command\": \"echo tick >> tick.txt; sleep 0.2\", \"timer\": \"1h\"}",
        "",
    );
    let (code, log) = run_to_end(&sb, &cfg2, &["--exit-when-done", "--resume"]);
    assert_eq!(code, 3, "{log}");
    assert_eq!(
        lines(&sb, "ok.txt"),
        ["ran"],
        "succeeded: not run again\n{log}"
    );
    assert_eq!(lines(&sb, "bad.txt"), ["ran", "ran"], "failed: run again");
    assert_eq!(lines(&sb, "chg.txt"), ["v1", "v2"], "changed: run again");
    assert!(
        log.contains("[ok] Succeeded before with the same settings: not run again (--resume)"),
        "{log}"
    );
    assert!(
        log.contains("--resume: 1 one-shot task succeeded before with the same settings and will not run again (ok)"),
        "{log}"
    );
    let d = StateDoc::read(&sb.file(".bansuri/config.json/state.json")).expect("state");
    assert_eq!(d.task("ok").map(|t| t.state.as_str()), Some("SUCCESS"));
    assert!(d.settings.resume);

    // Again: now the changed one has succeeded with its new settings too.
    let (_, log) = run_to_end(&sb, &cfg2, &["--exit-when-done", "--resume"]);
    assert_eq!(lines(&sb, "ok.txt"), ["ran"]);
    assert_eq!(lines(&sb, "chg.txt"), ["v1", "v2"], "{log}");
    assert_eq!(lines(&sb, "bad.txt").len(), 3);

    // Without --resume everything runs.
    run_to_end(&sb, &cfg2, &["--exit-when-done"]);
    assert_eq!(lines(&sb, "ok.txt"), ["ran", "ran"]);

    // A periodic task is never skipped.
    let mut b = sb.start(&cfg("v2"), &["--resume"]);
    b.wait_log("tick ran", T, |l| l.contains("[tick] Process finished"));
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    assert_eq!(lines(&sb, "tick.txt").len(), 1);
}

#[test]
fn a_stale_group_of_a_killed_bansuri_is_ended_by_the_next_start() {
    let sb = Sandbox::new();
    let config = r#"{"scripts": [
        {"name": "svc", "command": "sleep 300 & echo $! > child.pid; wait"},
        {"name": "quiet", "command": "true"}
    ]}"#;
    let mut b = sb.start(config, &[]);
    let child: i32 = wait_for(T, || sb.read("child.pid").trim().parse().ok())
        .unwrap_or_else(|| panic!("no child pid; log:\n{}", b.log()));
    let state = sb.file(".bansuri/config.json/state.json");
    let pgid = wait_for(T, || {
        StateDoc::read(&state)
            .ok()
            .and_then(|d| d.task("svc").and_then(|t| t.pgid))
    })
    .expect("svc's group in the state");
    // The guardian would end the group when bansuri dies; kill it first (as an OOM killer
    // or a `kill -9` of everything might), so that the group really is left behind.
    b.kill_guardian_then_self(T);
    // The main process died with bansuri (PDEATHSIG); the background sleep did not.
    assert!(
        alive(child),
        "precondition: the background child survives a SIGKILL"
    );
    // PDEATHSIG is queued as bansuri dies; on a busy machine the main process may not have
    // run to its death yet when bansuri's exit is seen.
    wait_for(T, || {
        (group_members(pgid as i32) == vec![child]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "group {pgid}: {:?}, expected only {child}",
            group_members(pgid as i32)
        )
    });

    let b2 = sb.start(
        r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#,
        &[],
    );
    wait_for(T, || (!alive(child)).then_some(()))
        .unwrap_or_else(|| panic!("the stale child {child} survives; log:\n{}", b2.log()));
    let log = b2.wait_log("the stale group reported", T, |l| {
        l.contains(&format!(
            "Ended stale process group {pgid} of `svc` with SIGTERM"
        ))
    });
    assert!(
        log.contains(&format!(
            "was killed and left process group {pgid} of `svc` running (1 process)"
        )),
        "{log}"
    );
}

fn stale_doc(pgid: u32, pid_start: u64, clock_ticks: u64) -> StateDoc {
    let text = r#"{"schema": "bansuri-state", "version": 1, "written_at": "2026-01-19T10:00:00Z",
      "clock_ticks": 0,
      "bansuri": {"version": "0.1.0", "pid": 1, "pid_start": 1, "host": "h", "boot_id": "b",
                  "started_at": "2026-01-19T10:00:00Z", "running": true, "ended_at": null, "exit_code": null},
      "job": null,
      "config": {"path": "/x.json", "loaded_at": "2026-01-19T10:00:00Z", "on_disk_differs": false, "invalid": null},
      "control": {"socket": null, "requests": "/x", "dashboard": null},
      "settings": {"check_interval": 30, "watchdog_timeout": 120, "sample_interval": 30, "max_parallel": null, "mode": "service", "resume": false},
      "node": null, "tasks": []}"#;
    let mut d = StateDoc::parse(text).expect("template");
    // A dead "previous bansuri": our own pid with another start time is as dead as any.
    d.bansuri.pid = std::process::id();
    d.bansuri.pid_start = 1;
    d.bansuri.host = bansuri::host::name().to_owned();
    d.bansuri.boot_id = bansuri::host::boot_id().to_owned();
    d.clock_ticks = clock_ticks;
    let entry = r#"{"name": "old", "description": "", "schedule": "once at start-up", "one_shot": true,
      "enabled": true, "state": "RUNNING", "pid": null, "pgid": null, "pid_start": null, "attempt": null,
      "processes": [], "starts": 1, "runs": 0, "failures": 0, "restarts": 0, "last_result": null,
      "last_exit": null, "started_at": null, "ended_at": null, "next_run_at": null, "retry_at": null,
      "cpu_percent": null, "rss": null, "peak_rss": 0, "cpu_time": 0, "settings_hash": "x"}"#;
    let mut t: TaskEntry = serde_json::from_str(entry).expect("entry");
    t.pid = Some(pgid);
    t.pgid = Some(pgid);
    t.pid_start = Some(pid_start);
    t.processes = vec![bansuri::control::state::ProcessEntry {
        pid: pgid,
        pgid,
        pid_start: Some(pid_start),
        attempt: 1,
        started_at: None,
        stopping: false,
        node: None,
    }];
    d.tasks.push(t);
    d
}

/// A process group of our own making (not bansuri's), with its leader and a member.
struct Group {
    leader: std::process::Child,
    member: i32,
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling the group we created.
        unsafe {
            libc::kill(-(self.leader.id() as i32), libc::SIGKILL);
            libc::kill(self.member, libc::SIGKILL);
        }
        let _ = self.leader.wait();
    }
}

fn make_group(sb: &Sandbox, leader_exits: bool) -> Group {
    let pidfile = sb.file(if leader_exits { "m1.pid" } else { "m2.pid" });
    let script = format!(
        "sleep 300 & echo $! > {}; {}",
        pidfile.display(),
        if leader_exits { "exit 0" } else { "wait" }
    );
    let mut c = Command::new("setsid");
    c.args(["sh", "-c", &script]).stdin(Stdio::null());
    let mut leader = c.spawn().expect("setsid");
    let member: i32 = wait_for(T, || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    })
    .expect("member pid");
    if leader_exits {
        let _ = leader.wait();
    }
    Group { leader, member }
}

#[test]
fn a_reused_pid_or_group_id_is_never_killed() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.file(".bansuri/config.json")).expect("mkdir");
    let quiet = r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#;

    // 1. The leader is alive, but started at another time than recorded: a reused pid.
    let g = make_group(&sb, false);
    let leader = g.leader.id();
    let start = bansuri::sample::start_ticks(leader).expect("leader start");
    let d = stale_doc(leader, start + 1, bansuri::sample::boot_ticks_now());
    std::fs::write(sb.file(".bansuri/config.json/state.json"), d.to_json()).expect("write state");
    let mut b = sb.start(quiet, &[]);
    let log = b.wait_log("the check", T, |l| l.contains("was reused"));
    assert!(
        log.contains(&format!(
            "process group {leader} of `old` now belongs to other processes"
        )),
        "{log}"
    );
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    assert!(
        alive(leader as i32) && alive(g.member),
        "nothing of the stranger was touched"
    );
    drop(g);

    // 2. The leader is gone; the member started after the state file was last written:
    // the group id may have been reused, so it is left alone.
    let g = make_group(&sb, true);
    let pgid = g.leader.id();
    let member_start = bansuri::sample::start_ticks(g.member as u32).expect("member start");
    let d = stale_doc(pgid, member_start.saturating_sub(10), member_start - 1);
    std::fs::write(sb.file(".bansuri/config.json/state.json"), d.to_json()).expect("write state");
    let mut b = sb.start(quiet, &[]);
    b.wait_log("the check", T, |l| {
        l.contains(&format!(
            "process group {pgid} of `old` now belongs to other processes"
        ))
    });
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    assert!(alive(g.member), "a younger member is not ours");

    // 3. Same group, but the state was written after the member started: ours, ended.
    let d = stale_doc(pgid, member_start.saturating_sub(10), member_start + 100);
    std::fs::write(sb.file(".bansuri/config.json/state.json"), d.to_json()).expect("write state");
    let b = sb.start(quiet, &[]);
    wait_for(T, || (!alive(g.member)).then_some(()))
        .unwrap_or_else(|| panic!("the stale member survives; log:\n{}", b.log()));
    drop(g);
}

#[test]
fn a_fresh_state_of_a_bansuri_on_another_node_is_warned_about() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.file(".bansuri/config.json")).expect("mkdir");
    let mut d = stale_doc(1, 1, 1);
    d.bansuri.host = "some-other-node".into();
    d.written_at = chrono::Utc::now();
    std::fs::write(sb.file(".bansuri/config.json/state.json"), d.to_json()).expect("write state");
    let mut b = sb.start(
        r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#,
        &[],
    );
    b.wait_log("the warning", T, |l| {
        l.contains("WARNING: the state file was written 0 s ago by a bansuri on some-other-node")
            || l.contains("s ago by a bansuri on some-other-node")
    });
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
}

/// A previous state file that bansuri's user does not own, or that others can write, is
/// not trusted: the process group it lists is left alone (a forged file would otherwise
/// make bansuri kill an unrelated group), and the log says why.
#[test]
fn a_forged_state_file_never_gets_a_group_killed() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.file(".bansuri/config.json")).expect("mkdir");
    let quiet = r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#;
    let state = sb.file(".bansuri/config.json/state.json");
    // The victim: a group whose leader's start time the forger knows (it is public).
    let g = make_group(&sb, false);
    let leader = g.leader.id();
    let start = bansuri::sample::start_ticks(leader).expect("leader start");
    let forged = stale_doc(leader, start, bansuri::sample::boot_ticks_now()).to_json();
    let me = nix::unistd::geteuid().is_root();
    let mut cases = vec![(0o666, "it is writable by others (mode 666)".to_owned())];
    if me {
        cases.push((
            0o644,
            "it belongs to uid 65534, not to bansuri's uid 0".to_owned(),
        ));
    }
    for (mode, why) in cases {
        std::fs::write(&state, &forged).expect("write state");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if mode == 0o644 {
            std::os::unix::fs::lchown(&state, Some(65534), None).expect("chown");
        }
        let _ = std::fs::remove_file(sb.file("log.txt"));
        let mut b = sb.start(quiet, &[]);
        let log = b.wait_log("the refusal", T, |l| l.contains("is not used"));
        assert!(
            log.contains(&format!(
                "the previous state file {} is not used (no clean-up of what it lists, no --resume from it): {why}",
                state.display()
            )),
            "{log}"
        );
        b.signal(libc::SIGTERM);
        b.wait(T).expect("exits");
        assert!(
            alive(leader as i32) && alive(g.member),
            "the group listed in a forged file is not touched; log:\n{log}"
        );
        assert!(!log.contains("Ended stale process group"), "{log}");
    }
    drop(g);
}

/// Two configs of one directory run side by side (each has its own state directory,
/// `.bansuri/<config file name>/`); `status --config` shows each one's tasks; the same
/// config twice is still refused.
#[test]
fn two_configs_of_one_directory_run_side_by_side() {
    let sb = Sandbox::new();
    let a = sb.write(
        "scripts-critical.json",
        r#"{"scripts": [{"name": "critical", "command": "exec sleep 300"}]}"#,
    );
    let b = sb.write(
        "scripts-batch.json",
        r#"{"scripts": [{"name": "batch", "command": "exec sleep 300"}]}"#,
    );
    let ba = sb.start_file(&a, "a.log");
    let bb = sb.start_file(&b, "b.log");
    for (cfg, task, inst) in [(&a, "critical", &ba), (&b, "batch", &bb)] {
        let out = wait_for(T, || {
            let (code, out, _) = client(cfg, &["status"], &[]);
            (code == 0 && out.contains("RUNNING")).then_some(out)
        })
        .unwrap_or_else(|| panic!("{task} not running; log:\n{}", inst.log()));
        let other = if task == "critical" {
            "batch"
        } else {
            "critical"
        };
        assert!(out.contains(task) && !out.contains(other), "{out}");
    }
    assert!(sb
        .file(".bansuri/scripts-critical.json/state.json")
        .exists());
    assert!(sb.file(".bansuri/scripts-batch.json/state.json").exists());
    let mut again = sb.start_file(&a, "a2.log");
    let (st, err) = again.wait(T).expect("refused");
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("another bansuri (pid {}) is running", ba.pid())),
        "{err}"
    );
    for mut inst in [ba, bb] {
        inst.signal(libc::SIGTERM);
        inst.wait(T).expect("exits");
    }
}

/// The state file of an older bansuri (`.bansuri/state.json`, shared by every config of a
/// directory) is found by `status` and taken over once by the next start.
#[test]
fn the_state_file_of_an_older_bansuri_is_found_and_taken_over() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "config.json",
        r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#,
    );
    std::fs::create_dir_all(sb.file(".bansuri")).expect("mkdir");
    let mut d = stale_doc(1, 1, 1);
    d.bansuri.running = false;
    d.tasks[0].processes.clear();
    d.tasks[0].state = "SUCCESS".into();
    d.config.path = cfg.display().to_string();
    let old = sb.file(".bansuri/state.json");
    std::fs::write(&old, d.to_json()).expect("write state");
    // Another config's old state is not taken for this one's.
    let other = sb.write("other.json", r#"{"scripts": []}"#);
    let (code, _, err) = client(&other, &["status"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no bansuri has run with"), "{err}");
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("old") && out.contains("SUCCESS"), "{out}");

    let mut b = sb.start(
        r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#,
        &[],
    );
    let new = sb.file(".bansuri/config.json/state.json");
    let log = b.wait_log("the move", T, |l| l.contains("Moved the state file"));
    assert!(
        log.contains(&format!(
            "Moved the state file of an older bansuri from {} to {}",
            old.display(),
            new.display()
        )),
        "{log}"
    );
    assert!(!old.exists(), "taken over once");
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("quiet") && !out.contains("old"), "{out}");
}
