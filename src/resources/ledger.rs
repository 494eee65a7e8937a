//! Requests and grants: what a run asks for ([`Request`]), what it was given ([`Grant`]),
//! and the [`Ledger`] of what is free.
//!
//! Which CPUs: a grant's CPUs sit on one socket and NUMA node when one has enough free
//! (the one with the fewest free that still fits, so that larger holes stay whole for
//! larger requests), and inside it on consecutive CPU numbers when such a run exists
//! (again the smallest run that fits). When no single place has enough, the places with
//! the most free CPUs are taken whole first, so the grant spans the fewest places, and
//! the rest comes from the smallest place that holds it. GPUs are the lowest free in the
//! inventory's order; memory is a number.

use std::collections::BTreeMap;
use std::fmt;

use super::amount::{fmt_mem, Amounts, Kind};
use super::cpuset::CpuSet;
use super::inventory::{Inventory, Place, Topology};

/// What a run asks for (`cpus`, `gpus`, `mem` of a task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request {
    /// CPUs (default 1; 0 holds and binds to none).
    pub cpus: u32,
    /// GPUs (default 0).
    pub gpus: u32,
    /// Memory in bytes, if asked.
    pub mem: Option<u64>,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            cpus: 1,
            gpus: 0,
            mem: None,
        }
    }
}

impl Request {
    /// A task's `mem` as the config writes it (`"4G"`, `"512MB"`, a number of bytes: the
    /// sizes of `text::parse_size`), more than zero.
    pub fn parse_mem(s: &str) -> Result<u64, String> {
        match crate::text::parse_size(s).map_err(|e| e.to_string())? {
            0 => Err(format!(
                "`{s}` is no memory: a request asks for more than 0 bytes"
            )),
            n => Ok(n),
        }
    }

    /// The amounts it takes from the ledger (no `mem` takes no memory).
    pub fn amounts(&self) -> Amounts {
        Amounts {
            cpus: u64::from(self.cpus),
            gpus: u64::from(self.gpus),
            mem: self.mem.unwrap_or(0),
        }
    }
}

/// `2 CPUs, 1 GPU, 4 GiB`.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.amounts().fmt(f)
    }
}

/// What a run holds while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Its CPUs.
    pub cpus: CpuSet,
    /// Its GPUs, as the inventory names them.
    pub gpus: Vec<String>,
    /// Its memory, when it asked for some.
    pub mem: Option<u64>,
}

/// The binding as `status` shows it: `CPUs 4-5, GPUs 2,3, 4 GiB` (no GPU or memory part
/// when none was granted, `no CPU` for a grant of none).
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cpus.len() {
            0 => f.write_str("no CPU")?,
            1 => write!(f, "CPU {}", self.cpus)?,
            _ => write!(f, "CPUs {}", self.cpus)?,
        }
        match self.gpus.len() {
            0 => {}
            1 => write!(f, ", GPU {}", self.gpus[0])?,
            _ => write!(f, ", GPUs {}", self.gpus.join(","))?,
        }
        if let Some(m) = self.mem {
            write!(f, ", {}", fmt_mem(m))?;
        }
        Ok(())
    }
}

impl Grant {
    /// The amounts it holds.
    pub fn amounts(&self) -> Amounts {
        Amounts {
            cpus: self.cpus.len() as u64,
            gpus: self.gpus.len() as u64,
            mem: self.mem.unwrap_or(0),
        }
    }
}

/// Not enough free now: the first kind short (CPUs, then GPUs, then memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    /// What is short.
    pub kind: Kind,
    /// How much the request needs.
    pub need: u64,
    /// How much is free.
    pub free: u64,
}

impl Shortage {
    /// The first kind of which `free` has less than `need`.
    pub fn of(free: &Amounts, need: &Amounts) -> Option<Shortage> {
        free.first_short(need).map(|kind| Shortage {
            kind,
            need: need.get(kind),
            free: free.get(kind),
        })
    }
}

/// `needs 4 CPUs, 2 free`, `needs 1 GPU, 0 free`, `needs 8 GiB, 3 GiB free`.
impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let free = match self.kind {
            Kind::Mem => fmt_mem(self.free),
            _ => self.free.to_string(),
        };
        write!(f, "needs {}, {free} free", self.kind.words(self.need))
    }
}

