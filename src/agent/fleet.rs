//! The leader's view of its agents, sans IO: which nodes answered, which runs are where,
//! heartbeats, and when a node counts as lost (issue 18, 3). The runtime feeds it the
//! step's output lines and the time, writes the frames it returns to the step's stdin,
//! and turns its events into core inputs; it never reads a clock or a file itself.
//!
//! Rules:
//! * an agent is expected per node of the step; one that has not said `ready` within
//!   [`Timing::ready_within`] is lost ("did not start");
//! * every [`Timing::ping_every`] each ready node is pinged; a node from which nothing
//!   (any frame counts) was heard for [`Timing::lost_after`] is lost ("stopped answering");
//! * the step ending (srun exited: an agent died, or the step was cancelled) loses every
//!   node still up ("its agent exited");
//! * a lost node's runs end as failed with the reason ("node n2 lost: stopped answering"),
//!   and the node is never used again.
//!
//! Owns: agent health, run placement bookkeeping, heartbeat timing. Must not: do I/O,
//! decide which node a run goes to (the scheduler does), retry runs (the core does).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::protocol::{self, FrameError, FromAgent, Stream, ToAgent};
use crate::clock::Mono;
use crate::model::{ExitStatus, Usage};

/// The heartbeat's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long an agent may take to say `ready`.
    pub ready_within: Duration,
    /// How often each node is pinged.
    pub ping_every: Duration,
    /// Silence after which a node is lost.
    pub lost_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ready_within: Duration::from_secs(60),
            ping_every: Duration::from_secs(5),
            lost_after: Duration::from_secs(30),
        }
    }
}

/// How a node is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Its agent has not said `ready` yet.
    Starting,
    /// Up: its CPUs (a Linux cpu list) and memory (bytes), as the agent found them.
    Ready {
        /// CPUs the agent may use.
        cpus: String,
        /// Memory of the node.
        mem: u64,
    },
    /// Lost, never used again: why.
    Lost(String),
}

/// One node of the step.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name (from its `ready`; `rank N` until then).
    pub name: String,
    /// Its health.
    pub health: Health,
    last_heard: Mono,
    next_ping: Mono,
    seq: u64,
}

/// What the leader learns from its agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node is ready to take runs.
    NodeReady {
        /// Its name.
        node: String,
        /// The CPUs its agent found (a Linux cpu list).
        cpus: String,
        /// Its memory, bytes.
        mem: u64,
        /// Its GPUs, as its processes address them.
        gpus: Vec<String>,
    },
    /// A run's process started on its node.
    Started {
        /// The attempt.
        run: u64,
        /// Its pid there.
        pid: u32,
    },
    /// A run could not start (words for the job log).
    StartFailed {
        /// The attempt.
        run: u64,
        /// Why.
        error: String,
    },
    /// A line of a run's output.
    Output {
        /// The attempt.
        run: u64,
        /// Which stream.
        stream: Stream,
        /// The line's bytes.
        line: Vec<u8>,
    },
    /// A run's main process ended; its group lives on.
    LeaderExited {
        /// The attempt.
        run: u64,
        /// How it ended.
        status: ExitStatus,
    },
    /// A run is over.
    Exited {
        /// The attempt.
        run: u64,
        /// How its main process ended.
        status: ExitStatus,
        /// CPU time and peak RSS.
        usage: Usage,
    },
    /// A node is lost: its runs (listed) end as failed with `reason`.
    NodeLost {
        /// The node.
        node: String,
        /// Why, in words ("stopped answering").
        reason: String,
        /// The attempts that were on it.
        runs: Vec<u64>,
    },
    /// A line from the step that is not a frame (an agent's or srun's diagnostic), kept
    /// for the job log.
    Stray {
        /// The node it came from, when its label says.
        node: Option<String>,
        /// The line.
        line: String,
    },
}

/// srun's own report that a task of the step ended badly, as srun 20.11 to 24.x word it:
/// `srun: error: n2: task 0: Killed` or `srun: error: n2: task 1: Exited with exit code
/// 1`: the rank and what srun said.
fn srun_task_error(line: &str) -> Option<(u32, &str)> {
    let rest = line.strip_prefix("srun: error: ")?;
    let (_node, rest) = rest.split_once(": task ")?;
    let (ranks, why) = rest.split_once(": ")?;
    // `task 0-1` when several tasks of a node end alike: the first is enough (one agent
    // per node).
    let first = ranks.split(['-', ',']).next()?;
    Some((first.trim().parse().ok()?, why.trim()))
}

