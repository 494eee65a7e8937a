//! The state file: its schema (versioned), and reading and writing it.
//!
//! `state.json` in the state directory is written by the running bansuri, atomically (a
//! temporary file in the same directory, then `rename`), on every state change (coalesced
//! to at most one write per [`MIN_WRITE_INTERVAL`]) and every [`HEARTBEAT`] (also when no
//! task process runs: the age of the file tells a live bansuri on another node from one
//! that was killed), and a last time when bansuri exits. Everything that shows bansuri's state
//! to a user (`status`, `--json`, the dashboard's `/api/status`) shows this document, so it
//! reads the same on a login node as on the compute node, and after the job has ended.
//!
//! # Schema, version 1
//! Times are RFC 3339 (UTC); durations are seconds (numbers); sizes are bytes. Fields may
//! be added within a version; a reader ignores what it does not know. A field is removed
//! or changes meaning only with a new `version`.
//!
//! | field | meaning |
//! | --- | --- |
//! | `schema` | always `"bansuri-state"` |
//! | `version` | `1` |
//! | `written_at` | when this file was written |
//! | `clock_ticks` | the node's boot clock when written, in the unit of `pid_start` |
//! | `bansuri` | `version`, `pid`, `pid_start`, `host`, `boot_id`, `started_at`, `running` (false once it has exited), `ended_at`, `exit_code` |
//! | `job` | SLURM: `id`, `name`, `nodelist`, `partition`, `cpus_on_node`; `null` outside SLURM |
//! | `config` | `path`, `loaded_at` (the config in effect), `on_disk_differs` (the file on disk is not the config in effect), `invalid` (`{reason, since}` when the file on disk cannot be used) |
//! | `control` | `socket` (path of the control socket, `null` if none), `requests` (the request inbox), `dashboard` (its URL, or `null`) |
//! | `settings` | `check_interval`, `watchdog_timeout`, `sample_interval`, `max_parallel`, `mode` (`service`, `exit-when-done`, `once`), `resume` |
//! | `node` | last sample: `load` (1, 5, 15 min), `mem_total`, `mem_available`, `sampled_at`; `null` when sampling is off |
//! | `resources` | what bansuri packs runs into (issue 17): `found` (the job log header's words), `total`, `in_use` (the live runs' grants), `free`, each `{cpus, gpus, mem}` (mem in bytes); absent when no task asks for resources and the config has no `resources` block |
//! | `tasks` | one entry per task, in config order (below); an array's elements only while they are tasks (waiting to start, running, failed) |
//! | `arrays` | one entry per array task (issue 19): `name`, `elements`, `succeeded` (those not in `tasks`), `held` (left by `--retry-failed`), `parallel`, `skipped` (why its elements are not run), `runs` and `failures` (attempts of the elements not in `tasks`), `slowest` (`{name, seconds}`, at most 5), `failed` (elements that failed finally, not in `tasks`) and `failed_elements` (the first 100 of them: `{name, text}`); absent when there is none |
//!
//! A task: `name`, `description`, `schedule` (in words), `one_shot`, `enabled`, `state`
//! (PENDING, SCHEDULED, WAITING, STARTING, RUNNING, STOPPING, SUCCESS, FAILED, TIMEOUT,
//! RESTARTING, STOPPED, FATAL, SKIPPED), `pid` and `pgid` and `pid_start` and `attempt` of
//! its first live process (`null` when none), `processes` (every live process: `pid`,
//! `pgid`, `pid_start`, `attempt`, `started_at`, `stopping`), `escaped` (process groups that
//! left the task's group and live on, same fields; absent when none), `runs` (attempts
//! started: every process start, retries and `autorestart` restarts included), `failures`
//! (attempts that ended in failure), `starts` (the same number as `runs`; older readers
//! know it by that name), `restarts` (retries started), `last_result` (`success`, `failed`,
//! `timeout`, `stopped`, `fatal`, `skipped`),
//! `last_exit` (`{code}` or `{signal}`, and `text` as in the job log), `started_at` (of the
//! live process), `ended_at` (of the last process), `next_run_at`, `retry_at`,
//! `cpu_percent` and `rss` (last sample, summed over its process groups; `null` when not
//! sampled), `sampled_at` (when that sample was taken), `peak_rss` (largest of the sampled
//! group RSS and the kernel's peak of each ended process), `cpu_time` (seconds: ended processes from wait4, plus the live ones as
//! sampled), `settings_hash` (see `--resume`), `reason` (why it is FATAL or SKIPPED, in
//! words as in the job log, e.g. "dependency `a` failed (exit 1)"; `null` in any other state).
//! Tasks with a resource request (issue 17) also have `request` (`{cpus, gpus, mem}`,
//! `mem` in bytes or `null`), `grants` (what each live run holds, oldest first: `cpus` as
//! a Linux CPU list such as `4-5`, `gpus` as the inventory's IDs, `mem`) and
//! `waiting_for` (why a due run waits, e.g. "needs 4 CPUs, 2 free"); all three are
//! absent for a task without a request, `grants` when nothing is held and
//! `waiting_for` when nothing waits.
//!
//! `pid_start` is the process's start time in clock ticks since boot (field 22 of
//! /proc/PID/stat); with `boot_id` it tells a process of ours from a later process that
//! got the same pid.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The value of `schema`.
pub const SCHEMA: &str = "bansuri-state";
/// The schema version this bansuri writes, and the newest it reads.
pub const VERSION: u32 = 1;
/// State changes closer together than this are written once.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(200);
/// The file is rewritten at least this often, so that `status` can say how fresh it is
/// ("state written 4s ago") and take a state from another node that has not been written
/// for [`STALE_AFTER`] for one of a bansuri that was killed. Every change is written within
/// [`MIN_WRITE_INTERVAL`] anyway; the heartbeat only refreshes `written_at` and the
/// figures sampled more often than this. 10 s, not less: with 500 tasks the document is
/// about 290 KB and a rewrite costs about 2 ms of CPU, and an idle bansuri must stay under
/// 0.05 % of a core (bench/ W3).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A state from another node that says bansuri runs but is older than this is taken for
/// one whose bansuri was killed without a last write (SIGKILL: OOM, KillWait, a node
/// failure): nine heartbeats missed. Not fewer: a shared file system that stalls for a
/// minute (Lustre, NFS under load), an overloaded node and skewed clocks between nodes
/// must not make a running bansuri look dead (its control commands would be refused).
pub const STALE_AFTER: Duration = Duration::from_secs(9 * HEARTBEAT.as_secs());