/// A request larger than everything there is: it can never start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// What it asks for.
    pub asked: Amounts,
    /// What there is.
    pub have: Amounts,
}

impl TooLarge {
    /// The kinds asked beyond what there is.
    pub fn kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|&k| self.asked.get(k) > self.have.get(k))
            .collect()
    }
}

/// `asks for more than there is: 16 CPUs (there are 8), 1 GPU (there are 0)`.
impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("asks for more than there is: ")?;
        for (i, k) in self.kinds().into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let have = match k {
                Kind::Mem => fmt_mem(self.have.get(k)),
                _ => self.have.get(k).to_string(),
            };
            write!(f, "{} (there are {have})", k.words(self.asked.get(k)))?;
        }
        Ok(())
    }
}

impl std::error::Error for TooLarge {}

/// Whether `request` can ever be granted from `inventory`: the error names every kind
/// asked beyond what there is (the config turns it into an error when the allocation is
/// known, a warning otherwise).
pub fn validate(request: &Request, inventory: &Inventory) -> Result<(), TooLarge> {
    let (asked, have) = (request.amounts(), inventory.amounts());
    if have.covers(&asked) {
        Ok(())
    } else {
        Err(TooLarge { asked, have })
    }
}

/// What is free of an inventory, and the grants taken from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    all_cpus: CpuSet,
    topology: Topology,
    gpus: Vec<String>,
    mem: u64,
    free_cpus: CpuSet,
    free_gpus: Vec<bool>,
    free_mem: u64,
}

impl Ledger {
    /// Everything of `inventory` free.
    pub fn new(inventory: &Inventory) -> Ledger {
        Ledger {
            all_cpus: inventory.cpus.clone(),
            topology: inventory.topology.clone(),
            gpus: inventory.gpus.clone(),
            mem: inventory.mem,
            free_cpus: inventory.cpus.clone(),
            free_gpus: vec![true; inventory.gpus.len()],
            free_mem: inventory.mem,
        }
    }

    /// How much there is in all.
    pub fn total(&self) -> Amounts {
        Amounts {
            cpus: self.all_cpus.len() as u64,
            gpus: self.gpus.len() as u64,
            mem: self.mem,
        }
    }

    /// How much is free now.
    pub fn free(&self) -> Amounts {
        Amounts {
            cpus: self.free_cpus.len() as u64,
            gpus: self.free_gpus.iter().filter(|&&f| f).count() as u64,
            mem: self.free_mem,
        }
    }

    /// How much is held by grants.
    pub fn in_use(&self) -> Amounts {
        self.total().minus(&self.free())
    }

    /// In use against the total, for `status` and the dashboard: `CPUs 6/8 in use,
    /// GPUs 1/4, memory 3 GiB/16 GiB`.
    pub fn usage(&self) -> String {
        let (used, total) = (self.in_use(), self.total());
        format!(
            "CPUs {}/{} in use, GPUs {}/{}, memory {}/{}",
            used.cpus,
            total.cpus,
            used.gpus,
            total.gpus,
            fmt_mem(used.mem),
            fmt_mem(total.mem)
        )
    }

    /// A node that is gone (issue 18): nothing of it is free or counted any more, so no
    /// run is placed on it; what its runs held is not given back.
    pub fn retire(&mut self) {
        *self = Ledger {
            all_cpus: CpuSet::new(),
            topology: Topology::default(),
            gpus: Vec::new(),
            mem: 0,
            free_cpus: CpuSet::new(),
            free_gpus: Vec::new(),
            free_mem: 0,
        };
    }

    /// The free CPUs.
    pub fn free_cpus(&self) -> &CpuSet {
        &self.free_cpus
    }

    /// Whether `request` fits in what is free now; else the first kind short.
    pub fn fits(&self, request: &Request) -> Result<(), Shortage> {
        match Shortage::of(&self.free(), &request.amounts()) {
            None => Ok(()),
            Some(s) => Err(s),
        }
    }

