//! The element status file (issue 19): one JSON line per ended attempt of an array
//! element, appended as it ends, so a sweep's progress can be read (`tail -f`, `jq`)
//! while it runs and survives bansuri being killed; `--resume` and `--retry-failed` read
//! it back next time.
//!
//! The file is `elements.jsonl` in the state directory (beside `state.json`, found by
//! `--resume` without being named). Each line is an `array::StatusLine`: task (the array),
//! id, item, the element's settings digest (`settings_hash`, what `--resume` compares),
//! host (the node it ran on), start and end (RFC 3339), exit code or signal, attempts. A
//! later line for an element wins. The state file is written every 200 ms at most and
//! may miss the last elements before a SIGKILL; these lines are written one
//! `write(2)` each in append mode, before the next event is handled.
//!
//! Owns: the file and the lines. Must not: decide anything about runs.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::Runtime;
use crate::array::StatusLine;
use crate::core::{Event, TaskEvent};
use crate::level::Level;
use crate::model::ProcessEnd;

/// The file's name in the state directory.
pub(super) const FILE: &str = crate::array::STATUS_FILE;

/// The open status file and the node each element's last start went to.
#[derive(Default)]
pub(super) struct Elements {
    file: Option<File>,
    path: PathBuf,
    /// Where each element's current run started (its node, else bansuri's host).
    hosts: HashMap<String, String>,
    /// Writing failed once: said, not again.
    failing: bool,
}

/// What a previous status file says: the elements that succeeded (name -> settings
/// digest) and those whose last record is a failure.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Previous {
    pub(super) succeeded: HashMap<String, String>,
    pub(super) failed: HashSet<String>,
}

/// Read a status file's text (unreadable lines, as a line cut by a crash, are skipped; a
/// later line for an element wins).
pub(super) fn read_previous(text: &str) -> Previous {
    let mut last: HashMap<String, StatusLine> = HashMap::new();
    for line in text.lines() {
        if let Ok(l) = serde_json::from_str::<StatusLine>(line) {
            last.insert(crate::array::element_name(&l.task, l.id), l);
        }
    }
    let mut out = Previous::default();
    for (name, l) in last {
        if l.succeeded() {
            out.succeeded.insert(name, l.settings);
        } else {
            out.failed.insert(name);
        }
    }
    out
}

impl Elements {
    /// No status file is open.
    pub(super) fn is_closed(&self) -> bool {
        self.file.is_none()
    }
}

impl Runtime {
    /// Open the status file when the config has array elements (and the state directory
    /// can be written).
    pub(super) fn open_elements(&mut self, has_elements: bool) {
        if !has_elements || !self.obs.usable {
            return;
        }
        let path = self.obs.paths.dir.join(FILE);
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => {
                let msg = format!(
                    "Element status file: {} (one line per ended element)",
                    path.display()
                );
                self.master(Level::Info, &msg);
                self.elements.file = Some(f);
                self.elements.path = path;
            }
            Err(e) => {
                let msg = format!("cannot open the element status file {}: {e}; --resume will rely on the state file alone", path.display());
                self.master(Level::Warning, &msg);
            }
        }
    }

    /// An event of the core: note where an element starts, record it when it ends.
    pub(super) fn element_event(&mut self, event: &Event) {
        if self.elements.file.is_none() {
            return;
        }
        let Event::Task { task, what } = event else {
            return;
        };
        match what {
            TaskEvent::Started { node, .. } => {
                let host = node
                    .clone()
                    .unwrap_or_else(|| crate::host::node().to_owned());
                self.elements.hosts.insert(task.clone(), host);
            }
            TaskEvent::Ended { end, uptime, .. } => {
                let Some((spec, attempts)) = self.core.task_record(task) else {
                    return;
                };
                let Some(el) = &spec.element else { return };
                let end_at = Utc::now();
                let start_at = uptime
                    .and_then(|u| chrono::Duration::from_std(u).ok())
                    .map_or(end_at, |u| end_at - u);
                let (exit, signal) = match end {
                    ProcessEnd::Exited(c) => (Some(*c), None),
                    ProcessEnd::Signaled(s) => (None, Some(*s)),
                    _ => (None, None),
                };
                let line = StatusLine {
                    task: el.array.clone(),
                    id: el.id,
                    item: el.item.clone(),
                    settings: crate::core::settings_hash(&spec),
                    host: self
                        .elements
                        .hosts
                        .remove(task)
                        .unwrap_or_else(|| crate::host::node().to_owned()),
                    start: rfc3339(start_at),
                    end: rfc3339(end_at),
                    exit,
                    signal,
                    attempts,
                };
                self.write_element(&line);
            }
            _ => {}
        }
    }

    fn write_element(&mut self, line: &StatusLine) {
        let Some(f) = &mut self.elements.file else {
            return;
        };
        match f.write_all(line.encode().as_bytes()) {
            Ok(()) => self.elements.failing = false,
            Err(e) if !self.elements.failing => {
                self.elements.failing = true;
                let msg = format!(
                    "cannot write the element status file {}: {e} (lines dropped until it works again)",
                    self.elements.path.display()
                );
                self.master(Level::Error, &msg);
            }
            Err(_) => {}
        }
    }
}

/// The status file of state directory `dir`, as the previous run left it.
pub(super) fn previous_in(dir: &Path) -> Option<Previous> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    Some(read_previous(&text))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(task: &str, id: u64, exit: Option<i32>, settings: &str) -> String {
        StatusLine {
            task: task.into(),
            id,
            item: id.to_string(),
            settings: settings.into(),
            host: "n1".into(),
            start: "2026-12-05T10:00:00.000Z".into(),
            end: "2026-12-05T10:00:01.000Z".into(),
            exit,
            signal: None,
            attempts: 1,
        }
        .encode()
    }

    #[test]
    fn the_last_line_of_an_element_wins_and_cut_lines_are_skipped() {
        let text = [
            line("sweep", 1, Some(1), "h1"),
            line("sweep", 1, Some(0), "h1"),
            line("sweep", 2, Some(0), "h2"),
            line("sweep", 2, None, "h2"),
            line("sweep", 3, Some(3), "h3"),
            "{\"task\": \"sweep\", \"id\": 4, \"ite".to_owned(),
        ]
        .concat();
        let p = read_previous(&text);
        assert_eq!(
            p.succeeded,
            HashMap::from([("sweep[1]".to_owned(), "h1".to_owned())])
        );
        assert_eq!(
            p.failed,
            HashSet::from(["sweep[2]".to_owned(), "sweep[3]".to_owned()])
        );
    }
}
