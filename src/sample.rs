//! Resource sampling from /proc: per task CPU% and memory summed over its process groups,
//! the node's load and available memory, and the low-memory warning.
//!
//! Memory is not the sum of the processes' RSS, which counts a page shared by N processes
//! N times (2000 forked workers of one program showed 3.2 GB). It is the sum of each
//! process's PSS (`Pss:` of /proc/PID/smaps_rollup: a shared page, copy-on-write ones
//! included, counts 1/N in each of its N users). Reading smaps_rollup makes the kernel
//! walk the process's page tables, so it is bounded: at most [`PSS_BUDGET`] reads per
//! sample. A group of at most [`PSS_GROUP_MAX`] processes is read whole at every sample
//! (exact); the processes of larger groups are read in turn ([`PssCache`]), each counting
//! its last reading in between, and one not read yet its group's average. Only a group
//! none of whose processes could be read yet gets an estimate from /proc/PID/statm, a
//! small read with no page walk: the private part of each process (resident minus
//! file-backed and shared memory) summed, plus the largest file-backed/shared part once
//! (copy-on-write pages still shared after a fork count once per process there).
//!
//! Owns every read of /proc: also the process start times the state file records (so that
//! a reused pid is never taken for one of ours), the boot id (the `host` module caches it),
//! a reaped orphan's group, an escapee's environment and command line, bansuri's own
//! children, and the members of a killed predecessor's groups. A lean reader of our own
//! rather than `sysinfo`: a sample walks only bansuri's own descendants (the `children`
//! lists of /proc/PID/task/TID, starting at bansuri itself, which as a subreaper also
//! adopts what tasks leave behind) and reads one `stat` file per process, so its cost grows
//! with the number of processes bansuri started, not with the node's. It runs on the event loop's
//! thread: no file here can block for long (procfs is in memory).
//!
//! Must not: decide anything about tasks, or signal a process.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::time::Duration;

/// What /proc/PID/stat says about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Parent pid.
    pub ppid: u32,
    /// Process group.
    pub pgrp: u32,
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: u8,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time, in clock ticks since boot (what the state file records).
    pub start_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Read /proc/`pid`/stat into `buf` and parse it.
pub fn proc_stat_with(pid: u32, buf: &mut Vec<u8>) -> Option<ProcStat> {
    buf.clear();
    let mut f = fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    f.read_to_end(buf).ok()?;
    parse_stat(buf)
}

/// What /proc/`pid`/stat says, or `None` when there is no such process.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    proc_stat_with(pid, &mut Vec::with_capacity(512))
}

/// Parse the text of /proc/PID/stat (see proc(5)). The command name, in parentheses, may
/// hold spaces and parentheses itself: the fields start after the last `)`.
pub fn parse_stat(s: &[u8]) -> Option<ProcStat> {
    let close = s.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&s[close + 1..]).ok()?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        state: *f.first()?.as_bytes().first()?,
        ppid: num(4)? as u32,
        pgrp: num(5)? as u32,
        cpu_ticks: num(14)? + num(15)?,
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

/// Start time of `pid` in clock ticks since boot, if it is alive (zombies are not).
pub fn start_ticks(pid: u32) -> Option<u64> {
    proc_stat(pid)
        .filter(|s| s.state != b'Z' && s.state != b'X')
        .map(|s| s.start_ticks)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clk_tck() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::CLK_TCK, 100)
}

/// Bytes per page.
pub fn page_size() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096)
}

/// A positive `sysconf` value, or `default` when it cannot be read.
fn sysconf_or(var: nix::unistd::SysconfVar, default: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => default,
    }
}

/// The present time on the clock process start times are counted on (ticks since boot).
pub fn boot_ticks_now() -> u64 {
    let d = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map_or(Duration::ZERO, |ts| {
            Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32)
        });
    (d.as_secs_f64() * clk_tck() as f64) as u64
}

