//! Supervisor parity with real processes: numprocs, autorestart, FATAL, stopsignal and
//! stoptime, umask, user, priority, depends-on, and a Taskmaster YAML file run unchanged.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bansuri::control::state::StateDoc;
use common::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn numprocs_instances_and_reload_down_to_one() {
    let sb = Sandbox::new();
    let cfg = |n: u32| {
        format!(
            r#"{{"scripts": [{{"name": "w", "numprocs": {n},
                "command": "echo $BANSURI_INSTANCE $$ >> inst.txt; exec sleep 300"}}]}}"#
        )
    };
    let b = sb.start(&cfg(3), &["--check-interval", "1h"]);
    let lines = wait_for(T, || {
        let t = sb.read("inst.txt");
        (t.lines().count() == 3).then_some(t)
    })
    .expect("three instances");
    let mut seen: Vec<(u32, i32)> = lines
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 1, 2],
        "distinct BANSURI_INSTANCE"
    );
    // The instances may write before bansuri flushes its log: wait for the lines.
    b.wait_log("an Executing line per instance", T, |log| {
        (0..3).all(|i| log.contains(&format!("[w:{i}] Executing")))
    });
    wait_status_tasks(&sb, &["w:0", "w:1", "w:2"]);
    sb.write("config.json", &cfg(1));
    b.signal(libc::SIGHUP);
    let log = b.wait_log("the reload", T, |l| l.contains("Config reloaded"));
    assert!(
        log.contains("0 added, 2 removed (w:1, w:2), 0 changed, 1 kept"),
        "{log}"
    );
    wait_for(T, || (!alive(seen[1].1) && !alive(seen[2].1)).then_some(()))
        .expect("w:1, w:2 stopped");
    assert!(alive(seen[0].1), "w:0 kept");
    wait_status_tasks(&sb, &["w:0"]);
}

/// Wait until `status --json` lists exactly the tasks `names` (sorted); panic with what
/// it lists otherwise.
fn wait_status_tasks(sb: &Sandbox, names: &[&str]) {
    // Until the first state file is written, `status` fails: that is waited out too.
    let listed = || -> Result<Vec<String>, String> {
        let (code, json, err) = client(&sb.file("config.json"), &["status", "--json"], &[]);
        if code != 0 {
            return Err(format!("exit {code}: {err}"));
        }
        let doc = StateDoc::parse(&json).map_err(|e| e.to_string())?;
        let mut names: Vec<String> = doc.tasks.into_iter().map(|t| t.name).collect();
        names.sort();
        Ok(names)
    };
    wait_for(T, || (listed().ok()? == names).then_some(()))
        .unwrap_or_else(|| panic!("status --json lists {:?}, not {names:?}", listed()));
}

#[test]
fn autorestart_policies_and_fatal() {
    let sb = Sandbox::new();
    // Every task restarts after 50 ms if it restarts at all, so a wrong restart of `never`,
    // `unexp` or the FATAL `crashy` shows long before the asserts below.
    let cfg = r#"{"scripts": [
        {"name": "always", "command": "echo run >> always.txt; exit 0", "autorestart": "always", "restart-delay": "50ms"},
        {"name": "unexp", "command": "echo run >> unexp.txt; exit 2", "autorestart": "unexpected", "exitcodes": [0, 2], "restart-delay": "50ms"},
        {"name": "unexp1", "command": "echo run >> unexp1.txt; exit 1", "autorestart": "unexpected", "restart-delay": "50ms", "max-restart-delay": "50ms", "times": 3},
        {"name": "never", "command": "echo run >> never.txt; exit 1", "autorestart": "never", "restart-delay": "50ms"},
        {"name": "crashy", "command": "echo run >> crashy.txt; sleep 0.1; exit 1", "autorestart": "always",
         "starttime": 1, "startretries": 3, "restart-delay": "50ms", "max-restart-delay": "50ms"}
    ]}"#;
    let b = sb.start(cfg, &[]);
    let runs = |f: &str| sb.read(f).lines().count();
    b.wait_log("FATAL", T, |l| l.contains("[crashy] ERROR: FATAL"));
    // `always` restarting is the clock: 8 more of its runs after the FATAL, each at least
    // one 50 ms restart delay after the last, give every would-be extra start time to show.
    let clock = runs("always.txt");
    b.wait_log("8 more runs of `always`", T, |_| {
        runs("always.txt") >= clock + 8
    });
    let log = b.log();
    assert_eq!(
        runs("crashy.txt"),
        4,
        "startretries 3: FATAL after the first failed start and 3 retries, never again:\n{log}"
    );
    assert_eq!(runs("unexp.txt"), 1, "2 is expected:\n{log}");
    assert_eq!(
        runs("unexp1.txt"),
        3,
        "1 is unexpected: restarted up to times:\n{log}"
    );
    assert_eq!(runs("never.txt"), 1, "never restarted:\n{log}");
    for (task, n) in [("never", 1), ("unexp", 1), ("unexp1", 3), ("crashy", 4)] {
        assert_eq!(
            count_events(&log, task, "Executing"),
            n,
            "{task} started {n} time(s):\n{log}"
        );
    }
    assert!(
        log.contains("exited 4 times in a row before staying up 1s (starttime; startretries: 3;"),
        "{log}"
    );
}

