//! The one validator: walks the spanned tree (from JSON or TOML) and builds a `Spec`,
//! collecting every error instead of stopping at the first.
//!
//! Each field is checked on its own, so one bad value never hides another; a field that
//! fails gets its default so the walk can go on, and the `Spec` is only returned when
//! nothing failed.

mod extension;
mod needs;
#[cfg(test)]
pub(crate) use needs::RESOURCES_FIELDS;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::envfile::{self, ReadError};
use super::shorthand;
use super::tree::{Key, Node, Value};
use super::Extensions;
use crate::diagnostic::{line_col, ConfigError, ConfigWarning};
use crate::schedule::{CronSchedule, CronTz, Schedule};
mod srun;

use crate::spec::{
    CommandSpec, Globals, LogFormat, Nodes, OnFail, OutputTarget, Overlap, Spec, StderrTarget,
    StopSignal, TaskSpec,
};

/// A key the schema knows: its canonical spelling and the accepted aliases.
pub(crate) struct Field {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
}

const fn field(name: &'static str, aliases: &'static [&'static str]) -> Field {
    Field { name, aliases }
}

/// Top-level keys. snake_case is canonical here (SPEC 1.4), kebab-case accepted.
pub(crate) const GLOBAL_FIELDS: &[Field] = &[
    // For editors (`bansuri schema`); its value is not used.
    field("$schema", &[]),
    field("version", &[]),
    field("scripts", &[]),
    field("programs", &[]),
    field("check_interval", &["check-interval"]),
    field("watchdog_timeout", &["watchdog-timeout"]),
    field("max_parallel", &["max-parallel"]),
    field("log_file", &["log-file"]),
    field("log_format", &["log-format"]),
    field("log_max_bytes", &["log-max-bytes"]),
    field("log_backups", &["log-backups"]),
    field("notify_command", &["notify-command"]),
    field("notify_timeout", &["notify-timeout"]),
    field("state_dir", &["state-dir"]),
    field("sample_interval", &["sample-interval"]),
    field("dashboard", &[]),
    field("dashboard_hosts", &["dashboard-hosts"]),
    field("stop_before_end", &["stop-before-end"]),
    field("config_settle", &["config-settle"]),
    field("resources", &[]),
    field("requeue_on_end", &["requeue-on-end"]),
    field("nodes", &[]),
    field("tasks-file", &["tasks_file"]),
];

/// Task keys. kebab-case is canonical (SPEC 1.2), snake_case and Taskmaster's accepted.
pub(crate) const TASK_FIELDS: &[Field] = &[
    field("name", &[]),
    field("command", &["cmd"]),
    field("description", &[]),
    field("enabled", &[]),
    field("timer", &[]),
    field("schedule-cron", &["schedule_cron"]),
    field("timezone", &[]),
    field("overlap", &[]),
    field("timeout", &[]),
    field("on-fail", &["on_fail"]),
    field("times", &[]),
    field("success-codes", &["success_codes", "exitcodes"]),
    field("restart-delay", &["restart_delay"]),
    field("max-restart-delay", &["max_restart_delay"]),
    field("stopsignal", &[]),
    field("stoptime", &[]),
    field("working-directory", &["working_directory", "workingdir"]),
    field("env", &[]),
    field("environment-file", &["environment_file"]),
    field("stdout", &[]),
    field("stderr", &[]),
    field("numprocs", &[]),
    field("autostart", &[]),
    field("autorestart", &[]),
    field("startretries", &["start-retries", "start_retries"]),
    field("starttime", &["start-time", "start_time"]),
    field("user", &[]),
    field("priority", &[]),
    field("umask", &[]),
    field("depends-on", &["depends_on"]),
    field("log-max-bytes", &["log_max_bytes"]),
    field("log-backups", &["log_backups"]),
    field("notify", &[]),
    field("notify-on", &["notify_on"]),
    field("no-interface", &["no_interface"]),
    field("srun", &[]),
    field("cpus", &[]),
    field("gpus", &[]),
    field("mem", &[]),
    field("bind", &[]),
    field("mem-exceeded", &["mem_exceeded"]),
    field("expected-runtime", &["expected_runtime"]),
    field("checkpoint-signal", &["checkpoint_signal"]),
    field("checkpoint-lead", &["checkpoint_lead"]),
    field("array", &[]),
    field("parallel", &[]),
];

/// Keys of a task's `srun` object.
pub(crate) const SRUN_FIELDS: &[Field] = &[
    field("nodes", &[]),
    field("ntasks", &[]),
    field("cpus-per-task", &["cpus_per_task"]),
    field("overlap", &[]),
    field("extra-args", &["extra_args"]),
];

mod program;
pub(crate) use program::{lookup_user, UserError};
mod sweep;
pub(crate) use sweep::TasksFileFrom;
pub use sweep::TASKS_FILE_TASK;
#[cfg(test)]
pub(crate) use sweep::{ARRAY_FIELDS, TASKS_FILE_FIELDS};

use crate::text::duration::{self, HELP as DURATION_HELP};

/// Validates a parsed config. `config_dir` is the absolute directory of the config file;
/// `ext` the names registered through the library API (`no-interface` tasks, notifiers).
pub(crate) fn validate(
    root: &Node,
    text: &str,
    file: &Path,
    config_dir: &Path,
    ext: &Extensions,
    tasks_from: Option<TasksFileFrom>,
) -> Result<Spec, Vec<ConfigError>> {
    let mut secrets = Vec::new();
    secret_spans(root, &mut secrets);
    let mut v = Validator {
        text,
        secrets,
        file,
        config_dir: config_dir.to_path_buf(),
        errors: Vec::new(),
        warnings: Vec::new(),
        ext,
        notify_command_given: false,
        stop_before_end: Duration::ZERO,
    };
    let spec = v.root(root, tasks_from);
    match spec {
        Some(mut spec) if v.errors.is_empty() => {
            v.warnings.sort_by_key(|(at, _)| *at);
            spec.warnings = v.warnings.into_iter().map(|(_, w)| w).collect();
            Ok(spec)
        }
        _ => {
            // File order reads best; the walk finds some errors out of order (a task's
            // unknown keys before its name, say). The sort is stable.
            v.errors.sort_by_key(|(at, _)| *at);
            Err(v.errors.into_iter().map(|(_, e)| e).collect())
        }
    }
}

/// What is wrong with a value, how to fix it, and optionally a narrower place than the
/// whole value (an element of a list, a key of `env`).
struct Problem {
    detail: String,
    help: Option<String>,
    span: Option<Range<usize>>,
}

impl Problem {
    fn new(detail: impl Into<String>) -> Problem {
        Problem {
            detail: detail.into(),
            help: None,
            span: None,
        }
    }
    fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }
    fn at(mut self, span: Range<usize>) -> Problem {
        self.span = Some(span);
        self
    }
}

/// "a string (\"abc\")", "the number `3.5`", ... : what was found, briefly.
fn found(node: &Node) -> String {
    match &node.value {
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            let dots = if short.len() < s.len() { "..." } else { "" };
            format!("the string \"{}{dots}\"", short.escape_debug())
        }
        Value::Number(n) => format!("the number `{}`", n.raw),
        Value::Bool(b) => format!("`{b}`"),
        other => other.kind().to_string(),
    }
}

fn expected(what: &str, node: &Node) -> Problem {
    Problem::new(format!("expected {what}, found {}", found(node)))
}

