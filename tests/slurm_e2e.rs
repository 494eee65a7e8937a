//! End-to-end: bansuri as a real SLURM batch job, submitted with the shipped template
//! `slurm/submit.sh` and stopped as a user would (a plain `scancel`, the time limit with
//! `--signal=B:TERM@T`, `stop_before_end`), on the live local cluster. Needs a cluster this
//! machine can submit to: `tests/run.sh` brings up the local one (`slurm/local-cluster.sh`),
//! builds the static binary and sets `BANSURI_SLURM=1` and `BANSURI_STATIC_BIN`.
//!
//! Gate: without `BANSURI_SLURM` and outside CI, each test prints
//! "skipped: no local SLURM (run tests/run.sh)" and passes. With `CI=true` (or
//! `BANSURI_SLURM` set) a cluster that `sinfo` cannot reach is a failure, not a skip.
//!
//! The tests take a lock (`/tmp/bansuri-slurm-e2e.lock`) and run one job at a time: a
//! job that is COMPLETING holds the whole node, and the timings asserted here (the job
//! ends before KillWait) must not depend on another job's clean-up.
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
const SUBMIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/submit.sh");
const LOCK: &str = "/tmp/bansuri-slurm-e2e.lock";
const JOBCOMP: &str = "/var/log/slurm-local/jobcomp.log";

/// Submit -> RUNNING. Generous: a job of another user of the cluster may hold the node in
/// COMPLETING for up to KillWait, and no job starts on a node while one is completing.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// RUNNING -> the tasks' first output lines in the job log.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Gate

/// Whether the SLURM tests run here. Panics when they must run but cannot.
fn slurm_gate() -> bool {
    let ci = is_ci();
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

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Poll `probe` every 50 ms until it yields a value or `deadline` passes.
fn wait_for<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
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

/// Seconds since midnight of a job-log line's time stamp.
fn seconds_of(line: &str) -> Option<u32> {
    after_timestamp(line)?;
    let hms = line.get(12..20)?;
    let mut parts = hms.split(':').map(|p| p.parse::<u32>().ok());
    Some(parts.next()?? * 3600 + parts.next()?? * 60 + parts.next()??)
}

/// Output lines of task `who` (`[who] | text`), or bansuri's own lines for `MASTER`,
/// without the prefix.
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

/// Lifecycle lines bansuri wrote about task `who` (`[who] message`, not its output).
fn events_of<'a>(log: &'a str, who: &str) -> Vec<&'a str> {
    let tag = format!("[{who}] ");
    log.lines()
        .filter_map(after_timestamp)
        .filter_map(|rest| rest.strip_prefix(&tag))
        .filter(|rest| !rest.starts_with("| ") && !rest.starts_with("! "))
        .collect()
}

/// The seconds right after `prefix` in `line` (`SIGKILL after 7.9s` -> 7.9).
fn grace_in(line: &str, prefix: &str) -> Option<f64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let value: f64 = rest[..end].parse().ok()?;
    let unit = &rest[end..];
    if unit.starts_with("ms") {
        Some(value / 1000.0)
    } else if unit.starts_with('s') {
        Some(value)
    } else if unit.starts_with('m') {
        Some(value * 60.0)
    } else {
        None
    }
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

/// Does this ELF file ask for a dynamic loader (a PT_INTERP program header)?
fn has_interpreter(path: &Path) -> Result<bool, String> {
    let b = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err(format!(
            "{} is not a 64-bit little-endian ELF file",
            path.display()
        ));
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    Ok((0..count).any(|i| {
        let at = phoff + i * size;
        b.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) == 3)
    }))
}

/// The binary the jobs `exec`, as slurm/submit.sh documents it: the static musl build that
/// tests/run.sh makes and names in `BANSURI_STATIC_BIN`. Without it (a developer's own
/// `cargo test` with BANSURI_SLURM=1) the test build, said so; under CI=true it is required.
fn job_binary() -> PathBuf {
    match std::env::var_os("BANSURI_STATIC_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            match has_interpreter(&p) {
                Ok(false) => p,
                Ok(true) => panic!(
                    "BANSURI_STATIC_BIN={} is dynamically linked; build it with: cargo build --release --target x86_64-unknown-linux-musl",
                    p.display()
                ),
                Err(e) => panic!("BANSURI_STATIC_BIN: {e}"),
            }
        }
        None if is_ci() => panic!(
            "CI=true: BANSURI_STATIC_BIN must name the static binary that slurm/submit.sh runs (tests/run.sh builds it)"
        ),
        None => {
            eprintln!(
                "note: BANSURI_STATIC_BIN is not set; the jobs run the test build {BANSURI} (tests/run.sh builds and uses the static one)"
            );
            PathBuf::from(BANSURI)
        }
    }
}

/// Exclusive use of the cluster by this test process (held by a `Job` until it is gone):
/// the lock lives as long as the open file.
struct ClusterLock {
    _file: fs::File,
}

