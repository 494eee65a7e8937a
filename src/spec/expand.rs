//! One element of an array task as the task it runs as (issue 19): the template's
//! settings with the placeholders `{item}`, `{index}` and the matrix keys filled in, the
//! element's variables set, and the name `task[id]`. Called by the core when an element is
//! about to run, and by `validate` and the tests.
//!
//! Owns: placeholder filling. Must not: read files, check placeholders (the config does,
//! so that an unknown `{name}` is an error at load time).

use std::path::PathBuf;

use super::{ArrayElement, CommandSpec, OutputTarget, StderrTarget, Sweep, TaskSpec};
use crate::array::{element_name, Element};
use crate::text::shell::{self, Fill};

/// Element at position `pos` of array task `task` (its `sweep`); `None` past the end or
/// for a task that is no array.
pub fn element_task(task: &TaskSpec, pos: u64) -> Option<TaskSpec> {
    let sweep = task.sweep.as_ref()?;
    let e = sweep.array.element(pos)?;
    Some(fill(task, sweep, e))
}

/// Element `e` of array task `task`.
fn fill(task: &TaskSpec, sweep: &Sweep, e: Element) -> TaskSpec {
    let mut el = task.clone();
    el.sweep = None;
    el.name = element_name(&task.name, e.id);
    el.program.clone_from(&task.name);
    let id = e.id.to_string();
    let lookup = |name: &str| -> Option<&str> {
        match name {
            "item" => Some(&e.item),
            "index" => Some(&id),
            _ => e
                .named
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        }
    };
    el.command = match &task.command {
        _ if sweep.task_file => CommandSpec::Shell(e.item.clone()),
        CommandSpec::Shell(s) => {
            CommandSpec::Shell(shell::fill(s, |n| lookup(n).map(Fill::Literal)))
        }
        CommandSpec::Argv(argv) => {
            CommandSpec::Argv(argv.iter().map(|a| fill_text(a, &lookup)).collect())
        }
        other => other.clone(),
    };
    for v in el.env.values_mut() {
        if v.contains('{') {
            *v = fill_text(v, &lookup);
        }
    }
    // Output paths: a `%` of a value is no strftime pattern.
    let in_path = |name: &str| lookup(name).map(|v| v.replace('%', "%%"));
    let fill_path = |p: &std::path::Path| match p.to_str() {
        Some(s) if s.contains('{') => PathBuf::from(fill_text(s, &in_path)),
        _ => p.to_path_buf(),
    };
    if let OutputTarget::File(p) = &task.stdout {
        el.stdout = OutputTarget::File(fill_path(p));
    }
    if let StderrTarget::File(p) = &task.stderr {
        el.stderr = StderrTarget::File(fill_path(p));
    }
    el.env.insert("BANSURI_ITEM".into(), e.item.clone());
    el.env.insert("BANSURI_ARRAY_INDEX".into(), id.clone());
    for (k, v) in &e.named {
        el.env.insert(k.clone(), v.clone());
    }
    el.element = Some(ArrayElement {
        array: task.name.clone(),
        id: e.id,
        item: e.item,
        named: e.named,
        parallel: sweep.parallel,
    });
    el
}

/// `text` (an argument or a value: no shell reads it) with each placeholder replaced by
/// its value as it is; `${name}` stays.
pub(crate) fn fill_text<S: AsRef<str>>(text: &str, lookup: &impl Fn(&str) -> Option<S>) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = &tail[1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let placeholder =
            !head.ends_with('$') && after[name_len..].starts_with('}') && shell::is_name(name);
        match lookup(name).filter(|_| placeholder) {
            Some(v) => {
                out.push_str(v.as_ref());
                rest = &after[name_len + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_placeholders_are_filled_as_they_are() {
        let look = |n: &str| match n {
            "item" => Some("a b'$(x)"),
            "lr" => Some("0.1"),
            _ => None,
        };
        assert_eq!(fill_text("--in={item}", &look), "--in=a b'$(x)");
        assert_eq!(
            fill_text("{lr}{lr} ${lr} {nope} {", &look),
            "0.10.1 ${lr} {nope} {"
        );
        assert_eq!(fill_text("{{item}}", &look), "{a b'$(x)}");
    }
}