/// The agents of one step.
#[derive(Debug)]
pub struct Fleet {
    timing: Timing,
    /// By srun task rank.
    nodes: BTreeMap<u32, Node>,
    /// Where each run is (its node's rank).
    runs: HashMap<u64, u32>,
    started: Mono,
    /// The nodes were named by the leader ([`Fleet::named`]).
    named: bool,
}

impl Fleet {
    /// A step of `count` agents started at `now`.
    pub fn new(count: u32, timing: Timing, now: Mono) -> Fleet {
        let nodes = (0..count)
            .map(|r| {
                let node = Node {
                    name: format!("rank {r}"),
                    health: Health::Starting,
                    last_heard: now,
                    next_ping: now + timing.ping_every,
                    seq: 0,
                };
                (r, node)
            })
            .collect();
        Fleet {
            timing,
            nodes,
            runs: HashMap::new(),
            started: now,
            named: false,
        }
    }

    /// A step started at `now` on `names`, in rank order (srun's block distribution with
    /// one task per node ranks the nodes in the order of the step's node list): a node
    /// lost before it said `ready` is named.
    pub fn named(names: &[String], timing: Timing, now: Mono) -> Fleet {
        let mut fleet = Fleet::new(names.len() as u32, timing, now);
        for (node, name) in fleet.nodes.values_mut().zip(names) {
            node.name.clone_from(name);
        }
        fleet.named = true;
        fleet
    }

    /// The nodes, by rank.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// The node a run is on.
    pub fn node_of(&self, run: u64) -> Option<&str> {
        let rank = self.runs.get(&run)?;
        Some(self.nodes[rank].name.as_str())
    }

    fn rank_of(&self, node: &str) -> Option<u32> {
        self.nodes
            .iter()
            .find(|(_, n)| n.name == node && matches!(n.health, Health::Ready { .. }))
            .map(|(r, _)| *r)
    }

    /// The frame that starts `start` (a `ToAgent::Start`) on its node, and the run noted
    /// there; `None` when that node is not ready (lost meanwhile: the caller fails the run).
    pub fn start(&mut self, start: ToAgent) -> Option<String> {
        let ToAgent::Start { to, run, .. } = &start else {
            return None;
        };
        let rank = self.rank_of(to)?;
        self.runs.insert(*run, rank);
        Some(protocol::encode(&start))
    }

    /// The frame that sends `signal` to `run`'s group; `None` when the run is unknown or
    /// its node is lost.
    pub fn signal(&self, run: u64, signal: i32) -> Option<String> {
        let rank = self.runs.get(&run)?;
        let node = &self.nodes[rank];
        matches!(node.health, Health::Ready { .. }).then(|| {
            protocol::encode(&ToAgent::Signal {
                to: node.name.clone(),
                run,
                signal,
            })
        })
    }

    /// One line of the step's (labelled) output.
    pub fn on_line(&mut self, line: &str, now: Mono) -> Vec<Event> {
        if let Some((rank, why)) = srun_task_error(line) {
            // srun says a task (an agent) ended: its node is lost now, not at the next
            // missed heartbeat.
            if self
                .nodes
                .get(&rank)
                .is_some_and(|n| !matches!(n.health, Health::Lost(_)))
            {
                return self.lose(rank, format!("its agent exited ({why})"));
            }
        }
        let Some((rank, rest)) = protocol::split_label(line) else {
            return vec![Event::Stray {
                node: None,
                line: line.to_owned(),
            }];
        };
        let Some(node) = self.nodes.get_mut(&rank) else {
            return vec![Event::Stray {
                node: None,
                line: line.to_owned(),
            }];
        };
        if matches!(node.health, Health::Lost(_)) {
            return Vec::new(); // a lost node stays lost
        }
        node.last_heard = now;
        let frame = match protocol::decode::<FromAgent>(rest) {
            Ok(f) => f,
            Err(FrameError::NotAFrame) => {
                return vec![Event::Stray {
                    node: Some(node.name.clone()),
                    line: rest.to_owned(),
                }]
            }
            Err(e) => return self.lose(rank, e.to_string()),
        };
        self.on_frame(rank, frame)
    }

