//! The JSON Schema of the config file (`bansuri schema`, schema/bansuri.schema.json), for
//! editors that check a scripts_config.json as it is typed.
//!
//! The schema is generated from the tables below, one entry per field: its JSON type and
//! allowed values, and a description. The field names and their aliases come from the
//! validator's own tables (`GLOBAL_FIELDS`, `TASK_FIELDS`), and a test checks that every
//! field the validator knows has an entry here and every entry is a field the validator
//! knows, so a field cannot be added to one without the other.
//!
//! The schema describes what the validator accepts, as closely as JSON Schema can: words
//! such as `overlap` values are listed in their usual spelling (editors offer them) and
//! matched in any case, as bansuri does. What JSON Schema cannot say (a cron expression's
//! meaning, a directory that must exist, a registered in-process task name, a field given
//! under two spellings) is left to `bansuri validate`. This module only describes; it does
//! not validate anything itself.

use serde_json::{json, Map, Value};

use super::tree::{Node, Value as TreeValue};
use super::validate::{Field, GLOBAL_FIELDS, TASK_FIELDS};
use super::{ConfigErrors, Format};
use std::path::Path;

/// Where the committed copy lives (relative to the repository), for messages and tests.
pub const COMMITTED_PATH: &str = "schema/bansuri.schema.json";

/// A field's schema and description.
struct Entry {
    name: &'static str,
    schema: Value,
    doc: &'static str,
}

fn entry(name: &'static str, schema: Value, doc: &'static str) -> Entry {
    Entry { name, schema, doc }
}

/// A word matched in any case, surrounded by optional blanks (as the validator's `choice`).
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                // Digits and `-` (the only other characters of these words) stand for
                // themselves; no escape, which some regex dialects reject.
                c.to_string()
            }
        })
        .collect()
}

/// One of `words` (offered by editors), in any case.
fn words(words: &[&str]) -> Value {
    let alts: Vec<String> = words.iter().map(|w| any_case(w)).collect();
    json!({
        "anyOf": [
            {"enum": words},
            {"type": "string", "pattern": format!("^\\s*(?:{})\\s*$", alts.join("|"))}
        ]
    })
}

fn duration() -> Value {
    json!({"$ref": "#/definitions/duration"})
}

fn positive_duration() -> Value {
    json!({"$ref": "#/definitions/positive_duration"})
}

fn size() -> Value {
    json!({"$ref": "#/definitions/size"})
}

/// A memory size greater than zero (a task's `mem`, `resources.mem`).
fn mem_size() -> Value {
    json!({
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": "^\\s*[0-9]+\\s*(?:[bB]|[kKmMgG](?:[iI]?[bB])?)?\\s*$"}
        ]
    })
}

fn non_empty_string() -> Value {
    json!({"type": "string", "pattern": "\\S"})
}

fn path_or_null() -> Value {
    json!({"anyOf": [{"type": "null"}, {"type": "string", "pattern": "\\S"}]})
}

fn exit_code() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 255})
}

