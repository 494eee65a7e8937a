//! Task arrays and task files (issue 19), with the real binary and real processes: each
//! array form, placeholders reaching the command as literal text, the element's variables,
//! a matrix's product and order, `array.file`, task files by `--tasks` and `tasks-file`,
//! validate's errors naming the field, TOML and YAML.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, BIN};

const LIMIT: Duration = Duration::from_secs(60);

/// A finished `bansuri` command: exit code, stdout, stderr, and the job log.
struct Done {
    code: i32,
    stdout: String,
    stderr: String,
    log: String,
}

impl Done {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- job log ---\n{}",
            self.code, self.stdout, self.stderr, self.log
        )
    }
}

/// Run `bansuri ARGS` in `dir` (no `$BANSURI_CONFIG`), with the job log in `dir/log.txt`
/// for `run`, and wait for it to end (at most [`LIMIT`]; killed after).
fn bansuri(dir: &Path, args: &[&str]) -> Done {
    let log = dir.join("log.txt");
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if args.first() == Some(&"run") {
        cmd.arg("--log-file").arg(&log);
    }
    let child = cmd
        .current_dir(dir)
        .env_remove("BANSURI_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bansuri");
    // Reap it whatever happens (a stuck run is killed, not left behind).
    let pid = child.id();
    let reaper = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + LIMIT;
    while !reaper.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !reaper.is_finished() {
        // SAFETY: signalling the pid of our own child, not yet reaped (the thread waits).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let out = reaper.join().expect("reaper").expect("wait bansuri");
    Done {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        log: fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// Every file of `dir/sub` as (name, content), sorted by name.
fn files(dir: &Path, sub: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir.join(sub))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn each_array_form_runs_once_per_element() {
    let sb = Sandbox::new();
    fs::create_dir(sb.file("out")).unwrap();
    sb.write("inputs.txt", "alpha\n\nbeta gamma\n");
    sb.write(
        "c.json",
        r#"{"scripts": [
            {"name": "r", "command": "printf %s {item} > out/r-$BANSURI_ARRAY_INDEX", "array": {"range": "1-3,10"}},
            {"name": "s", "command": "printf %s {item} > out/s-{index}", "array": {"range": "0-20:10"}},
            {"name": "v", "command": "printf %s {item} > out/v-{index}", "array": {"values": ["x", 2.5]}},
            {"name": "m", "command": "printf '%s/%s' {a} {b} > out/m-{index}", "array": {"matrix": {"a": [1, 2], "b": ["p", "q"]}}},
            {"name": "f", "command": "printf %s {item} > out/f-{index}", "array": {"file": "inputs.txt"}},
            {"name": "o", "command": "printf 'out %s' {item}", "stdout": "out/o-{index}", "array": {"values": ["p%d"]}}
        ]}"#,
    );
    let d = bansuri(
        sb.path(),
        &["run", "--config", "c.json", "--exit-when-done"],
    );
    assert_eq!(d.code, 0, "{}", d.show());
    assert_eq!(
        files(sb.path(), "out"),
        pairs(&[
            ("f-0", "alpha"),
            ("f-1", "beta gamma"),
            ("m-0", "1/p"),
            ("m-1", "1/q"),
            ("m-2", "2/p"),
            ("m-3", "2/q"),
            ("o-0", "out p%d"),
            ("r-1", "1"),
            ("r-10", "10"),
            ("r-2", "2"),
            ("r-3", "3"),
            ("s-0", "0"),
            ("s-10", "10"),
            ("s-20", "20"),
            ("v-0", "x"),
            ("v-1", "2.5"),
        ]),
        "{}",
        d.show()
    );
    // Each element is a task of its own in the log, named task[id].
    for name in ["r[10]", "s[20]", "v[1]", "m[3]", "f[1]"] {
        assert!(
            d.log
                .contains(&format!("[{name}] Process finished with code 0")),
            "{name}: {}",
            d.show()
        );
    }
}

/// Values with spaces, quotes, `$(...)`, backquotes and `;` reach the command as their
/// characters, wherever the placeholder stands; nothing they spell is run.
#[test]
fn placeholders_reach_the_command_as_literal_text() {
    let sb = Sandbox::new();
    fs::create_dir(sb.file("out")).unwrap();
    let values = [
        "two words",
        "it's",
        "say \"hi\"",
        "$(touch pwned)",
        "`touch pwned`",
        "a; touch pwned",
        "back\\slash $HOME *",
    ];
    let json_values: Vec<String> = values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
    let config = format!(
        r#"{{"scripts": [
            {{"name": "bare", "command": "printf '%s' {{item}} > out/bare-{{index}}", "array": {{"values": [{v}]}}}},
            {{"name": "dq", "command": "printf '%s' \"<{{item}}>\" > out/dq-{{index}}", "array": {{"values": [{v}]}}}},
            {{"name": "sq", "command": "printf '%s' '<{{item}}>' > out/sq-{{index}}", "array": {{"values": [{v}]}}}},
            {{"name": "sub", "command": "x=$(printf '%s' {{item}}); printf '%s' \"$x\" > out/sub-{{index}}", "array": {{"values": [{v}]}}}},
            {{"name": "argv", "command": ["/bin/sh", "-c", "printf '%s' \"$1\" > out/argv-$2", "sh", "[{{item}}]", "{{index}}"], "array": {{"values": [{v}]}}}}
        ]}}"#,
        v = json_values.join(", ")
    );
    sb.write("c.json", &config);
    let d = bansuri(
        sb.path(),
        &["run", "--config", "c.json", "--exit-when-done"],
    );
    assert_eq!(d.code, 0, "{}", d.show());
    for (i, v) in values.iter().enumerate() {
        for (task, want) in [
            ("bare", v.to_string()),
            ("dq", format!("<{v}>")),
            ("sq", format!("<{v}>")),
            ("sub", v.to_string()),
            ("argv", format!("[{v}]")),
        ] {
            assert_eq!(
                sb.read(&format!("out/{task}-{i}")),
                want,
                "task {task}, value {v:?}\n{}",
                d.show()
            );
        }
    }
    assert!(
        !sb.file("pwned").exists(),
        "a value ran a command\n{}",
        d.show()
    );
}

