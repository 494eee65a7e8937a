//! Notifications: what is told when a run ends ([`Notice`]), its message in the Bansuri
//! manual's format, the placeholders and environment of `notify_command`, the bounded
//! output tail a notice quotes ([`Tail`]), and the [`Notifier`] trait of the library API.
//!
//! It owns the facts and the text. It must not decide *when* to notify (the core does,
//! with `Action::Notify`), nor wait for a notifier: the runtime starts the command through
//! [`spawn_command`] and watches it in its event loop beside the tasks, with a timeout.
//!
//! # Placeholders cannot inject shell syntax
//! `{task}`, `{code}`, `{attempt}`, `{host}`, `{job_id}` (and `{event}`, `{result}`,
//! `{command}`, `{workdir}`, `{description}`, `{timestamp}`) in `notify_command` are not
//! replaced by their values: each becomes a quoted reference to the environment variable
//! that holds the value (`{task}` becomes `"${BANSURI_TASK}"`). The shell expands it as one
//! word and never parses an expanded value as syntax, so a description holding
//! `$(touch pwned)` or `'; touch pwned; '` reaches the notifier as those characters. The
//! form of the reference follows the quoting around the placeholder: `"${V}"` outside
//! quotes, `${V}` inside double quotes, `'"${V}"'` inside single quotes. The command text
//! run is a function of the template alone ([`expand_command`]), whatever the task says.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};

use crate::model::ProcessEnd;
use crate::spec::NotifyEvent;
use crate::text::{fmt_dur, fmt_wall, signal_name};

/// Bytes of a run's stdout (and of its stderr) kept for a notice.
pub const TAIL_BYTES: usize = 8 * 1024;
/// Lines of each stream quoted in a notice.
pub const TAIL_LINES: usize = 20;

/// The last bytes written to one stream of one run: bounded memory, whatever the volume.
#[derive(Debug, Clone)]
pub struct Tail {
    buf: Vec<u8>,
    cap: usize,
    /// Bytes were dropped at the front: the first line kept may be partial.
    cut: bool,
}

impl Tail {
    /// An empty tail that keeps at most `cap` bytes (at least 1).
    pub fn new(cap: usize) -> Tail {
        Tail {
            buf: Vec::new(),
            cap: cap.max(1),
            cut: false,
        }
    }

    /// Append `data`, dropping the oldest bytes beyond the cap. Amortized: the buffer is
    /// trimmed only when it holds twice the cap.
    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.cut |= !self.buf.is_empty() || data.len() > self.cap;
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            let drop = self.buf.len() - self.cap;
            self.buf.drain(..drop);
            self.cut = true;
        }
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The last `n` complete lines (a last line without a newline counts), as text
    /// (invalid UTF-8 replaced), without the trailing newline.
    pub fn last_lines(&self, n: usize) -> String {
        let mut bytes = &self.buf[self.buf.len().saturating_sub(self.cap)..];
        let cut = self.cut || self.buf.len() > self.cap;
        if cut {
            // The first line lost its beginning: drop it, unless it is all there is.
            if let Some(p) = memchr::memchr(b'\n', bytes) {
                bytes = &bytes[p + 1..];
            }
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let lines: Vec<&str> = text.split('\n').collect();
        let from = lines.len().saturating_sub(n);
        lines[from..]
            .iter()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The tail of what was appended to `path` since it was `from` bytes long (its size when
/// the run started), at most `cap` bytes. A file that shrank meanwhile (rotated,
/// truncated) gives its last `cap` bytes.
pub fn file_tail(path: &Path, from: u64, cap: usize) -> io::Result<Tail> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let from = if len < from { 0 } else { from };
    let start = from.max(len.saturating_sub(cap as u64));
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.take(cap as u64).read_to_end(&mut buf)?;
    let mut t = Tail::new(cap);
    t.push(&buf);
    t.cut = start > from;
    Ok(t)
}

/// Where a run's stderr went, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrKind {
    /// Its own stream: [`Notice::stderr`] holds its tail.
    Separate,
    /// Combined with stdout (`stderr: "combined"`): both are in [`Notice::stdout`].
    Combined,
}

/// What a notifier is told: how one run of a task ended. The fields of the Bansuri
/// manual's `FailureInfo`, plus the host and job. Also used for successes and recoveries
/// (`notify-on`), then with [`Notice::event`] saying which.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Failure, success or recovery.
    pub event: NotifyEvent,
    /// The task's name.
    pub task: String,
    /// Its command as configured (for an in-process task: the registered name).
    pub command: String,
    /// Its working directory.
    pub working_directory: PathBuf,
    /// Its `description` (may be empty).
    pub description: String,
    /// How the last attempt ended.
    pub end: ProcessEnd,
    /// That attempt's number, from 1.
    pub attempt: u32,
    /// Attempts the run was allowed (`times` with `on-fail: restart`, else 1).
    pub attempts: u32,
    /// When the run ended.
    pub time: DateTime<Utc>,
    /// The machine bansuri runs on.
    pub host: String,
    /// `$SLURM_JOB_ID`, or `local` outside SLURM.
    pub job_id: String,
    /// The last lines the attempt wrote on stdout (and stderr, when combined).
    pub stdout: String,
    /// The last lines the attempt wrote on stderr, when separate.
    pub stderr: String,
    /// Where stderr went.
    pub stderr_kind: StderrKind,
}

