//! Running tasks on the other nodes of a multi-node allocation (issue 18): one SLURM step
//! starts `bansuri agent` on each node and the leader dispatches runs to them.
//!
//! Here: the wire protocol ([`protocol`]), the agent itself ([`node`], `bansuri agent`)
//! and the leader's sans-IO view of its agents ([`fleet`]: readiness, heartbeats, node
//! loss). The leader's I/O (the step, its pipes, the remote start and signal paths) is
//! `runtime/agents.rs`; where a run goes is the core's packing (`core/alloc.rs`,
//! `resources::pack::step_on`).
//!
//! Owns: the protocol between leader and agents. Must not: decide where runs go (the
//! leader's scheduler does).

pub mod fleet;
pub mod node;
pub mod protocol;
