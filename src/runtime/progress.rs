//! The progress line of batch runs (`--once`, `--exit-when-done`).
//!
//! On a terminal, one live line at the bottom (`[progress] 3/10 done, 2 running, 1 failed,
//! 42s elapsed, about 1m10s left`), rewritten in place and cleared before anything else is
//! written, so it disappears into the final table. Where it goes:
//!
//! * the job log goes to stdout and stdout is a terminal: stdout, below the log lines (the
//!   job log's writer is wrapped so that each write first clears the line);
//! * otherwise, stderr when it is a terminal (`--log-file`, or stdout redirected): the
//!   job log itself stays free of it;
//! * no terminal (or `TERM=dumb`): no live line; instead a plain `[MASTER] Progress: ...`
//!   job log line when the count of finished tasks has changed, at most every 30 s, so
//!   that job logs stay greppable and free of control characters.
//!
//! Redraws follow events (the loop calls [`ProgressLine::update`] when it goes idle),
//! at most every 100 ms, and once a second for the elapsed time. This module only shows
//! counts the core computes ([`Progress`]); it decides nothing about tasks.

use std::io::IsTerminal;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Mono;
use crate::core::Progress;
use crate::text::fmt_dur_fixed_width;

/// Clear the terminal line: carriage return, erase to the end of the line.
const CLEAR: &[u8] = b"\r\x1b[K";
/// Least time between two redraws.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Redraw at least this often while shown (the elapsed time moves).
const TICK_EVERY: Duration = Duration::from_secs(1);
/// Least time between two plain progress lines in the job log.
pub(super) const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// Where the live line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Not a batch run: nothing at all.
    Off,
    /// The terminal on stdout, shared with the job log.
    Stdout,
    /// The terminal on stderr.
    Stderr,
    /// No terminal: plain job log lines.
    Plain,
}

impl Target {
    /// The target for a batch run (`batch`) whose job log goes to stdout (`log_to_stdout`).
    pub(super) fn choose(batch: bool, log_to_stdout: bool) -> Target {
        let dumb = std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb");
        let (out, err) = (io::stdout().is_terminal(), io::stderr().is_terminal());
        Target::decide(batch, log_to_stdout, out && !dumb, err && !dumb)
    }

    /// [`Target::choose`] with the terminal facts given.
    pub(super) fn decide(batch: bool, log_to_stdout: bool, out_tty: bool, err_tty: bool) -> Target {
        if !batch {
            Target::Off
        } else if log_to_stdout && out_tty {
            Target::Stdout
        } else if err_tty {
            Target::Stderr
        } else {
            Target::Plain
        }
    }
}

/// The live line's redraw limit, sans IO: at most one redraw per [`REDRAW_EVERY`], and one
/// at least every [`TICK_EVERY`] while shown (the elapsed time moves).
#[derive(Debug, Default)]
pub(super) struct Pace {
    last_draw: Option<Mono>,
}

/// What the live line does at a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redraw {
    /// Too soon after the last redraw: not even counted; call again at this time.
    Later(Mono),
    /// Count, and redraw if [`Pace::wants`] says so.
    Count,
}

impl Pace {
    /// May the line be redrawn at `now`?
    pub(super) fn check(&self, now: Mono) -> Redraw {
        match self.last_draw {
            Some(t) if now.since(t) < REDRAW_EVERY => Redraw::Later(t + REDRAW_EVERY),
            _ => Redraw::Count,
        }
    }

    /// Redraw now? When the line is hidden, its counts changed, or a tick is due.
    pub(super) fn wants(&self, now: Mono, hidden: bool, changed: bool) -> bool {
        hidden || changed || self.last_draw.map_or(true, |t| now.since(t) >= TICK_EVERY)
    }

    /// The line was drawn at `now`.
    pub(super) fn drawn(&mut self, now: Mono) {
        self.last_draw = Some(now);
    }

    /// When the next tick is due (`None`: never drawn).
    pub(super) fn next_tick(&self) -> Option<Mono> {
        self.last_draw.map(|t| t + TICK_EVERY)
    }
}

/// The job log's writer when the live line shares stdout with it: clears the line before
/// the first byte of log output.
struct Clearing {
    inner: Box<dyn Write + Send>,
    shown: Arc<AtomicBool>,
}

