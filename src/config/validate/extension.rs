//! Validation of the notification fields (`notify`, `notify-on`) and of `no-interface`,
//! whose allowed values depend on what the running binary registered through the library
//! API ([`Extensions`]). A `no-interface` command that is not registered but has the form
//! `module.path:ClassName` is a Python custom task ([`crate::python`]); a registered name
//! wins over that reading.

use super::{as_bool, as_str, expected, in_task, Fields, Problem, Validator};
use crate::config::tree::Value;
use crate::spec::{CommandSpec, Notify, NotifyOn, TaskSpec};

/// `known` as "`a`, `b`", or what to do when nothing is registered.
fn registered(known: &std::collections::BTreeSet<String>, what: &str) -> String {
    if known.is_empty() {
        format!(
            "this binary registers no {what}: they come from a program that embeds bansuri as a library (see examples/)"
        )
    } else {
        let names: Vec<String> = known.iter().map(|n| format!("`{n}`")).collect();
        format!("{what} registered in this binary: {}", names.join(", "))
    }
}

/// One `notify` value: a word (`mail`, `on-fail`, `none`), a registered notifier or a
/// Python notifier class.
fn notifier(
    n: &crate::config::tree::Node,
    notifiers: &std::collections::BTreeSet<String>,
) -> Result<Notify, Problem> {
    let s = as_str(n)?;
    let w = s.trim();
    if w.eq_ignore_ascii_case("mail") || w.eq_ignore_ascii_case("on-fail") {
        return Ok(Notify::Command);
    }
    if w.eq_ignore_ascii_case("none") {
        return Ok(Notify::Off);
    }
    if notifiers.contains(w) {
        return Ok(Notify::Registered(w.to_string()));
    }
    if crate::python::class_spec(w).is_some() {
        return Ok(Notify::Python(w.to_string()));
    }
    Err(Problem::new(format!("unknown notifier \"{}\"", s.escape_debug())).help(format!(
        "use \"mail\" (runs the global `notify_command`), \"none\", a Python notifier class (\"module.path:ClassName\"), or a registered notifier; {}",
        registered(notifiers, "notifiers")
    )))
}

impl Validator<'_> {
    /// `notify`, `notify-on` and `no-interface` of task `t`, checked against each other,
    /// against the global `notify_command` and against the registered names.
    pub(super) fn notify_fields(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        self.notify(t, f, task);
        self.no_interface(t, f, task);
    }

    /// `notify` and `notify-on`, with the warnings for settings that send nothing.
    fn notify(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        let notifiers = &self.ext.notifiers;
        let notify_got = f.get("notify");
        let notify = self.take(t, notify_got, |n| notifier(n, notifiers));
        let notify_valid = notify.is_some();
        if let Some(n) = notify {
            task.notify = n;
        }
        let on_got = f.get("notify-on");
        if let Some(on) = self.take(t, on_got, notify_on) {
            task.notify_on = on;
        }
        if let (Some(g), Notify::Command) = (notify_got, &task.notify) {
            // An invalid `notify_command` is reported on its own; `null` is "not set".
            // Without one nothing is sent and the run goes on (the manual): a warning.
            if !self.notify_command_given {
                let e = self
                    .error(
                        g.node.span.clone(),
                        t,
                        Some("notify"),
                        format!(
                            "`notify` has no effect{}: {} runs the global `notify_command`, which is not set, so nothing is sent (the run goes on)",
                            in_task(t),
                            match &g.node.value {
                                crate::config::tree::Value::String(v) => format!("{v:?}"),
                                _ => "\"mail\"".to_owned(),
                            }
                        ),
                    )
                    .with_help("add a top-level \"notify_command\": \"mail -s '[bansuri] {task} failed' you@example.org\"");
                self.warn_error(e);
            }
        }
        if let Some(g) = on_got {
            if notify_got.is_some() && !notify_valid {
                // `notify` itself is invalid and already reported.
            } else if task.notify == Notify::Off {
                let p = Problem::new(format!(
                    "it has no effect{}: `notify` is \"none\"",
                    if notify_got.is_none() {
                        " (the default)"
                    } else {
                        ""
                    }
                ))
                .help("add \"notify\": \"mail\" (or a registered notifier), or remove `notify-on`");
                // Harmless as written: a warning (nothing is told), not a refusal.
                self.warn(t, g, p);
            }
        }
    }

    /// `no-interface: true`: the command names a registered in-process task or a Python
    /// class (then the task becomes a Python task, run as a process).
    fn no_interface(&mut self, t: Option<&str>, f: &Fields, task: &mut TaskSpec) {
        if let Some(true) = self.take(t, f.get("no-interface"), as_bool) {
            task.no_interface = true;
            let Some(cmd) = f.get("command") else {
                return; // missing `command` is reported already
            };
            let kinds = &self.ext.tasks;
            let python_help = "name a Python class, \"module.path:ClassName\" (a subclass of bansuri.base.task_base.AbstractTask, imported from the working directory)";
            let p = match (&task.command, &cmd.node.value) {
                (CommandSpec::Argv(_), _) => Some(
                    Problem::new(
                        "with `no-interface: true` the command is the name of a registered task, not a list (or a Python class, \"module.path:ClassName\")",
                    )
                    .help(format!("{python_help}; {}", registered(kinds, "in-process tasks"))),
                ),
                (CommandSpec::Shell(s), Value::String(_)) if kinds.contains(s.as_str()) => None,
                (CommandSpec::Shell(s), Value::String(_)) => {
                    let w = s.trim();
                    if crate::python::class_spec(w).is_some() {
                        // A Python custom task: a process running bansuri's Python runner.
                        task.command = CommandSpec::Python(w.to_owned());
                        task.no_interface = false;
                        None
                    } else {
                        Some(
                            Problem::new(format!(
                                "no task named \"{}\" is registered, and it is not a Python class (\"module.path:ClassName\")",
                                s.escape_debug()
                            ))
                            .help(format!(
                                "{python_help}; {}",
                                registered(kinds, "in-process tasks")
                            )),
                        )
                    }
                }
                _ => None,
            };
            if let Some(p) = p {
                self.report(t, cmd, p);
            }
        }
    }
}

