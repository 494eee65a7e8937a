//! The leader's side of multi-node runs (issue 18): the one job step of agents, the
//! remote executor's start and signal paths, and what the agents report.
//!
//! At start-up, in a SLURM job of several nodes with `nodes: all` (the default), the
//! runtime starts `bansuri agent` on every other node of the allocation with ONE srun
//! ([`srun_argv`]: `--overlap --whole`, one task per node, `--label`,
//! `--kill-on-bad-exit=0`), in its own session (`spawn::detach`: it dies with bansuri).
//! Its standard input is a pipe written by a thread (frames to the agents; srun
//! broadcasts it to every one, each takes the frames addressed to its node), so the loop
//! never blocks on it; its standard output and error are one non-blocking pipe in the
//! loop's epoll ([`Token::Agents`]). The [`Fleet`] reads those lines: the core hears
//! `Input::Agents` once, then `NodeReady` and `NodeLost` as the fleet says; a run the
//! core places on another node (`Action::Spawn { node: Some(..) }`) starts with a
//! `start` frame built from the same `LaunchPlan` as a local process (bound to the
//! node's grant), its signals go as `signal` frames; the agents' frames become the
//! core's `Spawned`, `SpawnFailed`, `LeaderExited` and `Exited`, and output lines go to
//! the job log as `[task@node]`.
//!
//! At exit the agents get `shutdown` and their standard input closes; srun is waited for
//! up to [`AGENTS_EXIT`], then SIGKILLed with its group.
//!
//! Owns: the agents' step, its pipes and the map of remote runs. Must not: decide where a
//! run goes (the core's packing does) or when a node is lost (the fleet does).

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::{Runtime, Token};
use crate::agent::fleet::{Event, Fleet, Timing};
use crate::agent::protocol::{self, ToAgent};
use crate::clock::Mono;
use crate::core::{Action, Input, RunId};
use crate::level::Level;
use crate::output::{LineSplitter, Stream};
use crate::resources::{CpuSet, Grant, Inventory};
use crate::spec::TaskSpec;

/// How long srun may take to end after the agents were told to.
const AGENTS_EXIT: Duration = Duration::from_secs(10);
/// Longest line read from the step (a frame carries one line of output, base64 at worst).
const MAX_STEP_LINE: usize = 1 << 20;

/// The agents' step.
pub(super) struct Agents {
    fleet: Fleet,
    /// srun's pid (its own session and group).
    pid: u32,
    /// Frames for srun's standard input, written by the writer thread.
    tx: Option<mpsc::Sender<String>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// srun's standard output and error; `None` once at end of file.
    out: Option<OwnedFd>,
    lines: LineSplitter,
    /// Runs on other nodes: the job log's label (`task@node`) of each.
    runs: HashMap<RunId, Arc<str>>,
    /// What each ready node has (the binding of its runs is made from it).
    inventories: HashMap<String, Inventory>,
    /// srun was reaped.
    reaped: bool,
}

/// srun's command line for the agents on `nodes`, running `exe agent`.
pub(super) fn srun_argv(nodes: &[String], exe: &str) -> Vec<String> {
    let k = nodes.len();
    vec![
        "srun".to_owned(),
        "--job-name=bansuri-agents".to_owned(),
        // Beside every other step of the job, with all of each node's resources (the
        // agent binds each run to its grant itself).
        "--overlap".to_owned(),
        "--whole".to_owned(),
        format!("--nodes={k}"),
        format!("--ntasks={k}"),
        "--ntasks-per-node=1".to_owned(),
        format!("--nodelist={}", nodes.join(",")),
        // Each line prefixed with its agent's rank; an agent's end does not end the
        // others (its node is lost, the rest go on).
        "--label".to_owned(),
        "--kill-on-bad-exit=0".to_owned(),
        exe.to_owned(),
        "agent".to_owned(),
    ]
}

impl Agents {
    /// Start srun for the agents on `nodes`.
    fn launch(nodes: &[String], now: Mono) -> std::io::Result<Agents> {
        let exe = std::env::current_exe()?;
        let argv = srun_argv(nodes, &exe.to_string_lossy());
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(write.try_clone()?))
            .stderr(Stdio::from(write));
        crate::spawn::detach(&mut cmd);
        let mut child = cmd.spawn()?;
        drop(cmd);
        crate::spawn::set_nonblocking(&read)?;
        let stdin = child.stdin.take().ok_or_else(|| {
            std::io::Error::other("srun was started without a standard input pipe")
        })?;
        let (tx, rx) = mpsc::channel::<String>();
        let writer = std::thread::Builder::new()
            .name("bansuri-agents-in".to_owned())
            .spawn(move || write_frames(stdin, &rx))?;
        Ok(Agents {
            fleet: Fleet::named(nodes, Timing::default(), now),
            pid: child.id(),
            tx: Some(tx),
            writer: Some(writer),
            out: Some(read),
            lines: LineSplitter::new(MAX_STEP_LINE),
            runs: HashMap::new(),
            inventories: HashMap::new(),
            reaped: false,
        })
    }

    fn send(&self, frame: String) {
        if let Some(tx) = &self.tx {
            // The thread is gone only when srun's stdin is: the step's end says the rest.
            let _ = tx.send(frame);
        }
    }
}

