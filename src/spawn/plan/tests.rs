//! The plan of a start, one rule at a time, from configs parsed from text.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::{parse_str, Format};
use crate::resources::{CpuSet, Grant, Inventory};
use crate::spec::UserSpec;

/// The tasks of a config whose `scripts` are `tasks` (JSON objects), in /tmp.
fn tasks(tasks: &str) -> Vec<TaskSpec> {
    let text = format!("{{\"scripts\": [\n{tasks}\n]}}");
    match parse_str(&text, Path::new("/tmp/c.json"), Format::Json) {
        Ok(spec) => spec.tasks,
        Err(e) => panic!("config did not load:\n{e}"),
    }
}

fn task(json: &str) -> TaskSpec {
    tasks(json).remove(0)
}

fn plan(json: &str) -> LaunchPlan {
    LaunchPlan::new(&task(json), 1, &Own::default())
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

fn var<'p>(p: &'p LaunchPlan, k: &str) -> Option<&'p str> {
    p.env.get(&OsString::from(k)).and_then(|v| v.to_str())
}

#[test]
fn a_string_runs_in_the_shell() {
    let p = plan(r#"{"name": "a", "command": "echo hi | wc -c"}"#);
    assert_eq!(p.program, "/bin/sh");
    assert_eq!(p.args, os(&["-c", "echo hi | wc -c"]));
    assert_eq!(p.cwd, PathBuf::from("/tmp"));
}

#[test]
fn an_array_runs_as_argv_without_a_shell() {
    let p = plan(r#"{"name": "a", "command": ["printf", "%s|", "a b", "$HOME"]}"#);
    assert_eq!(p.program, "printf");
    assert_eq!(p.args, os(&["%s|", "a b", "$HOME"]));
}

#[test]
fn a_python_class_runs_the_runner_with_its_settings() {
    let json = r#"{"name": "py", "no-interface": true, "command": "pkg.mod:Job"}"#;
    let p = plan(json);
    assert_eq!(p.program, "python3");
    assert_eq!(
        p.args,
        os(&["-u", "-c", crate::python::BOOTSTRAP, "pkg.mod:Job"])
    );
    assert_eq!(
        var(&p, "BANSURI_PYTHON_RUNNER"),
        Some(crate::python::RUNNER)
    );
    let settings: serde_json::Value =
        serde_json::from_str(var(&p, "BANSURI_PYTHON_TASK").unwrap()).unwrap();
    assert_eq!(settings["command"], "pkg.mod:Job");
    assert_eq!(settings["name"], "py");
    // The interpreter: bansuri's BANSURI_PYTHON, then the task's own over it.
    let own = Own {
        python: Some("/opt/py/bin/python".into()),
        ..Own::default()
    };
    assert_eq!(
        LaunchPlan::new(&task(json), 1, &own).program,
        "/opt/py/bin/python"
    );
    let json = r#"{"name": "py", "no-interface": true, "command": "pkg.mod:Job",
                   "env": {"BANSURI_PYTHON": "/venv/bin/python"}}"#;
    assert_eq!(
        LaunchPlan::new(&task(json), 1, &own).program,
        "/venv/bin/python"
    );
}

#[test]
fn an_srun_task_runs_srun_with_bansuri_as_the_step_helper() {
    let json = r#"{"name": "s", "command": ["./sim", "-n", "4"],
                   "srun": {"ntasks": 2, "cpus-per-task": 3}}"#;
    let own = Own {
        exe: Some("/opt/bansuri".into()),
        ..Own::default()
    };
    let p = LaunchPlan::new(&task(json), 1, &own);
    assert_eq!(p.program, "srun");
    let args: Vec<_> = p.args.iter().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(args[0], "--job-name=s");
    assert!(args.contains(&"--ntasks=2") && args.contains(&"--cpus-per-task=3"));
    let tail = &args[args.len() - 6..];
    assert_eq!(
        tail,
        ["/opt/bansuri", "step-exec", "--", "./sim", "-n", "4"],
        "{args:?}"
    );
    // Without its own binary known, srun runs the command itself.
    let p = LaunchPlan::new(&task(json), 1, &Own::default());
    assert!(!p.args.iter().any(|a| a == "step-exec"), "{:?}", p.args);
}

