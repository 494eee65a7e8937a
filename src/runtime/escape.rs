//! Escaped processes: descendants of a task that left its process group (`setsid`,
//! `setpgid`, a double fork into a session of their own). Signalling the run's group does
//! not reach them, so the runtime finds them, reports them, has the guardian watch their
//! groups, and ends them with their run.
//!
//! They are found (bansuri is a child subreaper: every descendant is its child or a child's
//! descendant) at every resource sample, whose walk of the descendants knows which task's
//! main process each one descends from, and when a run's main process is reaped (what it
//! orphaned has just been reparented to bansuri). An escapee's group belongs to its run
//! like the run's own group: the run's stop signals go to it too, and a run whose main
//! process has exited is not over while the group lives (its leftovers get the stop signal,
//! then SIGKILL after the grace). One whose run is already over (an orphan found late, its
//! task named by its environment) gets SIGTERM at once and SIGKILL after [`LOOSE_GRACE`];
//! one whose task cannot be told is ended at shutdown. The state file lists them
//! (`escaped`), so that the next bansuri ends them if bansuri and its guardian were killed.
//!
//! A child module of `runtime` (it reads the loop's runs, pids and notifiers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Runtime;
use crate::clock::Mono;
use crate::control::state::ProcessEntry;
use crate::core::RunId;
use crate::level::Level;
use crate::sample::{self, Stray};
use crate::spawn;

/// SIGTERM to SIGKILL for an escapee whose run is already over.
pub(super) const LOOSE_GRACE: Duration = Duration::from_secs(5);

/// One escaped process group.
#[derive(Debug)]
pub(super) struct Escapee {
    /// The task it was found after.
    task: Arc<str>,
    /// Its run, while that run lasts.
    run: Option<RunId>,
    /// The process found (the group's leader when it did `setsid`).
    pid: u32,
    /// Start time of the group's leader (of the process found when the leader is gone).
    start: Option<u64>,
    /// When it was found.
    found: chrono::DateTime<Utc>,
}

/// The escaped groups (by process group id) and the SIGKILLs due.
#[derive(Debug, Default)]
pub(super) struct Escapees {
    groups: HashMap<u32, Escapee>,
    kill_at: Vec<(Mono, u32)>,
}

impl Escapees {
    /// Groups whose run is over or unknown.
    fn loose(&self) -> impl Iterator<Item = u32> + '_ {
        self.groups
            .iter()
            .filter(|(_, e)| e.run.is_none())
            .map(|(g, _)| *g)
    }
}

/// The task named in a process's environment (`BANSURI_TASK`, set for every task).
fn task_in_environ(pid: u32) -> Option<String> {
    sample::environ_var(pid, "BANSURI_TASK")
}

impl Runtime {
    /// A run's main process was reaped: what it orphaned is now bansuri's child. Look at
    /// bansuri's children for processes outside every run's group (most likely this run's:
    /// the environment says whose task it was).
    pub(super) fn scan_escapees(&mut self, run: RunId) {
        let me = std::process::id();
        for pid in sample::main_thread_children(me) {
            if self.pids.contains_key(&pid) || pid == self.guardian.pid() {
                continue;
            }
            let Some(st) = sample::proc_stat(pid) else {
                continue;
            };
            // A zombie (killed with its group, not reaped yet) has escaped nothing.
            if st.state == b'Z' {
                continue;
            }
            self.consider(pid, st.pgrp, st.start_ticks, None, Some(run));
        }
    }

    /// A sample's walk found these processes outside every run's group.
    pub(super) fn adopt_strays(&mut self, strays: &[Stray]) {
        for s in strays {
            // The guardian's, a notifier's (its leader leads the notifier's group), or the
            // agents' srun (issue 18).
            if s.top == self.guardian.pid()
                || self.notifying.is_notifier_group(s.top)
                || self.is_agents_group(s.top)
            {
                continue;
            }
            // Below a main process: that run's. An orphan (its own top): ask its environment.
            let run = self.pids.get(&s.top).copied();
            self.consider(s.pid, s.pgrp, s.start_ticks, run, None);
        }
    }