#[test]
fn stopsignal_int_and_stoptime_bound_the_wait() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "int", "stopsignal": "INT", "command": "trap 'echo got INT; exit 0' INT; echo ready; while true; do sleep 0.05; done"},
        {"name": "deaf", "stopsignal": "INT", "stoptime": "700ms", "command": "trap '' INT TERM; echo $$ > deaf.pid; echo ready; while true; do sleep 0.05; done"}
    ]}"#;
    let mut b = sb.start(cfg, &["--watchdog", "60s"]);
    b.wait_log("both ready", T, |l| {
        output_lines(l, "int").contains(&"ready") && output_lines(l, "deaf").contains(&"ready")
    });
    let t0 = Instant::now();
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    let took = t0.elapsed();
    let log = b.log();
    assert!(output_lines(&log, "int").contains(&"got INT"), "{log}");
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(5),
        "stoptime 0.7 s, not the 60 s watchdog: {took:?}"
    );
    assert!(
        log.contains("[deaf] WARNING: Still running at the end of its stop grace (700ms) after SIGINT: sending SIGKILL"),
        "{log}"
    );
}

/// The umask of this test process, which bansuri and its tasks inherit.
fn inherited_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        .expect("Umask: in /proc/self/status")
}

/// `u` (no `user`) starts through the clone-vfork path of spawn/fast.rs, `v` (`user:
/// nobody`, as root only) through the fork path: umask and priority apply on both, and
/// `v` gets nobody's uid, gid and groups, and no group of root's.
#[test]
fn umask_user_and_priority_apply_to_the_child() {
    assert_ne!(
        inherited_umask(),
        0o077,
        "the test must not already run with umask 077, or the umask check proves nothing"
    );
    let sb = Sandbox::new();
    // A directory anyone may write, for the task running as nobody.
    let shared = sb.file("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let u = r#"{"name": "u", "command": "touch made_u; stat -c %a made_u; nice; id -u",
          "working-directory": "shared", "umask": "077", "priority": 10}"#;
    let v = r#", {"name": "v", "command": "touch made_v; stat -c %a made_v; nice; id -u; id -g; id -G; echo $HOME $USER",
          "working-directory": "shared", "umask": "077", "priority": 5, "user": "nobody"}"#;
    let root = root_or_skip("task `v` (`user: nobody`, the fork path)");
    let cfg = format!(r#"{{"scripts": [{u}{}]}}"#, if root { v } else { "" });
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    let (st, err) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "{err}{log}");

    let me = nix::unistd::geteuid().to_string();
    assert_eq!(
        output_lines(&log, "u"),
        ["600", "10", me.as_str()],
        "u: umask 077 gives mode 600, nice 10, runs as bansuri's user: {log}"
    );
    if root {
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("read the user database")
            .expect("a user `nobody`");
        let (uid, gid) = (nobody.uid.to_string(), nobody.gid.to_string());
        let name = std::ffi::CString::new("nobody").unwrap();
        let mut groups: Vec<u32> = nix::unistd::getgrouplist(&name, nobody.gid)
            .expect("nobody's groups")
            .iter()
            .map(|g| g.as_raw())
            .collect();
        groups.sort();
        groups.dedup();
        let out = output_lines(&log, "v");
        assert_eq!(
            out.get(..4),
            Some(&["600", "5", uid.as_str(), gid.as_str()][..]),
            "v: mode 600, nice 5, nobody's uid and gid: {log}"
        );
        let mut got: Vec<u32> = out
            .get(4)
            .unwrap_or_else(|| panic!("no `id -G` line: {log}"))
            .split_whitespace()
            .map(|g| g.parse().expect("a gid"))
            .collect();
        got.sort();
        assert_eq!(got, groups, "v: nobody's groups, nothing else: {log}");
        assert!(!got.contains(&0), "no group of root's: {log}");
        assert!(
            out.get(5).is_some_and(|l| l.ends_with(" nobody")),
            "USER set: {log}"
        );
    }
}

