//! The runtime's errors, as types: what failed, the path or call, and the OS error as the
//! source. Their `Display` is the text bansuri has always printed.
//!
//! Owns: [`RuntimeError`] (bansuri cannot run: exit code 1), [`StartError`] (one attempt
//! of an in-process task cannot start: the core hears it as a failed spawn),
//! [`NotifierFailure`] (a registered notifier's report). Must not: decide exit codes or
//! log (the caller does).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Errors that stop bansuri before or while running (exit code 1).
#[derive(Debug)]
pub enum RuntimeError {
    /// The job log file (`log_file`) cannot be opened.
    JobLog {
        /// The file, `{job_id}` expanded.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// bansuri's stdout cannot be taken as the job log.
    Stdout(io::Error),
    /// The guardian process (which cleans up if bansuri is killed) cannot start.
    Guardian(io::Error),
    /// A system call the event loop needs failed: which (the words of the message), and why.
    Sys {
        /// What was being done (`cannot create epoll`, `epoll_wait failed`, ...).
        what: &'static str,
        /// Why.
        source: nix::Error,
    },
    /// The state directory (or its parent) is not bansuri's alone: why.
    UntrustedStateDir(String),
    /// What the node has cannot be told, and the config asks for resources (issue 17).
    Resources(super::resources::ResourcesError),
    /// Another live bansuri uses the state directory.
    StateDirInUse {
        /// The other bansuri's pid.
        pid: u32,
        /// The state directory.
        dir: PathBuf,
    },
}

impl RuntimeError {
    /// A failed system call, as a `map_err` argument.
    pub(super) fn sys(what: &'static str) -> impl Fn(nix::Error) -> RuntimeError {
        move |source| RuntimeError::Sys { what, source }
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::JobLog { path, source } => {
                write!(f, "cannot open log file {}: {source}", path.display())
            }
            RuntimeError::Stdout(e) => write!(f, "cannot use stdout as the job log: {e}"),
            RuntimeError::Guardian(e) => write!(f, "cannot start the guardian process: {e}"),
            RuntimeError::Sys { what, source } => write!(f, "{what}: {source}"),
            RuntimeError::UntrustedStateDir(why) => write!(f, "refusing to start: {why}"),
            RuntimeError::Resources(e) => write!(f, "{e}"),
            RuntimeError::StateDirInUse { pid, dir } => write!(
                f,
                "another bansuri (pid {pid}) is running with the state directory {}; stop it first, or give this config its own `state_dir`",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::JobLog { source, .. } => Some(source),
            RuntimeError::Stdout(e) | RuntimeError::Guardian(e) => Some(e),
            RuntimeError::Sys { source, .. } => Some(source),
            RuntimeError::Resources(e) => Some(e),
            RuntimeError::UntrustedStateDir(_) | RuntimeError::StateDirInUse { .. } => None,
        }
    }
}

/// Why an attempt could not start (the core hears it as a failed spawn, in these words).
#[derive(Debug)]
pub(super) enum StartError {
    /// Settling the task's pending settings failed (`spawn::prepare`'s words).
    Prepare(crate::spawn::SpawnError),
    /// An `srun` task outside a SLURM job.
    SrunOutsideSlurm,
    /// The process could not be started (`spawn::spawn`'s words).
    Spawn(crate::spawn::SpawnError),
    /// No task of this name is registered.
    NotRegistered(String),
    /// An output pipe could not be created.
    Pipe(nix::Error),
    /// An output pipe could not be made non-blocking.
    PipeSetup(io::Error),
    /// The `stdout` or `stderr` file could not be opened.
    OpenOutput {
        stream: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// stdout could not be duplicated for a combined stderr.
    Duplicate(io::Error),
    /// The loop cannot watch an output pipe.
    Watch(io::Error),
    /// The task's factory panicked: the task's name, the panic's text.
    FactoryPanicked { kind: String, panic: String },
    /// The worker thread could not start.
    Thread(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Prepare(why) | StartError::Spawn(why) => why.fmt(f),
            StartError::SrunOutsideSlurm => f.write_str(crate::slurm::SRUN_OUTSIDE_SLURM),
            StartError::NotRegistered(kind) => write!(
                f,
                "no in-process task named `{kind}` is registered in this program"
            ),
            StartError::Pipe(e) => write!(f, "cannot create an output pipe: {e}"),
            StartError::PipeSetup(e) => write!(f, "cannot set up an output pipe: {e}"),
            StartError::OpenOutput {
                stream,
                path,
                source,
            } => write!(f, "cannot open {stream} file {}: {source}", path.display()),
            StartError::Duplicate(e) => write!(f, "cannot duplicate the output: {e}"),
            StartError::Watch(e) => write!(f, "cannot watch the output: {e}"),
            StartError::FactoryPanicked { kind, panic } => {
                write!(f, "the factory of `{kind}` panicked: {panic}")
            }
            StartError::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Pipe(e) => Some(e),
            StartError::OpenOutput { source, .. } => Some(source),
            StartError::PipeSetup(e)
            | StartError::Duplicate(e)
            | StartError::Watch(e)
            | StartError::Thread(e) => Some(e),
            StartError::Prepare(_)
            | StartError::SrunOutsideSlurm
            | StartError::Spawn(_)
            | StartError::NotRegistered(_)
            | StartError::FactoryPanicked { .. } => None,
        }
    }
}

/// How a registered notifier failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NotifierFailure {
    /// `Notifier::notify` returned this error.
    Returned(String),
    /// It panicked with this text.
    Panicked(String),
}

