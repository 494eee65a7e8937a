//! The runtime's side of SLURM: the job in the log header, KillWait when SIGTERM comes,
//! the `stop_before_end` plan, and stop signals for `srun` tasks.
//!
//! The facts and the arithmetic live in `crate::slurm`; the core only hears
//! [`Input::KillBy`] and [`Input::ShutdownAt`]. Outside SLURM (`self.slurm` is `None`)
//! nothing here runs a command or writes anything above DEBUG.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::StartError;
use super::*;
use crate::slurm::{self as s, END_TIME_REFRESH};
use crate::spec::TaskSpec;
use crate::text::{fmt_dur, fmt_wall, signal_name};

/// How long an srun client's helper process (srun forks one that cancels the step should
/// srun die) may outlive srun before its group is treated as leftovers.
const SRUN_HELPER_GRACE: Duration = Duration::from_secs(1);

/// What the runtime keeps for SLURM besides the session.
#[derive(Debug, Default)]
pub(super) struct State {
    /// `stop_before_end` planned for; `None` before the first plan.
    stop_before_end: Option<Duration>,
    /// When the end time is read again (only while `stop_before_end` is on).
    pub(super) refresh_at: Option<Mono>,
    /// srun clients that have exited while their helper still runs, and since when.
    pub(super) srun_draining: HashMap<RunId, Mono>,
}

/// The monotonic instant at which wall time `at` comes, seen from `now`.
fn mono_at(now: Now, at: DateTime<Utc>) -> Mono {
    now.mono + (at - now.wall).to_std().unwrap_or_default()
}

impl Runtime {
    /// Header lines about the job: who it is, KillWait, whether the stop graces fit.
    pub(super) fn slurm_header(&mut self, spec: &Spec) {
        let Some(session) = &self.slurm else {
            self.master(Level::Debug, "not inside a SLURM job");
            return;
        };
        let mut lines = vec![(Level::Info, session.header())];
        if let Some(e) = session.kill_wait_error() {
            lines.push((
                Level::Warning,
                format!(
                    "cannot read KillWait ({e}): assuming Slurm's default, {}",
                    fmt_dur(s::DEFAULT_KILL_WAIT)
                ),
            ));
        }
        if let Err(e) = &session.end {
            lines.push((
                Level::Warning,
                format!("cannot read the job's end time ({e})"),
            ));
        }
        let longest = spec
            .tasks
            .iter()
            .filter_map(|t| t.stop_time)
            .chain(std::iter::once(spec.globals.watchdog_timeout))
            .max()
            .unwrap_or_default();
        if let Some(note) = s::grace_note(longest, session.kill_wait()) {
            lines.push((Level::Warning, note));
        }
        for (level, line) in lines {
            self.master(level, &line);
        }
    }

    /// Plan (or cancel) the graceful shutdown `stop_before_end` before the job's end.
    /// Nothing happens when the value is the one already planned for.
    pub(super) fn plan_shutdown(
        &mut self,
        stop_before_end: Duration,
    ) -> Option<crate::model::Ending> {
        if self.slurm_state.stop_before_end == Some(stop_before_end) {
            return None;
        }
        let first = self.slurm_state.stop_before_end.is_none();
        self.slurm_state.stop_before_end = Some(stop_before_end);
        if self.slurm.is_none() {
            if !stop_before_end.is_zero() {
                self.master(
                    Level::Debug,
                    "stop_before_end has no effect outside a SLURM job",
                );
            }
            return None;
        }
        if stop_before_end.is_zero() {
            self.slurm_state.refresh_at = None;
            if first {
                return None;
            }
            return self.feed(Input::ShutdownAt {
                at: None,
                why: "stop_before_end is now off".into(),
            });
        }
        self.slurm_state.refresh_at = Some(self.now().mono + END_TIME_REFRESH);
        self.arm_planned_shutdown(stop_before_end)
    }

    fn arm_planned_shutdown(&mut self, stop_before_end: Duration) -> Option<crate::model::Ending> {
        let end = self.slurm.as_ref().and_then(|s| s.end_utc());
        let input = match end {
            Some(end) => Input::ShutdownAt {
                at: Some(s::planned_shutdown(end, stop_before_end)),
                why: format!(
                    "stop_before_end is {} and the job ends at {}",
                    fmt_dur(stop_before_end),
                    fmt_wall(end)
                ),
            },
            None => {
                self.master(
                    Level::Info,
                    "stop_before_end: the job has no known end time (no time limit, or squeue could not tell): no shutdown is planned",
                );
                Input::ShutdownAt {
                    at: None,
                    why: "the job has no known end time".into(),
                }
            }
        };
        self.feed(input)
    }

    /// SIGHUP (`scancel --batch --signal=HUP JOB`): read the end time at once too, when
    /// `stop_before_end` is on.
    pub(super) fn hup_end_time(&mut self) -> Option<crate::model::Ending> {
        if self.slurm_state.refresh_at.is_some() {
            self.refresh_end_time()
        } else {
            None
        }
    }

    /// Read the job's end time again (`scontrol update` can move it); plan again when it
    /// moved.
    pub(super) fn refresh_end_time(&mut self) -> Option<crate::model::Ending> {
        self.slurm_state.refresh_at = None;
        if self.core.shutting_down() {
            return None;
        }
        let Some(session) = &mut self.slurm else {
            return None;
        };
        let changed = session.refresh_end();
        self.slurm_state.refresh_at = Some(self.now().mono + END_TIME_REFRESH);
        if !changed {
            return None;
        }
        let msg = match self.slurm.as_ref().and_then(|s| s.end_utc()) {
            Some(end) => format!("The job's end time is now {}", fmt_wall(end)),
            None => "The job no longer has a known end time".to_owned(),
        };
        self.master(Level::Info, &msg);
        let job_end = self.job_end_input();
        if let Some(ending) = self.feed(job_end) {
            return Some(ending);
        }
        let sbe = self.slurm_state.stop_before_end.unwrap_or_default();
        self.arm_planned_shutdown(sbe)
    }

