//! Issue 19's fields: `array`, `parallel`, `tasks-file`, and the expansion of an array task
//! into its elements.

use super::*;
use crate::spec::ArrayElement;

/// The tasks of a one-task config `t` with `fields`.
fn elements(fields: &str) -> Vec<TaskSpec> {
    ok(&one_task(fields)).expanded_tasks()
}

fn names(tasks: &[TaskSpec]) -> Vec<&str> {
    tasks.iter().map(|t| t.name.as_str()).collect()
}

fn shell(t: &TaskSpec) -> &str {
    match &t.command {
        CommandSpec::Shell(s) => s,
        other => panic!("expected a shell command, got {other:?}"),
    }
}

/// The single error of a one-task config with command `command` and `fields`.
fn array_err(command: &str, fields: &str, field: &str, needle: &str) -> ConfigError {
    let text = format!(r#"{{"scripts": [{{"name": "t", "command": {command}, {fields}}}]}}"#);
    let e = err1(&text);
    assert_eq!(e.task.as_deref(), Some("t"), "{e}");
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    assert_eq!(e.file, Path::new(CFG), "{e}");
    assert!(e.line.is_some() && e.column.is_some(), "{e}");
    assert_has(&e, needle);
    e
}

#[test]
fn a_range_becomes_one_task_per_number() {
    let t = elements(r#""array": {"range": "0-10:5, 20"}, "parallel": 2"#);
    assert_eq!(names(&t), ["t[0]", "t[5]", "t[10]", "t[20]"]);
    let e = t[1].element.as_ref().expect("an element");
    assert_eq!(
        *e,
        ArrayElement {
            array: "t".into(),
            id: 5,
            item: "5".into(),
            named: vec![],
            parallel: Some(2),
        }
    );
    assert_eq!(t[1].program, "t");
    assert_eq!(t[1].instance, None);
    assert_eq!(t[1].env["BANSURI_ITEM"], "5");
    assert_eq!(t[1].env["BANSURI_ARRAY_INDEX"], "5");
    // Everything else is the task's.
    let plain = task("");
    let mut copy = t[1].clone();
    copy.name = plain.name.clone();
    copy.program = plain.program.clone();
    copy.env = plain.env.clone();
    copy.element = None;
    assert_eq!(copy, plain);
}

#[test]
fn values_are_strings_or_numbers_as_written() {
    let t = elements(r#""array": {"values": ["a b", 2.50, -1]}"#);
    assert_eq!(names(&t), ["t[0]", "t[1]", "t[2]"]);
    let items: Vec<&str> = t
        .iter()
        .map(|t| t.element.as_ref().unwrap().item.as_str())
        .collect();
    assert_eq!(items, ["a b", "2.50", "-1"]);
    assert_eq!(t[2].env["BANSURI_ARRAY_INDEX"], "2");
}

#[test]
fn a_matrix_is_the_product_last_key_fastest_with_named_variables() {
    let text = r#"{"scripts": [{"name": "t", "command": "train --lr {lr} --seed {seed} # {item} {index}", "array": {"matrix": {"lr": [0.1, 0.01], "seed": [1, 2, 3]}}}]}"#;
    let t = ok(text).expanded_tasks();
    let got: Vec<&str> = t.iter().map(shell).collect();
    assert_eq!(
        got,
        [
            "train --lr '0.1' --seed '1' # '0.1 1' '0'",
            "train --lr '0.1' --seed '2' # '0.1 2' '1'",
            "train --lr '0.1' --seed '3' # '0.1 3' '2'",
            "train --lr '0.01' --seed '1' # '0.01 1' '3'",
            "train --lr '0.01' --seed '2' # '0.01 2' '4'",
            "train --lr '0.01' --seed '3' # '0.01 3' '5'",
        ]
    );
    assert_eq!(t[4].env["lr"], "0.01");
    assert_eq!(t[4].env["seed"], "2");
    assert_eq!(t[4].env["BANSURI_ITEM"], "0.01 2");
    assert_eq!(
        t[4].element.as_ref().unwrap().named,
        [("lr".into(), "0.01".into()), ("seed".into(), "2".into())]
    );
}

#[test]
fn placeholders_are_quoted_in_shell_commands_and_literal_elsewhere() {
    let text = r#"{"scripts": [
        {"name": "s", "command": "run {item} \"{item}\" '{item}' ${HOME} \\{item} {index}", "array": {"values": ["it's $(x)"]}, "env": {"IN": "in/{item}.csv", "H": "${item}"}},
        {"name": "a", "command": ["run", "--in={item}", "{index}", "${item}"], "array": {"values": ["a b"]}},
        {"name": "plain", "command": "echo {item} {whatever}", "env": {"X": "{item}"}}
    ]}"#;
    let t = ok(text).expanded_tasks();
    assert_eq!(names(&t), ["s[0]", "a[0]", "plain"]);
    assert_eq!(
        shell(&t[0]),
        r#"run 'it'\''s $(x)' "it's \$(x)" '''it'\''s $(x)''' ${HOME} \{item} '0'"#
    );
    assert_eq!(t[0].env["IN"], "in/it's $(x).csv");
    assert_eq!(t[0].env["H"], "${item}");
    assert_eq!(
        t[1].command,
        CommandSpec::Argv(vec![
            "run".into(),
            "--in=a b".into(),
            "0".into(),
            "${item}".into()
        ])
    );
    // A task without `array` is not touched.
    assert_eq!(shell(&t[2]), "echo {item} {whatever}");
    assert_eq!(t[2].env["X"], "{item}");
    assert!(t[2].element.is_none() && !t[2].env.contains_key("BANSURI_ITEM"));
}

#[test]
fn output_paths_take_placeholders_as_text() {
    let text = r#"{"scripts": [{"name": "t", "command": "x", "stdout": "logs/{index}-{item}.out", "stderr": "logs/%Y/{item}.err", "array": {"values": ["a b", "50%"]}}]}"#;
    let t = ok(text).expanded_tasks();
    assert_eq!(
        t[0].stdout,
        OutputTarget::File(PathBuf::from("/cfg/logs/0-a b.out"))
    );
    // A value's `%` is no strftime pattern; the config's own stays one.
    assert_eq!(
        t[1].stderr,
        StderrTarget::File(PathBuf::from("/cfg/logs/%Y/50%%.err"))
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "stdout": "out/{idx}.log""#,
        "stdout",
        "unknown placeholder `{idx}` in `stdout`",
    );
}

#[test]
fn array_file_reads_one_value_per_line_beside_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.txt"), "a.csv\n\nb c.csv\r\n").expect("write");
    let cfg = dir.path().join("c.json");
    let text =
        r#"{"scripts": [{"name": "t", "command": "wc {item}", "array": {"file": "in.txt"}}]}"#;
    let spec = parse_str(text, &cfg, Format::Json).expect("loads");
    let all = spec.expanded_tasks();
    let got: Vec<&str> = all.iter().map(shell).collect();
    assert_eq!(got, ["wc 'a.csv'", "wc 'b c.csv'"]);
    let e = parse_str(&text.replace("in.txt", "missing.txt"), &cfg, Format::Json).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field.as_deref(), Some("array.file"), "{e}");
    assert_has(&e, "missing.txt");
    std::fs::write(dir.path().join("blank.txt"), "\n \n").expect("write");
    let e = parse_str(&text.replace("in.txt", "blank.txt"), &cfg, Format::Json).unwrap_err();
    assert_has(&e, "has no values");
}

