//! Tests of the SLURM module: parsers on output captured from Slurm 22.05.8 (the local
//! cluster of slurm/local-cluster.sh), the grace arithmetic, the srun command line.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Timelike, Utc};

use super::*;
use crate::spec::{CommandSpec, SrunSpec};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time is RFC 3339")
}

/// `scontrol show config` of the local cluster (KillWait 10).
const SHOW_CONFIG: &str = include_str!("samples/scontrol_show_config.txt");

/// `scontrol -o show step 24` inside job 24, with one srun step (pid 17222 on vm).
const SHOW_STEPS: &str = "\
StepId=24.batch UserId=0 StartTime=2026-11-22T04:56:31 TimeLimit=UNLIMITED State=RUNNING Partition=debug NodeList=vm Nodes=1 CPUs=0 Tasks=1 Name=batch Network=(null) TRES=(null) ResvPorts=(null) CPUFreqReq=Default SrunHost:Pid=(null):0
StepId=24.0 UserId=0 StartTime=2026-11-22T04:56:32 TimeLimit=UNLIMITED State=RUNNING Partition=debug NodeList=vm Nodes=1 CPUs=1 Tasks=1 Name=stepB Network=(null) TRES=cpu=1,mem=0,node=1 ResvPorts=(null) CPUFreqReq=Default Dist=Cyclic SrunHost:Pid=vm:17222
";

// ---------------------------------------------------------------- environment

#[test]
fn job_env_from_the_variables_sbatch_sets() {
    let vars = [
        ("SLURM_JOB_ID", "26"),
        ("SLURM_JOB_NAME", "nolimit.sh"),
        ("SLURM_JOB_NODELIST", "vm"),
        ("SLURM_JOB_NUM_NODES", "1"),
        ("SLURM_CPUS_ON_NODE", "2"),
        ("SLURM_JOB_PARTITION", "debug"),
        ("SLURMD_NODENAME", "vm"),
    ];
    let get = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let job = JobEnv::from_vars(get).expect("a job");
    assert_eq!(
        job,
        JobEnv {
            id: "26".into(),
            name: Some("nolimit.sh".into()),
            nodelist: Some("vm".into()),
            num_nodes: Some("1".into()),
            cpus_on_node: Some("2".into()),
            partition: Some("debug".into()),
            node: Some("vm".into()),
        }
    );
    // Older spellings.
    let old = |k: &str| match k {
        "SLURM_JOBID" => Some("7".to_owned()),
        "SLURM_NODELIST" => Some("n[1-2]".to_owned()),
        "SLURM_NNODES" => Some("2".to_owned()),
        _ => None,
    };
    let job = JobEnv::from_vars(old).expect("a job");
    assert_eq!(job.id, "7");
    assert_eq!(job.nodelist.as_deref(), Some("n[1-2]"));
    assert_eq!(job.num_nodes.as_deref(), Some("2"));
    assert_eq!(job.name, None);
}

#[test]
fn no_job_outside_slurm() {
    assert_eq!(JobEnv::from_vars(|_| None), None);
    assert_eq!(
        JobEnv::from_vars(|k| (k == "SLURM_JOB_ID").then(|| " ".to_owned())),
        None
    );
}

// ---------------------------------------------------------------- parsers

