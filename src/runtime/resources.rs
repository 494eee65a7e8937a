//! The runtime's side of allocation-aware scheduling (issue 17): what the node has, read
//! once at start-up and told to the core; the job's end told to the core; runs over
//! their `mem` told to the core; `scontrol requeue` when the core asks for it.
//!
//! The rules (what the inventory is, which runs start, what a grant binds) are the pure
//! `crate::resources` module's and the core's; this file only reads the facts, logs and
//! feeds inputs. Must not: decide which run starts or what a policy does.

use std::collections::HashSet;

use super::*;
use crate::resources::{Declared, Inputs, Inventory};

/// What the runtime keeps about the node's resources.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The node's facts as read at start-up (kept for a reload that changes `resources`).
    inputs: Option<Inputs>,
    /// What there is; `None` when it could not be read and no task asks for anything.
    pub(super) inventory: Option<Inventory>,
    /// Runs already told to be over their `mem` (once per run).
    mem_told: HashSet<RunId>,
    /// Some task of the config in effect has a `mem`: samples are compared with it.
    watch_mem: bool,
}

/// Why the inventory could not be made (a start-up error when the config uses requests
/// or a `resources` block).
#[derive(Debug)]
pub enum ResourcesError {
    /// The node's facts could not be read.
    Read(crate::resources::ReadError),
    /// The facts (or the `resources` block) give no inventory.
    Inventory(crate::resources::InventoryError),
}

impl std::fmt::Display for ResourcesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourcesError::Read(e) => write!(f, "cannot tell what this node has: {e}"),
            ResourcesError::Inventory(e) => write!(f, "cannot tell what this node has: {e}"),
        }
    }
}

impl std::error::Error for ResourcesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResourcesError::Read(e) => Some(e),
            ResourcesError::Inventory(e) => Some(e),
        }
    }
}

/// Whether `spec` uses resources: a task with a request, or a `resources` block. Only
/// then is an unreadable inventory fatal (a config without them starts as it always
/// did, whatever odd variables the node has).
pub(super) fn uses_resources(spec: &Spec) -> bool {
    spec.globals.resources.is_some() || spec.tasks.iter().any(|t| t.needs.request.is_some())
}

/// Whether some task of `spec` has a `mem` to compare samples with.
fn watches_mem(spec: &Spec) -> bool {
    spec.tasks
        .iter()
        .any(|t| t.needs.request.is_some_and(|r| r.mem.is_some()))
}

/// The inventory of `inputs` with `declared` as the `resources` block.
fn inventory_of(inputs: &Inputs, declared: Option<&Declared>) -> Result<Inventory, ResourcesError> {
    let mut inputs = inputs.clone();
    inputs.declared = declared.cloned();
    Inventory::from_inputs(&inputs).map_err(ResourcesError::Inventory)
}

impl State {
    /// Read the node's facts once and make the inventory of `spec`. An error is returned
    /// only when `spec` uses resources; otherwise it is kept as a warning line (the
    /// second value) and there is no inventory.
    pub(super) fn read(spec: &Spec) -> Result<(State, Option<String>), ResourcesError> {
        let made = crate::resources::read_inputs()
            .map_err(ResourcesError::Read)
            .and_then(|inputs| {
                let inv = inventory_of(&inputs, spec.globals.resources.as_ref())?;
                Ok((inputs, inv))
            });
        match made {
            Ok((inputs, inventory)) => Ok((
                State {
                    inputs: Some(inputs),
                    inventory: Some(inventory),
                    mem_told: HashSet::new(),
                    watch_mem: watches_mem(spec),
                },
                None,
            )),
            Err(e) if uses_resources(spec) => Err(e),
            Err(e) => Ok((
                State::default(),
                Some(format!("{e} (no task asks for any)")),
            )),
        }
    }

    /// The inventory with a reloaded `resources` block: `Ok(None)` when nothing changed
    /// (or nothing was ever read), the new one when it changed.
    fn reloaded(&self, declared: Option<&Declared>) -> Result<Option<Inventory>, ResourcesError> {
        let Some(inputs) = &self.inputs else {
            return Ok(None);
        };
        let inv = inventory_of(inputs, declared)?;
        Ok(Some(inv).filter(|i| Some(i) != self.inventory.as_ref()))
    }

