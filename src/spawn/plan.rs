//! What one start of a task runs, decided without touching the OS: a [`LaunchPlan`].
//!
//! Owns the rules that turn a prepared [`TaskSpec`] into a command line (a shell string,
//! an argv array, the Python runner, the `srun ... bansuri step-exec` wrapper), the
//! environment the child gets over bansuri's, its working directory, where its stdout and
//! stderr go, the identity it takes, which launcher starts it, and what of its grant
//! (issue 17) binds it: the CPUs it is pinned to and the variables of
//! `resources::bind::environment` ([`LaunchPlan::bound`]). Must not: read the
//! environment, the clock or any file (what bansuri knows of itself comes in as
//! [`Own`]), open or create anything: `spawn::spawn` carries the plan out.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::resources::{CpuSet, GpuNumbering, Grant, Inventory};
use crate::spec::{CommandSpec, OutputTarget, StderrTarget, TaskSpec};

/// A run's grant and the inventory it was granted from (issue 17).
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The CPUs, GPUs and memory packed for the run.
    pub grant: &'a Grant,
    /// What the node has (how a child addresses each GPU).
    pub inventory: &'a Inventory,
}

/// What bansuri knows of its own process that a start depends on, read by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Own {
    /// bansuri's own binary (`current_exe`), which runs in an srun step as the command's
    /// signal forwarder; `None` when unknown (then srun runs the command directly).
    pub exe: Option<PathBuf>,
    /// bansuri's environment sets `PYTHONUNBUFFERED` (then the child inherits that value).
    pub python_unbuffered: bool,
    /// bansuri's environment's `BANSURI_PYTHON` (the Python interpreter).
    pub python: Option<OsString>,
}

/// Where a stream of the child goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A pipe that bansuri reads into the job log.
    JobLog,
    /// This file, opened for appending and handed to the child.
    File(PathBuf),
    /// A pipe that bansuri reads and writes into this file, rotating it (`log-max-bytes`).
    Rotated(PathBuf),
}

/// Where the child's stderr goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stderr {
    /// Wherever stdout goes, through the same file description.
    Combined,
    /// Its own sink.
    Own(Sink),
}

/// The user a task switches to before exec (`user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// How the child is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `clone(CLONE_VM | CLONE_VFORK)`: nothing of bansuri is copied (see spawn/fast.rs).
    Fast,
    /// fork and exec: needed to switch users (setgroups/setuid must not run in a child
    /// that shares bansuri's memory).
    Fork,
}

/// One start of a task, ready to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// The program (looked up in PATH when it has no `/`).
    pub program: OsString,
    /// Its arguments after `argv[0]`.
    pub args: Vec<OsString>,
    /// What the child's environment sets over bansuri's, each key once.
    pub env: BTreeMap<OsString, OsString>,
    /// The working directory.
    pub cwd: PathBuf,
    /// Where stdout goes.
    pub stdout: Sink,
    /// Where stderr goes.
    pub stderr: Stderr,
    /// The user to switch to; `None` keeps bansuri's.
    pub identity: Option<Identity>,
    /// File mode creation mask; `None` inherits bansuri's.
    pub umask: Option<u32>,
    /// Nice value (0: unchanged).
    pub priority: i32,
    /// How the child is created.
    pub launcher: Launcher,
    /// The CPUs the child is pinned to before exec (`sched_setaffinity`); `None` leaves
    /// bansuri's affinity (no grant, `bind: false`, an srun task, a grant of no CPU).
    pub cpus: Option<CpuSet>,
}

impl LaunchPlan {
    /// The plan of attempt `attempt` of `task`, as `spawn::prepare` left it (pending
    /// settings settled, dated paths filled in).
    pub fn new(task: &TaskSpec, attempt: u32, own: &Own) -> LaunchPlan {
        let (program, args) = command(task, own);
        let identity = task.user.as_ref().map(|u| Identity {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        });
        let (stdout, stderr) = stdio(task);
        LaunchPlan {
            program,
            args,
            env: environment(task, attempt, own),
            cwd: task.working_directory.clone(),
            stdout,
            stderr,
            // The fast path cannot switch users (see [`Launcher::Fork`]).
            launcher: if identity.is_some() {
                Launcher::Fork
            } else {
                Launcher::Fast
            },
            identity,
            umask: task.umask,
            priority: task.priority,
            cpus: None,
        }
    }

    /// This plan bound to `binding` (issue 17): the variables of
    /// `resources::bind::environment` set over the task's (`OMP_NUM_THREADS` only when the
    /// task's own `env` does not set it; the GPU variables always), and, with `bind` on,
    /// the grant's CPUs as the child's affinity. An srun task is not bound here: its job
    /// step is Slurm's to bind (`--cpus-per-task`, `--exact`, the `--gpus` of its
    /// `extra-args`), and bansuri's mask or GPU list would not reach the step's tasks.
    pub fn bound(mut self, task: &TaskSpec, binding: Option<Binding>) -> LaunchPlan {
        let Some(b) = binding.filter(|_| task.srun.is_none()) else {
            return self;
        };
        let bind = task.needs.bind;
        let vars = crate::resources::environment(
            b.grant,
            b.inventory,
            bind,
            GpuNumbering::Inherited,
            |name| task.env.contains_key(name),
        );
        for (k, v) in vars {
            self.env.insert(k.into(), v.into());
        }
        if bind && !b.grant.cpus.is_empty() {
            self.cpus = Some(b.grant.cpus.clone());
        }
        self
    }
}

