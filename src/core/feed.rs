//! Arrays in the core (issue 19): an array task is a [`Feed`], not one task per element.
//!
//! The feed holds the array task as written (its `TaskSpec` with `sweep`), a cursor over
//! the element positions and a bit per position that succeeded ([`Done`]). At each tick
//! the feed *materializes* elements: it makes the element's `TaskSpec`
//! ([`crate::spec::expand::element_task`]) and adds it as an ordinary one-shot task named
//! `task[id]`, until a window of unfinished elements is full (the array's `parallel`,
//! else `max_parallel`, else [`WINDOW`]). From there the element is a task like any other
//! (dependencies, retries, timeouts, resources, status). An element that succeeded is
//! *retired* at the next input: its bit is set, its counters are added to the feed's, and
//! its task is dropped. A failed element stays a task (status shows it; `--retry-failed`
//! reads it from the status file). So 100,000 elements cost a cursor and 12.5 kB of bits,
//! plus one task per running or failed element.
//!
//! Retirement waits for the next input so that the runtime, which acts on the events of
//! an input after the core has handled it, still finds the element (its status line).
//!
//! An `impl Core` block beside the main state machine; like it, pure.

use std::collections::HashSet;

use super::program::Deps;
use super::*;
use crate::array::{split_element_name, Done};

/// Unfinished elements of an array with neither `parallel` nor `max_parallel`.
pub const WINDOW: usize = 256;

/// An array task in the core.
#[derive(Debug)]
pub(super) struct Feed {
    /// The array task as written (`sweep` is `Some`).
    pub(super) template: Arc<TaskSpec>,
    /// The next position the cursor looks at.
    next: u64,
    /// Positions that succeeded (retired, or before a `--resume`): never run again.
    done: Done,
    /// `--retry-failed`: only these ids run.
    only: Option<HashSet<u64>>,
    /// Counters of the retired elements.
    stats: TaskStats,
    /// A dependency of the array cannot be met: its elements are not run.
    skipped: Option<DepFailure>,
    /// Stopped by a `stop` command: no element is started until a `start`.
    held: bool,
    /// The retired elements that ran longest: (id, how long), longest first.
    slowest: Vec<(u64, Duration)>,
    /// Elements that failed finally, no longer tasks: id -> how.
    failed: std::collections::BTreeMap<u64, FailedElement>,
}

/// How an element that is no longer a task failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedElement {
    /// FAILED, TIMEOUT, FATAL or SKIPPED.
    pub outcome: Outcome,
    /// How its last process ended.
    pub end: Option<ProcessEnd>,
}

/// How many failed elements [`ArrayView`] names (the others are counted).
const FAILED_SHOWN: usize = 100;

/// How many of an array's slowest elements are kept.
const SLOWEST: usize = 5;

impl Feed {
    pub(super) fn new(template: Arc<TaskSpec>) -> Feed {
        Feed {
            template,
            next: 0,
            done: Done::default(),
            only: None,
            stats: TaskStats::default(),
            skipped: None,
            held: false,
            slowest: Vec::new(),
            failed: std::collections::BTreeMap::new(),
        }
    }

    fn sweep(&self) -> &crate::spec::Sweep {
        self.template
            .sweep
            .as_deref()
            .expect("a feed's template is an array task")
    }

    /// The array's name.
    pub(super) fn name(&self) -> &str {
        &self.template.name
    }

    /// How many elements the array has.
    pub(super) fn len(&self) -> u64 {
        self.sweep().array.len()
    }

    /// Nothing left for the cursor (or nothing will be run).
    pub(super) fn exhausted(&self) -> bool {
        self.next >= self.len() || self.skipped.is_some() || !self.template.enabled
    }

    /// The position of element `id`, if the array has it.
    fn position(&self, id: u64) -> Option<u64> {
        self.sweep().array.position(id)
    }

    /// Element `id` ran for `took`: kept when it is among the slowest.
    fn note_duration(&mut self, id: u64, took: Duration) {
        if self.slowest.len() == SLOWEST && self.slowest.last().is_some_and(|l| l.1 >= took) {
            return;
        }
        let at = self.slowest.partition_point(|s| s.1 >= took);
        self.slowest.insert(at, (id, took));
        self.slowest.truncate(SLOWEST);
    }

