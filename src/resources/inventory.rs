//! What there is: the CPUs, GPUs and memory bansuri may hand out on this node, from the
//! facts read once at start-up ([`Inputs`], see `os::read_inputs`) and the config's
//! `resources` block ([`Declared`]). Pure: the same inputs give the same inventory.
//!
//! The rules, in the order they apply:
//!
//! * SLURM figures (`SLURM_CPUS_ON_NODE`, `SLURM_JOB_GPUS`, `SLURM_MEM_PER_*`) count only
//!   inside a SLURM job, by the rule of `host::JobEnv::from_vars` (a non-blank
//!   `SLURM_JOB_ID` or `SLURM_JOBID`; restated here so that this module imports no
//!   module that reads the environment, and a test holds the two to the same answers): a
//!   stale variable in a login shell does not shrink the machine. Blank variables count
//!   as unset; a malformed one is an error that names it.
//! * **CPUs**: the job's CPU set (bansuri's affinity, which Slurm's task/affinity or
//!   cgroup plugins restrict to the allocation), capped by `SLURM_CPUS_ON_NODE` only when
//!   that is smaller, keeping the lowest-numbered CPUs. Why the minimum: without CPU
//!   confinement (`ConstrainCores=no`, no task/affinity) the affinity is the whole node
//!   while the job owns `SLURM_CPUS_ON_NODE` of it, and packing over the whole node would
//!   run on other jobs' cores; when the set is the smaller one (bansuri started under
//!   `taskset`, or a step narrower than the job), CPUs outside it cannot be bound to at
//!   all (`sched_setaffinity` refuses them), so the set is the physical limit.
//! * **GPUs**: `SLURM_JOB_GPUS`, else `CUDA_VISIBLE_DEVICES`, else `GPU_DEVICE_ORDINAL`,
//!   the first one set; comma-separated IDs kept as strings (indices, UUIDs and MIG names
//!   alike). `CUDA_VISIBLE_DEVICES=NoDevFiles` (what Slurm sets when the job has no GPU
//!   of a configured type) is zero GPUs.
//! * **Memory**: `SLURM_MEM_PER_NODE` (MB; `0` is Slurm's "the whole node", so the
//!   machine's), else `SLURM_MEM_PER_CPU` (MB) times the job's CPUs on the node
//!   (`SLURM_CPUS_ON_NODE`, which is what Slurm multiplies, else the CPUs found above),
//!   else the machine's `MemTotal`.
//! * **The declared `resources` block** overrides each figure it names: `gpus` (a list
//!   of IDs, so GPU packing is testable on a machine without GPUs), `mem`, and `cpus`
//!   (a count, the lowest CPUs of the job's CPU set, or a CPU list, which must lie inside
//!   the job's CPU set since no other CPU can be bound to).

use std::collections::BTreeMap;
use std::fmt;

use super::amount::{fmt_mem, Amounts, Kind};
use super::cpuset::CpuSet;

/// Where one CPU sits: its socket (`physical_package_id`) and its NUMA node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Place {
    /// The socket (package) id.
    pub package: u32,
    /// The NUMA node.
    pub node: u32,
}

/// The place of each CPU; a CPU the machine did not describe counts as socket 0, node 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology(pub BTreeMap<u32, Place>);

impl Topology {
    /// Where `cpu` is.
    pub fn place(&self, cpu: u32) -> Place {
        self.0.get(&cpu).copied().unwrap_or_default()
    }

    /// The place of each CPU of `cpus`, as `place` says.
    pub fn from_fn(cpus: &CpuSet, place: impl Fn(u32) -> Place) -> Topology {
        Topology(cpus.iter().map(|c| (c, place(c))).collect())
    }
}

/// The CPUs of a `resources` block: a count or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredCpus {
    /// `"cpus": 4`: the four lowest CPUs of the job's CPU set.
    Count(u32),
    /// `"cpus": "0-3"`: exactly these (inside the job's CPU set).
    List(CpuSet),
}

