//! Starting, signalling and reaping task processes.
//!
//! Owns everything that touches a child at the OS level: fork/exec with its own session and
//! process group (setsid), stdin on /dev/null, working directory, environment,
//! PR_SET_PDEATHSIG, an empty signal mask; the output pipes (one when stderr is combined);
//! group signals; and reaping with resource usage. What one start runs (command line,
//! environment, output sinks, identity, launcher) is decided without I/O in `plan`
//! ([`LaunchPlan`]); [`spawn`] carries a plan out. It knows nothing about schedules or
//! policies: the core decides, the runtime calls in here.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::model::{ExitStatus, Usage};

mod fast;
mod plan;
use crate::spec::{CommandSpec, OutputTarget, StderrTarget, TaskSpec};
pub use plan::{
    Binding, Identity, LaunchPlan, Launcher, Own, Sink, Stderr as StderrSink, ThreadPlan,
};

/// A started process and the read ends of its output pipes.
#[derive(Debug)]
pub struct Child {
    /// Pid, which is also the process group id (the child called setsid).
    pub pid: u32,
    /// Pipe carrying stdout (and stderr when combined into the job log).
    pub stdout: Option<OwnedFd>,
    /// Pipe carrying stderr when it goes to the job log separately.
    pub stderr: Option<OwnedFd>,
    /// The stdout pipe's data goes to this rotating file instead of the job log.
    pub stdout_file: Option<PathBuf>,
    /// The stderr pipe's data goes to this rotating file instead of the job log.
    pub stderr_file: Option<PathBuf>,
}

/// `task` as the start at `at` runs it: what its config left pending settled now (an
/// unknown user looked up, a missing environment-file read: `Pending`), and the strftime
/// patterns of its output file paths expanded at `at`, local time (`out-%Y-%m-%d.log`).
/// The task itself is borrowed unchanged when there is nothing to settle. An error says
/// what is missing, worded for the job log; the start then fails like any failed start.
pub fn prepare<'t>(
    task: &'t TaskSpec,
    at: &chrono::DateTime<chrono::Local>,
) -> Result<Cow<'t, TaskSpec>, SpawnError> {
    let dated = |p: &PathBuf| p.to_str().is_some_and(|s| s.contains('%'));
    let has_dates = matches!(&task.stdout, OutputTarget::File(p) if dated(p))
        || matches!(&task.stderr, StderrTarget::File(p) if dated(p));
    if task.pending.is_empty() && !has_dates {
        return Ok(Cow::Borrowed(task));
    }
    let mut t = task.clone();
    if let Some(name) = &task.pending.user {
        t.user = Some(crate::config::start_user(name).map_err(SpawnError::User)?);
        t.pending.user = None;
    }
    if let (true, Some(path)) = (task.pending.environment_file, &task.environment_file) {
        // The file's variables first, `env` (all that `t.env` holds so far) over them.
        let mut env: std::collections::BTreeMap<_, _> = crate::config::start_environment_file(path)
            .map_err(SpawnError::EnvironmentFile)?
            .into_iter()
            .collect();
        env.append(&mut t.env);
        t.env = env;
        t.pending.environment_file = false;
    }
    let date = |p: &PathBuf, field: &'static str| {
        crate::spec::dated_path(p, at).map_err(|error| SpawnError::OutputPath { field, error })
    };
    if let OutputTarget::File(p) = &task.stdout {
        t.stdout = OutputTarget::File(date(p, "stdout")?);
    }
    if let StderrTarget::File(p) = &task.stderr {
        t.stderr = StderrTarget::File(date(p, "stderr")?);
    }
    Ok(Cow::Owned(t))
}

/// Start one process for `task` (as [`prepare`] left it), bound to its grant when it has
/// one (issue 17: [`LaunchPlan::bound`]).
pub fn spawn(task: &TaskSpec, attempt: u32, binding: Option<Binding>) -> Result<Child, SpawnError> {
    let plan = LaunchPlan::new(task, attempt, &own(task)).bound(task, binding);
    launch(&plan).map_err(|e| match e {
        Failed::Set(e) => e,
        Failed::Start(e) => start_error(task, &plan, e),
    })
}

