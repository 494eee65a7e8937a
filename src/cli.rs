//! The command line (clap): `bansuri [run]`, `bansuri validate`, and what each does.
//!
//! Owns argument parsing, the `validate` report, and the typed outcome of a command: an
//! [`Exit`] (how `run` ended, a command done) or a [`CliError`] (printed on stderr once,
//! by [`execute`]). The binary's `main` turns the `Exit` into the process exit code with
//! [`Exit::code`], the one table of codes (0 ok, 1 runtime failure, 2 usage or config
//! error, 3 a task failed finally).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::api::Registry;
use crate::clock::{Mono, Now};
use crate::config::{self, ConfigErrors, Extensions};
use crate::console::{errln, outln};
use crate::control::client::ClientError;
use crate::control::{self, Cmd};
use crate::core::Mode;
use crate::level::Level;
pub use crate::model::{Ending, ErrorKind, Exit};
use crate::runtime::{self, Overrides, RunOptions, RuntimeError};
use crate::schedule::{self, Schedule};
use crate::spec::{LogFormat, Spec};
use crate::text::fmt_wall;

mod extra;

/// Why a command failed. `Display` is what stderr shows (the whole message, `error:`
/// included); [`CliError::kind`] is what the exit code says of it ([`Exit::code`]).
#[derive(Debug)]
pub enum CliError {
    /// The config cannot be found or is invalid: every error, rendered.
    Config(ConfigErrors),
    /// `--check-interval` is shorter than `min`.
    CheckIntervalTooShort {
        /// The shortest allowed.
        min: Duration,
    },
    /// `BANSURI_LOG_LEVEL` names no level.
    LogLevel(crate::level::UnknownLevel),
    /// The runtime could not start, or stopped on an error.
    Runtime(RuntimeError),
    /// A control command, `status` or `shell` failed.
    Client(ClientError),
    /// `man` could not render its page.
    RenderManPage(io::Error),
    /// `man --out-dir DIR` could not write the pages.
    WriteManPages {
        /// The directory given.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// stdout cannot be written (`completions`, `man`, `schema`; a closed pipe is fine).
    Stdout(io::Error),
}

impl CliError {
    /// A usage or config error (nothing ran), or a runtime failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CliError::Config(_)
            | CliError::CheckIntervalTooShort { .. }
            | CliError::LogLevel(_) => ErrorKind::Usage,
            CliError::Client(e) => e.kind,
            CliError::Runtime(_)
            | CliError::RenderManPage(_)
            | CliError::WriteManPages { .. }
            | CliError::Stdout(_) => ErrorKind::Runtime,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Config(e) => write!(f, "{e}"),
            CliError::CheckIntervalTooShort { min } => write!(
                f,
                "error: --check-interval must be at least {}",
                crate::text::fmt_dur_exact(*min)
            ),
            CliError::LogLevel(e) => write!(f, "error: BANSURI_LOG_LEVEL: {e}"),
            CliError::Runtime(e) => write!(f, "error: {e}"),
            CliError::Client(e) => write!(f, "error: {e}"),
            CliError::RenderManPage(e) => write!(f, "error: cannot render the man page: {e}"),
            CliError::WriteManPages { dir, source } => write!(
                f,
                "error: cannot write man pages into {}: {source}",
                dir.display()
            ),
            CliError::Stdout(e) => write!(f, "error: cannot write to stdout: {e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Config(e) => Some(e),
            CliError::CheckIntervalTooShort { .. } => None,
            CliError::LogLevel(e) => Some(e),
            CliError::Runtime(e) => Some(e),
            CliError::Client(e) => Some(e),
            CliError::RenderManPage(e) | CliError::Stdout(e) => Some(e),
            CliError::WriteManPages { source, .. } => Some(source),
        }
    }
}

