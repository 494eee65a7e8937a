//! `bansuri agent` driven over its stdin/stdout as the leader will drive it through an
//! srun step (issue 18): real processes, no SLURM needed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bansuri::agent::protocol::{decode, encode, FromAgent, Stream, ToAgent};
use common::{alive, wait_for};

const BANSURI: &str = env!("CARGO_BIN_EXE_bansuri");
const LIMIT: Duration = Duration::from_secs(20);

/// An agent process, its frames read by a thread; killed on drop.
struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: mpsc::Receiver<FromAgent>,
}

impl Agent {
    fn start(node: &str) -> Agent {
        let mut child = Command::new(BANSURI)
            .args(["agent", "--node", node])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bansuri agent");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let frame = decode::<FromAgent>(&line)
                    .unwrap_or_else(|e| panic!("the agent wrote a non-frame {line:?}: {e}"));
                if tx.send(frame).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Agent {
            child,
            stdin,
            frames: rx,
        }
    }

    fn send(&mut self, f: &ToAgent) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(encode(f).as_bytes()).expect("write frame");
        stdin.flush().unwrap();
    }

    fn next(&self) -> FromAgent {
        self.frames
            .recv_timeout(LIMIT)
            .expect("a frame from the agent within the limit")
    }

    /// Frames until (and including) the first that `stop` accepts.
    fn until(&self, stop: impl Fn(&FromAgent) -> bool) -> Vec<FromAgent> {
        let mut got = Vec::new();
        loop {
            let f = self.next();
            let done = stop(&f);
            got.push(f);
            if done {
                return got;
            }
        }
    }

    fn start_run(&mut self, run: u64, script: &str, cpus: Option<&str>) -> u32 {
        let cwd = std::env::temp_dir().to_string_lossy().into_owned();
        self.send(&ToAgent::Start {
            to: "t1".into(),
            run,
            task: format!("task{run}"),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("GREETING".into(), "hello from the leader".into()),
            ],
            cwd,
            cpus: cpus.map(str::to_owned),
            umask: None,
            nice: None,
        });
        match self.next() {
            FromAgent::Started { run: r, pid } if r == run => pid,
            other => panic!("expected started for run {run}, got {other:?}"),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // As the leader going away: the agent ends its attempts, then itself. SIGKILL only
        // if it does not (its groups would then be left: the step's end is what catches
        // them in a real job).
        drop(self.stdin.take());
        if wait_for(LIMIT, || self.child.try_wait().ok().flatten()).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ready(agent: &Agent) -> (String, String) {
    match agent.next() {
        FromAgent::Ready {
            node, cpus, mem, ..
        } => {
            assert!(mem > 0);
            (node, cpus)
        }
        other => panic!("the first frame must be ready, got {other:?}"),
    }
}

fn text_of(frames: &[FromAgent], run: u64, want: Stream) -> Vec<String> {
    frames
        .iter()
        .filter(|f| matches!(f, FromAgent::Output { run: r, stream, .. } if *r == run && *stream == want))
        .map(|f| String::from_utf8_lossy(&f.output_bytes().unwrap()).into_owned())
        .collect()
}

#[test]
fn an_attempt_runs_with_its_environment_and_reports_output_and_exit() {
    let mut agent = Agent::start("t1");
    assert_eq!(ready(&agent).0, "t1");
    let pid = agent.start_run(
        1,
        "echo \"$GREETING\"; echo err >&2; printf 'no newline'; test -t 0 || echo stdin-not-a-tty; exit 3",
        None,
    );
    let frames = agent.until(|f| matches!(f, FromAgent::Exited { run: 1, .. }));
    assert_eq!(
        text_of(&frames, 1, Stream::Out),
        ["hello from the leader", "no newlinestdin-not-a-tty"]
    );
    assert_eq!(text_of(&frames, 1, Stream::Err), ["err"]);
    match frames.last().unwrap() {
        FromAgent::Exited { code, signal, .. } => {
            assert_eq!((*code, *signal), (Some(3), None));
        }
        f => panic!("{f:?}"),
    }
    assert!(!alive(pid as i32), "the attempt's process is reaped");
    // A ping is answered.
    agent.send(&ToAgent::Ping { seq: 42 });
    assert_eq!(agent.next(), FromAgent::Pong { seq: 42 });
}

#[test]
fn a_signal_reaches_the_whole_group_and_leftovers_are_reported() {
    let mut agent = Agent::start("t1");
    ready(&agent);
    // The main process ignores nothing; a child in its group traps TERM and lingers.
    let pid = agent.start_run(
        7,
        "sh -c 'trap \"echo child got TERM; exit 0\" TERM; echo child up; while :; do sleep 0.05; done' & wait",
        None,
    );
    agent.until(|f| matches!(f, FromAgent::Output { run: 7, .. }));
    // Frames for another node are not ours.
    agent.send(&ToAgent::Signal {
        to: "t2".into(),
        run: 7,
        signal: libc::SIGTERM,
    });
    agent.send(&ToAgent::Ping { seq: 1 });
    assert_eq!(
        agent.next(),
        FromAgent::Pong { seq: 1 },
        "no exit: not our node"
    );
    assert!(alive(pid as i32));
    agent.send(&ToAgent::Signal {
        to: "t1".into(),
        run: 7,
        signal: libc::SIGTERM,
    });
    let frames = agent.until(|f| matches!(f, FromAgent::Exited { run: 7, .. }));
    assert!(
        text_of(&frames, 7, Stream::Out).contains(&"child got TERM".to_owned()),
        "{frames:?}"
    );
    match frames.last().unwrap() {
        FromAgent::Exited { signal, .. } => assert_eq!(*signal, Some(libc::SIGTERM)),
        f => panic!("{f:?}"),
    }
}

#[test]
fn a_main_process_exiting_before_its_group_is_told_then_the_group_is_awaited() {
    let mut agent = Agent::start("t1");
    ready(&agent);
    agent.start_run(3, "sleep 30 & echo bg=$!; exit 0", None);
    let frames = agent.until(|f| matches!(f, FromAgent::LeaderExited { run: 3, .. }));
    let bg: i32 = text_of(&frames, 3, Stream::Out)[0]
        .strip_prefix("bg=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(bg));
    // The leader's core stops the leftovers: a signal to the group.
    agent.send(&ToAgent::Signal {
        to: "t1".into(),
        run: 3,
        signal: libc::SIGKILL,
    });
    let end = agent.until(|f| matches!(f, FromAgent::Exited { run: 3, .. }));
    match end.last().unwrap() {
        FromAgent::Exited { code, .. } => assert_eq!(*code, Some(0), "the main process's end"),
        f => panic!("{f:?}"),
    }
    assert!(
        wait_for(LIMIT, || (!alive(bg)).then_some(())).is_some(),
        "the leftover is gone (and reaped by the agent, its subreaper)"
    );
}

#[test]
fn a_process_that_left_the_group_ends_with_its_run() {
    let mut agent = Agent::start("t1");
    ready(&agent);
    // `setsid` in a background child: a new session, out of the attempt's group.
    agent.start_run(4, "setsid sleep 60 & echo esc=$!; exit 0", None);
    let frames = agent.until(|f| matches!(f, FromAgent::Exited { run: 4, .. }));
    let esc: i32 = text_of(&frames, 4, Stream::Out)[0]
        .strip_prefix("esc=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        wait_for(LIMIT, || (!alive(esc)).then_some(())).is_some(),
        "the escaped process {esc} outlived its run"
    );
    // Another run's escapee is not touched by this run's end.
    agent.start_run(5, "setsid sleep 60 & echo esc=$!; sleep 60", None);
    let frames = agent.until(|f| matches!(f, FromAgent::Output { run: 5, .. }));
    let other: i32 = text_of(&frames, 5, Stream::Out)[0]
        .strip_prefix("esc=")
        .unwrap()
        .parse()
        .unwrap();
    agent.start_run(6, "exit 0", None);
    agent.until(|f| matches!(f, FromAgent::Exited { run: 6, .. }));
    assert!(alive(other), "run 5's escapee must live while run 5 does");
    // The leader going away ends run 5 and its escapee too.
    drop(agent.stdin.take());
    wait_for(LIMIT, || agent.child.try_wait().ok().flatten()).expect("the agent exits");
    assert!(
        wait_for(LIMIT, || (!alive(other)).then_some(())).is_some(),
        "run 5's escapee {other} outlived the agent"
    );
}

#[test]
fn cpus_are_bound_when_asked() {
    let mut agent = Agent::start("t1");
    let (_, cpus) = ready(&agent);
    let first: String = cpus
        .split([',', '-'])
        .next()
        .expect("at least one CPU")
        .to_owned();
    agent.start_run(
        5,
        "grep Cpus_allowed_list /proc/self/status",
        Some(first.as_str()),
    );
    let frames = agent.until(|f| matches!(f, FromAgent::Exited { run: 5, .. }));
    let out = text_of(&frames, 5, Stream::Out);
    assert_eq!(out.len(), 1, "{frames:?}");
    assert_eq!(
        out[0].split_whitespace().last(),
        Some(first.as_str()),
        "{out:?}"
    );
}

#[test]
fn a_failed_start_is_reported_and_the_agent_goes_on() {
    let mut agent = Agent::start("t1");
    ready(&agent);
    agent.send(&ToAgent::Start {
        to: "t1".into(),
        run: 9,
        task: "nowhere".into(),
        argv: vec!["/bin/true".into()],
        env: vec![],
        cwd: "/nonexistent/dir".into(),
        cpus: None,
        umask: None,
        nice: None,
    });
    match agent.next() {
        FromAgent::StartFailed { run: 9, error } => {
            assert!(error.contains("/nonexistent/dir"), "{error}");
            assert!(error.contains("task nowhere on t1"), "{error}");
        }
        f => panic!("{f:?}"),
    }
    agent.send(&ToAgent::Ping { seq: 2 });
    assert_eq!(agent.next(), FromAgent::Pong { seq: 2 });
}

#[test]
fn the_leader_going_away_ends_every_attempt_and_the_agent() {
    for how in ["eof", "shutdown"] {
        let mut agent = Agent::start("t1");
        ready(&agent);
        let a = agent.start_run(1, "trap '' TERM; sleep 60", None);
        let b = agent.start_run(2, "sleep 60 & sleep 60", None);
        match how {
            "eof" => drop(agent.stdin.take()),
            _ => agent.send(&ToAgent::Shutdown),
        }
        let status = wait_for(LIMIT, || agent.child.try_wait().ok().flatten())
            .unwrap_or_else(|| panic!("{how}: the agent did not exit"));
        assert!(status.success(), "{how}: {status}");
        for pgid in [a, b] {
            assert!(
                wait_for(LIMIT, || common::group_members(pgid as i32)
                    .is_empty()
                    .then_some(()))
                .is_some(),
                "{how}: group {pgid} still has members"
            );
        }
    }
}

#[test]
fn another_protocol_version_is_refused_in_words() {
    let mut child = Command::new(BANSURI)
        .args(["agent", "--node", "t1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"bansuri-agent/9 {\"t\":\"ping\",\"seq\":1}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bansuri-agent/9") && err.contains("same bansuri binary on every node"),
        "{err}"
    );
}