/// This boot's id (/proc/sys/kernel/random/boot_id): pids and start times mean something
/// only within one boot. Read it through `host::boot_id`, which reads it once.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Children of `pid`: the `children` files of all its threads.
pub fn children_of(pid: u32, out: &mut Vec<u32>, buf: &mut Vec<u8>) {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for t in rd.flatten() {
        let mut p = t.path();
        p.push("children");
        buf.clear();
        if let Ok(mut f) = fs::File::open(&p) {
            if f.read_to_end(buf).is_ok() {
                if let Ok(s) = std::str::from_utf8(buf) {
                    out.extend(parse_pids(s));
                }
            }
        }
    }
}

/// The pids of a `children` file (space-separated; anything else is skipped).
pub fn parse_pids(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.split_ascii_whitespace()
        .filter_map(|x| x.parse::<u32>().ok())
}

/// Children of `pid`'s main thread (/proc/PID/task/PID/children): where a subreaper's
/// adopted orphans land while its main thread lives. Empty when it cannot be read.
pub fn main_thread_children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| parse_pids(&s).collect())
        .unwrap_or_default()
}

/// The value of `name` in the environment `pid` started with (/proc/PID/environ), lossily
/// decoded; `None` when it is not set or the file cannot be read (another user's process).
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    parse_environ_var(&fs::read(format!("/proc/{pid}/environ")).ok()?, name)
}

/// The value of `name` in the text of an environ file (`NAME=value` entries, NUL-separated).
pub fn parse_environ_var(env: &[u8], name: &str) -> Option<String> {
    env.split(|b| *b == 0).find_map(|kv| {
        kv.strip_prefix(name.as_bytes())?
            .strip_prefix(b"=")
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// `pid`'s command line, its arguments joined by spaces (empty when gone, or for a zombie).
pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| parse_cmdline(&c))
        .unwrap_or_default()
}

/// The text of a cmdline file (arguments, each ended by a NUL) as one line.
pub fn parse_cmdline(c: &[u8]) -> String {
    String::from_utf8_lossy(c)
        .replace('\0', " ")
        .trim()
        .to_owned()
}

/// Live (not zombie or dead) processes of group `pgid`, with their start times: one scan of
/// every process on the node (for the rare case with no descendant tree to walk, such as a
/// killed predecessor's groups).
pub fn group_members(pgid: u32) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    let mut buf = Vec::with_capacity(512);
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(st) = proc_stat_with(pid, &mut buf) {
            if st.pgrp == pgid && st.state != b'Z' && st.state != b'X' {
                out.push((pid, st.start_ticks));
            }
        }
    }
    out
}

/// Node figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeSample {
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// MemTotal, bytes.
    pub mem_total: u64,
    /// MemAvailable, bytes.
    pub mem_available: u64,
}

/// Read /proc/loadavg and /proc/meminfo.
pub fn node() -> NodeSample {
    let mut n = NodeSample::default();
    if let Ok(s) = fs::read_to_string("/proc/loadavg") {
        for (i, v) in s.split_whitespace().take(3).enumerate() {
            n.load[i] = v.parse().unwrap_or(0.0);
        }
    }
    if let Ok(s) = fs::read_to_string("/proc/meminfo") {
        let (total, avail) = parse_meminfo(&s);
        n.mem_total = total;
        n.mem_available = avail;
    }
    n
}

/// (MemTotal, MemAvailable) in bytes.
pub fn parse_meminfo(s: &str) -> (u64, u64) {
    let get = |key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (get("MemTotal:"), get("MemAvailable:"))
}

/// Below this share of MemTotal available, bansuri warns (once per episode).
pub const MEM_LOW_PERCENT: f64 = 10.0;
/// The warning is armed again once available memory is back above this share.
pub const MEM_OK_PERCENT: f64 = 15.0;

/// The low-memory warning: one line when available memory drops below
/// [`MEM_LOW_PERCENT`] of the total, one when it is back above [`MEM_OK_PERCENT`]
/// (hysteresis, so a node hovering at the limit does not flood the log).
#[derive(Debug, Default)]
pub struct MemWatch {
    low: bool,
}

