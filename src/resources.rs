//! Allocation-aware scheduling, the pure foundation (issue 17): what the node gives
//! bansuri, what each run asks for, which runs start now, and what a started run is told.
//!
//! Owns: Linux CPU lists ([`CpuSet`]).
//!
//! Must not: read the clock, log, or decide anything about tasks beyond whether a request
//! fits.

pub mod cpuset;

pub use cpuset::{CpuListError, CpuSet};
