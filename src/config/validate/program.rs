//! Taskmaster's and supervisord's program model on top of the Bansuri task: `numprocs`,
//! `autostart`, `autorestart`, `startretries`, `starttime`, `user`, `priority`, `umask` and
//! `depends-on`, and how they combine with Bansuri's `on-fail`/`times` into one policy.
//!
//! Owns the checks of those fields (contradictions included), the expansion of a program
//! into its instances and the dependency graph check. Must not touch the OS except to
//! look users up in the user and group databases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use super::super::tree::{Node, Value};
use super::{as_bool, as_int, as_str, choice, duration, in_task, Fields, Problem, Validator};
use crate::schedule::Schedule;
use crate::spec::{OnFail, TaskSpec, UserSpec, UNLIMITED_ATTEMPTS};

/// Taskmaster's `autorestart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AutoRestart {
    Never,
    Unexpected,
    Always,
}

/// What `program` found that the task list needs afterwards.
pub(super) struct ProgramExtras {
    /// `numprocs`, when given.
    pub numprocs: Option<u32>,
    /// Where `depends-on` was written, for graph errors.
    pub depends_span: Option<Range<usize>>,
}

/// The start-up window `startretries` implies when `starttime` is not given: supervisord's
/// `startsecs` default.
pub const DEFAULT_START_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// `autorestart`: a word, or (YAML, as supervisord) a boolean.
fn auto_restart(n: &Node) -> Result<AutoRestart, Problem> {
    if let Value::Bool(b) = n.value {
        return Ok(if b {
            AutoRestart::Unexpected
        } else {
            AutoRestart::Never
        });
    }
    choice(
        n,
        &[
            ("never", AutoRestart::Never),
            ("unexpected", AutoRestart::Unexpected),
            ("always", AutoRestart::Always),
        ],
    )
}

