//! Allocation-aware scheduling in the core (issue 17): packing runs into what the
//! allocation has, the time left before the job's end, the checkpoint signal, the memory
//! policy and the requeue at the time limit. The rules themselves (which run fits, the
//! reservation, backfill, the expected runtimes) are `crate::resources`'s; here they meet
//! the tasks and runs.
//!
//! * **Packing**: runs of a task with a request (`needs.request`) are packed with
//!   [`pack::step`] once the runtime has told the inventory ([`Input::Resources`]); without
//!   one, requests are not enforced. Due runs wait in one queue, in the order they became
//!   due; a run needs both a slot (`max_parallel`) and its resources. A packed run whose
//!   grant came but no slot gives the grant back and waits for a slot (with no reason
//!   words, as a plain run waiting for a slot always has). A
//!   run holds its grant from its spawn to its end (a long-running monitor holds its
//!   resources), whatever ends it. A reload that changes a request applies to the runs
//!   started after it (a waiting run asks with its task's settings of the moment).
//! * **The time left** ([`Input::JobEnd`]): a run expected to end after the latest end is
//!   not started; it waits ("would end after the job's time limit") and the exit summary
//!   lists its task as not run for lack of time. It waits until the job ends (a later
//!   `JobEnd`, after `scontrol update TimeLimit=...`, may still let it start), so with
//!   `--exit-when-done` bansuri stays until the time limit, which then requeues it when
//!   `requeue_on_end` is set. The latest end is the job's end minus
//!   `stop_before_end` when set (bansuri starts stopping everything then: a run ended by
//!   then is never cut), else minus the watchdog timeout (the default stop grace, which
//!   Slurm's SIGTERM at the end starts): one instant for every run of a step, as
//!   [`pack::step`] takes it. The expected runtime is `expected-runtime` when given, else
//!   learned (the p95 of the task's last successful runs) for tasks with a request only:
//!   learning for every task would change what configs without issue-17 fields do.
//! * **Checkpoint**: at the job's end minus `checkpoint-lead`, every running run of a task
//!   with a checkpoint gets its signal once. A run that starts after that moment gets it
//!   at once (its work is cut at the stop anyway: it should save what it can), with the
//!   time actually left in the log line. Then the normal stop at `stop_before_end`.
//! * **Memory** ([`Input::MemExceeded`]): `warn` logs once per run, naming the peak;
//!   `stop` stops the run (stop signal, grace, SIGKILL) and its end counts as a failure
//!   ([`StopReason::MemExceeded`]).
//! * **Requeue**: when the shutdown comes from the time limit (the planned
//!   `stop_before_end` shutdown, or any shutdown within [`END_SLACK`] of the job's end:
//!   Slurm's own SIGTERM) with work left and `requeue_on_end` set, [`Action::Requeue`]
//!   goes before [`Action::Exit`].

use std::collections::HashMap;

use crate::resources::{ends_by, pack, Grant, History, Inventory, Ledger, Request};

use super::*;

/// A shutdown that begins this close to the job's end is the time limit's (Slurm's SIGTERM
/// at the end; the end is read to the second and the loop may be late).
pub const END_SLACK: Duration = Duration::from_secs(60);

/// Where a node stands (issue 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Its agent is being started.
    Starting,
    /// It takes runs.
    Ready,
    /// It was lost: it takes no more runs.
    Lost,
}

/// A node as `status` shows it (issue 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Its name (`None`: bansuri's own node).
    pub name: Option<String>,
    /// Where it stands.
    pub state: NodeState,
    /// What it has in all.
    pub total: crate::resources::Amounts,
    /// What is free now.
    pub free: crate::resources::Amounts,
    /// Runs on it now.
    pub runs: usize,
}

/// The core's issue-17 state.
#[derive(Debug, Default)]
pub(super) struct Alloc {
    /// What is free on each node: index 0 is bansuri's own (absent until the runtime
    /// tells the inventory), then the agents' nodes (issue 18: nothing until ready,
    /// nothing again once lost).
    nodes: Vec<Ledger>,
    /// The agents' nodes (index `k` of `nodes` is `remote[k - 1]`), and where each stands.
    remote: Vec<(String, NodeState)>,
    /// Agents were started: every run that may run elsewhere is placed on a node.
    every_run: bool,
    /// The job's end on the monotonic clock.
    job_end: Option<Mono>,
    /// Durations of each task's last successful runs, by task name.
    history: HashMap<String, History>,
    /// Runs left when the time limit began the shutdown with `requeue_on_end` set.
    requeue: Option<usize>,
}