/// The writer thread: frames to srun's standard input, flushed when none is waiting;
/// closing it (the sender dropped) is end of file for every agent.
fn write_frames(stdin: std::process::ChildStdin, rx: &mpsc::Receiver<String>) {
    let mut w = std::io::BufWriter::new(stdin);
    while let Ok(frame) = rx.recv() {
        if w.write_all(frame.as_bytes()).is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if w.write_all(more.as_bytes()).is_err() {
                return;
            }
        }
        if w.flush().is_err() {
            return;
        }
    }
}

/// The nodes of the job other than this one, in the job's order (`scontrol show
/// hostnames`), when bansuri should start agents on them.
fn other_nodes(job: &crate::host::JobEnv) -> Result<Vec<String>, String> {
    let Some(list) = &job.nodelist else {
        return Ok(Vec::new());
    };
    let names = crate::slurm::run_tool(
        "scontrol",
        &["show", "hostnames", list],
        Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    let own = crate::host::node();
    Ok(names
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != own)
        .map(str::to_owned)
        .collect())
}

/// A node's inventory from what its agent found.
fn node_inventory(cpus: &str, mem: u64, gpus: Vec<String>) -> Option<Inventory> {
    let cpus = CpuSet::parse(cpus).ok()?;
    Some(Inventory::of_node(cpus, gpus, mem))
}

