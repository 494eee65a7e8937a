#!/usr/bin/env python3
"""bench/agents_transport.py - the mechanism of issue 18, measured on the three-node
cluster (slurm/multinode-cluster.sh): runs of `true` dispatched to `bansuri agent`s over
ONE srun step's stdin/stdout, against the same runs as one srun step each.

    python3 bench/agents_transport.py [--runs N] [--bin PATH] [--inflight K]

It needs the cluster up (`bash slurm/multinode-cluster.sh up`) and a bansuri binary
(default target/release/bansuri). Both halves run inside one 3-node allocation (salloc),
in the same invocation, so their ratio is what to quote. The leader here is this script
(Python), so the agent figure is a lower bound of what bansuri's own leader reaches.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = "/run/slurm-multinode/slurm.conf"
MAGIC = "bansuri-agent/1 "


def inner_agents(args):
    """Inside the allocation: one step of agents, `runs` runs of true, `inflight` per node."""
    step = subprocess.Popen(
        ["srun", "--overlap", "-N3", "--ntasks-per-node=1", "--label", args.bin, "agent"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    nodes = {}
    while len(nodes) < 3:
        rank, _, frame = step.stdout.readline().partition(": ")
        f = json.loads(frame[len(MAGIC):])
        assert f["t"] == "ready", f
        nodes[f["node"]] = 0
    names = sorted(nodes)
    t0 = time.perf_counter()
    sent = done = 0
    busy = {n: 0 for n in names}
    where = {}

    def send(run, node):
        frame = {"t": "start", "to": node, "run": run, "task": "b", "argv": ["true"],
                 "env": [["PATH", "/usr/bin:/bin"]], "cwd": "/tmp"}
        step.stdin.write(MAGIC + json.dumps(frame) + "\n")

    while done < args.runs:
        for n in names:
            while busy[n] < args.inflight and sent < args.runs:
                send(sent, n)
                where[sent] = n
                busy[n] += 1
                sent += 1
        step.stdin.flush()
        rank, _, frame = step.stdout.readline().partition(": ")
        f = json.loads(frame[len(MAGIC):])
        if f["t"] == "exited":
            assert f.get("code") == 0, f
            busy[where.pop(f["run"])] -= 1
            done += 1
        elif f["t"] == "start_failed":
            sys.exit(f"start failed: {f}")
    elapsed = time.perf_counter() - t0
    step.stdin.close()
    step.wait()
    print(json.dumps({"agents_runs": args.runs, "agents_s": elapsed}))


def inner_steps(args):
    """Inside the allocation: `runs` runs of true, each its own srun step, 3 at a time."""
    t0 = time.perf_counter()
    running = []
    for i in range(args.runs):
        running.append(subprocess.Popen(["srun", "-N1", "-n1", "--exact", "--overlap", "true"]))
        if len(running) >= 3:
            assert running.pop(0).wait() == 0
    for p in running:
        assert p.wait() == 0
    print(json.dumps({"steps_runs": args.runs, "steps_s": time.perf_counter() - t0}))


def steps_of(job_id):
    out = subprocess.run(["squeue", "-h", "-s", "-j", job_id], capture_output=True, text=True)
    return len(out.stdout.splitlines())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=600)
    ap.add_argument("--step-runs", type=int, default=150,
                    help="runs for the step-per-run half (slow: fewer runs)")
    ap.add_argument("--inflight", type=int, default=2)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bansuri"))
    ap.add_argument("--inner", choices=["agents", "steps"])
    args = ap.parse_args()
    if args.inner == "agents":
        return inner_agents(args)
    if args.inner == "steps":
        args.runs = args.step_runs
        return inner_steps(args)
    os.environ["SLURM_CONF"] = CONF
    results = {}
    for half in ["agents", "steps"]:
        cmd = ["salloc", "-Q", "-N3", "--ntasks-per-node=1", "--time=10",
               sys.executable, os.path.abspath(__file__), "--inner", half,
               "--runs", str(args.runs), "--step-runs", str(args.step_runs),
               "--inflight", str(args.inflight), "--bin", args.bin]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            sys.exit(f"{half}: {out.stderr}")
        results.update(json.loads(out.stdout.strip().splitlines()[-1]))
    a = results["agents_runs"] / results["agents_s"]
    s = results["steps_runs"] / results["steps_s"]
    print(f"runs of `true` over 3 nodes: agents (one step) {a:.0f}/s "
          f"({1000 / a:.2f} ms per run), a step per run {s:.1f}/s; ratio {a / s:.1f}x")


if __name__ == "__main__":
    main()
