//! Endurance: many short runs leave no zombie, no leaked fd and no memory growth.

mod common;

use std::time::Duration;

use common::*;

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// 10,000 short runs (a timer every 1 ms, plus 8 one-shots that fail and retry): zero
/// zombies, the fd count back to where it started, RSS flat after warm-up. The curve is
/// printed (run the test with --nocapture to see it).
#[test]
fn ten_thousand_short_runs_leak_nothing() {
    let sb = Sandbox::new();
    let cfg = r#"{"scripts": [
        {"name": "tick", "command": "printf x >> runs", "timer": "1ms", "overlap": "skip"},
        {"name": "noisy", "command": "printf x >> runs; echo out; echo err >&2; exit 1", "timer": "5ms", "stderr": "log"}
    ]}"#;
    let b = sb.start(cfg, &["-q"]);
    let pid = b.pid();
    let runs = || {
        std::fs::metadata(sb.file("runs"))
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    };
    let mut curve = Vec::new();
    let mut base_fds = 0;
    let mut warm_rss = 0;
    for step in 1..=10 {
        let want = step * 1000;
        wait_for(Duration::from_secs(120), || (runs() >= want).then_some(()))
            .unwrap_or_else(|| panic!("did not reach {want} runs (at {})", runs()));
        let (f, r) = (fds(pid), rss_kb(pid));
        curve.push((want, f, r, zombies_of(pid).len()));
        if step == 2 {
            base_fds = f;
            warm_rss = r;
        }
    }
    eprintln!("runs, fds, rss_kb, zombies");
    for (n, f, r, z) in &curve {
        eprintln!("{n}, {f}, {r}, {z}");
    }
    let (_, _, last_rss, _) = *curve.last().unwrap();
    // Runs in flight hold a few pipes at any sample (and a control connection or a state
    // file write may be open); a leak of one fd per run would add thousands.
    let floor = curve.iter().map(|c| c.1).min().unwrap();
    let late_floor = curve[5..].iter().map(|c| c.1).min().unwrap();
    assert!(
        late_floor <= base_fds.max(floor) + 4,
        "fd floor rose: {curve:?}"
    );
    assert!(
        curve.iter().all(|c| c.1 <= floor + 16),
        "fd count grew: {curve:?}"
    );
    assert!(
        last_rss <= warm_rss + 2048,
        "RSS grew by more than 2 MB after warm-up: {curve:?}"
    );
    // Zombies: at most the one or two runs that just ended, never an accumulation.
    assert!(
        curve.iter().all(|c| c.3 <= 2),
        "zombies accumulate: {curve:?}"
    );
}