#[test]
fn user_needs_root_and_a_known_user() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "c.json",
        r#"{"scripts": [{"name": "u", "command": "true", "user": "no-such-user-xyz"}]}"#,
    );
    let out = Command::new(BIN)
        .args(["validate", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    // A user the machine does not know (yet) is a warning: each start looks again.
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: `user` in task `u`: unknown user `no-such-user-xyz`"),
        "{text}"
    );
}

/// `user: root` from a bansuri that is not root is a config error that says so. Run as
/// root, the test drops to uid/gid 65534 with setpriv to see it.
#[test]
fn user_root_needs_root_says_validate_when_not_root() {
    if !root_or_skip("dropping to another uid with setpriv") {
        return;
    }
    let sb = Sandbox::new();
    // uid 65534 must be able to read the config in the (0700) temp dir.
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = sb.write(
        "c.json",
        r#"{"scripts": [{"name": "r", "command": "true", "user": "root"}]}"#,
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "validate",
        ])
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run setpriv (util-linux)");
    // A problem of the machine (who runs bansuri), not of the file: a warning, exit 0.
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: `user` in task `r`: running a task as `root` needs root, but bansuri runs as uid 65534"),
        "{text}"
    );
    assert!(text.contains("or start bansuri as root"), "{text}");
}

#[test]
fn depends_on_orders_and_skips() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "b", "command": "echo b >> order.txt", "depends-on": "a"},
        {"name": "a", "command": "sleep 0.3; echo a >> order.txt"},
        {"name": "fails", "command": "exit 5"},
        {"name": "c", "command": "echo c >> order.txt", "depends-on": ["fails"]}
    ]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(3), "a skipped task is a failure: {log}");
    assert_eq!(sb.read("order.txt"), "a\nb\n", "b after a, c never: {log}");
    assert!(
        log.contains("[c] WARNING: SKIPPED: dependency `fails` failed (exit 5)"),
        "{log}"
    );
    let row = log
        .lines()
        .find(|l| l.contains("[MASTER] c "))
        .expect("summary row");
    assert!(row.contains("SKIPPED"), "{row}");

    let cyc = sb.write(
        "cycle.json",
        r#"{"scripts": [{"name": "x", "command": "true", "depends-on": "y"}, {"name": "y", "command": "true", "depends-on": "x"}]}"#,
    );
    let out = Command::new(BIN)
        .args(["validate", "--config", cyc.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("dependency cycle: x -> y -> x"), "{err}");
}

#[test]
fn taskmaster_yaml_example_validates_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("examples/taskmaster");
    let sb = Sandbox::new();
    for f in ["config.yaml", "worker.sh", "prepare.sh", "flaky.sh"] {
        std::fs::copy(src.join(f), sb.file(f)).unwrap();
    }
    let cfg = sb.file("config.yaml");
    let out = Command::new(BIN)
        .args(["validate", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["prepare", "worker:0", "worker:1", "worker:2", "flaky"] {
        assert!(text.contains(name), "{text}");
    }
    let log = sb.file("log.txt");
    // bansuri runs with umask 077, so the workers' 0022 can only come from the YAML.
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--config",
        cfg.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
    ]);
    // SAFETY: umask(2) is async-signal-safe and touches nothing shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let mut b = Bansuri {
        child: Some(child),
        log,
    };
    b.wait_log("all three workers after prepare", T, |l| {
        (0..3).all(|i| {
            output_lines(l, &format!("worker:{i}"))
                .iter()
                .any(|x| x.contains("job 1 done"))
        })
    });
    let log = b.log();
    let prepared = log
        .find("[prepare] Process finished with code 0")
        .expect("prepare ran");
    let first_worker = log.find("[worker:0] Executing").expect("worker ran");
    assert!(prepared < first_worker, "workers wait for prepare:\n{log}");
    for i in 0..3 {
        let started = format!("worker {i} started");
        let line = output_lines(&log, &format!("worker:{i}"))
            .into_iter()
            .find(|l| l.starts_with(&started))
            .unwrap_or_else(|| panic!("no {started:?}: {log}"));
        assert!(line.contains("umask 0022,"), "umask 022 from YAML: {line}");
    }
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
    let log = b.log();
    for i in 0..3 {
        assert!(
            output_lines(&log, &format!("worker:{i}"))
                .contains(&format!("worker {i}: got SIGINT, finishing").as_str()),
            "{log}"
        );
    }
}

