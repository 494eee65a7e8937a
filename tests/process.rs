//! Real processes, real binary: process groups, timeouts, the watchdog, retries, reaping,
//! and the job log's line integrity.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);

fn pids_in(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn timed_out_group_leaves_no_process() {
    let sb = Sandbox::new();
    // The shell writes its pgid and both sleepers' pids, then waits.
    let cfg = r#"{"scripts": [{"name": "slow",
        "command": "sleep 300 & echo $! > pids; sleep 300 & echo $! >> pids; echo $$ >> pids; wait",
        "timeout": "1s", "stoptime": "5s"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let pids = wait_for(T, || {
        let p = pids_in(&sb.read("pids"));
        (p.len() == 3).then_some(p)
    })
    .expect("pids written");
    let (st, _) = b.wait(T).expect("bansuri exits after the timeout");
    let log = b.log();
    assert_eq!(
        st.code(),
        Some(3),
        "a timed-out one-shot is a failure; log:\n{log}"
    );
    assert!(log.contains("Timed out after 1s"), "log:\n{log}");
    for p in &pids {
        assert!(
            !alive(*p),
            "process {p} of the timed-out group survived; log:\n{log}"
        );
    }
    assert!(
        group_members(pids[2]).is_empty(),
        "group {} not empty",
        pids[2]
    );
    assert!(
        log.contains("TIMEOUT"),
        "summary shows TIMEOUT; log:\n{log}"
    );
}

#[test]
fn sigterm_ignoring_child_is_killed_at_watchdog() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "stubborn", "command": "trap '' TERM; echo $$ > pid; while true; do sleep 0.1; done"},
        {"name": "polite", "command": "trap 'echo bye; exit 0' TERM; echo $$ > pid2; while true; do sleep 0.1; done"}
    ]}"#;
    let mut b = sb.start(cfg, &["--watchdog", "1500ms"]);
    let pid = wait_for(T, || pids_in(&sb.read("pid")).first().copied()).expect("pid");
    wait_for(T, || pids_in(&sb.read("pid2")).first().copied()).expect("pid2");
    let t0 = Instant::now();
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("bansuri exits");
    let took = t0.elapsed();
    let log = b.log();
    assert_eq!(st.code(), Some(0), "log:\n{log}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "SIGKILL should come at the 1.5 s watchdog, exit took {took:?}; log:\n{log}"
    );
    assert!(log.contains("sending SIGKILL"), "log:\n{log}");
    assert!(!alive(pid), "stubborn child survived");
    assert!(
        output_lines(&log, "polite").contains(&"bye"),
        "polite child got SIGTERM; log:\n{log}"
    );
    assert!(log.contains("Shutdown complete"), "log:\n{log}");
}

#[test]
fn no_zombies_after_500_short_runs() {
    let sb = Sandbox::new();
    let mut tasks = Vec::new();
    for i in 0..500 {
        tasks.push(format!(r#"{{"name": "t{i}", "command": ["true"]}}"#));
    }
    let cfg = format!(r#"{{"max_parallel": 8, "scripts": [{}]}}"#, tasks.join(","));
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(Duration::from_secs(60)).expect("exits");
    let log = b.log();
    assert_eq!(
        st.code(),
        Some(0),
        "log tail:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
    assert_eq!(log.matches("Process finished with code 0").count(), 500);

    // And while running: a periodic task doing many short runs leaves no zombie behind.
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "fast", "command": "true", "timer": "10ms"}]}"#;
    let b = sb.start(cfg, &[]);
    b.wait_log("500 runs", Duration::from_secs(60), |l| {
        l.matches("Process finished with code 0").count() >= 500
    });
    assert!(
        zombies_of(b.pid()).len() <= 1,
        "zombies: {:?}",
        zombies_of(b.pid())
    );
}

#[test]
fn on_fail_restart_times_3_makes_exactly_3_attempts() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "flaky", "command": "echo attempt >> attempts; exit 1",
        "on-fail": "restart", "times": 3, "restart-delay": "50ms"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "log:\n{log}");
    assert_eq!(sb.read("attempts").lines().count(), 3, "log:\n{log}");
    assert!(log.contains("attempt 3/3"), "log:\n{log}");
    assert!(log.contains("Failed after 3 attempts"), "log:\n{log}");
}