impl Validator<'_> {
    /// As root, a Python task that runs as root must come from files only root can change
    /// (`config::python_module_untrusted`). After `user` is known.
    pub(super) fn python_module_trust(&mut self, t: Option<&str>, f: &Fields, task: &TaskSpec) {
        let CommandSpec::Python(spec) = &task.command else {
            return;
        };
        if task.user.as_ref().is_some_and(|u| u.uid != 0) {
            return;
        }
        let module = crate::python::class_spec(spec).map_or("", |(m, _)| m);
        let Some(u) = crate::config::python_module_untrusted(&task.working_directory, module)
        else {
            return;
        };
        if let Some(cmd) = f.get("command") {
            self.report(t, cmd, Problem::new(u.why).help(u.help));
        }
    }
}

/// `notify-on`: one word or a non-empty list of `failure`, `success`, `recovery`.
fn notify_on(node: &crate::config::tree::Node) -> Result<NotifyOn, Problem> {
    let help =
        "list any of \"failure\", \"success\", \"recovery\", \"attempt\", e.g. [\"failure\", \"recovery\"]";
    let items: Vec<&crate::config::tree::Node> = match &node.value {
        Value::String(_) => vec![node],
        Value::Array(items) if items.is_empty() => {
            return Err(Problem::new("the list is empty").help(
                "omit `notify-on` to be told about failures only, or set \"notify\": \"none\"",
            ))
        }
        Value::Array(items) => items.iter().collect(),
        _ => return Err(expected("a list of events", node).help(help)),
    };
    let mut on = NotifyOn {
        failure: false,
        success: false,
        recovery: false,
        attempt: false,
    };
    for item in items {
        let w = match &item.value {
            Value::String(s) => s.trim().to_ascii_lowercase(),
            _ => {
                return Err(expected("an event name", item)
                    .at(item.span.clone())
                    .help(help))
            }
        };
        match w.as_str() {
            "failure" => on.failure = true,
            "success" => on.success = true,
            "recovery" => on.recovery = true,
            "attempt" => on.attempt = true,
            _ => {
                let shown = match &item.value {
                    Value::String(s) => s.escape_debug().to_string(),
                    _ => String::new(),
                };
                return Err(Problem::new(format!("unknown event \"{shown}\""))
                    .at(item.span.clone())
                    .help(help));
            }
        }
    }
    Ok(on)
}