    /// `pid` of group `pgrp` is a descendant of bansuri: an escapee unless its group is
    /// known. `run`: the run it descends from; `hint`: the run it most likely belongs to.
    fn consider(
        &mut self,
        pid: u32,
        pgrp: u32,
        start: u64,
        run: Option<RunId>,
        hint: Option<RunId>,
    ) {
        if self.escapees.groups.contains_key(&pgrp)
            || self.runs.values().any(|r| r.pid == pgrp)
            || self.notifying.is_notifier_group(pgrp)
            || pgrp == self.guardian.pid()
            || self.is_agents_group(pgrp)
            // bansuri's own group: commands it runs itself (scontrol), threads' children.
            || pgrp as i32 == nix::unistd::getpgrp().as_raw()
        {
            return;
        }
        let named = task_in_environ(pid);
        let run = run.or_else(|| {
            let of = |r: &RunId| {
                self.runs
                    .get(r)
                    .is_some_and(|i| named.as_deref().map_or(true, |n| *i.task == *n))
            };
            match hint.filter(of) {
                Some(h) => Some(h),
                None => named.as_deref().and_then(|n| {
                    self.runs
                        .iter()
                        .find(|(_, i)| &*i.task == n && !i.srun)
                        .map(|(r, _)| *r)
                }),
            }
        });
        let task: Arc<str> = match run.and_then(|r| self.runs.get(&r)) {
            Some(info) => Arc::clone(&info.task),
            None => Arc::from(named.clone().unwrap_or_else(|| "MASTER".to_owned())),
        };
        // Whose it is cannot be told (no task in its environment: a child of an in-process
        // task's thread, or one that cleared its environment): ended at shutdown only.
        let unknown = run.is_none() && named.is_none();
        let leader_start = if pgrp == pid {
            Some(start)
        } else {
            sample::start_ticks(pgrp).or(Some(start))
        };
        let cmd = sample::cmdline(pid);
        let what = if run.is_some() {
            "ended with its run".to_owned()
        } else if unknown {
            "ended at shutdown".to_owned()
        } else {
            format!(
                "its run is over: SIGTERM now, SIGKILL in {}",
                crate::text::fmt_dur(LOOSE_GRACE)
            )
        };
        let msg = format!(
            "process {pid} ({cmd}) left its task's process group (setsid/double fork; now group {pgrp}); it is watched and {what}"
        );
        self.log
            .event(Utc::now(), Some(&task), Level::Warning, &msg);
        self.guardian.watch(pgrp);
        self.escapees.groups.insert(
            pgrp,
            super::escape::Escapee {
                task,
                run,
                pid,
                start: leader_start,
                found: Utc::now(),
            },
        );
        if run.is_none() && !unknown {
            self.end_loose(pgrp);
        }
        self.obs.mark_dirty();
    }

    /// SIGTERM now, SIGKILL after [`LOOSE_GRACE`].
    fn end_loose(&mut self, pgrp: u32) {
        let _ = spawn::signal_group(pgrp, libc::SIGTERM);
        let at = self.now().mono + LOOSE_GRACE;
        self.escapees.kill_at.push((at, pgrp));
    }

    /// Is a group of `run`'s escapees still alive? Forgets the ones that are gone.
    pub(super) fn escapees_alive(&mut self, run: RunId) -> bool {
        let mine: Vec<u32> = self
            .escapees
            .groups
            .iter()
            .filter(|(_, e)| e.run == Some(run))
            .map(|(g, _)| *g)
            .collect();
        let mut alive = false;
        for g in mine {
            if spawn::group_alive(g) {
                alive = true;
            } else {
                self.escapee_gone(g);
            }
        }
        alive
    }

    /// Forget the escaped groups that have emptied.
    pub(super) fn prune_escapees(&mut self) {
        let gone: Vec<u32> = self
            .escapees
            .groups
            .keys()
            .copied()
            .filter(|g| !spawn::group_alive(*g))
            .collect();
        for g in gone {
            self.escapee_gone(g);
        }
    }

