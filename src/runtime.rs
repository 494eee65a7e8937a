//! The event loop: the only place that reads the clock, waits on file descriptors and
//! signals, and carries out the core's actions.
//!
//! One thread. epoll watches a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP), every
//! child's output pipe, the control socket with its connections and the dashboard
//! thread's eventfd (`serve`; the dashboard's HTTP is served by its own thread, `web`,
//! from a snapshot the loop hands over at most once a second); its timeout is the core's
//! next deadline (or the next state write, sample or inbox poll, `observe`), so an idle
//! bansuri sleeps until something is due. Output is read
//! in large chunks, split into lines and written, prefixed, into one buffered job log,
//! flushed whenever the loop goes idle.
//!
//! Under SLURM it also runs Slurm's commands (runtime/slurm.rs, through `crate::slurm`,
//! each with a timeout): at start-up, when SIGTERM comes, every few minutes while
//! `stop_before_end` is set, and to signal srun tasks' job steps.
//!
//! Must not: decide anything about tasks (that is the core's job), or block on a child.
//!
//! Submodules: `event_loop` is the loop's turn and its phases (running; draining, while
//! notifiers are waited for at exit), `deadlines` collects every source's next deadline,
//! `token` names the epoll data, `cadence` and `settle` are the sans-IO timing machines,
//! `error` the error types; `executor` is the `Executor` trait whose backends (a process,
//! an srun client, an in-process task) start and signal runs; `notifying` runs notifiers
//! beside the tasks and keeps the output tails that notices quote; `inprocess` runs the in-process tasks of the library API on
//! worker threads that report through an eventfd in the same epoll set.

mod agents;
mod alarm;
mod cadence;
mod deadlines;
mod elements;
mod error;
mod escape;
mod event_loop;
mod executor;
mod inprocess;
mod notifying;
mod progress;
mod resources;

mod observe;
mod serve;
mod settle;
mod state_writer;
mod token;
mod web;

pub use error::RuntimeError;
pub use resources::ResourcesError;
use token::Token;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::api::Registry;
use crate::clock::{Mono, Now};
use crate::config;
use crate::core::{Action, Core, Input, Mode, RunId};
use crate::guardian::Guardian;
use crate::level::Level;
use crate::model::Usage;
use crate::output::{JobLog, LineSplitter, Stream};
use crate::rotate::RotatingFile;
use crate::spawn::{self, Reaped};
use crate::spec::{Globals, LogFormat, Spec};

mod slurm;

/// Longest line written to the job log in one piece; longer lines are split.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes read from a pipe per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per pipe per wake-up before the loop serves other fds (fairness).
const READS_PER_WAKE: usize = 16;
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
    /// Global settings given on the command line: they win over the file, also after a
    /// reload.
    pub overrides: Overrides,
    /// `--resume`: skip one-shots that succeeded with the same settings (previous state
    /// file), end stale process groups of a killed bansuri.
    pub resume: bool,
    /// `--retry-failed` (issue 19): `--resume`, and of the array elements only those whose
    /// last record is a failure run.
    pub retry_failed: bool,
    /// `--tasks FILE` (issue 19): a task file the config's reloads keep adding.
    pub tasks: Option<PathBuf>,
}

/// Global settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--check-interval`
    pub check_interval: Option<Duration>,
    /// `--watchdog`
    pub watchdog_timeout: Option<Duration>,
    /// `--log-file`
    pub log_file: Option<String>,
    /// `--log-format`
    pub log_format: Option<LogFormat>,
    /// `--log-max-bytes`
    pub log_max_bytes: Option<u64>,
    /// `--log-backups`
    pub log_backups: Option<u32>,
    /// `--dashboard`
    pub dashboard: Option<std::net::SocketAddr>,
}

impl Overrides {
    /// Put the command line's values into `g`.
    pub fn apply(&self, g: &mut Globals) {
        if let Some(d) = self.check_interval {
            g.check_interval = d;
        }
        if let Some(d) = self.watchdog_timeout {
            g.watchdog_timeout = d;
        }
        if let Some(f) = &self.log_file {
            g.log_file = Some(f.clone());
        }
        if let Some(f) = self.log_format {
            g.log_format = f;
        }
        if let Some(n) = self.log_max_bytes {
            g.log_max_bytes = n;
        }
        if let Some(n) = self.log_backups {
            g.log_backups = n;
        }
        if let Some(a) = self.dashboard {
            g.dashboard = Some(a);
        }
    }
}

