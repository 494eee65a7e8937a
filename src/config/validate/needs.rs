//! What a task's runs need from the allocation (issue 17): the task fields `cpus`, `gpus`,
//! `mem`, `bind`, `mem-exceeded`, `expected-runtime`, `checkpoint-signal` and
//! `checkpoint-lead`, and the top-level `resources` block and `requeue_on_end`.
//!
//! The rule: a task that gives none of `cpus`/`gpus`/`mem` has no request (it is neither
//! packed nor bound, and starts as it always did); a task giving any of them gets a
//! request with `cpus` 1 and `gpus` 0 unless given. A setting that cannot take effect
//! (`bind` without a request, `mem-exceeded` without `mem`, `checkpoint-lead` without a
//! signal...) is a warning, as for the other such settings.
//!
//! Must not read the machine: whether a request fits what there is is
//! `config::allocation`'s, with an inventory the caller builds.

use super::*;
use crate::resources::{Declared, DeclaredCpus, Request};
use crate::spec::{Checkpoint, MemExceeded, Needs};

/// `checkpoint-lead` when only `checkpoint-signal` is given.
pub(crate) const DEFAULT_CHECKPOINT_LEAD: Duration = Duration::from_secs(600);

/// Keys of the top-level `resources` object.
pub(crate) const RESOURCES_FIELDS: &[Field] =
    &[field("cpus", &[]), field("gpus", &[]), field("mem", &[])];

const CPUS_HELP: &str = "a whole number of CPUs, at least 1 (0 only with `gpus`); a task that should not be packed or bound gives none of `cpus`, `gpus`, `mem`";

/// `cpus`: a whole number >= 0 (0 only beside `gpus`, checked with the request).
fn cpus(n: &Node) -> Result<u32, Problem> {
    let v = as_int(n).map_err(|p| p.help(CPUS_HELP))?;
    if v < 0 {
        return Err(Problem::new(format!("must be 0 or more, found {v}")).help(CPUS_HELP));
    }
    u32::try_from(v).map_err(|_| Problem::new(format!("`{v}` is too large")))
}

/// `gpus`: a whole number >= 0.
fn gpus(n: &Node) -> Result<u32, Problem> {
    let v = as_int(n).map_err(|p| p.help("a whole number of GPUs, 0 or more"))?;
    if v < 0 {
        return Err(Problem::new(format!("must be 0 or more, found {v}")));
    }
    u32::try_from(v).map_err(|_| Problem::new(format!("`{v}` is too large")))
}

/// `mem` (a task's or `resources.mem`): a size string (`Request::parse_mem`) or a whole
/// number of bytes, more than zero.
fn mem(n: &Node) -> Result<u64, Problem> {
    let help = "a size such as \"4G\", \"512M\", \"64GiB\", or bytes as a whole number";
    let text = match &n.value {
        Value::String(s) => s.as_str(),
        Value::Number(num) if num.integer && !num.raw.starts_with('-') => num.raw.as_str(),
        Value::Number(num) => {
            return Err(Problem::new(format!("`{}` is not a number of bytes", num.raw)).help(help))
        }
        _ => return Err(expected("a size", n).help(help)),
    };
    Request::parse_mem(text).map_err(|e| Problem::new(e).help(help))
}

/// `mem-exceeded`: `warn` or `stop`.
fn mem_exceeded(n: &Node) -> Result<MemExceeded, Problem> {
    choice(
        n,
        &[("warn", MemExceeded::Warn), ("stop", MemExceeded::Stop)],
    )
}

/// `checkpoint-signal`: a signal name (`USR1`, `SIGUSR1`, any case) or number. KILL and
/// STOP cannot be caught, so they could not make a task save its work.
fn checkpoint_signal(n: &Node) -> Result<i32, Problem> {
    use nix::sys::signal::Signal;
    use std::str::FromStr;
    let help = "a signal the task catches to save its work: a name such as USR1, USR2, TERM, INT, HUP (with or without `SIG`) or a number";
    let sig = match &n.value {
        Value::Number(num) => {
            let v = as_int(n).map_err(|p| p.help(help))?;
            // Real-time signals (SIGRTMIN..SIGRTMAX) have no name but can be caught.
            let max = i64::from(libc::SIGRTMAX());
            if !(1..=max).contains(&v) {
                return Err(Problem::new(format!(
                    "`{}` is not a signal number (1 to {max})",
                    num.raw
                ))
                .help(help));
            }
            v as i32
        }
        Value::String(s) => {
            let up = s.trim().to_ascii_uppercase();
            let full = if up.starts_with("SIG") {
                up
            } else {
                format!("SIG{up}")
            };
            match Signal::from_str(&full) {
                Ok(sig) => sig as i32,
                Err(_) => {
                    return Err(
                        Problem::new(format!("unknown signal \"{}\"", s.escape_debug())).help(help),
                    )
                }
            }
        }
        _ => return Err(expected("a signal name or number", n).help(help)),
    };
    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return Err(Problem::new(format!(
            "{} cannot be caught, so the task could not save its work",
            crate::text::signal_name(sig)
        ))
        .help(help));
    }
    Ok(sig)
}

