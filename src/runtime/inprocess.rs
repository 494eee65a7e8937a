//! In-process runs (`no-interface: true`, library API) and the worker channel.
//!
//! A registered [`Task`](crate::Task) runs on a thread per attempt; the thread reports its
//! result through a channel and wakes the event loop with an eventfd that sits in the same
//! epoll set as the signalfd and the pipes. The task's output goes through pipes read by
//! the loop exactly like a process's (or into its files), so the job log, the output tail
//! of notifications and `stdout`/`stderr` files behave the same. The core sees such a run
//! as a process with pid 0: timeouts, retries, schedules and overlap are its, unchanged.
//! A stop signal calls `Task::stop` (on a thread of its own) and sets the context's stop
//! flag; SIGKILL, which the core sends after the grace, abandons the thread and reports
//! the attempt as killed.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use chrono::Utc;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::error::{NotifierFailure, StartError};
use super::{Runtime, RuntimeError, Token};
use crate::api::{line_writer, Registry, RunContext, StopFlag, Task, TaskInfo};
use crate::core::{Action, Input, RunId};
use crate::level::Level;
use crate::model::ExitStatus;
use crate::output::Stream;
use crate::spawn::{Sink, StderrSink as Stderr, ThreadPlan};
use crate::spec::{OnFail, TaskSpec};

/// Exit code recorded for an in-process task that panicked (Rust's own for a panic).
pub const PANIC_CODE: i32 = 101;

/// What a worker thread reports.
pub(super) enum Done {
    /// An in-process run is over.
    Task { run: RunId, end: TaskEnd },
    /// A registered notifier returned.
    Notifier {
        id: u64,
        result: Result<(), NotifierFailure>,
    },
}

/// How an in-process attempt ended.
pub(super) enum TaskEnd {
    /// `Task::run` returned this.
    Returned(i32),
    /// `Task::run` panicked with this message.
    Panicked(String),
    /// It did not return within the grace after the stop request: abandoned.
    Abandoned,
}

/// The channel from worker threads to the event loop.
pub(super) struct Workers {
    tx: Sender<Done>,
    rx: Receiver<Done>,
    efd: Arc<EventFd>,
}

impl Workers {
    pub(super) fn new() -> Result<Workers, RuntimeError> {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(RuntimeError::sys("cannot create an eventfd"))?;
        let (tx, rx) = channel();
        Ok(Workers {
            tx,
            rx,
            efd: Arc::new(efd),
        })
    }

    /// Put the eventfd into `epoll`.
    pub(super) fn watch(&self, epoll: &nix::sys::epoll::Epoll) -> Result<(), RuntimeError> {
        epoll
            .add(
                self.efd.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, Token::Worker.to_u64()),
            )
            .map_err(RuntimeError::sys("cannot watch the eventfd"))
    }

    /// A handle for a worker thread: send, then wake the loop.
    pub(super) fn reporter(&self) -> impl Fn(Done) + Send + 'static {
        let tx = self.tx.clone();
        let efd = Arc::clone(&self.efd);
        move |done| {
            // The loop may be gone (bansuri exiting): nothing to tell then.
            if tx.send(done).is_ok() {
                let _ = efd.write(1);
            }
        }
    }

    /// Everything reported so far (resets the eventfd).
    pub(super) fn take(&self) -> Vec<Done> {
        let _ = self.efd.read();
        self.rx.try_iter().collect()
    }
}

/// The text of a panic payload.
pub(super) fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

/// One in-process attempt.
struct InRun {
    task: Arc<dyn Task>,
    stop: Arc<StopFlag>,
    stop_sent: bool,
    /// SIGKILL came: the end is reported through the channel, after what is queued.
    abandoned: bool,
    name: Arc<str>,
    pipes: Vec<usize>,
}

/// In-process runs going on.
pub(super) struct InProcess {
    registry: Registry,
    runs: HashMap<RunId, InRun>,
}

impl InProcess {
    pub(super) fn new(registry: Registry) -> InProcess {
        InProcess {
            registry,
            runs: HashMap::new(),
        }
    }

    /// Is `run` an in-process run that is still going?
    pub(super) fn has(&self, run: RunId) -> bool {
        self.runs.contains_key(&run)
    }
}