impl Validator<'_> {
    /// The program-model fields of one task object.
    pub(super) fn program(
        &mut self,
        t: Option<&str>,
        f: &Fields,
        task: &mut TaskSpec,
    ) -> ProgramExtras {
        if let Some(b) = self.take(t, f.get("autostart"), as_bool) {
            task.autostart = b;
        }
        let start_retries = self.take(t, f.get("startretries"), |n| {
            let v = as_int(n)?;
            if v < 0 {
                return Err(Problem::new(format!("must be 0 or more, found {v}")).help(
                    "`startretries` counts retries after a failed start: N allows N + 1 starts in a row before the task is FATAL",
                ));
            }
            u32::try_from(v).map_err(|_| Problem::new(format!("`{v}` is too large")))
        });
        if let Some(n) = start_retries {
            task.start_retries = n;
        }
        let start_time = self.take(t, f.get("starttime"), duration);
        if let Some(d) = start_time {
            task.start_time = d;
        } else if start_retries.is_some() && f.get("starttime").is_none() {
            // Taskmaster and supervisord retry failed starts within a start-up window
            // (supervisord's `startsecs` defaults to 1 s): `startretries` alone means that.
            task.start_time = DEFAULT_START_WINDOW;
        }
        if let Some(p) = self.take(t, f.get("priority"), |n| {
            let v = as_int(n)?;
            if !(-20..=19).contains(&v) {
                return Err(Problem::new(format!("nice value {v} is out of range"))
                    .help("use -20 (highest priority) to 19 (lowest); 0 is the default"));
            }
            Ok(v as i32)
        }) {
            task.priority = p;
        }
        task.umask = self.take(t, f.get("umask"), umask);
        if let Some(g) = f.get("user") {
            self.user(t, g, task);
        }
        if let Some(deps) = self.take(t, f.get("depends-on"), depends_on) {
            task.depends_on = deps;
        }
        self.restart_policy(t, f, task);
        // (A `startretries` or `starttime` already refused is not judged again.)
        if start_retries.is_some() && (start_time.is_some() || f.get("starttime").is_none()) {
            self.start_retries_effect(t, f, task);
        }
        if let Some(n) = self.take(t, f.get("log-max-bytes"), byte_size) {
            task.log_max_bytes = n;
        }
        if let Some(n) = self.take(t, f.get("log-backups"), backups) {
            task.log_backups = n;
        }
        let numprocs = self.take(t, f.get("numprocs"), |n| {
            let v = as_int(n)?;
            if !(1..=10_000).contains(&v) {
                return Err(Problem::new(format!("must be 1 to 10000, found {v}")));
            }
            Ok(v as u32)
        });
        ProgramExtras {
            numprocs,
            depends_span: f.get("depends-on").map(|g| g.node.span.clone()),
        }
    }

    /// One policy from `on-fail`/`times` (Bansuri) and `autorestart` (Taskmaster).
    fn restart_policy(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        let auto = self.take(t, f.get("autorestart"), auto_restart);
        let on_fail = f.get("on-fail").map(|_| task.on_fail);
        let times_given = f.get("times").is_some();
        let contradiction = |v: &mut Self, got: &str, why: String| {
            let g = f.get(got).expect("present");
            let e = v
                .error(
                    g.node.span.clone(),
                    t,
                    Some(got),
                    format!("`{}` contradicts `autorestart`{}: {why}", g.key.name, in_task(t)),
                )
                .with_help("keep one of them: `on-fail`/`times` (Bansuri) or `autorestart`/`startretries` (Taskmaster)");
            v.push(e);
        };
        match (auto, on_fail) {
            (Some(AutoRestart::Never), Some(OnFail::Restart)) => contradiction(
                self,
                "on-fail",
                "`on-fail: restart` retries a failed run, `autorestart: never` never restarts"
                    .into(),
            ),
            (Some(a @ (AutoRestart::Unexpected | AutoRestart::Always)), Some(OnFail::Stop)) => {
                contradiction(
                    self,
                    "on-fail",
                    format!(
                        "`on-fail: stop` never retries, `autorestart: {}` restarts",
                        if a == AutoRestart::Always {
                            "always"
                        } else {
                            "unexpected"
                        }
                    ),
                )
            }
            _ => {}
        }
        match auto {
            Some(AutoRestart::Unexpected) | Some(AutoRestart::Always) => {
                task.on_fail = OnFail::Restart;
                if !times_given {
                    task.times = UNLIMITED_ATTEMPTS;
                }
                if auto == Some(AutoRestart::Always) {
                    task.restart_on_success = true;
                    if !matches!(task.schedule, Schedule::Once) {
                        let g = f.get("autorestart").expect("present");
                        let e = self
                            .error(
                                g.node.span.clone(),
                                t,
                                Some("autorestart"),
                                format!(
                                    "`autorestart: always` contradicts the schedule{}: a service restarts by itself whenever it exits",
                                    in_task(t)
                                ),
                            )
                            .with_help("remove `timer`/`schedule-cron`, or use `autorestart: unexpected`");
                        self.push(e);
                    }
                }
            }
            Some(AutoRestart::Never) | None => {
                if times_given && task.times > 1 && task.on_fail == OnFail::Stop {
                    // Harmless (seed 003's `"times": 5` alone): a warning, and the task
                    // makes the one attempt it would make anyway.
                    let g = f.get("times").expect("present");
                    let e = self
                        .error(
                            g.node.span.clone(),
                            t,
                            Some("times"),
                            format!(
                                "`times: {}` has no effect{}: without `on-fail: restart` a failed run is not retried",
                                task.times,
                                in_task(t)
                            ),
                        )
                        .with_help("add \"on-fail\": \"restart\", or remove `times`");
                    self.warn_error(e);
                    task.times = 1;
                }
            }
        }
    }

    /// `startretries` counts failed starts: processes that exit before `starttime`, in a
    /// row; they are retried whatever the restart policy (as supervisord does). With an
    /// explicit `starttime: 0` no start can fail: a warning saying why (supervisord
    /// accepts it).
    fn start_retries_effect(&mut self, t: Option<&str>, f: &Fields, task: &TaskSpec) {
        let Some(g) = f.get("startretries") else {
            return;
        };
        let n = task.start_retries;
        let why = task.start_time.is_zero().then(|| {
            (
                "with `starttime: 0` no start can fail (a failed start is a process that exits before `starttime`)".to_owned(),
                "give `starttime` (seconds a process must stay up to count as started; 1 s when omitted), or remove `startretries`",
            )
        });
        let Some((why, help)) = why else {
            return;
        };
        let e = self
            .error(
                g.node.span.clone(),
                t,
                Some("startretries"),
                format!("`startretries: {n}` has no effect{}: {why}", in_task(t)),
            )
            .with_help(help);
        self.warn_error(e);
    }

    /// Replace each task that has `numprocs` by its instances `name:0`..`name:N-1`.
    pub(super) fn expand_instances(
        &mut self,
        tasks: Vec<(TaskSpec, Option<u32>)>,
    ) -> Vec<TaskSpec> {
        let mut out = Vec::with_capacity(tasks.len());
        for (task, numprocs) in tasks {
            let Some(n) = numprocs else {
                out.push(task);
                continue;
            };
            for i in 0..n {
                let mut inst = task.clone();
                inst.name = format!("{}:{i}", task.name);
                inst.program = task.name.clone();
                inst.instance = Some(i);
                inst.env.insert("BANSURI_INSTANCE".into(), i.to_string());
                out.push(inst);
            }
        }
        out
    }

    /// `depends-on` must name tasks or programs of this file, without cycles.
    pub(super) fn check_dependencies(
        &mut self,
        tasks: &[TaskSpec],
        spans: &HashMap<String, Range<usize>>,
    ) {
        let mut programs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in tasks {
            programs
                .entry(t.program.as_str())
                .or_default()
                .push(t.name.as_str());
            if t.program != t.name {
                programs
                    .entry(t.name.as_str())
                    .or_default()
                    .push(t.name.as_str());
            }
        }
        // Graph over programs (instances share their program's dependencies).
        let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut reported: HashSet<&str> = HashSet::new();
        for t in tasks {
            if !reported.insert(t.program.as_str()) {
                continue;
            }
            for d in &t.depends_on {
                // `sweep[3]`: one element of an array (issue 19), held compactly.
                let element_of = crate::array::split_element_name(d).and_then(|(a, id)| {
                    tasks.iter().find(|x| {
                        x.name == a
                            && x.sweep
                                .as_ref()
                                .is_some_and(|s| s.array.position(id).is_some())
                    })
                });
                if let Some(array) = element_of {
                    edges
                        .entry(t.program.as_str())
                        .or_default()
                        .push(array.program.as_str());
                    continue;
                }
                if programs.contains_key(d.as_str()) {
                    let target = tasks
                        .iter()
                        .find(|x| x.name == *d || x.program == *d)
                        .map_or(d.as_str(), |x| x.program.as_str());
                    edges.entry(t.program.as_str()).or_default().push(target);
                    continue;
                }
                let span = spans.get(&t.program).cloned().unwrap_or(0..0);
                let names: Vec<&str> = programs.keys().copied().collect();
                let mut e = self.error(
                    span,
                    Some(&t.program),
                    Some("depends-on"),
                    format!(
                        "unknown task `{d}` in `depends-on`{}",
                        in_task(Some(&t.program))
                    ),
                );
                e.help = Some(match strsim_best(d, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known tasks: {}", names.join(", ")),
                });
                self.push(e);
            }
        }
        for cycle in cycles_of(&edges) {
            let first = cycle[0];
            let span = spans.get(first).cloned().unwrap_or(0..0);
            let e = self
                .error(
                    span,
                    Some(first),
                    Some("depends-on"),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                )
                .with_help("a task cannot wait, directly or through others, for itself: remove one of these dependencies");
            self.push(e);
        }
    }
}

