//! The status table: what `bansuri status`, the shell's `status` and nothing else print.
//!
//! Rendering is pure (a state document and the present time in, text out); whether the
//! bansuri that wrote the document is still alive is decided by [`liveness`], which looks
//! at /proc when the document comes from this node.

use chrono::{DateTime, Local, Utc};

use super::state::{AmountsInfo, ResourcesInfo, StateDoc, TaskEntry, STALE_AFTER};
use crate::resources::{fmt_mem, Kind};
use crate::sample;
use crate::text::{fmt_bytes, fmt_dur, fmt_wall};

/// Is the bansuri that wrote a state document still running?
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness {
    /// It says it runs, and (on this node) its pid and start time match.
    Running,
    /// It says it runs, on another node, and its heartbeat is recent: cannot be checked
    /// further from here.
    Elsewhere,
    /// It says it runs, on another node, but the file has not been rewritten for
    /// [`STALE_AFTER`]: it was most likely killed without a last write (OOM, KillWait, a
    /// node failure).
    Stale,
    /// It exited normally.
    Ended,
    /// It says it runs, but on this node its process is gone (killed, node rebooted).
    Gone(String),
}

/// Check the document's bansuri against this node's processes (or, for another node, the
/// age of its heartbeat).
pub fn liveness(doc: &StateDoc) -> Liveness {
    liveness_at(doc, Utc::now(), crate::host::name())
}

fn liveness_at(doc: &StateDoc, now: DateTime<Utc>, this_host: &str) -> Liveness {
    if !doc.bansuri.running {
        return Liveness::Ended;
    }
    if doc.bansuri.host != this_host {
        let age = (now - doc.written_at).to_std().unwrap_or_default();
        return if age > STALE_AFTER {
            Liveness::Stale
        } else {
            Liveness::Elsewhere
        };
    }
    if doc.bansuri.boot_id != crate::host::boot_id() {
        return Liveness::Gone(format!("{} has rebooted since it ran", doc.bansuri.host));
    }
    match sample::start_ticks(doc.bansuri.pid) {
        Some(t) if t == doc.bansuri.pid_start => Liveness::Running,
        _ => Liveness::Gone(format!(
            "its process (pid {}) on {} is gone: it was killed",
            doc.bansuri.pid, doc.bansuri.host
        )),
    }
}

fn local_short(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let l = t.with_timezone(&Local);
    if l.date_naive() == now.with_timezone(&Local).date_naive() {
        l.format("%H:%M:%S").to_string()
    } else {
        l.format("%m-%d %H:%M").to_string()
    }
}

/// `5m 3s` for the time between `a` and `b` (zero if negative).
fn span(a: DateTime<Utc>, b: DateTime<Utc>) -> String {
    let d = (b - a).to_std().unwrap_or_default();
    if d.as_secs() == 0 {
        return "0s".into();
    }
    fmt_dur(std::time::Duration::from_secs(d.as_secs()))
}

/// The "UPTIME/NEXT" cell.
fn when(t: &TaskEntry, now: DateTime<Utc>) -> String {
    if let Some(s) = t.started_at {
        return format!("up {}", span(s, now));
    }
    if let Some(r) = t.retry_at {
        return format!("retry in {}", span(now, r));
    }
    if let Some(n) = t.next_run_at {
        return format!("next {} (in {})", local_short(n, now), span(now, n));
    }
    if let Some(e) = t.ended_at {
        return format!("ended {} ago", span(e, now));
    }
    "-".into()
}

/// Keep only the tasks that `asked` names (all when it is empty): a task by its name, a
/// `numprocs` program by its name (then every instance). `Err` names an unknown one.
pub fn keep_named(doc: &mut StateDoc, asked: &[String]) -> Result<(), String> {
    if asked.is_empty() {
        return Ok(());
    }
    // An array's name (issue 19) keeps its counts and its elements that are tasks.
    let (arrays, others): (Vec<String>, Vec<String>) = asked
        .iter()
        .cloned()
        .partition(|n| doc.arrays.iter().any(|a| a.name == *n));
    let known: Vec<String> = doc.tasks.iter().map(|t| t.name.clone()).collect();
    let keep = if others.is_empty() {
        Vec::new()
    } else {
        crate::core::select_tasks(&others, &known)?
    };
    let of_array = |name: &str| {
        crate::array::split_element_name(name).is_some_and(|(a, _)| arrays.iter().any(|x| x == a))
    };
    doc.tasks
        .retain(|t| keep.contains(&t.name) || of_array(&t.name));
    doc.arrays.retain(|a| arrays.contains(&a.name));
    Ok(())
}

