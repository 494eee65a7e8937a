//! Hot reload with real processes: converge to the file, touch nothing else.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);
/// A change shows in `status` well within this (state file: at most 5 writes a second;
/// without a change only the 10 s heartbeat rewrites it).
const STATUS_SOON: Duration = Duration::from_secs(3);

/// A long-running task that records its pid and its command's tag.
fn svc(name: &str, tag: &str) -> String {
    format!(
        r#"{{"name": "{name}", "command": "echo {tag} $$ >> {name}.pids; exec sleep 300", "description": "d"}}"#
    )
}

fn config(tasks: &[String], extra: &str) -> String {
    format!(r#"{{{extra} "scripts": [{}]}}"#, tasks.join(", "))
}

/// The pids a task recorded, with their tags, in order.
fn started(sb: &Sandbox, name: &str) -> Vec<(String, i32)> {
    sb.read(&format!("{name}.pids"))
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn wait_started(sb: &Sandbox, b: &Bansuri, name: &str, n: usize) -> Vec<(String, i32)> {
    wait_for(T, || {
        let s = started(sb, name);
        (s.len() >= n).then_some(s)
    })
    .unwrap_or_else(|| panic!("{name} did not start {n} time(s); log:\n{}", b.log()))
}

fn reloads(log: &str) -> usize {
    log.matches("Config reloaded:").count()
}

fn hup(b: &Bansuri) {
    b.signal(libc::SIGHUP);
}

#[test]
fn add_remove_change_keep_in_one_edit() {
    let sb = Sandbox::new();
    // `gone` is a shell with a background child: its group has two processes, so the
    // whole group must be stopped, not only its leader.
    let gone_task = r#"{"name": "gone", "command": "echo g1 $$ >> gone.pids; sleep 300 & echo $! > gone.child; wait"}"#;
    let cfg = config(
        &[svc("keep", "k1"), gone_task.to_owned(), svc("change", "c1")],
        "",
    );
    let b = sb.start(&cfg, &["--check-interval", "1h"]);
    let keep = wait_started(&sb, &b, "keep", 1)[0].1;
    let gone = wait_started(&sb, &b, "gone", 1)[0].1;
    let old_change = wait_started(&sb, &b, "change", 1)[0].1;
    let gone_child: i32 = wait_for(T, || sb.read("gone.child").trim().parse().ok())
        .unwrap_or_else(|| panic!("gone's child pid; log:\n{}", b.log()));
    assert!(
        group_members(gone).contains(&gone_child),
        "the background child is in gone's group"
    );

    sb.write(
        "config.json",
        &config(
            &[svc("keep", "k1"), svc("change", "c2"), svc("added", "a1")],
            "",
        ),
    );
    hup(&b);
    let log = b.wait_log("the reload", T, |l| reloads(l) == 1);
    assert!(
        log.contains(
            "Config reloaded: 1 added (added), 1 removed (gone), 1 changed (change), 1 kept"
        ),
        "{log}"
    );
    let changed = wait_started(&sb, &b, "change", 2);
    assert_eq!(changed[1].0, "c2", "the changed task runs the new command");
    assert_eq!(wait_started(&sb, &b, "added", 1)[0].0, "a1");
    wait_for(T, || (!alive(gone) && !alive(old_change)).then_some(()))
        .expect("removed and old changed processes end");
    wait_for(T, || {
        (group_members(gone).is_empty() && !alive(gone_child)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the removed task's whole group ends, its background child {gone_child} too: {:?} left; log:\n{}",
            group_members(gone),
            b.log()
        )
    });
    assert!(alive(keep), "kept task still runs");
    assert_eq!(started(&sb, "keep").len(), 1, "kept task not restarted");
    let log = b.log();
    assert_eq!(
        count_events(&log, "keep", "Stopping"),
        0,
        "kept task not signalled:\n{log}"
    );
    assert!(
        log.contains("[gone] Stopping (removed from the config)"),
        "{log}"
    );
    assert!(
        log.contains("[change] Stopping (its settings changed)"),
        "{log}"
    );
}

#[test]
fn description_only_edit_restarts_nothing() {
    let sb = Sandbox::new();
    let b = sb.start(
        &config(&[svc("a", "x"), svc("b", "y")], ""),
        &["--check-interval", "1h"],
    );
    let a = wait_started(&sb, &b, "a", 1)[0].1;
    let bp = wait_started(&sb, &b, "b", 1)[0].1;
    let edited =
        config(&[svc("a", "x"), svc("b", "y")], "").replace("\"d\"", "\"a new description\"");
    sb.write("config.json", &edited);
    hup(&b);
    let log = b.wait_log("the reload", T, |l| reloads(l) == 1);
    assert!(
        log.contains("0 added, 0 removed, 0 changed, 2 kept"),
        "{log}"
    );
    assert!(alive(a) && alive(bp));
    assert_eq!(started(&sb, "a").len(), 1);
    assert_eq!(started(&sb, "b").len(), 1);
    assert!(!log.contains("Stopping"), "{log}");
}

#[test]
fn invalid_files_are_refused_until_fixed() {
    let sb = Sandbox::new();
    let good = config(&[svc("a", "x")], "");
    let b = sb.start(&good, &["--check-interval", "1h"]);
    let a = wait_started(&sb, &b, "a", 1)[0].1;
    let steps: [(&str, &str); 3] = [
        ("{ this is not json", "it has errors"),
        ("", "it is empty"),
        (&good[..good.len() / 2], "it has errors"),
    ];
    let cfg = sb.file("config.json");
    for (n, (text, why)) in steps.iter().enumerate() {
        sb.write("config.json", text);
        hup(&b);
        let log = b.wait_log("the refusal", T, |l| {
            l.matches("was not loaded").count() == n + 1
        });
        let last = log.rsplit("was not loaded").next().unwrap_or("");
        assert!(
            last.starts_with(&format!(": {why}; still running the config loaded at")),
            "{log}"
        );
        if !text.is_empty() {
            // This refusal says where in the file the parser stopped (the file is one line).
            assert!(last.contains("config.json:1:"), "step {n}: {last}");
        }
        assert!(alive(a), "nothing running is disturbed");
        assert_eq!(reloads(&log), 0);
        // `status` says at once that the file on disk is not in effect, and why (the
        // state file is rewritten within 200 ms of a change, not at the 10 s heartbeat).
        let warning = format!("WARNING: the config file on disk is NOT in effect: {why}");
        wait_for(STATUS_SOON, || {
            let (_, out, _) = client(&cfg, &["status"], &[]);
            out.contains(&warning).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "status never said {warning:?}; it says:\n{}",
                client(&cfg, &["status"], &[]).1
            )
        });
    }
    // The same invalid content again is not reported again.
    hup(&b);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.log().matches("was not loaded").count(), 3);

    sb.write("config.json", &config(&[svc("a", "x"), svc("b", "y")], ""));
    hup(&b);
    let log = b.wait_log("the fixed file", T, |l| reloads(l) == 1);
    assert!(
        log.contains("1 added (b), 0 removed, 0 changed, 1 kept"),
        "{log}"
    );
    assert!(alive(a));
    assert_eq!(started(&sb, "a").len(), 1);
    wait_started(&sb, &b, "b", 1);
    // The fixed file is in effect: the warning is gone from `status`.
    wait_for(STATUS_SOON, || {
        let (code, out, _) = client(&cfg, &["status"], &[]);
        (code == 0 && out.contains("\nb ") && !out.contains("NOT in effect")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "status still warns after the fix:\n{}",
            client(&cfg, &["status"], &[]).1
        )
    });
}

