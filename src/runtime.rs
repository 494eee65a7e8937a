//! The event loop: the only place that reads the clock, waits on file descriptors and
//! signals, and carries out the core's actions.
//!
//! One thread. epoll watches a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP) and every
//! child's output pipe; its timeout is the core's next deadline, so an idle bansuri sleeps
//! until something is due. Output is read in large chunks, split into lines and written,
//! prefixed, into one buffered job log, flushed whenever the loop goes idle.
//!
//! Must not: decide anything about tasks (that is the core's job), or block on a child.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::clock::{Mono, Now};
use crate::core::{Action, Core, Input, Mode, RunId};
use crate::level::Level;
use crate::output::{JobLog, LineSplitter, Stream};
use crate::spawn::{self, Reaped};
use crate::spec::{LogFormat, Spec};

/// Longest line written to the job log in one piece; longer lines are split.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes read from a pipe per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per pipe per wake-up before the loop serves other fds (fairness).
const READS_PER_WAKE: usize = 16;
const SIGNAL_TOKEN: u64 = u64::MAX;
/// How often process groups that outlived their main process are checked for emptiness.
/// Their members' deaths mostly arrive as SIGCHLD (bansuri is their subreaper), which also
/// triggers a check; this poll covers members whose parent is still alive.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// How to run, beyond the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Batch modes.
    pub mode: Mode,
    /// Lifecycle lines below this level are dropped.
    pub log_level: Level,
}

/// Errors that stop bansuri before or while running (exit code 1).
#[derive(Debug)]
pub struct RuntimeError(pub String);

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuntimeError {}

/// Expand `{job_id}` in a log file path: `$SLURM_JOB_ID`, or `local` outside SLURM.
pub fn expand_log_path(raw: &str) -> PathBuf {
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "local".to_owned());
    PathBuf::from(raw.replace("{job_id}", &job))
}

/// Open the job log: the file (appending) or bansuri's stdout.
pub fn open_job_log(spec: &Spec) -> Result<Box<dyn Write + Send>, RuntimeError> {
    match &spec.globals.log_file {
        Some(raw) => {
            let path = expand_log_path(raw);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| {
                    RuntimeError(format!("cannot open log file {}: {e}", path.display()))
                })?;
            Ok(Box::new(f))
        }
        None => {
            // A File on a duplicate of fd 1: std's stdout is line-buffered and locked,
            // too slow for the job log's volume; JobLog buffers itself.
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| RuntimeError(format!("cannot use stdout as the job log: {e}")))?;
            Ok(Box::new(File::from(fd)))
        }
    }
}

struct Pipe {
    fd: OwnedFd,
    run: RunId,
    task: Arc<str>,
    stream: Stream,
    splitter: LineSplitter,
}

struct RunInfo {
    pid: u32,
    pipes: Vec<usize>,
}

/// The event loop and what it owns.
pub struct Runtime {
    core: Core,
    log: JobLog,
    epoll: Epoll,
    sigfd: SignalFd,
    origin: Instant,
    runs: HashMap<RunId, RunInfo>,
    pids: HashMap<u32, RunId>,
    pipes: Vec<Option<Pipe>>,
    free_slots: Vec<usize>,
    buf: Vec<u8>,
    /// Runs whose main process was reaped while its process group lives on: the run ends
    /// when the group is empty.
    draining: HashMap<RunId, Reaped>,
}

/// Run `spec` until shutdown or (in batch modes) until done; returns the exit code.
pub fn run(spec: Spec, opts: RunOptions) -> Result<i32, RuntimeError> {
    let out = open_job_log(&spec)?;
    let mut rt = Runtime::new(spec, opts, out)?;
    rt.run()
}

fn err(what: &str) -> impl Fn(nix::Error) -> RuntimeError + '_ {
    move |e| RuntimeError(format!("{what}: {e}"))
}

