//! `bansuri agent`: the per-node side of multi-node runs. One SLURM step starts it on every
//! other node of the allocation; it reads the leader's frames on standard input, runs the
//! attempts it is given the way bansuri runs a local one, and writes their output and ends
//! back as frames on standard output (see [`super::protocol`]).
//!
//! Per attempt, as for a local run: its own process group (`setsid`), standard input from
//! /dev/null, the environment and working directory it was given, CPUs bound when asked,
//! umask and nice; stdout and stderr read through pipes and sent line by line; signals go
//! to the whole group; the main process is reaped with its resource usage; when it exits
//! while its group lives on the leader hears `leader_exited` (and stops the leftovers
//! with the task's stop signal and watchdog), and `exited` once the group is empty. The
//! agent is a subreaper, so orphaned members are reaped here.
//!
//! The agent never outlives the leader: end of standard input (the leader or its srun
//! died) or a `shutdown` frame make it SIGKILL every group it started and exit. SIGTERM,
//! SIGINT and SIGHUP (the job is cancelled or at its time limit) do not: the leader
//! stops the runs within the same grace as its own, then ends the agents (Slurm's
//! SIGKILL after KillWait bounds it). If the agent itself is killed, its guardian (the
//! leader's `guardian`, forked at start) ends every group it had started, and a task's
//! main process gets SIGKILL at once (`PR_SET_PDEATHSIG`).
//!
//! Owns: the agent's event loop and its processes. Must not: decide policy (the leader's
//! core does: timeouts, retries, stop signals), write anything but frames to stdout.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::protocol::{self, FromAgent, Stream, ToAgent};
use crate::model::{ExitStatus, Usage};
use crate::output::LineSplitter;
use crate::resources::{self, CpuSet};
use crate::spawn;

/// Longest line of task output sent as one frame; longer ones are split (as in the job log).
const MAX_LINE: usize = 64 * 1024;
/// Longest leader frame (a start carries the whole environment).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Set in every attempt's environment to its run id: a process that left the attempt's
/// process group (`setsid`, a double fork) still carries it, so it is found and ended with
/// its run.
pub const RUN_VAR: &str = "BANSURI_AGENT_RUN";

/// How often a run whose main process has exited is checked for an empty group (the
/// leader's `DRAIN_POLL`).
const DRAIN_CHECK: Duration = Duration::from_millis(10);

/// Run the agent for node `node` (default: `SLURMD_NODENAME`, else the host name) until
/// the leader goes away. Returns the process exit code.
pub fn run(node: Option<String>) -> i32 {
    let node = node.unwrap_or_else(|| crate::host::node().to_owned());
    match Agent::new(node).and_then(|mut a| a.serve()) {
        Ok(()) => 0,
        Err(e) => {
            crate::console::errln!("bansuri agent: {e}");
            1
        }
    }
}

struct Pipe {
    stream: Stream,
    fd: OwnedFd,
    lines: LineSplitter,
    /// Not at end of file yet.
    open: bool,
}

struct Run {
    pid: u32,
    pipes: Vec<Pipe>,
    /// The main process's end, once reaped.
    main: Option<ExitStatus>,
    /// `leader_exited` was sent.
    told_leader: bool,
    usage: Usage,
}

struct Agent {
    node: String,
    out: io::BufWriter<File>,
    sigfd: SignalFd,
    stdin_open: bool,
    stdin_lines: LineSplitter,
    runs: HashMap<u64, Run>,
    by_pid: HashMap<u32, u64>,
    done: bool,
    /// Ends the runs' process groups if the agent is killed (SIGKILL, OOM killer): a
    /// lost node leaves nothing running.
    guardian: crate::guardian::Guardian,
}

/// Where a poll entry points.
#[derive(Clone, Copy)]
enum Slot {
    Signals,
    Stdin,
    Pipe(u64, usize),
}

impl Agent {
    fn new(node: String) -> io::Result<Agent> {
        // Forked while the agent has one thread.
        let guardian = crate::guardian::Guardian::start()?;
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        spawn::become_subreaper()?;
        spawn::set_nonblocking(&io::stdin())?;
        let out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        Ok(Agent {
            node,
            out: io::BufWriter::new(out),
            sigfd,
            stdin_open: true,
            stdin_lines: LineSplitter::new(MAX_FRAME),
            runs: HashMap::new(),
            by_pid: HashMap::new(),
            done: false,
            guardian,
        })
    }