/// The placeholders of `notify_command` and the variables that hold their values.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("task", "BANSURI_TASK"),
    ("code", "BANSURI_CODE"),
    ("attempt", "BANSURI_ATTEMPT"),
    ("host", "BANSURI_HOST"),
    ("job_id", "BANSURI_JOB_ID"),
    ("event", "BANSURI_EVENT"),
    ("result", "BANSURI_RESULT"),
    ("command", "BANSURI_COMMAND"),
    ("workdir", "BANSURI_WORKDIR"),
    ("description", "BANSURI_DESCRIPTION"),
    ("timestamp", "BANSURI_TIMESTAMP"),
];

impl Notice {
    /// The short result: the exit code (`1`), the signal (`SIGKILL`), `timeout`,
    /// `stopped`, `not-started`, or `node-lost`. This is `{code}` and `BANSURI_CODE`.
    pub fn code(&self) -> String {
        match &self.end {
            ProcessEnd::Exited(c) => c.to_string(),
            ProcessEnd::Signaled(s) => signal_name(*s),
            ProcessEnd::TimedOut(_) => "timeout".to_owned(),
            ProcessEnd::Stopped(_) => "stopped".to_owned(),
            ProcessEnd::SpawnFailed(_) => "not-started".to_owned(),
            ProcessEnd::Lost(_) => "node-lost".to_owned(),
        }
    }

    /// The result in words: `1`, `killed by SIGKILL`, `timed out after 30s`,
    /// `failed to start: ...`. The message's "Return code" line, `BANSURI_RESULT`.
    pub fn result(&self) -> String {
        match &self.end {
            ProcessEnd::Exited(c) => c.to_string(),
            ProcessEnd::Signaled(s) => format!("killed by {}", signal_name(*s)),
            ProcessEnd::TimedOut(d) => format!("timed out after {}", fmt_dur(*d)),
            ProcessEnd::Stopped(r) => format!("stopped ({})", r.words()),
            ProcessEnd::SpawnFailed(why) => format!("failed to start: {why}"),
            ProcessEnd::Lost(node) => format!("node {node} lost"),
        }
    }

    /// `2/3`: the attempt and the attempts allowed.
    pub fn attempt_text(&self) -> String {
        format!("{}/{}", self.attempt, self.attempts)
    }

    /// When the run ended, local time, `2026-01-19 14:30:45`.
    pub fn timestamp(&self) -> String {
        fmt_wall(self.time)
    }

    /// One line: `[bansuri] task 'backup' failed on node12 (job 4242)`.
    pub fn subject(&self) -> String {
        let what = match self.event {
            NotifyEvent::Failure => "failed".to_owned(),
            NotifyEvent::Success => "succeeded".to_owned(),
            NotifyEvent::Recovery => "recovered".to_owned(),
            NotifyEvent::Attempt => format!("failed (attempt {}, retrying)", self.attempt_text()),
        };
        format!(
            "[bansuri] task '{}' {what} on {} (job {})",
            self.task, self.host, self.job_id
        )
    }