impl MemWatch {
    /// Feed one node sample; returns a line to log (warning: true) when the state changes.
    pub fn observe(&mut self, n: &NodeSample) -> Option<(bool, String)> {
        if n.mem_total == 0 {
            return None;
        }
        let pct = n.mem_available as f64 * 100.0 / n.mem_total as f64;
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        if !self.low && pct < MEM_LOW_PERCENT {
            self.low = true;
            return Some((
                true,
                format!(
                    "Node memory is low: {:.1} GiB available of {:.1} GiB ({pct:.0}%); tasks may be killed by the OOM killer",
                    gib(n.mem_available),
                    gib(n.mem_total)
                ),
            ));
        }
        if self.low && pct > MEM_OK_PERCENT {
            self.low = false;
            return Some((
                false,
                format!(
                    "Node memory is fine again: {:.1} GiB available ({pct:.0}%)",
                    gib(n.mem_available)
                ),
            ));
        }
        None
    }
}

/// Groups of at most this many processes are measured by PSS.
pub const PSS_GROUP_MAX: u32 = 64;
/// At most this many smaps_rollup reads per sample (the rest is estimated).
pub const PSS_BUDGET: usize = 256;

/// `Pss:` of /proc/PID/smaps_rollup, in bytes.
pub fn parse_rollup_pss(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// (resident, shared) pages from /proc/PID/statm (shared: file-backed and shmem).
pub fn parse_statm(s: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(s).ok()?;
    let mut f = s.split_ascii_whitespace().skip(1);
    let resident = f.next()?.parse().ok()?;
    let shared = f.next()?.parse().ok()?;
    Some((resident, shared))
}

fn read_into(path: &str, buf: &mut Vec<u8>) -> Option<()> {
    buf.clear();
    fs::File::open(path).ok()?.read_to_end(buf).ok()?;
    Some(())
}

/// The memory of a group's processes: PSS summed, or the statm estimate (module docs).
/// `members`: (pid, RSS pages from stat, the fallback when a file cannot be read).
fn group_memory(members: &[(u32, u64)], pss: bool, page: u64, buf: &mut Vec<u8>) -> u64 {
    if pss {
        return members
            .iter()
            .map(|&(pid, rss)| {
                read_into(&format!("/proc/{pid}/smaps_rollup"), buf)
                    .and_then(|()| parse_rollup_pss(buf))
                    .unwrap_or(rss * page)
            })
            .sum();
    }
    let mut private = 0;
    let mut shared_max = 0;
    for &(pid, rss) in members {
        let (resident, shared) = read_into(&format!("/proc/{pid}/statm"), buf)
            .and_then(|()| parse_statm(buf))
            .unwrap_or((rss, 0));
        private += resident.saturating_sub(shared);
        shared_max = shared_max.max(shared);
    }
    (private + shared_max) * page
}

/// One process of a group, for [`PssCache::measure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its start time (with the pid, which process it is).
    pub start_ticks: u64,
    /// Its RSS, in pages (the figure of last resort).
    pub rss_pages: u64,
}

/// The memory of one group by [`PssCache::measure`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupPss {
    /// Bytes: the PSS of each process read now or at an earlier sample, the group's
    /// average PSS for each of its processes not read yet.
    pub pss: u64,
    /// (pid, RSS pages) of the processes with no figure: the group has no PSS reading at
    /// all yet (for the statm estimate).
    pub unknown: Vec<(u32, u64)>,
}

/// Each process's last PSS, so that a group of any size is measured by PSS at a bounded
/// cost: a sample reads at most a budget of smaps_rollup files (each read walks a
/// process's page tables). Whole groups of at most [`PSS_GROUP_MAX`] processes are read
/// first (smallest first, within half the budget), so they are exact at every sample;
/// what is left of the budget goes round the other processes, those never read first,
/// then those read longest ago.
/// A process not read in this sample counts its last reading; one never read counts its
/// group's average PSS of those that were.
#[derive(Debug, Default)]
pub struct PssCache {
    /// pid -> (start ticks, PSS bytes, sample of the reading).
    known: HashMap<u32, (u64, u64, u64)>,
    /// Samples measured so far.
    round: u64,
}