/// `resources.cpus`: a count (>= 1) or a CPU list string (`"0-3,8"`).
fn declared_cpus(n: &Node) -> Result<DeclaredCpus, Problem> {
    let help =
        "a number of CPUs (the lowest of the job's CPU set), or a CPU list such as \"0-3,8\"";
    match &n.value {
        Value::Number(_) => {
            let v = as_int(n).map_err(|p| p.help(help))?;
            if v < 1 {
                return Err(Problem::new(format!("must be at least 1, found {v}")).help(help));
            }
            u32::try_from(v)
                .map(DeclaredCpus::Count)
                .map_err(|_| Problem::new(format!("`{v}` is too large")))
        }
        Value::String(s) => match crate::resources::CpuSet::parse(s) {
            Ok(set) if set.is_empty() => Err(Problem::new("the CPU list is empty").help(help)),
            Ok(set) => Ok(DeclaredCpus::List(set)),
            Err(e) => Err(Problem::new(e.to_string()).help(help)),
        },
        _ => Err(expected("a number or a CPU list", n).help(help)),
    }
}

/// `resources.gpus`: a list of GPU IDs (strings; whole numbers are taken as their digits),
/// none empty or repeated. An empty list declares no GPU.
fn declared_gpus(n: &Node) -> Result<Vec<String>, Problem> {
    let help = "a list of GPU IDs as the job's CUDA_VISIBLE_DEVICES names them, e.g. [\"0\", \"1\", \"2\", \"3\"]";
    let Value::Array(items) = &n.value else {
        return Err(expected("a list of GPU IDs", n).help(help));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = match &item.value {
            Value::String(s) if s.contains('\0') || s.contains(',') || s.trim().is_empty() => {
                return Err(Problem::new(format!(
                    "element {i} is not a GPU ID: empty, or with a `,` or a NUL character"
                ))
                .at(item.span.clone())
                .help(help))
            }
            Value::String(s) => s.trim().to_owned(),
            Value::Number(num) if num.integer && !num.raw.starts_with('-') => num.raw.clone(),
            _ => {
                return Err(Problem::new(format!(
                    "element {i}: expected a GPU ID, found {}",
                    found(item)
                ))
                .at(item.span.clone())
                .help(help))
            }
        };
        if out.contains(&id) {
            return Err(Problem::new(format!("GPU `{id}` is listed twice"))
                .at(item.span.clone())
                .help(help));
        }
        out.push(id);
    }
    Ok(out)
}