#[test]
fn success_codes_count_2_as_success() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "two", "command": "exit 2", "success-codes": [0, 2]},
        {"name": "alias", "command": "exit 2", "exitcodes": [2]}
    ]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "exit 2 is a success here; log:\n{log}");
    assert_eq!(
        count_events(&log, "two", "Process finished with code 2"),
        1,
        "log:\n{log}"
    );

    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "two", "command": "exit 2"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    assert_eq!(
        st.code(),
        Some(3),
        "exit 2 is a failure by default; log:\n{}",
        b.log()
    );
}

#[test]
fn death_by_sigkill_is_a_success_when_137_is_a_success_code() {
    // The manual lists 137 for "killed by SIGKILL": 128 + the signal, as shells report it.
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "k", "command": "kill -9 $$", "success-codes": [137]},
        {"name": "plain", "command": "kill -9 $$"}
    ]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "`plain` failed; log:\n{log}");
    assert_eq!(
        count_events(&log, "k", "Process killed by SIGKILL (137): a success code"),
        1,
        "log:\n{log}"
    );
    assert_eq!(
        count_events(&log, "plain", "WARNING: Process killed by SIGKILL (137)"),
        1,
        "log:\n{log}"
    );
    let summary = |task: &str| {
        log.lines()
            .find(|l| l.contains(&format!("[MASTER] {task} ")))
            .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_owned())
    };
    assert_eq!(summary("k").as_deref(), Some("SUCCESS"), "log:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("[MASTER] plain ") && l.ends_with("SIGKILL (137)")),
        "the summary's LAST column gives both; log:\n{log}"
    );
    assert_eq!(summary("plain").as_deref(), Some("FAILED"), "log:\n{log}");
}

/// Start bansuri on `config` with PYTHONUNBUFFERED removed from its environment (the
/// test runner's may set it), or set to `value`.
fn start_python_env(sb: &Sandbox, config: &str, args: &[&str], value: Option<&str>) -> Bansuri {
    let cfg = sb.write("config.json", config);
    let log = sb.file("log.txt");
    let mut c = std::process::Command::new(BIN);
    c.arg("--config")
        .arg(&cfg)
        .arg("--log-file")
        .arg(&log)
        .args(args)
        .env_remove("PYTHONUNBUFFERED")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(v) = value {
        c.env("PYTHONUNBUFFERED", v);
    }
    Bansuri {
        child: Some(c.spawn().expect("spawn bansuri")),
        log,
    }
}

#[test]
fn python_prints_reach_the_log_as_they_happen_without_dash_u() {
    // PYTHONUNBUFFERED=1 unless the task's env (or bansuri's own environment) sets it.
    let sb = Sandbox::new();
    sb.write(
        "p.py",
        "import time\nprint('hello from python')\ntime.sleep(300)\n",
    );
    let cfg = r#"{"scripts": [
        {"name": "py", "command": "python3 p.py"},
        {"name": "seen", "command": "echo \"[$PYTHONUNBUFFERED]\""},
        {"name": "own", "command": "echo \"[$PYTHONUNBUFFERED]\"", "env": {"PYTHONUNBUFFERED": ""}}
    ]}"#;
    let b = start_python_env(&sb, cfg, &[], None);
    let log = b.wait_log("the print of a Python task that still runs", T, |l| {
        l.contains("[py] | hello from python") && l.contains("[own] Process finished")
    });
    assert!(!log.contains("[py] Process finished"), "log:\n{log}");
    assert_eq!(output_lines(&log, "seen"), ["[1]"], "log:\n{log}");
    assert_eq!(
        output_lines(&log, "own"),
        ["[]"],
        "the task's env wins; log:\n{log}"
    );
    drop(b);

    // bansuri's own environment wins too.
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "seen", "command": "echo \"[$PYTHONUNBUFFERED]\""}]}"#;
    let mut b = start_python_env(&sb, cfg, &["--exit-when-done"], Some(""));
    b.wait(T).expect("exits");
    assert_eq!(output_lines(&b.log(), "seen"), ["[]"], "log:\n{}", b.log());
}

