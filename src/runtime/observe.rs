//! The runtime's observability and control duties: the state file, resource sampling, the
//! control socket, the request inbox and the dashboard, all on the event loop's thread.
//!
//! A child module of `runtime` (it reads the loop's private state: the core, the config
//! watch, the runs). It decides nothing about tasks: control requests become core
//! [`Input`]s, and the core's [`Action::Reply`] is the answer.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cadence::{InboxPoll, SampleSchedule, StateCadence};
use super::deadlines::{Deadlines, Source};
use super::{Runtime, RuntimeError};
use crate::clock::{Mono, Now};
use crate::control::state::{
    self, BansuriInfo, ConfigInfo, ControlInfo, InvalidInfo, JobInfo, LastExit, NodeInfo,
    ProcessEntry, SettingsInfo, StateDoc, TaskEntry,
};
use crate::control::{stale, status, Paths};
use crate::core::{Mode, Outcome, RunId};
use crate::level::Level;
use crate::model::ProcessEnd;
use crate::sample::{self, GroupSample, MemWatch, Sampler};
use crate::spec::Spec;
use crate::words::short_end;

/// What the loop keeps for the state file, sampling and control.
pub(super) struct Observer {
    pub(super) paths: Paths,
    /// The state directory could be created: files are written.
    pub(super) usable: bool,
    started_at: DateTime<Utc>,
    pid: u32,
    pid_start: u64,
    job: Option<JobInfo>,
    mode: Mode,
    resume: bool,
    /// Start time (ticks since boot) of each run's process.
    run_starts: HashMap<RunId, u64>,
    /// When the state file is written.
    cadence: StateCadence,
    write_failing: bool,
    /// Writes the state file off the loop (`None`: the loop writes it itself).
    writer: Option<super::state_writer::StateWriter>,
    // ----- sampling
    sampler: Sampler,
    samples: SampleSchedule,
    /// Last sample per process group.
    groups: HashMap<u32, GroupSample>,
    /// When the last sample was taken.
    sampled_at: Option<DateTime<Utc>>,
    /// Largest sampled RSS per task (summed over its groups).
    peaks: HashMap<String, u64>,
    node: Option<NodeInfo>,
    mem: MemWatch,
    /// `state_dir` and `dashboard` of the config in effect (changes need a restart).
    restart_only: Option<(Option<std::path::PathBuf>, Option<std::net::SocketAddr>)>,
    /// Why the previous state file was not used, for the log.
    prev_note: Option<String>,
    /// Where the state file of an older bansuri was taken over from.
    moved: Option<std::path::PathBuf>,
    /// Bound dashboard address, when serving.
    pub(super) dashboard_url: Option<String>,
    // ----- control
    pub(super) listener: Option<std::os::unix::net::UnixListener>,
    /// The dashboard's thread.
    pub(super) web: Option<super::web::Web>,
    pub(super) conns: Vec<Option<super::serve::Slot>>,
    /// Listeners out of the epoll set after a failed accept (out of fds): token, back at.
    pub(super) accept_paused: Vec<(super::Token, Mono)>,
    /// A failed accept was logged; not again until one succeeds.
    pub(super) accept_warned: bool,
    /// Slot of the connection added last.
    pub(super) last_conn: Option<usize>,
    /// When the inbox is read without an event: every second, or rarely when inotify
    /// watches it (`inbox_watch`).
    pub(super) inbox: InboxPoll,
    /// inotify on the inbox (local file systems only).
    pub(super) inbox_watch: Option<std::os::fd::OwnedFd>,
    /// Replies of the core to the control input being handled.
    pub(super) replies: Vec<crate::core::Reply>,
    /// `[MASTER]` events told while a request is handled (reload, shutdown summaries).
    pub(super) capture: Option<Vec<crate::core::MasterEvent>>,
    pub(super) reload_waiters: Vec<super::serve::Waiter>,
}

