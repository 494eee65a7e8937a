//! The loop's one view of what is due: the earliest deadline of each source, the epoll
//! timeout and the alarm they make, and which sources are due.
//!
//! Every machine of the runtime says when it needs the loop next (the core's
//! `next_deadline()`, notifier timeouts, the config watch, the job's end-time refresh,
//! process groups draining, the state file's cadence, the sampler, escaped processes,
//! the control endpoints, the progress line); the loop collects them here once per turn,
//! arms the alarm for the earliest and, after the events, asks which are due.
//!
//! Owns: the aggregation. Must not: read the clock or know how a source is served.

use nix::sys::epoll::EpollTimeout;

use crate::clock::Mono;

/// What a deadline is for, in the order the loop serves them when several are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Process groups that outlived their main process (polled while there are any).
    Drain,
    /// Notifier timeouts.
    Notifiers,
    /// The config watch: the next look, or a change waiting to settle.
    Config,
    /// Reading the SLURM job's end time again (`stop_before_end`).
    EndTime,
    /// The core's next deadline.
    Core,
    /// The agents' heartbeats (issue 18).
    Agents,
    /// The state file's next write (coalesced change or heartbeat).
    StateFile,
    /// The next resource sample.
    Sample,
    /// Escaped processes to look at again.
    Escape,
    /// Control connections' timeouts, paused listeners.
    Serve,
    /// The request inbox's poll.
    Inbox,
    /// The dashboard's next snapshot.
    Dashboard,
    /// The progress line's next redraw.
    Progress,
}

impl Source {
    /// Every source, in serving order.
    pub(super) const ALL: [Source; 13] = [
        Source::Drain,
        Source::Notifiers,
        Source::Config,
        Source::EndTime,
        Source::Core,
        Source::Agents,
        Source::StateFile,
        Source::Sample,
        Source::Escape,
        Source::Serve,
        Source::Inbox,
        Source::Dashboard,
        Source::Progress,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The earliest deadline of each source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Deadlines {
    at: [Option<Mono>; Source::ALL.len()],
}

impl Deadlines {
    /// Set `source`'s deadline (`None`: it needs no wake-up).
    pub(super) fn set(&mut self, source: Source, at: Option<Mono>) {
        self.at[source.index()] = at;
    }

    /// `source`'s deadline.
    pub(super) fn get(&self, source: Source) -> Option<Mono> {
        self.at[source.index()]
    }

    /// The earliest of all: what the alarm is armed for.
    pub(super) fn earliest(&self) -> Option<Mono> {
        self.at.iter().flatten().min().copied()
    }

    /// How long `epoll_wait` may sleep: not at all when a deadline is due, else until an
    /// event or the alarm (armed for [`Deadlines::earliest`]) wakes it.
    pub(super) fn timeout(&self, now: Mono) -> EpollTimeout {
        match self.earliest() {
            Some(d) if d <= now => EpollTimeout::ZERO,
            _ => EpollTimeout::NONE,
        }
    }

    /// The sources due at `now`, in serving order.
    pub(super) fn due(&self, now: Mono) -> impl Iterator<Item = Source> + '_ {
        Source::ALL
            .into_iter()
            .filter(move |s| self.get(*s).is_some_and(|d| d <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Mono {
        Mono::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn every_source_is_listed_once_in_declaration_order() {
        for (i, s) in Source::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i, "{s:?} is out of place in Source::ALL");
        }
        // The last variant's slot exists: a source left out of ALL would be past the end.
        assert_eq!(Source::Progress.index(), Source::ALL.len() - 1);
    }

    #[test]
    fn the_earliest_of_every_source_is_the_alarm_and_none_means_sleep() {
        let mut d = Deadlines::default();
        assert_eq!(d.earliest(), None);
        assert_eq!(d.timeout(ms(0)), EpollTimeout::NONE, "nothing due: sleep");
        for (i, s) in Source::ALL.into_iter().enumerate() {
            d.set(s, Some(ms(1_000 + 10 * i as u64)));
        }
        assert_eq!(d.earliest(), Some(ms(1_000)));
        // Each source alone is the earliest once the earlier ones are gone.
        for (i, s) in Source::ALL.into_iter().enumerate() {
            assert_eq!(d.earliest(), Some(ms(1_000 + 10 * i as u64)), "{s:?}");
            assert_eq!(d.get(s), Some(ms(1_000 + 10 * i as u64)));
            d.set(s, None);
        }
        assert_eq!(d.earliest(), None);
        // A later value replaces an earlier one of the same source.
        d.set(Source::Core, Some(ms(5)));
        d.set(Source::Core, Some(ms(50)));
        d.set(Source::Sample, Some(ms(70)));
        assert_eq!(d.earliest(), Some(ms(50)));
    }

    #[test]
    fn a_past_deadline_means_no_sleep_and_the_due_sources_come_in_serving_order() {
        let mut d = Deadlines::default();
        d.set(Source::Core, Some(ms(100)));
        d.set(Source::Notifiers, Some(ms(100)));
        d.set(Source::StateFile, Some(ms(300)));
        d.set(Source::Drain, Some(ms(90)));
        assert_eq!(d.timeout(ms(89)), EpollTimeout::NONE);
        assert_eq!(d.timeout(ms(90)), EpollTimeout::ZERO);
        assert_eq!(d.due(ms(89)).count(), 0);
        assert_eq!(
            d.due(ms(100)).collect::<Vec<_>>(),
            [Source::Drain, Source::Notifiers, Source::Core]
        );
        assert_eq!(d.due(ms(1_000)).count(), 4);
    }
}