impl Runtime {
    fn new(
        spec: Spec,
        opts: RunOptions,
        out: Box<dyn Write + Send>,
    ) -> Result<Runtime, RuntimeError> {
        // Signals are read from a signalfd, so they must be blocked for the whole process
        // (done before any thread exists; children get an empty mask in spawn).
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        mask.thread_block().map_err(err("cannot block signals"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(err("cannot create a signalfd"))?;
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(err("cannot create epoll"))?;
        epoll
            .add(
                sigfd.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, SIGNAL_TOKEN),
            )
            .map_err(err("cannot watch the signalfd"))?;
        if let Err(e) = spawn::become_subreaper() {
            eprintln!("bansuri: warning: cannot become a subreaper ({e}); orphans of tasks are reaped by init");
        }
        let mut log = JobLog::new(out, spec.globals.log_format, opts.log_level);
        if spec.globals.log_format == LogFormat::Json {
            log.set_format(LogFormat::Json);
        }
        let core = Core::new(&spec, opts.mode);
        let mut rt = Runtime {
            core,
            log,
            epoll,
            sigfd,
            origin: Instant::now(),
            runs: HashMap::new(),
            pids: HashMap::new(),
            pipes: Vec::new(),
            free_slots: Vec::new(),
            buf: vec![0; READ_CHUNK],
            draining: HashMap::new(),
        };
        rt.header(&spec);
        Ok(rt)
    }

    fn now(&self) -> Now {
        Now {
            mono: Mono(self.origin.elapsed()),
            wall: Utc::now(),
        }
    }

    fn master(&mut self, level: Level, msg: &str) {
        let wall = Utc::now();
        self.log.event(wall, None, level, msg);
    }

    fn header(&mut self, spec: &Spec) {
        let bar = "=".repeat(60);
        self.master(Level::Info, &bar);
        self.master(Level::Info, "BANSURI ORCHESTRATOR STARTED");
        self.master(Level::Info, &bar);
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "?".to_owned());
        let line = format!(
            "bansuri {} pid {} on {host}; config {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            spec.source.display()
        );
        self.master(Level::Info, &line);
        match std::env::var("SLURM_JOB_ID") {
            Ok(id) => {
                let get = |k: &str| std::env::var(k).unwrap_or_else(|_| "?".to_owned());
                let line = format!(
                    "SLURM job {id} ({}), nodes {}, CPUs on node {}, partition {}",
                    get("SLURM_JOB_NAME"),
                    get("SLURM_JOB_NODELIST"),
                    get("SLURM_CPUS_ON_NODE"),
                    get("SLURM_JOB_PARTITION")
                );
                self.master(Level::Info, &line);
            }
            Err(_) => self.master(Level::Debug, "not inside a SLURM job"),
        }
    }

