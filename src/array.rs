//! Task arrays and task files (issue 19): the same command over many elements, held
//! without one object per element.
//!
//! An array is one of four forms, each answering "how many elements" and "element i" in
//! O(1) (O(keys) for a matrix) from a compact description:
//! * `range`: `"1-1000"`, with a step `"0-100:10"`, or a list of ranges `"1-5,9,20-22"`
//!   (Slurm's `--array` syntax); an element's id is its number;
//! * `values`: a list of strings; ids 0, 1, ...;
//! * `matrix`: named lists, the cartesian product, the last key varying fastest
//!   (`{"lr": [0.1, 0.01], "seed": [1, 2, 3]}` is 6 elements); ids 0, 1, ...;
//! * a file, one value per line (`lines`), or a task file, one shell command per line with
//!   `#` comments and blank lines skipped, as disBatch reads it; ids 0, 1, ... over the
//!   values kept.
//!
//! An element is named `task[id]` in the log, status and state. What has finished is
//! kept as a bit per element ([`Done`]): 100,000 elements cost 12.5 kB, not 100,000 task
//! structs. The status file (one JSON line per finished element) is read back by
//! `--resume` / `--retry-failed` ([`StatusLine`]).
//!
//! Owns: array forms, element ids and values, task files, status lines, the done set.
//! Must not: read files (callers pass the text), run anything, know the config's tree.

use serde::{Deserialize, Serialize};

/// The element status file's name, in the state directory: one [`StatusLine`] per ended
/// element attempt.
pub const STATUS_FILE: &str = "elements.jsonl";

/// Largest number of elements of one array (keeps ids in u32 and memory bounded).
pub const MAX_ELEMENTS: u64 = 10_000_000;

/// One array, compactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Array {
    /// Ranges of numbers: (first, last, step), in order.
    Range(Vec<(u64, u64, u64)>),
    /// Given values.
    Values(Vec<String>),
    /// Named lists; the cartesian product.
    Matrix(Vec<(String, Vec<String>)>),
}

/// One element: its id, its value (`{item}`) and its named values (`{lr}`, a matrix's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// `task[id]`: the number of a range, else the 0-based position.
    pub id: u64,
    /// `{item}`: the number, the value, the line; a matrix's values joined by spaces.
    pub item: String,
    /// A matrix's `(key, value)` pairs, in key order; empty for the other forms.
    pub named: Vec<(String, String)>,
}

/// Why an array description is refused (the caller adds file, task and field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayError {
    /// A piece of a range that does not read (the piece).
    BadRange(String),
    /// A range's last number is below its first (the piece).
    Backwards(String),
    /// No elements at all.
    Empty,
    /// More than [`MAX_ELEMENTS`] (how many).
    TooMany(u64),
    /// A matrix key used twice, or a key that is not a placeholder name (the key).
    BadKey(String),
}

impl std::fmt::Display for ArrayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArrayError::BadRange(p) => write!(
                f,
                "`{p}` is not a range: write `1-100`, `0-100:10` (a step) or `1-5,9,20-22`"
            ),
            ArrayError::Backwards(p) => write!(f, "the range `{p}` ends before it starts"),
            ArrayError::Empty => f.write_str("the array has no elements"),
            ArrayError::TooMany(n) => write!(
                f,
                "the array has {n} elements, more than the {MAX_ELEMENTS} bansuri holds in one task"
            ),
            ArrayError::BadKey(k) => write!(
                f,
                "`{k}` cannot name a matrix list: use letters, digits and `_`, not starting with a digit, each key once (it is the placeholder `{{{k}}}`)"
            ),
        }
    }
}

impl std::error::Error for ArrayError {}

impl Array {
    /// Parse Slurm-style ranges: `1-1000`, `0-100:10`, `7`, `1-5,9,20-22`.
    pub fn range(text: &str) -> Result<Array, ArrayError> {
        let mut parts = Vec::new();
        for piece in text.split(',').map(str::trim) {
            let bad = || ArrayError::BadRange(piece.to_owned());
            let (span, step) = match piece.split_once(':') {
                Some((s, st)) => (s, st.trim().parse::<u64>().map_err(|_| bad())?),
                None => (piece, 1),
            };
            if step == 0 {
                return Err(bad());
            }
            let (a, b) = span.split_once('-').unwrap_or((span, span));
            let (a, b): (u64, u64) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if b < a {
                return Err(ArrayError::Backwards(piece.to_owned()));
            }
            parts.push((a, b, step));
        }
        Array::Range(parts).checked()
    }