/// The whole state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// [`VERSION`].
    pub version: u32,
    /// When written.
    pub written_at: DateTime<Utc>,
    /// Boot clock when written (ticks since boot).
    pub clock_ticks: u64,
    /// The bansuri process.
    pub bansuri: BansuriInfo,
    /// The SLURM job, if any.
    pub job: Option<JobInfo>,
    /// The config in effect and the file on disk.
    pub config: ConfigInfo,
    /// How to reach this bansuri.
    pub control: ControlInfo,
    /// Global settings in effect.
    pub settings: SettingsInfo,
    /// The node, as last sampled.
    pub node: Option<NodeInfo>,
    /// What runs are packed into, and how much is held (issue 17; absent when unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesInfo>,
    /// The job's nodes when bansuri uses several (issue 18): this one first, then each
    /// agent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeEntry>,
    /// The tasks, in config order (an array's elements only while they are tasks: those
    /// waiting to start, running, or failed; see `arrays`).
    pub tasks: Vec<TaskEntry>,
    /// The array tasks (issue 19): counts, not one entry per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<ArrayEntry>,
}

/// An array task's counts (issue 19). The elements that are tasks (waiting to start,
/// running, failed, or succeeded since the last input) are in `tasks`, named `name[id]`;
/// `succeeded` counts the others that succeeded. The status file `elements.jsonl` beside
/// the state file has a line per element that ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayEntry {
    /// The array task.
    pub name: String,
    /// Its elements.
    pub elements: u64,
    /// Elements that succeeded and are not in `tasks` (before a `--resume` included).
    pub succeeded: u64,
    /// Elements `--retry-failed` leaves for a later run.
    #[serde(default)]
    pub held: u64,
    /// `parallel`.
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Why its elements are not run (a dependency cannot be met).
    #[serde(default)]
    pub skipped: Option<String>,
    /// Attempts of the elements not in `tasks`.
    #[serde(default)]
    pub runs: u64,
    /// Failed attempts of the elements not in `tasks`.
    #[serde(default)]
    pub failures: u64,
    /// The elements not in `tasks` that ran longest, longest first (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slowest: Vec<SlowElement>,
    /// Elements that failed finally and are not in `tasks`.
    #[serde(default)]
    pub failed: u64,
    /// The first 100 of them by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_elements: Vec<FailedElementEntry>,
}

