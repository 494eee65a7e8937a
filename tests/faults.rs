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

/// A task whose main process stays alive while a child of it calls `setsid`: the child is
/// in no group bansuri signals.
const HOLDER: &str = r#"{"sample_interval": "1s", "scripts": [
    {"name": "holder", "command": "setsid sleep 1000 & echo $! > escaped; exec sleep 300"},
    {"name": "svc", "command": "exec sleep 300"}
]}"#;

fn escaped_pid(sb: &Sandbox, b: &Bansuri) -> i32 {
    let pid: i32 = wait_for(T, || sb.read("escaped").trim().parse().ok())
        .unwrap_or_else(|| panic!("no escapee pid; log:\n{}", b.log()));
    // setsid has run once the process leads its own group.
    wait_for(T, || (group_members(pid) == vec![pid]).then_some(()))
        .unwrap_or_else(|| panic!("{pid} never led its own group"));
    pid
}

/// Wait for the report of `pid` escaping `task`'s group. (The command line in it is the
/// one read when found: `setsid sleep 1000` if found before setsid(1) exec'd sleep.)
fn wait_escape_line(b: &Bansuri, task: &str, pid: i32) -> String {
    let head = format!("[{task}] WARNING: process {pid} (");
    let text = b.wait_log("the escape reported", T, |l| {
        l.lines()
            .any(|l| l.contains(&head) && l.contains(") left its task's process group"))
    });
    text.lines()
        .find(|l| l.contains(&head))
        .unwrap_or_default()
        .to_owned()
}

fn wait_reported(b: &Bansuri, pid: i32) {
    let line = wait_escape_line(b, "holder", pid);
    assert!(line.contains("sleep 1000)"), "{line}");
}

