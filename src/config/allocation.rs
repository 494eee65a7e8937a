//! Whether a config's requests fit the allocation (issue 17): each task's `cpus`, `gpus`
//! and `mem` against an [`Inventory`] the caller built (`bansuri validate` from the
//! machine it runs on, the runtime at start from the same facts), and the `requeue_on_end`
//! setting against being in a SLURM job.
//!
//! A request larger than the inventory can ever give is an error when the allocation is
//! known for that resource (inside a SLURM job, or that resource declared in the
//! `resources` block) and a warning otherwise (`bansuri validate` on a login node says
//! nothing about the compute node the job will get).
//!
//! Pure: it reads nothing (no environment, no machine); whether bansuri is in a job is an
//! argument. Errors and warnings are the config's (`ConfigError`, `ConfigWarning`), naming
//! the file, the task and the field, without a line (the `Spec` keeps no positions).

use crate::diagnostic::{ConfigError, ConfigWarning};
use crate::resources::{self, Declared, Inventory, InventoryError, Kind};
use crate::spec::Spec;

/// What [`check_requests`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocationCheck {
    /// Requests that can never start in the known allocation.
    pub errors: Vec<ConfigError>,
    /// Requests larger than what there is here, where the allocation is not known.
    pub warnings: Vec<ConfigWarning>,
}

/// The field of a request for `kind`.
fn field(kind: Kind) -> &'static str {
    match kind {
        Kind::Cpus => "cpus",
        Kind::Gpus => "gpus",
        Kind::Mem => "mem",
    }
}

/// Whether the amount of `kind` is known: inside a job, or declared in `resources`.
fn known(kind: Kind, declared: Option<&Declared>, in_job: bool) -> bool {
    in_job
        || declared.is_some_and(|d| match kind {
            Kind::Cpus => d.cpus.is_some(),
            Kind::Gpus => d.gpus.is_some(),
            Kind::Mem => d.mem.is_some(),
        })
}

/// Each task whose request `inventory` can never give (`resources::validate`): an error
/// when the allocation is known for a resource it asks too much of, else a warning. A
/// `numprocs` program is reported once, under its name. Tasks without a request are not
/// checked (they are not packed).
pub fn check_requests(spec: &Spec, inventory: &Inventory, in_job: bool) -> AllocationCheck {
    let declared = spec.globals.resources.as_ref();
    let mut out = AllocationCheck::default();
    let mut seen: Vec<&str> = Vec::new();
    for task in &spec.tasks {
        let Some(request) = &task.needs.request else {
            continue;
        };
        if seen.contains(&task.program.as_str()) {
            continue;
        }
        let Err(too_large) = resources::validate(request, inventory) else {
            continue;
        };
        seen.push(&task.program);
        let kinds = too_large.kinds();
        let known_kind = kinds.iter().copied().find(|&k| known(k, declared, in_job));
        let kind = known_kind.or(kinds.first().copied()).unwrap_or(Kind::Cpus);
        let mut e = ConfigError::plain(
            &spec.source,
            format!("`{}` in task `{}` {too_large}", field(kind), task.program),
        );
        e.task = Some(task.program.clone());
        e.field = Some(field(kind).to_owned());
        e.note = Some(format!("bansuri found {inventory}"));
        if known_kind.is_some() {
            e.help = Some(
                "lower the request, or ask SLURM for more (sbatch --cpus-per-task, --gpus, --mem) or declare it in `resources`"
                    .to_owned(),
            );
            out.errors.push(e);
        } else {
            e.help = Some(
                "outside a SLURM job the allocation is not known: this is what this machine has; on a node that has less the task would never start"
                    .to_owned(),
            );
            out.warnings.push(ConfigWarning(e));
        }
    }
    out
}

/// `requeue_on_end` outside a SLURM job: bansuri can requeue only the job it runs in.
pub fn requeue_outside_job(spec: &Spec, in_job: bool) -> Option<ConfigWarning> {
    if !spec.globals.requeue_on_end || in_job {
        return None;
    }
    let mut e = ConfigError::plain(
        &spec.source,
        "`requeue_on_end` has no effect outside a SLURM job: bansuri requeues the job it runs in",
    );
    e.field = Some("requeue_on_end".to_owned());
    e.help = Some(
        "submit bansuri with `sbatch --requeue` (a job that is not requeueable cannot be requeued)"
            .to_owned(),
    );
    Some(ConfigWarning(e))
}