/// Top-level fields.
fn global_entries() -> Vec<Entry> {
    vec![
        entry(
            "$schema",
            json!({"type": "string"}),
            "Where editors find this schema (a URL or a path). bansuri ignores it.",
        ),
        entry(
            "version",
            json!({"type": ["string", "number"], "pattern": "^\\s*0*1(?:\\..*)?$"}),
            "Config format version: \"1.0\". Another major version is an error.",
        ),
        entry(
            "scripts",
            json!({
                "type": "array",
                "items": {"anyOf": [
                    {"$ref": "#/definitions/shorthand"},
                    {"$ref": "#/definitions/task"}
                ]}
            }),
            "The tasks: objects, or plain command strings (named after the script, run in the config file's directory).",
        ),
        entry(
            "programs",
            json!({
                "type": "object",
                "additionalProperties": {"$ref": "#/definitions/program"}
            }),
            "Taskmaster's form of the task list: a map from each program's name to its settings. Use either `scripts` or `programs`.",
        ),
        entry(
            "check_interval",
            positive_duration(),
            "How often the config file is re-read for hot reload (default 30s); SIGHUP re-reads it at once.",
        ),
        entry(
            "watchdog_timeout",
            duration(),
            "Default grace between a task's stop signal and SIGKILL (default 120s).",
        ),
        entry(
            "max_parallel",
            json!({"type": ["integer", "null"], "minimum": 1}),
            "Most task processes running at once (null or absent: no limit); due runs wait in order.",
        ),
        entry(
            "log_file",
            path_or_null(),
            "Append the job log to this file instead of stdout; {job_id} becomes $SLURM_JOB_ID or `local`.",
        ),
        entry(
            "log_format",
            words(&["text", "json"]),
            "Job log format: `text` (default) or `json` (one object per line).",
        ),
        entry(
            "log_max_bytes",
            size(),
            "Rotate the job log file at this size: bytes or \"50MB\" (0, the default: never).",
        ),
        entry(
            "log_backups",
            json!({"type": "integer", "minimum": 0, "maximum": 1000}),
            "Rotated job log files kept (default 5).",
        ),
        entry(
            "notify_command",
            path_or_null(),
            "Shell command told about a task's failure (tasks with \"notify\": \"mail\"); the message on its stdin; {task}, {code}, {attempt}, {host}, {job_id}, ... placeholders.",
        ),
        entry(
            "notify_timeout",
            positive_duration(),
            "A notifier still running after this long is killed (default 30s).",
        ),
        entry(
            "state_dir",
            path_or_null(),
            "Directory of the state file, control socket and request inbox (default `.bansuri/<config file name>/` beside the config).",
        ),
        entry(
            "sample_interval",
            duration(),
            "How often CPU and memory are sampled (default 30s; 0 turns sampling off).",
        ),
        entry(
            "dashboard",
            json!({"type": ["string", "null"]}),
            "Web dashboard address: \"127.0.0.1:8080\", \"8080\" (loopback), \"0.0.0.0:8080\"; absent: off.",
        ),
        entry(
            "dashboard_hosts",
            json!({"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._:\\[\\]-]+$"}}),
            "More host names the dashboard answers to (the browser's `Host`), besides its own address, localhost, 127.0.0.1 and [::1]; others get 421 (DNS rebinding).",
        ),
        entry(
            "stop_before_end",
            duration(),
            "Under SLURM: begin the graceful shutdown this long before the job's end time (0, the default: off).",
        ),
        entry(
            "config_settle",
            duration(),
            "Hot reload: a config file changed in place is applied once it has stayed unchanged this long (default 1s, at most 60s); a file replaced by a rename is applied at once.",
        ),
        entry(
            "resources",
            json!({"anyOf": [
                {"type": "null"},
                {"type": "object", "additionalProperties": false, "properties": {
                    "cpus": {"anyOf": [
                        {"type": "integer", "minimum": 1},
                        {"type": "string", "pattern": "^\\s*[0-9]+(?:\\s*-\\s*[0-9]+)?(?:\\s*,\\s*[0-9]+(?:\\s*-\\s*[0-9]+)?)*\\s*$"}
                    ]},
                    "gpus": {"type": "array", "items": {"anyOf": [
                        {"type": "string", "pattern": "^[^,]*\\S[^,]*$"},
                        {"type": "integer", "minimum": 0}
                    ]}},
                    "mem": mem_size()
                }}
            ]}),
            "What the allocation has, declared or overriding what bansuri finds: cpus (a count, the lowest CPUs of the job's CPU set, or a CPU list \"0-3,8\" inside it), gpus (a list of GPU IDs, [\"0\", \"1\"]), mem (a size, \"64G\").",
        ),
        entry(
            "requeue_on_end",
            json!({"type": "boolean"}),
            "Under SLURM: when the time limit ends the job with work left, requeue the job (scontrol requeue; submit with sbatch --requeue) so the next run continues as with --resume (default false).",
        ),
        entry(
            "nodes",
            words(&["all", "local"]),
            "In a SLURM job of several nodes: `all` (default) places runs on every node of the allocation through one agent per node started in one job step; `local` runs everything on bansuri's own node.",
        ),
        entry(
            "tasks-file",
            json!({"anyOf": [
                non_empty_string(),
                {"type": "object", "additionalProperties": false, "required": ["file"], "properties": {
                    "file": non_empty_string(),
                    "parallel": {"type": "integer", "minimum": 1}
                }}
            ]}),
            "A task file (relative to the config file's directory): one shell command per line, `#` comments and blank lines skipped, each line run once as the array task `tasks` (`tasks[0]`, `tasks[1]`, ...). Or {\"file\": ..., \"parallel\": N}: at most N lines at once (default: the CPUs bansuri may use). `bansuri run --tasks FILE` replaces it.",
        ),
    ]
}