    /// A dependency on failed element `id` cannot be met.
    fn failure(&self, id: u64, e: &FailedElement) -> DepFailure {
        DepFailure::Failed {
            dep: crate::array::element_name(self.name(), id),
            last: e.end.clone(),
        }
    }

    /// Elements that failed finally and are no longer tasks.
    pub(super) fn failed_count(&self) -> usize {
        self.failed.len()
    }

    /// Element `id` succeeded (retired or resumed).
    pub(super) fn succeeded(&self, id: u64) -> bool {
        self.position(id).is_some_and(|p| self.done.contains(p))
    }
}

/// An array's counts for status, the state file and the summary (issue 19).
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayView {
    /// The array task's name.
    pub name: String,
    /// Elements in the array.
    pub elements: u64,
    /// Elements that succeeded and are no longer tasks (retired, or skipped by
    /// `--resume`); the elements still tasks are listed with the tasks.
    pub succeeded: u64,
    /// Elements `--retry-failed` leaves for a later run (neither failed before nor in
    /// this run).
    pub held: u64,
    /// Why the array's elements are not run: a dependency cannot be met.
    pub skipped: Option<Reason>,
    /// The array's `parallel`.
    pub parallel: Option<u32>,
    /// Counters of the retired elements (runs, failures, CPU time, peak RSS).
    pub stats: TaskStats,
    /// The retired elements that ran longest, longest first (at most 5): name, how long.
    pub slowest: Vec<(String, Duration)>,
    /// Elements that failed finally and are no longer tasks.
    pub failed: u64,
    /// The first 100 of them by id: name and how it ended.
    pub failed_first: Vec<(String, FailedElement)>,
}

impl Core {
    /// The array tasks of `spec` become feeds; the other tasks, tasks.
    pub(super) fn split_feeds(spec: &Spec, mode: &Mode) -> (Vec<Task>, Vec<Feed>) {
        let mut tasks = Vec::new();
        let mut feeds = Vec::new();
        for t in &spec.tasks {
            if t.sweep.is_some() {
                let mut feed = Feed::new(Arc::new(t.clone()));
                // `autostart: false`: nothing runs until `bansuri start` names the array.
                feed.held = !t.autostart && !mode.once;
                feeds.push(feed);
            } else {
                tasks.push(Task::new(Arc::new(t.clone())));
            }
        }
        (tasks, feeds)
    }

    /// Every array's counts, in config order.
    pub fn arrays(&self) -> Vec<ArrayView> {
        self.feeds
            .iter()
            .map(|f| ArrayView {
                name: f.name().to_owned(),
                elements: f.len(),
                succeeded: f.done.len(),
                held: self.held_of(f),
                skipped: f.skipped.clone().map(Reason::Skipped),
                parallel: f.sweep().parallel,
                stats: f.stats.clone(),
                slowest: f
                    .slowest
                    .iter()
                    .map(|&(id, took)| (crate::array::element_name(f.name(), id), took))
                    .collect(),
                failed: f.failed.len() as u64,
                failed_first: f
                    .failed
                    .iter()
                    .take(FAILED_SHOWN)
                    .map(|(&id, e)| (crate::array::element_name(f.name(), id), e.clone()))
                    .collect(),
            })
            .collect()
    }