/// While the file on disk is invalid, a reminder is logged at most this often.
const INVALID_REMINDER: Duration = Duration::from_secs(600);

/// The config file's bytes and what [`settle`] needs to know of it, from one open file.
fn read_config(path: &std::path::Path) -> io::Result<(Vec<u8>, settle::Look)> {
    let mut f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut f, &mut bytes)?;
    // After the read: a write that went into the bytes read shows in these times.
    let meta = f.metadata()?;
    let look = settle::Look::of(&meta, &bytes);
    Ok((bytes, look))
}

/// Expand `{job_id}` in a log file path: the job's id, or `local` outside SLURM (the rule
/// is [`crate::host`]'s).
pub fn expand_log_path(raw: &str) -> PathBuf {
    PathBuf::from(raw.replace("{job_id}", crate::host::job_id()))
}

/// Open the job log: the file (appending) or bansuri's stdout.
pub fn open_job_log(spec: &Spec) -> Result<Box<dyn Write + Send>, RuntimeError> {
    match &spec.globals.log_file {
        Some(raw) => {
            let path = expand_log_path(raw);
            let g = &spec.globals;
            let f = RotatingFile::open(&path, g.log_max_bytes, g.log_backups)
                .map_err(|source| RuntimeError::JobLog { path, source })?;
            Ok(Box::new(f))
        }
        None => {
            // A File on a duplicate of fd 1: std's stdout is line-buffered and locked,
            // too slow for the job log's volume; JobLog buffers itself.
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(RuntimeError::Stdout)?;
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
    /// Copy what is read into the run's tail (its task notifies).
    tail: bool,
    /// The output goes to this rotating file (log-max-bytes) instead of the job log.
    file: Option<FileSink>,
}

/// A task's output file that bansuri writes itself, so that it can rotate it.
struct FileSink {
    file: RotatingFile,
    /// A write failed and was reported; reported again only after a success.
    failing: bool,
}

struct RunInfo {
    pid: u32,
    pipes: Vec<usize>,
    /// The task's name.
    task: Arc<str>,
    /// `pid` is an srun client: stop signals go to its job step (see runtime/slurm.rs).
    srun: bool,
    /// What members of the group reaped by bansuri (orphans: their parent died first, as
    /// when a shell is killed before the program it started) used: added to the run's own
    /// wait4 figures, which count only the children the leader waited for.
    orphans: Usage,
}

/// The event loop and what it owns.
pub struct Runtime {
    core: Core,
    log: JobLog,
    epoll: Epoll,
    sigfd: SignalFd,
    /// The monotonic clock and the timerfd armed for the next deadline.
    alarm: alarm::Alarm,
    runs: HashMap<RunId, RunInfo>,
    pids: HashMap<u32, RunId>,
    pipes: Vec<Option<Pipe>>,
    free_slots: Vec<usize>,
    buf: Vec<u8>,
    /// Runs whose main process was reaped while its process group lives on: the run ends
    /// when the group is empty.
    draining: HashMap<RunId, Reaped>,
    /// Ends the process groups still alive if bansuri is killed.
    guardian: Guardian,
    /// Process groups that left their task's group (setsid, double fork): ended with
    /// their run (see runtime/escape.rs).
    escapees: escape::Escapees,
    /// The notifier groups the guardian watches.
    guarded_notifiers: Vec<u32>,
    /// Wall clock minus monotonic clock, in ms, at the last wake: a change means the wall
    /// clock jumped.
    clock_offset: i64,
    watch: ConfigWatch,
    /// Notifiers and output tails.
    notifying: notifying::Notifying,
    /// In-process runs (library API).
    inproc: inprocess::InProcess,
    /// Reports of worker threads.
    workers: inprocess::Workers,
    /// Names the registry accepts in the config (for reloads).
    extensions: config::Extensions,
    obs: observe::Observer,
    /// The SLURM job bansuri runs in; `None` outside SLURM.
    slurm: Option<crate::slurm::Session>,
    /// `stop_before_end` in effect, the next read of the job's end time, srun clients
    /// whose helper is still ending.
    slurm_state: slurm::State,
    /// What the node has (issue 17), and the runs told to be over their `mem`.
    resources: resources::State,
    /// The progress line of batch runs.
    progress: progress::ProgressLine,
    /// Running, or waiting for notifiers at exit.
    phase: event_loop::Phase,
    /// The agents on the job's other nodes (issue 18), when there are any.
    agents: Option<agents::Agents>,
    /// The element status file of arrays (issue 19).
    elements: elements::Elements,
}

/// Where the config file stands against the config in effect.
struct ConfigWatch {
    /// Disabled in `--once` mode.
    enabled: bool,
    path: PathBuf,
    overrides: Overrides,
    /// What the command line adds to the config (`--tasks`), at every reload too.
    cli: config::CommandLine,
    /// The watched file is the `--tasks` file itself (no config file).
    tasks_only: bool,
    /// The file's bytes when the config in effect was read.
    applied: Vec<u8>,
    /// When the config in effect was loaded (wall clock, for messages).
    applied_at: chrono::DateTime<Utc>,
    /// Log settings in effect, to see whether a reload changes them.
    log_file: Option<String>,
    log_rotation: (u64, u32),
    /// When to look at the file, and what a look means ([`settle`]).
    clock: settle::Watch,
    /// The file on disk is not in effect: why, since when, and which content was reported.
    invalid: Option<Invalid>,
}

impl ConfigWatch {
    fn new(spec: &Spec, opts: &RunOptions) -> ConfigWatch {
        let id = std::fs::metadata(&spec.source).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
        let settle = settle::Settle::new(spec.globals.config_settle, id);
        ConfigWatch {
            enabled: !opts.mode.once,
            applied: std::fs::read(&spec.source).unwrap_or_default(),
            path: spec.source.clone(),
            overrides: opts.overrides.clone(),
            cli: config::CommandLine {
                tasks: opts.tasks.clone(),
            },
            tasks_only: opts
                .tasks
                .as_deref()
                .is_some_and(|t| std::fs::canonicalize(t).is_ok_and(|t| t == spec.source)),
            applied_at: Utc::now(),
            log_file: spec.globals.log_file.clone(),
            log_rotation: (spec.globals.log_max_bytes, spec.globals.log_backups),
            clock: settle::Watch::new(spec.globals.check_interval, Mono::ZERO, settle),
            invalid: None,
        }
    }
}

struct Invalid {
    bytes: Option<Vec<u8>>,
    reason: String,
    since: chrono::DateTime<Utc>,
    reminded: Mono,
}

/// Run `spec` until shutdown or (in batch modes) until done; returns how it ended.
pub fn run(spec: Spec, opts: RunOptions) -> Result<crate::model::Ending, RuntimeError> {
    run_with(spec, opts, Registry::default())
}

/// [`run`] with the in-process tasks and notifiers of `registry` (library API).
pub fn run_with(
    mut spec: Spec,
    opts: RunOptions,
    registry: Registry,
) -> Result<crate::model::Ending, RuntimeError> {
    // First, while bansuri has one thread: the guardian that cleans up if bansuri is killed.
    let guardian = Guardian::start().map_err(RuntimeError::Guardian)?;
    opts.overrides.apply(&mut spec.globals);
    let out = open_job_log(&spec)?;
    let mut rt = Runtime::new(spec, opts, out, guardian, registry)?;
    rt.run()
}

/// Write a chunk of a child's output to its rotating file: up to the last newline first,
/// so that a rotation can happen at a line boundary even while lines keep coming.
fn write_rotating(file: &mut RotatingFile, data: &[u8]) -> io::Result<()> {
    match memchr::memrchr(b'\n', data) {
        Some(i) if i + 1 < data.len() => {
            file.write_all(&data[..=i])?;
            file.write_all(&data[i + 1..])
        }
        _ => file.write_all(data),
    }
}

/// Block the signals bansuri reads from a signalfd, and put that signalfd and the alarm's
/// timerfd into a new epoll set.
fn watch_signals_and_alarm() -> Result<(Epoll, SignalFd, alarm::Alarm), RuntimeError> {
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
    // An ignored signal is discarded, not queued, so the signalfd would never see it:
    // undo what `nohup` or `cmd &` may have set (SIGINT, SIGQUIT, SIGHUP ignored).
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        // SAFETY: restoring the default disposition; no handler is installed.
        unsafe {
            let _ = nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl);
        }
    }
    mask.thread_block()
        .map_err(RuntimeError::sys("cannot block signals"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(RuntimeError::sys("cannot create a signalfd"))?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
        .map_err(RuntimeError::sys("cannot create epoll"))?;
    epoll
        .add(
            sigfd.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, Token::Signal.to_u64()),
        )
        .map_err(RuntimeError::sys("cannot watch the signalfd"))?;
    let alarm = alarm::Alarm::new().map_err(RuntimeError::sys("cannot create a timerfd"))?;
    epoll
        .add(
            alarm.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, Token::Alarm.to_u64()),
        )
        .map_err(RuntimeError::sys("cannot watch the timerfd"))?;
    Ok((epoll, sigfd, alarm))
}

