//! Security rules that need no control socket: as root, config and environment files
//! writable by others are refused.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

fn chmod(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn root_refuses_group_or_world_writable_config_and_environment_files() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: needs root");
        return;
    }
    let sb = Sandbox::new();
    sb.write("vars.env", "A=1\n");
    let cfg = sb.write(
        "c.json",
        r#"{"scripts": [{"name": "t", "command": "true", "environment-file": "vars.env"}]}"#,
    );
    let validate = || {
        let out = Command::new(BIN)
            .args(["validate", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    chmod(&cfg, 0o644);
    chmod(&sb.file("vars.env"), 0o644);
    assert_eq!(validate().0, Some(0));
    for (mode, who) in [
        (0o664, "its group"),
        (0o646, "everyone"),
        (0o666, "its group and everyone"),
    ] {
        chmod(&cfg, mode);
        let (code, err) = validate();
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!("is writable by {who} (mode {mode:03o})")),
            "{err}"
        );
        assert!(err.contains("chmod go-w"), "says how to fix it: {err}");
    }
    chmod(&cfg, 0o600);
    chmod(&sb.file("vars.env"), 0o666);
    let (code, err) = validate();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("vars.env` is writable by its group and everyone"),
        "{err}"
    );
    assert!(err.contains("environment-file"), "names the field: {err}");
}

/// `user` switching sets exactly the user's groups (bansuri's supplementary groups are
/// dropped) and `env` cannot give the identity back.
#[test]
fn user_switching_drops_groups_and_env_cannot_bypass_it() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: needs root");
        return;
    }
    let sb = Sandbox::new();
    let mut b = sb.start(
        r#"{"scripts": [{"name": "u", "user": "nobody", "working-directory": "/",
            "env": {"USER": "root", "HOME": "/root", "LD_PRELOAD": ""},
            "command": "id -u; id -g; id -G; echo $USER"}]}"#,
        &["--exit-when-done"],
    );
    let (st, err) = b.wait(Duration::from_secs(20)).expect("exits");
    let log = b.log();
    assert_eq!(st.code(), Some(0), "{err}{log}");
    let out = output_lines(&log, "u");
    let nogroup = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
        .to_string();
    assert_eq!(out.first().copied(), Some("65534"), "{log}");
    assert_eq!(out.get(1).copied(), Some(nogroup.as_str()), "{log}");
    assert!(
        !out.get(2).unwrap_or(&"").split(' ').any(|g| g == "0"),
        "root's group 0 dropped: {log}"
    );
    // USER/LOGNAME/HOME describe the identity the task runs as: `env` cannot override them.
    assert_eq!(out.get(3).copied(), Some("nobody"));
}

