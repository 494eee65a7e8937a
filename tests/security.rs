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
    let state = sb.file(".bansuri/config.json/state.json");
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

// ------------------------------------------------------------ issue 15: trust as root

const NOBODY: u32 = 65534;
const T: Duration = Duration::from_secs(20);

fn chown(p: &std::path::Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), None).unwrap();
}

/// `bansuri validate --config cfg`: (exit code, stderr).
fn validate(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["validate", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `script` with `sh -c` as nobody (another user), as an attacker would.
fn as_nobody(script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv")
}

/// As root, a config, environment-file or Python module that another user owns, or that
/// sits in a directory another user can change (not sticky), is refused with who can
/// change it and how to fix it; a root file in a sticky shared directory (/tmp) is fine.
#[test]
fn root_refuses_files_that_another_user_or_a_directory_above_them_lets_change() {
    if !root_or_skip("the root trust checks") {
        return;
    }
    let sb = Sandbox::new();
    let d = sb.file("d");
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o755);
    let cfg = d.join("c.json");
    std::fs::write(&cfg, r#"{"scripts": [{"name": "t", "command": "true"}]}"#).unwrap();
    chmod(&cfg, 0o644);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(0), "root's file in root's directories: {err}");

    chown(&d, NOBODY);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "directory `{}` (on the way to `{}`) is owned by",
            d.display(),
            cfg.display()
        )) && err.contains("(uid 65534), who could replace what is in it"),
        "says who: {err}"
    );
    assert!(
        err.contains(&format!("chown root {}", d.display())),
        "{err}"
    );

    chown(&d, 0);
    chmod(&d, 0o777);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("is writable by its group and everyone (mode 777, not sticky)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("chmod go-w {}", d.display())),
        "{err}"
    );

    // Sticky, as /tmp: only an entry's owner can replace it; root's file is fine.
    chmod(&d, 0o1777);
    assert_eq!(
        validate(&cfg).0,
        Some(0),
        "root's file in a sticky directory"
    );
    chown(&cfg, NOBODY);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("`{}` is owned by", cfg.display())) && err.contains("(uid 65534)"),
        "{err}"
    );
    chown(&cfg, 0);
    // Another user's link in the sticky directory, to root's file.
    let link = d.join("link.json");
    std::os::unix::fs::symlink(&cfg, &link).unwrap();
    chown(&link, NOBODY);
    let (code, err) = validate(&link);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a symbolic link of"), "{err}");
    chmod(&d, 0o755);

    // The environment-file and the Python module of a task that runs as root: the same.
    sb.write("vars.env", "A=1\n");
    sb.write("mymod.py", "x = 1\n");
    let cfg = sb.write(
        "c.json",
        r#"{"scripts": [{"name": "t", "command": "true", "environment-file": "vars.env"},
                        {"name": "py", "no-interface": true, "command": "mymod:Task"}]}"#,
    );
    chmod(&cfg, 0o600);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(0), "{err}");
    chown(&sb.file("vars.env"), NOBODY);
    chown(&sb.file("mymod.py"), NOBODY);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("vars.env` is owned by") && err.contains("environment-file"),
        "{err}"
    );
    assert!(err.contains("mymod.py` is owned by"), "the module: {err}");
}