impl Observer {
    pub(super) fn new(
        spec: &Spec,
        mode: Mode,
        resume: bool,
    ) -> Result<(Observer, Option<StateDoc>), RuntimeError> {
        let dir = crate::config::state_dir(spec);
        let paths = Paths::new(&dir);
        let pid = std::process::id();
        // An existing state directory is trusted only when it is ours alone: whoever else
        // can write in it could plant a forged state file (process groups to "clean up")
        // or links where bansuri writes. The default one's parent (`.bansuri/`) too.
        let mut dirs = vec![dir.clone()];
        if spec.globals.state_dir.is_none() {
            dirs.push(crate::config::legacy_state_dir(&spec.source));
        }
        if let Some(why) = dirs.iter().find_map(|d| state::untrusted_dir(d)) {
            return Err(RuntimeError::UntrustedStateDir(why));
        }
        let legacy = crate::control::legacy_dir(&spec.source, &dir);
        let prev_path = legacy
            .as_ref()
            .map_or_else(|| paths.state.clone(), |l| Paths::new(l).state);
        let (prev, prev_note) = match state::read_trusted(&prev_path) {
            Ok(p) => (p, None),
            Err(why) => (
                None,
                Some(format!(
                    "the previous state file {} is not used (no clean-up of what it lists, no --resume from it): {why}",
                    prev_path.display()
                )),
            ),
        };
        if let Some(p) = &prev {
            // Two bansuris on one state directory would overwrite each other's state and
            // take each other's process groups for stale ones.
            if p.bansuri.running
                && p.bansuri.pid != pid
                && matches!(status::liveness(p), status::Liveness::Running)
            {
                return Err(RuntimeError::StateDirInUse {
                    pid: p.bansuri.pid,
                    dir: prev_path.parent().unwrap_or(&dir).to_path_buf(),
                });
            }
        }
        let usable = create_private_dir(&paths.dir).is_ok();
        // The state of an older bansuri that kept every config's state in `.bansuri/`
        // moves into this config's own directory, once.
        let moved = match (&legacy, &prev) {
            (Some(_), Some(_)) if usable => std::fs::rename(&prev_path, &paths.state)
                .is_ok()
                .then(|| prev_path.clone()),
            _ => None,
        };
        let obs = Observer {
            prev_note,
            moved,
            usable,
            started_at: Utc::now(),
            pid,
            pid_start: sample::start_ticks(pid).unwrap_or(0),
            job: JobInfo::from_env(),
            mode,
            resume,
            run_starts: HashMap::new(),
            cadence: StateCadence::default(),
            write_failing: false,
            writer: None,
            sampler: Sampler::new(),
            samples: SampleSchedule::new(spec.globals.sample_interval),
            groups: HashMap::new(),
            sampled_at: None,
            peaks: HashMap::new(),
            node: None,
            mem: MemWatch::default(),
            dashboard_url: None,
            restart_only: None,
            listener: None,
            web: None,
            conns: Vec::new(),
            accept_paused: Vec::new(),
            accept_warned: false,
            last_conn: None,
            inbox: InboxPoll::default(),
            inbox_watch: None,
            replies: Vec::new(),
            capture: None,
            reload_waiters: Vec::new(),
            paths,
        };
        Ok((obs, prev))
    }

    pub(super) fn mark_dirty(&mut self) {
        self.cadence.mark_dirty();
    }

    /// A run is over.
    pub(super) fn forget_run(&mut self, run: RunId) {
        self.run_starts.remove(&run);
    }
}

impl Runtime {
    /// Read the start time of the main processes the state does not know yet (it tells a
    /// live process from a reused pid, for `status` and for the next bansuri's clean-up).
    /// Done when the state is built, not at each start: most short runs are over by then,
    /// and reading /proc/PID/stat right after the start waits for the new process's exec.
    /// Only leaders not yet reaped (in `pids`): a reaped pid may already be another
    /// process's.
    pub(super) fn learn_starts(&mut self) {
        for (pid, run) in &self.pids {
            if !self.obs.run_starts.contains_key(run) {
                if let Some(t) = sample::start_ticks(*pid) {
                    self.obs.run_starts.insert(*run, t);
                }
            }
        }
    }
}

/// Create `dir` (and its parents) with mode 0700 if missing.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