#[test]
fn elements_get_their_variables_and_env_values_filled() {
    let sb = Sandbox::new();
    fs::create_dir(sb.file("out")).unwrap();
    sb.write(
        "c.json",
        r#"{"scripts": [
            {"name": "m", "command": "printf '%s|%s|%s|%s|%s' \"$BANSURI_ITEM\" \"$BANSURI_ARRAY_INDEX\" \"$lr\" \"$seed\" \"$OUT\" > out/m-{index}",
             "array": {"matrix": {"lr": [0.1, 0.01], "seed": [7]}}, "env": {"OUT": "runs/lr{lr}-s{seed}"}},
            {"name": "r", "command": "printf '%s|%s|%s' \"$BANSURI_ITEM\" \"$BANSURI_ARRAY_INDEX\" \"$IN\" > out/r-{index}",
             "array": {"range": "5-6"}, "env": {"IN": "data/{item}.csv"}}
        ]}"#,
    );
    let d = bansuri(
        sb.path(),
        &["run", "--config", "c.json", "--exit-when-done"],
    );
    assert_eq!(d.code, 0, "{}", d.show());
    assert_eq!(
        files(sb.path(), "out"),
        pairs(&[
            ("m-0", "0.1 7|0|0.1|7|runs/lr0.1-s7"),
            ("m-1", "0.01 7|1|0.01|7|runs/lr0.01-s7"),
            ("r-5", "5|5|data/5.csv"),
            ("r-6", "6|6|data/6.csv"),
        ]),
        "{}",
        d.show()
    );
}

