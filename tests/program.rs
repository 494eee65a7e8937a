//! Supervisor parity with real processes: numprocs, autorestart, FATAL, stopsignal and
//! stoptime, umask, user, priority, depends-on, and a Taskmaster YAML file run unchanged.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
}

#[test]
fn autorestart_policies_and_fatal() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "always", "command": "echo run >> always.txt; exit 0", "autorestart": "always", "restart-delay": "50ms"},
        {"name": "unexp", "command": "echo run >> unexp.txt; exit 2", "autorestart": "unexpected", "exitcodes": [0, 2]},
        {"name": "unexp1", "command": "echo run >> unexp1.txt; exit 1", "autorestart": "unexpected", "restart-delay": "50ms", "max-restart-delay": "50ms", "times": 3},
        {"name": "never", "command": "echo run >> never.txt; exit 1", "autorestart": "never"},
        {"name": "crashy", "command": "echo run >> crashy.txt; sleep 0.1; exit 1", "autorestart": "always",
         "starttime": 1, "startretries": 3, "restart-delay": "50ms", "max-restart-delay": "50ms"}
    ]}"#;
    let b = sb.start(cfg, &[]);
    b.wait_log("FATAL and the always-restarts", T, |l| {
        l.contains("[crashy] ERROR: FATAL") && sb.read("always.txt").lines().count() >= 4
    });
    // Give a would-be extra start of the FATAL task time to show (several restart delays).
    std::thread::sleep(Duration::from_millis(400));
    let log = b.log();
    assert_eq!(
        sb.read("crashy.txt").lines().count(),
        3,
        "FATAL after 3 failed starts, never again:\n{log}"
    );
    assert_eq!(sb.read("unexp.txt").lines().count(), 1, "2 is expected");
    assert_eq!(
        sb.read("unexp1.txt").lines().count(),
        3,
        "1 is unexpected: restarted up to times"
    );
    assert_eq!(sb.read("never.txt").lines().count(), 1);
    assert!(
        log.contains("exited 3 times in a row before staying up 1s"),
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

#[test]
fn umask_user_and_priority_apply_to_the_child() {
    let sb = Sandbox::new();
    // A directory anyone may write, for the task running as nobody.
    let shared = sb.file("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    let user = if root { r#", "user": "nobody""# } else { "" };
    let cfg = format!(
        r#"{{"scripts": [
        {{"name": "u", "command": "touch made; stat -c %a made; id -u; nice; echo $HOME $USER",
          "working-directory": "shared", "umask": "077", "priority": 10{user}}}
    ]}}"#
    );
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    let (st, err) = b.wait(T).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "{err}{log}");
    let out = output_lines(&log, "u");
    assert_eq!(
        out.first().copied(),
        Some("600"),
        "umask 077 gives mode 600: {log}"
    );
    assert_eq!(out.get(2).copied(), Some("10"), "nice value 10: {log}");
    if root {
        assert_eq!(out.get(1).copied(), Some("65534"), "runs as nobody: {log}");
        assert!(
            out.get(3).is_some_and(|l| l.ends_with("nobody")),
            "USER set: {log}"
        );
    } else {
        eprintln!("not root: the `user` part of this test needs root and was not run");
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
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unknown user `no-such-user-xyz`"), "{err}");
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
    let child = Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
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
    assert!(log.contains("umask 0022"), "umask 022 from YAML: {log}");
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

/// Lines `NNNNNNNN <pad>` in `files` (oldest first): every line whole and well-formed,
/// numbers consecutive across the files. Returns (first, last) number.
fn check_rotated(files: &[std::path::PathBuf], max: u64) -> (u64, u64) {
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
            let n: u64 = line
                .split_whitespace()
                .last()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("cut or garbled line in {}: {line:?}", f.display()));
            assert!(
                line.starts_with(&"y".repeat(50)),
                "cut line in {}: {line:?}",
                f.display()
            );
            if let Some(p) = prev {
                assert_eq!(n, p + 1, "line lost at a rotation in {}", f.display());
            }
            first.get_or_insert(n);
            prev = Some(n);
        }
    }
    (first.unwrap(), prev.unwrap())
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
    let (_, last) = check_rotated(&files, 1 << 20);
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
    b.wait(Duration::from_secs(60)).expect("exits");
    let base = b.log.clone();
    for n in 1..=2 {
        let p = bansuri::rotate::RotatingFile::backup_path(&base, n);
        let data = std::fs::read_to_string(&p).unwrap();
        assert!(data.len() <= (1 << 20) + 64 * 1024, "{}", data.len());
        for l in data.lines() {
            assert!(l.starts_with('['), "a whole prefixed line: {l:?}");
        }
    }
    assert!(!bansuri::rotate::RotatingFile::backup_path(&base, 3).exists());
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
