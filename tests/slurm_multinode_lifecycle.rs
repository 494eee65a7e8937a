//! Issue 18 item 5 on the three-node cluster (`slurm/multinode-cluster.sh`): hot reload,
//! `--once`, `--resume` and notifications work for runs on other nodes as for local ones.
//!
//! Each test forces runs onto every node the same way: the nodes advertise 2 CPUs each and
//! the tasks ask `cpus: 2`, so three runs take one node each. Gate: as tests/slurm_multinode.rs
//! (`BANSURI_SLURM_MULTINODE`, set by tests/run.sh; under CI=true a missing cluster fails).

#[path = "common/multinode.rs"]
mod multinode;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use multinode::*;

/// Three nodes, one task of 2 CPUs on each: three runs of `cpus: 2` take one node each.
const EACH_NODE: [&str; 3] = ["--nodes=3", "--ntasks-per-node=1", "--cpus-per-task=2"];

/// Wait for `what` in the job's log; the log then.
fn wait_text(job: &Job, what: &str, within: Duration) -> String {
    job.wait_log(what, within, |log| {
        log.contains(what).then(|| log.to_owned())
    })
}

/// The node each task's last start went to, from the `(pid N on nX` of its start lines
/// (`None`: the leader's node).
fn node_of(log: &str, task: &str) -> Option<Option<String>> {
    let tag = format!("[{task}] Executing");
    let line = log.lines().rfind(|l| l.contains(&tag))?;
    let at = line.rfind("(pid ")?;
    let rest = &line[at..];
    Some(rest.split(" on ").nth(1).map(|n| {
        n.trim_end_matches(')')
            .split([',', ')'])
            .next()
            .unwrap_or("")
            .to_owned()
    }))
}

fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

fn temp(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("bansuri-mnl-{label}-"))
        .tempdir_in("/tmp")
        .expect("temp dir")
}