    /// Given values (empty is an error).
    pub fn values(values: Vec<String>) -> Result<Array, ArrayError> {
        Array::Values(values).checked()
    }

    /// Named lists (keys must be placeholder names, each once; every list non-empty).
    pub fn matrix(lists: Vec<(String, Vec<String>)>) -> Result<Array, ArrayError> {
        for (i, (k, _)) in lists.iter().enumerate() {
            let ident = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident || lists[..i].iter().any(|(o, _)| o == k) || k == "item" || k == "index" {
                return Err(ArrayError::BadKey(k.clone()));
            }
        }
        Array::Matrix(lists).checked()
    }

    /// One value per line of `text` (a file's contents); blank lines are skipped.
    pub fn lines(text: &str) -> Result<Array, ArrayError> {
        Array::values(
            text.lines()
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// A task file: one shell command per line; blank lines and `#` comments (a line
    /// whose first non-blank character is `#`) are skipped.
    pub fn task_file(text: &str) -> Result<Array, ArrayError> {
        Array::values(
            text.lines()
                .map(|l| l.strip_suffix('\r').unwrap_or(l).trim())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect(),
        )
    }

    fn checked(self) -> Result<Array, ArrayError> {
        match self.len() {
            0 => Err(ArrayError::Empty),
            n if n > MAX_ELEMENTS => Err(ArrayError::TooMany(n)),
            _ => Ok(self),
        }
    }

    /// How many elements.
    pub fn len(&self) -> u64 {
        match self {
            Array::Range(parts) => parts
                .iter()
                .map(|&(a, b, s)| (b - a) / s + 1)
                .fold(0u64, u64::saturating_add),
            Array::Values(v) => v.len() as u64,
            Array::Matrix(lists) => lists
                .iter()
                .map(|(_, l)| l.len() as u64)
                .fold(1u64, u64::saturating_mul),
        }
    }

    /// No elements (never true for an array that was built by the constructors).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element at position `pos` (0-based, `< len()`).
    pub fn element(&self, pos: u64) -> Option<Element> {
        if pos >= self.len() {
            return None;
        }
        Some(match self {
            Array::Range(parts) => {
                let mut rest = pos;
                let mut n = 0;
                for &(a, b, s) in parts {
                    let count = (b - a) / s + 1;
                    if rest < count {
                        n = a + rest * s;
                        break;
                    }
                    rest -= count;
                }
                Element {
                    id: n,
                    item: n.to_string(),
                    named: Vec::new(),
                }
            }
            Array::Values(v) => Element {
                id: pos,
                item: v[pos as usize].clone(),
                named: Vec::new(),
            },
            Array::Matrix(lists) => {
                let mut rest = pos;
                let mut named = vec![(String::new(), String::new()); lists.len()];
                for (slot, (k, l)) in named.iter_mut().zip(lists).rev() {
                    let n = l.len() as u64;
                    *slot = (k.clone(), l[(rest % n) as usize].clone());
                    rest /= n;
                }
                let item = named
                    .iter()
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                Element {
                    id: pos,
                    item,
                    named,
                }
            }
        })
    }

    /// The position of the element with id `id`, if there is one.
    pub fn position(&self, id: u64) -> Option<u64> {
        match self {
            Array::Range(parts) => {
                let mut before = 0u64;
                for &(a, b, s) in parts {
                    if (a..=b).contains(&id) && (id - a) % s == 0 {
                        return Some(before + (id - a) / s);
                    }
                    before += (b - a) / s + 1;
                }
                None
            }
            _ => (id < self.len()).then_some(id),
        }
    }
}

/// The name of element `id` of `task`: `task[id]`.
pub fn element_name(task: &str, id: u64) -> String {
    format!("{task}[{id}]")
}

/// `task[17]` back into (`task`, 17).
pub fn split_element_name(name: &str) -> Option<(&str, u64)> {
    let (task, rest) = name.strip_suffix(']')?.rsplit_once('[')?;
    Some((task, rest.parse().ok()?))
}

/// One bit per element position: finished (successfully) or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    bits: Vec<u64>,
    count: u64,
}

impl Done {
    /// Mark position `pos`; true when it was not marked before.
    pub fn insert(&mut self, pos: u64) -> bool {
        let (w, b) = ((pos / 64) as usize, pos % 64);
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        let fresh = self.bits[w] & (1 << b) == 0;
        self.bits[w] |= 1 << b;
        self.count += fresh as u64;
        fresh
    }

