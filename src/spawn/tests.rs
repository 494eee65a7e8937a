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
    let child = spawn(&t, 2, None).unwrap();
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
    let e = spawn(&t, 1, None).unwrap_err();
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
    let e = spawn(&t, 1, None).unwrap_err();
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

/// A grant of the highest CPU of this process's set (the lowest would also be where an
/// unbound child may run), and the inventory of this machine.
fn one_cpu_grant() -> (crate::resources::Grant, crate::resources::Inventory) {
    use crate::resources::{read_inputs, CpuSet, Grant, Inventory};
    let inventory = Inventory::from_inputs(&read_inputs().unwrap()).unwrap();
    let last = inventory.cpus.iter().last().expect("a CPU");
    let grant = Grant {
        cpus: CpuSet::from_cpus([last]),
        gpus: Vec::new(),
        mem: None,
    };
    (grant, inventory)
}

const SHOW_BINDING: &str = r#"{"name": "b", "command": "grep Cpus_allowed_list /proc/self/status; echo \"omp=$OMP_NUM_THREADS cpus=$BANSURI_CPUS\""}"#;

/// The child's `Cpus_allowed_list` and its `omp=... cpus=...` line.
fn binding_seen(out: &str) -> (String, String) {
    let mut lines = out.lines();
    let allowed = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    (allowed, lines.next().unwrap_or_default().to_owned())
}

/// Issue 17: the fast (vfork) path pins the child to its grant before exec and gives it
/// `OMP_NUM_THREADS` (bansuri's own value, if any, is replaced).
#[test]
fn the_fast_path_binds_a_child_to_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), SHOW_BINDING);
    let (grant, inventory) = one_cpu_grant();
    let b = Binding {
        grant: &grant,
        inventory: &inventory,
    };
    assert_eq!(
        LaunchPlan::new(&t, 1, &own(&t)).launcher,
        Launcher::Fast,
        "this start takes the fast path"
    );
    let (out, status) = output_and_status(spawn(&t, 1, Some(b)).unwrap());
    assert_eq!(status, ExitStatus::Code(0), "{out}");
    let cpu = grant.cpus.to_string();
    assert_eq!(
        binding_seen(&out),
        (cpu.clone(), format!("omp=1 cpus={cpu}"))
    );

    // Without a grant the child keeps bansuri's CPU set.
    let (out, _) = output_and_status(spawn(&t, 1, None).unwrap());
    assert_eq!(binding_seen(&out).0, inventory.cpus.to_string(), "{out}");
}

/// The fork path (tasks that switch users) pins the child too; `bind: false` does not.
#[test]
fn the_fork_path_binds_a_child_and_bind_false_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = task(dir.path(), SHOW_BINDING);
    let (grant, inventory) = one_cpu_grant();
    let b = Binding {
        grant: &grant,
        inventory: &inventory,
    };
    let mut plan = LaunchPlan::new(&t, 1, &own(&t)).bound(&t, Some(b));
    plan.launcher = Launcher::Fork;
    let (out, status) = output_and_status(launch(&plan).ok().expect("started"));
    assert_eq!(status, ExitStatus::Code(0), "{out}");
    let cpu = grant.cpus.to_string();
    assert_eq!(
        binding_seen(&out),
        (cpu.clone(), format!("omp=1 cpus={cpu}"))
    );

    t.needs.bind = false;
    let (out, _) = output_and_status(spawn(&t, 1, Some(b)).unwrap());
    let all = inventory.cpus.to_string();
    let omp = std::env::var("OMP_NUM_THREADS").unwrap_or_default();
    assert_eq!(binding_seen(&out), (all, format!("omp={omp} cpus=")));
}