/// No value from `env` or an environment-file reaches the job log, the state file,
/// `status` (table and JSON) or the dashboard (/api/status, /metrics, /).
#[test]
fn secrets_from_env_never_reach_log_state_status_or_dashboard() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    sb.write("secret.env", "DB_PASSWORD=hunter2-file-secret\n");
    let b = sb.start(
        r#"{"dashboard": "127.0.0.1:0", "scripts": [
            {"name": "app", "command": "exec sleep 300", "env": {"API_TOKEN": "tok-env-secret-42"},
             "environment-file": "secret.env", "description": "uses a token"}
        ]}"#,
        &[],
    );
    let state = sb.file(".bansuri/state.json");
    let url = wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&state).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let running = text.contains("RUNNING");
        let url = v["control"]["dashboard"].as_str().map(str::to_owned)?;
        running.then_some(url)
    })
    .expect("running with a dashboard");
    let get = |path: &str| {
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    let status = |json: bool| {
        let mut c = Command::new(BIN);
        c.arg("status").arg("--config").arg(sb.file("config.json"));
        if json {
            c.arg("--json");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    let places = [
        ("job log", b.log()),
        ("state file", std::fs::read_to_string(&state).unwrap()),
        ("status", status(false)),
        ("status --json", status(true)),
        ("/api/status", get("/api/status")),
        ("/metrics", get("/metrics")),
        ("/", get("/")),
    ];
    for (place, text) in &places {
        assert!(!text.is_empty(), "{place} is empty");
        for secret in ["tok-env-secret-42", "hunter2-file-secret"] {
            assert!(!text.contains(secret), "{place} shows a secret:\n{text}");
        }
    }
    assert!(
        places[3].1.contains("\"app\""),
        "the task is there: {}",
        places[3].1
    );
}

/// `bansuri validate` of `cfg`, which must refuse it (exit 2): its stderr.
fn refused_by_validate(cfg: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(["validate", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{}: {err}", cfg.display());
    err
}

/// A config error about `env` or an environment-file line shows the place and the name,
/// never the value.
#[test]
fn config_errors_do_not_print_secret_values() {
    let sb = Sandbox::new();
    sb.write("bad.env", "GOOD=1\nthis line is broken sk-live-777\n");
    let cfg = sb.write(
        "c.json",
        "{\"scripts\": [{\"name\": \"t\", \"command\": \"true\",\n  \"env\": {\"TOKEN\": [\"sk-live-999\"]}, \"environment-file\": \"bad.env\"}]}",
    );
    let err = refused_by_validate(&cfg);
    assert!(
        err.contains("c.json:2:") && err.contains("bad.env:2"),
        "places are named: {err}"
    );
    assert!(
        !err.contains("sk-live-999") && !err.contains("sk-live-777"),
        "{err}"
    );
}

/// A one-line config (JSON, or a YAML flow map) holds the `env` secrets on the line of
/// every error: the snippet shows them as `***` whatever field the error is in, on
/// stderr (`validate`) and in the job log (a refused reload).
#[test]
fn config_errors_mask_env_values_on_the_same_line() {
    let sb = Sandbox::new();
    let cases = [
        (
            "one.json",
            r#"{"scripts": [{"name": "t", "command": "true", "env": {"TOKEN": "sk-live-111", "N": 42424242}, "timer": "soon"}]}"#,
        ),
        (
            "flow.yaml",
            "scripts:\n  - {name: t, command: \"true\", env: {TOKEN: sk-live-222, N: 42424242}, timer: soon}\n",
        ),
        (
            "after.json",
            r#"{"scripts": [{"name": "t", "timer": "soon", "command": "true", "env": {"TOKEN": "sk-live-333"}}]}"#,
        ),
    ];
    for (file, text) in cases {
        let cfg = sb.write(file, text);
        let err = refused_by_validate(&cfg);
        assert!(
            err.contains("invalid `timer`") && err.contains("soon"),
            "{file}: {err}"
        );
        assert!(
            err.contains("***"),
            "{file}: the line is shown, masked: {err}"
        );
        assert!(
            !err.contains("sk-live-") && !err.contains("42424242"),
            "{file}: a value of `env` was printed:\n{err}"
        );
        // The underline still points at the bad value.
        let lines: Vec<&str> = err.lines().collect();
        let at = lines.iter().position(|l| l.contains("***")).unwrap();
        let col = lines[at + 1].find('^').expect("an underline");
        let under = &lines[at][col..];
        assert!(
            under.starts_with("\"soon\"") || under.starts_with("soon"),
            "{file}: the underline is at {under:?}:\n{err}"
        );
    }
    // A file that does not even parse: no tree says where the values are; the `env`
    // block is masked as written.
    for (file, text) in [
        (
            "syntax.json",
            r#"{"scripts": [{"name": "t", "env": {"TOKEN": "sk-live-444"}, "timer": 5,]}"#,
        ),
        (
            "syntax.yaml",
            "scripts:\n  - {name: t, env: {TOKEN: sk-live-555}, timer: [5}\n",
        ),
        (
            "block.yaml",
            "scripts:\n  - name: t\n    command: x\n    env:\n      TOKEN: sk-live-666: x\n",
        ),
        (
            "table.toml",
            "[[scripts]]\nname = \"t\"\ncommand = \"x\"\n[scripts.env]\nTOKEN = \"sk-live-777\n",
        ),
    ] {
        let cfg = sb.write(file, text);
        let err = refused_by_validate(&cfg);
        assert!(
            err.contains("***"),
            "{file}: the line is shown, masked: {err}"
        );
        assert!(
            !err.contains("sk-live-"),
            "{file}: a value of `env` was printed:\n{err}"
        );
    }
    // On reload the refusal reaches the job log: masked there too.
    let b = sb.start(
        r#"{"scripts": [{"name": "t", "command": "sleep 300"}]}"#,
        &["--check-interval", "1h"],
    );
    b.wait_log("the start", Duration::from_secs(30), |l| {
        l.contains("Executing")
    });
    sb.write("config.json", cases[0].1);
    b.signal(libc::SIGHUP);
    let log = b.wait_log("the refusal", Duration::from_secs(30), |l| {
        l.contains("was not loaded")
    });
    assert!(log.contains("invalid `timer`"), "{log}");
    assert!(
        !log.contains("sk-live-") && !log.contains("42424242"),
        "{log}"
    );
}
