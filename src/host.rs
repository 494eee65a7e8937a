//! The facts about the machine and the SLURM job bansuri runs in: the host name, the boot
//! id and the job's environment (`SLURM_JOB_ID` and friends), each read once per process
//! and handed out from then on, so that every part of bansuri (the job log's header and
//! `{job_id}`, the state file, `status`, notices, request ids, srun step lookup) sees the
//! same value.
//!
//! One rule for the job: bansuri is inside a SLURM job when `SLURM_JOB_ID` (or its older
//! spelling `SLURM_JOBID`, which Slurm still sets) is set and not blank. That is the rule
//! that decides whether srun tasks can start and whether KillWait and the job's end time
//! are read ([`JobEnv::from_vars`]); `{job_id}` in `log_file`, the state file's `job` and a
//! notice's job id follow it too, so a blank `SLURM_JOB_ID` is `local` everywhere rather
//! than an empty `{job_id}` in one place and a job with an empty id in another.
//!
//! Owns: reading the host name and the job's environment variables (the boot id is read
//! by the `sample` module, which owns every read of /proc, and cached here).
//!
//! Must not: run anything (Slurm's tools are the `slurm` module's), or read anything twice.

use std::sync::OnceLock;

/// The job bansuri runs in, from the environment Slurm gives the batch script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnv {
    /// `SLURM_JOB_ID`.
    pub id: String,
    /// `SLURM_JOB_NAME`.
    pub name: Option<String>,
    /// `SLURM_JOB_NODELIST`.
    pub nodelist: Option<String>,
    /// `SLURM_JOB_NUM_NODES`.
    pub num_nodes: Option<String>,
    /// `SLURM_CPUS_ON_NODE`: CPUs of the allocation on this node.
    pub cpus_on_node: Option<String>,
    /// `SLURM_JOB_PARTITION`.
    pub partition: Option<String>,
    /// `SLURMD_NODENAME`: this node as Slurm names it.
    pub node: Option<String>,
}

impl JobEnv {
    /// The job from bansuri's environment; `None` outside SLURM. Read once: see [`job`].
    pub fn from_env() -> Option<JobEnv> {
        job().cloned()
    }

    /// The job from these variables; `None` without a (non-blank) `SLURM_JOB_ID` or
    /// `SLURM_JOBID`. Blank variables count as unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Option<JobEnv> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let id = get("SLURM_JOB_ID").or_else(|| get("SLURM_JOBID"))?;
        Some(JobEnv {
            id,
            name: get("SLURM_JOB_NAME"),
            nodelist: get("SLURM_JOB_NODELIST").or_else(|| get("SLURM_NODELIST")),
            num_nodes: get("SLURM_JOB_NUM_NODES").or_else(|| get("SLURM_NNODES")),
            cpus_on_node: get("SLURM_CPUS_ON_NODE"),
            partition: get("SLURM_JOB_PARTITION"),
            node: get("SLURMD_NODENAME"),
        })
    }
}

/// The SLURM job bansuri runs in (`None` outside SLURM), read from the environment on
/// the first call.
pub fn job() -> Option<&'static JobEnv> {
    static JOB: OnceLock<Option<JobEnv>> = OnceLock::new();
    JOB.get_or_init(|| JobEnv::from_vars(|k| std::env::var(k).ok()))
        .as_ref()
}

/// The job id as `{job_id}` and notices show it: the job's id, or `local` outside SLURM.
pub fn job_id() -> &'static str {
    job_id_of(job())
}

/// The job id shown for `job`: its id, or `local`.
pub fn job_id_of(job: Option<&JobEnv>) -> &str {
    job.map_or("local", |j| j.id.as_str())
}

/// This node as Slurm names it (`SLURMD_NODENAME` of the job), else the host name: the
/// name other nodes' agents and the job's node list use (issue 18).
pub fn node() -> &'static str {
    job().and_then(|j| j.node.as_deref()).unwrap_or_else(name)
}

/// This machine's host name (`?` when it cannot be read), read on the first call.
pub fn name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "?".to_owned())
    })
}

/// This boot's id (empty when it cannot be read): pids and start times mean something
/// only within one boot. Read on the first call.
pub fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(crate::sample::boot_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_blank_job_id_is_outside_slurm_and_shows_as_local() {
        for blank in ["", " ", "\t"] {
            let job = JobEnv::from_vars(vars(&[("SLURM_JOB_ID", blank)]));
            assert_eq!(job, None, "{blank:?}");
            assert_eq!(job_id_of(job.as_ref()), "local");
        }
        assert_eq!(job_id_of(None), "local");
    }

    #[test]
    fn the_old_spelling_counts_and_the_new_one_wins() {
        let old = JobEnv::from_vars(vars(&[("SLURM_JOBID", "12")]));
        assert_eq!(job_id_of(old.as_ref()), "12");
        let both = JobEnv::from_vars(vars(&[("SLURM_JOB_ID", "13"), ("SLURM_JOBID", "12")]));
        assert_eq!(job_id_of(both.as_ref()), "13");
        let blank_new = JobEnv::from_vars(vars(&[("SLURM_JOB_ID", ""), ("SLURM_JOBID", "12")]));
        assert_eq!(job_id_of(blank_new.as_ref()), "12");
    }

    #[test]
    fn blank_details_are_unset() {
        let job = JobEnv::from_vars(vars(&[
            ("SLURM_JOB_ID", "26"),
            ("SLURM_JOB_NAME", ""),
            ("SLURM_NODELIST", "n[1-2]"),
        ]))
        .expect("a job");
        assert_eq!(job.name, None);
        assert_eq!(job.nodelist.as_deref(), Some("n[1-2]"));
    }

    #[test]
    fn facts_are_read_once() {
        // The same allocation every call: read once, not once per caller.
        assert!(std::ptr::eq(name(), name()));
        assert!(std::ptr::eq(boot_id(), boot_id()));
        assert!(!name().is_empty());
    }
}