/// The config's top-level `resources` block: each field set overrides what was found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declared {
    /// `resources.cpus`.
    pub cpus: Option<DeclaredCpus>,
    /// `resources.gpus`: GPU IDs.
    pub gpus: Option<Vec<String>>,
    /// `resources.mem`, bytes.
    pub mem: Option<u64>,
}

/// The facts the inventory is made of, read once (`os::read_inputs`) or built by a test.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs {
    /// bansuri's environment variables.
    pub env: BTreeMap<String, String>,
    /// bansuri's CPU affinity: the job's CPU set.
    pub affinity: CpuSet,
    /// The machine's memory (`MemTotal`), bytes.
    pub mem_total: u64,
    /// Socket and NUMA node of each CPU.
    pub topology: Topology,
    /// The config's `resources` block, if any.
    pub declared: Option<Declared>,
}

/// Where the CPUs came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSource {
    /// The job's CPU set as it is.
    JobSet,
    /// The job's CPU set (this one) cut to `SLURM_CPUS_ON_NODE` (this many).
    CappedBySlurm {
        /// The whole CPU set.
        set: CpuSet,
        /// `SLURM_CPUS_ON_NODE`.
        cpus_on_node: u32,
    },
    /// `resources.cpus` as a list.
    DeclaredList,
    /// `resources.cpus` as a count.
    DeclaredCount,
}

/// Where the GPUs came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuSource {
    /// No variable names any GPU.
    None,
    /// This environment variable.
    Var(&'static str),
    /// `resources.gpus`.
    Declared,
}

/// Where the memory figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemSource {
    /// `SLURM_MEM_PER_NODE`.
    PerNode,
    /// `SLURM_MEM_PER_NODE=0`: the whole node, so the machine's.
    PerNodeWhole,
    /// `SLURM_MEM_PER_CPU` (bytes) times this many CPUs.
    PerCpu {
        /// Bytes per CPU.
        per_cpu: u64,
        /// CPUs multiplied.
        cpus: u64,
    },
    /// `resources.mem`.
    Declared,
    /// The machine's `MemTotal`.
    Machine,
}

/// What bansuri may hand out on this node, and where each figure came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The CPUs runs are bound to.
    pub cpus: CpuSet,
    /// Where they came from.
    pub cpu_source: CpuSource,
    /// Socket and NUMA node of each CPU.
    pub topology: Topology,
    /// GPU IDs as found (not renumbered).
    pub gpus: Vec<String>,
    /// Where they came from.
    pub gpu_source: GpuSource,
    /// The same GPUs as a process bansuri starts addresses them in its own
    /// `CUDA_VISIBLE_DEVICES`: when the IDs came from `SLURM_JOB_GPUS` (the node's
    /// numbers) and bansuri's `CUDA_VISIBLE_DEVICES` lists as many, its entry at the
    /// same position (Slurm numbers that list inside the job's device cgroup, from 0,
    /// when it confines devices); else the IDs themselves.
    pub gpu_visible: Vec<String>,
    /// Memory, bytes.
    pub mem: u64,
    /// Where that came from.
    pub mem_source: MemSource,
}

/// Why no inventory could be made; each names the variable or field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryError {
    /// An environment variable with a value that cannot be read.
    BadVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// bansuri may run on no CPU at all (an empty affinity: it cannot happen to a
    /// running process, so the inputs were built wrong).
    NoCpus,
    /// `resources.cpus` names CPUs outside the job's CPU set.
    DeclaredOutside {
        /// The CPUs outside.
        outside: CpuSet,
        /// The job's CPU set.
        job: CpuSet,
    },
    /// `resources.cpus` asks for more CPUs than the job's CPU set has (or for none).
    DeclaredCount {
        /// The count asked.
        asked: u32,
        /// The job's CPU set.
        job: CpuSet,
    },
    /// A GPU list (variable or `resources.gpus`) with an empty or repeated ID.
    BadGpuList {
        /// `resources.gpus` or the variable.
        from: &'static str,
        /// The list as given.
        list: String,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::BadVariable { name, value, expected } => {
                write!(f, "{name}=`{value}` is not {expected}")
            }
            InventoryError::NoCpus => f.write_str("the job's CPU set is empty"),
            InventoryError::DeclaredOutside { outside, job } => write!(
                f,
                "resources.cpus names CPUs {outside}, outside the job's CPU set {job} (no run can be bound to them)"
            ),
            InventoryError::DeclaredCount { asked, job } => write!(
                f,
                "resources.cpus asks for {}, the job's CPU set {job} has {}",
                Kind::Cpus.words(u64::from(*asked)),
                job.len()
            ),
            InventoryError::BadGpuList { from, list, why } => {
                write!(f, "{from} `{list}` is not a GPU list: {why}")
            }
        }
    }
}