    fn on_frame(&mut self, rank: u32, frame: FromAgent) -> Vec<Event> {
        let ev = match frame {
            FromAgent::Ready {
                node,
                cpus,
                mem,
                gpus,
                ..
            } => {
                let named = self.named;
                let n = self.nodes.get_mut(&rank).expect("known rank");
                // A step the leader named keeps the leader's names (Slurm's node names).
                if !named {
                    n.name = node;
                }
                n.health = Health::Ready {
                    cpus: cpus.clone(),
                    mem,
                };
                Event::NodeReady {
                    node: n.name.clone(),
                    cpus,
                    mem,
                    gpus,
                }
            }
            FromAgent::Started { run, pid } => Event::Started { run, pid },
            FromAgent::StartFailed { run, error } => {
                self.runs.remove(&run);
                Event::StartFailed { run, error }
            }
            f @ FromAgent::Output { .. } => {
                let line = f.output_bytes().unwrap_or_default();
                let FromAgent::Output { run, stream, .. } = f else {
                    unreachable!()
                };
                Event::Output { run, stream, line }
            }
            FromAgent::LeaderExited { run, code, signal } => Event::LeaderExited {
                run,
                status: status_of(code, signal),
            },
            FromAgent::Exited {
                run,
                code,
                signal,
                cpu_us,
                max_rss,
            } => {
                self.runs.remove(&run);
                Event::Exited {
                    run,
                    status: status_of(code, signal),
                    usage: Usage {
                        cpu: Duration::from_micros(cpu_us),
                        max_rss,
                    },
                }
            }
            FromAgent::Pong { .. } => return Vec::new(),
        };
        vec![ev]
    }

    /// The ranks still up, for a node list of `status`.
    pub fn up(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .values()
            .filter(|n| !matches!(n.health, Health::Lost(_)))
            .map(|n| n.name.as_str())
    }

    /// The step (srun) has ended: every node still up is lost.
    pub fn step_ended(&mut self) -> Vec<Event> {
        let up: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| !matches!(n.health, Health::Lost(_)))
            .map(|(r, _)| *r)
            .collect();
        up.into_iter()
            .flat_map(|r| self.lose(r, "its agent exited".to_owned()))
            .collect()
    }

    fn lose(&mut self, rank: u32, reason: String) -> Vec<Event> {
        let node = self.nodes.get_mut(&rank).expect("known rank");
        node.health = Health::Lost(reason.clone());
        let mut runs: Vec<u64> = self
            .runs
            .iter()
            .filter(|(_, r)| **r == rank)
            .map(|(run, _)| *run)
            .collect();
        runs.sort_unstable();
        for run in &runs {
            self.runs.remove(run);
        }
        vec![Event::NodeLost {
            node: node.name.clone(),
            reason,
            runs,
        }]
    }

    /// Time passes: the pings due (frames to write) and the nodes lost meanwhile.
    pub fn tick(&mut self, now: Mono) -> (Vec<String>, Vec<Event>) {
        let mut frames = Vec::new();
        let mut lost = Vec::new();
        let t = self.timing;
        for (&rank, node) in self.nodes.iter_mut() {
            match node.health {
                Health::Lost(_) => {}
                Health::Starting => {
                    if now.since(self.started) >= t.ready_within {
                        lost.push((rank, format!("did not start within {:?}", t.ready_within)));
                    }
                }
                Health::Ready { .. } => {
                    if now.since(node.last_heard) >= t.lost_after {
                        lost.push((rank, format!("stopped answering for {:?}", t.lost_after)));
                    } else if now >= node.next_ping {
                        node.seq += 1;
                        node.next_ping = now + t.ping_every;
                        frames.push(protocol::encode(&ToAgent::Ping { seq: node.seq }));
                    }
                }
            }
        }
        let events = lost
            .into_iter()
            .flat_map(|(rank, why)| self.lose(rank, why))
            .collect();
        // One ping line reaches every agent (stdin is broadcast): send it once.
        frames.truncate(1);
        (frames, events)
    }

    /// When `tick` has something to do next.
    pub fn next_deadline(&self) -> Option<Mono> {
        let t = self.timing;
        self.nodes
            .values()
            .filter_map(|n| match n.health {
                Health::Lost(_) => None,
                Health::Starting => Some(self.started + t.ready_within),
                Health::Ready { .. } => Some(n.next_ping.min(n.last_heard + t.lost_after)),
            })
            .min()
    }
}