/// An element that failed (issue 19).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedElementEntry {
    /// `sweep[17]`.
    pub name: String,
    /// How it ended, as in the job log (`exit 1`, `SIGKILL`, `timeout`).
    pub text: String,
}

/// An element that ran long (issue 19).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowElement {
    /// `sweep[17]`.
    pub name: String,
    /// How long its last attempt ran, seconds.
    pub seconds: f64,
}

/// CPUs, GPUs and memory (bytes): a request, or the node's total, use or free.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountsInfo {
    /// CPUs.
    pub cpus: u64,
    /// GPUs.
    pub gpus: u64,
    /// Memory, bytes (of a request: `null` when it asks for none).
    pub mem: Option<u64>,
}

impl AmountsInfo {
    /// The figures of `a` (memory always given).
    pub fn of(a: &crate::resources::Amounts) -> AmountsInfo {
        AmountsInfo {
            cpus: a.cpus,
            gpus: a.gpus,
            mem: Some(a.mem),
        }
    }
}

/// The node's resources as bansuri packs them (issue 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcesInfo {
    /// What bansuri found, in the job log header's words.
    pub found: String,
    /// All there is.
    pub total: AmountsInfo,
    /// Held by live runs.
    pub in_use: AmountsInfo,
    /// Left.
    pub free: AmountsInfo,
}

impl ResourcesInfo {
    /// The entry of `inventory` with `free` of `total` left (as the core's ledger says).
    pub fn held(
        inventory: &crate::resources::Inventory,
        total: &crate::resources::Amounts,
        free: &crate::resources::Amounts,
    ) -> ResourcesInfo {
        ResourcesInfo {
            found: inventory.to_string(),
            total: AmountsInfo::of(total),
            in_use: AmountsInfo::of(&total.minus(free)),
            free: AmountsInfo::of(free),
        }
    }

    /// The entry of `inventory` with `grants` held.
    pub fn new<'a>(
        inventory: &crate::resources::Inventory,
        grants: impl Iterator<Item = &'a crate::resources::Grant>,
    ) -> ResourcesInfo {
        let total = inventory.amounts();
        let in_use = grants.fold(crate::resources::Amounts::default(), |sum, g| {
            sum.plus(&g.amounts())
        });
        ResourcesInfo {
            found: inventory.to_string(),
            total: AmountsInfo::of(&total),
            in_use: AmountsInfo::of(&in_use),
            free: AmountsInfo::of(&total.minus(&in_use)),
        }
    }
}

/// One node of a multi-node job (issue 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its name.
    pub name: String,
    /// `here` (bansuri's own), `starting`, `ready` or `lost`.
    pub state: String,
    /// All it has.
    pub total: AmountsInfo,
    /// Free now.
    pub free: AmountsInfo,
    /// Runs on it now.
    pub runs: usize,
}

/// What one live run holds (issue 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// A Linux CPU list (`4-5`), empty for none.
    pub cpus: String,
    /// GPU IDs as the inventory names them.
    pub gpus: Vec<String>,
    /// Memory, bytes.
    pub mem: Option<u64>,
}

impl GrantInfo {
    /// The entry of `g`.
    pub fn of(g: &crate::resources::Grant) -> GrantInfo {
        GrantInfo {
            cpus: g.cpus.to_string(),
            gpus: g.gpus.clone(),
            mem: g.mem,
        }
    }

    /// `CPUs 4-5, GPU 2` (as `status` shows it: the grant's own words).
    pub fn words(&self) -> String {
        crate::resources::Grant {
            cpus: crate::resources::CpuSet::parse(&self.cpus).unwrap_or_default(),
            gpus: self.gpus.clone(),
            mem: self.mem,
        }
        .to_string()
    }
}