impl Validator<'_> {
    /// The top-level `resources` block: `None` when absent, null, or invalid (reported).
    pub(super) fn resources(&mut self, g: Option<&Got>) -> Option<Declared> {
        let g = g?;
        let members = match &g.node.value {
            Value::Null => return None,
            Value::Object(members) => members,
            _ => {
                let p = expected("an object", g.node).help(
                    "e.g. \"resources\": {\"cpus\": 8, \"gpus\": [\"0\", \"1\"], \"mem\": \"32G\"}",
                );
                self.report(None, g, p);
                return None;
            }
        };
        let f = self.gather_in(members, RESOURCES_FIELDS, "resources");
        let mut declared = Declared::default();
        let mut ok = true;
        for got in &f.0 {
            let result = match got.field {
                "cpus" => declared_cpus(got.node).map(|c| declared.cpus = Some(c)),
                "gpus" => declared_gpus(got.node).map(|v| declared.gpus = Some(v)),
                _ => mem(got.node).map(|m| declared.mem = Some(m)),
            };
            if let Err(p) = result {
                let field_name = format!("resources.{}", got.field);
                let message = format!("invalid `{field_name}`: {}", p.detail);
                let span = p.span.unwrap_or_else(|| got.node.span.clone());
                let mut e = self.error(span, None, Some(&field_name), message);
                e.help = p.help;
                self.push(e);
                ok = false;
            }
        }
        ok.then_some(declared)
    }

    /// The keys of an object nested in the top level (`resources`): unknown and repeated
    /// keys are errors naming `parent.key`.
    pub(super) fn gather_in<'n>(
        &mut self,
        members: &'n [(Key, Node)],
        fields: &'static [Field],
        parent: &str,
    ) -> Fields<'n> {
        let mut got: Vec<Got<'n>> = Vec::new();
        for (key, node) in members {
            let Some(f) = find_field(fields, &key.name) else {
                let names: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name)).collect();
                let mut e = self.error(
                    key.span.clone(),
                    None,
                    Some(parent),
                    format!("unknown key `{}` in `{parent}`", key.name),
                );
                match suggest(&key.name, fields) {
                    Some(s) => e.help = Some(format!("did you mean `{s}`?")),
                    None => e.note = Some(format!("`{parent}` takes {}", names.join(", "))),
                }
                self.push(e);
                continue;
            };
            if let Some(first) = got.iter().find(|g| g.field == f.name) {
                let line = self.line(&first.key.span);
                let e = self
                    .error(
                        key.span.clone(),
                        None,
                        Some(&format!("{parent}.{}", f.name)),
                        format!("`{}` given twice in `{parent}`", f.name),
                    )
                    .with_note(format!("first given at line {line}"))
                    .with_help("keep only one of them");
                self.push(e);
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

    /// A task's `needs`: its request and the settings of its runs (see the module doc).
    pub(super) fn needs(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        let cpus_got = f.get("cpus");
        let gpus_got = f.get("gpus");
        let mem_got = f.get("mem");
        let c = self.take(t, cpus_got, cpus);
        let g = self.take(t, gpus_got, gpus);
        let m = self.take(t, mem_got, mem);
        let mut needs = Needs::default();
        let asks = cpus_got.is_some() || gpus_got.is_some() || mem_got.is_some();
        if asks {
            let d = Request::default();
            let request = Request {
                cpus: c.unwrap_or(d.cpus),
                gpus: g.unwrap_or(d.gpus),
                mem: m,
            };
            if let (0, 0, Some(got)) = (request.cpus, request.gpus, cpus_got) {
                // A GPU run may wait on its GPU without a CPU of its own; a run without
                // either would hold nothing and run anywhere.
                let p = Problem::new(
                    "must be at least 1, found 0: only a task with `gpus` may hold no CPU of its own"
                        .to_owned(),
                )
                .help(CPUS_HELP);
                self.report(t, got, p);
            }
            needs.request = Some(request);
        }
        if let Some(b) = self.take(t, f.get("bind"), as_bool) {
            needs.bind = b;
        }
        if let Some(p) = self.take(t, f.get("mem-exceeded"), mem_exceeded) {
            needs.mem_exceeded = p;
        }
        needs.expected_runtime = self.take(t, f.get("expected-runtime"), positive_duration);
        let signal = self.take(t, f.get("checkpoint-signal"), checkpoint_signal);
        let lead = self.take(t, f.get("checkpoint-lead"), positive_duration);
        needs.checkpoint = signal.map(|signal| Checkpoint {
            signal,
            lead: lead.unwrap_or(DEFAULT_CHECKPOINT_LEAD),
        });
        task.needs = needs;
        self.needs_without_effect(t, f, task);
    }

    /// Warnings for the settings of `needs` that cannot take effect (the file loads).
    fn needs_without_effect(&mut self, t: Option<&str>, f: &Fields, task: &TaskSpec) {
        let needs = &task.needs;
        let asks = "the task asks for none of `cpus`, `gpus`, `mem`, so its runs are neither packed nor bound";
        if let (Some(g), None) = (f.get("bind"), &needs.request) {
            let p = Problem::new(format!("has no effect: {asks}"))
                .help("remove `bind`, or give the task a request such as \"cpus\": 1");
            self.warn(t, g, p);
        }
        if let Some(g) = f.get("mem-exceeded") {
            // An invalid `mem` is an error already: no warning on top of it.
            if f.get("mem").is_none() {
                let p = Problem::new(
                    "has no effect: the task gives no `mem`, so no run can exceed it",
                )
                .help("add \"mem\": \"4G\" (the most a run should use), or remove `mem-exceeded`");
                self.warn(t, g, p);
            }
        }
        if let (Some(g), None) = (f.get("checkpoint-lead"), f.get("checkpoint-signal")) {
            let p = Problem::new("has no effect without `checkpoint-signal`: no signal is sent")
                .help("add \"checkpoint-signal\": \"USR1\" (the signal the task catches to save its work)");
            self.warn(t, g, p);
        }
        if let Some(c) = needs.checkpoint {
            if !self.stop_before_end.is_zero() && c.lead <= self.stop_before_end {
                let lead = crate::text::fmt_dur_exact(c.lead);
                let stop = crate::text::fmt_dur_exact(self.stop_before_end);
                let p = Problem::new(format!(
                    "has no effect: the checkpoint would be sent {lead} before the job's end, after the stop that `stop_before_end` begins {stop} before it"
                ))
                .help(format!("make `checkpoint-lead` longer than {stop}"));
                let g = f
                    .get("checkpoint-lead")
                    .or(f.get("checkpoint-signal"))
                    .expect("a checkpoint comes from checkpoint-signal");
                self.warn(t, g, p);
            }
        }
        if let (Some(g), true) = (f.get("expected-runtime"), task.restart_on_success) {
            let p = Problem::new(
                "a service (`autorestart: always`) runs until bansuri stops it and has no expected end; near the job's time limit its restarts would only be held back",
            )
            .help("remove `expected-runtime` (a service needs none), or use `autorestart: unexpected` for a task whose runs end");
            self.warn(t, g, p);
        }
    }
}