#[test]
fn concurrent_writers_produce_whole_prefixed_lines() {
    let sb = Sandbox::new();
    let mut tasks = Vec::new();
    for i in 0..10 {
        // Each writes 2000 lines of 100 bytes with its own tag, as fast as it can.
        tasks.push(format!(
            r#"{{"name": "w{i}", "command": ["python3", "-c", "import sys\nfor n in range(2000): sys.stdout.write('w{i}:%05d:' % n + 'x' * 91 + '\\n')\n"]}}"#
        ));
    }
    let cfg = format!(r#"{{"scripts": [{}]}}"#, tasks.join(","));
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(Duration::from_secs(60)).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0));
    for i in 0..10 {
        let lines = output_lines(&log, &format!("w{i}"));
        assert_eq!(lines.len(), 2000, "task w{i} lost or split lines");
        for (n, l) in lines.iter().enumerate() {
            let want = format!("w{i}:{n:05}:{}", "x".repeat(91));
            assert_eq!(*l, want, "task w{i} line {n} corrupted or out of order");
        }
    }
    // Nothing but whole lines: every line of the log has the [time] [task] prefix.
    for l in log.lines() {
        assert!(
            l.starts_with('[') && l.contains("] ["),
            "unprefixed line: {l:?}"
        );
    }
}

#[test]
fn ten_megabyte_line_without_newline_is_split_not_ballooned() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "big",
        "command": ["python3", "-c", "import sys, time\nsys.stdout.write('y' * (10 * 1024 * 1024)); sys.stdout.flush(); time.sleep(1)\n"]}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    // Sample bansuri's RSS while the line streams through.
    let pid = b.pid();
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for l in s.lines() {
                if let Some(v) = l.strip_prefix("VmRSS:") {
                    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak_kb = peak_kb.max(kb);
                }
            }
        }
        if let Some(st) = b.wait(Duration::from_millis(20)) {
            break st;
        }
    };
    let log = b.log();
    assert_eq!(status.0.code(), Some(0), "stderr: {}", status.1);
    let pieces = output_lines(&log, "big");
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    assert_eq!(total, 10 * 1024 * 1024, "every byte arrives");
    assert!(
        pieces.len() >= 160,
        "split into 64 KiB pieces, got {}",
        pieces.len()
    );
    assert!(pieces.iter().all(|p| p.len() <= 64 * 1024));
    assert!(
        peak_kb < 10 * 1024,
        "bansuri's RSS reached {peak_kb} kB for a 10 MB line"
    );
}

#[test]
fn partial_last_line_and_non_utf8_pass_through() {
    let sb = Sandbox::new();
    let cfg =
        r#"{"scripts": [{"name": "raw", "command": "printf 'caf\\351\\nno newline at end'"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    b.wait(T).expect("exits");
    let bytes = std::fs::read(&b.log).expect("log");
    assert!(
        bytes.windows(5).any(|w| w == b"caf\xe9\n"),
        "non-UTF-8 byte passed through untouched"
    );
    let log = String::from_utf8_lossy(&bytes);
    assert!(
        output_lines(&log, "raw").contains(&"no newline at end"),
        "log:\n{log}"
    );
    // The partial line comes before the "finished" line.
    let a = log.find("no newline at end").expect("partial line");
    let f = log.find("Process finished").expect("finished line");
    assert!(a < f, "output before the end line; log:\n{log}");
}

#[test]
fn stdout_and_stderr_files_and_separate_stderr_marker() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "files", "command": "echo out; echo err >&2", "stdout": "o.txt", "stderr": "e.txt"},
        {"name": "comb", "command": "echo out; echo err >&2", "stdout": "c.txt"},
        {"name": "sep", "command": "echo out; echo err >&2", "stderr": "log"}
    ]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(sb.read("o.txt"), "out\n");
    assert_eq!(sb.read("e.txt"), "err\n");
    assert_eq!(sb.read("c.txt"), "out\nerr\n");
    assert!(log.contains("] [sep] | out"), "log:\n{log}");
    assert!(log.contains("] [sep] ! err"), "log:\n{log}");
    assert!(output_lines(&log, "files").is_empty());
}

#[test]
fn working_directory_env_and_environment_file() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.file("wd")).unwrap();
    sb.write(
        "vars.env",
        "# comment\nFROM_FILE=file\nexport QUOTED=\"a b\"\nBOTH=file\n",
    );
    let cfg = r#"{"scripts": [{"name": "e",
        "command": "echo \"$(pwd) $FROM_FILE $QUOTED $BOTH $BANSURI_TASK\"; test ! -t 0 && read x < /dev/stdin; echo stdin=$?",
        "working-directory": "wd", "environment-file": "vars.env", "env": {"BOTH": "env"}}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    b.wait(T).expect("exits");
    let log = b.log();
    let wd = std::fs::canonicalize(sb.file("wd")).unwrap();
    let lines = output_lines(&log, "e");
    assert_eq!(
        lines.first().copied(),
        Some(format!("{} file a b env e", wd.display())).as_deref(),
        "log:\n{log}"
    );
    // stdin is /dev/null: read hits EOF at once (exit status 1).
    assert_eq!(lines.get(1).copied(), Some("stdin=1"), "log:\n{log}");
}

