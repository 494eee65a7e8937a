//! The types of the library API, apart from the program that runs them: [`Task`] (an
//! in-process task), [`TaskInfo`] and [`RunContext`] (what a run sees), [`Registry`] (the
//! tasks and notifiers a program registered) and [`Builder`] (how it registers them).
//!
//! The command line and the runtime read the registry from here; [`crate::embed`] adds
//! [`Builder::run_cli`], which hands over to the command line, so the dependency goes one
//! way (embed -> cli -> runtime -> api). See [`crate::embed`] for the guide. Must not: run
//! anything itself (the runtime does) or import the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::Extensions;
use crate::notify::Notifier;

/// A task that runs inside the embedding program, selected in the config by
/// `"no-interface": true` and `"command": "<registered name>"`. The Bansuri manual's
/// `AbstractTask`.
///
/// `run` and `stop` take `&self` because `stop` is called from another thread while
/// `run` is going: keep the state they share in atomics or a mutex.
pub trait Task: Send + Sync + 'static {
    /// Do the work of one attempt; return its exit code (0 is success unless the task's
    /// `success-codes` say otherwise).
    fn run(&self, ctx: &mut RunContext) -> i32;

    /// Asked to stop: make `run` return soon. Called at most once per attempt, from a
    /// thread other than `run`'s. The default does nothing: a task that polls
    /// [`RunContext::stop_requested`] or waits with [`RunContext::sleep`] needs no more.
    fn stop(&self) {}
}

/// What an in-process task is told about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    /// The task's name in the config.
    pub name: String,
    /// The registered name it runs (its `command`).
    pub kind: String,
    /// Its `description`.
    pub description: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed for the run (`times` with `on-fail: restart`, else 1).
    pub attempts: u32,
    /// Its working directory (not the thread's current directory: join paths with it).
    pub working_directory: PathBuf,
    /// Its `env` and `environment-file` variables (not set in the process environment).
    pub env: BTreeMap<String, String>,
    /// Its `timeout`, if any.
    pub timeout: Option<Duration>,
}

impl TaskInfo {
    /// Information for a task called `name`, with defaults elsewhere (for tests of a
    /// [`Task`] outside bansuri).
    pub fn new(name: &str) -> TaskInfo {
        TaskInfo {
            name: name.to_owned(),
            kind: name.to_owned(),
            description: String::new(),
            attempt: 1,
            attempts: 1,
            working_directory: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env: BTreeMap::new(),
            timeout: None,
        }
    }
}

/// The stop flag of one attempt, shared by the run's thread and the event loop.
#[derive(Debug, Default)]
pub(crate) struct StopFlag {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopFlag {
    pub(crate) fn set(&self) {
        let mut s = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        *s = true;
        self.wake.notify_all();
    }

    fn get(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one attempt of an in-process task works with: its information, its output
/// streams and its stop flag.
pub struct RunContext {
    info: TaskInfo,
    stdout: Box<dyn Write + Send>,
    stderr: Box<dyn Write + Send>,
    stop: Arc<StopFlag>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("info", &self.info)
            .field("stop_requested", &self.stop_requested())
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// A context writing to the given streams (for tests of a [`Task`] outside bansuri;
    /// bansuri makes its own).
    pub fn new(
        info: TaskInfo,
        stdout: impl Write + Send + 'static,
        stderr: impl Write + Send + 'static,
    ) -> RunContext {
        RunContext::with_flag(
            info,
            Box::new(stdout),
            Box::new(stderr),
            Arc::new(StopFlag::default()),
        )
    }

    pub(crate) fn with_flag(
        info: TaskInfo,
        stdout: Box<dyn Write + Send>,
        stderr: Box<dyn Write + Send>,
        stop: Arc<StopFlag>,
    ) -> RunContext {
        RunContext {
            info,
            stdout,
            stderr,
            stop,
        }
    }

    /// The task's name, attempt, working directory, env...
    pub fn info(&self) -> &TaskInfo {
        &self.info
    }

    /// The task's stdout: job log lines prefixed with its name, or its `stdout` file.
    /// Line-buffered: a line is written when it ends.
    pub fn stdout(&mut self) -> &mut (dyn Write + Send) {
        &mut *self.stdout
    }

    /// The task's stderr (combined with stdout by default, as for a process).
    pub fn stderr(&mut self) -> &mut (dyn Write + Send) {
        &mut *self.stderr
    }

    /// A variable of the task's `env` / `environment-file`.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.info.env.get(key).map(String::as_str)
    }

    /// True once bansuri asked this attempt to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.get()
    }

    /// Ask this attempt to stop, as bansuri does (for tests outside bansuri).
    pub fn request_stop(&self) {
        self.stop.set();
    }

