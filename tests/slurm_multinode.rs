//! End-to-end tests on a real several-node SLURM cluster: `slurm/multinode-cluster.sh`
//! (three nodes n1..n3 on this machine, each a network and UTS namespace with its own
//! slurmd). tests/run.sh brings it up and sets `BANSURI_SLURM_MULTINODE` to its
//! `slurm.conf`; every SLURM command here runs with `SLURM_CONF` pointing at it.
//!
//! Gate: without `BANSURI_SLURM_MULTINODE` and outside CI each test prints "skipped" and
//! passes; under CI=true a cluster that does not answer is a failure, not a skip.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const BANSURI: &str = env!("CARGO_BIN_EXE_bansuri");
const SUBMIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/submit.sh");
const DEFAULT_CONF: &str = "/run/slurm-multinode/slurm.conf";
const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// The cluster's slurm.conf when the tests run here; panics when they must run but cannot.
fn gate() -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let conf = match std::env::var("BANSURI_SLURM_MULTINODE") {
        Ok(c) if !c.is_empty() && c != "0" => c,
        _ if ci => DEFAULT_CONF.to_owned(),
        _ => {
            println!("skipped: no multi-node SLURM (run tests/run.sh)");
            return None;
        }
    };
    let out = Command::new("sinfo")
        .env("SLURM_CONF", &conf)
        .args(["-h", "-N", "-o", "%N %T"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            for n in NODES {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{n} "))),
                    "the multi-node cluster ({conf}) has no node {n}: {text}\n\
                     start it with: bash slurm/multinode-cluster.sh up"
                );
            }
            Some(conf)
        }
        Ok(o) => panic!(
            "the multi-node SLURM tests must run, but `sinfo` ({conf}) failed ({}): {}\n\
             start the cluster with: bash slurm/multinode-cluster.sh up",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("`sinfo` could not run: {e}: bash slurm/multinode-cluster.sh up"),
    }
}

fn wait_for<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The binary the job runs: the static one tests/run.sh builds, else the test build
/// (every node sees this machine's file system).
fn job_binary() -> PathBuf {
    std::env::var_os("BANSURI_STATIC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BANSURI))
}

/// A submitted job, cancelled (and waited for) on drop whatever the test's outcome.
struct Job {
    conf: String,
    id: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Job {
    fn submit(conf: &str, label: &str, sbatch: &[&str], config: &str, args: &[&str]) -> Job {
        let dir = tempfile::Builder::new()
            .prefix(&format!("bansuri-mn-{label}-"))
            .tempdir_in("/tmp")
            .expect("temp dir");
        fs::write(dir.path().join("config.json"), config).expect("write config");
        let mut cmd = Command::new("sbatch");
        cmd.env("SLURM_CONF", conf)
            .env("BANSURI_BIN", job_binary())
            .env("BANSURI_CONFIG", dir.path().join("config.json"))
            .args([
                "--parsable",
                &format!("--job-name=bansuri-mn-{label}"),
                &format!("--chdir={}", dir.path().display()),
                "--time=5",
            ])
            .args(sbatch)
            .arg(SUBMIT)
            .args(args);
        let out = cmd.output().expect("run sbatch");
        assert!(
            out.status.success(),
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty());
        let log = dir.path().join(format!("master_{id}.log"));
        Job {
            conf: conf.to_owned(),
            id,
            log,
            _dir: dir,
        }
    }

    fn in_queue(&self) -> bool {
        Command::new("squeue")
            .env("SLURM_CONF", &self.conf)
            .args(["-h", "-j", &self.id, "-o", "%T"])
            .output()
            .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
            .unwrap_or(false)
    }

    /// Wait until the job has left the queue; its log.
    fn finish(&self, within: Duration) -> String {
        let gone = wait_for(Instant::now() + within, || (!self.in_queue()).then_some(()));
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            gone.is_some(),
            "job {} still queued after {within:?}; log:\n{log}",
            self.id
        );
        log
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .env("SLURM_CONF", &self.conf)
            .arg(&self.id)
            .status();
        let _ = wait_for(Instant::now() + Duration::from_secs(30), || {
            (!self.in_queue()).then_some(())
        });
    }
}

/// The lines of task `name` in the job log, after the `| ` separator.
fn task_lines<'a>(log: &'a str, name: &str) -> Vec<&'a str> {
    let tag = format!("[{name}] | ");
    log.lines()
        .filter_map(|l| l.find(&tag).map(|i| &l[i + tag.len()..]))
        .collect()
}

