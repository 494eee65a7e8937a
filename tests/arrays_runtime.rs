//! Arrays at run time (issue 19), real processes: the element status file, `--resume`
//! after bansuri is SIGKILLed in the middle of an array (no element lost, none that had
//! succeeded run twice), `--retry-failed`, the `parallel` cap, `status` summing an array
//! up, and a reload growing and shrinking an array.

mod common;

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use common::{client, wait_for, Sandbox};

const LIMIT: Duration = Duration::from_secs(60);

/// The status file's lines: (id, exit code) in file order.
fn status_lines(sb: &Sandbox) -> Vec<(u64, Option<i64>, serde_json::Value)> {
    let path = sb.file(".bansuri/config.json/elements.jsonl");
    fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["id"].as_u64().expect("id"), v["exit"].as_i64(), v.clone()))
        .collect()
}

/// How many times each id is in `done.txt` (one line per element that finished its work).
fn done_counts(sb: &Sandbox) -> HashMap<u64, usize> {
    let mut out = HashMap::new();
    for l in sb.read("done.txt").lines() {
        if let Ok(id) = l.trim().parse() {
            *out.entry(id).or_default() += 1;
        }
    }
    out
}

#[test]
fn each_ended_element_is_a_line_of_the_status_file_and_parallel_caps_the_array() {
    let sb = Sandbox::new();
    // At most 2 at once: each element notes how many run beside it.
    let config = r#"{"scripts": [{"name": "w", "array": {"range": "1-6"}, "parallel": 2,
        "command": "ls running 2>/dev/null | wc -l >> peaks.txt; touch running/{item}; sleep 0.2; rm running/{item}; test {item} -ne 4"}]}"#;
    fs::create_dir(sb.file("running")).unwrap();
    let mut b = sb.start(config, &["--exit-when-done"]);
    let (st, err) = b.wait(LIMIT).expect("bansuri ends");
    assert_eq!(
        st.code(),
        Some(3),
        "element 4 fails: exit 3\n{err}\n{}",
        b.log()
    );
    let lines = status_lines(&sb);
    let mut ids: Vec<u64> = lines.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "{lines:?}");
    for (id, exit, v) in &lines {
        assert_eq!(*exit, Some(if *id == 4 { 1 } else { 0 }), "{v}");
        assert_eq!(v["task"], "w");
        assert_eq!(v["item"], id.to_string());
        assert_eq!(v["attempts"], 1);
        assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()), "{v}");
        assert!(v["start"].as_str() <= v["end"].as_str(), "{v}");
        assert_eq!(v["settings"].as_str().map(str::len), Some(16), "{v}");
    }
    let peaks: Vec<usize> = sb
        .read("peaks.txt")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(peaks.len(), 6);
    assert!(
        peaks.iter().all(|&p| p <= 1),
        "an element saw more than one other running: {peaks:?}"
    );
    assert!(b.log().contains("Element status file: "), "{}", b.log());
}

#[test]
fn resume_after_a_sigkill_mid_array_loses_nothing_and_reruns_no_success() {
    let sb = Sandbox::new();
    let config = r#"{"max_parallel": 2, "scripts": [{"name": "w", "array": {"range": "1-30"},
        "command": "sleep 0.1; echo {item} >> done.txt"}]}"#;
    let mut b = sb.start(config, &["--exit-when-done"]);
    wait_for(LIMIT, || (status_lines(&sb).len() >= 8).then_some(()))
        .unwrap_or_else(|| panic!("8 elements did not end:\n{}", b.log()));
    b.kill_guardian_then_self(LIMIT);
    // What bansuri had recorded as succeeded when it was killed.
    let recorded: Vec<u64> = status_lines(&sb)
        .iter()
        .filter(|(_, exit, _)| *exit == Some(0))
        .map(|(id, _, _)| *id)
        .collect();
    assert!(recorded.len() >= 8 && recorded.len() < 30, "{recorded:?}");
    // Make the state file miss them (as a state file written 200 ms apart can): the
    // status file alone must carry --resume.
    let _ = fs::remove_file(sb.file(".bansuri/config.json/state.json"));
    let mut again = sb.start(config, &["--exit-when-done", "--resume"]);
    let (st, err) = again.wait(LIMIT).expect("the resumed bansuri ends");
    assert_eq!(st.code(), Some(0), "{err}\n{}", again.log());
    // The job log is appended to: the second run's lines come after its banner.
    let full = again.log();
    let second = &full[full.rfind("BANSURI ORCHESTRATOR STARTED").unwrap_or(0)..];
    let counts = done_counts(&sb);
    for id in 1..=30 {
        assert!(
            counts.contains_key(&id),
            "element {id} was lost: {counts:?}"
        );
    }
    for id in &recorded {
        assert_eq!(
            counts[id], 1,
            "element {id} had succeeded and ran again:\n{second}"
        );
        assert!(
            !second.contains(&format!("[w[{id}]] Executing")),
            "w[{id}] started again:\n{second}"
        );
    }
    assert!(
        second.contains("--resume: "),
        "the resume is said:\n{second}"
    );
}