/// Replace the config file by a rename, as editors save: complete, so applied at once
/// (an in-place write is applied once it has settled, see `config_settle`).
fn replace_config(sb: &Sandbox, text: &str) {
    let tmp = sb.write("config.json.new", text);
    std::fs::rename(tmp, sb.file("config.json")).expect("rename the new config");
}

#[test]
fn sighup_applies_within_100ms_and_polling_within_the_interval() {
    let sb = Sandbox::new();
    let b = sb.start(&config(&[svc("a", "x")], ""), &["--check-interval", "1h"]);
    wait_started(&sb, &b, "a", 1);
    replace_config(&sb, &config(&[svc("a", "x"), svc("b", "y")], ""));
    let t0 = Instant::now();
    hup(&b);
    b.wait_log("the reload", T, |l| reloads(l) == 1);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "SIGHUP reload took {took:?}"
    );

    // Without a signal: check_interval 300ms, an in-place write, config_settle 200ms: the
    // edit is seen within ~0.3 s and applied once 0.2 s old.
    let sb = Sandbox::new();
    let globals = r#""check_interval": "300ms", "config_settle": "200ms","#;
    let b = sb.start(&config(&[svc("a", "x")], globals), &[]);
    wait_started(&sb, &b, "a", 1);
    let t0 = Instant::now();
    sb.write(
        "config.json",
        &config(&[svc("a", "x"), svc("b", "y")], globals),
    );
    b.wait_log("the polled reload", T, |l| reloads(l) == 1);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "polled reload took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(200),
        "a change is given time to settle"
    );
}