impl Write for Clearing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shown.swap(false, Ordering::Relaxed) {
            self.inner.write_all(CLEAR)?;
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The live line's state.
pub(super) struct ProgressLine {
    batch: bool,
    target: Target,
    /// The line is on the screen.
    shown: Arc<AtomicBool>,
    start: Mono,
    pace: Pace,
    drawn: Option<Progress>,
    /// The last plain line's counts and time.
    plain: Option<(Mono, usize)>,
    /// When the counts were last looked at for a plain line.
    checked: Option<Mono>,
}

impl ProgressLine {
    /// For a run in batch mode or not, whose job log goes to stdout or not.
    pub(super) fn new(batch: bool, log_to_stdout: bool, start: Mono) -> ProgressLine {
        let mut l = ProgressLine::with_target(Target::choose(batch, log_to_stdout), start);
        l.batch = batch;
        l
    }

    fn with_target(target: Target, start: Mono) -> ProgressLine {
        ProgressLine {
            batch: target != Target::Off,
            target,
            shown: Arc::new(AtomicBool::new(false)),
            start,
            pace: Pace::default(),
            drawn: None,
            plain: None,
            checked: None,
        }
    }

    /// The job log's writer: wrapped when the line shares stdout with it.
    pub(super) fn wrap(&self, out: Box<dyn Write + Send>) -> Box<dyn Write + Send> {
        if self.target == Target::Stdout {
            Box::new(Clearing {
                inner: out,
                shown: Arc::clone(&self.shown),
            })
        } else {
            out
        }
    }

    /// True unless this is not a batch run.
    pub(super) fn active(&self) -> bool {
        self.target != Target::Off
    }

    /// Show the counts if due (`count` computes them, only when needed). Returns a plain
    /// job log line to write (no terminal), and when the loop should call again at the
    /// latest (`None`: only on the next event).
    pub(super) fn update(
        &mut self,
        now: Mono,
        count: impl FnOnce() -> Progress,
    ) -> (Option<String>, Option<Mono>) {
        match self.target {
            Target::Off => (None, None),
            Target::Plain => {
                // Counted on events only (a task's end is one), at most once a second: no
                // extra wake-ups, so an idle bansuri stays asleep.
                if self.checked.is_some_and(|t| now.since(t) < TICK_EVERY) {
                    return (None, None);
                }
                self.checked = Some(now);
                (self.plain_line(count(), now), None)
            }
            Target::Stdout | Target::Stderr => {
                if let Redraw::Later(at) = self.pace.check(now) {
                    return (None, Some(at));
                }
                let p = count();
                let hidden = !self.shown.load(Ordering::Relaxed);
                if self.pace.wants(now, hidden, self.drawn != Some(p)) {
                    self.draw(p, now);
                }
                (None, self.pace.next_tick())
            }
        }
    }

    fn plain_line(&mut self, p: Progress, now: Mono) -> Option<String> {
        let (last_at, last_done) = self.plain.unwrap_or((self.start, 0));
        if p.done == last_done || now.since(last_at) < PLAIN_EVERY || p.done >= p.total {
            return None;
        }
        self.plain = Some((now, p.done));
        Some(format!("Progress: {}", text(p, now.since(self.start))))
    }

    /// Run `f` on the terminal's descriptor (stdout or stderr), past std's buffers.
    fn on_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
        if self.target == Target::Stdout {
            f(io::stdout().as_fd())
        } else {
            f(io::stderr().as_fd())
        }
    }

    fn draw(&mut self, p: Progress, now: Mono) {
        let width = self.on_fd(terminal_width).max(20) - 1;
        let mut line = format!("[progress] {}", text(p, now.since(self.start)));
        if line.len() > width {
            line.truncate(width);
        }
        let mut buf = Vec::with_capacity(line.len() + CLEAR.len());
        buf.extend_from_slice(CLEAR);
        buf.extend_from_slice(line.as_bytes());
        self.on_fd(|fd| write_fd(fd, &buf));
        self.shown.store(true, Ordering::Relaxed);
        self.pace.drawn(now);
        self.drawn = Some(p);
    }

