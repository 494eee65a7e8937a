# slurm/daemons.sh - the daemon helpers of slurm/local-cluster.sh and
# slurm/multinode-cluster.sh (sourced; the caller defines `log`). Daemons are found by pid
# file only, never by name.

# alive PID NAME: PID is a running (not zombie) process whose comm is NAME. Checking the name
# guards against a stale pid file whose number was reused by something else.
alive() {
    [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] \
        && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# daemon_pid PIDFILE NAME: print the daemon's pid if its pid file names a live NAME process.
daemon_pid() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -cd '0-9' <"$1")
    alive "$pid" "$2" || return 1
    echo "$pid"
}

# stop_daemon PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL. The daemons delete their
# pid file on the way out, so the wait is on the pid itself.
stop_daemon() {
    local pid i
    if ! pid=$(daemon_pid "$1" "$2"); then
        log "$2 is not running"
        rm -f "$1"
        return 0
    fi
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$pid" "$2" || break
        sleep 0.1
    done
    if alive "$pid" "$2"; then
        log "$2 (pid $pid) ignored SIGTERM for 15 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$1"
}