/// The dependency cycles of `edges`: depth-first search with colours; each cycle found
/// once, from its first task.
fn cycles_of<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on the stack, 2 = done
    let mut stack: Vec<&str> = Vec::new();
    let mut cycles: Vec<Vec<&str>> = Vec::new();
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut HashMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<&'a str>>,
    ) {
        state.insert(n, 1);
        stack.push(n);
        for &m in edges.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            match state.get(m) {
                Some(1) => {
                    let from = stack.iter().position(|x| *x == m).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].to_vec();
                    cycle.push(m);
                    cycles.push(cycle);
                }
                Some(_) => {}
                None => visit(m, edges, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    for &n in edges.keys() {
        if !state.contains_key(n) {
            visit(n, edges, &mut state, &mut stack, &mut cycles);
        }
    }
    cycles
}

fn strsim_best<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(name, n), *n))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// `umask`: octal digits as a string ("022") or as a number (YAML's `umask: 022`; the
/// digits are read as octal, as every supervisor does).
fn umask(node: &Node) -> Result<u32, Problem> {
    let text = match &node.value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.raw.clone(),
        _ => {
            return Err(Problem::new(format!(
                "expected octal digits such as \"022\", found {}",
                super::found(node)
            )))
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(&text);
    let bad = || {
        Problem::new(format!("`{text}` is not an octal umask"))
            .help("write three octal digits, e.g. \"022\" (files 644) or \"077\" (files 600)")
    };
    if digits.is_empty() || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(bad());
    }
    let v = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if v > 0o777 {
        return Err(bad());
    }
    Ok(v)
}

/// `user`: a login name known to this machine. Running as another user needs root.
/// Why a `user` cannot be run as now.
pub(crate) enum UserError {
    /// Not in the user database (yet): a problem of the machine, not of the file.
    Unknown(String),
    /// The lookup itself failed (NSS down, say): also the machine's.
    Lookup(String),
    /// bansuri is not root and the user is someone else: no start can ever succeed.
    NeedsRoot(String),
}

