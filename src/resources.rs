//! Allocation-aware scheduling, the pure foundation (issue 17): what the node gives
//! bansuri, what each run asks for, which runs start now, and what a started run is told.
//!
//! The pieces, in the order a run meets them:
//!
//! * [`os::read_inputs`] reads the node's facts once at start-up ([`Inputs`]: the
//!   environment, bansuri's CPU affinity, the machine's memory, each CPU's socket and
//!   NUMA node);
//!   [`Inventory::from_inputs`] turns them, with the config's `resources` block
//!   ([`Declared`]), into what there is, each figure with where it came from (its
//!   `Display` is the job log header's line). The rules are in [`inventory`].
//! * A task asks with a [`Request`] (`cpus` default 1, `gpus`, `mem`); [`validate`] says
//!   whether the inventory can ever give it.
//! * The [`Ledger`] holds what is free; [`pack::step`] decides, from the waiting runs in
//!   due order and the running runs' expected ends, which start now (each with a
//!   [`Grant`]: which CPUs, which GPUs, how much memory) and why each other one waits
//!   ([`Reason`], with the words of `status`). One reservation for the first run that
//!   does not fit, backfill that cannot delay it, nothing started that would end after
//!   the job's time limit: see [`pack`].
//! * [`bind::environment`] gives a started run its variables (`OMP_NUM_THREADS`,
//!   `BANSURI_CPUS`, `CUDA_VISIBLE_DEVICES` and friends, `BANSURI_GPUS`), and
//!   [`os::apply_affinity`] binds the child to its CPUs before exec.
//! * [`timeleft`]: a task's expected runtime (declared, or the p95 of its last 20
//!   successful runs) and the latest a run may end (the job's end minus the stop grace).
//!
//! Everything but the `os` file is pure: facts and times come in as values (times as
//! [`crate::clock::Mono`]), so every rule is tested with a fake clock.
//!
//! Owns: Linux CPU lists ([`CpuSet`]); the inventory's rules (which variable wins, the
//! CPU cap, the declared override) and its words; requests, grants and which CPUs and
//! GPUs a grant gets; the packing rules (due order, reservation, backfill, the time
//! limit) and the reasons a run waits; the binding variables and the affinity call;
//! the expected-runtime arithmetic.
//!
//! Must not: read the clock, log, keep state between calls beyond the [`Ledger`] and a
//! [`History`] the caller holds, read /proc (the `sample` module's), or know tasks,
//! runs, config fields or the core's states: the caller names runs with its own ids and
//! turns errors into config errors or log lines. It imports only the leaves `clock` and
//! `text`, so that the core may import it (its `os` file makes its system calls through
//! nix, not through a module of ours).

pub mod amount;
pub mod bind;
pub mod cpuset;
pub mod inventory;
pub mod ledger;
pub mod os;
pub mod pack;
pub mod timeleft;

pub use amount::{fmt_mem, Amounts, Kind};
pub use bind::{environment, GpuNumbering};
pub use cpuset::{CpuListError, CpuSet};
pub use inventory::{Declared, DeclaredCpus, Inputs, Inventory, InventoryError, Place, Topology};
pub use ledger::{validate, Grant, Ledger, Request, Shortage, TooLarge};
pub use os::{affinity_mask, apply_affinity, apply_mask, read_inputs, ReadError};
pub use pack::{step, step_on, Decision, Reason, Reservation, Running, Waiting};
pub use timeleft::{ends_by, expected, latest_end, p95, History, KEPT_RUNS};