#[test]
fn kill_wait_from_scontrol_show_config() {
    assert_eq!(parse_kill_wait(SHOW_CONFIG).unwrap(), secs(10));
    assert_eq!(parse_kill_wait("KillWait = 30 sec\n").unwrap(), secs(30));
    assert_eq!(
        parse_kill_wait("KillWait                = 0 sec").unwrap(),
        secs(0)
    );
    // `KillOnBadExit` is not `KillWait`.
    let e = parse_kill_wait("KillOnBadExit           = 0\n").unwrap_err();
    assert!(matches!(e, SlurmError::NoKillWait), "{e:?}");
    assert!(e.to_string().contains("no KillWait line"), "{e}");
    let e = parse_kill_wait("KillWait = soon\n").unwrap_err();
    assert!(
        matches!(&e, SlurmError::KillWaitValue(v) if v == "soon"),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot read KillWait `soon`"), "{e}");
    let e = parse_kill_wait("KillWait = 3 min\n").unwrap_err();
    assert!(
        matches!(&e, SlurmError::KillWaitUnit { unit, value } if unit == "min" && value == "3 min"),
        "{e:?}"
    );
    assert!(e.to_string().contains("unknown unit `min`"), "{e}");
}

#[test]
fn queue_state_and_end_time_from_squeue() {
    let at = |h, m, s| {
        EndTime::At(
            NaiveDate::from_ymd_opt(2026, 11, 22)
                .unwrap()
                .and_hms_opt(h, m, s)
                .unwrap(),
        )
    };
    assert_eq!(
        parse_queue("RUNNING|2026-11-22T05:00:48\n").unwrap(),
        QueueInfo {
            state: "RUNNING".into(),
            end: at(5, 0, 48)
        }
    );
    // At the time limit: COMPLETING, and %e is the moment it was enforced.
    let q = parse_queue("COMPLETING|2026-11-22T05:01:01\n").unwrap();
    assert!(!q.running());
    assert_eq!(q.end, at(5, 1, 1));
    // No time limit.
    let q = parse_queue("RUNNING|NONE\n").unwrap();
    assert!(q.running());
    assert_eq!(q.end, EndTime::Unlimited);
    assert_eq!(q.end.to_utc(), None);
    assert_eq!(parse_end_time("Unknown").unwrap(), EndTime::Unlimited);
    // A job squeue no longer lists, and garbage.
    assert!(parse_queue("")
        .unwrap_err()
        .to_string()
        .contains("does not list the job"));
    assert!(parse_queue("RUNNING 2026")
        .unwrap_err()
        .to_string()
        .contains("cannot read"));
    let e = parse_queue("RUNNING|tomorrow").unwrap_err();
    assert!(
        matches!(&e, SlurmError::EndTime(s) if s == "tomorrow"),
        "{e:?}"
    );
    assert!(e
        .to_string()
        .contains("cannot read the end time `tomorrow`"));
}

#[test]
fn end_time_is_local_time() {
    let local = chrono::Local::now().naive_local();
    let local = local.with_nanosecond(0).unwrap();
    let end = parse_end_time(&local.format("%Y-%m-%dT%H:%M:%S").to_string()).unwrap();
    let utc = end.to_utc().unwrap();
    assert_eq!(utc.with_timezone(&chrono::Local).naive_local(), local);
}

#[test]
fn steps_and_their_srun_clients_from_scontrol_show_step() {
    let steps = parse_steps(SHOW_STEPS);
    assert_eq!(
        steps,
        vec![
            StepInfo {
                id: "24.batch".into(),
                srun_host: "(null)".into(),
                srun_pid: 0
            },
            StepInfo {
                id: "24.0".into(),
                srun_host: "vm".into(),
                srun_pid: 17222
            },
        ]
    );
    assert_eq!(
        find_step(&steps, "vm", 17222).map(|s| s.id.as_str()),
        Some("24.0")
    );
    // A fully qualified host name matches the short one Slurm prints, and back.
    assert_eq!(
        find_step(&steps, "vm.cluster.example", 17222).map(|s| s.id.as_str()),
        Some("24.0")
    );
    assert_eq!(find_step(&steps, "other", 17222), None);
    assert_eq!(find_step(&steps, "vm", 17223), None);
    assert!(parse_steps("No steps found\n").is_empty());
}

// ---------------------------------------------------------------- graces

#[test]
fn margin_and_the_grace_that_fits_in_kill_wait() {
    assert_eq!(kill_margin(secs(30)), secs(2));
    assert_eq!(kill_margin(secs(10)), secs(2));
    assert_eq!(kill_margin(secs(4)), secs(1));
    assert_eq!(kill_margin(secs(0)), secs(0));
    assert_eq!(grace_within(secs(10)), secs(8));
    assert_eq!(grace_within(secs(30)), secs(28));
    assert_eq!(grace_within(secs(0)), secs(0));
    // --signal=B:TERM@T for a grace of 120 s with KillWait 10: T + 10 - 2 >= 120.
    assert_eq!(signal_lead_for(secs(120), secs(10)), secs(112));
    assert_eq!(signal_lead_for(secs(5), secs(30)), secs(0));
}

#[test]
fn kill_deadline_after_a_scancel_or_the_time_limit_is_kill_wait_after_the_sigterm() {
    let t = utc("2026-11-22T05:00:00Z");
    for state in ["COMPLETING", "CANCELLED", "TIMEOUT"] {
        let q = QueueInfo {
            state: state.into(),
            end: EndTime::Unlimited,
        };
        let d = kill_deadline(t, Ok(&q), secs(10)).expect("a deadline");
        assert_eq!(d.at, utc("2026-11-22T05:00:08Z"), "{state}");
        assert!(d.why.contains(&format!("state {state}")), "{}", d.why);
        assert!(d.why.contains("KillWait (10s)"), "{}", d.why);
    }
}

#[test]
fn kill_deadline_for_a_warning_signal_is_kill_wait_after_the_end_time() {
    let t = utc("2026-11-22T05:00:00Z");
    let end_local = utc("2026-11-22T05:01:30Z").with_timezone(&chrono::Local);
    let q = QueueInfo {
        state: "RUNNING".into(),
        end: EndTime::At(end_local.naive_local()),
    };
    let d = kill_deadline(t, Ok(&q), secs(10)).expect("a deadline");
    assert_eq!(d.at, utc("2026-11-22T05:01:38Z"));
    assert!(d.why.contains("still RUNNING (state RUNNING"), "{}", d.why);
    // Seen right after a --signal=B:TERM@T warning: the signal is still in flight.
    let q = parse_queue("SIGNALING|2026-11-22T05:01:30").unwrap();
    assert!(q.running());
    // Running with no time limit: no SIGKILL from Slurm is coming.
    let q = QueueInfo {
        state: "RUNNING".into(),
        end: EndTime::Unlimited,
    };
    assert_eq!(kill_deadline(t, Ok(&q), secs(10)), None);
}

#[test]
fn kill_deadline_when_the_state_cannot_be_read_assumes_the_kill_is_coming() {
    let t = utc("2026-11-22T05:00:00Z");
    let timed_out = SlurmError::TimedOut {
        command: "squeue".into(),
        timeout: secs(5),
    };
    assert_eq!(timed_out.to_string(), "`squeue` did not answer within 5s");
    let d = kill_deadline(t, Err(&timed_out), secs(30)).unwrap();
    assert_eq!(d.at, utc("2026-11-22T05:00:28Z"));
    assert!(
        d.why.contains("could not be read (`squeue` did not answer"),
        "{}",
        d.why
    );
}

#[test]
fn grace_note_only_when_the_longest_grace_does_not_fit() {
    assert_eq!(grace_note(secs(8), secs(10)), None);
    assert_eq!(grace_note(secs(5), secs(30)), None);
    let n = grace_note(secs(120), secs(10)).expect("a note");
    assert!(
        n.contains("The longest stop grace (2m) does not fit in KillWait (10s)"),
        "{n}"
    );
    assert!(
        n.contains("SIGKILL 8s after the SIGTERM, 2s before Slurm's"),
        "{n}"
    );
    assert!(n.contains("--signal=B:TERM@112 or more"), "{n}");
}

#[test]
fn planned_shutdown_is_stop_before_end_before_the_end() {
    assert_eq!(
        planned_shutdown(utc("2026-11-22T06:00:00Z"), secs(600)),
        utc("2026-11-22T05:50:00Z")
    );
}

// ---------------------------------------------------------------- srun

#[test]
fn srun_always_passes_the_node_count_unless_extra_args_do() {
    let shell = CommandSpec::Shell("true".into());
    let nodes = |srun: &SrunSpec| -> Vec<String> {
        srun_argv("t", srun, &shell, None)
            .into_iter()
            .filter(|a| a.starts_with("--nodes") || a.starts_with("-N"))
            .collect()
    };
    // Inside a 3-node job a step without --nodes inherits SLURM_NNODES=3.
    assert_eq!(nodes(&SrunSpec::default()), ["--nodes=1"]);
    for given in ["-N2", "--nodes=2", "--nodes", "-N"] {
        let srun = SrunSpec {
            extra_args: vec![given.into()],
            ..SrunSpec::default()
        };
        assert_eq!(nodes(&srun), [given], "{given}");
    }
}

#[test]
fn srun_command_lines() {
    let shell = CommandSpec::Shell("python3 -u work.py --fast".into());
    assert_eq!(
        srun_argv("work", &SrunSpec::default(), &shell, None),
        [
            "srun",
            "--job-name=work",
            "--nodes=1",
            "--ntasks=1",
            "--cpus-per-task=1",
            "--exact",
            "/bin/sh",
            "-c",
            "python3 -u work.py --fast"
        ]
    );
    let monitor = SrunSpec {
        nodes: Some(2),
        ntasks: 2,
        cpus_per_task: 4,
        overlap: true,
        extra_args: vec!["--mem=4G".into(), "--gres=gpu:1".into()],
    };
    let argv = CommandSpec::Argv(vec!["./watch".into(), "--every".into(), "5".into()]);
    assert_eq!(
        srun_argv("gpu-watch", &monitor, &argv, None),
        [
            "srun",
            "--job-name=gpu-watch",
            "--nodes=2",
            "--ntasks=2",
            "--cpus-per-task=4",
            "--overlap",
            "--mem=4G",
            "--gres=gpu:1",
            "./watch",
            "--every",
            "5"
        ]
    );
    // With the forwarder that runs the command inside the step.
    let helper = std::path::Path::new("/opt/bansuri");
    assert_eq!(
        srun_argv("work", &SrunSpec::default(), &shell, Some(helper))[5..],
        [
            "--exact",
            "/opt/bansuri",
            "step-exec",
            "--",
            "/bin/sh",
            "-c",
            "python3 -u work.py --fast"
        ]
    );
}

// ---------------------------------------------------------------- running commands

#[test]
fn run_tool_returns_stdout_or_says_what_failed() {
    assert_eq!(
        run_tool("sh", &["-c", "echo out; echo err >&2"], secs(5)).unwrap(),
        "out\n"
    );
    let e = run_tool("sh", &["-c", "echo nope >&2; exit 3"], secs(5)).unwrap_err();
    assert!(
        matches!(&e, SlurmError::Failed { status, stderr, .. } if status.code() == Some(3) && stderr == "nope"),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("`sh -c echo nope >&2; exit 3` failed"), "{e}");
    assert!(e.contains("nope"), "{e}");
    let e = run_tool("no-such-tool-bansuri", &[], secs(5)).unwrap_err();
    assert_eq!(e.to_string(), "`no-such-tool-bansuri` not found in PATH");
}

#[test]
fn run_tool_gives_up_at_its_timeout() {
    let t0 = std::time::Instant::now();
    let e = run_tool("sleep", &["10"], Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not answer within 300ms"), "{e}");
    assert!(t0.elapsed() < secs(3), "took {:?}", t0.elapsed());
    // A command that closes its output but keeps running is cut off too.
    let t0 = std::time::Instant::now();
    let e = run_tool(
        "sh",
        &["-c", "exec >/dev/null 2>&1; sleep 10"],
        Duration::from_millis(300),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("did not answer"), "{e}");
    assert!(t0.elapsed() < secs(3), "took {:?}", t0.elapsed());
}

// ---------------------------------------------------------------- validate

#[test]
fn validate_warns_about_srun_tasks_where_they_cannot_start() {
    let spec = |sruns: &[&str]| crate::spec::Spec {
        source: "/cfg/c.json".into(),
        version: None,
        globals: crate::spec::Globals::default(),
        tasks: ["plain", "a", "b"]
            .iter()
            .map(|n| crate::spec::TaskSpec {
                srun: sruns.contains(n).then(SrunSpec::default),
                ..crate::spec::TaskSpec::with_defaults(
                    n,
                    CommandSpec::Shell("true".into()),
                    "/cfg".into(),
                )
            })
            .collect(),
        warnings: Vec::new(),
    };
    let never = || -> bool { panic!("PATH is looked at only inside a job") };
    assert!(validate_warnings(&spec(&[]), false, never).is_empty());
    assert_eq!(
        validate_warnings(&spec(&["a"]), false, never),
        ["`a` uses srun: it can run only inside a SLURM job (bansuri submitted with sbatch); here it would fail to start"]
    );
    // Inside a job: fine when srun is there, a warning when it is not.
    assert!(validate_warnings(&spec(&["a", "b"]), true, || true).is_empty());
    assert_eq!(
        validate_warnings(&spec(&["a", "b"]), true, || false),
        ["`a`, `b`: `srun` is not in PATH, so they would fail to start"]
    );
}
