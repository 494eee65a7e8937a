//! What a started run is told about its grant: the environment variables that bind it
//! (the CPU affinity itself is `os::apply_affinity`, called in the child before exec).
//!
//! * CPU part (only with `bind` on and at least one CPU granted): `OMP_NUM_THREADS` = the
//!   number of CPUs, unless the task sets it itself; `BANSURI_CPUS` = the CPU list
//!   (`4-7`).
//! * GPU part (when GPUs were granted, `bind` or not: a GPU is never shared):
//!   `CUDA_VISIBLE_DEVICES`, `ROCR_VISIBLE_DEVICES` and `ZE_AFFINITY_MASK` (NVIDIA, AMD,
//!   Intel) with the same list, and `BANSURI_GPUS` with the inventory's IDs (`4,5` from
//!   `SLURM_JOB_GPUS`). These are set over the task's own values: the assignment is
//!   what keeps two runs off one GPU. A run granted no GPU inherits bansuri's variables
//!   unchanged (hiding every GPU from it would change what existing configs do).
//!
//! Which numbers the `*_VISIBLE_DEVICES` list holds is [`GpuNumbering`]. The issue asks
//! for the grant "renumbered from 0 as the runtimes expect". A runtime numbers the
//! devices a process may see from 0 (`CUDA_VISIBLE_DEVICES=5` is `cuda:0` inside the
//! task), but it reads the variable against the devices the process can open. A process
//! bansuri starts can open every GPU of the job (bansuri confines no devices per run),
//! so every 1-GPU run told `0` would use the same, first, GPU. The default is therefore
//! [`GpuNumbering::Inherited`]: each GPU as the child addresses it (the inventory's
//! `gpu_visible`: the ID, or Slurm's number inside the job), and the runtime then shows
//! it to the task as device 0. [`GpuNumbering::FromZero`] (`0..n-1`) is right only when
//! the child's device view is already its own GPUs (an srun step with `--gpus`, or a
//! per-run device cgroup): the caller picks it then.

use super::inventory::Inventory;
use super::ledger::Grant;

/// How the `*_VISIBLE_DEVICES` list numbers a grant's GPUs (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuNumbering {
    /// As the child addresses them: right for a plain child of bansuri.
    #[default]
    Inherited,
    /// `0..n-1`: right when the child can only see its own GPUs.
    FromZero,
}

/// The GPU variables that carry the same list for each vendor's runtime.
pub const GPU_VARS: [&str; 3] = [
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
];