/// Rotated `files` (oldest first): each non-empty, at most `max` bytes (plus one write),
/// ending in a newline; every line whole. `counted` picks out the counter lines'
/// `<50 y> NNNNNNNNNNNN` payload (and checks or skips any other line); their numbers run
/// on without a gap or a repeat across the files. Returns (first, last) number.
fn check_rotated(
    files: &[std::path::PathBuf],
    max: u64,
    counted: impl Fn(&str) -> Option<&str>,
) -> (u64, u64) {
    let mut prev: Option<u64> = None;
    let mut first = None;
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!data.is_empty(), "{} is empty", f.display());
        assert!(
            data.len() as u64 <= max + 64 * 1024,
            "{} has {} bytes",
            f.display(),
            data.len()
        );
        assert!(data.ends_with(b"\n"), "{} ends mid-line", f.display());
        for line in String::from_utf8(data).unwrap().lines() {
            let Some(payload) = counted(line) else {
                continue;
            };
            let n: u64 = payload
                .strip_prefix(&"y".repeat(50))
                .and_then(|r| r.strip_prefix(' '))
                .filter(|d| d.len() == 12)
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("cut or garbled line in {}: {line:?}", f.display()));
            if let Some(p) = prev {
                assert_eq!(n, p + 1, "line lost or repeated in {}", f.display());
            }
            first.get_or_insert(n);
            prev = Some(n);
        }
    }
    (first.expect("counter lines"), prev.expect("counter lines"))
}

#[test]
fn task_output_rotates_at_1mb_with_3_backups() {
    let sb = Sandbox::new();
    // 20 MB of 64-byte lines: 50 'y', a space, a 12-digit counter, newline.
    let cfg = r#"{"scripts": [{"name": "big", "stdout": "out.log", "log-max-bytes": "1MB", "log-backups": 3,
        "command": ["python3", "-c", "import sys\nw = sys.stdout.write\nfor i in range(327680): w('y' * 50 + ' %012d\\n' % i)\n"]}]}"#;
    let mut b = sb.start(cfg, &["--exit-when-done"]);
    let (st, err) = b.wait(Duration::from_secs(60)).expect("exits");
    assert_eq!(st.code(), Some(0), "{err}{}", b.log());
    let base = sb.file("out.log");
    let files: Vec<_> = (1..=3)
        .rev()
        .map(|n| bansuri::rotate::RotatingFile::backup_path(&base, n))
        .chain([base.clone()])
        .collect();
    assert!(
        !bansuri::rotate::RotatingFile::backup_path(&base, 4).exists(),
        "3 backups, not more"
    );
    let (first, last) = check_rotated(&files, 1 << 20, |line| Some(line));
    assert!(first > 0, "older lines rotated away");
    assert_eq!(last, 327_679, "the newest line is in out.log");
}

#[test]
fn job_log_rotates_too() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [{"name": "big",
        "command": ["python3", "-c", "import sys\nw = sys.stdout.write\nfor i in range(100000): w('y' * 50 + ' %012d\\n' % i)\n"]}]}"#;
    let mut b = sb.start(
        cfg,
        &[
            "--exit-when-done",
            "--log-max-bytes",
            "1MB",
            "--log-backups",
            "2",
        ],
    );
    let (st, err) = b.wait(Duration::from_secs(60)).expect("exits");
    assert_eq!(st.code(), Some(0), "{err}");
    let base = b.log.clone();
    let files: Vec<_> = (1..=2)
        .rev()
        .map(|n| bansuri::rotate::RotatingFile::backup_path(&base, n))
        .chain([base.clone()])
        .collect();
    assert!(!bansuri::rotate::RotatingFile::backup_path(&base, 3).exists());
    // Every job log line is a whole prefixed line; big's output lines carry the counter.
    let (first, last) = check_rotated(&files, 1 << 20, |line| {
        assert!(line.starts_with('['), "a cut job log line: {line:?}");
        line.split_once("] [big] | ").map(|(_, payload)| payload)
    });
    assert!(first > 0, "older lines rotated away");
    assert_eq!(last, 99_999, "the newest output is in the live file");
    assert!(
        b.log().contains("All tasks done"),
        "the newest part is in the live file"
    );
}

