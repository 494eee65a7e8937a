//! Shared by the tests on the three-node SLURM cluster (tests/slurm_multinode.rs and
//! tests/slurm_multinode_lifecycle.rs): the gate, polling, the binary a job runs, and a
//! submitted job that is cancelled and waited for on drop whatever the test's outcome.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

pub const BANSURI: &str = env!("CARGO_BIN_EXE_bansuri");
pub const SUBMIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/submit.sh");
pub const DEFAULT_CONF: &str = "/run/slurm-multinode/slurm.conf";
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// The cluster's slurm.conf when the tests run here; panics when they must run but cannot.
pub fn gate() -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let conf = match std::env::var("BANSURI_SLURM_MULTINODE") {
        Ok(c) if !c.is_empty() && c != "0" => c,
        _ if ci => DEFAULT_CONF.to_owned(),
        _ => {
            println!("skipped: no multi-node SLURM (run tests/run.sh)");
            return None;
        }
    };
    let out = Command::new("sinfo")
        .env("SLURM_CONF", &conf)
        .args(["-h", "-N", "-o", "%N %T"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            for n in NODES {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{n} "))),
                    "the multi-node cluster ({conf}) has no node {n}: {text}\n\
                     start it with: bash slurm/multinode-cluster.sh up"
                );
            }
            Some(conf)
        }
        Ok(o) => panic!(
            "the multi-node SLURM tests must run, but `sinfo` ({conf}) failed ({}): {}\n\
             start the cluster with: bash slurm/multinode-cluster.sh up",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("`sinfo` could not run: {e}: bash slurm/multinode-cluster.sh up"),
    }
}

pub fn wait_for<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The binary the job runs: the static one tests/run.sh builds, else the test build
/// (every node sees this machine's file system).
pub fn job_binary() -> PathBuf {
    std::env::var_os("BANSURI_STATIC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BANSURI))
}

/// How long a job may wait in the queue: the tests of this file (and of other sessions)
/// take the whole cluster in turn.
pub const START_WITHIN: Duration = Duration::from_secs(600);

/// A `key=value` of `slurm.conf` (the file of the multi-node cluster).
pub fn conf_value(conf: &str, key: &str) -> Option<String> {
    let text = fs::read_to_string(conf).ok()?;
    let want = format!("{key}=");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&want).map(|v| v.trim().to_owned()))
}

/// A submitted job, cancelled (and waited for) on drop whatever the test's outcome.
pub struct Job {
    pub conf: String,
    pub id: String,
    pub log: PathBuf,
    dir: PathBuf,
    /// The job's own directory when the job made it (removed on drop).
    _temp: Option<tempfile::TempDir>,
}

impl Job {
    /// sbatch slurm/submit.sh with the config `config(dir)` writes for the job's own
    /// directory (its working directory, where the config file lies).
    pub fn submit(
        conf: &str,
        label: &str,
        sbatch: &[&str],
        config: impl FnOnce(&Path) -> String,
        args: &[&str],
    ) -> Job {
        let temp = tempfile::Builder::new()
            .prefix(&format!("bansuri-mn-{label}-"))
            .tempdir_in("/tmp")
            .expect("temp dir");
        let text = config(temp.path());
        fs::write(temp.path().join("config.json"), text).expect("write config");
        let mut job = Job::submit_in(conf, temp.path(), label, sbatch, args);
        job._temp = Some(temp);
        job
    }