/// Task fields (objects in `scripts`, values in `programs`).
fn task_entries() -> Vec<Entry> {
    vec![
        entry(
            "name",
            json!({"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}),
            "Unique task name: letters, digits, `.`, `_`, `-`.",
        ),
        entry(
            "command",
            json!({"anyOf": [
                non_empty_string(),
                {"type": "array", "minItems": 1, "items": {"type": "string"}}
            ]}),
            "A string runs through /bin/sh -c; a list runs as argv without a shell. With \"no-interface\": true, a Python class (\"myapp.tasks:LoggingTask\") or a task registered by a program embedding bansuri.",
        ),
        entry("description", json!({"type": "string"}), "Free text, shown in notifications."),
        entry("enabled", json!({"type": "boolean"}), "false: never started (default true)."),
        entry(
            "timer",
            positive_duration(),
            "Run at start-up, then every interval at a fixed rate: 30, \"30s\", \"5m\", \"1h30m\".",
        ),
        entry(
            "schedule-cron",
            non_empty_string(),
            "Cron schedule: 5 fields (min hour dom mon dow), 6 (leading seconds), or @hourly, @daily, @weekly, @monthly, @yearly.",
        ),
        entry(
            "timezone",
            words(&["local", "UTC", "Z"]),
            "Zone `schedule-cron` is read in: `local` (default) or `UTC`.",
        ),
        entry(
            "overlap",
            words(&["skip", "queue", "replace", "allow"]),
            "A run is due while the previous one still runs: skip (default), queue, replace, allow.",
        ),
        entry(
            "timeout",
            positive_duration(),
            "Per-attempt time limit: then the stop signal to the task's process group, SIGKILL after `stoptime`.",
        ),
        entry(
            "on-fail",
            words(&["stop", "restart"]),
            "`restart`: retry a failed attempt, up to `times` attempts (default `stop`).",
        ),
        entry(
            "times",
            json!({"type": "integer", "minimum": 1}),
            "Attempts per run (default 1).",
        ),
        entry(
            "success-codes",
            json!({"anyOf": [
                exit_code(),
                {"type": "array", "minItems": 1, "items": exit_code()}
            ]}),
            "Exit codes that count as success (default [0]).",
        ),
        entry(
            "restart-delay",
            duration(),
            "Wait before a retry (default 1s); doubles with each failure in a row.",
        ),
        entry(
            "max-restart-delay",
            duration(),
            "Cap of the retry wait (default 60s).",
        ),
        entry(
            "stopsignal",
            {
                let names = ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "KILL"];
                let mut offered: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                offered.extend(names.iter().map(|s| format!("SIG{s}")));
                let alts: Vec<String> = names.iter().map(|w| any_case(w)).collect();
                json!({"anyOf": [
                    {"enum": offered},
                    {"type": "string", "pattern": format!(
                        "^\\s*(?:{})?(?:{})\\s*$", any_case("SIG"), alts.join("|")
                    )}
                ]})
            },
            "Signal that stops the task's process group (default TERM).",
        ),
        entry(
            "stoptime",
            duration(),
            "Grace between the stop signal and SIGKILL (default: watchdog_timeout).",
        ),
        entry(
            "working-directory",
            non_empty_string(),
            "Working directory, relative to the config file's directory (default: that directory). Checked at each start: while it is missing the start fails.",
        ),
        entry(
            "env",
            json!({
                "type": "object",
                "propertyNames": {"pattern": "^[^=]+$"},
                "additionalProperties": {"type": ["string", "number", "boolean"]}
            }),
            "Extra environment variables.",
        ),
        entry(
            "environment-file",
            non_empty_string(),
            "File of KEY=VALUE lines, relative to the config file's directory; `env` wins over it.",
        ),
        entry(
            "stdout",
            path_or_null(),
            "Append stdout to this file (relative to the working directory; strftime patterns such as %Y-%m-%d filled in at each start, %% for %); null or \"log\": the job log (default).",
        ),
        entry(
            "stderr",
            path_or_null(),
            "`combined` (default: wherever stdout goes), `log` (the job log, marked !), or a file.",
        ),
        entry(
            "numprocs",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
            "Run N instances name:0 .. name:N-1.",
        ),
        entry(
            "autostart",
            json!({"type": "boolean"}),
            "false: not started until a control command starts it.",
        ),
        entry(
            "autorestart",
            json!({"anyOf": [{"type": "boolean"}, words(&["never", "unexpected", "always"])]}),
            "`always`: a service, restarted after every exit; `unexpected`: restarted when the exit code is not a success code; `never` (default).",
        ),
        entry(
            "startretries",
            json!({"type": "integer", "minimum": 0}),
            "Retries after a failed start (an exit before `starttime`): N + 1 failed starts in a row make the task FATAL (default 3).",
        ),
        entry(
            "starttime",
            duration(),
            "Seconds a process must stay up to count as started (default 0).",
        ),
        entry(
            "user",
            non_empty_string(),
            "Run as this user (needs root unless it is you).",
        ),
        entry(
            "priority",
            json!({"type": "integer", "minimum": -20, "maximum": 19}),
            "Nice value, -20 (highest) .. 19 (default 0).",
        ),
        entry(
            "umask",
            json!({"anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 777},
                {"type": "string", "pattern": "^\\s*(?:0o)?[0-7]+\\s*$"}
            ]}),
            "File mode creation mask, octal digits: \"022\".",
        ),
        entry(
            "depends-on",
            json!({"anyOf": [
                non_empty_string(),
                {"type": "array", "items": non_empty_string()}
            ]}),
            "Tasks or programs that must have succeeded (one-shots) or be started (services) first.",
        ),
        entry(
            "log-max-bytes",
            size(),
            "Rotate the task's stdout/stderr files at this size (0, the default: never).",
        ),
        entry(
            "log-backups",
            json!({"type": "integer", "minimum": 0, "maximum": 1000}),
            "Rotated files kept per file (default 5).",
        ),
        entry(
            "notify",
            json!({"anyOf": [{"enum": ["mail", "on-fail", "none"]}, non_empty_string()]}),
            "`mail` (or `on-fail`): run the global notify_command when a run fails finally; `none` (default); `module.path:ClassName`, a Python Notifier subclass; or a notifier registered by a program embedding bansuri.",
        ),
        entry(
            "notify-on",
            {
                let event = words(&["failure", "success", "recovery", "attempt"]);
                json!({"anyOf": [event.clone(), {"type": "array", "minItems": 1, "items": event}]})
            },
            "What is told: failure (default), success, recovery, attempt (each failed attempt that is retried).",
        ),
        entry(
            "srun",
            json!({"anyOf": [
                {"type": "boolean"},
                {"type": "object", "additionalProperties": false, "properties": {
                    "nodes": {"type": "integer", "minimum": 1},
                    "ntasks": {"type": "integer", "minimum": 1},
                    "cpus-per-task": {"type": "integer", "minimum": 1},
                    "cpus_per_task": {"type": "integer", "minimum": 1},
                    "overlap": {"type": "boolean"},
                    "extra-args": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "extra_args": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
                }}
            ]}),
            "Run each attempt as a SLURM job step: true, or {nodes, ntasks, cpus-per-task, overlap, extra-args}.",
        ),
        entry(
            "no-interface",
            json!({"type": "boolean"}),
            "true: `command` names a Python class (\"module.path:ClassName\", an AbstractTask subclass) or an in-process task registered by a program embedding bansuri, not a program.",
        ),
        entry(
            "cpus",
            json!({"type": "integer", "minimum": 1}),
            "CPUs each run needs (default 1 when `gpus` or `mem` is given). A task with none of cpus, gpus, mem is neither packed nor bound.",
        ),
        entry(
            "gpus",
            json!({"type": "integer", "minimum": 0}),
            "GPUs each run needs (default 0).",
        ),
        entry(
            "mem",
            mem_size(),
            "Memory each run needs: \"4G\", \"512M\", or bytes; checked against the run's sampled RSS (see mem-exceeded).",
        ),
        entry(
            "bind",
            json!({"type": "boolean"}),
            "Pin each run to its CPUs and give it its GPUs (OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES...; default true). Only for a task with a request.",
        ),
        entry(
            "mem-exceeded",
            words(&["warn", "stop"]),
            "What a run over its `mem` gets: warn (default, the log names the task and its peak) or stop.",
        ),
        entry(
            "expected-runtime",
            positive_duration(),
            "How long a run takes (default: learned from past runs); under SLURM a run that would end after the job's time limit is not started.",
        ),
        entry(
            "checkpoint-signal",
            {
                let names = ["USR1", "USR2", "TERM", "INT", "HUP", "QUIT"];
                let mut offered: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                offered.extend(names.iter().map(|s| format!("SIG{s}")));
                json!({"anyOf": [
                    {"enum": offered},
                    {"type": "string", "pattern": "^\\s*[A-Za-z][A-Za-z0-9]*\\s*$"},
                    {"type": "integer", "minimum": 1}
                ]})
            },
            "Under SLURM: a signal (name or number) sent once to each running run's process group `checkpoint-lead` before the job's end, to save its work.",
        ),
        entry(
            "checkpoint-lead",
            positive_duration(),
            "How long before the job's end `checkpoint-signal` is sent (default 10m).",
        ),
        entry(
            "array",
            {
                let value = json!({"type": ["string", "number"]});
                let list = json!({"type": "array", "minItems": 1, "items": value});
                json!({
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": false,
                    "properties": {
                        "range": {"type": "string", "pattern": RANGE_PATTERN},
                        "values": list,
                        "matrix": {
                            "type": "object",
                            "minProperties": 1,
                            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "not": {"enum": ["item", "index"]}},
                            "additionalProperties": list
                        },
                        "file": non_empty_string()
                    }
                })
            },
            "Run the task once per element, each a task named `task[id]`: {\"range\": \"1-1000\"} (also \"0-100:10\", \"1-5,9\"), {\"values\": [\"a\", \"b\"]}, {\"matrix\": {\"lr\": [0.1, 0.01], \"seed\": [1, 2]}} (every combination) or {\"file\": \"inputs.txt\"} (one value per line). {item}, {index} and each matrix key are filled in the command (shell-quoted) and env; BANSURI_ITEM, BANSURI_ARRAY_INDEX and each matrix key are set.",
        ),
        entry(
            "parallel",
            json!({"type": "integer", "minimum": 1}),
            "With `array`: at most this many of its elements run at once (max_parallel still caps all tasks).",
        ),
    ]
}