#[test]
fn an_srun_python_task_carries_the_runner_in_the_environment() {
    let p =
        plan(r#"{"name": "s", "no-interface": true, "command": "pkg:Job", "srun": {"ntasks": 1}}"#);
    assert_eq!(p.program, "srun");
    assert!(p.args.iter().any(|a| a == "pkg:Job"), "{:?}", p.args);
    assert_eq!(
        var(&p, "BANSURI_PYTHON_RUNNER"),
        Some(crate::python::RUNNER)
    );
    assert!(var(&p, "BANSURI_PYTHON_TASK").is_some());
}

#[test]
fn bansuri_variables_win_over_env_and_env_over_the_environment_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.env");
    std::fs::write(&file, "FROM_FILE=file\nBOTH=file\n").unwrap();
    let json = format!(
        r#"{{"name": "e", "command": "true", "environment-file": "{}",
            "env": {{"BOTH": "env", "BANSURI_TASK": "mine", "BANSURI_ATTEMPT": "9"}}}}"#,
        file.display()
    );
    let p = LaunchPlan::new(&task(&json), 3, &Own::default());
    assert_eq!(var(&p, "FROM_FILE"), Some("file"));
    assert_eq!(var(&p, "BOTH"), Some("env"));
    assert_eq!(var(&p, "BANSURI_TASK"), Some("e"));
    assert_eq!(var(&p, "BANSURI_ATTEMPT"), Some("3"));
    assert_eq!(var(&p, "BANSURI_INSTANCE"), None);
}