/// The variables to set for a run holding `grant` (see the module doc). `bind` is the
/// task's `bind` (default on); `task_sets(name)` says whether the task's own
/// environment sets `name`.
pub fn environment(
    grant: &Grant,
    inventory: &Inventory,
    bind: bool,
    numbering: GpuNumbering,
    task_sets: impl Fn(&str) -> bool,
) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if bind && !grant.cpus.is_empty() {
        if !task_sets("OMP_NUM_THREADS") {
            env.push(("OMP_NUM_THREADS", grant.cpus.len().to_string()));
        }
        env.push(("BANSURI_CPUS", grant.cpus.to_string()));
    }
    if !grant.gpus.is_empty() {
        let list = match numbering {
            GpuNumbering::Inherited => grant
                .gpus
                .iter()
                .map(|id| inventory.visible_gpu(id))
                .collect::<Vec<_>>()
                .join(","),
            GpuNumbering::FromZero => (0..grant.gpus.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
        };
        for var in GPU_VARS {
            env.push((var, list.clone()));
        }
        env.push(("BANSURI_GPUS", grant.gpus.join(",")));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::cpuset::CpuSet;
    use crate::resources::inventory::{Inputs, Topology};

    fn inventory(env: &[(&str, &str)]) -> Inventory {
        let affinity = CpuSet::parse("0-7").unwrap();
        Inventory::from_inputs(&Inputs {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            topology: Topology::default(),
            affinity,
            mem_total: 1 << 30,
            declared: None,
        })
        .unwrap()
    }

    fn grant(cpus: &str, gpus: &[&str]) -> Grant {
        Grant {
            cpus: CpuSet::parse(cpus).unwrap(),
            gpus: gpus.iter().map(|g| g.to_string()).collect(),
            mem: None,
        }
    }

    fn get<'a>(env: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn cpus_give_omp_threads_and_the_list() {
        let inv = inventory(&[]);
        let env = environment(
            &grant("4-5", &[]),
            &inv,
            true,
            GpuNumbering::Inherited,
            |_| false,
        );
        assert_eq!(
            env,
            [
                ("OMP_NUM_THREADS", "2".to_string()),
                ("BANSURI_CPUS", "4-5".to_string())
            ]
        );
        let env = environment(
            &grant("4-5", &[]),
            &inv,
            true,
            GpuNumbering::Inherited,
            |n| n == "OMP_NUM_THREADS",
        );
        assert_eq!(
            env,
            [("BANSURI_CPUS", "4-5".to_string())],
            "the task's own OMP_NUM_THREADS stays"
        );
        let env = environment(
            &grant("4-5", &[]),
            &inv,
            false,
            GpuNumbering::Inherited,
            |_| false,
        );
        assert_eq!(env, [], "bind: false gives none of the CPU part");
        let env = environment(&grant("", &[]), &inv, true, GpuNumbering::Inherited, |_| {
            false
        });
        assert_eq!(env, [], "no CPU granted, nothing to bind");
    }

    #[test]
    fn gpus_renumbered_as_chosen_with_the_original_ids() {
        // Slurm gave GPUs 4-7 of the node and numbers them 0-3 inside the job.
        let inv = inventory(&[
            ("SLURM_JOB_ID", "1"),
            ("SLURM_JOB_GPUS", "4,5,6,7"),
            ("CUDA_VISIBLE_DEVICES", "0,1,2,3"),
        ]);
        let g = grant("0", &["6", "7"]);
        let env = environment(&g, &inv, true, GpuNumbering::Inherited, |_| false);
        for var in GPU_VARS {
            assert_eq!(get(&env, var), Some("2,3"), "{var}");
        }
        assert_eq!(get(&env, "BANSURI_GPUS"), Some("6,7"));
        let env = environment(&g, &inv, true, GpuNumbering::FromZero, |_| false);
        for var in GPU_VARS {
            assert_eq!(get(&env, var), Some("0,1"), "{var}");
        }
        assert_eq!(get(&env, "BANSURI_GPUS"), Some("6,7"));
        // bind: false keeps the GPU part, over the task's own values.
        let env = environment(&g, &inv, false, GpuNumbering::FromZero, |_| true);
        assert_eq!(get(&env, "CUDA_VISIBLE_DEVICES"), Some("0,1"));
        assert_eq!(get(&env, "OMP_NUM_THREADS"), None);
        assert_eq!(get(&env, "BANSURI_CPUS"), None);
        // No GPU granted: bansuri's variables are inherited as they are.
        let env = environment(
            &grant("0", &[]),
            &inv,
            true,
            GpuNumbering::Inherited,
            |_| false,
        );
        assert!(
            GPU_VARS
                .iter()
                .chain(&["BANSURI_GPUS"])
                .all(|v| get(&env, v).is_none()),
            "{env:?}"
        );
    }

    /// Four 1-GPU runs over the declared or found list: with the inherited numbering
    /// each addresses its own GPU; counted from zero they would all say `0`.
    #[test]
    fn one_gpu_runs_address_distinct_gpus() {
        let inv = inventory(&[("CUDA_VISIBLE_DEVICES", "0,1,2,3")]);
        let seen: Vec<String> = ["0", "1", "2", "3"]
            .iter()
            .map(|id| {
                let env = environment(
                    &grant("0", &[id]),
                    &inv,
                    true,
                    GpuNumbering::Inherited,
                    |_| false,
                );
                format!(
                    "{}/{}",
                    get(&env, "CUDA_VISIBLE_DEVICES").unwrap(),
                    get(&env, "BANSURI_GPUS").unwrap()
                )
            })
            .collect();
        assert_eq!(seen, ["0/0", "1/1", "2/2", "3/3"]);
        let env = environment(
            &grant("0", &["3"]),
            &inv,
            true,
            GpuNumbering::FromZero,
            |_| false,
        );
        assert_eq!(get(&env, "CUDA_VISIBLE_DEVICES"), Some("0"));
    }

    /// The pieces together on this machine: runs of one CPU each from a ledger over this
    /// process's CPU set, each child bound before exec and given the environment, see
    /// disjoint CPUs in /proc/self/status and `OMP_NUM_THREADS=1`.
    #[test]
    fn children_bound_to_their_grants_see_disjoint_cpus() {
        use crate::resources::ledger::{Ledger, Request};
        use crate::resources::os::{apply_affinity, read_inputs};
        use std::os::unix::process::CommandExt;
        use std::process::Command;

        let inv = Inventory::from_inputs(&read_inputs().unwrap()).unwrap();
        let mut ledger = Ledger::new(&inv);
        let runs = inv.cpus.len().min(4);
        let mut seen = Vec::new();
        for _ in 0..runs {
            let g = ledger.allocate(&Request::default()).unwrap();
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status; echo \"omp=$OMP_NUM_THREADS cpus=$BANSURI_CPUS\""]);
            cmd.env_remove("OMP_NUM_THREADS");
            for (k, v) in environment(&g, &inv, true, GpuNumbering::Inherited, |_| false) {
                cmd.env(k, v);
            }
            let cpus = g.cpus.clone();
            // SAFETY: runs in the child between fork and exec; apply_affinity allocates
            // nothing and makes one system call.
            unsafe {
                cmd.pre_exec(move || apply_affinity(&cpus).map_err(std::io::Error::from));
            }
            let out = cmd.output().expect("running sh");
            assert!(out.status.success(), "{out:?}");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let allowed = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("");
            assert_eq!(allowed, g.cpus.to_string(), "{text}");
            assert!(text.contains(&format!("omp=1 cpus={}", g.cpus)), "{text}");
            seen.push(g.cpus);
        }
        let all = seen.iter().fold(CpuSet::new(), |a, s| a.union(s));
        assert_eq!(
            all.len(),
            runs,
            "the children's CPUs are disjoint: {seen:?}"
        );
    }
}