    fn escapee_gone(&mut self, pgrp: u32) {
        if let Some(e) = self.escapees.groups.remove(&pgrp) {
            self.guardian.forget(pgrp);
            self.escapees.kill_at.retain(|(_, g)| *g != pgrp);
            let msg = format!(
                "process group {pgrp} (process {}), which had escaped its task's group, is gone",
                e.pid
            );
            self.log.event(Utc::now(), Some(&e.task), Level::Info, &msg);
            self.obs.mark_dirty();
        }
    }

    /// A child in group `pgrp` (not a main process) was reaped.
    pub(super) fn escapee_reaped(&mut self, pgrp: Option<u32>) -> bool {
        match pgrp {
            Some(g) if self.escapees.groups.contains_key(&g) => {
                if !spawn::group_alive(g) {
                    self.escapee_gone(g);
                }
                true
            }
            _ => false,
        }
    }

    /// The run's signal goes to its escapees too.
    pub(super) fn signal_escapees(&mut self, run: RunId, signal: i32) {
        for (g, e) in &self.escapees.groups {
            if e.run == Some(run) {
                let _ = spawn::signal_group(*g, signal);
            }
        }
    }

    /// `run` is over: escapees still tied to it (there should be none: the run waits for
    /// them) are ended on their own.
    pub(super) fn release_escapees(&mut self, run: RunId) {
        let left: Vec<u32> = self
            .escapees
            .groups
            .iter_mut()
            .filter(|(_, e)| e.run == Some(run))
            .map(|(g, e)| {
                e.run = None;
                *g
            })
            .collect();
        for g in left {
            self.end_loose(g);
        }
    }

    /// A stop signal for bansuri: the escapees of no run get SIGTERM (those of a run get
    /// the run's stop signal from the core).
    pub(super) fn stop_loose_escapees(&mut self) {
        for g in self.escapees.loose() {
            let _ = spawn::signal_group(g, libc::SIGTERM);
        }
    }

    /// bansuri is exiting: whatever escaped and still lives gets SIGKILL.
    pub(super) fn kill_escapees(&mut self) {
        for g in self.escapees.groups.keys() {
            let _ = spawn::signal_group(*g, libc::SIGKILL);
        }
    }

    /// When a SIGKILL of a loose escapee is due.
    pub(super) fn escape_deadline(&self) -> Option<Mono> {
        self.escapees.kill_at.iter().map(|(t, _)| *t).min()
    }

    /// Send the SIGKILLs that are due.
    pub(super) fn escape_due(&mut self, now: Mono) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.escapees.kill_at.iter().partition(|(t, _)| *t <= now);
        self.escapees.kill_at = later;
        for (_, g) in due {
            if self.escapees.groups.contains_key(&g) && spawn::group_alive(g) {
                let _ = spawn::signal_group(g, libc::SIGKILL);
            }
        }
    }

    /// The escaped groups of `task`, for the state file.
    pub(super) fn escaped_entries(&self, task: &str) -> Vec<ProcessEntry> {
        let mut v: Vec<ProcessEntry> = self
            .escapees
            .groups
            .iter()
            .filter(|(_, e)| &*e.task == task)
            .map(|(g, e)| ProcessEntry {
                pid: e.pid,
                pgid: *g,
                pid_start: e.start,
                attempt: 0,
                started_at: Some(e.found),
                stopping: e.run.is_none(),
                node: None,
            })
            .collect();
        v.sort_by_key(|p| p.pgid);
        v
    }

    /// The escaped groups (for sampling their figures with their task's).
    pub(super) fn escaped_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.escapees.groups.keys().copied()
    }

    /// The escaped groups of `task`.
    pub(super) fn escaped_groups_of<'a>(&'a self, task: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.escapees
            .groups
            .iter()
            .filter(move |(_, e)| &*e.task == task)
            .map(|(g, _)| *g)
    }
}
