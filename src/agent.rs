//! Running tasks on the other nodes of a multi-node allocation (issue 18): one SLURM step
//! starts `bansuri agent` on each node and the leader dispatches runs to them.
//!
//! Built so far: the wire protocol ([`protocol`]) and the agent itself ([`node`], `bansuri
//! agent`). The leader's side (the step that starts the agents, the remote executor, node
//! loss) is not built yet.
//!
//! Owns: the protocol between leader and agents. Must not: decide where runs go (the
//! leader's scheduler does).

pub mod fleet;
pub mod node;
pub mod protocol;