/// Keep many scripts running inside one SLURM job (or anywhere): one-shot jobs, periodic
/// jobs (interval or cron) and long-running monitors, from one config file.
#[derive(Debug, Parser)]
#[command(
    name = "bansuri",
    version = crate::VERSION,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `bansuri run` options (run is the default subcommand).
    #[command(flatten)]
    run: RunArgs,
    /// Check the config and exit (same as `bansuri validate`).
    #[arg(long)]
    validate_config: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the tasks of the config (the default).
    Run(RunArgs),
    /// Check the config: one line per task, or every error; exit 0 or 2.
    Validate(ValidateArgs),
    /// Show what the bansuri of this config is doing (from its state file: works from any
    /// node that sees the file, and after the job has ended).
    Status(StatusArgs),
    /// Start tasks now (a stopped or finished one included).
    Start(TasksArgs),
    /// Stop tasks gracefully; they stay stopped until `bansuri start`. With no task named:
    /// stop every task and bansuri itself (as `bansuri shutdown`).
    Stop(StopArgs),
    /// Stop tasks gracefully, then start them again.
    Restart(TasksArgs),
    /// Re-read the config file now (like SIGHUP) and say what changed.
    Reload(ConfigArg),
    /// Stop every task gracefully and exit (like SIGTERM).
    Shutdown(ConfigArg),
    /// An interactive prompt: status, start, stop, restart, reload, shutdown, exit (with
    /// line editing, history and completion of task names).
    Shell(ConfigArg),
    /// Inside an srun task's job step: run the command, pass stop signals on to its whole
    /// process group, exit as it did (started by bansuri, not by users).
    #[command(hide = true)]
    StepExec(StepExecArgs),
    /// On another node of a multi-node job: run the attempts the leader sends over
    /// stdin, answer on stdout (started by bansuri through one srun step, not by users).
    #[command(hide = true)]
    Agent(AgentArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions(extra::CompletionsArgs),
    /// Print the man page (roff), or write every page into a directory.
    Man(extra::ManArgs),
    /// Print the JSON Schema of the config file (for editors).
    Schema,
}

/// The whole command line definition (for completions, man pages and their tests).
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Debug, Args)]
struct StepExecArgs {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// The node's name in the leader's frames (default: SLURMD_NODENAME, else the host
    /// name).
    #[arg(long)]
    node: Option<String>,
}

#[derive(Debug, Args)]
struct TasksArgs {
    /// Task names.
    #[arg(required = true, value_name = "TASK")]
    tasks: Vec<String>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Debug, Args)]