#[test]
fn command_not_found_and_bad_working_directory_are_explained() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "nosuch", "command": "definitely-not-a-command-xyz"},
        {"name": "argv", "command": ["definitely-not-a-command-xyz"]},
        {"name": "ok", "command": "echo fine"}
    ]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3));
    assert!(log.contains("code 127: command not found"), "log:\n{log}");
    assert!(
        log.contains("Failed to start: command not found: `definitely-not-a-command-xyz`"),
        "log:\n{log}"
    );
    assert!(output_lines(&log, "ok").contains(&"fine"), "others run on");
}

#[test]
fn max_parallel_limits_concurrency() {
    let sb = Sandbox::new();
    let mut tasks = Vec::new();
    for i in 0..6 {
        // Each records how many are running at its start via a lock-free counter file dir.
        tasks.push(format!(
            r#"{{"name": "p{i}", "command": "touch running.$$; ls running.* | wc -l >> counts; sleep 0.3; rm running.$$"}}"#
        ));
    }
    let cfg = format!(r#"{{"max_parallel": 2, "scripts": [{}]}}"#, tasks.join(","));
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    b.wait(T).expect("exits");
    let counts: Vec<u32> = sb
        .read("counts")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(counts.len(), 6);
    assert!(
        counts.iter().all(|c| *c <= 2),
        "more than 2 at once: {counts:?}"
    );
}

#[test]
fn second_sigint_kills_at_once() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "stubborn", "command": "trap '' TERM INT; echo $$ > pid; while true; do sleep 0.1; done"}]}"#;
    let mut b = sb.start(cfg, &[]);
    let pid = wait_for(T, || pids_in(&sb.read("pid")).first().copied()).expect("pid");
    b.signal(libc::SIGINT);
    b.wait_log("shutdown begins", T, |l| l.contains("Received SIGINT"));
    let t0 = Instant::now();
    b.signal(libc::SIGINT);
    let (st, _) = b.wait(T).expect("exits");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "second SIGINT must not wait for the 120 s watchdog"
    );
    assert_eq!(st.code(), Some(0));
    assert!(!alive(pid));
}

fn status_field(pid: i32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// An idle bansuri sleeps until something is due: with only a long-running service and a
/// far-away timer, it wakes up only to read its request inbox once a second; and it is one
/// thread, whatever the load.
#[test]
fn idle_bansuri_does_not_wake_and_uses_one_thread() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "svc", "command": "echo up; exec sleep 300"},
        {"name": "hourly", "command": "true", "timer": "1h"}
    ]}"#;
    let b = sb.start(cfg, &[]);
    b.wait_log("svc up and hourly done", T, |l| {
        output_lines(l, "svc").contains(&"up") && l.contains("[hourly] Process finished")
    });
    assert_eq!(
        status_field(b.pid(), "Threads:"),
        1,
        "one thread owns everything"
    );
    // No wake-up at all but the state file's heartbeat (every 10 s): the request inbox is
    // on a local file system here (the test's temporary directory), so inotify watches it
    // instead of a read every second (which network file systems still need).
    let before = status_field(b.pid(), "voluntary_ctxt_switches:");
    std::thread::sleep(Duration::from_millis(3000));
    let after = status_field(b.pid(), "voluntary_ctxt_switches:");
    assert!(
        after - before <= 1,
        "idle bansuri woke {} times in 3 s (at most one heartbeat expected)",
        after - before
    );
}