/// What a waiting run does at this dispatch.
enum Next {
    /// Start, holding this grant on this node.
    Start(Option<(Grant, usize)>),
    Wait(String),
}

/// The request a task without one makes in a job with agents (issue 18): one CPU, so its
/// runs spread over the nodes as HyperQueue's and disBatch's do, one per CPU.
const ONE_CPU: Request = Request {
    cpus: 1,
    gpus: 0,
    mem: None,
};

/// Can a run of `task` go to another node? Not an srun task (its step is placed by
/// Slurm), an in-process task (a thread of bansuri), a task run as another `user`
/// (the agent cannot switch users), or one whose output goes to files (the files are
/// the leader's to write and rotate).
pub fn may_run_elsewhere(task: &TaskSpec) -> bool {
    use crate::spec::{OutputTarget, StderrTarget};
    task.srun.is_none()
        && !task.no_interface
        && task.user.is_none()
        && task.pending.user.is_none()
        && !matches!(task.stdout, OutputTarget::File(_))
        && !matches!(task.stderr, StderrTarget::File(_))
}

impl Core {
    /// [`Input::Resources`]: pack into `inventory` from now on; the grants of live runs
    /// stay held in it.
    pub(super) fn resources_input(&mut self, inventory: &Inventory) {
        let mut ledger = Ledger::new(inventory);
        let held: Vec<Grant> = self
            .tasks
            .iter()
            .flat_map(|t| {
                t.runs
                    .iter()
                    .filter(|r| r.node == 0)
                    .filter_map(|r| r.grant.clone())
            })
            .collect();
        hold(&mut ledger, &held);
        match self.alloc.nodes.first_mut() {
            Some(here) => *here = ledger,
            None => self.alloc.nodes.push(ledger),
        }
    }

    /// Anything issue 17 or 18 changes in the dispatch: else the plain FIFO runs.
    fn alloc_active(&self) -> bool {
        self.alloc.job_end.is_some()
            || (!self.alloc.nodes.is_empty()
                && (self.alloc.every_run
                    || self.tasks.iter().any(|t| t.spec.needs.request.is_some())))
    }

    /// [`Input::Agents`] (after `Resources`).
    pub(super) fn agents_input(&mut self, nodes: Vec<String>) {
        if self.alloc.nodes.is_empty() || self.alloc.every_run {
            return;
        }
        self.alloc.every_run = true;
        for name in &nodes {
            let mut empty = self.alloc.nodes[0].clone();
            empty.retire();
            self.alloc.nodes.push(empty);
            self.alloc.remote.push((name.clone(), NodeState::Starting));
        }
        self.master(MasterEvent::AgentsStarting { nodes });
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.alloc
            .remote
            .iter()
            .position(|(n, _)| n == name)
            .map(|k| k + 1)
    }

    /// The name of node `k` for the runtime (`None`: bansuri's own).
    pub(super) fn node_name(&self, k: usize) -> Option<Arc<str>> {
        let (name, _) = self.alloc.remote.get(k.checked_sub(1)?)?;
        Some(Arc::from(name.as_str()))
    }

    /// [`Input::NodeReady`].
    pub(super) fn node_ready(&mut self, name: &str, inventory: &Inventory) {
        let Some(k) = self.node_index(name) else {
            return;
        };
        if self.alloc.remote[k - 1].1 != NodeState::Starting {
            return;
        }
        self.alloc.remote[k - 1].1 = NodeState::Ready;
        self.alloc.nodes[k] = Ledger::new(inventory);
        let has = format!(
            "CPUs {}{}, memory {}",
            inventory.cpus,
            if inventory.gpus.is_empty() {
                String::new()
            } else {
                format!(", GPUs {}", inventory.gpus.join(","))
            },
            crate::resources::fmt_mem(inventory.mem)
        );
        self.master(MasterEvent::NodeReady {
            node: name.to_owned(),
            has,
        });
    }