struct StopArgs {
    /// Task names (a `numprocs` program's name: all its instances); none: stop bansuri.
    #[arg(value_name = "TASK")]
    tasks: Vec<String>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Only these tasks (a `numprocs` program's name: all its instances); all when none.
    #[arg(value_name = "TASK")]
    tasks: Vec<String>,
    #[command(flatten)]
    config: ConfigArg,
    /// Print the state document (JSON) instead of the table.
    #[arg(long)]
    json: bool,
    /// Refresh every 2 s until Ctrl+C.
    #[arg(long)]
    watch: bool,
    /// Print every ended element of the arrays named (all arrays when none) from the
    /// element status file, one JSON line each, as it is being written (issue 19).
    #[arg(long, conflicts_with_all = ["json", "watch"])]
    elements: bool,
}

#[derive(Debug, Args, Default)]
struct ConfigArg {
    /// Config file [default: $BANSURI_CONFIG, ./scripts_config.json, ./scripts.json].
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
struct ValidateArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// A task file to check with the config (as `run --tasks FILE`).
    #[arg(long, value_name = "FILE")]
    tasks: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// A task file: one shell command per line (`#` comments), each run once as
    /// `tasks[0]`, `tasks[1]`, ...; replaces the config's `tasks-file`. Without a config
    /// file found, the task file alone runs (in the current directory).
    #[arg(long, value_name = "FILE")]
    tasks: Option<PathBuf>,
    /// How often the config file is re-read (overrides check_interval), e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    check_interval: Option<Duration>,
    /// Grace between a task's stop signal and SIGKILL (overrides watchdog_timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    watchdog: Option<Duration>,
    /// Write the job log here instead of stdout; `{job_id}` becomes $SLURM_JOB_ID or `local`.
    #[arg(long, value_name = "FILE")]
    log_file: Option<String>,
    /// Job log format (overrides log_format).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<FormatArg>,
    /// Rotate the job log file at this size, e.g. 50MB (overrides log_max_bytes; 0 = never).
    #[arg(long, value_name = "SIZE", value_parser = crate::text::parse_size)]
    log_max_bytes: Option<u64>,
    /// Rotated job log files to keep (overrides log_backups).
    #[arg(long, value_name = "N")]
    log_backups: Option<u32>,
    /// Exit once no task can run again: 0 if all succeeded, 3 if any failed.
    #[arg(long)]
    exit_when_done: bool,
    /// Smoke test: run every enabled task once now (ignoring schedules, keeping timeouts
    /// and retries), print a result table, exit 0 or 3.
    #[arg(long, conflicts_with = "exit_when_done")]
    once: bool,
    /// Serve the web dashboard here (overrides `dashboard`): HOST:PORT, or a port on
    /// 127.0.0.1.
    #[arg(long, value_name = "ADDR", value_parser = config::parse_dashboard)]
    dashboard: Option<std::net::SocketAddr>,
    /// Skip one-shot tasks that succeeded with the same settings in the previous run of
    /// this config (its state file): a requeued job continues where it stopped.
    #[arg(long)]
    resume: bool,
    /// Like --resume, and of the array elements run only those that failed last time
    /// (their status file and state file say so); the others are left for a later run.
    #[arg(long)]
    retry_failed: bool,
    /// More detail in the job log (DEBUG lines).
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Only warnings and errors from bansuri itself (child output is always written).
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

/// The duration parser of `--watchdog` and `--check-interval` (the config's: one for both),
/// kept here for programs that parse a duration as bansuri's command line does.
pub use crate::text::parse_duration;

/// Parse the command line and do it; returns the process exit code (`Exit::code`).
pub fn main() -> i32 {
    main_with(std::env::args_os(), Registry::default())
}

/// [`main`] for a program that embeds bansuri: `args` (the first is the program name)
/// with the tasks and notifiers of `registry` (see [`crate::Builder`]); returns the
/// process exit code (`Exit::code`).
pub fn main_with<I, A>(args: I, registry: Registry) -> i32
where
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    execute(args, registry).code()
}

/// Parse `args` and do the command; an error is printed on stderr here, once, and
/// becomes `Exit::Failed` of its kind.
pub fn execute<I, A>(args: I, registry: Registry) -> Exit
where
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    match dispatch(Cli::parse_from(args), registry) {
        Ok(exit) => exit,
        Err(e) => {
            errln!("{e}");
            Exit::Failed(e.kind())
        }
    }
}