    fn send(&mut self, frame: &FromAgent) -> io::Result<()> {
        self.out.write_all(protocol::encode(frame).as_bytes())
    }

    fn serve(&mut self) -> io::Result<()> {
        let (cpus, mem, gpus) = own_resources();
        let ready = FromAgent::Ready {
            node: self.node.clone(),
            pid: std::process::id(),
            cpus,
            mem,
            gpus,
        };
        self.send(&ready)?;
        self.out.flush()?;
        while !self.done {
            self.wait_and_handle()?;
            self.finish_runs()?;
            self.out.flush()?;
        }
        self.kill_all();
        self.out.flush()
    }

    fn wait_and_handle(&mut self) -> io::Result<()> {
        let mut slots = vec![Slot::Signals];
        if self.stdin_open {
            slots.push(Slot::Stdin);
        }
        for (&run, r) in &self.runs {
            slots.extend(
                (0..r.pipes.len())
                    .filter(|&i| r.pipes[i].open)
                    .map(|i| Slot::Pipe(run, i)),
            );
        }
        let stdin = io::stdin();
        let mut fds: Vec<PollFd> = slots
            .iter()
            .map(|s| {
                let fd = match *s {
                    Slot::Signals => self.sigfd.as_fd(),
                    Slot::Stdin => stdin.as_fd(),
                    Slot::Pipe(run, i) => self.runs[&run].pipes[i].fd.as_fd(),
                };
                PollFd::new(fd, PollFlags::POLLIN)
            })
            .collect();
        let draining = self.runs.values().any(|r| r.main.is_some());
        let timeout = if draining {
            PollTimeout::from(DRAIN_CHECK.as_millis() as u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<Slot> = slots
            .iter()
            .zip(&fds)
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(s, _)| *s)
            .collect();
        drop(fds);
        for slot in ready {
            match slot {
                Slot::Signals => self.on_signals()?,
                Slot::Stdin => self.on_stdin()?,
                Slot::Pipe(run, i) => self.on_pipe(run, i)?,
            }
        }
        Ok(())
    }

    fn on_signals(&mut self) -> io::Result<()> {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            if info.ssi_signo == Signal::SIGCHLD as u32 {
                self.reap();
            }
            // SIGTERM, SIGINT, SIGHUP: the job is being cancelled or timed out. The
            // leader stops the runs (stop signal, grace, SIGKILL, as for its own) and
            // then ends the agents; Slurm's SIGKILL after KillWait bounds it all.
        }
        Ok(())
    }

    fn reap(&mut self) {
        while let Some(pid) = spawn::exited_child() {
            let group = crate::sample::proc_stat(pid).map(|s| s.pgrp);
            let Some(reaped) = spawn::reap(pid) else {
                break;
            };
            if let Some(run) = self.by_pid.remove(&pid) {
                if let Some(r) = self.runs.get_mut(&run) {
                    r.main = Some(reaped.status);
                    r.usage.absorb(reaped.usage);
                }
            } else if let Some(r) = group.and_then(|g| self.runs.values_mut().find(|r| r.pid == g))
            {
                // An orphaned member of a run's group, reparented to us.
                r.usage.absorb(reaped.usage);
            }
        }
    }

