//! The runtime's clock and its one alarm.
//!
//! `Mono` is CLOCK_MONOTONIC minus the runtime's origin, read with `clock_gettime`, and the
//! next deadline is an absolute CLOCK_MONOTONIC timerfd registered in the epoll set. The
//! loop then wakes at the deadline to the microsecond (plus the kernel's timer slack),
//! where `epoll_wait`'s millisecond timeout had to be rounded up and woke up to 1 ms late:
//! a timer task's starts keep to their grid (bench W6), and nothing spins.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::{clock_gettime, ClockId as TimeClock};

use crate::clock::Mono;

/// The farthest expiry ever armed (about 34,000 years): a `timespec` holds it, and a
/// deadline beyond it is "never" in practice.
const FAR: Duration = Duration::from_secs(1 << 40);

/// CLOCK_MONOTONIC now.
fn monotonic() -> Duration {
    clock_gettime(TimeClock::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// The monotonic clock relative to an origin, and an alarm set on it.
pub(super) struct Alarm {
    fd: TimerFd,
    /// CLOCK_MONOTONIC at `Mono::ZERO`.
    origin: Duration,
    /// The deadline the timer is armed for, if any (so an unchanged deadline costs no
    /// syscall).
    armed: Option<Mono>,
}

impl Alarm {
    /// A disarmed alarm; `Mono::ZERO` is now.
    pub(super) fn new() -> nix::Result<Alarm> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Alarm {
            fd,
            origin: monotonic(),
            armed: None,
        })
    }

    /// The monotonic time since the origin.
    pub(super) fn now(&self) -> Mono {
        Mono(monotonic().saturating_sub(self.origin))
    }

    /// Arm the alarm for `at` (absolute), or disarm it. A deadline already past fires at
    /// once.
    pub(super) fn set(&mut self, at: Option<Mono>) -> nix::Result<()> {
        if self.armed == at {
            return Ok(());
        }
        match at {
            None => self.fd.unset()?,
            Some(d) => {
                // An absolute expiry of zero would disarm the timer: never ask for it. A
                // saturated deadline ("never") is clamped to what a timespec holds.
                let abs = self
                    .origin
                    .saturating_add(d.0)
                    .clamp(Duration::from_nanos(1), FAR);
                self.fd.set(
                    Expiration::OneShot(TimeSpec::from_duration(abs)),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                )?
            }
        }
        self.armed = at;
        Ok(())
    }

    /// The alarm went off: consume the expiry (the timer is disarmed now).
    pub(super) fn fired(&mut self) {
        // EAGAIN (re-armed in between, not expired) is fine: nothing to consume.
        let _ = self.fd.wait();
        self.armed = None;
    }

    /// The fd to watch for the alarm.
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_its_deadline_never_before_and_not_when_disarmed() {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut a = Alarm::new().unwrap();
        for _ in 0..20 {
            let at = a.now() + Duration::from_micros(2_300);
            a.set(Some(at)).unwrap();
            let mut fds = [PollFd::new(a.as_fd(), PollFlags::POLLIN)];
            assert_eq!(poll(&mut fds, PollTimeout::from(1000u16)).unwrap(), 1);
            let woke = a.now();
            a.fired();
            assert!(woke >= at, "woke {:?} before the deadline {:?}", woke, at);
        }
        // Disarmed after firing: setting the same deadline again arms it again.
        let at = a.now();
        a.set(Some(at)).unwrap();
        let mut fds = [PollFd::new(a.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(1000u16)).unwrap(), 1);
        a.fired();
        a.set(None).unwrap();
        let mut fds = [PollFd::new(a.as_fd(), PollFlags::POLLIN)];
        assert_eq!(
            poll(&mut fds, PollTimeout::from(50u16)).unwrap(),
            0,
            "a disarmed alarm fired"
        );
    }

    /// A saturated deadline (`Mono` at `Duration::MAX`) arms a far expiry, no error.
    #[test]
    fn a_deadline_of_never_arms_without_error() {
        let mut a = Alarm::new().unwrap();
        a.set(Some(Mono(Duration::MAX))).unwrap();
        a.set(Some(a.now() + Duration::MAX)).unwrap();
        let mut fds = [nix::poll::PollFd::new(
            a.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        assert_eq!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u16)).unwrap(),
            0,
            "a far deadline fired"
        );
    }
}