    /// Forget what was told about a run that is over.
    pub(super) fn forget_run(&mut self, run: RunId) {
        self.mem_told.remove(&run);
    }
}

/// The runs over their `mem`: each live run's task's `mem` (`live`: run and limit)
/// against its sampled group RSS (`rss_of`), runs already told left out. Pure: the
/// sample's figures come in.
pub(super) fn over_mem(
    live: impl Iterator<Item = (RunId, u64)>,
    rss_of: impl Fn(RunId) -> Option<u64>,
    told: &HashSet<RunId>,
) -> Vec<(RunId, u64)> {
    live.filter(|(run, _)| !told.contains(run))
        .filter_map(|(run, mem)| {
            let rss = rss_of(run)?;
            (rss > mem).then_some((run, rss))
        })
        .collect()
}

/// The job log's line for a requeue's result.
pub(super) fn requeue_words(
    job: Option<&str>,
    result: Option<&Result<(), crate::slurm::SlurmError>>,
) -> (Level, String) {
    match (job, result) {
        (None, _) => (
            Level::Warning,
            "requeue_on_end: bansuri is not inside a SLURM job, so there is no job to requeue"
                .to_owned(),
        ),
        (Some(job), Some(Ok(_)) | None) => (
            Level::Info,
            format!("requeue_on_end: job {job} requeued (scontrol requeue {job}); the next run continues with --resume semantics"),
        ),
        (Some(job), Some(Err(e))) => (
            Level::Error,
            format!("requeue_on_end: cannot requeue job {job}: {e} (does the job have --requeue?)"),
        ),
    }
}

impl Runtime {
    /// The log header's line on resources: INFO when `spec` uses them, DEBUG otherwise
    /// (the job log of a config without requests keeps its words).
    pub(super) fn resources_header(&mut self, spec: &Spec, warning: Option<String>) {
        if let Some(w) = warning {
            self.master(Level::Warning, &w);
        }
        if let Some(inv) = &self.resources.inventory {
            let line = format!("Resources: {inv}");
            let level = if uses_resources(spec) {
                Level::Info
            } else {
                Level::Debug
            };
            self.master(level, &line);
        }
    }

    /// The inputs the core hears before `Start`: the inventory and the job's end.
    pub(super) fn resources_inputs(&mut self) -> Vec<Input> {
        let mut inputs = Vec::new();
        if let Some(inv) = &self.resources.inventory {
            inputs.push(Input::Resources {
                inventory: inv.clone(),
            });
        }
        inputs.push(self.job_end_input());
        inputs
    }

    /// The job's end as the core hears it (`None` outside SLURM or without a limit).
    pub(super) fn job_end_input(&self) -> Input {
        let end = self.slurm.as_ref().and_then(|s| s.end_utc()).map(|end| {
            let now = self.now();
            now.mono + (end - now.wall).to_std().unwrap_or_default()
        });
        Input::JobEnd { end }
    }

    /// A reload's `resources` block: a changed inventory is logged and told to the core;
    /// one that cannot be made keeps the one in effect, saying why.
    pub(super) fn reload_resources(&mut self, spec: &Spec) -> Option<Input> {
        self.resources.watch_mem = watches_mem(spec);
        if self.resources.inventory.is_none() && uses_resources(spec) {
            self.master(
                Level::Error,
                "the reloaded config asks for resources, but what this node has could not be read at start-up (see the warning then): requests are not enforced until bansuri is restarted",
            );
        }
        match self.resources.reloaded(spec.globals.resources.as_ref()) {
            Ok(None) => None,
            Ok(Some(inv)) => {
                let line = format!("Resources are now: {inv}");
                self.master(Level::Info, &line);
                self.resources.inventory = Some(inv.clone());
                Some(Input::Resources { inventory: inv })
            }
            Err(e) => {
                let line = format!("{e}; the resources in effect stay");
                self.master(Level::Error, &line);
                None
            }
        }
    }

