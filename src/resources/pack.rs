//! Packing with backfill: one pure step of the scheduler. Given the runs waiting to start
//! (in the order they became due), what the running runs hold and when they are expected
//! to end, `now` and the latest time a run may end (the job's end minus the stop grace),
//! [`step`] says which waiting runs start now, with their grants, and why each other one
//! waits.
//!
//! The rules (issue 17 §3 and §5), in due order:
//!
//! 1. A run that asks for more than there is at all never starts ([`Reason::Never`]); it
//!    reserves nothing, or it would stop everything behind it forever.
//! 2. A run whose expected runtime would take it past the end is not started
//!    ([`Reason::TooLate`]); a run of unknown runtime is started (nothing says it will
//!    not finish).
//! 3. Before any run has been refused, a run that fits starts.
//! 4. The first run that does not fit makes the one reservation (EASY backfill, as
//!    Slurm's backfill plugin does for its highest-priority job): the earliest time its
//!    request is free, from the running runs' expected ends in order. When that time
//!    would take it past the end, it is [`Reason::TooLate`] instead and reserves nothing.
//! 5. After the reservation, a later run starts only if it fits now **and** does not
//!    delay the reservation: it is expected to end by the reserved time, or it fits in
//!    what the reserved run will not need at that time (what will be free then, minus
//!    the reserved request, minus what earlier backfills of this step took of it).
//!    Otherwise it waits: [`Reason::Short`] if it does not fit now, else
//!    [`Reason::Behind`].
//!
//! The safe rule for unknown ends: a running run whose end is unknown is never counted
//! as ending. When the reserved request only becomes free once such a run ends, the
//! reserved time is unknown, no later run counts as ending before it, and "what it will
//! not need" is what is free now beyond its request: of every kind it is short of, all
//! that is free now is held for it. Free resources of that kind can then only grow until
//! it starts, so the first waiting run is never starved, whatever the smaller runs
//! behind it; the price is idle resources while it waits. A run that overruns its
//! expected end counts as ending now: the reservation stays as early as it can be, and
//! backfills are judged against it (estimates can be wrong; a backfill can then delay
//! the reserved run by as much as the estimate was wrong, as in Slurm).
//!
//! The reservation is recomputed at every step from the facts of that step; the caller
//! keeps nothing but the ledger.

use std::fmt;
use std::time::Duration;

use crate::clock::Mono;

use super::amount::Amounts;
use super::ledger::{Grant, Ledger, Request, Shortage, TooLarge};
use super::timeleft::ends_by;

/// A run waiting to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting<Id> {
    /// The caller's name for it (shown in [`Reason::Behind`]).
    pub id: Id,
    /// What it asks for.
    pub request: Request,
    /// How long it is expected to run, if known (declared or learned).
    pub expected: Option<Duration>,
    /// It may only run on node 0 (bansuri's own; issue 18), whatever the others have.
    pub here: bool,
}

/// A run holding resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running<'a> {
    /// What it holds.
    pub grant: &'a Grant,
    /// When it is expected to end, if known.
    pub end: Option<Mono>,
}

/// Why a run waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason<Id> {
    /// It does not fit in what is free now.
    Short(Shortage),
    /// It would end after the job's time limit (minus the stop grace).
    TooLate,
    /// It fits now but would delay the reserved run `Id`.
    Behind(Id),
    /// It asks for more than there is.
    Never(TooLarge),
}

/// The words of `status`: `needs 4 CPUs, 2 free`, `would end after the job's time
/// limit`, `waits behind task X (reserved)`, `asks for more than there is: ...`.
impl<Id: fmt::Display> fmt::Display for Reason<Id> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Short(s) => s.fmt(f),
            Reason::TooLate => f.write_str("would end after the job's time limit"),
            Reason::Behind(id) => write!(f, "waits behind task {id} (reserved)"),
            Reason::Never(t) => t.fmt(f),
        }
    }
}

/// The reservation of a step: the run it is for and when its request is expected to be
/// free (`None`: only once a run of unknown end ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation<Id> {
    /// The first run that did not fit.
    pub id: Id,
    /// When its request is expected to be free.
    pub at: Option<Mono>,
}

/// What one step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<Id> {
    /// The runs to start now, in due order, with what they were given (already taken
    /// from the ledger).
    pub start: Vec<(Id, Grant)>,
    /// The node of each run of `start`, in the same order (always 0 with one node).
    pub on: Vec<usize>,
    /// The runs that wait, in due order, with why.
    pub wait: Vec<(Id, Reason<Id>)>,
    /// The reservation, if a run did not fit.
    pub reservation: Option<Reservation<Id>>,
}

