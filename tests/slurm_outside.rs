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
        stdout.contains("as a job step: srun --nodes=1 --ntasks=1 --cpus-per-task=1 --exact"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "as a job step: srun --nodes=1 --ntasks=1 --cpus-per-task=1 --overlap --mem=1G"
        ),
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

// ---------------------------------------------------------------------------------------------
// `bansuri step-exec`: the signal forwarder an srun task's step runs (no SLURM needed)

/// A bash script under `/bin/sh -c`, as a task command is run: on SIGTERM it takes 300 ms
/// to clean up, then writes `bye` and exits 0.
const SLOW_BYE: &str = r#"
trap 'sleep 0.3; echo bye > "$1/bye"; exit 0' TERM
echo $$ > "$1/ready"
while :; do sleep 0.1 & wait $!; done
"#;

/// step-exec and its command's process group, killed on drop whatever the test's outcome.
struct Forwarder {
    child: std::process::Child,
    /// Holds the pid of the script, a member of the command's group.
    ready: std::path::PathBuf,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = std::fs::read_to_string(&self.ready)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        // Only while that pid is still the script (not a reused pid).
        let ours = |pid: i32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("slow_bye.sh"))
        };
        if let Some(pid) = pid.filter(|p| ours(*p)) {
            // SAFETY: the script is ours; its group is the command's (started by step-exec).
            unsafe {
                let pgid = libc::getpgid(pid);
                if pgid > 1 {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn step_exec_passes_stop_signals_to_the_whole_group_and_waits_for_it() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new();
    let script = sb.write("slow_bye.sh", SLOW_BYE);
    let dir = sb.path().to_str().unwrap().to_owned();
    let cmd = format!("bash {} {dir}", script.display());
    let child = outside(sb.path(), &["step-exec", "--", "/bin/sh", "-c", &cmd])
        .spawn()
        .expect("spawn step-exec");
    let mut guard = Forwarder {
        child,
        ready: sb.file("ready"),
    };
    assert!(
        wait_for(T, || guard.ready.exists().then_some(())).is_some(),
        "the script never started"
    );
    // As Slurm does for a step under proctrack/cgroup: the signal reaches the top process only.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(guard.child.id() as i32, libc::SIGTERM) };
    let status = wait_for(T, || guard.child.try_wait().ok().flatten()).expect("step-exec exits");
    // sh (the command's main process) dies of the SIGTERM at once; bash, its child, got the
    // SIGTERM too and step-exec waited for its clean-up before exiting.
    assert_eq!(
        sb.read("bye").trim(),
        "bye",
        "the script's handler did not finish"
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

#[test]
fn step_exec_exits_as_its_command_did() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new();
    let run = |args: &[&str]| {
        outside(sb.path(), args)
            .stderr(Stdio::piped())
            .output()
            .expect("run step-exec")
    };
    let out = run(&["step-exec", "--", "/bin/sh", "-c", "echo hi; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = run(&["step-exec", "--", "/bin/sh", "-c", "kill -USR1 $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGUSR1), "{:?}", out.status);
    // Leftovers of a command that ended by itself are not waited for.
    let t0 = std::time::Instant::now();
    let left = sb.file("left.pid");
    let cmd = format!(
        "sleep 30 >/dev/null 2>&1 & echo $! > {}; exit 0",
        left.display()
    );
    let out = run(&["step-exec", "--", "/bin/sh", "-c", &cmd]);
    let pid: i32 = sb
        .read("left.pid")
        .trim()
        .parse()
        .expect("the leftover's pid");
    // SAFETY: the leftover is ours (started just above); it must not outlive the test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(out.status.code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let out = run(&["step-exec", "--", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bansuri step-exec: cannot start /no/such/program"),
        "{err}"
    );
    // Hidden from users.
    let help = outside(sb.path(), &["--help"])
        .output()
        .expect("run --help");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("step-exec"));
}