/// The plan [`spawn`] carries out for `task` (as [`prepare`] left it): what a remote run's
/// start frame is made of (issue 18), bound to the grant of its node.
pub fn launch_plan(task: &TaskSpec, attempt: u32, binding: Option<Binding>) -> LaunchPlan {
    LaunchPlan::new(task, attempt, &own(task)).bound(task, binding)
}

/// Why a start failed. `Display` is worded for the job log (the reason of a failed start).
#[derive(Debug)]
pub enum SpawnError {
    /// The task's `user`, looked up now, cannot be run as.
    User(crate::config::StartUserError),
    /// The task's environment-file, read now, cannot be used.
    EnvironmentFile(crate::config::EnvFileStartError),
    /// An output path's strftime patterns: the field (`stdout`, `stderr`), and why.
    OutputPath {
        /// `stdout` or `stderr`.
        field: &'static str,
        /// Why.
        error: crate::spec::DatedPathError,
    },
    /// The working directory: which, and what is wrong with it.
    WorkingDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        problem: DirProblem,
    },
    /// An output file cannot be opened: for what (`stdout`, `stderr`), which, why.
    OpenOutput {
        /// `stdout` or `stderr`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file descriptor could not be duplicated (stderr combined with stdout).
    DupFd(io::Error),
    /// An output pipe could not be created.
    Pipe(io::Error),
    /// An srun task, and `srun` is not in PATH.
    SrunNotFound,
    /// The program (argv's first word) is not found.
    CommandNotFound(String),
    /// A Python task, and its interpreter is not found.
    PythonNotFound(String),
    /// The program (argv's first word) is not executable.
    NotExecutable(String),
    /// Permission denied to a task that sets a negative priority or a user.
    NeedsRoot {
        /// The launcher's error.
        source: io::Error,
        /// The task's priority.
        priority: i32,
        /// The task's user, if any.
        user: Option<String>,
    },
    /// The grant's CPUs cannot be made into an affinity mask (a CPU number beyond the
    /// kernel's set size).
    Affinity {
        /// The CPU list.
        cpus: String,
        /// Why.
        source: io::Error,
    },
    /// Any other failure of the launcher.
    Start(io::Error),
}

/// What is wrong with a working directory.
#[derive(Debug)]
pub enum DirProblem {
    /// It exists and is no directory.
    NotADirectory,
    /// It does not exist.
    Missing,
    /// Anything else (permission denied, say).
    Unusable(io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::User(e) => write!(f, "{e}"),
            SpawnError::EnvironmentFile(e) => write!(f, "{e}"),
            SpawnError::OutputPath { field, error } => write!(f, "`{field}`: {error}"),
            SpawnError::WorkingDirectory { dir, problem } => {
                let dir = dir.display();
                match problem {
                    DirProblem::NotADirectory => {
                        write!(f, "working directory {dir} is not a directory")
                    }
                    DirProblem::Missing => write!(f, "working directory {dir} does not exist"),
                    DirProblem::Unusable(e) => write!(
                        f,
                        "working directory {dir} is not usable: {}",
                        io_reason(e)
                    ),
                }
            }
            SpawnError::OpenOutput { what, path, source } => write!(
                f,
                "cannot open {what} file {}: {}",
                path.display(),
                io_reason(source)
            ),
            SpawnError::DupFd(e) => write!(f, "cannot duplicate a file descriptor: {e}"),
            SpawnError::Pipe(e) => write!(f, "cannot create an output pipe: {e}"),
            SpawnError::SrunNotFound => f.write_str(
                "srun task: `srun` not found in PATH (is this a SLURM node? load Slurm's module first)",
            ),
            SpawnError::CommandNotFound(program) => write!(
                f,
                "command not found: `{program}` (check its spelling, its path and PATH)"
            ),
            SpawnError::PythonNotFound(interpreter) => write!(
                f,
                "Python interpreter not found: `{interpreter}` (Python tasks need python3 on PATH, or {} set to an interpreter)",
                crate::python::INTERPRETER_VAR
            ),
            SpawnError::NotExecutable(program) => {
                write!(f, "`{program}` is not executable (check its permissions)")
            }
            SpawnError::NeedsRoot {
                source,
                priority,
                user,
            } => write!(
                f,
                "cannot start the process: {} (setting priority {priority} or user {} needs root)",
                io_reason(source),
                user.as_deref().unwrap_or("-")
            ),
            SpawnError::Affinity { cpus, source } => {
                write!(f, "cannot bind the process to CPUs {cpus}: {source}")
            }
            SpawnError::Start(e) => write!(f, "cannot start the process: {}", io_reason(e)),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::User(e) => Some(e),
            SpawnError::EnvironmentFile(e) => Some(e),
            SpawnError::OutputPath { error, .. } => Some(error),
            SpawnError::WorkingDirectory {
                problem: DirProblem::Unusable(e),
                ..
            } => Some(e),
            SpawnError::OpenOutput { source: e, .. }
            | SpawnError::DupFd(e)
            | SpawnError::Pipe(e)
            | SpawnError::NeedsRoot { source: e, .. }
            | SpawnError::Affinity { source: e, .. }
            | SpawnError::Start(e) => Some(e),
            _ => None,
        }
    }
}

