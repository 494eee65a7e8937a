#!/usr/bin/env python3
"""bench/dash_attack.py HOST:PORT [--idle N] [--slow N] [--reconnect S] [--seconds S]

An attack on bansuri's dashboard (issue 15, item 7), for bench/run's W9 and by hand:
- N idle connections that never send a byte;
- N slow clients that ask for /metrics and never read the answer (small receive buffer);
- every connection is closed and opened again after --reconnect seconds (or at once when
  the server dropped it), so that time limits on the server side do not end the attack.

Runs until --seconds have passed (0: until killed). Prints one line at the end: how many
connections were opened, and how many were refused or reset. Not part of the crate's
tests: a measuring tool.
"""
import argparse, socket, time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("addr")
ap.add_argument("--idle", type=int, default=100)
ap.add_argument("--slow", type=int, default=64)
ap.add_argument("--reconnect", type=float, default=5.0)
ap.add_argument("--seconds", type=float, default=0)
A = ap.parse_args()
host, port = A.addr.rsplit(":", 1)
port = int(port)
opened = failed = 0


def connect(slow):
    global opened, failed
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if slow:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(2)
    try:
        s.connect((host, port))
        if slow:
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        s.setblocking(False)
        opened += 1
        return (s, time.monotonic())
    except OSError:
        failed += 1
        s.close()
        return None


def dead(s):
    """Closed by the server (EOF or reset)? An idle one has nothing to read otherwise; a
    slow one is not read (it stays as it is until it is reconnected)."""
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


slots = [(False, None)] * A.idle + [(True, None)] * A.slow
end = time.monotonic() + A.seconds if A.seconds else None
while end is None or time.monotonic() < end:
    now = time.monotonic()
    for i, (slow, c) in enumerate(slots):
        if c is not None and (now - c[1] >= A.reconnect or (not slow and dead(c[0]))):
            c[0].close()
            c = None
        if c is None:
            c = connect(slow)
        slots[i] = (slow, c)
    time.sleep(0.1)
for slow, c in slots:
    if c:
        c[0].close()
print(f"opened {opened} connections, {failed} refused or failed")