    /// The job log moved (reload): clear the line and choose the target again. The new
    /// log writer must go through [`ProgressLine::wrap`] after this.
    pub(super) fn retarget(&mut self, log_to_stdout: bool) {
        self.hide();
        self.target = Target::choose(self.batch, log_to_stdout);
        self.shown = Arc::new(AtomicBool::new(false));
    }

    /// Clear the line (before the final table, or before bansuri writes to stderr).
    pub(super) fn hide(&mut self) {
        if self.shown.swap(false, Ordering::Relaxed) {
            self.on_fd(|fd| write_fd(fd, CLEAR));
        }
    }
}

/// `3/10 done, 2 running, 1 failed, 42s elapsed, about 1m10s left`.
pub(super) fn text(p: Progress, elapsed: Duration) -> String {
    let mut s = format!(
        "{}/{} done, {} running, {} failed, {} elapsed",
        p.done,
        p.total,
        p.running,
        p.failed,
        fmt_dur_fixed_width(elapsed)
    );
    if p.done > 0 && p.done < p.total {
        // The rate so far, applied to what is left.
        let left = elapsed.mul_f64((p.total - p.done) as f64 / p.done as f64);
        s.push_str(&format!(", about {} left", fmt_dur_fixed_width(left)));
    }
    s
}