fn dispatch(cli: Cli, registry: Registry) -> Result<Exit, CliError> {
    let ext = registry.extensions();
    if cli.validate_config {
        return validate(
            cli.run.config.config.as_deref(),
            cli.run.tasks.as_deref(),
            &ext,
        );
    }
    let done = |r: Result<(), ClientError>| r.map(|()| Exit::Done).map_err(CliError::Client);
    match cli.command {
        Some(Command::Validate(a)) => {
            validate(a.config.config.as_deref(), a.tasks.as_deref(), &ext)
        }
        Some(Command::StepExec(a)) => Ok(Exit::StepExec(crate::slurm::step_exec::run(&a.command))),
        Some(Command::Agent(a)) => Ok(Exit::StepExec(crate::agent::node::run(a.node))),
        Some(Command::Run(args)) => run(args, registry),
        Some(Command::Start(a)) => done(control_cmd(a.config, Cmd::Start, &a.tasks)),
        Some(Command::Stop(a)) if a.tasks.is_empty() => {
            // The Bansuri manual's `bansuri stop` (12.3.3): bansuri itself stops, gracefully.
            outln!("No task named: stopping bansuri (as `bansuri shutdown`)");
            done(control_cmd(a.config, Cmd::Shutdown, &[]))
        }
        Some(Command::Stop(a)) => done(control_cmd(a.config, Cmd::Stop, &a.tasks)),
        Some(Command::Restart(a)) => done(control_cmd(a.config, Cmd::Restart, &a.tasks)),
        Some(Command::Reload(c)) => done(control_cmd(c, Cmd::Reload, &[])),
        Some(Command::Shutdown(c)) => done(control_cmd(c, Cmd::Shutdown, &[])),
        Some(Command::Shell(c)) => done(control::shell::run(c.config.as_deref())),
        Some(Command::Status(a)) if a.elements => done(control::client::elements(
            a.config.config.as_deref(),
            &a.tasks,
        )),
        Some(Command::Status(a)) => done(control::client::status(
            a.config.config.as_deref(),
            &a.tasks,
            a.json,
            a.watch,
        )),
        Some(Command::Completions(a)) => extra::completions(&a).map(|()| Exit::Done),
        Some(Command::Man(a)) => extra::man(&a).map(|()| Exit::Done),
        Some(Command::Schema) => extra::schema().map(|()| Exit::Done),
        None => run(cli.run, registry),
    }
}

fn control_cmd(c: ConfigArg, cmd: Cmd, tasks: &[String]) -> Result<(), ClientError> {
    control::client::command(c.config.as_deref(), cmd, tasks)
}

/// The config (found as usual) with the task file of `--tasks`; with `--tasks` and no
/// config found (no `--config`, no `$BANSURI_CONFIG`, no default file), the task file alone.
fn load(cli: Option<&Path>, tasks: Option<&Path>, ext: &Extensions) -> Result<Spec, CliError> {
    let no_env = !matches!(std::env::var_os("BANSURI_CONFIG"), Some(v) if !v.is_empty());
    let path = match (config::locate(cli), tasks) {
        (Ok(path), _) => path,
        (Err(_), Some(tasks)) if cli.is_none() && no_env => {
            return config::tasks_only(tasks, ext).map_err(CliError::Config)
        }
        (Err(e), _) => return Err(CliError::Config(e)),
    };
    let add = config::CommandLine {
        tasks: tasks.map(Path::to_path_buf),
    };
    config::load_adding(&path, ext, &add).map_err(CliError::Config)
}