/// What `task`'s plan needs to know of bansuri's own process.
fn own(task: &TaskSpec) -> Own {
    Own {
        exe: task
            .srun
            .as_ref()
            .and_then(|_| std::env::current_exe().ok()),
        python_unbuffered: std::env::var_os("PYTHONUNBUFFERED").is_some(),
        python: match task.command {
            CommandSpec::Python(_) => std::env::var_os(crate::python::INTERPRETER_VAR),
            _ => None,
        },
    }
}

/// Why a plan was not carried out.
enum Failed {
    /// Setting up failed (working directory, output files, pipes).
    Set(SpawnError),
    /// The launcher failed (the program not found, not executable, a denied step).
    Start(io::Error),
}

/// Carry out `plan`: check its working directory, open its output, start the child.
fn launch(plan: &LaunchPlan) -> Result<Child, Failed> {
    check_dir(&plan.cwd).map_err(Failed::Set)?;
    // The kernel's mask is built here: the child only makes the system call.
    let mask = plan
        .cpus
        .as_ref()
        .map(|cpus| {
            crate::resources::affinity_mask(cpus).map_err(|e| {
                Failed::Set(SpawnError::Affinity {
                    cpus: cpus.to_string(),
                    source: e.into(),
                })
            })
        })
        .transpose()?;
    let (out, err, mut child) = open_stdio(plan).map_err(Failed::Set)?;
    let mut cmd = Command::new(&plan.program);
    cmd.args(&plan.args)
        .current_dir(&plan.cwd)
        .envs(&plan.env)
        .stdin(Stdio::null());
    let started = match plan.launcher {
        // The fast path: the child shares bansuri's memory until it execs (no page tables
        // copied, no copy-on-write faults in bansuri afterwards).
        Launcher::Fast => fast::spawn(
            &cmd,
            &fast::Setup {
                stdout: &out,
                stderr: &err,
                umask: plan.umask,
                priority: plan.priority,
                cpus: mask.as_ref(),
            },
        ),
        Launcher::Fork => {
            cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
            let id = plan.identity.as_ref();
            fork_spawn(&mut cmd, plan.umask, plan.priority, id, mask)
        }
    };
    child.pid = started.map_err(Failed::Start)?;
    Ok(child)
}

/// A working directory that is not one fails the start, saying why.
fn check_dir(dir: &Path) -> Result<(), SpawnError> {
    let problem = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => DirProblem::NotADirectory,
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirProblem::Missing,
        Err(e) => DirProblem::Unusable(e),
    };
    Err(SpawnError::WorkingDirectory {
        dir: dir.to_path_buf(),
        problem,
    })
}