fn as_str(node: &Node) -> Result<&str, Problem> {
    match &node.value {
        Value::String(s) if s.contains('\0') => {
            Err(Problem::new("the string contains a NUL character"))
        }
        Value::String(s) => Ok(s),
        _ => Err(expected("a string", node)),
    }
}

fn non_empty_str(node: &Node) -> Result<&str, Problem> {
    let s = as_str(node)?;
    if s.trim().is_empty() {
        return Err(Problem::new("cannot be empty"));
    }
    Ok(s)
}

/// `dashboard_hosts`: host names the dashboard answers to (the `Host` header), besides
/// its own address and loopback; lowercased.
fn dashboard_hosts(node: &Node) -> Result<Vec<String>, Problem> {
    let help =
        "a list of host names or addresses, e.g. [\"node042\", \"node042.cluster.example.org\"]";
    let Value::Array(items) = &node.value else {
        return Err(expected("a list of strings", node).help(help));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = non_empty_str(item).map_err(|p| p.at(item.span.clone()).help(help))?;
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
        if !ok {
            return Err(Problem::new(format!(
                "element {i} (`{s}`) is not a host name: letters, digits, `.`, `-`, `_`, and `:`/`[]` for an address or port"
            ))
            .at(item.span.clone())
            .help(help));
        }
        out.push(s.to_ascii_lowercase());
    }
    Ok(out)
}

fn as_bool(node: &Node) -> Result<bool, Problem> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        _ => Err(expected("`true` or `false`", node)),
    }
}

fn as_int(node: &Node) -> Result<i64, Problem> {
    match &node.value {
        Value::Number(n) if n.integer => n
            .as_i64()
            .ok_or_else(|| Problem::new(format!("`{}` is too large", n.raw))),
        Value::Number(n) => Err(Problem::new(format!(
            "expected a whole number, found `{}`",
            n.raw
        ))),
        _ => Err(expected("an integer", node)),
    }
}

/// Longest `config_settle`: a reload should not wait longer for an edit to end.
const MAX_CONFIG_SETTLE: Duration = Duration::from_secs(60);

/// SPEC 1.3: a bare number or numeric string is seconds, else humantime syntax; bounded
/// by [`duration::MAX`] (one parser with the command line: [`duration::parse`]).
fn duration(node: &Node) -> Result<Duration, Problem> {
    let parsed = match &node.value {
        Value::Number(n) => duration::from_secs(n.as_f64(), &n.raw),
        Value::String(s) => duration::parse(s),
        _ => return Err(expected("a duration", node).help(DURATION_HELP)),
    };
    parsed.map_err(|e| Problem::new(e.to_string()).help(DURATION_HELP))
}

/// The dashboard's address: `HOST:PORT`, or a bare port (loopback, `127.0.0.1:PORT`).
/// Port 0 picks a free port (the address in use is in the state file).
pub(crate) fn dashboard_addr(s: &str) -> Result<std::net::SocketAddr, super::DashboardAddrError> {
    let t = s.trim();
    if let Ok(port) = t.trim_start_matches(':').parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    t.parse::<std::net::SocketAddr>()
        .map_err(|_| super::DashboardAddrError(t.to_owned()))
}

fn positive_duration(node: &Node) -> Result<Duration, Problem> {
    let d = duration(node)?;
    if d.is_zero() {
        return Err(Problem::new("must be greater than zero").help(DURATION_HELP));
    }
    Ok(d)
}

/// A `timer` period: at least [`duration::MIN_TIMER`] (a shorter one cannot be kept by
/// the scheduler and only produces skipped runs).
/// `max_parallel`: a positive count, or null for no limit.
fn max_parallel(n: &Node) -> Result<Option<usize>, Problem> {
    if n.value == Value::Null {
        return Ok(None);
    }
    let v = as_int(n).map_err(|p| p.help("use a positive integer, or null for no limit"))?;
    if v < 1 {
        return Err(Problem::new(format!("must be at least 1, found {v}"))
            .help("omit it (or use null) for no limit"));
    }
    usize::try_from(v)
        .map(Some)
        .map_err(|_| Problem::new(format!("`{v}` is too large")))
}

/// A text that may be null (not set), but not empty.
fn optional_text(n: &Node) -> Result<Option<String>, Problem> {
    if n.value == Value::Null {
        return Ok(None);
    }
    non_empty_str(n).map(|s| Some(s.to_string()))
}

/// `sample_interval`: 0 (off), or a period no shorter than the floor.
fn sample_interval(n: &Node) -> Result<Duration, Problem> {
    match duration(n)? {
        Duration::ZERO => Ok(Duration::ZERO),
        _ => period(n, duration::MIN_SAMPLE_INTERVAL, "sample_interval"),
    }
}

/// `dashboard`: an address (or a port), null for none.
fn dashboard(n: &Node) -> Result<Option<std::net::SocketAddr>, Problem> {
    if n.value == Value::Null {
        return Ok(None);
    }
    dashboard_addr(non_empty_str(n)?)
        .map(Some)
        .map_err(|e| Problem::new(e.detail()).help(super::DashboardAddrError::HELP))
}

/// `config_settle`: a duration up to [`MAX_CONFIG_SETTLE`].
fn config_settle(n: &Node) -> Result<Duration, Problem> {
    let v = duration(n)?;
    if v > MAX_CONFIG_SETTLE {
        return Err(Problem::new(format!(
            "`{}` is longer than the {}s allowed",
            crate::text::fmt_dur_exact(v),
            MAX_CONFIG_SETTLE.as_secs()
        ))
        .help("a second or two is enough for any editor or copy"));
    }
    Ok(v)
}

/// `overlap`: what a due run does while the previous one still runs.
fn overlap(n: &Node) -> Result<Overlap, Problem> {
    choice(
        n,
        &[
            ("skip", Overlap::Skip),
            ("queue", Overlap::Queue),
            ("replace", Overlap::Replace),
            ("allow", Overlap::Allow),
        ],
    )
}

/// `times`: attempts per run, at least 1.
fn times(n: &Node) -> Result<u32, Problem> {
    let v = as_int(n)?;
    if v < 1 {
        return Err(Problem::new(format!("must be at least 1, found {v}"))
            .help("`times` counts attempts: 1 means no retry"));
    }
    u32::try_from(v).map_err(|_| Problem::new(format!("`{v}` is too large")))
}

fn timer_period(node: &Node) -> Result<Duration, Problem> {
    period(node, duration::MIN_TIMER, "timer period")
}

/// A period of bansuri's own work: greater than zero and at least `min` (shorter only
/// burns CPU: a config re-read or a /proc walk a thousand times a second).
fn period(node: &Node, min: Duration, what: &str) -> Result<Duration, Problem> {
    let d = positive_duration(node)?;
    if d < min {
        let min = crate::text::fmt_dur_exact(min);
        return Err(Problem::new(format!(
            "{} is shorter than the shortest {what}, {min}",
            crate::text::fmt_dur_exact(d),
        ))
        .help(format!("write at least \"{min}\"")));
    }
    Ok(d)
}