    /// After a sample: tell the core of each live run over its task's `mem` (once per
    /// run); `groups` is the sample, by process group.
    pub(super) fn check_mem(
        &mut self,
        now: Now,
        groups: &HashMap<u32, crate::sample::GroupSample>,
    ) -> Option<crate::model::Ending> {
        if !self.resources.watch_mem {
            return None;
        }
        let mut pgid = HashMap::new();
        let mut live = Vec::new();
        for st in self.core.status(now) {
            let Some(mem) = st.request.and_then(|r| r.mem) else {
                continue;
            };
            for p in &st.processes {
                pgid.insert(p.run, p.pid);
                live.push((p.run, mem));
            }
        }
        let rss_of = |run| pgid.get(&run).and_then(|g| groups.get(g)).map(|g| g.rss);
        let over = over_mem(live.into_iter(), rss_of, &self.resources.mem_told);
        for (run, rss) in over {
            self.resources.mem_told.insert(run);
            if let Some(ending) = self.feed(Input::MemExceeded { run, rss }) {
                return Some(ending);
            }
        }
        None
    }

    /// `Action::Requeue`: `scontrol requeue` of bansuri's own job, logged.
    pub(super) fn requeue(&mut self) {
        let job = self.slurm.as_ref().map(|s| s.job.id.clone());
        let result = self.slurm.as_ref().map(|s| s.requeue());
        let (level, line) = requeue_words(job.as_deref(), result.as_ref());
        self.master(level, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_over_their_mem_are_told_once() {
        let (ra, rb): (RunId, RunId) = (1, 2);
        let rss = |r: RunId| Some(if r == ra { 101 } else { 500 });
        let live = || [(ra, 100), (rb, 1000)].into_iter();
        let told = HashSet::new();
        assert_eq!(over_mem(live(), rss, &told), [(ra, 101)]);
        let told: HashSet<RunId> = [ra].into();
        assert_eq!(over_mem(live(), rss, &told), [], "told once per run");
        // Exactly at the limit is not over it; an unsampled run is not either.
        let none = HashSet::new();
        assert_eq!(over_mem([(ra, 100)].into_iter(), |_| Some(100), &none), []);
        assert_eq!(over_mem([(ra, 100)].into_iter(), |_| None, &none), []);
    }

    #[test]
    fn requeue_runs_scontrol_and_says_what_happened() {
        assert_eq!(crate::slurm::requeue_args("1234"), ["requeue", "1234"]);
        let (level, line) = requeue_words(Some("1234"), Some(&Ok(())));
        assert_eq!(level, Level::Info);
        assert!(
            line.contains("job 1234 requeued (scontrol requeue 1234)"),
            "{line}"
        );
        let failed = Err(crate::slurm::SlurmError::NotFound {
            program: "scontrol".into(),
        });
        let (level, line) = requeue_words(Some("1234"), Some(&failed));
        assert_eq!(level, Level::Error);
        assert!(
            line.contains("cannot requeue job 1234: `scontrol` not found in PATH")
                && line.contains("--requeue"),
            "{line}"
        );
        let (level, line) = requeue_words(None, None);
        assert_eq!(level, Level::Warning);
        assert!(line.contains("not inside a SLURM job"), "{line}");
    }

    #[test]
    fn a_reloaded_resources_block_changes_the_inventory_only_when_it_differs() {
        let inputs = Inputs {
            affinity: crate::resources::CpuSet::parse("0-3").unwrap(),
            mem_total: 1 << 30,
            ..Inputs::default()
        };
        let inv = inventory_of(&inputs, None).unwrap();
        let st = State {
            inputs: Some(inputs),
            inventory: Some(inv),
            mem_told: HashSet::new(),
            watch_mem: false,
        };
        assert_eq!(st.reloaded(None).unwrap(), None);
        let gpus = Declared {
            gpus: Some(vec!["0".into(), "1".into()]),
            ..Declared::default()
        };
        let new = st.reloaded(Some(&gpus)).unwrap().expect("changed");
        assert_eq!(new.gpus, ["0", "1"]);
        let bad = Declared {
            cpus: Some(crate::resources::DeclaredCpus::Count(99)),
            ..Declared::default()
        };
        let e = st.reloaded(Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("resources.cpus asks for 99 CPUs"), "{e}");
        assert_eq!(State::default().reloaded(Some(&gpus)).unwrap(), None);
    }
}