/// The bansuri process that writes the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BansuriInfo {
    /// bansuri's version.
    pub version: String,
    /// Its pid.
    pub pid: u32,
    /// Its start time (ticks since boot).
    pub pid_start: u64,
    /// Host name.
    pub host: String,
    /// Boot id of the host.
    pub boot_id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// False once it has exited.
    pub running: bool,
    /// When it exited.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its exit code, once exited.
    pub exit_code: Option<i32>,
}

/// The SLURM job bansuri runs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// `SLURM_JOB_ID`
    pub id: String,
    /// `SLURM_JOB_NAME`
    pub name: Option<String>,
    /// `SLURM_JOB_NODELIST`
    pub nodelist: Option<String>,
    /// `SLURM_JOB_PARTITION`
    pub partition: Option<String>,
    /// `SLURM_CPUS_ON_NODE`
    pub cpus_on_node: Option<String>,
}

impl JobInfo {
    /// The job bansuri runs in, when inside a SLURM job ([`crate::host::job`]'s rule).
    pub fn from_env() -> Option<JobInfo> {
        crate::host::job().map(JobInfo::from_job)
    }

    /// What the state file records of `job`.
    pub fn from_job(job: &crate::host::JobEnv) -> JobInfo {
        JobInfo {
            id: job.id.clone(),
            name: job.name.clone(),
            nodelist: job.nodelist.clone(),
            partition: job.partition.clone(),
            cpus_on_node: job.cpus_on_node.clone(),
        }
    }
}

/// The config in effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigInfo {
    /// The config file.
    pub path: String,
    /// When the config in effect was loaded.
    pub loaded_at: DateTime<Utc>,
    /// The file on disk is not the config in effect (invalid, or changed and not yet
    /// applied).
    pub on_disk_differs: bool,
    /// Why the file on disk cannot be used, and since when.
    pub invalid: Option<InvalidInfo>,
}

/// An invalid config file on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvalidInfo {
    /// "it has errors", "it is empty", "cannot read it: ...".
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// Where to reach bansuri.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlInfo {
    /// The control socket (this node only).
    pub socket: Option<String>,
    /// The request inbox (any node that sees the directory).
    pub requests: String,
    /// The dashboard's URL.
    pub dashboard: Option<String>,
}

/// Global settings in effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsInfo {
    /// Seconds.
    pub check_interval: f64,
    /// Seconds.
    pub watchdog_timeout: f64,
    /// Seconds; 0 = off.
    pub sample_interval: f64,
    /// Most processes at once.
    pub max_parallel: Option<usize>,
    /// `service`, `exit-when-done` or `once`.
    pub mode: String,
    /// Started with `--resume`.
    pub resume: bool,
}

/// The node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Load averages (1, 5, 15 minutes).
    pub load: [f64; 3],
    /// Bytes.
    pub mem_total: u64,
    /// Bytes.
    pub mem_available: u64,
    /// When sampled.
    pub sampled_at: DateTime<Utc>,
}

/// One task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Schedule in words.
    pub schedule: String,
    /// Runs once (no timer, no cron).
    pub one_shot: bool,
    /// `enabled` in the config.
    pub enabled: bool,
    /// State name.
    pub state: String,
    /// Why it is FATAL or SKIPPED (`null` otherwise; absent in files of older bansuris).
    #[serde(default)]
    pub reason: Option<String>,
    /// First live process.
    pub pid: Option<u32>,
    /// Its process group.
    pub pgid: Option<u32>,
    /// Its start time (ticks since boot).
    pub pid_start: Option<u64>,
    /// Its attempt.
    pub attempt: Option<u32>,
    /// Every live process.
    pub processes: Vec<ProcessEntry>,
    /// Process groups that escaped the task's group (setsid, double fork) and live on:
    /// `pid` is the process found, `pgid` its group, `pid_start` the start of the group's
    /// leader, `started_at` when it was found, `stopping` when its run is over (absent in
    /// files of older bansuris).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escaped: Vec<ProcessEntry>,
    /// Attempts started (the same as `runs`).
    pub starts: u64,
    /// Attempts started: every process start, retries included.
    pub runs: u64,
    /// Attempts that ended in failure.
    pub failures: u64,
    /// Retries started.
    pub restarts: u64,
    /// `success`, `failed`, `timeout`, `stopped`.
    pub last_result: Option<String>,
    /// How the last process ended.
    pub last_exit: Option<LastExit>,
    /// Start of the live process.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the last process.
    pub ended_at: Option<DateTime<Utc>>,
    /// Next scheduled run.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Next retry.
    pub retry_at: Option<DateTime<Utc>>,
    /// Last sample: percent of one core.
    pub cpu_percent: Option<f64>,
    /// Last sample: bytes.
    pub rss: Option<u64>,
    /// When `cpu_percent` and `rss` were sampled (absent in files of older bansuris).
    #[serde(default)]
    pub sampled_at: Option<DateTime<Utc>>,
    /// Bytes.
    pub peak_rss: u64,
    /// Seconds.
    pub cpu_time: f64,
    /// Settings hash.
    pub settings_hash: String,
    /// What each run asks for (issue 17; absent for a task without a request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AmountsInfo>,
    /// What its live runs hold, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantInfo>,
    /// Why a due run waits ("needs 4 CPUs, 2 free").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Durations of its last successful runs, seconds, oldest first: what its expected
    /// runtime is learned from (issue 17; tasks with a resource request only, absent
    /// otherwise and in files of older bansuris). Read back at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_runtimes: Vec<f64>,
}