    /// Sleep for `d`, or less if a stop is requested meanwhile. Returns `true` when the
    /// whole time passed, `false` when woken by a stop request.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut stopped = self.stop.stopped.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *stopped {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            stopped = match self.stop.wake.wait_timeout(stopped, end - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Flush both streams (done by bansuri when `run` returns).
    pub(crate) fn finish(mut self) {
        let _ = self.stdout.flush();
        let _ = self.stderr.flush();
    }
}

/// Makes a fresh [`Task`] for each attempt.
pub type TaskFactory = Arc<dyn Fn(&TaskInfo) -> Box<dyn Task> + Send + Sync>;

/// The tasks and notifiers a program registered, by name.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: BTreeMap<String, TaskFactory>,
    notifiers: BTreeMap<String, Arc<dyn Notifier>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tasks", &self.tasks.keys().collect::<Vec<_>>())
            .field("notifiers", &self.notifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// The registered names, for validating a config.
    pub fn extensions(&self) -> Extensions {
        Extensions {
            tasks: self.tasks.keys().cloned().collect::<BTreeSet<_>>(),
            notifiers: self.notifiers.keys().cloned().collect::<BTreeSet<_>>(),
        }
    }

    /// The factory registered as `name`.
    pub fn task(&self, name: &str) -> Option<&TaskFactory> {
        self.tasks.get(name)
    }

    /// The notifier registered as `name`.
    pub fn notifier(&self, name: &str) -> Option<&Arc<dyn Notifier>> {
        self.notifiers.get(name)
    }
}

/// Builds a program that embeds bansuri: register tasks and notifiers, then hand over to
/// the command line with [`Builder::run_cli`].
#[derive(Debug, Default)]
pub struct Builder {
    /// Handed to the command line by `run_cli` (in [`crate::embed`]).
    pub(crate) registry: Registry,
}

/// Names the config can use: letters, digits, `.`, `_`, `-`, `:`, `/`.
fn check_name(what: &str, name: &str) {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'));
    assert!(
        ok,
        "bansuri::Builder: invalid {what} name {name:?}: use letters, digits, `.`, `_`, `-`, `:`, `/`"
    );
}

impl Builder {
    /// A builder with nothing registered.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Register an in-process task kind as `name`: `factory` makes a fresh task for each
    /// attempt of a config task with `"no-interface": true, "command": "<name>"`.
    ///
    /// # Panics
    /// If `name` is empty, has characters other than letters, digits, `.`, `_`, `-`,
    /// `:`, `/`, or is registered already.
    pub fn task<T, F>(mut self, name: &str, factory: F) -> Builder
    where
        T: Task,
        F: Fn(&TaskInfo) -> T + Send + Sync + 'static,
    {
        check_name("task", name);
        let f: TaskFactory =
            Arc::new(move |info: &TaskInfo| Box::new(factory(info)) as Box<dyn Task>);
        let old = self.registry.tasks.insert(name.to_owned(), f);
        assert!(
            old.is_none(),
            "bansuri::Builder: task {name:?} registered twice"
        );
        self
    }

    /// Register a notifier as `name`, used by tasks with `"notify": "<name>"`.
    ///
    /// # Panics
    /// As [`Builder::task`], and for the reserved names `mail`, `on-fail` and `none`.
    pub fn notifier(mut self, name: &str, notifier: impl Notifier) -> Builder {
        check_name("notifier", name);
        assert!(
            !["mail", "on-fail", "none"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name)),
            "bansuri::Builder: {name:?} is a reserved notify value"
        );
        let old = self
            .registry
            .notifiers
            .insert(name.to_owned(), Arc::new(notifier));
        assert!(
            old.is_none(),
            "bansuri::Builder: notifier {name:?} registered twice"
        );
        self
    }

    /// What was registered.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// A writer that writes whole lines (for the output of in-process tasks).
pub(crate) fn line_writer(w: impl Write + Send + 'static) -> Box<dyn Write + Send> {
    Box::new(io::LineWriter::new(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Waits(AtomicBool);

    impl Task for Waits {
        fn run(&self, ctx: &mut RunContext) -> i32 {
            let full = ctx.sleep(Duration::from_secs(30));
            let _ = writeln!(ctx.stdout(), "slept fully: {full}");
            if self.0.load(Ordering::SeqCst) {
                3
            } else {
                0
            }
        }
        fn stop(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn sleep_wakes_on_stop_request() {
        let ctx = RunContext::new(TaskInfo::new("t"), io::sink(), io::sink());
        let flag = Arc::clone(&ctx.stop);
        let t0 = Instant::now();
        let h = std::thread::spawn(move || ctx.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        flag.set();
        assert!(!h.join().unwrap());
        assert!(t0.elapsed() < Duration::from_secs(5));
        let ctx = RunContext::new(TaskInfo::new("t"), io::sink(), io::sink());
        assert!(ctx.sleep(Duration::from_millis(10)));
    }

    #[test]
    fn registry_lists_names_for_validation() {
        let b = Builder::new()
            .task("waits", |_: &TaskInfo| Waits(AtomicBool::new(false)))
            .notifier("log", |_: &crate::Notice| Ok(()));
        let ext = b.registry().extensions();
        assert_eq!(ext.tasks.iter().collect::<Vec<_>>(), ["waits"]);
        assert_eq!(ext.notifiers.iter().collect::<Vec<_>>(), ["log"]);
        let f = b.registry().task("waits").unwrap();
        let task = f(&TaskInfo::new("x"));
        let mut ctx = RunContext::new(TaskInfo::new("x"), io::sink(), io::sink());
        ctx.request_stop();
        task.stop();
        assert_eq!(task.run(&mut ctx), 3);
    }

    #[test]
    #[should_panic(expected = "reserved")]
    fn reserved_notifier_names_are_refused() {
        let _ = Builder::new().notifier("mail", |_: &crate::Notice| Ok(()));
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn duplicate_task_names_are_refused() {
        let _ = Builder::new()
            .task("a", |_: &TaskInfo| Waits(AtomicBool::new(false)))
            .task("a", |_: &TaskInfo| Waits(AtomicBool::new(false)));
    }
}