impl PssCache {
    /// Measure `groups` (smallest first) with at most `budget` calls of `read` (a
    /// process's PSS in bytes; `None` when it cannot be read, the process gone for
    /// instance). Forgets the processes that are in none of `groups`.
    pub fn measure(
        &mut self,
        groups: &[Vec<Proc>],
        budget: usize,
        mut read: impl FnMut(u32) -> Option<u64>,
    ) -> Vec<GroupPss> {
        self.round += 1;
        let round = self.round;
        let live: std::collections::HashSet<u32> = groups.iter().flatten().map(|p| p.pid).collect();
        self.known.retain(|pid, _| live.contains(pid));
        // A reading is of this process only if the start time matches (pids are reused).
        let last = |known: &HashMap<u32, (u64, u64, u64)>, p: &Proc| {
            known
                .get(&p.pid)
                .filter(|k| k.0 == p.start_ticks)
                .map(|k| (k.1, k.2))
        };
        // Whole small groups take at most half of the budget: the other half goes round
        // the rest, so that every process is read now and then however many small
        // groups there are.
        let mut whole = budget / 2;
        let mut rest: Vec<&Proc> = Vec::new();
        let mut to_read: Vec<&Proc> = Vec::new();
        for g in groups {
            if g.len() <= PSS_GROUP_MAX as usize && g.len() <= whole {
                whole -= g.len();
                to_read.extend(g);
            } else {
                rest.extend(g);
            }
        }
        let left = budget - to_read.len();
        // Never read (None) first, then the oldest readings.
        rest.sort_by_key(|p| (last(&self.known, p).map(|(_, r)| r), p.pid));
        to_read.extend(rest.into_iter().take(left));
        for p in to_read {
            match read(p.pid) {
                Some(pss) => {
                    self.known.insert(p.pid, (p.start_ticks, pss, round));
                }
                None => {
                    self.known.remove(&p.pid);
                }
            }
        }
        groups
            .iter()
            .map(|g| {
                let mut out = GroupPss::default();
                let (mut sum, mut n) = (0u64, 0u64);
                for p in g {
                    match last(&self.known, p) {
                        Some((pss, _)) => {
                            sum += pss;
                            n += 1;
                        }
                        None => out.unknown.push((p.pid, p.rss_pages)),
                    }
                }
                out.pss = sum;
                if let Some(average) = sum.checked_div(n) {
                    out.pss += average * out.unknown.len() as u64;
                    out.unknown.clear();
                }
                out
            })
            .collect()
    }
}

/// The sampled figures of one process group.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupSample {
    /// CPU use since the previous sample, in percent of one core (200 = two cores).
    pub cpu_percent: f64,
    /// Memory of its processes, bytes: PSS ([`PssCache`]), or an estimate (module docs)
    /// until a PSS of the group is known; never a shared page counted once per process.
    pub rss: u64,
    /// `rss` is made of PSS readings (false: the statm estimate, for a group none of
    /// whose processes was read yet).
    pub pss: bool,
    /// Processes in the group.
    pub procs: u32,
    /// CPU time its live processes have used so far.
    pub cpu_time: Duration,
}

/// A descendant of bansuri found by a sample outside every process group it was asked
/// about: a process that left its task's group (setsid, setpgid), or an orphan of bansuri
/// that is no run's (its guardian, a notifier, an escapee's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stray {
    /// The process.
    pub pid: u32,
    /// Its process group.
    pub pgrp: u32,
    /// The child of bansuri it descends from (itself, when bansuri is its parent).
    pub top: u32,
    /// Its start time (ticks since boot).
    pub start_ticks: u64,
}