#[test]
fn array_errors_name_the_task_and_the_form() {
    array_err(
        r#""x""#,
        r#""array": {"range": "5-1"}"#,
        "array.range",
        "`5-1` ends before it starts",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-x"}"#,
        "array.range",
        "`1-x` is not a range",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": 100}"#,
        "array.range",
        "write \"1-100\"",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "0-99999999"}"#,
        "array.range",
        "more than the 10000000",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-3", "values": ["a"]}"#,
        "array.values",
        "gives both `range` and `values`",
    );
    array_err(
        r#""x""#,
        r#""array": {}"#,
        "array",
        "none of `range`, `values`, `matrix`, `file`",
    );
    array_err(
        r#""x""#,
        r#""array": [1, 2]"#,
        "array",
        "expected an object",
    );
    array_err(
        r#""x""#,
        r#""array": {"rnage": "1-3"}"#,
        "array",
        "did you mean `range`?",
    );
    array_err(
        r#""x""#,
        r#""array": {"values": []}"#,
        "array.values",
        "no elements",
    );
    array_err(
        r#""x""#,
        r#""array": {"values": [true]}"#,
        "array.values",
        "string or a number",
    );
    array_err(
        r#""x""#,
        r#""array": {"matrix": {"a": []}}"#,
        "array.matrix",
        "the list `a` is empty",
    );
    array_err(
        r#""x""#,
        r#""array": {"matrix": {"1a": [1]}}"#,
        "array.matrix",
        "`1a` cannot name",
    );
    array_err(
        r#""x""#,
        r#""array": {"matrix": {"item": [1]}}"#,
        "array.matrix",
        "`item` cannot name",
    );
    array_err(
        r#""x""#,
        r#""array": {"matrix": {"a": 1}}"#,
        "array.matrix",
        "a list of values",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "parallel": 0"#,
        "parallel",
        "at least 1",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "parallel": "2""#,
        "parallel",
        "expected an integer",
    );
}

