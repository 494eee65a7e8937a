//! SLURM features used outside SLURM (a login node, a laptop): an `srun` task fails to
//! start with a clear message while the others run; `validate` warns about it;
//! `stop_before_end` and the job header stay silent.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

/// The real binary with no SLURM variables in its environment.
fn outside(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("SLURM_JOB_ID")
        .env_remove("SLURM_JOBID")
        .env_remove("BANSURI_CONFIG")
        .env_remove("BANSURI_LOG_LEVEL")
        .stdin(Stdio::null());
    c
}

#[test]
fn srun_task_outside_slurm_fails_to_start_and_says_why() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "config.json",
        r#"{"stop_before_end": "5m", "scripts": [
            {"name": "step", "command": "echo never", "srun": {"ntasks": 1, "cpus-per-task": 2}},
            {"name": "plain", "command": "echo plain ran"}
        ]}"#,
    );
    let log = sb.file("log.txt");
    let out = outside(
        sb.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "--exit-when-done",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .expect("run bansuri");
    let text = sb.read("log.txt");
    assert_eq!(out.status.code(), Some(3), "the srun task failed:\n{text}");
    assert_eq!(
        count_events(
            &text,
            "step",
            "Failed to start: srun task: bansuri is not running inside a SLURM job (SLURM_JOB_ID is not set)"
        ),
        1,
        "{text}"
    );
    assert!(text.contains("submit bansuri with sbatch"), "{text}");
    assert_eq!(output_lines(&text, "plain"), ["plain ran"], "{text}");
    assert!(output_lines(&text, "step").is_empty(), "{text}");
    // Nothing about SLURM, KillWait or stop_before_end at the default level.
    for quiet in [
        "SLURM job",
        "KillWait",
        "stop_before_end",
        "WARNING: [MASTER]",
    ] {
        let hit = text
            .lines()
            .find(|l| l.contains("[MASTER]") && l.contains(quiet));
        assert!(hit.is_none(), "unexpected {quiet:?} line: {hit:?}\n{text}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_warns_that_srun_tasks_need_a_slurm_job() {
    let sb = Sandbox::new();
    sb.write(
        "scripts_config.json",
        r#"{"scripts": [
            {"name": "worker", "command": "./work.sh", "srun": true},
            {"name": "watch", "command": "./watch.sh", "srun": {"overlap": true, "extra-args": "--mem=1G"}},
            {"name": "plain", "command": "true"}
        ]}"#,
    );
    let out = outside(sb.path(), &["validate"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("as a job step: srun --ntasks=1 --cpus-per-task=1 --exact"),
        "{stdout}"
    );
    assert!(
        stdout.contains("as a job step: srun --ntasks=1 --cpus-per-task=1 --overlap --mem=1G"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: `worker`, `watch` use srun: they can run only inside a SLURM job (bansuri submitted with sbatch); here they would fail to start"
        ),
        "{stdout}"
    );
    // No srun task, no warning.
    sb.write("scripts_config.json", r#"{"scripts": ["true"]}"#);
    let out = outside(sb.path(), &["validate"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn header_outside_slurm_names_no_job() {
    let sb = Sandbox::new();
    let cfg = sb.write("config.json", r#"{"scripts": ["sleep 30"]}"#);
    let log = sb.file("log.txt");
    let child = outside(
        sb.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "-v",
        ],
    )
    .spawn()
    .expect("spawn bansuri");
    let mut b = Bansuri {
        child: Some(child),
        log,
    };
    let text = b.wait_log("the task start", T, |t| {
        t.contains("Executing shell command")
    });
    assert!(
        text.contains("[MASTER] DEBUG: not inside a SLURM job"),
        "{text}"
    );
    b.signal(libc::SIGTERM);
    let (status, _) = b.wait(T).expect("bansuri exits on SIGTERM");
    assert_eq!(status.code(), Some(0));
    let text = b.log();
    assert!(
        text.contains("send SIGTERM again to kill at once"),
        "outside SLURM a second SIGTERM still kills at once: {text}"
    );
}
