//! Which backend runs an attempt, and the one place the runtime dispatches to it.
//!
//! Owns the choice between today's executors ([`Executor`]) and the start and signal
//! paths of each: a process (`crate::spawn`, which carries out a `LaunchPlan`), an srun
//! client (a process too, whose stop signals go to its job step: runtime/slurm.rs), an
//! in-process task of the library API on a worker thread (runtime/inprocess.rs). Must
//! not: decide when a run starts or stops (the core does), or build a command line
//! (`spawn::plan` does).

use std::sync::Arc;

use chrono::Utc;

use super::{FileSink, RunInfo, Runtime};
use crate::core::{Action, Input, RunId};
use crate::level::Level;
use crate::model::Usage;
use crate::output::Stream;
use crate::resources::Grant;
use crate::rotate::RotatingFile;
use crate::spawn;
use crate::spec::TaskSpec;

/// What kind of backend an executor is (for the tests).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A process of its own (fork/exec or the fast clone path).
    Process,
    /// An srun client running the command as a job step; stop signals go to the step.
    Srun,
    /// A task registered through the library API, on a worker thread of bansuri.
    InProcess,
}

/// A backend that runs attempts. The loop knows only this trait: [`Runtime::start_run`]
/// and [`Runtime::signal_run`] dispatch to the first of [`EXECUTORS`] that runs the task
/// (or holds the run). A new backend (remote nodes) is a new impl and a line in
/// [`EXECUTORS`]; the loop is not touched.
///
/// The backends keep their runs in the runtime (the pipes and process table are shared
/// with notifiers and the reaper), so they are stateless and take the runtime as context.
pub(super) trait Executor: Sync {
    #[cfg_attr(not(test), allow(dead_code))]
    fn kind(&self) -> Kind;
    /// Does this backend run `task`'s attempts?
    fn runs(&self, task: &TaskSpec) -> bool;
    /// Is `run` one of this backend's runs, still going?
    fn holds(&self, rt: &Runtime, run: RunId) -> bool;
    /// Start attempt `attempt` of `task` as `run`, holding `grant` (issue 17); the core's
    /// follow-up.
    fn start(
        &self,
        rt: &mut Runtime,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
        grant: Option<Grant>,
    ) -> Vec<Action>;
    /// Send `signal` to `run`; the core's follow-up.
    fn signal(&self, rt: &mut Runtime, run: RunId, signal: i32) -> Vec<Action>;
}

/// Every backend, the most specific first: a task's executor is the first that runs it.
pub(super) static EXECUTORS: [&dyn Executor; 3] =
    [&InProcessExecutor, &SrunExecutor, &ProcessExecutor];

/// The executor of `task`'s attempts.
pub(super) fn for_task(task: &TaskSpec) -> &'static dyn Executor {
    EXECUTORS
        .iter()
        .copied()
        .find(|e| e.runs(task))
        .unwrap_or(&ProcessExecutor)
}

/// A process of its own.
struct ProcessExecutor;

impl Executor for ProcessExecutor {
    fn kind(&self) -> Kind {
        Kind::Process
    }
    fn runs(&self, _task: &TaskSpec) -> bool {
        true
    }
    fn holds(&self, rt: &Runtime, run: RunId) -> bool {
        rt.runs.get(&run).is_some_and(|i| !i.srun)
    }
    fn start(
        &self,
        rt: &mut Runtime,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
        grant: Option<Grant>,
    ) -> Vec<Action> {
        rt.start_process(run, &task, attempt, grant.as_ref())
    }
    fn signal(&self, rt: &mut Runtime, run: RunId, signal: i32) -> Vec<Action> {
        let Some(pid) = rt.runs.get(&run).map(|i| i.pid) else {
            return Vec::new();
        };
        if let Err(e) = spawn::signal_group(pid, signal) {
            let msg = format!("cannot signal process group {pid}: {e}");
            rt.master(Level::Error, &msg);
        }
        rt.signal_escapees(run, signal);
        Vec::new()
    }
}

/// An srun client: a process whose stop signals go to its job step (runtime/slurm.rs).
struct SrunExecutor;

impl Executor for SrunExecutor {
    fn kind(&self) -> Kind {
        Kind::Srun
    }
    fn runs(&self, task: &TaskSpec) -> bool {
        task.srun.is_some()
    }
    fn holds(&self, rt: &Runtime, run: RunId) -> bool {
        rt.runs.get(&run).is_some_and(|i| i.srun)
    }
    fn start(
        &self,
        rt: &mut Runtime,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
        grant: Option<Grant>,
    ) -> Vec<Action> {
        // `Runtime::spawn` (runtime/slurm.rs) refuses an srun task outside SLURM. The
        // grant is only held: the step is Slurm's to bind (`spawn::LaunchPlan::bound`).
        rt.start_process(run, &task, attempt, grant.as_ref())
    }
    fn signal(&self, rt: &mut Runtime, run: RunId, signal: i32) -> Vec<Action> {
        let Some((pid, task)) = rt.runs.get(&run).map(|i| (i.pid, Arc::clone(&i.task))) else {
            return Vec::new();
        };
        rt.signal_srun(pid, &task, signal);
        rt.signal_escapees(run, signal);
        Vec::new()
    }
}

/// A registered task on a worker thread (runtime/inprocess.rs).
struct InProcessExecutor;

