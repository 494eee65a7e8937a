//! The runtime's timing rules as small sans-IO machines: each is fed `Mono` times and
//! events, says what is due and when it needs the loop next. The loop does the I/O.
//!
//! * [`StateCadence`]: when the state file is written (a change is written at most every
//!   [`MIN_WRITE_INTERVAL`], so a burst of changes is one write; without changes, a
//!   heartbeat every [`HEARTBEAT`]; after the last write at exit, never again).
//! * [`InboxPoll`]: when the request inbox is read without an event (every
//!   [`INBOX_POLL`] where inotify cannot see requests: network file systems; every
//!   [`INBOX_SAFETY_POLL`] where it watches the inbox).
//! * [`SampleSchedule`]: when resources are sampled (`sample_interval`; 0 is off).
//!
//! The config watch's timing is `settle::Watch`; the progress line's redraw limit is
//! `progress::Pace`. Owns: the rules. Must not: read the clock, touch a file, log.

use std::time::Duration;

use crate::clock::Mono;
use crate::control::state::{HEARTBEAT, MIN_WRITE_INTERVAL};
use crate::control::INBOX_POLL;

/// How often the inbox is read anyway when inotify watches it (a missed event, the
/// directory replaced).
pub(super) const INBOX_SAFETY_POLL: Duration = Duration::from_secs(30);

/// When the state file is written.
#[derive(Debug)]
pub(super) struct StateCadence {
    /// Something changed since the last write.
    dirty: bool,
    last_write: Option<Mono>,
    /// The last write (at exit) is done: nothing more is written.
    closed: bool,
}

impl Default for StateCadence {
    fn default() -> Self {
        StateCadence {
            dirty: true,
            last_write: None,
            closed: false,
        }
    }
}

impl StateCadence {
    /// Something the state file shows changed.
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// When the next write is due: the first at once, a change [`MIN_WRITE_INTERVAL`]
    /// after the last write, else the heartbeat. The heartbeat runs also when no process
    /// does: a `status` on another node tells a live bansuri from one killed without a
    /// last write by its age.
    pub(super) fn deadline(&self, now: Mono) -> Option<Mono> {
        if self.closed {
            return None;
        }
        Some(match self.last_write {
            None => now,
            Some(l) if self.dirty => l + MIN_WRITE_INTERVAL,
            Some(l) => l + HEARTBEAT,
        })
    }

    /// Is a write due at `now`?
    pub(super) fn due(&self, now: Mono) -> bool {
        self.deadline(now).is_some_and(|d| d <= now)
    }

    /// A write was made at `now` (on schedule, or at once after a control command).
    /// `last`: the write at exit, after which nothing is due.
    pub(super) fn written(&mut self, now: Mono, last: bool) {
        self.dirty = false;
        self.last_write = Some(now);
        self.closed |= last;
    }
}

/// When the request inbox is read without an event.
#[derive(Debug)]
pub(super) struct InboxPoll {
    every: Duration,
    /// `None`: not read at all (no state directory).
    next: Option<Mono>,
}

impl Default for InboxPoll {
    fn default() -> Self {
        InboxPoll {
            every: INBOX_POLL,
            next: None,
        }
    }
}

impl InboxPoll {
    /// The inbox exists from `now` on; `watched`: inotify sees its requests.
    pub(super) fn start(&mut self, now: Mono, watched: bool) {
        self.every = if watched {
            INBOX_SAFETY_POLL
        } else {
            INBOX_POLL
        };
        self.next = Some(now + self.every);
    }

    pub(super) fn deadline(&self) -> Option<Mono> {
        self.next
    }

    /// Is a read due at `now`? Then the next one is planned from `now`.
    pub(super) fn due(&mut self, now: Mono) -> bool {
        if self.next.is_some_and(|t| t <= now) {
            self.next = Some(now + self.every);
            return true;
        }
        false
    }
}

/// When resources are sampled.
#[derive(Debug)]
pub(super) struct SampleSchedule {
    interval: Duration,
    next: Option<Mono>,
}

impl SampleSchedule {
    /// Not started yet: nothing is due before [`SampleSchedule::start`].
    pub(super) fn new(interval: Duration) -> SampleSchedule {
        SampleSchedule {
            interval,
            next: None,
        }
    }