fn validate(cli: Option<&Path>, tasks: Option<&Path>, ext: &Extensions) -> Result<Exit, CliError> {
    let spec = load(cli, tasks, ext)?;
    let in_job = crate::slurm::JobEnv::from_env().is_some();
    let (found, allocation_warnings) = allocation(&spec, in_job)?;
    let now = Now {
        mono: Mono::ZERO,
        wall: Utc::now(),
    };
    // An array is one line of the report, however many elements it has.
    let rows = report_rows(&spec.tasks);
    let n = rows.len();
    let elements: usize = rows
        .iter()
        .filter(|r| r.elements.is_some())
        .map(|r| r.count)
        .sum();
    let w = spec.warnings.len();
    outln!(
        "{}: valid, {n} task{}{}{}",
        spec.source.display(),
        if n == 1 { "" } else { "s" },
        match elements {
            0 => String::new(),
            1 => " (1 array element)".to_owned(),
            e => format!(" ({e} array elements)"),
        },
        match w {
            0 => String::new(),
            1 => ", 1 warning (below)".to_owned(),
            w => format!(", {w} warnings (below)"),
        }
    );
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for row in &rows {
        let t = row.task;
        let when = schedule::describe(&t.schedule);
        let next = if !t.enabled {
            "disabled (enabled: false)".to_owned()
        } else {
            match &t.schedule {
                Schedule::Once => "runs at start-up".to_owned(),
                Schedule::Timer(_) => "first run at start-up".to_owned(),
                Schedule::Cron(c) => match c.next_after(now.wall) {
                    Some(w) => format!("next run {}", fmt_wall(w)),
                    None => "never matches".to_owned(),
                },
            }
        };
        let mut notes = String::new();
        if let Some(words) = &row.elements {
            notes.push_str(&format!(", {words}"));
        }
        if t.no_interface {
            notes.push_str(&format!(" (in-process task `{}`)", t.command.display()));
        }
        if let crate::spec::CommandSpec::Python(class) = &t.command {
            notes.push_str(&format!(" (Python task `{class}`)"));
        }
        if t.restart_on_success {
            notes.push_str(", restarted whenever it exits (autorestart: always)");
        }
        if !t.autostart {
            notes.push_str(", not started until `bansuri start` (autostart: false)");
        }
        if !t.depends_on.is_empty() {
            notes.push_str(&format!(", after {}", t.depends_on.join(", ")));
        }
        if let Some(u) = &t.user {
            notes.push_str(&format!(", as user {}", u.name));
        }
        if let Some(srun) = &t.srun {
            notes.push_str(&format!(
                "; as a job step: {}",
                crate::slurm::srun_summary(srun)
            ));
        }
        if let Some(needs) = needs_words(&t.needs) {
            notes.push_str(&format!("; {needs}"));
        }
        outln!("  {:<width$}  {when}; {next}{notes}", row.name);
    }
    if let Some(found) = found {
        outln!("  resources: bansuri found {found}");
    }
    for warning in spec.warnings.iter().chain(&allocation_warnings) {
        outln!("{warning}");
    }
    for warning in crate::slurm::validate_warnings(&spec, in_job, || crate::slurm::on_path("srun"))
    {
        outln!("warning: {warning}");
    }
    Ok(Exit::Done)
}

/// One line of the `validate` report: a task, or an array with all its elements.
struct Row<'s> {
    /// The task (an array's first element).
    task: &'s crate::spec::TaskSpec,
    /// `sweep[1..1000]` for an array, else the task's name.
    name: String,
    /// Tasks on this line.
    count: usize,
    /// For an array: `1000 elements, at most 4 at once`.
    elements: Option<String>,
}

/// The tasks, each array on one row.
fn report_rows(tasks: &[crate::spec::TaskSpec]) -> Vec<Row<'_>> {
    tasks
        .iter()
        .map(|t| {
            let Some(sweep) = &t.sweep else {
                return Row {
                    task: t,
                    name: t.name.clone(),
                    count: 1,
                    elements: None,
                };
            };
            let len = sweep.array.len();
            let id = |pos| sweep.array.element(pos).map_or(0, |e| e.id);
            let mut words = format!("{len} element{}", if len == 1 { "" } else { "s" });
            if let Some(p) = sweep.parallel {
                words.push_str(&format!(", at most {p} at once"));
            }
            Row {
                task: t,
                name: format!("{}[{}..{}]", t.name, id(0), id(len.saturating_sub(1))),
                count: usize::try_from(len).unwrap_or(usize::MAX),
                elements: Some(words),
            }
        })
        .collect()
}

