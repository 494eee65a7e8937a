//! Config files: find one, parse it, validate it into a [`Spec`].
//!
//! This module owns everything between the user's text and the typed `Spec`; nothing after
//! it parses user text. It never starts processes, never reads the clock, and touches the
//! file system only to read the config file, environment-files, an array's `file` and a
//! task file, to check that working directories exist and to look users up.
//!
//! # Two stages
//! 1. Syntax: JSON by a small strict parser of our own (`json.rs`, RFC 8259), TOML by
//!    `toml_edit`. Both give the same spanned tree (`tree.rs`): every key and value keeps
//!    its byte range, objects keep duplicate keys, numbers keep their text.
//! 2. Meaning: one validator (`validate.rs`) walks that tree and builds the `Spec`,
//!    collecting every error (unknown keys with "did you mean", wrong types, bad values,
//!    duplicates) rather than stopping at the first. [`ConfigErrors`] renders them all,
//!    rustc style, with file, line, column and the source line.
//!
//! # Decisions (where SPEC.md is silent)
//! - Lookup ([`locate`]): `--config`, then `$BANSURI_CONFIG` (an empty value counts as
//!   unset), then `./scripts_config.json`, then `./scripts.json`. A path given by
//!   `--config` or `$BANSURI_CONFIG` that does not exist is an error; the lookup does not
//!   silently fall through to the next place.
//! - Format by extension, any case: `.json`, `.toml`, `.yaml`/`.yml`; anything else is an
//!   error. A top-level `programs:` map (Taskmaster) is accepted in place of `scripts`, in
//!   any format: each key becomes a task of that name.
//! - JSON: a UTF-8 byte order mark is skipped; comments, trailing commas, single quotes,
//!   lone UTF-16 surrogates (`"\ud800"`), leading zeros and NaN are errors; nesting is
//!   limited to 128 levels.
//! - `version` may be a string or a number (`"1.0"`, `1`, `"1.x"`); only major version 1
//!   is accepted.
//! - Integers (`max_parallel`, `times`, `success-codes`) must be JSON/TOML numbers
//!   without a fraction; numeric strings are accepted only for durations (SPEC 1.3).
//! - Durations: a number or numeric string is seconds (fractions allowed); otherwise
//!   humantime (`"1h30m"`, `"250ms"`). `timer`, `timeout` and `check_interval` must be
//!   greater than zero; `restart-delay`, `max-restart-delay`, `stoptime` and
//!   `watchdog_timeout` may be zero.
//! - Keyword values (`overlap`, `on-fail`, `log_format`, `timezone`, `stopsignal`,
//!   `stderr: "combined"`) are matched ignoring case. `timezone` is `local` (default) or
//!   `UTC` (also `Z`) and is an error without `schedule-cron`.
//! - `restart-delay` longer than `max-restart-delay` is an error, also when the latter is
//!   the default 60 s (the help says to raise it); the cap is never raised silently.
//! - Paths: `working-directory` and `environment-file` are relative to the config file's
//!   directory; `stdout`/`stderr` file paths are relative to the task's working directory.
//!   A config path given relative is made absolute with the current directory. `.`
//!   components are removed, `..` kept (no symlink resolution). The default working
//!   directory (the config file's directory) is not checked; an explicit one that is not
//!   a directory is a warning ([`ConfigWarning`], in `Spec::warnings`), not an error.
//! - Problems of the machine, not of the file, are warnings: a missing
//!   `working-directory`, a `user` unknown to the user database, a missing
//!   `environment-file`. The task keeps what is missing in `TaskSpec::pending` and each
//!   start settles it again (`crate::spawn::prepare`), failing while it is missing. An
//!   environment-file others can write (as root), one that is not UTF-8 or has bad lines,
//!   and a `user` other than oneself without root stay errors.
//! - `stdout`/`stderr` paths may hold strftime patterns (chrono's, `%%` for `%`), filled in
//!   at each start; an invalid pattern is an error. A `$(` is a warning: `$(date +FORMAT)`
//!   (the manual's example) is read as FORMAT and the help shows that form; any other
//!   command stays in the name as written.
//! - `stdout`: null, `"log"` or `"joblog"` mean the job log; `stderr`: null or
//!   `"combined"` mean combined, `"log"`/`"joblog"` the job log. Any other string is a
//!   file path (write `./log` for a file named `log`).
//! - `env` values may be strings, numbers or booleans (`true`/`false`); a JSON number is
//!   kept as written (`2.50`), a TOML one as its value prints (`2.5`; `16` for `0x10`).
//!   Names must be non-empty, without `=` or NUL. The environment-file is read at load
//!   time (or at each start while it is missing); its variables come first and `env`
//!   overrides them. Its syntax is described in
//!   `envfile.rs`.
//! - Shorthand entries get their names after every object task's name is known, so an
//!   explicit name always wins and the shorthand becomes `name-2`, `name-3`. Two identical
//!   shorthand strings are allowed (`worker`, `worker-2`).
//! - Key names are case-sensitive; "did you mean" ignores case and `_`/`-` when looking
//!   for the nearest known key, and always suggests the canonical spelling.
//! - Errors are listed in file order (an environment-file's errors at the field naming
//!   it). A task is named in errors by its `name`, or `scripts[i]` when it has none valid.
//!   The `Spec` is returned only when there is no error at all.
//! - A setting that is harmless but has no effect as written (`times` without a restart
//!   policy, `notify: "mail"` without `notify_command`, `startretries` with `starttime:
//!   0`) is a warning, not an error: the `Spec` carries it in `warnings` (same rendering,
//!   `warning:` instead of `error:`), `validate` prints it and the job log repeats it.
//! - `max_parallel: null` and `log_file: null` are the same as leaving them out.
//! - An unknown key is an error: a key of the other level (a task field at the top, a
//!   global inside a task) says where it belongs, otherwise the nearest known key is
//!   suggested ("did you mean"), or, when none is near, every known key is listed.
//! - `notify`: `"mail"` and `"on-fail"` (any case) mean the global `notify_command`, and
//!   get a warning when that key is absent (nothing is sent; the run goes on); `"none"` is the default; any other value must
//!   be a notifier registered by the binary ([`Extensions`]). `notify-on` is one word or a
//!   list of `failure`, `success`, `recovery` (default: failure only), and an error when
//!   `notify` is `"none"`. `no-interface: true` needs `command` to be a string naming a
//!   registered task; the error lists the registered names.
//! - Resources (issue 17, `validate/needs.rs`): a task that gives none of `cpus`, `gpus`,
//!   `mem` has no request (never packed nor bound); giving any makes one with `cpus` 1
//!   and `gpus` 0 by default. `cpus: 0` is an error (a run needs a CPU; leave the three
//!   out instead). `mem` is a size string or whole bytes, more than zero. A
//!   `checkpoint-signal` is a name (with or without `SIG`, any case) or a number up to
//!   SIGRTMAX, never KILL or STOP (they cannot be caught); its lead defaults to 10 min
//!   (time for most tasks to write a checkpoint; `checkpoint-lead` sets another), and a
//!   lead no longer than `stop_before_end` is a warning. `resources.gpus` takes strings and whole
//!   numbers (YAML's `[0, 1]`) as IDs, repeated or empty ones refused; `resources: null`
//!   is the same as leaving it out. Whether requests fit the machine is not decided here
//!   but in [`allocation`], with an inventory the caller builds.
//! - Arrays and task files (issue 19, `validate/sweep.rs`): a task's `array` becomes one
//!   `TaskSpec` per element, named `task[id]`, at load time, so `Spec::tasks` holds every
//!   element; the task file (`tasks-file`, or [`CommandLine::tasks`]) is the array task
//!   `tasks`, last in the list. The rules (one form, placeholders, one-shot elements,
//!   `parallel`) are in that file's docs.