impl Executor for InProcessExecutor {
    fn kind(&self) -> Kind {
        Kind::InProcess
    }
    fn runs(&self, task: &TaskSpec) -> bool {
        task.no_interface
    }
    fn holds(&self, rt: &Runtime, run: RunId) -> bool {
        rt.inproc.has(run)
    }
    fn start(
        &self,
        rt: &mut Runtime,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
        _grant: Option<Grant>,
    ) -> Vec<Action> {
        // The grant is only held: a thread of bansuri is not pinned (it would pin a
        // thread that bansuri reuses) and gets no variables (it has no environment of
        // its own).
        rt.spawn_inprocess(run, task, attempt)
    }
    fn signal(&self, rt: &mut Runtime, run: RunId, signal: i32) -> Vec<Action> {
        rt.signal_inprocess(run, signal)
    }
}

impl Runtime {
    /// Start attempt `attempt` of `task` as run `run`; returns the core's follow-up.
    pub(super) fn start_run(
        &mut self,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
        grant: Option<Grant>,
    ) -> Vec<Action> {
        for_task(&task).start(self, run, task, attempt, grant)
    }

    /// Send `signal` to run `run` the way its executor takes it (nothing when it is over).
    /// A run on another node (issue 18) gets it through its node's agent.
    pub(super) fn signal_run(&mut self, run: RunId, signal: i32) -> Vec<Action> {
        if self.holds_remote(run) {
            return self.signal_remote(run, signal);
        }
        match EXECUTORS.iter().find(|e| e.holds(self, run)) {
            Some(e) => e.signal(self, run, signal),
            None => Vec::new(),
        }
    }

    /// Start a process (plain or srun client) for `run`.
    fn start_process(
        &mut self,
        run: RunId,
        task: &TaskSpec,
        attempt: u32,
        grant: Option<&Grant>,
    ) -> Vec<Action> {
        match self.spawn_tracked(run, task, attempt, grant) {
            Ok(child) => self.process_started(run, task, child),
            Err(e) => {
                self.notifying.forget_after(run);
                let reason = e.to_string();
                self.core
                    .handle(Input::SpawnFailed { run, reason }, self.now())
            }
        }
    }

    /// A process started for run `run`: watch its output, remember it, tell the core.
    fn process_started(&mut self, run: RunId, task: &TaskSpec, child: spawn::Child) -> Vec<Action> {
        let pid = child.pid;
        let name: Arc<str> = Arc::from(task.name.as_str());
        let mut pipes = Vec::new();
        for (fd, stream, path) in [
            (child.stdout, Stream::Stdout, child.stdout_file),
            (child.stderr, Stream::Stderr, child.stderr_file),
        ] {
            let Some(fd) = fd else { continue };
            let sink = path.and_then(|p| self.rotated_sink(task, &p));
            match self.add_pipe(fd, run, Arc::clone(&name), stream, sink) {
                Ok(slot) => pipes.push(slot),
                Err(e) => {
                    let msg = format!("cannot watch the output of pid {pid}: {e}");
                    self.master(Level::Error, &msg);
                }
            }
        }
        self.runs.insert(
            run,
            RunInfo {
                pid,
                task: Arc::clone(&name),
                pipes,
                srun: task.srun.is_some(),
                orphans: Usage::default(),
            },
        );
        self.guardian.watch(pid);
        self.pids.insert(pid, run);
        self.core.handle(Input::Spawned { run, pid }, self.now())
    }

    /// The rotating file that `task`'s pipe feeds; `None` (the job log) when it cannot be
    /// opened, saying so.
    fn rotated_sink(&mut self, task: &TaskSpec, path: &std::path::Path) -> Option<FileSink> {
        match RotatingFile::open(path, task.log_max_bytes, task.log_backups) {
            Ok(file) => Some(FileSink {
                file,
                failing: false,
            }),
            Err(e) => {
                let msg = format!(
                    "cannot open {}: {e}; its output goes to the job log",
                    path.display()
                );
                self.log
                    .event(Utc::now(), Some(&task.name), Level::Error, &msg);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(json: &str) -> TaskSpec {
        let text = format!("{{\"scripts\": [{json}]}}");
        let path = std::path::Path::new("/tmp/c.json");
        match crate::config::parse_str_with(
            &text,
            path,
            crate::config::Format::Json,
            &crate::config::Extensions {
                tasks: ["Echo".to_owned()].into(),
                ..Default::default()
            },
        ) {
            Ok(spec) => spec.tasks.into_iter().next().unwrap(),
            Err(e) => panic!("config did not load:\n{e}"),
        }
    }

    #[test]
    fn each_kind_of_task_has_its_executor() {
        let of = |json| for_task(&task(json)).kind();
        assert_eq!(of(r#"{"name": "a", "command": "true"}"#), Kind::Process);
        assert_eq!(
            of(r#"{"name": "a", "command": ["true"], "srun": true}"#),
            Kind::Srun
        );
        // A registered name runs in bansuri; a Python class is a process.
        assert_eq!(
            of(r#"{"name": "a", "no-interface": true, "command": "Echo"}"#),
            Kind::InProcess
        );
        assert_eq!(
            of(r#"{"name": "a", "no-interface": true, "command": "pkg.mod:Job"}"#),
            Kind::Process
        );
    }
}