/// `validate`'s part of issue 17: what bansuri finds here (the inventory's words) and
/// whether each request fits it, built as the runtime builds it. Nothing is read for a
/// config that asks for no resources and declares none (its report stays as it was).
/// Requests that can never fit a known allocation are the config's errors.
fn allocation(
    spec: &Spec,
    in_job: bool,
) -> Result<(Option<String>, Vec<config::ConfigWarning>), CliError> {
    use config::allocation::{check_requests, inventory_failed, requeue_outside_job};
    let mut warnings: Vec<config::ConfigWarning> =
        requeue_outside_job(spec, in_job).into_iter().collect();
    let asks = spec.tasks.iter().any(|t| t.needs.request.is_some());
    if !asks && spec.globals.resources.is_none() {
        return Ok((None, warnings));
    }
    let mut inputs = match crate::resources::read_inputs() {
        Ok(inputs) => inputs,
        Err(e) => {
            let mut w = config::ConfigError::plain(
                &spec.source,
                format!("cannot tell what this machine has, requests are not checked: {e}"),
            );
            w.field = Some("resources".to_owned());
            warnings.push(config::ConfigWarning(w));
            return Ok((None, warnings));
        }
    };
    inputs.declared = spec.globals.resources.clone();
    let in_job = crate::resources::inventory::in_job(&inputs.env);
    let (found, check) = match crate::resources::Inventory::from_inputs(&inputs) {
        Ok(inventory) => (
            Some(inventory.to_string()),
            check_requests(spec, &inventory, in_job),
        ),
        Err(e) => (None, inventory_failed(spec, &e, in_job)),
    };
    if !check.errors.is_empty() {
        return Err(CliError::Config(ConfigErrors(check.errors)));
    }
    warnings.extend(check.warnings);
    Ok((found, warnings))
}

