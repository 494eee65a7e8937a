//! Shared helpers for the integration tests: a temp dir per test, the real binary, a guard
//! that kills what it started (even when the test fails), and `wait_for` polling.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bansuri");

/// A temp dir with a config file in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.file(name);
        fs::write(&p, text).expect("write file");
        p
    }
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.file(name)).unwrap_or_default()
    }
    /// Start bansuri on `config` (a JSON text written to config.json), job log to log.txt.
    pub fn start(&self, config: &str, args: &[&str]) -> Bansuri {
        self.start_with_env(config, args, &[])
    }
    /// [`Sandbox::start`] with these variables added to bansuri's environment.
    pub fn start_with_env(&self, config: &str, args: &[&str], env: &[(&str, &str)]) -> Bansuri {
        let log = self.file("log.txt");
        let mut all = vec!["--log-file", log.to_str().expect("UTF-8 temp path")];
        all.extend_from_slice(args);
        self.launch(config, &all, log.clone(), env)
    }
    /// Start bansuri on `config` without `--log-file`: the config names its job log
    /// (`log_file`), so that a reload can move it; `log` is where `Bansuri::log` reads.
    pub fn start_logging_to(&self, config: &str, args: &[&str], log: PathBuf) -> Bansuri {
        self.launch(config, args, log, &[])
    }
    fn launch(&self, config: &str, args: &[&str], log: PathBuf, env: &[(&str, &str)]) -> Bansuri {
        let cfg = self.write("config.json", config);
        launch_file(&cfg, args, log, env)
    }
    /// Start bansuri on the config file `cfg` (anywhere), job log to `log` in the sandbox.
    pub fn start_file(&self, cfg: &Path, log: &str) -> Bansuri {
        let log = self.file(log);
        let arg = log.to_str().expect("UTF-8 temp path").to_owned();
        launch_file(cfg, &["--log-file", &arg], log, &[])
    }
}

fn launch_file(cfg: &Path, args: &[&str], log: PathBuf, env: &[(&str, &str)]) -> Bansuri {
    let child = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bansuri");
    Bansuri {
        child: Some(child),
        log,
    }
}

/// A running bansuri; killed (with its process groups, via PDEATHSIG) on drop.
pub struct Bansuri {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Bansuri {
    /// SIGKILL bansuri's guardian (its one child that is not a task), wait until it is
    /// gone, then SIGKILL bansuri: what a node failure or an OOM kill of both does, so the
    /// next start must clean up by itself.
    pub fn kill_guardian_then_self(&mut self, limit: Duration) {
        let me = self.pid();
        let guardian: i32 = fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .find(|p: &i32| {
                !fs::read_to_string(format!("/proc/{p}/environ"))
                    .unwrap_or_default()
                    .contains("BANSURI_TASK=")
            })
            .expect("the guardian is bansuri's one child that is not a task");
        // SAFETY: signalling a process this test started (bansuri's guardian).
        unsafe { libc::kill(guardian, libc::SIGKILL) };
        wait_for(limit, || (!alive(guardian)).then_some(())).expect("guardian gone");
        self.signal(libc::SIGKILL);
        self.wait(limit).expect("killed");
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling the pid of our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
    /// Wait for exit up to `limit`; returns the status and stderr.
    pub fn wait(&mut self, limit: Duration) -> Option<(ExitStatus, String)> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                self.child = None;
                return Some((st, err));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    /// Wait until the job log satisfies `pred`, or panic with the log.
    pub fn wait_log(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let log = &self.log;
        wait_for(limit, || {
            let text = fs::read_to_string(log).unwrap_or_default();
            pred(&text).then_some(text)
        })
        .unwrap_or_else(|| panic!("timed out waiting for {what}; job log:\n{}", self.log()))
    }
}

impl Drop for Bansuri {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a client command (`status`, `start`, ...) on `cfg`: (exit code, stdout, stderr).
pub fn client(cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .env_remove("BANSURI_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run bansuri client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Are we root? If not, say that `what` (which needs root) was skipped; under `CI=true`
/// (where the tests run as root) fail instead.
pub fn root_or_skip(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI runs as root: {what} must run"
    );
    eprintln!("skipped: {what} needs root");
    false
}

/// Poll `f` every few ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is `pid` alive (a zombie counts as dead)?
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the field after the ")" of the comm
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Every process on the machine as (pid, state, ppid, pgrp), from /proc/PID/stat.
fn processes() -> Vec<(i32, String, i32, i32)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state ppid pgrp ...
        let rest: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if let (Some(state), Some(ppid), Some(pgrp)) = (rest.first(), rest.get(1), rest.get(2)) {
            out.push((
                pid,
                state.to_string(),
                ppid.parse().unwrap_or(0),
                pgrp.parse().unwrap_or(0),
            ));
        }
    }
    out
}

/// Pids of live processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, state, _, pgrp)| *pgrp == pgid && state != "Z")
        .map(|(pid, ..)| pid)
        .collect()
}

/// Zombie children of `ppid`.
pub fn zombies_of(ppid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, state, parent, _)| *parent == ppid && state == "Z")
        .map(|(pid, ..)| pid)
        .collect()
}

/// Lines of the log that belong to `task` and are child output (`] | `).
pub fn output_lines<'a>(log: &'a str, task: &str) -> Vec<&'a str> {
    let tag = format!("] [{task}] | ");
    log.lines()
        .filter_map(|l| l.find(&tag).map(|i| &l[i + tag.len()..]))
        .collect()
}

/// Count of lifecycle lines of `task` containing `needle`.
pub fn count_events(log: &str, task: &str, needle: &str) -> usize {
    let tag = format!("] [{task}] ");
    log.lines()
        .filter(|l| l.contains(&tag) && !l.contains(&format!("{tag}| ")) && l.contains(needle))
        .count()
}

/// Kills, on drop, the processes (and their groups) whose pids a test's tasks wrote to
/// `files`: what escaped bansuri must not outlive a failing test.
pub struct KillListed(pub Vec<std::path::PathBuf>);

impl Drop for KillListed {
    fn drop(&mut self) {
        for f in &self.0 {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            for pid in text
                .split_whitespace()
                .filter_map(|w| w.parse::<i32>().ok())
            {
                if pid > 1 {
                    // SAFETY: signalling processes (and groups) this test's tasks or notifiers started.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}