#[test]
fn retry_failed_runs_only_the_elements_that_failed() {
    let sb = Sandbox::new();
    // 2 and 5 fail until fixed.txt exists.
    let config = r#"{"scripts": [{"name": "w", "array": {"range": "1-6"},
        "command": "echo {item} >> ran.txt; [ -e fixed.txt ] || { test {item} -ne 2 && test {item} -ne 5; }"}]}"#;
    let mut b = sb.start(config, &["--exit-when-done"]);
    let (st, _) = b.wait(LIMIT).expect("ends");
    assert_eq!(st.code(), Some(3), "{}", b.log());
    fs::write(sb.file("fixed.txt"), "").unwrap();
    fs::write(sb.file("ran.txt"), "").unwrap();
    let mut again = sb.start(config, &["--exit-when-done", "--retry-failed"]);
    let (st, err) = again.wait(LIMIT).expect("ends");
    assert_eq!(st.code(), Some(0), "{err}\n{}", again.log());
    let mut ran: Vec<u64> = sb
        .read("ran.txt")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, [2, 5], "{}", again.log());
    assert!(
        again
            .log()
            .contains("--retry-failed: 2 failed element(s) run again"),
        "{}",
        again.log()
    );
}

#[test]
fn status_sums_an_array_up_and_a_reload_grows_and_shrinks_it() {
    let sb = Sandbox::new();
    let config = |range: &str| {
        format!(
            r#"{{"check_interval": "1s", "config_settle": "0s", "scripts": [{{"name": "w", "array": {{"range": "{range}"}},
                "command": "echo up {{item}}; exec sleep 300"}}]}}"#
        )
    };
    let b = sb.start(&config("1-3"), &[]);
    b.wait_log("three running", LIMIT, |l| {
        (1..=3).all(|i| l.contains(&format!("[w[{i}]] | up {i}")))
    });
    let cfg = sb.file("config.json");
    let (code, out, err) = client(&cfg, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("w[] (3)"), "{out}");
    assert!(
        out.contains("w: 3 elements: 0 done, 3 running, 0 failed, 0 waiting"),
        "{out}"
    );
    // Grow: 4 and 5 start, 1-3 go on.
    fs::write(&cfg, config("1-5")).unwrap();
    let log = b.wait_log("4 and 5", LIMIT, |l| {
        l.contains("[w[4]] | up 4") && l.contains("[w[5]] | up 5")
    });
    for i in 1..=3 {
        assert_eq!(
            log.matches(&format!("[w[{i}]] | up {i}")).count(),
            1,
            "w[{i}] was restarted:\n{log}"
        );
    }
    // Shrink: 3, 4 and 5 are stopped as removed; 1 and 2 go on.
    fs::write(&cfg, config("1-2")).unwrap();
    let log = b.wait_log("3-5 stopped", LIMIT, |l| {
        (3..=5).all(|i| {
            l.contains(&format!(
                "[w[{i}]] Process stopped (removed from the config)"
            ))
        })
    });
    for i in 1..=2 {
        assert!(
            !log.contains(&format!("[w[{i}]] Process stopped")),
            "w[{i}] was stopped:\n{log}"
        );
    }
}