pub mod allocation;
mod envfile;
mod json;
pub mod schema;
mod shorthand;
mod toml;
mod tree;
pub(crate) mod trust;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_env;
#[cfg(test)]
mod tests_program;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::diagnostic::{ConfigError, ConfigErrors, ConfigWarning, Snippet};
pub(crate) use trust::who;
pub use trust::Untrusted;

use crate::spec::Spec;

/// Syntax of a config file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`
    Json,
    /// `.toml`
    Toml,
    /// `.yaml`/`.yml`: the same schema, or a Taskmaster file (`programs:` map)
    Yaml,
}

impl Format {
    /// The format of `path`, by extension (any case).
    pub fn from_path(path: &Path) -> Result<Format, ConfigErrors> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let (message, help) = match ext.as_deref() {
            Some("json") => return Ok(Format::Json),
            Some("toml") => return Ok(Format::Toml),
            Some("yaml" | "yml") => return Ok(Format::Yaml),
            Some(other) => (
                format!("unknown config format `.{other}`"),
                "a config file ends in `.json`, `.toml`, `.yaml` or `.yml`",
            ),
            None => (
                "cannot tell the format: the file name has no extension".to_string(),
                "name the file `*.json`, `*.toml` or `*.yaml`",
            ),
        };
        let e = ConfigError::plain(path, format!("cannot read `{}`: {message}", path.display()));
        Err(e.with_help(help).into())
    }
}