    /// [`Input::NodeLost`]: the node takes no more runs; its runs end as failed (retries
    /// and `on-fail` apply, and may place them elsewhere).
    pub(super) fn node_lost(&mut self, name: &str, reason: String, now: Now) {
        let Some(k) = self.node_index(name) else {
            return;
        };
        if self.alloc.remote[k - 1].1 == NodeState::Lost {
            return;
        }
        self.alloc.remote[k - 1].1 = NodeState::Lost;
        self.alloc.nodes[k].retire();
        // A run being stopped anyway (shutdown, stop, timeout...) ends as that stop would
        // have: `scancel` ends the agents' step at once (srun turns its SIGTERM into a
        // SIGKILL of the step), and its runs were being stopped.
        let lost: Vec<(RunId, Option<Mono>, ProcessEnd)> = self
            .tasks
            .iter()
            .flat_map(|t| t.runs.iter())
            .filter(|r| r.node == k && r.phase != Phase::Waiting)
            .map(|r| match r.phase {
                Phase::Stopping { proc, reason, .. } => {
                    (r.id, Some(proc.started), ProcessEnd::Stopped(reason))
                }
                Phase::Running { proc, .. } => {
                    (r.id, Some(proc.started), ProcessEnd::Lost(name.to_owned()))
                }
                _ => (r.id, None, ProcessEnd::Lost(name.to_owned())),
            })
            .collect();
        self.master(MasterEvent::NodeLost {
            node: name.to_owned(),
            reason,
            runs: lost.len(),
        });
        for (id, started, end) in lost {
            self.process_ended(id, started, end, None, now);
        }
    }