impl std::error::Error for InventoryError {}

const MB: u64 = 1 << 20;

/// The environment as the inventory reads it: blank values are unset, SLURM's variables
/// count only inside a job.
struct Facts<'a> {
    env: &'a BTreeMap<String, String>,
    in_job: bool,
}

impl<'a> Facts<'a> {
    fn new(inputs: &'a Inputs) -> Facts<'a> {
        Facts {
            env: &inputs.env,
            in_job: in_job(&inputs.env),
        }
    }

    fn var(&self, k: &str) -> Option<String> {
        self.env.get(k).filter(|v| !v.trim().is_empty()).cloned()
    }

    fn slurm(&self, k: &str) -> Option<String> {
        if self.in_job {
            self.var(k)
        } else {
            None
        }
    }
}

/// The CPUs: a declared list (inside the job's set) or count, else the job's set, cut to
/// `SLURM_CPUS_ON_NODE` when that is smaller.
fn choose_cpus(
    set: &CpuSet,
    declared: Option<DeclaredCpus>,
    cpus_on_node: Option<u32>,
) -> Result<(CpuSet, CpuSource), InventoryError> {
    Ok(match declared {
        Some(DeclaredCpus::List(list)) => {
            if list.is_empty() {
                return Err(InventoryError::DeclaredCount {
                    asked: 0,
                    job: set.clone(),
                });
            }
            let outside = list.difference(set);
            if !outside.is_empty() {
                return Err(InventoryError::DeclaredOutside {
                    outside,
                    job: set.clone(),
                });
            }
            (list, CpuSource::DeclaredList)
        }
        Some(DeclaredCpus::Count(n)) => {
            if n == 0 || n as usize > set.len() {
                return Err(InventoryError::DeclaredCount {
                    asked: n,
                    job: set.clone(),
                });
            }
            (set.lowest(n as usize), CpuSource::DeclaredCount)
        }
        None => match cpus_on_node {
            Some(n) if (n as usize) < set.len() => (
                set.lowest(n as usize),
                CpuSource::CappedBySlurm {
                    set: set.clone(),
                    cpus_on_node: n,
                },
            ),
            _ => (set.clone(), CpuSource::JobSet),
        },
    })
}

/// The GPUs: declared, else the first of `SLURM_JOB_GPUS`, `CUDA_VISIBLE_DEVICES`,
/// `GPU_DEVICE_ORDINAL` that is set (`NoDevFiles`: none).
fn choose_gpus(
    facts: &Facts,
    declared: Option<Vec<String>>,
) -> Result<(Vec<String>, GpuSource), InventoryError> {
    if let Some(list) = declared {
        return Ok((
            gpu_list("resources.gpus", &list.join(","), &list)?,
            GpuSource::Declared,
        ));
    }
    let found = [
        ("SLURM_JOB_GPUS", facts.slurm("SLURM_JOB_GPUS")),
        ("CUDA_VISIBLE_DEVICES", facts.var("CUDA_VISIBLE_DEVICES")),
        ("GPU_DEVICE_ORDINAL", facts.var("GPU_DEVICE_ORDINAL")),
    ]
    .into_iter()
    .find_map(|(name, v)| v.map(|v| (name, v)));
    Ok(match found {
        None => (Vec::new(), GpuSource::None),
        Some((name, v)) if v.trim() == "NoDevFiles" => (Vec::new(), GpuSource::Var(name)),
        Some((name, v)) => {
            let ids: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
            (gpu_list(name, &v, &ids)?, GpuSource::Var(name))
        }
    })
}

/// The memory: declared, else `SLURM_MEM_PER_NODE` (0: the whole node), else
/// `SLURM_MEM_PER_CPU` times the CPUs, else the machine's.
fn choose_mem(
    facts: &Facts,
    declared: Option<u64>,
    mem_total: u64,
    cpus: u64,
) -> Result<(u64, MemSource), InventoryError> {
    let mb = |name: &'static str, v: String| {
        v.trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(MB))
            .ok_or(InventoryError::BadVariable {
                name,
                value: v,
                expected: "a number of megabytes",
            })
    };
    Ok(if let Some(m) = declared {
        (m, MemSource::Declared)
    } else if let Some(v) = facts.slurm("SLURM_MEM_PER_NODE") {
        match mb("SLURM_MEM_PER_NODE", v)? {
            0 => (mem_total, MemSource::PerNodeWhole),
            m => (m, MemSource::PerNode),
        }
    } else if let Some(v) = facts.slurm("SLURM_MEM_PER_CPU") {
        let per_cpu = mb("SLURM_MEM_PER_CPU", v)?;
        (
            per_cpu.saturating_mul(cpus),
            MemSource::PerCpu { per_cpu, cpus },
        )
    } else {
        (mem_total, MemSource::Machine)
    })
}