    /// Each array's (elements, succeeded, failed, held) of [`Core::arrays`] without the
    /// names: cheap enough for the progress line at every idle turn of the loop. An array
    /// whose dependency failed is left out.
    pub(super) fn array_counts(&self) -> impl Iterator<Item = (u64, u64, u64, u64)> + '_ {
        self.feeds.iter().filter(|f| f.skipped.is_none()).map(|f| {
            (
                f.len(),
                f.done.len(),
                f.failed.len() as u64,
                self.held_of(f),
            )
        })
    }

    /// Elements of `f` that `--retry-failed` leaves alone.
    fn held_of(&self, f: &Feed) -> u64 {
        let Some(only) = &f.only else { return 0 };
        let may_run = only.iter().filter(|&&id| f.position(id).is_some()).count() as u64;
        f.len()
            .saturating_sub(f.done.len() + f.failed.len() as u64)
            .saturating_sub(may_run)
    }

    /// Task `i` is an element of array `array`.
    fn element_of(&self, i: usize, array: &str) -> bool {
        self.tasks[i]
            .spec
            .element
            .as_ref()
            .is_some_and(|e| e.array == array)
    }

    /// Make elements into tasks while each array's window has room (see the module doc).
    pub(super) fn materialize(&mut self, now: Now) {
        if !self.started || self.shutdown.is_some() || self.exited {
            return;
        }
        for f in 0..self.feeds.len() {
            if self.feeds[f].exhausted() || self.feeds[f].held {
                continue;
            }
            let name = self.feeds[f].name().to_owned();
            match self.deps_of(&self.feeds[f].template.depends_on) {
                Deps::Ready => {}
                // Its elements would only wait: none is made yet.
                Deps::Waiting(_) => continue,
                Deps::Failed(why) => {
                    self.out.push(Action::Event(Event::Task {
                        task: name,
                        what: TaskEvent::Skipped(why.clone()),
                    }));
                    self.feeds[f].skipped = Some(why);
                    continue;
                }
            }
            let window = self.feeds[f]
                .sweep()
                .parallel
                .map(|p| p as usize)
                .or(self.globals.max_parallel)
                .unwrap_or(WINDOW)
                .max(1);
            let mut unfinished = (0..self.tasks.len())
                .filter(|&i| {
                    self.element_of(i, &name)
                        && !self.tasks[i].removed()
                        && !self.tasks[i].finished()
                })
                .count();
            while unfinished < window && !self.feeds[f].exhausted() {
                let feed = &mut self.feeds[f];
                let pos = feed.next;
                feed.next += 1;
                if feed.done.contains(pos) {
                    continue;
                }
                let Some(id) = feed.sweep().array.element(pos).map(|e| e.id) else {
                    continue;
                };
                if feed.failed.contains_key(&id)
                    || feed.only.as_ref().is_some_and(|o| !o.contains(&id))
                {
                    continue;
                }
                let Some(spec) = crate::spec::expand::element_task(&feed.template, pos) else {
                    continue;
                };
                // An element kept through a reload (or stopped by name) is a task already.
                if self
                    .tasks
                    .iter()
                    .any(|t| !t.removed() && t.spec.name == spec.name)
                {
                    continue;
                }
                let mut task = Task::new(Arc::new(spec));
                // The feed starts it: `autostart: false` held the array, not the element.
                task.commanded = true;
                self.tasks.push(task);
                self.schedule_task(self.tasks.len() - 1, now, None);
                unfinished += 1;
            }
        }
    }

    /// Drop the elements that succeeded (their bit stays) or failed finally (their id and
    /// end stay); their counters are added to the feed's.
    pub(super) fn retire(&mut self) {
        if self.feeds.is_empty() {
            return;
        }
        let mut keep = Vec::with_capacity(self.tasks.len());
        for t in std::mem::take(&mut self.tasks) {
            let outcome = t
                .stats
                .last_outcome
                .filter(|o| *o == Outcome::Success || o.is_failure());
            let retired = t.config == InConfig::Current
                && t.finished()
                && !t.held()
                && outcome.is_some()
                && t.spec.element.as_ref().is_some_and(|e| {
                    let Some(f) = self.feeds.iter_mut().find(|f| f.name() == e.array) else {
                        return false;
                    };
                    let Some(pos) = f.position(e.id) else {
                        return false;
                    };
                    match outcome {
                        Some(Outcome::Success) => {
                            f.done.insert(pos);
                            if let Some(u) = t.stats.last_uptime {
                                f.note_duration(e.id, u);
                            }
                        }
                        Some(o) => {
                            let failed = FailedElement {
                                outcome: o,
                                end: t.stats.last_end.clone(),
                            };
                            f.failed.insert(e.id, failed);
                        }
                        None => return false,
                    }
                    let s = &mut f.stats;
                    s.runs += t.stats.runs;
                    s.failures += t.stats.failures;
                    s.restarts += t.stats.restarts;
                    s.cpu_time += t.stats.cpu_time;
                    s.peak_rss = s.peak_rss.max(t.stats.peak_rss);
                    s.last_outcome = outcome;
                    s.last_end.clone_from(&t.stats.last_end);
                    s.last_end_at = t.stats.last_end_at.or(s.last_end_at);
                    true
                });
            if !retired {
                keep.push(t);
            }
        }
        self.tasks = keep;
    }

    /// Each array's summary row (its retired elements' counters and its element tasks')
    /// and counts, for the summary at exit.
    pub(super) fn array_rows(&self) -> Vec<(SummaryRow, MasterEvent)> {
        self.feeds
            .iter()
            .map(|f| {
                let mut stats = f.stats.clone();
                let (mut succeeded, mut failed) = (f.done.len(), f.failed.len() as u64);
                for t in &self.tasks {
                    if !t.spec.element.as_ref().is_some_and(|e| e.array == f.name()) {
                        continue;
                    }
                    stats.runs += t.stats.runs;
                    stats.failures += t.stats.failures;
                    stats.cpu_time += t.stats.cpu_time;
                    stats.peak_rss = stats.peak_rss.max(t.stats.peak_rss);
                    match t.stats.last_outcome {
                        Some(Outcome::Success) if t.finished() => succeeded += 1,
                        Some(o) if o.is_failure() && t.finished() => failed += 1,
                        _ => {}
                    }
                }
                let state = if failed > 0 {
                    TaskState::Failed
                } else if succeeded == f.len() {
                    TaskState::Success
                } else {
                    TaskState::Stopped
                };
                let row = SummaryRow {
                    width: 0,
                    name: f.name().to_owned(),
                    state,
                    runs: stats.runs,
                    failures: stats.failures,
                    cpu: stats.cpu_time,
                    peak_rss: stats.peak_rss,
                    last: None,
                };
                let count = MasterEvent::ArraySummary {
                    name: f.name().to_owned(),
                    elements: f.len(),
                    succeeded,
                    failed,
                };
                (row, count)
            })
            .collect()
    }

    /// The feed named `array`.
    pub(super) fn feed(&self, array: &str) -> Option<&Feed> {
        self.feeds.iter().find(|f| f.name() == array)
    }

    /// A dependency on an array or one of its elements, as far as the feed knows (the
    /// element tasks alive are checked with the tasks): `None` when `dep` names no array
    /// or element of one.
    pub(super) fn array_dep(&self, dep: &str) -> Option<ArrayDep> {
        if let Some(f) = self.feed(dep) {
            if let Some(why) = &f.skipped {
                return Some(ArrayDep::Failed(why.clone()));
            }
            if let Some((&id, e)) = f.failed.iter().next() {
                return Some(ArrayDep::Failed(f.failure(id, e)));
            }
            return Some(if f.exhausted() {
                ArrayDep::Settled
            } else {
                ArrayDep::Waiting
            });
        }
        let (array, id) = split_element_name(dep)?;
        let f = self.feed(array)?;
        f.position(id)?;
        if let Some(e) = f.failed.get(&id) {
            return Some(ArrayDep::Failed(f.failure(id, e)));
        }
        Some(if f.succeeded(id) {
            ArrayDep::Settled
        } else {
            ArrayDep::Waiting
        })
    }

    /// `--resume` for arrays: elements that succeeded before with the same settings are
    /// marked done. Returns their names.
    pub(super) fn resume_arrays(&mut self, succeeded: &HashMap<String, String>) -> Vec<String> {
        let mut names = Vec::new();
        for (name, hash) in succeeded {
            let Some((array, id)) = split_element_name(name) else {
                continue;
            };
            let Some(f) = self.feeds.iter_mut().find(|f| f.name() == array) else {
                continue;
            };
            let Some(pos) = f.position(id) else { continue };
            let same = crate::spec::expand::element_task(&f.template, pos)
                .is_some_and(|spec| control::settings_hash(&spec) == *hash);
            if same && f.done.insert(pos) {
                names.push(name.clone());
            }
        }
        names.sort();
        names
    }

    /// `--retry-failed` for arrays: only the elements in `failed` run. Returns how many
    /// are held back.
    pub(super) fn only_failed_arrays(&mut self, failed: &HashSet<String>) -> usize {
        for f in &mut self.feeds {
            let ids = failed
                .iter()
                .filter_map(|n| split_element_name(n))
                .filter(|(a, _)| *a == f.name())
                .map(|(_, id)| id)
                .collect();
            f.only = Some(ids);
        }
        let held: u64 = self.feeds.iter().map(|f| self.held_of(f)).sum();
        usize::try_from(held).unwrap_or(usize::MAX)
    }

    /// Reload: the feeds of `spec`, each keeping what succeeded of the old feed of the same
    /// name (by element id). Names what changed into `summary`.
    pub(super) fn reload_feeds(&mut self, spec: &Spec, summary: &mut ReloadSummary) {
        let mut old = std::mem::take(&mut self.feeds);
        for t in spec.tasks.iter().filter(|t| t.sweep.is_some()) {
            let mut feed = Feed::new(Arc::new(t.clone()));
            match old.iter().position(|f| f.name() == t.name) {
                None => {
                    feed.held = !t.autostart && !self.mode.once;
                    summary.added.push(t.name.clone());
                }
                Some(at) => {
                    let was = old.remove(at);
                    if *was.template != *feed.template {
                        summary.changed.push(t.name.clone());
                    } else {
                        summary.kept += 1;
                    }
                    for pos in 0..was.len() {
                        if !was.done.contains(pos) {
                            continue;
                        }
                        let id = was.sweep().array.element(pos).map(|e| e.id);
                        if let Some(p) = id.and_then(|id| feed.position(id)) {
                            feed.done.insert(p);
                        }
                    }
                    feed.stats = was.stats;
                    feed.slowest = was.slowest;
                    let array = &feed.sweep().array;
                    let failed = was
                        .failed
                        .into_iter()
                        .filter(|(id, _)| array.position(*id).is_some())
                        .collect();
                    feed.failed = failed;
                    feed.only = was.only;
                    feed.held = was.held;
                }
            }
            self.feeds.push(feed);
        }
        summary
            .removed
            .extend(old.iter().map(|f| f.name().to_owned()));
    }

    /// Reload: the element tasks alive, each as the new array makes it (`None`: its
    /// array or its id is gone, so it is removed).
    pub(super) fn reloaded_elements(&self, spec: &Spec) -> Vec<TaskSpec> {
        self.tasks
            .iter()
            .filter(|t| !t.removed())
            .filter_map(|t| {
                let e = t.spec.element.as_ref()?;
                let template = spec
                    .tasks
                    .iter()
                    .find(|n| n.name == e.array && n.sweep.is_some())?;
                let pos = template.sweep.as_ref()?.array.position(e.id)?;
                crate::spec::expand::element_task(template, pos)
            })
            .collect()
    }

    /// A `stop` / `start` command naming an array holds or frees its feed; true when
    /// `name` is an array.
    pub(super) fn hold_feed(&mut self, name: &str, held: bool) -> bool {
        match self.feeds.iter_mut().find(|f| f.name() == name) {
            Some(f) => {
                f.held = held;
                true
            }
            None => false,
        }
    }

    /// All arrays' elements are made (or will not be): nothing more comes from a feed.
    pub(super) fn feeds_exhausted(&self) -> bool {
        self.feeds.iter().all(|f| f.exhausted() || f.held)
    }
}

/// What a feed says of a dependency on its array or one of its elements.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ArrayDep {
    /// Every element made so far succeeded or is a task (checked with the tasks); none
    /// is left to make.
    Settled,
    /// Elements are still to be made, or this element has not succeeded yet.
    Waiting,
    /// The array's own dependency failed.
    Failed(DepFailure),
}
