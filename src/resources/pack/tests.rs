//! Scenarios of the packing step, with a fake clock: single steps checked in full, and a
//! small simulation (runs end when their true duration is up, new runs become due on a
//! timetable) for starvation and backfill over time.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::resources::amount::Amounts;
use crate::resources::cpuset::CpuSet;
use crate::resources::inventory::{Declared, Inputs, Inventory, Place, Topology};

const GIB: u64 = 1 << 30;

fn t(secs: u64) -> Mono {
    Mono(Duration::from_secs(secs))
}

fn ledger(cpus: u32, gpus: &[&str], mem: u64) -> Ledger {
    let affinity = CpuSet::from_cpus(0..cpus);
    Ledger::new(
        &Inventory::from_inputs(&Inputs {
            env: Default::default(),
            topology: Topology::from_fn(&affinity, |_| Place::default()),
            affinity,
            mem_total: mem,
            declared: Some(Declared {
                gpus: Some(gpus.iter().map(|g| g.to_string()).collect()),
                ..Default::default()
            }),
        })
        .unwrap(),
    )
}

fn run(id: &str, cpus: u32, gpus: u32, expected: Option<u64>) -> Waiting<String> {
    Waiting {
        id: id.to_owned(),
        request: Request {
            cpus,
            gpus,
            mem: None,
        },
        expected: expected.map(Duration::from_secs),
        here: false,
    }
}

fn ids<T>(v: &[(String, T)]) -> Vec<&str> {
    v.iter().map(|(id, _)| id.as_str()).collect()
}

