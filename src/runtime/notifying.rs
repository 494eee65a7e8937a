//! Running notifiers beside the tasks, and the output tails that notices quote.
//!
//! `notify_command` is a child process like a task's (own session, PDEATHSIG), started
//! with the message on stdin and watched by the same epoll loop: its output pipe is one
//! more fd, its end one more SIGCHLD, its timeout one more deadline of the loop. Nothing
//! waits for it, so it cannot delay a restart or a scheduled run. After `notify_timeout`
//! its process group gets SIGKILL. A registered notifier (library API) runs on a worker
//! thread instead, abandoned at the timeout. Either way its failure is logged, nothing
//! more. At exit bansuri waits for running notifiers (up to their timeout) so that the
//! notice of a last failure is not lost.
//!
//! Tails: for each run of a task with `notify` set, the last [`TAIL_BYTES`] of each output
//! stream. Output that goes through a pipe (job log) is copied into a ring as it is read.
//! Output that a task writes to its own file is not copied: the file's size is noted when
//! the run starts and, only if a notice is sent, what the run appended is read back
//! (bounded). This keeps file output out of bansuri's hands (no extra copy of every byte,
//! no blocking file write in the event loop); the cost is that two runs writing the same
//! file at once (`overlap: allow`) may see each other's lines in their tails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::epoll::EpollEvent;

use super::error::{NotifierFailure, StartError};
use super::event_loop::Phase;
use super::inprocess::{panic_text, Done};
use super::Runtime;
use crate::api::Registry;
use crate::clock::Mono;
use crate::core::RunId;
use crate::level::Level;
use crate::model::{ExitStatus, ProcessEnd};
use crate::notify::{self, file_tail, Notice, StderrKind, Tail, TAIL_BYTES, TAIL_LINES};
use crate::output::Stream;
use crate::spawn::{self, Reaped};
use crate::spec::{Globals, Notify, NotifyEvent, OutputTarget, StderrTarget, TaskSpec};
use crate::text::{fmt_dur, signal_name};

/// Ids of notifiers (their output pipes carry them) start here, far from run ids.
const NOTIFIER_IDS: u64 = 1 << 62;
/// Notifiers running at once; beyond this a notice is dropped (and that is logged).
pub const MAX_NOTIFIERS: usize = 16;

/// Where one stream's tail comes from.
enum Source {
    Pipe(Tail),
    /// The task's own file, and its size when the run started.
    File(PathBuf, u64),
    /// Nothing kept (stderr combined with stdout).
    None,
}

impl Source {
    fn for_file(path: &std::path::Path) -> Source {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Source::File(path.to_path_buf(), len)
    }

    fn text(&self) -> String {
        match self {
            Source::Pipe(t) => t.last_lines(TAIL_LINES),
            Source::File(p, from) => match file_tail(p, *from, TAIL_BYTES) {
                Ok(t) => t.last_lines(TAIL_LINES),
                Err(e) => format!("(cannot read {}: {e})", p.display()),
            },
            Source::None => String::new(),
        }
    }
}

struct RunTails {
    stdout: Source,
    stderr: Source,
    kind: StderrKind,
}

enum How {
    /// `notify_command`: its pid (= process group), its output pipe slot.
    Command {
        pid: u32,
        slot: Option<usize>,
        /// The shell was reaped; its group may live on until the deadline.
        leader_done: bool,
        /// SIGKILL sent at the timeout.
        killed: bool,
    },
    /// A registered notifier on a worker thread.
    Thread { name: String },
}

struct Running {
    task: String,
    /// `notify_command` or `Python notifier module:Class`, for the log.
    what: String,
    event: NotifyEvent,
    started: Mono,
    deadline: Mono,
    how: How,
}

impl Running {
    /// Still doing its job (not just leftovers or a kill in flight).
    fn active(&self) -> bool {
        match self.how {
            How::Command {
                leader_done,
                killed,
                ..
            } => !leader_done && !killed,
            How::Thread { .. } => true,
        }
    }
}

/// Notification state of the runtime.
pub(super) struct Notifying {
    registry: Registry,
    command: Option<String>,
    timeout: Duration,
    /// Where `notify_command` runs: the config file's directory.
    dir: PathBuf,
    host: String,
    job_id: String,
    running: HashMap<u64, Running>,
    next_id: u64,
    tails: HashMap<RunId, RunTails>,
    /// Runs that ended: their tails are dropped once the actions of that end are done.
    ended: Vec<RunId>,
    /// Groups of notifiers killed at their timeout, until their last member is reaped:
    /// a member still dying after its leader was reaped is no task's escaped process.
    killed: Vec<u32>,
}

