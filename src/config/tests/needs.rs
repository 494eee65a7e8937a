//! Issue 17's fields: `cpus`, `gpus`, `mem`, `bind`, `mem-exceeded`, `expected-runtime`,
//! `checkpoint-signal`, `checkpoint-lead`, and the globals `resources`, `requeue_on_end`.

use super::*;
use crate::resources::{CpuSet, Declared, DeclaredCpus, Request};
use crate::spec::{Checkpoint, MemExceeded, Needs};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn request(fields: &str) -> Option<Request> {
    task(fields).needs.request
}

/// The single error of a one-task config: names the file, task `t` and `field`, and its
/// message holds `needle`.
fn bad(fields: &str, field: &str, needle: &str) -> ConfigError {
    let e = task_err(fields, field);
    assert_eq!(e.file, Path::new(CFG), "{e}");
    assert_has(&e, needle);
    e
}

/// The single error of a config whose top level holds `globals` (and one task).
fn bad_global(globals: &str, field: &str, needle: &str) -> ConfigError {
    let e = err1(&format!(
        r#"{{{globals}, "scripts": [{{"name": "t", "command": "x"}}]}}"#
    ));
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    assert_eq!(e.task, None, "{e}");
    assert_eq!(e.file, Path::new(CFG), "{e}");
    assert!(e.line.is_some(), "{e}");
    assert_has(&e, needle);
    e
}

fn globals(globals: &str) -> crate::spec::Globals {
    ok(&format!(
        r#"{{{globals}, "scripts": [{{"name": "t", "command": "x"}}]}}"#
    ))
    .globals
}

#[test]
fn no_request_field_means_no_request_and_the_defaults() {
    let t = task("");
    assert_eq!(t.needs, Needs::default());
    assert_eq!(t.needs.request, None);
    assert!(t.needs.bind);
    assert_eq!(t.needs.mem_exceeded, MemExceeded::Warn);
    assert_eq!(t.needs.checkpoint, None);
    assert_eq!(t.needs.expected_runtime, None);
    let s = ok(&one_task(""));
    assert_eq!(s.globals.resources, None);
    assert!(!s.globals.requeue_on_end);
}