/// The child's stdout and stderr (the same file description when combined), and the
/// [`Child`] (pid still 0) with the read ends bansuri keeps.
fn open_stdio(plan: &LaunchPlan) -> Result<(OwnedFd, OwnedFd, Child), SpawnError> {
    let mut child = Child {
        pid: 0,
        stdout: None,
        stderr: None,
        stdout_file: None,
        stderr_file: None,
    };
    let (out, read, file) = open_sink(&plan.stdout, "stdout")?;
    (child.stdout, child.stdout_file) = (read, file);
    let err = match &plan.stderr {
        plan::Stderr::Combined => out.try_clone().map_err(SpawnError::DupFd)?,
        plan::Stderr::Own(sink) => {
            let (err, read, file) = open_sink(sink, "stderr")?;
            (child.stderr, child.stderr_file) = (read, file);
            err
        }
    };
    Ok((out, err, child))
}

/// The child's end of `sink`, the read end of its pipe and the rotated file it feeds.
#[allow(clippy::type_complexity)]
fn open_sink(
    sink: &Sink,
    what: &'static str,
) -> Result<(OwnedFd, Option<OwnedFd>, Option<PathBuf>), SpawnError> {
    let pipe = || pipe().map_err(SpawnError::Pipe);
    match sink {
        Sink::File(p) => Ok((open_append(p, what)?.into(), None, None)),
        Sink::JobLog => {
            let (r, w) = pipe()?;
            Ok((w, Some(r), None))
        }
        Sink::Rotated(p) => {
            // Fail now, with the reason, rather than later in the runtime.
            open_append(p, what)?;
            let (r, w) = pipe()?;
            Ok((w, Some(r), Some(p.clone())))
        }
    }
}

/// A failed launch of `plan` (for `task`): what it means for this kind of task.
fn start_error(task: &TaskSpec, plan: &LaunchPlan, e: io::Error) -> SpawnError {
    match (&task.command, e.kind()) {
        _ if task.srun.is_some() && e.kind() == io::ErrorKind::NotFound => SpawnError::SrunNotFound,
        (CommandSpec::Argv(argv), io::ErrorKind::NotFound) => {
            SpawnError::CommandNotFound(argv[0].clone())
        }
        (CommandSpec::Python(_), io::ErrorKind::NotFound) => {
            SpawnError::PythonNotFound(plan.program.to_string_lossy().into_owned())
        }
        (CommandSpec::Argv(argv), io::ErrorKind::PermissionDenied) => {
            SpawnError::NotExecutable(argv[0].clone())
        }
        (_, io::ErrorKind::PermissionDenied) if task.priority < 0 || task.user.is_some() => {
            SpawnError::NeedsRoot {
                source: e,
                priority: task.priority,
                user: task.user.as_ref().map(|u| u.name.clone()),
            }
        }
        _ => SpawnError::Start(e),
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

fn open_append(path: &Path, what: &'static str) -> Result<File, SpawnError> {
    crate::rotate::open_append(path).map_err(|source| SpawnError::OpenOutput {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// A pipe with both ends close-on-exec; the read end non-blocking (for the event loop).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    set_nonblocking(&r)?;
    Ok((r, w))
}

/// Put `fd` in non-blocking mode.
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Send `signal` to the process group `pgid`. A group that is already gone is not an error.
pub fn signal_group(pgid: u32, signal: i32) -> io::Result<()> {
    if pgid <= 1 {
        // Never signal our own group or every process (kill(0)/kill(-1)).
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing pgid <= 1",
        ));
    }
    // SAFETY: kill takes no pointers; a negative pid addresses the process group. Not
    // nix's killpg: its `Signal` has no real-time signals, and this takes any number.
    let rc = unsafe { libc::kill(-(pgid as i32), signal) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

/// Does process group `pgid` still have a member (zombies included)?
pub fn group_alive(pgid: u32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // No signal: only checks for existence and permission.
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid as i32), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// A child that has exited and been reaped.
#[derive(Debug, Clone, Copy)]
pub struct Reaped {
    /// Its pid.
    pub pid: u32,
    /// How it ended.
    pub status: ExitStatus,
    /// Its CPU time and peak RSS.
    pub usage: Usage,
}

/// The pid of one exited child, without reaping it. `None` when no child has exited.
pub fn exited_child() -> Option<u32> {
    // SAFETY: waitid writes into the zeroed siginfo we own. Not nix's waitid: it fails
    // (EINVAL) for a child killed by a real-time signal, which its `Signal` cannot name,
    // and that child would never be reaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if rc < 0 {
            return None; // ECHILD: no children at all
        }
        let pid = info.si_pid();
        if pid == 0 {
            None
        } else {
            Some(pid as u32)
        }
    }
}

/// Reap `pid` (which has exited) and return its status and resource usage.
pub fn reap(pid: u32) -> Option<Reaped> {
    // SAFETY: wait4 writes into the zeroed status and rusage we own (nix has no wait4:
    // its waitpid gives no resource usage).
    unsafe {
        let mut status: libc::c_int = 0;
        let mut ru: libc::rusage = std::mem::zeroed();
        let rc = libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut ru);
        if rc <= 0 {
            return None;
        }
        let status = if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(Reaped {
            pid,
            status,
            usage: Usage {
                cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
                max_rss: (ru.ru_maxrss.max(0) as u64) * 1024,
            },
        })
    }
}

/// Make bansuri the reaper of orphaned descendants (double-forked daemons), so they are
/// reaped here instead of by init and never linger as zombies of ours.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    Ok(())
}