impl Notifying {
    pub(super) fn new(registry: Registry, globals: &Globals, dir: PathBuf) -> Notifying {
        Notifying {
            registry,
            command: globals.notify_command.clone(),
            timeout: globals.notify_timeout,
            dir,
            host: crate::host::name().to_owned(),
            job_id: crate::host::job_id().to_owned(),
            running: HashMap::new(),
            next_id: NOTIFIER_IDS,
            tails: HashMap::new(),
            ended: Vec::new(),
            killed: Vec::new(),
        }
    }

    /// New global settings (reload).
    pub(super) fn set_globals(&mut self, g: &Globals) {
        self.command.clone_from(&g.notify_command);
        self.timeout = g.notify_timeout;
    }

    /// A run of `task` is starting: keep its output tail if the task notifies.
    pub(super) fn track_output(&mut self, run: RunId, task: &TaskSpec) {
        if task.notify == Notify::Off {
            return;
        }
        // A rotating file (log-max-bytes) is written by bansuri from a pipe: its tail is
        // kept from the pipe, since the file itself may rotate under a read-back.
        let piped = task.log_max_bytes > 0;
        let stdout = match &task.stdout {
            OutputTarget::File(p) if !piped => Source::for_file(p),
            _ => Source::Pipe(Tail::new(TAIL_BYTES)),
        };
        let (stderr, kind) = match &task.stderr {
            StderrTarget::Combined => (Source::None, StderrKind::Combined),
            StderrTarget::File(p) if !piped => (Source::for_file(p), StderrKind::Separate),
            _ => (Source::Pipe(Tail::new(TAIL_BYTES)), StderrKind::Separate),
        };
        self.tails.insert(
            run,
            RunTails {
                stdout,
                stderr,
                kind,
            },
        );
    }

    /// Does `run` keep a tail of its pipes?
    pub(super) fn wants_tail(&self, run: RunId) -> bool {
        self.tails.contains_key(&run)
    }

    /// Bytes read from a pipe of `run`.
    pub(super) fn feed(&mut self, run: RunId, stream: Stream, data: &[u8]) {
        let Some(t) = self.tails.get_mut(&run) else {
            return;
        };
        let src = match stream {
            Stream::Stdout => &mut t.stdout,
            Stream::Stderr => &mut t.stderr,
        };
        if let Source::Pipe(tail) = src {
            tail.push(data);
        }
    }

    /// `run` is over: drop its tail after the actions of its end (a Notify among them
    /// still needs it).
    pub(super) fn forget_after(&mut self, run: RunId) {
        self.ended.push(run);
    }

    /// Drop the tails of ended runs (called from the loop, between events).
    pub(super) fn sweep(&mut self) {
        for run in self.ended.drain(..) {
            self.tails.remove(&run);
        }
        self.killed.retain(|g| spawn::group_alive(*g));
    }

    /// When the loop must wake for a notifier's timeout.
    /// Is `pgid` the process group of a `notify_command` still tracked (running, or its
    /// leftovers until the deadline)? Its processes are no task's escapees.
    pub(super) fn is_notifier_group(&self, pgid: u32) -> bool {
        self.killed.contains(&pgid)
            || self
                .running
                .values()
                .any(|r| matches!(r.how, How::Command { pid, .. } if pid == pgid))
    }