/// One step of the scheduler (see the module doc) on one node: takes the grants of the
/// runs it starts from `ledger`. `end` is the latest time a run may end (the job's end
/// minus the stop grace: `timeleft::latest_end`), `None` without a time limit.
pub fn step<Id: Clone>(
    ledger: &mut Ledger,
    waiting: &[Waiting<Id>],
    running: &[Running<'_>],
    now: Mono,
    end: Option<Mono>,
) -> Decision<Id> {
    let running: Vec<(usize, Running<'_>)> = running.iter().map(|r| (0, *r)).collect();
    step_on(std::slice::from_mut(ledger), waiting, &running, now, end)
}

/// One step of the scheduler over several nodes (issue 18), each with its ledger; each
/// running run comes with the index of the node it holds. The rules are [`step`]'s per
/// node:
///
/// * a run that fits on some node starts on the one with the most free CPUs (the lowest
///   index among equals): runs spread over the nodes;
/// * a run that fits nowhere is [`Reason::Never`] when no node has that much at all;
///   else the first such run reserves the node where its request is free earliest
///   (from that node's holders alone), and its shortage is told against the node with
///   the most free CPUs;
/// * after the reservation, a run that fits on another node than the reserved one starts
///   there (it cannot delay the reserved run); one that fits only on the reserved node
///   is judged by the backfill rule of that node.
///
/// [`Decision::on`] says where each started run goes. With one node this is [`step`].
pub fn step_on<Id: Clone>(
    nodes: &mut [Ledger],
    waiting: &[Waiting<Id>],
    running: &[(usize, Running<'_>)],
    now: Mono,
    end: Option<Mono>,
) -> Decision<Id> {
    let totals: Vec<Amounts> = nodes.iter().map(Ledger::total).collect();
    // Every holder of each node and when it frees what it holds; runs started in this step
    // join it.
    let mut holders = holders_by_node(nodes.len(), running, now);
    // The reservation: the run, its node, its time, and what it leaves to others then.
    let mut reserved: Option<(Reservation<Id>, usize, Amounts)> = None;
    let mut out = Decision {
        start: Vec::new(),
        on: Vec::new(),
        wait: Vec::new(),
        reservation: None,
    };
    let late = |at: Mono, w: &Waiting<Id>| match (w.expected, end) {
        (Some(e), Some(end)) => !ends_by(at, e, end),
        _ => false,
    };

    for w in waiting {
        let need = w.request.amounts();
        // The nodes it may use at all.
        let usable = |n: usize| usable(n, w.here);
        if !(0..nodes.len()).any(|n| usable(n) && totals[n].covers(&need)) {
            let have = largest(&totals, w.here);
            out.wait
                .push((w.id.clone(), Reason::Never(TooLarge { asked: need, have })));
            continue;
        }
        if late(now, w) {
            out.wait.push((w.id.clone(), Reason::TooLate));
            continue;
        }
        // The nodes it fits on now, the most free CPUs first.
        let mut fitting: Vec<usize> = (0..nodes.len())
            .filter(|&n| usable(n) && nodes[n].fits(&w.request).is_ok())
            .collect();
        fitting.sort_by_key(|&n| (std::cmp::Reverse(nodes[n].free().cpus), n));
        let short = || shortage(nodes, &totals, w.here, &need);
        let node = match &mut reserved {
            None => {
                let Some(&n) = fitting.first() else {
                    let shortage = short();
                    let (rnode, at, then_free) =
                        soonest_free(nodes, &totals, &holders, w.here, &need);
                    if at.is_some_and(|at| late(at, w)) {
                        out.wait.push((w.id.clone(), Reason::TooLate));
                        continue;
                    }
                    let leaves = then_free.minus(&need);
                    reserved = Some((
                        Reservation {
                            id: w.id.clone(),
                            at,
                        },
                        rnode,
                        leaves,
                    ));
                    out.wait.push((w.id.clone(), Reason::Short(shortage)));
                    continue;
                };
                n
            }
            Some((res, rnode, leaves)) => {
                if fitting.is_empty() {
                    out.wait.push((w.id.clone(), Reason::Short(short())));
                    continue;
                }
                match past_reservation(&fitting, res, *rnode, leaves, &need, w.expected, now) {
                    Ok(n) => n,
                    Err(why) => {
                        out.wait.push((w.id.clone(), why));
                        continue;
                    }
                }
            }
        };
        match nodes[node].allocate(&w.request) {
            Ok(grant) => {
                holders[node].push((w.expected.map(|e| now + e), need));
                out.start.push((w.id.clone(), grant));
                out.on.push(node);
            }
            // Checked by `fits` just above: cannot happen, but a wait is the safe answer.
            Err(short) => out.wait.push((w.id.clone(), Reason::Short(short))),
        }
    }
    out.reservation = reserved.map(|(r, _, _)| r);
    out
}

/// Every holder of each of `count` nodes, with when it frees what it holds.
fn holders_by_node(
    count: usize,
    running: &[(usize, Running<'_>)],
    now: Mono,
) -> Vec<Vec<(Option<Mono>, Amounts)>> {
    let mut holders = vec![Vec::new(); count];
    for (n, r) in running {
        if let Some(h) = holders.get_mut(*n) {
            h.push((r.end.map(|e| e.max(now)), r.grant.amounts()));
        }
    }
    holders
}

/// After the reservation (of `res` on node `rnode`, leaving `leaves` to others then): the
/// node a run that fits on `fitting` starts on, or why it waits. Another node than the
/// reserved one cannot delay it; on the reserved node the backfill rule decides.
fn past_reservation<Id: Clone>(
    fitting: &[usize],
    res: &Reservation<Id>,
    rnode: usize,
    leaves: &mut Amounts,
    need: &Amounts,
    expected: Option<Duration>,
    now: Mono,
) -> Result<usize, Reason<Id>> {
    if let Some(n) = fitting.iter().copied().find(|&n| n != rnode) {
        return Ok(n);
    }
    let ends_before = matches!((res.at, expected), (Some(at), Some(e)) if now + e <= at);
    if !ends_before {
        if !leaves.covers(need) {
            return Err(Reason::Behind(res.id.clone()));
        }
        *leaves = leaves.minus(need);
    }
    Ok(rnode)
}

/// May a run that must stay `here` use node `n`?
fn usable(n: usize, here: bool) -> bool {
    n == 0 || !here
}

/// The most any one usable node has (what a [`Reason::Never`] tells).
fn largest(totals: &[Amounts], here: bool) -> Amounts {
    (0..totals.len())
        .filter(|&n| usable(n, here))
        .map(|n| totals[n])
        .max_by_key(|t| (t.cpus, t.gpus, t.mem))
        .unwrap_or_default()
}

/// What `need` is short of, told against the usable node with the most free CPUs.
fn shortage(nodes: &[Ledger], totals: &[Amounts], here: bool, need: &Amounts) -> Shortage {
    let best = (0..nodes.len())
        .filter(|&n| usable(n, here) && totals[n].covers(need))
        .max_by_key(|&n| (nodes[n].free().cpus, std::cmp::Reverse(n)))
        .unwrap_or(0);
    Shortage::of(&nodes[best].free(), need).unwrap_or(Shortage {
        kind: super::amount::Kind::Cpus,
        need: need.cpus,
        free: 0,
    })
}

/// The usable node where `need` is free first (an unknown time last, the lowest index
/// among equals), when, and what is free there then. Some usable node covers `need`.
fn soonest_free(
    nodes: &[Ledger],
    totals: &[Amounts],
    holders: &[Vec<(Option<Mono>, Amounts)>],
    here: bool,
    need: &Amounts,
) -> (usize, Option<Mono>, Amounts) {
    (0..nodes.len())
        .filter(|&n| usable(n, here) && totals[n].covers(need))
        .map(|n| {
            let (at, then) = earliest(nodes[n].free(), &holders[n], need);
            (n, at, then)
        })
        .min_by_key(|&(n, at, _)| (at.is_none(), at, n))
        .unwrap_or((0, None, nodes.first().map(Ledger::free).unwrap_or_default()))
}

/// When `need` is first free, releasing the holders of known end in the order they end
/// (ties together), and what is free then; `None` and what is free now when only a
/// holder of unknown end would make it fit.
fn earliest(
    free: Amounts,
    holders: &[(Option<Mono>, Amounts)],
    need: &Amounts,
) -> (Option<Mono>, Amounts) {
    let mut known: Vec<(Mono, Amounts)> =
        holders.iter().filter_map(|&(e, a)| Some((e?, a))).collect();
    known.sort_by_key(|&(e, _)| e);
    let mut then = free;
    for (i, &(at, held)) in known.iter().enumerate() {
        then = then.plus(&held);
        let tie = known.get(i + 1).is_some_and(|&(next, _)| next == at);
        if !tie && then.covers(need) {
            return (Some(at), then);
        }
    }
    (None, free)
}

#[cfg(test)]
mod tests;