/// Reported at a sample (the main process is alive: no run end reveals it), and a `stop`
/// of its task ends it with the task's group, while bansuri runs on.
#[test]
fn a_process_escaping_while_its_main_process_lives_is_reported_and_stopped_with_its_task() {
    let sb = Sandbox::new();
    let _k = KillListed(vec![sb.file("escaped")]);
    let b = sb.start(HOLDER, &[]);
    let pid = escaped_pid(&sb, &b);
    wait_reported(&b, pid);
    assert!(alive(pid), "reported, not ended, while its run lasts");
    let state = sb.file(".bansuri/config.json/state.json");
    wait_for(T, || {
        let doc = bansuri::control::state::StateDoc::read(&state).ok()?;
        let t = doc.tasks.iter().find(|t| t.name == "holder")?;
        t.escaped
            .iter()
            .any(|p| p.pgid == pid as u32 && p.pid_start.is_some())
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the escapee is not in the state file; log:\n{}", b.log()));
    let (code, out, err) = client(&sb.file("config.json"), &["stop", "holder"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(T, || (!alive(pid)).then_some(())).unwrap_or_else(|| {
        panic!(
            "the escapee survives the stop of its task; log:\n{}",
            b.log()
        )
    });
    b.wait_log("the escapee's end logged", T, |l| {
        l.contains(&format!(
            "process group {pid} (process {pid}), which had escaped"
        ))
    });
    assert!(b.child.is_some() && alive(b.pid()), "bansuri runs on");
}

/// A graceful shutdown ends it, also when it ignores SIGTERM (SIGKILL after the grace).
#[test]
fn a_process_escaping_while_its_main_process_lives_is_ended_at_shutdown() {
    let sb = Sandbox::new();
    let _k = KillListed(vec![sb.file("escaped")]);
    let mut b = sb.start(
        r#"{"sample_interval": "1s", "scripts": [
            {"name": "holder", "stoptime": "1s",
             "command": "setsid sh -c 'trap \"\" TERM; exec sleep 1000' & echo $! > escaped; exec sleep 300"}
        ]}"#,
        &[],
    );
    let pid = escaped_pid(&sb, &b);
    wait_escape_line(&b, "holder", pid);
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    wait_for(Duration::from_secs(5), || (!alive(pid)).then_some(()))
        .unwrap_or_else(|| panic!("the escapee survives the shutdown; log:\n{}", b.log()));
}

/// SIGKILL of bansuri: the guardian ends the escapee's group too.
#[test]
fn sigkill_of_bansuri_ends_a_process_that_escaped_while_its_main_process_lives() {
    let sb = Sandbox::new();
    let _k = KillListed(vec![sb.file("escaped")]);
    let b = sb.start(HOLDER, &[]);
    let pid = escaped_pid(&sb, &b);
    wait_reported(&b, pid);
    b.signal(libc::SIGKILL);
    wait_for(Duration::from_secs(10), || (!alive(pid)).then_some(()))
        .unwrap_or_else(|| panic!("the escapee {pid} survives bansuri's SIGKILL"));
}

/// The guardian killed too: the state file lists the escapee, and the next bansuri on the
/// same state directory ends it.
#[test]
fn an_escapee_left_by_a_killed_bansuri_and_guardian_is_ended_by_the_next_start() {
    let sb = Sandbox::new();
    let _k = KillListed(vec![sb.file("escaped")]);
    let mut b = sb.start(HOLDER, &[]);
    let pid = escaped_pid(&sb, &b);
    wait_reported(&b, pid);
    let state = sb.file(".bansuri/config.json/state.json");
    wait_for(T, || {
        let doc = bansuri::control::state::StateDoc::read(&state).ok()?;
        let t = doc.tasks.iter().find(|t| t.name == "holder")?;
        t.escaped.iter().any(|p| p.pgid == pid as u32).then_some(())
    })
    .unwrap_or_else(|| panic!("the escapee is not in the state file; log:\n{}", b.log()));
    b.kill_guardian_then_self(T);
    assert!(alive(pid), "precondition: nothing else ends the escapee");
    let b2 = sb.start(
        r#"{"scripts": [{"name": "quiet", "command": "true"}]}"#,
        &[],
    );
    wait_for(T, || (!alive(pid)).then_some(())).unwrap_or_else(|| {
        panic!(
            "the escapee {pid} survives the next start; log:\n{}",
            b2.log()
        )
    });
    b2.wait_log("the stale escapee reported", T, |l| {
        l.contains(&format!("Ended stale process group {pid} of `holder`"))
    });
}

/// A child that double-forks and setsid()s away is reported when its run's main process
/// exits, and ended with that run (bansuri runs on).
#[test]
fn an_escaped_process_is_reported_and_ended_with_its_run() {
    let sb = Sandbox::new();
    let _k = KillListed(vec![sb.file("escaped")]);
    let b = sb.start(
        r#"{"scripts": [
            {"name": "sneaky", "command": "setsid sh -c 'echo $$ > escaped; exec sleep 300' & sleep 0.2; exit 0"},
            {"name": "svc", "command": "exec sleep 300"}
        ]}"#,
        &[],
    );
    let pid: i32 = wait_for(T, || sb.read("escaped").trim().parse().ok()).expect("escaped pid");
    let line = wait_escape_line(&b, "sneaky", pid);
    assert!(line.contains("sleep 300)"), "{line}");
    wait_for(T, || (!alive(pid)).then_some(()))
        .unwrap_or_else(|| panic!("the escapee outlives its run; log:\n{}", b.log()));
    b.wait_log("the run over", T, |l| {
        l.contains("[sneaky] Process finished with code 0")
    });
    assert!(alive(b.pid()), "bansuri runs on");
}

/// bansuri SIGKILLed while a `notify_command` hangs: the guardian ends the notifier's group
/// (its shell dies of PDEATHSIG, what it started in the background would not).
#[test]
fn sigkill_of_bansuri_ends_hanging_notifiers() {
    let sb = Sandbox::new();
    let _k = KillListed(vec![sb.file("npids")]);
    let b = sb.start(
        r#"{"notify_command": "sleep 1000 & echo $! >> npids; wait", "notify_timeout": "10m",
            "scripts": [{"name": "fails", "command": "exit 1", "timer": "1s", "notify": "mail"}]}"#,
        &[],
    );
    // Two notifiers whose start is in the job log (written after the guardian was told:
    // a SIGKILL between a spawn and that store is a window no test can close).
    b.wait_log("two notifiers started", T, |l| {
        l.matches("notify_command started").count() >= 2
    });
    let pids: Vec<i32> = wait_for(T, || {
        let p: Vec<i32> = sb
            .read("npids")
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .take(2)
            .collect();
        (p.len() == 2).then_some(p)
    })
    .unwrap_or_else(|| panic!("notifiers did not start; log:\n{}", b.log()));
    assert!(pids.iter().all(|p| alive(*p)), "precondition: they hang");
    b.signal(libc::SIGKILL);
    wait_for(Duration::from_secs(10), || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "notifier processes survive: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        )
    });
}
