//! When a changed config file may be applied (hot reload): once its writer is done. A
//! file rewritten in place is read while it is being written now and then (an editor that
//! writes slowly, a copy over a network file system), and a valid prefix of a TOML or YAML
//! file is a valid config that lacks tasks: applying it would stop them.
//!
//! The rule: a file replaced by a rename (another inode than at the previous look) is
//! complete, and applied at once. A file changed in place is applied once it has not been
//! modified for `config_settle`: its mtime and ctime are that old, or what is seen of it
//! (size, times, content hash) has stayed the same that long.
//!
//! [`Watch`] is the config watch's clock around that rule: a look every `check_interval`,
//! a look again when a change waiting to settle is due, at once on SIGHUP or `reload`
//! (forced: applied even when the content equals the config in effect, and still forced
//! when it has to settle first).
//!
//! Pure: the runtime passes what it saw and the time; tests step a fake clock.

use std::time::Duration;

use crate::clock::Mono;

/// What one look at the config file saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Look {
    /// Device and inode.
    pub id: (u64, u64),
    pub size: u64,
    /// Modification and status-change times, ns since the epoch.
    pub mtime: i128,
    pub ctime: i128,
    /// Hash of the content.
    pub hash: u64,
}

impl Look {
    /// Of an open file and the bytes read from it.
    pub fn of(meta: &std::fs::Metadata, bytes: &[u8]) -> Look {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Look {
            id: (meta.dev(), meta.ino()),
            size: meta.len(),
            mtime: ns(meta.mtime(), meta.mtime_nsec()),
            ctime: ns(meta.ctime(), meta.ctime_nsec()),
            hash: h.finish(),
        }
    }
}

/// May a changed file be applied?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Yes, now.
    Apply,
    /// Not yet: look again at this time.
    WaitUntil(Mono),
}

/// The settle rule's memory between looks.
#[derive(Debug)]
pub(super) struct Settle {
    /// `config_settle`.
    pub settle: Duration,
    /// The inode seen at the previous look.
    last_id: Option<(u64, u64)>,
    /// A change waiting: what was seen, and since when it has been seen unchanged.
    pending: Option<(Look, Mono)>,
}

impl Settle {
    /// `id`: the inode of the file the config in effect was read from, if known.
    pub fn new(settle: Duration, id: Option<(u64, u64)>) -> Settle {
        Settle {
            settle,
            last_id: id,
            pending: None,
        }
    }

    /// The file holds the config in effect: nothing waits.
    pub fn unchanged(&mut self, look: &Look) {
        self.last_id = Some(look.id);
        self.pending = None;
    }

    /// The file was not readable: forget what waited.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// The file differs from the config in effect (or SIGHUP asks to re-apply it): apply
    /// it now, or look again later. `wall_ns`: the wall clock, ns since the epoch.
    pub fn changed(&mut self, look: Look, now: Mono, wall_ns: i128) -> Verdict {
        let replaced = self.last_id.is_some_and(|id| id != look.id);
        self.last_id = Some(look.id);
        if replaced || self.settle.is_zero() {
            self.pending = None;
            return Verdict::Apply;
        }
        // On a file system with whole-second times the change may be up to 1 s younger
        // than its times say.
        let whole = |t: i128| t % 1_000_000_000 == 0;
        let slack = if whole(look.mtime) && whole(look.ctime) {
            1_000_000_000
        } else {
            0
        };
        let age_ns = wall_ns - look.mtime.max(look.ctime) - slack;
        // A time in the future (a clock ahead on a file server) says nothing: age 0.
        let age = Duration::from_nanos(u64::try_from(age_ns.max(0)).unwrap_or(u64::MAX));
        let since = match &self.pending {
            Some((seen, since)) if *seen == look => *since,
            _ => now,
        };
        if age >= self.settle || now.since(since) >= self.settle {
            self.pending = None;
            return Verdict::Apply;
        }
        self.pending = Some((look, since));
        let by_age = now + (self.settle - age);
        let by_steady = since + self.settle;
        Verdict::WaitUntil(by_age.min(by_steady))
    }
}

/// What a look at the config file found, against the config in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    /// It could not be read.
    Unreadable,
    /// Read: this look, and whether its content is the config in effect's.
    Read { look: Look, same: bool },
}

/// What the runtime does after a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Report the file as unreadable (the config in effect stays).
    Unreadable,
    /// Nothing: the file holds the config in effect.
    Unchanged,
    /// A change waits for its writer; the next look is planned.
    Waiting,
    /// Parse and apply the file now.
    Apply,
}

/// When the config file is looked at, and what a look means.
#[derive(Debug)]
pub(super) struct Watch {
    check_interval: Duration,
    next_check: Mono,
    /// A changed file waiting for its writer to be done: look again then.
    settling: Option<Mono>,
    /// The change waiting was asked for by SIGHUP or `reload`: apply it even if the
    /// content equals the config in effect (environment-files may have changed).
    forced: bool,
    settle: Settle,
}