/// One live process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEntry {
    /// Pid.
    pub pid: u32,
    /// Process group (= pid).
    pub pgid: u32,
    /// Start time (ticks since boot).
    pub pid_start: Option<u64>,
    /// Attempt.
    pub attempt: u32,
    /// Start.
    pub started_at: Option<DateTime<Utc>>,
    /// Being stopped.
    pub stopping: bool,
    /// The node it runs on when not bansuri's own (issue 18): its pid is that node's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    /// Exit code.
    pub code: Option<i32>,
    /// Signal name, when killed by a signal.
    pub signal: Option<String>,
    /// As in the job log: `exit 0`, `SIGKILL`, `timeout 30s`.
    pub text: String,
}

impl StateDoc {
    /// The JSON text (pretty, for people who `cat` it).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The document as compact JSON: what the state file holds (it is rewritten every
    /// few seconds; `bansuri status --json` prints it indented).
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Parse a state file's text, checking schema and version.
    pub fn parse(text: &str) -> Result<StateDoc, StateFileError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(StateFileError::NotJson)?;
        if v.get("schema").and_then(|s| s.as_str()) != Some(SCHEMA) {
            return Err(StateFileError::NotState);
        }
        let version = v.get("version").and_then(|s| s.as_u64()).unwrap_or(0);
        if version > u64::from(VERSION) {
            return Err(StateFileError::Newer { version });
        }
        serde_json::from_value(v).map_err(StateFileError::Schema)
    }

    /// Read and parse the state file at `path`.
    pub fn read(path: &Path) -> Result<StateDoc, StateFileError> {
        let text = std::fs::read_to_string(path).map_err(StateFileError::Io)?;
        StateDoc::parse(&text)
    }

    /// A task by name.
    pub fn task(&self, name: &str) -> Option<&TaskEntry> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// The learned runtimes it keeps, by task name (for `Core::learn_runtimes`); a value
    /// that is no duration (negative, not finite) is left out.
    pub fn recent_runtimes(&self) -> std::collections::HashMap<String, Vec<std::time::Duration>> {
        self.tasks
            .iter()
            .filter(|t| !t.recent_runtimes.is_empty())
            .map(|t| {
                let d = t
                    .recent_runtimes
                    .iter()
                    .filter_map(|s| std::time::Duration::try_from_secs_f64(*s).ok())
                    .collect();
                (t.name.clone(), d)
            })
            .collect()
    }
}

/// Write `bytes` to `path` atomically: a temporary file beside it, then rename. A reader
/// sees the old content or the new, never a mix.
///
/// The temporary file gets a name no one can guess ahead (pid, a counter and the time)
/// and is created with O_CREAT|O_EXCL|O_NOFOLLOW: whatever sits at that name (a symbolic
/// link planted to make bansuri overwrite another file) makes the open fail instead of
/// being followed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tries = 0;
    let (tmp, mut f) = loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}-{nanos:09}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o644)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            // Someone else's file at that name: never ours to touch; take another name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Why bansuri must not trust the existing directory `dir` with its state (owned by