/// A matrix is every combination, the last key varying fastest; one at a time
/// (`max_parallel: 1`) they run in that order.
#[test]
fn a_matrix_runs_the_cartesian_product_in_order() {
    let sb = Sandbox::new();
    sb.write(
        "c.json",
        r#"{"max_parallel": 1, "scripts": [
            {"name": "grid", "command": "echo {index}:{lr}:{seed} >> order.txt",
             "array": {"matrix": {"lr": [0.1, 0.01], "seed": [1, 2, 3]}}}
        ]}"#,
    );
    let d = bansuri(
        sb.path(),
        &["run", "--config", "c.json", "--exit-when-done"],
    );
    assert_eq!(d.code, 0, "{}", d.show());
    assert_eq!(
        sb.read("order.txt"),
        "0:0.1:1\n1:0.1:2\n2:0.1:3\n3:0.01:1\n4:0.01:2\n5:0.01:3\n",
        "{}",
        d.show()
    );
    let v = bansuri(sb.path(), &["validate", "--config", "c.json"]);
    assert_eq!(v.code, 0, "{}", v.show());
    assert!(
        v.stdout.contains("valid, 1 task (6 array elements)") && v.stdout.contains("grid[0..5]"),
        "{}",
        v.show()
    );
}

#[test]
fn a_task_file_by_the_command_line_runs_alone_in_the_current_directory() {
    let sb = Sandbox::new();
    fs::create_dir(sb.file("work")).unwrap();
    sb.write(
        "cmds.txt",
        "# a disBatch-style task file\npwd > line0\n\n   echo \"two $((1 + 1))\" > line1\n# comment\nexit 4\n",
    );
    let d = bansuri(
        &sb.file("work"),
        &["run", "--tasks", "../cmds.txt", "--exit-when-done"],
    );
    // The last line fails: exit 3, and the others ran.
    assert_eq!(d.code, 3, "{}", d.show());
    let work = fs::canonicalize(sb.file("work")).unwrap();
    assert_eq!(
        sb.read("work/line0"),
        format!("{}\n", work.display()),
        "{}",
        d.show()
    );
    assert_eq!(sb.read("work/line1"), "two 2\n", "{}", d.show());
    assert!(
        d.log
            .contains("[tasks[2]] WARNING: Process finished with code 4"),
        "{}",
        d.show()
    );
    assert!(
        d.log
            .contains("[tasks[1]] Executing shell command: echo \"two $((1 + 1))\" > line1"),
        "{}",
        d.show()
    );
    // Its state lives beside the task file.
    assert!(
        sb.file(".bansuri/cmds.txt/state.json").exists(),
        "{}",
        d.show()
    );
}

#[test]
fn a_task_file_in_the_config_runs_beside_its_tasks() {
    let sb = Sandbox::new();
    sb.write("cmds.txt", "echo a > a.out\necho b > b.out\n");
    sb.write("other.txt", "echo other > other.out\n");
    sb.write(
        "c.json",
        r#"{"tasks-file": {"file": "cmds.txt", "parallel": 1}, "scripts": [
            {"name": "report", "command": "cat a.out b.out > report.out", "depends-on": "tasks"}
        ]}"#,
    );
    let d = bansuri(
        sb.path(),
        &["run", "--config", "c.json", "--exit-when-done"],
    );
    assert_eq!(d.code, 0, "{}", d.show());
    assert_eq!(sb.read("report.out"), "a\nb\n", "{}", d.show());
    // `--tasks` replaces the config's task file.
    fs::remove_file(sb.file("log.txt")).unwrap();
    let d = bansuri(
        sb.path(),
        &[
            "run",
            "--config",
            "c.json",
            "--tasks",
            "other.txt",
            "--once",
        ],
    );
    assert_eq!(sb.read("other.out"), "other\n", "{}", d.show());
    assert!(
        d.log
            .contains("[tasks[0]] Executing shell command: echo other"),
        "{}",
        d.show()
    );
    assert!(!d.log.contains("tasks[1]"), "{}", d.show());
}

