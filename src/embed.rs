//! The library API: a program of your own that embeds bansuri, with in-process tasks
//! ([`Task`]) and notifiers ([`crate::Notifier`]) registered by name.
//!
//! ```no_run
//! use bansuri::{Builder, RunContext, Task, TaskInfo};
//! use std::io::Write;
//!
//! struct Hello;
//!
//! impl Task for Hello {
//!     fn run(&self, ctx: &mut RunContext) -> i32 {
//!         let name = ctx.info().name.clone();
//!         let _ = writeln!(ctx.stdout(), "hello from {name}");
//!         0
//!     }
//! }
//!
//! fn main() {
//!     let code = Builder::new()
//!         .task("hello", |_info: &TaskInfo| Hello)
//!         .run_cli();
//!     std::process::exit(code);
//! }
//! ```
//!
//! With `{"name": "greet", "command": "hello", "no-interface": true, "timer": "1m"}` in
//! its config, that program behaves exactly like `bansuri` (same command line, same job
//! log, same hot reload) and runs `Hello` every minute, with the task's timeout, retries,
//! overlap policy and notifications, as it would run a process.
//!
//! # How an in-process run works
//! Each attempt gets a fresh value from the factory and a thread of its own, which calls
//! [`Task::run`]. What the task writes to [`RunContext::stdout`] and
//! [`RunContext::stderr`] goes where a process's output would (job log lines prefixed with
//! the task name, or the task's `stdout`/`stderr` files). When `run` returns, the thread
//! tells the event loop (through an eventfd) and its return value is the attempt's exit
//! code, judged by `success-codes`. A panic counts as exit code 101.
//!
//! To stop a run (timeout, shutdown, removal, `overlap: replace`) bansuri calls
//! [`Task::stop`] (on a short-lived thread of its own, so a slow `stop` blocks nothing)
//! and sets the flag behind [`RunContext::stop_requested`] and [`RunContext::sleep`].
//! If `run` has not returned after the grace (`stoptime`, default `watchdog_timeout`),
//! the attempt is recorded as killed by SIGKILL and its thread is abandoned: Rust cannot
//! kill a thread, so it runs on until `run` returns, its output is discarded and its
//! result ignored. A task that may block for long should therefore watch the flag, or
//! make `stop` interrupt what it waits on.
//!
//! An in-process task shares bansuri's process: its current directory is bansuri's (use
//! [`TaskInfo::working_directory`] to build paths) and its environment is bansuri's
//! (the task's `env` is in [`TaskInfo::env`]); it has no pid of its own (status shows
//! none, the core sees pid 0) and no CPU or memory figures.

pub use crate::api::{Builder, Registry, RunContext, Task, TaskFactory, TaskInfo};

impl Builder {
    /// Run bansuri's command line on this program's arguments (`run`, `validate`, every
    /// flag) with the registered tasks and notifiers; returns the exit code to exit with.
    pub fn run_cli(self) -> i32 {
        crate::cli::main_with(std::env::args_os(), self.registry)
    }

    /// [`Builder::run_cli`] on the given arguments (the first is the program name).
    pub fn run_cli_from<I, A>(self, args: I) -> i32
    where
        I: IntoIterator<Item = A>,
        A: Into<std::ffi::OsString> + Clone,
    {
        crate::cli::main_with(args, self.registry)
    }
}