/// another user than bansuri's, or writable by its group or others: whoever can write
/// there can plant a forged state file or a symbolic link where bansuri writes), with the
/// fix. `None` when it does not exist (bansuri creates it, mode 0700) or is fine.
pub fn untrusted_dir(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // As root, the directories above count too: whoever can rename one of them can swap
    // the state directory for a link to anywhere (the rule of the config file).
    if nix::unistd::geteuid().is_root() {
        let parent = std::path::absolute(dir).ok()?.parent()?.to_path_buf();
        if let Err(u) = crate::config::trust::check(&parent) {
            return Some(format!(
                "the state directory {}: {}; {}",
                dir.display(),
                u.why,
                u.help
            ));
        }
    }
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let me = nix::unistd::geteuid().as_raw();
    let fix = format!(
        "fix it with `chown {me} {d} && chmod 700 {d}` (as the owner or root), or remove it (bansuri creates it again, mode 700), or give this config another `state_dir`",
        d = dir.display()
    );
    if meta.file_type().is_symlink() {
        // Only this name is checked; a link would move the check elsewhere.
        let target = std::fs::canonicalize(dir).ok()?;
        return untrusted_dir(&target).map(|why| {
            format!(
                "the state directory {} is a link to {}: {why}",
                dir.display(),
                target.display()
            )
        });
    }
    if !meta.is_dir() {
        return Some(format!(
            "the state directory {} is not a directory; remove it, or give this config another `state_dir`",
            dir.display()
        ));
    }
    if meta.uid() != me {
        return Some(format!(
            "the state directory {} belongs to uid {}, not to bansuri's uid {me}: its owner could plant a forged state file or links where bansuri writes; {fix}",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "the state directory {} is writable by {} (mode {mode:03o}): they could plant a forged state file or links where bansuri writes; {fix}",
            dir.display(),
            if mode & 0o022 == 0o020 {
                "its group"
            } else {
                "others"
            }
        ));
    }
    None
}

/// Why a state file was not read, or not trusted. `Display` completes "the state file
/// ... is not used: ".
#[derive(Debug)]
pub enum StateFileError {
    /// The text is not JSON.
    NotJson(serde_json::Error),
    /// JSON without `"schema": "bansuri-state"`.
    NotState,
    /// Written by a newer bansuri: its schema version.
    Newer {
        /// The file's schema version (over [`VERSION`]).
        version: u64,
    },
    /// JSON of the right schema name that does not follow the schema.
    Schema(serde_json::Error),
    /// The file cannot be opened or read.
    Io(std::io::Error),
    /// A symbolic link (not followed).
    SymbolicLink,
    /// Not a regular file.
    NotRegular,
    /// Owned by another user.
    Owner {
        /// The file's owner.
        uid: u32,
        /// bansuri's effective uid.
        me: u32,
    },
    /// Writable by its group or others.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
}

impl std::fmt::Display for StateFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateFileError::NotJson(e) => write!(f, "it is not JSON ({e})"),
            StateFileError::NotState => write!(
                f,
                "it is not a bansuri state file (no \"schema\": \"{SCHEMA}\")"
            ),
            StateFileError::Newer { version } => write!(
                f,
                "it was written by a newer bansuri (schema version {version}; this one reads up to {VERSION})"
            ),
            StateFileError::Schema(e) => write!(f, "it does not follow the schema ({e})"),
            StateFileError::Io(e) => write!(f, "{e}"),
            StateFileError::SymbolicLink => f.write_str("it is a symbolic link"),
            StateFileError::NotRegular => f.write_str("it is not a regular file"),
            StateFileError::Owner { uid, me } => {
                write!(f, "it belongs to uid {uid}, not to bansuri's uid {me}")
            }
            StateFileError::Writable { mode } => {
                write!(f, "it is writable by others (mode {:03o})", mode & 0o777)
            }
        }
    }
}

impl std::error::Error for StateFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateFileError::NotJson(e) | StateFileError::Schema(e) => Some(e),
            StateFileError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The previous state file at `path`, for the clean-up of stale process groups and