/// One of a few words, any case.
fn choice<T: Copy>(node: &Node, choices: &[(&str, T)]) -> Result<T, Problem> {
    let list = choices
        .iter()
        .map(|(w, _)| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let s = match &node.value {
        Value::String(s) => s,
        _ => return Err(expected(&format!("one of {list}"), node)),
    };
    let t = s.trim();
    for (w, v) in choices {
        if t.eq_ignore_ascii_case(w) {
            return Ok(*v);
        }
    }
    let p = Problem::new(format!(
        "expected one of {list}, found \"{}\"",
        s.escape_debug()
    ));
    let near = choices
        .iter()
        .map(|(w, _)| (strsim::jaro_winkler(&t.to_ascii_lowercase(), w), *w))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Err(match near {
        Some((_, w)) => p.help(format!("did you mean \"{w}\"?")),
        None => p,
    })
}

fn stop_signal(node: &Node) -> Result<StopSignal, Problem> {
    const ALL: [StopSignal; 7] = [
        StopSignal::Term,
        StopSignal::Int,
        StopSignal::Hup,
        StopSignal::Quit,
        StopSignal::Usr1,
        StopSignal::Usr2,
        StopSignal::Kill,
    ];
    let help = "use one of TERM, INT, HUP, QUIT, USR1, USR2, KILL (with or without `SIG`)";
    let s = as_str(node).map_err(|p| p.help(help))?;
    let up = s.trim().to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    ALL.iter()
        .copied()
        .find(|sig| sig.name() == bare)
        .ok_or_else(|| Problem::new(format!("unknown signal \"{}\"", s.escape_debug())).help(help))
}

fn timezone(node: &Node) -> Result<CronTz, Problem> {
    let s = as_str(node)?;
    match s.trim().to_ascii_lowercase().as_str() {
        "local" => Ok(CronTz::Local),
        "utc" | "z" => Ok(CronTz::Utc),
        _ => Err(
            Problem::new(format!("unknown time zone \"{}\"", s.escape_debug()))
                .help("use \"local\" (the machine's time zone, the default) or \"UTC\""),
        ),
    }
}

fn command(node: &Node) -> Result<CommandSpec, Problem> {
    let help = "write a shell command (\"python run.py --fast\") or an argv list ([\"python\", \"run.py\"])";
    match &node.value {
        Value::String(s) => {
            if s.trim().is_empty() {
                return Err(Problem::new("the command is empty").help(help));
            }
            if s.contains('\0') {
                return Err(Problem::new("the command contains a NUL character"));
            }
            Ok(CommandSpec::Shell(s.clone()))
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Problem::new("the command list is empty").help(help));
            }
            let mut argv = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match &item.value {
                    Value::String(s) if s.contains('\0') => {
                        return Err(
                            Problem::new(format!("element {i} contains a NUL character"))
                                .at(item.span.clone()),
                        )
                    }
                    Value::String(s) if i == 0 && s.trim().is_empty() => {
                        return Err(Problem::new("the program (first element) is empty")
                            .at(item.span.clone()))
                    }
                    Value::String(s) => argv.push(s.clone()),
                    _ => {
                        return Err(Problem::new(format!(
                            "element {i} of the command list must be a string, found {}",
                            found(item)
                        ))
                        .at(item.span.clone())
                        .help("quote numbers too: [\"sleep\", \"10\"]"))
                    }
                }
            }
            Ok(CommandSpec::Argv(argv))
        }
        _ => Err(expected("a command string or a list of strings", node).help(help)),
    }
}

fn success_codes(node: &Node) -> Result<Vec<i32>, Problem> {
    let code = |n: &Node| -> Result<i32, Problem> {
        let v = as_int(n).map_err(|p| p.at(n.span.clone()))?;
        if !(0..=255).contains(&v) {
            return Err(
                Problem::new(format!("exit code {v} is out of range 0..=255")).at(n.span.clone()),
            );
        }
        Ok(v as i32)
    };
    match &node.value {
        Value::Number(_) => Ok(vec![code(node)?]),
        Value::Array(items) if items.is_empty() => {
            Err(Problem::new("the list of exit codes cannot be empty")
                .help("omit the field to accept only 0"))
        }
        Value::Array(items) => items.iter().map(code).collect(),
        _ => Err(expected("an exit code or a list of exit codes", node)),
    }
}

/// The longest task name, in bytes: names are columns of tables and parts of every log
/// line; a longer one is a mistake (and a 64 KiB one overflowed formatting widths).
pub(crate) const MAX_NAME: usize = 200;

fn task_name(node: &Node) -> Result<String, Problem> {
    let s = as_str(node)?;
    if s.is_empty() {
        return Err(Problem::new("a task name cannot be empty"));
    }
    // Only the start of a long name is shown: the message must stay readable.
    let shown = |s: &str| {
        let head: String = s.chars().take(40).collect();
        let dots = if head.len() < s.len() { "..." } else { "" };
        format!("\"{}{dots}\"", head.escape_debug())
    };
    if s.len() > MAX_NAME {
        return Err(Problem::new(format!(
            "{} is {} bytes long: a task name is at most {MAX_NAME} bytes",
            shown(s),
            s.len()
        ))
        .help("use a short name; `description` can hold a longer text"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Problem::new(format!(
            "{} contains {c:?}: names may use only letters, digits, `.`, `_` and `-`",
            shown(s)
        ))
        .help(format!("for instance \"{}\"", shorthand::sanitize(s))));
    }
    Ok(s.to_string())
}

fn version(node: &Node) -> Result<String, Problem> {
    let raw = match &node.value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.raw.clone(),
        _ => return Err(expected("a version string such as \"1.0\"", node)),
    };
    let major = raw.split('.').next().unwrap_or("");
    if major.is_empty() || !major.chars().all(|c| c.is_ascii_digit()) {
        return Err(Problem::new(format!(
            "\"{}\" is not a version number",
            raw.escape_debug()
        ))
        .help("write \"1.0\""));
    }
    if major.trim_start_matches('0') != "1" {
        return Err(
            Problem::new(format!("unsupported config version \"{raw}\"")).help(
                "this bansuri reads version 1 configs (\"1.0\"); a newer bansuri may read this one",
            ),
        );
    }
    Ok(raw)
}

/// Removes `.` components (`/a/./b` -> `/a/b`) so paths read well in logs. `..` stays: it
/// cannot be resolved without the file system (symlinks).
pub(crate) fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        if c != Component::CurDir {
            out.push(c.as_os_str());
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Normalized spelling for "did you mean": case and `_`/`-` do not matter.
fn norm(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

/// The canonical name of the known field nearest to `key`, when near enough.
pub(crate) fn suggest(key: &str, fields: &[Field]) -> Option<&'static str> {
    let k = norm(key);
    let mut best: Option<(f64, &'static str)> = None;
    for f in fields {
        for spelling in std::iter::once(&f.name).chain(f.aliases.iter()) {
            let s = norm(spelling);
            let mut score = strsim::jaro_winkler(&k, &s);
            if k.len() >= 3 && (s.contains(&k) || k.contains(&s)) && s.len() >= 3 {
                score = score.max(0.85);
            }
            if best.map_or(true, |(b, _)| score > b) {
                best = Some((score, f.name));
            }
        }
    }
    best.filter(|(score, _)| *score >= 0.8)
        .map(|(_, name)| name)
}

fn find_field(fields: &'static [Field], key: &str) -> Option<&'static Field> {
    fields
        .iter()
        .find(|f| f.name == key || f.aliases.contains(&key))
}

/// A known field as found in an object.
struct Got<'n> {
    field: &'static str,
    key: &'n Key,
    node: &'n Node,
}

/// The known fields of one object, first spelling kept when given twice.
struct Fields<'n>(Vec<Got<'n>>);

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&Got<'n>> {
        self.0.iter().find(|g| g.field == name)
    }
}

