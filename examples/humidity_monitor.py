#!/usr/bin/env python3
"""A second forever-loop monitor, listed in scripts_config.json as a plain string (the
hot-reload manager's shorthand): bansuri names the task after the file, `humidity_monitor`.

Prints a simulated relative humidity every MONITOR_INTERVAL seconds (default 4) and exits 0
on SIGTERM/SIGINT with a goodbye line.
"""

import os
import random
import signal
import sys
import time


class Stop(Exception):
    pass


def on_signal(signum, _frame):
    raise Stop(signal.Signals(signum).name)


def main():
    interval = float(os.environ.get("MONITOR_INTERVAL", "4"))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    humidity = 45.0
    print(f"humidity monitor started (pid {os.getpid()})", flush=True)
    try:
        while True:
            humidity = min(95.0, max(5.0, humidity + random.uniform(-1.5, 1.5)))
            print(f"relative humidity {humidity:4.1f} %", flush=True)
            time.sleep(interval)
    except Stop as why:
        print(f"humidity monitor: got {why}, goodbye", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