impl ClusterLock {
    fn take() -> ClusterLock {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .unwrap_or_else(|e| panic!("cannot open {LOCK}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file we own; blocks until the other holder lets go.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {LOCK}: {}", std::io::Error::last_os_error());
        ClusterLock { _file: f }
    }
}

// ---------------------------------------------------------------------------------------------
// Task scripts

/// Each writes its pid to `pids/NAME.pid` (atomically) so the test can check afterwards
/// that nothing of the job survived, prints `tick N` twice a second and says goodbye on
/// SIGTERM. They `cd` into the job dir first, which Drop checks before it kills anything.
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
/// TERM trap runs at once instead of after the current sleep. Prints `$VERSION` when set
/// and, as a job step, `$SLURM_STEP_ID`.
const SH_SERVICE: &str = r#"
name=$1
cd "$2" || exit 1
echo $$ > "pids/$name.pid.tmp" && mv "pids/$name.pid.tmp" "pids/$name.pid"
sleep 1000 &
echo $! > "pids/$name-grandchild.pid.tmp" && mv "pids/$name-grandchild.pid.tmp" "pids/$name-grandchild.pid"
trap 'echo "$name goodbye on SIGTERM${SLURM_STEP_ID:+ in step $SLURM_STEP_ID}"; exit 0' TERM
trap 'echo "$name got USR1"' USR1
n=0
while :; do
    n=$((n + 1))
    echo "tick $n${VERSION:+ version $VERSION}${SLURM_STEP_ID:+ step $SLURM_STEP_ID}"
    sleep 0.5 & wait $!
done
"#;

/// Ignores SIGTERM (says so), so only a SIGKILL ends it.
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

/// Leaves behind a process that escaped its process group: a double fork (the subshell
/// exits at once, so the escapee is orphaned and reparented to bansuri, the subreaper) into
/// a session of its own (`setsid`), ignoring SIGTERM; then exits 0.
const SH_ESCAPER: &str = r#"
name=$1
cd "$2" || exit 1
echo $$ > "pids/$name.pid.tmp" && mv "pids/$name.pid.tmp" "pids/$name.pid"
( setsid bash -c 'trap "" TERM; echo $$ > "pids/$0-escapee.pid.tmp" && mv "pids/$0-escapee.pid.tmp" "pids/$0-escapee.pid"; exec sleep 1000' "$name" & )
while [ ! -e "pids/$name-escapee.pid" ]; do sleep 0.05; done
echo "$name left a process behind"
exit 0
"#;

/// Takes `$DELAY` seconds to clean up after SIGTERM, then exits 0.
const SH_SLOW_STOP: &str = r#"
name=$1
cd "$2" || exit 1
delay=${DELAY:-15}
echo $$ > "pids/$name.pid.tmp" && mv "pids/$name.pid.tmp" "pids/$name.pid"
trap 'echo "$name got SIGTERM, cleaning up for ${delay}s"; sleep "$delay"; echo "$name cleanup done"; exit 0' TERM
n=0
while :; do
    n=$((n + 1))
    echo "tick $n"
    sleep 0.5 & wait $!
done
"#;

/// One task object for the config: runs `runner script NAME DIR` from the job dir.
fn task(dir: &Path, name: &str, runner: &str, script: &str, extra: &str) -> String {
    let dir = dir.display();
    format!(
        r#"{{"name": "{name}", "command": "{runner} {dir}/{script} {name} {dir}", "stopsignal": "TERM"{extra}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// One batch job running bansuri on its own temp dir

/// How to submit: top-level config settings, sbatch options on top of the template's
/// `#SBATCH` lines, and arguments passed through submit.sh to bansuri.
#[derive(Default)]
struct JobOpts<'a> {
    globals: &'a str,
    sbatch: &'a [&'a str],
    bansuri: &'a [&'a str],
}

struct Job {
    id: String,
    dir: PathBuf,
    log: PathBuf,
    submitted: Instant,
    /// Declared after the fields Drop uses: dropped once the job is gone.
    tmp: tempfile::TempDir,
    _lock: ClusterLock,
}

impl Job {
    /// Write the scripts and the config (`scripts` gives the JSON list of task objects)
    /// into a fresh dir under /tmp, and submit slurm/submit.sh from there, as a user does
    /// (`BANSURI_BIN=... BANSURI_CONFIG=... sbatch submit.sh`).
    fn submit(label: &str, opts: JobOpts, scripts: impl Fn(&Path) -> String) -> Job {
        let lock = ClusterLock::take();
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
        write("sh_slow_stop.sh", SH_SLOW_STOP);
        write("sh_escaper.sh", SH_ESCAPER);
        write("config.json", &config_text(opts.globals, &scripts(&dir)));
        let binary = job_binary();
        let submitted = Instant::now();
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name=bansuri-e2e-{label}"),
            format!("--chdir={}", dir.display()),
            // One CPU unless the test asks for more: the node is shared.
            "--cpus-per-task=1".to_owned(),
            // A safety net should every cleanup below fail.
            "--time=10".to_owned(),
        ];
        args.extend(opts.sbatch.iter().map(|s| s.to_string()));
        args.push(SUBMIT.to_owned());
        args.extend(opts.bansuri.iter().map(|s| s.to_string()));
        let out = Command::new("sbatch")
            .args(&args)
            .env("BANSURI_BIN", &binary)
            .env("BANSURI_CONFIG", dir.join("config.json"))
            .output()
            .unwrap_or_else(|e| panic!("sbatch could not run: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sbatch {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let id = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
            "sbatch printed no job id: {stdout:?}"
        );
        // The template's `--output=master_%j.log`, in the job's working directory.
        let log = dir.join(format!("master_{id}.log"));
        Job {
            id,
            dir,
            log,
            submitted,
            tmp,
            _lock: lock,
        }
    }