impl UserError {
    /// What is wrong, in one line, and how to fix it.
    pub(crate) fn words(&self) -> (&str, &'static str) {
        match self {
            UserError::Unknown(m) => (
                m,
                "use a login name from this machine's user database (`getent passwd NAME`)",
            ),
            UserError::Lookup(m) => (m, "check the user database (`getent passwd NAME`)"),
            UserError::NeedsRoot(m) => (
                m,
                "remove `user` (tasks then run as you), or start bansuri as root",
            ),
        }
    }
}

/// The identity of user `name`, from the user and group databases.
pub(crate) fn lookup_user(name: &str) -> Result<UserSpec, UserError> {
    let u = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(UserError::Unknown(format!("unknown user `{name}`"))),
        Err(e) => {
            return Err(UserError::Lookup(format!(
                "cannot look up user `{name}`: {e}"
            )))
        }
    };
    let me = nix::unistd::geteuid();
    if !me.is_root() && u.uid != me {
        return Err(UserError::NeedsRoot(format!(
            "running a task as `{name}` needs root, but bansuri runs as uid {me}"
        )));
    }
    // A NUL cannot be in a name the user database just found.
    let groups = std::ffi::CString::new(name)
        .ok()
        .and_then(|c| nix::unistd::getgrouplist(&c, u.gid).ok())
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![u.gid.as_raw()]);
    Ok(UserSpec {
        name: name.to_string(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups,
        home: u.dir,
    })
}

impl Validator<'_> {
    /// `user`: looked up now. One unknown to this machine (or a failed lookup) is a
    /// warning; each start of the task looks again (`Pending::user`).
    fn user(&mut self, t: Option<&str>, g: &super::Got, task: &mut TaskSpec) {
        let Some(name) = self.take(t, Some(g), |n| {
            let name = as_str(n)?.trim();
            if name.is_empty() || name.contains('\0') {
                return Err(Problem::new("expected a login name"));
            }
            Ok(name.to_string())
        }) else {
            return;
        };
        match lookup_user(&name) {
            Ok(u) => task.user = Some(u),
            // All three are the machine's, not the file's: the same config runs as root
            // under systemd and is checked by its author on a login node. The file loads;
            // each start of the task looks again and fails, saying why, while it cannot.
            Err(e) => {
                let (what, help) = e.words();
                let help = match e {
                    UserError::NeedsRoot(_) => {
                        format!("{help}; each start of the task fails until then")
                    }
                    _ => "each start of the task looks the user up again, and fails while it is unknown".to_owned(),
                };
                self.warn(t, g, Problem::new(what.to_string()).help(help));
                task.pending.user = Some(name);
            }
        }
    }
}

/// `depends-on`: a name or a list of names.
fn depends_on(node: &Node) -> Result<Vec<String>, Problem> {
    let one = |n: &Node| -> Result<String, Problem> {
        let s = as_str(n)
            .map_err(|p| p.at(n.span.clone()))?
            .trim()
            .to_string();
        if s.is_empty() {
            return Err(Problem::new("empty task name").at(n.span.clone()));
        }
        Ok(s)
    };
    match &node.value {
        Value::String(_) => Ok(vec![one(node)?]),
        Value::Array(items) => items.iter().map(one).collect(),
        _ => Err(Problem::new(format!(
            "expected a task name or a list of task names, found {}",
            super::found(node)
        ))),
    }
}

/// A size: a number of bytes, or a string with a unit (`"50MB"`, `"512 KiB"`, `"1G"`;
/// KB/MB/GB count 1024s, as supervisord does).
pub(super) fn byte_size(node: &Node) -> Result<u64, Problem> {
    let help = "write bytes (`1048576`) or a size such as \"500KB\", \"50MB\", \"1GB\"; 0 means never rotate";
    match &node.value {
        Value::Number(n) => match n.as_i64() {
            Some(v) if v >= 0 => Ok(v as u64),
            _ => Err(Problem::new(format!("`{}` is not a size in bytes", n.raw)).help(help)),
        },
        Value::String(s) => {
            crate::text::parse_size(s).map_err(|e| Problem::new(e.to_string()).help(help))
        }
        _ => Err(Problem::new(format!("expected a size, found {}", super::found(node))).help(help)),
    }
}

/// How many rotated files to keep (0 .. 1000).
pub(super) fn backups(node: &Node) -> Result<u32, Problem> {
    let v = as_int(node)?;
    if !(0..=1000).contains(&v) {
        return Err(Problem::new(format!("must be 0 to 1000, found {v}")));
    }
    Ok(v as u32)
}