/// No inventory could be made: an error of the config when the `resources` block is at
/// fault (it names CPUs outside the job's set, too many, or a bad GPU list) and the CPU
/// set is the job's (`in_job`); else a warning (outside a job the CPU set is this
/// machine's, not the compute node's; or an environment variable bansuri cannot read,
/// which the runtime meets at start).
pub fn inventory_failed(spec: &Spec, error: &InventoryError, in_job: bool) -> AllocationCheck {
    let from_config = match error {
        InventoryError::DeclaredOutside { .. } | InventoryError::DeclaredCount { .. } => {
            Some("resources.cpus")
        }
        InventoryError::BadGpuList { from, .. } if *from == "resources.gpus" => {
            Some("resources.gpus")
        }
        _ => None,
    };
    let mut e = ConfigError::plain(
        &spec.source,
        format!("cannot tell what the allocation has: {error}"),
    );
    e.field = from_config.map(str::to_owned);
    let mut out = AllocationCheck::default();
    let cpus = matches!(from_config, Some("resources.cpus"));
    if cpus {
        e.help = Some(
            "declare only CPUs of the job's CPU set (see `taskset -cp $$` or SLURM_CPUS_ON_NODE)"
                .to_owned(),
        );
    }
    if from_config.is_some() && (in_job || !cpus) {
        out.errors.push(e);
    } else {
        if cpus {
            e.note = Some(
                "outside a SLURM job the CPU set is this machine's: inside the job it may hold them"
                    .to_owned(),
            );
        }
        out.warnings.push(ConfigWarning(e));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::config::{parse_str, Format};
    use crate::resources::{CpuSet, DeclaredCpus, Inputs};

    const GIB: u64 = 1 << 30;

    fn spec(text: &str) -> Spec {
        parse_str(text, Path::new("/cfg/c.json"), Format::Json).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An inventory of `cpus` (a CPU list), `gpus` and 8 GiB, in a job or not.
    fn inventory(cpus: &str, gpus: &[&str], in_job: bool, declared: Option<Declared>) -> Inventory {
        let mut env = BTreeMap::new();
        if in_job {
            env.insert("SLURM_JOB_ID".to_owned(), "42".to_owned());
        }
        if !gpus.is_empty() {
            env.insert("CUDA_VISIBLE_DEVICES".to_owned(), gpus.join(","));
        }
        Inventory::from_inputs(&Inputs {
            env,
            affinity: CpuSet::parse(cpus).unwrap(),
            mem_total: 8 * GIB,
            topology: Default::default(),
            declared,
        })
        .unwrap()
    }

    const TASKS: &str = r#"{"scripts": [
        {"name": "small", "command": "x", "cpus": 2},
        {"name": "monitor", "command": "x"},
        {"name": "big", "command": "x", "cpus": 16, "gpus": 1},
        {"name": "w", "command": "x", "numprocs": 3, "mem": "64G"}
    ]}"#;

    #[test]
    fn too_large_in_a_job_is_an_error_naming_task_and_field() {
        let s = spec(TASKS);
        let inv = inventory("0-7", &[], true, None);
        let c = check_requests(&s, &inv, true);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let got: Vec<_> = c
            .errors
            .iter()
            .map(|e| (e.task.as_deref(), e.field.as_deref()))
            .collect();
        // `w`'s three instances give one error, under the program's name.
        assert_eq!(got, [(Some("big"), Some("cpus")), (Some("w"), Some("mem"))]);
        let big = &c.errors[0];
        assert_eq!(big.file, Path::new("/cfg/c.json"));
        assert_eq!(
            big.message,
            "`cpus` in task `big` asks for more than there is: 16 CPUs (there are 8), 1 GPU (there are 0)"
        );
        assert_eq!(big.note.as_deref(), Some(&*format!("bansuri found {inv}")));
        assert!(big.help.as_deref().unwrap().contains("--cpus-per-task"));
        assert!(c.errors[1].message.contains("64 GiB (there are 8 GiB)"));
    }

    #[test]
    fn too_large_outside_a_job_is_a_warning() {
        let s = spec(TASKS);
        let c = check_requests(&s, &inventory("0-7", &[], false, None), false);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let got: Vec<_> = c
            .warnings
            .iter()
            .map(|w| (w.0.task.as_deref(), w.0.field.as_deref()))
            .collect();
        assert_eq!(got, [(Some("big"), Some("cpus")), (Some("w"), Some("mem"))]);
        assert!(c.warnings[0].to_string().starts_with("warning: "));
        assert!(c.warnings[0]
            .0
            .help
            .as_deref()
            .unwrap()
            .contains("not known"));
    }

    #[test]
    fn a_declared_resource_is_known_outside_a_job() {
        // No GPU declared, CPUs not declared: `big` is over in both, the declared GPUs
        // make it an error, named at `gpus`; `w` is over in memory, which is not
        // declared: a warning.
        let s = spec(&TASKS.replace(r#"{"scripts""#, r#"{"resources": {"gpus": []}, "scripts""#));
        let inv = inventory("0-7", &[], false, s.globals.resources.clone());
        let c = check_requests(&s, &inv, false);
        let errors: Vec<_> = c
            .errors
            .iter()
            .map(|e| (e.task.as_deref(), e.field.as_deref()))
            .collect();
        let warnings: Vec<_> = c
            .warnings
            .iter()
            .map(|w| (w.0.task.as_deref(), w.0.field.as_deref()))
            .collect();
        assert_eq!(errors, [(Some("big"), Some("gpus"))]);
        assert_eq!(warnings, [(Some("w"), Some("mem"))]);
        // CPUs declared too: `big` is over in CPUs first.
        let s = spec(&TASKS.replace(
            r#"{"scripts""#,
            r#"{"resources": {"cpus": 8, "gpus": []}, "scripts""#,
        ));
        let inv = inventory("0-7", &[], false, s.globals.resources.clone());
        let c = check_requests(&s, &inv, false);
        assert_eq!(c.errors[0].field.as_deref(), Some("cpus"));
    }

    #[test]
    fn a_declared_gpu_shortage_is_an_error_at_gpus() {
        let s = spec(
            r#"{"resources": {"gpus": ["0"], "cpus": 4}, "scripts": [{"name": "g", "command": "x", "gpus": 2}]}"#,
        );
        let inv = inventory("0-7", &[], false, s.globals.resources.clone());
        let c = check_requests(&s, &inv, false);
        assert_eq!(c.errors.len(), 1, "{:?}", c);
        assert_eq!(c.errors[0].field.as_deref(), Some("gpus"));
        assert!(c.errors[0].message.contains("2 GPUs (there are 1)"));
        assert!(c.errors[0]
            .note
            .as_deref()
            .unwrap()
            .contains("from resources.gpus"));
        // Fits: nothing.
        let inv = inventory("0-7", &["0", "1"], true, None);
        assert_eq!(check_requests(&s, &inv, true), AllocationCheck::default());
    }

    #[test]
    fn requeue_on_end_outside_a_job_is_a_warning() {
        let s = spec(r#"{"requeue_on_end": true, "scripts": ["x"]}"#);
        let w = requeue_outside_job(&s, false).expect("a warning");
        assert_eq!(w.0.field.as_deref(), Some("requeue_on_end"));
        assert!(w.0.help.as_deref().unwrap().contains("sbatch --requeue"));
        assert_eq!(requeue_outside_job(&s, true), None);
        let s = spec(r#"{"scripts": ["x"]}"#);
        assert_eq!(requeue_outside_job(&s, false), None);
    }

    #[test]
    fn an_inventory_error_of_the_resources_block_is_an_error() {
        let s = spec(r#"{"resources": {"cpus": "0-15"}, "scripts": ["x"]}"#);
        let e = Inventory::from_inputs(&Inputs {
            affinity: CpuSet::parse("0-3").unwrap(),
            mem_total: GIB,
            declared: s.globals.resources.clone(),
            ..Default::default()
        })
        .unwrap_err();
        let c = inventory_failed(&s, &e, true);
        assert_eq!(c.errors.len(), 1);
        assert!(c.warnings.is_empty());
        assert_eq!(c.errors[0].field.as_deref(), Some("resources.cpus"));
        assert!(c.errors[0].message.contains("outside the job's CPU set"));
        // Outside a job the CPU set is the login node's: a warning.
        let c = inventory_failed(&s, &e, false);
        assert!(c.errors.is_empty());
        assert_eq!(c.warnings[0].0.field.as_deref(), Some("resources.cpus"));
        assert!(c.warnings[0]
            .0
            .note
            .as_deref()
            .unwrap()
            .contains("this machine's"));
        assert_eq!(
            s.globals.resources.clone().unwrap().cpus,
            Some(DeclaredCpus::List(CpuSet::parse("0-15").unwrap()))
        );
        // A variable of the job's: a warning.
        let e = InventoryError::BadVariable {
            name: "SLURM_CPUS_ON_NODE",
            value: "x".into(),
            expected: "a number of CPUs",
        };
        let c = inventory_failed(&s, &e, true);
        assert!(c.errors.is_empty());
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].0.message.contains("SLURM_CPUS_ON_NODE"));
    }
}