/// `entries` as JSON Schema properties: each canonical name, and each alias the validator
/// accepts with the same schema.
fn properties(entries: &[Entry], fields: &[Field], skip: &[&str]) -> Map<String, Value> {
    let mut props = Map::new();
    for e in entries {
        if skip.contains(&e.name) {
            continue;
        }
        let mut s = e.schema.clone();
        if let Value::Object(m) = &mut s {
            m.insert("description".into(), Value::String(e.doc.into()));
        }
        props.insert(e.name.into(), s.clone());
        let aliases = fields
            .iter()
            .find(|f| f.name == e.name)
            .map_or(&[][..], |f| f.aliases);
        for a in aliases {
            let mut s = e.schema.clone();
            if let Value::Object(m) = &mut s {
                m.insert(
                    "description".into(),
                    Value::String(format!("Another spelling of `{}`. {}", e.name, e.doc)),
                );
            }
            props.insert((*a).into(), s);
        }
    }
    props
}

/// Spellings of `name` (canonical and aliases), for "one of these is required".
fn spellings(fields: &[Field], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
        .map(String::from)
        .collect()
}

fn required_any(names: &[String]) -> Value {
    let alts: Vec<Value> = names.iter().map(|n| json!({"required": [n]})).collect();
    json!({"anyOf": alts})
}