fn in_task(task: Option<&str>) -> String {
    task.map_or(String::new(), |t| format!(" in task `{t}`"))
}

/// The byte ranges of every value of an `env` object, wherever it is: an error's snippet
/// shows them as `***` (a secret on the line of an error in another field must not reach
/// stderr or the job log).
fn secret_spans(node: &Node, out: &mut Vec<Range<usize>>) {
    match &node.value {
        Value::Object(members) => {
            for (key, value) in members {
                if key.name == "env" {
                    match &value.value {
                        Value::Object(vars) => out.extend(vars.iter().map(|(_, v)| v.span.clone())),
                        _ => out.push(value.span.clone()),
                    }
                } else {
                    secret_spans(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|n| secret_spans(n, out)),
        _ => {}
    }
}

struct Validator<'a> {
    text: &'a str,
    /// The values of `env` (see [`secret_spans`]).
    secrets: Vec<Range<usize>>,
    file: &'a Path,
    config_dir: PathBuf,
    /// Each error with its (line, column) in the config file, to sort them.
    errors: Vec<((usize, usize), ConfigError)>,
    /// Each warning with its (line, column), likewise.
    warnings: Vec<((usize, usize), ConfigWarning)>,
    /// Names registered through the library API.
    ext: &'a Extensions,
    /// The top-level `notify_command` key is present (valid or not).
    notify_command_given: bool,
    /// The global `stop_before_end` (read before the tasks), for `checkpoint-lead`.
    stop_before_end: Duration,
}

impl<'a> Validator<'a> {
    fn error(
        &self,
        span: Range<usize>,
        task: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        let mut e = ConfigError::at_masking(
            self.file,
            self.file,
            self.text,
            span,
            message,
            &self.secrets,
        );
        e.task = task.map(String::from);
        e.field = field.map(String::from);
        e
    }

    fn push(&mut self, e: ConfigError) {
        let at = (e.line.unwrap_or(0), e.column.unwrap_or(0));
        self.errors.push((at, e));
    }

    /// Record `e` as a warning: the file stays valid.
    fn warn_error(&mut self, e: ConfigError) {
        let at = (e.line.unwrap_or(0), e.column.unwrap_or(0));
        self.warnings.push((at, ConfigWarning(e)));
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn report(&mut self, task: Option<&str>, got: &Got, p: Problem) {
        let message = format!("invalid `{}`{}: {}", got.key.name, in_task(task), p.detail);
        let span = p.span.unwrap_or_else(|| got.node.span.clone());
        let mut e = self.error(span, task, Some(got.field), message);
        e.help = p.help;
        self.push(e);
    }

    /// A warning about a field: the file loads all the same.
    fn warn(&mut self, task: Option<&str>, got: &Got, p: Problem) {
        let message = format!("`{}`{}: {}", got.key.name, in_task(task), p.detail);
        let span = p.span.unwrap_or_else(|| got.node.span.clone());
        let mut e = self.error(span, task, Some(got.field), message);
        e.help = p.help;
        let at = (e.line.unwrap_or(0), e.column.unwrap_or(0));
        self.warnings.push((at, ConfigWarning(e)));
    }

    /// Converts a field when present; `None` when absent or invalid (then reported).
    fn take<T>(
        &mut self,
        task: Option<&str>,
        got: Option<&Got>,
        conv: impl FnOnce(&Node) -> Result<T, Problem>,
    ) -> Option<T> {
        let got = got?;
        match conv(got.node) {
            Ok(v) => Some(v),
            Err(p) => {
                self.report(task, got, p);
                None
            }
        }
    }

    /// Sorts an object's members into known fields, reporting unknown keys and fields
    /// given twice (under one spelling or two).
    fn gather<'n>(
        &mut self,
        members: &'n [(Key, Node)],
        fields: &'static [Field],
        task: Option<&str>,
    ) -> Fields<'n> {
        let mut got: Vec<Got<'n>> = Vec::new();
        for (key, node) in members {
            let Some(f) = find_field(fields, &key.name) else {
                self.unknown(key, task);
                continue;
            };
            if let Some(first) = got.iter().find(|g| g.field == f.name) {
                let first_line = self.line(&first.key.span);
                let e = if first.key.name == key.name {
                    self.error(
                        key.span.clone(),
                        task,
                        Some(f.name),
                        format!("duplicate key `{}`{}", key.name, in_task(task)),
                    )
                    .with_note(format!(
                        "`{}` is first given at line {first_line}",
                        key.name
                    ))
                } else {
                    self.error(
                        key.span.clone(),
                        task,
                        Some(f.name),
                        format!(
                            "`{}` given twice{}: as `{}` and as `{}`",
                            f.name,
                            in_task(task),
                            first.key.name,
                            key.name
                        ),
                    )
                    .with_note(format!(
                        "`{}` is at line {first_line}; `{}` is another spelling of the same field",
                        first.key.name, key.name
                    ))
                };
                self.push(e.with_help("keep only one of them"));
                continue;
            }
            got.push(Got {
                field: f.name,
                key,
                node,
            });
        }
        Fields(got)
    }

    fn unknown(&mut self, key: &Key, task: Option<&str>) {
        let name = key.name.as_str();
        let (message, own, other, other_help) = match task {
            Some(t) => (
                format!("unknown field `{name}` in task `{t}`"),
                TASK_FIELDS,
                GLOBAL_FIELDS,
                "is a global setting: move it to the top level of the file, outside `scripts`",
            ),
            None => (
                format!("unknown top-level key `{name}`"),
                GLOBAL_FIELDS,
                TASK_FIELDS,
                "is a task field: it belongs inside an entry of `scripts`",
            ),
        };
        let mut e = self.error(key.span.clone(), task, Some(name), message);
        if find_field(other, name).is_some() {
            e.help = Some(format!("`{name}` {other_help}"));
        } else if let Some(s) = suggest(name, own) {
            e.help = Some(format!("did you mean `{s}`?"));
        } else {
            let names: Vec<String> = own.iter().map(|f| format!("`{}`", f.name)).collect();
            e.note = Some(format!("known fields: {}", names.join(", ")));
        }
        self.push(e);
    }

    fn root(&mut self, root: &Node, tasks_from: Option<TasksFileFrom>) -> Option<Spec> {
        let Value::Object(members) = &root.value else {
            let mut e = self.error(
                root.span.clone(),
                None,
                None,
                format!("the config must be an object, found {}", root.value.kind()),
            );
            if matches!(root.value, Value::Array(_)) {
                e.help = Some("put the list under `scripts`: {\"scripts\": [ ... ]}".into());
            }
            self.push(e);
            return None;
        };
        let f = self.gather(members, GLOBAL_FIELDS, None);
        let version = self.take(None, f.get("version"), version);
        self.take(None, f.get("$schema"), |n| as_str(n).map(|_| ()));
        let globals = self.globals(&f);
        // A task file given (even one that failed) stands for `scripts`.
        let task_file_given = tasks_from.is_some() || f.get("tasks-file").is_some();
        let task_file = self.tasks_file(f.get("tasks-file"), tasks_from);

        if let (Some(s), Some(p)) = (f.get("scripts"), f.get("programs")) {
            let line = self.line(&s.key.span);
            let e = self
                .error(
                    p.key.span.clone(),
                    None,
                    Some("programs"),
                    "both `scripts` and `programs` are given",
                )
                .with_note(format!("`scripts` is at line {line}"))
                .with_help("use one list of tasks: `scripts` (Bansuri) or `programs` (Taskmaster)");
            self.push(e);
            return None;
        }
        if let Some(p) = f.get("programs") {
            let entries = self.programs(p)?;
            let tasks = self.tasks(&entries, task_file);
            return Some(Spec {
                source: self.file.to_path_buf(),
                version,
                globals,
                tasks,
                warnings: Vec::new(),
            });
        }
        let Some(scripts) = f.get("scripts") else {
            if task_file_given {
                return Some(Spec {
                    source: self.file.to_path_buf(),
                    version,
                    globals,
                    tasks: self.tasks(&[], task_file),
                    warnings: Vec::new(),
                });
            }
            let head = root.span.start..root.span.start + 1;
            let e = self
                .error(head, None, Some("scripts"), "missing `scripts`: the list of tasks to run")
                .with_help("add \"scripts\": [\"python monitor.py\", {\"name\": \"backup\", \"command\": \"./backup.sh\"}]");
            self.push(e);
            return None;
        };
        let Value::Array(entries) = &scripts.node.value else {
            let p = expected("a list of tasks", scripts.node);
            self.report(None, scripts, p);
            return None;
        };
        let tasks = self.tasks(entries, task_file);
        Some(Spec {
            source: self.file.to_path_buf(),
            version,
            globals,
            tasks,
            warnings: Vec::new(),
        })
    }

    /// Taskmaster's `programs:` map as the task list: each key names its task.
    fn programs(&mut self, p: &Got) -> Option<Vec<Node>> {
        let Value::Object(members) = &p.node.value else {
            let pr = expected("a map of program names to their settings", p.node)
                .help("programs:\n  worker:\n    cmd: ./worker.sh");
            self.report(None, p, pr);
            return None;
        };
        let mut entries = Vec::with_capacity(members.len());
        for (key, node) in members {
            let Value::Object(fields) = &node.value else {
                let e = self
                    .error(
                        node.span.clone(),
                        Some(&key.name),
                        Some("programs"),
                        format!(
                            "invalid program `{}`: expected its settings (a map), found {}",
                            key.name,
                            node.value.kind()
                        ),
                    )
                    .with_help("programs:\n  worker:\n    cmd: ./worker.sh");
                self.push(e);
                continue;
            };
            if let Some((k, _)) = fields.iter().find(|(k, _)| k.name == "name") {
                let e = self
                    .error(
                        k.span.clone(),
                        Some(&key.name),
                        Some("name"),
                        format!(
                            "`name` inside program `{}`: the program's key is its name",
                            key.name
                        ),
                    )
                    .with_help("remove `name`, or rename the program's key");
                self.push(e);
                continue;
            }
            let mut with_name = Vec::with_capacity(fields.len() + 1);
            with_name.push((
                Key {
                    name: "name".into(),
                    span: key.span.clone(),
                },
                Node {
                    value: Value::String(key.name.clone()),
                    span: key.span.clone(),
                },
            ));
            with_name.extend(fields.iter().cloned());
            entries.push(Node {
                value: Value::Object(with_name),
                span: node.span.clone(),
            });
        }
        Some(entries)
    }

    fn globals(&mut self, f: &Fields) -> Globals {
        let d = Globals::default();
        let check_interval = self
            .take(None, f.get("check_interval"), |n| {
                period(n, duration::MIN_CHECK_INTERVAL, "check_interval")
            })
            .unwrap_or(d.check_interval);
        let watchdog_timeout = self
            .take(None, f.get("watchdog_timeout"), duration)
            .unwrap_or(d.watchdog_timeout);
        let max_parallel = self
            .take(None, f.get("max_parallel"), max_parallel)
            .unwrap_or(d.max_parallel);
        let log_file = self
            .take(None, f.get("log_file"), optional_text)
            .unwrap_or(d.log_file);
        let log_format = self
            .take(None, f.get("log_format"), |n| {
                choice(n, &[("text", LogFormat::Text), ("json", LogFormat::Json)])
            })
            .unwrap_or(d.log_format);
        let log_max_bytes = self
            .take(None, f.get("log_max_bytes"), program::byte_size)
            .unwrap_or(d.log_max_bytes);
        let log_backups = self
            .take(None, f.get("log_backups"), program::backups)
            .unwrap_or(d.log_backups);
        self.notify_command_given = f
            .get("notify_command")
            .is_some_and(|g| g.node.value != Value::Null);
        let notify_command = self
            .take(None, f.get("notify_command"), |n| {
                optional_text(n).map_err(|p| {
                    p.help("e.g. \"mail -s '[bansuri] {task} failed' me@example.org\"")
                })
            })
            .unwrap_or(d.notify_command);
        let notify_timeout = self
            .take(None, f.get("notify_timeout"), positive_duration)
            .unwrap_or(d.notify_timeout);
        let config_dir = self.config_dir.clone();
        let state_dir = self
            .take(None, f.get("state_dir"), |n| {
                if n.value == Value::Null {
                    return Ok(None);
                }
                let s = non_empty_str(n)?;
                Ok(Some(tidy(&config_dir.join(s))))
            })
            .unwrap_or(d.state_dir);
        let sample_interval = self
            .take(None, f.get("sample_interval"), sample_interval)
            .unwrap_or(d.sample_interval);
        let dashboard = self
            .take(None, f.get("dashboard"), dashboard)
            .unwrap_or(d.dashboard);
        let dashboard_hosts = self
            .take(None, f.get("dashboard_hosts"), dashboard_hosts)
            .unwrap_or(d.dashboard_hosts);
        let stop_before_end = self
            .take(None, f.get("stop_before_end"), duration)
            .unwrap_or(d.stop_before_end);
        self.stop_before_end = stop_before_end;
        let config_settle = self
            .take(None, f.get("config_settle"), config_settle)
            .unwrap_or(d.config_settle);
        let resources = self.resources(f.get("resources"));
        let requeue_on_end = self
            .take(None, f.get("requeue_on_end"), as_bool)
            .unwrap_or(d.requeue_on_end);
        let nodes = self
            .take(None, f.get("nodes"), |n| {
                choice(n, &[("all", Nodes::All), ("local", Nodes::Local)])
            })
            .unwrap_or(d.nodes);
        Globals {
            check_interval,
            watchdog_timeout,
            max_parallel,
            log_file,
            log_format,
            log_max_bytes,
            log_backups,
            notify_command,
            notify_timeout,
            state_dir,
            sample_interval,
            dashboard,
            dashboard_hosts,
            stop_before_end,
            config_settle,
            resources,
            requeue_on_end,
            nodes,
        }
    }

    /// The task list, with the task file's array task (`tasks`) last when there is one.
    fn tasks(
        &mut self,
        entries: &[Node],
        task_file: Option<(TaskSpec, crate::spec::Sweep)>,
    ) -> Vec<TaskSpec> {
        let mut tasks = Vec::with_capacity(entries.len());
        let mut numprocs: Vec<Option<u32>> = Vec::with_capacity(entries.len());
        let mut sweeps: Vec<Option<crate::spec::Sweep>> = Vec::with_capacity(entries.len());
        let mut dep_spans: HashMap<String, Range<usize>> = HashMap::new();
        // Explicit names and where they were first given.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut shorthands: Vec<usize> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let label = format!("scripts[{i}]");
            match &entry.value {
                Value::String(s) => {
                    if s.trim().is_empty() || s.contains('\0') {
                        let what = if s.contains('\0') {
                            "contains a NUL character"
                        } else {
                            "is an empty command"
                        };
                        let e = self.error(
                            entry.span.clone(),
                            Some(&label),
                            Some("command"),
                            format!("invalid `{label}`: the entry {what}"),
                        );
                        self.push(e);
                    }
                    shorthands.push(tasks.len());
                    let command = CommandSpec::Shell(s.clone());
                    tasks.push(self.default_task(String::new(), true, command));
                    numprocs.push(None);
                    sweeps.push(None);
                }
                Value::Object(members) => {
                    let TaskRead {
                        task,
                        name,
                        extras,
                        sweep,
                    } = self.task(&label, entry, members);
                    sweeps.push(sweep);
                    if let Some(span) = extras.depends_span {
                        dep_spans.insert(task.name.clone(), span);
                    }
                    numprocs.push(extras.numprocs);
                    if let Some((name, span)) = name {
                        self.claim_name(&mut names, name, span, task_file.is_some());
                    }
                    tasks.push(task);
                }
                other => {
                    let e = self
                        .error(
                            entry.span.clone(),
                            Some(&label),
                            Some("scripts"),
                            format!(
                                "invalid `{label}`: expected a command string or a task object, found {}",
                                other.kind()
                            ),
                        )
                        .with_help("write \"python run.py\" or {\"name\": \"run\", \"command\": \"python run.py\"}");
                    self.push(e);
                }
            }
        }
        // Shorthand names come last so they never take a name an object task asked for.
        let mut taken: HashSet<String> = names.into_keys().collect();
        if task_file.is_some() {
            taken.insert(TASKS_FILE_TASK.to_owned());
        }
        for i in shorthands {
            let cmd = tasks[i].command.display();
            let name = shorthand::unique(&shorthand::derive_name(&cmd), &taken);
            taken.insert(name.clone());
            tasks[i].program.clone_from(&name);
            tasks[i].name = name;
        }
        let tasks = self.expand_all(tasks, numprocs, sweeps, task_file);
        self.check_dependencies(&tasks, &dep_spans);
        tasks
    }

    /// Record a task's valid `name` (at `span`) in `names`: a name given twice, or the
    /// task file's `tasks` beside a task file, is an error.
    fn claim_name(
        &mut self,
        names: &mut HashMap<String, usize>,
        name: String,
        span: Range<usize>,
        task_file: bool,
    ) {
        // Offsets, not lines: a line number costs a scan of the file, so it is computed
        // only for an error (a config can have thousands of tasks).
        let offset = span.start;
        if task_file && name == TASKS_FILE_TASK {
            let e = self
                .error(
                    span.clone(),
                    Some(&name),
                    Some("name"),
                    format!("task name `{name}` is the task file's"),
                )
                .with_note(format!(
                    "the task file's commands run as `{name}[0]`, `{name}[1]`, ..."
                ))
                .with_help("rename this task");
            self.push(e);
        }
        if let Some(&first) = names.get(&name) {
            let first = self.line(&(first..first));
            let e = self
                .error(
                    span,
                    Some(&name),
                    Some("name"),
                    format!("duplicate task name `{name}`"),
                )
                .with_note(format!("`{name}` is first used at line {first}"))
                .with_help("task names must be unique: rename one of them");
            self.push(e);
        } else {
            names.insert(name, offset);
        }
    }

    /// Each `numprocs` task replaced by its instances, each array task (and the task
    /// file's, last) by its elements.
    fn expand_all(
        &mut self,
        tasks: Vec<TaskSpec>,
        numprocs: Vec<Option<u32>>,
        sweeps: Vec<Option<crate::spec::Sweep>>,
        task_file: Option<(TaskSpec, crate::spec::Sweep)>,
    ) -> Vec<TaskSpec> {
        let mut staged: Vec<(TaskSpec, Option<crate::spec::Sweep>)> =
            Vec::with_capacity(tasks.len() + 1);
        for ((task, n), s) in tasks.into_iter().zip(numprocs).zip(sweeps) {
            if s.is_some() {
                staged.push((task, s));
            } else {
                staged.extend(
                    self.expand_instances(vec![(task, n)])
                        .into_iter()
                        .map(|t| (t, None)),
                );
            }
        }
        staged.extend(task_file.map(|(t, s)| (t, Some(s))));
        Self::expand_arrays(staged)
    }

    fn default_task(&self, name: String, shorthand: bool, command: CommandSpec) -> TaskSpec {
        let mut t = TaskSpec::with_defaults(&name, command, self.config_dir.clone());
        t.shorthand = shorthand;
        t
    }

    /// One task object. Also returns its name and the name's span when the name is valid.
    fn task(&mut self, index_label: &str, node: &Node, members: &[(Key, Node)]) -> TaskRead {
        // The name first, so every other error can say which task it is about.
        let name_got = members
            .iter()
            .find(|(k, _)| k.name == "name")
            .map(|(_, n)| n);
        let label = match name_got.map(task_name) {
            Some(Ok(n)) => n,
            _ => index_label.to_string(),
        };
        let t = Some(label.as_str());
        let f = self.gather(members, TASK_FIELDS, t);
        let head = node.span.start..node.span.start + 1;
        let (name, command) = self.name_and_command(t, &f, head);
        let mut task = self.default_task(label.clone(), false, command);
        if let Some(d) = self.take(t, f.get("description"), |n| as_str(n).map(String::from)) {
            task.description = d;
        }
        if let Some(b) = self.take(t, f.get("enabled"), as_bool) {
            task.enabled = b;
        }
        task.schedule = self.schedule(t, &f);
        self.run_policy(t, &f, &mut task);
        self.environment(t, &f, &mut task);
        self.outputs(t, &f, &mut task);
        self.notify_fields(t, &f, &mut task);
        if let Some(g) = f.get("srun") {
            task.srun = self.srun(t, g);
        }
        let extras = self.program(t, &f, &mut task);
        self.needs(t, &f, &mut task);
        self.python_module_trust(t, &f, &task);
        let sweep = self.sweep(t, &f, &task, extras.numprocs.is_some());
        TaskRead {
            task,
            name,
            extras,
            sweep,
        }
    }

    /// A task's `name` (with its span, when valid) and `command`, each missing one an
    /// error; the command is empty after an error (the config does not load anyway).
    fn name_and_command(
        &mut self,
        t: Option<&str>,
        f: &Fields,
        head: Range<usize>,
    ) -> (Option<(String, Range<usize>)>, CommandSpec) {
        let label = t.unwrap_or_default();
        let name = match f.get("name") {
            Some(g) => self
                .take(t, Some(g), task_name)
                .map(|n| (n, g.node.span.clone())),
            None => {
                let e = self
                    .error(
                        head.clone(),
                        t,
                        Some("name"),
                        format!("missing `name` in task `{label}`"),
                    )
                    .with_help("every task object needs a unique name, e.g. \"name\": \"backup\"");
                self.push(e);
                None
            }
        };
        let command = match f.get("command") {
            Some(g) => self.take(t, Some(g), command),
            None => {
                let e = self
                    .error(
                        head,
                        t,
                        Some("command"),
                        format!("missing `command` in task `{label}`"),
                    )
                    .with_help(
                        "add \"command\": \"python run.py\" (a shell command) or an argv list",
                    );
                self.push(e);
                None
            }
        }
        .unwrap_or_else(|| CommandSpec::Shell(String::new()));
        (name, command)
    }

    /// When a run counts as failed and what follows: overlap, timeout, retries, success
    /// codes, restart delays, the stop signal and its grace.
    fn run_policy(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        if let Some(o) = self.take(t, f.get("overlap"), overlap) {
            task.overlap = o;
        }
        task.timeout = self.take(t, f.get("timeout"), positive_duration);
        if let Some(o) = self.take(t, f.get("on-fail"), |n| {
            choice(n, &[("stop", OnFail::Stop), ("restart", OnFail::Restart)])
        }) {
            task.on_fail = o;
        }
        if let Some(times) = self.take(t, f.get("times"), times) {
            task.times = times;
        }
        if let Some(c) = self.take(t, f.get("success-codes"), success_codes) {
            task.success_codes = c;
        }
        self.restart_delays(t, f, task);
        if let Some(s) = self.take(t, f.get("stopsignal"), stop_signal) {
            task.stop_signal = s;
        }
        task.stop_time = self.take(t, f.get("stoptime"), duration);
    }

    /// Where a task runs and with what: working directory, environment file, `env`.
    fn environment(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        if let Some(wd) = f.get("working-directory") {
            if let Some(dir) = self.working_directory(t, wd) {
                task.working_directory = dir;
            }
        }
        let mut env = BTreeMap::new();
        if let Some(g) = f.get("environment-file") {
            if let Some((path, pairs)) = self.environment_file(t, g) {
                task.environment_file = Some(path);
                match pairs {
                    Some(pairs) => env.extend(pairs),
                    None => task.pending.environment_file = true,
                }
            }
        }
        if let Some(g) = f.get("env") {
            env.extend(self.env(t, g));
        }
        task.env = env;
    }

    /// Where a task's stdout and stderr go.
    fn outputs(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        let wd = task.working_directory.clone();
        for name in ["stdout", "stderr"] {
            if let Some(g) = f.get(name) {
                self.shell_in_path(t, g);
            }
        }
        if let Some(out) = self.take(t, f.get("stdout"), |n| {
            Ok(match &n.value {
                Value::Null => OutputTarget::JobLog,
                Value::String(s) if is_joblog_word(s) => OutputTarget::JobLog,
                _ => OutputTarget::File(output_path(n, &wd)?),
            })
        }) {
            task.stdout = out;
        }
        if let Some(err) = self.take(t, f.get("stderr"), |n| {
            Ok(match &n.value {
                Value::Null => StderrTarget::Combined,
                Value::String(s) if s.trim().eq_ignore_ascii_case("combined") => {
                    StderrTarget::Combined
                }
                Value::String(s) if is_joblog_word(s) => StderrTarget::JobLog,
                _ => StderrTarget::File(output_path(n, &wd)?),
            })
        }) {
            task.stderr = err;
        }
    }

    fn schedule(&mut self, t: Option<&str>, f: &Fields) -> Schedule {
        let timer_got = f.get("timer");
        let cron_got = f.get("schedule-cron");
        let tz_got = f.get("timezone");
        let timer = self.take(t, timer_got, timer_period);
        let tz = self.take(t, tz_got, timezone).unwrap_or(CronTz::Local);
        let cron = self.take(t, cron_got, |n| {
            let expr =
                non_empty_str(n).map_err(|p| p.help("e.g. \"*/5 * * * *\" or \"@daily\""))?;
            CronSchedule::parse(expr.trim(), tz).map_err(|e| Problem::new(e.to_string()))
        });
        if let (Some(timer), Some(cron)) = (timer_got, cron_got) {
            let timer_line = self.line(&timer.key.span);
            let e = self
                .error(
                    cron.key.span.clone(),
                    t,
                    Some("schedule-cron"),
                    format!(
                        "both `{}` and `{}` are given{}",
                        timer.key.name,
                        cron.key.name,
                        in_task(t)
                    ),
                )
                .with_note(format!("`{}` is at line {timer_line}", timer.key.name))
                .with_help(
                    "keep one: a task runs on a fixed interval or on a cron schedule, not both",
                );
            self.push(e);
        }
        if let (Some(tz), None) = (tz_got, cron_got) {
            let e = self
                .error(
                    tz.key.span.clone(),
                    t,
                    Some("timezone"),
                    format!(
                        "`timezone`{} only applies to `schedule-cron`, which is not given",
                        in_task(t)
                    ),
                )
                .with_help("remove `timezone`, or add a `schedule-cron`");
            self.push(e);
        }
        match (cron, timer) {
            (Some(c), _) => Schedule::Cron(c),
            (None, Some(d)) => Schedule::Timer(d),
            (None, None) => Schedule::Once,
        }
    }

    fn restart_delays(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        let rd_got = f.get("restart-delay");
        let max_got = f.get("max-restart-delay");
        let rd = self.take(t, rd_got, duration);
        let max = self.take(t, max_got, duration);
        if let Some(d) = rd {
            task.restart_delay = d;
        }
        if let Some(d) = max {
            task.max_restart_delay = d;
        }
        if task.max_restart_delay >= task.restart_delay
            || (rd_got.is_some() && rd.is_none())
            || (max_got.is_some() && max.is_none())
        {
            return;
        }
        let shown = |d: Duration| crate::text::fmt_dur_exact(d);
        let p_rd = shown(task.restart_delay);
        let p_max = shown(task.max_restart_delay);
        if let Some(g) = max_got {
            let p = Problem::new(format!(
                "{p_max} is shorter than `restart-delay` ({p_rd}); the delay doubles from `restart-delay` up to this cap"
            ))
            .help(format!("make it at least {p_rd}"));
            self.report(t, g, p);
        } else if let Some(g) = rd_got {
            let p = Problem::new(format!(
                "{p_rd} is longer than the default `max-restart-delay` ({p_max})"
            ))
            .help(format!(
                "set `max-restart-delay` to at least {p_rd} as well"
            ));
            self.report(t, g, p);
        }
    }

    /// `working-directory`: a path is required, its directory is not. One that is missing
    /// now (created later by a setup task, say) is a warning; each start checks it again.
    fn working_directory(&mut self, t: Option<&str>, g: &Got) -> Option<PathBuf> {
        let dir = self.config_dir.clone();
        let path = self.take(t, Some(g), |n| Ok(tidy(&dir.join(non_empty_str(n)?))))?;
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => return Some(path),
            Ok(_) => format!("`{}` is not a directory", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("directory `{}` does not exist (yet)", path.display())
            }
            Err(e) => format!("cannot access `{}`: {e}", path.display()),
        };
        let relative = matches!(&g.node.value, Value::String(s) if Path::new(s).is_relative());
        let help = format!(
            "each start of the task checks again and fails while it is not a directory; the other tasks run{}",
            if relative {
                " (relative paths are relative to the config file's directory)"
            } else {
                ""
            }
        );
        self.warn(t, g, Problem::new(problem).help(help));
        Some(path)
    }

    fn env(&mut self, t: Option<&str>, g: &Got) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Value::Object(members) = &g.node.value else {
            // Not `expected(..)`: it would quote the value, which may be a secret.
            let p = Problem::new(format!(
                "expected an object of NAME: value pairs, found {}",
                g.node.value.kind()
            ))
            .help("write \"env\": {\"OMP_NUM_THREADS\": \"4\"}");
            self.report(t, g, p);
            return out;
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (key, node) in members {
            if let Err(p) = env_name(&key.name) {
                self.report(t, g, p.at(key.span.clone()));
                continue;
            }
            if let Some(&first) = seen.get(key.name.as_str()) {
                let first = self.line(&(first..first));
                let e = self
                    .error(
                        key.span.clone(),
                        t,
                        Some("env"),
                        format!("duplicate variable `{}` in `env`{}", key.name, in_task(t)),
                    )
                    .with_note(format!("first given at line {first}"));
                self.push(e);
                continue;
            }
            seen.insert(&key.name, key.span.start);
            let value = match &node.value {
                Value::String(s) if s.contains('\0') => Err(Problem::new(format!(
                    "the value of `{}` contains a NUL character",
                    key.name
                ))),
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.raw.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(Problem::new(format!(
                    "the value of `{}` must be a string, number or boolean, found {}",
                    key.name,
                    node.value.kind()
                ))),
            };
            match value {
                Ok(v) => {
                    out.insert(key.name.clone(), v);
                }
                Err(p) => self.report(t, g, p.at(node.span.clone())),
            }
        }
        out
    }

    /// A `$(` in an output path: no shell expands it (the file would be named with it);
    /// the strftime form does what `$(date +...)` meant.
    fn shell_in_path(&mut self, t: Option<&str>, g: &Got) {
        let Value::String(s) = &g.node.value else {
            return;
        };
        if !s.contains("$(") {
            return;
        }
        let p = match date_commands_as_strftime(s) {
            Some(form) => Problem::new(format!(
                "no shell runs on the path, so its `$(date +...)` is read as a strftime pattern: `{form}`"
            ))
            .help(format!(
                "write `\"{}\": \"{form}\"`: bansuri fills in strftime patterns at each run's start (local time)",
                g.key.name
            )),
            None => Problem::new(
                "the path contains `$(`, but no shell runs on it: the file name would contain it as written",
            )
            .help("use strftime patterns such as `%Y-%m-%d`, filled in at each run's start (local time)"),
        };
        self.warn(t, g, p);
    }

    /// `environment-file`: read now. One that does not exist yet is a warning; each start
    /// of the task then reads it (`Pending::environment_file`).
    fn environment_file(
        &mut self,
        t: Option<&str>,
        g: &Got,
    ) -> Option<(PathBuf, Option<EnvPairs>)> {
        let dir = self.config_dir.clone();
        let path = self.take(t, Some(g), |n| Ok(tidy(&dir.join(non_empty_str(n)?))))?;
        let (text, errs) = match envfile::read(&path) {
            Ok(pairs) => return Some((path, Some(pairs))),
            Err(ReadError::Missing) => {
                let p = Problem::new(format!(
                    "file `{}` does not exist (yet)",
                    path.display()
                ))
                .help("each start of the task reads it, and fails while it is missing; relative paths are relative to the config file's directory");
                self.warn(t, g, p);
                return Some((path, None));
            }
            Err(ReadError::Unsafe(u)) => {
                let p = Problem::new(u.why).help(u.help);
                self.report(t, g, p);
                return None;
            }
            Err(ReadError::NotUtf8(at)) => {
                let p = Problem::new(format!(
                    "`{}` is not UTF-8 text (bad byte at offset {at})",
                    path.display()
                ));
                self.report(t, g, p);
                return None;
            }
            Err(ReadError::Io(e)) => {
                let p = Problem::new(format!("cannot read `{}`: {e}", path.display()))
                    .help("relative paths are relative to the config file's directory");
                self.report(t, g, p);
                return None;
            }
            Err(ReadError::Syntax(text, errs)) => (text, errs),
        };
        let here = ConfigError::at_masking(
            self.file,
            self.file,
            self.text,
            g.key.span.clone(),
            "",
            &self.secrets,
        );
        let given = here.location();
        let given_at = (here.line.unwrap_or(0), here.column.unwrap_or(0));
        for err in errs {
            let mut e = ConfigError::at(self.file, &path, &text, err.span, "");
            e.message = format!(
                "invalid line {} in environment-file `{}`{}: {}",
                e.line.unwrap_or(0),
                path.display(),
                in_task(t),
                err.message
            );
            e.task = t.map(String::from);
            e.field = Some("environment-file".into());
            e.note = Some(format!("the environment-file is given at {given}"));
            e.help = Some("each line is KEY=VALUE, `# comment` or blank".into());
            // Sorted with the config's errors at the field that names the file.
            self.errors.push((given_at, e));
        }
        None
    }
}

