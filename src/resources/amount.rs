//! Counts of the three resources ([`Amounts`]) and their words for people: `4 CPUs`,
//! `1 GPU`, `8 GiB`.

use std::fmt;

/// One of the resources a run can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// CPUs (a count; which ones is the grant's).
    Cpus,
    /// GPUs (a count; which ones is the grant's).
    Gpus,
    /// Memory, in bytes.
    Mem,
}

impl Kind {
    /// Every kind, in the order messages name them.
    pub const ALL: [Kind; 3] = [Kind::Cpus, Kind::Gpus, Kind::Mem];

    /// `n` of this kind in words: `1 CPU`, `4 CPUs`, `0 GPUs`, `8 GiB`.
    pub fn words(self, n: u64) -> String {
        match self {
            Kind::Cpus => plural(n, "CPU"),
            Kind::Gpus => plural(n, "GPU"),
            Kind::Mem => fmt_mem(n),
        }
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Memory for the log header and `status`, in binary units as Slurm and `free -h` count:
/// `16 GiB`, `15.6 GiB`, `512 MiB`, `100 KiB`, `12 B` (whole numbers without a decimal).
pub fn fmt_mem(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            if bytes % size == 0 {
                return format!("{} {unit}", bytes / size);
            }
            let tenths = (bytes as u128 * 10 + size as u128 / 2) / size as u128;
            return if tenths % 10 == 0 {
                format!("{} {unit}", tenths / 10)
            } else {
                format!("{}.{} {unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes} B")
}

/// How much of each resource: what is free, what a request needs, what a grant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amounts {
    /// CPUs.
    pub cpus: u64,
    /// GPUs.
    pub gpus: u64,
    /// Memory in bytes.
    pub mem: u64,
}

impl Amounts {
    /// The amount of `kind`.
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Cpus => self.cpus,
            Kind::Gpus => self.gpus,
            Kind::Mem => self.mem,
        }
    }

    /// Whether `self` holds at least `need` of every kind.
    pub fn covers(&self, need: &Amounts) -> bool {
        Kind::ALL.iter().all(|&k| self.get(k) >= need.get(k))
    }

    /// The first kind (CPUs, GPUs, memory) of which `self` holds less than `need`.
    pub fn first_short(&self, need: &Amounts) -> Option<Kind> {
        Kind::ALL.into_iter().find(|&k| self.get(k) < need.get(k))
    }

    /// Each kind plus `other`'s (saturating).
    pub fn plus(&self, other: &Amounts) -> Amounts {
        Amounts {
            cpus: self.cpus.saturating_add(other.cpus),
            gpus: self.gpus.saturating_add(other.gpus),
            mem: self.mem.saturating_add(other.mem),
        }
    }

    /// Each kind minus `other`'s, at least zero.
    pub fn minus(&self, other: &Amounts) -> Amounts {
        Amounts {
            cpus: self.cpus.saturating_sub(other.cpus),
            gpus: self.gpus.saturating_sub(other.gpus),
            mem: self.mem.saturating_sub(other.mem),
        }
    }
}

/// `4 CPUs, 1 GPU, 8 GiB` (memory left out when zero).
impl fmt::Display for Amounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}",
            Kind::Cpus.words(self.cpus),
            Kind::Gpus.words(self.gpus)
        )?;
        if self.mem > 0 {
            write!(f, ", {}", fmt_mem(self.mem))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_people() {
        assert_eq!(Kind::Cpus.words(1), "1 CPU");
        assert_eq!(Kind::Cpus.words(4), "4 CPUs");
        assert_eq!(Kind::Gpus.words(0), "0 GPUs");
        assert_eq!(Kind::Gpus.words(1), "1 GPU");
        assert_eq!(Kind::Mem.words(8 << 30), "8 GiB");
        assert_eq!(fmt_mem(16 << 30), "16 GiB");
        assert_eq!(fmt_mem((15 << 30) + (600 << 20)), "15.6 GiB");
        assert_eq!(fmt_mem((2 << 30) - 1), "2 GiB");
        assert_eq!(fmt_mem(512 << 20), "512 MiB");
        assert_eq!(fmt_mem(3 << 40), "3 TiB");
        assert_eq!(fmt_mem(1000), "1000 B");
        assert_eq!(fmt_mem(0), "0 B");
        let a = Amounts {
            cpus: 4,
            gpus: 1,
            mem: 8 << 30,
        };
        assert_eq!(a.to_string(), "4 CPUs, 1 GPU, 8 GiB");
        assert_eq!(
            Amounts {
                cpus: 2,
                ..Default::default()
            }
            .to_string(),
            "2 CPUs, 0 GPUs"
        );
    }

    #[test]
    fn arithmetic_and_comparison() {
        let free = Amounts {
            cpus: 4,
            gpus: 1,
            mem: 10,
        };
        let need = Amounts {
            cpus: 2,
            gpus: 2,
            mem: 5,
        };
        assert!(!free.covers(&need));
        assert_eq!(free.first_short(&need), Some(Kind::Gpus));
        assert_eq!(
            free.minus(&need),
            Amounts {
                cpus: 2,
                gpus: 0,
                mem: 5
            }
        );
        assert_eq!(
            free.plus(&need),
            Amounts {
                cpus: 6,
                gpus: 3,
                mem: 15
            }
        );
        assert!(free.covers(&Amounts {
            cpus: 4,
            gpus: 1,
            mem: 10
        }));
        assert_eq!(free.first_short(&Amounts::default()), None);
    }
}