#[test]
fn unknown_placeholders_are_errors_listing_the_known_ones() {
    let e = array_err(
        r#""train --lr {lrr}""#,
        r#""array": {"matrix": {"lr": [1], "seed": [2]}}"#,
        "command",
        "unknown placeholder `{lrr}`",
    );
    assert_has(&e, "`{item}`, `{index}`, `{lr}`, `{seed}`");
    assert_has(&e, "did you mean `{lr}`?");
    array_err(
        r#"["run", "{itme}"]"#,
        r#""array": {"range": "1-2"}"#,
        "command",
        "`{itme}`",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "env": {"A": "{nope}"}"#,
        "env",
        "unknown placeholder `{nope}` in `env.A`",
    );
    // awk's braces: with a space, or escaped, they stay as written.
    let t = elements(r#""array": {"range": "1-1"}, "env": {"A": "{ x }"}"#);
    assert_eq!(t[0].env["A"], "{ x }");
    let text = r#"{"scripts": [{"name": "t", "command": "awk '{ print }' \\{print} {item}", "array": {"range": "1-1"}}]}"#;
    assert_eq!(
        shell(&ok(text).expanded_tasks()[0]),
        "awk '{ print }' \\{print} '1'"
    );
    array_err(
        r#""x""#,
        r#""array": {"matrix": {"lr": [1]}}, "env": {"lr": "2"}"#,
        "env",
        "`env` sets `lr`",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "env": {"BANSURI_ITEM": "2"}"#,
        "env",
        "`env` sets `BANSURI_ITEM`",
    );
}

#[test]
fn an_element_runs_once() {
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "timer": "5s""#,
        "timer",
        "cannot be given with `array`",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "schedule-cron": "@daily""#,
        "schedule-cron",
        "cannot be given with `array`",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "numprocs": 2"#,
        "numprocs",
        "cannot be given with `array`",
    );
    array_err(
        r#""x""#,
        r#""array": {"range": "1-2"}, "autorestart": "always""#,
        "autorestart",
        "cannot be given with `array`",
    );
    // Retries are per element.
    let t = elements(r#""array": {"range": "1-2"}, "on-fail": "restart", "times": 3"#);
    assert!(t
        .iter()
        .all(|t| t.times == 3 && t.on_fail == OnFail::Restart));
}

#[test]
fn parallel_without_array_is_a_warning() {
    let w = warn1(&one_task(r#""parallel": 4"#), "t", "parallel");
    assert_has(&w, "has no effect");
    assert_has(&w, "numprocs");
}

#[test]
fn depends_on_an_array_or_one_element() {
    let text = r#"{"scripts": [
        {"name": "sweep", "command": "x {item}", "array": {"range": "1-3"}},
        {"name": "all", "command": "x", "depends-on": "sweep"},
        {"name": "one", "command": "x", "depends-on": "sweep[2]"}
    ]}"#;
    let t = ok(text).expanded_tasks();
    assert_eq!(
        names(&t),
        ["sweep[1]", "sweep[2]", "sweep[3]", "all", "one"]
    );
    let e = err1(&text.replace("sweep[2]", "sweep[9]"));
    assert_has(&e, "unknown task `sweep[9]`");
}

#[test]
fn toml_and_yaml_write_arrays_too() {
    let toml = r#"
[[scripts]]
name = "t"
command = "run {lr} {seed}"
parallel = 2
array = { matrix = { lr = [0.1, 0.01], seed = [1, 2, 3] } }

[[scripts]]
name = "r"
command = "run {item}"
[scripts.array]
range = "1-5,9"
"#;
    let s = parse_str(toml, Path::new("/c/c.toml"), Format::Toml).expect("toml loads");
    assert_eq!(s.expanded_tasks().len(), 12);
    assert_eq!(shell(&s.expanded_tasks()[5]), "run '0.01' '3'");
    assert_eq!(s.expanded_tasks()[11].name, "r[9]");
    let yaml = "scripts:\n  - name: t\n    command: run {item}\n    parallel: 3\n    array:\n      values: [a, 2]\n";
    let s = parse_str(yaml, Path::new("/c/c.yaml"), Format::Yaml).expect("yaml loads");
    assert_eq!(names(&s.expanded_tasks()), ["t[0]", "t[1]"]);
    assert_eq!(shell(&s.expanded_tasks()[1]), "run '2'");
    assert_eq!(
        s.expanded_tasks()[1].element.as_ref().unwrap().parallel,
        Some(3)
    );
    // Taskmaster's programs map takes them as well.
    let yaml = "programs:\n  w:\n    cmd: run {item}\n    array:\n      range: 1-2\n";
    let s = parse_str(yaml, Path::new("/c/c.yaml"), Format::Yaml).expect("programs load");
    assert_eq!(names(&s.expanded_tasks()), ["w[1]", "w[2]"]);
}

#[test]
fn a_task_file_is_the_array_task_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("cmds.txt"),
        "# sweep\necho 1 {x}\n\n  echo 2\n",
    )
    .expect("write");
    let cfg = dir.path().join("c.json");
    for key in ["tasks-file", "tasks_file"] {
        let text = format!(r#"{{"{key}": "cmds.txt"}}"#);
        let s = parse_str(&text, &cfg, Format::Json).expect("a task file alone loads");
        assert_eq!(names(&s.expanded_tasks()), ["tasks[0]", "tasks[1]"]);
        assert_eq!(shell(&s.expanded_tasks()[0]), "echo 1 {x}");
        assert_eq!(s.expanded_tasks()[1].env["BANSURI_ITEM"], "echo 2");
        assert_eq!(s.expanded_tasks()[1].working_directory, dir.path());
        assert!(s.expanded_tasks()[1].element.as_ref().unwrap().parallel >= Some(1));
    }
    let text = r#"{"tasks-file": {"file": "cmds.txt", "parallel": 2}, "scripts": [{"name": "report", "command": "x", "depends-on": "tasks"}, "./tasks"]}"#;
    let s = parse_str(text, &cfg, Format::Json).expect("loads");
    assert_eq!(
        names(&s.expanded_tasks()),
        ["report", "tasks-2", "tasks[0]", "tasks[1]"]
    );
    assert_eq!(
        s.expanded_tasks()[3].element.as_ref().unwrap().parallel,
        Some(2)
    );
    // A task named `tasks` beside a task file.
    let text = r#"{"tasks-file": "cmds.txt", "scripts": [{"name": "tasks", "command": "x"}]}"#;
    let e = parse_str(text, &cfg, Format::Json).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field.as_deref(), Some("name"));
    assert_has(&e, "task name `tasks` is the task file's");
    // Errors.
    std::fs::write(dir.path().join("empty.txt"), "# nothing\n\n").expect("write");
    for (text, field, needle) in [
        (
            r#"{"tasks-file": "empty.txt"}"#,
            "tasks-file",
            "holds no command",
        ),
        (r#"{"tasks-file": "nope.txt"}"#, "tasks-file", "nope.txt"),
        (r#"{"tasks-file": ""}"#, "tasks-file", "cannot be empty"),
        (
            r#"{"tasks-file": {"parallel": 2}}"#,
            "tasks-file",
            "has no `file`",
        ),
        (
            r#"{"tasks-file": {"file": "cmds.txt", "parallel": 0}}"#,
            "tasks-file.parallel",
            "at least 1",
        ),
        (
            r#"{"tasks-file": {"file": "cmds.txt", "j": 0}}"#,
            "tasks-file",
            "unknown key `j`",
        ),
    ] {
        let e = parse_str(text, &cfg, Format::Json).unwrap_err();
        assert_eq!(e.0.len(), 1, "{text}: {e}");
        assert_eq!(e.0[0].field.as_deref(), Some(field), "{text}: {e}");
        assert!(e.0[0].line.is_some(), "{text}: {e}");
        assert_has(&e, needle);
    }
}

#[test]
fn the_command_line_task_file_replaces_the_configs_or_stands_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.txt"), "echo a\n").expect("write");
    std::fs::write(dir.path().join("b.txt"), "echo b1\necho b2\n").expect("write");
    let cfg = dir.path().join("c.json");
    let cli = CommandLine {
        tasks: Some(dir.path().join("b.txt")),
    };
    let text = r#"{"tasks-file": "a.txt", "scripts": ["true"]}"#;
    let s =
        parse_str_adding(text, &cfg, Format::Json, &Extensions::default(), &cli).expect("loads");
    assert_eq!(names(&s.expanded_tasks()), ["true", "tasks[0]", "tasks[1]"]);
    assert_eq!(shell(&s.expanded_tasks()[2]), "echo b2");
    assert_eq!(s.expanded_tasks()[2].working_directory, dir.path());
    let s = tasks_only(&dir.path().join("b.txt"), &Extensions::default()).expect("alone");
    assert_eq!(names(&s.expanded_tasks()), ["tasks[0]", "tasks[1]"]);
    assert_eq!(s.globals, crate::spec::Globals::default());
    assert_eq!(
        s.source,
        std::fs::canonicalize(dir.path().join("b.txt")).unwrap()
    );
    let e = tasks_only(&dir.path().join("nope.txt"), &Extensions::default()).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field.as_deref(), Some("--tasks"));
    assert_has(&e, "invalid `--tasks`");
}