/// The schema as a JSON value.
pub fn schema() -> Value {
    let task_props = properties(&task_entries(), TASK_FIELDS, &[]);
    let program_props = properties(&task_entries(), TASK_FIELDS, &["name"]);
    let global_props = properties(&global_entries(), GLOBAL_FIELDS, &[]);
    let command = spellings(TASK_FIELDS, "command");
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "bansuri config",
        "description": format!(
            "A bansuri config (scripts_config.json; the same keys in TOML or YAML). Generated by `bansuri schema` (bansuri {}); `bansuri validate` checks what a schema cannot.",
            env!("CARGO_PKG_VERSION")
        ),
        "type": "object",
        "properties": global_props,
        "additionalProperties": false,
        "not": {"required": ["scripts", "programs"]},
        "anyOf": [
            {"required": ["scripts"]},
            {"required": ["programs"]},
            {"required": ["tasks-file"]},
            {"required": ["tasks_file"]}
        ],
        "definitions": {
            "shorthand": {
                "type": "string",
                "pattern": "\\S",
                "description": "A command line, run through /bin/sh -c in the config file's directory; the task is named after the script."
            },
            "task": {
                "type": "object",
                "properties": task_props,
                "additionalProperties": false,
                "allOf": [{"required": ["name"]}, required_any(&command)]
            },
            "program": {
                "type": "object",
                "properties": program_props,
                "additionalProperties": false,
                "allOf": [required_any(&command)]
            },
            "duration": {
                "description": "Seconds as a number (30, 1.5) or a string: \"30\", \"250ms\", \"30s\", \"5m\", \"1h30m\".",
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": DURATION_PATTERN}
                ]
            },
            "positive_duration": {
                "description": "A duration greater than zero: 30, \"250ms\", \"30s\", \"5m\", \"1h30m\".",
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0},
                    {"type": "string", "pattern": DURATION_PATTERN}
                ]
            },
            "size": {
                "description": "Bytes as a number, or a string: \"1048576\", \"500KB\", \"50MB\", \"1GB\" (K/M/G count 1024s).",
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": "^\\s*[0-9]+\\s*(?:[bB]|[kKmMgG](?:[iI]?[bB])?)?\\s*$"}
                ]
            }
        }
    })
}

