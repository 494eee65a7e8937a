//! The event loop itself: one turn waits for an event or the earliest deadline
//! ([`Deadlines`]), serves the ready fds by their [`Token`], then serves what is due. The
//! same turn runs in two phases: [`Phase::Running`] until the core is done, then
//! [`Phase::Draining`] while bansuri waits for its notifiers at exit (signals, child exits,
//! pipes and worker reports are still served, the alarm is armed for the notifiers'
//! timeouts, and nothing else wakes the loop).
//!
//! Every step returns how the run ended when the core is done (`Option<Ending>`); a turn stops
//! at the first one, and [`Runtime::run`] finishes once, in one place.

use nix::sys::epoll::{EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::Signal;

use super::deadlines::{Deadlines, Source};
use super::{Runtime, RuntimeError, Token, DRAIN_POLL};
use crate::clock::Mono;
use crate::core::Input;
use crate::level::Level;

/// Where the loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Serving every source.
    Running,
    /// The core is done: only notifiers still running are waited for, up to their
    /// timeouts; a SIGTERM or SIGINT cuts the wait (`cut`).
    Draining { cut: bool },
}

/// The signals read at one wake-up.
#[derive(Debug, Default)]
struct Signals {
    child_exited: bool,
    stop: Vec<Signal>,
    hup: bool,
}

impl Runtime {
    /// Run until the core is done; the exit code.
    pub(super) fn run(&mut self) -> Result<crate::model::Ending, RuntimeError> {
        let code = match self.start() {
            Some(code) => code,
            None => self.serve_until_exit()?,
        };
        Ok(self.finish(code))
    }

    fn start(&mut self) -> Option<crate::model::Ending> {
        // What the node has and the job's end, before anything is started (issue 17).
        let mut actions = Vec::new();
        for input in self.resources_inputs() {
            actions.extend(self.core.handle(input, self.now()));
        }
        // The other nodes of the job, through one step of agents (issue 18).
        if let Some(input) = self.start_agents() {
            actions.extend(self.core.handle(input, self.now()));
        }
        actions.extend(self.core.handle(Input::Start, self.now()));
        self.apply(actions).or_else(|| {
            let stop_before_end = self.core.globals().stop_before_end;
            self.plan_shutdown(stop_before_end)
        })
    }