/// Issue 19's scale: 100,000 elements load as one array task holding them compactly
/// (the figure from the command line is in the README); any element is made on demand.
#[test]
fn a_hundred_thousand_elements_load_as_one_task() {
    let text = r#"{"scripts": [{"name": "t", "command": "run --in data/{item}.csv", "array": {"range": "1-100000"}, "env": {"OUT": "out/{item}"}}]}"#;
    let s = ok(text);
    assert_eq!(s.tasks.len(), 1);
    let sweep = s.tasks[0].sweep.as_ref().expect("an array task");
    assert_eq!(sweep.array.len(), 100_000);
    let last = crate::spec::expand::element_task(&s.tasks[0], 99_999).expect("element");
    assert_eq!(last.name, "t[100000]");
    assert_eq!(shell(&last), "run --in data/'100000'.csv");
    assert_eq!(last.env["OUT"], "out/100000");
    assert!(crate::spec::expand::element_task(&s.tasks[0], 100_000).is_none());
}

#[test]
fn readme_sweep_example_loads_and_every_field_has_a_row() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("\n## Sweeps\n").expect("a Sweeps section");
    let section = &readme[start..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    let block = section
        .split("```json\n")
        .nth(1)
        .map(|b| &b[..b.find("```").expect("closed block")])
        .expect("a JSON example");
    let s = ok(block);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.expanded_tasks().len(), 14);
    assert_eq!(
        shell(&s.expanded_tasks()[12]),
        "python3 train.py --lr '0.001' --seed '4' --out runs/'11'"
    );
    assert_eq!(s.expanded_tasks()[12].name, "train[11]");
    assert!(section.contains("### Status, resume and retry"));
    assert!(section.contains("elements.jsonl") && section.contains("--retry-failed"));
    for f in ["array", "parallel", "tasks-file"] {
        assert!(
            readme.contains(&format!("\n| `{f}` |")),
            "no reference row for `{f}`"
        );
    }
    assert!(readme.contains("* `--tasks FILE`"), "no --tasks bullet");
}