/// issue 18 item 6: an MPI-style task is one step over every node, and a plain
/// `"srun": true` task in a 3-node job is a one-node step (bansuri passes `--nodes=1`:
/// without it the step inherits SLURM_NNODES=3 and srun warns).
#[test]
fn srun_tasks_in_a_three_node_job_keep_their_own_shape() {
    let Some(conf) = gate() else { return };
    let config = r#"{"scripts": [
        {"name": "mpi", "command": "echo rank=$SLURM_PROCID host=$(hostname)",
         "srun": {"nodes": 3, "ntasks": 3, "overlap": true}},
        {"name": "single", "command": "echo host=$(hostname) nnodes=$SLURM_NNODES",
         "srun": {"overlap": true}}
    ]}"#;
    let job = Job::submit(
        &conf,
        "shape",
        &["--nodes=3", "--ntasks-per-node=1", "--cpus-per-task=1"],
        config,
        &["--exit-when-done"],
    );
    let log = job.finish(Duration::from_secs(90));
    let mpi = task_lines(&log, "mpi");
    let mut hosts: Vec<&str> = mpi.iter().filter_map(|l| l.split("host=").nth(1)).collect();
    hosts.sort_unstable();
    assert_eq!(hosts, NODES, "one rank per node expected; log:\n{log}");
    let single = task_lines(&log, "single");
    assert!(
        single.iter().any(|l| l.contains("nnodes=1")),
        "the srun: true task should be a one-node step; log:\n{log}"
    );
    assert!(
        !log.contains("can't run 1 processes on 3 nodes"),
        "srun warned about the node count; log:\n{log}"
    );
    assert!(
        log.contains("exiting with code 0"),
        "bansuri should end with every task done; log:\n{log}"
    );
}

/// The cluster itself: one job over all three nodes sees three host names, each node its
/// own network address (the namespaces are real, not aliases of one host).
#[test]
fn the_cluster_has_three_distinct_nodes() {
    let Some(conf) = gate() else { return };
    let out = Command::new("srun")
        .env("SLURM_CONF", &conf)
        .args([
            "-N3",
            "--ntasks-per-node=1",
            "--time=1",
            "sh",
            "-c",
            "echo $(hostname) $(hostname -I)",
        ])
        .output()
        .expect("run srun");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect();
    rows.sort();
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, NODES, "{text}");
    let mut addrs: Vec<&str> = rows.iter().map(|(_, a)| a.as_str()).collect();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "each node has its own address: {text}");
}

/// The transport of issue 18: one step runs `bansuri agent` on every node; frames go in
/// through srun's standard input (broadcast to every agent, each picks its own by node
/// name) and come back through its labelled standard output. Closing stdin ends the step.
#[test]
fn one_step_of_agents_runs_attempts_on_every_node_over_srun_stdio() {
    use bansuri::agent::protocol::{decode, encode, split_label, FromAgent, ToAgent};
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let Some(conf) = gate() else { return };
    let mut step = Command::new("srun")
        .env("SLURM_CONF", &conf)
        .args(["-N3", "--ntasks-per-node=1", "--label", "--time=2"])
        .arg(job_binary())
        .arg("agent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run srun");
    // Reaped whatever happens: closing stdin ends the agents, a kill ends srun.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            drop(self.0.stdin.take());
            if wait_for(Instant::now() + Duration::from_secs(20), || {
                self.0.try_wait().ok().flatten()
            })
            .is_none()
            {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let stdout = step.stdout.take().unwrap();
    let mut step = Reap(step);
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let (rank, rest) = split_label(&line).expect("srun --label prefixes every line");
            let frame: FromAgent = decode(rest).expect("a frame");
            if tx.send((rank, frame)).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("a frame within a minute")
    };
    let mut nodes: Vec<String> = (0..3)
        .map(|_| match next() {
            (_, FromAgent::Ready { node, .. }) => node,
            f => panic!("expected ready, got {f:?}"),
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, NODES);
    let stdin = step.0.stdin.as_mut().unwrap();
    for (i, n) in NODES.iter().enumerate() {
        let start = ToAgent::Start {
            to: (*n).to_owned(),
            run: i as u64,
            task: "where".into(),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo ran on $(hostname)".into(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/tmp".into(),
            cpus: None,
            umask: None,
            nice: None,
        };
        stdin.write_all(encode(&start).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    let mut ran = std::collections::BTreeMap::new();
    let mut exited = 0;
    while exited < 3 {
        match next().1 {
            f @ FromAgent::Output { run, .. } => {
                let text = String::from_utf8(f.output_bytes().unwrap()).unwrap();
                ran.insert(run, text);
            }
            FromAgent::Exited { code, .. } => {
                assert_eq!(code, Some(0));
                exited += 1;
            }
            FromAgent::Started { .. } => {}
            f => panic!("unexpected {f:?}"),
        }
    }
    let want: std::collections::BTreeMap<u64, String> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u64, format!("ran on {n}")))
        .collect();
    assert_eq!(ran, want, "each run on the node it was sent to");
    drop(step.0.stdin.take());
    let status = wait_for(Instant::now() + Duration::from_secs(30), || {
        step.0.try_wait().ok().flatten()
    })
    .expect("closing stdin ends the agents and the step");
    assert!(status.success(), "{status}");
}
