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
use crate::rotate::RotatingFile;
use crate::spawn;
use crate::spec::TaskSpec;

/// What runs a task's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Executor {
    /// A process of its own (fork/exec or the fast clone path).
    Process,
    /// An srun client running the command as a job step; stop signals go to the step.
    Srun,
    /// A task registered through the library API, on a worker thread of bansuri.
    InProcess,
}

impl Executor {
    /// The executor of `task`'s attempts.
    pub(super) fn for_task(task: &TaskSpec) -> Executor {
        if task.no_interface {
            Executor::InProcess
        } else if task.srun.is_some() {
            Executor::Srun
        } else {
            Executor::Process
        }
    }
}

impl Runtime {
    /// Start attempt `attempt` of `task` as run `run`; returns the core's follow-up.
    pub(super) fn start_run(
        &mut self,
        run: RunId,
        task: Arc<TaskSpec>,
        attempt: u32,
    ) -> Vec<Action> {
        match Executor::for_task(&task) {
            Executor::InProcess => self.spawn_inprocess(run, task, attempt),
            // `Runtime::spawn` (runtime/slurm.rs) refuses an srun task outside SLURM.
            Executor::Process | Executor::Srun => match self.spawn_tracked(run, &task, attempt) {
                Ok(child) => self.process_started(run, &task, child),
                Err(reason) => {
                    self.notifying.forget_after(run);
                    self.core
                        .handle(Input::SpawnFailed { run, reason }, self.now())
                }
            },
        }
    }

    /// The executor of a run still going; `None` when it is over.
    fn executor_of(&self, run: RunId) -> Option<Executor> {
        if self.inproc.has(run) {
            return Some(Executor::InProcess);
        }
        let info = self.runs.get(&run)?;
        Some(if info.srun {
            Executor::Srun
        } else {
            Executor::Process
        })
    }

    /// Send `signal` to run `run` the way its executor takes it.
    pub(super) fn signal_run(&mut self, run: RunId, signal: i32) -> Vec<Action> {
        let executor = match self.executor_of(run) {
            None => return Vec::new(),
            Some(Executor::InProcess) => return self.signal_inprocess(run, signal),
            Some(executor) => executor,
        };
        let Some(info) = self.runs.get(&run) else {
            return Vec::new();
        };
        let (pid, task) = (info.pid, Arc::clone(&info.task));
        if executor == Executor::Srun {
            self.signal_srun(pid, &task, signal);
        } else if let Err(e) = spawn::signal_group(pid, signal) {
            let msg = format!("cannot signal process group {pid}: {e}");
            self.master(Level::Error, &msg);
        }
        self.signal_escapees(run, signal);
        Vec::new()
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
        let of = |json| Executor::for_task(&task(json));
        assert_eq!(of(r#"{"name": "a", "command": "true"}"#), Executor::Process);
        assert_eq!(
            of(r#"{"name": "a", "command": ["true"], "srun": true}"#),
            Executor::Srun
        );
        // A registered name runs in bansuri; a Python class is a process.
        assert_eq!(
            of(r#"{"name": "a", "no-interface": true, "command": "Echo"}"#),
            Executor::InProcess
        );
        assert_eq!(
            of(r#"{"name": "a", "no-interface": true, "command": "pkg.mod:Job"}"#),
            Executor::Process
        );
    }
}
