//! Fake-clock tests of the supervisor core.
//!
//! A [`Harness`] owns a [`Core`], a hand-made [`Now`] and a fake process table: it answers
//! `Spawn` with `Spawned` (or `SpawnFailed`), lets scripted processes end at given times or
//! after a stop signal, reaps at once on SIGKILL, and feeds `Tick` exactly when
//! `next_deadline()` comes. Nothing sleeps and no process is started, so every timing rule
//! is checked to the millisecond.
//!
//! Invariants checked on every input, whatever the test: the core never asks to be woken in
//! the past or present (it would spin), never signals a run that has no live process (a
//! recycled pid), and emits `Exit` only when every process has been reaped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

mod alloc;
mod arrays;
mod control;

use super::*;
use crate::schedule::{CronSchedule, CronTz};
use crate::spec::CommandSpec;

mod deadline;
mod notify;

const TERM: i32 = libc::SIGTERM;
const INT: i32 = libc::SIGINT;
const KILL: i32 = libc::SIGKILL;

/// Wall time at the fake start: deliberately not on a 5-minute boundary.
const T0: &str = "2026-01-19T10:02:30Z";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn wall(s: &str) -> DateTime<Utc> {
    s.parse().expect("test wall time is RFC 3339")
}

fn task(name: &str) -> TaskSpec {
    TaskSpec::with_defaults(
        name,
        CommandSpec::Shell(format!("./{name}.sh")),
        PathBuf::from("/tmp"),
    )
}

fn timer(name: &str, period: Duration) -> TaskSpec {
    TaskSpec {
        schedule: Schedule::Timer(period),
        ..task(name)
    }
}

fn cron(name: &str, expr: &str) -> TaskSpec {
    let c = CronSchedule::parse(expr, CronTz::Utc).expect("test cron expression parses");
    TaskSpec {
        schedule: Schedule::Cron(c),
        ..task(name)
    }
}

fn retrying(t: TaskSpec, times: u32) -> TaskSpec {
    TaskSpec {
        on_fail: OnFail::Restart,
        times,
        ..t
    }
}

fn batch() -> Mode {
    Mode {
        exit_when_done: true,
        once: false,
    }
}

fn once_mode() -> Mode {
    Mode {
        exit_when_done: false,
        once: true,
    }
}

/// How a fake process behaves.
#[derive(Debug, Clone, Copy)]
struct Script {
    /// Ends by itself this long after it started, with this status; `None`: runs on.
    ends: Option<(Duration, ExitStatus)>,
    /// Ends this long after the first stop signal, killed by it; `None`: ignores it.
    on_stop: Option<Duration>,
}

impl Script {
    fn exits(after: Duration, code: i32) -> Script {
        Script {
            ends: Some((after, ExitStatus::Code(code))),
            on_stop: None,
        }
    }

    /// Dies of `signal` (one bansuri did not send) after `after`.
    fn killed(after: Duration, signal: i32) -> Script {
        Script {
            ends: Some((after, ExitStatus::Signal(signal))),
            on_stop: None,
        }
    }

    /// Runs until killed; ignores the stop signal.
    fn forever() -> Script {
        Script {
            ends: None,
            on_stop: None,
        }
    }

    fn obeys_stop_after(self, d: Duration) -> Script {
        Script {
            on_stop: Some(d),
            ..self
        }
    }
}

#[derive(Debug)]
struct Proc {
    task: String,
    end: Option<(Mono, ExitStatus)>,
    on_stop: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Ev {
    In(Input),
    Out(Action),
}

/// One thing that happened, with both clocks at that moment.
#[derive(Debug, Clone)]
struct Rec {
    now: Now,
    ev: Ev,
}

impl Rec {
    fn t(&self) -> Duration {
        self.now.mono.0
    }
}

struct Harness {
    core: Core,
    now: Now,
    /// Answer `Spawn` with `Spawned` at once; when false the test calls [`Harness::answer`].
    auto_spawn: bool,
    /// Tasks whose spawns fail (`SpawnFailed`).
    fail_spawn: BTreeSet<String>,
    /// Added to every core deadline before the tick is delivered (a slow runtime).
    lateness: Duration,
    default_script: BTreeMap<String, Script>,
    next_scripts: BTreeMap<String, VecDeque<Script>>,
    next_pid: u32,
    live: BTreeMap<RunId, Proc>,
    /// Spawns not answered yet (manual mode).
    starting: Vec<RunId>,
    run_task: BTreeMap<RunId, String>,
    trace: Vec<Rec>,
    /// Most processes alive at once.
    max_live: usize,
    /// Times at which a delivered deadline tick produced no action at all.
    idle_wakeups: Vec<Duration>,
}

impl Harness {
    fn new(tasks: Vec<TaskSpec>) -> Harness {
        Harness::build(Globals::default(), Mode::default(), tasks)
    }

    fn build(globals: Globals, mode: Mode, tasks: Vec<TaskSpec>) -> Harness {
        let spec = Spec {
            source: PathBuf::from("/tmp/scripts_config.json"),
            version: Some("1.0".into()),
            globals,
            tasks,
            warnings: Vec::new(),
        };
        Harness {
            core: Core::new(&spec, mode),
            now: Now {
                mono: Mono::ZERO,
                wall: wall(T0),
            },
            auto_spawn: true,
            fail_spawn: BTreeSet::new(),
            lateness: Duration::ZERO,
            default_script: BTreeMap::new(),
            next_scripts: BTreeMap::new(),
            next_pid: 1000,
            live: BTreeMap::new(),
            starting: Vec::new(),
            run_task: BTreeMap::new(),
            trace: Vec::new(),
            max_live: 0,
            idle_wakeups: Vec::new(),
        }
    }

    // ----- set-up ----------------------------------------------------------------------

    /// Every process of `task` behaves like this (unless a one-off script is queued).
    fn script(&mut self, task: &str, s: Script) {
        self.default_script.insert(task.to_owned(), s);
    }

    /// The next process of `task` behaves like this (one-offs are used in order).
    fn script_next(&mut self, task: &str, s: Script) {
        self.next_scripts
            .entry(task.to_owned())
            .or_default()
            .push_back(s);
    }

    // ----- clocks ----------------------------------------------------------------------

    /// Time since the fake start (monotonic).
    fn t(&self) -> Duration {
        self.now.mono.0
    }

    fn set_mono(&mut self, to: Mono) {
        if to > self.now.mono {
            self.now = self.now.after(to.since(self.now.mono));
        }
    }

    /// Let `d` pass: every core deadline and every scripted process end in between happens
    /// at its exact instant (a process end first when both fall on the same instant).
    fn step(&mut self, d: Duration) {
        let target = self.now.mono + d;
        self.run_until(target);
    }

    /// Like [`Harness::step`], up to the absolute instant `t`.
    fn step_to(&mut self, t: Duration) {
        assert!(
            t >= self.t(),
            "step_to({t:?}) is in the past (now {:?})",
            self.t()
        );
        self.run_until(Mono(t));
    }

    fn run_until(&mut self, target: Mono) {
        for _ in 0..10_000_000 {
            let core = self.core.next_deadline().map(|t| (t, 1));
            let proc = self.next_proc_end().map(|t| (t, 0));
            match core.into_iter().chain(proc).min() {
                Some((t, 0)) if t <= target => {
                    self.set_mono(t);
                    self.pump(None);
                }
                Some((t, _)) if t <= target => {
                    self.set_mono((t + self.lateness).min(target));
                    self.tick();
                }
                _ => {
                    self.set_mono(target);
                    return;
                }
            }
        }
        panic!("more than 10M events before {target:?}: the core is spinning");
    }

    /// Jump to the core's next deadline and tick; returns the time.
    fn advance_to_deadline(&mut self) -> Duration {
        let t = self
            .core
            .next_deadline()
            .expect("advance_to_deadline: the core has no deadline");
        self.set_mono(t);
        self.tick();
        self.t()
    }

    /// The runtime was not scheduled for `d` (suspend, a stalled loop): both clocks jump,
    /// then a single tick is delivered.
    fn suspend(&mut self, d: Duration) -> Vec<Action> {
        self.now = self.now.after(d);
        self.tick()
    }

    /// The wall clock is set by `delta` (NTP, an admin); monotonic time does not move and
    /// nobody tells the core.
    fn jump_wall(&mut self, delta: chrono::Duration) {
        self.now.wall += delta;
    }

    // ----- inputs ----------------------------------------------------------------------

    fn start(&mut self) -> Vec<Action> {
        self.pump(Some(Input::Start))
    }

    fn tick(&mut self) -> Vec<Action> {
        let acts = self.pump(Some(Input::Tick));
        if acts.is_empty() {
            self.idle_wakeups.push(self.t());
        }
        acts
    }

    fn shutdown(&mut self) -> Vec<Action> {
        self.pump(Some(Input::Shutdown {
            cause: ShutdownCause::Signal(TERM),
        }))
    }

    /// The single live process of `task`.
    fn run_of(&self, task: &str) -> RunId {
        let runs = self.live_runs(task);
        assert_eq!(
            runs.len(),
            1,
            "expected one live process of {task}, found {runs:?}"
        );
        runs[0]
    }

    fn live_runs(&self, task: &str) -> Vec<RunId> {
        self.live
            .iter()
            .filter(|(_, p)| p.task == task)
            .map(|(r, _)| *r)
            .collect()
    }

    /// The single live process of `task` exits with `code` now.
    fn exit(&mut self, task: &str, code: i32) -> Vec<Action> {
        let run = self.run_of(task);
        self.pump(Some(Input::Exited {
            run,
            status: ExitStatus::Code(code),
            usage: None,
        }))
    }

    /// The single live process of `task` is killed by `sig` now.
    fn killed(&mut self, task: &str, sig: i32) -> Vec<Action> {
        let run = self.run_of(task);
        self.pump(Some(Input::Exited {
            run,
            status: ExitStatus::Signal(sig),
            usage: None,
        }))
    }

    /// Manual mode: the oldest pending spawn of `task` succeeds now.
    fn answer(&mut self, task: &str) -> Vec<Action> {
        let pos = self
            .starting
            .iter()
            .position(|r| self.run_task[r] == task)
            .unwrap_or_else(|| panic!("no pending spawn of {task}"));
        let run = self.starting.remove(pos);
        let spawned = self.start_proc(run);
        self.pump(Some(spawned))
    }

    /// Feed `first` (if any), answer the resulting actions, and deliver every scripted
    /// process end that is due now; returns every action the core emitted meanwhile.
    fn pump(&mut self, first: Option<Input>) -> Vec<Action> {
        let mut out = Vec::new();
        let mut queue: VecDeque<Input> = first.into_iter().collect();
        loop {
            while let Some(input) = queue.pop_front() {
                if let Input::Exited { run, .. } = &input {
                    assert!(
                        self.live.remove(run).is_some(),
                        "test error: run {run} has no live process"
                    );
                }
                self.trace.push(Rec {
                    now: self.now,
                    ev: Ev::In(input.clone()),
                });
                let actions = self.core.handle(input, self.now);
                for a in actions {
                    self.trace.push(Rec {
                        now: self.now,
                        ev: Ev::Out(a.clone()),
                    });
                    self.react(&a, &mut queue);
                    out.push(a);
                }
                if !self.core.has_exited() {
                    if let Some(d) = self.core.next_deadline() {
                        assert!(
                            d > self.now.mono,
                            "after an input at {:?} the core asks for a tick at {d:?} (not in the future)",
                            self.t()
                        );
                    }
                }
            }
            match self.due_exit() {
                Some(input) => queue.push_back(input),
                None => return out,
            }
        }
    }