    /// The full message, as written to `notify_command`'s stdin: the Bansuri manual's
    /// format (9.3.1) line for line, its labels and their alignment, plus a `Host:` line.
    pub fn message(&self) -> String {
        let (title, said) = match self.event {
            NotifyEvent::Failure => ("Task Failure", "has failed"),
            NotifyEvent::Success => ("Task Success", "has succeeded"),
            NotifyEvent::Recovery => ("Task Recovery", "has succeeded again after a failure"),
            // The manual's notice of a failed attempt: a failure, its Attempt line says
            // which ("1/3").
            NotifyEvent::Attempt => ("Task Failure", "has failed"),
        };
        let mut m = String::new();
        let _ = writeln!(m, "==== [Bansuri] {title} ====\n");
        let _ = writeln!(m, "Task '{}' {said}.\n", self.task);
        let _ = writeln!(m, "--- Task Details ---");
        // The manual's labels with its own spacing (the value columns are not all equal).
        let rows = [
            ("Name:          ", self.task.clone()),
            ("Command:       ", self.command.clone()),
            (
                "Working Directory: ",
                self.working_directory.display().to_string(),
            ),
            ("Return Code:    ", self.result()),
            ("Attempt:        ", self.attempt_text()),
            ("Timestamp:      ", self.timestamp()),
            ("Description:    ", self.description.clone()),
            (
                "Host:           ",
                format!("{} (job {})", self.host, self.job_id),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(m, "{k}{v}");
        }
        let _ = writeln!(m, "\n--- Output ---");
        m.push_str(&section(&self.stdout));
        let _ = writeln!(m, "\n--- Error ---");
        match self.stderr_kind {
            StderrKind::Separate => m.push_str(&section(&self.stderr)),
            StderrKind::Combined => {
                let _ = writeln!(m, "(stderr is combined with stdout: see the output above)");
            }
        }
        let _ = writeln!(
            m,
            "\n---\n\nThis is an automated message from Bansuri Orchestrator."
        );
        m
    }

    /// The notice for a Python notifier: the fields of the manual's `FailureInfo` (9.4.2),
    /// typed, plus `event`, `result`, `host`, `job_id` and the whole `message`.
    /// `return_code` is the exit code, minus the signal number for a run killed by a
    /// signal (as Python's subprocess reports it), -1 when there is no code (timeout,
    /// stop, failed start).
    pub fn to_json(&self) -> String {
        let return_code = match &self.end {
            ProcessEnd::Exited(c) => *c,
            ProcessEnd::Signaled(s) => -s,
            _ => -1,
        };
        serde_json::json!({
            "task_name": self.task,
            "command": self.command,
            "working_directory": self.working_directory.display().to_string(),
            "return_code": return_code,
            "attempt": self.attempt,
            "max_attempts": self.attempts,
            "timestamp": self
                .time
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            "description": self.description,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "event": self.event.word(),
            "result": self.result(),
            "host": self.host,
            "job_id": self.job_id,
            "message": self.message(),
        })
        .to_string()
    }

    /// The `BANSURI_*` variables of the notifier: the placeholders' values, plus the
    /// output tails (`BANSURI_STDOUT`, `BANSURI_STDERR`). NUL bytes are dropped (an
    /// environment cannot hold them).
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let values = [
            self.task.clone(),
            self.code(),
            self.attempt_text(),
            self.host.clone(),
            self.job_id.clone(),
            self.event.word().to_owned(),
            self.result(),
            self.command.clone(),
            self.working_directory.display().to_string(),
            self.description.clone(),
            self.timestamp(),
        ];
        let mut out: Vec<(&'static str, String)> = PLACEHOLDERS
            .iter()
            .zip(values)
            .map(|((_, var), v)| (*var, v))
            .collect();
        out.push(("BANSURI_STDOUT", self.stdout.clone()));
        out.push(("BANSURI_STDERR", self.stderr.clone()));
        for (_, v) in &mut out {
            v.retain(|c| c != '\0');
        }
        out
    }
}

fn section(text: &str) -> String {
    if text.is_empty() {
        "(nothing)\n".to_owned()
    } else {
        format!("{text}\n")
    }
}

/// `notify_command` with each placeholder replaced by a quoted reference to its
/// variable (see the module docs). Unknown `{words}` stay as they are (shell brace
/// groups, `awk '{print}'`).
///
/// The quoting around a placeholder is tracked through nesting: a command substitution
/// (`$(...)`, backquotes) starts a new unquoted context even inside double quotes, so
/// `"$(printf %s {task})"` gets `"${BANSURI_TASK}"` inside the `$(...)`, one word there too.
pub fn expand_command(template: &str) -> String {
    crate::text::shell::fill(template, |name| {
        PLACEHOLDERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, var)| crate::text::shell::Fill::Variable(var))
    })
}