    /// Takes `request` from what is free (see the module doc for which CPUs and GPUs).
    pub fn allocate(&mut self, request: &Request) -> Result<Grant, Shortage> {
        self.fits(request)?;
        let cpus = choose_cpus(&self.free_cpus, &self.topology, request.cpus as usize);
        self.free_cpus = self.free_cpus.difference(&cpus);
        let mut gpus = Vec::with_capacity(request.gpus as usize);
        for (i, free) in self.free_gpus.iter_mut().enumerate() {
            if gpus.len() == request.gpus as usize {
                break;
            }
            if *free {
                *free = false;
                gpus.push(self.gpus[i].clone());
            }
        }
        self.free_mem -= request.mem.unwrap_or(0);
        Ok(Grant {
            cpus,
            gpus,
            mem: request.mem,
        })
    }

    /// Gives `grant` back. What the ledger never gave (another inventory's CPU or GPU,
    /// or a grant given back twice) is not counted twice: free never exceeds the total.
    pub fn release(&mut self, grant: &Grant) {
        self.free_cpus = self
            .free_cpus
            .union(&grant.cpus.intersection(&self.all_cpus));
        for id in &grant.gpus {
            if let Some(i) = self.gpus.iter().position(|g| g == id) {
                self.free_gpus[i] = true;
            }
        }
        self.free_mem = self
            .free_mem
            .saturating_add(grant.mem.unwrap_or(0))
            .min(self.mem);
    }
}

/// `n` CPUs of `free` (which has at least `n`), placed as the module doc says.
fn choose_cpus(free: &CpuSet, topology: &Topology, n: usize) -> CpuSet {
    let mut places: BTreeMap<Place, Vec<u32>> = BTreeMap::new();
    for c in free.iter() {
        places.entry(topology.place(c)).or_default().push(c);
    }
    let mut groups: Vec<CpuSet> = places.into_values().map(CpuSet::from_cpus).collect();
    // Most free first; among equals the lower place first (BTreeMap order, stable sort).
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut chosen = CpuSet::new();
    let mut left = n;
    for (i, g) in groups.iter().enumerate() {
        if left == 0 {
            break;
        }
        if g.len() >= left {
            // The smallest place that holds the rest, the lowest place among equals.
            let best = groups[i..]
                .iter()
                .filter(|g| g.len() >= left)
                .min_by_key(|g| g.len())
                .unwrap_or(g);
            chosen = chosen.union(&pick_consecutive(best, left));
            left = 0;
        } else {
            chosen = chosen.union(g);
            left -= g.len();
        }
    }
    chosen
}