fn reasons(d: &Decision<String>) -> Vec<(String, String)> {
    d.wait
        .iter()
        .map(|(id, r)| (id.clone(), r.to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Runs ending when their true duration is up, new runs due on a timetable, one step
/// per second.
struct Sim {
    ledger: Ledger,
    now: Mono,
    /// id, grant, expected end, true end.
    running: Vec<(String, Grant, Option<Mono>, Mono)>,
    waiting: Vec<Waiting<String>>,
    /// When each run became due, and its true duration.
    timetable: Vec<(Mono, Waiting<String>, Duration)>,
    truth: BTreeMap<String, Duration>,
    started: BTreeMap<String, Mono>,
    /// The last reason of each run that waited.
    last_reason: BTreeMap<String, String>,
}

impl Sim {
    fn new(ledger: Ledger) -> Sim {
        Sim {
            ledger,
            now: Mono::ZERO,
            running: Vec::new(),
            waiting: Vec::new(),
            timetable: Vec::new(),
            truth: BTreeMap::new(),
            started: BTreeMap::new(),
            last_reason: BTreeMap::new(),
        }
    }

    /// `w` becomes due at `at` and really runs `true_secs`.
    fn due(&mut self, at: u64, w: Waiting<String>, true_secs: u64) {
        self.timetable
            .push((t(at), w, Duration::from_secs(true_secs)));
    }

    fn until(&mut self, secs: u64) {
        while self.now <= t(secs) {
            let now = self.now;
            let (ended, left): (Vec<_>, Vec<_>) = self.running.drain(..).partition(|r| r.3 <= now);
            self.running = left;
            for (_, g, _, _) in &ended {
                self.ledger.release(g);
            }
            let (due, later): (Vec<_>, Vec<_>) =
                self.timetable.drain(..).partition(|(at, _, _)| *at <= now);
            self.timetable = later;
            for (_, w, truth) in due {
                self.truth.insert(w.id.clone(), truth);
                self.waiting.push(w);
            }
            let running: Vec<Running<'_>> = self
                .running
                .iter()
                .map(|(_, g, end, _)| Running {
                    grant: g,
                    end: *end,
                })
                .collect();
            let d = step(&mut self.ledger, &self.waiting, &running, now, None);
            for (id, r) in &d.wait {
                self.last_reason.insert(id.clone(), r.to_string());
            }
            for (id, grant) in d.start {
                let w = self.waiting.iter().position(|w| w.id == id).unwrap();
                let w = self.waiting.remove(w);
                let end = w.expected.map(|e| now + e);
                self.started.insert(id.clone(), now);
                self.running
                    .push((id.clone(), grant, end, now + self.truth[&id]));
            }
            self.now = now + Duration::from_secs(1);
        }
    }

    fn started_at(&self, id: &str) -> Option<u64> {
        self.started.get(id).map(|m| m.0.as_secs())
    }

    /// Runs started in `[from, to)` other than `except`.
    fn started_between(&self, from: u64, to: u64, except: &str) -> Vec<String> {
        self.started
            .iter()
            .filter(|(id, at)| id.as_str() != except && (t(from)..t(to)).contains(*at))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// A 4-CPU run behind four 1-CPU runs ending at 10, 11, 12, 13, with a 1-CPU run of 10 s
/// becoming due every second: without the reservation each CPU freed would go to a
/// small run and the large one would never find four. It starts at 13, when the last
/// of the runs it waits for ends, and no small run starts before it; a 2 s run that ends
/// before 13 is backfilled at 10.
#[test]
fn a_large_run_is_never_starved_by_a_stream_of_small_ones() {
    let mut sim = Sim::new(ledger(4, &[], 16 * GIB));
    for i in 0..4u64 {
        sim.due(0, run(&format!("first{i}"), 1, 0, Some(10 + i)), 10 + i);
    }
    sim.due(1, run("big", 4, 0, Some(5)), 5);
    for s in 2..60u64 {
        sim.due(s, run(&format!("small{s}"), 1, 0, Some(10)), 10);
    }
    sim.due(5, run("tiny", 1, 0, Some(2)), 2);
    sim.until(9);
    assert_eq!(sim.last_reason["big"], "needs 4 CPUs, 0 free");
    assert_eq!(sim.last_reason["small2"], "needs 1 CPU, 0 free");
    sim.until(11);
    assert_eq!(
        sim.started_at("tiny"),
        Some(10),
        "a run ending before the reservation backfills"
    );
    assert_eq!(
        sim.last_reason["small2"],
        "waits behind task big (reserved)"
    );
    sim.until(60);
    assert_eq!(sim.started_at("big"), Some(13));
    assert_eq!(sim.started_between(1, 13, "big"), ["tiny"]);
    assert_eq!(
        sim.started_at("small2"),
        Some(18),
        "the small ones follow once big is done"
    );
}

/// The same with no runtime known: the first waiting run holds every CPU that frees
/// (it is short of CPUs), so no small run starts until it has started.
#[test]
fn unknown_runtimes_hold_what_the_first_run_is_short_of() {
    let mut sim = Sim::new(ledger(4, &[], 16 * GIB));
    for i in 0..4u64 {
        sim.due(0, run(&format!("first{i}"), 1, 0, None), 10 + i);
    }
    sim.due(1, run("big", 4, 0, None), 5);
    for s in 2..40u64 {
        sim.due(s, run(&format!("small{s}"), 1, 0, None), 10);
    }
    sim.until(11);
    assert_eq!(sim.last_reason["big"], "needs 4 CPUs, 2 free");
    assert_eq!(
        sim.last_reason["small2"],
        "waits behind task big (reserved)"
    );
    sim.until(40);
    assert_eq!(sim.started_at("big"), Some(13));
    assert_eq!(sim.started_between(1, 13, "big"), Vec::<String>::new());
    assert_eq!(sim.started_at("small2"), Some(18));
}

/// One step, every rule of backfill: 8 CPUs, 4 held until 100 s. `big` (6 CPUs) is
/// reserved at 100 s, when 8 will be free: 2 it will not need. A 2-CPU run of unknown
/// length takes those 2; a 1-CPU run of 500 s then would delay `big`; 50 s runs end
/// before 100 s and start.
#[test]
fn backfill_happens_when_it_is_safe() {
    let mut l = ledger(8, &[], 16 * GIB);
    let held = l
        .allocate(&Request {
            cpus: 4,
            gpus: 0,
            mem: None,
        })
        .unwrap();
    let running = [Running {
        grant: &held,
        end: Some(t(100)),
    }];
    let waiting = [
        run("big", 6, 0, Some(300)),
        run("unknown", 2, 0, None),
        run("long", 1, 0, Some(500)),
        run("short_a", 1, 0, Some(50)),
        run("short_b", 1, 0, Some(50)),
        run("short_c", 1, 0, Some(50)),
    ];
    let d = step(&mut l, &waiting, &running, t(0), None);
    assert_eq!(ids(&d.start), ["unknown", "short_a", "short_b"]);
    assert_eq!(
        reasons(&d),
        pairs(&[
            ("big", "needs 6 CPUs, 4 free"),
            ("long", "waits behind task big (reserved)"),
            ("short_c", "needs 1 CPU, 0 free"),
        ])
    );
    assert_eq!(
        d.reservation,
        Some(Reservation {
            id: "big".to_owned(),
            at: Some(t(100))
        })
    );
    let cpus: Vec<String> = d.start.iter().map(|(_, g)| g.cpus.to_string()).collect();
    assert_eq!(
        cpus,
        ["4-5", "6", "7"],
        "disjoint, and none of the held CPUs"
    );
    assert_eq!(l.free().cpus, 0);
}

/// The GPU case: four 1-GPU runs over a declared 4-GPU list get disjoint GPUs,
/// a fifth waits; a CPU-only run behind it still starts (it takes nothing the fifth
/// needs), a GPU run behind it does not.
#[test]
fn gpu_packing_four_runs_then_a_fifth_waits() {
    let mut l = ledger(8, &["0", "1", "2", "3"], 16 * GIB);
    let mut waiting: Vec<Waiting<String>> = (1..=5)
        .map(|i| run(&format!("gpu{i}"), 1, 1, None))
        .collect();
    waiting.push(run("cpu_only", 2, 0, None));
    let d = step(&mut l, &waiting, &[], t(0), None);
    assert_eq!(ids(&d.start), ["gpu1", "gpu2", "gpu3", "gpu4", "cpu_only"]);
    let gpus: Vec<&str> = d
        .start
        .iter()
        .flat_map(|(_, g)| g.gpus.iter().map(String::as_str))
        .collect();
    assert_eq!(gpus, ["0", "1", "2", "3"]);
    assert_eq!(reasons(&d), pairs(&[("gpu5", "needs 1 GPU, 0 free")]));
    assert_eq!(
        d.reservation,
        Some(Reservation {
            id: "gpu5".to_owned(),
            at: None
        })
    );

    // Next step: the GPU runs still hold their GPUs; gpu6 waits for a GPU too, a
    // CPU-only run may not take CPUs the reserved run needs (it needs one of the two
    // free: one is left).
    let grants: Vec<Grant> = d.start.into_iter().map(|(_, g)| g).collect();
    let running: Vec<Running<'_>> = grants
        .iter()
        .map(|g| Running {
            grant: g,
            end: None,
        })
        .collect();
    let waiting = [
        run("gpu5", 1, 1, None),
        run("gpu6", 1, 1, None),
        run("c1", 1, 0, None),
        run("c2", 1, 0, None),
    ];
    let d = step(&mut l, &waiting, &running, t(1), None);
    assert_eq!(ids(&d.start), ["c1"]);
    assert_eq!(
        reasons(&d),
        pairs(&[
            ("gpu5", "needs 1 GPU, 0 free"),
            ("gpu6", "needs 1 GPU, 0 free"),
            ("c2", "waits behind task gpu5 (reserved)"),
        ])
    );
}

/// A run expected to end after the time limit is not started, and a run that could only
/// start too late reserves nothing (a smaller run behind it starts).
#[test]
fn runs_that_would_end_after_the_time_limit_wait() {
    let mut l = ledger(4, &[], 16 * GIB);
    let end = Some(t(60));
    let waiting = [
        run("long", 1, 0, Some(120)),
        run("unknown", 1, 0, None),
        run("fits", 1, 0, Some(30)),
    ];
    let d = step(&mut l, &waiting, &[], t(0), end);
    assert_eq!(ids(&d.start), ["unknown", "fits"]);
    assert_eq!(
        reasons(&d),
        pairs(&[("long", "would end after the job's time limit")])
    );
    assert_eq!(d.reservation, None);

    let mut l = ledger(4, &[], 16 * GIB);
    let held = l
        .allocate(&Request {
            cpus: 3,
            gpus: 0,
            mem: None,
        })
        .unwrap();
    let running = [Running {
        grant: &held,
        end: Some(t(50)),
    }];
    let waiting = [run("pair", 2, 0, Some(20)), run("one", 1, 0, None)];
    let d = step(&mut l, &waiting, &running, t(0), end);
    assert_eq!(ids(&d.start), ["one"]);
    assert_eq!(
        reasons(&d),
        pairs(&[("pair", "would end after the job's time limit")])
    );
    assert_eq!(d.reservation, None);
    // Exactly at the limit is in time.
    let mut l = ledger(4, &[], 16 * GIB);
    let d = step(&mut l, &[run("edge", 1, 0, Some(60))], &[], t(0), end);
    assert_eq!(ids(&d.start), ["edge"]);
}

#[test]
fn a_run_larger_than_everything_reserves_nothing() {
    let mut l = ledger(4, &[], 16 * GIB);
    let waiting = [run("huge", 8, 0, None), run("one", 1, 0, None)];
    let d = step(&mut l, &waiting, &[], t(0), None);
    assert_eq!(ids(&d.start), ["one"]);
    assert_eq!(
        reasons(&d),
        pairs(&[("huge", "asks for more than there is: 8 CPUs (there are 4)")])
    );
    assert_eq!(d.reservation, None);
}

#[test]
fn memory_short_words_and_the_earliest_time() {
    let mut l = ledger(4, &[], 16 * GIB);
    let held = l
        .allocate(&Request {
            cpus: 1,
            gpus: 0,
            mem: Some(13 * GIB),
        })
        .unwrap();
    // Overran its expected end (5 s): counts as ending now.
    let running = [Running {
        grant: &held,
        end: Some(t(5)),
    }];
    let w = Waiting {
        id: "fat".to_owned(),
        request: Request {
            cpus: 1,
            gpus: 0,
            mem: Some(8 * GIB),
        },
        expected: None,
        here: false,
    };
    let d = step(&mut l, &[w], &running, t(10), None);
    assert_eq!(reasons(&d), pairs(&[("fat", "needs 8 GiB, 3 GiB free")]));
    assert_eq!(
        d.reservation,
        Some(Reservation {
            id: "fat".to_owned(),
            at: Some(t(10))
        })
    );
}

#[test]
fn earliest_releases_in_end_order_and_ties_together() {
    let cpus = |n| Amounts {
        cpus: n,
        gpus: 0,
        mem: 0,
    };
    let holders = [
        (Some(t(20)), cpus(1)),
        (Some(t(10)), cpus(1)),
        (Some(t(10)), cpus(1)),
        (None, cpus(2)),
    ];
    assert_eq!(
        earliest(cpus(0), &holders, &cpus(1)),
        (Some(t(10)), cpus(2))
    );
    assert_eq!(
        earliest(cpus(0), &holders, &cpus(3)),
        (Some(t(20)), cpus(3))
    );
    assert_eq!(earliest(cpus(1), &holders, &cpus(5)), (None, cpus(1)));
}

/// Packing efficiency, the bench in miniature: 1,000 runs of 1, 2 or 4 CPUs and
/// 1 to 10 s, all due at once on 16 CPUs; the makespan against the ideal (CPU-seconds /
/// CPUs).
fn makespan(known: bool) -> (u64, u64) {
    let mut sim = Sim::new(ledger(16, &[], 16 * GIB));
    let mut x: u64 = 12345;
    let mut cpu_secs = 0;
    for i in 0..1000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cpus = [1, 2, 4][((x >> 33) % 3) as usize];
        let secs = 1 + (x >> 40) % 10;
        cpu_secs += cpus as u64 * secs;
        sim.due(
            0,
            run(&format!("r{i:04}"), cpus, 0, known.then_some(secs)),
            secs,
        );
    }
    sim.until(2000);
    let end = sim
        .started
        .iter()
        .map(|(id, at)| at.0.as_secs() + sim.truth[id].as_secs())
        .max()
        .unwrap();
    assert_eq!(sim.started.len(), 1000);
    (end, cpu_secs.div_ceil(16))
}

/// Within 10 % of the ideal whether runtimes are known (backfill by time: 798 s for an
/// ideal of 794 s) or not (the first waiting run holds what it is short of: 847 s).
#[test]
fn a_thousand_mixed_runs_pack_within_ten_percent_of_the_ideal() {
    for known in [true, false] {
        let (end, ideal) = makespan(known);
        assert!(
            end * 10 <= ideal * 11,
            "known runtimes: {known}: makespan {end} s, ideal {ideal} s"
        );
        assert!(
            end >= ideal,
            "{end} < {ideal}: the simulation lost CPU-seconds"
        );
    }
}

// ---- several nodes (issue 18) ---------------------------------------------------------

#[test]
fn runs_spread_over_the_nodes_the_most_free_cpus_first() {
    let mut nodes = vec![
        ledger(2, &[], GIB),
        ledger(2, &[], GIB),
        ledger(2, &[], GIB),
    ];
    let waiting: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| run(id, 1, 0, None))
        .collect();
    let d = step_on(&mut nodes, &waiting, &[], t(0), None);
    assert_eq!(ids(&d.start), ["a", "b", "c", "d"]);
    // One on each node, then the first node again (all tie at 1 free).
    assert_eq!(d.on, [0, 1, 2, 0]);
    assert_eq!(nodes[0].free().cpus, 0);
    assert_eq!(nodes[1].free().cpus, 1);
}

#[test]
fn a_request_is_placed_on_one_node_never_split_over_two() {
    // 1 + 1 CPUs free on two nodes: a run of 2 CPUs does not fit.
    let mut nodes = vec![ledger(2, &[], GIB), ledger(2, &[], GIB)];
    let first = step_on(
        &mut nodes,
        &[run("x", 1, 0, None), run("y", 1, 0, None)],
        &[],
        t(0),
        None,
    );
    assert_eq!(first.on, [0, 1]);
    let d = step_on(&mut nodes, &[run("big", 2, 0, None)], &[], t(0), None);
    assert!(d.start.is_empty());
    assert_eq!(reasons(&d), pairs(&[("big", "needs 2 CPUs, 1 free")]));
}

#[test]
fn more_than_any_node_has_is_never_even_when_the_sum_would_do() {
    let mut nodes = vec![ledger(2, &[], GIB), ledger(2, &[], GIB)];
    let d = step_on(&mut nodes, &[run("huge", 3, 0, None)], &[], t(0), None);
    assert!(d.start.is_empty());
    assert!(matches!(d.wait[0].1, Reason::Never(_)), "{:?}", d.wait);
}

#[test]
fn a_retired_node_gets_nothing() {
    let mut nodes = vec![ledger(1, &[], GIB), ledger(4, &[], GIB)];
    nodes[1].retire();
    let d = step_on(
        &mut nodes,
        &[run("a", 1, 0, None), run("b", 1, 0, None)],
        &[],
        t(0),
        None,
    );
    assert_eq!(ids(&d.start), ["a"]);
    assert_eq!(d.on, [0]);
    assert_eq!(reasons(&d), pairs(&[("b", "needs 1 CPU, 0 free")]));
}

#[test]
fn backfill_on_another_node_than_the_reserved_one_cannot_delay_it() {
    // Node 0: 4 CPUs, 2 held until t=100. Node 1: 1 CPU, free.
    let mut nodes = vec![ledger(4, &[], GIB), ledger(1, &[], GIB)];
    let held = nodes[0]
        .allocate(&Request {
            cpus: 2,
            gpus: 0,
            mem: None,
        })
        .unwrap();
    let running = [(
        0,
        Running {
            grant: &held,
            end: Some(t(100)),
        },
    )];
    // "big" (4 CPUs) reserves node 0 at t=100; "long" (1 CPU, 500 s) may not take node 0's
    // free CPUs (it would delay big) but goes on node 1; "late" (1 CPU, long) then waits
    // behind big on node 0.
    let waiting = [
        run("big", 4, 0, Some(10)),
        run("long", 1, 0, Some(500)),
        run("late", 1, 0, Some(500)),
    ];
    let d = step_on(&mut nodes, &waiting, &running, t(0), None);
    assert_eq!(ids(&d.start), ["long"]);
    assert_eq!(d.on, [1]);
    assert_eq!(
        d.reservation,
        Some(Reservation {
            id: "big".to_owned(),
            at: Some(t(100)),
        })
    );
    assert_eq!(
        reasons(&d),
        pairs(&[
            ("big", "needs 4 CPUs, 2 free"),
            ("late", "waits behind task big (reserved)"),
        ])
    );
}

#[test]
fn the_reservation_goes_to_the_node_that_frees_first() {
    let mut nodes = vec![ledger(2, &[], GIB), ledger(2, &[], GIB)];
    let req = Request {
        cpus: 2,
        gpus: 0,
        mem: None,
    };
    let g0 = nodes[0].allocate(&req).unwrap();
    let g1 = nodes[1].allocate(&req).unwrap();
    let running = [
        (
            0,
            Running {
                grant: &g0,
                end: Some(t(300)),
            },
        ),
        (
            1,
            Running {
                grant: &g1,
                end: Some(t(50)),
            },
        ),
    ];
    let d = step_on(&mut nodes, &[run("next", 2, 0, None)], &running, t(0), None);
    assert_eq!(d.reservation.unwrap().at, Some(t(50)));
}