/// One task object as read: the task, its name and the name's span (when valid), and what
/// the task list needs afterwards (`numprocs`, `depends-on`'s place, the array).
struct TaskRead {
    task: TaskSpec,
    name: Option<(String, Range<usize>)>,
    extras: program::ProgramExtras,
    sweep: Option<crate::spec::Sweep>,
}

/// Variables of an environment-file, in file order.
type EnvPairs = Vec<(String, String)>;

fn env_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::new("an environment variable name cannot be empty"));
    }
    if name.contains('=') || name.contains('\0') {
        return Err(Problem::new(format!(
            "invalid variable name \"{}\": it cannot contain `=` or NUL",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// `"log"` / `"joblog"` mean the job log rather than a file of that name (write `./log`
/// for a file called `log`).
fn is_joblog_word(s: &str) -> bool {
    let t = s.trim();
    t.eq_ignore_ascii_case("log") || t.eq_ignore_ascii_case("joblog")
}

fn output_path(node: &Node, working_directory: &Path) -> Result<PathBuf, Problem> {
    let s = match &node.value {
        Value::String(s) => s,
        _ => return Err(expected("a file path, \"log\" or null", node)),
    };
    if s.trim().is_empty() {
        return Err(
            Problem::new("the path is empty").help("omit the field to write into the job log")
        );
    }
    if s.contains('\0') {
        return Err(Problem::new("the path contains a NUL character"));
    }
    // The manual's `$(date +%Y-%m-%d)`, as the strftime pattern it means (with a warning).
    let dated = s
        .contains("$(")
        .then(|| date_commands_as_strftime(s))
        .flatten();
    let s = dated.as_deref().unwrap_or(s);
    if let Some(p) = crate::spec::strftime_problem(s) {
        return Err(Problem::new(p)
            .help("strftime patterns such as `%Y-%m-%d` are filled in at each run's start"));
    }
    Ok(tidy(&working_directory.join(s)))
}

/// `s` with each `$(date +FORMAT)` replaced by its FORMAT (quotes removed), when it holds
/// one: the strftime form bansuri understands. `None` when some `$(` is another command.
fn date_commands_as_strftime(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let inner = &rest[i + 2..];
        let end = inner.find(')')?;
        let unquote = |f: &'_ str| -> String {
            ['\'', '"']
                .iter()
                .find_map(|q| f.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(f)
                .to_string()
        };
        // `date +FMT`, `date +'FMT'`, `date '+FMT'`.
        let arg = unquote(inner[..end].trim().strip_prefix("date")?.trim_start());
        let format = unquote(arg.strip_prefix('+')?);
        if format.is_empty() || format.contains(char::is_whitespace) {
            return None;
        }
        out.push_str(&format);
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}
