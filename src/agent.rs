//! Running tasks on the other nodes of a multi-node allocation (issue 18): one SLURM step
//! starts `bansuri agent` on each node and the leader dispatches runs to them.
//!
//! Built so far: the wire protocol ([`protocol`]), pure and unit-tested. The agent's loop
//! and the leader's remote executor are not built yet.
//!
//! Owns: the protocol between leader and agents. Must not: decide where runs go (the
//! leader's scheduler does).

pub mod protocol;
