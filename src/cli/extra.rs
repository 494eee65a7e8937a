//! The packaging subcommands: `completions`, `man` and `schema`.
//!
//! Everything they print is generated from the definitions the program itself uses (the
//! clap `Command` of [`super::command`], the config field tables through
//! [`crate::config::schema`]), so shell completions, the man page and the editor schema cannot
//! drift from the real flags and fields. Nothing here runs tasks.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use clap_complete::Shell;
use clap_mangen::roff::{roman, Roff};

use super::CliError;

/// `bansuri completions SHELL`.
#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: ShellArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShellArg {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// `bansuri man [--out-dir DIR]`.
#[derive(Debug, Args)]
pub(super) struct ManArgs {
    /// Write bansuri.1 and one page per subcommand (bansuri-run.1, ...) into DIR instead of
    /// printing bansuri.1.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for the shell on stdout.
pub(super) fn completions(args: &CompletionsArgs) -> Result<(), CliError> {
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
        ShellArg::Elvish => Shell::Elvish,
        ShellArg::Powershell => Shell::PowerShell,
    };
    let mut cmd = without_hidden_subcommands(&super::command());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "bansuri", &mut out);
    print_bytes(&out)
}

/// The root command with the same arguments and settings but only its visible subcommands:
/// clap_complete ignores `hide`, and the internal `step-exec` is not for users to type. clap
/// cannot remove a subcommand, so the root is rebuilt from its parts (before clap builds it,
/// so the generated `help` subcommand lists only the visible ones too).
fn without_hidden_subcommands(cmd: &clap::Command) -> clap::Command {
    let mut root = clap::Command::new("bansuri")
        .version(crate::VERSION)
        .args_conflicts_with_subcommands(cmd.is_args_conflicts_with_subcommands_set())
        .args(cmd.get_arguments().cloned())
        .groups(cmd.get_groups().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        root = root.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        root = root.long_about(about.clone());
    }
    root
}

/// The sections of the main page that clap does not know about.
fn extra_sections(roff: &mut Roff) {
    let para = |roff: &mut Roff, head: &str, body: &str| {
        roff.control("TP", []);
        roff.text([roman(head)]);
        roff.text([roman(body)]);
    };
    roff.control("SH", ["EXIT STATUS"]);
    para(roff, "0", "Success (and a shutdown by SIGTERM or SIGINT).");
    para(
        roff,
        "1",
        "A runtime failure, such as a log file that cannot be opened.",
    );
    para(roff, "2", "A usage or config error.");
    para(
        roff,
        "3",
        "A task failed finally (with --exit-when-done or --once).",
    );
    roff.control("SH", ["ENVIRONMENT"]);
    para(
        roff,
        "BANSURI_CONFIG",
        "The config file when --config is not given.",
    );
    para(
        roff,
        "BANSURI_LOG_LEVEL",
        "DEBUG, INFO, WARNING or ERROR: the least severe job log line written.",
    );
    para(
        roff,
        "SLURM_JOB_ID",
        "Named in the job log header; replaces {job_id} in --log-file.",
    );
    roff.control("SH", ["FILES"]);
    para(
        roff,
        "./scripts_config.json, ./scripts.json",
        "The config file looked for when neither --config nor BANSURI_CONFIG is given. \
         `bansuri schema` prints its JSON Schema.",
    );
    roff.control("SH", ["SIGNALS"]);
    para(
        roff,
        "SIGTERM, SIGINT",
        "Graceful shutdown: the stop signal to every task's process group, SIGKILL after the \
         watchdog; a second one kills at once.",
    );
    para(roff, "SIGHUP", "Re-read the config file now (hot reload).");
}

/// Prints bansuri.1, or writes every page into `--out-dir`.
pub(super) fn man(args: &ManArgs) -> Result<(), CliError> {
    let cmd = super::command();
    let date = env!("BANSURI_COMMIT")
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let page = |cmd: clap::Command| {
        clap_mangen::Man::new(cmd)
            .date(date.clone())
            .source(format!("bansuri {}", crate::VERSION))
            .manual("User Commands")
    };
    let render_main = |w: &mut dyn Write| -> io::Result<()> {
        page(cmd.clone()).render(w)?;
        let mut roff = Roff::default();
        extra_sections(&mut roff);
        roff.to_writer(w)
    };
    match &args.out_dir {
        None => {
            let mut out = Vec::new();
            render_main(&mut out).map_err(CliError::RenderManPage)?;
            print_bytes(&out)
        }
        Some(dir) => {
            let write_all = || -> io::Result<Vec<PathBuf>> {
                std::fs::create_dir_all(dir)?;
                let mut written = Vec::new();
                let main = dir.join("bansuri.1");
                let mut f = std::fs::File::create(&main)?;
                render_main(&mut f)?;
                written.push(main);
                let mut built = cmd.clone().disable_help_subcommand(true);
                built.build();
                for sub in built.get_subcommands().filter(|s| !s.is_hide_set()) {
                    written.push(page(sub.clone()).generate_to(dir)?);
                }
                Ok(written)
            };
            let files = write_all().map_err(|source| CliError::WriteManPages {
                dir: dir.clone(),
                source,
            })?;
            for f in files {
                crate::console::outln!("{}", f.display());
            }
            Ok(())
        }
    }
}

/// Prints the JSON Schema of the config file.
pub(super) fn schema() -> Result<(), CliError> {
    print_bytes(crate::config::schema::text().as_bytes())
}

/// Writes to stdout; a closed pipe (`bansuri man | head`) is not an error worth a panic.
fn print_bytes(b: &[u8]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(b).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Stdout(e)),
    }
}
