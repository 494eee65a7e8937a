#!/usr/bin/env python3
"""A "forever loop" monitor: print a temperature reading every few seconds.

It reads the first thermal zone the kernel offers; on a machine without one (a VM, most
compute nodes) it simulates a slowly drifting sensor. It prints with flush so every line reaches
bansuri's job log at once, and on SIGTERM (or SIGINT) it says goodbye and exits 0, which is
how a well-behaved monitor lets bansuri stop it within its `stoptime`.

Environment: MONITOR_INTERVAL (seconds between readings, default 3).
"""

import glob
import os
import random
import signal
import sys
import time


class Stop(Exception):
    """Raised by the signal handler to leave the loop, even in the middle of a sleep."""


def on_signal(signum, _frame):
    raise Stop(signal.Signals(signum).name)


def read_sensor(simulated):
    for path in sorted(glob.glob("/sys/class/thermal/thermal_zone*/temp")):
        try:
            with open(path) as f:
                return int(f.read().strip()) / 1000.0, os.path.dirname(path).rsplit("/", 1)[-1]
        except (OSError, ValueError):
            continue
    simulated[0] += random.uniform(-0.4, 0.4)
    return simulated[0], "simulated"


def main():
    interval = float(os.environ.get("MONITOR_INTERVAL", "3"))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    simulated = [21.0]
    readings = 0
    print(f"temperature monitor started (pid {os.getpid()}, every {interval:g} s)", flush=True)
    try:
        while True:
            celsius, source = read_sensor(simulated)
            readings += 1
            print(f"reading {readings}: {celsius:5.1f} C ({source})", flush=True)
            time.sleep(interval)
    except Stop as why:
        print(f"temperature monitor: got {why}, goodbye after {readings} readings", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