impl Runtime {
    fn new(
        spec: Spec,
        opts: RunOptions,
        out: Box<dyn Write + Send>,
        guardian: Guardian,
        registry: Registry,
    ) -> Result<Runtime, RuntimeError> {
        let (epoll, sigfd, alarm) = watch_signals_and_alarm()?;
        if let Err(e) = spawn::become_subreaper() {
            crate::console::errln!("bansuri: warning: cannot become a subreaper ({e}); orphans of tasks are reaped by init");
        }
        let progress = progress::ProgressLine::new(
            opts.mode.once || opts.mode.exit_when_done,
            spec.globals.log_file.is_none(),
            Mono::ZERO,
        );
        let out = progress.wrap(out);
        let mut log = JobLog::new(out, spec.globals.log_format, opts.log_level);
        if spec.globals.log_format == LogFormat::Json {
            log.set_format(LogFormat::Json);
        }
        let workers = inprocess::Workers::new()?;
        workers.watch(&epoll)?;
        let config_dir = std::path::absolute(&spec.source)
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."));
        let (resources, resources_warning) =
            resources::State::read(&spec).map_err(RuntimeError::Resources)?;
        let core = Core::new(&spec, opts.mode);
        let resume = opts.resume || opts.retry_failed;
        let (obs, prev) = observe::Observer::new(&spec, opts.mode, resume)?;
        let session = crate::slurm::JobEnv::from_env().map(crate::slurm::Session::start);
        let mut rt = Runtime {
            obs,
            core,
            log,
            epoll,
            sigfd,
            alarm,
            runs: HashMap::new(),
            pids: HashMap::new(),
            pipes: Vec::new(),
            free_slots: Vec::new(),
            buf: vec![0; READ_CHUNK],
            draining: HashMap::new(),
            guardian,
            escapees: escape::Escapees::default(),
            guarded_notifiers: Vec::new(),
            clock_offset: 0,
            watch: ConfigWatch::new(&spec, &opts),
            notifying: notifying::Notifying::new(registry.clone(), &spec.globals, config_dir),
            extensions: registry.extensions(),
            inproc: inprocess::InProcess::new(registry),
            workers,
            slurm: session,
            slurm_state: slurm::State::default(),
            resources,
            progress,
            phase: event_loop::Phase::Running,
            agents: None,
            elements: elements::Elements::default(),
        };
        rt.header(&spec);
        rt.resources_header(&spec, resources_warning);
        rt.observe_start(prev, opts.retry_failed);
        rt.open_elements(spec.tasks.iter().any(|t| t.sweep.is_some()));
        Ok(rt)
    }