impl Runtime {
    /// Log where the state file is (and that it cannot be written, if so).
    pub(super) fn observe_start(&mut self, prev: Option<StateDoc>, retry_failed: bool) {
        if self.obs.usable {
            let msg = format!("State file: {}", self.obs.paths.state.display());
            self.master(Level::Info, &msg);
        } else {
            let msg = format!(
                "cannot create the state directory {}: no state file (status, control commands and --resume will not work)",
                self.obs.paths.dir.display()
            );
            self.master(Level::Error, &msg);
        }
        if let Some(note) = self.obs.prev_note.take() {
            self.master(Level::Warning, &note);
        }
        if let Some(from) = self.obs.moved.take() {
            let msg = format!(
                "Moved the state file of an older bansuri from {} to {} (each config has its own state directory now)",
                from.display(),
                self.obs.paths.state.display()
            );
            self.master(Level::Info, &msg);
        }
        if let Some(p) = &prev {
            // The rule `status` uses: a state from another node with a recent heartbeat
            // may be a live bansuri there (it cannot be checked from here).
            if status::liveness(p) == status::Liveness::Elsewhere {
                let age = (Utc::now() - p.written_at).num_seconds();
                let msg = format!(
                    "the state file was written {age} s ago by a bansuri on {} (pid {}); if it still runs, the two overwrite each other's state: give each its own `state_dir`",
                    p.bansuri.host, p.bansuri.pid
                );
                self.master(Level::Warning, &msg);
            }
            self.end_stale_groups(p);
            // Issue 17: the runtimes learned by the previous run (expected runtimes).
            self.core.learn_runtimes(&p.recent_runtimes());
        }
        if self.obs.resume {
            self.resume_from(prev.as_ref(), retry_failed);
        }
        let now = self.now().mono;
        self.obs.samples.start(now);
        self.serve_start();
    }

    /// End what a killed predecessor left running (see `control::stale`).
    fn end_stale_groups(&mut self, prev: &StateDoc) {
        if !prev.bansuri.running {
            return; // it exited normally: it stopped its groups itself
        }
        let (groups, notes) = stale::find(prev);
        for n in notes {
            self.master(
                Level::Info,
                &format!("Previous bansuri (pid {}): {n}", prev.bansuri.pid),
            );
        }
        if groups.is_empty() {
            return;
        }
        for g in &groups {
            let msg = format!(
                "Previous bansuri (pid {}) was killed and left process group {} of `{}` running ({} process{}): SIGTERM now, SIGKILL after {}",
                prev.bansuri.pid,
                g.pgid,
                g.task,
                g.members.len(),
                if g.members.len() == 1 { "" } else { "es" },
                crate::text::fmt_dur(stale::STALE_GRACE)
            );
            self.master(Level::Warning, &msg);
        }
        self.flush_log();
        let killed = stale::end(&groups, stale::STALE_GRACE);
        for g in &groups {
            let how = if killed.contains(&g.pgid) {
                "with SIGKILL"
            } else {
                "with SIGTERM"
            };
            let msg = format!("Ended stale process group {} of `{}` {how}", g.pgid, g.task);
            self.master(Level::Info, &msg);
        }
    }