    fn react(&mut self, a: &Action, queue: &mut VecDeque<Input>) {
        match a {
            Action::Spawn { run, task, .. } => {
                self.run_task.insert(*run, task.name.clone());
                if self.fail_spawn.contains(&task.name) {
                    queue.push_back(Input::SpawnFailed {
                        run: *run,
                        reason: "No such file or directory (os error 2)".into(),
                    });
                } else if self.auto_spawn {
                    let spawned = self.start_proc(*run);
                    queue.push_back(spawned);
                } else {
                    self.starting.push(*run);
                }
            }
            Action::Signal { run, signal } => {
                let now = self.now.mono;
                let p = self.live.get_mut(run).unwrap_or_else(|| {
                    panic!("signal {signal} to run {run}, which has no live process")
                });
                let end = if *signal == KILL {
                    Some(now)
                } else {
                    p.on_stop.map(|d| now + d)
                };
                if let Some(e) = end {
                    let earlier = match p.end {
                        Some((t, _)) => e < t,
                        None => true,
                    };
                    if earlier {
                        p.end = Some((e, ExitStatus::Signal(*signal)));
                    }
                }
            }
            Action::Requeue => {}
            Action::Exit { .. } => {
                assert!(
                    self.live.is_empty() && self.starting.is_empty(),
                    "Exit at {:?} while processes live: {:?}, starting: {:?}",
                    self.t(),
                    self.live,
                    self.starting
                );
            }
            Action::Event(_) | Action::Notify { .. } | Action::Reply(_) => {}
        }
    }

    fn start_proc(&mut self, run: RunId) -> Input {
        let task = self.run_task[&run].clone();
        let script = self
            .next_scripts
            .get_mut(&task)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.default_script.get(&task).copied())
            // An array element behaves as its array's script says, unless it has its own.
            .or_else(|| {
                crate::array::split_element_name(&task)
                    .and_then(|(array, _)| self.default_script.get(array).copied())
            })
            .unwrap_or_else(Script::forever);
        let pid = self.next_pid;
        self.next_pid += 1;
        let now = self.now.mono;
        self.live.insert(
            run,
            Proc {
                task,
                end: script.ends.map(|(d, st)| (now + d, st)),
                on_stop: script.on_stop,
            },
        );
        self.max_live = self.max_live.max(self.live.len());
        Input::Spawned { run, pid }
    }

    fn next_proc_end(&self) -> Option<Mono> {
        self.live.values().filter_map(|p| p.end.map(|e| e.0)).min()
    }

    fn due_exit(&self) -> Option<Input> {
        self.live
            .iter()
            .filter_map(|(r, p)| p.end.map(|(t, st)| (t, *r, st)))
            .filter(|(t, _, _)| *t <= self.now.mono)
            .min_by_key(|(t, r, _)| (*t, *r))
            .map(|(_, run, status)| Input::Exited {
                run,
                status,
                usage: None,
            })
    }

    // ----- queries ---------------------------------------------------------------------

    fn outs(&self) -> impl Iterator<Item = (&Rec, &Action)> {
        self.trace.iter().filter_map(|r| match &r.ev {
            Ev::Out(a) => Some((r, a)),
            Ev::In(_) => None,
        })
    }

