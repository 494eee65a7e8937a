#!/bin/bash
# A Taskmaster-style worker: one of `numprocs` instances; stops cleanly on SIGINT (its
# stopsignal in config.yaml) and reports what it got.
instance=${BANSURI_INSTANCE:-0}
trap 'echo "worker $instance: got SIGINT, finishing"; exit 0' INT
trap 'echo "worker $instance: got SIGTERM"; exit 0' TERM
echo "worker $instance started (pid $$, umask $(umask), nice $(nice))"
n=0
while true; do
    n=$((n + 1))
    echo "worker $instance: job $n done"
    sleep 2 &
    wait $!
done
