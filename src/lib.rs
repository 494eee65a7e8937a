//! bansuri: keep many scripts running inside one SLURM job, or on any Linux box.
//!
//! # Theory of operation
//!
//! A config file ([`config`]) becomes a validated [`spec::Spec`]. The supervisor
//! [`core`] is a pure state machine over the tasks of that spec: it is fed inputs
//! (start-up, a deadline passed, a process started or ended, a shutdown signal) together
//! with the present time ([`clock::Now`]), and answers with actions (spawn a run, signal a
//! process group, write a lifecycle line, exit). It never reads a clock or touches the OS,
//! so every timing rule is tested by stepping a fake clock.
//!
//! The [`runtime`] is the only impure part: one thread, one epoll set holding a signalfd
//! and every child's output pipe, a timeout equal to the core's next deadline. It executes
//! actions through [`spawn`] (fork/exec into a new session, group signals, reaping) and
//! writes child output through [`output`] (line splitting, prefixing, one buffered job
//! log). [`cli`] is the command line. See ARCHITECTURE.md for the state diagram.
//!
//! Every module shares its vocabulary through leaves that import nothing of the crate:
//! [`model`] (how a process ended, what it used, a task's state), [`text`] (durations,
//! sizes, signal names, wall times as users read and write them), [`diagnostic`] (config
//! errors and warnings) and `console` (printing that survives a closed pipe). The
//! modules import one another without a cycle (tests/architecture.rs checks it).
//!
//! Inside a SLURM job, [`slurm`] reads the job (environment, KillWait, end time) and the
//! runtime turns Slurm's deadlines into two more inputs of the core: a SIGKILL-by instant
//! when SIGTERM comes, so bansuri's own SIGKILL precedes Slurm's, and a shutdown at a wall
//! time for `stop_before_end`. `srun` tasks run as job steps of the allocation.
//!
//! # As a library
//! bansuri is also a crate for programs that embed the orchestrator: implement [`Task`]
//! (in-process tasks, selected by `"no-interface": true`) or [`Notifier`] (selected by
//! `"notify": "<name>"`), register them with a [`Builder`], and hand over to
//! [`Builder::run_cli`], which behaves exactly like the `bansuri` binary. See [`embed`]
//! and [`notify`], and `cargo run --example custom_task` / `--example custom_notifier`.
#![warn(missing_docs)]

pub mod agent;
pub mod api;
pub mod array;
pub mod cli;
pub mod clock;
pub mod config;
mod console;
pub mod control;
pub mod core;
pub mod dashboard;
pub mod diagnostic;
pub mod embed;
pub mod guardian;
pub mod host;
pub mod level;
pub mod model;
pub mod notify;
pub mod output;
pub mod python;
pub mod resources;
pub mod rotate;
pub mod runtime;
pub mod sample;
pub mod schedule;
pub mod slurm;
pub mod spawn;
pub mod spec;
pub mod text;
pub mod words;

pub use embed::{Builder, Registry, RunContext, Task, TaskInfo};

/// The version with the commit it was built from: `0.1.0 (3f2a9c1d0b7e 2026-11-22)`
/// (`-dirty` after the hash when built with uncommitted changes; `unknown` without git;
/// see build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BANSURI_COMMIT"), ")");
pub use notify::{Notice, Notifier};