/// A config that another user replaces (in a directory that became writable to them) is
/// not applied on reload: the running config stays, the refusal is logged, and the
/// replacement's task never runs as root.
#[test]
fn root_keeps_its_config_when_another_user_replaces_it() {
    if !root_or_skip("the root trust checks on reload") {
        return;
    }
    let sb = Sandbox::new();
    chmod(sb.path(), 0o755); // nobody may reach `d`
    let d = sb.file("d");
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o755);
    let cfg = d.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"scripts": [{"name": "keep", "command": "exec sleep 300"}]}"#,
    )
    .unwrap();
    let mut b = sb.start_file(&cfg, "log.txt");
    b.wait_log("keep running", T, |l| {
        l.contains("[keep] Executing shell command")
    });
    // An administrator's mistake: the directory becomes writable by everyone.
    chmod(&d, 0o777);
    let pwned = sb.file("pwned");
    let evil = format!(
        r#"{{"scripts": [{{"name": "keep", "command": "exec sleep 300"}}, {{"name": "pwn", "command": "id -u > {}"}}]}}"#,
        pwned.display()
    );
    let out = as_nobody(&format!(
        "printf '%s' '{evil}' > {d}/new.json && mv -f {d}/new.json {d}/c.json",
        d = d.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = client(&cfg, &["reload"], &[]);
    let text = b.wait_log("the refusal", T, |l| {
        l.contains("was not loaded: another user could have written it")
            && l.contains("bansuri runs as root and refuses it")
    });
    assert!(
        text.contains("still running the config loaded at"),
        "{text}"
    );
    assert!(
        !text.contains("[pwn]"),
        "the replacement's task never starts: {text}"
    );
    assert!(!pwned.exists(), "nothing ran as root");
    b.signal(libc::SIGTERM);
    b.wait(T).expect("exits");
}

/// An existing state directory that another user owns, or that others can write, is
/// refused at start with the fix, so a link planted there (at the temporary file's name an
/// older bansuri used) never makes root overwrite another file.
#[test]
fn root_refuses_a_state_directory_that_others_can_write() {
    if !root_or_skip("the state directory checks") {
        return;
    }
    let sb = Sandbox::new();
    let victim = sb.write("victim", "precious\n");
    let dir = sb.file(".bansuri/config.json");
    std::fs::create_dir_all(&dir).unwrap();
    chmod(&dir, 0o777);
    chown(&dir, NOBODY);
    // Links where bansuri writes: the state file and temporary names an older bansuri
    // used (`.state.json.tmp-PID`) for the next few pids.
    let next_pid: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    for pid in next_pid..next_pid + 200 {
        let l = dir.join(format!(".state.json.tmp-{pid}"));
        std::os::unix::fs::symlink(&victim, &l).unwrap();
        chown(&l, NOBODY);
    }
    let cfg = r#"{"scripts": [{"name": "t", "command": "exec sleep 300"}]}"#;
    for (uid, mode, says) in [
        (
            NOBODY,
            0o700,
            "belongs to uid 65534, not to bansuri's uid 0",
        ),
        (0, 0o777, "is writable by others (mode 777)"),
        (0, 0o770, "is writable by its group (mode 770)"),
    ] {
        chown(&dir, uid);
        chmod(&dir, mode);
        let mut b = sb.start(cfg, &[]);
        let (st, err) = b
            .wait(T)
            .unwrap_or_else(|| panic!("must refuse; log:\n{}", b.log()));
        assert_eq!(st.code(), Some(1), "{err}");
        assert!(
            err.contains("refusing to start: the state directory") && err.contains(says),
            "{err}"
        );
        assert!(err.contains("chmod 700"), "the fix: {err}");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // An explicit `state_dir` below a directory another user owns: they could rename
    // the directory in between and put a link in its place, so the parents count too.
    let theirs = sb.file("theirs");
    std::fs::create_dir_all(theirs.join("p/st")).unwrap();
    chown(&theirs, NOBODY);
    let cfg = format!(
        r#"{{"state_dir": "{}/p/st", "scripts": [{{"name": "t", "command": "exec sleep 300"}}]}}"#,
        theirs.display()
    );
    let mut b = sb.start(&cfg, &[]);
    let (st, err) = b
        .wait(T)
        .unwrap_or_else(|| panic!("must refuse; log:\n{}", b.log()));
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to start: the state directory")
            && err.contains("is owned by user nobody (uid 65534)"),
        "{err}"
    );
}

/// As root, a `log_file` or task output file that is another user's link is not
/// followed (the task fails saying why); a link that is root's, to root's file, is.
#[test]
fn root_does_not_follow_another_users_link_for_log_and_output_files() {
    if !root_or_skip("the log file link checks") {
        return;
    }
    let sb = Sandbox::new();
    let victim = sb.write("victim", "precious\n");
    let shared = sb.file("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777); // as /tmp
    let plant = |name: &str, uid: u32| {
        let l = shared.join(name);
        std::os::unix::fs::symlink(&victim, &l).unwrap();
        chown(&l, uid);
        l
    };
    let job_log = plant("job.log", NOBODY);
    let cfg = format!(
        r#"{{"log_file": "{}", "scripts": [{{"name": "t", "command": "true"}}]}}"#,
        job_log.display()
    );
    let mut b = sb.start_logging_to(&cfg, &["--exit-when-done"], sb.file("none.txt"));
    let (st, err) = b.wait(T).expect("exits");
    assert_ne!(st.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("cannot open log file {}", job_log.display()))
            && err.contains("it is a symbolic link of")
            && err.contains("(uid 65534)"),
        "{err}"
    );

    let out = plant("out.txt", NOBODY);
    let err_link = plant("err.txt", NOBODY);
    let ok_link = shared.join("ok.txt");
    let ok_target = sb.write("ok-target.txt", "");
    std::os::unix::fs::symlink(&ok_target, &ok_link).unwrap();
    let cfg = format!(
        r#"{{"scripts": [
            {{"name": "o", "command": "echo to-victim", "stdout": "{}"}},
            {{"name": "e", "command": "echo to-victim >&2", "stdout": "log", "stderr": "{}"}},
            {{"name": "r", "command": "echo via-root-link", "stdout": "{}"}}]}}"#,
        out.display(),
        err_link.display(),
        ok_link.display()
    );
    let mut b = sb.start(&cfg, &["--exit-when-done"]);
    let (_, err) = b.wait(T).expect("exits");
    let log = b.log();
    for l in [&out, &err_link] {
        assert!(
            log.contains(&format!("{}: it is a symbolic link of", l.display())),
            "{err}{log}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&ok_target).unwrap(),
        "via-root-link\n",
        "root's link to root's file is followed: {log}"
    );
}