/// Start `cmd` with fork and exec (std's `Command`): for tasks that switch to another
/// user, whose set-up (setgroups, setgid, setuid) is kept out of the shared-memory child.
fn fork_spawn(
    cmd: &mut Command,
    umask: Option<u32>,
    priority: i32,
    identity: Option<&Identity>,
    cpus: Option<nix::sched::CpuSet>,
) -> io::Result<u32> {
    use nix::unistd::{Gid, Uid};
    // Built before the fork: the child must not allocate.
    let identity = identity.map(|i| {
        let groups: Vec<Gid> = i
            .groups
            .iter()
            .map(|g| Gid::from_raw(*g as libc::gid_t))
            .collect();
        (Uid::from_raw(i.uid), Gid::from_raw(i.gid), groups)
    });
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setsid, prctl, sigprocmask, getppid, _exit, umask,
    // setpriority, sched_setaffinity, setgroups, setgid, setuid: nix's wrappers do not
    // allocate); the group list and the CPU mask were built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            child_setup(parent)?;
            if let Some(mask) = &cpus {
                crate::resources::apply_mask(mask)?;
            }
            if let Some(mask) = umask {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
            }
            if priority != 0 {
                // Before dropping privileges: only root may raise a priority (nice < 0).
                // (nix has no setpriority.)
                if libc::setpriority(libc::PRIO_PROCESS, 0, priority) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some((uid, gid, groups)) = &identity {
                // Groups first, then the gid, then the uid: after setuid we could not.
                nix::unistd::setgroups(groups)?;
                nix::unistd::setgid(*gid)?;
                nix::unistd::setuid(*uid)?;
            }
            Ok(())
        });
    }
    // The runtime reaps by pid (waitid/wait4); std's handle is not needed.
    cmd.spawn().map(|child| child.id())
}

/// Give `cmd` what every child of bansuri gets before exec (used for processes other than
/// tasks, such as `notify_command`): its own session and process group, death with
/// bansuri (PR_SET_PDEATHSIG), an empty signal mask. Same steps as in [`spawn`].
pub fn detach(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setsid, prctl, sigprocmask, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || child_setup(parent));
    }
}