    /// (time, attempt) of every spawn of `task`.
    fn spawns(&self, task: &str) -> Vec<(Duration, u32)> {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Spawn {
                    task: t, attempt, ..
                } if t.name == task => Some((r.t(), *attempt)),
                _ => None,
            })
            .collect()
    }

    fn spawn_times(&self, task: &str) -> Vec<Duration> {
        self.spawns(task).into_iter().map(|s| s.0).collect()
    }

    /// Wall times (UTC, `HH:MM:SS`) of every spawn of `task`.
    fn spawn_walls(&self, task: &str) -> Vec<String> {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Spawn { task: t, .. } if t.name == task => {
                    Some(r.now.wall.format("%H:%M:%S").to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// Task names in spawn order.
    fn spawn_order(&self) -> Vec<String> {
        self.outs()
            .filter_map(|(_, a)| match a {
                Action::Spawn { task, .. } => Some(task.name.clone()),
                _ => None,
            })
            .collect()
    }

    /// (time, signal) of every signal sent to a run of `task`.
    fn signals(&self, task: &str) -> Vec<(Duration, i32)> {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Signal { run, signal } if self.run_task[run] == task => {
                    Some((r.t(), *signal))
                }
                _ => None,
            })
            .collect()
    }

    /// (time, event) of every event about `task`.
    fn events(&self, task: &str) -> Vec<(Duration, TaskEvent)> {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Event(Event::Task { task: t, what }) if t == task => {
                    Some((r.t(), what.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// (time, event) of every event about bansuri itself (`[MASTER]`).
    fn master_events(&self) -> Vec<(Duration, MasterEvent)> {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Event(Event::Master(m)) => Some((r.t(), m.clone())),
                _ => None,
            })
            .collect()
    }

    /// What every reload so far changed.
    fn reloads(&self) -> Vec<ReloadSummary> {
        self.master_events()
            .into_iter()
            .filter_map(|(_, e)| match e {
                MasterEvent::Reloaded(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Times of the events about `task` that `pick` picks.
    fn event_times(&self, task: &str, pick: impl Fn(&TaskEvent) -> bool) -> Vec<Duration> {
        self.events(task)
            .into_iter()
            .filter(|(_, e)| pick(e))
            .map(|(t, _)| t)
            .collect()
    }

    /// Index in the trace of the last `Exited` input and of the `Exit` action.
    fn last_reap_and_exit(&self) -> (Option<usize>, Option<usize>) {
        let reap = self
            .trace
            .iter()
            .rposition(|r| matches!(r.ev, Ev::In(Input::Exited { .. })));
        let exit = self
            .trace
            .iter()
            .position(|r| matches!(r.ev, Ev::Out(Action::Exit { .. })));
        (reap, exit)
    }

    /// (time, code) of the Exit action, if any; there is never more than one.
    fn exit_at(&self) -> Option<(Duration, i32)> {
        let exits: Vec<_> = self
            .outs()
            .filter_map(|(r, a)| match a {
                Action::Exit { ending } => Some((r.t(), crate::model::Exit::Run(*ending).code())),
                _ => None,
            })
            .collect();
        assert!(exits.len() <= 1, "more than one Exit: {exits:?}");
        exits.first().copied()
    }

    fn view(&self, task: &str) -> TaskView {
        self.core
            .views()
            .into_iter()
            .find(|v| v.name == task)
            .unwrap_or_else(|| panic!("no task {task}"))
    }

    fn state(&self, task: &str) -> TaskState {
        self.view(task).state
    }

    fn stats(&self, task: &str) -> TaskStats {
        self.view(task).stats
    }

    fn deadline(&self) -> Option<Duration> {
        self.core.next_deadline().map(|m| m.0)
    }

    /// The whole job log so far, for failure messages.
    fn job_log(&self) -> String {
        self.outs()
            .filter_map(|(r, a)| match a {
                Action::Event(e) => Some(format!(
                    "{:>10.3?} [{}] {e}",
                    r.t(),
                    e.task().unwrap_or("MASTER")
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn signals_in(acts: &[Action]) -> Vec<(RunId, i32)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Signal { run, signal } => Some((*run, *signal)),
            _ => None,
        })
        .collect()
}

fn spawns_in(acts: &[Action]) -> usize {
    acts.iter()
        .filter(|a| matches!(a, Action::Spawn { .. }))
        .count()
}

fn exit_in(acts: &[Action]) -> Option<i32> {
    acts.iter().find_map(|a| match a {
        Action::Exit { ending } => Some(crate::model::Exit::Run(*ending).code()),
        _ => None,
    })
}

// ===== one-shots and batch mode ========================================================

#[test]
fn one_shot_runs_at_start_exactly_once() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::exits(secs(5), 0));
    let acts = h.start();
    assert_eq!(spawns_in(&acts), 1, "spawned by the Start input itself");
    assert_eq!(h.spawns("a"), [(secs(0), 1)]);
    assert_eq!(h.deadline(), None, "no timeout: the end comes as an event");
    h.step(secs(86_400));
    assert_eq!(h.spawn_times("a"), [secs(0)]);
    assert_eq!(h.state("a"), TaskState::Success);
    let st = h.stats("a");
    assert_eq!((st.runs, st.failures), (1, 0));
    assert_eq!(st.last_end, Some(ProcessEnd::Exited(0)));
    assert_eq!(h.exit_at(), None, "without a batch mode bansuri stays up");
    assert_eq!(h.deadline(), None);
    assert!(h.idle_wakeups.is_empty(), "{:?}", h.idle_wakeups);
}

#[test]
fn exit_when_done_exits_0_when_the_last_one_shot_succeeds() {
    let mut h = Harness::build(Globals::default(), batch(), vec![task("a"), task("b")]);
    h.script("a", Script::exits(secs(5), 0));
    h.script("b", Script::exits(secs(8), 0));
    h.start();
    h.step(secs(7));
    assert_eq!(h.exit_at(), None, "b still runs");
    h.step(secs(100));
    assert_eq!(h.exit_at(), Some((secs(8), 0)), "{}", h.job_log());
    let last = h.trace.last().expect("trace");
    assert!(matches!(
        last.ev,
        Ev::Out(Action::Exit {
            ending: crate::model::Ending::AllSucceeded
        })
    ));
}

#[test]
fn exit_when_done_exits_3_after_a_final_failure_not_before() {
    let mut h = Harness::build(
        Globals::default(),
        batch(),
        vec![retrying(task("a"), 2), task("b")],
    );
    h.script("a", Script::exits(secs(5), 1));
    h.script("b", Script::exits(secs(8), 0));
    h.start();
    // a: fails at 5, retried at 6 (restart-delay 1s), fails finally at 11.
    h.step(secs(10));
    assert_eq!(
        h.exit_at(),
        None,
        "a is retrying, b has finished: {}",
        h.job_log()
    );
    h.step(secs(100));
    assert_eq!(h.spawn_times("a"), [secs(0), secs(6)]);
    assert_eq!(h.exit_at(), Some((secs(11), 3)), "{}", h.job_log());
    assert_eq!(h.state("a"), TaskState::Failed);
    assert_eq!(h.state("b"), TaskState::Success);
}

#[test]
fn disabled_task_never_spawns() {
    let d = TaskSpec {
        enabled: false,
        ..timer("d", secs(10))
    };
    let o = TaskSpec {
        enabled: false,
        ..task("o")
    };
    let mut h = Harness::build(Globals::default(), batch(), vec![d, o, task("b")]);
    h.script("b", Script::exits(secs(3), 0));
    assert_eq!(h.state("d"), TaskState::Stopped);
    h.start();
    assert_eq!(
        h.deadline(),
        None,
        "a disabled timer must not wake the core"
    );
    h.step(secs(1000));
    assert!(h.spawn_times("d").is_empty());
    assert!(h.spawn_times("o").is_empty());
    assert_eq!(h.state("d"), TaskState::Stopped);
    assert_eq!(h.state("o"), TaskState::Stopped);
    assert_eq!(h.event_times("d", |e| *e == TaskEvent::Disabled), [secs(0)]);
    assert_eq!(
        h.exit_at(),
        Some((secs(3), 0)),
        "disabled tasks count as done"
    );
}

// ===== timer ===========================================================================

#[test]
fn timer_runs_at_start_then_at_a_fixed_rate_not_after_the_end() {
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script("t", Script::exits(secs(7), 0));
    h.start();
    assert_eq!(h.deadline(), Some(secs(10)));
    h.step(secs(45));
    assert_eq!(
        h.spawn_times("t"),
        [0, 10, 20, 30, 40].map(secs),
        "0.7-period runs must not shift the rate"
    );
    assert_eq!(h.deadline(), Some(secs(50)));
    assert_eq!(h.state("t"), TaskState::Running);
    assert_eq!(h.stats("t").runs, 5, "the running one is a run too");
    assert!(h.idle_wakeups.is_empty(), "{:?}", h.idle_wakeups);
}

#[test]
fn timer_does_not_drift_over_1000_periods() {
    let mut h = Harness::new(vec![timer("t", ms(1500))]);
    h.script("t", Script::exits(ms(1050), 0));
    h.start();
    h.step(ms(1500 * 1000 + 1));
    let want: Vec<Duration> = (0..=1000).map(|k| ms(1500 * k)).collect();
    assert_eq!(h.spawn_times("t"), want);
    assert_eq!(h.deadline(), Some(ms(1500 * 1001)));
}

#[test]
fn timer_does_not_drift_when_every_wakeup_is_late() {
    // The runtime delivers every tick 7 ms late: runs start 7 ms late, but the next
    // deadline stays on the anchor's grid, so the lateness never accumulates.
    let mut h = Harness::new(vec![timer("t", secs(1))]);
    h.script("t", Script::exits(ms(300), 0));
    h.lateness = ms(7);
    h.start();
    h.step(ms(1000 * 1000 + 500));
    let want: Vec<Duration> = (0..=1000)
        .map(|k| {
            if k == 0 {
                Duration::ZERO
            } else {
                ms(1000 * k + 7)
            }
        })
        .collect();
    assert_eq!(h.spawn_times("t"), want);
    assert_eq!(h.deadline(), Some(secs(1001)));
}

#[test]
fn timer_long_run_skips_each_due_tick_once_and_no_burst_follows() {
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script_next("t", Script::exits(secs(35), 0));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(39));
    // One skip line per tick that came due while the 35 s run was going: 10, 20, 30.
    assert_eq!(
        h.event_times("t", |e| *e == TaskEvent::OverlapSkipped),
        [10, 20, 30].map(secs),
        "{}",
        h.job_log()
    );
    assert_eq!(
        h.spawn_times("t"),
        [secs(0)],
        "no catch-up run when the long one ends"
    );
    assert_eq!(h.deadline(), Some(secs(40)));
    h.step(secs(30));
    assert_eq!(h.spawn_times("t"), [0, 40, 50, 60].map(secs));
    assert_eq!(
        h.event_times("t", |e| *e == TaskEvent::OverlapSkipped)
            .len(),
        3
    );
}

#[test]
fn timer_ticks_missed_during_a_stall_coalesce_into_one() {
    // A stalled runtime wakes 35 s late with the first run still going: one skip, not 3.
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script_next("t", Script::exits(secs(52), 0));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.suspend(secs(35));
    assert_eq!(
        h.event_times("t", |e| *e == TaskEvent::OverlapSkipped),
        [secs(35)]
    );
    assert_eq!(h.deadline(), Some(secs(40)), "still on the anchor's grid");
    h.step(secs(25)); // to 60; the long run ends at 52
    assert_eq!(h.spawn_times("t"), [0, 60].map(secs), "{}", h.job_log());

    // Idle when the stall happens: exactly one run at the late wake-up, then the grid.
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(2));
    h.suspend(secs(33));
    assert_eq!(h.spawn_times("t"), [0, 35].map(secs));
    assert_eq!(h.deadline(), Some(secs(40)));
}

#[test]
fn next_deadline_is_always_the_next_due_instant() {
    let t = TaskSpec {
        timeout: Some(secs(5)),
        ..timer("t", secs(10))
    };
    let r = TaskSpec {
        restart_delay: secs(4),
        ..retrying(task("r"), 2)
    };
    let mut h = Harness::new(vec![t, r, task("o")]);
    h.script("t", Script::exits(secs(2), 0));
    h.script("r", Script::exits(secs(3), 1));
    h.script("o", Script::exits(secs(1), 0));
    h.start();
    // t's timeout (5) is earlier than its next tick (10); r and o have nothing timed.
    assert_eq!(h.deadline(), Some(secs(5)));
    h.step_to(secs(2)); // t ends: its timeout is gone
    assert_eq!(h.deadline(), Some(secs(10)));
    h.step_to(secs(3)); // r fails: retry at 3 + 4
    assert_eq!(h.deadline(), Some(secs(7)));
    assert_eq!(h.advance_to_deadline(), secs(7));
    assert_eq!(h.spawns("r").last(), Some(&(secs(7), 2)));
    assert_eq!(h.deadline(), Some(secs(10)));
    assert_eq!(h.advance_to_deadline(), secs(10));
    assert_eq!(h.deadline(), Some(secs(15)), "t's new timeout");
    h.step(secs(50));
    assert!(
        h.idle_wakeups.is_empty(),
        "woken with nothing due at {:?}",
        h.idle_wakeups
    );
}

#[test]
fn next_deadline_is_none_when_only_finished_one_shots_remain() {
    let t = TaskSpec {
        timeout: Some(secs(30)),
        ..task("a")
    };
    let mut h = Harness::new(vec![t, task("b")]);
    h.script("a", Script::exits(secs(1), 0));
    h.script("b", Script::exits(secs(2), 1));
    h.start();
    assert_eq!(h.deadline(), Some(secs(30)));
    h.step(secs(3));
    assert_eq!(h.deadline(), None);
    assert_eq!(h.state("a"), TaskState::Success);
    assert_eq!(h.state("b"), TaskState::Failed);
    assert!(h.idle_wakeups.is_empty());
}

// ===== cron (UTC) ======================================================================

#[test]
fn cron_five_fields_fire_at_the_matching_wall_times() {
    let mut h = Harness::new(vec![cron("c", "*/5 * * * *")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    assert!(
        h.spawn_times("c").is_empty(),
        "cron does not run at start-up"
    );
    assert_eq!(h.deadline(), Some(secs(150)), "10:02:30 -> 10:05:00");
    h.step(secs(16 * 60));
    assert_eq!(h.spawn_walls("c"), ["10:05:00", "10:10:00", "10:15:00"]);
    assert_eq!(h.spawn_times("c"), [150, 450, 750].map(secs));
    assert_eq!(h.state("c"), TaskState::Scheduled);
    assert!(h.idle_wakeups.is_empty());
}

#[test]
fn cron_six_fields_have_seconds() {
    let mut h = Harness::new(vec![cron("c", "*/20 * * * * *")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(71));
    assert_eq!(
        h.spawn_walls("c"),
        ["10:02:40", "10:03:00", "10:03:20", "10:03:40"]
    );
    assert_eq!(h.spawn_times("c"), [10, 30, 50, 70].map(secs));
}

#[test]
fn cron_macro_hourly() {
    let mut h = Harness::new(vec![cron("c", "@hourly")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(3 * 3600));
    assert_eq!(h.spawn_walls("c"), ["11:00:00", "12:00:00", "13:00:00"]);
    assert_eq!(h.spawn_times("c")[0], secs(57 * 60 + 30));
}

#[test]
fn cron_wall_clock_set_back_does_not_fire_early() {
    let mut h = Harness::new(vec![cron("c", "*/5 * * * *")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(60)); // 10:03:30
    h.jump_wall(chrono::Duration::hours(-1)); // now 09:03:30
                                              // At the old deadline the wall says 09:05:00: nothing may run; the core re-aims.
    h.step_to(secs(150));
    assert!(h.spawn_times("c").is_empty(), "{}", h.job_log());
    // 10:05:00 on the new wall clock is 61.5 minutes after 09:03:30.
    assert_eq!(h.deadline(), Some(secs(60 + 3690)));
    h.step_to(secs(60 + 3690) - ms(1));
    assert!(h.spawn_times("c").is_empty(), "ran before 10:05 wall time");
    h.step(ms(1));
    assert_eq!(h.spawn_walls("c"), ["10:05:00"]);
    h.step(secs(300));
    assert_eq!(h.spawn_walls("c"), ["10:05:00", "10:10:00"]);
}

#[test]
fn cron_wall_clock_jump_forward_3h_fires_once_not_36_times() {
    // Only the wall clock jumps: the core finds out at its deadline, runs once, re-aims.
    let mut h = Harness::new(vec![cron("c", "*/5 * * * *")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(10)); // 10:02:40
    h.jump_wall(chrono::Duration::hours(3)); // 13:02:40
    h.step_to(secs(151));
    assert_eq!(h.spawn_walls("c"), ["13:05:00"]);
    assert_eq!(h.deadline(), Some(secs(450)), "next: 13:10:00");

    // Both clocks jump (suspend): 36 matches were missed; exactly one run on wake-up.
    let mut h = Harness::new(vec![cron("c", "*/5 * * * *")]);
    h.script("c", Script::exits(secs(1), 0));
    h.start();
    let acts = h.suspend(secs(3 * 3600)); // 13:02:30
    assert_eq!(spawns_in(&acts), 1);
    assert_eq!(h.spawn_walls("c"), ["13:02:30"]);
    assert_eq!(h.deadline(), Some(secs(3 * 3600 + 150)), "next: 13:05:00");
    h.step(secs(200));
    assert_eq!(h.spawn_walls("c"), ["13:02:30", "13:05:00"]);
}

// ===== overlap =========================================================================

#[test]
fn overlap_skip_logs_and_keeps_the_one_run() {
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script_next("t", Script::exits(secs(25), 0));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(24));
    assert_eq!(h.max_live, 1);
    assert_eq!(
        h.event_times("t", |e| *e == TaskEvent::OverlapSkipped),
        [10, 20].map(secs)
    );
    h.step(secs(15)); // the long run ended at 25; the next tick is 30
    assert_eq!(h.spawn_times("t"), [0, 30].map(secs));
}

#[test]
fn overlap_queue_keeps_at_most_one_and_runs_it_right_after() {
    let t = TaskSpec {
        overlap: Overlap::Queue,
        ..timer("t", secs(10))
    };
    let mut h = Harness::new(vec![t]);
    h.script_next("t", Script::exits(secs(25), 0));
    h.script("t", Script::exits(secs(2), 0));
    h.start();
    h.step(secs(45));
    // Ticks at 10 and 20 are due during the long run: one queued run, at its end (25).
    assert_eq!(
        h.spawn_times("t"),
        [0, 25, 30, 40].map(secs),
        "{}",
        h.job_log()
    );
    assert_eq!(
        h.event_times("t", |e| *e == TaskEvent::OverlapQueued),
        [secs(10)]
    );
    assert_eq!(h.max_live, 1);
    assert_eq!(h.stats("t").runs, 4);
}

#[test]
fn overlap_replace_stops_the_old_run_then_starts_the_new_one() {
    let t = TaskSpec {
        overlap: Overlap::Replace,
        stop_time: Some(secs(5)),
        ..retrying(timer("t", secs(10)), 3)
    };
    let mut h = Harness::new(vec![t]);
    h.script_next("t", Script::forever().obeys_stop_after(secs(2)));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(10));
    assert_eq!(h.signals("t"), [(secs(10), TERM)]);
    assert_eq!(
        h.spawn_times("t"),
        [secs(0)],
        "the new run waits for the old to exit"
    );
    assert_eq!(h.state("t"), TaskState::Stopping);
    h.step(secs(9)); // the old run exits at 12 (killed by TERM)
    assert_eq!(
        h.spawns("t"),
        [(secs(0), 1), (secs(12), 1)],
        "{}",
        h.job_log()
    );
    let st = h.stats("t");
    assert_eq!(
        (st.runs, st.failures, st.last_outcome),
        (2, 0, Some(Outcome::Success))
    );
    assert!(
        h.event_times("t", |e| matches!(e, TaskEvent::Retrying { .. }))
            .is_empty(),
        "a replaced run is not retried"
    );
    assert_eq!(h.max_live, 1);
}

#[test]
fn overlap_replace_kills_an_old_run_that_ignores_the_stop_signal() {
    let t = TaskSpec {
        overlap: Overlap::Replace,
        stop_time: Some(secs(5)),
        ..retrying(timer("t", secs(10)), 3)
    };
    let mut h = Harness::new(vec![t]);
    h.script_next("t", Script::forever());
    h.script("t", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(19));
    assert_eq!(h.signals("t"), [(secs(10), TERM), (secs(15), KILL)]);
    assert_eq!(h.spawns("t"), [(secs(0), 1), (secs(15), 1), (secs(17), 2)]);
    assert_eq!(
        h.stats("t").last_end,
        Some(ProcessEnd::Exited(1)),
        "{}",
        h.job_log()
    );
}

#[test]
fn overlap_replace_of_an_old_run_that_exits_with_a_failure_code_is_not_retried() {
    let t = TaskSpec {
        overlap: Overlap::Replace,
        ..retrying(timer("t", secs(10)), 3)
    };
    let mut h = Harness::new(vec![t]);
    h.script("t", Script::exits(secs(1), 0));
    h.script_next("t", Script::forever());
    h.start();
    h.step(secs(11));
    h.step(ms(500));
    h.exit("t", 1); // exits by itself with 1 while being stopped
    h.step(secs(5));
    assert_eq!(
        h.spawns("t"),
        [(secs(0), 1), (ms(11_500), 1)],
        "{}",
        h.job_log()
    );
    assert_eq!(h.stats("t").failures, 0);
}

#[test]
fn overlap_replace_of_a_run_still_starting_stops_it_once_it_has_a_pid() {
    let t = TaskSpec {
        overlap: Overlap::Replace,
        ..timer("t", secs(10))
    };
    let mut h = Harness::new(vec![t]);
    h.auto_spawn = false;
    h.start();
    h.step(secs(10)); // due again before the first spawn was even answered
    assert!(h.signals("t").is_empty());
    let acts = h.answer("t");
    assert_eq!(
        signals_in(&acts).iter().map(|s| s.1).collect::<Vec<_>>(),
        [TERM],
        "the stale run must be stopped as soon as it has a process group: {}",
        h.job_log()
    );
    h.killed("t", TERM);
    assert_eq!(h.spawn_times("t"), [0, 10].map(secs));
}

#[test]
fn overlap_allow_runs_concurrently() {
    let t = TaskSpec {
        overlap: Overlap::Allow,
        ..timer("t", secs(10))
    };
    let mut h = Harness::new(vec![t]);
    h.script("t", Script::exits(secs(25), 0));
    h.start();
    h.step(secs(22));
    assert_eq!(h.spawn_times("t"), [0, 10, 20].map(secs));
    assert_eq!(h.live_runs("t").len(), 3);
    assert_eq!(h.max_live, 3);
    assert!(h
        .events("t")
        .iter()
        .all(|(_, e)| *e != TaskEvent::OverlapSkipped));
    h.step(secs(100));
    // Every start is a run, the three still running included.
    assert_eq!(h.spawn_times("t").len(), 13);
    assert_eq!(h.stats("t").runs, 13, "{}", h.job_log());
}

// ===== timeout =========================================================================

#[test]
fn timeout_sends_stop_at_exactly_timeout_then_sigkill_after_stoptime() {
    let t = TaskSpec {
        timeout: Some(secs(30)),
        stop_time: Some(secs(5)),
        ..task("a")
    };
    let mut h = Harness::build(Globals::default(), batch(), vec![t]);
    h.script("a", Script::forever());
    h.start();
    assert_eq!(h.deadline(), Some(secs(30)));
    h.step(secs(30) - ms(1));
    assert!(h.signals("a").is_empty());
    h.step(ms(1));
    assert_eq!(h.signals("a"), [(secs(30), TERM)]);
    assert_eq!(h.state("a"), TaskState::Stopping);
    assert_eq!(h.deadline(), Some(secs(35)));
    h.step(secs(5) - ms(1));
    assert_eq!(h.signals("a").len(), 1);
    h.step(ms(1));
    assert_eq!(h.signals("a"), [(secs(30), TERM), (secs(35), KILL)]);
    assert_eq!(h.state("a"), TaskState::Timeout);
    let st = h.stats("a");
    assert_eq!(st.last_end, Some(ProcessEnd::TimedOut(secs(30))));
    assert_eq!(st.last_outcome, Some(Outcome::Timeout));
    assert_eq!((st.runs, st.failures), (1, 1));
    assert_eq!(h.exit_at(), Some((secs(35), 3)));
    assert_eq!(
        h.event_times(
            "a",
            |e| matches!(e, TaskEvent::TimedOut { limit, .. } if *limit == secs(30))
        ),
        [secs(30)]
    );
}

#[test]
fn timeout_honours_stopsignal_int_and_a_process_that_obeys_gets_no_sigkill() {
    let t = TaskSpec {
        timeout: Some(secs(30)),
        stop_signal: StopSignal::Int,
        ..task("a")
    };
    let mut h = Harness::new(vec![t]);
    h.script("a", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(secs(200));
    assert_eq!(h.signals("a"), [(secs(30), INT)]);
    assert_eq!(h.stats("a").last_end, Some(ProcessEnd::TimedOut(secs(30))));
    assert_eq!(h.state("a"), TaskState::Timeout);
    assert_eq!(h.deadline(), None);
}

#[test]
fn timeout_stoptime_defaults_to_the_watchdog() {
    let g = Globals {
        watchdog_timeout: secs(45),
        ..Globals::default()
    };
    let t = TaskSpec {
        timeout: Some(secs(30)),
        ..task("a")
    };
    let mut h = Harness::build(g, Mode::default(), vec![t]);
    h.start();
    h.step(secs(200));
    assert_eq!(h.signals("a"), [(secs(30), TERM), (secs(75), KILL)]);
}

#[test]
fn timeout_is_cleared_when_the_run_ends_in_time() {
    let t = TaskSpec {
        timeout: Some(secs(30)),
        ..timer("a", secs(60))
    };
    let mut h = Harness::new(vec![t]);
    h.script("a", Script::exits(secs(29), 0));
    h.start();
    h.step(secs(125));
    assert!(h.signals("a").is_empty());
    assert_eq!(h.spawn_times("a"), [0, 60, 120].map(secs));
    assert_eq!(h.stats("a").failures, 0);
}

#[test]
fn timed_out_attempt_is_retried_under_on_fail_restart() {
    let t = TaskSpec {
        timeout: Some(secs(10)),
        stop_time: Some(secs(2)),
        ..retrying(task("a"), 2)
    };
    let mut h = Harness::build(Globals::default(), batch(), vec![t]);
    h.script("a", Script::forever());
    h.start();
    h.step(secs(100));
    // 0: start; 10: TERM; 12: KILL; 13: retry (1s); 23: TERM; 25: KILL, final.
    assert_eq!(h.spawns("a"), [(secs(0), 1), (secs(13), 2)]);
    assert_eq!(
        h.signals("a"),
        [
            (secs(10), TERM),
            (secs(12), KILL),
            (secs(23), TERM),
            (secs(25), KILL)
        ]
    );
    assert_eq!(h.state("a"), TaskState::Timeout);
    assert_eq!(h.exit_at(), Some((secs(25), 3)));
}

#[test]
fn timeout_with_stopsignal_kill_sends_one_sigkill() {
    let t = TaskSpec {
        timeout: Some(secs(30)),
        stop_signal: StopSignal::Kill,
        ..task("a")
    };
    let mut h = Harness::new(vec![t]);
    h.start();
    h.step(secs(300));
    assert_eq!(h.signals("a"), [(secs(30), KILL)]);
    assert_eq!(h.state("a"), TaskState::Timeout);
}

#[test]
fn replace_of_a_timed_out_run_is_not_retried() {
    let t = TaskSpec {
        overlap: Overlap::Replace,
        timeout: Some(secs(8)),
        stop_time: Some(secs(5)),
        ..retrying(timer("t", secs(10)), 3)
    };
    let mut h = Harness::new(vec![t]);
    h.script_next("t", Script::forever());
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(20) - ms(1));
    // TERM at 8 (timeout); due at 10 while stopping: SIGKILL stays at 13; the new run
    // starts at 13 instead of a retry.
    assert_eq!(h.signals("t"), [(secs(8), TERM), (secs(13), KILL)]);
    assert_eq!(
        h.spawns("t"),
        [(secs(0), 1), (secs(13), 1)],
        "{}",
        h.job_log()
    );
    let st = h.stats("t");
    assert_eq!((st.runs, st.failures), (2, 1));
}

// ===== retries =========================================================================

#[test]
fn retry_times_3_means_exactly_3_spawns_with_doubling_delays() {
    let mut h = Harness::new(vec![retrying(task("a"), 3)]);
    h.script("a", Script::exits(ms(500), 1));
    h.start();
    h.step(secs(100));
    // Fail at 0.5, wait 1s; fail at 2.0, wait 2s; third attempt at 4.0 fails finally.
    assert_eq!(
        h.spawns("a"),
        [(secs(0), 1), (ms(1500), 2), (secs(4), 3)],
        "{}",
        h.job_log()
    );
    assert_eq!(h.state("a"), TaskState::Failed);
    let st = h.stats("a");
    assert_eq!(
        (st.runs, st.failures),
        (3, 3),
        "every attempt is a run and a failure"
    );
    let retry_in = |d: Duration| move |e: &TaskEvent| matches!(e, TaskEvent::Retrying { delay, .. } if *delay == d);
    assert_eq!(h.event_times("a", retry_in(secs(1))), [ms(500)]);
    assert_eq!(h.event_times("a", retry_in(secs(2))), [secs(2)]);
    assert_eq!(
        h.event_times("a", |e| *e == TaskEvent::GaveUp { attempts: 3 }),
        [ms(4500)]
    );
    assert_eq!(h.deadline(), None);
}

#[test]
fn retry_delay_is_capped_by_max_restart_delay() {
    let t = TaskSpec {
        restart_delay: secs(1),
        max_restart_delay: secs(3),
        ..retrying(task("a"), 6)
    };
    let mut h = Harness::new(vec![t]);
    h.script("a", Script::exits(Duration::ZERO, 1));
    h.start();
    h.step(secs(100));
    // Delays 1, 2, 3 (4 capped), 3, 3.
    assert_eq!(h.spawn_times("a"), [0, 1, 3, 6, 9, 12].map(secs));
    assert_eq!(h.stats("a").runs, 6);
}

/// Delays far beyond any config bound (which validate refuses, but the core must not
/// trust) saturate: no panic in backoff, deadlines, status or the summary, and the far
/// retry and the far timer run simply never come.
#[test]
fn huge_delays_saturate_instead_of_panicking() {
    let huge = Duration::MAX;
    let big = TaskSpec {
        restart_delay: huge,
        max_restart_delay: huge,
        timeout: Some(huge),
        stop_time: Some(huge),
        ..retrying(task("a"), 40)
    };
    let tick = TaskSpec {
        timeout: Some(secs(10_000_000_000_000)),
        ..timer("t", secs(10_000_000_000_000))
    };
    let mut h = Harness::build(
        Globals {
            watchdog_timeout: huge,
            ..Globals::default()
        },
        Mode::default(),
        vec![big, tick],
    );
    h.script("a", Script::exits(Duration::ZERO, 1));
    h.script("t", Script::exits(Duration::ZERO, 0));
    h.start();
    h.step(secs(100));
    assert_eq!(h.spawn_times("a"), [secs(0)], "{}", h.job_log());
    assert_eq!(h.spawn_times("t"), [secs(0)], "{}", h.job_log());
    let status = h.core.status(h.now);
    let a = status.iter().find(|s| s.name == "a").expect("task a");
    assert!(a.retry_at.is_some(), "a waits for its retry");
    let t = status.iter().find(|s| s.name == "t").expect("task t");
    assert!(t.next_run.is_some(), "t has a next run");
    assert!(h.deadline().is_some());
    h.shutdown();
    h.step(secs(10));
    assert!(h.exit_at().is_some(), "{}", h.job_log());
}

#[test]
fn retry_backoff_resets_after_60s_up() {
    for (third_run, delay) in [(secs(60), secs(1)), (secs(60) - ms(1), secs(4))] {
        let mut h = Harness::new(vec![retrying(task("a"), 4)]);
        h.script_next("a", Script::exits(Duration::ZERO, 1));
        h.script_next("a", Script::exits(Duration::ZERO, 1));
        h.script_next("a", Script::exits(third_run, 1));
        h.script("a", Script::exits(Duration::ZERO, 1));
        h.start();
        h.step(secs(200));
        // 0 fail, +1s; 1 fail, +2s; 3 runs `third_run`, then the fourth attempt.
        let fourth = secs(3) + third_run + delay;
        assert_eq!(
            h.spawn_times("a"),
            [secs(0), secs(1), secs(3), fourth],
            "third run up {third_run:?}: {}",
            h.job_log()
        );
    }
}

#[test]
fn on_fail_stop_makes_one_attempt() {
    let t = TaskSpec {
        times: 3,
        ..task("a")
    };
    let mut h = Harness::new(vec![t]);
    h.script("a", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(100));
    assert_eq!(h.spawn_times("a"), [secs(0)]);
    assert_eq!(h.state("a"), TaskState::Failed);
    assert_eq!(h.stats("a").failures, 1);
}

#[test]
fn success_codes_decide_success() {
    let codes = |t: TaskSpec| TaskSpec {
        success_codes: vec![0, 2],
        ..retrying(t, 3)
    };
    let mut h = Harness::new(vec![codes(task("two")), codes(task("one"))]);
    h.script("two", Script::exits(secs(1), 2));
    h.script("one", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(100));
    assert_eq!(h.spawn_times("two"), [secs(0)]);
    assert_eq!(h.state("two"), TaskState::Success);
    assert_eq!(h.stats("two").failures, 0);
    assert_eq!(
        h.event_times("two", |e| matches!(
            e,
            TaskEvent::Ended {
                end: ProcessEnd::Exited(2),
                success: true,
                ..
            }
        )),
        [secs(1)]
    );
    assert_eq!(h.spawn_times("one").len(), 3);
    assert_eq!(h.state("one"), TaskState::Failed);
}

#[test]
fn death_by_signal_matches_the_success_code_a_shell_reports() {
    // The manual lists 137 for "killed by SIGKILL": 128 + 9.
    let t = |name: &str, codes: Vec<i32>| TaskSpec {
        success_codes: codes,
        ..retrying(task(name), 3)
    };
    let mut h = Harness::new(vec![t("ok", vec![0, 137]), t("bad", vec![0, 143])]);
    h.script("ok", Script::killed(secs(1), libc::SIGKILL));
    h.script("bad", Script::killed(secs(1), libc::SIGKILL));
    h.start();
    h.step(secs(100));
    assert_eq!(h.spawn_times("ok"), [secs(0)], "{}", h.job_log());
    assert_eq!(h.state("ok"), TaskState::Success);
    assert_eq!(h.stats("ok").failures, 0);
    assert_eq!(
        h.event_times("ok", |e| matches!(
            e,
            TaskEvent::Ended {
                end: ProcessEnd::Signaled(KILL),
                success: true,
                ..
            }
        )),
        [secs(1)]
    );
    // 143 is SIGTERM's code: SIGKILL is a failure, retried.
    assert_eq!(h.spawn_times("bad").len(), 3, "{}", h.job_log());
    assert_eq!(h.state("bad"), TaskState::Failed);
    assert_eq!(
        h.event_times("bad", |e| matches!(
            e,
            TaskEvent::Ended {
                end: ProcessEnd::Signaled(KILL),
                success: false,
                uptime: Some(_),
                ..
            }
        )),
        [secs(1), secs(3), secs(6)],
        "{}",
        h.job_log()
    );
    // Tables (summary, status) give both as well (their words: `crate::words` tests).
    let last = h.stats("bad").last_end.expect("ended");
    assert_eq!(last, ProcessEnd::Signaled(KILL));
}

#[test]
fn spawn_failure_counts_as_a_failed_attempt_and_frees_its_slot() {
    let g = Globals {
        max_parallel: Some(1),
        ..Globals::default()
    };
    let mut h = Harness::build(g, batch(), vec![retrying(task("x"), 2), task("y")]);
    h.fail_spawn.insert("x".into());
    h.script("y", Script::exits(secs(5), 0));
    h.start();
    assert_eq!(
        h.spawn_times("y"),
        [secs(0)],
        "x's failed spawn freed the slot"
    );
    h.step(secs(100));
    // x's retry is due at 1 but y holds the only slot until 5.
    assert_eq!(
        h.spawns("x"),
        [(secs(0), 1), (secs(5), 2)],
        "{}",
        h.job_log()
    );
    assert_eq!(h.state("x"), TaskState::Failed);
    assert!(matches!(
        h.stats("x").last_end,
        Some(ProcessEnd::SpawnFailed(ref r)) if r.contains("No such file")
    ));
    assert_eq!(
        h.event_times("x", |e| matches!(
            e,
            TaskEvent::Ended {
                end: ProcessEnd::SpawnFailed(_),
                ..
            }
        ))
        .len(),
        2
    );
    assert_eq!(h.exit_at(), Some((secs(5), 3)));
}

// ===== max_parallel ====================================================================

#[test]
fn max_parallel_limits_running_processes_in_fifo_order() {
    let g = Globals {
        max_parallel: Some(2),
        ..Globals::default()
    };
    let names = ["a", "b", "c", "d", "e"];
    let mut h = Harness::build(g, batch(), names.iter().map(|n| task(n)).collect());
    h.start();
    assert_eq!(h.spawn_order(), ["a", "b"]);
    let states: Vec<_> = names.iter().map(|n| h.state(n)).collect();
    use TaskState::{Running as R, Waiting as W};
    assert_eq!(states, [R, R, W, W, W]);
    h.step(secs(1));
    h.exit("b", 0);
    assert_eq!(h.spawn_order(), ["a", "b", "c"]);
    h.step(secs(1));
    h.exit("a", 1);
    assert_eq!(h.spawn_order(), ["a", "b", "c", "d"]);
    assert_eq!(h.state("e"), TaskState::Waiting);
    h.exit("c", 0);
    h.exit("d", 0);
    assert_eq!(h.spawn_order(), ["a", "b", "c", "d", "e"]);
    assert_eq!(h.max_live, 2);
    assert_eq!(h.exit_at(), None);
    h.exit("e", 0);
    assert_eq!(h.exit_at(), Some((secs(2), 3)));
}

// ===== shutdown ========================================================================

#[test]
fn shutdown_stops_every_running_task_in_one_call_and_kills_at_the_watchdog() {
    let b = TaskSpec {
        stop_signal: StopSignal::Int,
        ..task("b")
    };
    let mut h = Harness::new(vec![task("a"), b, timer("c", secs(60)), task("d")]);
    h.script("a", Script::forever().obeys_stop_after(secs(1)));
    h.script("b", Script::forever());
    h.script("c", Script::exits(secs(1), 0));
    h.script("d", Script::exits(secs(2), 0));
    h.start();
    h.step(secs(10));
    let acts = h.shutdown();
    let mut sent: Vec<(String, i32)> = signals_in(&acts)
        .into_iter()
        .map(|(r, s)| (h.run_task[&r].clone(), s))
        .collect();
    sent.sort();
    assert_eq!(sent, [("a".to_owned(), TERM), ("b".to_owned(), INT)]);
    assert_eq!(exit_in(&acts), None);
    assert_eq!(h.deadline(), Some(secs(130)), "the watchdog, nothing else");
    h.step(secs(120) - ms(1));
    assert_eq!(h.signals("b"), [(secs(10), INT)]);
    assert_eq!(h.exit_at(), None, "b is not reaped yet");
    h.step(ms(1));
    assert_eq!(h.signals("b"), [(secs(10), INT), (secs(130), KILL)]);
    assert_eq!(h.signals("a"), [(secs(10), TERM)]);
    assert_eq!(h.exit_at(), Some((secs(130), 0)));
    let (reap, exit) = h.last_reap_and_exit();
    assert!(reap < exit, "Exit before the last reap: {reap:?} {exit:?}");
    for n in ["a", "b"] {
        assert_eq!(h.state(n), TaskState::Stopped);
        assert_eq!(
            h.stats(n).last_end,
            Some(ProcessEnd::Stopped(StopReason::Shutdown))
        );
    }
    assert_eq!(h.spawn_times("c"), [secs(0)]);
}

#[test]
fn shutdown_uses_each_tasks_stoptime() {
    let a = TaskSpec {
        stop_time: Some(secs(3)),
        ..task("a")
    };
    let mut h = Harness::new(vec![a, task("b")]);
    h.start();
    h.shutdown();
    h.step(secs(500));
    assert_eq!(h.signals("a"), [(secs(0), TERM), (secs(3), KILL)]);
    assert_eq!(h.signals("b"), [(secs(0), TERM), (secs(120), KILL)]);
    assert_eq!(h.exit_at(), Some((secs(120), 0)));
}

#[test]
fn second_shutdown_kills_the_rest_at_once() {
    let mut h = Harness::new(vec![task("a"), task("b"), task("c")]);
    h.script("c", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(5));
    h.shutdown();
    h.step(secs(2));
    let acts = h.shutdown();
    let kills: Vec<String> = signals_in(&acts)
        .into_iter()
        .filter(|s| s.1 == KILL)
        .map(|(r, _)| h.run_task[&r].clone())
        .collect();
    assert_eq!(kills, ["a", "b"], "c was already gone");
    assert_eq!(exit_in(&acts), Some(0));
    assert_eq!(h.exit_at(), Some((secs(7), 0)));
    assert!(h.shutdown().is_empty(), "after Exit the core is silent");
}

#[test]
fn shutdown_with_nothing_running_exits_at_once() {
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(5));
    let acts = h.shutdown();
    assert_eq!(exit_in(&acts), Some(0));
    assert_eq!(h.deadline(), None);
}

#[test]
fn nothing_new_spawns_after_shutdown() {
    let q = TaskSpec {
        overlap: Overlap::Queue,
        ..timer("q", secs(10))
    };
    let r = TaskSpec {
        restart_delay: secs(5),
        ..retrying(task("r"), 5)
    };
    let mut h = Harness::new(vec![q, r, timer("t", secs(10))]);
    h.script_next("q", Script::forever().obeys_stop_after(secs(10)));
    h.script("q", Script::exits(secs(1), 0));
    h.script("r", Script::exits(secs(1), 1));
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(12));
    // r: fails at 1, retried at 6, fails at 7, retry due at 17; q has a queued run.
    assert_eq!(h.spawn_times("r"), [0, 6].map(secs));
    assert_eq!(
        h.event_times("q", |e| *e == TaskEvent::OverlapQueued),
        [secs(10)]
    );
    assert_eq!(h.deadline(), Some(secs(17)));
    let before = h.spawn_order().len();
    h.shutdown();
    assert_eq!(h.deadline(), Some(secs(132)), "only q's watchdog");
    h.step(secs(200)); // q obeys at 22: its queued run must not start
    assert_eq!(h.spawn_order().len(), before, "{}", h.job_log());
    assert_eq!(h.exit_at(), Some((secs(22), 0)));
}

#[test]
fn shutdown_drops_runs_waiting_for_a_slot() {
    let g = Globals {
        max_parallel: Some(1),
        ..Globals::default()
    };
    let mut h = Harness::build(g, Mode::default(), vec![task("a"), task("b")]);
    h.script("a", Script::forever().obeys_stop_after(Duration::ZERO));
    h.start();
    assert_eq!(h.state("b"), TaskState::Waiting);
    h.step(secs(5));
    let acts = h.shutdown();
    assert_eq!(exit_in(&acts), Some(0));
    assert!(h.spawn_times("b").is_empty());
}

#[test]
fn shutdown_stops_a_run_whose_spawn_is_answered_afterwards() {
    let mut h = Harness::new(vec![task("a")]);
    h.auto_spawn = false;
    h.start();
    let acts = h.shutdown();
    assert!(signals_in(&acts).is_empty(), "no pid yet");
    assert_eq!(exit_in(&acts), None, "a process may be coming");
    let acts = h.answer("a");
    assert_eq!(
        signals_in(&acts).iter().map(|s| s.1).collect::<Vec<_>>(),
        [TERM]
    );
    h.step(secs(120));
    assert_eq!(h.signals("a"), [(secs(0), TERM), (secs(120), KILL)]);
    assert_eq!(h.exit_at(), Some((secs(120), 0)));
}

#[test]
fn second_shutdown_kills_a_run_whose_spawn_is_answered_afterwards() {
    let mut h = Harness::new(vec![task("a")]);
    h.auto_spawn = false;
    h.start();
    h.shutdown();
    h.shutdown();
    let acts = h.answer("a");
    assert!(
        signals_in(&acts).iter().any(|s| s.1 == KILL),
        "after a second SIGTERM a late process gets SIGKILL at once: {acts:?}"
    );
    assert_eq!(exit_in(&acts), Some(0));
}

// ===== --once ==========================================================================

#[test]
fn once_mode_runs_timer_and_cron_tasks_once_now() {
    let mut h = Harness::build(
        Globals::default(),
        once_mode(),
        vec![timer("t", secs(10)), cron("c", "*/5 * * * *"), task("o")],
    );
    h.script("t", Script::exits(secs(15), 0));
    h.script("c", Script::exits(secs(20), 0));
    h.script("o", Script::exits(secs(1), 0));
    h.start();
    assert_eq!(h.spawn_order(), ["t", "c", "o"]);
    assert_eq!(h.deadline(), None, "no schedule in --once mode");
    h.step(secs(3600));
    assert_eq!(h.spawn_order().len(), 3);
    assert_eq!(h.exit_at(), Some((secs(20), 0)));
}

#[test]
fn once_mode_keeps_timeout_and_retries_and_exits_3() {
    let t = TaskSpec {
        timeout: Some(secs(5)),
        stop_time: Some(secs(1)),
        ..timer("t", secs(10))
    };
    let c = retrying(cron("c", "@daily"), 2);
    let d = TaskSpec {
        enabled: false,
        ..task("d")
    };
    let mut h = Harness::build(Globals::default(), once_mode(), vec![t, c, d]);
    h.script("t", Script::forever());
    h.script("c", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(3600));
    assert_eq!(h.signals("t"), [(secs(5), TERM), (secs(6), KILL)]);
    assert_eq!(h.spawn_times("c"), [0, 2].map(secs));
    assert!(h.spawn_times("d").is_empty());
    assert_eq!(h.exit_at(), Some((secs(6), 3)), "{}", h.job_log());
    assert_eq!(h.state("t"), TaskState::Timeout);
    assert_eq!(h.state("c"), TaskState::Failed);
}

#[test]
fn exit_when_done_never_exits_with_a_periodic_task_and_says_so() {
    let mut h = Harness::build(Globals::default(), batch(), vec![timer("t", secs(10))]);
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    assert_eq!(
        h.event_times("t", |e| *e == TaskEvent::PeriodicNeverDone)
            .len(),
        1
    );
    h.step(secs(1000));
    assert_eq!(h.exit_at(), None);
    assert_eq!(h.spawn_times("t").len(), 101);
}

// ===== states ==========================================================================

#[derive(Debug, Clone, Copy)]
enum Do {
    Start,
    /// The pending spawn of this task succeeds.
    Answer(&'static str),
    /// The live process of this task exits with a code.
    Exit(&'static str, i32),
    /// The live process of this task is killed by a signal.
    Killed(&'static str, i32),
    Step(Duration),
    Shutdown,
}

struct Lifecycle {
    name: &'static str,
    max_parallel: Option<usize>,
    tasks: Vec<TaskSpec>,
    steps: Vec<(Do, TaskState)>,
}

#[test]
fn task_state_transitions() {
    use TaskState::*;
    let cases = vec![
        Lifecycle {
            name: "one-shot: slot, retry, timeout",
            max_parallel: Some(1),
            tasks: vec![
                task("blocker"),
                TaskSpec {
                    timeout: Some(secs(10)),
                    stop_time: Some(secs(5)),
                    ..retrying(task("t"), 2)
                },
            ],
            steps: vec![
                (Do::Start, Waiting),
                (Do::Answer("blocker"), Waiting),
                (Do::Exit("blocker", 0), Starting),
                (Do::Answer("t"), Running),
                (Do::Exit("t", 1), Restarting),
                (Do::Step(ms(999)), Restarting),
                (Do::Step(ms(1)), Starting),
                (Do::Answer("t"), Running),
                (Do::Step(secs(10)), Stopping),
                (Do::Step(secs(5) - ms(1)), Stopping),
                (Do::Step(ms(1)), Timeout), // SIGKILL, reaped at once
            ],
        },
        Lifecycle {
            name: "one-shot: success",
            max_parallel: None,
            tasks: vec![task("t")],
            steps: vec![
                (Do::Start, Starting),
                (Do::Answer("t"), Running),
                (Do::Exit("t", 0), Success),
                (Do::Step(secs(3600)), Success),
            ],
        },
        Lifecycle {
            name: "one-shot: failure, killed by a signal",
            max_parallel: None,
            tasks: vec![task("t")],
            steps: vec![
                (Do::Start, Starting),
                (Do::Answer("t"), Running),
                (Do::Killed("t", libc::SIGSEGV), Failed),
            ],
        },
        Lifecycle {
            name: "timer: runs, failure, shutdown",
            max_parallel: None,
            tasks: vec![timer("t", secs(10))],
            steps: vec![
                (Do::Start, Starting),
                (Do::Answer("t"), Running),
                (Do::Exit("t", 0), Scheduled),
                (Do::Step(secs(10)), Starting),
                (Do::Answer("t"), Running),
                (Do::Exit("t", 1), Scheduled),
                (Do::Step(secs(10)), Starting),
                (Do::Answer("t"), Running),
                (Do::Shutdown, Stopping),
                (Do::Killed("t", TERM), Stopped),
            ],
        },
        Lifecycle {
            name: "disabled",
            max_parallel: None,
            tasks: vec![TaskSpec {
                enabled: false,
                ..task("t")
            }],
            steps: vec![(Do::Start, Stopped), (Do::Step(secs(60)), Stopped)],
        },
    ];
    for case in cases {
        let g = Globals {
            max_parallel: case.max_parallel,
            ..Globals::default()
        };
        let enabled = case.tasks.iter().all(|t| t.enabled);
        let mut h = Harness::build(g, Mode::default(), case.tasks);
        h.auto_spawn = false;
        let first = if enabled { Pending } else { Stopped };
        assert_eq!(h.state("t"), first, "{}: before Start", case.name);
        for (i, (step, want)) in case.steps.iter().enumerate() {
            match *step {
                Do::Start => drop(h.start()),
                Do::Answer(n) => drop(h.answer(n)),
                Do::Exit(n, c) => drop(h.exit(n, c)),
                Do::Killed(n, s) => drop(h.killed(n, s)),
                Do::Step(d) => h.step(d),
                Do::Shutdown => drop(h.shutdown()),
            }
            assert_eq!(
                h.state("t"),
                *want,
                "{}: after step {i} ({step:?})\n{}",
                case.name,
                h.job_log()
            );
        }
    }
}

#[test]
fn views_show_the_pid_of_the_running_process() {
    let mut h = Harness::new(vec![task("a")]);
    h.start();
    let v = h.view("a");
    assert_eq!(v.pid, Some(1000));
    h.shutdown();
    assert_eq!(h.view("a").pid, Some(1000), "still there while stopping");
}

#[test]
fn each_scheduled_run_starts_its_backoff_afresh() {
    // A periodic task whose every attempt fails at once: every run retries after 1 s then
    // 2 s, never 4 s and 8 s carried over from the previous run.
    let t = TaskSpec {
        restart_delay: secs(1),
        ..retrying(timer("p", secs(100)), 3)
    };
    let mut h = Harness::new(vec![t]);
    h.script("p", Script::exits(Duration::ZERO, 1));
    h.start();
    h.step(secs(250));
    assert_eq!(
        h.spawn_times("p"),
        [0, 1, 3, 100, 101, 103, 200, 201, 203].map(secs),
        "{}",
        h.job_log()
    );
}

impl Harness {
    /// The main process of `task` exits with `code` now, leaving its group alive.
    fn leader_exits(&mut self, task: &str, code: i32) -> Vec<Action> {
        let run = self.run_of(task);
        self.pump(Some(Input::LeaderExited {
            run,
            status: ExitStatus::Code(code),
        }))
    }
}

#[test]
fn leftovers_of_a_main_process_get_the_stop_signal_then_sigkill() {
    let g = Globals {
        watchdog_timeout: secs(5),
        ..Globals::default()
    };
    let mut h = Harness::build(g, batch(), vec![task("a")]);
    h.script("a", Script::forever());
    h.start();
    h.step(secs(2));
    let acts = h.leader_exits("a", 0);
    assert_eq!(
        signals_in(&acts).len(),
        1,
        "stop signal to the group at once"
    );
    assert_eq!(h.state("a"), TaskState::Stopping);
    h.step(secs(10));
    assert_eq!(h.signals("a"), [(secs(2), TERM), (secs(7), KILL)]);
    // The run's result is the main process's exit code, not the leftovers' SIGKILL.
    assert_eq!(h.stats("a").last_end, Some(ProcessEnd::Exited(0)));
    assert_eq!(h.state("a"), TaskState::Success);
    assert_eq!(h.exit_at(), Some((secs(7), 0)));
}

#[test]
fn leftovers_that_obey_end_the_run_with_the_main_process_result() {
    let mut h = Harness::build(Globals::default(), batch(), vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(3));
    h.leader_exits("a", 4);
    h.step(secs(5));
    assert_eq!(h.signals("a"), [(secs(3), TERM)]);
    assert_eq!(h.stats("a").last_end, Some(ProcessEnd::Exited(4)));
    assert_eq!(h.state("a"), TaskState::Failed);
    assert_eq!(h.exit_at(), Some((secs(4), 3)));
}

#[test]
fn leader_exit_during_shutdown_waits_for_the_group_without_a_second_signal() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(1)));
    h.start();
    h.step(secs(1));
    h.shutdown();
    let acts = h.leader_exits("a", 143);
    assert!(
        signals_in(&acts).is_empty(),
        "already stopping: no new signal"
    );
    assert!(exit_in(&acts).is_none(), "the group is still alive");
    h.step(secs(5));
    assert_eq!(h.signals("a"), [(secs(1), TERM)]);
    assert_eq!(
        h.stats("a").last_end,
        Some(ProcessEnd::Stopped(StopReason::Shutdown))
    );
    assert_eq!(h.exit_at(), Some((secs(2), 0)));
}

// ----- reload ------------------------------------------------------------------------------

impl Harness {
    fn reload(&mut self, globals: Globals, tasks: Vec<TaskSpec>) -> Vec<Action> {
        let spec = Spec {
            source: PathBuf::from("/tmp/scripts_config.json"),
            version: None,
            globals,
            tasks,
            warnings: Vec::new(),
        };
        self.pump(Some(Input::Reload {
            spec: Arc::new(spec),
        }))
    }

    fn names(&self) -> Vec<String> {
        self.core.views().into_iter().map(|v| v.name).collect()
    }
}

fn shell(t: TaskSpec, cmd: &str) -> TaskSpec {
    TaskSpec {
        command: CommandSpec::Shell(cmd.into()),
        ..t
    }
}

#[test]
fn reload_keeps_unchanged_tasks_untouched() {
    let mut h = Harness::new(vec![task("a"), timer("t", secs(10))]);
    h.script("t", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(3));
    let acts = h.reload(
        Globals::default(),
        vec![
            TaskSpec {
                description: "new words".into(),
                ..task("a")
            },
            timer("t", secs(10)),
        ],
    );
    assert!(
        signals_in(&acts).is_empty() && spawns_in(&acts) == 0,
        "{acts:?}"
    );
    h.step(secs(20));
    // The timer kept its rhythm (0, 10, 20), `a` was never restarted.
    assert_eq!(h.spawn_times("t"), [0, 10, 20].map(secs));
    assert_eq!(h.spawn_times("a"), [secs(0)]);
    assert!(h.signals("a").is_empty());
    assert_eq!(
        h.reloads(),
        [ReloadSummary {
            kept: 2,
            ..ReloadSummary::default()
        }]
    );
}

#[test]
fn reload_restarts_a_changed_task_after_its_old_run_has_stopped() {
    let g = Globals {
        watchdog_timeout: secs(5),
        ..Globals::default()
    };
    let mut h = Harness::build(g.clone(), Mode::default(), vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(secs(1));
    h.reload(g, vec![shell(task("a"), "./new.sh")]);
    assert_eq!(h.state("a"), TaskState::Stopping);
    h.step(secs(5));
    assert_eq!(h.signals("a"), [(secs(1), TERM)]);
    // New process at once after the old one ended, with the new command.
    assert_eq!(h.spawn_times("a"), [secs(0), secs(3)]);
    let last_cmd = h
        .outs()
        .filter_map(|(_, a)| match a {
            Action::Spawn { task, .. } => Some(task.command.display()),
            _ => None,
        })
        .last();
    assert_eq!(last_cmd.as_deref(), Some("./new.sh"));
}

#[test]
fn reload_of_a_task_stopping_for_its_timeout_starts_the_new_settings_after_it() {
    // The run times out at 1 s and is stopping (it takes 2 s to obey) when a reload
    // changes the task: the run ends as timed out, not as stopped by the reload, and the
    // new settings must still take over then; no retry with the old ones.
    let g = Globals {
        watchdog_timeout: secs(5),
        ..Globals::default()
    };
    let old = TaskSpec {
        timeout: Some(secs(1)),
        on_fail: OnFail::Restart,
        times: 3,
        ..task("a")
    };
    let mut h = Harness::build(g.clone(), Mode::default(), vec![old.clone()]);
    h.script("a", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(ms(1500));
    assert_eq!(h.state("a"), TaskState::Stopping);
    h.reload(g, vec![shell(old, "./new.sh")]);
    h.step(secs(5));
    // Old run: 0 -> timeout at 1 s -> gone at 3 s; the new command starts at once.
    assert_eq!(
        h.spawn_times("a")[..2],
        [secs(0), secs(3)],
        "{}",
        h.job_log()
    );
    let cmds: Vec<String> = h
        .outs()
        .filter_map(|(_, a)| match a {
            Action::Spawn { task, .. } => Some(task.command.display()),
            _ => None,
        })
        .collect();
    assert_eq!(cmds[1], "./new.sh", "{cmds:?}");
}

#[test]
fn reload_stops_a_removed_task_with_the_watchdog_then_forgets_it() {
    let g = Globals {
        watchdog_timeout: secs(4),
        ..Globals::default()
    };
    let mut h = Harness::build(g.clone(), Mode::default(), vec![task("a"), task("gone")]);
    h.script("gone", Script::forever());
    h.start();
    h.step(secs(1));
    h.reload(g, vec![task("a")]);
    assert_eq!(h.names(), ["a", "gone"], "still shown while stopping");
    h.step(secs(10));
    assert_eq!(h.signals("gone"), [(secs(1), TERM), (secs(5), KILL)]);
    assert_eq!(h.names(), ["a"], "forgotten once its process is gone");
}

#[test]
fn reload_of_only_the_schedule_keeps_the_running_run() {
    let mut h = Harness::new(vec![timer("t", secs(10))]);
    h.script("t", Script::exits(secs(6), 0));
    h.start();
    h.step(secs(2));
    let acts = h.reload(Globals::default(), vec![timer("t", secs(30))]);
    assert!(
        signals_in(&acts).is_empty(),
        "no signal for a schedule change"
    );
    h.step(secs(60));
    // Runs at 0; the new period counts from that last start: 30, 60.
    assert_eq!(h.spawn_times("t"), [0, 30, 60].map(secs));
    assert_eq!(h.stats("t").last_outcome, Some(Outcome::Success));
}

#[test]
fn reload_adds_tasks_per_their_schedule_and_disables_and_reenables() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(ms(100)));
    h.start();
    h.step(secs(1));
    h.reload(
        Globals::default(),
        vec![
            TaskSpec {
                enabled: false,
                ..task("a")
            },
            timer("new", secs(5)),
        ],
    );
    h.step(secs(1));
    assert_eq!(h.state("a"), TaskState::Stopped);
    assert_eq!(h.spawn_times("new"), [secs(1)], "a new timer runs at once");
    h.reload(Globals::default(), vec![task("a"), timer("new", secs(5))]);
    h.step(ms(1));
    assert_eq!(
        h.spawn_times("a"),
        [secs(0), secs(2)],
        "re-enabled: starts again"
    );
    assert_eq!(
        h.spawn_times("new"),
        [secs(1)],
        "the kept timer is not restarted"
    );
}

#[test]
fn reload_reenabled_while_still_stopping_starts_after_the_stop() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(secs(1));
    let off = TaskSpec {
        enabled: false,
        ..task("a")
    };
    h.reload(Globals::default(), vec![off]);
    h.step(ms(100));
    assert_eq!(h.state("a"), TaskState::Stopping);
    h.reload(Globals::default(), vec![task("a")]);
    h.step(secs(5));
    // The old process ends at 3 s (2 s after its SIGTERM); the one-shot starts right then,
    // not "skipped" as an overlap while the old one was stopping.
    assert_eq!(h.spawn_times("a"), [secs(0), secs(3)]);
    assert_eq!(h.signals("a"), [(secs(1), TERM)]);
    assert_eq!(h.state("a"), TaskState::Running);
    assert!(
        h.event_times("a", |e| *e == TaskEvent::OverlapSkipped)
            .is_empty(),
        "{}",
        h.job_log()
    );
}

#[test]
fn reload_removed_then_added_back_while_stopping_starts_after_the_stop() {
    let mut h = Harness::new(vec![task("a")]);
    h.script("a", Script::forever().obeys_stop_after(secs(2)));
    h.start();
    h.step(secs(1));
    h.reload(Globals::default(), vec![]);
    h.step(ms(100));
    assert_eq!(h.names(), ["a"], "still shown while stopping");
    h.reload(Globals::default(), vec![task("a")]);
    assert_eq!(
        h.names(),
        ["a"],
        "one task, not the old and the new side by side"
    );
    assert_eq!(h.state("a"), TaskState::Stopping);
    h.step(secs(5));
    // The new instance waits for the old process to end (3 s): never two at once.
    assert_eq!(h.spawn_times("a"), [secs(0), secs(3)]);
    assert_eq!(h.max_live, 1);
    assert_eq!(h.state("a"), TaskState::Running);
    assert!(
        h.reloads().contains(&ReloadSummary {
            added: vec!["a".into()],
            ..ReloadSummary::default()
        }),
        "{}",
        h.job_log()
    );
}

/// Instances `name:0`..`name:n-1` of a `numprocs` program, as validate expands them.
fn instances(name: &str, n: u32) -> Vec<TaskSpec> {
    (0..n)
        .map(|i| {
            let mut t = task(name);
            t.name = format!("{name}:{i}");
            t.instance = Some(i);
            t.env.insert("BANSURI_INSTANCE".into(), i.to_string());
            t
        })
        .collect()
}

#[test]
fn reload_adding_numprocs_keeps_the_running_task_as_instance_0() {
    let mut h = Harness::new(vec![task("w")]);
    h.script("w", Script::forever().obeys_stop_after(ms(100)));
    h.script("w:1", Script::forever().obeys_stop_after(ms(100)));
    h.script("w:2", Script::forever().obeys_stop_after(ms(100)));
    h.start();
    h.step(secs(1));
    let pid = h.view("w").pid.expect("w runs");
    let acts = h.reload(Globals::default(), instances("w", 3));
    assert!(signals_in(&acts).is_empty(), "nothing stopped: {acts:?}");
    h.step(secs(1));
    assert_eq!(h.names(), ["w:0", "w:1", "w:2"]);
    assert!(h.spawn_times("w:0").is_empty(), "w:0 is the running w");
    assert_eq!(h.spawn_times("w:1"), [secs(1)]);
    assert_eq!(h.spawn_times("w:2"), [secs(1)]);
    let w0 = h.view("w:0");
    assert_eq!((w0.state, w0.pid), (TaskState::Running, Some(pid)));
    assert_eq!(w0.stats.runs, 1, "its counters are kept");
    let log = h.job_log();
    assert_eq!(
        h.reloads(),
        [ReloadSummary {
            added: vec!["w:1".into(), "w:2".into()],
            kept: 1,
            ..ReloadSummary::default()
        }],
        "{log}"
    );
    assert_eq!(
        h.event_times("w:0", |e| *e
            == TaskEvent::TakesOver {
                was: "w".into(),
                same_process: true
            })
        .len(),
        1,
        "{log}"
    );

    // And back: w:0 is `w` again, w:1 and w:2 are stopped.
    h.reload(Globals::default(), vec![task("w")]);
    h.step(secs(1));
    assert_eq!(h.names(), ["w"]);
    assert_eq!(h.view("w").pid, Some(pid));
    assert!(h.signals("w").is_empty(), "the first process never stopped");
    assert_eq!(h.signals("w:1"), [(secs(2), TERM)]);
    assert_eq!(h.signals("w:2"), [(secs(2), TERM)]);
    assert_eq!(h.spawn_times("w"), [secs(0)]);
    assert!(
        h.reloads().contains(&ReloadSummary {
            removed: vec!["w:1".into(), "w:2".into()],
            kept: 1,
            ..ReloadSummary::default()
        }),
        "{}",
        h.job_log()
    );

    // With other settings changed too, the renamed task restarts with them.
    h.reload(Globals::default(), {
        let mut v = instances("w", 2);
        v[0].command = CommandSpec::Shell("./new.sh".into());
        v[1].command = CommandSpec::Shell("./new.sh".into());
        v
    });
    h.step(secs(1));
    assert_eq!(h.signals("w"), [(secs(3), TERM)]);
    assert_eq!(h.spawn_times("w:0"), [ms(3100)]);
    assert!(
        h.reloads().contains(&ReloadSummary {
            added: vec!["w:1".into()],
            changed: vec!["w:0".into()],
            ..ReloadSummary::default()
        }),
        "{}",
        h.job_log()
    );
}

#[test]
fn reload_of_a_changed_task_in_backoff_restarts_at_once() {
    let mut h = Harness::new(vec![TaskSpec {
        restart_delay: secs(30),
        ..retrying(task("a"), 5)
    }]);
    h.script("a", Script::exits(secs(1), 1));
    h.start();
    h.step(secs(5));
    assert_eq!(h.state("a"), TaskState::Restarting);
    h.reload(
        Globals::default(),
        vec![retrying(shell(task("a"), "./fixed.sh"), 5)],
    );
    assert_eq!(h.spawn_times("a"), [secs(0), secs(5)]);
}

#[test]
fn reload_applies_max_parallel_and_watchdog_live() {
    let g = Globals {
        max_parallel: Some(1),
        ..Globals::default()
    };
    let mut h = Harness::build(g, Mode::default(), vec![task("a"), task("b"), task("c")]);
    h.script("a", Script::forever());
    h.script("b", Script::forever());
    h.script("c", Script::forever());
    h.start();
    assert_eq!(
        h.core
            .views()
            .iter()
            .filter(|v| v.state == TaskState::Waiting)
            .count(),
        2
    );
    let g = Globals {
        max_parallel: Some(3),
        watchdog_timeout: secs(2),
        ..Globals::default()
    };
    h.reload(g, vec![task("a"), task("b"), task("c")]);
    assert_eq!(h.spawn_times("b"), [secs(0)], "freed slots used at once");
    h.step(secs(1));
    h.shutdown();
    h.step(secs(5));
    assert_eq!(
        h.signals("c"),
        [(secs(1), TERM), (secs(3), KILL)],
        "new watchdog"
    );
}

#[test]
fn shorthand_identity_is_its_command() {
    let short = |cmd: &str, name: &str| TaskSpec {
        shorthand: true,
        ..shell(task(name), cmd)
    };
    let mut h = Harness::new(vec![short("python a.py", "a")]);
    h.script("a", Script::forever().obeys_stop_after(ms(10)));
    h.start();
    h.step(secs(1));
    // Same command: kept. Different command under the same derived name: replaced.
    let acts = h.reload(Globals::default(), vec![short("python a.py", "a")]);
    assert!(signals_in(&acts).is_empty());
    h.reload(Globals::default(), vec![short("python a.py --fast", "a")]);
    h.step(secs(1));
    assert!(
        h.reloads().contains(&ReloadSummary {
            added: vec!["a".into()],
            removed: vec!["a".into()],
            ..ReloadSummary::default()
        }),
        "{}",
        h.job_log()
    );
    assert_eq!(h.spawn_times("a").len(), 2);
}

mod program;
mod progress;

#[test]
fn a_wall_clock_jump_forward_fires_a_missed_cron_match_once_at_once() {
    let mut h = Harness::new(vec![cron("daily", "0 3 * * *")]);
    h.script("daily", Script::exits(secs(1), 0));
    h.start();
    h.step(secs(10));
    // The wall clock jumps 20 hours ahead (past 03:00) while the monotonic clock does not.
    h.jump_wall(chrono::Duration::hours(20));
    h.pump(Some(Input::ClockChanged));
    h.step(secs(5));
    assert_eq!(h.spawn_times("daily"), [secs(10)], "fired at once, once");
    assert!(h
        .master_events()
        .iter()
        .any(|(_, e)| matches!(e, MasterEvent::ClockChanged { .. })));
}

/// A task's displayed state follows from its runs, its lifecycle and (when free) its
/// schedule and last outcome.
#[test]
fn task_state_derives_from_the_lifecycle() {
    // (`Lifecycle` in this file is a test scenario's.)
    use super::Lifecycle as Life;
    let fatal = FatalWhy {
        failed_starts: 2,
        start_time: secs(1),
        start_retries: 1,
        last: ProcessEnd::Exited(1),
    };
    let skipped = DepFailure::Disabled("d".into());
    let retry = Retry {
        at: Mono(secs(5)),
        attempt: 2,
    };
    let once_done = Sched::Once { fired: true };
    let timer = Sched::Timer {
        anchor: Mono::ZERO,
        period: secs(10),
        next: Mono(secs(10)),
    };
    let cases = [
        (
            Life::Idle,
            Sched::Once { fired: false },
            None,
            TaskState::Pending,
        ),
        (Life::Idle, timer.clone(), None, TaskState::Scheduled),
        (
            Life::Idle,
            once_done.clone(),
            Some(Outcome::Success),
            TaskState::Success,
        ),
        (
            Life::Idle,
            once_done.clone(),
            Some(Outcome::Failed),
            TaskState::Failed,
        ),
        (Life::Idle, Sched::Off, None, TaskState::Stopped),
        (
            Life::WaitingForDeps,
            once_done.clone(),
            None,
            TaskState::Waiting,
        ),
        (
            Life::Retrying(retry),
            once_done.clone(),
            None,
            TaskState::Restarting,
        ),
        (Life::Held, timer.clone(), None, TaskState::Stopped),
        (Life::RestartAfterStop, Sched::Off, None, TaskState::Stopped),
        (
            Life::Fatal(fatal),
            Sched::Off,
            Some(Outcome::Fatal),
            TaskState::Fatal,
        ),
        (
            Life::Skipped(skipped.clone()),
            once_done,
            Some(Outcome::Skipped),
            TaskState::Skipped,
        ),
        // A periodic task skipped once is still SCHEDULED: the next tick tries again.
        (
            Life::Skipped(skipped),
            timer,
            Some(Outcome::Skipped),
            TaskState::Scheduled,
        ),
    ];
    for (life, sched, outcome, want) in cases {
        let mut t = Task::new(Arc::new(task("t")));
        t.life = life.clone();
        t.sched = sched;
        t.stats.last_outcome = outcome;
        assert_eq!(t.state(), want, "{life:?}");
        let has_reason = matches!(life, Life::Fatal(_) | Life::Skipped(_));
        assert_eq!(t.reason().is_some(), has_reason, "{life:?}");
    }
}