/// Per-process CPU counters between samples, and the walk of bansuri's descendants.
#[derive(Debug, Default)]
pub struct Sampler {
    /// pid -> (start ticks, cpu ticks) at the previous sample.
    prev: HashMap<u32, (u64, u64)>,
    /// Boot-clock ticks at the previous sample.
    prev_at: Option<u64>,
    stack: Vec<(u32, u32)>,
    kids: Vec<u32>,
    buf: Vec<u8>,
    cbuf: Vec<u8>,
    /// What the last sample found outside the groups it was asked about.
    strays: Vec<Stray>,
    /// (pgrp, pid, RSS pages, start ticks) of the processes in the groups asked about.
    members: Vec<(u32, u32, u64, u64)>,
    /// Each process's last PSS reading.
    pss: PssCache,
}

impl Sampler {
    /// A sampler with no history.
    pub fn new() -> Sampler {
        Sampler::default()
    }

    /// Sample every descendant of `root` (bansuri itself) and sum them per process group
    /// for the groups in `pgids`. CPU% is the CPU time used since the previous sample over
    /// the time elapsed; a process started since then counts whole. The first sample has
    /// no reference and reports the CPU% since each process started. Live processes in
    /// none of `pgids` are kept for [`Sampler::strays`].
    pub fn sample(&mut self, root: u32, pgids: &[u32]) -> HashMap<u32, GroupSample> {
        let now = boot_ticks_now();
        let page = page_size();
        let tck = clk_tck();
        let mut out: HashMap<u32, GroupSample> =
            pgids.iter().map(|&g| (g, GroupSample::default())).collect();
        let mut next: HashMap<u32, (u64, u64)> = HashMap::with_capacity(self.prev.len());
        let mut cpu: HashMap<u32, u64> = HashMap::new();
        self.stack.clear();
        self.strays.clear();
        self.members.clear();
        self.kids.clear();
        children_of(root, &mut self.kids, &mut self.cbuf);
        self.stack.extend(self.kids.iter().map(|&k| (k, k)));
        while let Some((pid, top)) = self.stack.pop() {
            self.kids.clear();
            children_of(pid, &mut self.kids, &mut self.cbuf);
            self.stack.extend(self.kids.iter().map(|&k| (k, top)));
            let Some(st) = proc_stat_with(pid, &mut self.buf) else {
                continue;
            };
            if st.state == b'Z' {
                continue;
            }
            next.insert(pid, (st.start_ticks, st.cpu_ticks));
            let Some(g) = out.get_mut(&st.pgrp) else {
                self.strays.push(Stray {
                    pid,
                    pgrp: st.pgrp,
                    top,
                    start_ticks: st.start_ticks,
                });
                continue;
            };
            g.procs += 1;
            self.members
                .push((st.pgrp, pid, st.rss_pages, st.start_ticks));
            g.cpu_time += Duration::from_secs_f64(st.cpu_ticks as f64 / tck as f64);
            let used = match self.prev_at {
                None => {
                    // No reference yet: the CPU share since the process started.
                    let age = now.saturating_sub(st.start_ticks).max(1);
                    g.cpu_percent += st.cpu_ticks as f64 * 100.0 / age as f64;
                    continue;
                }
                Some(at) => match self.prev.get(&pid) {
                    Some(&(start, before)) if start == st.start_ticks => {
                        st.cpu_ticks.saturating_sub(before)
                    }
                    // Started since the previous sample: all its CPU time is new.
                    _ if st.start_ticks >= at => st.cpu_ticks,
                    // Older but not seen then (adopted since): no reference, count none.
                    _ => 0,
                },
            };
            *cpu.entry(st.pgrp).or_default() += used;
        }
        if let Some(at) = self.prev_at {
            let dt = now.saturating_sub(at).max(1) as f64;
            for (g, used) in cpu {
                if let Some(s) = out.get_mut(&g) {
                    s.cpu_percent = used as f64 * 100.0 / dt;
                }
            }
        }
        self.measure_memory(&mut out, page);
        self.prev = next;
        self.prev_at = Some(now);
        out
    }

