//! End-to-end: bansuri as a real SLURM batch job, stopped with a plain `scancel`, as a user
//! would. Needs a cluster this machine can submit to: `tests/run.sh` brings up the local
//! one (`slurm/local-cluster.sh`) and sets `BANSURI_SLURM=1`.
//!
//! Gate: without `BANSURI_SLURM` and outside CI, each test prints
//! "skipped: no local SLURM (run tests/run.sh)" and passes. With `CI=true` (or
//! `BANSURI_SLURM` set) a cluster that `sinfo` cannot reach is a failure, not a skip.
//!
//! What the cluster does, and so what these tests can prove (Slurm 22.05, see slurm/):
//! - Under `proctrack/cgroup` a plain `scancel` sends SIGTERM to the batch step's top
//!   process only; the rest of the job gets SIGKILL, either after KillWait or about 20 ms
//!   after that top process exits. So a task's own "goodbye on SIGTERM" line can only come
//!   from bansuri forwarding the stop signal.
//! - The job's ExitCode stays `0:0` only if the top process (bansuri, `exec`ed by the batch
//!   script) exited 0 by itself; `0:9` means Slurm had to SIGKILL it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const BANSURI: &str = env!("CARGO_BIN_EXE_bansuri");

/// Submit -> RUNNING. Generous: a job cancelled by another test may hold the node in
/// COMPLETING for up to KillWait, and no job starts on a node while one is completing.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// RUNNING -> the tasks' first output lines in the job log.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(30);
/// scancel -> the job has left squeue, when every task obeys SIGTERM.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Gate

/// Whether the SLURM tests run here. Panics when they must run but cannot.
fn slurm_gate() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let asked = std::env::var("BANSURI_SLURM").is_ok_and(|v| !v.is_empty() && v != "0");
    if !asked && !ci {
        println!("skipped: no local SLURM (run tests/run.sh)");
        return false;
    }
    let why = if ci {
        "CI=true"
    } else {
        "BANSURI_SLURM is set"
    };
    match Command::new("sinfo").args(["-h", "-o", "%P %T"]).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "{why}, so the SLURM tests must run, but `sinfo` failed ({}): {}\n\
             start the local cluster with: bash slurm/local-cluster.sh up",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => panic!(
            "{why}, so the SLURM tests must run, but `sinfo` could not be run: {err}\n\
             install and start the local cluster with: bash slurm/local-cluster.sh up"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Poll `probe` every 100 ms until it yields a value or `deadline` passes.
fn wait_for<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Run a command to completion; its stdout, or an error naming the command.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|err| format!("`{program} {}` could not run: {err}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `[YYYY-MM-DD HH:MM:SS] ` at the start of a job-log line; the rest of the line after it.
fn after_timestamp(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let shape = b"[dddd-dd-dd dd:dd:dd] ";
    if b.len() < shape.len() {
        return None;
    }
    let ok = shape.iter().zip(b).all(|(want, got)| match want {
        b'd' => got.is_ascii_digit(),
        _ => want == got,
    });
    ok.then(|| &line[shape.len()..])
}

/// Lines of `log` that bansuri wrote for `who` (`MASTER` or a task name), without the prefix.
fn lines_of<'a>(log: &'a str, who: &str) -> Vec<&'a str> {
    let master = format!("[{who}] ");
    let task = format!("[{who}] | ");
    log.lines()
        .filter_map(after_timestamp)
        .filter_map(|rest| {
            if who == "MASTER" {
                rest.strip_prefix(&master)
            } else {
                rest.strip_prefix(&task)
            }
        })
        .collect()
}

/// A live (not zombie) process.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // state is the field after the parenthesised command name
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