impl Runtime {
    /// At start-up, after the inventory: start the agents when the job has other nodes
    /// and `nodes` is `all`; the core's `Input::Agents` when they are starting.
    pub(super) fn start_agents(&mut self) -> Option<Input> {
        if self.core.globals().nodes != crate::spec::Nodes::All {
            return None;
        }
        let job = crate::host::job()?;
        let count = job.num_nodes.as_deref()?.trim().parse::<u32>().ok()?;
        if count < 2 {
            return None;
        }
        if self.resources.inventory.is_none() {
            self.master(
                Level::Warning,
                "this job has several nodes, but what this node has is unknown (see above): every run stays on this node",
            );
            return None;
        }
        let nodes = match other_nodes(job) {
            Ok(n) if n.is_empty() => return None,
            Ok(n) => n,
            Err(e) => {
                let msg =
                    format!("cannot list the job's nodes ({e}): every run stays on this node");
                self.master(Level::Error, &msg);
                return None;
            }
        };
        let agents = match Agents::launch(&nodes, self.alarm.now()) {
            Ok(a) => a,
            Err(e) => {
                let msg =
                    format!("cannot start the agents (srun): {e}; every run stays on this node");
                self.master(Level::Error, &msg);
                return None;
            }
        };
        let fd = agents.out.as_ref().expect("just opened");
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, Token::Agents.to_u64());
        if let Err(e) = self.epoll.add(fd.as_fd(), ev) {
            let msg = format!("cannot watch the agents' output: {e}; every run stays on this node");
            self.master(Level::Error, &msg);
            let _ = crate::spawn::signal_group(agents.pid, libc::SIGKILL);
            return None;
        }
        self.agents = Some(agents);
        Some(Input::Agents { nodes })
    }

    /// Is `pgid` the agents' srun's group (bansuri's own helper, not an escapee)?
    pub(super) fn is_agents_group(&self, pgid: u32) -> bool {
        self.agents.as_ref().is_some_and(|a| a.pid == pgid)
    }

    /// Is `run` on another node?
    pub(super) fn holds_remote(&self, run: RunId) -> bool {
        self.agents
            .as_ref()
            .is_some_and(|a| a.runs.contains_key(&run))
    }

    /// Start attempt `attempt` of `task` as `run` on `node`, holding `grant` there.
    pub(super) fn start_remote(
        &mut self,
        run: RunId,
        task: &TaskSpec,
        attempt: u32,
        grant: Option<&Grant>,
        node: &str,
    ) -> Vec<Action> {
        let failed = |rt: &mut Runtime, reason: String| {
            rt.core.handle(Input::SpawnFailed { run, reason }, rt.now())
        };
        let Some(agents) = &self.agents else {
            return failed(self, format!("node {node} has no agent"));
        };
        let task = match crate::spawn::prepare(task, &chrono::Local::now()) {
            Ok(t) => t,
            Err(e) => return failed(self, e.to_string()),
        };
        // A task without a request holds one CPU of its node but is not bound, as on a
        // single node: no affinity, no OMP_NUM_THREADS.
        let binding = match (grant, agents.inventories.get(node)) {
            (Some(grant), Some(inventory)) if task.needs.request.is_some() => {
                Some(crate::spawn::Binding { grant, inventory })
            }
            _ => None,
        };
        let plan = crate::spawn::launch_plan(&task, attempt, binding);
        let lossy = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let mut argv = vec![lossy(&plan.program)];
        argv.extend(plan.args.iter().map(|a| lossy(a)));
        let frame = ToAgent::Start {
            to: node.to_owned(),
            run,
            task: task.name.clone(),
            argv,
            env: plan.env.iter().map(|(k, v)| (lossy(k), lossy(v))).collect(),
            cwd: plan.cwd.to_string_lossy().into_owned(),
            cpus: plan.cpus.as_ref().map(|c| c.to_string()),
            umask: plan.umask,
            nice: (plan.priority != 0).then_some(plan.priority),
        };
        self.notifying.track_output(run, &task);
        let label: Arc<str> = Arc::from(format!("{}@{node}", task.name));
        let agents = self.agents.as_mut().expect("checked above");
        match agents.fleet.start(frame) {
            Some(line) => {
                agents.send(line);
                agents.runs.insert(run, label);
                Vec::new()
            }
            None => {
                self.notifying.forget_after(run);
                failed(self, format!("node {node} is not ready or was lost"))
            }
        }
    }

    /// Send `signal` to remote run `run`'s process group.
    pub(super) fn signal_remote(&mut self, run: RunId, signal: i32) -> Vec<Action> {
        if let Some(a) = &self.agents {
            if let Some(frame) = a.fleet.signal(run, signal) {
                a.send(frame);
            }
        }
        Vec::new()
    }

    /// The agents' step wrote something: read it all, act on each line.
    pub(super) fn on_agents_output(&mut self) -> Option<crate::model::Ending> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut eof = false;
        {
            let a = self.agents.as_mut()?;
            let fd = a.out.as_ref()?;
            loop {
                match nix::unistd::read(fd, &mut self.buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => a
                        .lines
                        .push(&self.buf[..n], &mut |l| lines.push(l.to_vec())),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            if eof {
                a.lines.finish(&mut |l| lines.push(l.to_vec()));
                if let Some(fd) = a.out.take() {
                    let _ = self.epoll.delete(fd.as_fd());
                }
            }
        }
        let now = self.now().mono;
        for line in lines {
            let text = String::from_utf8_lossy(&line);
            let events = match self.agents.as_mut() {
                Some(a) => a.fleet.on_line(&text, now),
                None => return None,
            };
            if let Some(code) = self.on_fleet(events) {
                return Some(code);
            }
        }
        if eof {
            return self.agents_step_ended();
        }
        None
    }

    /// srun's pid was reaped: true when it was the agents' step (then the fleet hears of
    /// it).
    pub(super) fn agents_reaped(&mut self, pid: u32) -> bool {
        match self.agents.as_mut() {
            Some(a) if a.pid == pid && !a.reaped => {
                a.reaped = true;
                true
            }
            _ => false,
        }
    }

    /// The step is over (srun exited, its output at end of file): every node still up is
    /// lost.
    pub(super) fn agents_step_ended(&mut self) -> Option<crate::model::Ending> {
        let events = match self.agents.as_mut() {
            Some(a) if a.out.is_none() || a.reaped => a.fleet.step_ended(),
            _ => return None,
        };
        self.on_fleet(events)
    }

    /// When the fleet needs the loop next (heartbeats, nodes slow to start).
    pub(super) fn agents_deadline(&self) -> Option<Mono> {
        self.agents.as_ref().and_then(|a| a.fleet.next_deadline())
    }

    /// The fleet's deadline passed: pings, and nodes lost to silence.
    pub(super) fn agents_due(&mut self) -> Option<crate::model::Ending> {
        let now = self.now().mono;
        let (frames, events) = match self.agents.as_mut() {
            Some(a) => a.fleet.tick(now),
            None => return None,
        };
        if let Some(a) = &self.agents {
            for f in frames {
                a.send(f);
            }
        }
        self.on_fleet(events)
    }

    fn on_fleet(&mut self, events: Vec<Event>) -> Option<crate::model::Ending> {
        for ev in events {
            let input = match ev {
                Event::NodeReady {
                    node,
                    cpus,
                    mem,
                    gpus,
                } => {
                    let Some(inventory) = node_inventory(&cpus, mem, gpus) else {
                        let msg = format!("node {node}'s agent sent a CPU list that is not one: `{cpus}`; the node is not used");
                        self.master(Level::Error, &msg);
                        continue;
                    };
                    if let Some(a) = self.agents.as_mut() {
                        a.inventories.insert(node.clone(), inventory.clone());
                    }
                    Input::NodeReady { node, inventory }
                }
                Event::Started { run, pid } => Input::Spawned { run, pid },
                Event::StartFailed { run, error } => {
                    self.forget_remote(run);
                    Input::SpawnFailed { run, reason: error }
                }
                Event::Output { run, stream, line } => {
                    self.remote_line(run, stream, &line);
                    continue;
                }
                Event::LeaderExited { run, status } => Input::LeaderExited { run, status },
                Event::Exited { run, status, usage } => {
                    self.forget_remote(run);
                    Input::Exited {
                        run,
                        status,
                        usage: Some(usage),
                    }
                }
                Event::NodeLost { node, reason, runs } => {
                    for run in runs {
                        self.forget_remote(run);
                    }
                    Input::NodeLost { node, reason }
                }
                Event::Stray { node, line } => {
                    let from = node.map_or_else(
                        || "the agents' step".to_owned(),
                        |n| format!("agent on {n}"),
                    );
                    let msg = format!("{from}: {line}");
                    self.master(Level::Warning, &msg);
                    continue;
                }
            };
            let actions = self.core.handle(input, self.now());
            if let Some(code) = self.apply(actions) {
                return Some(code);
            }
        }
        None
    }

    fn forget_remote(&mut self, run: RunId) {
        if let Some(a) = self.agents.as_mut() {
            a.runs.remove(&run);
        }
    }

    /// One line of a remote run's output: the job log, as `[task@node]`, and the tail
    /// its notices quote.
    fn remote_line(&mut self, run: RunId, stream: protocol::Stream, line: &[u8]) {
        let Some(label) = self.agents.as_ref().and_then(|a| a.runs.get(&run)).cloned() else {
            return;
        };
        let stream = match stream {
            protocol::Stream::Out => Stream::Stdout,
            protocol::Stream::Err => Stream::Stderr,
        };
        if self.notifying.wants_tail(run) {
            let mut data = line.to_vec();
            data.push(b'\n');
            self.notifying.feed(run, stream, &data);
        }
        self.log.child_line(Utc::now(), &label, stream, line);
    }

    /// At exit: tell the agents to end, close their input, wait for srun (at most
    /// [`AGENTS_EXIT`], then SIGKILL its group) and reap it.
    pub(super) fn stop_agents(&mut self) {
        let Some(mut a) = self.agents.take() else {
            return;
        };
        a.send(protocol::encode(&ToAgent::Shutdown));
        a.tx = None;
        if let Some(w) = a.writer.take() {
            let _ = w.join();
        }
        if a.reaped {
            return;
        }
        let deadline = Instant::now() + AGENTS_EXIT;
        let pid = nix::unistd::Pid::from_raw(a.pid as i32);
        loop {
            use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                _ => return,
            }
            if Instant::now() >= deadline {
                let msg = format!(
                    "the agents' step (srun, pid {}) did not end within {}s: killing it",
                    a.pid,
                    AGENTS_EXIT.as_secs()
                );
                self.master(Level::Warning, &msg);
                let _ = crate::spawn::signal_group(a.pid, libc::SIGKILL);
                let _ = waitpid(pid, None);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_one_agent_per_node_labelled_and_beside_the_others() {
        let argv = srun_argv(&["n2".to_owned(), "n3".to_owned()], "/opt/bansuri");
        assert_eq!(argv[0], "srun");
        for want in [
            "--overlap",
            "--whole",
            "--nodes=2",
            "--ntasks=2",
            "--ntasks-per-node=1",
            "--nodelist=n2,n3",
            "--label",
            "--kill-on-bad-exit=0",
        ] {
            assert!(argv.iter().any(|a| a == want), "{want} missing: {argv:?}");
        }
        assert_eq!(&argv[argv.len() - 2..], ["/opt/bansuri", "agent"]);
    }

    #[test]
    fn a_nodes_inventory_is_what_its_agent_found() {
        let inv = node_inventory("0-3", 8 << 30, vec!["0".into(), "1".into()]).unwrap();
        assert_eq!(inv.cpus.to_string(), "0-3");
        assert_eq!(inv.gpus, ["0", "1"]);
        assert_eq!(inv.gpu_visible, ["0", "1"]);
        assert_eq!(inv.mem, 8 << 30);
        assert!(node_inventory("0-x", 1, vec![]).is_none());
    }
}