impl Inventory {
    /// Another node's inventory as its agent found it (issue 18): its CPUs, its GPUs as
    /// its processes address them, its memory. Where each came from is the agent's to
    /// know; the leader only packs into it.
    pub fn of_node(cpus: CpuSet, gpus: Vec<String>, mem: u64) -> Inventory {
        Inventory {
            topology: Topology::from_fn(&cpus, |_| Place::default()),
            cpus,
            cpu_source: CpuSource::JobSet,
            gpu_source: if gpus.is_empty() {
                GpuSource::None
            } else {
                GpuSource::Var("the agent's")
            },
            gpu_visible: gpus.clone(),
            gpus,
            mem,
            mem_source: MemSource::Machine,
        }
    }

    /// The inventory these facts give (the rules are in the module doc).
    pub fn from_inputs(inputs: &Inputs) -> Result<Inventory, InventoryError> {
        let facts = Facts::new(inputs);
        let declared = inputs.declared.clone().unwrap_or_default();
        if inputs.affinity.is_empty() {
            return Err(InventoryError::NoCpus);
        }
        let cpus_on_node = match facts.slurm("SLURM_CPUS_ON_NODE") {
            Some(v) => Some(positive(&v).ok_or(InventoryError::BadVariable {
                name: "SLURM_CPUS_ON_NODE",
                value: v,
                expected: "a number of CPUs",
            })?),
            None => None,
        };
        let (cpus, cpu_source) = choose_cpus(&inputs.affinity, declared.cpus, cpus_on_node)?;
        let (gpus, gpu_source) = choose_gpus(&facts, declared.gpus)?;
        let gpu_visible = match (gpu_source, facts.var("CUDA_VISIBLE_DEVICES")) {
            (GpuSource::Var("SLURM_JOB_GPUS"), Some(cvd)) => {
                let listed: Vec<String> = cvd.split(',').map(|s| s.trim().to_owned()).collect();
                if listed.len() == gpus.len() && listed.iter().all(|s| !s.is_empty()) {
                    listed
                } else {
                    gpus.clone()
                }
            }
            _ => gpus.clone(),
        };
        let cpu_count = u64::from(cpus_on_node.unwrap_or(cpus.len() as u32));
        let (mem, mem_source) = choose_mem(&facts, declared.mem, inputs.mem_total, cpu_count)?;
        Ok(Inventory {
            topology: Topology(cpus.iter().map(|c| (c, inputs.topology.place(c))).collect()),
            cpus,
            cpu_source,
            gpus,
            gpu_source,
            gpu_visible,
            mem,
            mem_source,
        })
    }