/// `bansuri validate` on a broken config: exit 2, each error naming the file, the task
/// and the field.
#[test]
fn validate_names_the_field_of_each_array_error() {
    let sb = Sandbox::new();
    sb.write(
        "bad.json",
        r#"{"scripts": [
  {"name": "range", "command": "x", "array": {"range": "10-1"}},
  {"name": "two", "command": "x", "array": {"range": "1-3", "values": ["a"]}},
  {"name": "typo", "command": "train --lr {lrr}", "array": {"matrix": {"lr": [0.1]}}},
  {"name": "timed", "command": "x", "array": {"range": "1-2"}, "timer": "1m"}
]}"#,
    );
    let d = bansuri(sb.path(), &["validate", "--config", "bad.json"]);
    assert_eq!(d.code, 2, "{}", d.show());
    for needle in [
        "error: invalid `array.range` in task `range`: the range `10-1` ends before it starts\n --> bad.json:2:",
        "error: `array` gives both `range` and `values` in task `two`: an array has one form\n --> bad.json:3:",
        "error: unknown placeholder `{lrr}` in the command in task `typo`: the array's placeholders are `{item}`, `{index}`, `{lr}`\n --> bad.json:4:",
        "did you mean `{lr}`?",
        "error: `timer` cannot be given with `array` in task `timed`",
        "4 errors",
    ] {
        assert!(d.stderr.contains(needle), "missing {needle:?}\n{}", d.show());
    }
    // `parallel` without `array` has no effect: a warning, the file is valid.
    sb.write(
        "warn.json",
        r#"{"scripts": [{"name": "solo", "command": "x", "parallel": 4}]}"#,
    );
    let d = bansuri(sb.path(), &["validate", "--config", "warn.json"]);
    assert_eq!(d.code, 0, "{}", d.show());
    assert!(
        d.stdout
            .contains("warning: `parallel` in task `solo`: has no effect")
            && d.stdout.contains("warn.json:1:"),
        "{}",
        d.show()
    );
    // A bad task file on the command line names `--tasks` and the file.
    sb.write("empty.txt", "# nothing to do\n\n");
    let d = bansuri(sb.path(), &["validate", "--tasks", "empty.txt"]);
    assert_eq!(d.code, 2, "{}", d.show());
    assert!(
        d.stderr.contains("invalid `--tasks`") && d.stderr.contains("empty.txt"),
        "{}",
        d.show()
    );
}

#[test]
fn toml_and_yaml_arrays_run() {
    let sb = Sandbox::new();
    fs::create_dir(sb.file("out")).unwrap();
    sb.write(
        "c.toml",
        "[[scripts]]\nname = \"t\"\ncommand = \"printf %s {lr}-{seed} > out/toml-{index}\"\nparallel = 2\n\n[scripts.array.matrix]\nlr = [0.5]\nseed = [1, 2]\n",
    );
    sb.write(
        "c.yaml",
        "scripts:\n  - name: y\n    command: printf %s {item} > out/yaml-{index}\n    array:\n      values: [a b, 3]\n",
    );
    for cfg in ["c.toml", "c.yaml"] {
        let d = bansuri(sb.path(), &["run", "--config", cfg, "--exit-when-done"]);
        assert_eq!(d.code, 0, "{cfg}: {}", d.show());
    }
    assert_eq!(
        files(sb.path(), "out"),
        pairs(&[
            ("toml-0", "0.5-1"),
            ("toml-1", "0.5-2"),
            ("yaml-0", "a b"),
            ("yaml-1", "3")
        ])
    );
}

/// Issue 19's scale: `validate` of a 100,000-element array (README: about 0.2 s on the
/// 2-core test machine; the bound here leaves room for a loaded machine).
#[test]
fn validate_of_a_hundred_thousand_elements_is_quick() {
    let sb = Sandbox::new();
    sb.write(
        "big.json",
        r#"{"scripts": [{"name": "sweep", "command": "python3 train.py --in data/{item}.csv", "array": {"range": "1-100000"}, "parallel": 2, "env": {"OUT": "out/{item}"}}]}"#,
    );
    let start = Instant::now();
    let d = bansuri(sb.path(), &["validate", "--config", "big.json"]);
    let took = start.elapsed();
    assert_eq!(d.code, 0, "{}", d.show());
    assert!(
        d.stdout.contains("valid, 1 task (100000 array elements)")
            && d.stdout.contains("sweep[1..100000]")
            && d.stdout.lines().count() == 2,
        "{}",
        d.show()
    );
    assert!(took < Duration::from_secs(5), "validate took {took:?}");
}