/// `--resume`: only when it is a regular file owned by bansuri's user and not writable by
/// others (checked on the open file, opened without following a link); otherwise why not.
/// `Ok(None)`: there is none.
pub fn read_trusted(path: &Path) -> Result<Option<StateDoc>, StateFileError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(StateFileError::SymbolicLink)
        }
        Err(e) => return Err(StateFileError::Io(e)),
    };
    let meta = f.metadata().map_err(StateFileError::Io)?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(StateFileError::NotRegular);
    }
    if meta.uid() != me {
        return Err(StateFileError::Owner {
            uid: meta.uid(),
            me,
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(StateFileError::Writable { mode: meta.mode() });
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(StateFileError::Io)?;
    StateDoc::parse(&text).map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_doc() -> StateDoc {
        let t: DateTime<Utc> = "2026-01-19T10:00:00Z".parse().expect("time");
        StateDoc {
            schema: SCHEMA.into(),
            version: VERSION,
            written_at: t,
            clock_ticks: 1000,
            bansuri: BansuriInfo {
                version: "0.1.0".into(),
                pid: 42,
                pid_start: 10,
                host: "node1".into(),
                boot_id: "b".into(),
                started_at: t,
                running: true,
                ended_at: None,
                exit_code: None,
            },
            job: None,
            config: ConfigInfo {
                path: "/x/c.json".into(),
                loaded_at: t,
                on_disk_differs: false,
                invalid: None,
            },
            control: ControlInfo {
                socket: Some("/x/.bansuri/control.sock".into()),
                requests: "/x/.bansuri/requests".into(),
                dashboard: None,
            },
            settings: SettingsInfo {
                check_interval: 30.0,
                watchdog_timeout: 120.0,
                sample_interval: 30.0,
                max_parallel: None,
                mode: "service".into(),
                resume: false,
            },
            node: None,
            resources: None,
            nodes: Vec::new(),
            tasks: vec![],
            arrays: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_version_checks() {
        let d = sample_doc();
        let back = StateDoc::parse(&d.to_json()).expect("parses");
        assert_eq!(back, d);
        let newer = d.to_json().replace("\"version\": 1,", "\"version\": 2,");
        let e = StateDoc::parse(&newer).expect_err("newer");
        assert!(matches!(e, StateFileError::Newer { version: 2 }), "{e:?}");
        assert!(
            e.to_string().contains("newer bansuri (schema version 2"),
            "{e}"
        );
        let e = StateDoc::parse("{\"a\": 1}").expect_err("not ours");
        assert!(matches!(e, StateFileError::NotState), "{e:?}");
        assert_eq!(
            e.to_string(),
            "it is not a bansuri state file (no \"schema\": \"bansuri-state\")"
        );
        // Unknown fields (a later minor addition) are ignored.
        let extra = d.to_json().replacen('{', "{\"future_field\": 1,", 1);
        assert_eq!(StateDoc::parse(&extra).expect("parses"), d);
    }

    #[test]
    fn learned_runtimes_round_trip_and_are_absent_when_none() {
        let entry = |extra: &str| {
            format!(
                r#"{{"name": "t", "description": "", "schedule": "once", "one_shot": true,
                "enabled": true, "state": "SUCCESS", "processes": [], "starts": 1, "runs": 1,
                "failures": 0, "restarts": 0, "peak_rss": 0, "cpu_time": 0.0,
                "settings_hash": "h"{extra}}}"#
            )
        };
        let doc = sample_doc().to_json();
        let with = |e: String| doc.replacen("\"tasks\": []", &format!("\"tasks\": [{e}]"), 1);
        // An older file: no key, nothing learned; and none is written when none is kept.
        let old = StateDoc::parse(&with(entry(""))).expect("parses");
        assert!(old.tasks[0].recent_runtimes.is_empty());
        assert!(old.recent_runtimes().is_empty());
        assert!(!old.to_json().contains("recent_runtimes"));
        let new = StateDoc::parse(&with(entry(r#", "recent_runtimes": [12.5, 30, -1]"#)))
            .expect("parses");
        let back = StateDoc::parse(&new.to_json()).expect("round trip");
        assert_eq!(back, new);
        assert_eq!(
            back.recent_runtimes()["t"],
            vec![
                std::time::Duration::from_millis(12_500),
                std::time::Duration::from_secs(30)
            ]
        );
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    /// A link planted at the temporary name an older bansuri used (`.NAME.tmp-PID`) is not
    /// followed: the file it points to keeps its content.
    #[test]
    fn atomic_write_does_not_follow_a_planted_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        let p = dir.path().join("state.json");
        let planted = dir
            .path()
            .join(format!(".state.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
        write_atomic(&p, b"state").expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "state");
        assert!(planted.symlink_metadata().is_ok(), "the link is left alone");
    }

    #[test]
    fn a_state_directory_others_can_write_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("st");
        assert_eq!(untrusted_dir(&d), None, "missing: bansuri creates it");
        std::fs::create_dir(&d).expect("mkdir");
        let chmod = |m| std::fs::set_permissions(&d, std::fs::Permissions::from_mode(m));
        chmod(0o700).expect("chmod");
        assert_eq!(untrusted_dir(&d), None);
        chmod(0o755).expect("chmod");
        assert_eq!(untrusted_dir(&d), None, "readable is fine");
        chmod(0o775).expect("chmod");
        let why = untrusted_dir(&d).expect("group-writable");
        assert!(why.contains("writable by its group (mode 775)"), "{why}");
        assert!(why.contains("chmod 700"), "{why}");
        chmod(0o1777).expect("chmod");
        let why = untrusted_dir(&d).expect("sticky does not help: others plant new names");
        assert!(why.contains("writable by others (mode 777)"), "{why}");
        chmod(0o700).expect("chmod");
        let state = d.join("state.json");
        std::fs::write(&state, sample_doc().to_json()).expect("write");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(read_trusted(&state).expect("ours").is_some());
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let e = read_trusted(&state).expect_err("writable by others");
        assert!(
            e.to_string().contains("writable by others (mode 666)"),
            "{e}"
        );
        let link = d.join("link.json");
        std::os::unix::fs::symlink(&state, &link).expect("symlink");
        let e = read_trusted(&link).expect_err("a link");
        assert!(matches!(e, StateFileError::SymbolicLink), "{e:?}");
        assert_eq!(e.to_string(), "it is a symbolic link");
        assert!(read_trusted(&d.join("none")).expect("none").is_none());
    }

    /// Issue 17's fields: absent from the file of a config without requests (the file
    /// keeps its words), read back as written when present.
    #[test]
    fn requests_grants_and_node_resources_round_trip_and_are_absent_when_unused() {
        let plain = StateDoc::parse(include_str!("testdata/state.json")).expect("parses");
        let text = plain.to_json();
        for key in [
            "\"resources\"",
            "\"request\"",
            "\"grants\"",
            "\"waiting_for\"",
        ] {
            assert!(!text.contains(key), "{key} in {text}");
        }
        let mut d = plain.clone();
        let grant = crate::resources::Grant {
            cpus: crate::resources::CpuSet::parse("2-3").unwrap(),
            gpus: vec!["1".into()],
            mem: Some(1 << 30),
        };
        d.tasks[0].request = Some(AmountsInfo {
            cpus: 2,
            gpus: 1,
            mem: Some(1 << 30),
        });
        d.tasks[0].grants = vec![GrantInfo::of(&grant)];
        d.tasks[1].waiting_for = Some("needs 2 CPUs, 1 free".into());
        let inv = crate::resources::Inventory::from_inputs(&crate::resources::Inputs {
            affinity: crate::resources::CpuSet::parse("0-3").unwrap(),
            mem_total: 8 << 30,
            ..Default::default()
        })
        .unwrap();
        d.resources = Some(ResourcesInfo::new(&inv, [&grant].into_iter()));
        let r = d.resources.as_ref().unwrap();
        assert_eq!((r.total.cpus, r.in_use.cpus, r.free.cpus), (4, 2, 2));
        assert_eq!((r.total.gpus, r.in_use.gpus, r.free.gpus), (0, 1, 0));
        assert_eq!(r.free.mem, Some(7 << 30));
        let text = d.to_json();
        assert!(text.contains("\"cpus\": \"2-3\""), "{text}");
        assert_eq!(StateDoc::parse(&text).expect("parses"), d);
        assert_eq!(d.tasks[0].grants[0].words(), "CPUs 2-3, GPU 1, 1 GiB");
    }
}