/// One start of an in-process task (library API): what of a [`LaunchPlan`] applies to a
/// thread of bansuri. There is no program, launcher or identity; the environment is the
/// task's own variables (`env` over `environment-file`), handed to it in its `TaskInfo`
/// instead of a process environment (bansuri's own variables and `BANSURI_TASK` are
/// not among them); its output goes to the same sinks as a process's, except that a
/// file is appended to as is (the thread writes it: `log-max-bytes` does not rotate it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPlan {
    /// The working directory (the thread's current directory stays bansuri's: the task
    /// joins paths with it).
    pub cwd: PathBuf,
    /// The task's variables.
    pub env: BTreeMap<String, String>,
    /// Where stdout goes (never [`Sink::Rotated`]).
    pub stdout: Sink,
    /// Where stderr goes (never [`Sink::Rotated`]).
    pub stderr: Stderr,
}

impl ThreadPlan {
    /// The plan of a start of `task`, as `spawn::prepare` left it.
    pub fn new(task: &TaskSpec) -> ThreadPlan {
        let unrotated = |s: Sink| match s {
            Sink::Rotated(p) => Sink::File(p),
            s => s,
        };
        let (stdout, stderr) = stdio(task);
        ThreadPlan {
            cwd: task.working_directory.clone(),
            env: task.env.clone(),
            stdout: unrotated(stdout),
            stderr: match stderr {
                Stderr::Own(s) => Stderr::Own(unrotated(s)),
                Stderr::Combined => Stderr::Combined,
            },
        }
    }
}

/// The program and its arguments.
fn command(task: &TaskSpec, own: &Own) -> (OsString, Vec<OsString>) {
    let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let split = |mut argv: Vec<OsString>| {
        let rest = argv.split_off(1);
        (argv.remove(0), rest)
    };
    match (&task.srun, &task.command) {
        // A job step: srun is the process bansuri starts, signals and reaps; the command
        // runs under it on the allocation's nodes (see crate::slurm).
        (Some(srun), command) => {
            let argv = crate::slurm::srun_argv(&task.name, srun, command, own.exe.as_deref());
            split(argv.into_iter().map(OsString::from).collect())
        }
        (None, CommandSpec::Shell(s)) => ("/bin/sh".into(), os(&["-c", s.as_str()])),
        (None, CommandSpec::Argv(argv)) => split(argv.iter().map(OsString::from).collect()),
        (None, CommandSpec::Python(class)) => (
            crate::python::interpreter_with(task, own.python.clone()),
            os(&crate::python::runner_args(class)),
        ),
    }
}

/// The variables set over bansuri's environment; a later rule wins over an earlier one.
fn environment(task: &TaskSpec, attempt: u32, own: &Own) -> BTreeMap<OsString, OsString> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: OsString| {
        env.insert(OsString::from(k), v);
    };
    if let CommandSpec::Python(class) = &task.command {
        // The runner and its settings (under srun they reach the step this way too).
        for (k, v) in crate::python::runner_env(task, class) {
            set(k, v.into());
        }
    }
    if !own.python_unbuffered {
        // `python script.py` writes to a pipe block-buffered: its prints would reach the
        // job log in bursts, or at exit. Unbuffered unless bansuri's own environment sets
        // it, or the task's `env`/`environment-file` (which come next, and win).
        set("PYTHONUNBUFFERED", "1".into());
    }
    // `env` over `environment-file` (merged so by config and `spawn::prepare`), with
    // BANSURI_INSTANCE for an instance of a `numprocs` program.
    for (k, v) in &task.env {
        set(k, v.into());
    }
    set("BANSURI_TASK", task.name.clone().into());
    set("BANSURI_ATTEMPT", attempt.to_string().into());
    if let Some(u) = &task.user {
        // What `su` would set: the task sees its own identity, not bansuri's.
        set("USER", u.name.clone().into());
        set("LOGNAME", u.name.clone().into());
        set("HOME", u.home.clone().into());
    }
    env
}

/// Where stdout and stderr go: the job log through a pipe; a file is handed to the child
/// directly, unless it rotates (`log-max-bytes`): then bansuri writes it, through a pipe.
fn stdio(task: &TaskSpec) -> (Sink, Stderr) {
    let rotating = task.log_max_bytes > 0;
    let file = |p: &PathBuf| {
        if rotating {
            Sink::Rotated(p.clone())
        } else {
            Sink::File(p.clone())
        }
    };
    let stdout = match &task.stdout {
        OutputTarget::JobLog => Sink::JobLog,
        OutputTarget::File(p) => file(p),
    };
    let stderr = match (&task.stdout, &task.stderr) {
        (_, StderrTarget::Combined) => Stderr::Combined,
        // stderr into the same file as stdout is the same as combined.
        (OutputTarget::File(a), StderrTarget::File(b)) if a == b => Stderr::Combined,
        (_, StderrTarget::File(p)) => Stderr::Own(file(p)),
        (_, StderrTarget::JobLog) => Stderr::Own(Sink::JobLog),
    };
    (stdout, stderr)
}

#[cfg(test)]
mod tests;