    fn serve_until_exit(&mut self) -> Result<crate::model::Ending, RuntimeError> {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            if let Some(code) = self.turn(&mut events)? {
                return Ok(code);
            }
        }
    }

    /// One turn of the loop: wait, serve the events, serve what is due.
    pub(super) fn turn(
        &mut self,
        events: &mut [EpollEvent],
    ) -> Result<Option<crate::model::Ending>, RuntimeError> {
        self.notifying.sweep();
        let n = self.wait(events)?;
        for ev in events.iter().take(n) {
            if let Some(code) = self.on_event(Token::from_u64(ev.data()), ev.events()) {
                return Ok(Some(code));
            }
        }
        Ok(self.after_events())
    }

    /// Every source's next deadline (in the draining phase, the notifiers' only).
    fn deadlines(&self, now: Mono) -> Deadlines {
        let mut d = Deadlines::default();
        d.set(Source::Notifiers, self.notifying.deadline());
        if self.phase != Phase::Running {
            return d;
        }
        d.set(
            Source::Drain,
            (!self.draining.is_empty()).then(|| now + DRAIN_POLL),
        );
        d.set(Source::Config, self.watch_deadline());
        d.set(Source::EndTime, self.slurm_state.refresh_at);
        d.set(Source::Core, self.core.next_deadline());
        d.set(Source::Agents, self.agents_deadline());
        self.observe_deadlines(now, &mut d);
        d
    }

    /// Sleep until an event or the earliest deadline; the number of events.
    fn wait(&mut self, events: &mut [EpollEvent]) -> Result<usize, RuntimeError> {
        let now = self.now().mono;
        let mut deadlines = self.deadlines(now);
        if deadlines.timeout(now) != EpollTimeout::ZERO {
            self.flush_log();
            // Going idle: the moment to show progress (after the log lines).
            if self.phase == Phase::Running {
                deadlines.set(Source::Progress, self.show_progress(now));
            }
        }
        let timeout = deadlines.timeout(now);
        if timeout == EpollTimeout::NONE {
            self.alarm
                .set(deadlines.earliest())
                .map_err(RuntimeError::sys("cannot arm the timerfd"))?;
        }
        match self.epoll.wait(events, timeout) {
            Ok(n) => Ok(n),
            Err(nix::Error::EINTR) => Ok(0),
            Err(source) => Err(RuntimeError::Sys {
                what: "epoll_wait failed",
                source,
            }),
        }
    }

    fn on_event(&mut self, token: Token, flags: EpollFlags) -> Option<crate::model::Ending> {
        match token {
            // Nothing to do but consume it: the deadlines are checked after the events.
            Token::Alarm => {
                self.alarm.fired();
                None
            }
            Token::Signal => self.on_signals(),
            Token::Worker => self.on_workers(),
            Token::Pipe(slot) => {
                self.on_pipe(slot, false);
                None
            }
            Token::Agents => self.on_agents_output(),
            token => self.serve_event(token, flags),
        }
    }

    /// What is due after the events: the clock check, draining groups, then each due
    /// source in [`Source`] order, then the observer.
    fn after_events(&mut self) -> Option<crate::model::Ending> {
        if let Phase::Draining { cut } = self.phase {
            if !cut {
                self.check_notifiers();
            }
            return None;
        }
        let now = self.now().mono;
        let due: Vec<Source> = self.deadlines(now).due(now).collect();
        self.check_clock()
            .or_else(|| self.check_draining())
            .or_else(|| due.into_iter().find_map(|s| self.on_due(s)))
            .or_else(|| self.observe_due())
    }

    fn on_due(&mut self, source: Source) -> Option<crate::model::Ending> {
        match source {
            Source::Notifiers => {
                self.check_notifiers();
                None
            }
            Source::Config => self.check_config(false),
            Source::EndTime => self.refresh_end_time(),
            Source::Core => {
                let actions = self.core.handle(Input::Tick, self.now());
                self.apply(actions)
            }
            Source::Agents => self.agents_due(),
            // Served at every turn: draining groups by `check_draining`, the observer's
            // by `observe_due`, the progress line when the loop goes idle.
            Source::Drain
            | Source::StateFile
            | Source::Sample
            | Source::Escape
            | Source::Serve
            | Source::Inbox
            | Source::Dashboard
            | Source::Progress => None,
        }
    }

    fn read_signals(&mut self) -> Signals {
        let mut got = Signals::default();
        loop {
            match self.sigfd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => got.child_exited = true,
                    Ok(s @ (Signal::SIGTERM | Signal::SIGINT)) => got.stop.push(s),
                    Ok(Signal::SIGHUP) => got.hup = true,
                    _ => {}
                },
                Ok(None) => break,
                Err(nix::Error::EINTR) => continue,
                Err(_) => break,
            }
        }
        got
    }

    fn on_signals(&mut self) -> Option<crate::model::Ending> {
        let arrival = self.now();
        let got = self.read_signals();
        if let Phase::Draining { cut } = &mut self.phase {
            *cut |= !got.stop.is_empty();
            if got.child_exited {
                let _ = self.reap_all();
            }
            return None;
        }
        let reaped = if got.child_exited {
            self.reap_all()
        } else {
            None
        };
        reaped.or_else(|| self.on_hup(got.hup)).or_else(|| {
            got.stop.iter().find_map(|signal| {
                // Escaped processes whose run is over: stop them with the rest (those of
                // a run get its stop signal).
                self.stop_loose_escapees();
                self.stop_inputs(*signal, arrival)
                    .into_iter()
                    .find_map(|input| {
                        let actions = self.core.handle(input, self.now());
                        self.apply(actions)
                    })
            })
        })
    }

    fn on_hup(&mut self, hup: bool) -> Option<crate::model::Ending> {
        if !hup {
            return None;
        }
        let reread = if self.watch.enabled {
            self.master(Level::Info, "SIGHUP received: re-reading the config file");
            self.check_config(true)
        } else {
            self.master(Level::Info, "SIGHUP received: ignored with --once");
            None
        };
        reread.or_else(|| self.hup_end_time())
    }

    /// Drain what is left, flush, and hand back how the run ended.
    fn finish(&mut self, ending: crate::model::Ending) -> crate::model::Ending {
        // The live line disappears; the final table (already logged) takes its place.
        self.progress.hide();
        // Escaped processes that ignored SIGTERM at shutdown go now.
        self.kill_escapees();
        // The agents end once every run is over (the core is done): their step ends.
        self.stop_agents();
        self.wait_notifiers();
        let slots: Vec<usize> = (0..self.pipes.len())
            .filter(|&i| self.pipes[i].is_some())
            .collect();
        for slot in slots {
            self.on_pipe(slot, true);
            // Whatever still holds the pipe open (a process that escaped its group) no
            // longer matters: flush the partial line and let go.
            self.close_pipe(slot);
        }
        self.observe_finish(crate::model::Exit::Run(ending).code());
        self.flush_log();
        ending
    }
}