    /// How a process bansuri starts addresses GPU `id` (see `gpu_visible`); `id`
    /// itself for a GPU this inventory does not have.
    pub fn visible_gpu<'a>(&'a self, id: &'a str) -> &'a str {
        match self.gpus.iter().position(|g| g == id) {
            Some(i) => &self.gpu_visible[i],
            None => id,
        }
    }

    /// How much there is of each resource.
    pub fn amounts(&self) -> Amounts {
        Amounts {
            cpus: self.cpus.len() as u64,
            gpus: self.gpus.len() as u64,
            mem: self.mem,
        }
    }
}

/// Whether these variables are a SLURM job's: `SLURM_JOB_ID`, or its older spelling
/// `SLURM_JOBID`, set and not blank (`host::JobEnv::from_vars`'s rule).
pub fn in_job(env: &BTreeMap<String, String>) -> bool {
    ["SLURM_JOB_ID", "SLURM_JOBID"]
        .iter()
        .any(|k| env.get(*k).is_some_and(|v| !v.trim().is_empty()))
}

fn positive(v: &str) -> Option<u32> {
    v.trim().parse::<u32>().ok().filter(|&n| n > 0)
}

fn gpu_list(
    from: &'static str,
    shown: &str,
    ids: &[String],
) -> Result<Vec<String>, InventoryError> {
    let bad = |why: String| InventoryError::BadGpuList {
        from,
        list: shown.to_owned(),
        why,
    };
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id.trim();
        if id.is_empty() {
            return Err(bad(format!("item {} is empty", i + 1)));
        }
        if out.iter().any(|o| o == id) {
            return Err(bad(format!("`{id}` is named twice")));
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

/// The log header's words: `8 CPUs (0-7, from the job's CPU set), 4 GPUs (0,1,2,3 from
/// resources.gpus), 16 GiB (SLURM_MEM_PER_NODE)`.
impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.cpus.len() as u64;
        let cpus = &self.cpus;
        write!(f, "{} ", Kind::Cpus.words(n))?;
        match &self.cpu_source {
            CpuSource::JobSet => write!(f, "({cpus}, from the job's CPU set)")?,
            CpuSource::CappedBySlurm { set, cpus_on_node } => write!(
                f,
                "({cpus}, the job's CPU set {set} capped by SLURM_CPUS_ON_NODE={cpus_on_node})"
            )?,
            CpuSource::DeclaredList => write!(f, "({cpus} from resources.cpus)")?,
            CpuSource::DeclaredCount => write!(
                f,
                "({cpus}, the lowest {n} of the job's CPU set, from resources.cpus)"
            )?,
        }
        write!(f, ", {}", Kind::Gpus.words(self.gpus.len() as u64))?;
        let ids = self.gpus.join(",");
        match self.gpu_source {
            GpuSource::None => {}
            GpuSource::Var(v) if self.gpus.is_empty() => write!(f, " ({v}=NoDevFiles)")?,
            GpuSource::Var(v) => write!(f, " ({ids} from {v})")?,
            GpuSource::Declared if self.gpus.is_empty() => f.write_str(" (resources.gpus)")?,
            GpuSource::Declared => write!(f, " ({ids} from resources.gpus)")?,
        }
        write!(f, ", {} ", fmt_mem(self.mem))?;
        match self.mem_source {
            MemSource::PerNode => f.write_str("(SLURM_MEM_PER_NODE)"),
            MemSource::PerNodeWhole => f.write_str("(SLURM_MEM_PER_NODE=0: the whole node)"),
            MemSource::PerCpu { per_cpu, cpus } => {
                write!(
                    f,
                    "(SLURM_MEM_PER_CPU {} x {})",
                    fmt_mem(per_cpu),
                    Kind::Cpus.words(cpus)
                )
            }
            MemSource::Declared => f.write_str("(resources.mem)"),
            MemSource::Machine => f.write_str("(the machine's)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    fn inputs(env: &[(&str, &str)], affinity: &str) -> Inputs {
        Inputs {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            affinity: set(affinity),
            mem_total: 64 * GIB,
            topology: Topology::default(),
            declared: None,
        }
    }

    fn inv(i: &Inputs) -> Inventory {
        Inventory::from_inputs(i).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn outside_slurm_the_machine_and_its_cpu_set() {
        let i = inv(&inputs(&[], "0-7"));
        assert_eq!(i.cpus, set("0-7"));
        assert_eq!(i.gpus, Vec::<String>::new());
        assert_eq!(i.mem, 64 * GIB);
        assert_eq!(
            i.to_string(),
            "8 CPUs (0-7, from the job's CPU set), 0 GPUs, 64 GiB (the machine's)"
        );
        assert_eq!(
            i.amounts(),
            Amounts {
                cpus: 8,
                gpus: 0,
                mem: 64 * GIB
            }
        );
    }

    #[test]
    fn slurm_variables_count_only_inside_a_job() {
        let env = [
            ("SLURM_CPUS_ON_NODE", "2"),
            ("SLURM_MEM_PER_NODE", "1024"),
            ("SLURM_JOB_GPUS", "0"),
        ];
        let outside = inv(&inputs(&env, "0-7"));
        assert_eq!(
            (outside.cpus.len(), outside.mem, outside.gpus.len()),
            (8, 64 * GIB, 0)
        );
        let mut env = env.to_vec();
        env.push(("SLURM_JOB_ID", "42"));
        let inside = inv(&inputs(&env, "0-7"));
        assert_eq!(
            (inside.cpus.len(), inside.mem, inside.gpus.len()),
            (2, GIB, 1)
        );
        // Blank is unset, as for the job id itself.
        let blank = inv(&inputs(
            &[("SLURM_JOB_ID", " "), ("SLURM_CPUS_ON_NODE", "2")],
            "0-7",
        ));
        assert_eq!(blank.cpus.len(), 8);
    }

    /// The job rule is host's, case by case.
    #[test]
    fn in_job_agrees_with_host() {
        let cases: [&[(&str, &str)]; 6] = [
            &[],
            &[("SLURM_JOB_ID", "7")],
            &[("SLURM_JOBID", "7")],
            &[("SLURM_JOB_ID", " ")],
            &[("SLURM_JOB_ID", ""), ("SLURM_JOBID", "8")],
            &[("SLURM_JOB_NAME", "x")],
        ];
        for env in cases {
            let map: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let host = crate::host::JobEnv::from_vars(|k| map.get(k).cloned()).is_some();
            assert_eq!(in_job(&map), host, "{env:?}");
        }
        assert!(in_job(
            &[("SLURM_JOBID".to_string(), "7".to_string())].into()
        ));
    }

    #[test]
    fn cpus_on_node_caps_only_when_smaller() {
        let job = |n: &str, aff: &str| {
            inv(&inputs(
                &[("SLURM_JOB_ID", "1"), ("SLURM_CPUS_ON_NODE", n)],
                aff,
            ))
        };
        let capped = job("4", "0-15");
        assert_eq!(capped.cpus, set("0-3"));
        assert_eq!(
            capped.to_string(),
            "4 CPUs (0-3, the job's CPU set 0-15 capped by SLURM_CPUS_ON_NODE=4), 0 GPUs, 64 GiB (the machine's)"
        );
        // Larger than the set: the set is what can be bound to.
        let set_wins = job("16", "2,4,6,8");
        assert_eq!(set_wins.cpus, set("2,4,6,8"));
        assert_eq!(set_wins.cpu_source, CpuSource::JobSet);
        assert_eq!(job("4", "0-3").cpu_source, CpuSource::JobSet);
        let e = Inventory::from_inputs(&inputs(
            &[("SLURM_JOB_ID", "1"), ("SLURM_CPUS_ON_NODE", "x")],
            "0-3",
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "SLURM_CPUS_ON_NODE=`x` is not a number of CPUs"
        );
    }

    #[test]
    fn gpus_in_order_of_the_variables() {
        let all = [
            ("SLURM_JOB_ID", "1"),
            ("SLURM_JOB_GPUS", "4,5"),
            ("CUDA_VISIBLE_DEVICES", "0,1"),
            ("GPU_DEVICE_ORDINAL", "7"),
        ];
        let i = inv(&inputs(&all, "0-3"));
        assert_eq!(i.gpus, ["4", "5"]);
        assert_eq!(i.gpu_source, GpuSource::Var("SLURM_JOB_GPUS"));
        assert!(
            i.to_string()
                .contains(", 2 GPUs (4,5 from SLURM_JOB_GPUS), "),
            "{i}"
        );
        assert_eq!(
            i.gpu_visible,
            ["0", "1"],
            "Slurm's numbering inside the job"
        );
        assert_eq!((i.visible_gpu("5"), i.visible_gpu("9")), ("1", "9"));
        let mut other = all.to_vec();
        other[2] = ("CUDA_VISIBLE_DEVICES", "0");
        assert_eq!(
            inv(&inputs(&other, "0-3")).gpu_visible,
            ["4", "5"],
            "lists of different lengths"
        );
        let i = inv(&inputs(&all[1..], "0-3"));
        assert_eq!(i.gpu_visible, i.gpus);
        assert_eq!(
            i.gpus,
            ["0", "1"],
            "outside a job SLURM_JOB_GPUS is not read"
        );
        let i = inv(&inputs(&all[3..], "0-3"));
        assert_eq!(i.gpus, ["7"]);
        let uuids = inv(&inputs(
            &[("CUDA_VISIBLE_DEVICES", "GPU-8f3a, MIG-1/2/0")],
            "0",
        ));
        assert_eq!(uuids.gpus, ["GPU-8f3a", "MIG-1/2/0"]);
        let none = inv(&inputs(
            &[
                ("CUDA_VISIBLE_DEVICES", "NoDevFiles"),
                ("GPU_DEVICE_ORDINAL", "0"),
            ],
            "0",
        ));
        assert!(none.gpus.is_empty());
        assert!(
            none.to_string()
                .contains("0 GPUs (CUDA_VISIBLE_DEVICES=NoDevFiles)"),
            "{none}"
        );
        for (list, why) in [("0,,1", "item 2 is empty"), ("0,1,0", "`0` is named twice")] {
            let e = Inventory::from_inputs(&inputs(&[("CUDA_VISIBLE_DEVICES", list)], "0"))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("CUDA_VISIBLE_DEVICES `{list}` is not a GPU list: {why}")
            );
        }
    }

    #[test]
    fn memory_per_node_per_cpu_or_the_machine() {
        let job = |env: &[(&str, &str)]| {
            let mut e = vec![("SLURM_JOB_ID", "1")];
            e.extend_from_slice(env);
            inv(&inputs(&e, "0-7"))
        };
        let i = job(&[("SLURM_MEM_PER_NODE", "16384"), ("SLURM_MEM_PER_CPU", "1")]);
        assert_eq!((i.mem, i.mem_source), (16 * GIB, MemSource::PerNode));
        assert!(
            i.to_string().ends_with(", 16 GiB (SLURM_MEM_PER_NODE)"),
            "{i}"
        );
        let i = job(&[("SLURM_MEM_PER_NODE", "0")]);
        assert_eq!((i.mem, i.mem_source), (64 * GIB, MemSource::PerNodeWhole));
        // Per CPU times Slurm's CPUs on the node, even when the CPU set is smaller.
        let i = job(&[("SLURM_MEM_PER_CPU", "2048"), ("SLURM_CPUS_ON_NODE", "10")]);
        assert_eq!(i.mem, 20 * GIB);
        assert!(
            i.to_string()
                .ends_with("20 GiB (SLURM_MEM_PER_CPU 2 GiB x 10 CPUs)"),
            "{i}"
        );
        let i = job(&[("SLURM_MEM_PER_CPU", "1024")]);
        assert_eq!(
            i.mem,
            8 * GIB,
            "times the CPUs found without SLURM_CPUS_ON_NODE"
        );
        let e = Inventory::from_inputs(&inputs(
            &[("SLURM_JOB_ID", "1"), ("SLURM_MEM_PER_NODE", "16G")],
            "0",
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "SLURM_MEM_PER_NODE=`16G` is not a number of megabytes"
        );
    }

    #[test]
    fn the_declared_block_overrides() {
        let mut i = inputs(
            &[
                ("SLURM_JOB_ID", "1"),
                ("SLURM_MEM_PER_NODE", "1024"),
                ("CUDA_VISIBLE_DEVICES", "0"),
            ],
            "0-7",
        );
        i.declared = Some(Declared {
            cpus: None,
            gpus: Some(vec!["0".into(), "1".into(), "2".into(), "3".into()]),
            mem: Some(16 * GIB),
        });
        assert_eq!(
            inv(&i).to_string(),
            "8 CPUs (0-7, from the job's CPU set), 4 GPUs (0,1,2,3 from resources.gpus), 16 GiB (resources.mem)"
        );
        assert_eq!(
            inv(&i).gpu_visible,
            ["0", "1", "2", "3"],
            "declared IDs are used as they are"
        );
        i.declared.as_mut().unwrap().cpus = Some(DeclaredCpus::List(set("2-5")));
        assert_eq!(inv(&i).cpus, set("2-5"));
        assert!(inv(&i)
            .to_string()
            .starts_with("4 CPUs (2-5 from resources.cpus)"));
        i.declared.as_mut().unwrap().cpus = Some(DeclaredCpus::Count(3));
        assert_eq!(inv(&i).cpus, set("0-2"));
        assert!(inv(&i)
            .to_string()
            .starts_with("3 CPUs (0-2, the lowest 3 of the job's CPU set, from resources.cpus)"));

        i.declared.as_mut().unwrap().cpus = Some(DeclaredCpus::List(set("6-9")));
        assert_eq!(
            Inventory::from_inputs(&i).unwrap_err().to_string(),
            "resources.cpus names CPUs 8-9, outside the job's CPU set 0-7 (no run can be bound to them)"
        );
        i.declared.as_mut().unwrap().cpus = Some(DeclaredCpus::List(CpuSet::new()));
        assert_eq!(
            Inventory::from_inputs(&i).unwrap_err().to_string(),
            "resources.cpus asks for 0 CPUs, the job's CPU set 0-7 has 8"
        );
        i.declared.as_mut().unwrap().cpus = Some(DeclaredCpus::Count(9));
        assert_eq!(
            Inventory::from_inputs(&i).unwrap_err().to_string(),
            "resources.cpus asks for 9 CPUs, the job's CPU set 0-7 has 8"
        );
        i.declared.as_mut().unwrap().cpus = None;
        i.declared.as_mut().unwrap().gpus = Some(vec![]);
        assert!(
            inv(&i).to_string().contains(", 0 GPUs (resources.gpus), "),
            "{}",
            inv(&i)
        );
        i.declared.as_mut().unwrap().gpus = Some(vec!["a".into(), "".into()]);
        assert_eq!(
            Inventory::from_inputs(&i).unwrap_err().to_string(),
            "resources.gpus `a,` is not a GPU list: item 2 is empty"
        );
    }

    #[test]
    fn topology_is_kept_for_the_cpus_found() {
        let mut i = inputs(&[], "0-3");
        i.topology = Topology::from_fn(&set("0-7"), |c| Place {
            package: c / 2,
            node: c / 4,
        });
        let got = inv(&i);
        assert_eq!(got.topology.0.len(), 4);
        assert_eq!(
            got.topology.place(3),
            Place {
                package: 1,
                node: 0
            }
        );
        assert_eq!(got.topology.place(99), Place::default());
        assert_eq!(
            Inventory::from_inputs(&inputs(&[], "")),
            Err(InventoryError::NoCpus)
        );
    }
}