/// The file is compared by content: an edit that keeps the size and gets the old mtime
/// back (as a copy with `cp -p`, or a coarse shared file system, can leave it) is seen.
#[test]
fn same_size_edit_with_the_old_mtime_is_still_seen() {
    let sb = Sandbox::new();
    let poll = r#""check_interval": "100ms","#;
    let b = sb.start(&config(&[svc("a", "x1")], poll), &[]);
    wait_started(&sb, &b, "a", 1);
    let path = sb.file("config.json");
    let meta = std::fs::metadata(&path).expect("config metadata");
    let edited = config(&[svc("a", "x2")], poll);
    assert_eq!(edited.len() as u64, meta.len(), "the edit keeps the size");
    std::fs::write(&path, &edited).expect("edit");
    let mtime = meta.modified().expect("mtime");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .expect("restore the mtime");
    let after = std::fs::metadata(&path).expect("config metadata");
    assert_eq!(
        (after.len(), after.modified().ok()),
        (meta.len(), Some(mtime))
    );

    let log = b.wait_log("the polled reload", T, |l| reloads(l) == 1);
    assert!(
        log.contains("Config reloaded: 0 added, 0 removed, 1 changed (a), 0 kept"),
        "{log}"
    );
    assert_eq!(
        wait_started(&sb, &b, "a", 2)[1].0,
        "x2",
        "the new command runs"
    );
}

#[test]
fn fifty_quick_edits_end_in_the_last_state() {
    let sb = Sandbox::new();
    let b = sb.start(
        &config(&[svc("base", "b")], r#""check_interval": "50ms","#),
        &[],
    );
    let base = wait_started(&sb, &b, "base", 1)[0].1;
    for i in 0..50 {
        // Each edit swaps the extra task for another one and changes `flip`'s command.
        let tasks = [
            svc("base", "b"),
            svc(&format!("extra{i}"), "e"),
            svc("flip", &format!("f{i}")),
        ];
        sb.write(
            "config.json",
            &config(&tasks, r#""check_interval": "50ms","#),
        );
        if i % 3 == 0 {
            hup(&b);
        }
        std::thread::sleep(Duration::from_millis(7));
    }
    // Converged: flip runs f49, extra49 runs, no other extra lives.
    let flips = wait_for(T, || {
        let s = started(&sb, "flip");
        (s.last().map(|(t, _)| t.as_str()) == Some("f49")).then_some(s)
    })
    .unwrap_or_else(|| panic!("flip never ran f49; log:\n{}", b.log()));
    wait_started(&sb, &b, "extra49", 1);
    let last_flip = flips.last().unwrap().1;
    wait_for(T, || {
        let others_dead = flips
            .iter()
            .filter(|(_, p)| *p != last_flip)
            .all(|(_, p)| !alive(*p));
        let extras_dead = (0..49).all(|i| {
            started(&sb, &format!("extra{i}"))
                .iter()
                .all(|(_, p)| !alive(*p))
        });
        (others_dead && extras_dead).then_some(())
    })
    .unwrap_or_else(|| panic!("orphaned processes after the edits; log:\n{}", b.log()));
    assert!(alive(last_flip) && alive(base));
    assert_eq!(started(&sb, "base").len(), 1, "base never restarted");
    // Exactly the processes of the last state are children of bansuri (its guardian, the
    // one child that is not a task, aside).
    let kids: Vec<i32> =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", b.pid(), b.pid()))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p| alive(*p))
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/environ"))
                    .is_ok_and(|e| e.contains("BANSURI_TASK="))
            })
            .collect();
    assert_eq!(
        kids.len(),
        3,
        "base, extra49, flip; found {kids:?}; log:\n{}",
        b.log()
    );
}