#[test]
fn each_instance_of_a_program_knows_its_number() {
    let ts = tasks(r#"{"name": "w", "command": "true", "numprocs": 2}"#);
    let p = LaunchPlan::new(&ts[1], 1, &Own::default());
    assert_eq!(var(&p, "BANSURI_TASK"), Some("w:1"));
    assert_eq!(var(&p, "BANSURI_INSTANCE"), Some("1"));
}

#[test]
fn python_is_unbuffered_unless_bansuri_or_the_task_says_otherwise() {
    assert_eq!(
        var(
            &plan(r#"{"name": "a", "command": "true"}"#),
            "PYTHONUNBUFFERED"
        ),
        Some("1")
    );
    // bansuri's own value is inherited: the plan does not set one.
    let own = Own {
        python_unbuffered: true,
        ..Own::default()
    };
    let t = task(r#"{"name": "a", "command": "true"}"#);
    assert_eq!(var(&LaunchPlan::new(&t, 1, &own), "PYTHONUNBUFFERED"), None);
    let p = plan(r#"{"name": "a", "command": "true", "env": {"PYTHONUNBUFFERED": ""}}"#);
    assert_eq!(var(&p, "PYTHONUNBUFFERED"), Some(""));
}

#[test]
fn output_goes_to_the_job_log_combined_by_default_stderr_apart_on_request() {
    let p = plan(r#"{"name": "a", "command": "true"}"#);
    assert_eq!((p.stdout, p.stderr), (Sink::JobLog, Stderr::Combined));
    let p = plan(r#"{"name": "a", "command": "true", "stderr": "log"}"#);
    assert_eq!(p.stdout, Sink::JobLog);
    assert_eq!(p.stderr, Stderr::Own(Sink::JobLog));
}

#[test]
fn files_go_to_the_child_unless_they_rotate() {
    let p =
        plan(r#"{"name": "a", "command": "true", "stdout": "/tmp/o.log", "stderr": "/tmp/e.log"}"#);
    assert_eq!(p.stdout, Sink::File("/tmp/o.log".into()));
    assert_eq!(p.stderr, Stderr::Own(Sink::File("/tmp/e.log".into())));
    let p = plan(
        r#"{"name": "a", "command": "true", "stdout": "/tmp/o.log", "stderr": "/tmp/e.log",
            "log-max-bytes": "1MB"}"#,
    );
    assert_eq!(p.stdout, Sink::Rotated("/tmp/o.log".into()));
    assert_eq!(p.stderr, Stderr::Own(Sink::Rotated("/tmp/e.log".into())));
}

#[test]
fn stderr_into_the_stdout_file_is_combined() {
    let p =
        plan(r#"{"name": "a", "command": "true", "stdout": "/tmp/o.log", "stderr": "/tmp/o.log"}"#);
    assert_eq!(p.stdout, Sink::File("/tmp/o.log".into()));
    assert_eq!(p.stderr, Stderr::Combined);
    // A file for stderr alone, stdout in the job log.
    let p = plan(r#"{"name": "a", "command": "true", "stderr": "/tmp/e.log"}"#);
    assert_eq!(p.stdout, Sink::JobLog);
    assert_eq!(p.stderr, Stderr::Own(Sink::File("/tmp/e.log".into())));
}

#[test]
fn without_a_user_the_fast_launcher_starts_it_with_bansuris_identity() {
    let p = plan(r#"{"name": "a", "command": "true", "umask": "027", "priority": 5}"#);
    assert_eq!(p.launcher, Launcher::Fast);
    assert_eq!(p.identity, None);
    assert_eq!((p.umask, p.priority), (Some(0o027), 5));
    assert_eq!(var(&p, "USER"), None);
    assert_eq!(var(&p, "HOME"), None);
}

#[test]
fn a_user_is_switched_to_by_fork_with_its_own_home() {
    let mut t = task(r#"{"name": "a", "command": "true", "env": {"HOME": "/mine", "USER": "x"}}"#);
    t.user = Some(UserSpec {
        name: "alice".into(),
        uid: 1001,
        gid: 100,
        groups: vec![100, 27],
        home: "/home/alice".into(),
    });
    let p = LaunchPlan::new(&t, 1, &Own::default());
    assert_eq!(p.launcher, Launcher::Fork);
    assert_eq!(
        p.identity,
        Some(Identity {
            uid: 1001,
            gid: 100,
            groups: vec![100, 27]
        })
    );
    assert_eq!(var(&p, "USER"), Some("alice"));
    assert_eq!(var(&p, "LOGNAME"), Some("alice"));
    assert_eq!(var(&p, "HOME"), Some("/home/alice"));
}

/// A task of the library API named `Echo` (registered), from its JSON object.
fn registered(json: &str) -> TaskSpec {
    let text = format!("{{\"scripts\": [{json}]}}");
    let ext = crate::config::Extensions {
        tasks: ["Echo".to_owned()].into(),
        ..Default::default()
    };
    match crate::config::parse_str_with(&text, Path::new("/tmp/c.json"), Format::Json, &ext) {
        Ok(spec) => spec.tasks.into_iter().next().unwrap(),
        Err(e) => panic!("config did not load:\n{e}"),
    }
}

#[test]
fn a_thread_gets_the_directory_the_variables_and_the_sinks_of_a_process() {
    let t = registered(
        r#"{"name": "e", "no-interface": true, "command": "Echo",
            "working_directory": "/srv", "env": {"A": "1", "B": "two"},
            "stdout": "/tmp/e.out"}"#,
    );
    let p = ThreadPlan::new(&t);
    let process = LaunchPlan::new(&t, 3, &Own::default());
    assert_eq!(p.cwd, PathBuf::from("/srv"));
    assert_eq!(
        p.cwd, process.cwd,
        "the same directory as a process would get"
    );
    assert_eq!(
        p.env.iter().collect::<Vec<_>>(),
        [
            (&"A".to_owned(), &"1".to_owned()),
            (&"B".to_owned(), &"two".to_owned())
        ],
        "the task's own variables, none of bansuri's"
    );
    for (k, v) in &p.env {
        assert_eq!(var(&process, k), Some(v.as_str()), "a process gets {k} too");
    }
    assert_eq!(p.stdout, Sink::File(PathBuf::from("/tmp/e.out")));
    assert_eq!(p.stdout, process.stdout);
    assert_eq!(
        p.stderr,
        Stderr::Combined,
        "stderr goes with stdout by default"
    );
    let logged =
        registered(r#"{"name": "e", "no-interface": true, "command": "Echo", "stderr": "log"}"#);
    assert_eq!(ThreadPlan::new(&logged).stderr, Stderr::Own(Sink::JobLog));
}

#[test]
fn a_thread_appends_to_a_file_that_a_process_would_rotate() {
    let t = registered(
        r#"{"name": "e", "no-interface": true, "command": "Echo",
            "stdout": "/tmp/e.out", "stderr": "/tmp/e.err", "log-max-bytes": "1MB"}"#,
    );
    let process = LaunchPlan::new(&t, 1, &Own::default());
    assert_eq!(process.stdout, Sink::Rotated(PathBuf::from("/tmp/e.out")));
    let p = ThreadPlan::new(&t);
    assert_eq!(p.stdout, Sink::File(PathBuf::from("/tmp/e.out")));
    assert_eq!(
        p.stderr,
        Stderr::Own(Sink::File(PathBuf::from("/tmp/e.err")))
    );
    let same = registered(
        r#"{"name": "e", "no-interface": true, "command": "Echo",
            "stdout": "/tmp/e.out", "stderr": "/tmp/e.out"}"#,
    );
    assert_eq!(
        ThreadPlan::new(&same).stderr,
        Stderr::Combined,
        "one file: combined"
    );
}

/// A grant of `cpus` and `gpus` out of an inventory of CPUs 0-7 and GPUs `a`-`d`, which a
/// child addresses as 0-3 (Slurm's numbering inside the job).
fn granted(cpus: &str, gpus: &[&str]) -> (Grant, Inventory) {
    use crate::resources::{Declared, Inputs};
    let inventory = Inventory::from_inputs(&Inputs {
        env: [
            ("SLURM_JOB_ID", "1"),
            ("SLURM_JOB_GPUS", "a,b,c,d"),
            ("CUDA_VISIBLE_DEVICES", "0,1,2,3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        affinity: CpuSet::parse("0-7").unwrap(),
        mem_total: 1 << 30,
        declared: Some(Declared::default()),
        ..Inputs::default()
    })
    .unwrap();
    let grant = Grant {
        cpus: CpuSet::parse(cpus).unwrap(),
        gpus: gpus.iter().map(|g| g.to_string()).collect(),
        mem: None,
    };
    (grant, inventory)
}

#[test]
fn a_bound_plan_pins_the_cpus_and_sets_the_grant_variables() {
    let (grant, inventory) = granted("2-3", &["c"]);
    let b = Some(Binding {
        grant: &grant,
        inventory: &inventory,
    });
    let t = task(r#"{"name": "a", "command": "true", "env": {"CUDA_VISIBLE_DEVICES": "9"}}"#);
    let p = LaunchPlan::new(&t, 1, &Own::default()).bound(&t, b);
    assert_eq!(p.cpus, Some(CpuSet::parse("2-3").unwrap()));
    assert_eq!(var(&p, "OMP_NUM_THREADS"), Some("2"));
    assert_eq!(var(&p, "BANSURI_CPUS"), Some("2-3"));
    // The GPU as the child addresses it, over the task's own value; the ID beside it.
    for v in [
        "CUDA_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "ZE_AFFINITY_MASK",
    ] {
        assert_eq!(var(&p, v), Some("2"), "{v}");
    }
    assert_eq!(var(&p, "BANSURI_GPUS"), Some("c"));
    assert_eq!(
        var(&p, "BANSURI_TASK"),
        Some("a"),
        "the rest of the plan stays"
    );

    // The task's own OMP_NUM_THREADS wins.
    let t = task(r#"{"name": "a", "command": "true", "env": {"OMP_NUM_THREADS": "8"}}"#);
    let p = LaunchPlan::new(&t, 1, &Own::default()).bound(&t, b);
    assert_eq!(var(&p, "OMP_NUM_THREADS"), Some("8"));
    assert_eq!(p.cpus, Some(CpuSet::parse("2-3").unwrap()));
}

#[test]
fn bind_false_no_grant_and_srun_leave_the_affinity_alone() {
    let (grant, inventory) = granted("4", &["a"]);
    let b = Some(Binding {
        grant: &grant,
        inventory: &inventory,
    });
    let mut t = task(r#"{"name": "a", "command": "true"}"#);
    let unbound = LaunchPlan::new(&t, 1, &Own::default());
    assert_eq!(
        unbound.clone().bound(&t, None),
        unbound,
        "no grant: unchanged"
    );
    assert_eq!(unbound.cpus, None);

    t.needs.bind = false;
    let p = LaunchPlan::new(&t, 1, &Own::default()).bound(&t, b);
    assert_eq!(p.cpus, None, "bind: false pins nothing");
    assert_eq!(var(&p, "OMP_NUM_THREADS"), None);
    assert_eq!(var(&p, "BANSURI_CPUS"), None);
    assert_eq!(
        var(&p, "CUDA_VISIBLE_DEVICES"),
        Some("0"),
        "a GPU is never shared: its variables stay"
    );

    let t = task(r#"{"name": "s", "command": ["true"], "srun": true}"#);
    let p = LaunchPlan::new(&t, 1, &Own::default());
    assert_eq!(p.clone().bound(&t, b), p, "an srun step is Slurm's to bind");
}