/// Well-known names looked for in the current directory, in order.
pub const DEFAULT_NAMES: [&str; 2] = ["scripts_config.json", "scripts.json"];

/// Finds the config file: `cli` (`--config PATH`), else `$BANSURI_CONFIG`, else
/// `./scripts_config.json`, else `./scripts.json`.
pub fn locate(cli: Option<&Path>) -> Result<PathBuf, ConfigErrors> {
    let env = std::env::var_os("BANSURI_CONFIG");
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    locate_in(cli, env.as_deref(), &cwd)
}

/// [`locate`] with the environment value and the current directory passed in. Returns the
/// path as given (`cli`, `env`) or the bare file name of the default found in `cwd`.
pub fn locate_in(
    cli: Option<&Path>,
    env: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, ConfigErrors> {
    let check = |p: &Path, from: &str| -> Result<PathBuf, ConfigErrors> {
        let full = cwd.join(p);
        match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => Ok(p.to_path_buf()),
            Ok(_) => Err(ConfigError::plain(
                p,
                format!("config file `{}` (from {from}) is not a file", p.display()),
            )
            .into()),
            Err(e) => Err(ConfigError::plain(
                p,
                format!(
                    "cannot read config file `{}` (from {from}): {e}",
                    p.display()
                ),
            )
            .into()),
        }
    };
    if let Some(p) = cli {
        return check(p, "--config");
    }
    let env = env.filter(|v| !v.is_empty());
    if let Some(v) = env {
        return check(Path::new(v), "$BANSURI_CONFIG");
    }
    let mut looked = vec![
        "--config PATH: not given".to_string(),
        "$BANSURI_CONFIG: not set".to_string(),
    ];
    for name in DEFAULT_NAMES {
        let full = cwd.join(name);
        match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => return Ok(PathBuf::from(name)),
            Ok(_) => looked.push(format!("{}: not a file", full.display())),
            Err(_) => looked.push(format!("{}: not found", full.display())),
        }
    }
    let mut e = ConfigError::plain(Path::new(""), "no config file found");
    e.note = Some(format!("looked at, in order:\n{}", looked.join("\n")));
    e.help = Some(format!(
        "pass `--config PATH`, set `BANSURI_CONFIG`, or create `{}` in {}",
        DEFAULT_NAMES[0],
        cwd.display()
    ));
    Err(e.into())
}

/// Names that a program embedding bansuri registered through the library API
/// (`crate::Builder`): the values a config may give to `command` with
/// `no-interface: true`, and to `notify` besides `"mail"` and `"none"`. The `bansuri`
/// binary registers none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// In-process task kinds.
    pub tasks: BTreeSet<String>,
    /// Notifiers.
    pub notifiers: BTreeSet<String>,
}

/// Reads and validates the config file at `path` (format by extension).
pub fn load(path: &Path) -> Result<Spec, ConfigErrors> {
    load_with(path, &Extensions::default())
}

/// [`load`], accepting the names in `ext`.
pub fn load_with(path: &Path, ext: &Extensions) -> Result<Spec, ConfigErrors> {
    load_adding(path, ext, &CommandLine::default())
}

/// [`load_with`], with what the command line adds (`--tasks`).
pub fn load_adding(path: &Path, ext: &Extensions, cli: &CommandLine) -> Result<Spec, ConfigErrors> {
    let format = Format::from_path(path)?;
    check_permissions(path)?;
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::plain(path, format!("cannot read `{}`: {e}", path.display())))?;
    match String::from_utf8(bytes) {
        Ok(text) => parse_str_adding(&text, path, format, ext, cli),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes());
            let err = ConfigError::at(
                path,
                path,
                &text,
                at..at + 1,
                "the file is not valid UTF-8 text",
            )
            .with_help("save the config as UTF-8");
            Err(err.into())
        }
    }
}

/// As root, refuse a file that anyone but root can change (as cron, sudo and sshd do):
/// owned by another user, writable by its group or others, or in a directory on the way
/// from `/` that another user can change (see `trust.rs`). Whoever can edit it could run
/// anything as root. Not root: nothing to check.
pub fn check_permissions(path: &Path) -> Result<(), ConfigErrors> {
    unsafe_to_trust(path).map_or(Ok(()), |u| {
        Err(ConfigError::plain(path, u.why).with_help(u.help).into())
    })
}

/// Why `path` must not be trusted by a root bansuri, if it must not.
pub(crate) fn unsafe_to_trust(path: &Path) -> Option<Untrusted> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    trust::check(&abs).err()
}