    /// Fill in each group's memory from PSS readings ([`PssCache::measure`]); the
    /// statm estimate only for processes of a group none of whose PSS is known yet.
    fn measure_memory(&mut self, out: &mut HashMap<u32, GroupSample>, page: u64) {
        self.members.sort_unstable();
        let mut order: Vec<(u32, u32)> = out.iter().map(|(g, s)| (s.procs, *g)).collect();
        order.sort_unstable();
        let groups: Vec<Vec<Proc>> = order
            .iter()
            .map(|&(_, g)| {
                let from = self.members.partition_point(|m| m.0 < g);
                let to = self.members.partition_point(|m| m.0 <= g);
                self.members[from..to]
                    .iter()
                    .map(|m| Proc {
                        pid: m.1,
                        start_ticks: m.3,
                        rss_pages: m.2,
                    })
                    .collect()
            })
            .collect();
        let buf = &mut self.buf;
        let figures = self.pss.measure(&groups, PSS_BUDGET, |pid| {
            read_into(&format!("/proc/{pid}/smaps_rollup"), buf)
                .and_then(|()| parse_rollup_pss(buf))
        });
        for ((_, g), f) in order.iter().zip(figures) {
            let Some(s) = out.get_mut(g) else { continue };
            s.pss = f.unknown.is_empty();
            s.rss = f.pss;
            if !f.unknown.is_empty() {
                s.rss += group_memory(&f.unknown, false, page, &mut self.cbuf);
            }
        }
    }