#[test]
fn any_of_cpus_gpus_mem_gives_a_request_with_defaults() {
    assert_eq!(
        request(r#""cpus": 4"#),
        Some(Request {
            cpus: 4,
            gpus: 0,
            mem: None
        })
    );
    assert_eq!(
        request(r#""gpus": 2"#),
        Some(Request {
            cpus: 1,
            gpus: 2,
            mem: None
        })
    );
    assert_eq!(
        request(r#""gpus": 0"#),
        Some(Request {
            cpus: 1,
            gpus: 0,
            mem: None
        })
    );
    assert_eq!(
        request(r#""mem": "4G""#),
        Some(Request {
            cpus: 1,
            gpus: 0,
            mem: Some(4 * GIB)
        })
    );
    assert_eq!(
        request(r#""cpus": 2, "gpus": 1, "mem": "512M""#),
        Some(Request {
            cpus: 2,
            gpus: 1,
            mem: Some(512 * MIB)
        })
    );
    assert_eq!(request(r#""mem": 1048576"#).unwrap().mem, Some(MIB));
    assert_eq!(request(r#""mem": "64GiB""#).unwrap().mem, Some(64 * GIB));
    assert_eq!(request(r#""mem": " 2 gb ""#).unwrap().mem, Some(2 * GIB));
}

#[test]
fn bad_cpus_gpus_mem() {
    let e = bad(r#""cpus": 0"#, "cpus", "must be at least 1, found 0");
    assert_has(&e, "invalid `cpus` in task `t`");
    assert_has(&e, "only a task with `gpus` may hold no CPU");
    bad(
        r#""cpus": 0, "mem": "1G""#,
        "cpus",
        "only a task with `gpus`",
    );
    // A GPU run may hold no CPU of its own.
    let gpu_only = request(r#""cpus": 0, "gpus": 1"#).unwrap();
    assert_eq!((gpu_only.cpus, gpu_only.gpus), (0, 1));
    bad(r#""cpus": -2"#, "cpus", "must be 0 or more, found -2");
    bad(
        r#""cpus": 1.5"#,
        "cpus",
        "expected a whole number, found `1.5`",
    );
    bad(r#""cpus": "2""#, "cpus", "expected an integer");
    bad(r#""cpus": 5000000000"#, "cpus", "too large");
    bad(r#""gpus": -1"#, "gpus", "must be 0 or more, found -1");
    bad(r#""gpus": 0.5"#, "gpus", "expected a whole number");
    bad(r#""gpus": true"#, "gpus", "expected an integer");
    bad(r#""mem": "0""#, "mem", "no memory");
    bad(r#""mem": 0"#, "mem", "no memory");
    bad(r#""mem": "4T""#, "mem", "`4T` is not a size");
    bad(r#""mem": "lots""#, "mem", "`lots` is not a size");
    bad(r#""mem": 1.5"#, "mem", "`1.5` is not a number of bytes");
    bad(r#""mem": -4"#, "mem", "`-4` is not a number of bytes");
    bad(r#""mem": [4]"#, "mem", "expected a size");
    // A bad value still gives a request, and reports only itself.
    let errors = errs(&one_task(r#""cpus": 0, "gpus": -1, "mem": "x""#));
    let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    assert_eq!(fields, ["cpus", "gpus", "mem"]);
}

#[test]
fn bind_and_mem_exceeded() {
    assert!(!task(r#""cpus": 2, "bind": false"#).needs.bind);
    assert!(task(r#""cpus": 2, "bind": true"#).needs.bind);
    let t = task(r#""mem": "1G", "mem-exceeded": "stop""#);
    assert_eq!(t.needs.mem_exceeded, MemExceeded::Stop);
    let t = task(r#""mem": "1G", "mem-exceeded": " WARN ""#);
    assert_eq!(t.needs.mem_exceeded, MemExceeded::Warn);
    let t = task(r#""mem": "1G", "mem_exceeded": "Stop""#);
    assert_eq!(t.needs.mem_exceeded, MemExceeded::Stop);
    bad(
        r#""cpus": 1, "bind": "yes""#,
        "bind",
        "expected `true` or `false`",
    );
    let e = bad(
        r#""mem": "1G", "mem-exceeded": "kill""#,
        "mem-exceeded",
        "expected one of `warn`, `stop`, found \"kill\"",
    );
    assert_eq!(e.help, None);
    let e = bad(
        r#""mem": "1G", "mem-exceeded": "stpo""#,
        "mem-exceeded",
        "found \"stpo\"",
    );
    assert_has(&e, "did you mean \"stop\"?");
    let e = err1(&one_task(r#""mem": "1G", "mem_exceeded": 3"#));
    assert_eq!(e.field.as_deref(), Some("mem-exceeded"));
    assert_has(&e, "invalid `mem_exceeded` in task `t`");
}

#[test]
fn expected_runtime() {
    let t = task(r#""cpus": 1, "expected-runtime": "1h30m""#);
    assert_eq!(t.needs.expected_runtime, Some(Duration::from_secs(5400)));
    let t = task(r#""expected_runtime": 90"#);
    assert_eq!(t.needs.expected_runtime, Some(Duration::from_secs(90)));
    assert_eq!(t.needs.request, None, "expected-runtime is no request");
    bad(
        r#""expected-runtime": 0"#,
        "expected-runtime",
        "must be greater than zero",
    );
    bad(r#""expected-runtime": "soon""#, "expected-runtime", "soon");
    bad(
        r#""expected-runtime": [1]"#,
        "expected-runtime",
        "expected a duration",
    );
}

#[test]
fn checkpoint_signal_and_lead() {
    let t = task(r#""checkpoint-signal": "USR1", "checkpoint-lead": "5m""#);
    assert_eq!(
        t.needs.checkpoint,
        Some(Checkpoint {
            signal: libc::SIGUSR1,
            lead: Duration::from_secs(300)
        })
    );
    // The lead defaults to 10 minutes.
    let t = task(r#""checkpoint_signal": "sigusr2""#);
    assert_eq!(
        t.needs.checkpoint,
        Some(Checkpoint {
            signal: libc::SIGUSR2,
            lead: Duration::from_secs(600)
        })
    );
    let t = task(r#""checkpoint-signal": 10, "checkpoint_lead": 120"#);
    assert_eq!(
        t.needs.checkpoint,
        Some(Checkpoint {
            signal: 10,
            lead: Duration::from_secs(120)
        })
    );
    let rt = libc::SIGRTMIN() + 1;
    let t = task(&format!(r#""checkpoint-signal": {rt}"#));
    assert_eq!(t.needs.checkpoint.unwrap().signal, rt);
    assert_eq!(
        task(r#""checkpoint-signal": " term ""#)
            .needs
            .checkpoint
            .unwrap()
            .signal,
        libc::SIGTERM
    );
    bad(
        r#""checkpoint-signal": "USR3""#,
        "checkpoint-signal",
        "unknown signal \"USR3\"",
    );
    bad(
        r#""checkpoint-signal": "KILL""#,
        "checkpoint-signal",
        "SIGKILL cannot be caught",
    );
    bad(
        r#""checkpoint-signal": 19"#,
        "checkpoint-signal",
        "SIGSTOP cannot be caught",
    );
    bad(
        r#""checkpoint-signal": 0"#,
        "checkpoint-signal",
        "`0` is not a signal number",
    );
    bad(
        r#""checkpoint-signal": 200"#,
        "checkpoint-signal",
        "`200` is not a signal number",
    );
    bad(
        r#""checkpoint-signal": true"#,
        "checkpoint-signal",
        "expected a signal name or number",
    );
    bad(
        r#""checkpoint-signal": "USR1", "checkpoint-lead": 0"#,
        "checkpoint-lead",
        "must be greater than zero",
    );
}

#[test]
fn resources_block() {
    let g = globals(r#""resources": {"cpus": 8, "gpus": ["0", "1", 2], "mem": "32G"}"#);
    assert_eq!(
        g.resources,
        Some(Declared {
            cpus: Some(DeclaredCpus::Count(8)),
            gpus: Some(vec!["0".into(), "1".into(), "2".into()]),
            mem: Some(32 * GIB),
        })
    );
    let g = globals(r#""resources": {"cpus": "0-3,8"}"#);
    assert_eq!(
        g.resources,
        Some(Declared {
            cpus: Some(DeclaredCpus::List(CpuSet::parse("0-3,8").unwrap())),
            gpus: None,
            mem: None,
        })
    );
    let g = globals(r#""resources": {"gpus": ["GPU-4f2a", "MIG-1/2/3"]}"#);
    assert_eq!(
        g.resources.unwrap().gpus,
        Some(vec!["GPU-4f2a".to_string(), "MIG-1/2/3".to_string()])
    );
    assert_eq!(
        globals(r#""resources": {"gpus": []}"#)
            .resources
            .unwrap()
            .gpus,
        Some(vec![])
    );
    assert_eq!(globals(r#""resources": null"#).resources, None);
    assert_eq!(
        globals(r#""resources": {}"#).resources,
        Some(Declared::default())
    );
}

#[test]
fn bad_resources_block() {
    bad_global(r#""resources": 4"#, "resources", "expected an object");
    bad_global(
        r#""resources": {"cpus": 0}"#,
        "resources.cpus",
        "invalid `resources.cpus`: must be at least 1, found 0",
    );
    bad_global(r#""resources": {"cpus": "0-"}"#, "resources.cpus", "0-");
    bad_global(
        r#""resources": {"cpus": ""}"#,
        "resources.cpus",
        "resources.cpus",
    );
    bad_global(
        r#""resources": {"cpus": true}"#,
        "resources.cpus",
        "expected a number or a CPU list",
    );
    bad_global(
        r#""resources": {"gpus": "0,1"}"#,
        "resources.gpus",
        "expected a list of GPU IDs",
    );
    bad_global(
        r#""resources": {"gpus": ["0", "0"]}"#,
        "resources.gpus",
        "GPU `0` is listed twice",
    );
    bad_global(
        r#""resources": {"gpus": ["0", " "]}"#,
        "resources.gpus",
        "element 1 is not a GPU ID",
    );
    bad_global(
        r#""resources": {"gpus": ["0,1"]}"#,
        "resources.gpus",
        "element 0 is not a GPU ID",
    );
    bad_global(
        r#""resources": {"gpus": [true]}"#,
        "resources.gpus",
        "element 0: expected a GPU ID",
    );
    bad_global(r#""resources": {"mem": "0"}"#, "resources.mem", "no memory");
    bad_global(
        r#""resources": {"mem": "big"}"#,
        "resources.mem",
        "`big` is not a size",
    );
    let e = bad_global(
        r#""resources": {"gpu": ["0"]}"#,
        "resources",
        "unknown key `gpu` in `resources`",
    );
    assert_has(&e, "did you mean `gpus`?");
    let e = bad_global(
        r#""resources": {"disk": 4}"#,
        "resources",
        "unknown key `disk`",
    );
    assert_has(&e, "`resources` takes `cpus`, `gpus`, `mem`");
    bad_global(
        r#""resources": {"mem": "1G", "mem": "2G"}"#,
        "resources.mem",
        "`mem` given twice in `resources`",
    );
}

#[test]
fn requeue_on_end() {
    assert!(globals(r#""requeue_on_end": true"#).requeue_on_end);
    assert!(globals(r#""requeue-on-end": true"#).requeue_on_end);
    assert!(!globals(r#""requeue_on_end": false"#).requeue_on_end);
    bad_global(
        r#""requeue_on_end": "yes""#,
        "requeue_on_end",
        "expected `true` or `false`",
    );
    // A task field at the top level (and the reverse) says where it belongs.
    let e = err1(r#"{"cpus": 2, "scripts": ["x"]}"#);
    assert_has(&e, "is a task field");
    let e = err1(&one_task(r#""requeue_on_end": true"#));
    assert_has(&e, "is a global setting");
}

#[test]
fn toml_and_yaml_forms() {
    let toml = r#"
requeue_on_end = true

[resources]
cpus = "0-3"
gpus = ["0", "1"]
mem = "16G"

[[scripts]]
name = "train"
command = "python train.py"
cpus = 2
gpus = 1
mem = "4G"
bind = false
mem-exceeded = "stop"
expected_runtime = "2h"
checkpoint-signal = "USR1"
checkpoint-lead = "15m"
"#;
    let yaml = r#"
requeue_on_end: true
resources:
  cpus: "0-3"
  gpus: ["0", "1"]
  mem: 16G
scripts:
  - name: train
    command: python train.py
    cpus: 2
    gpus: 1
    mem: 4G
    bind: false
    mem_exceeded: stop
    expected-runtime: 2h
    checkpoint_signal: USR1
    checkpoint-lead: 15m
"#;
    for (text, path, format) in [
        (toml, "/cfg/c.toml", Format::Toml),
        (yaml, "/cfg/c.yaml", Format::Yaml),
    ] {
        let s = parse_str(text, Path::new(path), format).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.globals.requeue_on_end, "{path}");
        assert_eq!(
            s.globals.resources,
            Some(Declared {
                cpus: Some(DeclaredCpus::List(CpuSet::parse("0-3").unwrap())),
                gpus: Some(vec!["0".into(), "1".into()]),
                mem: Some(16 * GIB),
            }),
            "{path}"
        );
        assert_eq!(
            s.tasks[0].needs,
            Needs {
                request: Some(Request {
                    cpus: 2,
                    gpus: 1,
                    mem: Some(4 * GIB)
                }),
                bind: false,
                mem_exceeded: MemExceeded::Stop,
                expected_runtime: Some(Duration::from_secs(7200)),
                checkpoint: Some(Checkpoint {
                    signal: libc::SIGUSR1,
                    lead: Duration::from_secs(900)
                }),
            },
            "{path}"
        );
    }
    let e = parse_str(
        "[[scripts]]\nname = \"t\"\ncommand = \"x\"\ncpus = 0\n",
        Path::new("/cfg/c.toml"),
        Format::Toml,
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field.as_deref(), Some("cpus"));
    assert_eq!(e.0[0].task.as_deref(), Some("t"));
    assert_eq!(e.0[0].line, Some(4), "{e}");
    let e = parse_str(
        "scripts:\n  - name: t\n    command: x\n    gpus: -1\n",
        Path::new("/cfg/c.yaml"),
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field.as_deref(), Some("gpus"));
    assert_eq!(e.0[0].line, Some(4), "{e}");
    // Taskmaster's `programs:` form takes the same fields.
    let s = parse_str(
        "programs:\n  worker:\n    cmd: ./w\n    cpus: 3\n",
        Path::new("/cfg/c.yaml"),
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(s.tasks[0].needs.request.unwrap().cpus, 3);
}

#[test]
fn numprocs_instances_share_the_needs() {
    let s = ok(&one_task(
        r#""numprocs": 2, "cpus": 2, "checkpoint-signal": "USR1""#,
    ));
    assert_eq!(s.tasks.len(), 2);
    for t in &s.tasks {
        assert_eq!(t.needs.request.unwrap().cpus, 2, "{}", t.name);
        assert!(t.needs.checkpoint.is_some(), "{}", t.name);
    }
}

// ---------------------------------------------------------------- settings without effect

#[test]
fn bind_without_a_request_is_a_warning() {
    for b in ["true", "false"] {
        let w = warn1(&one_task(&format!(r#""bind": {b}"#)), "t", "bind");
        assert_has(&w, "`bind` in task `t`: has no effect");
        assert_has(&w, "asks for none of `cpus`, `gpus`, `mem`");
    }
    for fields in [r#""cpus": 1, "bind": false"#, r#""gpus": 0, "bind": true"#] {
        assert!(ok(&one_task(fields)).warnings.is_empty(), "{fields}");
    }
}

#[test]
fn mem_exceeded_without_mem_is_a_warning() {
    let w = warn1(&one_task(r#""mem-exceeded": "stop""#), "t", "mem-exceeded");
    assert_has(&w, "the task gives no `mem`");
    // A request without `mem` is no better.
    let w = warn1(
        &one_task(r#""cpus": 2, "mem_exceeded": "warn""#),
        "t",
        "mem-exceeded",
    );
    assert_has(&w, "`mem_exceeded` in task `t`: has no effect");
    assert!(ok(&one_task(r#""mem": "1G", "mem-exceeded": "stop""#))
        .warnings
        .is_empty());
    // An invalid `mem` is its own error, without a warning on top.
    let e = task_err(r#""mem": "x", "mem-exceeded": "stop""#, "mem");
    assert_has(&e, "`x` is not a size");
}

#[test]
fn checkpoint_lead_without_signal_is_a_warning() {
    let w = warn1(
        &one_task(r#""checkpoint-lead": "5m""#),
        "t",
        "checkpoint-lead",
    );
    assert_has(&w, "has no effect without `checkpoint-signal`");
    assert_eq!(task(r#""checkpoint-lead": "5m""#).needs.checkpoint, None);
}

#[test]
fn checkpoint_lead_within_stop_before_end_is_a_warning() {
    let cfg = |sbe: &str, fields: &str| {
        format!(
            r#"{{"stop_before_end": "{sbe}", "scripts": [{{"name": "t", "command": "x", {fields}}}]}}"#
        )
    };
    let w = warn1(
        &cfg(
            "10m",
            r#""checkpoint-signal": "USR1", "checkpoint-lead": "5m""#,
        ),
        "t",
        "checkpoint-lead",
    );
    assert_has(
        &w,
        "after the stop that `stop_before_end` begins 10m before it",
    );
    // The default lead (10m) against a 15 minute stop: named at the signal.
    let w = warn1(
        &cfg("15m", r#""checkpoint-signal": "USR1""#),
        "t",
        "checkpoint-signal",
    );
    assert_has(&w, "make `checkpoint-lead` longer than 15m");
    assert!(ok(&cfg("5m", r#""checkpoint-signal": "USR1""#))
        .warnings
        .is_empty());
    assert!(ok(&one_task(
        r#""checkpoint-signal": "USR1", "checkpoint-lead": "1s""#
    ))
    .warnings
    .is_empty());
}

#[test]
fn expected_runtime_on_a_service_is_a_warning() {
    let w = warn1(
        &one_task(r#""autorestart": "always", "expected-runtime": "1h""#),
        "t",
        "expected-runtime",
    );
    assert_has(&w, "a service (`autorestart: always`)");
    for fields in [
        r#""autorestart": "unexpected", "expected-runtime": "1h""#,
        r#""expected-runtime": "1h""#,
        r#""timer": "1h", "expected-runtime": "10m""#,
    ] {
        assert!(ok(&one_task(fields)).warnings.is_empty(), "{fields}");
    }
}

// ---------------------------------------------------------------- the README

#[test]
fn readme_resources_examples_load_and_every_field_has_a_row() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n## Resources\n")
        .expect("a Resources section");
    let section = &readme[start..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    let blocks: Vec<&str> = section
        .split("```json\n")
        .skip(1)
        .map(|b| &b[..b.find("```").expect("closed block")])
        .collect();
    assert_eq!(blocks.len(), 2, "{section}");
    for b in &blocks {
        let s = ok(b);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
    let first = ok(blocks[0]);
    assert_eq!(
        first.tasks[0].needs.request,
        Some(Request {
            cpus: 8,
            gpus: 1,
            mem: Some(32 * GIB)
        })
    );
    assert_eq!(first.tasks[2].needs.request, None, "watch asks for nothing");
    let second = ok(blocks[1]);
    assert!(second.globals.requeue_on_end);
    let train: Vec<_> = second
        .tasks
        .iter()
        .filter(|t| t.program == "train")
        .collect();
    assert_eq!(train.len(), 4);
    // The recipe's arithmetic: 4 x 7 CPUs for train leaves 4 of --cpus-per-task=32.
    assert_eq!(train[0].needs.request.unwrap().cpus * 4 + 4, 32);
    assert!(section.contains("--cpus-per-task=32") && section.contains("--requeue"));
    for f in [
        "cpus",
        "gpus",
        "mem",
        "bind",
        "mem-exceeded",
        "expected-runtime",
        "checkpoint-signal",
        "checkpoint-lead",
        "resources",
        "requeue_on_end",
    ] {
        assert!(
            readme.contains(&format!("\n| `{f}` |")),
            "no reference row for `{f}`"
        );
    }
}