/// A large state (600 tasks) is written by its own thread, so its JSON costs the loop
/// nothing; and the state on disk at exit is the last one all the same.
#[test]
fn a_large_state_is_written_by_its_own_thread_and_the_last_state_wins() {
    let sb = Sandbox::new();
    let mut tasks: Vec<String> = (0..600)
        .map(|i| format!(r#"{{"name": "idle-{i:03}", "command": "true", "enabled": false}}"#))
        .collect();
    tasks.push(r#"{"name": "svc", "command": "echo up; exec sleep 300"}"#.to_owned());
    let cfg = format!(r#"{{"scripts": [{}]}}"#, tasks.join(",\n"));
    let mut b = sb.start(&cfg, &[]);
    b.wait_log("svc up", T, |l| output_lines(l, "svc").contains(&"up"));
    let state = sb.file(".bansuri/config.json/state.json");
    wait_for(T, || {
        let d = bansuri::control::state::StateDoc::read(&state).ok()?;
        (d.tasks.len() == 601).then_some(())
    })
    .expect("the state of 601 tasks is written");
    assert_eq!(
        status_field(b.pid(), "Threads:"),
        2,
        "the loop and the state file's writer"
    );
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("exits");
    assert_eq!(st.code(), Some(0));
    let d = bansuri::control::state::StateDoc::read(&state).expect("state");
    assert!(
        !d.bansuri.running,
        "the last state (exited) is the one on disk"
    );
    assert_eq!(d.bansuri.exit_code, Some(0));
}

#[test]
fn not_executable_is_explained_and_stopsignal_is_honoured() {
    let sb = Sandbox::new();
    sb.write("noexec.sh", "#!/bin/sh\necho hi\n");
    let cfg = r#"{"scripts": [
        {"name": "noexec", "command": "./noexec.sh"},
        {"name": "int", "command": "trap 'echo got INT; exit 0' INT; trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
         "stopsignal": "INT"}
    ]}"#;
    let mut b = sb.start(cfg, &[]);
    b.wait_log("int ready", T, |l| {
        output_lines(l, "int").contains(&"ready") && l.contains("code 126")
    });
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    let log = b.log();
    assert!(
        log.contains("code 126: the command was found but could not be executed"),
        "{log}"
    );
    assert!(
        output_lines(&log, "int").contains(&"got INT"),
        "stopsignal INT used; log:\n{log}"
    );
}

/// `sh -c 'bash script'`: the shell is the group leader and dies of SIGTERM at once, while
/// the script's handler is still cleaning up. The run is over only when the whole group is
/// gone, so the handler's last words reach the log and nothing is SIGKILLed early.
#[test]
fn shutdown_waits_for_the_whole_group_not_just_the_shell() {
    let sb = Sandbox::new();
    sb.write(
        "slow_exit.sh",
        "trap 'sleep 0.4; echo goodbye after cleanup; exit 0' TERM\necho ready\nwhile true; do sleep 0.05 & wait $!; done\n",
    );
    let cfg = r#"{"scripts": [{"name": "s", "command": "bash slow_exit.sh; echo after"}]}"#;
    let mut b = sb.start(cfg, &["--watchdog", "10s"]);
    b.wait_log("ready", T, |l| output_lines(l, "s").contains(&"ready"));
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(
        output_lines(&log, "s").contains(&"goodbye after cleanup"),
        "the handler finished before the run was declared over; log:\n{log}"
    );
    assert!(
        !log.contains("sending SIGKILL"),
        "no SIGKILL within the watchdog; log:\n{log}"
    );
}

/// A main process that exits leaving a background process in its group: the leftover gets
/// the stop signal (not an instant SIGKILL), and the run's result is the main process's.
#[test]
fn leftovers_of_an_exited_main_process_get_the_stop_signal() {
    let sb = Sandbox::new();
    // The main process waits until the leftover has set its trap (it writes `left` after):
    // otherwise the stop signal could come first and end it without its goodbye.
    let cfg = r#"{"scripts": [{"name": "bg",
        "command": "sh -c 'trap \"echo leftover cleaned up; exit 0\" TERM; echo $$ > left; while true; do sleep 0.05; done' & while [ ! -s left ]; do sleep 0.01; done; echo main done"}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "the main process exited 0; log:\n{log}");
    assert!(
        log.contains("left processes in its group: SIGTERM"),
        "{log}"
    );
    let lines = output_lines(&log, "bg");
    assert!(lines.contains(&"leftover cleaned up"), "{log}");
    let left = pids_in(&sb.read("left"));
    assert_eq!(left.len(), 1, "the leftover wrote its pid");
    assert!(left.iter().all(|p| !alive(*p)), "leftover still alive");
    assert!(log.contains("[bg] Process finished with code 0"), "{log}");
}