impl fmt::Display for NotifierFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifierFailure::Returned(e) => f.write_str(e),
            NotifierFailure::Panicked(p) => write!(f, "it panicked: {p}"),
        }
    }
}

impl std::error::Error for NotifierFailure {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    fn enoent() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOENT)
    }

    #[test]
    fn runtime_errors_say_what_failed_in_the_words_of_before_with_the_cause_as_source() {
        let e = RuntimeError::JobLog {
            path: "/x/job.log".into(),
            source: enoent(),
        };
        assert_eq!(
            e.to_string(),
            format!("cannot open log file /x/job.log: {}", enoent())
        );
        assert!(e.source().is_some());
        let e = RuntimeError::sys("cannot create epoll")(nix::Error::EMFILE);
        assert_eq!(
            e.to_string(),
            format!("cannot create epoll: {}", nix::Error::EMFILE)
        );
        assert!(e.source().is_some());
        let e = RuntimeError::StateDirInUse {
            pid: 42,
            dir: "/s".into(),
        };
        assert_eq!(
            e.to_string(),
            "another bansuri (pid 42) is running with the state directory /s; stop it first, or give this config its own `state_dir`"
        );
        assert_eq!(
            RuntimeError::UntrustedStateDir("it is writable by others".into()).to_string(),
            "refusing to start: it is writable by others"
        );
    }

    #[test]
    fn start_errors_and_notifier_failures_keep_their_words() {
        let e = StartError::OpenOutput {
            stream: "stderr",
            path: "/o/e.log".into(),
            source: enoent(),
        };
        assert_eq!(
            e.to_string(),
            format!("cannot open stderr file /o/e.log: {}", enoent())
        );
        assert_eq!(
            StartError::NotRegistered("Echo".into()).to_string(),
            "no in-process task named `Echo` is registered in this program"
        );
        assert_eq!(
            StartError::Pipe(nix::Error::EMFILE).to_string(),
            format!("cannot create an output pipe: {}", nix::Error::EMFILE)
        );
        assert_eq!(
            StartError::PipeSetup(enoent()).to_string(),
            format!("cannot set up an output pipe: {}", enoent())
        );
        assert_eq!(
            NotifierFailure::Panicked("boom".into()).to_string(),
            "it panicked: boom"
        );
        assert_eq!(
            NotifierFailure::Returned("smtp down".into()).to_string(),
            "smtp down"
        );
    }
}
