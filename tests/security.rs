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