/// `n` CPUs of `set`: the first `n` of the shortest run of consecutive numbers that holds
/// them (the lowest among equals), else the `n` lowest.
fn pick_consecutive(set: &CpuSet, n: usize) -> CpuSet {
    let best = set
        .runs()
        .into_iter()
        .filter(|(a, b)| (b - a + 1) as usize >= n)
        .min_by_key(|(a, b)| (b - a, *a));
    match best {
        Some((a, _)) => CpuSet::from_cpus(a..a + n as u32),
        None => set.lowest(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::inventory::{Declared, Inputs};

    const GIB: u64 = 1 << 30;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    /// An inventory of `cpus`, each CPU's place given by `place`, these GPUs, 16 GiB.
    fn inventory(cpus: &str, place: impl Fn(u32) -> Place, gpus: &[&str]) -> Inventory {
        let affinity = set(cpus);
        Inventory::from_inputs(&Inputs {
            env: Default::default(),
            topology: Topology::from_fn(&affinity, place),
            affinity,
            mem_total: 16 * GIB,
            declared: Some(Declared {
                gpus: Some(gpus.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
        })
        .unwrap()
    }

    fn flat(cpus: &str) -> Ledger {
        Ledger::new(&inventory(cpus, |_| Place::default(), &[]))
    }

    fn req(cpus: u32, gpus: u32, mem: Option<u64>) -> Request {
        Request { cpus, gpus, mem }
    }

    #[test]
    fn mem_is_a_size() {
        assert_eq!(Request::parse_mem("4G"), Ok(4 * GIB));
        assert_eq!(Request::parse_mem("512MB"), Ok(512 << 20));
        assert_eq!(Request::parse_mem("1048576"), Ok(1 << 20));
        assert!(Request::parse_mem("4 parsecs")
            .unwrap_err()
            .contains("is not a size"));
        assert_eq!(
            Request::parse_mem("0G").unwrap_err(),
            "`0G` is no memory: a request asks for more than 0 bytes"
        );
    }

    #[test]
    fn grants_and_usage_in_words() {
        let mut l = Ledger::new(&inventory(
            "0-7",
            |_| Place::default(),
            &["0", "1", "2", "3"],
        ));
        assert_eq!(l.usage(), "CPUs 0/8 in use, GPUs 0/4, memory 0 B/16 GiB");
        let a = l.allocate(&req(2, 2, Some(4 * GIB))).unwrap();
        let b = l.allocate(&req(1, 1, None)).unwrap();
        assert_eq!(a.to_string(), "CPUs 0-1, GPUs 0,1, 4 GiB");
        assert_eq!(b.to_string(), "CPU 2, GPU 2");
        assert_eq!(l.usage(), "CPUs 3/8 in use, GPUs 3/4, memory 4 GiB/16 GiB");
        let none = Grant {
            cpus: CpuSet::new(),
            gpus: vec![],
            mem: None,
        };
        assert_eq!(none.to_string(), "no CPU");
    }

    #[test]
    fn request_defaults_and_words() {
        assert_eq!(Request::default(), req(1, 0, None));
        assert_eq!(req(4, 1, Some(8 * GIB)).to_string(), "4 CPUs, 1 GPU, 8 GiB");
        assert_eq!(
            Request::default().amounts(),
            Amounts {
                cpus: 1,
                gpus: 0,
                mem: 0
            }
        );
    }

    /// The test, in the pure part: two `cpus: 2` runs on a 4-CPU set are disjoint.
    #[test]
    fn two_runs_of_two_cpus_get_disjoint_halves() {
        let mut l = flat("0-3");
        let a = l.allocate(&req(2, 0, None)).unwrap();
        let b = l.allocate(&req(2, 0, None)).unwrap();
        assert_eq!((a.cpus.clone(), b.cpus.clone()), (set("0-1"), set("2-3")));
        assert_eq!(
            l.free(),
            Amounts {
                cpus: 0,
                gpus: 0,
                mem: 16 * GIB
            }
        );
        assert_eq!(
            l.fits(&Request::default()).unwrap_err().to_string(),
            "needs 1 CPU, 0 free"
        );
        l.release(&a);
        assert_eq!(l.free_cpus(), &set("0-1"));
        assert_eq!(l.allocate(&req(2, 0, None)).unwrap().cpus, set("0-1"));
    }

    #[test]
    fn one_socket_when_possible_the_tightest_that_fits() {
        // Two sockets of four: 0-3 and 4-7.
        let inv = inventory(
            "0-7",
            |c| Place {
                package: c / 4,
                node: c / 4,
            },
            &[],
        );
        let mut l = Ledger::new(&inv);
        assert_eq!(l.allocate(&req(2, 0, None)).unwrap().cpus, set("0-1"));
        // Socket 0 has 2 free, socket 1 has 4: three go to socket 1.
        assert_eq!(l.allocate(&req(3, 0, None)).unwrap().cpus, set("4-6"));
        // Two: socket 0 has exactly two free, the tightest fit.
        assert_eq!(l.allocate(&req(2, 0, None)).unwrap().cpus, set("2-3"));
        assert_eq!(l.allocate(&req(1, 0, None)).unwrap().cpus, set("7"));
    }

    #[test]
    fn across_sockets_the_fewest_places() {
        // Three sockets: 0-3, 4-7, 8-11; free: 1,3 | 4,5,6 | 8.
        let inv = inventory(
            "0-11",
            |c| Place {
                package: c / 4,
                node: 0,
            },
            &[],
        );
        let mut l = Ledger::new(&inv);
        let held = Grant {
            cpus: set("0,2,7,9-11"),
            gpus: vec![],
            mem: None,
        };
        l.free_cpus = l.free_cpus.difference(&held.cpus);
        assert_eq!(l.free_cpus(), &set("1,3-6,8"));
        // Four: socket 1 whole (3), then one from the smallest place that has one
        // (socket 2's single CPU, keeping socket 0's pair).
        assert_eq!(l.allocate(&req(4, 0, None)).unwrap().cpus, set("4-6,8"));
    }

    #[test]
    fn consecutive_numbers_when_a_run_holds_them() {
        let mut l = flat("0-7");
        let hole = Grant {
            cpus: set("2,7"),
            gpus: vec![],
            mem: None,
        };
        l.free_cpus = l.free_cpus.difference(&hole.cpus);
        // Free: 0-1 and 3-6. Three: from the run 3-6; then two: the run 0-1 that fits.
        assert_eq!(l.allocate(&req(3, 0, None)).unwrap().cpus, set("3-5"));
        assert_eq!(l.allocate(&req(2, 0, None)).unwrap().cpus, set("0-1"));
        // Free: 6 only.
        assert_eq!(l.free_cpus(), &set("6"));
        // No run holds three of 0,2,4 (a flat ledger with holes): the lowest.
        assert_eq!(pick_consecutive(&set("0,2,4,6"), 3), set("0,2,4"));
    }

    /// The GPU test, in the pure part: four 1-GPU runs over a declared 4-GPU list
    /// get disjoint GPUs, a fifth does not fit.
    #[test]
    fn four_one_gpu_runs_get_disjoint_gpus_and_a_fifth_waits() {
        let mut l = Ledger::new(&inventory(
            "0-7",
            |_| Place::default(),
            &["0", "1", "2", "3"],
        ));
        let grants: Vec<Grant> = (0..4)
            .map(|_| l.allocate(&req(1, 1, None)).unwrap())
            .collect();
        let gpus: Vec<&str> = grants.iter().map(|g| g.gpus[0].as_str()).collect();
        assert_eq!(gpus, ["0", "1", "2", "3"]);
        let fifth = l.allocate(&req(1, 1, None)).unwrap_err();
        assert_eq!(fifth.to_string(), "needs 1 GPU, 0 free");
        assert_eq!(
            l.in_use(),
            Amounts {
                cpus: 4,
                gpus: 4,
                mem: 0
            }
        );
        l.release(&grants[2]);
        assert_eq!(l.allocate(&req(1, 1, None)).unwrap().gpus, ["2"]);
    }

    #[test]
    fn memory_is_counted() {
        let mut l = flat("0-7");
        let a = l.allocate(&req(1, 0, Some(13 * GIB))).unwrap();
        assert_eq!(a.mem, Some(13 * GIB));
        let e = l.allocate(&req(1, 0, Some(8 * GIB))).unwrap_err();
        assert_eq!(e.to_string(), "needs 8 GiB, 3 GiB free");
        assert_eq!(
            l.free_cpus(),
            &set("1-7"),
            "a refused request takes nothing"
        );
        l.release(&a);
        l.release(&a);
        assert_eq!(
            l.free(),
            l.total(),
            "a grant given back twice frees it once"
        );
        let foreign = Grant {
            cpus: set("100"),
            gpus: vec!["9".into()],
            mem: None,
        };
        l.release(&foreign);
        assert_eq!(l.free(), l.total());
    }

    #[test]
    fn shortage_names_cpus_before_gpus_before_memory() {
        let l = Ledger::new(&inventory("0-1", |_| Place::default(), &[]));
        assert_eq!(
            l.fits(&req(4, 1, Some(32 * GIB))).unwrap_err().to_string(),
            "needs 4 CPUs, 2 free"
        );
        assert_eq!(
            l.fits(&req(2, 1, Some(32 * GIB))).unwrap_err().to_string(),
            "needs 1 GPU, 0 free"
        );
        assert_eq!(
            l.fits(&req(2, 0, Some(32 * GIB))).unwrap_err().to_string(),
            "needs 32 GiB, 16 GiB free"
        );
        assert_eq!(l.fits(&req(0, 0, None)), Ok(()));
    }

    #[test]
    fn validate_names_what_can_never_be_given() {
        let inv = inventory("0-7", |_| Place::default(), &[]);
        assert_eq!(validate(&req(8, 0, Some(16 * GIB)), &inv), Ok(()));
        let e = validate(&req(16, 1, None), &inv).unwrap_err();
        assert_eq!(e.kinds(), [Kind::Cpus, Kind::Gpus]);
        assert_eq!(
            e.to_string(),
            "asks for more than there is: 16 CPUs (there are 8), 1 GPU (there are 0)"
        );
        let e = validate(&req(1, 0, Some(20 * GIB)), &inv).unwrap_err();
        assert_eq!(
            e.to_string(),
            "asks for more than there is: 20 GiB (there are 16 GiB)"
        );
    }
}