    /// `--resume`: skip the one-shots that succeeded with the same settings.
    fn resume_from(&mut self, prev: Option<&StateDoc>, retry_failed: bool) {
        // Array elements (issue 19): the status file, written as each ended, knows more
        // than a state file that a SIGKILL cut short.
        let elements = super::elements::previous_in(&self.obs.paths.dir);
        if prev.is_none() && elements.is_none() {
            let msg = format!(
                "--resume: no previous state file {}: every task runs",
                self.obs.paths.state.display()
            );
            self.master(Level::Warning, &msg);
            return;
        }
        let elements = elements.unwrap_or_default();
        let tasks = prev.map(|p| p.tasks.as_slice()).unwrap_or_default();
        let mut succeeded: HashMap<String, String> = tasks
            .iter()
            .filter(|t| t.one_shot && t.state == "SUCCESS")
            .map(|t| (t.name.clone(), t.settings_hash.clone()))
            .collect();
        succeeded.extend(elements.succeeded.clone());
        let skipped = self.core.resume(&succeeded);
        let msg = format!(
            "--resume: {} one-shot task{} succeeded before with the same settings and will not run again{}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            some_names(&skipped)
        );
        self.master(Level::Info, &msg);
        if !retry_failed {
            return;
        }
        let mut failed: std::collections::HashSet<String> = elements.failed;
        failed.extend(
            tasks
                .iter()
                .filter(|t| {
                    crate::array::split_element_name(&t.name).is_some()
                        && matches!(t.state.as_str(), "FAILED" | "TIMEOUT" | "FATAL")
                })
                .map(|t| t.name.clone()),
        );
        failed.retain(|n| !succeeded.contains_key(n));
        let held = self.core.only_failed(&failed);
        let msg = format!(
            "--retry-failed: {} failed element(s) run again; {held} that never ran are left for a later run",
            failed.len()
        );
        self.master(Level::Info, &msg);
    }

    /// When the observer needs the loop next: the state file, the sampler, escaped
    /// processes, the control connections, the inbox poll, the dashboard's snapshot.
    pub(super) fn observe_deadlines(&self, now: Mono, d: &mut Deadlines) {
        let write = self.obs.cadence.deadline(now).filter(|_| self.obs.usable);
        d.set(Source::StateFile, write);
        d.set(Source::Sample, self.obs.samples.deadline());
        d.set(Source::Escape, self.escape_deadline());
        d.set(Source::Serve, self.serve_deadline());
        d.set(Source::Inbox, self.obs.inbox.deadline());
        d.set(Source::Dashboard, self.dashboard_deadline());
    }

    /// Do what is due: requests, sample, write the state file. The exit code when a
    /// request ended bansuri.
    pub(super) fn observe_due(&mut self) -> Option<crate::model::Ending> {
        self.guard_notifiers();
        if let Some(code) = self.serve_due() {
            return Some(code);
        }
        let now = self.now();
        self.follow_globals(now);
        if self.obs.samples.due(now.mono) {
            self.sample(now);
            let groups = std::mem::take(&mut self.obs.groups);
            let ending = self.check_mem(now, &groups);
            self.obs.groups = groups;
            if ending.is_some() {
                return ending;
            }
        }
        if self.escape_deadline().is_some_and(|s| s <= now.mono) {
            self.escape_due(now.mono);
        }
        if !self.obs.usable {
            return None;
        }
        if self.obs.cadence.due(now.mono) {
            self.write_state(now, None);
        }
        None
    }

    /// Global settings that a reload may have changed: `sample_interval` applies at once;
    /// `state_dir` and `dashboard` at the next start (said once per new value).
    fn follow_globals(&mut self, now: Now) {
        let g = self.core.globals();
        let (interval, dir, dash) = (g.sample_interval, g.state_dir.clone(), g.dashboard);
        if self.obs.samples.set_interval(interval, now.mono) {
            let msg = if interval.is_zero() {
                "sample_interval is now 0: resource sampling is off".to_owned()
            } else {
                format!("sample_interval is now {}", crate::text::fmt_dur(interval))
            };
            self.master(Level::Info, &msg);
            self.obs.mark_dirty();
        }
        let wanted = (dir, dash);
        if self.obs.restart_only.as_ref() != Some(&wanted) {
            let first = self.obs.restart_only.is_none();
            self.obs.restart_only = Some(wanted.clone());
            if !first {
                let msg = "state_dir or dashboard changed in the config: they take effect when bansuri starts again";
                self.master(Level::Warning, msg);
            }
        }
    }

