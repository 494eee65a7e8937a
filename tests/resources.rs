//! Issue 17 end to end with the real binary: runs packed into the node's CPUs and a declared
//! GPU list, bound to what they were granted, the others WAITING with their reason.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client, Sandbox};

const LIMIT: Duration = Duration::from_secs(30);

/// The CPUs bansuri may use here (its affinity), as /proc says.
fn own_cpus() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned();
    list.split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// The value after `key=` in the first line of `task`'s output that has it.
fn value_of(log: &str, task: &str, key: &str) -> Option<String> {
    common::output_lines(log, task)
        .iter()
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(key)))
        .map(str::to_owned)
}

#[test]
fn runs_get_disjoint_cpus_and_a_third_waits_until_one_ends() {
    // Two runs that take half the CPUs each (1 each on this 2-CPU machine), and a third.
    let half = (own_cpus() / 2).max(1);
    let body = "echo cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2) omp=$OMP_NUM_THREADS ids=$BANSURI_CPUS; exec sleep 30";
    let sb = Sandbox::new();
    let config = format!(
        r#"{{"scripts": [
            {{"name": "a", "command": "{body}", "cpus": {half}}},
            {{"name": "b", "command": "{body}", "cpus": {half}}},
            {{"name": "c", "command": "echo c started", "cpus": {half}}}
        ]}}"#
    );
    let b = sb.start(&config, &[]);
    let log = b.wait_log("a and b bound", LIMIT, |l| {
        value_of(l, "a", "cpus=").is_some() && value_of(l, "b", "cpus=").is_some()
    });
    let cpus = |t: &str| -> BTreeSet<String> {
        let list = value_of(&log, t, "cpus=").unwrap();
        list.split(',').map(str::to_owned).collect()
    };
    let (ca, cb) = (cpus("a"), cpus("b"));
    assert!(
        ca.is_disjoint(&cb),
        "a {ca:?} and b {cb:?} share CPUs:\n{log}"
    );
    for t in ["a", "b"] {
        assert_eq!(
            value_of(&log, t, "omp=").as_deref(),
            Some(half.to_string().as_str()),
            "{t}: OMP_NUM_THREADS is its CPU count:\n{log}"
        );
        assert_eq!(
            value_of(&log, t, "ids=").as_deref(),
            value_of(&log, t, "cpus=").as_deref(),
            "{t}: BANSURI_CPUS names the CPUs it is bound to"
        );
    }
    // c waits, and says why.
    assert!(!log.contains("c started"), "c must wait:\n{log}");
    let cfg = sb.file("config.json");
    let (_, status, _) = client(&cfg, &["status"], &[]);
    assert!(
        status.contains("c: WAITING: needs"),
        "status says what c waits for:\n{status}"
    );
    // When a ends, c gets its CPUs.
    let (code, out, err) = client(&cfg, &["stop", "a"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    b.wait_log("c starts once a is stopped", LIMIT, |l| {
        l.contains("c started")
    });
}

#[test]
fn four_gpu_runs_get_distinct_gpus_of_a_declared_list_and_a_fifth_waits() {
    let sb = Sandbox::new();
    let body = "echo cvd=$CUDA_VISIBLE_DEVICES rocr=$ROCR_VISIBLE_DEVICES gpus=$BANSURI_GPUS; exec sleep 30";
    let tasks: Vec<String> = (1..=5)
        .map(|i| format!(r#"{{"name": "g{i}", "command": "{body}", "cpus": 0, "gpus": 1}}"#))
        .collect();
    let config = format!(
        r#"{{"resources": {{"gpus": ["0", "1", "2", "3"]}}, "scripts": [{}]}}"#,
        tasks.join(",")
    );
    let b = sb.start(&config, &[]);
    let log = b.wait_log("four GPU runs", LIMIT, |l| {
        (1..=5)
            .filter(|i| value_of(l, &format!("g{i}"), "gpus=").is_some())
            .count()
            >= 4
    });
    let started: Vec<String> = (1..=5)
        .filter(|i| value_of(&log, &format!("g{i}"), "gpus=").is_some())
        .map(|i| format!("g{i}"))
        .collect();
    assert_eq!(started.len(), 4, "exactly four run at once:\n{log}");
    let gpus: BTreeSet<String> = started
        .iter()
        .map(|t| value_of(&log, t, "gpus=").unwrap())
        .collect();
    assert_eq!(
        gpus,
        ["0", "1", "2", "3"].map(String::from).into(),
        "distinct GPUs:\n{log}"
    );
    for t in &started {
        // Declared IDs are what the process addresses: the runtime shows it as device 0.
        assert_eq!(
            value_of(&log, t, "cvd="),
            value_of(&log, t, "gpus="),
            "{log}"
        );
        assert_eq!(
            value_of(&log, t, "rocr="),
            value_of(&log, t, "gpus="),
            "{log}"
        );
    }
    let cfg = sb.file("config.json");
    let (_, status, _) = client(&cfg, &["status"], &[]);
    assert!(
        status.contains("WAITING: needs 1 GPU, 0 free"),
        "the fifth waits for a GPU:\n{status}"
    );
}

#[test]
fn a_task_without_a_request_is_neither_packed_nor_bound() {
    let sb = Sandbox::new();
    let n = own_cpus() * 2 + 1;
    let tasks: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name": "m{i}", "command": "echo omp=${{OMP_NUM_THREADS:-unset}} cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2); exec sleep 30"}}"#
            )
        })
        .collect();
    let b = sb.start(&format!(r#"{{"scripts": [{}]}}"#, tasks.join(",")), &[]);
    let mine = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = mine
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned();
    let log = b.wait_log("every monitor started", LIMIT, |l| {
        (0..n).all(|i| value_of(l, &format!("m{i}"), "cpus=").is_some())
    });
    for i in 0..n {
        let t = format!("m{i}");
        assert_eq!(
            value_of(&log, &t, "omp=").as_deref(),
            Some("unset"),
            "{log}"
        );
        assert_eq!(
            value_of(&log, &t, "cpus=").as_deref(),
            Some(all.as_str()),
            "{log}"
        );
    }
}