/// A notifier of the library API: told about the end of a run when a task's `notify`
/// names it (and its `notify-on` lists the event). Registered by name with
/// [`crate::Builder::notifier`].
///
/// `notify` runs on a worker thread of its own, never on bansuri's event loop, so it may
/// block (an HTTP request, say). When it has not returned after `notify_timeout` it is
/// reported as timed out and its thread is left to finish on its own: Rust cannot kill a
/// thread, so a notifier should bound its own waits. An error is logged, nothing more.
pub trait Notifier: Send + Sync + 'static {
    /// Deliver `notice`. [`Notice::message`] is the text `notify_command` would get.
    fn notify(&self, notice: &Notice) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

impl<F> Notifier for F
where
    F: Fn(&Notice) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync + 'static,
{
    fn notify(&self, notice: &Notice) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self(notice)
    }
}

/// A started `notify_command` process.
#[derive(Debug)]
pub struct CommandChild {
    /// Its pid, also its process group id (own session).
    pub pid: u32,
    /// Read end (non-blocking) of the pipe holding its stdout and stderr.
    pub output: OwnedFd,
}

/// Why a notifier process could not be started. `Display` follows "Notifier failed: ".
#[derive(Debug)]
pub enum NotifierStartError {
    /// The message could not be put in a file for its stdin.
    Message(io::Error),
    /// The output pipe could not be created.
    Pipe(nix::Error),
    /// The output pipe could not be made non-blocking.
    PipeSetup(io::Error),
    /// The output pipe could not be duplicated (for stderr).
    PipeDup(io::Error),
    /// The program could not be started: which (`/bin/sh`, `python3`), and why.
    Start {
        /// The program, as named in the message.
        program: String,
        /// Why.
        source: io::Error,
    },
}

impl fmt::Display for NotifierStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifierStartError::Message(e) => write!(f, "cannot prepare the message: {e}"),
            NotifierStartError::Pipe(e) => write!(f, "cannot create a pipe: {e}"),
            NotifierStartError::PipeSetup(e) => write!(f, "cannot set up a pipe: {e}"),
            NotifierStartError::PipeDup(e) => write!(f, "cannot duplicate a pipe: {e}"),
            NotifierStartError::Start { program, source } => {
                write!(f, "cannot start {program}: {source}")
            }
        }
    }
}

impl std::error::Error for NotifierStartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NotifierStartError::Message(e)
            | NotifierStartError::PipeSetup(e)
            | NotifierStartError::PipeDup(e)
            | NotifierStartError::Start { source: e, .. } => Some(e),
            NotifierStartError::Pipe(e) => Some(e),
        }
    }
}

/// Start `notify_command` for `notice`: `/bin/sh -c` on the expanded template, in `dir`,
/// in a session of its own (PDEATHSIG, empty signal mask, as tasks), the message on stdin
/// (an in-memory file, so writing it never blocks), stdout and stderr into one pipe.
pub fn spawn_command(
    template: &str,
    notice: &Notice,
    dir: &Path,
) -> Result<CommandChild, NotifierStartError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(expand_command(template));
    spawn_notifier(cmd, notice, dir, "/bin/sh")
}

/// Start a notifier process `cmd` for `notice` as [`spawn_command`] does (`what` names the
/// program in an error).
pub fn spawn_notifier(
    mut cmd: Command,
    notice: &Notice,
    dir: &Path,
    what: &str,
) -> Result<CommandChild, NotifierStartError> {
    let stdin = message_file(&notice.message()).map_err(NotifierStartError::Message)?;
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(NotifierStartError::Pipe)?;
    crate::spawn::set_nonblocking(&r).map_err(NotifierStartError::PipeSetup)?;
    let w2 = w.try_clone().map_err(NotifierStartError::PipeDup)?;
    cmd.current_dir(dir)
        .envs(notice.vars())
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2));
    crate::spawn::detach(&mut cmd);
    let child = cmd.spawn().map_err(|source| NotifierStartError::Start {
        program: what.to_owned(),
        source,
    })?;
    let pid = child.id();
    // Reaped by the runtime (by pid), like tasks.
    drop(child);
    Ok(CommandChild { pid, output: r })
}