/// Slurm's `--array` ranges: `1-1000`, `0-100:10`, `7`, `1-5,9,20-22`.
const RANGE_PATTERN: &str =
    "^\\s*[0-9]+(?:\\s*-\\s*[0-9]+)?(?:\\s*:\\s*[0-9]+)?(?:\\s*,\\s*[0-9]+(?:\\s*-\\s*[0-9]+)?(?:\\s*:\\s*[0-9]+)?)*\\s*$";

/// A number of seconds, or number-unit pairs (`1h30m`, `2 days`, `250ms`).
const DURATION_PATTERN: &str =
    "^\\s*(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+|(?:[0-9]+\\s*[a-zA-Z\u{b5}]+\\s*)+)\\s*$";

/// The schema as `bansuri schema` prints it (and as schema/bansuri.schema.json holds it).
pub fn text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// A config text (the content of `path`) as a plain JSON value, to check it against the
/// schema: TOML and YAML become the JSON they stand for (a Taskmaster file keeps its
/// `programs:` map). A syntax error is the config's diagnostic.
pub fn instance(text: &str, path: &Path, format: Format) -> Result<Value, ConfigErrors> {
    Ok(to_json(&super::parse_tree(text, path, format)?))
}

fn to_json(node: &Node) -> Value {
    match &node.value {
        TreeValue::Null => Value::Null,
        TreeValue::Bool(b) => Value::Bool(*b),
        TreeValue::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => serde_json::Number::from_f64(n.as_f64()).map_or(Value::Null, Value::Number),
        },
        TreeValue::String(s) | TreeValue::Datetime(s) => Value::String(s.clone()),
        TreeValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        TreeValue::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.name.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn names(entries: &[Entry]) -> BTreeSet<&'static str> {
        entries.iter().map(|e| e.name).collect()
    }

    fn field_names(fields: &[Field]) -> BTreeSet<&'static str> {
        fields.iter().map(|f| f.name).collect()
    }

    /// A field the validator accepts without a schema entry (or the reverse) fails here.
    #[test]
    fn every_validator_field_has_a_schema_entry_and_back() {
        assert_eq!(
            names(&task_entries()),
            field_names(TASK_FIELDS),
            "task fields: schema entries vs the validator's TASK_FIELDS"
        );
        assert_eq!(
            names(&global_entries()),
            field_names(GLOBAL_FIELDS),
            "top-level fields: schema entries vs the validator's GLOBAL_FIELDS"
        );
        let s = schema();
        let keys: BTreeSet<&str> = s["properties"]["resources"]["anyOf"][1]["properties"]
            .as_object()
            .expect("resources is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            field_names(crate::config::validate::RESOURCES_FIELDS),
            "`resources` keys: schema vs the validator's RESOURCES_FIELDS"
        );
    }

    #[test]
    fn aliases_are_properties_too() {
        let s = schema();
        let task = &s["definitions"]["task"]["properties"];
        for f in TASK_FIELDS {
            for name in std::iter::once(&f.name).chain(f.aliases.iter()) {
                assert!(task.get(*name).is_some(), "task property `{name}` missing");
            }
        }
        let program = &s["definitions"]["program"]["properties"];
        assert!(program.get("name").is_none(), "a program's name is its key");
        assert!(program.get("cmd").is_some());
        for f in GLOBAL_FIELDS {
            for name in std::iter::once(&f.name).chain(f.aliases.iter()) {
                assert!(s["properties"].get(*name).is_some(), "`{name}` missing");
            }
        }
    }

    #[test]
    fn every_property_has_a_description() {
        let s = schema();
        let all = [
            &s["properties"],
            &s["definitions"]["task"]["properties"],
            &s["definitions"]["program"]["properties"],
        ];
        for props in all {
            for (k, v) in props.as_object().expect("properties") {
                let d = v["description"].as_str().unwrap_or("");
                assert!(!d.is_empty(), "`{k}` has no description");
            }
        }
    }

    #[test]
    fn any_case_matches_every_case() {
        assert_eq!(any_case("usr1"), "[uU][sS][rR]1");
        assert_eq!(any_case("on-fail"), "[oO][nN]-[fF][aA][iI][lL]");
    }

    #[test]
    fn instance_converts_toml_and_yaml() {
        let v = instance(
            "[[scripts]]\nname = \"a\"\ncommand = \"true\"\ntimer = 5\n",
            Path::new("c.toml"),
            Format::Toml,
        )
        .expect("toml");
        assert_eq!(
            v,
            json!({"scripts": [{"name": "a", "command": "true", "timer": 5}]})
        );
        let v = instance(
            "programs:\n  w:\n    cmd: ./w\n    umask: 022\n",
            Path::new("c.yaml"),
            Format::Yaml,
        )
        .expect("yaml");
        assert_eq!(v, json!({"programs": {"w": {"cmd": "./w", "umask": 22}}}));
        // A syntax error is the config's diagnostic: the file, the line, the message.
        let e =
            instance("{\"scripts\": [}", Path::new("c.json"), Format::Json).expect_err("bad json");
        assert_eq!(e.0[0].file, Path::new("c.json"));
        assert!(e.to_string().contains("--> c.json:1:"), "{e}");
    }

    /// Issue 19's fields: the schema knows the validator's keys and agrees with it on
    /// what JSON Schema can tell apart.
    #[test]
    fn array_fields_agree_with_the_validator() {
        let s = schema();
        let keys = |v: &Value| -> BTreeSet<String> {
            v.as_object().expect("an object").keys().cloned().collect()
        };
        let array = &s["definitions"]["task"]["properties"]["array"]["properties"];
        let want: BTreeSet<String> = crate::config::validate::ARRAY_FIELDS
            .iter()
            .map(|f| f.name.to_owned())
            .collect();
        assert_eq!(keys(array), want, "`array` keys: schema vs ARRAY_FIELDS");
        let tf = &s["properties"]["tasks-file"]["anyOf"][1]["properties"];
        let want: BTreeSet<String> = crate::config::validate::TASKS_FILE_FIELDS
            .iter()
            .map(|f| f.name.to_owned())
            .collect();
        assert_eq!(
            keys(tf),
            want,
            "`tasks-file` keys: schema vs TASKS_FILE_FIELDS"
        );

        let v = jsonschema::draft7::new(&s).expect("compile schema");
        let task = |fields: &str| {
            format!(r#"{{"scripts": [{{"name": "t", "command": "x {{item}}", {fields}}}]}}"#)
        };
        let loads = |text: &str| {
            crate::config::parse_str(text, Path::new("/c/c.json"), Format::Json).is_ok()
        };
        let fits = |text: &str| {
            let inst: Value = serde_json::from_str(text).expect("json");
            v.is_valid(&inst)
        };
        for good in [
            task(r#""array": {"range": "1-1000"}, "parallel": 4"#),
            task(r#""array": {"range": "0-100:10, 200"}"#),
            task(r#""array": {"range": "7"}"#),
            task(r#""array": {"values": ["a", 1, 2.5]}"#),
            task(r#""array": {"matrix": {"lr": [0.1, 0.01], "seed": [1, 2, 3]}}"#),
        ] {
            assert!(loads(&good), "bansuri refuses {good}");
            assert!(fits(&good), "the schema refuses {good}");
        }
        for bad in [
            task(r#""array": {"range": "1-x"}"#),
            task(r#""array": {"range": 100}"#),
            task(r#""array": {}"#),
            task(r#""array": {"range": "1-2", "values": ["a"]}"#),
            task(r#""array": {"values": []}"#),
            task(r#""array": {"values": [true]}"#),
            task(r#""array": {"matrix": {"1a": [1]}}"#),
            task(r#""array": {"matrix": {"item": [1]}}"#),
            task(r#""array": {"matrix": {"a": []}}"#),
            task(r#""array": {"rnage": "1-2"}"#),
            task(r#""array": {"range": "1-2"}, "parallel": 0"#),
            r#"{"scripts": [], "programs": {}}"#.to_owned(),
            r#"{"tasks-file": {"parallel": 2}}"#.to_owned(),
            r#"{"version": "1"}"#.to_owned(),
        ] {
            assert!(!loads(&bad), "bansuri accepts {bad}");
            assert!(!fits(&bad), "the schema accepts {bad}");
        }
        // A task file alone is a config (the file itself is bansuri's to read).
        assert!(fits(r#"{"tasks-file": "cmds.txt"}"#));
        assert!(fits(
            r#"{"tasks_file": {"file": "cmds.txt", "parallel": 2}}"#
        ));
    }

    /// Issue 17's fields: the schema accepts what the validator accepts and refuses what
    /// it refuses (the values that JSON Schema can tell apart).
    #[test]
    fn resource_fields_agree_with_the_validator() {
        let v = jsonschema::draft7::new(&schema()).expect("compile schema");
        let task =
            |fields: &str| format!(r#"{{"scripts": [{{"name": "t", "command": "x", {fields}}}]}}"#);
        let top = |fields: &str| format!(r#"{{{fields}, "scripts": ["x"]}}"#);
        let loads = |text: &str| {
            crate::config::parse_str(text, Path::new("/c/c.json"), Format::Json).is_ok()
        };
        let fits = |text: &str| {
            let inst: Value = serde_json::from_str(text).expect("json");
            v.is_valid(&inst)
        };
        for good in [
            task(r#""cpus": 2, "gpus": 0, "mem": "4G", "bind": false, "mem-exceeded": "Stop""#),
            task(r#""mem": 1048576, "mem_exceeded": "warn", "expected-runtime": "2h""#),
            task(r#""checkpoint-signal": "SIGUSR1", "checkpoint-lead": "15m""#),
            task(r#""checkpoint_signal": 10, "checkpoint_lead": 60, "expected_runtime": 30"#),
            top(r#""resources": {"cpus": 4, "gpus": ["0", "1", 2], "mem": "64G"}"#),
            top(r#""resources": {"cpus": "0-3,8"}, "requeue_on_end": true"#),
            top(r#""resources": null, "requeue-on-end": false"#),
            top(r#""resources": {"gpus": []}"#),
        ] {
            assert!(loads(&good), "bansuri refuses {good}");
            assert!(fits(&good), "the schema refuses {good}");
        }
        for bad in [
            task(r#""cpus": 0"#),
            task(r#""cpus": 1.5"#),
            task(r#""gpus": -1"#),
            task(r#""mem": 0"#),
            task(r#""mem": "4T""#),
            task(r#""bind": "yes""#),
            task(r#""mem": "1G", "mem-exceeded": "kill""#),
            task(r#""expected-runtime": 0"#),
            task(r#""checkpoint-signal": 0"#),
            task(r#""checkpoint-signal": "USR1", "checkpoint-lead": "soon""#),
            top(r#""resources": {"cpus": 0}"#),
            top(r#""resources": {"cpus": "0-x"}"#),
            top(r#""resources": {"gpus": "0,1"}"#),
            top(r#""resources": {"mem": "0.5G"}"#),
            top(r#""resources": {"disk": 1}"#),
            top(r#""resources": 4"#),
            top(r#""requeue_on_end": 1"#),
        ] {
            assert!(!loads(&bad), "bansuri accepts {bad}");
            assert!(!fits(&bad), "the schema accepts {bad}");
        }
    }
}