/// In a forked child, before exec: what every child of bansuri gets.
///
/// # Safety
/// Call only between fork and exec; it uses async-signal-safe calls only (nix's wrappers
/// of them, which do not allocate, and `_exit`).
unsafe fn child_setup(parent: nix::unistd::Pid) -> io::Result<()> {
    use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    // Own session and process group: signals to the group reach the whole run and
    // nothing else; a terminal's Ctrl+C does not reach children directly.
    nix::unistd::setsid()?;
    // Die with bansuri if it is SIGKILLed (no orphan keeps running).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // bansuri died between fork and prctl: PDEATHSIG will never fire.
    if nix::unistd::getppid() != parent {
        // SAFETY: _exit ends this forked child at once, running nothing of the parent's
        // (nix has no _exit; std's exit would run atexit handlers).
        unsafe { libc::_exit(1) };
    }
    // Signals ignored by whoever started bansuri (`nohup`, `cmd &` in a script ignores
    // SIGINT and SIGQUIT) stay ignored across exec, and a shell cannot even trap a signal
    // it was started with ignored: reset every disposition, so that `stopsignal: INT`
    // works however bansuri was launched. (Every signal from 1 to 31 has a `Signal`.)
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler.
            let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
        }
    }
    // bansuri blocks the signals it reads through signalfd; a child must not inherit that
    // mask, or it could not be stopped with SIGTERM.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod process_tests {
    use super::*;
    use nix::sys::signal::{pthread_sigmask, SigHandler, SigSet, SigmaskHow, Signal};

    /// A hex mask line (`SigBlk:`, `SigIgn:`) of a /proc status text.
    fn mask(status: &str, key: &str) -> u64 {
        let line = status.lines().find_map(|l| l.strip_prefix(key));
        let hex = line
            .unwrap_or_else(|| panic!("no {key} in {status}"))
            .trim();
        u64::from_str_radix(hex, 16).expect("hex mask")
    }

    #[test]
    fn a_detached_child_has_its_own_session_no_blocked_and_no_ignored_signals() {
        // What a child must not inherit: a blocked signal (this thread's mask, as the
        // loop's signalfd mask) and an ignored one (as under `nohup`). SIGUSR2 is ignored
        // in this whole test binary from here on, which no test sends.
        let mut block = SigSet::empty();
        block.add(Signal::SIGUSR1);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&block), None).expect("block");
        // SAFETY: ignoring a signal installs no handler.
        unsafe { nix::sys::signal::signal(Signal::SIGUSR2, SigHandler::SigIgn) }.expect("ignore");
        // `cat` reads its own status and stat, as exec'd from the detached child.
        let mut cmd = Command::new("cat");
        cmd.args(["/proc/self/status", "/proc/self/stat"])
            .stdout(Stdio::piped());
        detach(&mut cmd);
        let out = cmd.output();
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&block), None).expect("unblock");
        let out = out.expect("cat runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(mask(&text, "SigBlk:"), 0, "{text}");
        // Signals 1 to 31 (above them, the C library's own).
        assert_eq!(mask(&text, "SigIgn:") & 0x7fff_ffff, 0, "{text}");
        // Its own session: after the command name, state ppid pgrp session.
        let stat = text.lines().last().unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let pid: u32 = stat
            .split(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .expect("pid");
        assert_eq!(
            fields.get(3).copied(),
            Some(pid.to_string().as_str()),
            "{stat}"
        );
    }

    #[test]
    fn nonblocking_pipes_and_group_liveness() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        set_nonblocking(&r).expect("set");
        assert_eq!(
            nix::unistd::read(&r, &mut [0u8; 8]),
            Err(nix::errno::Errno::EAGAIN),
            "an empty non-blocking pipe does not wait"
        );
        drop(w);

        assert!(
            !group_alive(0) && !group_alive(1),
            "never our group or init's"
        );
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        let g = child.id();
        assert!(group_alive(g));
        signal_group(g, libc::SIGKILL).expect("kill");
        let _ = child.wait();
        assert!(!group_alive(g), "a reaped group is gone");
        signal_group(g, libc::SIGTERM).expect("a gone group is not an error");
    }
}
