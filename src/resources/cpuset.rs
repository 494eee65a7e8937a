//! Linux CPU lists (`0-3,8,10-11`), as `/proc/self/status`, sysfs, `taskset -c` and Slurm
//! write them, and the [`CpuSet`] they name.

use std::fmt;
use std::str::FromStr;

/// The largest CPU number a list may name. Linux kernels are built with at most 8192
/// (`NR_CPUS`); the bound keeps a typo like `0-4000000000` from allocating gigabytes.
pub const MAX_CPU: u32 = 65_535;

/// A set of CPU numbers, sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CpuSet(Vec<u32>);

/// A CPU list that could not be read; names the list and the token at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuListError {
    /// The whole list as given.
    pub list: String,
    /// The comma-separated item at fault.
    pub token: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a CPU list (e.g. 0-3,8,10-11): `{}` {}",
            self.list, self.token, self.why
        )
    }
}

impl std::error::Error for CpuListError {}

impl CpuSet {
    /// The empty set.
    pub fn new() -> CpuSet {
        CpuSet(Vec::new())
    }

    /// The set of these CPUs (any order, duplicates allowed).
    pub fn from_cpus(cpus: impl IntoIterator<Item = u32>) -> CpuSet {
        let mut v: Vec<u32> = cpus.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        CpuSet(v)
    }

    /// Reads a Linux CPU list: comma-separated numbers and inclusive ranges `a-b`;
    /// surrounding white space (sysfs ends its files with a newline) is ignored and an
    /// empty list is the empty set (a NUMA node without CPUs reads so).
    pub fn parse(list: &str) -> Result<CpuSet, CpuListError> {
        let t = list.trim();
        if t.is_empty() {
            return Ok(CpuSet::new());
        }
        let err = |token: &str, why| CpuListError {
            list: list.to_owned(),
            token: token.to_owned(),
            why,
        };
        let num = |token: &str, s: &str| -> Result<u32, CpuListError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(token, "is not a CPU number or a range a-b"));
            }
            match s.parse::<u32>() {
                Ok(n) if n <= MAX_CPU => Ok(n),
                _ => Err(err(token, "is beyond the largest CPU number (65535)")),
            }
        };
        let mut cpus = Vec::new();
        for token in t.split(',') {
            match token.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(token, a)?, num(token, b)?);
                    if b < a {
                        return Err(err(token, "ends before it starts"));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(num(token, token)?),
            }
        }
        Ok(CpuSet::from_cpus(cpus))
    }

    /// The number of CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No CPU at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// The CPUs in ascending order, as a slice.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// Every CPU of `self` or `other`.
    pub fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet::from_cpus(self.iter().chain(other.iter()))
    }

    /// The CPUs of `self` that are not in `other`.
    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.iter().filter(|&c| !other.contains(c)).collect())
    }

    /// The CPUs in both.
    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.iter().filter(|&c| other.contains(c)).collect())
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.iter().all(|c| other.contains(c))
    }

    /// The `n` lowest CPUs (all of them when there are fewer).
    pub fn lowest(&self, n: usize) -> CpuSet {
        CpuSet(self.0.iter().take(n).copied().collect())
    }

    /// The runs of consecutive numbers, as inclusive `(first, last)` pairs.
    pub fn runs(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for c in self.iter() {
            match out.last_mut() {
                Some((_, last)) if *last + 1 == c => *last = c,
                _ => out.push((c, c)),
            }
        }
        out
    }
}

/// The Linux form: `0-3,8,10-11` (a run of two is written `10-11`, as the kernel does);
/// the empty set is the empty string.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.runs().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CpuSet {
    type Err = CpuListError;
    fn from_str(s: &str) -> Result<CpuSet, CpuListError> {
        CpuSet::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lists_parse_sorted_and_deduplicated() {
        assert_eq!(set("0-3,8,10-11").as_slice(), &[0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(set("8,0-2,1,2").as_slice(), &[0, 1, 2, 8]);
        assert_eq!(set(" 5 \n").as_slice(), &[5]);
        assert_eq!(set("3-3").as_slice(), &[3]);
        assert!(set("").is_empty());
        assert!(set("\n").is_empty());
    }

    #[test]
    fn lists_format_as_linux_does() {
        assert_eq!(set("0-3,8,10-11").to_string(), "0-3,8,10-11");
        assert_eq!(set("11,10,8,3,2,1,0").to_string(), "0-3,8,10-11");
        assert_eq!(set("7").to_string(), "7");
        assert_eq!(CpuSet::new().to_string(), "");
        for s in ["0", "0-1", "0,2,4", "1-3,5-7,9", "0-63"] {
            assert_eq!(set(s).to_string(), s, "round trip of {s}");
        }
    }

    #[test]
    fn errors_name_the_bad_token() {
        let cases = [
            ("0-3,x,5", "x", "is not a CPU number"),
            ("0-3,,5", "", "is not a CPU number"),
            ("5-3", "5-3", "ends before it starts"),
            ("0-", "0-", "is not a CPU number"),
            ("1,-2", "-2", "is not a CPU number"),
            ("0-4000000000", "0-4000000000", "beyond the largest"),
            ("+1", "+1", "is not a CPU number"),
            ("0-7:2", "0-7:2", "is not a CPU number"),
        ];
        for (list, token, why) in cases {
            let e = CpuSet::parse(list).expect_err(list);
            assert_eq!(e.token, token, "token of {list}");
            assert!(e.why.contains(why), "{list}: {e}");
            let shown = e.to_string();
            assert!(shown.contains(&format!("`{list}`")), "{shown}");
            assert!(shown.contains(&format!("`{token}`")), "{shown}");
        }
    }

    #[test]
    fn set_operations() {
        let a = set("0-7");
        let b = set("2-3,9");
        assert_eq!(a.union(&b), set("0-7,9"));
        assert_eq!(a.difference(&b), set("0-1,4-7"));
        assert_eq!(a.intersection(&b), set("2-3"));
        assert!(set("2-3").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert_eq!(a.lowest(3), set("0-2"));
        assert_eq!(set("0-1,4,6-7").runs(), vec![(0, 1), (4, 4), (6, 7)]);
        assert!(a.contains(7) && !a.contains(8));
        assert_eq!("1,3".parse::<CpuSet>(), Ok(set("3,1")));
    }
}
