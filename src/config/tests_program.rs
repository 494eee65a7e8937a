//! The program model's fields (numprocs, autostart, autorestart, startretries, starttime,
//! user, priority, umask, depends-on) and their combination with on-fail/times.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::spec::{OnFail, TaskSpec, UNLIMITED_ATTEMPTS};

const CFG: &str = "/cfg/scripts_config.json";

fn load(text: &str) -> Result<Spec, ConfigErrors> {
    parse_str(text, Path::new(CFG), Format::Json)
}

fn tasks(json: &str) -> Vec<TaskSpec> {
    match load(json) {
        Ok(s) => s.tasks,
        Err(e) => panic!("expected the config to load, got:\n{e}\n--- config ---\n{json}"),
    }
}

fn task(fields: &str) -> TaskSpec {
    tasks(&format!(
        r#"{{"scripts": [{{"name": "t", "command": "x", {fields}}}]}}"#
    ))
    .remove(0)
}

/// Every error of `json`, rendered, with the count.
fn errors(json: &str) -> (usize, String) {
    match load(json) {
        Ok(s) => panic!("expected errors, loaded {s:#?}"),
        Err(e) => (e.0.len(), e.to_string()),
    }
}

/// The single warning of a one-task config that loads, rendered.
fn task_warning(fields: &str) -> String {
    let json = format!(r#"{{"scripts": [{{"name": "t", "command": "x", {fields}}}]}}"#);
    let w = match load(&json) {
        Ok(s) => s.warnings,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    };
    let shown: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 1, "{}", shown.join("\n"));
    assert_eq!(
        (w[0].0.task.as_deref(), w[0].0.line.is_some()),
        (Some("t"), true)
    );
    let text = w[0].to_string();
    assert!(text.starts_with("warning: "), "{text}");
    assert!(text.contains("scripts_config.json:1:"), "{text}");
    text
}

fn task_errors(fields: &str) -> String {
    let (n, text) = errors(&format!(
        r#"{{"scripts": [{{"name": "t", "command": "x", {fields}}}]}}"#
    ));
    assert_eq!(n, 1, "{text}");
    assert!(text.contains("scripts_config.json:1:"), "{text}");
    text
}