    /// Take one resource sample.
    fn sample(&mut self, now: Now) {
        // Escaped groups are sampled with the runs' (their figures count for their task).
        self.prune_escapees();
        let pgids: Vec<u32> = self
            .runs
            .values()
            .map(|r| r.pid)
            .chain(self.escaped_groups())
            .collect();
        self.obs.groups = self.obs.sampler.sample(self.obs.pid, &pgids);
        self.obs.sampled_at = Some(now.wall);
        let strays = self.obs.sampler.strays().to_vec();
        self.adopt_strays(&strays);
        let n = sample::node();
        self.obs.node = Some(NodeInfo {
            load: n.load,
            mem_total: n.mem_total,
            mem_available: n.mem_available,
            sampled_at: now.wall,
        });
        if let Some((warn, msg)) = self.obs.mem.observe(&n) {
            let level = if warn { Level::Warning } else { Level::Info };
            self.master(level, &msg);
        }
        // Peaks per task: the sum over the task's groups.
        let mut per_task: HashMap<String, u64> = HashMap::new();
        for st in self.core.status(now) {
            let rss: u64 = self.task_groups(&st).map(|g| g.rss).sum();
            if rss > 0 {
                per_task.insert(st.name, rss);
            }
        }
        for (name, rss) in per_task {
            let peak = self.obs.peaks.entry(name).or_default();
            *peak = (*peak).max(rss);
        }
        // Frequent samples ride on the heartbeat (a write of the whole document per
        // sample would cost more than the sample); rare ones are shown at once.
        if self.obs.samples.shown_at_once() {
            self.obs.mark_dirty();
        }
    }

