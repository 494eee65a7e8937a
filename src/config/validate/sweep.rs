//! Task arrays and task files (issue 19): the task fields `array` and `parallel`, the
//! top-level `tasks-file` (and `--tasks FILE`), and the expansion of an array task into one
//! `TaskSpec` per element, named `task[id]`, made when the element is about to run
//! (`crate::spec::expand`).
//!
//! Decisions:
//! - `array` is an object with exactly one of `range` (Slurm's `1-1000`, `0-100:10`,
//!   `1-5,9`), `values` (strings or numbers), `matrix` (named lists, the cartesian
//!   product) or `file` (one value per line, relative to the config file's directory, read
//!   at load time and at each reload). Errors name the task and the key (`array.range`).
//! - An element is a one-shot: `timer`, `schedule-cron`, `autorestart: always` and
//!   `numprocs` are errors beside `array`. Everything else (`depends-on`, `cpus`,
//!   `timeout`, retries...) is copied to every element.
//! - Placeholders: `{item}`, `{index}` (the element's id) and each matrix key are filled
//!   in the command (a shell command gets each value as one quoted word, see
//!   `crate::text::shell`; an argv command gets it as text inside its argument), in `env`
//!   values (as text) and in `stdout`/`stderr` paths (as text, a `%` of a value doubled so
//!   it is no strftime pattern). Any other `{name}` there is an error listing the known
//!   ones: a typo must not run 1,000 wrong commands. The
//!   variables `BANSURI_ITEM`, `BANSURI_ARRAY_INDEX` and each matrix key are set; `env`
//!   giving one of them is an error. Tasks without `array` are not touched.
//! - `parallel` (a whole number >= 1) caps the running elements of the array; without
//!   `array` it has no effect and is a warning, like the other such settings.
//! - A task file (`tasks-file`, or `--tasks FILE` which replaces it) is the array task
//!   `tasks`: one element per command line, `#` comments and blank lines skipped, ids
//!   0, 1, ... over the lines kept; each line runs as a shell command as written (no
//!   placeholders; a disBatch `#DISBATCH` directive is an error rather than a comment, so
//!   that a PREFIX or REPEAT is never silently dropped), in the config file's directory (with `--tasks` and no config: the
//!   current directory). Its `parallel` is `tasks-file`'s `{"file": ..., "parallel": N}`,
//!   else the number of CPUs bansuri may use, as GNU parallel and disBatch default to one
//!   command per core. A config task named `tasks` beside a task file is an error.
//! - An element's `program` is the array's name, so `depends-on: ["sweep"]` waits for
//!   every element (as for a `numprocs` program), and `depends-on: ["sweep[3]"]` for one.

use super::*;
use crate::array::{Array, ArrayError};
use crate::spec::Sweep;
use crate::text::shell;
use std::sync::Arc;

/// Keys of a task's `array` object: the forms, exactly one of them.
pub(crate) const ARRAY_FIELDS: &[Field] = &[
    field("range", &[]),
    field("values", &[]),
    field("matrix", &[]),
    field("file", &[]),
];

/// Keys of `tasks-file` given as an object.
pub(crate) const TASKS_FILE_FIELDS: &[Field] = &[field("file", &[]), field("parallel", &[])];

/// The name of the array task of a task file.
pub const TASKS_FILE_TASK: &str = "tasks";

/// The placeholders every array task has besides its matrix keys.
const BUILTIN_PLACEHOLDERS: [&str; 2] = ["item", "index"];

/// A task file's content as an array, or the sentence saying why not.
fn task_file_array(text: &str) -> Result<Array, String> {
    if let Some(n) = text.lines().position(|l| l.contains('\0')) {
        return Err(format!("line {} contains a NUL character", n + 1));
    }
    if let Some(n) = text
        .lines()
        .position(|l| l.trim_start().starts_with("#DISBATCH"))
    {
        return Err(format!(
            "line {} is a disBatch directive (`#DISBATCH ...`), which bansuri does not read: write each command in full, or use a task's `array` for a REPEAT",
            n + 1
        ));
    }
    Array::task_file(text).map_err(|e| match e {
        ArrayError::Empty => "it holds no command (only blank lines and `#` comments)".to_owned(),
        e => e.to_string(),
    })
}