    fn run(&mut self) -> Result<i32, RuntimeError> {
        let now = self.now();
        let actions = self.core.handle(Input::Start, now);
        if let Some(code) = self.apply(actions) {
            return Ok(self.finish(code));
        }
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            let now = self.now();
            let mut deadline = self.core.next_deadline();
            if !self.draining.is_empty() {
                let poll = now.mono + DRAIN_POLL;
                deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
            }
            let timeout = match deadline {
                None => EpollTimeout::NONE,
                Some(d) if d <= now.mono => EpollTimeout::ZERO,
                Some(d) => {
                    // Round up: waking a little late is fine, waking early costs a spin.
                    let ms = d.since(now.mono).as_micros().div_ceil(1000);
                    EpollTimeout::try_from(ms.min(i32::MAX as u128) as i32)
                        .unwrap_or(EpollTimeout::NONE)
                }
            };
            if timeout != EpollTimeout::ZERO {
                self.flush_log();
            }
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => 0,
                Err(e) => return Err(RuntimeError(format!("epoll_wait failed: {e}"))),
            };
            for ev in events.iter().take(n) {
                let token = ev.data();
                if token == SIGNAL_TOKEN {
                    if let Some(code) = self.on_signals() {
                        return Ok(self.finish(code));
                    }
                } else {
                    self.on_pipe(token as usize, false);
                }
            }
            if !self.draining.is_empty() {
                if let Some(code) = self.check_draining() {
                    return Ok(self.finish(code));
                }
            }
            let now = self.now();
            if self.core.next_deadline().is_some_and(|d| d <= now.mono) {
                let actions = self.core.handle(Input::Tick, now);
                if let Some(code) = self.apply(actions) {
                    return Ok(self.finish(code));
                }
            }
        }
    }

    /// Drain what is left, flush, and hand back the exit code.
    fn finish(&mut self, code: i32) -> i32 {
        let slots: Vec<usize> = (0..self.pipes.len())
            .filter(|&i| self.pipes[i].is_some())
            .collect();
        for slot in slots {
            self.on_pipe(slot, true);
            // Whatever still holds the pipe open (a process that escaped its group) no
            // longer matters: flush the partial line and let go.
            self.close_pipe(slot);
        }
        self.flush_log();
        code
    }

    fn flush_log(&mut self) {
        self.log.flush();
        if let Some(e) = self.log.take_error() {
            eprintln!("bansuri: cannot write the job log: {e} (output is being dropped until it works again)");
        }
    }

    /// Execute actions depth-first (the actions an input produces run before the rest).
    /// Returns the exit code when the core is done.
    fn apply(&mut self, actions: Vec<Action>) -> Option<i32> {
        let mut stack: Vec<Action> = actions.into_iter().rev().collect();
        while let Some(action) = stack.pop() {
            let follow = match action {
                Action::Log { task, level, msg } => {
                    self.log.event(Utc::now(), task.as_deref(), level, &msg);
                    continue;
                }
                Action::Exit { code } => return Some(code),
                Action::Signal { run, signal } => {
                    if let Some(info) = self.runs.get(&run) {
                        if let Err(e) = spawn::signal_group(info.pid, signal) {
                            let msg = format!("cannot signal process group {}: {e}", info.pid);
                            self.master(Level::Error, &msg);
                        }
                    }
                    continue;
                }
                Action::Spawn { run, task, attempt } => match spawn::spawn(&task, attempt) {
                    Ok(child) => {
                        let pid = child.pid;
                        let name: Arc<str> = Arc::from(task.name.as_str());
                        let mut pipes = Vec::new();
                        for (fd, stream) in [
                            (child.stdout, Stream::Stdout),
                            (child.stderr, Stream::Stderr),
                        ] {
                            if let Some(fd) = fd {
                                match self.add_pipe(fd, run, Arc::clone(&name), stream) {
                                    Ok(slot) => pipes.push(slot),
                                    Err(e) => {
                                        let msg =
                                            format!("cannot watch the output of pid {pid}: {e}");
                                        self.master(Level::Error, &msg);
                                    }
                                }
                            }
                        }
                        self.runs.insert(run, RunInfo { pid, pipes });
                        self.pids.insert(pid, run);
                        self.core.handle(Input::Spawned { run, pid }, self.now())
                    }
                    Err(reason) => self
                        .core
                        .handle(Input::SpawnFailed { run, reason }, self.now()),
                },
            };
            stack.extend(follow.into_iter().rev());
        }
        None
    }

    fn add_pipe(
        &mut self,
        fd: OwnedFd,
        run: RunId,
        task: Arc<str>,
        stream: Stream,
    ) -> io::Result<usize> {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.pipes.push(None);
            self.pipes.len() - 1
        });
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, slot as u64);
        if let Err(e) = self.epoll.add(fd.as_fd(), ev) {
            self.free_slots.push(slot);
            return Err(io::Error::from(e));
        }
        self.pipes[slot] = Some(Pipe {
            fd,
            run,
            task,
            stream,
            splitter: LineSplitter::new(MAX_LINE),
        });
        Ok(slot)
    }

    /// Read what a pipe has. `to_eof`: keep reading until EAGAIN or EOF (used before
    /// reporting a process's end, so its last output precedes the "finished" line).
    fn on_pipe(&mut self, slot: usize, to_eof: bool) {
        let Some(pipe) = self.pipes.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut closed = false;
        let mut reads = 0;
        loop {
            // SAFETY: reading into our own buffer of the stated length.
            let n = unsafe {
                libc::read(
                    pipe.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                )
            };
            if n > 0 {
                let wall = Utc::now();
                let (log, task, stream) = (&mut self.log, &pipe.task, pipe.stream);
                pipe.splitter.push(&self.buf[..n as usize], &mut |line| {
                    log.child_line(wall, task, stream, line)
                });
                reads += 1;
                if !to_eof && reads >= READS_PER_WAKE {
                    break;
                }
                continue;
            }
            if n == 0 {
                closed = true;
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => break,
                _ => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            self.close_pipe(slot);
        }
    }

    fn close_pipe(&mut self, slot: usize) {
        let Some(mut pipe) = self.pipes.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let wall = Utc::now();
        let (log, task, stream) = (&mut self.log, &pipe.task, pipe.stream);
        pipe.splitter
            .finish(&mut |line| log.child_line(wall, task, stream, line));
        let _ = self.epoll.delete(pipe.fd.as_fd());
        if let Some(info) = self.runs.get_mut(&pipe.run) {
            info.pipes.retain(|s| *s != slot);
        }
        self.free_slots.push(slot);
    }

    fn on_signals(&mut self) -> Option<i32> {
        let mut child_exited = false;
        let mut stop: Vec<&'static str> = Vec::new();
        let mut hup = false;
        loop {
            match self.sigfd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => child_exited = true,
                    Ok(Signal::SIGTERM) => stop.push("SIGTERM"),
                    Ok(Signal::SIGINT) => stop.push("SIGINT"),
                    Ok(Signal::SIGHUP) => hup = true,
                    _ => {}
                },
                Ok(None) => break,
                Err(nix::Error::EINTR) => continue,
                Err(_) => break,
            }
        }
        if child_exited {
            if let Some(code) = self.reap_all() {
                return Some(code);
            }
        }
        if hup {
            self.master(
                Level::Warning,
                "SIGHUP received: hot reload is not implemented in this version; nothing changes",
            );
        }
        for signal in stop {
            let actions = self.core.handle(Input::Shutdown { signal }, self.now());
            if let Some(code) = self.apply(actions) {
                return Some(code);
            }
        }
        None
    }

    /// Reap every exited child. When a run's main process is reaped while other processes
    /// of its group live on, the run is not over: the core hears `LeaderExited` (and stops
    /// the leftovers), and `Exited` once the group is empty. The group id cannot be reused
    /// while any member lives, so signalling it meanwhile is safe.
    fn reap_all(&mut self) -> Option<i32> {
        while let Some(pid) = spawn::exited_child() {
            let Some(reaped) = spawn::reap(pid) else {
                break;
            };
            let Some(run) = self.pids.remove(&pid) else {
                // An orphaned descendant that was reparented to us (we are a subreaper).
                let msg = format!("reaped orphaned process {pid} (left behind by a task)");
                self.master(Level::Debug, &msg);
                continue;
            };
            if spawn::group_alive(pid) {
                self.draining.insert(run, reaped);
                let input = Input::LeaderExited {
                    run,
                    status: reaped.status,
                };
                let actions = self.core.handle(input, self.now());
                if let Some(code) = self.apply(actions) {
                    return Some(code);
                }
                continue;
            }
            if let Some(code) = self.run_over(run, reaped) {
                return Some(code);
            }
        }
        None
    }

    /// End the runs whose process groups have emptied.
    fn check_draining(&mut self) -> Option<i32> {
        let empty: Vec<RunId> = self
            .draining
            .iter()
            .filter(|(_, r)| !spawn::group_alive(r.pid))
            .map(|(run, _)| *run)
            .collect();
        for run in empty {
            if let Some(reaped) = self.draining.remove(&run) {
                if let Some(code) = self.run_over(run, reaped) {
                    return Some(code);
                }
            }
        }
        None
    }

    /// A run's main process is reaped and its group is empty: drain its pipes (so its
    /// last output precedes the "finished" line) and tell the core.
    fn run_over(&mut self, run: RunId, reaped: Reaped) -> Option<i32> {
        if let Some(info) = self.runs.remove(&run) {
            for slot in info.pipes {
                self.on_pipe(slot, true);
            }
        }
        let input = Input::Exited {
            run,
            status: reaped.status,
            usage: Some(reaped.usage),
        };
        let actions = self.core.handle(input, self.now());
        self.apply(actions)
    }
}