fn terminal_width(fd: BorrowedFd<'_>) -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which we own and which outlives the
    // call; `fd` is open (borrowed). nix has no safe call for it, only ioctl macros.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// Write all of `buf` to `fd`; errors are ignored (a closed terminal must not stop the run).
fn write_fd(fd: BorrowedFd<'_>, mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) if n > 0 => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(total: usize, done: usize, running: usize, failed: usize) -> Progress {
        Progress {
            total,
            done,
            running,
            failed,
        }
    }

    fn at(s: u64) -> Mono {
        Mono::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn the_line_is_written_whole_and_a_pipe_is_80_columns() {
        use std::io::Read;
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let line = vec![b'x'; 100_000]; // more than a pipe takes at once: a reader drains it
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::from(r).read_to_end(&mut got).map(|_| got)
        });
        assert_eq!(terminal_width(w.as_fd()), 80);
        write_fd(w.as_fd(), &line);
        drop(w);
        assert_eq!(reader.join().expect("reader").expect("read"), line);
    }

    #[test]
    fn target_follows_the_terminals() {
        use Target::*;
        assert_eq!(Target::decide(false, true, true, true), Off);
        assert_eq!(Target::decide(true, true, true, true), Stdout);
        // Log redirected to a file (by the shell or --log-file): stderr if a terminal.
        assert_eq!(Target::decide(true, true, false, true), Stderr);
        assert_eq!(Target::decide(true, false, true, true), Stderr);
        assert_eq!(Target::decide(true, false, true, false), Plain);
        assert_eq!(Target::decide(true, true, false, false), Plain);
    }

    #[test]
    fn text_has_counts_elapsed_and_an_estimate() {
        assert_eq!(
            text(p(10, 0, 2, 0), Duration::from_secs(5)),
            "0/10 done, 2 running, 0 failed, 5s elapsed"
        );
        assert_eq!(
            text(p(10, 4, 2, 1), Duration::from_secs(40)),
            "4/10 done, 2 running, 1 failed, 40s elapsed, about 1m00s left"
        );
        assert_eq!(
            text(p(3, 3, 0, 0), Duration::from_secs(3725)),
            "3/3 done, 0 running, 0 failed, 1h02m elapsed"
        );
    }

    #[test]
    fn plain_lines_only_when_done_changed_and_at_most_every_30s() {
        let mut l = ProgressLine::with_target(Target::Plain, at(0));
        let upd = |l: &mut ProgressLine, q: Progress, t: Mono| l.update(t, || q);
        assert_eq!(
            upd(&mut l, p(5, 1, 1, 0), at(10)),
            (None, None),
            "too early"
        );
        let (line, next) = upd(&mut l, p(5, 1, 1, 0), at(30));
        assert_eq!(
            line.as_deref(),
            Some("Progress: 1/5 done, 1 running, 0 failed, 30s elapsed, about 2m00s left")
        );
        assert_eq!(next, None, "no wake-ups of its own");
        assert_eq!(
            upd(&mut l, p(5, 1, 1, 0), at(45)).0,
            None,
            "nothing changed"
        );
        assert_eq!(upd(&mut l, p(5, 2, 1, 0), at(59)).0, None, "within 30 s");
        assert!(upd(&mut l, p(5, 2, 1, 0), at(60)).0.is_some());
        assert_eq!(
            upd(&mut l, p(5, 5, 0, 0), at(200)).0,
            None,
            "the table says the end"
        );
        // Counted at most once a second.
        let mut counted = 0;
        let t = Mono::ZERO + Duration::from_millis(200_500);
        l.update(t, || {
            counted += 1;
            p(5, 5, 0, 0)
        });
        assert_eq!(counted, 0);
    }

    #[test]
    fn live_redraws_are_rate_limited_and_tick_every_second() {
        let mut l = ProgressLine::with_target(Target::Stderr, at(0));
        // Drawing writes to fd 2; fine in a test.
        let t0 = Mono::ZERO + Duration::from_millis(10);
        assert_eq!(l.update(t0, || p(3, 0, 1, 0)).1, Some(t0 + TICK_EVERY));
        assert_eq!(l.pace.last_draw, Some(t0));
        // 50 ms later: not even counted; called again at the 100 ms limit.
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!(
            l.update(t1, || unreachable!("not counted")).1,
            Some(t0 + REDRAW_EVERY)
        );
        let t2 = t0 + REDRAW_EVERY;
        l.update(t2, || p(3, 1, 1, 0));
        assert_eq!(l.pace.last_draw, Some(t2), "a change is drawn");
        assert_eq!(l.drawn, Some(p(3, 1, 1, 0)));
        // Nothing changed: no draw until a second after the last one (the elapsed time).
        let t3 = t2 + Duration::from_millis(500);
        assert_eq!(l.update(t3, || p(3, 1, 1, 0)).1, Some(t2 + TICK_EVERY));
        assert_eq!(l.pace.last_draw, Some(t2));
        l.update(t2 + TICK_EVERY, || p(3, 1, 1, 0));
        assert_eq!(l.pace.last_draw, Some(t2 + TICK_EVERY));
        // Hidden (log output cleared it): redrawn at the next call.
        l.hide();
        assert!(!l.shown.load(Ordering::Relaxed));
        let t4 = t2 + TICK_EVERY + REDRAW_EVERY;
        l.update(t4, || p(3, 1, 1, 0));
        assert_eq!(l.pace.last_draw, Some(t4));
        assert!(l.shown.load(Ordering::Relaxed));
    }

    #[test]
    fn the_pace_limits_redraws_to_10_a_second_and_ticks_every_second() {
        let mut pace = Pace::default();
        let t0 = Mono::ZERO + Duration::from_millis(10);
        assert_eq!(pace.check(t0), Redraw::Count, "never drawn");
        assert!(pace.wants(t0, false, false), "the first draw is a tick");
        assert_eq!(pace.next_tick(), None);
        pace.drawn(t0);
        assert_eq!(pace.next_tick(), Some(t0 + TICK_EVERY));
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(pace.check(ms(99)), Redraw::Later(ms(100)));
        assert_eq!(pace.check(ms(100)), Redraw::Count);
        assert!(!pace.wants(ms(500), false, false), "nothing to show");
        assert!(pace.wants(ms(500), true, false), "hidden");
        assert!(pace.wants(ms(500), false, true), "changed");
        assert!(pace.wants(ms(1_000), false, false), "the tick");
    }

    #[test]
    fn the_wrapped_log_clears_the_line_before_writing() {
        let l = ProgressLine::with_target(Target::Stdout, at(0));
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = l.wrap(Box::new(Sink(Arc::clone(&buf))));
        w.write_all(b"a\n").expect("write");
        l.shown.store(true, Ordering::Relaxed);
        w.write_all(b"b\n").expect("write");
        w.write_all(b"c\n").expect("write");
        assert_eq!(&*buf.lock().expect("lock"), b"a\n\r\x1b[Kb\nc\n");
    }
}