    /// The live descendants the last sample found in none of the groups it was asked
    /// about.
    pub fn strays(&self) -> &[Stray] {
        &self.strays
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let s = b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 987654 1000000 512 18446744073709551615";
        let st = parse_stat(s).expect("parses");
        assert_eq!(st.state, b'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.pgrp, 4242);
        assert_eq!(st.cpu_ticks, 300);
        assert_eq!(st.start_ticks, 987654);
        assert_eq!(st.rss_pages, 512);
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let st = proc_stat(me).expect("own stat");
        assert!(st.start_ticks <= boot_ticks_now());
        assert_eq!(start_ticks(me), Some(st.start_ticks));
        assert!(!boot_id().is_empty());
    }

    #[test]
    fn clock_ticks_pages_and_the_boot_clock_are_read() {
        // Linux fixes USER_HZ at 100; pages are a power of two of at least 4 KiB.
        assert_eq!(clk_tck(), 100);
        assert!(page_size() >= 4096 && page_size().is_power_of_two());
        let a = boot_ticks_now();
        assert!(a > 0);
        assert!(boot_ticks_now() >= a);
    }

    #[test]
    fn pids_environ_and_cmdline_are_parsed() {
        assert_eq!(parse_pids("12 345 \n").collect::<Vec<_>>(), vec![12, 345]);
        assert_eq!(parse_pids("").count(), 0);
        let env = b"PATH=/bin\0BANSURI_TASK_X=no\0BANSURI_TASK=web=1 \xff\0HOME=/h\0";
        assert_eq!(
            parse_environ_var(env, "BANSURI_TASK").as_deref(),
            Some("web=1 \u{fffd}")
        );
        assert_eq!(parse_environ_var(env, "HOME").as_deref(), Some("/h"));
        assert_eq!(parse_environ_var(env, "BANSURI"), None);
        assert_eq!(parse_environ_var(b"", "HOME"), None);
        assert_eq!(parse_cmdline(b"sleep\x00100\0"), "sleep 100");
        assert_eq!(parse_cmdline(b""), "");
    }

    #[test]
    fn own_environ_cmdline_children_and_group_are_read() {
        let me = std::process::id();
        let path = std::env::var("PATH").expect("PATH is set for tests");
        assert_eq!(environ_var(me, "PATH").as_deref(), Some(path.as_str()));
        assert!(!cmdline(me).is_empty());
        let mut child = sleeper();
        let pid = child.id();
        // Spawned from a test thread: a child of that thread, not of the main one.
        let mut all = Vec::new();
        children_of(me, &mut all, &mut Vec::new());
        let members = group_members(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(all.contains(&pid), "{all:?}");
        assert_eq!(members.len(), 1, "{members:?}");
        assert_eq!(members[0].0, pid);
        assert!(
            group_members(pid).is_empty(),
            "a reaped group has no members"
        );
    }

    #[test]
    fn pss_and_statm_are_parsed() {
        let rollup = b"55efdab8b000-7fff5aee0000 ---p 00000000 00:00 0   [rollup]\nRss:  1616 kB\nPss:   197 kB\nPss_Dirty:  116 kB\n";
        assert_eq!(parse_rollup_pss(rollup), Some(197 * 1024));
        assert_eq!(parse_rollup_pss(b"Rss: 5 kB\n"), None);
        assert_eq!(parse_statm(b"765 446 417 5 0 123 0\n"), Some((446, 417)));
        assert_eq!(parse_statm(b"765"), None);
    }

    #[test]
    fn a_shared_page_is_not_counted_once_per_process() {
        // The estimate: private parts summed, the shared part once.
        let me = std::process::id();
        let page = page_size();
        let mut buf = Vec::new();
        let rss = proc_stat(me).expect("stat").rss_pages;
        let one = group_memory(&[(me, rss)], false, page, &mut buf);
        let twice = group_memory(&[(me, rss), (me, rss)], false, page, &mut buf);
        let (resident, shared) = read_into(&format!("/proc/{me}/statm"), &mut buf)
            .and_then(|()| parse_statm(&buf))
            .expect("statm");
        assert!(shared > 0);
        // (The figures move a little between reads: allow a few pages.)
        let private = resident.saturating_sub(shared) * page;
        assert!(twice < 2 * one, "{twice} vs 2 x {one}");
        assert!(
            twice.abs_diff(one + private) < 64 * page,
            "{twice} vs {one} + {private}"
        );
        // PSS of a process is at most its RSS.
        let pss = group_memory(&[(me, rss)], true, page, &mut buf);
        assert!(pss > 0 && pss <= resident * page + 64 * page, "{pss}");
    }

    /// `sleep 30` in a process group of its own (the caller kills and reaps it).
    fn sleeper() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep")
    }

    #[test]
    fn a_descendant_outside_the_groups_asked_about_is_a_stray() {
        let mut child = sleeper();
        let pid = child.id();
        let mut s = Sampler::new();
        // Wait for the exec (the forked copy of this test is in the group already).
        let mut found = None;
        for _ in 0..200 {
            s.sample(std::process::id(), &[]);
            found = s.strays().iter().find(|x| x.pid == pid).copied();
            if found.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let asked = s.sample(std::process::id(), &[pid]);
        let _ = child.kill();
        let _ = child.wait();
        let st = found.expect("the child is a stray");
        assert_eq!((st.pgrp, st.top), (pid, pid));
        assert!(st.start_ticks > 0);
        assert_eq!(asked.get(&pid).map(|g| g.procs), Some(1));
        assert!(
            !s.strays().iter().any(|x| x.pid == pid),
            "asked about: no stray"
        );
    }

    #[test]
    fn pss_of_a_large_group_is_read_round_robin_within_the_budget() {
        let procs = |pids: std::ops::Range<u32>, start: u64| -> Vec<Proc> {
            pids.map(|pid| Proc {
                pid,
                start_ticks: start,
                rss_pages: 1_000_000,
            })
            .collect()
        };
        // A group of 2 (exact at every sample) and one of 1000 processes of 10 + pid % 3
        // bytes each (the real PSS of each, known to the fake reader).
        let small = procs(1..3, 7);
        let mut big = procs(1000..2000, 7);
        let pss = |pid: u32| u64::from(10 + pid % 3);
        let mut cache = PssCache::default();
        let mut read_at: HashMap<u32, Vec<u32>> = HashMap::new();
        for sample in 0..8 {
            let mut reads = Vec::new();
            let groups = [small.clone(), big.clone()];
            let f = cache.measure(&groups, 256, |pid| {
                reads.push(pid);
                Some(pss(pid))
            });
            assert!(reads.len() <= 256, "sample {sample}: {} reads", reads.len());
            assert!(reads.contains(&1) && reads.contains(&2), "the small group");
            for pid in reads {
                read_at.entry(pid).or_default().push(sample);
            }
            assert_eq!(f[0].pss, pss(1) + pss(2));
            // Never the statm estimate, and near the truth (11 x 1000) from the first
            // sample: the processes not read yet count the average of those read.
            assert!(f[1].unknown.is_empty(), "sample {sample}");
            assert!(
                f[1].pss.abs_diff(11_000) <= 100,
                "sample {sample}: {}",
                f[1].pss
            );
            if sample >= 3 {
                // 254 reads a sample for the big group: all of it read after 4 samples.
                assert_eq!(f[1].pss, big.iter().map(|p| pss(p.pid)).sum::<u64>());
            }
        }
        // Round robin: each of the 1000 first read in the first four samples, and again
        // every 3 or 4 samples (254 reads a sample go round 1000 in 3.9).
        for p in &big {
            let at = &read_at[&p.pid];
            assert!(at[0] < 4 && at.len() >= 2, "{}: {at:?}", p.pid);
            assert!(
                at.windows(2).all(|w| (3..=4).contains(&(w[1] - w[0]))),
                "{}: {at:?}",
                p.pid
            );
        }
        // A pid reused by another process (another start time) is not taken for the old
        // one: read first at the next sample.
        big[500].start_ticks = 99;
        let mut reads = Vec::new();
        cache.measure(&[small.clone(), big.clone()], 256, |pid| {
            reads.push(pid);
            Some(pss(pid))
        });
        assert!(reads.contains(&1500), "{reads:?}");
        // A group none of whose processes could be read: left to the estimate.
        let f = cache.measure(&[procs(5000..5100, 7)], 256, |_| None);
        assert_eq!(f[0].pss, 0);
        assert_eq!(f[0].unknown.len(), 100);
        // And the processes gone are forgotten.
        assert!(cache.known.keys().all(|&pid| (5000..5100).contains(&pid)));
        // 300 single processes do not take the whole budget from a group of 1000: all
        // of them are read within a few samples (128 whole, 128 in turn: 1172 in 10).
        let mut groups: Vec<Vec<Proc>> = (10_000..10_300).map(|p| procs(p..p + 1, 7)).collect();
        groups.push(big.clone());
        let mut cache = PssCache::default();
        let mut f = Vec::new();
        for _ in 0..10 {
            let mut reads = 0;
            f = cache.measure(&groups, 256, |pid| {
                reads += 1;
                Some(pss(pid))
            });
            assert!(reads <= 256, "{reads} reads");
        }
        assert_eq!(cache.known.len(), 1300);
        assert_eq!(f[300].pss, big.iter().map(|p| pss(p.pid)).sum::<u64>());
    }

    #[test]
    fn meminfo_is_parsed_in_bytes() {
        let s = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2000000 kB\n";
        assert_eq!(parse_meminfo(s), (24_000_000 * 1024, 2_000_000 * 1024));
    }

    #[test]
    fn low_memory_warns_once_per_episode_with_hysteresis() {
        let mut w = MemWatch::default();
        let at = |pct: u64| NodeSample {
            load: [0.0; 3],
            mem_total: 1000,
            mem_available: pct * 10,
        };
        assert_eq!(w.observe(&at(50)), None);
        let (warn, msg) = w.observe(&at(5)).expect("warns");
        assert!(warn && msg.starts_with("Node memory is low"), "{msg}");
        assert_eq!(w.observe(&at(4)), None, "once per episode");
        assert_eq!(w.observe(&at(12)), None, "not yet fine: hysteresis");
        assert_eq!(w.observe(&at(9)), None, "still the same episode");
        let (warn, msg) = w.observe(&at(20)).expect("fine again");
        assert!(!warn && msg.contains("fine again"), "{msg}");
        assert!(w.observe(&at(5)).is_some(), "a new episode warns again");
    }
}