/// `autostart: false` waits for `bansuri start`; a control command naming a numprocs
/// program acts on every instance.
#[test]
fn autostart_false_waits_for_start_and_commands_reach_every_instance() {
    let sb = Sandbox::new();
    let b = sb.start(
        r#"{"scripts": [
            {"name": "lazy", "command": "echo lazy ran", "autostart": false},
            {"name": "w", "command": "echo $$ >> w.pids; exec sleep 300", "numprocs": 2}
        ]}"#,
        &[],
    );
    let pids = wait_for(T, || {
        let p: Vec<i32> = sb
            .read("w.pids")
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (p.len() == 2).then_some(p)
    })
    .expect("two instances");
    assert!(!b.log().contains("lazy ran"), "not started by itself");
    let ctl = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(sb.file("config.json"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = ctl(&["start", "lazy"]);
    assert_eq!(code, Some(0), "{out}");
    b.wait_log("lazy ran", T, |l| l.contains("] [lazy] | lazy ran"));
    let (code, out) = ctl(&["stop", "w"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("`w:0`") && out.contains("`w:1`"), "{out}");
    wait_for(T, || pids.iter().all(|p| !alive(*p)).then_some(())).expect("both instances stopped");
}

#[test]
fn every_restart_is_a_run_and_every_failed_exit_a_failure() {
    // RUNS counts process starts and FAILURES failed process ends, so a task restarted
    // by `autorestart` / `on-fail: restart` shows each exit (it was `RUNS 1 FAILURES 0`).
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "u", "command": "echo x >> u.txt; exit 1", "autorestart": "unexpected",
         "restart-delay": "50ms", "max-restart-delay": "50ms"},
        {"name": "r", "command": "echo x >> r.txt; exit 1", "on-fail": "restart", "times": 1000,
         "restart-delay": "50ms", "max-restart-delay": "50ms"}
    ]}"#;
    let mut b = sb.start(cfg, &["--check-interval", "1h"]);
    let exits = |f: &str| sb.read(f).lines().count() as u64;
    let n = wait_for(T, || {
        let n = exits("u.txt").min(exits("r.txt"));
        (n >= 5).then_some(n)
    })
    .unwrap_or_else(|| panic!("five exits of each; log:\n{}", b.log()));
    let counters = |name: &str| -> Option<(u64, u64)> {
        let (code, json, _) = client(&sb.file("config.json"), &["status", "--json"], &[]);
        let doc = (code == 0).then(|| StateDoc::parse(&json).ok()).flatten()?;
        doc.task(name).map(|t| (t.runs, t.failures))
    };
    for name in ["u", "r"] {
        wait_for(T, || {
            let (runs, failures) = counters(name)?;
            (runs >= n && failures >= n).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "status --json: `{name}` runs and failures >= {n}, got {:?}; log:\n{}",
                counters(name),
                b.log()
            )
        });
    }
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "log:\n{log}");
    for name in ["u", "r"] {
        let lines = exits(&format!("{name}.txt"));
        // Columns after the name: STATE RUNS FAILURES CPU-TIME PEAK-RSS LAST.
        let row: Vec<u64> = log
            .lines()
            .find_map(|l| l.split(&format!("[MASTER] {name} ")).nth(1))
            .unwrap_or_else(|| panic!("no summary row for {name}; log:\n{log}"))
            .split_whitespace()
            .skip(1)
            .take(2)
            .map(|c| c.parse().expect("a count"))
            .collect();
        let (runs, failures) = (row[0], row[1]);
        // The last process may have been stopped by the shutdown: no failure.
        assert!(
            runs >= lines && failures + 1 >= lines && failures >= n,
            "{name}: {lines} processes ran, summary says RUNS {runs} FAILURES {failures}; log:\n{log}"
        );
    }
}
