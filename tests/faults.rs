//! Faults from outside: a full disk under the job log, fd exhaustion, a config file that
//! vanishes or becomes unreadable.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A small tmpfs, unmounted on drop (needs root; the tests run as root in CI).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn new(dir: std::path::PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?
            .success();
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_log_disk_is_reported_once_children_keep_running_and_logging_resumes() {
    let sb = Sandbox::new();
    let Some(fs) = Tmpfs::new(sb.file("small"), "256k") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: mount must work"
        );
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let log = fs.0.join("job.log");
    let filler = fs.0.join("filler");
    // Fill the disk but for a little room.
    std::fs::write(&filler, vec![b'f'; 244 * 1024]).unwrap();
    sb.write(
        "config.json",
        r#"{"scripts": [{"name": "chatty", "command": "i=0; while true; do i=$((i+1)); echo line $i; echo $i > count; sleep 0.002; done"}]}"#,
    );
    let child = Command::new(BIN)
        .args(["--config", sb.file("config.json").to_str().unwrap()])
        .arg("--log-file")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = Bansuri {
        child: Some(child),
        log: log.clone(),
    };
    let count = || sb.read("count").trim().parse::<u64>().unwrap_or(0);
    // The disk fills; the child goes on (it is never blocked on a full pipe).
    // Wait until the log stops growing: the disk is full.
    let size = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut last = (0, std::time::Instant::now());
    wait_for(T, || {
        let s = size();
        if s != last.0 {
            last = (s, std::time::Instant::now());
        }
        (s > 0 && last.1.elapsed() > Duration::from_millis(500)).then_some(())
    })
    .expect("the log fills the disk");
    let c1 = count();
    wait_for(T, || (count() > c1 + 300).then_some(()))
        .expect("the child keeps running with the disk full");
    // Space returns: logging resumes.
    std::fs::remove_file(&filler).unwrap();
    let c2 = count();
    wait_for(T, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .rev()
            .take(50)
            .any(|l| {
                l.split("| line ")
                    .nth(1)
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > c2)
            })
            .then_some(())
    })
    .expect("logging resumes once there is space again");
    b.signal(libc::SIGTERM);
    let (st, stderr) = b.wait(T).expect("exits");
    assert_eq!(st.code(), Some(0), "{stderr}");
    let reports = stderr.matches("cannot write the job log").count();
    assert_eq!(
        reports, 1,
        "one report per episode of a full disk, got:\n{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // No record was glued onto one the full disk cut: each line holds one record.
    let text = std::fs::read_to_string(&log).unwrap();
    for l in text.lines() {
        let records = l.matches("] [chatty] ").count() + l.matches("] [MASTER] ").count();
        assert!(records <= 1, "a glued record in the job log: {l:?}");
    }
    // What was dropped is counted, once writing worked again.
    let lost: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split("[MASTER] WARNING: ").nth(1))
        .filter_map(|m| m.strip_suffix(" lines lost (disk full)"))
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(lost.len(), 1, "one lost-lines report: {lost:?}");
    // The count is right: the child's lines missing from the log (the one cut by the
    // full disk is counted as lost too).
    let seen: std::collections::BTreeSet<u64> = text
        .lines()
        .filter_map(|l| l.split("] [chatty] | line ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let last = *seen.iter().next_back().unwrap();
    let missing = (1..=last).filter(|n| !seen.contains(n)).count() as u64;
    assert!(
        missing > 0 && (missing..=missing + 1).contains(&lost[0]),
        "{missing} lines missing, {} reported lost",
        lost[0]
    );
}

#[test]
fn fd_exhaustion_is_a_per_task_error_not_a_crash() {
    let sb = Sandbox::new();
    let tasks: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"name": "t{i}", "command": "sleep 1"}}"#))
        .collect();
    sb.write(
        "config.json",
        &format!(r#"{{"scripts": [{}]}}"#, tasks.join(",")),
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64; exec {BIN} --config config.json --exit-when-done --log-file log.txt"
        ))
        .current_dir(sb.path())
        .output()
        .unwrap();
    let log = sb.read("log.txt");
    assert_eq!(
        out.status.code(),
        Some(3),
        "some tasks failed, bansuri did not crash:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = log.matches("Failed to start").count();
    assert!(
        failed > 0 && failed < 100,
        "some ran, some could not: {failed}"
    );
    assert!(log.contains("Too many open files"), "the reason is named");
    assert!(log.contains("All tasks done"), "{log}");
}

