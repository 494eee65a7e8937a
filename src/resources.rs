//! Allocation-aware scheduling, the pure foundation (issue 17): what the node gives
//! bansuri, what each run asks for, which runs start now, and what a started run is told.
//!
//! Owns: Linux CPU lists ([`CpuSet`]).
//!
//! Must not: read the clock, log, or decide anything about tasks beyond whether a request
//! fits.

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
pub use os::{apply_affinity, read_inputs, ReadError};
pub use pack::{step, Decision, Reason, Reservation, Running, Waiting};
pub use timeleft::{ends_by, expected, latest_end, p95, History, KEPT_RUNS};