    /// sbatch slurm/submit.sh in `dir`, whose `config.json` is written already (a second
    /// job in the same directory: `--resume` reads the first one's state).
    pub fn submit_in(conf: &str, dir: &Path, label: &str, sbatch: &[&str], args: &[&str]) -> Job {
        let mut cmd = Command::new("sbatch");
        cmd.env("SLURM_CONF", conf)
            .env("BANSURI_BIN", job_binary())
            .env("BANSURI_CONFIG", dir.join("config.json"))
            .args([
                "--parsable",
                &format!("--job-name=bansuri-mn-{label}"),
                &format!("--chdir={}", dir.display()),
                "--time=5",
            ])
            .args(sbatch)
            .arg(SUBMIT)
            .args(args);
        let out = cmd.output().expect("run sbatch");
        assert!(
            out.status.success(),
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty());
        let log = dir.join(format!("master_{id}.log"));
        Job {
            conf: conf.to_owned(),
            id,
            log,
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn slurm(&self, program: &str, args: &[&str]) -> String {
        Command::new(program)
            .env("SLURM_CONF", &self.conf)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The job's state in squeue (`PENDING`, `RUNNING`, ...), None once it has left.
    pub fn queue_state(&self) -> Option<String> {
        let state = self.slurm("squeue", &["-h", "-j", &self.id, "-o", "%T"]);
        let state = state.trim();
        (!state.is_empty()).then(|| state.to_owned())
    }

    pub fn in_queue(&self) -> bool {
        self.queue_state().is_some()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `scontrol show job` field, e.g. "BatchHost" -> "n1" (while Slurm still knows the job).
    pub fn job_field(&self, field: &str) -> Option<String> {
        let key = format!("{field}=");
        self.slurm("scontrol", &["show", "job", "-o", &self.id])
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&key).map(str::to_owned))
    }

    /// Fail the test with what is known of the job: its Slurm record and its log.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "job {}: {what}\n--- scontrol show job\n{}--- job log {}\n{}--- end of job log",
            self.id,
            self.slurm("scontrol", &["show", "job", &self.id]),
            self.log.display(),
            self.log_text()
        )
    }

    /// Wait until the job runs (it may queue behind others); the node bansuri (the leader)
    /// runs on.
    pub fn wait_running(&self) -> String {
        let started = wait_for(Instant::now() + START_WITHIN, || {
            match self.queue_state().as_deref() {
                Some("PENDING") | Some("CONFIGURING") => None,
                _ => Some(()),
            }
        });
        if started.is_none() {
            self.fail(&format!("did not start within {START_WITHIN:?}"));
        }
        match self.job_field("BatchHost") {
            Some(h) if NODES.contains(&h.as_str()) => h,
            other => self.fail(&format!("no BatchHost among {NODES:?}: {other:?}")),
        }
    }

    /// Wait (from now) until `probe` finds what it wants in the job log; fail with `what`.
    pub fn wait_log<T>(
        &self,
        what: &str,
        within: Duration,
        probe: impl Fn(&str) -> Option<T>,
    ) -> T {
        match wait_for(Instant::now() + within, || probe(&self.log_text())) {
            Some(v) => v,
            None => self.fail(&format!("{what}: not in the job log within {within:?}")),
        }
    }

    /// Wait until the job has left the queue (`within` counts from its start); its log.
    pub fn finish(&self, within: Duration) -> String {
        self.wait_running();
        let gone = wait_for(Instant::now() + within, || (!self.in_queue()).then_some(()));
        if gone.is_none() {
            self.fail(&format!("still queued {within:?} after its start"));
        }
        self.log_text()
    }

    /// The job's state and exit code as Slurm recorded them at its end: its line in the
    /// cluster's jobcomp log (`JobCompLoc`), else `scontrol show job`.
    pub fn final_state(&self) -> (String, String) {
        let key = format!("JobId={} ", self.id);
        let field = |line: &str, k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k).map(str::to_owned))
                .unwrap_or_default()
        };
        if let Some(loc) = conf_value(&self.conf, "JobCompLoc") {
            let line = wait_for(Instant::now() + Duration::from_secs(10), || {
                fs::read_to_string(&loc)
                    .ok()?
                    .lines()
                    .find(|l| l.starts_with(&key))
                    .map(str::to_owned)
            });
            if let Some(line) = line {
                return (field(&line, "JobState="), field(&line, "ExitCode="));
            }
        }
        (
            self.job_field("JobState").unwrap_or_default(),
            self.job_field("ExitCode").unwrap_or_default(),
        )
    }

    /// The job's steps listed by `squeue -s` now: their ids (`123.0`, `123.batch`, ...).
    pub fn live_steps(&self) -> Vec<String> {
        self.slurm("squeue", &["-h", "-s", "-j", &self.id, "-o", "%i"])
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .env("SLURM_CONF", &self.conf)
            .arg(&self.id)
            .status();
        let _ = wait_for(Instant::now() + Duration::from_secs(30), || {
            (!self.in_queue()).then_some(())
        });
    }
}
