//! Child output to job log lines: the line splitter and the job log writer.
//!
//! Owns the job log's formats (text and JSON), its buffering, and what happens when
//! writing fails. `LineSplitter` cuts a pipe's byte stream into lines with bounded memory;
//! `JobLog` prefixes each line with time and task and appends it, whole, to one large
//! buffer that it writes out when full or when asked (`flush`).
//!
//! It must not read pipes, wait, or decide anything about tasks: the runtime reads the
//! pipes and calls in here, passing the wall-clock time (so nothing here reads a clock).
//! It must never panic or stop on a failed write: the job log is where problems are
//! reported, so a full disk or a closed stdout loses log data, not the job. The failure is
//! kept for the runtime to report once (`take_error`).
//!
//! Speed matters because one thread drains every child: the splitter finds newlines with
//! memchr and hands out slices of the caller's chunk (no copy, no allocation) except for a
//! line that straddles two chunks; the writer formats the time stamp once per second and
//! copies each line once into its buffer.

use std::io::{self, Write};

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use memchr::memchr;

use crate::level::Level;
use crate::spec::LogFormat;

/// Cuts a byte stream into lines.
///
/// Lines are emitted without their `\n` (and without a `\r` right before it). A line
/// longer than `max_line` is emitted in pieces of `max_line` bytes: split, never dropped.
/// Memory is bounded: the pending partial line never holds more than `max_line + 1` bytes
/// (the extra byte is a `\r` that may turn out to end the line), whatever the input.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    /// A splitter that emits lines of at most `max_line` bytes (a zero is taken as 1).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max: max_line.max(1),
        }
    }

    /// Feeds a chunk; calls `emit` for each complete line (or full piece of a long line).
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        let max = self.max;
        while !data.is_empty() {
            let len = self.buf.len();
            if len > max {
                // `buf` is a full piece plus a `\r`: the next byte says whether that `\r`
                // ends the line or starts the next piece.
                emit(&self.buf[..max]);
                self.buf.clear();
                if data[0] == b'\n' {
                    data = &data[1..];
                } else {
                    self.buf.push(b'\r');
                }
                continue;
            }
            if len == max {
                // A full piece: a newline now means the line was exactly `max` long (or
                // `max - 1` and a `\r` ending).
                match data[0] {
                    b'\n' => {
                        emit(strip_cr(&self.buf));
                        self.buf.clear();
                        data = &data[1..];
                    }
                    b'\r' => {
                        self.buf.push(b'\r');
                        data = &data[1..];
                    }
                    _ => {
                        emit(&self.buf);
                        self.buf.clear();
                    }
                }
                continue;
            }
            // Look no further than where the current piece would be full, so a huge chunk
            // without newlines costs linear time.
            let room = max - len;
            let window = &data[..data.len().min(room + 1)];
            match memchr(b'\n', window) {
                Some(i) => {
                    if len == 0 {
                        // The common case: a whole line inside the chunk, no copy.
                        emit(strip_cr(&data[..i]));
                    } else {
                        self.append(&data[..i]);
                        emit(strip_cr(&self.buf));
                        self.buf.clear();
                    }
                    data = &data[i + 1..];
                }
                None => {
                    let take = data.len().min(room);
                    self.append(&data[..take]);
                    data = &data[take..];
                }
            }
        }
    }

    /// Emits the last partial line, if any (when the pipe closes), and frees the buffer.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(strip_cr(&self.buf));
        }
        self.buf = Vec::new();
    }

    /// True when no partial line is pending.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends to the pending line, growing the buffer no further than `max + 1`.
    fn append(&mut self, bytes: &[u8]) {
        let need = self.buf.len() + bytes.len();
        if need > self.buf.capacity() {
            let cap = need.max(self.buf.capacity() * 2).max(256).min(self.max + 1);
            self.buf.reserve_exact(cap - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

/// Which pipe a child line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (or stdout and stderr combined).
    Stdout,
    /// Standard error, when sent to the job log separately.
    Stderr,
}

/// The zone job log time stamps are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogZone {
    /// The process's local time zone (the default, as in the Bansuri manual).
    Local,
    /// A fixed offset (UTC is `FixedOffset::east_opt(0)`); tests use it.
    Fixed(FixedOffset),
}

/// Bytes buffered before a write to the output.
const BUFFER: usize = 64 * 1024;

/// The job log writer.
///
/// Text format:
/// ```text
/// [2026-01-19 10:00:01] [hello-world] Process finished with code 0
/// [2026-01-19 10:00:01] [MASTER] WARNING: config file changed on disk is invalid
/// [2026-01-19 10:00:01] [hello-world] | a line of stdout (or combined output)
/// [2026-01-19 10:00:01] [hello-world] ! a line of stderr
/// ```
/// JSON format, one object per line:
/// ```text
/// {"time":"2026-01-19T10:00:01.123+01:00","task":"hello-world","kind":"event","level":"INFO","message":"..."}
/// {"time":"2026-01-19T10:00:01.123+01:00","task":"hello-world","kind":"stdout","line":"..."}
/// ```
/// Output is buffered (64 KiB) and written in whole lines; call `flush` when the event
/// loop goes idle. The output should be a plain blocking writer (a `File`, not a
/// `LineWriter` such as `io::stdout()`, which would write line by line); SIGPIPE must be
/// ignored so that a closed stdout is an error here, not the death of the process.
pub struct JobLog {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    format: LogFormat,
    min_level: Level,
    zone: LogZone,
    stamp: Stamp,
    /// Inside a failure episode: writes fail and data is being dropped.
    failing: bool,
    /// The episode's message, until the runtime takes it.
    error: Option<String>,
    /// Lines dropped by failed writes and not yet reported (`N lines lost (why)`).
    lost: u64,
    /// Why they were lost (`disk full`).
    lost_why: String,
    /// A failed write stopped inside a line: the next record must start on a new line.
    cut: bool,
    /// The last event written, to collapse identical ones (see [`JobLog::event`]).
    repeat: Option<Repeat>,
    /// The time of the latest line (for the records this writer adds itself).
    last_wall: DateTime<Utc>,
}

/// An event line and how often it came again since it was last written.
struct Repeat {
    task: String,
    level: Level,
    msg: String,
    /// Identical events dropped since the line (or the last summary) was written.
    count: u64,
    /// When the line (or the last summary) was written.
    since: DateTime<Utc>,
    /// When the last identical event came.
    last: DateTime<Utc>,
}

/// Identical events further apart than this are each written: they are a rhythm (a
/// re-read of the config, a slow retry), not a flood.
pub const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Identical bansuri events in a row are summarised at most this often
/// (`... repeated N times`), and when a different event comes.
pub const REPEAT_SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The formatted time of one second, reused while the second has not changed.
struct Stamp {
    second: Option<i64>,
    /// `2026-01-19 10:00:01`
    text: String,
    /// `2026-01-19T10:00:01`
    iso: String,
    /// `+01:00`
    offset: String,
}

impl JobLog {
    /// A job log writing to `out`, time stamps in local time.
    pub fn new(out: Box<dyn Write + Send>, format: LogFormat, min_level: Level) -> Self {
        Self::with_zone(out, format, min_level, LogZone::Local)
    }

    /// A job log with time stamps in the given zone.
    pub fn with_zone(
        out: Box<dyn Write + Send>,
        format: LogFormat,
        min_level: Level,
        zone: LogZone,
    ) -> Self {
        JobLog {
            out,
            buf: Vec::with_capacity(BUFFER),
            format,
            min_level,
            zone,
            stamp: Stamp {
                second: None,
                text: String::new(),
                iso: String::new(),
                offset: String::new(),
            },
            failing: false,
            error: None,
            lost: 0,
            lost_why: String::new(),
            cut: false,
            repeat: None,
            last_wall: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Switches format (hot reload); takes effect with the next line.
    pub fn set_format(&mut self, f: LogFormat) {
        self.format = f;
    }

    /// Write to `out` from now on (the log file changed on reload); what is buffered goes
    /// to the old output first.
    pub fn set_output(&mut self, out: Box<dyn Write + Send>) {
        self.flush();
        self.out = out;
        self.failing = false;
        // A new file starts clean; lines lost in the old one are still reported.
        self.cut = false;
    }

    /// Sets the least severe level that is written.
    pub fn set_level(&mut self, l: Level) {
        self.min_level = l;
    }

    /// A lifecycle line of `task` (`None`: bansuri's own, shown as `MASTER`). Dropped if
    /// below the minimum level. A message with several lines is written as several lines
    /// with the same prefix (text format).
    ///
    /// The same event again and again (same task, level and text: a 1 ms timer whose run
    /// is still going, say) is written once; the copies are counted and summarised as
    /// `... repeated N times` when a different event comes, and at most every
    /// [`REPEAT_SUMMARY_EVERY`] while they go on. Child output is never collapsed.
    pub fn event(&mut self, wall: DateTime<Utc>, task: Option<&str>, level: Level, msg: &str) {
        if level < self.min_level {
            return;
        }
        let task = task.unwrap_or("MASTER");
        if let Some(r) = &mut self.repeat {
            // DEBUG lines are asked for (`-v`) to see each one; only a flood is collapsed.
            let flood = level > Level::Debug
                && (wall - r.last).to_std().map_or(true, |d| d < REPEAT_WINDOW);
            if r.level == level && r.task == task && r.msg == msg && flood {
                r.last = wall;
                r.count += 1;
                let due = (wall - r.since)
                    .to_std()
                    .is_ok_and(|d| d >= REPEAT_SUMMARY_EVERY);
                if due {
                    let count = std::mem::take(&mut r.count);
                    r.since = wall;
                    self.write_event(wall, task, level, &repeated(count));
                }
                return;
            }
        }
        if let Some(r) = self.repeat.take() {
            if r.count > 0 {
                self.write_event(wall, &r.task, r.level, &repeated(r.count));
            }
        }
        self.repeat = Some(Repeat {
            task: task.to_owned(),
            level,
            msg: msg.to_owned(),
            count: 0,
            since: wall,
            last: wall,
        });
        self.write_event(wall, task, level, msg);
    }

    /// Writes the summary of identical events still being counted (at shutdown).
    pub fn end_repeats(&mut self) {
        if let Some(r) = self.repeat.take() {
            if r.count > 0 {
                self.write_event(self.last_wall, &r.task, r.level, &repeated(r.count));
            }
        }
    }

    fn write_event(&mut self, wall: DateTime<Utc>, task: &str, level: Level, msg: &str) {
        self.make_room(msg.len() + task.len() + 128);
        self.update_stamp(wall);
        match self.format {
            LogFormat::Text => {
                let tag: &[u8] = match level {
                    Level::Info => b"",
                    Level::Debug => b"DEBUG: ",
                    Level::Warning => b"WARNING: ",
                    Level::Error => b"ERROR: ",
                };
                let body = msg.strip_suffix('\n').unwrap_or(msg);
                for line in body.split('\n') {
                    self.text_prefix(task);
                    self.buf.extend_from_slice(tag);
                    self.buf.extend_from_slice(strip_cr(line.as_bytes()));
                    self.buf.push(b'\n');
                }
            }
            LogFormat::Json => {
                self.json_prefix(wall, task, "event");
                self.buf.extend_from_slice(b",\"level\":\"");
                self.buf.extend_from_slice(level.name().as_bytes());
                self.buf.extend_from_slice(b"\",\"message\":\"");
                escape_json(&mut self.buf, msg);
                self.buf.extend_from_slice(b"\"}\n");
            }
        }
        self.flush_if_full();
    }

    /// One line of a child's output (without its newline). Bytes pass through untouched
    /// in text format; JSON replaces invalid UTF-8 with U+FFFD.
    pub fn child_line(&mut self, wall: DateTime<Utc>, task: &str, stream: Stream, line: &[u8]) {
        self.make_room(line.len() + task.len() + 96);
        self.update_stamp(wall);
        match self.format {
            LogFormat::Text => {
                self.text_prefix(task);
                self.buf.extend_from_slice(match stream {
                    Stream::Stdout => b"| ",
                    Stream::Stderr => b"! ",
                });
                self.buf.extend_from_slice(line);
                self.buf.push(b'\n');
            }
            LogFormat::Json => {
                let kind = match stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                self.json_prefix(wall, task, kind);
                self.buf.extend_from_slice(b",\"line\":\"");
                for chunk in line.utf8_chunks() {
                    escape_json(&mut self.buf, chunk.valid());
                    if !chunk.invalid().is_empty() {
                        self.buf.extend_from_slice("\u{FFFD}".as_bytes());
                    }
                }
                self.buf.extend_from_slice(b"\"}\n");
            }
        }
        self.flush_if_full();
    }

    /// Writes everything buffered and flushes the output.
    pub fn flush(&mut self) {
        if self.write_buffer() {
            if let Err(e) = self.out.flush() {
                self.failed(&e);
            }
        }
    }

    /// True when lines wait in the buffer (the runtime flushes when idle).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The message of a write failure, once per episode of failures (an episode ends
    /// with the next successful write). Data that could not be written was dropped.
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// Writes the buffer out if the next `need` bytes would not fit, so that the buffer
    /// does not reallocate and every write carries whole lines.
    fn make_room(&mut self, need: usize) {
        if !self.buf.is_empty() && self.buf.len() + need > self.buf.capacity() {
            self.write_buffer();
        }
    }

    fn flush_if_full(&mut self) {
        if self.buf.len() >= BUFFER {
            self.write_buffer();
        }
    }

    /// Writes the whole buffer; on error drops the rest of it. True if all was written.
    ///
    /// Never glues records: after a write that stopped inside a line, the next write
    /// starts with a newline, then `N lines lost (why)` for what was dropped.
    fn write_buffer(&mut self) -> bool {
        let mut header = 0;
        // Also with nothing new to write: the report of lost lines is due as soon as
        // writing works again.
        if self.cut || self.lost > 0 {
            // Room for the header and the records: `write_event` must not flush (and
            // come back here) while the header is built.
            let cap = BUFFER.max(self.buf.len() + 512);
            let records = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
            if self.cut {
                self.buf.push(b'\n');
            }
            if self.lost > 0 {
                let n = self.lost;
                let s = if n == 1 { "" } else { "s" };
                let msg = format!("{n} line{s} lost ({})", self.lost_why);
                self.write_event(self.last_wall, "MASTER", Level::Warning, &msg);
            }
            header = self.buf.len();
            self.buf.extend_from_slice(&records);
        }
        let mut done = 0;
        let mut result = Ok(());
        while done < self.buf.len() {
            match self.out.write(&self.buf[done..]) {
                Ok(0) => {
                    result = Err(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                // Interrupted by a signal before anything was written: just retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let had_data = !self.buf.is_empty();
        if result.is_err() {
            // Every record ends with a newline: the ones not (wholly) written are lost;
            // the header's are not counted, it is written again.
            let from = done.max(header).min(self.buf.len());
            self.lost += memchr::memchr_iter(b'\n', &self.buf[from..]).count() as u64;
            if done > 0 {
                self.cut = self.buf[done - 1] != b'\n';
            }
        }
        self.buf.clear();
        match result {
            Ok(()) => {
                if had_data {
                    self.failing = false;
                    self.lost = 0;
                    self.cut = false;
                }
                true
            }
            Err(e) => {
                self.lost_why = if e.raw_os_error() == Some(libc::ENOSPC) {
                    "disk full".to_owned()
                } else {
                    format!("cannot write: {e}")
                };
                self.failed(&e);
                false
            }
        }
    }

    fn failed(&mut self, e: &io::Error) {
        if !self.failing {
            self.failing = true;
            self.error = Some(format!(
                "cannot write the job log: {e}; log output is dropped until writing works again"
            ));
        }
    }

    fn update_stamp(&mut self, wall: DateTime<Utc>) {
        self.last_wall = wall;
        let second = wall.timestamp();
        if self.stamp.second == Some(second) {
            return;
        }
        let offset = match self.zone {
            LogZone::Local => chrono::Local
                .offset_from_utc_datetime(&wall.naive_utc())
                .fix(),
            LogZone::Fixed(o) => o,
        };
        let local = wall.with_timezone(&offset);
        let s = &mut self.stamp;
        s.second = Some(second);
        s.text.clear();
        s.iso.clear();
        s.offset.clear();
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(s.text, "{}", local.format("%Y-%m-%d %H:%M:%S"));
        let _ = write!(s.iso, "{}", local.format("%Y-%m-%dT%H:%M:%S"));
        let _ = write!(s.offset, "{offset}");
    }

    /// `[2026-01-19 10:00:01] [task] `
    fn text_prefix(&mut self, task: &str) {
        self.buf.push(b'[');
        self.buf.extend_from_slice(self.stamp.text.as_bytes());
        self.buf.extend_from_slice(b"] [");
        self.buf.extend_from_slice(task.as_bytes());
        self.buf.extend_from_slice(b"] ");
    }

    /// `{"time":"...","task":"...","kind":"..."` (no closing brace).
    fn json_prefix(&mut self, wall: DateTime<Utc>, task: &str, kind: &str) {
        // A leap second shows as 1000+ ms in chrono; keep three digits.
        let ms = wall.timestamp_subsec_millis().min(999);
        let digits = [
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ];
        self.buf.extend_from_slice(b"{\"time\":\"");
        self.buf.extend_from_slice(self.stamp.iso.as_bytes());
        self.buf.push(b'.');
        self.buf.extend_from_slice(&digits);
        self.buf.extend_from_slice(self.stamp.offset.as_bytes());
        self.buf.extend_from_slice(b"\",\"task\":\"");
        escape_json(&mut self.buf, task);
        self.buf.extend_from_slice(b"\",\"kind\":\"");
        self.buf.extend_from_slice(kind.as_bytes());
        self.buf.push(b'"');
    }
}

/// The summary of `count` identical events.
fn repeated(count: u64) -> String {
    let s = if count == 1 { "" } else { "s" };
    format!("... repeated {count} time{s}")
}

impl Drop for JobLog {
    fn drop(&mut self) {
        self.end_repeats();
        self.flush();
    }
}

/// Appends `s` as the inside of a JSON string: quotes, backslashes and all control
/// characters escaped, everything else copied in runs.
fn escape_json(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    // ---- LineSplitter ----

    fn split_all(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| out.push(l.to_vec()));
        }
        s.finish(&mut |l| out.push(l.to_vec()));
        assert!(s.is_empty());
        out
    }

    /// What the splitter must produce: split on `\n`, strip one `\r`, cut into pieces.
    fn reference(input: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = parts.pop().unwrap_or(b"");
        let mut add = |line: &[u8]| {
            let line = strip_cr(line);
            if line.is_empty() {
                out.push(Vec::new());
            }
            for piece in line.chunks(max) {
                out.push(piece.to_vec());
            }
        };
        for p in parts {
            add(p);
        }
        if !last.is_empty() {
            add(last);
        }
        out
    }

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn splits_lines_crlf_and_empty_lines() {
        assert_eq!(
            split_all(64, &[b"a\nbb\r\n\n\r\nccc"]),
            lines(&["a", "bb", "", "", "ccc"])
        );
        // Only one `\r` before the newline is a line ending; others are data.
        assert_eq!(split_all(64, &[b"x\r\r\ny\rz\n"]), lines(&["x\r", "y\rz"]));
        assert_eq!(split_all(64, &[b""]), Vec::<Vec<u8>>::new());
        assert_eq!(split_all(64, &[b"\n"]), lines(&[""]));
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let sample: &[u8] =
            b"first line\nsecond\r\n\nthird line is longer than sixteen bytes\r\n\xff\xfe binary\n\rlast";
        for max in [1, 2, 5, 16, 64] {
            let want = reference(sample, max);
            assert_eq!(split_all(max, &[sample]), want, "max {max}");
            for i in 0..=sample.len() {
                let got = split_all(max, &[&sample[..i], &sample[i..]]);
                assert_eq!(got, want, "max {max}, split at {i}");
                for j in i..=sample.len() {
                    let got = split_all(max, &[&sample[..i], &sample[i..j], &sample[j..]]);
                    assert_eq!(got, want, "max {max}, split at {i} and {j}");
                }
            }
        }
    }

    #[test]
    fn random_streams_match_the_reference() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let len = (next() % 80) as usize;
            // Few symbols so that `\r`, `\n` and full pieces meet often.
            let input: Vec<u8> = (0..len).map(|_| b"ab\r\n"[(next() % 4) as usize]).collect();
            let max = 1 + (next() % 6) as usize;
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 7) as usize;
                let n = n.min(rest.len());
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(
                split_all(max, &chunks),
                reference(&input, max),
                "round {round}: max {max}, chunks {chunks:?}"
            );
        }
    }

    #[test]
    fn long_lines_are_split_not_dropped() {
        let line = vec![b'x'; 10];
        let mut input = line.clone();
        input.push(b'\n');
        assert_eq!(split_all(4, &[&input]), lines(&["xxxx", "xxxx", "xx"]));
        // Exactly max bytes: one piece, no empty tail.
        assert_eq!(split_all(4, &[b"abcd\nefgh\r\n"]), lines(&["abcd", "efgh"]));
        assert_eq!(split_all(4, &[b"abcd", b"\r", b"\n"]), lines(&["abcd"]));
        assert_eq!(
            split_all(4, &[b"abcd", b"\r", b"x\n"]),
            lines(&["abcd", "\rx"])
        );
        // Regression: a piece filled up by a `\r` whose `\n` comes in the next chunk.
        assert_eq!(split_all(3, &[b"ab", b"\r", b"\n"]), lines(&["ab"]));
        assert_eq!(split_all(3, &[b"ab\r", b"\nc"]), lines(&["ab", "c"]));
    }

    #[test]
    fn memory_stays_bounded_without_newlines() {
        let max = 64 * 1024;
        let mut s = LineSplitter::new(max);
        let chunk = vec![b'y'; 1 << 20];
        let mut emitted = 0usize;
        let mut pieces = 0usize;
        for _ in 0..10 {
            s.push(&chunk, &mut |l| {
                assert!(l.len() <= max);
                emitted += l.len();
                pieces += 1;
            });
            assert!(s.buf.capacity() <= max + 1, "capacity {}", s.buf.capacity());
        }
        // Chunks straddling piece boundaries, with `\r` at the edge.
        for _ in 0..100 {
            s.push(&chunk[..max - 1], &mut |l| emitted += l.len());
            s.push(b"\r", &mut |l| emitted += l.len());
            assert!(s.buf.capacity() <= max + 1, "capacity {}", s.buf.capacity());
        }
        s.finish(&mut |l| emitted += l.len());
        assert_eq!(emitted, 10 * (1 << 20) + 100 * max - 1); // the final `\r` is stripped
        assert!(pieces >= 10 * (1 << 20) / max - 1);
        assert_eq!(s.buf.capacity(), 0, "finish frees the buffer");
    }

    #[test]
    fn finish_emits_the_partial_line_once() {
        let mut s = LineSplitter::new(100);
        let mut out: Vec<Vec<u8>> = Vec::new();
        s.push(b"done\npartial", &mut |l| out.push(l.to_vec()));
        assert_eq!(out, lines(&["done"]));
        assert!(!s.is_empty());
        s.finish(&mut |l| out.push(l.to_vec()));
        assert_eq!(out, lines(&["done", "partial"]));
        s.finish(&mut |l| out.push(l.to_vec()));
        assert_eq!(out.len(), 2);
        // Usable again after finish.
        s.push(b"again\n", &mut |l| out.push(l.to_vec()));
        assert_eq!(out[2], b"again");
    }

    // ---- JobLog ----

    /// A writer whose bytes tests can read and whose failures tests can switch on.
    #[derive(Clone, Default)]
    struct Sink {
        data: Arc<Mutex<Vec<u8>>>,
        fail: Arc<AtomicBool>,
        writes: Arc<AtomicUsize>,
        /// Bytes that still fit (a disk filling up), `None`: no limit.
        room: Arc<Mutex<Option<usize>>>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            // Short writes, to exercise the write loop.
            let mut n = b.len().min(1000);
            if let Some(room) = self.room.lock().unwrap().as_mut() {
                if *room == 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                n = n.min(*room);
                *room -= n;
            }
            self.data.lock().unwrap().extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.data.lock().unwrap()).into_owned()
        }
        fn bytes(&self) -> Vec<u8> {
            self.data.lock().unwrap().clone()
        }
    }

    fn cet() -> LogZone {
        LogZone::Fixed(FixedOffset::east_opt(3600).unwrap())
    }

    fn new_log(format: LogFormat, level: Level) -> (JobLog, Sink) {
        let sink = Sink::default();
        let log = JobLog::with_zone(Box::new(sink.clone()), format, level, cet());
        (log, sink)
    }

    /// 2026-01-19 10:00:01.123 in UTC+1.
    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-19T09:00:01.123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn text_lifecycle_and_levels() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let t = t0();
        log.event(
            t,
            Some("hello-world"),
            Level::Info,
            "Process finished with code 0",
        );
        log.event(t, None, Level::Info, "Starting 3 tasks");
        log.event(t, None, Level::Warning, "config is invalid");
        log.event(t, Some("x"), Level::Error, "could not start");
        log.event(t, Some("x"), Level::Debug, "not shown");
        log.flush();
        assert_eq!(
            sink.text(),
            "[2026-01-19 10:00:01] [hello-world] Process finished with code 0\n\
             [2026-01-19 10:00:01] [MASTER] Starting 3 tasks\n\
             [2026-01-19 10:00:01] [MASTER] WARNING: config is invalid\n\
             [2026-01-19 10:00:01] [x] ERROR: could not start\n"
        );
        let (mut log, sink) = new_log(LogFormat::Text, Level::Error);
        log.event(t, None, Level::Warning, "dropped");
        log.event(t, None, Level::Error, "kept");
        log.set_level(Level::Debug);
        log.event(t, None, Level::Debug, "now shown");
        log.flush();
        assert_eq!(
            sink.text(),
            "[2026-01-19 10:00:01] [MASTER] ERROR: kept\n\
             [2026-01-19 10:00:01] [MASTER] DEBUG: now shown\n"
        );
    }

    #[test]
    fn text_multi_line_messages() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        log.event(
            t0(),
            Some("t"),
            Level::Warning,
            "line one\r\nline two\n\nline four\n",
        );
        log.flush();
        assert_eq!(
            sink.text(),
            "[2026-01-19 10:00:01] [t] WARNING: line one\n\
             [2026-01-19 10:00:01] [t] WARNING: line two\n\
             [2026-01-19 10:00:01] [t] WARNING: \n\
             [2026-01-19 10:00:01] [t] WARNING: line four\n"
        );
    }

    #[test]
    fn text_child_lines_pass_bytes_through() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let t = t0();
        log.child_line(t, "hello-world", Stream::Stdout, b"the line");
        log.child_line(t, "hello-world", Stream::Stderr, b"an error");
        log.child_line(t, "bin", Stream::Stdout, b"\xff\xfe\x00\x1b[31mred");
        log.child_line(
            t + chrono::Duration::milliseconds(900),
            "w:0",
            Stream::Stdout,
            b"",
        );
        log.flush();
        let mut want = b"[2026-01-19 10:00:01] [hello-world] | the line\n\
            [2026-01-19 10:00:01] [hello-world] ! an error\n\
            [2026-01-19 10:00:01] [bin] | "
            .to_vec();
        want.extend_from_slice(b"\xff\xfe\x00\x1b[31mred\n");
        want.extend_from_slice(b"[2026-01-19 10:00:02] [w:0] | \n");
        assert_eq!(sink.bytes(), want);
    }

    #[test]
    fn time_stamps_follow_the_zone_and_the_second() {
        let sink = Sink::default();
        let utc = LogZone::Fixed(FixedOffset::east_opt(0).unwrap());
        let mut log = JobLog::with_zone(Box::new(sink.clone()), LogFormat::Text, Level::Info, utc);
        let t = t0();
        log.event(t, None, Level::Info, "a");
        log.event(
            t + chrono::Duration::milliseconds(500),
            None,
            Level::Info,
            "b",
        );
        log.event(
            t + chrono::Duration::seconds(3600 * 15),
            None,
            Level::Info,
            "c",
        );
        log.set_format(LogFormat::Json);
        log.event(t, None, Level::Info, "d");
        log.flush();
        assert_eq!(
            sink.text(),
            "[2026-01-19 09:00:01] [MASTER] a\n\
             [2026-01-19 09:00:01] [MASTER] b\n\
             [2026-01-20 00:00:01] [MASTER] c\n\
             {\"time\":\"2026-01-19T09:00:01.123+00:00\",\"task\":\"MASTER\",\"kind\":\"event\",\"level\":\"INFO\",\"message\":\"d\"}\n"
        );
        // The default zone (local) works whatever the machine's zone is.
        let sink = Sink::default();
        let mut log = JobLog::new(Box::new(sink.clone()), LogFormat::Text, Level::Info);
        log.event(t, None, Level::Info, "x");
        log.flush();
        assert!(sink.text().starts_with("[2026-01-"), "{}", sink.text());
    }

    fn parse_lines(text: &str) -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON {l:?}: {e}")))
            .collect()
    }

    #[test]
    fn json_lines_are_valid_and_exact() {
        let (mut log, sink) = new_log(LogFormat::Json, Level::Info);
        let t = t0();
        log.event(
            t,
            Some("hello-world"),
            Level::Info,
            "Process finished with code 0",
        );
        log.event(
            t,
            None,
            Level::Warning,
            "two\nlines \"quoted\" \\ back\tslash",
        );
        log.child_line(t, "hello-world", Stream::Stdout, b"out");
        log.child_line(t, "hello-world", Stream::Stderr, b"err");
        log.event(t, None, Level::Debug, "filtered");
        log.flush();
        let text = sink.text();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"time":"2026-01-19T10:00:01.123+01:00","task":"hello-world","kind":"event","level":"INFO","message":"Process finished with code 0"}"#
        );
        let v = parse_lines(&text);
        assert_eq!(v.len(), 4);
        assert_eq!(v[1]["task"], "MASTER");
        assert_eq!(v[1]["level"], "WARNING");
        assert_eq!(v[1]["message"], "two\nlines \"quoted\" \\ back\tslash");
        assert_eq!(v[2]["kind"], "stdout");
        assert_eq!(v[2]["line"], "out");
        assert_eq!(v[3]["kind"], "stderr");
        assert_eq!(v[3]["time"], "2026-01-19T10:00:01.123+01:00");
        assert!(v[3].get("level").is_none());
    }

    #[test]
    fn json_escapes_control_chars_and_replaces_invalid_utf8() {
        let (mut log, sink) = new_log(LogFormat::Json, Level::Debug);
        let all_controls: Vec<u8> = (0u8..0x20).chain([0x7f, b'"', b'\\', b'/']).collect();
        log.child_line(t0(), "t", Stream::Stdout, &all_controls);
        log.child_line(
            t0(),
            "t",
            Stream::Stdout,
            b"ok \xff\xfe then \xe2\x82 cut \xe2\x82\xac euro",
        );
        let msg: String = (0u8..0x20).map(char::from).collect();
        log.event(t0(), Some("weird \"name\""), Level::Debug, &msg);
        log.flush();
        let text = sink.text();
        assert_eq!(text.lines().count(), 3, "one object per line: {text}");
        let v = parse_lines(&text);
        assert_eq!(v[0]["line"].as_str().unwrap().as_bytes(), &all_controls[..]);
        assert_eq!(
            v[1]["line"],
            String::from_utf8_lossy(b"ok \xff\xfe then \xe2\x82 cut \xe2\x82\xac euro")
                .into_owned()
        );
        assert_eq!(
            v[1]["line"],
            "ok \u{FFFD}\u{FFFD} then \u{FFFD} cut \u{20ac} euro"
        );
        assert_eq!(v[2]["message"], msg.as_str());
        assert_eq!(v[2]["task"], "weird \"name\"");
        assert_eq!(v[2]["level"], "DEBUG");
    }

    #[test]
    fn buffers_and_writes_whole_lines() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let t = t0();
        log.child_line(t, "t", Stream::Stdout, b"small");
        assert!(sink.bytes().is_empty(), "buffered until flush");
        assert!(log.has_buffered());
        // Enough to overflow the buffer: everything written is whole lines.
        let line = vec![b'z'; 1000];
        for _ in 0..200 {
            log.child_line(t, "t", Stream::Stdout, &line);
        }
        let written = sink.bytes();
        assert!(!written.is_empty());
        assert_eq!(written.last(), Some(&b'\n'));
        log.flush();
        assert!(!log.has_buffered());
        let all = sink.text();
        assert_eq!(all.lines().count(), 201);
        // A line bigger than the buffer goes through whole too.
        let huge = vec![b'h'; 200 * 1024];
        log.child_line(t, "t", Stream::Stdout, &huge);
        log.flush();
        assert_eq!(sink.text().lines().count(), 202);
        assert!(sink
            .text()
            .ends_with(&format!("| {}\n", "h".repeat(200 * 1024))));
    }

    #[test]
    fn write_errors_are_reported_once_per_episode_and_recover() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let t = t0();
        assert_eq!(log.take_error(), None);
        sink.fail.store(true, Ordering::SeqCst);
        log.event(t, None, Level::Info, "lost 1");
        log.flush();
        let e = log.take_error().expect("an error after a failed write");
        assert!(e.contains("No space left on device"), "{e}");
        // Same episode: no new report.
        log.event(t, None, Level::Info, "lost 2");
        log.flush();
        for _ in 0..100 {
            log.child_line(t, "t", Stream::Stdout, &[b'q'; 2000]);
        }
        log.flush();
        assert_eq!(log.take_error(), None);
        // Recovery: writes go through again, the dropped data stays dropped.
        sink.fail.store(false, Ordering::SeqCst);
        log.event(t, None, Level::Info, "back");
        log.flush();
        let back = "[2026-01-19 10:00:01] [MASTER] WARNING: 102 lines lost (disk full)\n\
                    [2026-01-19 10:00:01] [MASTER] back\n";
        assert_eq!(sink.text(), back);
        assert_eq!(log.take_error(), None);
        // A new episode is reported again.
        sink.fail.store(true, Ordering::SeqCst);
        log.event(t, None, Level::Info, "lost 3");
        log.flush();
        assert!(log.take_error().is_some());
        assert_eq!(log.take_error(), None);
        sink.fail.store(false, Ordering::SeqCst);
        drop(log); // flushes what is left, without panicking
        assert_eq!(
            sink.text(),
            format!("{back}[2026-01-19 10:00:01] [MASTER] WARNING: 1 line lost (disk full)\n")
        );
        assert!(sink.writes.load(Ordering::SeqCst) > 0);
    }

    /// A disk that fills up in the middle of a record: the cut record is not continued by
    /// the next one; once space is back, the next write starts on a new line with the
    /// count of lost lines.
    #[test]
    fn a_cut_record_is_never_glued_to_the_next() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let t = t0();
        log.event(t, None, Level::Info, "whole");
        log.flush();
        *sink.room.lock().unwrap() = Some(40);
        log.event(
            t,
            Some("task"),
            Level::Info,
            "this record is cut by the full disk",
        );
        log.child_line(t, "task", Stream::Stdout, b"lost too");
        log.flush();
        assert!(log.take_error().is_some());
        log.child_line(t, "task", Stream::Stdout, b"lost three");
        log.flush();
        // Space again.
        *sink.room.lock().unwrap() = None;
        log.child_line(t, "task", Stream::Stdout, b"after");
        log.flush();
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "[2026-01-19 10:00:01] [MASTER] whole");
        assert!(
            "[2026-01-19 10:00:01] [task] this record is cut by the full disk"
                .starts_with(lines[1])
                && lines[1].len() == 40,
            "{text}"
        );
        assert_eq!(
            lines[2],
            "[2026-01-19 10:00:01] [MASTER] WARNING: 3 lines lost (disk full)"
        );
        assert_eq!(lines[3], "[2026-01-19 10:00:01] [task] | after");
        assert!(text.ends_with('\n'));
        for l in &lines {
            assert_eq!(l.matches("[2026-").count(), 1, "a glued record: {l:?}");
        }
    }

    /// Identical bansuri events in a row are written once, then summarised when another
    /// event comes and at most every 10 s; child output is never collapsed.
    #[test]
    fn identical_events_are_collapsed_child_lines_are_not() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let t = t0();
        let skip = "Scheduled run skipped: the previous run is still going (overlap: skip)";
        for _ in 0..1000 {
            log.event(t, Some("tick"), Level::Info, skip);
        }
        for _ in 0..3 {
            log.child_line(t, "tick", Stream::Stdout, b"same output");
        }
        log.event(t, Some("tick"), Level::Info, "Process finished with code 0");
        log.flush();
        let p = "[2026-01-19 10:00:01] [tick] ";
        assert_eq!(
            sink.text(),
            format!(
                "{p}{skip}\n{p}| same output\n{p}| same output\n{p}| same output\n\
                 {p}... repeated 999 times\n{p}Process finished with code 0\n"
            )
        );
        // A repetition that goes on: a summary every 10 s, the rest at the end.
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        for ms in 0..25_000 {
            let w = t + chrono::Duration::milliseconds(ms);
            log.event(w, None, Level::Warning, "again");
        }
        drop(log);
        let text = sink.text();
        let counts: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split("WARNING: ... repeated ").nth(1))
            .collect();
        assert_eq!(
            counts,
            ["10000 times", "10000 times", "4999 times"],
            "{text}"
        );
        assert_eq!(text.lines().count(), 4, "{text}");
        // A rhythm is not a flood: identical lines a second or more apart are each
        // written, and DEBUG lines (asked for with -v) always are.
        let (mut log, sink) = new_log(LogFormat::Text, Level::Debug);
        for s in 0..3 {
            let w = t + chrono::Duration::seconds(30 * s);
            log.event(w, None, Level::Info, "checked");
        }
        for ms in 0..3 {
            log.event(
                t + chrono::Duration::milliseconds(100 * ms),
                None,
                Level::Debug,
                "re-read",
            );
        }
        drop(log);
        let text = sink.text();
        assert_eq!(text.matches("] checked").count(), 3, "{text}");
        assert_eq!(text.matches("DEBUG: re-read").count(), 3, "{text}");
        assert!(!text.contains("repeated"), "{text}");
    }

    #[test]
    fn a_flush_with_nothing_to_write_does_not_end_an_episode() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        sink.fail.store(true, Ordering::SeqCst);
        log.event(t0(), None, Level::Info, "lost");
        log.flush();
        assert!(log.take_error().is_some());
        log.flush();
        log.event(t0(), None, Level::Info, "lost again");
        log.flush();
        assert_eq!(log.take_error(), None);
    }

    #[test]
    fn splitter_and_log_together() {
        let (mut log, sink) = new_log(LogFormat::Text, Level::Info);
        let mut s = LineSplitter::new(8);
        let t = t0();
        for chunk in [&b"one\ntw"[..], b"o\r\nthree is long\nfo", b"ur"] {
            s.push(chunk, &mut |l| log.child_line(t, "job", Stream::Stdout, l));
        }
        s.finish(&mut |l| log.child_line(t, "job", Stream::Stdout, l));
        log.flush();
        assert_eq!(
            sink.text(),
            "[2026-01-19 10:00:01] [job] | one\n\
             [2026-01-19 10:00:01] [job] | two\n\
             [2026-01-19 10:00:01] [job] | three is\n\
             [2026-01-19 10:00:01] [job] |  long\n\
             [2026-01-19 10:00:01] [job] | four\n"
        );
    }
}
