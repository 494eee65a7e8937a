//! Carrying out a plan with real processes (each reaped before the test ends).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{parse_str, Format};

fn task(dir: &Path, json: &str) -> TaskSpec {
    let text = format!("{{\"scripts\": [{json}]}}");
    match parse_str(&text, &dir.join("c.json"), Format::Json) {
        Ok(spec) => spec.tasks.into_iter().next().unwrap(),
        Err(e) => panic!("config did not load:\n{e}"),
    }
}

/// Everything a child writes into `fd` (non-blocking) until it closes, and its status.
fn output_and_status(child: Child) -> (String, ExitStatus) {
    let mut pipe = File::from(child.stdout.expect("a stdout pipe"));
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no EOF; so far: {out:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.pid as i32);
    let status = match nix::sys::wait::waitpid(pid, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => ExitStatus::Code(code),
        other => panic!("unexpected wait result {other:?}"),
    };
    (String::from_utf8_lossy(&out).into_owned(), status)
}

#[test]
fn a_plan_is_carried_out_with_its_directory_environment_and_combined_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(
        dir.path(),
        r#"{"name": "a", "command": "echo \"$BANSURI_TASK $BANSURI_ATTEMPT $X\"; pwd; echo oops >&2; exit 3",
            "env": {"X": "y"}}"#,
    );
    let child = spawn(&t, 2).unwrap();
    assert!(child.stderr.is_none(), "stderr is combined");
    let (out, status) = output_and_status(child);
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(out, format!("a 2 y\n{}\noops\n", cwd.display()));
    assert_eq!(status, ExitStatus::Code(3));
}

#[test]
fn a_failed_start_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(
        dir.path(),
        r#"{"name": "a", "command": ["no-such-program-of-bansuri"]}"#,
    );
    let e = spawn(&t, 1).unwrap_err();
    assert!(
        matches!(&e, SpawnError::CommandNotFound(p) if p == "no-such-program-of-bansuri"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "command not found: `no-such-program-of-bansuri` (check its spelling, its path and PATH)"
    );
    let mut t = task(dir.path(), r#"{"name": "a", "command": "true"}"#);
    t.working_directory = dir.path().join("gone");
    let e = spawn(&t, 1).unwrap_err();
    assert!(
        matches!(&e, SpawnError::WorkingDirectory { dir, problem: DirProblem::Missing }
            if *dir == t.working_directory),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "working directory {} does not exist",
            t.working_directory.display()
        )
    );
}
