//! A program that embeds bansuri and registers two in-process tasks.
//!
//! ```sh
//! cargo run --example custom_task -- --config examples/custom_task.json
//! ```
//!
//! It is the whole `bansuri` command line (`validate`, `--once`, `--exit-when-done`, ...)
//! plus two task kinds that a config selects with `"no-interface": true`:
//!
//! * `disk-check`: fails (exit 1) when the file system holding `DISK_PATH` (default: the
//!   task's working directory) has less than `DISK_MIN_FREE_PCT` percent free (default 10).
//! * `wait-file`: waits until `WAIT_FILE` (relative to the working directory) exists,
//!   checking every `WAIT_POLL_MS` milliseconds (default 200); exit 0 when it is there.
//!   Asked to stop (timeout, shutdown) it returns 1 at once. With `WAIT_IGNORE_STOP=1` it
//!   ignores the request, to show what bansuri does with a task that does not stop: after
//!   `stoptime` the attempt is recorded as killed and the thread is abandoned.
//!
//! Both read their settings from the task's `env` in the config.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bansuri::{Builder, RunContext, Task, TaskInfo};

/// `disk-check`: free space of one file system.
struct DiskCheck;

impl Task for DiskCheck {
    fn run(&self, ctx: &mut RunContext) -> i32 {
        let info = ctx.info().clone();
        let path = match ctx.env("DISK_PATH") {
            Some(p) => info.working_directory.join(p),
            None => info.working_directory.clone(),
        };
        let min: f64 = match ctx.env("DISK_MIN_FREE_PCT").unwrap_or("10").parse() {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(ctx.stderr(), "DISK_MIN_FREE_PCT: {e}");
                return 2;
            }
        };
        let st = match nix::sys::statvfs::statvfs(&path) {
            Ok(st) => st,
            Err(e) => {
                let _ = writeln!(ctx.stderr(), "cannot stat {}: {e}", path.display());
                return 2;
            }
        };
        let total = st.blocks() as f64 * st.fragment_size() as f64;
        let free = st.blocks_available() as f64 * st.fragment_size() as f64;
        let pct = if total > 0.0 {
            100.0 * free / total
        } else {
            0.0
        };
        let gib = |b: f64| b / (1u64 << 30) as f64;
        let _ = writeln!(
            ctx.stdout(),
            "{}: {:.1} GiB free of {:.1} GiB ({pct:.1}%, minimum {min}%)",
            path.display(),
            gib(free),
            gib(total)
        );
        if pct < min {
            let _ = writeln!(ctx.stderr(), "low disk space on {}", path.display());
            1
        } else {
            0
        }
    }
}

/// `wait-file`: wait for a file to appear.
struct WaitFile {
    /// Set by `stop` (the context's flag is set too; this shows the trait method).
    stopped: AtomicBool,
}

impl Task for WaitFile {
    fn run(&self, ctx: &mut RunContext) -> i32 {
        let info = ctx.info().clone();
        let Some(name) = ctx.env("WAIT_FILE").map(str::to_owned) else {
            let _ = writeln!(ctx.stderr(), "WAIT_FILE is not set in the task's env");
            return 2;
        };
        let file: PathBuf = info.working_directory.join(&name);
        let poll = Duration::from_millis(
            ctx.env("WAIT_POLL_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(200),
        );
        let stubborn = ctx.env("WAIT_IGNORE_STOP") == Some("1");
        let _ = writeln!(
            ctx.stdout(),
            "waiting for {name} (attempt {}/{})",
            info.attempt,
            info.attempts
        );
        loop {
            if file.exists() {
                let _ = writeln!(ctx.stdout(), "{name} is there");
                return 0;
            }
            if stubborn {
                std::thread::sleep(poll);
                continue;
            }
            if !ctx.sleep(poll) || self.stopped.load(Ordering::SeqCst) {
                let _ = writeln!(ctx.stderr(), "asked to stop before {name} appeared");
                return 1;
            }
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

fn main() {
    let code = Builder::new()
        .task("disk-check", |_: &TaskInfo| DiskCheck)
        .task("wait-file", |_: &TaskInfo| WaitFile {
            stopped: AtomicBool::new(false),
        })
        .run_cli();
    std::process::exit(code);
}