    fn now(&self) -> Now {
        Now {
            mono: self.alarm.now(),
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
        let line = format!(
            "bansuri {} pid {} on {}; config {}",
            crate::VERSION,
            std::process::id(),
            crate::host::name(),
            spec.source.display()
        );
        self.master(Level::Info, &line);
        self.config_warnings(spec);
        self.slurm_header(spec);
    }

    /// The config's warnings, one job log line each (at start-up and at each reload).
    fn config_warnings(&mut self, spec: &Spec) {
        for w in &spec.warnings {
            self.master(Level::Warning, &w.one_line());
        }
    }

    /// Have the guardian watch the `notify_command` groups that run, and forget the ones
    /// that are over (a notifier hanging when bansuri is killed is ended like a task's
    /// group).
    fn guard_notifiers(&mut self) {
        let now: Vec<u32> = self.notifying.groups().collect();
        for g in &self.guarded_notifiers {
            if !now.contains(g) {
                self.guardian.forget(*g);
            }
        }
        for g in &now {
            if !self.guarded_notifiers.contains(g) {
                self.guardian.watch(*g);
            }
        }
        self.guarded_notifiers = now;
    }

    /// Draw the progress line (or write a plain progress line); returns when to call
    /// again at the latest.
    fn show_progress(&mut self, now: Mono) -> Option<Mono> {
        if !self.progress.active() {
            return None;
        }
        let core = &self.core;
        let (plain, next) = self.progress.update(now, || core.progress());
        if let Some(line) = plain {
            self.master(Level::Info, &line);
            self.flush_log();
        }
        next
    }

    fn flush_log(&mut self) {
        self.log.flush();
        if let Some(e) = self.log.take_error() {
            self.progress.hide();
            // The message says what failed and that output is dropped meanwhile.
            crate::console::errln!("bansuri: {e}");
        }
    }

    /// Execute actions depth-first (the actions an input produces run before the rest).
    /// Returns how the run ended when the core is done.
    fn apply(&mut self, actions: Vec<Action>) -> Option<crate::model::Ending> {
        if !actions.is_empty() {
            self.obs.mark_dirty();
        }
        let mut stack: Vec<Action> = actions.into_iter().rev().collect();
        while let Some(action) = stack.pop() {
            let follow = match action {
                Action::Event(event) => {
                    self.element_event(&event);
                    let line = event.to_string();
                    self.log
                        .event(Utc::now(), event.task(), event.level(), &line);
                    if let (Some(c), crate::core::Event::Master(m)) = (&mut self.obs.capture, event)
                    {
                        c.push(m);
                    }
                    continue;
                }
                Action::Exit { ending } => return Some(ending),
                Action::Notify {
                    run,
                    task,
                    event,
                    end,
                    attempt,
                    attempts,
                    at,
                } => {
                    self.start_notify(run, &task, event, end, attempt, attempts, at);
                    self.guard_notifiers();
                    continue;
                }
                Action::Signal { run, signal } => self.signal_run(run, signal),
                Action::Spawn {
                    run,
                    task,
                    attempt,
                    grant,
                    node,
                } => match node {
                    Some(node) => self.start_remote(run, &task, attempt, grant.as_ref(), &node),
                    None => self.start_run(run, task, attempt, grant),
                },
                Action::Requeue => {
                    self.requeue();
                    continue;
                }
                Action::Reply(reply) => {
                    self.obs.replies.push(reply);
                    continue;
                }
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
        file: Option<FileSink>,
    ) -> io::Result<usize> {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.pipes.push(None);
            self.pipes.len() - 1
        });
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, Token::Pipe(slot).to_u64());
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
            file,
            tail: self.notifying.wants_tail(run),
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
            let n = match nix::unistd::read(&pipe.fd, &mut self.buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            };
            if pipe.tail {
                let data = &self.buf[..n];
                self.notifying.feed(pipe.run, pipe.stream, data);
            }
            let wall = Utc::now();
            let data = &self.buf[..n];
            if let Some(sink) = &mut pipe.file {
                if let Err(e) = write_rotating(&mut sink.file, data) {
                    if !sink.failing {
                        sink.failing = true;
                        let msg = format!("cannot write its output file: {e} (output dropped until it works again)");
                        self.log.event(wall, Some(&pipe.task), Level::Error, &msg);
                    }
                } else {
                    sink.failing = false;
                }
            } else {
                let (log, task, stream) = (&mut self.log, &pipe.task, pipe.stream);
                pipe.splitter
                    .push(data, &mut |line| log.child_line(wall, task, stream, line));
            }
            reads += 1;
            if !to_eof && reads >= READS_PER_WAKE {
                break;
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

    /// Tell the core when the wall clock has jumped by more than a second relative to the
    /// monotonic clock (settimeofday, an NTP step, a resumed VM).
    fn check_clock(&mut self) -> Option<crate::model::Ending> {
        let now = self.now();
        let offset = now.wall.timestamp_millis() - now.mono.0.as_millis() as i64;
        let jumped = self.clock_offset != 0 && (offset - self.clock_offset).abs() > 1000;
        self.clock_offset = offset;
        if !jumped {
            return None;
        }
        let actions = self.core.handle(Input::ClockChanged, now);
        self.apply(actions)
    }

    /// When the config watch needs the loop next.
    fn watch_deadline(&self) -> Option<Mono> {
        if !self.watch.enabled {
            return None;
        }
        Some(self.watch.clock.deadline())
    }

    /// Look at the config file: at each check_interval, when a change waiting to settle
    /// is due, or at once (`forced`: SIGHUP, `reload`). Changes are detected by content,
    /// never by mtime alone; a changed file is applied when [`settle`] says its writer is
    /// done (replaced by a rename, or not modified for `config_settle`).
    fn check_config(&mut self, forced: bool) -> Option<crate::model::Ending> {
        let now = self.now();
        let read = read_config(&self.watch.path);
        let seen = match &read {
            Ok((bytes, look)) => settle::Seen::Read {
                look: look.clone(),
                same: *bytes == self.watch.applied,
            },
            Err(_) => settle::Seen::Unreadable,
        };
        let wall_ns = i128::from(now.wall.timestamp_nanos_opt().unwrap_or(i64::MAX));
        match (
            self.watch.clock.looked(now.mono, wall_ns, forced, seen),
            read,
        ) {
            (settle::Step::Unreadable, Err(e)) => {
                let reason = format!("cannot read it: {e}");
                self.config_invalid(None, reason, &[]);
                None
            }
            (settle::Step::Unchanged, _) => {
                // One line per check, at DEBUG only: a running bansuri re-reads its config
                // every check_interval, and -v shows that it does.
                let msg = format!(
                    "Config file re-read: unchanged (next check in {})",
                    crate::text::fmt_dur(self.watch.clock.check_interval())
                );
                self.master(Level::Debug, &msg);
                if self.watch.invalid.take().is_some() {
                    self.master(
                        Level::Info,
                        "The config file on disk is the config in effect again",
                    );
                    self.obs.mark_dirty();
                }
                None
            }
            (settle::Step::Apply, Ok((bytes, _))) => self.apply_config(bytes),
            _ => None,
        }
    }

    fn apply_config(&mut self, bytes: Vec<u8>) -> Option<crate::model::Ending> {
        let path = self.watch.path.clone();
        // Who may change the file is checked before its content (as root: another user
        // must not be able to hand bansuri a config), and named as the reason.
        let untrusted = config::check_permissions(&path).err();
        let parsed = match (std::str::from_utf8(&bytes), &untrusted) {
            (_, Some(e)) => Err(e.to_string()),
            (Err(e), None) => Err(format!("it is not UTF-8 text (byte {})", e.valid_up_to())),
            // A task file alone (`--tasks`, no config): it is re-read as one.
            (Ok(_), None) if self.watch.tasks_only => {
                config::tasks_only(&path, &self.extensions).map_err(|e| e.to_string())
            }
            (Ok(text), None) => config::Format::from_path(&path)
                .and_then(|f| {
                    config::parse_str_adding(text, &path, f, &self.extensions, &self.watch.cli)
                })
                .map_err(|e| e.to_string()),
        };
        let mut spec = match parsed {
            Ok(spec) => spec,
            Err(report) => {
                let reason = if untrusted.is_some() {
                    "another user could have written it".to_owned()
                } else if bytes.iter().all(u8::is_ascii_whitespace) {
                    "it is empty".to_owned()
                } else {
                    "it has errors".to_owned()
                };
                self.config_invalid(Some(bytes), reason, report.as_bytes());
                return None;
            }
        };
        self.watch.overrides.apply(&mut spec.globals);
        self.config_warnings(&spec);
        self.watch.applied = bytes;
        self.watch.applied_at = Utc::now();
        self.watch.invalid = None;
        self.obs.mark_dirty();
        self.apply_globals(&spec.globals);
        let stop_before_end = spec.globals.stop_before_end;
        let resources = self.reload_resources(&spec);
        if self.elements.is_closed() {
            self.open_elements(spec.tasks.iter().any(|t| t.sweep.is_some()));
        }
        let input = Input::Reload {
            spec: Arc::new(spec),
        };
        // A changed `resources` block first, so that the reloaded tasks are packed into it.
        let mut actions = match resources {
            Some(r) => self.core.handle(r, self.now()),
            None => Vec::new(),
        };
        actions.extend(self.core.handle(input, self.now()));
        // A change of `numprocs` renames a task whose process runs on (`w` is now `w:0`):
        // its output lines carry the new name from now on.
        for (run, name) in self.core.run_tasks() {
            if let Some(info) = self.runs.get_mut(&run).filter(|i| &*i.task != name) {
                info.task = Arc::from(name);
                for slot in &info.pipes {
                    if let Some(Some(pipe)) = self.pipes.get_mut(*slot) {
                        pipe.task = Arc::clone(&info.task);
                    }
                }
            }
        }
        self.apply(actions)
            .or_else(|| self.plan_shutdown(stop_before_end))
    }

    /// Global settings that the runtime holds (the core takes its own from the spec).
    fn apply_globals(&mut self, g: &Globals) {
        let now = self.now().mono;
        if self.watch.clock.set_check_interval(g.check_interval, now) {
            let msg = format!(
                "check_interval is now {}",
                crate::text::fmt_dur(g.check_interval)
            );
            self.master(Level::Info, &msg);
        }
        self.watch.clock.set_settle(g.config_settle);
        self.log.set_format(g.log_format);
        self.notifying.set_globals(g);
        let rotation = (g.log_max_bytes, g.log_backups);
        if g.log_file != self.watch.log_file
            || (g.log_file.is_some() && rotation != self.watch.log_rotation)
        {
            let target = |f: &Option<String>| match f {
                Some(raw) => expand_log_path(raw).display().to_string(),
                None => "stdout".to_owned(),
            };
            let (from, to) = (target(&self.watch.log_file), target(&g.log_file));
            let probe = Spec {
                source: self.watch.path.clone(),
                version: None,
                globals: g.clone(),
                tasks: Vec::new(),
                warnings: Vec::new(),
            };
            match open_job_log(&probe) {
                Ok(out) => {
                    let msg = format!("The job log continues in {to}");
                    self.master(Level::Info, &msg);
                    self.progress.retarget(g.log_file.is_none());
                    let out = self.progress.wrap(out);
                    self.log.set_output(out);
                    let msg = format!("Job log continued from {from}");
                    self.master(Level::Info, &msg);
                    self.watch.log_file = g.log_file.clone();
                    self.watch.log_rotation = rotation;
                }
                Err(e) => {
                    let msg = format!("log_file changed but {e}: the job log stays in {from}");
                    self.master(Level::Error, &msg);
                }
            }
        }
    }

    /// The file on disk cannot be used: keep the config in effect; report each distinct
    /// content once, and remind now and then that the file is not in effect.
    fn config_invalid(&mut self, bytes: Option<Vec<u8>>, reason: String, report: &[u8]) {
        let now = self.now();
        let same = self
            .watch
            .invalid
            .as_ref()
            .is_some_and(|i| i.bytes == bytes && i.reason == reason);
        let path = self.watch.path.display().to_string();
        let in_effect = format!(
            "still running the config loaded at {}",
            crate::text::fmt_wall(self.watch.applied_at)
        );
        if same {
            let inv = self.watch.invalid.as_mut().expect("checked above");
            if now.mono.since(inv.reminded) >= INVALID_REMINDER {
                inv.reminded = now.mono;
                let msg = format!(
                    "The config file {path} is still not in effect ({reason}, since {}); {in_effect}",
                    crate::text::fmt_wall(inv.since)
                );
                self.master(Level::Warning, &msg);
            }
            return;
        }
        let since = self.watch.invalid.as_ref().map_or(Utc::now(), |i| i.since);
        let msg = format!("The config file {path} was not loaded: {reason}; {in_effect}");
        self.master(Level::Error, &msg);
        if !report.is_empty() {
            let text = String::from_utf8_lossy(report);
            self.master(Level::Error, &text);
        }
        self.watch.invalid = Some(Invalid {
            bytes,
            reason,
            since,
            reminded: now.mono,
        });
        // `status` shows the warning now, not at the next heartbeat.
        self.obs.mark_dirty();
    }

    /// Reap every exited child. When a run's main process is reaped while other processes
    /// of its group live on, the run is not over: the core hears `LeaderExited` (and stops
    /// the leftovers), and `Exited` once the group is empty. The group id cannot be reused
    /// while any member lives, so signalling it meanwhile is safe.
    fn reap_all(&mut self) -> Option<crate::model::Ending> {
        while let Some(pid) = spawn::exited_child() {
            // Not a main process: note its group while it can still be read (a zombie keeps
            // its /proc/PID/stat), so that what it used counts for its run.
            let orphan_group = if self.pids.contains_key(&pid) {
                None
            } else {
                crate::sample::proc_stat(pid).map(|s| s.pgrp)
            };
            let Some(reaped) = spawn::reap(pid) else {
                break;
            };
            if self.notifier_reaped(&reaped) {
                continue;
            }
            if self.agents_reaped(pid) {
                if let Some(code) = self.agents_step_ended() {
                    return Some(code);
                }
                continue;
            }
            let Some(run) = self.pids.remove(&pid) else {
                // An orphaned descendant that was reparented to us (we are a subreaper).
                if !self.escapee_reaped(orphan_group) {
                    let msg = format!("reaped orphaned process {pid} (left behind by a task)");
                    self.master(Level::Debug, &msg);
                }
                if let Some(info) =
                    orphan_group.and_then(|g| self.runs.values_mut().find(|r| r.pid == g))
                {
                    info.orphans.absorb(reaped.usage);
                }
                continue;
            };
            // What it orphaned is bansuri's child now: escapees among them are this run's.
            self.scan_escapees(run);
            if spawn::group_alive(pid) || self.escapees_alive(run) {
                self.draining.insert(run, reaped);
                if self.srun_leader_exited(run) {
                    continue;
                }
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
    fn check_draining(&mut self) -> Option<crate::model::Ending> {
        if self.draining.is_empty() {
            return None;
        }
        let overdue = self
            .srun_drain_overdue()
            .into_iter()
            .find_map(|(run, status)| {
                let actions = self
                    .core
                    .handle(Input::LeaderExited { run, status }, self.now());
                self.apply(actions)
            });
        if overdue.is_some() {
            return overdue;
        }
        let candidates: Vec<RunId> = self
            .draining
            .iter()
            .filter(|(_, r)| !spawn::group_alive(r.pid))
            .map(|(run, _)| *run)
            .collect();
        let empty: Vec<RunId> = candidates
            .into_iter()
            .filter(|run| !self.escapees_alive(*run))
            .collect();
        empty.into_iter().find_map(|run| {
            let reaped = self.draining.remove(&run)?;
            self.run_over(run, reaped)
        })
    }

    /// A run's main process is reaped and its group is empty: drain its pipes (so its
    /// last output precedes the "finished" line) and tell the core.
    fn run_over(&mut self, run: RunId, reaped: Reaped) -> Option<crate::model::Ending> {
        self.guardian.forget(reaped.pid);
        self.release_escapees(run);
        self.obs.forget_run(run);
        self.resources.forget_run(run);
        let mut usage = reaped.usage;
        if let Some(info) = self.runs.remove(&run) {
            usage.absorb(info.orphans);
            if let (true, Some(s)) = (info.srun, &mut self.slurm) {
                s.forget(info.pid);
            }
            self.slurm_state.srun_draining.remove(&run);
            for slot in info.pipes {
                self.on_pipe(slot, true);
            }
        }
        let input = Input::Exited {
            run,
            status: reaped.status,
            usage: Some(usage),
        };
        self.notifying.forget_after(run);
        let actions = self.core.handle(input, self.now());
        self.apply(actions)
    }
}