    /// The process groups of the `notify_command`s still tracked (the guardian ends them
    /// if bansuri is killed).
    pub(super) fn groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.running.values().filter_map(|r| match r.how {
            How::Command { pid, .. } => Some(pid),
            How::Thread { .. } => None,
        })
    }

    pub(super) fn deadline(&self) -> Option<Mono> {
        self.running
            .values()
            .filter(|r| {
                !matches!(
                    r.how,
                    How::Command {
                        killed: true,
                        leader_done: false,
                        ..
                    }
                )
            })
            .map(|r| r.deadline)
            .min()
    }

    /// The notice of `event` for `run` of `task`, with the run's output tails.
    fn notice(
        &self,
        run: RunId,
        task: &TaskSpec,
        event: NotifyEvent,
        end: ProcessEnd,
        (attempt, attempts): (u32, u32),
        at: DateTime<Utc>,
    ) -> Notice {
        let (stdout, stderr, kind) = match self.tails.get(&run) {
            Some(t) => (t.stdout.text(), t.stderr.text(), t.kind),
            None => (String::new(), String::new(), StderrKind::Separate),
        };
        Notice {
            event,
            task: task.name.clone(),
            command: task.command.display(),
            working_directory: task.working_directory.clone(),
            description: task.description.clone(),
            end,
            attempt,
            attempts,
            time: at,
            host: self.host.clone(),
            job_id: self.job_id.clone(),
            stdout,
            stderr,
            stderr_kind: kind,
        }
    }

    fn active(&self) -> usize {
        self.running.values().filter(|r| r.active()).count()
    }
}

