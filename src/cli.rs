//! The command line (clap): `bansuri [run]`, `bansuri validate`, and what each does.
//!
//! Owns argument parsing, the `validate` report and turning errors into exit codes
//! (0 ok, 1 runtime failure, 2 usage or config error, 3 a task failed finally).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::{Mono, Now};
use crate::config;
use crate::core::{fmt_wall, Mode};
use crate::level::Level;
use crate::runtime::{self, Overrides, RunOptions};
use crate::schedule;
use crate::spec::{LogFormat, ScheduleSpec, Spec};

/// Exit code: a usage or config error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: a runtime failure.
pub const EXIT_RUNTIME: i32 = 1;

/// Keep many scripts running inside one SLURM job (or anywhere): one-shot jobs, periodic
/// jobs (interval or cron) and long-running monitors, from one config file.
#[derive(Debug, Parser)]
#[command(name = "bansuri", version, args_conflicts_with_subcommands = true)]
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
    Validate(ConfigArg),
    /// Inside an srun task's job step: run the command, pass stop signals on to its whole
    /// process group, exit as it did (started by bansuri, not by users).
    #[command(hide = true)]
    StepExec(StepExecArgs),
}

#[derive(Debug, Args)]
struct StepExecArgs {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args, Default)]
struct ConfigArg {
    /// Config file [default: $BANSURI_CONFIG, ./scripts_config.json, ./scripts.json].
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
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
    /// Exit once no task can run again: 0 if all succeeded, 3 if any failed.
    #[arg(long)]
    exit_when_done: bool,
    /// Smoke test: run every enabled task once now (ignoring schedules, keeping timeouts
    /// and retries), print a result table, exit 0 or 3.
    #[arg(long, conflicts_with = "exit_when_done")]
    once: bool,
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

/// A duration as in the config: bare number = seconds, else `30s`, `5m`, `1h30m`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}` is not a valid duration (negative)"));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{s}` is not a valid duration ({e}); examples: 30, 30s, 5m, 1h30m, 250ms")
    })
}

/// Parse the command line and do it; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if cli.validate_config {
        return validate(cli.run.config.config.as_deref());
    }
    match cli.command {
        Some(Command::Validate(c)) => validate(c.config.as_deref()),
        Some(Command::StepExec(a)) => crate::slurm::step_exec::run(&a.command),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn load(cli: Option<&Path>) -> Result<Spec, i32> {
    let path = config::locate(cli).map_err(|e| {
        eprintln!("{e}");
        EXIT_USAGE
    })?;
    config::load(&path).map_err(|e| {
        eprintln!("{e}");
        EXIT_USAGE
    })
}

fn validate(cli: Option<&Path>) -> i32 {
    let spec = match load(cli) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = Now {
        mono: Mono::ZERO,
        wall: Utc::now(),
    };
    let n = spec.tasks.len();
    println!(
        "{}: valid, {n} task{}",
        spec.source.display(),
        if n == 1 { "" } else { "s" }
    );
    let width = spec.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &spec.tasks {
        let when = schedule::describe(&t.schedule);
        let next = if !t.enabled {
            "disabled (enabled: false)".to_owned()
        } else {
            match &t.schedule {
                ScheduleSpec::Once => "runs at start-up".to_owned(),
                ScheduleSpec::Timer(_) => "first run at start-up".to_owned(),
                ScheduleSpec::Cron(c) => match c.next_after(now.wall) {
                    Some(w) => format!("next run {}", fmt_wall(w)),
                    None => "never matches".to_owned(),
                },
            }
        };
        let step = match &t.srun {
            Some(srun) => format!("; as a job step: {}", crate::slurm::srun_summary(srun)),
            None => String::new(),
        };
        println!("  {:<width$}  {when}; {next}{step}", t.name);
    }
    let in_job = crate::slurm::JobEnv::from_env().is_some();
    for warning in crate::slurm::validate_warnings(&spec, in_job, || crate::slurm::on_path("srun"))
    {
        println!("warning: {warning}");
    }
    0
}

fn run(args: RunArgs) -> i32 {
    let spec = match load(args.config.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.check_interval.is_some_and(|d| d.is_zero()) {
        eprintln!("error: --check-interval must be greater than zero");
        return EXIT_USAGE;
    }
    let overrides = Overrides {
        check_interval: args.check_interval,
        watchdog_timeout: args.watchdog,
        log_file: args.log_file,
        log_format: args.log_format.map(|f| match f {
            FormatArg::Text => LogFormat::Text,
            FormatArg::Json => LogFormat::Json,
        }),
    };
    let mut level = match std::env::var("BANSURI_LOG_LEVEL") {
        Ok(v) => match v.parse::<Level>() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: BANSURI_LOG_LEVEL: {e}");
                return EXIT_USAGE;
            }
        },
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
    };
    match runtime::run(spec, opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_RUNTIME
        }
    }
}