/// A reload stops a removed remote run and restarts a changed one (on a node of its
/// packing), and `bansuri shutdown` stops the rest everywhere with code 0, leaving no
/// process on any node.
#[test]
fn hot_reload_and_shutdown_reach_runs_on_other_nodes() {
    let Some(conf) = gate() else { return };
    let dir = temp("reload");
    let marker = format!("mnl-reload-{}", std::process::id());
    let task = |name: &str, v: u32| {
        format!(
            r#"{{"name": "{name}", "cpus": 2, "command": "echo {name} v{v} on $(hostname); exec sleep 300 # {marker}"}}"#
        )
    };
    let config = |tasks: &[String]| {
        format!(
            r#"{{"check_interval": "1s", "config_settle": "0s", "watchdog_timeout": "5s", "scripts": [{}]}}"#,
            tasks.join(", ")
        )
    };
    let path = dir.path().join("config.json");
    fs::write(&path, config(&[task("a", 1), task("b", 1), task("c", 1)])).unwrap();
    let job = Job::submit_in(&conf, dir.path(), "reload", &EACH_NODE, &[]);
    let log = wait_for(Instant::now() + Duration::from_secs(60), || {
        let log = job.log_text();
        (["a", "b", "c"]
            .iter()
            .all(|t| log.contains(&format!("| {t} v1 on n"))))
        .then_some(log)
    })
    .unwrap_or_else(|| panic!("the three runs did not start:\n{}", job.log_text()));
    let nodes: Vec<Option<String>> = ["a", "b", "c"]
        .iter()
        .map(|t| node_of(&log, t).expect("a start line"))
        .collect();
    let remote: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .zip(&nodes)
        .filter(|(_, n)| n.is_some())
        .map(|(t, _)| t)
        .collect();
    assert_eq!(remote.len(), 2, "one run per node: {nodes:?}\n{log}");
    let (changed, removed) = (remote[0], remote[1]);
    let kept: Vec<String> = ["a", "b", "c"]
        .iter()
        .filter(|t| **t != removed)
        .map(|t| task(t, if *t == changed { 2 } else { 1 }))
        .collect();
    fs::write(&path, config(&kept)).unwrap();
    let log = wait_text(
        &job,
        &format!("| {changed} v2 on n"),
        Duration::from_secs(60),
    );
    assert!(
        log.contains(&format!(
            "[{removed}] Process stopped (removed from the config)"
        )),
        "{removed} (remote) was not stopped as removed:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "[{changed}] Process stopped (its settings changed)"
        )),
        "{changed} (remote) was not stopped as changed:\n{log}"
    );
    // The changed run's new output comes back prefixed with its node.
    let again = node_of(&log, changed).flatten().expect("on another node");
    assert!(
        log.contains(&format!("[{changed}@{again}] | {changed} v2 on {again}")),
        "{log}"
    );
    // Shut down through the control channel: every run, here and there, stops.
    let out = Command::new(BANSURI)
        .args(["shutdown", "--config"])
        .arg(&path)
        .output()
        .expect("run bansuri shutdown");
    assert!(
        out.status.success(),
        "shutdown: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = job.finish(Duration::from_secs(60));
    assert!(
        log.contains("Shutdown complete: exiting with code 0"),
        "{log}"
    );
    let left = wait_for(Instant::now() + Duration::from_secs(10), || {
        let p = processes_with(&marker);
        p.is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "left running: {:?}",
        processes_with(&marker)
    );
}

/// `--once` runs each task once wherever it is placed; a failed remote run is notified
/// with its output tail; `--resume` then skips what succeeded on any node.
#[test]
fn once_notifications_and_resume_work_for_remote_runs() {
    let Some(conf) = gate() else { return };
    let dir = temp("once");
    let config = r#"{"notify_command": "cat > notice-{task}.txt",
        "scripts": [
          {"name": "a", "cpus": 2, "command": "echo a on $(hostname); sleep 2"},
          {"name": "b", "cpus": 2, "command": "echo b on $(hostname); sleep 2"},
          {"name": "flaky", "cpus": 2, "notify": "mail",
           "command": "echo flaky on $(hostname); sleep 1; echo last words from $(hostname); exit 7"}
        ]}"#;
    fs::write(dir.path().join("config.json"), config).unwrap();
    let job = Job::submit_in(&conf, dir.path(), "once", &EACH_NODE, &["--once"]);
    let log = job.finish(Duration::from_secs(90));
    let remote: Vec<String> = ["a", "b", "flaky"]
        .iter()
        .filter_map(|t| node_of(&log, t).flatten())
        .collect();
    assert_eq!(remote.len(), 2, "two of the three on other nodes:\n{log}");
    // `a` is due first and takes the leader's node at once; flaky waits for an agent.
    assert!(
        node_of(&log, "flaky").flatten().is_some(),
        "flaky ran on the leader's node:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("[flaky]") && l.contains("Process finished with code 7")),
        "{log}"
    );
    // The notice quotes the run's output, wherever it ran.
    let notice = fs::read_to_string(dir.path().join("notice-flaky.txt"))
        .unwrap_or_else(|e| panic!("no notice for flaky ({e}):\n{log}"));
    assert!(notice.contains("Task 'flaky' has failed."), "{notice}");
    assert!(notice.contains("last words from n"), "{notice}");
    assert!(
        log.contains("| last words from n"),
        "the remote output reached the job log too:\n{log}"
    );
    assert!(notice.contains("Return Code:    7"), "{notice}");

    // Resubmit with --resume: a and b succeeded, whatever node ran them; only flaky runs.
    let config = fs::read_to_string(dir.path().join("config.json"))
        .unwrap()
        .replace("exit 7", "exit 0");
    fs::write(dir.path().join("config.json"), config).unwrap();
    let job2 = Job::submit_in(
        &conf,
        dir.path(),
        "resume",
        &EACH_NODE,
        &["--resume", "--exit-when-done"],
    );
    let log2 = job2.finish(Duration::from_secs(90));
    assert!(log2.contains("| flaky on n"), "flaky ran again:\n{log2}");
    for t in ["a", "b"] {
        assert!(
            !log2.contains(&format!("| {t} on n")),
            "{t} succeeded in the first job and ran again:\n{log2}"
        );
    }
    assert!(log2.contains("exiting with code 0"), "{log2}");
    drop(job);
}