fn status_of(code: Option<i32>, signal: Option<i32>) -> ExitStatus {
    match (code, signal) {
        (_, Some(s)) => ExitStatus::Signal(s),
        (Some(c), None) => ExitStatus::Code(c),
        // An agent always sends one of the two; a frame with neither is a failure.
        (None, None) => ExitStatus::Code(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Mono {
        Mono(Duration::from_millis(ms))
    }

    fn labelled(rank: u32, f: &FromAgent) -> String {
        format!("{rank}: {}", protocol::encode(f).trim_end())
    }

    fn ready(fleet: &mut Fleet, rank: u32, name: &str, now: Mono) -> Vec<Event> {
        let f = FromAgent::Ready {
            node: name.into(),
            pid: 1,
            cpus: "0-1".into(),
            mem: 1 << 30,
            gpus: vec![],
        };
        fleet.on_line(&labelled(rank, &f), now)
    }

    fn start(to: &str, run: u64) -> ToAgent {
        ToAgent::Start {
            to: to.into(),
            run,
            task: "t".into(),
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            cpus: None,
            umask: None,
            nice: None,
        }
    }

    fn two_ready_nodes() -> Fleet {
        let mut f = Fleet::new(2, Timing::default(), at(0));
        assert_eq!(
            ready(&mut f, 0, "n2", at(100)),
            [Event::NodeReady {
                node: "n2".into(),
                cpus: "0-1".into(),
                mem: 1 << 30,
                gpus: vec![],
            }]
        );
        ready(&mut f, 1, "n3", at(100));
        f
    }

    #[test]
    fn runs_go_to_ready_nodes_and_their_frames_come_back_as_events() {
        let mut f = two_ready_nodes();
        let line = f.start(start("n3", 7)).expect("n3 is ready");
        assert!(line.contains("\"to\":\"n3\""));
        assert_eq!(f.node_of(7), Some("n3"));
        assert!(f.start(start("n9", 8)).is_none(), "no such node");
        let sig = f.signal(7, 15).unwrap();
        assert!(sig.contains("\"signal\":15") && sig.contains("\"to\":\"n3\""));
        let out = FromAgent::output(7, Stream::Out, b"hi");
        assert_eq!(
            f.on_line(&labelled(1, &out), at(200)),
            [Event::Output {
                run: 7,
                stream: Stream::Out,
                line: b"hi".to_vec()
            }]
        );
        let end = FromAgent::Exited {
            run: 7,
            code: None,
            signal: Some(9),
            cpu_us: 1500,
            max_rss: 4096,
        };
        assert_eq!(
            f.on_line(&labelled(1, &end), at(300)),
            [Event::Exited {
                run: 7,
                status: ExitStatus::Signal(9),
                usage: Usage {
                    cpu: Duration::from_micros(1500),
                    max_rss: 4096
                }
            }]
        );
        assert_eq!(f.node_of(7), None, "an ended run is nowhere");
        assert_eq!(f.signal(7, 15), None);
    }

    #[test]
    fn a_silent_node_is_lost_with_its_runs_and_never_used_again() {
        let mut f = two_ready_nodes();
        f.start(start("n2", 1)).unwrap();
        f.start(start("n3", 2)).unwrap();
        f.start(start("n2", 3)).unwrap();
        // Pings go out every 5 s, one line for every agent.
        let (pings, lost) = f.tick(at(5_100));
        assert_eq!(pings.len(), 1);
        assert!(pings[0].contains("\"t\":\"ping\""));
        assert!(lost.is_empty());
        // n3 answers, n2 does not.
        let pong = labelled(1, &FromAgent::Pong { seq: 1 });
        assert!(f.on_line(&pong, at(5_200)).is_empty());
        assert!(f.next_deadline().unwrap() <= at(10_100));
        let (_, lost) = f.tick(at(30_100));
        assert_eq!(
            lost,
            [Event::NodeLost {
                node: "n2".into(),
                reason: "stopped answering for 30s".into(),
                runs: vec![1, 3]
            }]
        );
        assert!(
            f.start(start("n2", 4)).is_none(),
            "a lost node takes no runs"
        );
        // A late frame from it changes nothing.
        let late = labelled(0, &FromAgent::Pong { seq: 1 });
        assert!(f.on_line(&late, at(30_200)).is_empty());
        assert!(matches!(f.nodes().next().unwrap().health, Health::Lost(_)));
        assert_eq!(f.node_of(2), Some("n3"));
    }

    #[test]
    fn an_agent_that_never_starts_is_lost_and_the_step_ending_loses_the_rest() {
        let mut f = Fleet::new(2, Timing::default(), at(0));
        ready(&mut f, 1, "n3", at(10));
        assert_eq!(f.next_deadline(), Some(at(5_000)), "the first ping");
        let pong = labelled(1, &FromAgent::Pong { seq: 1 });
        f.on_line(&pong, at(59_000));
        let (_, lost) = f.tick(at(60_000));
        assert_eq!(lost.len(), 1);
        assert!(matches!(&lost[0], Event::NodeLost { node, reason, .. }
            if node == "rank 0" && reason.starts_with("did not start")));
        f.start(start("n3", 5)).unwrap();
        assert_eq!(
            f.step_ended(),
            [Event::NodeLost {
                node: "n3".into(),
                reason: "its agent exited".into(),
                runs: vec![5]
            }]
        );
        assert_eq!(f.next_deadline(), None);
        assert!(f.step_ended().is_empty());
    }

    #[test]
    fn stray_lines_and_bad_frames() {
        let mut f = two_ready_nodes();
        assert_eq!(
            f.on_line("srun: error: something", at(1)),
            [Event::Stray {
                node: None,
                line: "srun: error: something".into()
            }]
        );
        assert_eq!(
            f.on_line("1: slurmstepd: a warning", at(1)),
            [Event::Stray {
                node: Some("n3".into()),
                line: "slurmstepd: a warning".into()
            }]
        );
        // Another protocol version on a node: that node cannot be used.
        let ev = f.on_line("0: bansuri-agent/2 {}", at(2));
        assert!(matches!(&ev[0], Event::NodeLost { node, reason, .. }
            if node == "n2" && reason.contains("same bansuri binary")));
    }

    #[test]
    fn srun_saying_an_agent_ended_loses_its_node_at_once_with_its_runs() {
        let mut f = two_ready_nodes();
        f.start(start("n3", 4)).unwrap();
        f.start(start("n2", 5)).unwrap();
        let ev = f.on_line("srun: error: n3: task 1: Killed", at(300));
        assert_eq!(
            ev,
            [Event::NodeLost {
                node: "n3".into(),
                reason: "its agent exited (Killed)".into(),
                runs: vec![4],
            }]
        );
        // Said again: a stray line, no second loss.
        assert!(matches!(
            f.on_line("srun: error: n3: task 1: Killed", at(301))[..],
            [Event::Stray { .. }]
        ));
        assert_eq!(f.up().collect::<Vec<_>>(), ["n2"]);
        assert_eq!(f.node_of(5), Some("n2"));
        // Other srun words are stray lines, not losses.
        assert!(matches!(
            f.on_line("srun: Job step aborted: Waiting up to 32 seconds", at(302))[..],
            [Event::Stray { .. }]
        ));
        assert_eq!(f.up().count(), 1);
        assert_eq!(
            srun_task_error("srun: error: n2: tasks 0-1: Exited with exit code 1"),
            None
        );
        assert_eq!(
            srun_task_error("srun: error: n2: task 0-1: Exited with exit code 1"),
            Some((0, "Exited with exit code 1"))
        );
    }

    #[test]
    fn a_named_step_keeps_the_leaders_names_and_names_a_node_that_never_started() {
        let names = vec!["n2".to_owned(), "n3".to_owned()];
        let mut f = Fleet::named(&names, Timing::default(), at(0));
        // The agent calls itself something else (a short host name): the leader's name
        // stays, so its frames still find it.
        let ev = ready(&mut f, 0, "n2.cluster", at(10));
        assert!(matches!(&ev[..], [Event::NodeReady { node, .. }] if node == "n2"));
        assert!(f.start(start("n2", 1)).is_some());
        // n2 keeps answering; n3 never said `ready`.
        f.on_line(&labelled(0, &FromAgent::Pong { seq: 1 }), at(59_000));
        let (_, lost) = f.tick(at(61_000));
        assert_eq!(
            lost,
            [Event::NodeLost {
                node: "n3".into(),
                reason: "did not start within 60s".into(),
                runs: vec![],
            }]
        );
    }
}
