//! Time as the core sees it: a monotonic instant for deadlines and a wall-clock time for
//! cron and display, always passed in (`Now`), never read here.
//!
//! Only the runtime reads the real clocks; tests build `Now` values by hand and step them.

use std::ops::{Add, Sub};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A monotonic instant: time since an arbitrary origin (the runtime's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(pub Duration);

impl Mono {
    /// The origin.
    pub const ZERO: Mono = Mono(Duration::ZERO);

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        Mono(self.0 + d)
    }
}

impl Sub<Duration> for Mono {
    type Output = Mono;
    fn sub(self, d: Duration) -> Mono {
        Mono(self.0.saturating_sub(d))
    }
}

/// The present, as given to the core: both clocks read at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (deadlines, timers, timeouts, backoff).
    pub mono: Mono,
    /// Wall-clock time (cron, timestamps shown to users).
    pub wall: DateTime<Utc>,
}

impl Now {
    /// `Now` advanced by `d` on both clocks (for tests and for converting deadlines).
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero()),
        }
    }

    /// The wall-clock time at which monotonic instant `at` falls, assuming no clock jump.
    pub fn wall_at(self, at: Mono) -> DateTime<Utc> {
        if at >= self.mono {
            self.after(at.since(self.mono)).wall
        } else {
            self.wall
                - chrono::Duration::from_std(self.mono.since(at))
                    .unwrap_or(chrono::Duration::zero())
        }
    }
}