/// The table, with a header saying whether bansuri runs and a footer with the node.
pub fn render(doc: &StateDoc, now: DateTime<Utc>, live: &Liveness) -> String {
    let mut out = header(doc, now, live);
    out.push('\n');
    out.push_str(&table(doc, now, live));
    out.push('\n');
    out.push_str(&arrays(doc, now));
    out.push_str(&reasons(doc));
    out.push_str(&bindings(doc));
    out.push_str(&counts(doc));
    if let Some(n) = &doc.node {
        out.push_str(&format!(
            "node: load {:.2} {:.2} {:.2}, memory available {} of {}\n",
            n.load[0],
            n.load[1],
            n.load[2],
            fmt_bytes(n.mem_available),
            fmt_bytes(n.mem_total)
        ));
    }
    if let Some(r) = &doc.resources {
        out.push_str(&resources(r));
    }
    out.push_str(&nodes(doc));
    if matches!(live, Liveness::Running | Liveness::Elsewhere) {
        out.push_str(&format!(
            "state written {} ago ({})\n",
            span(doc.written_at, now),
            fmt_wall(doc.written_at)
        ));
    }
    out
}

/// Whether bansuri runs (or since when it does not), where, and the config in effect.
fn header(doc: &StateDoc, now: DateTime<Utc>, live: &Liveness) -> String {
    let mut out = String::new();
    let b = &doc.bansuri;
    let job = match &doc.job {
        Some(j) => format!(
            ", SLURM job {}{}",
            j.id,
            j.name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    match live {
        Liveness::Running | Liveness::Elsewhere => {
            out.push_str(&format!(
                "bansuri {} running on {} (pid {}){job}, up {}\n",
                b.version,
                b.host,
                b.pid,
                span(b.started_at, now)
            ));
        }
        Liveness::Ended => {
            let at = b.ended_at.unwrap_or(doc.written_at);
            let code = b
                .exit_code
                .map(|c| format!(" with code {c}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "bansuri is NOT running: it exited at {} ({} ago){code}; it ran on {}{job}\n",
                fmt_wall(at),
                span(at, now),
                b.host
            ));
        }
        Liveness::Gone(why) => {
            out.push_str(&format!(
                "bansuri is NOT running: {why}; last state written at {} ({} ago){job}\n",
                fmt_wall(doc.written_at),
                span(doc.written_at, now)
            ));
        }
        Liveness::Stale => {
            out.push_str(&format!(
                "bansuri is probably NOT running: {}{job}\n",
                stale_why(doc, now)
            ));
        }
    }
    out.push_str(&format!(
        "config {} (loaded {})\n",
        doc.config.path,
        fmt_wall(doc.config.loaded_at)
    ));
    if let Some(inv) = &doc.config.invalid {
        out.push_str(&format!(
            "WARNING: the config file on disk is NOT in effect: {} (since {})\n",
            inv.reason,
            fmt_wall(inv.since)
        ));
    } else if doc.config.on_disk_differs {
        out.push_str("note: the config file on disk has changed and is being applied\n");
    }
    out
}

/// One aligned line per task, under a header line.
fn table(doc: &StateDoc, now: DateTime<Utc>, live: &Liveness) -> String {
    let headers = [
        "TASK",
        "STATE",
        "PID",
        "UPTIME/NEXT",
        "RUNS",
        "FAILS",
        "LAST EXIT",
        "CPU%",
        "RSS",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    let mut arrays_seen: Vec<&str> = Vec::new();
    // An array none of whose elements is a task now is one row all the same.
    for a in &doc.arrays {
        if !doc
            .tasks
            .iter()
            .any(|t| crate::array::split_element_name(&t.name).is_some_and(|(x, _)| x == a.name))
        {
            arrays_seen.push(&a.name);
            rows.push(array_row(doc, &a.name));
        }
    }
    for t in &doc.tasks {
        let live_now = matches!(live, Liveness::Running | Liveness::Elsewhere);
        // An array (issue 19) is one row, its counts; `arrays` below says more.
        if let Some((array, _)) = crate::array::split_element_name(&t.name) {
            if !arrays_seen.contains(&array) {
                arrays_seen.push(array);
                rows.push(array_row(doc, array));
            }
            continue;
        }
        rows.push([
            t.name.clone(),
            t.state.clone(),
            // A run on another node shows where: `4242@n2` (issue 18).
            match (t.pid, t.processes.first().and_then(|p| p.node.as_deref())) {
                (Some(p), Some(node)) => format!("{p}@{node}"),
                (Some(p), None) => p.to_string(),
                (None, _) => "-".into(),
            },
            if live_now {
                when(t, now)
            } else {
                ended(t, now)
            },
            t.runs.to_string(),
            t.failures.to_string(),
            t.last_exit.as_ref().map_or("-".into(), |e| e.text.clone()),
            t.cpu_percent
                .filter(|_| t.pid.is_some())
                .map_or("-".into(), |c| format!("{c:.1}")),
            t.rss.filter(|_| t.pid.is_some()).map_or("-".into(), |r| {
                format!("{}{}", fmt_bytes(r), sample_age(doc, t, now, live_now))
            }),
        ]);
    }
    let mut width = headers.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Numbers right-aligned, words left-aligned.
    let right = [false, false, true, false, true, true, false, true, true];
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if right[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&headers.map(String::from));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

/// " (12s old)" after a task's figures when its sample is older than two sample intervals
/// (a state file read between two writes, from another node): empty otherwise.
fn sample_age(doc: &StateDoc, t: &TaskEntry, now: DateTime<Utc>, live_now: bool) -> String {
    let interval = doc.settings.sample_interval;
    match t.sampled_at {
        Some(at)
            if live_now
                && interval > 0.0
                && (now - at).num_milliseconds() as f64 > 2000.0 * interval =>
        {
            format!(" ({} old)", span(at, now))
        }
        _ => String::new(),
    }
}

/// Why a [`Liveness::Stale`] state is taken for a dead bansuri, for `status` and for the
/// refusal of control commands: "its state was last written 2h ago on node17 (no heartbeat
/// since)".
pub fn stale_why(doc: &StateDoc, now: DateTime<Utc>) -> String {
    format!(
        "its state was last written {} ago on {} (no heartbeat since)",
        span(doc.written_at, now),
        doc.bansuri.host
    )
}

/// After bansuri has ended, times are shown as they were.
fn ended(t: &TaskEntry, now: DateTime<Utc>) -> String {
    match t.ended_at {
        Some(e) => format!("ended {} ago", span(e, now)),
        None => "-".into(),
    }
}

/// One line per FATAL or SKIPPED task saying why, then a blank line; nothing when none is.
/// "c: SKIPPED: dependency `a` failed (exit 1)"
fn reasons(doc: &StateDoc) -> String {
    let lines: String = doc
        .tasks
        .iter()
        // Array elements (issue 19) are summed up by `arrays`, not listed one by one.
        .filter(|t| crate::array::split_element_name(&t.name).is_none())
        .filter_map(|t| {
            let why = t.reason.as_ref()?;
            Some(format!("{}: {}: {why}\n", t.name, t.state))
        })
        .collect();
    if lines.is_empty() {
        lines
    } else {
        lines + "\n"
    }
}

/// Issue 17, one line per task that waits for resources or holds some, then a blank
/// line; nothing when none does:
/// "big: WAITING: needs 4 CPUs, 2 free", "train: RUNNING on CPUs 4-5, GPU 2".
fn bindings(doc: &StateDoc) -> String {
    // Many tasks waiting for the same thing (a slot under `max_parallel`) are one line.
    let mut waits: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut lines = String::new();
    // Array elements (issue 19) are summed up by `arrays`, not listed one by one.
    for t in doc
        .tasks
        .iter()
        .filter(|t| crate::array::split_element_name(&t.name).is_none())
    {
        match (&t.waiting_for, t.grants.as_slice()) {
            (Some(why), _) => match waits.iter_mut().find(|(w, _)| w == why) {
                Some((_, names)) => names.push(&t.name),
                None => waits.push((why, vec![&t.name])),
            },
            (None, []) => {}
            (None, grants) => {
                let held: Vec<String> = grants.iter().map(|g| g.words()).collect();
                lines.push_str(&format!(
                    "{}: {} on {}\n",
                    t.name,
                    t.state,
                    held.join(" / ")
                ));
            }
        }
    }
    for (why, names) in waits {
        let shown = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        let more = match names.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        lines.push_str(&format!("{shown}{more}: WAITING: {why}\n"));
    }
    if lines.is_empty() {
        lines
    } else {
        lines + "\n"
    }
}

/// What bansuri found and how much of it runs hold:
/// "resources: 8 CPUs (0-7, from the job's CPU set), 0 GPUs, 16 GiB (resources.mem)"
/// "in use: 6 of 8 CPUs, 0 of 0 GPUs, 4 GiB of 16 GiB; free: 2 CPUs, 0 GPUs, 12 GiB"
fn resources(r: &ResourcesInfo) -> String {
    let mem = |a: &AmountsInfo| fmt_mem(a.mem.unwrap_or(0));
    format!(
        "resources: {}\nin use: {} of {} CPUs, {} of {} GPUs, {} of {}; free: {}, {}, {}\n",
        r.found,
        r.in_use.cpus,
        r.total.cpus,
        r.in_use.gpus,
        r.total.gpus,
        mem(&r.in_use),
        mem(&r.total),
        Kind::Cpus.words(r.free.cpus),
        Kind::Gpus.words(r.free.gpus),
        mem(&r.free),
    )
}

/// The nodes of a multi-node job (issue 18), one line each:
/// "node n2: ready, 1 run, 1 of 2 CPUs in use, 0 of 0 GPUs" or "node n3: LOST (takes no
/// more runs)".
fn nodes(doc: &StateDoc) -> String {
    let mut out = String::new();
    for n in &doc.nodes {
        let runs = match n.runs {
            1 => "1 run".to_owned(),
            k => format!("{k} runs"),
        };
        let (used, total) = (n.total.cpus.saturating_sub(n.free.cpus), n.total.cpus);
        let gpus = if n.total.gpus > 0 {
            let used = n.total.gpus - n.free.gpus.min(n.total.gpus);
            format!(", {used} of {} GPUs", n.total.gpus)
        } else {
            String::new()
        };
        let line = match n.state.as_str() {
            "lost" => format!("node {}: LOST (takes no more runs)\n", n.name),
            "starting" => format!("node {}: starting its agent\n", n.name),
            "here" => format!(
                "node {} (bansuri's): {runs}, {used} of {total} CPUs in use{gpus}\n",
                n.name
            ),
            _ => format!(
                "node {}: ready, {runs}, {used} of {total} CPUs in use{gpus}\n",
                n.name
            ),
        };
        out.push_str(&line);
    }
    out
}

/// The elements of array `array` (issue 19), in config order.
fn elements<'a>(doc: &'a StateDoc, array: &'a str) -> impl Iterator<Item = &'a TaskEntry> + 'a {
    doc.tasks
        .iter()
        .filter(move |t| crate::array::split_element_name(&t.name).is_some_and(|(a, _)| a == array))
}

/// What an array's elements do (issue 19): the state file's counts for the elements no
/// longer tasks, plus the elements that are.
struct ArrayCounts<'a> {
    elements: u64,
    done: u64,
    running: u64,
    failed: u64,
    held: u64,
    runs: u64,
    fails: u64,
    /// The elements that are tasks, by state, in order of appearance.
    by_state: Vec<(String, u64)>,
    /// The elements that are tasks.
    tasks: Vec<&'a TaskEntry>,
}

impl ArrayCounts<'_> {
    fn waiting(&self) -> u64 {
        self.elements
            .saturating_sub(self.done + self.running + self.failed + self.held)
    }
}

fn array_counts<'a>(doc: &'a StateDoc, array: &'a str) -> ArrayCounts<'a> {
    let entry = doc.arrays.iter().find(|a| a.name == array);
    let tasks: Vec<&TaskEntry> = elements(doc, array).collect();
    let count = |states: &[&str]| {
        tasks
            .iter()
            .filter(|t| states.contains(&t.state.as_str()))
            .count() as u64
    };
    let mut c = ArrayCounts {
        elements: entry.map_or(tasks.len() as u64, |e| e.elements),
        done: entry.map_or(0, |e| e.succeeded) + count(&["SUCCESS"]),
        running: count(&["RUNNING", "STOPPING", "STARTING"]),
        failed: count(&["FAILED", "TIMEOUT", "FATAL", "SKIPPED"]) + entry.map_or(0, |e| e.failed),
        held: entry.map_or(0, |e| e.held),
        runs: entry.map_or(0, |e| e.runs),
        fails: entry.map_or(0, |e| e.failures),
        by_state: Vec::new(),
        tasks,
    };
    for t in &c.tasks {
        c.runs += t.runs;
        c.fails += t.failures;
    }
    let retired = entry.map_or(0, |e| e.succeeded);
    if retired > 0 {
        c.by_state.push(("SUCCESS".into(), retired));
    }
    let failed_gone = entry.map_or(0, |e| e.failed);
    if failed_gone > 0 {
        c.by_state.push(("FAILED".into(), failed_gone));
    }
    for t in &c.tasks {
        match c.by_state.iter_mut().find(|(s, _)| *s == t.state) {
            Some((_, n)) => *n += 1,
            None => c.by_state.push((t.state.clone(), 1)),
        }
    }
    let not_yet = c
        .elements
        .saturating_sub(c.tasks.len() as u64 + retired + failed_gone + c.held);
    if not_yet > 0 {
        match c.by_state.iter_mut().find(|(s, _)| s == "WAITING") {
            Some((_, n)) => *n += not_yet,
            None => c.by_state.push(("WAITING".into(), not_yet)),
        }
    }
    if c.held > 0 {
        c.by_state.push(("HELD".into(), c.held));
    }
    c
}

/// An array's row of the table: `sweep[] (1000)`, `80 SUCCESS 12 RUNNING 3 FAILED 5 WAITING`.
fn array_row(doc: &StateDoc, array: &str) -> [String; 9] {
    let c = array_counts(doc, array);
    let states: Vec<String> = c.by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    [
        format!("{array}[] ({})", c.elements),
        states.join(" "),
        "-".into(),
        "-".into(),
        c.runs.to_string(),
        c.fails.to_string(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]
}

/// Per array (issue 19): what its elements do, the failed ones and the longest running
/// ones (at most 5 of each): `sweep: 100 elements: 80 done, 12 running, 3 failed, 5
/// waiting` then `  failed: sweep[7] (exit 1), ...` and `  running longest: sweep[3]
/// (up 5m), ...`. `status --json` has every element that is a task; the status file
/// `elements.jsonl` has every element that ended.
fn arrays(doc: &StateDoc, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for array in array_names(doc) {
        let c = array_counts(doc, array);
        out.push_str(&format!(
            "{array}: {} elements: {} done, {} running, {} failed, {} waiting{}\n",
            c.elements,
            c.done,
            c.running,
            c.failed,
            c.waiting(),
            if c.held > 0 {
                format!(", {} held back by --retry-failed", c.held)
            } else {
                String::new()
            }
        ));
        out.push_str(&failed_line(doc, array, &c));
        out.push_str(&slowest_line(doc, array));
        let mut running: Vec<(&str, DateTime<Utc>)> = c
            .tasks
            .iter()
            .filter(|t| t.state == "RUNNING")
            .filter_map(|t| Some((t.name.as_str(), t.started_at?)))
            .collect();
        running.sort_by_key(|&(_, at)| at);
        if !running.is_empty() {
            let shown: Vec<String> = running
                .iter()
                .take(5)
                .map(|(name, at)| format!("{name} (up {})", span(*at, now)))
                .collect();
            out.push_str(&format!("  running longest: {}\n", shown.join(", ")));
        }
    }
    if out.is_empty() {
        out
    } else {
        out + "\n"
    }
}

/// `  failed: sweep[7] (exit 1), ... and 3 more` (empty when none failed).
fn failed_line(doc: &StateDoc, array: &str, c: &ArrayCounts<'_>) -> String {
    let mut out = String::new();
    // Those no longer tasks (the state file names the first 100), then the others.
    let failed: Vec<(String, String)> = doc
        .arrays
        .iter()
        .filter(|a| a.name == array)
        .flat_map(|a| {
            a.failed_elements
                .iter()
                .map(|f| (f.name.clone(), f.text.clone()))
        })
        .chain(
            c.tasks
                .iter()
                .filter(|t| matches!(t.state.as_str(), "FAILED" | "TIMEOUT" | "FATAL" | "SKIPPED"))
                .map(|t| {
                    let why = t.last_exit.as_ref().map_or("-".into(), |e| e.text.clone());
                    (t.name.clone(), why)
                }),
        )
        .collect();
    if !failed.is_empty() {
        let shown: Vec<String> = failed
            .iter()
            .take(5)
            .map(|(name, why)| format!("{name} ({why})"))
            .collect();
        let more = (c.failed as usize).saturating_sub(5);
        out.push_str(&format!(
            "  failed: {}{}\n",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    out
}

/// `  slowest: sweep[512] (3m 10s), ...` (empty when none ended).
fn slowest_line(doc: &StateDoc, array: &str) -> String {
    let mut out = String::new();
    // The slowest that succeeded, as the state file keeps them (five): an element is no
    // task for long once it ended, and a task's entry has no start once its process is gone.
    let mut slowest: Vec<(String, f64)> = doc
        .arrays
        .iter()
        .filter(|a| a.name == array)
        .flat_map(|a| a.slowest.iter().map(|s| (s.name.clone(), s.seconds)))
        .collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    if !slowest.is_empty() {
        let shown: Vec<String> = slowest
            .iter()
            .take(5)
            .map(|(name, secs)| {
                let took = std::time::Duration::from_secs_f64(secs.max(0.0));
                format!("{name} ({})", fmt_dur(took))
            })
            .collect();
        out.push_str(&format!("  slowest: {}\n", shown.join(", ")));
    }
    out
}

/// The arrays of the state (issue 19): its `arrays` entries, then any whose elements are
/// tasks without one (a state file of an older bansuri).
fn array_names(doc: &StateDoc) -> Vec<&str> {
    let mut names: Vec<&str> = doc.arrays.iter().map(|a| a.name.as_str()).collect();
    for t in &doc.tasks {
        if let Some((array, _)) = crate::array::split_element_name(&t.name) {
            if !names.contains(&array) {
                names.push(array);
            }
        }
    }
    names
}

/// "5 tasks: 2 RUNNING, 1 FAILED, 1 SUCCESS, 1 ARRAY": an array is one task, its elements
/// are counted by `arrays`.
fn counts(doc: &StateDoc) -> String {
    let mut by: Vec<(String, usize)> = Vec::new();
    let plain = doc
        .tasks
        .iter()
        .filter(|t| crate::array::split_element_name(&t.name).is_none());
    for t in plain {
        match by.iter_mut().find(|(s, _)| *s == t.state) {
            Some((_, n)) => *n += 1,
            None => by.push((t.state.clone(), 1)),
        }
    }
    let arrays = array_names(doc).len();
    if arrays > 0 {
        by.push(("ARRAY".into(), arrays));
    }
    let n: usize = by.iter().map(|(_, c)| c).sum();
    let parts: Vec<String> = by.iter().map(|(s, c)| format!("{c} {s}")).collect();
    format!(
        "{n} task{}: {}\n",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::state::StateDoc;

    fn doc() -> StateDoc {
        let text = include_str!("testdata/state.json");
        StateDoc::parse(text).expect("test state parses")
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn an_array_is_one_row_and_a_summary_not_a_row_per_element() {
        let mut d = doc();
        let base = d.tasks[0].clone();
        let element = |id: u32, state: &str| {
            let mut e = base.clone();
            e.name = format!("sweep[{id}]");
            e.state = state.into();
            e
        };
        for id in 0..1000 {
            let state = match id {
                0..=2 => "RUNNING",
                3 | 4 => "FAILED",
                5..=899 => "SUCCESS",
                _ => "WAITING",
            };
            d.tasks.push(element(id, state));
        }
        let out = render(&d, t("2026-01-19T10:05:00Z"), &Liveness::Running);
        assert!(!out.contains("sweep[900]"), "no row per element:\n{out}");
        let row = out
            .lines()
            .find(|l| l.starts_with("sweep[] (1000)"))
            .unwrap_or_else(|| panic!("an array row:\n{out}"));
        for part in ["3 RUNNING", "2 FAILED", "895 SUCCESS", "100 WAITING"] {
            assert!(row.contains(part), "{part} in {row}");
        }
        assert!(
            out.contains("sweep: 1000 elements: 895 done, 3 running, 2 failed, 100 waiting"),
            "{out}"
        );
        assert!(out.contains("  failed: sweep[3] ("), "{out}");
        assert!(out.lines().count() < 40, "{out}");
    }

    #[test]
    fn an_array_counts_its_retired_elements_from_the_state_file() {
        let mut d = doc();
        let base = d.tasks[0].clone();
        for (id, state) in [(99_001, "RUNNING"), (99_002, "RUNNING"), (17, "FAILED")] {
            let mut e = base.clone();
            e.name = format!("big[{id}]");
            e.state = state.into();
            d.tasks.push(e);
        }
        d.arrays.push(crate::control::state::ArrayEntry {
            name: "big".into(),
            elements: 100_000,
            succeeded: 99_000,
            held: 0,
            parallel: Some(2),
            skipped: None,
            runs: 99_000,
            failures: 0,
            slowest: vec![
                crate::control::state::SlowElement {
                    name: "big[512]".into(),
                    seconds: 190.0,
                },
                crate::control::state::SlowElement {
                    name: "big[3]".into(),
                    seconds: 61.5,
                },
            ],
            failed: 1,
            failed_elements: vec![crate::control::state::FailedElementEntry {
                name: "big[9]".into(),
                text: "exit 2".into(),
            }],
        });
        // An array none of whose elements is a task: one row all the same.
        d.arrays.push(crate::control::state::ArrayEntry {
            name: "done".into(),
            elements: 10,
            succeeded: 10,
            held: 0,
            parallel: None,
            skipped: None,
            runs: 10,
            failures: 0,
            slowest: Vec::new(),
            failed: 0,
            failed_elements: Vec::new(),
        });
        let out = render(&d, t("2026-01-19T10:05:00Z"), &Liveness::Running);
        let row = out
            .lines()
            .find(|l| l.starts_with("big[] (100000)"))
            .unwrap_or_else(|| panic!("an array row:\n{out}"));
        for part in ["99000 SUCCESS", "2 FAILED", "2 RUNNING", "996 WAITING"] {
            assert!(row.contains(part), "{part} in {row}");
        }
        assert!(
            out.contains("big: 100000 elements: 99000 done, 2 running, 2 failed, 996 waiting"),
            "{out}"
        );
        assert!(
            out.contains("  failed: big[9] (exit 2), big[17] ("),
            "{out}"
        );
        assert!(
            out.contains("  slowest: big[512] (3m 10s), big[3] (1m 1s)"),
            "{out}"
        );
        assert!(out.contains("done[] (10)"), "{out}");
        // The two arrays are two tasks, not their element tasks.
        let plain = d.tasks.len() - 3;
        assert!(
            out.contains(&format!("{} tasks: ", plain + 2)) && out.contains(", 2 ARRAY\n"),
            "{out}"
        );
        assert!(
            out.contains("done: 10 elements: 10 done, 0 running, 0 failed, 0 waiting"),
            "{out}"
        );
    }

    #[test]
    fn tasks_waiting_for_the_same_slot_are_one_line() {
        let mut d = doc();
        let base = d.tasks[0].clone();
        for i in 0..5 {
            let mut t = base.clone();
            t.name = format!("job{i}");
            t.state = "WAITING".into();
            t.waiting_for = Some("a slot (max_parallel 2, all in use)".into());
            d.tasks.push(t);
        }
        let out = render(&d, t("2026-01-19T10:05:00Z"), &Liveness::Running);
        assert!(
            out.contains(
                "job0, job1, job2 and 2 more: WAITING: a slot (max_parallel 2, all in use)\n"
            ),
            "{out}"
        );
        assert!(!out.contains("job3: WAITING"), "{out}");
    }

    #[test]
    fn table_while_running() {
        let d = doc();
        let out = render(&d, t("2026-01-19T10:05:00Z"), &Liveness::Running);
        assert!(
            out.starts_with(
                "bansuri 0.1.0 running on node1 (pid 42), SLURM job 77 (demo), up 5m\n"
            ),
            "{out}"
        );
        let lines: Vec<&str> = out.lines().collect();
        let header = lines
            .iter()
            .find(|l| l.starts_with("TASK"))
            .expect("header");
        assert!(
            header.contains("STATE") && header.contains("UPTIME/NEXT") && header.contains("CPU%")
        );
        let mon = lines
            .iter()
            .find(|l| l.starts_with("monitor"))
            .expect("monitor row");
        for cell in ["RUNNING", "4242", "up 4m", "99.5", "200.0 MB"] {
            assert!(mon.contains(cell), "{cell} in {mon}");
        }
        let tick = lines
            .iter()
            .find(|l| l.starts_with("tick"))
            .expect("tick row");
        assert!(
            tick.contains("SCHEDULED") && tick.contains("(in 10s)") && tick.contains("exit 0"),
            "{tick}"
        );
        let bad = lines
            .iter()
            .find(|l| l.starts_with("bad"))
            .expect("bad row");
        assert!(
            bad.contains("FAILED") && bad.contains("exit 3") && bad.contains("ended 4m 30s ago"),
            "{bad}"
        );
        assert!(
            out.contains("3 tasks: 1 RUNNING, 1 SCHEDULED, 1 FAILED"),
            "{out}"
        );
        assert!(
            out.contains("WARNING: the config file on disk is NOT in effect: it has errors"),
            "{out}"
        );
    }

    #[test]
    fn a_sample_older_than_two_intervals_shows_its_age() {
        let mut d = doc();
        d.settings.sample_interval = 1.0;
        let now = t("2026-01-19T10:05:00Z");
        let mon = |d: &StateDoc| {
            render(d, now, &Liveness::Running)
                .lines()
                .find(|l| l.starts_with("monitor"))
                .expect("monitor row")
                .to_owned()
        };
        d.tasks[0].sampled_at = Some(t("2026-01-19T10:04:59Z"));
        let fresh = mon(&d);
        assert!(
            fresh.trim_end().ends_with("200.0 MB") && !fresh.contains("old"),
            "1 s old, interval 1 s: no age: {fresh}"
        );
        d.tasks[0].sampled_at = Some(t("2026-01-19T10:04:51Z"));
        let stale = mon(&d);
        assert!(stale.contains("200.0 MB (9s old)"), "{stale}");
        // A state without sample times (older bansuris) shows none.
        d.tasks[0].sampled_at = None;
        assert!(!mon(&d).contains("old"));
    }

    #[test]
    fn a_state_from_another_node_without_a_heartbeat_is_stale() {
        // Written at 10:04:58 on node1, read on a login node.
        let d = doc();
        let at = |s: &str| liveness_at(&d, t(s), "login1");
        assert_eq!(at("2026-01-19T10:05:05Z"), Liveness::Elsewhere);
        assert_eq!(
            at("2026-01-19T10:06:28Z"),
            Liveness::Elsewhere,
            "90 s: 9 beats"
        );
        assert_eq!(at("2026-01-19T10:06:29Z"), Liveness::Stale);
        assert_eq!(at("2028-01-19T10:05:00Z"), Liveness::Stale);
        // A clock a little behind the writer's: not stale.
        assert_eq!(at("2026-01-19T10:04:50Z"), Liveness::Elsewhere);
        let mut ended = doc();
        ended.bansuri.running = false;
        assert_eq!(
            liveness_at(&ended, t("2028-01-19T10:05:00Z"), "login1"),
            Liveness::Ended
        );

        let out = render(&d, t("2026-01-19T12:05:00Z"), &Liveness::Stale);
        assert!(
            out.starts_with(
                "bansuri is probably NOT running: its state was last written 2h 0m 2s ago on node1 (no heartbeat since), SLURM job 77 (demo)\n"
            ),
            "{out}"
        );
        assert!(!out.contains("running on"), "{out}");
        assert!(!out.contains("up 4m"), "no uptime for a dead job: {out}");
        assert!(!out.contains("state written"), "{out}");

        // Control commands are not sent to it (the test document is from node1, long ago).
        assert_ne!(
            crate::host::name(),
            "node1",
            "the test needs another host name"
        );
        let e = crate::control::client::preflight(&d, crate::control::Cmd::Stop, &[])
            .expect_err("refused");
        assert_eq!(e.kind, crate::model::ErrorKind::Runtime);
        assert!(
            e.msg.starts_with(
                "no bansuri is running for this config, most likely: its state was last written "
            ) && e.msg.contains(" ago on node1 (no heartbeat since), and a running bansuri rewrites it every 10s; the request was not sent"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn fatal_and_skipped_tasks_say_why_under_the_table() {
        let plain = render(&doc(), t("2026-01-19T10:05:00Z"), &Liveness::Running);
        assert!(!plain.contains(": FATAL:"), "no reason line: {plain}");
        let mut d = doc();
        d.tasks[1].state = "FATAL".into();
        d.tasks[1].reason =
            Some("exited 3 times in a row before staying up 2s (starttime; last: exit 1)".into());
        d.tasks[2].state = "SKIPPED".into();
        d.tasks[2].reason = Some("dependency `a` failed (exit 1)".into());
        let out = render(&d, t("2026-01-19T10:05:00Z"), &Liveness::Running);
        let lines: Vec<&str> = out.lines().collect();
        let at = |l: &str| lines.iter().position(|x| *x == l);
        let fatal = at(
            "tick: FATAL: exited 3 times in a row before staying up 2s (starttime; last: exit 1)",
        );
        let skipped = at("bad: SKIPPED: dependency `a` failed (exit 1)");
        let (Some(fatal), Some(skipped)) = (fatal, skipped) else {
            panic!("a reason line per task: {out}");
        };
        let last_row = lines
            .iter()
            .position(|l| l.starts_with("bad "))
            .expect("row");
        assert!(
            last_row < fatal && fatal < skipped,
            "under the table: {out}"
        );
        assert!(
            lines[skipped + 1].is_empty() && lines[skipped + 2].starts_with("3 tasks:"),
            "{out}"
        );
    }

    #[test]
    fn table_after_the_end_and_after_a_kill() {
        let mut d = doc();
        d.bansuri.running = false;
        d.bansuri.ended_at = Some(t("2026-01-19T10:06:00Z"));
        d.bansuri.exit_code = Some(0);
        let out = render(&d, t("2026-01-19T10:16:00Z"), &Liveness::Ended);
        assert!(
            out.starts_with("bansuri is NOT running: it exited at "),
            "{out}"
        );
        assert!(out.contains("(10m ago) with code 0"), "{out}");
        let gone = Liveness::Gone("its process (pid 42) on node1 is gone: it was killed".into());
        let out = render(&doc(), t("2026-01-19T10:16:00Z"), &gone);
        assert!(
            out.contains("NOT running: its process (pid 42) on node1 is gone"),
            "{out}"
        );
        assert!(!out.contains("up 4m"), "no uptime for a dead job: {out}");
    }

    /// Issue 17: a WAITING task says what it waits for, a running one what it holds, and
    /// the footer what the node has and how much is in use. Tasks without requests keep
    /// their table and no line of their own.
    #[test]
    fn waiting_and_bound_tasks_and_the_node_resources() {
        use crate::control::state::GrantInfo;
        use crate::resources::{CpuSet, Declared, Grant, Inputs, Inventory};
        let now = t("2026-01-19T10:05:00Z");
        let plain = render(&doc(), now, &Liveness::Running);
        assert!(
            !plain.contains("resources:") && !plain.contains(" on CPU"),
            "{plain}"
        );
        let mut d = doc();
        let grant = |cpus: &str, gpus: &[&str]| Grant {
            cpus: CpuSet::parse(cpus).unwrap(),
            gpus: gpus.iter().map(|g| g.to_string()).collect(),
            mem: Some(1 << 30),
        };
        let held = [grant("4-5", &["2"]), grant("6", &[])];
        d.tasks[0].grants = held.iter().map(GrantInfo::of).collect();
        d.tasks[1].state = "WAITING".into();
        d.tasks[1].waiting_for = Some("needs 4 CPUs, 2 free".into());
        let inventory = Inventory::from_inputs(&Inputs {
            affinity: CpuSet::parse("0-7").unwrap(),
            mem_total: 16 << 30,
            declared: Some(Declared {
                gpus: Some(["0", "1", "2", "3"].map(String::from).to_vec()),
                ..Declared::default()
            }),
            ..Inputs::default()
        })
        .unwrap();
        d.resources = Some(ResourcesInfo::new(&inventory, held.iter()));
        let out = render(&d, now, &Liveness::Running);
        let lines: Vec<&str> = out.lines().collect();
        let at = |l: &str| {
            lines
                .iter()
                .position(|x| *x == l)
                .unwrap_or_else(|| panic!("no line `{l}` in:\n{out}"))
        };
        let mon = at("monitor: RUNNING on CPUs 4-5, GPU 2, 1 GiB / CPU 6, 1 GiB");
        let tick = at("tick: WAITING: needs 4 CPUs, 2 free");
        let last_row = lines.iter().position(|l| l.starts_with("bad ")).unwrap();
        assert!(last_row < mon && mon < tick, "under the table:\n{out}");
        at("resources: 8 CPUs (0-7, from the job's CPU set), 4 GPUs (0,1,2,3 from resources.gpus), 16 GiB (the machine's)");
        at("in use: 3 of 8 CPUs, 1 of 4 GPUs, 2 GiB of 16 GiB; free: 5 CPUs, 3 GPUs, 14 GiB");
        // The table itself is the same as without requests.
        let mut unbound = doc();
        unbound.tasks[1].state = "WAITING".into();
        let table = |text: &str| text.lines().skip(4).take(4).collect::<Vec<_>>().join("\n");
        let unbound = render(&unbound, now, &Liveness::Running);
        assert!(table(&out).starts_with("TASK "), "{out}");
        assert_eq!(table(&out), table(&unbound));
    }
}
