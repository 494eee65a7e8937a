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

/// Saturating: an instant beyond the end of `Duration` is "never", not a panic (config
/// durations are bounded, but a deadline must not be able to kill bansuri).
impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(d))
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
    /// `Now` advanced by `d` on both clocks (for tests and for converting deadlines);
    /// saturating on both.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: wall_add(self.wall, d),
        }
    }

    /// The wall-clock time at which monotonic instant `at` falls, assuming no clock jump
    /// (saturating at chrono's range).
    pub fn wall_at(self, at: Mono) -> DateTime<Utc> {
        if at >= self.mono {
            wall_add(self.wall, at.since(self.mono))
        } else {
            chrono::Duration::from_std(self.mono.since(at))
                .ok()
                .and_then(|d| self.wall.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        }
    }
}

/// `w + d`, or the last time chrono can represent when that is beyond it (`DateTime +
/// TimeDelta` panics on overflow).
pub fn wall_add(w: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| w.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deadlines far beyond any config bound saturate instead of panicking.
    #[test]
    fn arithmetic_saturates() {
        let now = Now {
            mono: Mono(Duration::from_secs(5)),
            wall: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        assert_eq!(now.mono + Duration::MAX, Mono(Duration::MAX));
        let far = now.after(Duration::MAX);
        assert_eq!(far.wall, DateTime::<Utc>::MAX_UTC);
        assert_eq!(now.wall_at(Mono(Duration::MAX)), DateTime::<Utc>::MAX_UTC);
        let huge = Duration::from_secs(10_000_000_000_000);
        assert_eq!(now.after(huge).wall, DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            now.wall_at(Mono::ZERO),
            now.wall - chrono::Duration::seconds(5)
        );
        let early = Now {
            mono: Mono(Duration::MAX),
            wall: DateTime::<Utc>::MIN_UTC,
        };
        assert_eq!(early.wall_at(Mono::ZERO), DateTime::<Utc>::MIN_UTC);
    }
}