/// A task's request and run settings for the `validate` report: `needs 2 CPUs, 1 GPU,
/// 4 GiB, not bound (bind: false), expected 2h, SIGUSR1 10m before the job's end`.
fn needs_words(needs: &crate::spec::Needs) -> Option<String> {
    use crate::resources::Kind;
    use crate::text::fmt_dur_exact;
    let mut parts: Vec<String> = Vec::new();
    if let Some(r) = &needs.request {
        parts.push(format!("needs {}", Kind::Cpus.words(u64::from(r.cpus))));
        if r.gpus > 0 {
            parts.push(Kind::Gpus.words(u64::from(r.gpus)));
        }
        if let Some(mem) = r.mem {
            parts.push(Kind::Mem.words(mem));
        }
        if !needs.bind {
            parts.push("not bound (bind: false)".to_owned());
        }
        if needs.mem_exceeded == crate::spec::MemExceeded::Stop {
            parts.push("stopped over its mem (mem-exceeded: stop)".to_owned());
        }
    }
    if let Some(d) = needs.expected_runtime {
        parts.push(format!("expected to run {}", fmt_dur_exact(d)));
    }
    if let Some(c) = needs.checkpoint {
        parts.push(format!(
            "{} {} before the job's end",
            crate::text::signal_name(c.signal),
            fmt_dur_exact(c.lead)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn run(args: RunArgs, registry: Registry) -> Result<Exit, CliError> {
    let spec = load(
        args.config.config.as_deref(),
        args.tasks.as_deref(),
        &registry.extensions(),
    )?;
    let shortest = crate::text::duration::MIN_CHECK_INTERVAL;
    if args.check_interval.is_some_and(|d| d < shortest) {
        return Err(CliError::CheckIntervalTooShort { min: shortest });
    }
    let overrides = Overrides {
        check_interval: args.check_interval,
        watchdog_timeout: args.watchdog,
        log_file: args.log_file,
        log_max_bytes: args.log_max_bytes,
        log_backups: args.log_backups,
        log_format: args.log_format.map(|f| match f {
            FormatArg::Text => LogFormat::Text,
            FormatArg::Json => LogFormat::Json,
        }),
        dashboard: args.dashboard,
    };
    let mut level = match std::env::var("BANSURI_LOG_LEVEL") {
        Ok(v) => v.parse::<Level>().map_err(CliError::LogLevel)?,
        Err(_) => Level::Info,
    };
    if args.verbose {
        level = Level::Debug;
    }
    if args.quiet {
        level = Level::Warning;
    }
    let opts = RunOptions {
        mode: Mode {
            exit_when_done: args.exit_when_done,
            once: args.once,
        },
        log_level: level,
        overrides,
        resume: args.resume,
        retry_failed: args.retry_failed,
        tasks: args.tasks.clone(),
    };
    runtime::run_with(spec, opts, registry)
        .map(Exit::Run)
        .map_err(CliError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_says_what_it_said_before_and_has_the_kind_of_its_exit_code() {
        let cases: Vec<(CliError, &str, i32)> = vec![
            (
                CliError::CheckIntervalTooShort {
                    min: Duration::from_secs(1),
                },
                "error: --check-interval must be at least 1s",
                2,
            ),
            (
                CliError::LogLevel("loud".parse::<Level>().unwrap_err()),
                "error: BANSURI_LOG_LEVEL: unknown log level `LOUD` (expected DEBUG, INFO, WARNING or ERROR)",
                2,
            ),
            (
                CliError::Client(ClientError::usage("unknown task `x`")),
                "error: unknown task `x`",
                2,
            ),
            (
                CliError::Client(ClientError::runtime("no bansuri is running")),
                "error: no bansuri is running",
                1,
            ),
            (
                CliError::Stdout(io::Error::other("disk full")),
                "error: cannot write to stdout: disk full",
                1,
            ),
            (
                CliError::WriteManPages {
                    dir: PathBuf::from("/ro/man"),
                    source: io::Error::other("read-only"),
                },
                "error: cannot write man pages into /ro/man: read-only",
                1,
            ),
        ];
        for (e, text, code) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(Exit::Failed(e.kind()).code(), code, "{e}");
        }
    }

    #[test]
    fn execute_returns_the_typed_outcome_of_the_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"scripts": [{"name": "a", "command": "true"}]}"#).expect("write");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"scripts": [{"name": "a"}]}"#).expect("write");
        let run = |args: &[&std::ffi::OsStr]| {
            let mut argv: Vec<&std::ffi::OsStr> = vec!["bansuri".as_ref()];
            argv.extend_from_slice(args);
            execute(argv, Registry::default())
        };
        assert_eq!(
            run(&["validate".as_ref(), "-c".as_ref(), good.as_os_str()]),
            Exit::Done
        );
        assert_eq!(
            run(&["validate".as_ref(), "-c".as_ref(), bad.as_os_str()]),
            Exit::Failed(ErrorKind::Usage)
        );
        let missing = dir.path().join("missing.json");
        assert_eq!(
            run(&[
                "--validate-config".as_ref(),
                "-c".as_ref(),
                missing.as_os_str()
            ]),
            Exit::Failed(ErrorKind::Usage)
        );
    }

    #[test]
    fn needs_words_show_the_request_and_run_settings() {
        use crate::resources::Request;
        use crate::spec::{Checkpoint, MemExceeded, Needs};
        assert_eq!(needs_words(&Needs::default()), None);
        let mut n = Needs {
            request: Some(Request {
                cpus: 2,
                gpus: 1,
                mem: Some(4 << 30),
            }),
            ..Needs::default()
        };
        assert_eq!(
            needs_words(&n).as_deref(),
            Some("needs 2 CPUs, 1 GPU, 4 GiB")
        );
        n.request = Some(Request::default());
        assert_eq!(needs_words(&n).as_deref(), Some("needs 1 CPU"));
        n.bind = false;
        n.mem_exceeded = MemExceeded::Stop;
        n.expected_runtime = Some(Duration::from_secs(7200));
        n.checkpoint = Some(Checkpoint {
            signal: libc::SIGUSR1,
            lead: Duration::from_secs(600),
        });
        assert_eq!(
            needs_words(&n).as_deref(),
            Some("needs 1 CPU, not bound (bind: false), stopped over its mem (mem-exceeded: stop), expected to run 2h, SIGUSR1 10m before the job's end")
        );
        n.request = None;
        assert_eq!(
            needs_words(&n).as_deref(),
            Some("expected to run 2h, SIGUSR1 10m before the job's end")
        );
    }
}