    /// The first sample is due at once (unless sampling is off).
    pub(super) fn start(&mut self, now: Mono) {
        self.next = (!self.interval.is_zero()).then_some(now);
    }

    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// A reload set `interval`: true when it changed (then a sample is due at once, or
    /// none ever when it is 0).
    pub(super) fn set_interval(&mut self, interval: Duration, now: Mono) -> bool {
        if interval == self.interval {
            return false;
        }
        self.interval = interval;
        self.start(now);
        true
    }

    pub(super) fn deadline(&self) -> Option<Mono> {
        self.next
    }

    /// Is a sample due at `now`? Then the next one is planned `interval` after `now`.
    pub(super) fn due(&mut self, now: Mono) -> bool {
        if self.next.is_some_and(|t| t <= now) {
            self.next = Some(now + self.interval);
            return true;
        }
        false
    }

    /// Samples this rare are shown at once (the state file is written for them); more
    /// frequent ones ride on the heartbeat.
    pub(super) fn shown_at_once(&self) -> bool {
        self.interval >= HEARTBEAT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Mono {
        Mono::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn state_writes_are_coalesced_then_a_heartbeat_and_none_after_the_last() {
        let mut c = StateCadence::default();
        // The first write is due at once.
        assert!(c.due(ms(0)));
        c.written(ms(0), false);
        // Nothing changed: the heartbeat, 10 s later.
        assert_eq!(c.deadline(ms(5)), Some(ms(10_000)));
        assert!(!c.due(ms(9_999)));
        assert!(c.due(ms(10_000)));
        c.written(ms(10_000), false);
        // A burst of changes within 200 ms of the last write is one write at +200 ms.
        for t in [10_001, 10_050, 10_150] {
            c.mark_dirty();
            assert_eq!(c.deadline(ms(t)), Some(ms(10_200)), "at {t} ms");
            assert!(!c.due(ms(t)));
        }
        assert!(c.due(ms(10_200)));
        c.written(ms(10_200), false);
        assert_eq!(
            c.deadline(ms(10_200)),
            Some(ms(20_200)),
            "back to the heartbeat"
        );
        // A change long after the last write is written at once.
        c.mark_dirty();
        assert!(c.due(ms(15_000)));
        // The last write at exit: nothing is due after it, changes or not.
        c.written(ms(15_000), true);
        c.mark_dirty();
        assert_eq!(c.deadline(ms(15_000)), None);
        assert!(!c.due(ms(100_000)));
    }

    #[test]
    fn the_inbox_is_polled_every_second_unless_inotify_watches_it() {
        let mut p = InboxPoll::default();
        assert_eq!(p.deadline(), None, "no inbox, no polls");
        assert!(!p.due(ms(5_000)));
        p.start(ms(100), false);
        assert_eq!(p.deadline(), Some(ms(1_100)));
        assert!(!p.due(ms(1_099)));
        // A late wake-up plans the next poll from when it happened.
        assert!(p.due(ms(1_300)));
        assert_eq!(p.deadline(), Some(ms(2_300)));
        let mut w = InboxPoll::default();
        w.start(ms(0), true);
        assert_eq!(w.deadline(), Some(ms(30_000)), "the safety poll only");
        assert!(!w.due(ms(29_999)));
        assert!(w.due(ms(30_000)));
        assert_eq!(w.deadline(), Some(ms(60_000)));
    }

    #[test]
    fn samples_follow_the_interval_and_a_change_of_it() {
        let mut s = SampleSchedule::new(Duration::from_secs(2));
        assert_eq!(s.deadline(), None, "not before start");
        s.start(ms(50));
        assert!(s.due(ms(50)), "the first at once");
        assert_eq!(s.deadline(), Some(ms(2_050)));
        assert!(!s.due(ms(2_000)));
        assert!(s.due(ms(2_100)));
        assert_eq!(s.deadline(), Some(ms(4_100)));
        assert!(!s.shown_at_once());
        // Same value: nothing changes.
        assert!(!s.set_interval(Duration::from_secs(2), ms(3_000)));
        assert_eq!(s.deadline(), Some(ms(4_100)));
        // A new value: a sample at once, then at the new rate.
        assert!(s.set_interval(Duration::from_secs(30), ms(3_000)));
        assert!(s.shown_at_once());
        assert!(s.due(ms(3_000)));
        assert_eq!(s.deadline(), Some(ms(33_000)));
        // 0: off, never due.
        assert!(s.set_interval(Duration::ZERO, ms(4_000)));
        assert_eq!(s.deadline(), None);
        assert!(!s.due(ms(1_000_000)));
        let mut off = SampleSchedule::new(Duration::ZERO);
        off.start(ms(0));
        assert_eq!(off.deadline(), None);
    }
}