impl Watch {
    /// Looks every `check_interval` from `now`; `settle` as for [`Settle::new`].
    pub fn new(check_interval: Duration, now: Mono, settle: Settle) -> Watch {
        Watch {
            check_interval,
            next_check: now + check_interval,
            settling: None,
            forced: false,
            settle,
        }
    }

    /// When the next look is due.
    pub fn deadline(&self) -> Mono {
        self.settling.unwrap_or(self.next_check)
    }

    /// A change is waiting for its writer.
    pub fn settling(&self) -> bool {
        self.settling.is_some()
    }

    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// A reload set `check_interval`: true when it changed (the next look is planned from
    /// `now`).
    pub fn set_check_interval(&mut self, d: Duration, now: Mono) -> bool {
        if d == self.check_interval {
            return false;
        }
        self.check_interval = d;
        self.next_check = now + d;
        true
    }

    /// A reload set `config_settle`.
    pub fn set_settle(&mut self, d: Duration) {
        self.settle.settle = d;
    }

    /// The file was looked at `now` (`forced`: SIGHUP or `reload` asked for this look);
    /// `wall_ns` is the wall clock, ns since the epoch.
    pub fn looked(&mut self, now: Mono, wall_ns: i128, forced: bool, seen: Seen) -> Step {
        let forced = forced || self.forced;
        self.next_check = now + self.check_interval;
        let look = match seen {
            Seen::Unreadable => {
                self.settling = None;
                self.forced = false;
                self.settle.reset();
                return Step::Unreadable;
            }
            Seen::Read { look, same: true } if !forced => {
                self.settling = None;
                self.settle.unchanged(&look);
                return Step::Unchanged;
            }
            Seen::Read { look, .. } => look,
        };
        match self.settle.changed(look, now, wall_ns) {
            Verdict::WaitUntil(at) => {
                self.settling = Some(at);
                self.forced = forced;
                Step::Waiting
            }
            Verdict::Apply => {
                self.settling = None;
                self.forced = false;
                Step::Apply
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;
    const MS: i128 = 1_000_000;

    fn ms(n: u64) -> Mono {
        Mono::ZERO + Duration::from_millis(n)
    }

    /// A look at inode `ino` modified at `mtime_ms` (wall ms), with content `hash`.
    fn look(ino: u64, mtime_ms: i128, hash: u64) -> Look {
        Look {
            id: (1, ino),
            size: 10,
            mtime: mtime_ms * MS,
            ctime: mtime_ms * MS,
            hash,
        }
    }

    /// Wall clock in ms = monotonic ms + 1000 s, in ns.
    fn wall(m: u64) -> i128 {
        (1000 * 1000 + m as i128) * MS
    }

    fn settle() -> Settle {
        Settle::new(Duration::from_secs(1), Some((1, 5)))
    }

    #[test]
    fn an_in_place_write_waits_until_quiet_for_the_settle_time() {
        let mut s = settle();
        // First half written at 1000 s + 100 ms, seen at 150 ms: wait until it is 1 s old.
        let first = look(5, 1000 * 1000 + 100, 1);
        assert_eq!(
            s.changed(first.clone(), ms(150), wall(150)),
            Verdict::WaitUntil(ms(1100))
        );
        // Second half at 500 ms: seen at 1100 ms, changed: wait again from its time.
        let full = look(5, 1000 * 1000 + 500, 2);
        assert_eq!(
            s.changed(full.clone(), ms(1100), wall(1100)),
            Verdict::WaitUntil(ms(1500))
        );
        assert_eq!(s.changed(full, ms(1500), wall(1500)), Verdict::Apply);
    }

    #[test]
    fn a_file_last_modified_long_ago_applies_at_once() {
        // SIGHUP on a file saved a minute ago (or a poll every 30 s): no wait.
        let mut s = settle();
        let old = look(5, 1000 * 1000 - 60_000, 1);
        assert_eq!(s.changed(old, ms(0), wall(0)), Verdict::Apply);
    }

    #[test]
    fn a_rename_applies_at_once_even_when_just_written() {
        let mut s = settle();
        let new = look(9, 1000 * 1000 + 100, 1);
        assert_eq!(s.changed(new.clone(), ms(100), wall(100)), Verdict::Apply);
        // The new inode is now the known one: an in-place edit of it settles again.
        let edited = look(9, 1000 * 1000 + 200, 2);
        assert_eq!(
            s.changed(edited, ms(200), wall(200)),
            Verdict::WaitUntil(ms(1200))
        );
    }

    #[test]
    fn a_time_in_the_future_still_settles_by_steady_looks() {
        // The file server's clock is 1 h ahead: the age says nothing, the look does.
        let mut s = settle();
        let ahead = look(5, 1000 * 1000 + 3_600_000, 1);
        assert_eq!(
            s.changed(ahead.clone(), ms(0), wall(0)),
            Verdict::WaitUntil(ms(1000))
        );
        assert_eq!(
            s.changed(ahead.clone(), ms(400), wall(400)),
            Verdict::WaitUntil(ms(1000))
        );
        assert_eq!(s.changed(ahead, ms(1000), wall(1000)), Verdict::Apply);
    }

    #[test]
    fn whole_second_times_get_a_second_of_slack() {
        let mut s = settle();
        let coarse = Look {
            mtime: 1000 * S,
            ctime: 1000 * S,
            ..look(5, 0, 1)
        };
        // Written "at 1000 s" but maybe at 1000.999 s: 1.5 s later is not 1 s quiet yet.
        assert_eq!(
            s.changed(coarse.clone(), ms(1500), wall(1500)),
            Verdict::WaitUntil(ms(2000))
        );
        assert_eq!(s.changed(coarse, ms(2000), wall(2000)), Verdict::Apply);
    }

    #[test]
    fn zero_settle_applies_at_once_and_unchanged_forgets() {
        let mut s = Settle::new(Duration::ZERO, Some((1, 5)));
        assert_eq!(
            s.changed(look(5, 1000 * 1000, 1), ms(0), wall(0)),
            Verdict::Apply
        );
        let mut s = settle();
        let l = look(5, 1000 * 1000, 1);
        assert!(matches!(
            s.changed(l.clone(), ms(0), wall(0)),
            Verdict::WaitUntil(_)
        ));
        s.unchanged(&l);
        assert!(s.pending.is_none());
    }

    fn watch() -> Watch {
        Watch::new(Duration::from_secs(30), ms(0), settle())
    }

    fn read(look: Look, same: bool) -> Seen {
        Seen::Read { look, same }
    }

    #[test]
    fn the_watch_looks_every_check_interval_and_follows_a_change_until_it_settles() {
        let mut w = watch();
        assert_eq!(w.deadline(), ms(30_000));
        let same = look(5, 0, 1);
        assert_eq!(
            w.looked(ms(30_000), wall(30_000), false, read(same.clone(), true)),
            Step::Unchanged
        );
        assert_eq!(
            w.deadline(),
            ms(60_000),
            "the next look, check_interval later"
        );
        // Written in place just now: looked at again when it may have settled, before
        // the next check.
        let fresh = look(5, 1000 * 1000 + 59_900, 2);
        assert_eq!(
            w.looked(ms(60_000), wall(60_000), false, read(fresh.clone(), false)),
            Step::Waiting
        );
        assert!(w.settling());
        assert_eq!(w.deadline(), ms(60_900));
        assert_eq!(
            w.looked(ms(60_900), wall(60_900), false, read(fresh, false)),
            Step::Apply
        );
        assert!(!w.settling());
        assert_eq!(w.deadline(), ms(90_900));
        // Unreadable: reported, nothing waits.
        assert_eq!(
            w.looked(ms(90_900), wall(90_900), false, Seen::Unreadable),
            Step::Unreadable
        );
        assert_eq!(w.deadline(), ms(120_900));
    }

    #[test]
    fn a_forced_look_applies_the_same_content_and_stays_forced_while_it_settles() {
        let mut w = watch();
        let old = look(5, 0, 1);
        assert_eq!(
            w.looked(ms(10), wall(10), true, read(old, true)),
            Step::Apply,
            "SIGHUP re-applies an old file with the same content"
        );
        // SIGHUP while the file is being written: it waits, and the look that finds it
        // settled applies it even though nobody forces that look.
        let fresh = look(5, 1000 * 1000 + 100, 2);
        assert_eq!(
            w.looked(ms(150), wall(150), true, read(fresh.clone(), true)),
            Step::Waiting
        );
        assert_eq!(
            w.looked(ms(1_100), wall(1_100), false, read(fresh.clone(), true)),
            Step::Apply
        );
        // Applied: the next unforced look of the same content is unchanged.
        assert_eq!(
            w.looked(ms(2_000), wall(2_000), false, read(fresh, true)),
            Step::Unchanged
        );
    }

    #[test]
    fn a_new_check_interval_plans_the_next_look_from_now() {
        let mut w = watch();
        assert!(!w.set_check_interval(Duration::from_secs(30), ms(5_000)));
        assert_eq!(w.deadline(), ms(30_000));
        assert!(w.set_check_interval(Duration::from_secs(2), ms(5_000)));
        assert_eq!(w.deadline(), ms(7_000));
        assert_eq!(w.check_interval(), Duration::from_secs(2));
        w.set_settle(Duration::ZERO);
        let fresh = look(5, 1000 * 1000 + 5_000, 2);
        assert_eq!(
            w.looked(ms(7_000), wall(7_000), false, read(fresh, false)),
            Step::Apply,
            "config_settle 0 applies at once"
        );
    }
}