/// A non-blocking pipe for one stream of an in-process run: the loop's end, the thread's.
fn output_pipe() -> Result<(std::os::fd::OwnedFd, File), StartError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(StartError::Pipe)?;
    crate::spawn::set_nonblocking(&r).map_err(StartError::PipeSetup)?;
    Ok((r, File::from(w)))
}

/// Where one stream of an in-process run goes.
fn open_target(path: &std::path::Path, stream: &'static str) -> Result<File, StartError> {
    crate::rotate::open_append(path).map_err(|source| StartError::OpenOutput {
        stream,
        path: path.to_path_buf(),
        source,
    })
}

impl Runtime {
    /// Does pipe slot `slot` (still) belong to `id` (a run or a notifier)?
    pub(super) fn owns_pipe(&self, slot: usize, id: u64) -> bool {
        self.pipes
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.run == id)
    }

    /// Start an attempt of an in-process task; returns the core's follow-up actions.
    pub(super) fn spawn_inprocess(
        &mut self,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
    ) -> Vec<Action> {
        let started = crate::spawn::prepare(&task, &chrono::Local::now())
            .map_err(StartError::Prepare)
            .and_then(|task| self.start_thread(run, &task, attempt));
        match started {
            Ok(()) => self.core.handle(Input::Spawned { run, pid: 0 }, self.now()),
            Err(e) => {
                self.notifying.forget_after(run);
                let reason = e.to_string();
                self.core
                    .handle(Input::SpawnFailed { run, reason }, self.now())
            }
        }
    }

    /// The output of an in-process run: a writer per stream, and the pipe slots the loop
    /// reads (the job log's streams).
    fn thread_stdio(
        &mut self,
        run: RunId,
        plan: &ThreadPlan,
        name: &Arc<str>,
    ) -> Result<(File, File, Vec<usize>), StartError> {
        let mut readers = Vec::new();
        let mut open = |sink: &Sink, stream: Stream, what: &'static str| match sink {
            Sink::JobLog => {
                let (r, w) = output_pipe()?;
                readers.push((r, stream));
                Ok(w)
            }
            Sink::File(p) | Sink::Rotated(p) => open_target(p, what),
        };
        let stdout = open(&plan.stdout, Stream::Stdout, "stdout")?;
        let stderr = match &plan.stderr {
            Stderr::Combined => stdout.try_clone().map_err(StartError::Duplicate)?,
            Stderr::Own(sink) => open(sink, Stream::Stderr, "stderr")?,
        };
        let mut pipes = Vec::new();
        for (r, stream) in readers {
            match self.add_pipe(r, run, Arc::clone(name), stream, None) {
                Ok(slot) => pipes.push(slot),
                Err(e) => {
                    self.close_pipes(pipes);
                    return Err(StartError::Watch(e));
                }
            }
        }
        Ok((stdout, stderr, pipes))
    }

    fn close_pipes(&mut self, pipes: Vec<usize>) {
        for slot in pipes {
            self.close_pipe(slot);
        }
    }

    fn start_thread(
        &mut self,
        run: RunId,
        task: &TaskSpec,
        attempt: u32,
    ) -> Result<(), StartError> {
        let kind = task.command.display();
        let factory = self
            .inproc
            .registry
            .task(&kind)
            .cloned()
            .ok_or_else(|| StartError::NotRegistered(kind.clone()))?;
        self.notifying.track_output(run, task);
        let plan = ThreadPlan::new(task);
        let name: Arc<str> = Arc::from(task.name.as_str());
        let (stdout, stderr, pipes) = self.thread_stdio(run, &plan, &name)?;
        let info = TaskInfo {
            name: task.name.clone(),
            kind: kind.clone(),
            description: task.description.clone(),
            attempt,
            attempts: if task.on_fail == OnFail::Restart {
                task.times
            } else {
                1
            },
            working_directory: plan.cwd,
            env: plan.env,
            timeout: task.timeout,
        };
        let instance: Arc<dyn Task> = match catch_unwind(AssertUnwindSafe(|| factory(&info))) {
            Ok(t) => Arc::from(t),
            Err(p) => {
                self.close_pipes(pipes);
                return Err(StartError::FactoryPanicked {
                    kind,
                    panic: panic_text(p),
                });
            }
        };
        let stop = Arc::new(StopFlag::default());
        let ctx = RunContext::with_flag(
            info,
            line_writer(stdout),
            line_writer(stderr),
            Arc::clone(&stop),
        );
        let report = self.workers.reporter();
        let worker = Arc::clone(&instance);
        let spawned = std::thread::Builder::new()
            .name(format!("task {}", task.name))
            .spawn(move || {
                let mut ctx = ctx;
                let end = match catch_unwind(AssertUnwindSafe(|| worker.run(&mut ctx))) {
                    Ok(code) => TaskEnd::Returned(code),
                    Err(p) => TaskEnd::Panicked(panic_text(p)),
                };
                // Flush and close the output before reporting: the loop reads the pipes
                // to their end when it hears of the result.
                ctx.finish();
                report(Done::Task { run, end });
            });
        if let Err(e) = spawned {
            self.close_pipes(pipes);
            return Err(StartError::Thread(e));
        }
        self.inproc.runs.insert(
            run,
            InRun {
                task: instance,
                stop,
                stop_sent: false,
                abandoned: false,
                name,
                pipes,
            },
        );
        Ok(())
    }

    /// The core signals an in-process run: the first signal asks it to stop; SIGKILL
    /// (after the grace, or a `KILL` stop signal) abandons its thread. The end is reported
    /// through the worker channel, as a process's end comes later through SIGCHLD: a
    /// result the thread sent just before still wins, and the lines the core writes with
    /// the signal come first.
    pub(super) fn signal_inprocess(&mut self, run: RunId, signal: i32) -> Vec<Action> {
        let Some(r) = self.inproc.runs.get_mut(&run) else {
            return Vec::new();
        };
        if !r.stop_sent {
            r.stop_sent = true;
            r.stop.set();
            let task = Arc::clone(&r.task);
            // `stop` is user code: it runs on a thread of its own so that it cannot hold
            // up the event loop.
            let _ = std::thread::Builder::new()
                .name("task stop".into())
                .spawn(move || {
                    let _ = catch_unwind(AssertUnwindSafe(|| task.stop()));
                });
        }
        if signal == libc::SIGKILL && !r.abandoned {
            r.abandoned = true;
            (self.workers.reporter())(Done::Task {
                run,
                end: TaskEnd::Abandoned,
            });
        }
        Vec::new()
    }

    /// The worker threads have news.
    pub(super) fn on_workers(&mut self) -> Option<crate::model::Ending> {
        for done in self.workers.take() {
            let follow = match done {
                Done::Task { run, end } => {
                    let Some(r) = self.inproc.runs.remove(&run) else {
                        // An abandoned thread finally returned.
                        continue;
                    };
                    let status = match end {
                        TaskEnd::Returned(code) => ExitStatus::Code(code),
                        TaskEnd::Panicked(msg) => {
                            let line = format!(
                                "In-process task panicked: {msg} (recorded as exit code {PANIC_CODE})"
                            );
                            self.log
                                .event(Utc::now(), Some(&r.name), Level::Error, &line);
                            ExitStatus::Code(PANIC_CODE)
                        }
                        TaskEnd::Abandoned => {
                            self.log.event(
                                Utc::now(),
                                Some(&r.name),
                                Level::Warning,
                                "In-process task did not return after the stop request: its thread is abandoned (it runs on until it returns; its output is discarded; recorded as killed by SIGKILL)",
                            );
                            ExitStatus::Signal(libc::SIGKILL)
                        }
                    };
                    self.end_inprocess(run, r.pipes, status)
                }
                Done::Notifier { id, result } => {
                    self.notifier_returned(id, result);
                    continue;
                }
            };
            if let Some(code) = self.apply(follow) {
                return Some(code);
            }
        }
        None
    }

    /// Drain and close the run's pipes, tell the core; returns its follow-up actions.
    fn end_inprocess(&mut self, run: RunId, pipes: Vec<usize>, status: ExitStatus) -> Vec<Action> {
        for slot in pipes {
            // A pipe that reached its end was closed already, and its slot may hold
            // another run's pipe by now.
            if self.owns_pipe(slot, run) {
                self.on_pipe(slot, true);
                self.close_pipe(slot);
            }
        }
        let input = Input::Exited {
            run,
            status,
            usage: None,
        };
        self.notifying.forget_after(run);
        self.core.handle(input, self.now())
    }
}