#[test]
fn config_that_vanishes_or_becomes_unreadable_keeps_the_config_in_effect() {
    let sb = Sandbox::new();
    let b = sb.start(
        r#"{"check_interval": "100ms", "scripts": [{"name": "s", "command": "echo $$ > pid; exec sleep 300"}]}"#,
        &[],
    );
    let pid: i32 = wait_for(T, || sb.read("pid").trim().parse().ok()).expect("started");
    let cfg = sb.file("config.json");
    std::fs::rename(&cfg, sb.file("moved.json")).unwrap();
    b.wait_log("the missing file reported", T, |l| {
        l.contains("was not loaded: cannot read it")
    });
    // Back, but unreadable (a directory in its place).
    std::fs::create_dir(&cfg).unwrap();
    b.wait_log("the unreadable file reported", T, |l| {
        l.matches("was not loaded").count() >= 2
    });
    assert!(alive(pid), "the config in effect stays");
    assert!(!b.log().contains("Config reloaded"));
    std::fs::remove_dir(&cfg).unwrap();
    std::fs::rename(sb.file("moved.json"), &cfg).unwrap();
    b.wait_log("back in effect", T, |l| {
        l.contains("is the config in effect again")
    });
    assert!(alive(pid));
}

/// bansuri SIGKILLed: within a second no process of any task's group is alive — neither
/// the main processes (PDEATHSIG) nor what they started (the guardian ends the groups).
#[test]
fn sigkill_of_bansuri_leaves_no_group_member_alive() {
    let sb = Sandbox::new();
    let b = sb.start(
        r#"{"scripts": [
            {"name": "a", "command": "sleep 300 & echo $! >> pids; echo $$ >> pids; sleep 300; true"},
            {"name": "b", "command": "trap '' TERM; (sleep 300; true) & echo $! >> pids; echo $$ >> pids; wait"}
        ]}"#,
        &[],
    );
    let pids: Vec<i32> = wait_for(T, || {
        let p: Vec<i32> = sb
            .read("pids")
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (p.len() == 4).then_some(p)
    })
    .expect("tasks started");
    let pgids: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|p| !group_members(*p).is_empty())
        .collect();
    assert_eq!(pgids.len(), 2, "two groups: {pids:?}");
    b.signal(libc::SIGKILL);
    let t0 = std::time::Instant::now();
    wait_for(Duration::from_secs(5), || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "survivors: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        )
    });
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    for g in pgids {
        assert!(group_members(g).is_empty(), "group {g} not empty");
    }
}

/// A child that double-forks and setsid()s away is reported, and ended at shutdown.
#[test]
fn an_escaped_process_is_reported_and_ended_at_shutdown() {
    let sb = Sandbox::new();
    let mut b = sb.start(
        r#"{"scripts": [
            {"name": "sneaky", "command": "setsid sh -c 'echo $$ > escaped; exec sleep 300' & sleep 0.2; exit 0"},
            {"name": "svc", "command": "exec sleep 300"}
        ]}"#,
        &[],
    );
    let pid: i32 = wait_for(T, || sb.read("escaped").trim().parse().ok()).expect("escaped pid");
    b.wait_log("the escape reported", T, |l| {
        l.contains("left its task's process group")
    });
    let log = b.log();
    assert!(
        log.contains(&format!(
            "[sneaky] WARNING: process {pid} (sleep 300) left its task's process group"
        )),
        "{log}"
    );
    assert!(alive(pid));
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    wait_for(Duration::from_secs(2), || (!alive(pid)).then_some(()))
        .expect("the escapee is ended at shutdown");
}