    /// The nodes as `status` shows them: bansuri's own first (when the inventory is
    /// known), then the agents' nodes.
    pub fn nodes(&self) -> Vec<NodeView> {
        let mut runs = vec![0usize; self.alloc.nodes.len()];
        for r in self.tasks.iter().flat_map(|t| t.runs.iter()) {
            if r.phase != Phase::Waiting {
                if let Some(n) = runs.get_mut(r.node) {
                    *n += 1;
                }
            }
        }
        self.alloc
            .nodes
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let (name, state) = match k.checked_sub(1) {
                    None => (None, NodeState::Ready),
                    Some(j) => {
                        let (n, s) = &self.alloc.remote[j];
                        (Some(n.clone()), *s)
                    }
                };
                NodeView {
                    name,
                    state,
                    total: l.total(),
                    free: l.free(),
                    runs: runs[k],
                }
            })
            .collect()
    }

    /// The node run `id` was placed on (`None`: bansuri's own, or no such run).
    pub fn node_of_run(&self, id: RunId) -> Option<Arc<str>> {
        let (i, r) = self.find_run(id)?;
        self.node_name(self.tasks[i].runs[r].node)
    }

    /// [`Input::JobEnd`].
    pub(super) fn job_end_input(&mut self, end: Option<Mono>) {
        self.alloc.job_end = end;
    }

    /// Restore the learned runtimes (durations of the last successful runs, oldest first,
    /// by task name), as kept in the state dir.
    pub fn learn_runtimes(&mut self, runtimes: &HashMap<String, Vec<Duration>>) {
        self.deadline_memo.set(None);
        for (name, durations) in runtimes {
            self.alloc.history.insert(
                name.clone(),
                History::from_durations(durations.iter().copied()),
            );
        }
    }

    /// The learned durations of task `name`, oldest first.
    pub(super) fn recent_runtimes(&self, name: &str) -> Vec<Duration> {
        self.alloc
            .history
            .get(name)
            .map(|h| h.durations().collect())
            .unwrap_or_default()
    }

    /// A run of task `i` succeeded after `uptime`: learn it (tasks with a request only,
    /// the only ones whose runtime is learned: see the module doc).
    pub(super) fn learn(&mut self, i: usize, uptime: Option<Duration>) {
        if self.tasks[i].spec.needs.request.is_none() {
            return;
        }
        if let Some(d) = uptime {
            let name = self.tasks[i].spec.name.clone();
            self.alloc.history.entry(name).or_default().push(d);
        }
    }

    /// The expected runtime of task `i`'s next run (see the module doc).
    fn expected_runtime(&self, i: usize) -> Option<Duration> {
        let spec = &self.tasks[i].spec;
        spec.needs.expected_runtime.or_else(|| {
            spec.needs.request?;
            self.alloc.history.get(&spec.name)?.learned()
        })
    }

    /// The latest a run may end (see the module doc).
    fn latest_end(&self) -> Option<Mono> {
        let grace = if self.globals.stop_before_end > Duration::ZERO {
            self.globals.stop_before_end
        } else {
            self.globals.watchdog_timeout
        };
        self.alloc.job_end.map(|e| e - grace)
    }

    /// Task `i`'s request, when it is packed (it has one and there is an inventory; with
    /// agents, every task that may run elsewhere asks at least one CPU), and whether it
    /// must stay on bansuri's node.
    fn packed_request(&self, i: usize) -> Option<(Request, bool)> {
        if self.alloc.nodes.is_empty() {
            return None;
        }
        let spec = &self.tasks[i].spec;
        let anywhere = self.alloc.every_run && may_run_elsewhere(spec);
        let request = spec.needs.request.or_else(|| anywhere.then_some(ONE_CPU))?;
        Some((request, !anywhere))
    }

    /// Start waiting runs while slots are free and, for packed runs, their resources fit.
    pub(super) fn dispatch(&mut self, now: Now) {
        if !self.alloc_active() {
            return self.dispatch_fifo();
        }
        // Nothing waits: nothing to decide (an idle wake-up stays cheap; a reason left on a
        // task whose run is gone is not shown, see `status`).
        if self.shutdown.is_some() || self.slot_queue.is_empty() {
            return;
        }
        for t in &mut self.tasks {
            t.waiting_for = None;
        }
        let at: HashMap<RunId, (usize, usize)> = self
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.runs
                    .iter()
                    .enumerate()
                    .map(move |(r, run)| (run.id, (i, r)))
            })
            .collect();
        let latest = self.latest_end();
        let mut outcome = self.pack(&at, now, latest);
        let queue = std::mem::take(&mut self.slot_queue);
        for id in queue {
            let Some(&(i, r)) = at.get(&id) else {
                continue;
            };
            let slot =
                self.globals.max_parallel.map_or(true, |m| self.active < m) && !self.array_full(i);
            let next = match outcome.remove(&id) {
                // Its resources fit but no slot is free: it gives them back and waits for
                // a slot, with no words, as every run always has.
                Some(Next::Start(Some((grant, node)))) if !slot => {
                    self.release(Some(&grant), node);
                    self.slot_queue.push_back(id);
                    continue;
                }
                Some(o) => o,
                None if self.too_late(i, now, latest) => {
                    self.tasks[i].late = true;
                    Next::Wait(pack::Reason::<String>::TooLate.to_string())
                }
                None if slot => Next::Start(None),
                // Plain runs wait for a slot as they always did, with no words.
                None => {
                    self.slot_queue.push_back(id);
                    continue;
                }
            };
            match next {
                Next::Start(Some((grant, node))) => self.start_run(i, r, Some(grant), node),
                Next::Start(None) => self.start_run(i, r, None, 0),
                Next::Wait(why) => {
                    let t = &mut self.tasks[i];
                    t.waiting_for.get_or_insert(why);
                    self.slot_queue.push_back(id);
                }
            }
        }
    }

    /// One packing step over the waiting packed runs: each one's outcome.
    fn pack(
        &mut self,
        at: &HashMap<RunId, (usize, usize)>,
        now: Now,
        latest: Option<Mono>,
    ) -> HashMap<RunId, Next> {
        let waiting: Vec<pack::Waiting<RunId>> = self
            .slot_queue
            .iter()
            .filter_map(|id| {
                let &(i, _) = at.get(id)?;
                let (request, here) = self.packed_request(i)?;
                Some(pack::Waiting {
                    id: *id,
                    request,
                    expected: self.expected_runtime(i),
                    here,
                })
            })
            .collect();
        if waiting.is_empty() {
            return HashMap::new();
        }
        let holders = self.holders(now);
        let running: Vec<(usize, pack::Running<'_>)> = holders
            .iter()
            .map(|(grant, end, node)| (*node, pack::Running { grant, end: *end }))
            .collect();
        let decision = pack::step_on(&mut self.alloc.nodes, &waiting, &running, now.mono, latest);
        let mut out: HashMap<RunId, Next> = decision
            .start
            .into_iter()
            .zip(decision.on)
            .map(|((id, g), node)| (id, Next::Start(Some((g, node)))))
            .collect();
        for (id, reason) in decision.wait {
            if reason == pack::Reason::TooLate {
                if let Some(&(i, _)) = at.get(&id) {
                    self.tasks[i].late = true;
                }
            }
            let named: pack::Reason<String> = match reason {
                pack::Reason::Short(s) => pack::Reason::Short(s),
                pack::Reason::TooLate => pack::Reason::TooLate,
                pack::Reason::Behind(run) => pack::Reason::Behind(at.get(&run).map_or_else(
                    || run.to_string(),
                    |&(i, _)| self.tasks[i].spec.name.clone(),
                )),
                pack::Reason::Never(t) => pack::Reason::Never(t),
            };
            out.insert(id, Next::Wait(named.to_string()));
        }
        out
    }

    /// Every grant held, with when its run is expected to end and its node.
    fn holders(&self, now: Now) -> Vec<(Grant, Option<Mono>, usize)> {
        let mut out = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            let expected = self.expected_runtime(i);
            for run in &t.runs {
                let Some(grant) = &run.grant else { continue };
                let end = match run.phase {
                    Phase::Waiting => continue,
                    Phase::Starting => expected.map(|e| now.mono + e),
                    Phase::Running { proc, .. } => expected.map(|e| proc.started + e),
                    Phase::Stopping { kill_at, .. } => Some(kill_at),
                };
                out.push((grant.clone(), end, run.node));
            }
        }
        out
    }

    /// A run of task `i` started now would end after the latest end.
    fn too_late(&self, i: usize, now: Now, latest: Option<Mono>) -> bool {
        match (latest, self.expected_runtime(i)) {
            (Some(l), Some(e)) => !ends_by(now.mono, e, l),
            _ => false,
        }
    }

    /// A run on node `node` ended: what it held is free again.
    pub(super) fn release(&mut self, grant: Option<&Grant>, node: usize) {
        if let (Some(g), Some(l)) = (grant, self.alloc.nodes.get_mut(node)) {
            l.release(g);
        }
    }

    /// When task `i`'s checkpoint signal is due, if it has one and the job has an end.
    fn checkpoint_at(&self, i: usize) -> Option<Mono> {
        let c = self.tasks[i].spec.needs.checkpoint?;
        Some(self.alloc.job_end? - c.lead)
    }

    /// The next checkpoint deadline: a running run that has not had its signal yet.
    pub(super) fn checkpoint_deadline(&self, i: usize) -> Option<Mono> {
        let at = self.checkpoint_at(i)?;
        self.tasks[i]
            .runs
            .iter()
            .any(|r| !r.checkpointed && matches!(r.phase, Phase::Running { .. }))
            .then_some(at)
    }

    /// Send the checkpoint signals that are due (once per run).
    pub(super) fn checkpoints_due(&mut self, now: Now) {
        if self.alloc.job_end.is_none() {
            return;
        }
        for i in 0..self.tasks.len() {
            let Some(at) = self.checkpoint_at(i) else {
                continue;
            };
            if now.mono < at {
                continue;
            }
            let Some(end) = self.alloc.job_end else {
                return;
            };
            let Some(c) = self.tasks[i].spec.needs.checkpoint else {
                continue;
            };
            let mut sent = 0;
            for run in &mut self.tasks[i].runs {
                if !run.checkpointed && matches!(run.phase, Phase::Running { .. }) {
                    run.checkpointed = true;
                    self.out.push(Action::Signal {
                        run: run.id,
                        signal: c.signal,
                    });
                    sent += 1;
                }
            }
            for _ in 0..sent {
                self.event(
                    i,
                    TaskEvent::Checkpoint {
                        signal: c.signal,
                        before: end.since(now.mono),
                    },
                );
            }
        }
    }

    /// [`Input::MemExceeded`]: the task's `mem-exceeded` policy.
    pub(super) fn mem_exceeded(&mut self, id: RunId, rss: u64, now: Now) {
        let Some((i, r)) = self.find_run(id) else {
            return;
        };
        let needs = &self.tasks[i].spec.needs;
        let Some(mem) = needs.request.and_then(|q| q.mem) else {
            return;
        };
        let stop = needs.mem_exceeded == crate::spec::MemExceeded::Stop;
        let run = &mut self.tasks[i].runs[r];
        let Phase::Running { proc, .. } = run.phase else {
            // Being stopped already, or not started: nothing to add.
            return;
        };
        if !stop {
            if !run.mem_warned {
                run.mem_warned = true;
                self.event(i, TaskEvent::MemExceeded { rss, mem, stop });
            }
            return;
        }
        self.event(i, TaskEvent::MemExceeded { rss, mem, stop });
        let grace = self.grace_for(i, now);
        let signal = self.tasks[i].spec.stop_signal;
        let how = if self.tasks[i].spec.no_interface {
            StopHow::InProcess
        } else {
            StopHow::Group {
                signal,
                pid: proc.pid,
            }
        };
        let reason = StopReason::MemExceeded;
        self.tasks[i].runs[r].phase = stopping(proc, reason, signal, now, grace);
        self.out.push(Action::Signal {
            run: id,
            signal: signal.number(),
        });
        self.event(i, TaskEvent::Stopping { reason, grace, how });
    }

    /// The shutdown begins (`cause`): note whether the time limit ends the job with work
    /// left, for [`Core::requeue_at_exit`]. Called before any run is stopped.
    pub(super) fn note_time_limit(&mut self, cause: &ShutdownCause, now: Now) {
        if !self.globals.requeue_on_end {
            return;
        }
        let time_limit = matches!(cause, ShutdownCause::Planned(_))
            || self
                .alloc
                .job_end
                .is_some_and(|e| now.mono + END_SLACK >= e);
        let left: usize = self
            .tasks
            .iter()
            .map(|t| {
                let between = usize::from(
                    t.busy_between_runs()
                        || t.queued
                        || (t.runs.is_empty() && matches!(t.sched, Sched::Once { fired: false })),
                );
                t.runs.len() + between
            })
            .sum();
        if time_limit && left > 0 {
            self.alloc.requeue = Some(left);
        }
    }

    /// At exit: the summary of tasks not run for lack of time, then the requeue.
    pub(super) fn time_limit_at_exit(&mut self) {
        let late: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| t.late)
            .map(|t| t.spec.name.clone())
            .collect();
        if !late.is_empty() {
            self.master(MasterEvent::NotRunForTime { tasks: late });
        }
        if let Some(runs_left) = self.alloc.requeue {
            self.master(MasterEvent::Requeue { runs_left });
            self.out.push(Action::Requeue);
        }
    }

    /// `status`: why task `i`'s first waiting run waits, while one does.
    pub(super) fn waiting_for(&self, i: usize) -> Option<String> {
        let t = &self.tasks[i];
        if !t.runs.iter().any(|r| r.phase == Phase::Waiting) {
            return None;
        }
        if let Some(why) = &t.waiting_for {
            return Some(why.clone());
        }
        // No resource holds it back: a slot does, its array's or the job's.
        if let Some(crate::spec::ArrayElement {
            array,
            parallel: Some(cap),
            ..
        }) = &t.spec.element
        {
            if self.array_full(i) {
                return Some(format!(
                    "a slot of array `{array}` (parallel {cap}, all in use)"
                ));
            }
        }
        match self.globals.max_parallel {
            Some(max) if self.active >= max => {
                Some(format!("a slot (max_parallel {max}, all in use)"))
            }
            _ => None,
        }
    }

    /// `status`: what task `i`'s live runs hold.
    pub(super) fn grants_of(&self, i: usize) -> Vec<Grant> {
        self.tasks[i]
            .runs
            .iter()
            .filter_map(|r| r.grant.clone())
            .collect()
    }
}

/// Take `held` out of a fresh `ledger` (a new inventory while runs hold grants): allocate
/// everything, then give back all that nobody holds.
fn hold(ledger: &mut Ledger, held: &[Grant]) {
    if held.is_empty() {
        return;
    }
    let total = ledger.total();
    let everything = Request {
        cpus: u32::try_from(total.cpus).unwrap_or(u32::MAX),
        gpus: u32::try_from(total.gpus).unwrap_or(u32::MAX),
        mem: Some(total.mem),
    };
    let Ok(all) = ledger.allocate(&everything) else {
        return;
    };
    let mut cpus = all.cpus.clone();
    let mut mem = total.mem;
    for g in held {
        cpus = cpus.difference(&g.cpus);
        mem = mem.saturating_sub(g.mem.unwrap_or(0));
    }
    let gpus = all
        .gpus
        .iter()
        .filter(|id| !held.iter().any(|g| g.gpus.contains(id)))
        .cloned()
        .collect();
    ledger.release(&Grant {
        cpus,
        gpus,
        mem: Some(mem),
    });
}