#[test]
fn a_reload_keeps_the_tasks_of_tasks_and_a_task_file_alone_reloads_as_one() {
    // With a config: its reload keeps the --tasks elements (they are not "removed").
    let sb = Sandbox::new();
    sb.write(
        "cmds.txt",
        "echo first; exec sleep 300\necho second; exec sleep 300\n",
    );
    let cmds = sb.file("cmds.txt");
    let with = |extra: &str| {
        format!(
            r#"{{"check_interval": "1s", "config_settle": "0s", "scripts": [{{"name": "other", "command": "exec sleep 300"}}{extra}]}}"#
        )
    };
    let b = sb.start(&with(""), &["--tasks", cmds.to_str().unwrap()]);
    b.wait_log("both lines", LIMIT, |l| {
        l.contains("[tasks[0]] | first") && l.contains("[tasks[1]] | second")
    });
    fs::write(
        sb.file("config.json"),
        with(r#", {"name": "more", "command": "echo more here; exec sleep 300"}"#),
    )
    .unwrap();
    let log = b.wait_log("the reload", LIMIT, |l| l.contains("[more] | more here"));
    assert!(
        !log.contains("[tasks[0]] Process stopped") && !log.contains("[tasks[1]] Process stopped"),
        "the reload dropped the --tasks elements:\n{log}"
    );
    drop(b);

    // A task file alone: appending a line starts it, the others go on.
    let alone = Sandbox::new();
    alone.write("cmds.txt", "echo one; exec sleep 300\n");
    let log_path = alone.file("log.txt");
    let mut child = std::process::Command::new(common::BIN)
        .args(["run", "--tasks", "cmds.txt", "--log-file"])
        .arg(&log_path)
        .current_dir(alone.path())
        .env_remove("BANSURI_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn bansuri");
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id() as i32;
    let _reap = Reap(&mut child);
    let read = || fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(LIMIT, || read().contains("[tasks[0]] | one").then_some(()))
        .unwrap_or_else(|| panic!("tasks[0] did not start:\n{}", read()));
    fs::write(
        alone.file("cmds.txt"),
        "echo one; exec sleep 300\necho two; exec sleep 300\n",
    )
    .unwrap();
    // The task file is re-read at the check interval (30 s by default): SIGHUP asks now.
    // SAFETY: signalling the pid of the bansuri this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for(LIMIT, || read().contains("[tasks[1]] | two").then_some(()))
        .unwrap_or_else(|| panic!("the new line did not start:\n{}", read()));
    assert_eq!(read().matches("[tasks[0]] | one").count(), 1, "{}", read());
}

/// Issue 19's scale, at a size a test affords: an array of 10,000 elements is held as a
/// few tasks, not 10,000. While it runs, the state file lists only the elements that are
/// tasks, plus the array's counts; bansuri's memory stays flat; every element ends in the
/// status file; the exit summary is one row and one line for the array.
#[test]
fn a_large_array_keeps_the_state_file_and_memory_small() {
    let sb = Sandbox::new();
    let config = r#"{"sample_interval": "0", "scripts": [
        {"name": "w", "array": {"range": "1-10000"}, "parallel": 4, "command": "true"}]}"#;
    let mut b = sb.start(config, &["--exit-when-done"]);
    let pid = b.pid();
    let state = sb.file(".bansuri/config.json/state.json");
    let (mut most_tasks, mut seen_counts, mut peak_kb) = (0usize, false, 0u64);
    let status = loop {
        if let Ok(text) = fs::read_to_string(&state) {
            if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
                let tasks = doc["tasks"].as_array().map_or(0, Vec::len);
                most_tasks = most_tasks.max(tasks);
                if let Some(a) = doc["arrays"].as_array().and_then(|a| a.first()) {
                    assert_eq!(a["name"], "w", "{a}");
                    assert_eq!(a["elements"], 10_000, "{a}");
                    seen_counts = true;
                }
            }
        }
        if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if let Some(st) = b.wait(Duration::from_millis(50)) {
            break st;
        }
    };
    let log = b.log();
    assert_eq!(status.0.code(), Some(0), "{}\n{log}", status.1);
    assert!(seen_counts, "the state file had the array's counts");
    assert!(
        most_tasks <= 12,
        "the state file listed {most_tasks} tasks for an array capped at 4"
    );
    // The release binary runs in a few MB; the debug one's code alone is about 12 MB.
    assert!(peak_kb < 40 * 1024, "bansuri's peak RSS was {peak_kb} kB");
    assert_eq!(status_lines(&sb).len(), 10_000);
    assert!(
        log.contains("Array w: 10000 elements: 10000 succeeded, 0 failed, 0 not run"),
        "{log}"
    );
    assert!(!log.contains("Schedule: once"), "no line per element made");
    assert!(!log.contains("] w[17]  "), "no summary row per element");
    // `status w`: the array's counts from the state file; `status --elements w`: every
    // element from the status file, one JSON line each.
    let cfg = sb.file("config.json");
    let (code, out, err) = client(&cfg, &["status", "w"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("w: 10000 elements: 10000 done, 0 running, 0 failed, 0 waiting"),
        "{out}"
    );
    let (code, out, err) = client(&cfg, &["status", "--elements", "w"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 10_000);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["task"], "w");
    let (code, out, _) = client(&cfg, &["status", "--elements", "other"], &[]);
    assert_eq!((code, out.as_str()), (0, ""));
}
