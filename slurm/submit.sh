#!/bin/bash
# slurm/submit.sh - run bansuri as a SLURM batch job.
#
# Copy this file next to your config, edit the #SBATCH lines and the two paths below, then:
#
#   sbatch submit.sh                     # extra arguments go to bansuri: sbatch submit.sh --watchdog 60s
#   tail -f master_<jobid>.log           # the job log: every task's lines, prefixed
#
# Build the binary once, on a login node, before submitting. It is static (musl): it runs on
# any x86_64 Linux node whatever its glibc, and the job builds nothing:
#
#   rustup target add x86_64-unknown-linux-musl
#   cargo build --release --target x86_64-unknown-linux-musl
#   # -> target/x86_64-unknown-linux-musl/release/bansuri
#
# --signal=B:TERM@150: Slurm sends SIGTERM to bansuri alone about 150 s (up to a minute more)
# before the time limit, so the tasks get their whole stop grace (watchdog_timeout, 120 s by
# default) before Slurm's own SIGTERM and SIGKILL at the limit. bansuri's log header says how
# much lead the grace needs with this cluster's KillWait. --open-mode=append: a requeued job
# (scontrol requeue, --requeue) continues its master_<jobid>.log instead of truncating it.
# Options given to sbatch on the command line override these lines
# (sbatch --time=2:00:00 submit.sh). With srun tasks spread over several nodes, raise
# --nodes and give the tasks their own `srun` shape in the config. Tasks with `cpus`/`gpus`/
# `mem` are packed into what the job has (--cpus-per-task, --gpus, --mem: README,
# "Resources"); with `"requeue_on_end": true` in the config, add `#SBATCH --requeue`, or
# Slurm refuses bansuri's `scontrol requeue` at the time limit.
#
#SBATCH --job-name=bansuri
#SBATCH --time=24:00:00
#SBATCH --nodes=1
#SBATCH --cpus-per-task=4
#SBATCH --output=master_%j.log
#SBATCH --open-mode=append
#SBATCH --signal=B:TERM@150

# The binary and the config. Relative paths are relative to the directory sbatch was run in
# (the job's working directory). Either edit the defaults or set them when submitting:
#   BANSURI_BIN=/path/to/bansuri BANSURI_CONFIG=/path/to/config.json sbatch submit.sh
BANSURI_BIN=${BANSURI_BIN:-$HOME/bansuri/target/x86_64-unknown-linux-musl/release/bansuri}
BANSURI_CONFIG=${BANSURI_CONFIG:-scripts_config.json}

if [ ! -x "$BANSURI_BIN" ]; then
    echo "submit.sh: no bansuri binary at $BANSURI_BIN: build it (see the top of this file) or set BANSURI_BIN" >&2
    exit 2
fi

# `exec`: bansuri replaces this shell and becomes the batch step's top process. A plain
# scancel and the time limit send SIGTERM to that process only (proctrack/cgroup), and
# --signal=B:... signals it alone: with exec it is bansuri that gets them, stops every task
# gracefully and SIGKILLs what is left before Slurm does. Without exec, bash would die of the
# SIGTERM and Slurm would SIGKILL bansuri and every task without a word.
exec "$BANSURI_BIN" --config "$BANSURI_CONFIG" "$@"