/// As root, for a Python task that runs as root: the working directory (first on the
/// module search path: whoever can write it can shadow any module) and the module's files
/// found in it (`a/__init__.py`, `a/b.py` or `a/b/__init__.py`, and their `__pycache__`),
/// by the rule of [`check_permissions`].
pub(crate) fn python_module_untrusted(workdir: &Path, module: &str) -> Option<Untrusted> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let mut candidates = vec![workdir.to_path_buf(), workdir.join("__pycache__")];
    let mut dir = workdir.to_path_buf();
    let parts: Vec<&str> = module.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            candidates.push(dir.join(format!("{part}.py")));
        }
        dir.push(part);
        candidates.push(dir.join("__init__.py"));
        candidates.push(dir.join("__pycache__"));
    }
    candidates
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .find_map(|p| unsafe_to_trust(p))
}

/// Parses and validates `text`, the content of `path`, as `format`. Pure apart from
/// checking that working directories exist and reading environment-files.
pub fn parse_str(text: &str, path: &Path, format: Format) -> Result<Spec, ConfigErrors> {
    parse_str_with(text, path, format, &Extensions::default())
}

/// [`parse_str`], accepting the names in `ext`.
pub fn parse_str_with(
    text: &str,
    path: &Path,
    format: Format,
    ext: &Extensions,
) -> Result<Spec, ConfigErrors> {
    parse_str_adding(text, path, format, ext, &CommandLine::default())
}

/// What the command line adds to a config file: `--tasks FILE`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// `--tasks FILE`: a task file (relative to the current directory) that replaces the
    /// config's `tasks-file`.
    pub tasks: Option<PathBuf>,
}

/// [`parse_str_with`], with what the command line adds. A reload of the config must pass
/// the same `cli` (else a `--tasks` array would disappear from the new `Spec`).
pub fn parse_str_adding(
    text: &str,
    path: &Path,
    format: Format,
    ext: &Extensions,
    cli: &CommandLine,
) -> Result<Spec, ConfigErrors> {
    let root = parse_tree(text, path, format)?;
    let from = cli
        .tasks
        .as_deref()
        .map(|p| validate::TasksFileFrom::CommandLine {
            path: p,
            config: true,
        });
    validate::validate(&root, text, path, &config_dir(path), ext, from).map_err(ConfigErrors)
}

/// `bansuri run --tasks FILE` without a config file: the task file alone, every setting
/// at its default. The commands run in the current directory; `Spec::source` is the task
/// file (made absolute), so the state directory is `.bansuri/<task file name>/` beside it.
pub fn tasks_only(tasks: &Path, ext: &Extensions) -> Result<Spec, ConfigErrors> {
    let source = std::fs::canonicalize(tasks).unwrap_or_else(|_| absolute(tasks));
    let root = tree::Node {
        value: tree::Value::Object(Vec::new()),
        span: 0..0,
    };
    let from = validate::TasksFileFrom::CommandLine {
        path: tasks,
        config: false,
    };
    validate::validate(&root, "", &source, &config_dir(&source), ext, Some(from))
        .map_err(ConfigErrors)
}

/// `text` (the content of `path`) as a spanned tree, or its syntax error as a diagnostic.
fn parse_tree(text: &str, path: &Path, format: Format) -> Result<tree::Node, ConfigErrors> {
    match format {
        Format::Json => json::parse(text),
        Format::Toml => toml::parse(text),
        Format::Yaml => yaml::parse(text),
    }
    .map_err(|e| {
        // No tree to find the values of `env` in: mask its blocks as written.
        let secrets = crate::diagnostic::env_blocks(text);
        let mut err = ConfigError::at_masking(path, path, text, e.span, e.message, &secrets);
        err.help = e.help;
        if let Some((span, note)) = e.note {
            let (line, col) = crate::diagnostic::line_col(text, span.start);
            err.note = Some(format!("{note} (line {line}, column {col})"));
        }
        ConfigErrors(vec![err])
    })
}

/// Why a task's `user`, looked up at its start, cannot be run as. `Display` is worded for
/// the job log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartUserError {
    /// Not in this machine's user database: what the lookup said.
    Unknown(String),
    /// The lookup failed (NSS down, say): what it said.
    Lookup(String),
    /// bansuri is not root and the user is someone else: what is wrong, how to fix it.
    NeedsRoot {
        /// What is wrong.
        what: String,
        /// How to fix it.
        help: &'static str,
    },
}

impl fmt::Display for StartUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartUserError::Unknown(what) | StartUserError::Lookup(what) => {
                write!(f, "{what} on this machine")
            }
            StartUserError::NeedsRoot { what, help } => write!(f, "{what} ({help})"),
        }
    }
}