#[test]
fn globals_change_live() {
    let sb = Sandbox::new();
    // The job log is named in the config (not on the command line, which would win over
    // the file), so that a reload can move it.
    let (log1, log2) = (sb.file("log.txt"), sb.file("log2.txt"));
    let log_file = |p: &std::path::Path| format!(r#""log_file": "{}","#, p.display());
    let mut b = sb.start_logging_to(
        &config(&[svc("a", "x")], &log_file(&log1)),
        &[],
        log1.clone(),
    );
    wait_started(&sb, &b, "a", 1);
    let tasks = |line: &str| {
        [
            svc("a", "x"),
            format!(r#"{{"name": "j", "command": "echo {line}"}}"#),
        ]
    };
    let globals = r#""log_format": "json", "check_interval": "200ms", "max_parallel": 3,"#;
    let json_cfg = |line: &str, extra: &str| config(&tasks(line), &format!("{globals} {extra}"));
    sb.write("config.json", &json_cfg("in json", &log_file(&log1)));
    hup(&b);
    let log = b.wait_log("json lines", T, |l| l.contains(r#""line":"in json""#));
    assert!(log.contains("check_interval is now 200ms"), "{log}");
    // The new interval is in effect: the next edit is picked up without a signal.
    sb.write("config.json", &json_cfg("again", &log_file(&log1)));
    b.wait_log(
        "polled reload at the new interval",
        Duration::from_secs(3),
        |l| l.contains(r#""line":"again""#),
    );

    // A new log_file: the old log says where the job log goes on, the new one where it
    // came from, and the new file gets what follows.
    sb.write("config.json", &json_cfg("in log2", &log_file(&log2)));
    hup(&b);
    b.log = log2.clone();
    let new = b.wait_log("the job log in log2.txt", T, |l| {
        l.contains(r#""line":"in log2""#)
    });
    let continued = format!("Job log continued from {}", log1.display());
    assert!(
        new.contains(&continued),
        "{continued:?} in log2.txt:\n{new}"
    );
    let old = sb.read("log.txt");
    let continues = format!("The job log continues in {}", log2.display());
    assert!(old.contains(&continues), "{continues:?} in log.txt:\n{old}");
    assert!(
        !old.contains(r#""line":"in log2""#),
        "nothing after the switch in log.txt:\n{old}"
    );

    // state_dir cannot change live: the log says so, and the old one stays in use.
    let moved = format!("{} \"state_dir\": \"state2\",", log_file(&log2));
    sb.write("config.json", &json_cfg("in log2", &moved));
    hup(&b);
    let log = b.wait_log("the state_dir warning", T, |l| {
        l.contains("take effect when bansuri starts again")
    });
    assert!(
        log.contains("state_dir or dashboard changed in the config: they take effect when bansuri starts again"),
        "{log}"
    );
    assert!(
        !sb.file("state2").exists(),
        "state2 is not used before a restart"
    );
    assert!(sb.file(".bansuri/config.json/state.json").exists());
}

#[test]
fn an_unchanged_config_re_read_is_one_debug_line_and_nothing_at_info() {
    let cfg = config(&[svc("a", "one")], r#""check_interval": "100ms","#);
    let re_reads = |log: &str| log.matches("Config file re-read: unchanged").count();
    // The INFO instance starts first: by the time the DEBUG one has checked three times,
    // it has checked at least as often.
    let quiet = Sandbox::new();
    let q = quiet.start(&cfg, &[]);
    wait_started(&quiet, &q, "a", 1);
    let loud = Sandbox::new();
    let l = loud.start(&cfg, &["-v"]);
    let log = l.wait_log("three config checks at DEBUG", T, |log| re_reads(log) >= 3);
    assert!(
        log.contains("[MASTER] DEBUG: Config file re-read: unchanged (next check in 100ms)"),
        "log:\n{log}"
    );
    assert_eq!(reloads(&log), 0, "nothing changed; log:\n{log}");
    let info = q.log();
    assert_eq!(re_reads(&info), 0, "no line at INFO; log:\n{info}");
    assert_eq!(reloads(&info), 0, "log:\n{info}");
}

#[test]
fn a_reloaded_config_logs_its_warnings_each_time_it_is_applied() {
    let sb = Sandbox::new();
    let b = sb.start(&config(&[svc("a", "one")], ""), &["--check-interval", "1h"]);
    wait_started(&sb, &b, "a", 1);
    // Seed 003's harmless `times` alone: the reload applies, with its warning.
    let cfg = config(
        &[
            svc("a", "one"),
            r#"{"name": "dp", "command": "true", "times": 5}"#.to_owned(),
        ],
        "",
    );
    sb.write("config.json", &cfg);
    hup(&b);
    let warning = "[MASTER] WARNING: Config: `times: 5` has no effect in task `dp`";
    let log = b.wait_log("the reload and dp's run", T, |l| {
        l.contains("[dp] Process finished with code 0")
    });
    assert_eq!(reloads(&log), 1, "log:\n{log}");
    assert_eq!(log.matches(warning).count(), 1, "log:\n{log}");
    // A forced re-read of the same content applies it again, and says so again.
    hup(&b);
    let log = b.wait_log("the second reload", T, |l| reloads(l) == 2);
    assert_eq!(log.matches(warning).count(), 2, "log:\n{log}");
}

/// A reload with a duration beyond any bound (`"timer": 1e13`, a huge `restart-delay`)
/// is refused like any invalid file, saying the maximum; bansuri (which died of an
/// overflow in clock arithmetic, exit 101) keeps running its tasks and accepts a good file
/// afterwards.
#[test]
fn a_reload_with_huge_durations_is_refused_and_bansuri_keeps_running() {
    let sb = Sandbox::new();
    let good = config(&[svc("a", "x")], "");
    let b = sb.start(&good, &["--check-interval", "1h"]);
    let a = wait_started(&sb, &b, "a", 1)[0].1;
    let huge = [
        r#"{"name": "tick", "command": "true", "timer": 1e13}"#,
        r#"{"name": "tick", "command": "false", "on-fail": "restart", "restart-delay": "1e13", "max-restart-delay": 1e15}"#,
    ];
    for (n, task) in huge.iter().enumerate() {
        sb.write(
            "config.json",
            &config(&[svc("a", "x"), task.to_string()], ""),
        );
        hup(&b);
        let log = b.wait_log("the refusal", T, |l| {
            l.matches("was not loaded").count() == n + 1
        });
        assert!(
            log.contains("is too long a duration: the maximum is 100 years"),
            "{log}"
        );
        assert!(alive(b.pid()), "bansuri died:\n{log}");
        assert!(alive(a), "a running task was disturbed");
        assert_eq!(reloads(&log), 0);
    }
    sb.write(
        "config.json",
        &config(
            &[
                svc("a", "x"),
                r#"{"name": "tick", "command": "true", "timer": "1h"}"#.into(),
            ],
            "",
        ),
    );
    hup(&b);
    let log = b.wait_log("the good file", T, |l| reloads(l) == 1);
    assert!(log.contains("1 added (tick)"), "{log}");
    assert!(alive(b.pid()) && alive(a));
}
