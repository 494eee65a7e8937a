#!/usr/bin/env bash
# A "forever loop" monitor in bash: load average and memory every MONITOR_INTERVAL seconds
# (default 5), read from /proc so it costs nothing.
#
# Bash runs a trap only after the foreground command ends, so a plain `sleep 5` would delay the
# reaction to SIGTERM by up to 5 s. Sleeping in the background and `wait`ing for it lets the
# trap run at once.
set -u
interval=${MONITOR_INTERVAL:-5}
sleeper=
stop() {
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
    echo "system monitor: got SIG$1, goodbye"
    exit 0
}
trap 'stop TERM' TERM
trap 'stop INT' INT

echo "system monitor started (pid $$, every ${interval} s, on $(hostname -s))"
while :; do
    read -r load1 load5 load15 _ </proc/loadavg
    mem_total=$(awk '$1 == "MemTotal:" { print int($2 / 1024) }' /proc/meminfo)
    mem_avail=$(awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo)
    echo "load ${load1} ${load5} ${load15} | memory available ${mem_avail} of ${mem_total} MiB"
    sleep "$interval" &
    sleeper=$!
    wait "$sleeper"
    sleeper=
done