/// The message in a file positioned at its start: a memfd, or an unlinked temp file where
/// memfd_create is missing (old kernels).
fn message_file(text: &str) -> io::Result<File> {
    let mut f = match nix::sys::memfd::memfd_create(
        c"bansuri-notice",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    ) {
        Ok(fd) => File::from(fd),
        Err(_) => {
            let path = std::env::temp_dir().join(format!(
                "bansuri-notice-{}-{}",
                std::process::id(),
                Utc::now().timestamp_nanos_opt().unwrap_or_default()
            ));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            f
        }
    };
    f.write_all(text.as_bytes())?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    #[test]
    fn a_notifier_that_cannot_start_says_which_program_and_why() {
        let cmd = Command::new("/nonexistent/bansuri-notifier");
        let e = spawn_notifier(cmd, &notice(), Path::new("/"), "python3").unwrap_err();
        assert!(
            matches!(&e, NotifierStartError::Start { program, source }
                if program == "python3" && source.kind() == io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("cannot start python3: "), "{e}");
    }

    fn notice() -> Notice {
        Notice {
            event: NotifyEvent::Failure,
            task: "backup".into(),
            command: "./backup.sh --all".into(),
            working_directory: PathBuf::from("/data"),
            description: "nightly".into(),
            end: ProcessEnd::Exited(2),
            attempt: 2,
            attempts: 3,
            time: "2026-01-19T14:30:45Z".parse().unwrap(),
            host: "node12".into(),
            job_id: "4242".into(),
            stdout: "one\ntwo".into(),
            stderr: "boom".into(),
            stderr_kind: StderrKind::Separate,
        }
    }

    #[test]
    fn message_is_the_manuals_format_line_for_line() {
        let mut n = notice();
        n.time = chrono::Local
            .with_ymd_and_hms(2026, 1, 19, 14, 30, 45)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            n.message(),
            "\
==== [Bansuri] Task Failure ====

Task 'backup' has failed.

--- Task Details ---
Name:          backup
Command:       ./backup.sh --all
Working Directory: /data
Return Code:    2
Attempt:        2/3
Timestamp:      2026-01-19 14:30:45
Description:    nightly
Host:           node12 (job 4242)

--- Output ---
one
two

--- Error ---
boom

---

This is an automated message from Bansuri Orchestrator.
"
        );
        n.stdout.clear();
        n.event = NotifyEvent::Recovery;
        let m = n.message();
        assert!(m.starts_with("==== [Bansuri] Task Recovery ====\n"), "{m}");
        assert!(m.contains("--- Output ---\n(nothing)\n"), "{m}");
    }

    #[test]
    fn result_words_for_each_end() {
        let mut n = notice();
        n.end = ProcessEnd::TimedOut(Duration::from_secs(30));
        assert_eq!(n.result(), "timed out after 30s");
        assert_eq!(n.code(), "timeout");
        n.end = ProcessEnd::Signaled(libc::SIGKILL);
        assert_eq!(n.result(), "killed by SIGKILL");
        assert_eq!(n.code(), "SIGKILL");
        n.end = ProcessEnd::SpawnFailed("no such file".into());
        assert_eq!(n.result(), "failed to start: no such file");
        assert_eq!(n.code(), "not-started");
        n.stderr_kind = StderrKind::Combined;
        assert!(n.message().contains("stderr is combined with stdout"));
    }

    #[test]
    fn placeholders_become_quoted_variable_references() {
        assert_eq!(
            expand_command("mail -s {task} x"),
            "mail -s \"${BANSURI_TASK}\" x"
        );
        assert_eq!(
            expand_command("echo \"Task {task} failed ({code})\""),
            "echo \"Task ${BANSURI_TASK} failed (${BANSURI_CODE})\""
        );
        assert_eq!(
            expand_command("echo 'task {task}'"),
            "echo 'task '\"${BANSURI_TASK}\"''"
        );
        // Escaped quotes do not switch the state; unknown words and braces stay.
        assert_eq!(
            expand_command("echo \\' {job_id} {nope} awk '{print}'"),
            "echo \\' \"${BANSURI_JOB_ID}\" {nope} awk '{print}'"
        );
        assert_eq!(
            expand_command("echo \"a \\\" {host}\""),
            "echo \"a \\\" ${BANSURI_HOST}\""
        );
    }

    #[test]
    fn placeholders_in_command_substitutions_are_quoted_there_too() {
        // Inside "$(...)" the shell is unquoted again: a bare ${V} would be split and
        // globbed there.
        assert_eq!(
            expand_command("echo \"n=$(set -- {description}; echo $#)\""),
            "echo \"n=$(set -- \"${BANSURI_DESCRIPTION}\"; echo $#)\""
        );
        assert_eq!(
            expand_command("echo \"`printf '<%s>' {task}` {task}\""),
            "echo \"`printf '<%s>' \"${BANSURI_TASK}\"` ${BANSURI_TASK}\""
        );
        // Parentheses inside the substitution, arithmetic, and quotes again inside it.
        assert_eq!(
            expand_command("x \"$( (echo \"{task}\") ) {task}\" $(({code}+1)) {task}"),
            "x \"$( (echo \"${BANSURI_TASK}\") ) ${BANSURI_TASK}\" $((${BANSURI_CODE}+1)) \"${BANSURI_TASK}\""
        );
        assert_eq!(
            expand_command("echo \"$(echo '{task}')\""),
            "echo \"$(echo ''\"${BANSURI_TASK}\"'')\""
        );
    }

    #[test]
    fn expanded_command_never_contains_a_value() {
        // The command text depends on the template only: values are not in it.
        let mut n = notice();
        n.description = "$(touch pwned)'; touch pwned; '\"`id`".into();
        let t = "notify {description} \"{description}\" '{description}' {task}";
        let text = expand_command(t);
        assert!(!text.contains("pwned"), "{text}");
        let vars = n.vars();
        let d = vars
            .iter()
            .find(|(k, _)| *k == "BANSURI_DESCRIPTION")
            .unwrap();
        assert_eq!(d.1, n.description);
    }

    #[test]
    fn tail_keeps_the_last_lines_in_bounded_memory() {
        let mut t = Tail::new(64);
        for i in 0..1000 {
            t.push(format!("line {i}\n").as_bytes());
            assert!(t.buf.len() <= 128 + 16);
        }
        assert_eq!(t.last_lines(3), "line 997\nline 998\nline 999");
        // The partial first line is dropped, not shown cut.
        let all = t.last_lines(100);
        assert!(all.starts_with("line 9"), "{all}");
        let first = all.lines().next().unwrap();
        assert_eq!(first.len(), 8, "{all}");
        // One huge write.
        let mut t = Tail::new(16);
        t.push(&[b'x'; 100]);
        t.push(b"\nend");
        assert_eq!(t.last_lines(5), "end");
        // A last line without newline counts; CRLF is trimmed.
        let mut t = Tail::new(100);
        t.push(b"a\r\nb");
        assert_eq!(t.last_lines(5), "a\nb");
    }

    #[test]
    fn file_tail_reads_only_what_the_run_appended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.log");
        std::fs::write(&p, "old run\n").unwrap();
        let from = std::fs::metadata(&p).unwrap().len();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"new 1\nnew 2\n").unwrap();
        let t = file_tail(&p, from, 1024).unwrap();
        assert_eq!(t.last_lines(10), "new 1\nnew 2");
        // Shrunk (rotated): the end of what is there.
        std::fs::write(&p, "x\n").unwrap();
        assert_eq!(file_tail(&p, from, 1024).unwrap().last_lines(10), "x");
        // Bounded: only the last bytes, partial first line dropped.
        let big: String = (0..500).map(|i| format!("l{i}\n")).collect();
        std::fs::write(&p, &big).unwrap();
        let t = file_tail(&p, 0, 40).unwrap();
        assert!(t.last_lines(100).ends_with("l499"));
        assert!(t.last_lines(100).len() <= 40);
    }
}
