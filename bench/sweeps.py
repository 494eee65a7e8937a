#!/usr/bin/env python3
"""bench/sweeps.py [--n 10000] [--big 100000] [--runs 3] [--bin PATH] [--no-install]

W12 (issue 19): sweeps, in one run on one machine, as ratios.

  a) 10,000 elements of `true` at parallel 2:
       bansuri  (one task, "array": {"range": "1-N"}, max_parallel 2, --exit-when-done)
       GNU parallel  (seq N | parallel -j2 --joblog FILE true)
       disBatch      (a task file of N lines `true`, disBatch -e -s localhost:2)
       HyperQueue    (LocalCluster, one worker of 2 cores, one job of N tasks `true`)
     Each: wall time from start to the last element's end (median of --runs). HyperQueue's
     stock wait polls once a second, so its last task is `touch MARK` and the end is
     MARK's modification time (ns), read as soon as it appears (1 ms poll): the figure is
     its makespan, not its poll.
  b) 100,000 elements of `true` at parallel 2, bansuri alone: peak RSS (ru_maxrss),
     `validate` time, time to the first element's start, and per-element cost (wall / N).

Targets: bansuri at least as fast as GNU parallel; RSS under 100 MB at 100,000 elements.
Peers install into bench/.peers/sweeps-venv from PyPI (disbatch, hyperqueue) unless
--no-install; a peer that is missing is reported, not faked.
"""
import argparse, json, os, re, resource, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".peers", "sweeps-venv")

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--n", type=int, default=10000)
ap.add_argument("--big", type=int, default=100000)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bansuri"))
ap.add_argument("--no-install", action="store_true")
ap.add_argument("--big-only", action="store_true", help="only the 100,000-element run (W12b)")
A = ap.parse_args()
WORK = tempfile.mkdtemp(prefix="bansuri-sweeps-")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def install():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdout=subprocess.DEVNULL)
    have = subprocess.run([py, "-c", "import disbatch, hyperqueue"], capture_output=True).returncode == 0
    if not have and not A.no_install:
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "disbatch", "hyperqueue"],
                       stdin=subprocess.DEVNULL, check=False)
    if not shutil.which("parallel") and not A.no_install:
        subprocess.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends parallel "
                       "</dev/null >/dev/null 2>&1", shell=True)


def config(path, n, parallel=2, command="true"):
    with open(path, "w") as f:
        json.dump({"max_parallel": parallel, "sample_interval": "0",
                   "scripts": [{"name": "w", "command": command, "array": {"range": f"1-{n}"}}]}, f)
    return path