    /// Is position `pos` marked?
    pub fn contains(&self, pos: u64) -> bool {
        self.bits
            .get((pos / 64) as usize)
            .is_some_and(|w| w & (1 << (pos % 64)) != 0)
    }

    /// How many positions are marked.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Nothing marked.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// One line of the status file: a finished element (JSON, one per line, appended as
/// elements end, readable while the job runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusLine {
    /// The task.
    pub task: String,
    /// The element's id.
    pub id: u64,
    /// Its value (the command of a task-file line).
    pub item: String,
    /// A digest of the settings it ran with (command, environment): `--resume` skips an
    /// element only when they are the same.
    pub settings: String,
    /// The host it ran on.
    pub host: String,
    /// Start and end, RFC 3339.
    pub start: String,
    /// See `start`.
    pub end: String,
    /// Exit code, or `null` when a signal ended it.
    pub exit: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Attempts it took.
    pub attempts: u32,
}

impl StatusLine {
    /// The line, newline included.
    pub fn encode(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Did the element succeed?
    pub fn succeeded(&self) -> bool {
        self.exit == Some(0)
    }
}

/// What a status file says about one task's elements: the positions that succeeded
/// (with settings equal to `settings(id)`) and those whose last record is a failure.
/// Lines of other tasks, unreadable lines (a line cut by a crash) and ids that are no
/// longer in the array are skipped; a later line for an element wins.
pub fn read_status(
    text: &str,
    task: &str,
    array: &Array,
    settings: impl Fn(u64) -> String,
) -> (Done, Done) {
    let mut ok = Done::default();
    let mut failed_last = std::collections::HashMap::new();
    for line in text.lines() {
        let Ok(l) = serde_json::from_str::<StatusLine>(line) else {
            continue;
        };
        if l.task != task {
            continue;
        }
        let Some(pos) = array.position(l.id) else {
            continue;
        };
        if l.succeeded() && l.settings == settings(l.id) {
            ok.insert(pos);
            failed_last.remove(&pos);
        } else if !l.succeeded() && !ok.contains(pos) {
            failed_last.insert(pos, ());
        }
    }
    let mut failed = Done::default();
    for pos in failed_last.into_keys() {
        failed.insert(pos);
    }
    (ok, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(a: &Array) -> Vec<u64> {
        (0..a.len()).map(|p| a.element(p).unwrap().id).collect()
    }

    #[test]
    fn ranges_read_as_slurm_writes_them() {
        assert_eq!(ids(&Array::range("1-5").unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(ids(&Array::range("0-10:5").unwrap()), [0, 5, 10]);
        assert_eq!(
            ids(&Array::range("1-3, 9,20-21").unwrap()),
            [1, 2, 3, 9, 20, 21]
        );
        assert_eq!(Array::range("1-100000").unwrap().len(), 100_000);
        let a = Array::range("1-1000").unwrap();
        assert_eq!(a.element(16).unwrap().item, "17");
        assert_eq!(a.position(17), Some(16));
        assert_eq!(Array::range("0-10:5").unwrap().position(7), None);
        for bad in ["", "a-3", "1-", "3-1", "1-5:0", "1-5:x", "1--5"] {
            let e = Array::range(bad).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        assert_eq!(
            Array::range("5-1").unwrap_err(),
            ArrayError::Backwards("5-1".into())
        );
        assert!(matches!(
            Array::range("0-99999999999"),
            Err(ArrayError::TooMany(_))
        ));
    }

    #[test]
    fn a_matrix_is_the_cartesian_product_last_key_fastest() {
        let m = Array::matrix(vec![
            ("lr".into(), vec!["0.1".into(), "0.01".into()]),
            ("seed".into(), vec!["1".into(), "2".into(), "3".into()]),
        ])
        .unwrap();
        assert_eq!(m.len(), 6);
        let e = m.element(4).unwrap();
        assert_eq!(e.id, 4);
        assert_eq!(
            e.named,
            [("lr".into(), "0.01".into()), ("seed".into(), "2".into())]
        );
        assert_eq!(e.item, "0.01 2");
        let all: Vec<String> = (0..6).map(|p| m.element(p).unwrap().item).collect();
        assert_eq!(
            all,
            ["0.1 1", "0.1 2", "0.1 3", "0.01 1", "0.01 2", "0.01 3"]
        );
        for bad in ["1x", "a-b", "", "item"] {
            assert!(
                matches!(
                    Array::matrix(vec![(bad.into(), vec!["v".into()])]),
                    Err(ArrayError::BadKey(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            Array::matrix(vec![("a".into(), vec![]), ("b".into(), vec!["1".into()])]),
            Err(ArrayError::Empty)
        );
    }

    #[test]
    fn files_and_task_files() {
        let a = Array::lines("a.txt\r\n\nb c.txt\n").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a.element(1).unwrap().item, "b c.txt");
        let t =
            Array::task_file("# sweep\n\n  python run.py 1  \n#python run.py 2\npython run.py 3\n")
                .unwrap();
        let cmds: Vec<String> = (0..t.len()).map(|p| t.element(p).unwrap().item).collect();
        assert_eq!(cmds, ["python run.py 1", "python run.py 3"]);
        assert_eq!(Array::task_file("# nothing\n"), Err(ArrayError::Empty));
    }

    #[test]
    fn element_names_round_trip() {
        assert_eq!(element_name("sweep", 17), "sweep[17]");
        assert_eq!(split_element_name("sweep[17]"), Some(("sweep", 17)));
        assert_eq!(split_element_name("a[b][3]"), Some(("a[b]", 3)));
        assert_eq!(split_element_name("plain"), None);
    }

    #[test]
    fn the_done_set_is_a_bit_per_element() {
        let mut d = Done::default();
        assert!(d.insert(99_999));
        assert!(!d.insert(99_999));
        assert!(d.insert(0));
        assert!(d.contains(0) && d.contains(99_999) && !d.contains(1));
        assert_eq!(d.len(), 2);
        // 100,000 elements in about 12.5 kB.
        assert!(d.bits.len() * 8 <= 12_504);
    }

    #[test]
    fn the_status_file_tells_what_succeeded_and_what_failed_last() {
        let a = Array::range("1-5").unwrap();
        let line = |id, exit: Option<i32>, settings: &str| StatusLine {
            task: "sweep".into(),
            id,
            item: id.to_string(),
            settings: settings.into(),
            host: "n1".into(),
            start: "2026-12-04T00:00:00Z".into(),
            end: "2026-12-04T00:00:01Z".into(),
            exit,
            signal: None,
            attempts: 1,
        };
        let mut text = String::new();
        text += &line(1, Some(0), "s").encode();
        text += &line(2, Some(1), "s").encode();
        text += &line(3, Some(0), "old").encode(); // succeeded with other settings: run again
        text += &line(4, Some(1), "s").encode();
        text += &line(4, Some(0), "s").encode(); // a retry that succeeded wins
        text += "{\"task\":\"sweep\",\"id\":5,\"ite"; // cut by a crash
        text += "\n";
        let mut other = line(2, Some(0), "s");
        other.task = "other".into();
        text += &other.encode();
        let (ok, failed) = read_status(&text, "sweep", &a, |_| "s".into());
        let pos = |d: &Done| {
            (0..5)
                .filter(|&p| d.contains(p))
                .map(|p| p + 1)
                .collect::<Vec<u64>>()
        };
        assert_eq!(pos(&ok), [1, 4]);
        assert_eq!(pos(&failed), [2]);
        let back: StatusLine = serde_json::from_str(line(2, None, "s").encode().trim()).unwrap();
        assert_eq!(back.exit, None);
    }
}