impl Runtime {
    /// `Action::Notify`: build the notice and start the task's notifier, without waiting.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_notify(
        &mut self,
        run: RunId,
        task: &TaskSpec,
        event: NotifyEvent,
        end: ProcessEnd,
        attempt: u32,
        attempts: u32,
        at: DateTime<Utc>,
    ) {
        let notice = self
            .notifying
            .notice(run, task, event, end, (attempt, attempts), at);
        let n = &self.notifying;
        let (timeout, id, dir) = (n.timeout, n.next_id, n.dir.clone());
        let name = task.name.as_str();
        let command = n.command.clone();
        let registered = match &task.notify {
            Notify::Registered(which) => n.registry.notifier(which).cloned(),
            _ => None,
        };
        if n.active() >= MAX_NOTIFIERS {
            let msg = format!(
                "Notification ({}) dropped: {MAX_NOTIFIERS} notifiers are still running",
                event.word()
            );
            self.task_line(name, Level::Error, &msg);
            return;
        }
        let now = self.now().mono;
        let deadline = now + timeout;
        let what = match &task.notify {
            Notify::Python(spec) => format!("Python notifier {spec}"),
            _ => "notify_command".to_owned(),
        };
        let how = match &task.notify {
            Notify::Off => return,
            Notify::Command => {
                let Some(template) = command else {
                    let msg = format!(
                        "Notification ({}) not sent: `notify` is \"mail\" but no notify_command is set",
                        event.word()
                    );
                    self.task_line(name, Level::Error, &msg);
                    return;
                };
                let child = notify::spawn_command(&template, &notice, &dir);
                match self.watch_notifier(child, id, name, event, "notify_command", timeout) {
                    Some(how) => how,
                    None => return,
                }
            }
            Notify::Python(spec) => {
                let cmd = crate::python::notifier_command(task, spec, &notice.to_json());
                let child =
                    notify::spawn_notifier(cmd, &notice, &task.working_directory, "python3");
                match self.watch_notifier(child, id, name, event, &what, timeout) {
                    Some(how) => how,
                    None => return,
                }
            }
            Notify::Registered(which) => {
                let Some(notifier) = registered else {
                    let msg = format!("Notifier failed: no notifier `{which}` is registered");
                    self.task_line(name, Level::Warning, &msg);
                    return;
                };
                match self.start_registered(notifier, notice, id, name, event, which) {
                    Some(how) => how,
                    None => return,
                }
            }
        };
        self.notifying.next_id += 1;
        self.notifying.running.insert(
            id,
            Running {
                task: name.to_owned(),
                what,
                event,
                started: now,
                deadline,
                how,
            },
        );
    }

    /// Start a registered notifier on a worker thread; `None` (logged) when it cannot.
    fn start_registered(
        &mut self,
        notifier: Arc<dyn notify::Notifier>,
        notice: Notice,
        id: u64,
        name: &str,
        event: NotifyEvent,
        which: &str,
    ) -> Option<How> {
        let report = self.workers.reporter();
        let started = std::thread::Builder::new()
            .name(format!("notifier {which}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    notifier.notify(&notice)
                }));
                let result = match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(NotifierFailure::Returned(e.to_string())),
                    Err(p) => Err(NotifierFailure::Panicked(panic_text(p))),
                };
                report(Done::Notifier { id, result });
            });
        if let Err(e) = started {
            let msg = format!("Notifier failed: cannot start a thread: {e}");
            self.task_line(name, Level::Warning, &msg);
            return None;
        }
        let msg = format!(
            "Notifying ({}): notifier `{which}` started (timeout {})",
            event.word(),
            fmt_dur(self.notifying.timeout)
        );
        self.task_line(name, Level::Info, &msg);
        Some(How::Thread {
            name: which.to_owned(),
        })
    }

    /// A notifier process just started (or not): watch its output pipe, log its start,
    /// and say how it is tracked; `None` (logged) when it could not start.
    fn watch_notifier(
        &mut self,
        child: Result<notify::CommandChild, notify::NotifierStartError>,
        id: u64,
        name: &str,
        event: NotifyEvent,
        what: &str,
        timeout: Duration,
    ) -> Option<How> {
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("Notifier failed: {e}");
                self.task_line(name, Level::Warning, &msg);
                return None;
            }
        };
        let label: Arc<str> = Arc::from(format!("notify:{name}").as_str());
        let slot = match self.add_pipe(child.output, id, label, Stream::Stdout, None) {
            Ok(slot) => Some(slot),
            Err(e) => {
                let msg = format!("cannot watch the notifier's output: {e}");
                self.task_line(name, Level::Error, &msg);
                None
            }
        };
        let msg = format!(
            "Notifying ({}): {what} started (pid {}, timeout {})",
            event.word(),
            child.pid,
            fmt_dur(timeout)
        );
        self.task_line(name, Level::Info, &msg);
        Some(How::Command {
            pid: child.pid,
            slot,
            leader_done: false,
            killed: false,
        })
    }

    /// Start a task's process, keeping its output tail when the task notifies.
    pub(super) fn spawn_tracked(
        &mut self,
        run: RunId,
        task: &TaskSpec,
        attempt: u32,
        grant: Option<&crate::resources::Grant>,
    ) -> Result<spawn::Child, StartError> {
        let task = spawn::prepare(task, &chrono::Local::now()).map_err(StartError::Prepare)?;
        self.notifying.track_output(run, &task);
        // `Runtime::spawn` (runtime/slurm.rs) refuses an srun task outside SLURM.
        self.spawn(&task, attempt, grant)
    }

    fn task_line(&mut self, task: &str, level: Level, msg: &str) {
        self.log.event(Utc::now(), Some(task), level, msg);
    }

    /// A reaped child: is it a notifier? Then log how it ended and return true.
    pub(super) fn notifier_reaped(&mut self, reaped: &Reaped) -> bool {
        let found = self
            .notifying
            .running
            .iter()
            .find_map(|(id, r)| match r.how {
                How::Command {
                    pid,
                    leader_done: false,
                    ..
                } if pid == reaped.pid => Some(*id),
                _ => None,
            });
        let Some(id) = found else {
            return false;
        };
        let now = self.now().mono;
        let Some(r) = self.notifying.running.get_mut(&id) else {
            return true;
        };
        let How::Command {
            pid,
            slot,
            leader_done,
            killed,
        } = &mut r.how
        else {
            return true;
        };
        *leader_done = true;
        let (pid, slot, killed) = (*pid, *slot, *killed);
        let took = fmt_dur(now.since(r.started));
        let (task, event, what) = (r.task.clone(), r.event, r.what.clone());
        if let Some(slot) = slot.filter(|s| self.owns_pipe(*s, id)) {
            self.on_pipe(slot, true);
        }
        let (level, msg) = match (killed, reaped.status) {
            (true, _) => (
                Level::Debug,
                format!("Notifier (pid {pid}) reaped after its timeout"),
            ),
            (false, ExitStatus::Code(0)) => (
                Level::Info,
                format!(
                    "Notification sent ({}): {what} exited with code 0 after {took}",
                    event.word()
                ),
            ),
            (false, ExitStatus::Code(c)) => (
                Level::Warning,
                format!(
                    "Notifier failed ({}): {what} exited with code {c} after {took}",
                    event.word()
                ),
            ),
            (false, ExitStatus::Signal(s)) => (
                Level::Warning,
                format!(
                    "Notifier failed ({}): {what} killed by {} after {took}",
                    event.word(),
                    signal_name(s)
                ),
            ),
        };
        self.task_line(&task, level, &msg);
        if killed || !spawn::group_alive(pid) {
            self.notifying.running.remove(&id);
        }
        true
    }

    /// A registered notifier's thread returned.
    pub(super) fn notifier_returned(&mut self, id: u64, result: Result<(), NotifierFailure>) {
        let Some(r) = self.notifying.running.remove(&id) else {
            return; // timed out and abandoned earlier
        };
        let which = match &r.how {
            How::Thread { name } => name.clone(),
            How::Command { .. } => return,
        };
        let took = fmt_dur(self.now().mono.since(r.started));
        let (level, msg) = match result {
            Ok(()) => (
                Level::Info,
                format!(
                    "Notification sent ({}): notifier `{which}` returned after {took}",
                    r.event.word()
                ),
            ),
            Err(e) => (
                Level::Warning,
                format!(
                    "Notifier failed ({}): notifier `{which}`: {e}",
                    r.event.word()
                ),
            ),
        };
        self.task_line(&r.task, level, &msg);
    }

    /// Enforce notifier timeouts.
    pub(super) fn check_notifiers(&mut self) {
        let now = self.now().mono;
        let due: Vec<u64> = self
            .notifying
            .running
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let timeout = fmt_dur(self.notifying.timeout);
        for id in due {
            let Some(r) = self.notifying.running.get_mut(&id) else {
                continue;
            };
            let task = r.task.clone();
            let event = r.event;
            let what = r.what.clone();
            match &mut r.how {
                How::Command {
                    killed: true,
                    leader_done: false,
                    ..
                } => {}
                How::Command {
                    pid,
                    leader_done: false,
                    killed,
                    ..
                } => {
                    *killed = true;
                    let pid = *pid;
                    let _ = spawn::signal_group(pid, libc::SIGKILL);
                    self.notifying.killed.push(pid);
                    let msg = format!(
                        "Notifier failed ({}): {what} timed out after {timeout}: SIGKILL to its process group (pid {pid})",
                        event.word()
                    );
                    self.task_line(&task, Level::Warning, &msg);
                }
                How::Command {
                    pid,
                    leader_done: true,
                    ..
                } => {
                    let pid = *pid;
                    self.notifying.running.remove(&id);
                    if spawn::group_alive(pid) {
                        let _ = spawn::signal_group(pid, libc::SIGKILL);
                        self.notifying.killed.push(pid);
                        let msg = format!(
                            "Notifier left processes in its group (pid {pid}): SIGKILL after {timeout}"
                        );
                        self.task_line(&task, Level::Debug, &msg);
                    }
                }
                How::Thread { name } => {
                    let msg = format!(
                        "Notifier failed ({}): notifier `{name}` did not return within {timeout}; its thread is abandoned",
                        event.word()
                    );
                    self.notifying.running.remove(&id);
                    self.task_line(&task, Level::Warning, &msg);
                }
            }
        }
    }

    /// At exit: let running notifiers finish (each up to its timeout; a SIGTERM or SIGINT
    /// cuts the wait short), then kill what is left of them.
    pub(super) fn wait_notifiers(&mut self) {
        let active = self.notifying.active();
        if active > 0 {
            let msg = format!(
                "Waiting for {active} notifier{} to finish (at most {}; SIGTERM to stop waiting)",
                if active == 1 { "" } else { "s" },
                fmt_dur(self.notifying.timeout)
            );
            self.master(Level::Info, &msg);
        }
        // The main loop's draining phase: signals, child exits, pipes and worker reports
        // are served, and the alarm wakes it for the notifiers' timeouts.
        self.serve_pause();
        self.phase = Phase::Draining { cut: false };
        let mut events = vec![EpollEvent::empty(); 64];
        while self.notifying.active() > 0 {
            if self.turn(&mut events).is_err() {
                break;
            }
            if self.phase == (Phase::Draining { cut: true }) {
                self.master(Level::Warning, "Stopped waiting for notifiers");
                break;
            }
        }
        // Whatever is left (killed at the cut, leftovers of finished ones) dies now.
        let left: Vec<(u64, u32)> = self
            .notifying
            .running
            .iter()
            .filter_map(|(id, r)| match r.how {
                How::Command { pid, .. } => Some((*id, pid)),
                How::Thread { .. } => None,
            })
            .collect();
        for (id, pid) in left {
            if spawn::group_alive(pid) {
                let _ = spawn::signal_group(pid, libc::SIGKILL);
            }
            self.notifying.running.remove(&id);
        }
        let _ = self.reap_all();
    }
}