    fn on_stdin(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => {
                    // The leader (or its srun) is gone: so are we.
                    self.stdin_open = false;
                    self.done = true;
                    return Ok(());
                }
                Ok(n) => {
                    let mut frames = Vec::new();
                    self.stdin_lines
                        .push(&buf[..n], &mut |l| frames.push(l.to_vec()));
                    for f in frames {
                        self.on_frame(&f)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn on_frame(&mut self, line: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let frame: ToAgent = match protocol::decode(&text) {
            Ok(f) => f,
            Err(protocol::FrameError::NotAFrame) if text.trim().is_empty() => return Ok(()),
            Err(e @ protocol::FrameError::Version(_)) => {
                // Talking on would mean misreading every frame.
                crate::console::errln!("bansuri agent on {}: {e}", self.node);
                self.done = true;
                return Ok(());
            }
            Err(e) => {
                crate::console::errln!("bansuri agent on {}: ignored: {e}", self.node);
                return Ok(());
            }
        };
        match frame {
            ToAgent::Start { ref to, .. } if *to != self.node => Ok(()),
            ToAgent::Signal { ref to, .. } if *to != self.node => Ok(()),
            ToAgent::Start {
                run,
                task,
                argv,
                env,
                cwd,
                cpus,
                umask,
                nice,
                ..
            } => {
                let mut env = env;
                env.push((RUN_VAR.to_owned(), run.to_string()));
                let how = Launch {
                    argv: &argv,
                    env: &env,
                    cwd: &cwd,
                    cpus: cpus.as_deref(),
                    umask,
                    nice,
                };
                match launch(&how) {
                    Ok((pid, pipes)) => {
                        self.guardian.watch(pid);
                        self.by_pid.insert(pid, run);
                        self.runs.insert(
                            run,
                            Run {
                                pid,
                                pipes,
                                main: None,
                                told_leader: false,
                                usage: Usage::default(),
                            },
                        );
                        self.send(&FromAgent::Started { run, pid })
                    }
                    Err(e) => self.send(&FromAgent::StartFailed {
                        run,
                        error: format!("task {task} on {}: {e}", self.node),
                    }),
                }
            }
            ToAgent::Signal { run, signal, .. } => {
                if let Some(r) = self.runs.get(&run) {
                    let _ = spawn::signal_group(r.pid, signal);
                }
                Ok(())
            }
            ToAgent::Ping { seq } => self.send(&FromAgent::Pong { seq }),
            ToAgent::Shutdown => {
                self.done = true;
                Ok(())
            }
        }
    }

    fn on_pipe(&mut self, run: u64, i: usize) -> io::Result<()> {
        let Some(r) = self.runs.get_mut(&run) else {
            return Ok(());
        };
        let mut lines = Vec::new();
        let pipe = &mut r.pipes[i];
        pipe.open = read_pipe(pipe, &mut lines);
        for (stream, l) in lines {
            self.send(&FromAgent::output(run, stream, &l))?;
        }
        Ok(())
    }

    /// Tell the leader about runs whose main process has exited: `leader_exited` while the
    /// group lives on, `exited` once it is empty (after the last of its output).
    fn finish_runs(&mut self) -> io::Result<()> {
        let mut over = Vec::new();
        let mut frames = Vec::new();
        for (&run, r) in self.runs.iter_mut() {
            let Some(status) = r.main else { continue };
            let (code, signal) = split_status(status);
            if spawn::group_alive(r.pid) {
                if !r.told_leader {
                    r.told_leader = true;
                    frames.push(FromAgent::LeaderExited { run, code, signal });
                }
                continue;
            }
            // The group is gone: processes that escaped it (reparented to the agent, its
            // subreaper) end with the run. Then what its pipes still hold is the last output
            // (an escaped process holding a pipe open must not keep the run alive).
            end_escapees(run);
            let mut lines = Vec::new();
            for p in r.pipes.iter_mut().filter(|p| p.open) {
                read_pipe(p, &mut lines);
                p.lines.finish(&mut |l| lines.push((p.stream, l.to_vec())));
            }
            frames.extend(
                lines
                    .into_iter()
                    .map(|(s, l)| FromAgent::output(run, s, &l)),
            );
            frames.push(FromAgent::Exited {
                run,
                code,
                signal,
                cpu_us: r.usage.cpu.as_micros() as u64,
                max_rss: r.usage.max_rss,
            });
            over.push(run);
        }
        for run in over {
            if let Some(r) = self.runs.remove(&run) {
                self.guardian.forget(r.pid);
            }
        }
        for f in frames {
            self.send(&f)?;
        }
        Ok(())
    }

    fn kill_all(&mut self) {
        for (run, r) in self.runs.drain() {
            let _ = spawn::signal_group(r.pid, libc::SIGKILL);
            end_escapees(run);
        }
        self.by_pid.clear();
        self.reap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// SIGKILL the agent's descendants that carry `run`'s marker (and their process
/// groups): they left the run's group and outlive it. The whole tree is walked, so an
/// escapee whose parent still lives is found too.
fn end_escapees(run: u64) {
    let me = std::process::id();
    let want = run.to_string();
    let mut queue = crate::sample::main_thread_children(me);
    while let Some(pid) = queue.pop() {
        queue.extend(crate::sample::main_thread_children(pid));
        if crate::sample::environ_var(pid, RUN_VAR).as_deref() != Some(want.as_str()) {
            continue;
        }
        let group = crate::sample::proc_stat(pid).map_or(pid, |s| s.pgrp);
        if group > 1 && group != me {
            let _ = spawn::signal_group(group, libc::SIGKILL);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Read what `p` holds now into `lines` (stream, line); false once the pipe is closed.
fn read_pipe(p: &mut Pipe, lines: &mut Vec<(Stream, Vec<u8>)>) -> bool {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match nix::unistd::read(&p.fd, &mut buf) {
            Ok(0) => {
                p.lines.finish(&mut |l| lines.push((p.stream, l.to_vec())));
                return false;
            }
            Ok(n) => p
                .lines
                .push(&buf[..n], &mut |l| lines.push((p.stream, l.to_vec()))),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}

fn split_status(s: ExitStatus) -> (Option<i32>, Option<i32>) {
    match s {
        ExitStatus::Code(c) => (Some(c), None),
        ExitStatus::Signal(s) => (None, Some(s)),
    }
}

struct Launch<'a> {
    argv: &'a [String],
    env: &'a [(String, String)],
    cwd: &'a str,
    cpus: Option<&'a str>,
    umask: Option<u32>,
    nice: Option<i32>,
}

/// Start one attempt: its own session and group, stdin from /dev/null, output through
/// two non-blocking pipes.
fn launch(how: &Launch) -> Result<(u32, Vec<Pipe>), String> {
    let (program, args) = how
        .argv
        .split_first()
        .ok_or_else(|| "an empty command".to_owned())?;
    let cpus = match how.cpus {
        Some(list) => Some(cpu_set(list)?),
        None => None,
    };
    let (out_r, out_w) = pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let (err_r, err_w) = pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(how.env.iter().map(|(k, v)| (k, v)))
        .current_dir(how.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let (umask, nice) = (how.umask, how.nice);
    // SAFETY: between fork and exec only async-signal-safe system calls, no allocation
    // (the CPU set was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            // The agent blocks the signals it reads through its signalfd; a task starts
            // with none blocked (std's fork path keeps the mask).
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            nix::unistd::setsid()?;
            // An agent that dies (SIGKILLed, its node's step ended) takes its task
            // processes with it; the step's end ends whatever they started.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if let Some(set) = &cpus {
                resources::apply_mask(set)?;
            }
            if let Some(m) = umask {
                libc::umask(m as libc::mode_t);
            }
            if let Some(n) = nice {
                libc::setpriority(libc::PRIO_PROCESS, 0, n);
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program} in {}: {e}", how.cwd))?;
    drop(cmd);
    let pipes = [(Stream::Out, out_r), (Stream::Err, err_r)]
        .into_iter()
        .map(|(stream, fd)| {
            spawn::set_nonblocking(&fd).map(|()| Pipe {
                stream,
                fd,
                lines: LineSplitter::new(MAX_LINE),
                open: true,
            })
        })
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| format!("cannot set up the output pipes: {e}"))?;
    Ok((child.id(), pipes))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// A Linux cpu list (`0-3,8`) as an affinity mask, built before the fork.
fn cpu_set(list: &str) -> Result<nix::sched::CpuSet, String> {
    let cpus = CpuSet::parse(list).map_err(|e| format!("bad CPU list `{list}`: {e}"))?;
    resources::affinity_mask(&cpus).map_err(|e| format!("cannot bind to CPUs {list}: {e}"))
}

/// The CPUs this process may run on, as a Linux cpu list.
fn own_cpus() -> String {
    resources::os::current_affinity()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// What this node has for the leader to pack into: the inventory bansuri would find
/// here (the job's CPU set cut to `SLURM_CPUS_ON_NODE`, its GPUs, its memory), else the
/// agent's affinity and the machine's memory.
fn own_resources() -> (String, u64, Vec<String>) {
    let found = resources::os::read_inputs()
        .ok()
        .and_then(|inputs| resources::Inventory::from_inputs(&inputs).ok());
    match found {
        Some(inv) => (inv.cpus.to_string(), inv.mem, inv.gpu_visible.clone()),
        None => (own_cpus(), crate::sample::node().mem_total, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_become_affinity_masks() {
        let set = cpu_set("0-2,5").unwrap();
        let on: Vec<usize> = (0..8).filter(|&c| set.is_set(c).unwrap()).collect();
        assert_eq!(on, [0, 1, 2, 5]);
        assert!(cpu_set("0-x").unwrap_err().contains("`0-x`"));
    }

    #[test]
    fn own_cpus_is_a_cpu_list_of_this_process() {
        let list = own_cpus();
        assert!(!list.is_empty());
        assert!(cpu_set(&list).is_ok(), "{list}");
    }
}
