//! The `srun` task field: `true`, `false`, or `{nodes, ntasks, cpus-per-task, overlap,
//! extra-args}`. Errors name the task and the key inside `srun` (`srun.ntasks`).

use super::*;
use crate::spec::SrunSpec;

impl Validator<'_> {
    /// `None` for `false`/`null`, and for an invalid value (then reported).
    pub(super) fn srun(&mut self, t: Option<&str>, g: &Got) -> Option<SrunSpec> {
        let members = match &g.node.value {
            Value::Bool(true) => return Some(SrunSpec::default()),
            Value::Bool(false) | Value::Null => return None,
            Value::Object(members) => members,
            _ => {
                let p = expected("`true`, `false` or an object", g.node).help(
                    "write \"srun\": true, or \"srun\": {\"ntasks\": 1, \"cpus-per-task\": 4}",
                );
                self.report(t, g, p);
                return None;
            }
        };
        let mut spec = SrunSpec::default();
        let mut ok = true;
        let mut seen: Vec<(&'static str, &Key)> = Vec::new();
        for (key, node) in members {
            let Some(f) = find_field(SRUN_FIELDS, &key.name) else {
                let mut e = self.error(
                    key.span.clone(),
                    t,
                    Some("srun"),
                    format!("unknown key `{}` in `srun`{}", key.name, in_task(t)),
                );
                match suggest(&key.name, SRUN_FIELDS) {
                    Some(s) => e.help = Some(format!("did you mean `{s}`?")),
                    None => {
                        e.note = Some(
                            "`srun` takes `nodes`, `ntasks`, `cpus-per-task`, `overlap`, `extra-args`"
                                .into(),
                        );
                        e.help = Some(
                            "other srun options go in `extra-args`, e.g. [\"--mem=4G\"]".into(),
                        );
                    }
                }
                self.push(e);
                ok = false;
                continue;
            };
            let field_name = format!("srun.{}", f.name);
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == f.name) {
                let line = self.line(&first.span);
                let e = self
                    .error(
                        key.span.clone(),
                        t,
                        Some(&field_name),
                        format!("`{}` given twice in `srun`{}", f.name, in_task(t)),
                    )
                    .with_note(format!("first given at line {line}"))
                    .with_help("keep only one of them");
                self.push(e);
                ok = false;
                continue;
            }
            seen.push((f.name, key));
            let result = match f.name {
                "nodes" => count(node).map(|n| spec.nodes = Some(n)),
                "ntasks" => count(node).map(|n| spec.ntasks = n),
                "cpus-per-task" => count(node).map(|n| spec.cpus_per_task = n),
                "overlap" => as_bool(node)
                    .map(|b| spec.overlap = b)
                    .map_err(|p| {
                        p.help("true: share the CPUs of other steps (a monitor, srun --overlap); false: CPUs of its own (srun --exact)")
                    }),
                _ => extra_args(node).map(|a| spec.extra_args = a),
            };
            if let Err(p) = result {
                let message = format!("invalid `{field_name}`{}: {}", in_task(t), p.detail);
                let span = p.span.unwrap_or_else(|| node.span.clone());
                let mut e = self.error(span, t, Some(&field_name), message);
                e.help = p.help;
                self.push(e);
                ok = false;
            }
        }
        ok.then_some(spec)
    }
}

/// A count of nodes, tasks or CPUs: a whole number >= 1.
fn count(node: &Node) -> Result<u32, Problem> {
    let v = as_int(node)?;
    if v < 1 {
        return Err(Problem::new(format!("must be at least 1, found {v}")));
    }
    u32::try_from(v).map_err(|_| Problem::new(format!("`{v}` is too large")))
}

/// A list of strings, or one string split at whitespace (no quoting).
fn extra_args(node: &Node) -> Result<Vec<String>, Problem> {
    let help = "write a list of srun options: [\"--mem=4G\", \"--gres=gpu:1\"]";
    match &node.value {
        Value::String(s) if s.contains('\0') => Err(Problem::new("contains a NUL character")),
        Value::String(s) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| match &item.value {
                Value::String(s) if s.contains('\0') => {
                    Err(Problem::new("contains a NUL character").at(item.span.clone()))
                }
                Value::String(s) if s.trim().is_empty() => Err(Problem::new("an empty option")
                    .at(item.span.clone())
                    .help(help)),
                Value::String(s) => Ok(s.clone()),
                _ => Err(Problem::new(format!(
                    "each option must be a string, found {}",
                    found(item)
                ))
                .at(item.span.clone())
                .help(help)),
            })
            .collect(),
        _ => Err(expected("a list of strings", node).help(help)),
    }
}