fn kill_wait_secs() -> u64 {
    let config = run("scontrol", &["show", "config"]).unwrap_or_default();
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix("KillWait"))
        .and_then(|v| {
            v.trim_start_matches([' ', '='])
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(30)
}

// ---------------------------------------------------------------------------------------------
// One batch job running bansuri on its own temp dir

/// Task scripts the tests can use. Each writes its pid to `pids/NAME.pid` (atomically) so
/// the test can check afterwards that nothing of the job survived, and prints `tick N` twice
/// a second. They `cd` into the job dir first, which Drop checks before it kills anything.
const PY_SERVICE: &str = r#"
import os, signal, sys, time
name, workdir = sys.argv[1], sys.argv[2]
os.chdir(workdir)
with open(f"pids/{name}.pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(f"pids/{name}.pid.tmp", f"pids/{name}.pid")

def goodbye(signum, frame):
    print(f"{name} goodbye on SIGTERM", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, goodbye)
n = 0
while True:
    n += 1
    print(f"tick {n}", flush=True)
    time.sleep(0.5)
"#;

/// A bash service with a grandchild (`sleep`), which must go too. `sleep & wait` so that the
/// TERM trap runs at once instead of after the current sleep.
const SH_SERVICE: &str = r#"
name=$1
cd "$2" || exit 1
echo $$ > "pids/$name.pid.tmp" && mv "pids/$name.pid.tmp" "pids/$name.pid"
sleep 1000 &
echo $! > "pids/$name-grandchild.pid.tmp" && mv "pids/$name-grandchild.pid.tmp" "pids/$name-grandchild.pid"
trap 'echo "$name goodbye on SIGTERM"; exit 0' TERM
n=0
while :; do
    n=$((n + 1))
    echo "tick $n"
    sleep 0.5 & wait $!
done
"#;

/// Ignores SIGTERM (says so), so only bansuri's SIGKILL after `stoptime` ends it.
const SH_STUBBORN: &str = r#"
name=$1
cd "$2" || exit 1
echo $$ > "pids/$name.pid.tmp" && mv "pids/$name.pid.tmp" "pids/$name.pid"
trap 'echo "$name ignores SIGTERM"' TERM
n=0
while :; do
    n=$((n + 1))
    echo "tick $n"
    sleep 0.5 & wait $!
done
"#;

struct Job {
    id: String,
    dir: PathBuf,
    log: PathBuf,
    submitted: Instant,
    /// Declared last: dropped after Job::drop has cancelled the job.
    tmp: tempfile::TempDir,
}

impl Job {
    /// Write the scripts, the config (`scripts` is the JSON list of task objects) and the
    /// batch script into a fresh dir under /tmp, and sbatch it.
    fn submit(label: &str, scripts: impl Fn(&Path) -> String) -> Job {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("bansuri-e2e-{label}-"))
            .tempdir_in("/tmp")
            .expect("create a temp dir under /tmp");
        let dir = tmp.path().to_path_buf();
        let write = |name: &str, text: &str| {
            fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"))
        };
        fs::create_dir(dir.join("pids")).expect("create pids/");
        write("py_service.py", PY_SERVICE);
        write("sh_service.sh", SH_SERVICE);
        write("sh_stubborn.sh", SH_STUBBORN);
        write(
            "config.json",
            &format!(
                r#"{{"version": "1.0", "check_interval": 30, "watchdog_timeout": 5, "scripts": [{}]}}"#,
                scripts(&dir)
            ),
        );
        // Why `exec`: under proctrack/cgroup scancel's SIGTERM reaches only the batch
        // script's own process, and once that process exits Slurm SIGKILLs everything else
        // in the job within ~20 ms. With bansuri in the foreground of bash, bash would die
        // of the SIGTERM and bansuri would be SIGKILLed without ever seeing a signal, leaving
        // its tasks no chance to stop cleanly. `exec` makes bansuri that process.
        write(
            "job.sh",
            &format!(
                "#!/bin/bash\nexec '{BANSURI}' --config '{}' --watchdog 5s\n",
                dir.join("config.json").display()
            ),
        );
        let log = dir.join("job.log");
        let submitted = Instant::now();
        let out = run(
            "sbatch",
            &[
                "--parsable",
                "--job-name",
                &format!("bansuri-e2e-{label}"),
                "--chdir",
                &dir.to_string_lossy(),
                "-o",
                &log.to_string_lossy(),
                // a safety net should every cleanup below fail
                "--time=10",
                &dir.join("job.sh").to_string_lossy(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let id = out.trim().split(';').next().unwrap_or_default().to_string();
        assert!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
            "sbatch printed no job id: {out:?}"
        );
        Job {
            id,
            dir,
            log,
            submitted,
            tmp,
        }
    }

    fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The job's state while squeue lists it; None once it has left the queue.
    fn queue_state(&self) -> Option<String> {
        let out = Command::new("squeue")
            .args(["-h", "-j", &self.id, "-o", "%T"])
            .output()
            .expect("run squeue");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // Past MinJobAge slurmctld forgets the job: that is "gone" too.
            assert!(
                stderr.contains("Invalid job id"),
                "squeue -j {} failed: {stderr}",
                self.id
            );
            return None;
        }
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!state.is_empty()).then_some(state)
    }

    /// `scontrol show job` field, e.g. "ExitCode" -> "0:0".
    fn job_field(&self, field: &str) -> Option<String> {
        let text = run("scontrol", &["show", "job", "-o", &self.id]).ok()?;
        let key = format!("{field}=");
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&key).map(str::to_string))
    }

    fn pid_of(&self, name: &str) -> Option<u32> {
        fs::read_to_string(self.dir.join("pids").join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn recorded_pids(&self) -> Vec<(String, u32)> {
        let Ok(entries) = fs::read_dir(self.dir.join("pids")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .strip_suffix(".pid")?
                    .to_string();
                let pid = self.pid_of(&name)?;
                Some((name, pid))
            })
            .collect()
    }

    /// Everything useful for a failure message.
    fn report(&self) -> String {
        let state = self
            .queue_state()
            .unwrap_or_else(|| "(not in squeue)".into());
        let show = run("scontrol", &["show", "job", &self.id]).unwrap_or_else(|e| e);
        let nodes = run("sinfo", &["-N", "-o", "%N %T %E"]).unwrap_or_else(|e| e);
        let pids: Vec<String> = self
            .recorded_pids()
            .into_iter()
            .map(|(n, p)| format!("{n}={p}{}", if process_alive(p) { " (alive)" } else { "" }))
            .collect();
        format!(
            "job {} in {} (state {state}, pids: {})\n--- sinfo\n{}\n--- scontrol show job\n{}\n--- job log {}\n{}--- end of job log",
            self.id,
            self.dir.display(),
            pids.join(" "),
            nodes.trim(),
            show.trim(),
            self.log.display(),
            self.log_text()
        )
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{}", self.report())
    }

    fn wait_running(&self) -> Duration {
        let deadline = Instant::now() + START_TIMEOUT;
        match wait_for(deadline, || {
            let state = self.queue_state();
            match state.as_deref() {
                Some("RUNNING") => Some(Ok(self.submitted.elapsed())),
                None => Some(Err(())),
                _ => None,
            }
        }) {
            Some(Ok(took)) => took,
            Some(Err(())) => self.fail("the job left the queue before it was seen RUNNING"),
            None => self.fail(&format!("the job did not start within {START_TIMEOUT:?}")),
        }
    }

    fn wait_task_output(&self, task: &str, what: &str) {
        let deadline = Instant::now() + OUTPUT_TIMEOUT;
        if wait_for(deadline, || {
            lines_of(&self.log_text(), task)
                .iter()
                .any(|l| l.contains(what))
                .then_some(())
        })
        .is_none()
        {
            self.fail(&format!(
                "no `[..] [{task}] | {what}..` line in the job log within {OUTPUT_TIMEOUT:?}"
            ));
        }
    }

    /// Plain `scancel`, as a user types it; the time until the job has left squeue.
    fn cancel_and_wait_gone(&self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        run("scancel", &[&self.id]).unwrap_or_else(|e| self.fail(&e));
        if wait_for(t0 + timeout, || self.queue_state().is_none().then_some(())).is_none() {
            self.fail(&format!(
                "after scancel the job was still in squeue {timeout:?} later"
            ));
        }
        t0.elapsed()
    }

    fn assert_no_process_left(&self) {
        let pids = self.recorded_pids();
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = wait_for(deadline, || {
            let alive: Vec<_> = pids.iter().filter(|(_, p)| process_alive(*p)).collect();
            alive.is_empty().then_some(())
        });
        if left.is_none() {
            self.fail("processes of the job are still running after it ended");
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // Whatever happened, leave no job and no process behind.
        if self.queue_state().is_some() {
            let _ = Command::new("scancel").arg(&self.id).status();
            // Give Slurm time to end the job, so the next test finds the node free.
            let deadline = Instant::now() + Duration::from_secs(kill_wait_secs() + 5);
            wait_for(deadline, || self.queue_state().is_none().then_some(()));
        }
        for (_, pid) in self.recorded_pids() {
            // Only a process that is still one of ours: its cwd is this job's dir (a pid
            // could have been reused by then).
            let ours = fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == self.dir);
            if ours && process_alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if thread::panicking() {
            // Keep the job dir (scripts, config, log) for a post-mortem.
            self.tmp.disable_cleanup(true);
            eprintln!("kept {} for inspection", self.tmp.path().display());
        }
    }
}

/// One task object for the config: runs `runner script NAME DIR` from the job dir.
fn task(dir: &Path, name: &str, runner: &str, script: &str, extra: &str) -> String {
    let dir = dir.display();
    format!(
        r#"{{"name": "{name}", "command": "{runner} {dir}/{script} {name} {dir}", "stopsignal": "TERM"{extra}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// Tests

/// bansuri under sbatch: its tasks' output reaches the job log with the prefix; a plain
/// scancel makes bansuri stop every task with its stop signal, log its shutdown, exit 0;
/// the job leaves the queue quickly and nothing of it survives.
///
/// The tasks are written as users write them (`bash script.sh`, `python3 -u script.py`), so
/// each runs under `/bin/sh -c`, and Debian's dash does not exec the last command: the
/// group leader is `sh`, which dies of the SIGTERM at once, while the script's handler is
/// still printing its goodbye. bansuri must give the whole process group its grace, not
/// SIGKILL the group as soon as the leader is reaped.
#[test]
fn scancel_stops_every_task_gracefully() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| {
        [
            task(dir, "pysvc", "python3 -u", "py_service.py", ""),
            task(dir, "shsvc", "bash", "sh_service.sh", ""),
        ]
        .join(", ")
    };
    let job = Job::submit("graceful", scripts);
    let started = job.wait_running();
    eprintln!("job {}: sbatch -> RUNNING in {started:?}", job.id);

    job.wait_task_output("pysvc", "tick");
    job.wait_task_output("shsvc", "tick");
    let before = job.log_text();
    if lines_of(&before, "MASTER").is_empty() {
        job.fail("no `[YYYY-MM-DD HH:MM:SS] [MASTER] ...` line in the job log");
    }
    for name in ["pysvc", "shsvc", "shsvc-grandchild"] {
        let deadline = Instant::now() + OUTPUT_TIMEOUT;
        if wait_for(deadline, || job.pid_of(name).filter(|p| process_alive(*p))).is_none() {
            job.fail(&format!(
                "task process {name} never wrote its pid / is not running"
            ));
        }
    }

    let gone_after = job.cancel_and_wait_gone(LEAVE_TIMEOUT);
    eprintln!("job {}: scancel -> left squeue in {gone_after:?}", job.id);
    let after = job.log_text();
    let new = after.get(before.len()..).unwrap_or(&after);

    if !lines_of(new, "MASTER")
        .iter()
        .any(|l| l.to_lowercase().contains("shutdown"))
    {
        job.fail("no [MASTER] line mentioning `shutdown` after the scancel");
    }
    for name in ["pysvc", "shsvc"] {
        // Under proctrack/cgroup only bansuri got Slurm's SIGTERM: this line proves that
        // bansuri passed the stop signal on.
        let goodbye = format!("{name} goodbye on SIGTERM");
        if !lines_of(new, name).iter().any(|l| l.contains(&goodbye)) {
            job.fail(&format!(
                "no `[..] [{name}] | {goodbye}` line after the scancel"
            ));
        }
    }
    job.assert_no_process_left();
    match job.job_field("ExitCode").as_deref() {
        Some("0:0") | None => {}
        Some(code) => job.fail(&format!(
            "bansuri should exit 0 after SIGTERM; Slurm recorded ExitCode={code} (0:9 = SIGKILLed)"
        )),
    }
}

/// A task that ignores SIGTERM: bansuri SIGKILLs it after its `stoptime` (2 s) and still
/// exits by itself, well before Slurm's KillWait would SIGKILL bansuri.
#[test]
fn scancel_kills_a_task_that_ignores_sigterm_after_its_stoptime() {
    if !slurm_gate() {
        return;
    }
    let kill_wait = kill_wait_secs();
    assert!(
        kill_wait >= 5,
        "this test needs KillWait >= 5 s (it is {kill_wait} s): bansuri must get to finish its 2 s stoptime first"
    );
    let scripts = |dir: &Path| {
        [
            // `exec`: the stubborn bash itself is the task's process (group leader), not a
            // `sh -c` parent that SIGTERM would end, so only a SIGKILL can stop this task.
            task(
                dir,
                "stubborn",
                "exec bash",
                "sh_stubborn.sh",
                r#", "stoptime": "2s""#,
            ),
            task(dir, "pysvc", "python3 -u", "py_service.py", ""),
        ]
        .join(", ")
    };
    let job = Job::submit("stubborn", scripts);
    job.wait_running();
    job.wait_task_output("stubborn", "tick");
    job.wait_task_output("pysvc", "tick");
    for name in ["stubborn", "pysvc"] {
        let deadline = Instant::now() + OUTPUT_TIMEOUT;
        if wait_for(deadline, || job.pid_of(name).filter(|p| process_alive(*p))).is_none() {
            job.fail(&format!(
                "task process {name} never wrote its pid / is not running"
            ));
        }
    }
    let before = job.log_text();

    let gone_after = job.cancel_and_wait_gone(Duration::from_secs(kill_wait + 5));
    eprintln!("job {}: scancel -> left squeue in {gone_after:?}", job.id);
    let after = job.log_text();
    let new = after.get(before.len()..).unwrap_or(&after);

    if !lines_of(new, "stubborn")
        .iter()
        .any(|l| l.contains("stubborn ignores SIGTERM"))
    {
        job.fail("the stubborn task never got SIGTERM from bansuri");
    }
    if !lines_of(new, "pysvc")
        .iter()
        .any(|l| l.contains("pysvc goodbye on SIGTERM"))
    {
        job.fail("pysvc never got SIGTERM from bansuri");
    }
    if !lines_of(new, "MASTER")
        .iter()
        .any(|l| l.to_lowercase().contains("shutdown"))
    {
        job.fail("no [MASTER] line mentioning `shutdown` after the scancel");
    }
    // bansuri waited for the stubborn task's grace (it did not just exit and let Slurm's
    // cgroup SIGKILL clean up) ...
    if gone_after < Duration::from_millis(1500) {
        job.fail(&format!(
            "the job ended {gone_after:?} after scancel: bansuri cannot have waited the 2 s stoptime"
        ));
    }
    // ... and then ended it itself, exiting 0, rather than being SIGKILLed at KillWait.
    match job.job_field("ExitCode").as_deref() {
        Some("0:0") | None => {}
        Some(code) => job.fail(&format!(
            "bansuri should SIGKILL the stubborn task after 2 s and exit 0; Slurm recorded ExitCode={code} (0:9 = bansuri was SIGKILLed at KillWait)"
        )),
    }
    job.assert_no_process_left();
}