def run_bansuri(n):
    d = tempfile.mkdtemp(dir=WORK)
    cfg = config(os.path.join(d, "sweep.json"), n)
    log = os.path.join(d, "job.log")
    t0 = time.perf_counter()
    p = subprocess.Popen([A.bin, "--config", cfg, "--log-file", log, "--exit-when-done", "-q"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"bansuri failed ({p.returncode}): {p.stderr.read().decode()[-2000:]}")
    return wall, ru.ru_maxrss * 1024, d, log


def run_parallel(n):
    if not shutil.which("parallel"):
        return None
    jl = os.path.join(WORK, "joblog")
    t0 = time.perf_counter()
    subprocess.run(f"seq {n} | parallel -j2 --joblog {jl} true", shell=True, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    done = sum(1 for _ in open(jl)) - 1
    assert done == n, f"GNU parallel ran {done} of {n}"
    return wall


def run_disbatch(n):
    exe = os.path.join(VENV, "bin", "disBatch")
    if not os.path.exists(exe):
        return None
    d = tempfile.mkdtemp(dir=WORK)
    tasks = os.path.join(d, "tasks")
    with open(tasks, "w") as f:
        f.write("true\n" * n)
    t0 = time.perf_counter()
    subprocess.run([exe, "-e", "-s", "localhost:2", tasks], cwd=d, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    status = [f for f in os.listdir(d) if f.endswith("_status.txt")]
    lines = sum(1 for _ in open(os.path.join(d, status[0]))) if status else -1
    assert lines == n, f"disBatch status file has {lines} lines of {n}"
    return wall


HQ = r'''
import os, sys, time
from hyperqueue import Job, LocalCluster
from hyperqueue.cluster import WorkerConfig
n, mark = int(sys.argv[1]), sys.argv[2]
with LocalCluster() as cluster:
    cluster.start_worker(WorkerConfig(cores=2))
    client = cluster.client()
    job = Job()
    for i in range(n - 1):
        job.program(["true"])
    job.program(["touch", mark])
    t0 = time.time()
    submitted = client.submit(job)
    while not os.path.exists(mark):
        time.sleep(0.001)
    end = os.stat(mark).st_mtime_ns / 1e9
    # Let the job end cleanly (this wait polls once a second: not timed).
    assert client.wait_for_jobs([submitted], raise_on_error=False), "a task failed"
    print(end - t0)
'''


def run_hq(n):
    py = os.path.join(VENV, "bin", "python")
    if subprocess.run([py, "-c", "import hyperqueue"], capture_output=True).returncode != 0:
        return None
    mark = os.path.join(WORK, f"hq-mark-{time.time_ns()}")
    out = subprocess.run([py, "-c", HQ, str(n), mark], capture_output=True, text=True, cwd=WORK, timeout=1800)
    if out.returncode != 0:
        print(f"HyperQueue failed: {out.stderr[-1500:]}", file=sys.stderr)
        return None
    return float(out.stdout.strip().splitlines()[-1])


def main():
    if not A.big_only:
        install()
        small()
    big()
    shutil.rmtree(WORK, ignore_errors=True)


def small():
    n = A.n
    rows = []
    b = [run_bansuri(n)[0] for _ in range(A.runs)]
    rows.append(("bansuri", med(b)))
    for name, fn in [("GNU parallel --joblog", run_parallel), ("disBatch -s localhost:2", run_disbatch),
                     ("HyperQueue (2-core worker)", run_hq)]:
        xs = [fn(n) for _ in range(A.runs)]
        xs = [x for x in xs if x is not None]
        rows.append((name, med(xs) if xs else None))
    print(f"W12a {n:,} elements of `true` at parallel 2 (median of {A.runs})")
    base = rows[0][1]
    for name, t in rows:
        if t is None:
            print(f"  {name:28} not available")
            continue
        print(f"  {name:28} {t:8.3f} s  {n / t:8.0f} elements/s  bansuri is {t / base:5.2f}x faster")



def big():
    """W12b: the big sweep, bansuri alone."""
    big = A.big
    d = tempfile.mkdtemp(dir=WORK)
    cfg = config(os.path.join(d, "big.json"), big)
    t0 = time.perf_counter()
    subprocess.run([A.bin, "validate", "--config", cfg], check=True, stdout=subprocess.DEVNULL)
    validate = time.perf_counter() - t0
    log = os.path.join(d, "job.log")
    t0 = time.perf_counter()
    p = subprocess.Popen([A.bin, "--config", cfg, "--log-file", log, "--exit-when-done", "-q"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # The first element's end: its line in the element status file (`-q` keeps the
    # job log to warnings, so the log has no start line to watch).
    status_file = os.path.join(d, ".bansuri", "big.json", "elements.jsonl")
    # Peak RSS: the kernel's high-water mark of bansuri's own memory (VmHWM), read until
    # it exits. (wait4's ru_maxrss would count the Python parent's pages the child had
    # between fork and exec: about 15 MB that are not bansuri's.)
    first, hwm_kb = None, 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm_kb = max(hwm_kb, int(line.split()[1]))
        except OSError:
            pass
        if first is None:
            try:
                if os.path.getsize(status_file) > 0:
                    first = time.perf_counter() - t0
            except OSError:
                pass
        time.sleep(0.002 if first is None else 0.02)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bansuri (big) failed ({code}): {p.stderr.read().decode()[-2000:]}")
    rss = hwm_kb / 1024
    print(f"W12b {big:,} elements of `true` at parallel 2, bansuri")
    print(f"  validate {validate:.3f} s; first element ended after {first if first is not None else float('nan'):.3f} s;"
          f" all done in {wall:.1f} s ({wall / big * 1e3:.3f} ms per element); peak RSS {rss:.1f} MB"
          f" ({'under' if rss < 100 else 'OVER'} the 100 MB target)")


main()