/// A file's text, with the checks of an environment-file: as root, one others can change
/// is refused (its lines become commands or arguments); it must be UTF-8.
fn read_text(path: &Path, relative_to: &str) -> Result<String, Problem> {
    if let Some(u) = super::super::unsafe_to_trust(path) {
        return Err(Problem::new(u.why).help(u.help));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::new(format!("cannot read `{}`: {e}", path.display()))
            .help(format!("relative paths are relative to {relative_to}"))
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Problem::new(format!(
            "`{}` is not UTF-8 text (bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// One value of `values` or of a matrix list: a string or a number (as written).
fn value(n: &Node) -> Result<String, Problem> {
    match &n.value {
        Value::String(s) if s.contains('\0') => {
            Err(Problem::new("the value contains a NUL character").at(n.span.clone()))
        }
        Value::String(s) => Ok(s.clone()),
        Value::Number(num) => Ok(num.raw.clone()),
        _ => Err(Problem::new(format!(
            "each value must be a string or a number, found {}",
            found(n)
        ))
        .at(n.span.clone())
        .help("quote it: \"true\"")),
    }
}

fn values(n: &Node) -> Result<Vec<String>, Problem> {
    let Value::Array(items) = &n.value else {
        return Err(expected("a list of values", n).help("write [\"a.txt\", \"b.txt\"]"));
    };
    items.iter().map(value).collect()
}

/// `parallel` (and `tasks-file.parallel`): a whole number >= 1.
fn parallel(n: &Node) -> Result<u32, Problem> {
    let help = "at most this many elements of the array run at once: a whole number, at least 1";
    let v = as_int(n).map_err(|p| p.help(help))?;
    if v < 1 {
        return Err(Problem::new(format!("must be at least 1, found {v}")).help(help));
    }
    u32::try_from(v).map_err(|_| Problem::new(format!("`{v}` is too large")))
}

/// The default `parallel` of a task file: the CPUs this process may run on (its affinity:
/// the job's CPU set under SLURM).
fn cpus_here() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// Where a task file comes from.
pub(crate) enum TasksFileFrom<'p> {
    /// `--tasks FILE` (relative to the current directory); `config` is false when no
    /// config file is used at all.
    CommandLine { path: &'p Path, config: bool },
}

impl Validator<'_> {
    /// An error about a key inside an object field (`array.range`, `tasks-file.file`).
    fn report_in(&mut self, t: Option<&str>, field: &str, span: Range<usize>, p: Problem) {
        let message = format!("invalid `{field}`{}: {}", in_task(t), p.detail);
        let mut e = self.error(p.span.unwrap_or(span), t, Some(field), message);
        e.help = p.help;
        self.push(e);
    }

    /// A task's `array` and `parallel`, checked against its other fields. `None` when it
    /// has no `array`, or an invalid one (then reported).
    pub(super) fn sweep(
        &mut self,
        t: Option<&str>,
        f: &Fields,
        task: &TaskSpec,
        numprocs: bool,
    ) -> Option<Sweep> {
        let parallel_n = self.take(t, f.get("parallel"), parallel);
        let Some(g) = f.get("array") else {
            if let Some(p) = f.get("parallel") {
                let w = Problem::new(format!(
                    "has no effect{}: it caps the running elements of an `array`, and the task has none",
                    in_task(t)
                ))
                .help("add an `array`, or remove `parallel` (`numprocs` runs copies of a task; `max_parallel` caps all tasks)");
                self.warn(t, p, w);
            }
            return None;
        };
        let mut ok = true;
        for (other, why) in [
            ("timer", "a timer"),
            ("schedule-cron", "a cron schedule"),
            ("numprocs", "`numprocs`"),
        ] {
            let Some(o) = f.get(other) else { continue };
            if other == "numprocs" && !numprocs {
                continue;
            }
            let e = self
                .error(
                    o.key.span.clone(),
                    t,
                    Some(other),
                    format!(
                        "`{}` cannot be given with `array`{}: each element of an array runs once, {why} would run it again",
                        o.key.name,
                        in_task(t)
                    ),
                )
                .with_help("remove it; to run a sweep again, `bansuri start` the task or resubmit with `--retry-failed`");
            self.push(e);
            ok = false;
        }
        if task.restart_on_success {
            if let Some(o) = f.get("autorestart") {
                let e = self
                    .error(
                        o.node.span.clone(),
                        t,
                        Some("autorestart"),
                        format!(
                            "`autorestart: always` cannot be given with `array`{}: each element of an array runs once",
                            in_task(t)
                        ),
                    )
                    .with_help("use `on-fail: restart` (or `autorestart: unexpected`) to retry failed elements");
                self.push(e);
                ok = false;
            }
        }
        let array = self.array(t, g)?;
        ok &= self.placeholders_known(t, f, &array);
        ok.then_some(Sweep {
            array,
            parallel: parallel_n,
            task_file: false,
        })
    }

    /// The `array` object: exactly one form.
    fn array(&mut self, t: Option<&str>, g: &Got) -> Option<Array> {
        let help = "write \"array\": {\"range\": \"1-100\"}, {\"values\": [\"a\", \"b\"]}, {\"matrix\": {\"lr\": [0.1, 0.01]}} or {\"file\": \"inputs.txt\"}";
        let Value::Object(members) = &g.node.value else {
            let p = expected(
                "an object with one of `range`, `values`, `matrix`, `file`",
                g.node,
            )
            .help(help);
            self.report(t, g, p);
            return None;
        };
        let mut form: Option<(&'static str, &Key, &Node)> = None;
        let mut ok = true;
        for (key, node) in members {
            let Some(fd) = find_field(ARRAY_FIELDS, &key.name) else {
                let mut e = self.error(
                    key.span.clone(),
                    t,
                    Some("array"),
                    format!("unknown key `{}` in `array`{}", key.name, in_task(t)),
                );
                e.help = Some(match suggest(&key.name, ARRAY_FIELDS) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => help.to_owned(),
                });
                self.push(e);
                ok = false;
                continue;
            };
            if let Some((first, first_key, _)) = form {
                let line = self.line(&first_key.span);
                let e = self
                    .error(
                        key.span.clone(),
                        t,
                        Some(&format!("array.{}", fd.name)),
                        format!(
                            "`array` gives both `{first}` and `{}`{}: an array has one form",
                            fd.name,
                            in_task(t)
                        ),
                    )
                    .with_note(format!("`{first}` is at line {line}"))
                    .with_help("keep one; a `matrix` combines several named lists");
                self.push(e);
                ok = false;
                continue;
            }
            form = Some((fd.name, key, node));
        }
        let Some((name, _, node)) = form else {
            if ok {
                let p =
                    Problem::new("it gives none of `range`, `values`, `matrix`, `file`").help(help);
                self.report(t, g, p);
            }
            return None;
        };
        let field = format!("array.{name}");
        let built = match name {
            "range" => match &node.value {
                Value::String(s) => Array::range(s).map_err(|e| Problem::new(e.to_string())),
                Value::Number(n) => Err(Problem::new(format!(
                    "expected a range as a string, found the number `{}`",
                    n.raw
                ))
                .help(format!(
                    "write \"1-{0}\" for {0} elements numbered from 1, or \"{0}\" for the one element {0}",
                    n.raw
                ))),
                _ => Err(expected("a range such as \"1-100\"", node)),
            },
            "values" => values(node).and_then(|v| {
                Array::values(v).map_err(|e| Problem::new(e.to_string()).help("give at least one value"))
            }),
            "matrix" => self.matrix(node),
            _ => self.array_file(node),
        };
        match built {
            Ok(a) => ok.then_some(a),
            Err(p) => {
                self.report_in(t, &field, node.span.clone(), p);
                None
            }
        }
    }

    fn matrix(&mut self, node: &Node) -> Result<Array, Problem> {
        let help = "write {\"lr\": [0.1, 0.01], \"seed\": [1, 2, 3]}: each key a placeholder name, each value a list";
        let Value::Object(members) = &node.value else {
            return Err(expected("an object of named lists", node).help(help));
        };
        let mut lists = Vec::with_capacity(members.len());
        for (key, list) in members {
            let v = values(list)?;
            if v.is_empty() {
                return Err(Problem::new(format!("the list `{}` is empty", key.name))
                    .at(list.span.clone())
                    .help("give it at least one value, or remove the key"));
            }
            lists.push((key.name.clone(), v));
        }
        Array::matrix(lists).map_err(|e| {
            let p = Problem::new(e.to_string());
            match e {
                ArrayError::BadKey(k) => {
                    match members.iter().rev().find(|(key, _)| key.name == k) {
                        Some((key, _)) => p.at(key.span.clone()),
                        None => p,
                    }
                }
                ArrayError::Empty => p.help(help),
                _ => p,
            }
        })
    }

    /// `array.file`: one value per line, relative to the config file's directory.
    fn array_file(&mut self, node: &Node) -> Result<Array, Problem> {
        let path = tidy(&self.config_dir.join(non_empty_str(node)?));
        let text = read_text(&path, "the config file's directory")?;
        if let Some(n) = text.lines().position(|l| l.contains('\0')) {
            return Err(Problem::new(format!(
                "line {} of `{}` contains a NUL character",
                n + 1,
                path.display()
            )));
        }
        Array::lines(&text).map_err(|e| match e {
            ArrayError::Empty => Problem::new(format!(
                "`{}` has no values (only blank lines)",
                path.display()
            )),
            e => Problem::new(format!("`{}`: {e}", path.display())),
        })
    }

    /// Every `{name}` in the command, the `env` values and the output paths is a
    /// placeholder of `array`; `env` sets none of the element's variables.
    fn placeholders_known(&mut self, t: Option<&str>, f: &Fields, array: &Array) -> bool {
        let mut known: Vec<&str> = BUILTIN_PLACEHOLDERS.to_vec();
        if let Array::Matrix(lists) = array {
            known.extend(lists.iter().map(|(k, _)| k.as_str()));
        }
        let mut ok = true;
        let mut texts: Vec<(&str, &'static str, String, &Node, bool)> = Vec::new();
        if let Some(c) = f.get("command") {
            match &c.node.value {
                Value::String(s) => texts.push((s, "command", "the command".into(), c.node, true)),
                Value::Array(items) => {
                    for item in items {
                        if let Value::String(s) = &item.value {
                            texts.push((s, "command", "the command".into(), item, false));
                        }
                    }
                }
                _ => {}
            }
        }
        for name in ["stdout", "stderr"] {
            if let Some(Value::String(s)) = f.get(name).map(|g| &g.node.value) {
                let node = f.get(name).map(|g| g.node).expect("present");
                texts.push((s, name, format!("`{name}`"), node, false));
            }
        }
        if let Some(Value::Object(vars)) = f.get("env").map(|g| &g.node.value) {
            for (key, node) in vars {
                if let Value::String(s) = &node.value {
                    texts.push((s, "env", format!("`env.{}`", key.name), node, false));
                }
                ok &= self.not_an_element_variable(t, key, &known);
            }
        }
        for (text, field, what, node, shell) in texts {
            ok &= self.known_in(t, &known, text, (field, &what), node, shell);
        }
        ok
    }

    /// `text` (of `field`, described as `what`) names only placeholders in `known`; each
    /// other one is an error.
    fn known_in(
        &mut self,
        t: Option<&str>,
        known: &[&str],
        text: &str,
        (field, what): (&str, &str),
        node: &Node,
        shell: bool,
    ) -> bool {
        // No shell reads an argument or a value: a backslash escapes nothing there.
        let plain;
        let text = if shell {
            text
        } else {
            plain = text.replace('\\', "\u{1}");
            plain.as_str()
        };
        let mut ok = true;
        for (_, name) in shell::placeholders(text) {
            if known.contains(&name) {
                continue;
            }
            let list: Vec<String> = known.iter().map(|k| format!("`{{{k}}}`")).collect();
            let near = known
                .iter()
                .map(|k| (strsim::jaro_winkler(name, k), *k))
                .filter(|(s, _)| *s >= 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let mut help = match near {
                Some((_, k)) => format!("did you mean `{{{k}}}`? "),
                None => String::new(),
            };
            help.push_str(if shell {
                "braces the command should keep as written take a space (`{ print }`) or a backslash (`\\{print}`)"
            } else {
                "braces the command should keep as written take a space (`{ print }`)"
            });
            let e = self
                .error(
                    node.span.clone(),
                    t,
                    Some(field),
                    format!(
                        "unknown placeholder `{{{name}}}` in {what}{}: the array's placeholders are {}",
                        in_task(t),
                        list.join(", ")
                    ),
                )
                .with_help(help);
            self.push(e);
            ok = false;
        }
        ok
    }

    /// `env` must not set a variable every element gets (`BANSURI_ITEM`, a matrix key).
    fn not_an_element_variable(&mut self, t: Option<&str>, key: &Key, known: &[&str]) -> bool {
        let name = key.name.as_str();
        let ours = matches!(name, "BANSURI_ITEM" | "BANSURI_ARRAY_INDEX")
            || (known.contains(&name) && !BUILTIN_PLACEHOLDERS.contains(&name));
        if ours {
            let e = self
                .error(
                    key.span.clone(),
                    t,
                    Some("env"),
                    format!(
                        "`env` sets `{name}`{}, which the array sets for each element",
                        in_task(t)
                    ),
                )
                .with_help("remove it from `env`, or rename the matrix key");
            self.push(e);
        }
        !ours
    }

    /// The top-level `tasks-file` (or the command line's, which replaces it): the array
    /// task `tasks`, ready to expand.
    pub(super) fn tasks_file(
        &mut self,
        given: Option<&Got>,
        from: Option<TasksFileFrom>,
    ) -> Option<(TaskSpec, Sweep)> {
        let mut par = None;
        let (path, at) = match (from, given) {
            (Some(TasksFileFrom::CommandLine { path, config }), _) => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
                let abs = tidy(&cwd.join(path));
                let workdir = if config { None } else { Some(cwd) };
                (abs, Err(workdir))
            }
            (None, Some(g)) => {
                let file_node = match &g.node.value {
                    Value::Object(members) => {
                        let f = self.gather_in(members, TASKS_FILE_FIELDS, "tasks-file");
                        if let Some(pg) = f.get("parallel") {
                            let n = pg.node;
                            match parallel(n) {
                                Ok(p) => par = Some(p),
                                Err(p) => {
                                    self.report_in(None, "tasks-file.parallel", n.span.clone(), p);
                                    return None;
                                }
                            }
                        }
                        match f.get("file") {
                            Some(fg) => fg.node,
                            None => {
                                let p = Problem::new("it has no `file`")
                                    .help("write \"tasks-file\": {\"file\": \"cmds.txt\", \"parallel\": 4}");
                                self.report(None, g, p);
                                return None;
                            }
                        }
                    }
                    _ => g.node,
                };
                let dir = self.config_dir.clone();
                let path = match non_empty_str(file_node) {
                    Ok(s) => tidy(&dir.join(s)),
                    Err(p) => {
                        let p = p.help(
                            "write \"tasks-file\": \"cmds.txt\" (one shell command per line)",
                        );
                        self.report_in(None, "tasks-file", file_node.span.clone(), p);
                        return None;
                    }
                };
                (path, Ok(file_node.span.clone()))
            }
            (None, None) => return None,
        };
        let relative_to = if at.is_ok() {
            "the config file's directory"
        } else {
            "the current directory"
        };
        let array = read_text(&path, relative_to).and_then(|text| {
            task_file_array(&text)
                .map_err(|why| Problem::new(format!("task file `{}`: {why}", path.display())))
        });
        let array = match (array, &at) {
            (Ok(a), _) => a,
            (Err(p), Ok(span)) => {
                self.report_in(None, "tasks-file", span.clone(), p);
                return None;
            }
            (Err(p), Err(_)) => {
                let mut e =
                    ConfigError::plain(self.file, format!("invalid `--tasks`: {}", p.detail));
                e.file = path.clone();
                e.field = Some("--tasks".to_owned());
                e.help = p.help;
                self.push(e);
                return None;
            }
        };
        let workdir = match at {
            Err(Some(cwd)) => cwd,
            _ => self.config_dir.clone(),
        };
        let task =
            TaskSpec::with_defaults(TASKS_FILE_TASK, CommandSpec::Shell(String::new()), workdir);
        let parallel = Some(par.unwrap_or_else(cpus_here));
        Some((
            task,
            Sweep {
                array,
                parallel,
                task_file: true,
            },
        ))
    }

    /// Each array task given its elements (`TaskSpec::sweep`), held compactly: the
    /// core makes an element's `TaskSpec` when it is about to run.
    pub(super) fn expand_arrays(tasks: Vec<(TaskSpec, Option<Sweep>)>) -> Vec<TaskSpec> {
        tasks
            .into_iter()
            .map(|(mut task, sweep)| {
                task.sweep = sweep.map(Arc::new);
                task
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_files_skip_comments_and_refuse_nul_and_emptiness() {
        let a = task_file_array("# sweep\n\necho 1\n  # x\necho 2\n").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            task_file_array("# only\n\n").unwrap_err(),
            "it holds no command (only blank lines and `#` comments)"
        );
        assert_eq!(
            task_file_array("a\nb\0\n").unwrap_err(),
            "line 2 contains a NUL character"
        );
        let e = task_file_array("echo 1\n #DISBATCH PREFIX cd /x ;\necho 2\n").unwrap_err();
        assert!(e.starts_with("line 2 is a disBatch directive"), "{e}");
    }
}