    /// The last sample of each of a task's groups: its runs' and its escapees'.
    fn task_groups<'a>(
        &'a self,
        st: &'a crate::core::TaskStatus,
    ) -> impl Iterator<Item = &'a GroupSample> + 'a {
        let escaped = self
            .escaped_groups_of(&st.name)
            .filter_map(|g| self.obs.groups.get(&g));
        st.processes
            .iter()
            .filter_map(|p| self.obs.groups.get(&p.pid))
            .chain(escaped)
    }

    /// One task's entry in the state document.
    fn task_entry(&self, st: crate::core::TaskStatus) -> TaskEntry {
        let sampled: Vec<&GroupSample> = self.task_groups(&st).collect();
        let escaped = self.escaped_entries(&st.name);
        let (cpu_percent, rss, live_cpu) = if sampled.is_empty() {
            (None, None, Duration::ZERO)
        } else {
            (
                Some(sampled.iter().map(|g| g.cpu_percent).sum::<f64>()),
                Some(sampled.iter().map(|g| g.rss).sum::<u64>()),
                sampled.iter().map(|g| g.cpu_time).sum::<Duration>(),
            )
        };
        let processes: Vec<ProcessEntry> = st
            .processes
            .iter()
            .map(|p| ProcessEntry {
                pid: p.pid,
                pgid: p.pid,
                pid_start: self.obs.run_starts.get(&p.run).copied(),
                attempt: p.attempt,
                started_at: p.started_at,
                stopping: p.stopping,
                node: p.node.clone(),
            })
            .collect();
        let first = processes.first();
        let stats = &st.stats;
        TaskEntry {
            pid: first.map(|p| p.pid),
            pgid: first.map(|p| p.pgid),
            pid_start: first.and_then(|p| p.pid_start),
            attempt: first.map(|p| p.attempt),
            started_at: first.and_then(|p| p.started_at),
            starts: stats.runs,
            runs: stats.runs,
            failures: stats.failures,
            restarts: stats.restarts,
            last_result: stats.last_outcome.map(|o| {
                match o {
                    Outcome::Success => "success",
                    Outcome::Failed => "failed",
                    Outcome::Timeout => "timeout",
                    Outcome::Stopped => "stopped",
                    Outcome::Fatal => "fatal",
                    Outcome::Skipped => "skipped",
                }
                .to_owned()
            }),
            last_exit: stats.last_end.as_ref().map(|e| LastExit {
                code: match e {
                    ProcessEnd::Exited(c) => Some(*c),
                    _ => None,
                },
                signal: match e {
                    ProcessEnd::Signaled(s) => Some(crate::text::signal_name(*s)),
                    _ => None,
                },
                text: short_end(e),
            }),
            ended_at: stats.last_end_at,
            next_run_at: st.next_run,
            retry_at: st.retry_at,
            cpu_percent,
            rss,
            sampled_at: self.obs.sampled_at.filter(|_| !sampled.is_empty()),
            peak_rss: stats
                .peak_rss
                .max(self.obs.peaks.get(&st.name).copied().unwrap_or(0)),
            cpu_time: (stats.cpu_time + live_cpu).as_secs_f64(),
            processes,
            escaped,
            name: st.name,
            description: st.description,
            schedule: st.schedule,
            one_shot: st.one_shot,
            enabled: st.enabled,
            state: st.state.name().to_owned(),
            reason: st.reason.map(|r| r.to_string()),
            settings_hash: st.settings_hash,
            request: st.request.map(|r| state::AmountsInfo {
                cpus: u64::from(r.cpus),
                gpus: u64::from(r.gpus),
                mem: r.mem,
            }),
            grants: st.grants.iter().map(state::GrantInfo::of).collect(),
            waiting_for: st.waiting_for,
            recent_runtimes: st.recent_runtimes.iter().map(|d| d.as_secs_f64()).collect(),
        }
    }

    /// Build the state document as of `now`.
    pub(super) fn state_doc(&self, now: Now, exit_code: Option<i32>) -> StateDoc {
        let g = self.core.globals();
        let statuses = self.core.status(now);
        // The node's resources, when the config uses them (issue 17).
        let uses = g.resources.is_some() || statuses.iter().any(|st| st.request.is_some());
        let nodes = self.core.nodes();
        let resources = self
            .resources
            .inventory
            .as_ref()
            .filter(|_| uses || nodes.len() > 1)
            .map(|inv| match nodes.first() {
                // This node's ledger: what its runs hold (not those of other nodes).
                Some(here) => state::ResourcesInfo::held(inv, &here.total, &here.free),
                None => {
                    state::ResourcesInfo::new(inv, statuses.iter().flat_map(|st| st.grants.iter()))
                }
            });
        let nodes = if nodes.len() > 1 {
            nodes.iter().map(node_entry).collect()
        } else {
            Vec::new()
        };
        let tasks = statuses.into_iter().map(|st| self.task_entry(st)).collect();
        let w = &self.watch;
        StateDoc {
            schema: state::SCHEMA.into(),
            version: state::VERSION,
            written_at: now.wall,
            clock_ticks: sample::boot_ticks_now(),
            bansuri: BansuriInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                pid: self.obs.pid,
                pid_start: self.obs.pid_start,
                host: crate::host::name().to_owned(),
                boot_id: crate::host::boot_id().to_owned(),
                started_at: self.obs.started_at,
                running: exit_code.is_none(),
                ended_at: exit_code.map(|_| now.wall),
                exit_code,
            },
            job: self.obs.job.clone(),
            config: ConfigInfo {
                path: absolute(&w.path),
                loaded_at: w.applied_at,
                on_disk_differs: w.invalid.is_some() || w.clock.settling(),
                invalid: w.invalid.as_ref().map(|i| InvalidInfo {
                    reason: i.reason.clone(),
                    since: i.since,
                }),
            },
            control: ControlInfo {
                socket: self
                    .obs
                    .listener
                    .as_ref()
                    .map(|_| self.obs.paths.socket.display().to_string()),
                requests: self.obs.paths.requests.display().to_string(),
                dashboard: self.obs.dashboard_url.clone(),
            },
            settings: SettingsInfo {
                check_interval: w.clock.check_interval().as_secs_f64(),
                watchdog_timeout: g.watchdog_timeout.as_secs_f64(),
                sample_interval: self.obs.samples.interval().as_secs_f64(),
                max_parallel: g.max_parallel,
                mode: if self.obs.mode.once {
                    "once"
                } else if self.obs.mode.exit_when_done {
                    "exit-when-done"
                } else {
                    "service"
                }
                .into(),
                resume: self.obs.resume,
            },
            node: self.obs.node.clone(),
            resources,
            nodes,
            tasks,
            arrays: self.core.arrays().into_iter().map(array_entry).collect(),
        }
    }

    /// Write the state file now (`exit_code`: the last write, bansuri is exiting): built
    /// here, serialized and written by the writer thread, except the last write, which
    /// is the loop's own once the thread has written everything before it.
    pub(super) fn write_state(&mut self, now: Now, exit_code: Option<i32>) {
        if !self.obs.usable {
            return;
        }
        self.learn_starts();
        let doc = std::sync::Arc::new(self.state_doc(now, exit_code));
        self.obs.cadence.written(now.mono, exit_code.is_some());
        // A large state is serialized off the loop; a small one costs microseconds, and
        // bansuri stays one thread.
        if self.obs.writer.is_none()
            && exit_code.is_none()
            && doc.tasks.len() >= super::state_writer::FROM_TASKS
        {
            self.obs.writer = super::state_writer::StateWriter::start(self.obs.paths.state.clone());
        }
        let written = match (&self.obs.writer, exit_code) {
            (Some(w), None) => w.submit(std::sync::Arc::clone(&doc)),
            _ => {
                if let Some(mut w) = self.obs.writer.take() {
                    w.finish();
                }
                let json = doc.to_json_compact();
                Some(state::write_atomic(&self.obs.paths.state, json.as_bytes()))
            }
        };
        // The dashboard's next snapshot, already built.
        if let Some(w) = self.obs.web.as_mut() {
            w.publish(doc, now.mono);
        }
        match written {
            Some(Ok(())) if self.obs.write_failing => {
                self.obs.write_failing = false;
                self.master(Level::Info, "The state file is written again");
            }
            Some(Err(e)) if !self.obs.write_failing => {
                self.obs.write_failing = true;
                let msg = format!(
                    "cannot write the state file {}: {e} (status shows old data until it works again)",
                    self.obs.paths.state.display()
                );
                self.master(Level::Error, &msg);
            }
            _ => {}
        }
    }

    /// bansuri is exiting with `code`: the last state.
    pub(super) fn observe_finish(&mut self, code: i32) {
        let now = self.now();
        self.write_state(now, Some(code));
        self.serve_finish();
    }
}