/// Started with SIGINT and SIGQUIT ignored (as `nohup` or `cmd &` in a script does),
/// bansuri still hears SIGINT itself and its tasks can still be stopped with `stopsignal:
/// INT` (ignored dispositions would otherwise pass through exec to every child).
#[test]
fn ignored_signals_of_the_launcher_do_not_reach_tasks() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    let cfg = sb.write(
        "config.json",
        r#"{"scripts": [{"name": "int", "stopsignal": "INT",
            "command": "trap 'echo got INT; exit 0' INT; echo ready; while true; do sleep 0.05; done"}]}"#,
    );
    let log = sb.file("log.txt");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config").arg(&cfg).arg("--log-file").arg(&log);
    // SAFETY: only signal(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut b = Bansuri {
        child: Some(cmd.spawn().unwrap()),
        log,
    };
    b.wait_log("ready", T, |l| output_lines(l, "int").contains(&"ready"));
    b.signal(libc::SIGINT);
    let (st, _) = b
        .wait(Duration::from_secs(10))
        .expect("bansuri heard SIGINT and stopped");
    assert_eq!(st.code(), Some(0));
    assert!(
        output_lines(&b.log(), "int").contains(&"got INT"),
        "{}",
        b.log()
    );
}

/// Tasks start as `execvp` would start them: a script without a `#!` line runs through
/// /bin/sh, and a bare command name is looked up in the task's own PATH (its `env`).
#[test]
fn scripts_without_shebang_and_the_tasks_own_path() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    std::fs::create_dir(sb.file("bin")).unwrap();
    for (name, text) in [
        ("noshebang.sh", "echo \"no shebang ran with $1\"\n"),
        ("bin/private-tool", "#!/bin/sh\necho \"private tool ran\"\n"),
    ] {
        let p = sb.write(name, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg = format!(
        r#"{{"scripts": [
            {{"name": "plain", "command": ["./noshebang.sh", "an-arg"], "working-directory": "{dir}"}},
            {{"name": "tool", "command": ["private-tool"], "env": {{"PATH": "{dir}/bin:/usr/bin:/bin"}}}}
        ]}}"#,
        dir = sb.path().display()
    );
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(
        output_lines(&log, "plain"),
        ["no shebang ran with an-arg"],
        "{log}"
    );
    assert_eq!(output_lines(&log, "tool"), ["private tool ran"], "{log}");
}

/// bansuri started with stdin, stdout and stderr closed (some batch systems and daemons
/// do that): the files it opens get fds 0-2, and its tasks must still get /dev/null on
/// stdin and their own pipes on stdout and stderr.
#[test]
fn tasks_get_their_stdio_when_bansuri_has_none() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    let cfg = sb.write(
        "config.json",
        r#"{"scripts": [{"name": "io",
            "command": "echo out; echo err >&2; read x; echo read=$?; ls -l /proc/$$/fd/0 | grep -c /dev/null"}]}"#,
    );
    let log = sb.file("log.txt");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--log-file")
        .arg(&log)
        .arg("--exit-when-done");
    // SAFETY: only close(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(0);
            libc::close(1);
            libc::close(2);
            Ok(())
        });
    }
    let mut b = Bansuri {
        child: Some(cmd.spawn().unwrap()),
        log,
    };
    let (st, _) = b.wait(T).expect("exits");
    assert_eq!(st.code(), Some(0), "{}", b.log());
    let log = b.log();
    let lines = output_lines(&log, "io");
    for want in ["out", "err", "read=1", "1"] {
        assert!(lines.contains(&want), "no `{want}` line:\n{log}");
    }
}

/// A 1 ms timer whose run lasts a second would log `Scheduled run skipped` a thousand
/// times a second: identical lines in a row are written once and summarised as
/// `... repeated N times` (here when the run ends), the task's own output untouched.
#[test]
fn repeated_skip_lines_are_collapsed_in_the_job_log() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "slow", "command": "echo out; echo out; sleep 1", "timer": "1ms", "overlap": "skip"}]}"#;
    let b = sb.start(cfg, &[]);
    let log = b.wait_log("two runs", T, |l| {
        l.matches("Process finished with code 0").count() >= 2
    });
    let skips = log.matches("Scheduled run skipped").count();
    let summaries: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("[slow] ... repeated ").nth(1))
        .filter_map(|n| n.strip_suffix(" times")?.parse().ok())
        .collect();
    assert!(
        !summaries.is_empty() && summaries[0] > 100,
        "a second of 1 ms skips is summarised: {summaries:?}\n{log}"
    );
    // One line per stretch of skips (a run's end starts the next stretch).
    assert!(skips <= 3, "{skips} skip lines:\n{log}");
    assert_eq!(output_lines(&log, "slow").len() % 2, 0, "{log}");
    assert!(output_lines(&log, "slow").len() >= 4, "{log}");
}