    /// What SIGTERM or SIGINT means for the core. Under SLURM a SIGTERM first tells the
    /// core by when Slurm's SIGKILL forces bansuri's own ([`Input::KillBy`]); a SIGTERM
    /// during the shutdown is Slurm's too (the time limit after a `--signal` warning), so
    /// it does no more than that, instead of killing everything at once.
    pub(super) fn stop_inputs(&mut self, signal: Signal, arrival: Now) -> Vec<Input> {
        let mut inputs = Vec::new();
        if signal == Signal::SIGTERM {
            if let Some(session) = &mut self.slurm {
                let deadline = session.on_sigterm(arrival.wall);
                // on_sigterm read the end time again: the core hears it (issue 17).
                inputs.push(self.job_end_input());
                if let Some(d) = deadline {
                    inputs.push(Input::KillBy {
                        at: mono_at(arrival, d.at),
                        why: d.why,
                    });
                    if self.core.shutting_down() {
                        self.master(
                            Level::Info,
                            "Received SIGTERM again during the shutdown: under SLURM this only brings bansuri's SIGKILL forward to come before Slurm's (SIGINT kills at once)",
                        );
                        return inputs;
                    }
                }
            }
        }
        inputs.push(Input::Shutdown {
            cause: crate::core::ShutdownCause::Signal(signal as i32),
        });
        inputs
    }

    pub(super) fn feed(&mut self, input: Input) -> Option<crate::model::Ending> {
        let actions = self.core.handle(input, self.now());
        self.apply(actions)
    }

    /// An srun client exited while its process group lives on: that is srun's own helper,
    /// which ends within milliseconds. Wait for it quietly (true), up to
    /// [`SRUN_HELPER_GRACE`]; then the core hears of leftovers as for any task.
    pub(super) fn srun_leader_exited(&mut self, run: RunId) -> bool {
        if !self.runs.get(&run).is_some_and(|r| r.srun) {
            return false;
        }
        let now = self.now().mono;
        self.slurm_state.srun_draining.insert(run, now);
        true
    }

    /// srun runs whose group has outlived srun for longer than its helper would.
    pub(super) fn srun_drain_overdue(&mut self) -> Vec<(RunId, crate::model::ExitStatus)> {
        let now = self.now().mono;
        let overdue: Vec<RunId> = self
            .slurm_state
            .srun_draining
            .iter()
            .filter(|(_, since)| now.since(**since) >= SRUN_HELPER_GRACE)
            .map(|(run, _)| *run)
            .collect();
        overdue
            .into_iter()
            .filter_map(|run| {
                self.slurm_state.srun_draining.remove(&run);
                self.draining.get(&run).map(|r| (run, r.status))
            })
            .collect()
    }

    /// Start a task's process, bound to `grant` (issue 17); an srun task outside SLURM
    /// fails to start, saying why.
    pub(super) fn spawn(
        &self,
        task: &TaskSpec,
        attempt: u32,
        grant: Option<&crate::resources::Grant>,
    ) -> Result<spawn::Child, StartError> {
        if task.srun.is_some() && self.slurm.is_none() {
            return Err(StartError::SrunOutsideSlurm);
        }
        // A task without a request holds a CPU in a job with agents (issue 18) but is not
        // bound: no affinity, no OMP_NUM_THREADS.
        let binding = match (grant, &self.resources.inventory) {
            (Some(grant), Some(inventory)) if task.needs.request.is_some() => {
                Some(spawn::Binding { grant, inventory })
            }
            _ => None,
        };
        spawn::spawn(task, attempt, binding).map_err(StartError::Spawn)
    }

    /// Signal an srun task. srun turns a SIGTERM it receives into a SIGKILL of its step,
    /// so the stop signal goes to the step's tasks through `scancel --signal` instead;
    /// SIGKILL goes to both the step and srun. Before the step exists (srun waiting for
    /// resources) or after it is over, srun itself gets the signal.
    pub(super) fn signal_srun(&mut self, pid: u32, task: &str, signal: i32) {
        let name = signal_name(signal);
        let Some(session) = &mut self.slurm else {
            let _ = spawn::signal_group(pid, signal);
            return;
        };
        let mut lines = Vec::new();
        let mut to_srun = signal == libc::SIGKILL;
        match session.step_of(pid) {
            Ok(Some(step)) => match session.signal_step(&step, signal) {
                Ok(()) => lines.push((
                    Level::Info,
                    format!(
                        "{name} to job step {step} (scancel --signal={})",
                        name.trim_start_matches("SIG")
                    ),
                )),
                Err(e) => {
                    lines.push((
                        Level::Warning,
                        format!("cannot signal job step {step}: {e}; {name} to srun (pid {pid}) instead"),
                    ));
                    to_srun = true;
                }
            },
            Ok(None) => {
                lines.push((
                    Level::Info,
                    format!("srun (pid {pid}) has no job step (not created yet, or over): {name} to srun itself"),
                ));
                to_srun = true;
            }
            Err(e) => {
                lines.push((
                    Level::Warning,
                    format!("cannot look up the job step of srun (pid {pid}): {e}; {name} to srun itself"),
                ));
                to_srun = true;
            }
        }
        if to_srun {
            if let Err(e) = spawn::signal_group(pid, signal) {
                lines.push((
                    Level::Error,
                    format!("cannot signal process group {pid}: {e}"),
                ));
            }
        }
        for (level, line) in lines {
            self.log.event(Utc::now(), Some(task), level, &line);
        }
    }
}