/// Another user's `status` on a root bansuri says permission denied, naming the path,
/// not "no state file".
#[test]
fn status_of_another_user_says_permission_denied() {
    if !root_or_skip("status as another user") {
        return;
    }
    let sb = Sandbox::new();
    chmod(sb.path(), 0o755);
    let b = sb.start(
        r#"{"scripts": [{"name": "t", "command": "exec sleep 300"}]}"#,
        &[],
    );
    let state = sb.file(".bansuri/config.json/state.json");
    wait_for(T, || state.exists().then_some(()))
        .unwrap_or_else(|| panic!("no state file; log:\n{}", b.log()));
    chmod(&sb.file("config.json"), 0o644);
    let out = as_nobody(&format!(
        "{BIN} status --config {}",
        sb.file("config.json").display()
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot read the state file {}: permission denied",
            state.display()
        )),
        "{err}"
    );
    assert!(!err.contains("no bansuri has run"), "{err}");
    assert!(
        err.contains("root (uid 0): run the command as that user"),
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

/// A FIFO planted at a task's output path (a dated name is predictable) does not block the
/// loop in `open`: that task fails to start saying why, a timer keeps firing, SIGTERM stops
/// bansuri. And as root, a link planted in a directory above the output file (a directory
/// another user owns) is not followed: the task fails to start, the victim is untouched.
#[test]
fn a_fifo_or_a_link_above_an_output_file_neither_blocks_nor_redirects_root() {
    if !root_or_skip("the output file checks") {
        return;
    }
    let sb = Sandbox::new();
    let fifo = sb.file("out.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    // A reader keeps the FIFO open, as an attacker would: an open for writing succeeds
    // then, and only the type check refuses it.
    let reader = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3<>{} ; sleep 60", fifo.display()))
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _reader = Reap(reader);
    // A directory of another user's on the way to a root-owned victim directory.
    let victim_dir = sb.file("rootonly");
    std::fs::create_dir(&victim_dir).unwrap();
    let theirs = sb.file("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, NOBODY);
    std::os::unix::fs::symlink(&victim_dir, theirs.join("logs")).unwrap();
    chown(&theirs.join("logs"), NOBODY);
    let cfg = format!(
        r#"{{"scripts": [
            {{"name": "fifo", "command": "echo hi", "stdout": "{}"}},
            {{"name": "above", "command": "echo planted", "stdout": "{}/logs/out.log"}},
            {{"name": "tick", "command": "true", "timer": "200ms"}}]}}"#,
        fifo.display(),
        theirs.display()
    );
    let mut b = sb.start(&cfg, &[]);
    b.wait_log("both refusals and ticks after them", T, |l| {
        l.contains("out.fifo` is a FIFO")
            && l.contains("(for the output file")
            && l.matches("[tick] Executing").count() >= 5
    });
    let log = b.log();
    assert!(log.contains("[fifo] ERROR: Failed to start"), "{log}");
    assert!(log.contains("[above] ERROR: Failed to start"), "{log}");
    assert!(!victim_dir.join("out.log").exists(), "{log}");
    b.signal(libc::SIGTERM);
    let (st, _) = b.wait(T).expect("SIGTERM stops bansuri");
    assert_eq!(st.code(), Some(0));
}
