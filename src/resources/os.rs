//! The two places this module touches the OS: reading the facts of the node once
//! ([`read_inputs`]) and binding a child to its CPUs before exec ([`apply_affinity`]).
//! Everything else in `resources` is pure and gets these facts as values.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;

use nix::sched::{sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use super::cpuset::{CpuListError, CpuSet};
use super::inventory::{Inputs, Place, Topology};

/// Why the facts could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// `sched_getaffinity` failed.
    Affinity(nix::Error),
    /// `sysinfo` failed.
    Memory(nix::Error),
    /// A sysfs CPU list that is not one.
    CpuList {
        /// The file.
        file: String,
        /// What is wrong with it.
        err: CpuListError,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Affinity(e) => write!(f, "reading bansuri's CPU affinity: {e}"),
            ReadError::Memory(e) => write!(f, "reading the machine's memory (sysinfo): {e}"),
            ReadError::CpuList { file, err } => write!(f, "reading {file}: {err}"),
        }
    }
}

impl std::error::Error for ReadError {}

const CPU_DIR: &str = "/sys/devices/system/cpu";
const NODE_DIR: &str = "/sys/devices/system/node";

/// The node's facts, read now (once per process, by the caller): bansuri's environment
/// (variables that are not UTF-8 are left out: none of those read is), its CPU affinity,
/// the machine's memory (`sysinfo(2)`'s total RAM: /proc/meminfo's `MemTotal`, without
/// reading /proc, which is the `sample` module's), each CPU's socket and NUMA node from
/// sysfs. A machine without NUMA directories has every CPU on node 0; a CPU without a
/// `physical_package_id` is on socket 0. `declared` is left empty for the caller.
pub fn read_inputs() -> Result<Inputs, ReadError> {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let affinity = current_affinity().map_err(ReadError::Affinity)?;
    let mut node_of: BTreeMap<u32, u32> = BTreeMap::new();
    if let Ok(dir) = fs::read_dir(NODE_DIR) {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(node) = name
                .to_str()
                .and_then(|n| n.strip_prefix("node"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let file = entry.path().join("cpulist");
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let cpus = CpuSet::parse(&text).map_err(|err| ReadError::CpuList {
                file: file.display().to_string(),
                err,
            })?;
            for c in cpus.iter() {
                node_of.insert(c, node);
            }
        }
    }
    let topology = Topology::from_fn(&affinity, |c| Place {
        package: read_u32(&Path::new(CPU_DIR).join(format!("cpu{c}/topology/physical_package_id")))
            .unwrap_or(0),
        node: node_of.get(&c).copied().unwrap_or(0),
    });
    Ok(Inputs {
        env,
        affinity,
        mem_total: nix::sys::sysinfo::sysinfo()
            .map_err(ReadError::Memory)?
            .ram_total(),
        topology,
        declared: None,
    })
}

fn read_u32(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The CPUs this process may run on.
pub fn current_affinity() -> nix::Result<CpuSet> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok(CpuSet::from_cpus(
        (0..nix::sched::CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .map(|i| i as u32),
    ))
}

/// The kernel's form of `cpus`, built before fork so that the child only makes the
/// system call ([`apply_mask`]; spawn's vfork path wants nothing else in the child). A
/// CPU beyond the kernel's set size (1024) is `EINVAL`.
pub fn affinity_mask(cpus: &CpuSet) -> nix::Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    for c in cpus.iter() {
        set.set(c as usize)?;
    }
    Ok(set)
}

/// Binds the calling process (all its threads to come) to `mask`: one system call,
/// nothing allocated, safe between fork (or vfork) and exec. A mask of which no CPU is
/// allowed is `EINVAL`.
pub fn apply_mask(mask: &nix::sched::CpuSet) -> nix::Result<()> {
    sched_setaffinity(Pid::from_raw(0), mask)
}

/// Binds the calling process to `cpus` ([`affinity_mask`] then [`apply_mask`]); made
/// for a child between fork and exec (`pre_exec`): it allocates nothing.
pub fn apply_affinity(cpus: &CpuSet) -> nix::Result<()> {
    apply_mask(&affinity_mask(cpus)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn allowed_list(status: &str) -> CpuSet {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_else(|| panic!("no Cpus_allowed_list in:\n{status}"));
        CpuSet::parse(line).unwrap()
    }

    /// On this machine: the CPU set is the kernel's (through nix, and as /proc shows it),
    /// memory is there, and every CPU has a place that sysfs agrees with.
    #[test]
    fn read_inputs_on_this_machine_is_plausible() {
        let i = read_inputs().unwrap_or_else(|e| panic!("{e}"));
        let raw = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let expected: Vec<u32> = (0..nix::sched::CpuSet::count())
            .filter(|&c| raw.is_set(c).unwrap())
            .map(|c| c as u32)
            .collect();
        assert_eq!(i.affinity.as_slice(), &expected[..]);
        assert!(!i.affinity.is_empty());
        let status = fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(i.affinity, allowed_list(&status));
        assert!(i.mem_total > 0, "MemTotal read as 0");
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
        assert_eq!(
            i.mem_total,
            crate::sample::parse_meminfo(&meminfo).0,
            "MemTotal"
        );
        assert_eq!(i.topology.0.keys().copied().collect::<Vec<_>>(), expected);
        for c in i.affinity.iter() {
            let file = Path::new(CPU_DIR).join(format!("cpu{c}/topology/physical_package_id"));
            if let Some(p) = read_u32(&file) {
                assert_eq!(i.topology.place(c).package, p, "cpu {c}");
            }
        }
        assert_eq!(i.env.get("PATH"), std::env::var("PATH").ok().as_ref());
        assert_eq!(i.declared, None);
    }

    /// A child bound before exec sees exactly its CPU in /proc/self/status; the parent
    /// keeps its own set.
    #[test]
    fn a_child_bound_before_exec_runs_on_its_cpu() {
        let mine = current_affinity().unwrap();
        let one = mine.lowest(1);
        let want = one.clone();
        let mut cmd = Command::new("cat");
        cmd.arg("/proc/self/status");
        // SAFETY: the closure runs in the child between fork and exec; apply_affinity
        // allocates nothing and makes one system call (async-signal-safe), and the
        // error conversion builds an io::Error from an errno without allocating.
        unsafe {
            cmd.pre_exec(move || apply_affinity(&want).map_err(std::io::Error::from));
        }
        let out = cmd.output().expect("running cat");
        assert!(out.status.success(), "cat failed: {out:?}");
        let status = String::from_utf8_lossy(&out.stdout);
        assert_eq!(allowed_list(&status), one, "the child's Cpus_allowed_list");
        assert_eq!(
            current_affinity().unwrap(),
            mine,
            "the parent's set is untouched"
        );
    }

    #[test]
    fn binding_to_nothing_is_refused() {
        // In a child: binding a test's own thread would change it for the rest of the run.
        let mut cmd = Command::new("true");
        // SAFETY: as above.
        unsafe {
            cmd.pre_exec(|| apply_affinity(&CpuSet::new()).map_err(std::io::Error::from));
        }
        let err = cmd.status().expect_err("an empty set cannot be bound to");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        // A CPU beyond the kernel's set size is refused before any system call.
        assert_eq!(
            apply_affinity(&CpuSet::from_cpus([70_000])),
            Err(nix::Error::EINVAL)
        );
        let mask = affinity_mask(&CpuSet::parse("1,3-4").unwrap()).unwrap();
        let bits: Vec<usize> = (0..8).filter(|&c| mask.is_set(c).unwrap()).collect();
        assert_eq!(bits, [1, 3, 4]);
    }
}