impl std::error::Error for StartUserError {}

/// The identity of user `name`, looked up at a task's start when the config named a user
/// this machine did not know then (`crate::spec::Pending`).
pub(crate) fn start_user(name: &str) -> Result<crate::spec::UserSpec, StartUserError> {
    validate::lookup_user(name).map_err(|e| {
        let (what, help) = e.words();
        let what = what.to_owned();
        match e {
            validate::UserError::NeedsRoot(_) => StartUserError::NeedsRoot { what, help },
            validate::UserError::Unknown(_) => StartUserError::Unknown(what),
            validate::UserError::Lookup(_) => StartUserError::Lookup(what),
        }
    })
}

pub use envfile::StartError as EnvFileStartError;

/// The variables of an environment-file, read at a task's start when the file did not
/// exist at load time (`crate::spec::Pending`), with the checks of load time.
pub(crate) fn start_environment_file(
    path: &Path,
) -> Result<Vec<(String, String)>, EnvFileStartError> {
    envfile::read_for_start(path)
}

/// The config file's path made absolute (with the current directory) and tidied (`.`
/// removed), as in the state file's `config.path`.
pub fn absolute(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    validate::tidy(&abs)
}

/// The absolute directory of the config file.
fn config_dir(path: &Path) -> PathBuf {
    let abs = absolute(path);
    validate::tidy(abs.parent().unwrap_or(Path::new("/")))
}

/// Name of the directory beside the config file that holds the default state
/// directories, one per config file.
pub const DEFAULT_STATE_DIR: &str = ".bansuri";

/// The default state directory of config file `path`: `.bansuri/<file name>/` beside it,
/// so that several configs in one directory (`--config a.json`, `--config b.json`) run
/// side by side, each with its own state file, socket and inbox.
pub fn default_state_dir(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_os_string());
    config_dir(path).join(DEFAULT_STATE_DIR).join(name)
}

/// Where bansuri before per-config state directories kept the state of every config of a
/// directory: `.bansuri/` beside the config (see `control::legacy_dir`).
pub fn legacy_state_dir(path: &Path) -> PathBuf {
    config_dir(path).join(DEFAULT_STATE_DIR)
}

/// The state directory a config file names (`state_dir`), or the default
/// ([`default_state_dir`]).
///
/// For the control commands (`status`, `start`, ...), which must work while the file is
/// being edited: only the syntax is checked and only `state_dir` is read, so a config that
/// does not validate (a half-written edit) still leads to the running bansuri. A file that
/// cannot be read or parsed at all gives the default directory.
pub fn state_dir_of(path: &Path) -> PathBuf {
    let dir = config_dir(path);
    let default = default_state_dir(path);
    let Ok(format) = Format::from_path(path) else {
        return default;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return default;
    };
    let root = match format {
        Format::Json => json::parse(&text).ok(),
        Format::Toml => toml::parse(&text).ok(),
        Format::Yaml => yaml::parse(&text).ok(),
    };
    let Some(tree::Node {
        value: tree::Value::Object(members),
        ..
    }) = root
    else {
        return default;
    };
    for (key, node) in &members {
        if key.name == "state_dir" || key.name == "state-dir" {
            if let tree::Value::String(s) = &node.value {
                if !s.trim().is_empty() {
                    return validate::tidy(&dir.join(s));
                }
            }
        }
    }
    default
}

/// Resolve the state directory of a validated spec (`state_dir`, or the default,
/// [`default_state_dir`]).
pub fn state_dir(spec: &Spec) -> PathBuf {
    spec.globals
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&spec.source))
}

/// Parse a dashboard address as the config does: `HOST:PORT`, or a bare port meaning
/// `127.0.0.1:PORT`.
pub fn parse_dashboard(s: &str) -> Result<std::net::SocketAddr, DashboardAddrError> {
    validate::dashboard_addr(s)
}

/// A dashboard address that is neither `HOST:PORT` nor a port: as written (trimmed).
/// `Display` is the detail and the help, for the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardAddrError(pub String);

impl DashboardAddrError {
    /// How to write one.
    pub const HELP: &'static str = "write \"127.0.0.1:8080\" (loopback only), \"8080\" (the same), or \"0.0.0.0:8080\" (every interface)";

    /// What is wrong, without the help (the config's message gives the help apart).
    pub fn detail(&self) -> String {
        format!("`{}` is not an address and port", self.0)
    }
}

impl fmt::Display for DashboardAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.detail(), Self::HELP)
    }
}

impl std::error::Error for DashboardAddrError {}
