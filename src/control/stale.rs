//! Stale process groups: what a killed bansuri left running, found through its state file
//! and ended by the next bansuri that starts with the same state directory.
//!
//! A task's main process dies with bansuri (PR_SET_PDEATHSIG), but what it started in the
//! background does not: it lives on in the task's process group. The state file records
//! each live group (`pgid`) with its leader's start time (`pid_start`, ticks since boot),
//! the host and the boot, and when the file was written (`clock_ticks`). A group is taken
//! for ours only when, on the same host and boot:
//! - its leader is alive with the recorded start time (a pid cannot be reused while its
//!   process lives), or
//! - its leader is gone and a member of the group started between the leader's start and
//!   the last write of the state file. A group id cannot be reused while the group has a
//!   member, and the file listed the group as alive when it was written; so a member that
//!   old proves the group never emptied, and every member of it is ours. A group whose
//!   members are all younger may be a stranger that got the same id: it is left alone.
//!
//! Verified groups get SIGTERM, then SIGKILL after [`STALE_GRACE`]. Reading /proc (one scan
//! of every process, once, at start-up) is the only way to find a group's members.

use std::time::{Duration, Instant};

use super::state::StateDoc;
use crate::sample;

/// How long stale groups get between SIGTERM and SIGKILL.
pub const STALE_GRACE: Duration = Duration::from_secs(5);

/// A process group of a previous bansuri's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleGroup {
    /// The task.
    pub task: String,
    /// The group.
    pub pgid: u32,
    /// Live members now.
    pub members: Vec<u32>,
}

/// What the previous state says was running, checked against this node now. Returns the
/// groups that are verifiably ours, and one line per group left alone (why).
pub fn find(prev: &StateDoc) -> (Vec<StaleGroup>, Vec<String>) {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    if prev.bansuri.host != crate::host::name() || prev.bansuri.boot_id != crate::host::boot_id() {
        return (found, notes);
    }
    for t in &prev.tasks {
        // Escaped groups too: they outlive bansuri like the rest (guardian gone as well).
        for p in t.processes.iter().chain(&t.escaped) {
            if p.node.is_some() {
                // On another node (issue 18): its pid is not this node's; its agent ended
                // it with the step.
                continue;
            }
            let Some(start) = p.pid_start else {
                notes.push(format!(
                    "process group {} of `{}`: its start time was not recorded, left alone",
                    p.pgid, t.name
                ));
                continue;
            };
            let group = sample::group_members(p.pgid);
            if group.is_empty() {
                continue;
            }
            let leader = group.iter().find(|(pid, _)| *pid == p.pgid);
            let ours = match leader {
                Some((_, s)) => *s == start,
                None => group
                    .iter()
                    .any(|(_, s)| *s >= start && *s <= prev.clock_ticks),
            };
            if ours {
                found.push(StaleGroup {
                    task: t.name.clone(),
                    pgid: p.pgid,
                    members: group.iter().map(|(pid, _)| *pid).collect(),
                });
            } else {
                notes.push(format!(
                    "process group {} of `{}` now belongs to other processes (the id was reused): left alone",
                    p.pgid, t.name
                ));
            }
        }
    }
    (found, notes)
}

/// SIGTERM to every group, SIGKILL after `grace` to those still there. Returns the groups
/// that needed SIGKILL.
pub fn end(groups: &[StaleGroup], grace: Duration) -> Vec<u32> {
    for g in groups {
        let _ = crate::spawn::signal_group(g.pgid, libc::SIGTERM);
    }
    let start = Instant::now();
    let mut left: Vec<u32> = groups.iter().map(|g| g.pgid).collect();
    while !left.is_empty() && start.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
        left.retain(|&g| !sample::group_members(g).is_empty());
    }
    for &g in &left {
        let _ = crate::spawn::signal_group(g, libc::SIGKILL);
    }
    left
}