/// A node of a multi-node job as the state file lists it (issue 18).
fn node_entry(n: &crate::core::NodeView) -> state::NodeEntry {
    use crate::core::NodeState;
    state::NodeEntry {
        name: n
            .name
            .clone()
            .unwrap_or_else(|| crate::host::node().to_owned()),
        state: match (&n.name, n.state) {
            (None, _) => "here",
            (_, NodeState::Starting) => "starting",
            (_, NodeState::Ready) => "ready",
            (_, NodeState::Lost) => "lost",
        }
        .to_owned(),
        total: state::AmountsInfo::of(&n.total),
        free: state::AmountsInfo::of(&n.free),
        runs: n.runs,
    }
}

/// ` (a, b, c)`, the first ten names and how many more: a sweep's 100,000 do not make
/// one line of the log.
fn some_names(names: &[String]) -> String {
    match names.len() {
        0 => String::new(),
        n if n <= 10 => format!(" ({})", names.join(", ")),
        n => format!(" ({} and {} more)", names[..10].join(", "), n - 10),
    }
}

fn absolute(p: &std::path::Path) -> String {
    if p.is_absolute() {
        return p.display().to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(p).display().to_string(),
        Err(_) => p.display().to_string(),
    }
}

/// The state file's entry of an array (issue 19).
fn array_entry(a: crate::core::ArrayView) -> state::ArrayEntry {
    state::ArrayEntry {
        name: a.name,
        elements: a.elements,
        succeeded: a.succeeded,
        held: a.held,
        parallel: a.parallel,
        skipped: a.skipped.map(|r| r.to_string()),
        runs: a.stats.runs,
        failures: a.stats.failures,
        slowest: a
            .slowest
            .into_iter()
            .map(|(name, took)| state::SlowElement {
                name,
                seconds: took.as_secs_f64(),
            })
            .collect(),
        failed: a.failed,
        failed_elements: a
            .failed_first
            .into_iter()
            .map(|(name, e)| state::FailedElementEntry {
                name,
                text: e
                    .end
                    .as_ref()
                    .map_or_else(|| format!("{:?}", e.outcome).to_lowercase(), short_end),
            })
            .collect(),
    }
}