#[test]
fn numprocs_expands_into_named_instances() {
    let t = tasks(
        r#"{"scripts": [{"name": "w", "command": "x", "numprocs": 3}, {"name": "solo", "command": "y"}]}"#,
    );
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["w:0", "w:1", "w:2", "solo"]);
    for (i, inst) in t[..3].iter().enumerate() {
        assert_eq!(inst.program, "w");
        assert_eq!(inst.instance, Some(i as u32));
        assert_eq!(
            inst.env.get("BANSURI_INSTANCE").map(String::as_str),
            Some(i.to_string().as_str())
        );
    }
    assert_eq!(t[3].program, "solo");
    assert_eq!(t[3].instance, None);
    assert!(!t[3].env.contains_key("BANSURI_INSTANCE"));
    // numprocs 1 still names the instance, so growing it later only adds instances.
    let one = tasks(r#"{"scripts": [{"name": "w", "command": "x", "numprocs": 1}]}"#);
    assert_eq!(one[0].name, "w:0");
    for bad in ["0", "-1", "\"3\"", "10001"] {
        assert!(task_errors(&format!(r#""numprocs": {bad}"#)).contains("`numprocs`"));
    }
}

#[test]
fn autorestart_maps_onto_one_policy() {
    let t = task(r#""autorestart": "unexpected""#);
    assert_eq!(
        (t.on_fail, t.times, t.restart_on_success),
        (OnFail::Restart, UNLIMITED_ATTEMPTS, false)
    );
    let t = task(r#""autorestart": "always""#);
    assert_eq!(
        (t.on_fail, t.times, t.restart_on_success),
        (OnFail::Restart, UNLIMITED_ATTEMPTS, true)
    );
    let t = task(r#""autorestart": "never""#);
    assert_eq!(
        (t.on_fail, t.times, t.restart_on_success),
        (OnFail::Stop, 1, false)
    );
    let t = task(r#""autorestart": "unexpected", "times": 4"#);
    assert_eq!(t.times, 4, "times caps the attempts");
    let t = task(r#""autorestart": "unexpected", "on-fail": "restart""#);
    assert_eq!(t.on_fail, OnFail::Restart, "agreeing spellings are fine");
    let t = task(r#""autorestart": true"#);
    assert_eq!(t.on_fail, OnFail::Restart, "supervisord's boolean");

    let e = task_errors(r#""autorestart": "never", "on-fail": "restart""#);
    assert!(
        e.contains("`on-fail` contradicts `autorestart` in task `t`"),
        "{e}"
    );
    let e = task_errors(r#""autorestart": "always", "on-fail": "stop""#);
    assert!(
        e.contains("`on-fail: stop` never retries, `autorestart: always` restarts"),
        "{e}"
    );
    let e = task_errors(r#""autorestart": "always", "timer": "5s""#);
    assert!(
        e.contains("`autorestart: always` contradicts the schedule"),
        "{e}"
    );
    // Settings without effect are warnings: the file loads, the warning says why and how.
    let e = task_warning(r#""times": 3"#);
    assert!(e.contains("`times: 3` has no effect in task `t`: without `on-fail: restart` a failed run is not retried"), "{e}");
    assert!(
        e.contains("help: add \"on-fail\": \"restart\", or remove `times`"),
        "{e}"
    );
    assert_eq!(
        task(r#""times": 3"#).times,
        1,
        "one attempt, as without `times`"
    );
    assert!(e.contains("`times`"), "names the field: {e}");

    // `startretries` counts failed starts (exits before `starttime`) in a row, retried
    // whatever the restart policy (supervisord's rule). Alone it implies supervisord's 1 s
    // start-up window; with an explicit `starttime: 0` no start can fail: a warning
    // (supervisord accepts it).
    let e = task_warning(r#""autorestart": "always", "startretries": 2, "starttime": 0"#);
    assert!(e.contains("help: give `starttime`"), "{e}");
    assert!(
        e.contains(
            "`startretries: 2` has no effect in task `t`: with `starttime: 0` no start can fail"
        ),
        "{e}"
    );
    assert!(e.contains("`startretries`"), "names the field: {e}");
    // The seed's first example: `startretries` without `starttime`.
    let t = task(r#""autorestart": "unexpected", "startretries": 3"#);
    assert_eq!(t.start_time, Duration::from_secs(1));
    assert_eq!(task(r#""starttime": 2"#).start_time, Duration::from_secs(2));
    assert_eq!(task(r#""autorestart": "never""#).start_time, Duration::ZERO);
    for ok in [
        // The seed's second example: failed starts retried, a started process not restarted.
        r#""autorestart": "never", "startretries": 3, "starttime": 3"#,
        r#""startretries": 3, "starttime": 3"#,
        r#""autorestart": "unexpected", "startretries": 5, "starttime": 2"#,
        r#""autorestart": "always", "startretries": 2, "starttime": "500ms""#,
        r#""on-fail": "restart", "times": 2, "startretries": 5, "starttime": 2"#,
        r#""timer": "10s", "startretries": 3, "starttime": 2"#,
        r#""starttime": 2"#,
    ] {
        task(ok);
    }

    let e = task_errors(r#""autorestart": "sometimes""#);
    assert!(
        e.contains("expected one of `never`, `unexpected`, `always`"),
        "{e}"
    );
}

#[test]
fn startretries_starttime_autostart_priority() {
    let t = task(
        r#""autorestart": "unexpected", "startretries": 5, "starttime": 2, "autostart": false, "priority": 10"#,
    );
    assert_eq!(t.start_retries, 5);
    assert_eq!(t.start_time, Duration::from_secs(2));
    assert!(!t.autostart);
    assert_eq!(t.priority, 10);
    assert_eq!(task(r#""priority": -20"#).priority, -20);
    assert_eq!(
        task(r#""starttime": "1500ms""#).start_time,
        Duration::from_millis(1500)
    );
    // `startretries: 0`: no retry, FATAL at the first failed start (supervisord allows it).
    assert_eq!(task(r#""startretries": 0"#).start_retries, 0);
    assert!(task_errors(r#""startretries": -1"#).contains("must be 0 or more"));
    assert!(task_errors(r#""priority": 20"#).contains("out of range"));
    assert!(task_errors(r#""priority": "high""#).contains("`priority`"));
    assert!(task_errors(r#""starttime": -1"#).contains("`starttime`"));
    assert!(task_errors(r#""autostart": "yes""#).contains("`autostart`"));
}

#[test]
fn umask_is_octal() {
    assert_eq!(task(r#""umask": "022""#).umask, Some(0o022));
    assert_eq!(task(r#""umask": "0o77""#).umask, Some(0o077));
    assert_eq!(
        task(r#""umask": 77"#).umask,
        Some(0o077),
        "digits of a number read as octal"
    );
    assert_eq!(task(r#""umask": "0""#).umask, Some(0));
    for bad in [r#""089""#, r#""1777""#, r#""""#, "true", r#""rwx""#] {
        let e = task_errors(&format!(r#""umask": {bad}"#));
        assert!(e.contains("`umask`"), "{e}");
    }
}

#[test]
fn user_is_resolved_or_rejected() {
    // The tests run as root (CI does); as another user only that user itself is allowed.
    if nix::unistd::geteuid().is_root() {
        let u = task(r#""user": "nobody""#).user.expect("resolved");
        assert_eq!(u.name, "nobody");
        assert_eq!(u.uid, 65534);
        assert!(u.groups.contains(&u.gid));
    } else {
        let e = task_errors(r#""user": "nobody""#);
        assert!(e.contains("needs root"), "{e}");
    }
    // An unknown user may be created later: a warning, looked up again at each start.
    let s = load(r#"{"scripts": [{"name": "t", "command": "x", "user": "no-such-user-xyz"}]}"#)
        .unwrap();
    assert_eq!(s.warnings.len(), 1);
    let w = s.warnings[0].to_string();
    assert!(
        w.starts_with("warning: `user` in task `t`: unknown user `no-such-user-xyz`"),
        "{w}"
    );
    assert!(w.contains("scripts_config.json:1:"), "{w}");
    assert_eq!(s.tasks[0].user, None);
    assert_eq!(s.tasks[0].pending.user.as_deref(), Some("no-such-user-xyz"));
}

#[test]
fn depends_on_names_tasks_and_programs() {
    let t = tasks(
        r#"{"scripts": [
            {"name": "a", "command": "x"},
            {"name": "w", "command": "x", "numprocs": 2, "depends-on": "a"},
            {"name": "b", "command": "x", "depends_on": ["a", "w"]}
        ]}"#,
    );
    assert_eq!(t[1].depends_on, ["a"]);
    assert_eq!(
        t[2].depends_on,
        ["a"],
        "instances share their program's dependencies"
    );
    assert_eq!(t[3].depends_on, ["a", "w"]);

    let (n, e) = errors(
        r#"{"scripts": [{"name": "a", "command": "x"}, {"name": "b", "command": "x", "depends-on": ["aa", "zzz"]}]}"#,
    );
    assert_eq!(n, 2, "{e}");
    assert!(
        e.contains("unknown task `aa` in `depends-on` in task `b`"),
        "{e}"
    );
    assert!(e.contains("did you mean `a`?"), "{e}");
    assert!(e.contains("unknown task `zzz`"), "{e}");
}

#[test]
fn dependency_cycles_are_printed() {
    let (n, e) = errors(
        r#"{"scripts": [
    {"name": "a", "command": "x", "depends-on": "c"},
    {"name": "b", "command": "x", "depends-on": "a"},
    {"name": "c", "command": "x", "depends-on": ["b"]},
    {"name": "d", "command": "x", "depends-on": "d"}
]}"#,
    );
    assert_eq!(n, 2, "{e}");
    assert!(e.contains("dependency cycle: a -> c -> b -> a"), "{e}");
    assert!(e.contains("dependency cycle: d -> d"), "{e}");
    assert!(
        e.contains("scripts_config.json:2:"),
        "the cycle points at a's depends-on: {e}"
    );
}

#[test]
fn rotation_sizes_and_backups() {
    let t = task(r#""stdout": "o.log", "log-max-bytes": "1MB", "log-backups": 3"#);
    assert_eq!((t.log_max_bytes, t.log_backups), (1 << 20, 3));
    assert_eq!(task(r#""log_max_bytes": 5000"#).log_max_bytes, 5000);
    assert_eq!(
        task(r#""log-max-bytes": "512 KiB""#).log_max_bytes,
        512 << 10
    );
    assert_eq!(task(r#""enabled": true"#).log_backups, 5);
    for bad in [r#""5XB""#, "-1", "1.5", "true", r#""MB""#] {
        let e = task_errors(&format!(r#""log-max-bytes": {bad}"#));
        assert!(e.contains("`log-max-bytes`"), "{e}");
    }
    assert!(task_errors(r#""log-backups": 1001"#).contains("must be 0 to 1000"));
    let s = load(r#"{"log_max_bytes": "10MB", "log-backups": 2, "scripts": []}"#).unwrap();
    assert_eq!(
        (s.globals.log_max_bytes, s.globals.log_backups),
        (10 << 20, 2)
    );
}

#[test]
fn taskmaster_readme_shapes_validate_unchanged() {
    // The two program blocks of the Taskmaster README, in their field names and values:
    // `startretries` without `starttime`, and `autorestart: never` with both.
    let text = "programs:
  my_program:
    cmd: \"/path/to/your/script.sh\"
    numprocs: 1
    autostart: true
    autorestart: \"unexpected\"
    exitcodes: [0]
    startretries: 3
    stopsignal: \"TERM\"
    stdout: \"/path/to/stdout.log\"
    stderr: \"/path/to/stderr.log\"
    env:
      MY_VAR: \"my_value\"
  worker:
    cmd: \"/bin/bash /opt/tm/scripts/worker.sh\"
    numprocs: 3
    workingdir: /tmp
    autostart: true
    autorestart: never
    exitcodes: [0, 2, 3, 4, 1]
    startretries: 3
    starttime: 3
    stopsignal: INT
    stoptime: 5
";
    let s = parse_str(text, Path::new("/cfg/config.yaml"), Format::Yaml)
        .unwrap_or_else(|e| panic!("the Taskmaster README's config is refused:\n{e}"));
    let p = &s.tasks[0];
    assert_eq!((p.start_retries, p.start_time), (3, Duration::from_secs(1)));
    let w = &s.tasks[1];
    assert_eq!(w.name, "worker:0");
    assert_eq!((w.start_retries, w.start_time), (3, Duration::from_secs(3)));
    assert_eq!(w.on_fail, crate::spec::OnFail::Stop);
}

#[test]
fn yaml_taskmaster_programs_map() {
    let text = "programs:\n  worker:\n    cmd: \"./w.sh\"\n    numprocs: 2\n    exitcodes: [0, 2]\n    stopsignal: INT\n    umask: 022\n    autorestart: unexpected\n    env:\n      A: 1\n";
    let s = parse_str(text, Path::new("/cfg/config.yaml"), Format::Yaml).unwrap();
    assert_eq!(s.tasks.len(), 2);
    let w = &s.tasks[1];
    assert_eq!(w.name, "worker:1");
    assert_eq!(w.success_codes, [0, 2]);
    assert_eq!(w.stop_signal, crate::spec::StopSignal::Int);
    assert_eq!(w.umask, Some(0o022));
    assert_eq!(w.env.get("A").map(String::as_str), Some("1"));
    // An error in YAML points at its line.
    let bad = "programs:\n  worker:\n    cmd: x\n    stopsignl: INT\n";
    let e = parse_str(bad, Path::new("/cfg/config.yaml"), Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.yaml:4:5"), "{e}");
    assert!(e.contains("did you mean `stopsignal`?"), "{e}");
    // The Bansuri schema in YAML works too.
    let same = parse_str(
        "scripts:\n  - name: a\n    command: x\n    timer: 5s\n",
        Path::new("/cfg/c.yml"),
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(same.tasks[0].name, "a");
}

#[test]
fn seed_003_data_processor_loads_with_a_warning() {
    // Seed 003's `raw_config`, placed in a `scripts` list as printed.
    let s = load(
        r#"{"scripts": [{
    "name": "data-processor",
    "command": "python process_data.py",
    "times": 5,
    "timeout": "10m"
}]}"#,
    )
    .unwrap_or_else(|e| panic!("seed 003's example is refused:\n{e}"));
    assert_eq!(s.tasks[0].times, 1);
    assert_eq!(s.warnings.len(), 1);
    let w = s.warnings[0].to_string();
    assert!(
        w.starts_with("warning: `times: 5` has no effect in task `data-processor`"),
        "{w}"
    );
    assert!(w.contains("scripts_config.json:4:14"), "{w}");
}