    /// Replace the config with new content, atomically (a rename), as an editor's save.
    fn rewrite_config(&self, globals: &str, scripts: &str) {
        let tmp = self.dir.join("config.json.new");
        fs::write(&tmp, config_text(globals, scripts)).expect("write the new config");
        fs::rename(&tmp, self.dir.join("config.json")).expect("rename the new config");
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

    /// The job's steps as (id, name), from `squeue -s`.
    fn steps(&self) -> Vec<(String, String)> {
        run("squeue", &["-h", "-s", "-j", &self.id, "-o", "%i|%j"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (id, name) = l.trim().split_once('|')?;
                Some((id.to_owned(), name.to_owned()))
            })
            .collect()
    }

    /// `scontrol show job` field, e.g. "ExitCode" -> "0:0".
    fn job_field(&self, field: &str) -> Option<String> {
        let text = run("scontrol", &["show", "job", "-o", &self.id]).ok()?;
        let key = format!("{field}=");
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&key).map(str::to_string))
    }

    /// The job's line in the local cluster's jobcomp log (written when it has ended), when
    /// that log exists (it does for slurm/local-cluster.sh).
    fn jobcomp(&self) -> Option<String> {
        if !Path::new(JOBCOMP).exists() {
            return None;
        }
        let key = format!("JobId={} ", self.id);
        let deadline = Instant::now() + Duration::from_secs(10);
        let line = wait_for(deadline, || {
            fs::read_to_string(JOBCOMP)
                .ok()?
                .lines()
                .find(|l| l.starts_with(&key))
                .map(str::to_owned)
        });
        Some(line.unwrap_or_else(|| self.fail(&format!("no `{key}` line in {JOBCOMP}"))))
    }

    /// The final state and exit code Slurm recorded: from the jobcomp log when there is
    /// one, else from `scontrol show job`.
    fn final_state(&self) -> (String, String) {
        let field = |line: &str, key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or("?")
                .to_owned()
        };
        match self.jobcomp() {
            Some(line) => (field(&line, "JobState="), field(&line, "ExitCode=")),
            None => (
                self.job_field("JobState").unwrap_or_default(),
                self.job_field("ExitCode").unwrap_or_default(),
            ),
        }
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
            "job {} in {} (state {state}, steps {:?}, pids: {})\n--- sinfo\n{}\n--- scontrol show job\n{}\n--- job log {}\n{}--- end of job log",
            self.id,
            self.dir.display(),
            self.steps(),
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

    /// Wait for a job-log line that `pred` accepts; the instant it was first seen.
    fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Instant {
        let deadline = Instant::now() + timeout;
        if wait_for(deadline, || {
            self.log_text().lines().any(&pred).then_some(())
        })
        .is_none()
        {
            self.fail(&format!("no {what} in the job log within {timeout:?}"));
        }
        Instant::now()
    }

    fn wait_task_output(&self, task: &str, what: &str) -> Instant {
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
        Instant::now()
    }

    fn wait_alive(&self, names: &[&str]) {
        for name in names {
            let deadline = Instant::now() + OUTPUT_TIMEOUT;
            if wait_for(deadline, || self.pid_of(name).filter(|p| process_alive(*p))).is_none() {
                self.fail(&format!(
                    "task process {name} never wrote its pid / is not running"
                ));
            }
        }
    }

    /// Plain `scancel`, as a user types it.
    fn scancel(&self) -> Instant {
        let t0 = Instant::now();
        run("scancel", &[&self.id]).unwrap_or_else(|e| self.fail(&e));
        t0
    }

    fn wait_gone(&self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        if wait_for(deadline, || self.queue_state().is_none().then_some(())).is_none() {
            self.fail(&format!("the job was still in squeue {timeout:?} later"));
        }
        Instant::now()
    }

    /// Slurm recorded the job as `state` with exit code 0:0 (`why`: what another code
    /// would mean, for the failure message).
    fn assert_final_state(&self, state: &str, why: &str) {
        let (got, code) = self.final_state();
        if got != state || code != "0:0" {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            self.fail(&format!(
                "Slurm recorded {got} {code}; expected {state} 0:0{why}"
            ));
        }
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

    /// A `[MASTER]` line containing `needle`, or fail.
    fn master_line(&self, needle: &str) -> String {
        let log = self.log_text();
        match lines_of(&log, "MASTER")
            .into_iter()
            .find(|l| l.contains(needle))
        {
            Some(l) => l.to_owned(),
            None => self.fail(&format!("no [MASTER] line containing {needle:?}")),
        }
    }

    fn assert_output(&self, task: &str, needle: &str) {
        if !lines_of(&self.log_text(), task)
            .iter()
            .any(|l| l.contains(needle))
        {
            self.fail(&format!("no `[{task}] | ...{needle}...` line"));
        }
    }

    /// bansuri said it SIGKILLed `task` at the end of a stop grace of `lo..=hi` seconds.
    fn assert_sigkilled_after(&self, task: &str, lo: f64, hi: f64) {
        let prefix = "Still running at the end of its stop grace (";
        let text = self.log_text();
        let events = events_of(&text, task);
        let Some(line) = events
            .iter()
            .find(|l| l.contains(prefix) && l.contains("after SIGTERM: sending SIGKILL"))
        else {
            self.fail(&format!(
                "no `[{task}] ...{prefix}...) after SIGTERM: sending SIGKILL` line"
            ));
        };
        match grace_in(line, prefix) {
            Some(g) if (lo..=hi).contains(&g) => {}
            _ => self.fail(&format!(
                "the grace {task} was given is not {lo}..={hi} s: {line}"
            )),
        }
    }

    fn assert_event(&self, task: &str, needle: &str) {
        if !events_of(&self.log_text(), task)
            .iter()
            .any(|l| l.contains(needle))
        {
            self.fail(&format!("no `[{task}] ...{needle}...` lifecycle line"));
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

fn config_text(globals: &str, scripts: &str) -> String {
    format!(r#"{{"version": "1.0", "check_interval": 2, {globals} "scripts": [{scripts}]}}"#)
}

// ---------------------------------------------------------------------------------------------
// Tests

/// `sbatch slurm/submit.sh`: the job log `master_<jobid>.log` names the job and has
/// prefixed lines of every task; editing the config mid-job adds, removes and changes
/// tasks within check_interval (2 s) and leaves the others alone; a plain scancel ends it.
#[test]
fn submit_template_runs_every_task_and_follows_config_edits() {
    if !slurm_gate() {
        return;
    }
    let kill_wait = kill_wait_secs();
    let before = |dir: &Path| {
        [
            task(dir, "pysvc", "python3 -u", "py_service.py", ""),
            task(dir, "shsvc", "bash", "sh_service.sh", ""),
            task(dir, "doomed", "python3 -u", "py_service.py", ""),
            task(
                dir,
                "changer",
                "bash",
                "sh_service.sh",
                r#", "env": {"VERSION": "1"}"#,
            ),
            r#"{"name": "tick", "command": "echo tick-run", "timer": "1s"}"#.to_owned(),
            r#"{"name": "once", "command": "echo once done"}"#.to_owned(),
        ]
        .join(", ")
    };
    let job = Job::submit("template", JobOpts::default(), before);
    let started = job.wait_running();
    eprintln!("job {}: sbatch -> RUNNING in {started:?}", job.id);

    for (name, what) in [
        ("pysvc", "tick"),
        ("shsvc", "tick"),
        ("doomed", "tick"),
        ("changer", "version 1"),
        ("tick", "tick-run"),
        ("once", "once done"),
    ] {
        job.wait_task_output(name, what);
    }
    job.wait_alive(&["pysvc", "shsvc", "shsvc-grandchild", "doomed", "changer"]);
    // The header names the job as Slurm knows it.
    let header = job.master_line(&format!("SLURM job {} (bansuri-e2e-template)", job.id));
    for part in [
        "partition debug",
        "CPUs on this node 1",
        "(1 node)",
        " ends 20",
        &format!("KillWait {kill_wait}s"),
    ] {
        if !header.contains(part) {
            job.fail(&format!("the header line lacks {part:?}: {header}"));
        }
    }
    job.master_line(&format!("config {}", job.dir.join("config.json").display()));
    job.assert_event("once", "Process finished with code 0");
    let pysvc_pid = job.pid_of("pysvc");

    // Edit mid-job: `doomed` removed, `changer` changed (its env), `newbie` added.
    let after = [
        task(&job.dir, "pysvc", "python3 -u", "py_service.py", ""),
        task(&job.dir, "shsvc", "bash", "sh_service.sh", ""),
        task(
            &job.dir,
            "changer",
            "bash",
            "sh_service.sh",
            r#", "env": {"VERSION": "2"}"#,
        ),
        task(&job.dir, "newbie", "bash", "sh_service.sh", ""),
        r#"{"name": "tick", "command": "echo tick-run", "timer": "1s"}"#.to_owned(),
        r#"{"name": "once", "command": "echo once done"}"#.to_owned(),
    ]
    .join(", ");
    let edited = Instant::now();
    job.rewrite_config("", &after);
    let reloaded = job.wait_line("reload line", Duration::from_secs(10), |l| {
        l.contains("[MASTER] Config reloaded: 1 added (newbie), 1 removed (doomed), 1 changed (changer), 4 kept")
    });
    let took = reloaded - edited;
    eprintln!("job {}: config edit -> reload in {took:?}", job.id);
    // check_interval is 2 s; a file replaced by a rename is applied at once; the test
    // polls every 50 ms.
    if took > Duration::from_millis(2600) {
        job.fail(&format!(
            "the reload came {took:?} after the edit, later than check_interval (2s)"
        ));
    }
    job.wait_task_output("newbie", "tick");
    job.wait_task_output("doomed", "doomed goodbye on SIGTERM");
    job.wait_task_output("changer", "changer goodbye on SIGTERM");
    job.wait_task_output("changer", "version 2");
    job.assert_event("doomed", "Process stopped (removed from the config)");
    job.assert_event("changer", "Process stopped (its settings changed)");
    if job.pid_of("pysvc") != pysvc_pid
        || events_of(&job.log_text(), "pysvc")
            .iter()
            .any(|l| l.contains("Stopping"))
    {
        job.fail("pysvc was not in the edit but was restarted");
    }

    job.scancel();
    job.wait_gone(Duration::from_secs(kill_wait + 5));
    job.master_line("Shutdown complete: exiting with code 0");
    job.assert_no_process_left();
    job.assert_final_state("CANCELLED", "");
}

/// Plain `scancel` with KillWait 10 and the default watchdog of 120 s: bansuri says it
/// shortens the grace to KillWait - 2 s, forwards SIGTERM to every task (under
/// proctrack/cgroup only bansuri got Slurm's, so the goodbye lines prove the forwarding),
/// logs its summary and exits 0 long before KillWait.
///
/// The tasks are written as users write them (`bash script.sh`, `python3 -u script.py`), so
/// each runs under `/bin/sh -c`, and Debian's dash does not exec the last command: the
/// group leader is `sh`, which dies of the SIGTERM at once, while the script's handler is
/// still printing its goodbye. bansuri must give the whole process group its grace.
#[test]
fn plain_scancel_stops_every_task_gracefully_within_kill_wait() {
    if !slurm_gate() {
        return;
    }
    let kill_wait = kill_wait_secs();
    let scripts = |dir: &Path| {
        [
            task(dir, "pysvc", "python3 -u", "py_service.py", ""),
            task(dir, "shsvc", "bash", "sh_service.sh", ""),
        ]
        .join(", ")
    };
    let job = Job::submit("graceful", JobOpts::default(), scripts);
    job.wait_running();
    job.wait_task_output("pysvc", "tick");
    job.wait_task_output("shsvc", "tick");
    job.wait_alive(&["pysvc", "shsvc", "shsvc-grandchild"]);
    let note = job.master_line("does not fit in KillWait");
    if !note.contains(&format!(
        "The longest stop grace (2m) does not fit in KillWait ({kill_wait}s)"
    )) {
        job.fail(&format!("unexpected start-up note: {note}"));
    }
    let before = job.log_text().len();

    let cancelled = job.scancel();
    let complete = job.wait_line(
        "`Shutdown complete`",
        Duration::from_secs(kill_wait + 5),
        |l| l.contains("[MASTER] Shutdown complete: exiting with code 0"),
    );
    let took = complete - cancelled;
    eprintln!("job {}: scancel -> bansuri done in {took:?}", job.id);
    job.wait_gone(Duration::from_secs(kill_wait + 5));
    let log = job.log_text();
    let new = log.get(before..).unwrap_or(&log);
    let master = lines_of(new, "MASTER");
    let said = |needle: &str| master.iter().any(|l| l.contains(needle));
    if !said("Slurm is ending the job (state ")
        || !said(&format!(
            "SIGKILLs it KillWait ({kill_wait}s) after its SIGTERM"
        ))
    {
        job.fail("no [MASTER] line explaining KillWait after the scancel");
    }
    // KillWait - 2 s from the SIGTERM, less the few ms squeue took.
    let grace = kill_wait as f64 - 2.0;
    let shutdown = job.master_line("Received SIGTERM: shutdown of 2 running processes");
    match grace_in(&shutdown, "SIGKILL after ") {
        Some(g) if shutdown.contains("sooner than the watchdog's 2m") && g <= grace && g >= grace - 1.0 => {}
        _ => job.fail(&format!("the shutdown line does not say SIGKILL after ~{grace}s, sooner than the watchdog: {shutdown}")),
    }
    for name in ["pysvc", "shsvc"] {
        let goodbye = format!("{name} goodbye on SIGTERM");
        if !lines_of(new, name).iter().any(|l| l.contains(&goodbye)) {
            job.fail(&format!(
                "no `[..] [{name}] | {goodbye}` line after the scancel"
            ));
        }
    }
    if !said("TASK") || !said("pysvc") || !said("STOPPED") {
        job.fail("no shutdown summary table");
    }
    if took >= Duration::from_secs(kill_wait) {
        job.fail(&format!(
            "bansuri finished {took:?} after the scancel: not before KillWait"
        ));
    }
    job.assert_no_process_left();
    job.assert_final_state("CANCELLED", "0:9 = bansuri was SIGKILLed");
}

/// A one-shot leaves a process behind that setsid()s out of its group and ignores SIGTERM:
/// bansuri reports it, and a plain scancel still ends it (bansuri SIGKILLs the escapees it
/// knows at the end of its shutdown; Slurm's cgroup would catch any other at KillWait).
#[test]
fn escaped_process_is_reported_and_ended_by_scancel() {
    if !slurm_gate() {
        return;
    }
    let kill_wait = kill_wait_secs();
    let scripts = |dir: &Path| {
        [
            task(dir, "sneaky", "bash", "sh_escaper.sh", ""),
            task(dir, "shsvc", "bash", "sh_service.sh", ""),
        ]
        .join(", ")
    };
    let job = Job::submit("escapee", JobOpts::default(), scripts);
    job.wait_running();
    job.wait_alive(&["shsvc", "sneaky-escapee"]);
    let escapee = job.pid_of("sneaky-escapee").expect("escapee pid");
    job.wait_line("the escape reported", OUTPUT_TIMEOUT, |l| {
        l.contains("[sneaky] WARNING: process") && l.contains("left its task's process group")
    });
    job.assert_event(
        "sneaky",
        &format!("process {escapee} (sleep 1000) left its task's process group"),
    );
    // Still alive: reported, not killed, until shutdown.
    if !process_alive(escapee) {
        job.fail("the escapee was ended before the shutdown");
    }
    let cancelled = job.scancel();
    let complete = job.wait_line(
        "`Shutdown complete`",
        Duration::from_secs(kill_wait + 5),
        |l| l.contains("[MASTER] Shutdown complete: exiting with code 0"),
    );
    eprintln!(
        "job {}: scancel -> bansuri done in {:?}",
        job.id,
        complete - cancelled
    );
    job.wait_gone(Duration::from_secs(kill_wait + 5));
    job.assert_no_process_left();
    job.assert_final_state("CANCELLED", "0:9 = bansuri was SIGKILLed");
}

/// A task that ignores SIGTERM, with the default watchdog of 120 s and KillWait 10: bansuri
/// SIGKILLs it itself at KillWait - 2 s and exits 0; Slurm records ExitCode 0:0 (had
/// Slurm's SIGKILL come first, bansuri would have died of it: 0:9).
#[test]
fn task_ignoring_sigterm_is_killed_by_bansuri_not_by_slurm() {
    if !slurm_gate() {
        return;
    }
    let kill_wait = kill_wait_secs();
    assert!(
        kill_wait >= 5,
        "this test needs KillWait >= 5 s (it is {kill_wait} s)"
    );
    let scripts = |dir: &Path| {
        [
            // `exec`: the stubborn bash itself is the task's process (group leader), not a
            // `sh -c` parent that SIGTERM would end, so only a SIGKILL can stop this task.
            task(dir, "stubborn", "exec bash", "sh_stubborn.sh", ""),
            task(dir, "pysvc", "python3 -u", "py_service.py", ""),
        ]
        .join(", ")
    };
    let job = Job::submit("stubborn", JobOpts::default(), scripts);
    job.wait_running();
    job.wait_task_output("stubborn", "tick");
    job.wait_task_output("pysvc", "tick");
    job.wait_alive(&["stubborn", "pysvc"]);
    let before = job.log_text().len();

    let cancelled = job.scancel();
    let complete = job.wait_line(
        "`Shutdown complete`",
        Duration::from_secs(kill_wait + 5),
        |l| l.contains("[MASTER] Shutdown complete: exiting with code 0"),
    );
    let took = complete - cancelled;
    eprintln!("job {}: scancel -> bansuri done in {took:?}", job.id);
    job.wait_gone(Duration::from_secs(kill_wait + 5));
    let log = job.log_text();
    let new = log.get(before..).unwrap_or(&log);
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
    let grace = kill_wait - 2;
    let stopping = events_of(new, "stubborn")
        .into_iter()
        .find(|l| l.contains("SIGTERM to process group"))
        .unwrap_or_else(|| job.fail("no `[stubborn] Stopping (shutdown): SIGTERM ...` line"));
    if !grace_in(stopping, "SIGKILL in ")
        .is_some_and(|g| g <= grace as f64 && g >= grace as f64 - 1.0)
    {
        job.fail(&format!(
            "the stubborn task's grace is not ~{grace}s: {stopping}"
        ));
    }
    job.assert_sigkilled_after("stubborn", grace as f64 - 1.0, grace as f64);
    // bansuri waited its shortened grace (it did not just exit and let the cgroup go)...
    if took < Duration::from_secs(grace) - Duration::from_millis(500) {
        job.fail(&format!(
            "bansuri finished {took:?} after the scancel: it cannot have waited the {grace} s grace"
        ));
    }
    // ... and finished before Slurm's SIGKILL at KillWait.
    if took >= Duration::from_secs(kill_wait) {
        job.fail(&format!(
            "bansuri finished {took:?} after the scancel: not before KillWait ({kill_wait} s)"
        ));
    }
    job.assert_final_state("CANCELLED", "0:9 = Slurm SIGKILLed bansuri at KillWait");
    job.assert_no_process_left();
}

/// `--time=2 --signal=B:TERM@80`: Slurm warns bansuri alone while the job is RUNNING
/// (measured here: 10-40 s into the job; Slurm checks every 30 s and sends the warning up
/// to 30 s early). bansuri sees the job still RUNNING, keeps the whole watchdog (60 s), lets
/// a task spend 15 s on its clean-up, and exits 0 before the time limit: Slurm records
/// COMPLETED 0:0, not TIMEOUT.
#[test]
fn signal_warning_gives_the_full_grace_before_the_time_limit() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| {
        [
            task(
                dir,
                "slowstop",
                "bash",
                "sh_slow_stop.sh",
                r#", "env": {"DELAY": "15"}"#,
            ),
            task(dir, "pysvc", "python3 -u", "py_service.py", ""),
        ]
        .join(", ")
    };
    let opts = JobOpts {
        globals: r#""watchdog_timeout": "60s","#,
        sbatch: &["--time=2", "--signal=B:TERM@80"],
        bansuri: &[],
    };
    let job = Job::submit("signal", opts, scripts);
    job.wait_running();
    job.wait_task_output("slowstop", "tick");
    job.wait_task_output("pysvc", "tick");
    job.wait_line("Slurm's warning SIGTERM", Duration::from_secs(90), |l| {
        l.contains("[MASTER] Received SIGTERM")
    });
    job.wait_line("`Shutdown complete`", Duration::from_secs(40), |l| {
        l.contains("[MASTER] Shutdown complete: exiting with code 0")
    });
    job.wait_gone(Duration::from_secs(20));
    let warned = job.master_line("The job is still RUNNING (state ");
    if !warned.contains("SIGKILLs it KillWait") {
        job.fail(&format!("unexpected KillWait line: {warned}"));
    }
    let shutdown = job.master_line("Received SIGTERM: shutdown of 2 running processes");
    if !shutdown.contains("SIGKILL after 1m)") || shutdown.contains("sooner") {
        job.fail(&format!("the watchdog should be whole: {shutdown}"));
    }
    job.assert_output("slowstop", "slowstop got SIGTERM, cleaning up for 15s");
    job.assert_output("slowstop", "slowstop cleanup done");
    job.assert_output("pysvc", "pysvc goodbye on SIGTERM");
    if job.log_text().contains("sending SIGKILL") {
        job.fail("a task was SIGKILLed: the grace was not whole");
    }
    job.assert_final_state("COMPLETED", "the shutdown ends before the time limit");
    job.assert_no_process_left();
}

/// `stop_before_end: 100s` with `--time=2`: bansuri reads the end time from squeue, plans
/// the shutdown for 20 s into the job, begins it then (not earlier), and the job completes
/// well before its time limit.
#[test]
fn stop_before_end_shuts_down_before_the_time_limit() {
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
    let opts = JobOpts {
        globals: r#""stop_before_end": "100s","#,
        // The template's --signal=B:TERM@150 would warn first: keep Slurm's warning out of
        // the way (it comes at most 30 s early: at 1 m 29 s at the earliest).
        sbatch: &["--time=2", "--signal=B:TERM@1"],
        bansuri: &["--watchdog", "5s"],
    };
    let job = Job::submit("stop-before-end", opts, scripts);
    job.wait_running();
    job.wait_task_output("pysvc", "tick");
    job.master_line("Graceful shutdown planned at");
    job.wait_line("the planned shutdown", Duration::from_secs(40), |l| {
        l.contains("[MASTER] Planned shutdown (stop_before_end is 1m 40s and the job ends at")
    });
    job.wait_gone(Duration::from_secs(20));
    let log = job.log_text();
    let at = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(seconds_of)
            .unwrap_or_else(|| job.fail(&format!("no time stamped line with {needle:?}")))
    };
    let began = at("BANSURI ORCHESTRATOR STARTED");
    let planned = at("[MASTER] Planned shutdown (");
    // 120 s limit - 100 s = 20 s after the job's start; bansuri starts within a second of it.
    let after = planned.wrapping_sub(began);
    if !(17..=22).contains(&after) {
        job.fail(&format!(
            "the planned shutdown began {after} s after bansuri started, not about 20 s"
        ));
    }
    job.assert_output("pysvc", "pysvc goodbye on SIGTERM");
    job.assert_output("shsvc", "shsvc goodbye on SIGTERM");
    job.master_line("Shutdown complete: exiting with code 0");
    job.assert_final_state("COMPLETED", "");
    job.assert_no_process_left();
}

/// `srun` tasks: each run is a job step named after its task (`squeue -s`), its output is
/// prefixed like any other task's, its exit code is the step's; removing a task from the
/// config stops its step: the stop signal reaches the step's task through scancel (srun
/// itself would turn a SIGTERM into SIGKILL), and a step that ignores it is SIGKILLed at
/// the end of its stoptime. The other steps run on.
#[test]
fn srun_tasks_run_as_job_steps_and_stop_with_them() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| {
        [
            task(dir, "worker", "bash", "sh_service.sh", r#", "srun": true"#),
            task(
                dir,
                "monitor",
                "python3 -u",
                "py_service.py",
                r#", "srun": {"overlap": true}"#,
            ),
            task(
                dir,
                "stubborn",
                "exec bash",
                "sh_stubborn.sh",
                r#", "srun": {"overlap": true, "cpus-per-task": 1}, "stoptime": "3s""#,
            ),
            r#"{"name": "failer", "command": "echo about to fail; exit 3", "srun": {"ntasks": 1, "extra-args": ["--quiet"]}}"#.to_owned(),
        ]
        .join(", ")
    };
    let opts = JobOpts {
        globals: r#""watchdog_timeout": "5s","#,
        sbatch: &["--cpus-per-task=2"],
        bansuri: &[],
    };
    let job = Job::submit("srun", opts, scripts);
    job.wait_running();
    job.wait_task_output("worker", "tick");
    job.wait_task_output("monitor", "tick");
    job.wait_task_output("stubborn", "tick");
    job.wait_task_output("failer", "about to fail");
    job.wait_alive(&["worker", "monitor", "stubborn"]);
    // Its output says it runs as a step, and squeue -s shows the steps by task name.
    let worker_step = lines_of(&job.log_text(), "worker")
        .iter()
        .find_map(|l| l.split(" step ").nth(1).map(str::to_owned))
        .unwrap_or_else(|| job.fail("worker's ticks do not show SLURM_STEP_ID"));
    let steps = job.steps();
    for name in ["worker", "monitor", "stubborn"] {
        if !steps.iter().any(|(_, n)| n == name) {
            job.fail(&format!("no step named {name} in squeue -s: {steps:?}"));
        }
    }
    let worker_id = format!("{}.{worker_step}", job.id);
    if !steps.contains(&(worker_id.clone(), "worker".to_owned())) {
        job.fail(&format!(
            "squeue -s does not list {worker_id} as worker: {steps:?}"
        ));
    }
    let deadline = Instant::now() + OUTPUT_TIMEOUT;
    if wait_for(deadline, || {
        events_of(&job.log_text(), "failer")
            .iter()
            .any(|l| l.contains("Process finished with code 3"))
            .then_some(())
    })
    .is_none()
    {
        job.fail("the srun task that exits 3 was not logged with code 3");
    }

    // Remove worker and stubborn from the config.
    let keep = [
        task(
            &job.dir,
            "monitor",
            "python3 -u",
            "py_service.py",
            r#", "srun": {"overlap": true}"#,
        ),
        r#"{"name": "failer", "command": "echo about to fail; exit 3", "srun": {"ntasks": 1, "extra-args": ["--quiet"]}}"#.to_owned(),
    ]
    .join(", ");
    let edited = Instant::now();
    job.rewrite_config(r#""watchdog_timeout": "5s","#, &keep);
    job.wait_task_output(
        "worker",
        &format!("worker goodbye on SIGTERM in step {worker_step}"),
    );
    job.assert_event(
        "worker",
        &format!("SIGTERM to job step {worker_id} (scancel --signal=TERM)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = |name: &str| {
        wait_for(deadline, || {
            (!job.steps().iter().any(|(_, n)| n == name)).then(Instant::now)
        })
    };
    let Some(worker_gone) = gone("worker") else {
        job.fail("the worker's step is still in squeue -s after its removal");
    };
    let Some(stubborn_gone) = gone("stubborn") else {
        job.fail("the stubborn step is still in squeue -s 10 s after its removal");
    };
    eprintln!(
        "job {}: edit -> worker step gone {:?}, stubborn step gone {:?}",
        job.id,
        worker_gone - edited,
        stubborn_gone - edited
    );
    job.assert_output("stubborn", "stubborn ignores SIGTERM");
    // Its own stoptime (3 s), not the watchdog.
    job.assert_sigkilled_after("stubborn", 2.9, 3.1);
    // The monitor's step runs on.
    if !job.steps().iter().any(|(_, n)| n == "monitor") {
        job.fail("the monitor's step ended with the others");
    }
    let ticks = lines_of(&job.log_text(), "monitor").len();
    let deadline = Instant::now() + Duration::from_secs(5);
    if wait_for(deadline, || {
        (lines_of(&job.log_text(), "monitor").len() > ticks).then_some(())
    })
    .is_none()
    {
        job.fail("the monitor stopped printing after the edit");
    }
    job.scancel();
    job.wait_gone(Duration::from_secs(kill_wait_secs() + 5));
    job.assert_no_process_left();
}

/// `scancel --batch --signal=TERM`: bansuri alone gets SIGTERM and the job stays RUNNING,
/// so no SIGKILL from Slurm is coming: a task's 12 s clean-up (longer than KillWait - 2 s)
/// completes, and the job ends COMPLETED 0:0.
#[test]
fn scancel_batch_gives_the_whole_grace() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| {
        task(
            dir,
            "slowstop",
            "bash",
            "sh_slow_stop.sh",
            r#", "env": {"DELAY": "12"}"#,
        )
    };
    let opts = JobOpts {
        globals: r#""watchdog_timeout": "60s","#,
        ..JobOpts::default()
    };
    let job = Job::submit("batch-signal", opts, scripts);
    job.wait_running();
    job.wait_task_output("slowstop", "tick");
    job.wait_alive(&["slowstop"]);
    let sent = Instant::now();
    run("scancel", &["--batch", "--signal=TERM", &job.id]).unwrap_or_else(|e| job.fail(&e));
    let done = job.wait_line("`Shutdown complete`", Duration::from_secs(30), |l| {
        l.contains("[MASTER] Shutdown complete: exiting with code 0")
    });
    eprintln!(
        "job {}: scancel --batch -> bansuri done in {:?}",
        job.id,
        done - sent
    );
    job.wait_gone(Duration::from_secs(20));
    job.master_line("The job is still RUNNING (state ");
    job.assert_output("slowstop", "slowstop cleanup done");
    if job.log_text().contains("sending SIGKILL") {
        job.fail("the task was SIGKILLed: the grace was not whole");
    }
    job.assert_final_state("COMPLETED", "");
    job.assert_no_process_left();
}

/// `scontrol requeue`: Slurm ends the run like a scancel (SIGTERM, SIGKILL KillWait later)
/// and puts the job back in the queue; bansuri stops its tasks within KillWait and exits 0.
/// (Slurm holds a requeued job for a while before it starts again: the restart itself is
/// not waited for here.)
#[test]
fn requeue_stops_the_tasks_within_kill_wait() {
    if !slurm_gate() {
        return;
    }
    let kill_wait = kill_wait_secs();
    let scripts = |dir: &Path| task(dir, "stubborn", "exec bash", "sh_stubborn.sh", "");
    let opts = JobOpts {
        sbatch: &["--requeue"],
        ..JobOpts::default()
    };
    let job = Job::submit("requeue", opts, scripts);
    job.wait_running();
    job.wait_task_output("stubborn", "tick");
    job.wait_alive(&["stubborn"]);
    let sent = Instant::now();
    run("scontrol", &["requeue", &job.id]).unwrap_or_else(|e| job.fail(&e));
    let done = job.wait_line(
        "`Shutdown complete`",
        Duration::from_secs(kill_wait + 5),
        |l| l.contains("[MASTER] Shutdown complete: exiting with code 0"),
    );
    let took = done - sent;
    eprintln!("job {}: requeue -> bansuri done in {took:?}", job.id);
    job.master_line("Slurm is ending the job (state ");
    // The grace it was given is what KillWait left (bansuri keeps 2 s for itself).
    job.assert_sigkilled_after("stubborn", kill_wait as f64 - 4.0, kill_wait as f64 - 2.0);
    if took >= Duration::from_secs(kill_wait) {
        job.fail(&format!(
            "bansuri finished {took:?} after the requeue: not before KillWait"
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(kill_wait + 10);
    if wait_for(deadline, || {
        (job.queue_state().as_deref() == Some("PENDING")).then_some(())
    })
    .is_none()
    {
        job.fail("the requeued job did not go back to PENDING");
    }
    job.assert_no_process_left();
}

/// The time limit changed mid-job (`scontrol update TimeLimit=`) and `scancel --batch
/// --signal=HUP`: bansuri re-reads the config and the job's end time at once, and moves the
/// `stop_before_end` shutdown with it (from 5 m 20 s into the job to 20 s; Slurm keeps time
/// limits in whole minutes).
#[test]
fn stop_before_end_follows_a_new_time_limit_on_sighup() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| task(dir, "pysvc", "python3 -u", "py_service.py", "");
    let opts = JobOpts {
        globals: r#""stop_before_end": "280s","#,
        sbatch: &["--time=10", "--signal=B:TERM@1"],
        bansuri: &["--watchdog", "5s"],
    };
    let job = Job::submit("new-limit", opts, scripts);
    job.wait_running();
    job.wait_task_output("pysvc", "tick");
    job.master_line("Graceful shutdown planned at");
    // 5 min: the shutdown moves to 20 s after the start.
    run(
        "scontrol",
        &["update", &format!("JobId={}", job.id), "TimeLimit=5"],
    )
    .unwrap_or_else(|e| job.fail(&e));
    run("scancel", &["--batch", "--signal=HUP", &job.id]).unwrap_or_else(|e| job.fail(&e));
    job.wait_line("the new end time", Duration::from_secs(10), |l| {
        l.contains("[MASTER] The job's end time is now ")
    });
    job.wait_line("the moved shutdown", Duration::from_secs(40), |l| {
        l.contains("[MASTER] Planned shutdown (stop_before_end is 4m 40s")
    });
    job.wait_gone(Duration::from_secs(20));
    let log = job.log_text();
    let at = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(seconds_of)
            .unwrap_or_else(|| job.fail(&format!("no time stamped line with {needle:?}")))
    };
    let after = at("[MASTER] Planned shutdown (").wrapping_sub(at("BANSURI ORCHESTRATOR STARTED"));
    if !(17..=22).contains(&after) {
        job.fail(&format!(
            "the moved shutdown began {after} s after bansuri started, not about 20 s"
        ));
    }
    job.master_line("SIGHUP received: re-reading the config file");
    job.assert_output("pysvc", "pysvc goodbye on SIGTERM");
    job.assert_final_state("COMPLETED", "");
}

/// Issue 17, the time left, on a real job with a 2-minute limit and `stop_before_end` 100 s
/// (shutdown about 20 s in): a task whose checkpoint lead is 110 s gets its signal about
/// 10 s in, once; a one-shot expected to take 10 minutes is never started and is listed as
/// not run for lack of time.
#[test]
fn the_checkpoint_signal_comes_at_its_lead_and_work_that_cannot_finish_is_not_started() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| {
        [
            // `exec`: the script (which traps USR1) is the run's main process. Under
            // `sh -c` (dash does not exec a last command) the shell died of USR1, and the
            // SIGTERM to its leftovers could reach bash before its USR1 trap had run.
            task(
                dir,
                "saver",
                "exec bash",
                "sh_service.sh",
                r#", "checkpoint-signal": "USR1", "checkpoint-lead": "110s""#,
            ),
            r#"{"name": "long", "command": "echo long started", "expected-runtime": "10m"}"#
                .to_owned(),
        ]
        .join(", ")
    };
    let opts = JobOpts {
        globals: r#""stop_before_end": "100s","#,
        sbatch: &["--time=2", "--signal=B:TERM@1"],
        bansuri: &["--watchdog", "5s"],
    };
    let job = Job::submit("time-left", opts, scripts);
    job.wait_running();
    job.wait_task_output("saver", "tick");
    job.wait_line("the checkpoint signal", Duration::from_secs(40), |l| {
        l.contains("[saver] checkpoint signal SIGUSR1")
    });
    job.wait_gone(Duration::from_secs(60));
    let log = job.log_text();
    let at = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(seconds_of)
            .unwrap_or_else(|| job.fail(&format!("no time stamped line with {needle:?}")))
    };
    let began = at("BANSURI ORCHESTRATOR STARTED");
    let signalled = at("[saver] checkpoint signal SIGUSR1").wrapping_sub(began);
    // 120 s limit - 110 s lead = 10 s after the job's start (Slurm's end time is to the
    // second, bansuri starts within a second or two of the job).
    if !(7..=13).contains(&signalled) {
        job.fail(&format!(
            "the checkpoint signal came {signalled} s after bansuri started, not about 10 s"
        ));
    }
    if log.matches("checkpoint signal SIGUSR1").count() != 1 {
        job.fail("the checkpoint signal must be sent once");
    }
    job.assert_output("saver", "saver got USR1");
    if log.contains("long started") {
        job.fail("a run expected to end after the time limit must not start");
    }
    job.master_line("Not run for lack of time (would have ended after the job's time limit): long");
    job.assert_no_process_left();
}

/// Issue 17, `requeue_on_end`: a job submitted with `--requeue` whose planned shutdown
/// (`stop_before_end`, the time limit coming) leaves work unfinished requeues itself, and
/// goes back to PENDING once bansuri is done.
#[test]
fn requeue_on_end_requeues_the_job_when_the_time_limit_leaves_work() {
    if !slurm_gate() {
        return;
    }
    let scripts = |dir: &Path| task(dir, "work", "bash", "sh_service.sh", "");
    let opts = JobOpts {
        globals: r#""stop_before_end": "105s", "requeue_on_end": true,"#,
        sbatch: &["--requeue", "--time=2", "--signal=B:TERM@1"],
        bansuri: &["--watchdog", "5s"],
    };
    let job = Job::submit("requeue-on-end", opts, scripts);
    job.wait_running();
    job.wait_task_output("work", "tick");
    job.wait_line("the requeue", Duration::from_secs(40), |l| {
        l.contains("requeue_on_end: job ") && l.contains(" requeued (scontrol requeue")
    });
    job.master_line("The time limit ends the job with 1 run(s) left: requeueing it");
    job.assert_output("work", "work goodbye on SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    if wait_for(deadline, || {
        (job.queue_state().as_deref() == Some("PENDING")).then_some(())
    })
    .is_none()
    {
        job.fail("the requeued job did not go back to PENDING");
    }
}
